// Tests of the Philox4x32-10 generator: known-answer vectors, exact save/restore, streams, distributions.
// Reference: Salmon et al. (SC'11) Random123 known-answer tests for philox4x32-10.
import Testing
import TensorCore
import _TestSupport

@Suite struct RNGTests {
    @Test func philoxKnownAnswers() {
        // Random123 kat_vectors: philox4x32 10 rounds, counter (0,0,0,0) key (0,0) and all-ones.
        var zero = RNG(seed: 0, stream: 0)
        #expect([zero.nextUInt32(), zero.nextUInt32(), zero.nextUInt32(), zero.nextUInt32()]
                == [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        var ones = RNG(state: RNGState(seed: .max, stream: .max, counter: .max, lane: 0))
        #expect([ones.nextUInt32(), ones.nextUInt32(), ones.nextUInt32(), ones.nextUInt32()]
                == [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
    }

    @Test func saveRestoreReplaysExactly() {
        var rng = RNG(seed: 42, stream: 3)
        for _ in 0..<7 { _ = rng.nextUInt32() }   // stop mid-block
        let saved = rng.state
        let a = (0..<50).map { _ in rng.nextNormal() } + (0..<50).map { _ in rng.nextFloat() }
        var restored = RNG(state: RNGState(words: saved.words))
        let b = (0..<50).map { _ in restored.nextNormal() } + (0..<50).map { _ in restored.nextFloat() }
        #expect(a == b)
        #expect(restored.state == rng.state)
    }

    @Test func streamsDiffer() {
        var a = RNG(seed: 1, stream: 0), b = RNG(seed: 1, stream: 1), c = RNG(seed: 2, stream: 0)
        let xa = (0..<8).map { _ in a.nextUInt32() }, xb = (0..<8).map { _ in b.nextUInt32() }
        let xc = (0..<8).map { _ in c.nextUInt32() }
        #expect(xa != xb && xa != xc)
    }

    @Test func distributions() {
        var rng = RNG(seed: 9)
        let n = 200_000
        var s = 0.0, s2 = 0.0, us = 0.0
        for _ in 0..<n {
            let z = Double(rng.nextNormal()); s += z; s2 += z * z
            let u = rng.nextFloat(); #expect(u >= 0 && u < 1); us += Double(u)
        }
        #expect(abs(s / Double(n)) < 0.01 && abs(s2 / Double(n) - 1) < 0.02)
        #expect(abs(us / Double(n) - 0.5) < 0.005)
        var counts = [Int](repeating: 0, count: 6)
        for _ in 0..<60_000 { counts[rng.nextInt(below: 6)] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 400 })
        let p = rng.permutation(100)
        #expect(p.sorted() == Array(0..<100) && p != Array(0..<100))
    }

    /// The block-addressed fill gives what `nextFloat()` one by one gives, from any lane, for short and multi-chunk
    /// counts, at every thread count, and leaves the stream where the one-by-one draws leave it.
    @Test func fillUniformEqualsSequentialDraws() {
        for skip in 0..<4 {
            for count in [0, 1, 2, 3, 5, 8, 13, 300_001] {
                var sequential = RNG(seed: 7, stream: 11)
                for _ in 0..<skip { _ = sequential.nextUInt32() }
                let before = sequential
                let expected = (0..<count).map { _ in -2 + 5 * sequential.nextFloat() }
                let after = sequential
                var nextExpected = after
                let next = nextExpected.nextUInt32()
                let results = atThreadCounts {
                    var rng = before
                    var out = [Float](repeating: .nan, count: count)
                    out.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: count, low: -2, high: 3) }
                    #expect(rng.state == after.state, "skip \(skip) count \(count)")
                    #expect(rng.nextUInt32() == next, "the draw after the fill, skip \(skip) count \(count)")
                    return out
                }
                #expect(bitwiseEqual(results + [expected]), "skip \(skip) count \(count)")
            }
        }
    }
}
