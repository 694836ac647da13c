// Tests of `model.weights`: initializing a model from a weights-only HDF5 written from another model, with
// `model.weights_ignore` skipping a class head of a different size; the reported lists; mis-shaped keys.
import Checkpoint
import Foundation
import Mask2FormerModel
import NN
import Testing
import TensorCore
import Training

@Suite struct PretrainedWeightsTests {
    static func tinyConfig(numClasses: Int) -> Mask2FormerConfig {
        var c = Mask2FormerConfig.r50(numClasses: numClasses)
        c.backbone = ResNetConfig(block: .basic, depths: [1, 1, 1, 1], widths: [16, 32, 64, 128], stemChannels: 16)
        c.pixelDecoder.convDim = 32; c.pixelDecoder.maskDim = 32; c.pixelDecoder.encoderLayers = 1
        c.pixelDecoder.encoderFeedforwardDim = 32
        c.decoder.hiddenDim = 32; c.decoder.maskDim = 32; c.decoder.numQueries = 4
        c.decoder.heads = 4; c.decoder.feedforwardDim = 32; c.decoder.decLayers = 2
        return c
    }

    static func temporaryPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("maskpilot-weights-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
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

    @Test func weightsKeysRoundTripThroughTheConfig() throws {
        let c = try MaskPilotConfig.parse(yaml: "model:\n  weights: a.h5\n  weights_ignore: ['x.*', y]\n")
        #expect(c.model.weights == "a.h5" && c.model.weightsIgnore == ["x.*", "y"])
        #expect(try MaskPilotConfig.parse(yaml: try c.yaml()) == c)
        #expect(MaskPilotConfig().model.weights == "" && MaskPilotConfig().model.weightsIgnore.isEmpty)
    }
}
