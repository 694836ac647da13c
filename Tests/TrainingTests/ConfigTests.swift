// Tests of the YAML configuration: defaults, overrides, unknown keys and type errors named by path, round trip.
// Reference behaviour: detectron2 CfgNode.merge_from_file / merge_from_list (unknown keys are errors).
import Datasets
import Foundation
import Mask2FormerModel
import TensorCore
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
        #expect(c.solver.precision == .fp32)
        #expect(try MaskPilotConfig.parse(yaml: "solver:\n  precision: bf16\n").solver.precision == .bf16)
        #expect(throws: ConfigError.self) { _ = try MaskPilotConfig.parse(yaml: "solver:\n  precision: fp16\n") }
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
        } throws: { error in "\(error)".hasPrefix("--set solver.max_iter=abc:") && "\(error)".contains("'solver.max_iter' must be a whole number, found a string instead") }
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
        // A key with an empty part used to be ignored without a word ('.', '..') or read as another key ('solver..max_iter').
        for item in [".=5", "..=x", "solver..max_iter=3", ".seed=3"] {
            #expect {
                _ = try MaskPilotConfig.parse(yaml: "seed: 1\n", overrides: [item])
            } throws: { error in "\(error)".hasPrefix("--set \(item):") && "\(error)".contains("has an empty part") }
        }
        // A NaN or infinity inside a list is named by key and source (it used to surface as Foundation's JSON error).
        #expect {
            _ = try MaskPilotConfig.parse(yaml: "solver:\n  steps: [.nan]\n", file: "n.yaml")
        } throws: { error in "\(error)".hasPrefix("n.yaml:") && "\(error)".contains("'solver.steps' must hold finite numbers") }
        #expect {
            _ = try MaskPilotConfig.parse(yaml: "seed: 1\n", overrides: ["input.crop_size=[.inf, 512]"])
        } throws: { error in "\(error)".hasPrefix("--set input.crop_size=[.inf, 512]:") && "\(error)".contains("'input.crop_size'") }
        // … and as the value of a key whose default is not a number (a string in a file, a list, a bool); `--set` gives a
        // string key its text (`stringKeysTakeSetTextLiterally`).
        #expect { _ = try MaskPilotConfig.parse(yaml: "data:\n  root: .nan\n", file: "n.yaml") } throws: { error in
            "\(error)".hasPrefix("n.yaml:") && "\(error)".contains("'data.root' must hold finite numbers")
        }
        #expect((try? MaskPilotConfig.parse(yaml: "seed: 1\n", overrides: ["data.root=.nan"]))?.data.root == ".nan")
        for item in ["solver.steps=.inf", "model.mask_piloting.enabled=.nan"] {
            let key = String(item.prefix { $0 != "=" })
            #expect {
                _ = try MaskPilotConfig.parse(yaml: "seed: 1\n", overrides: [item])
            } throws: { error in "\(error)".hasPrefix("--set \(item):") && "\(error)".contains("'\(key)' must hold finite numbers") }
        }
    }

    /// `_BASE_` (detectron2's inheritance): the base's keys first, the file's on top, relative to the file's folder,
    /// chained; a cycle, a missing base and a bad key in a base are named by file.
    @Test func baseFilesAreInherited() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("maskpilot-base-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/recipes", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func write(_ name: String, _ text: String) throws { try text.write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8) }
        try write("base.yaml", "solver:\n  max_iter: 7\n  base_learning_rate: 0.001\nmodel:\n  decoder:\n    num_queries: 50\n")
        try write("recipes/mid.yaml", "_BASE_: ../base.yaml\nsolver:\n  max_iter: 8\n")
        try write("recipes/child.yaml", "_BASE_: mid.yaml\nsolver:\n  max_iter: 9\nseed: 3\n")
        let c = try MaskPilotConfig.load(path: dir + "/recipes/child.yaml", overrides: ["solver.base_learning_rate=0.002"])
        #expect(c.solver.maxIter == 9 && c.model.decoder.numQueries == 50 && c.seed == 3 && c.solver.baseLearningRate == 0.002)
        #expect(try MaskPilotConfig.load(path: dir + "/recipes/mid.yaml").solver.maxIter == 8)

        try write("a.yaml", "_BASE_: b.yaml\nseed: 1\n")
        try write("b.yaml", "_BASE_: recipes/../a.yaml\nseed: 2\n")   // the same file by another path is a cycle too
        #expect { _ = try MaskPilotConfig.load(path: dir + "/a.yaml") } throws: { "\($0)".contains("leads back to itself") }
        try write("missing.yaml", "_BASE_: nowhere.yaml\nseed: 1\n")
        #expect { _ = try MaskPilotConfig.load(path: dir + "/missing.yaml") } throws: { error in
            "\(error)".hasPrefix(dir + "/missing.yaml: _BASE_ \(dir)/nowhere.yaml: cannot read the file")
        }
        try write("typo.yaml", "solver:\n  max_iters: 7\n")
        try write("uses-typo.yaml", "_BASE_: typo.yaml\n")
        #expect { _ = try MaskPilotConfig.load(path: dir + "/uses-typo.yaml") } throws: { error in
            "\(error)".hasPrefix(dir + "/typo.yaml:") && "\(error)".contains("unknown key 'solver.max_iters'")
        }
        // A value of the wrong type is blamed on the file that set it: the base, unless the child overrides it.
        try write("typed.yaml", "solver:\n  max_iter: many\n")
        try write("uses-typed.yaml", "_BASE_: typed.yaml\nseed: 4\n")
        #expect { _ = try MaskPilotConfig.load(path: dir + "/uses-typed.yaml") } throws: { error in
            "\(error)".hasPrefix(dir + "/typed.yaml:") && "\(error)".contains("solver.max_iter")
        }
        try write("fixes-typed.yaml", "_BASE_: typed.yaml\nsolver:\n  max_iter: 5\nseed: many\n")
        #expect { _ = try MaskPilotConfig.load(path: dir + "/fixes-typed.yaml") } throws: { error in
            "\(error)".hasPrefix(dir + "/fixes-typed.yaml:") && "\(error)".contains("'seed'")
        }
        #expect(try MaskPilotConfig.load(path: dir + "/uses-typed.yaml", overrides: ["solver.max_iter=6"]).solver.maxIter == 6)
        try write("bad-base.yaml", "_BASE_: [a.yaml]\n")
        #expect { _ = try MaskPilotConfig.load(path: dir + "/bad-base.yaml") } throws: { "\($0)".contains("_BASE_ must be the path") }
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
            #expect(c.violations().isEmpty, "\(f): \(c.violations())")
        }
        #expect(MaskPilotConfig().violations().isEmpty)
    }

    /// A Swin backbone's keys are checked under `model.backbone.swin`, and the ResNet keys are then unused.
    @Test func swinKeysAreValidated() throws {
        var c = MaskPilotConfig()
        c.model.backbone = .swin(.large)
        c.model.backbone.depths = [1]                                     // a ResNet key: unused with name swin
        #expect(c.violations().isEmpty, "\(c.violations())")
        #expect(c.model.backbone.outputChannels == [192, 384, 768, 1536])
        c.model.backbone.swin.numHeads = [6, 12, 24, 50]
        c.model.backbone.swin.windowSize = 0
        c.model.backbone.swin.dropPathRate = 1
        c.model.backbone.swin.patchSize = 2
        #expect(Set(c.violations().map(\.key)) == ["model.backbone.swin.num_heads", "model.backbone.swin.window_size",
                                                   "model.backbone.swin.drop_path_rate", "model.backbone.swin.patch_size"])
        let yaml = try MaskPilotConfig.parse(yaml: "model:\n  backbone:\n    name: swin\n    swin:\n      embed_dim: 128\n", file: "t.yaml")
        #expect(yaml.model.backbone.name == .swin && yaml.model.backbone.swin.embedDim == 128 && yaml.model.backbone.swin.depths == [2, 2, 6, 2])
        #expect(throws: ConfigError.self) { try MaskPilotConfig.parse(yaml: "model:\n  backbone:\n    name: vit\n", file: "t.yaml") }
    }

    /// Every bad value is named, all at once; run-dependent checks (ranks, dataset classes, memory) come on top.
    @Test func violationsNameEveryBadKey() {
        var c = MaskPilotConfig()
        c.model.decoder.heads = 5; c.model.decoder.decLayers = 0; c.input.cropSize = 0; c.loss.numPoints = 0
        c.data.workers = 0; c.model.backbone.depths = [1, 1]; c.solver.baseLearningRate = -1; c.solver.clipGradNorm = -0.01
        c.model.pixelDecoder.convDim = 64
        let keys = c.violations().map(\.key)
        #expect(Set(keys) == ["model.decoder.heads", "model.decoder.dec_layers", "input.crop_size", "loss.num_points", "data.workers",
                              "model.backbone.depths", "solver.base_learning_rate", "solver.clip_grad_norm",
                              "model.pixel_decoder.conv_dim"], "\(keys)")
        // The input normalization: 3 finite values, a positive std (detectron2's MODEL.PIXEL_MEAN / PIXEL_STD).
        var n = MaskPilotConfig()
        #expect(n.model.pixelNormalization == .mask2former)
        n.model.pixelMean = [1, 2]; n.model.pixelStd = [1, 0, 1]
        #expect(n.violations().map(\.key) == ["model.pixel_mean", "model.pixel_std"])
        n.model.pixelMean = [1, 2, 3]; n.model.pixelStd = [1, 1e-300, 1]   // positive, but 0 as a float32 divisor
        #expect(n.violations().map(\.key) == ["model.pixel_std"])
        let parsed = try? MaskPilotConfig.parse(yaml: "model:\n  pixel_mean: [127.5, 127.5, 127.5]\n  pixel_std: [127.5, 127.5, 127.5]\n")
        #expect(parsed?.model.pixelNormalization == PixelNormalization(mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5]))
        var d = MaskPilotConfig()
        d.solver.imsPerBatch = 6
        #expect(d.violations(worldSize: 4, memoryBytes: 0).map(\.key) == ["solver.ims_per_batch"])
        #expect(d.violations(worldSize: 3, datasetClasses: 151, memoryBytes: 0).map(\.key) == ["model.decoder.num_classes"])
        #expect(d.violations(worldSize: 3, datasetClasses: 149, memoryBytes: 0).map(\.description)
                == ["model.decoder.num_classes: 150 is more than the dataset's 149 classes (datasets/ADEChallengeData2016); set it to 149"])
        #expect(d.violations(worldSize: 3, datasetClasses: 150, memoryBytes: 0).isEmpty)
        // The memory lower bound: 512² crops of R50, 2 images per rank, is about 0.7 GB; 1 GB passes, 0.5 GB does not.
        let need = d.activationBytesLowerBound(imagesPerRank: 2)
        #expect(need > 5e8 && need < 1e9, "\(need)")
        #expect(d.violations(worldSize: 3, memoryBytes: 1_000_000_000).isEmpty)
        #expect(d.violations(worldSize: 3, memoryBytes: 500_000_000).map(\.key) == ["input.crop_size"])
        // The decoder's attention: 100,000 queries on 32² crops need terabytes (they ran into an allocation failure).
        var q = MaskPilotConfig()
        q.model.decoder.numQueries = 100_000; q.input.cropSize = 32
        #expect(q.violations().isEmpty)
        #expect(q.decoderAttentionBytesLowerBound(imagesPerRank: 1) > 1e12)
        #expect(q.violations(worldSize: 1, memoryBytes: 24 << 30).map(\.description).first?
                    .hasPrefix("model.decoder.num_queries: 100000 queries (8 heads, 9 decoder layers) (16 image(s) per rank) need at least") == true,
                "\(q.violations(worldSize: 1, memoryBytes: 24 << 30))")
        #expect(d.decoderAttentionBytesLowerBound(imagesPerRank: 2) < 1e8)   // the default's: small beside its backbone
    }

    /// Values far beyond any real run are refused by key before anything multiplies or converts them (they used to
    /// overflow an Int: in the memory bound, a tensor's element count, the LSJ resize, the bucket size, …).
    @Test func hugeValuesAreRefused() {
        var c = MaskPilotConfig()
        c.model.decoder.numQueries = 1 << 62; c.input.minScale = 1e30; c.input.maxScale = 1e30; c.loss.oversampleRatio = 1e300
        c.distributed.bucketMb = 1e300; c.input.minSizeTest = 1 << 62; c.input.maxSizeTest = 1 << 62; c.solver.maxIter = 1 << 62
        c.loss.numPoints = Int.max
        #expect(Set(c.violations().map(\.key)) == ["model.decoder.num_queries", "input.max_scale", "loss.oversample_ratio", "distributed.bucket_mb",
                                                   "input.min_size_test", "input.max_size_test", "solver.max_iter", "loss.num_points"],
                "\(c.violations())")
        var swin = MaskPilotConfig()
        swin.model.backbone.name = .swin
        for size in [1 << 32, 65536, 65] {    // 65536 overflowed window_size⁴ in the relative-position index
            swin.model.backbone.swin.windowSize = size
            #expect(swin.violations().map(\.key) == ["model.backbone.swin.window_size"], "\(size)")
            #expect(swin.violations(worldSize: 1).map(\.key) == ["model.backbone.swin.window_size"], "\(size)")
        }
        swin.model.backbone.swin.windowSize = 64
        #expect(swin.violations().isEmpty)
        // A bottleneck ResNet's blocks are width ÷ 4 wide inside: widths below 4 would build 0-channel convolutions.
        var thin = MaskPilotConfig()
        thin.model.backbone.widths = [2, 512, 1024, 2048]
        #expect(thin.violations().map(\.key) == ["model.backbone.widths"])
        thin.model.backbone.block = .basic
        #expect(thin.violations().isEmpty)
        // Within every bound but too large for the machine: the parameters' section is named.
        var wide = MaskPilotConfig()
        wide.model.decoder.hiddenDim = Limit.width; wide.model.pixelDecoder.convDim = Limit.width
        #expect(wide.violations().isEmpty)
        #expect(wide.violations(worldSize: 1, memoryBytes: 24 << 30).map(\.key) == ["model.decoder"])
        // MSDeformAttn's sampling offsets grow with the points (2^20 points: about 1.9 TB of parameters): named for
        // training, and for inference (eval, predict, model commands) by the parameters alone.
        var points = MaskPilotConfig()
        points.model.pixelDecoder.encoderPoints = 1 << 20
        #expect(points.violations().isEmpty)
        #expect(points.violations(worldSize: 1, memoryBytes: 24 << 30).map(\.key) == ["model.pixel_decoder"])
        #expect(points.inferenceViolations(memoryBytes: 24 << 30).map(\.key) == ["model.pixel_decoder"])
        #expect(MaskPilotConfig().inferenceViolations(memoryBytes: 1 << 30).isEmpty)
    }

    /// YAML a configuration never needs is refused before it is expanded: alias bombs, duplicate keys, nothing at all.
    @Test func hostileYAMLIsRefused() throws {
        var bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        for i in 1...9 { bomb.append("a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ") + "]") }
        #expect { _ = try MaskPilotConfig.parse(yaml: bomb.joined(separator: "\n"), file: "b.yaml") } throws: { "\($0)".contains("more than 100000 values (through aliases") }
        // A few aliases are fine (then the unknown key is what is wrong).
        #expect { _ = try MaskPilotConfig.parse(yaml: "x: &w [1, 2]\ny: *w\n", file: "a.yaml") } throws: { "\($0)".contains("unknown key '") }
        #expect { _ = try MaskPilotConfig.parse(yaml: "seed: 1\nseed: 2\n", file: "d.yaml") } throws: {
            "\($0)" == "d.yaml: key 'seed' appears twice (the second at line 2)"
        }
        #expect { _ = try MaskPilotConfig.parse(yaml: "solver:\n  gamma: 0.1\n  gamma: 0.2\n", file: "d.yaml") } throws: {
            "\($0)".contains("key 'solver.gamma' appears twice")
        }
        for empty in ["", "# nothing\n", "\n\n"] {
            #expect { _ = try MaskPilotConfig.parse(yaml: empty, file: "e.yaml") } throws: { "\($0)".contains("holds no settings") }
        }
        // Numbers are checked against the schema's types, naming the key.
        #expect { _ = try MaskPilotConfig.parse(yaml: "input:\n  crop_size: 96.5\n", file: "n.yaml") } throws: {
            "\($0)" == "n.yaml: 'input.crop_size' must be a whole number, got 96.5"
        }
        #expect { _ = try MaskPilotConfig.parse(yaml: "seed: -1\n", file: "n.yaml") } throws: { "\($0)".contains("'seed' must be a whole number ≥ 0") }
        #expect(try MaskPilotConfig.parse(yaml: "loss:\n  class_weight: 2.5\n").loss.classWeight == 2.5)
        #expect(try MaskPilotConfig.parse(yaml: "distributed:\n  bucket_mb: 12.5\n").distributed.bucketMb == 12.5)
        // Deep nesting is refused before libyaml recurses into it (thousands of levels overflowed the stack), in a file,
        // in block style and in --set.
        let deep = "model: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        #expect { _ = try MaskPilotConfig.parse(yaml: deep, file: "deep.yaml") } throws: {
            "\($0)" == "deep.yaml: nests 5001 levels deep (a configuration needs 4; at most 64)"
        }
        let block = (0..<100).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " 1\n"
        #expect { _ = try MaskPilotConfig.parse(yaml: block, file: "b.yaml") } throws: { "\($0)".hasPrefix("b.yaml: nests 100 levels deep") }
        #expect { _ = try MaskPilotConfig.parse(yaml: "seed: 1\n", overrides: ["solver.steps=" + String(repeating: "[", count: 70)]) } throws: {
            "\($0)".hasPrefix("--set solver.steps=[[[") && "\($0)".contains("nests 71 levels deep")
        }
        // Brackets inside quotes (also across lines), comments, plain scalars and block scalars are text.
        let brackets = String(repeating: "[", count: 70)
        #expect(try MaskPilotConfig.parse(yaml: "data:  # \(brackets)\n  root: '\(brackets)'\n  test_split: \"it's \(brackets)\"\n").data.root == brackets)
        #expect(try MaskPilotConfig.parse(yaml: "data:\n  root: \"a\n    \(brackets)\"\n").data.root == "a \(brackets)")
        #expect(try MaskPilotConfig.parse(yaml: "data:\n  root: |\n    \(brackets)\n    \(brackets)\n  test_split: v\n").data.testSplit == "v")
        #expect(try MaskPilotConfig.parse(yaml: "data:\n  root: a\(brackets)\n").data.root == "a\(brackets)")
        // …but they do not hide nesting that follows: '? ' and '- ' open levels, and a bracket in a plain scalar opens none.
        #expect { _ = try MaskPilotConfig.parse(yaml: String(repeating: "? ", count: 100) + "a\n", file: "q.yaml") } throws: {
            "\($0)".hasPrefix("q.yaml: nests 101 levels deep")
        }
        let afterPlain = "x: a[\n" + (0..<100).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " 1\n"
        #expect { _ = try MaskPilotConfig.parse(yaml: afterPlain, file: "p.yaml") } throws: { "\($0)".hasPrefix("p.yaml: nests 10") }
        let flowPlain = "x: [" + String(repeating: "a[", count: 100) + "\n"
        #expect { _ = try MaskPilotConfig.parse(yaml: flowPlain, file: "f.yaml") } throws: { "\($0)".hasPrefix("f.yaml: nests 10") }
        #expect(try MaskPilotConfig.parse(yaml: try MaskPilotConfig().yaml()) == MaskPilotConfig())   // the full schema passes
        // A key that is a list or mapping (YAML's `? [a, b]`) is refused, not a crash in the YAML library.
        #expect { _ = try MaskPilotConfig.parse(yaml: "? [a, b]\n: 5\n", file: "k.yaml") } throws: {
            "\($0)" == "k.yaml: a key at the top level is a YAML list, not a name (line 1)"
        }
        #expect { _ = try MaskPilotConfig.parse(yaml: "solver:\n  ? {a: 1}\n  : 2\n", file: "k.yaml") } throws: {
            "\($0)".hasPrefix("k.yaml: a key under 'solver' is a YAML mapping, not a name")
        }
        // Timestamps and !!binary stay text (a date-like split name is a name; text for a number is a type error by key).
        #expect(try MaskPilotConfig.parse(yaml: "data:\n  train_split: 2017-01-01\n  test_split: 2017-01-02\n").data.testSplit == "2017-01-02")
        #expect { _ = try MaskPilotConfig.parse(yaml: "seed: !!binary aGVsbG8=\n", file: "t.yaml") } throws: { "\($0)".hasPrefix("t.yaml: 'seed' must be") }
        // Integers stay exact (through a Double, 2⁶³ − 1 became 2⁶³); unsigned ones reach 2⁶⁴ − 1.
        #expect(try MaskPilotConfig.parse(yaml: "seed: 9223372036854775807\n").seed == 9_223_372_036_854_775_807)
        #expect(try MaskPilotConfig.parse(yaml: "seed: 18446744073709551615\n").seed == UInt64.max)
        #expect(try MaskPilotConfig.parse(yaml: "solver:\n  max_iter: 9007199254740993\n").solver.maxIter == 9_007_199_254_740_993)
        // A mapping under a value key is the argument's error.
        #expect { _ = try MaskPilotConfig.parse(yaml: "{}", file: "the defaults", overrides: ["seed.x=1"]) } throws: {
            "\($0)" == "--set seed.x=1: 'seed' takes a value, not a mapping (it has no keys under it)"
        }
    }

    /// `input.crop_size` is one number (square) or `[height, width]`; the latter only for the short-edge crop formats.
    @Test func rectangularCrops() throws {
        let c = try MaskPilotConfig.parse(yaml: "data:\n  format: cityscapes-semantic\ninput:\n  crop_size: [512, 1024]\n")
        #expect(c.input.cropSize == CropSize(height: 512, width: 1024))
        #expect(try MaskPilotConfig.parse(yaml: try c.yaml()) == c)
        #expect(try c.flattened()["input.crop_size"] == "[512, 1024]")
        #expect(try MaskPilotConfig.parse(yaml: "seed: 1\n").flattened()["input.crop_size"] == "512")   // squares stay one number
        #expect(c.violations().isEmpty)
        var coco = c
        coco.data.format = .cocoInstance
        #expect(coco.violations().map(\.key) == ["input.crop_size"])
        #expect { _ = try MaskPilotConfig.parse(yaml: "input:\n  crop_size: [1, 2, 3]\n", file: "r.yaml") } throws: { "\($0)".contains("input.crop_size") }
        var semantic = c
        semantic.input.singleCategoryMaxArea = 0.75
        #expect(semantic.violations().isEmpty)
        semantic.data.format = .cityscapesInstance
        #expect(semantic.violations().map(\.key) == ["input.single_category_max_area"])
    }

    @Test func lsjScalesMPLossWeightAndGradientSplitAreValidated() throws {
        var c = MaskPilotConfig()
        c.input.minScale = 0.5; c.input.maxScale = 2
        #expect(c.violations().isEmpty)
        c.input.minScale = 3
        c.model.maskPiloting.lossWeight = -1
        c.train.gradientSplitPeriod = -1
        #expect(Set(c.violations().map(\.key)) == ["input.min_scale", "model.mask_piloting.loss_weight", "train.gradient_split_period"])
        #expect(try MaskPilotConfig.parse(yaml: "input:\n  min_scale: 0.5\n  max_scale: 1.5\n").input.maxScale == 1.5)
        #expect(try MaskPilotConfig.parse(yaml: "train:\n  gradient_split_period: 50\n").train.gradientSplitPeriod == 50)
    }
    /// `sem-seg`'s keys: class names must match `model.decoder.num_classes`, the ignore value must be a byte that is no
    /// class's stored value, and on any other format the keys are refused rather than silently unused.
    @Test func semSegKeysAreValidated() throws {
        let c = try MaskPilotConfig.parse(yaml: """
            data:
              format: sem-seg
              classes: [road, car, sky]
              ignore_label: 0
              reduce_zero_label: true
            model:
              decoder:
                num_classes: 3
            """)
        #expect(c.violations().isEmpty && c.data.classes == ["road", "car", "sky"] && c.data.ignoreLabel == 0 && c.data.reduceZeroLabel)
        #expect(c.data.labelEncoding(numClasses: 3) == LabelEncoding(numClasses: 3, ignoreLabel: 0, reduceZeroLabel: true))
        #expect(try c.flattened()["data.ignore_label"] == "0")
        var wrong = c
        wrong.model.decoder.numClasses = 4
        #expect(wrong.violations().map(\.description) == ["data.classes: names 3 classes but model.decoder.num_classes is 4"])
        wrong = c
        wrong.data.reduceZeroLabel = false; wrong.data.ignoreLabel = 1
        #expect(wrong.violations().map(\.key) == ["model.decoder.num_classes"])
        #expect(wrong.violations().first?.problem.contains("ignore value 1 is the stored value of class 1 of 3") == true)
        wrong.data.ignoreLabel = 300
        #expect(wrong.violations().map(\.key) == ["data.ignore_label"])
        wrong = c
        wrong.data.format = .ade20k
        #expect(wrong.violations().map(\.key) == ["data.classes", "data.ignore_label", "data.reduce_zero_label"])
        #expect(wrong.violations().first?.problem.contains("applies to data.format sem-seg only") == true)
        var plain = MaskPilotConfig()
        plain.data.format = .semSeg
        #expect(plain.violations().isEmpty)   // 150 classes stored as 0…149, 255 ignored
    }
    /// String keys take `--set` text literally unless YAML reads it as a string, so the layout patterns need no quotes
    /// on the command line; in a file an unquoted `{split}` is a YAML mapping, refused with the fix.
    @Test func stringKeysTakeSetTextLiterally() throws {
        let c = try MaskPilotConfig.parse(yaml: "data:\n  format: coco-instance\n",
                                          overrides: ["data.image_folder={split}", "data.annotation_file={split}/_annotations.coco.json",
                                                      "data.root=2017", "data.label_folder=\"quoted\""])
        #expect(c.data.imageFolder == "{split}" && c.data.annotationFile == "{split}/_annotations.coco.json")
        #expect(c.data.root == "2017" && c.data.labelFolder == "quoted")
        #expect(try MaskPilotConfig.parse(yaml: "data:\n  image_folder: \"{split}/rgb\"\n").data.imageFolder == "{split}/rgb")
        #expect { _ = try MaskPilotConfig.parse(yaml: "data:\n  image_folder: {split}\n", file: "c.yaml") } throws: { e in
            "\(e)".hasPrefix("c.yaml: 'data.image_folder' must be a string, got a YAML mapping: quote")
        }
        #expect(throws: ConfigError.self) { _ = try MaskPilotConfig.parse(yaml: "seed: 1\n", overrides: ["seed={split}"]) }
    }

    /// `data.train_split` is one split or a list (detectron2's DATASETS.TRAIN tuple): written back the way it was given,
    /// a number is a split name, `--set` takes one name literally and a YAML list as a list; empty names are refused.
    @Test func trainSplitIsANameOrAList() throws {
        let one = try MaskPilotConfig.parse(yaml: "data:\n  train_split: train2017\n")
        #expect(one.data.trainSplit.names == ["train2017"] && one.data.trainSplit.description == "train2017")
        #expect(try one.flattened()["data.train_split"] == "train2017")
        let two = try MaskPilotConfig.parse(yaml: "data:\n  train_split: [train, extra]\n")
        #expect(two.data.trainSplit == SplitNames(["train", "extra"]) && two.violations().isEmpty)
        #expect(try two.flattened()["data.train_split"] == "[train, extra]")
        #expect(try MaskPilotConfig.parse(yaml: try two.yaml()) == two)
        #expect(try MaskPilotConfig.parse(yaml: "data:\n  train_split: 2017\n").data.trainSplit.names == ["2017"])
        let set = try MaskPilotConfig.parse(yaml: "seed: 1\n", overrides: ["data.train_split=[a, 2017]"])
        #expect(set.data.trainSplit.names == ["a", "2017"])
        #expect(try MaskPilotConfig.parse(yaml: "seed: 1\n", overrides: ["data.train_split=007"]).data.trainSplit.names == ["007"])
        #expect(try MaskPilotConfig.parse(yaml: "seed: 1\n", overrides: ["data.train_split={split}"]).data.trainSplit.names == ["{split}"])
        #expect { _ = try MaskPilotConfig.parse(yaml: "data:\n  train_split: {a: 1}\n", file: "m.yaml") } throws: { e in
            "\(e)" == "m.yaml: 'data.train_split' takes a value, not a mapping (it has no keys under it)"
        }
        for bad in ["[]", "[a, \"\"]", "\"\""] {
            let c = try MaskPilotConfig.parse(yaml: "data:\n  train_split: \(bad)\n")
            #expect(c.violations().map(\.key) == ["data.train_split"], "\(bad)")
        }
        var many = MaskPilotConfig()
        many.data.trainSplit = SplitNames((0...TrainingData.maxSplits).map { "s\($0)" })
        #expect(many.violations().map(\.description) == ["data.train_split: lists 256 splits; at most 255"])
    }

    /// `eval.tta` (Mask2Former's TEST.AUG): semantic formats only, the format's sizes unless given.
    @Test func testTimeAugmentationKeys() throws {
        var c = MaskPilotConfig()
        c.eval.tta = true
        #expect(c.violations().isEmpty)
        #expect(TestTimeAugmentation(config: c) == .ade20k)
        c.eval.ttaMinSizes = [300, 600]; c.eval.ttaMaxSize = 1000; c.eval.ttaFlip = false
        #expect(TestTimeAugmentation(config: c) == TestTimeAugmentation(minSizes: [300, 600], maxSize: 1000, flip: false))
        c.data.format = .cityscapesSemantic; c.eval.ttaMinSizes = []; c.eval.ttaMaxSize = 0
        #expect(TestTimeAugmentation(config: c)?.minSizes == TestTimeAugmentation.cityscapes.minSizes)
        c.data.format = .cocoPanoptic
        #expect(c.violations().map(\.key) == ["eval.tta"])
        c.data.format = .ade20k; c.eval.ttaMinSizes = [0]
        #expect(c.violations().map(\.key) == ["eval.tta_min_sizes"])
        c.eval.tta = false
        #expect(TestTimeAugmentation(config: c) == nil)
    }

    /// Which differing keys change the model the weights belong to: resume refuses `freeze_at` (the optimizer state
    /// would not match) but inference does not warn about it; the initial-weights keys never count.
    @Test func modelChangesForResumeAndInference() {
        let diff = ["model.backbone.freeze_at", "model.weights", "model.decoder.num_queries", "solver.max_iter"]
        #expect(modelChanges(diff) == ["model.backbone.freeze_at", "model.decoder.num_queries"])
        #expect(modelChanges(diff, inference: true) == ["model.decoder.num_queries"])
    }

    /// A rank's compute threads: train.threads, else OMP_NUM_THREADS (at most Limit.threads, else an error naming it),
    /// else the CPUs ÷ the ranks on the node.
    @Test func computeThreadsComeFromTheConfigTheEnvironmentOrTheCPUs() throws {
        #expect(try computeThreads(configured: 3, environment: ["OMP_NUM_THREADS": "8"], availableCPUs: 16) == 3)
        #expect(try computeThreads(configured: 0, environment: ["OMP_NUM_THREADS": " 8 "], availableCPUs: 16) == 8)
        #expect(try computeThreads(configured: 0, environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "4"], availableCPUs: 16) == 4)
        #expect(try computeThreads(configured: 0, environment: ["OMP_NUM_THREADS": "zero"], availableCPUs: 2) == 2)
        #expect { try computeThreads(configured: 0, environment: ["OMP_NUM_THREADS": "3000000000"], availableCPUs: 2) } throws: {
            "\($0)".contains("OMP_NUM_THREADS=3000000000 asks for more compute threads per rank than \(Limit.threads)")
        }
    }
}
