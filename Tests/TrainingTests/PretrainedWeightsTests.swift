// Tests of `model.weights`: initializing a model from a weights-only HDF5 written from another model, with
// `model.weights_ignore` skipping a class head of a different size; the reported lists; mis-shaped keys.
import Checkpoint
import Foundation
import Mask2FormerModel
import NN
import _TestSupport
import Testing
import TensorCore
import Training

@Suite struct PretrainedWeightsTests {
    static func tinyConfig(numClasses: Int) -> Mask2FormerConfig { .testTiny(numClasses: numClasses) }

    static func temporaryPath(_ name: String) -> String {
        let dir = try! makeTestDirectory("maskpilot-weights")
        return dir.appendingPathComponent(name).path
    }

    static let head = ["sem_seg_head.predictor.class_embed.weight", "sem_seg_head.predictor.class_embed.bias"]

    /// The MP-Former vs Mask2Former experiment relies on this: with the same seed, the two models start from the
    /// same parameters; MP-Former only adds `label_enc` (drawn last).
    @Test func mpFormerAndMask2FormerShareTheirInitialization() {
        var mp = Self.tinyConfig(numClasses: 5)
        mp.maskPiloting.enabled = true
        var rngA = RNG(seed: 11), rngB = RNG(seed: 11)
        let baseline = Mask2Former(Self.tinyConfig(numClasses: 5), rng: &rngA)
        let piloted = Mask2Former(mp, rng: &rngB)
        let a = Dictionary(uniqueKeysWithValues: baseline.namedParameters())
        let b = Dictionary(uniqueKeysWithValues: piloted.namedParameters())
        #expect(Set(b.keys).subtracting(a.keys) == ["sem_seg_head.predictor.label_enc.weight"])
        for (name, t) in a {
            #expect(b[name].map { $0.values == t.values } == true, "\(name) differs")
        }
    }

    @Test func weightsFromAnotherModelLoadWithAnIgnoredClassHead() throws {
        var rng = RNG(seed: 1)
        let source = Mask2Former(Self.tinyConfig(numClasses: 5), rng: &rng)
        rng = RNG(seed: 2)
        let target = Mask2Former(Self.tinyConfig(numClasses: 7), rng: &rng)
        let before = Dictionary(uniqueKeysWithValues: target.stateDict().map { ($0.0, $0.1.values) })

        let path = Self.temporaryPath("weights.h5")
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        var written = source.stateDict(layout: .pytorch)
        written.append(("extra.unused_tensor", Tensor([1, 2, 3], shape: [3])))
        try writeModelWeights(written, to: path, source: "test")
        // A weights-only file has no /optimizer or /trainer: readCheckpoint refuses it, readModelWeights reads it.
        #expect(throws: CheckpointError.self) { _ = try readCheckpoint(path: path) }
        #expect(try readModelWeights(path: path).map(\.0) == written.map(\.0))

        let report = try loadPretrainedWeights(into: target, path: path, ignore: ["sem_seg_head.predictor.class_embed.*"])
        #expect(report.ignored == Self.head)
        #expect(report.missing == Self.head)
        #expect(report.unused == ["extra.unused_tensor"])
        #expect(report.loaded.count == target.stateDictKeys().count - 2)
        #expect(report.description.contains("2 missing, 1 unused"))

        let sourceValues = Dictionary(uniqueKeysWithValues: source.stateDict().map { ($0.0, $0.1.values) })
        for (name, tensor) in target.stateDict() {
            if Self.head.contains(name) {
                #expect(tensor.values == before[name], "\(name) must keep its initialization")
            } else {
                #expect(tensor.values == sourceValues[name], "\(name) must come from the file")
            }
        }
    }

