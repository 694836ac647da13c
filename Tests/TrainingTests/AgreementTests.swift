// Tests of the start-up agreement check (failure handling under MPI): a configuration or parameter signature that
// differs between ranks stops the job with a message naming the rank and the first differing line.
// A fake two-rank communicator stands in for MPI: its all-gathers return this rank's value and a chosen
// "rank 1" value, which is all `Trainer.checkAgreement` uses.
import Distributed
import Testing
import TensorCore
import Training

/// Rank 0 of a pretend 2-rank world whose rank 1 holds `other`.
final class FakeTwoRanks: Communicator {
    let other: String
    init(other: String) { self.other = other }
    var rank: Int { 0 }
    var size: Int { 2 }
    func barrier() throws {}
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {}
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {}
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {}
    func startAllReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws -> any PendingReduction {
        throw TrainingError("not used")
    }
    func allGather(_ value: UInt64) throws -> [UInt64] { [value, Self.fnv(other)] }
    func allGather(_ text: String) throws -> [String] { [text, other] }
    func abort(code: Int32, message: String) -> Never { fatalError(message) }
    /// The hash `checkAgreement` exchanges first (FNV-1a of the UTF-8 text).
    static func fnv(_ text: String) -> UInt64 { FNV1a.hash(text) }
}

@Suite struct AgreementTests {
    func message(_ name: String, _ mine: String, _ other: String) -> String? {
        do {
            try Trainer.checkAgreement(name: name, text: mine, comm: FakeTwoRanks(other: other))
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func equalTextsPass() {
        #expect(message("configuration", "a: 1\nb: 2", "a: 1\nb: 2") == nil)
    }

    @Test func configurationDifferenceNamesRankAndLine() throws {
        let m = try #require(message("configuration", "model:\n  decoder:\n    num_queries: 16\nseed: 0",
                                     "model:\n  decoder:\n    num_queries: 20\nseed: 0"))
        #expect(m == "the configuration differs between ranks: rank 1 differs from rank 0: "
                + "line 3: rank 0 has '    num_queries: 16', rank 1 has '    num_queries: 20'")
    }

    @Test func signatureDifferenceNamesParameterAndShape() throws {
        let m = try #require(message("parameter signature", "backbone.conv1.weight [16, 3, 7, 7]\nhead.weight [5, 32]",
                                     "backbone.conv1.weight [16, 3, 7, 7]\nhead.weight [6, 32]"))
        #expect(m.hasPrefix("the parameter signature differs between ranks: rank 1 differs from rank 0"))
        #expect(m.contains("line 2: rank 0 has 'head.weight [5, 32]', rank 1 has 'head.weight [6, 32]'"))
    }

    @Test func missingParameterNamesLineCounts() throws {
        let m = try #require(message("parameter signature", "a [1]\nb [2]", "a [1]"))
        #expect(m.contains("rank 0 has 2 lines, rank 1 has 1"))
    }
}
