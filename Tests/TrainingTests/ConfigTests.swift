// Tests of the YAML configuration: defaults, overrides, unknown keys and type errors named by path, round trip.
// Reference behaviour: detectron2 CfgNode.merge_from_file / merge_from_list (unknown keys are errors).
import Foundation
import Mask2FormerModel
import Testing
import Training

@Suite struct ConfigTests {
    @Test func defaultsAndOverrides() throws {
        let c = try MaskPilotConfig.parse(yaml: """
            model:
              decoder:
                num_queries: 50
              mask_piloting:
                enabled: true
                point_noise: 0.2
            solver:
              base_learning_rate: 1e-4
              steps: [10, 20]
            """, overrides: ["model.decoder.num_classes=133", "solver.schedule=multistep"])
        #expect(c.model.decoder.numQueries == 50 && c.model.decoder.numClasses == 133)
        #expect(c.model.maskPiloting.enabled && c.model.maskPiloting.pointNoise == 0.2)
        #expect(c.solver.baseLearningRate == 1e-4 && c.solver.steps == [10, 20] && c.solver.schedule == .multistep)
        #expect(c.model.decoder.hiddenDim == 256 && c.loss.numPoints == 12544)   // untouched defaults
        #expect(c.model.pixelDecoder.name == .msdeformattn)
        let fpn = try MaskPilotConfig.parse(yaml: "model:\n  pixel_decoder:\n    name: fpn\n")
        #expect(fpn.model.pixelDecoder.name == .fpn)
        #expect(throws: ConfigError.self) { _ = try MaskPilotConfig.parse(yaml: "model:\n  pixel_decoder:\n    name: unet\n") }
        #expect(throws: ConfigError.self) { _ = try MaskPilotConfig.parse(yaml: "model:\n  mask_piloting:\n    mode: shift\n") }
        let skip = try MaskPilotConfig.parse(yaml: "data:\n  format: coco-panoptic\n  on_bad_sample: skip\n")
        #expect(skip.data.format == .cocoPanoptic && skip.data.onBadSample == .skip)
        #expect(throws: ConfigError.self) { _ = try MaskPilotConfig.parse(yaml: "data:\n  on_bad_sample: ignore\n") }
    }

    @Test func unknownKeyNamesItsPathAndFile() {
        #expect {
            _ = try MaskPilotConfig.parse(yaml: "model:\n  decoder:\n    num_querys: 5\n", file: "x.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("x.yaml:") && text.contains("'model.decoder.num_querys'") && text.contains("num_queries")
        }
        #expect(throws: ConfigError.self) { _ = try MaskPilotConfig.parse(yaml: "sovler: {}\n") }
        #expect(throws: ConfigError.self) { _ = try MaskPilotConfig.parse(yaml: "seed: 1", overrides: ["model.nope=3"]) }
    }

    /// A bad `--set` value is reported against the `--set` argument, not the config file; a missing '=' says how to write it.
    @Test func overrideErrorsNameTheSetArgument() {
        #expect {
            _ = try MaskPilotConfig.parse(yaml: "seed: 1\n", file: "z.yaml", overrides: ["solver.max_iter=abc"])
        } throws: { error in "\(error)".hasPrefix("--set solver.max_iter=abc:") && "\(error)".contains("'solver.max_iter' must be Int") }
        // A bad value in the file itself is still the file's.
        #expect {
            _ = try MaskPilotConfig.parse(yaml: "solver:\n  max_iter: abc\n", file: "z.yaml", overrides: ["seed=3"])
        } throws: { error in "\(error)".hasPrefix("z.yaml:") }
        #expect {
            _ = try MaskPilotConfig.parse(yaml: "seed: 1\n", overrides: ["solver.max_iter"])
        } throws: { error in "\(error)".hasPrefix("--set solver.max_iter:") && "\(error)".contains("'=' between the key and the value") }
        #expect {
            _ = try MaskPilotConfig.parse(yaml: "seed: 1\n", overrides: ["model.nope=3"])
        } throws: { error in "\(error)".hasPrefix("--set model.nope=3:") && "\(error)".contains("unknown key 'model.nope'") }
    }

    @Test func typeErrorsNameThePath() {
        #expect {
            _ = try MaskPilotConfig.parse(yaml: "model:\n  decoder:\n    num_queries: many\n", file: "y.yaml")
        } throws: { error in "\(error)".contains("model.decoder.num_queries") && "\(error)".hasPrefix("y.yaml:") }
        #expect(throws: ConfigError.self) { _ = try MaskPilotConfig.parse(yaml: "model: 3\n") }
        #expect(throws: ConfigError.self) { _ = try MaskPilotConfig.parse(yaml: "model: [\n") }
    }

    @Test func roundTripAndHash() throws {
        var c = MaskPilotConfig()
        c.model.backbone = .standard(depth: 18)
        c.model.backbone.strideInReduction = true
        c.seed = 7
        let again = try MaskPilotConfig.parse(yaml: try c.yaml())
        #expect(again == c)
        #expect(try again.hash() == c.hash())
        c.seed = 8
        #expect(try again.hash() != c.hash())
    }

    /// Every shipped config loads (the repository's configs/ folder, found from this file's location).
    @Test func shippedConfigsLoad() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("configs")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 8, "\(files)")
        for f in files {
            let c = try MaskPilotConfig.load(path: dir.appendingPathComponent(f).path)
            if f.hasPrefix("mpformer-") { #expect(c.model.maskPiloting.enabled, "\(f)") }
            if f.hasPrefix("mask2former-") { #expect(!c.model.maskPiloting.enabled, "\(f)") }
        }
    }
}