    @Test func aMisshapedKeyIsAnErrorNamingTheKeyAndBothShapes() throws {
        var rng = RNG(seed: 1)
        let source = Mask2Former(Self.tinyConfig(numClasses: 5), rng: &rng)
        let target = Mask2Former(Self.tinyConfig(numClasses: 7), rng: &rng)
        let before = target.stateDict().map { $0.1.values }
        let path = Self.temporaryPath("weights.h5")
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try writeModelWeights(source.stateDict(layout: .pytorch), to: path)
        do {
            _ = try loadPretrainedWeights(into: target, path: path, ignore: [])
            Issue.record("a mis-shaped class head was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains(path))
            #expect(text.contains("sem_seg_head.predictor.class_embed.weight: the model has [8, 32], the file has [6, 32]"), "\(text)")
        }
        #expect(target.stateDict().map { $0.1.values } == before, "nothing is copied when a key is mis-shaped")
        // A plain substring pattern skips the head too.
        let report = try loadPretrainedWeights(into: target, path: path, ignore: ["class_embed"])
        #expect(report.ignored == Self.head && report.unused.isEmpty)
    }

    /// A weights file holding a NaN or an infinity is refused naming the file and the tensor (in training it would
    /// reach every gradient; in evaluation every score).
    @Test func nonFiniteWeightsAreNamed() throws {
        var rng = RNG(seed: 1)
        let source = Mask2Former(Self.tinyConfig(numClasses: 5), rng: &rng)
        let bias = try #require(source.stateDict().first { $0.0 == "sem_seg_head.predictor.class_embed.bias" }?.1)
        bias.data[2] = .nan
        let path = Self.temporaryPath("nan.h5")
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try writeModelWeights(source.stateDict(layout: .pytorch), to: path)
        let target = Mask2Former(Self.tinyConfig(numClasses: 5), rng: &rng)
        #expect { _ = try loadPretrainedWeights(into: target, path: path, ignore: [], option: "--weights") } throws: { e in
            "\(e)" == "--weights: \(path): tensor 'sem_seg_head.predictor.class_embed.bias' holds nan (value 2 of 6): the file is corrupt or "
                + "comes from a diverged run"
        }
        // Ignored tensors are not looked at.
        #expect(try loadPretrainedWeights(into: target, path: path, ignore: ["class_embed"]).ignored == Self.head)
    }

    @Test func patternsAreSubstringsOrGlobs() {
        #expect(weightsIgnorePatternMatches("class_embed", "sem_seg_head.predictor.class_embed.bias"))
        #expect(weightsIgnorePatternMatches("sem_seg_head.*.class_embed.*", "sem_seg_head.predictor.class_embed.bias"))
        #expect(!weightsIgnorePatternMatches("class_embed.*", "sem_seg_head.predictor.class_embed.bias"), "a glob matches the whole key")
        #expect(!weightsIgnorePatternMatches("", "backbone.stem.conv1.weight"))
    }

    @Test func aMissingFileOrGroupIsAnErrorNamingTheFile() throws {
        let path = Self.temporaryPath("none.h5")
        #expect(throws: CheckpointError.self) { _ = try readModelWeights(path: path) }
        do { _ = try readModelWeights(path: path) } catch { #expect("\(error)".contains(path)) }
    }

    /// A `.safetensors` file written byte by byte as the format describes: u64 header length, JSON header, data.
    static func writeSafeTensors(_ entries: [(name: String, dtype: String, shape: [Int], bytes: [UInt8])], to path: String) throws {
        var header: [String] = [#""__metadata__":{"format":"pt"}"#], body: [UInt8] = []
        for e in entries {
            header.append("\"\(e.name)\":{\"dtype\":\"\(e.dtype)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],"
                          + "\"data_offsets\":[\(body.count),\(body.count + e.bytes.count)]}")
            body += e.bytes
        }
        let json = Array(("{" + header.joined(separator: ",") + "}").utf8)
        let length = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(json.count) >> (8 * UInt64($0))) }
        try Data(length + json + body).write(to: URL(fileURLWithPath: path))
    }

    static func littleEndianBytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt32($0))) } }
    }

    @Test func safetensorsWeightsLoadDirectly() throws {
        var rng = RNG(seed: 1)
        let source = Mask2Former(Self.tinyConfig(numClasses: 5), rng: &rng)
        rng = RNG(seed: 2)
        let target = Mask2Former(Self.tinyConfig(numClasses: 5), rng: &rng)
        let path = Self.temporaryPath("weights.safetensors")
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let state = source.stateDict(layout: .pytorch)
        var entries = state.map { (name: $0.0, dtype: "F32", shape: $0.1.shape, bytes: Self.littleEndianBytes($0.1.values)) }
        // A BF16 and an F16 copy under other names, and an integer counter that is not a weight.
        entries.append((name: "extra.bf16", dtype: "BF16", shape: [3], bytes: [0x80, 0x3F, 0x00, 0xC0, 0x49, 0x40]))  // 1, -2, 3.140625
        entries.append((name: "extra.f16", dtype: "F16", shape: [2], bytes: [0x00, 0x3C, 0x01, 0x00]))                // 1, 2^-24
        entries.append((name: "backbone.stem.conv1.norm.num_batches_tracked", dtype: "I64", shape: [], bytes: [UInt8](repeating: 0, count: 8)))
        try Self.writeSafeTensors(entries, to: path)

        let read = try readSafeTensors(path: path)
        #expect(read.skipped == ["backbone.stem.conv1.norm.num_batches_tracked"])
        let byName = Dictionary(read.tensors, uniquingKeysWith: { a, _ in a })
        #expect(byName["extra.bf16"]?.values == [1, -2, 3.140625])
        #expect(byName["extra.f16"]?.values == [1, 0x1p-24])

        let report = try loadPretrainedWeights(into: target, path: path, ignore: [])
        #expect(report.missing.isEmpty && report.loaded.count == target.stateDictKeys().count)
        #expect(Set(report.unused) == ["extra.bf16", "extra.f16", "backbone.stem.conv1.norm.num_batches_tracked (not a float tensor)"])
        let sourceValues = Dictionary(uniqueKeysWithValues: source.stateDict().map { ($0.0, $0.1.values) })
        for (name, tensor) in target.stateDict() { #expect(tensor.values == sourceValues[name], "\(name)") }

        // A damaged header is an error naming the file.
        try Data([200, 0, 0, 0, 0, 0, 0, 0] + Array("{}".utf8)).write(to: URL(fileURLWithPath: path))
        #expect { _ = try readSafeTensors(path: path) } throws: { "\($0)".contains(path) && "\($0)".contains("header length") }

        // An empty tensor whose other dimensions multiply past 2^40 (concatenating q/k/v would multiply them) is refused.
        try Self.writeSafeTensors([(name: "w", dtype: "F32", shape: [0, 1 << 32, 1 << 32], bytes: [])], to: path)
        #expect { _ = try readSafeTensors(path: path) } throws: { "\($0)".contains(path) && "\($0)".contains("shape [0, 4294967296, 4294967296]") }
        #expect(Limit.elementCount(ofDeclaredShape: [0, 1 << 20, 1 << 20]) == 0)
        #expect(Limit.elementCount(ofDeclaredShape: [0, 1 << 32, 1 << 32]) == nil)
        #expect(Limit.elementCount(ofDeclaredShape: [3, -1]) == nil && Limit.elementCount(ofDeclaredShape: []) == 1)
    }

    /// Our half-precision decoding agrees with the platform's Float16 for all 65,536 bit patterns.
    @Test func float16DecodingMatchesThePlatform() {
        #if arch(x86_64) || arch(arm64)
        var mismatches = 0
        for bits in 0...UInt16.max {
            let ours = Float(float16Bits: bits), platform = Float(Float16(bitPattern: bits))
            if !(ours == platform || (ours.isNaN && platform.isNaN)) || ours.sign != platform.sign { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #endif
    }

    @Test func picklesNameTheConverterAndAFileMatchingNothingIsAnError() throws {
        var rng = RNG(seed: 1)
        let target = Mask2Former(Self.tinyConfig(numClasses: 5), rng: &rng)
        for name in ["model_final.pkl", "R-50.pth"] {
            let path = Self.temporaryPath(name)
            #expect { _ = try loadPretrainedWeights(into: target, path: path, ignore: []) } throws: { error in
                let text = "\(error)"
                return text.contains("tools/convert_pkl_to_h5.py \(path) ") && text.contains(".h5")
            }
        }
        // A readable weights file whose names are all foreign: an error, not "loaded 0, everything missing".
        let path = Self.temporaryPath("foreign.h5")
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try writeModelWeights([("encoder.layer.0.weight", Tensor([1, 2], shape: [2])), ("head.bias", Tensor([3], shape: [1]))], to: path)
        let before = target.stateDict().map { $0.1.values }
        #expect { _ = try loadPretrainedWeights(into: target, path: path, ignore: []) } throws: { error in
            "\(error)".contains("none of its 2 tensor(s) is a parameter of this model") && "\(error)".contains("'encoder.layer.0.weight'")
        }
        #expect(target.stateDict().map { $0.1.values } == before)
    }

    @Test func weightsKeysRoundTripThroughTheConfig() throws {
        let c = try MaskPilotConfig.parse(yaml: "model:\n  weights: a.h5\n  weights_ignore: ['x.*', y]\n")
        #expect(c.model.weights == "a.h5" && c.model.weightsIgnore == ["x.*", "y"])
        #expect(try MaskPilotConfig.parse(yaml: try c.yaml()) == c)
        #expect(MaskPilotConfig().model.weights == "" && MaskPilotConfig().model.weightsIgnore.isEmpty)
    }
}
