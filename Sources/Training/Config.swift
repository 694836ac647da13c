// MaskPilot's configuration: typed sections with defaults, read from YAML with unknown keys rejected by path.
// Corresponds to detectron2's CfgNode (merge_from_file / merge_from_list) with Mask2Former's keys (docs/model.md#training-recipe).
import Foundation
import Kernels
import Mask2FormerModel
import TensorCore
import Yams

/// Loss weights and point sampling (docs/model.md#criterion, #point-sampling; `MODEL.MASK_FORMER.*` in the reference).
public struct LossConfig: Sendable, Equatable, Codable {
    public var classWeight: Double = 2
    public var maskWeight: Double = 5
    public var diceWeight: Double = 5
    public var noObjectWeight: Double = 0.1
    /// `TRAIN_NUM_POINTS`.
    public var numPoints = 12544
    public var oversampleRatio: Double = 3
    public var importanceSampleRatio: Double = 0.75
    public init() {}
}

/// Optimizer and schedule (docs/model.md#optimizer, #schedules; `SOLVER.*`).
public struct SolverConfig: Sendable, Equatable, Codable {
    public enum Schedule: String, Sendable, Codable { case poly, multistep }
    /// Global batch (all ranks together).
    public var imsPerBatch = 16
    /// Micro-batches per optimizer step when a rank cannot hold its share at once: each rank runs
    /// `ims_per_batch ÷ ranks ÷ accumulate` images per forward/backward and averages the gradients.
    public var accumulate = 1
    public var baseLearningRate: Double = 1e-4
    public var weightDecay: Double = 0.05
    public var weightDecayNorm: Double = 0
    public var weightDecayEmbed: Double = 0
    public var backboneMultiplier: Double = 0.1
    /// Full-model gradient clipping (L2 norm).
    public var clipGradNorm: Double = 0.01
    public var maxIter = 160_000
    public var schedule: Schedule = .poly
    public var polyPower: Double = 0.9
    /// Multi-step milestones and factor.
    public var steps: [Int] = []
    public var gamma: Double = 0.1
    public var warmupIters = 0
    public var warmupFactor: Double = 1
    /// The operands of the model's matrix products (matmul, linear, conv, attention): `fp32`, or `bf16` (rounded to
    /// bfloat16, accumulated in fp32 by oneDNN; master weights, gradients, optimizer state, norms, softmax, losses
    /// and the matcher stay fp32). docs/perf.md#bf16.
    public var precision: GEMMPrecision = .fp32
    public init() {}
}

/// Training input geometry (docs/model.md#augmentation): the square crop the training images are padded/cropped to.
public struct InputConfig: Sendable, Equatable, Codable {
    /// Training crop (`INPUT.CROP.SIZE` / LSJ `IMAGE_SIZE`): one number for a square (ADE20K 512, COCO LSJ 1024) or
    /// `[height, width]` (Cityscapes `[512, 1024]`). COCO's LSJ crop is square.
    public var cropSize: CropSize = 512
    /// Short-edge choices of the resize-and-crop recipes (`INPUT.MIN_SIZE_TRAIN`, ADE20K and Cityscapes); empty takes
    /// the format's default (ADE20K `int(x·0.1·512)`, Cityscapes `int(x·0.1·1024)`, x = 5…20).
    public var minSizeTrain: [Int] = []
    /// Longest-edge cap of that resize (`INPUT.MAX_SIZE_TRAIN`); 0 takes the format's default (ADE20K 2048,
    /// Cityscapes 4096).
    public var maxSizeTrain = 0
    /// The large-scale-jitter scale range (`INPUT.MIN_SCALE` / `MAX_SCALE` of Mask2Former's COCO LSJ recipe): each image
    /// is fitted into `crop_size · U(min_scale, max_scale)`.
    public var minScale = 0.1
    public var maxScale = 2.0
    /// `INPUT.CROP.SINGLE_CATEGORY_MAX_AREA` of the semantic recipes: crops are redrawn (up to 10 times) while one
    /// class covers this share or more of the crop; 1.0 (Mask2Former's value) turns the rule off.
    public var singleCategoryMaxArea = 1.0
    /// Test-time resize (`INPUT.MIN_SIZE_TEST` / `MAX_SIZE_TEST`): shortest edge and longest-edge cap; 0 takes the
    /// data format's default (ADE20K 512 / 2048, COCO 800 / 1333).
    public var minSizeTest = 0
    public var maxSizeTest = 0
    public init() {}
}

/// A training crop: `height × width`, written as one number when square and as `[height, width]` otherwise.
public struct CropSize: Sendable, Equatable, Codable, ExpressibleByIntegerLiteral, CustomReflectable {
    public var height: Int, width: Int
    public init(height: Int, width: Int) { self.height = height; self.width = width }
    public init(integerLiteral side: Int) { self.init(height: side, width: side) }
    public var isSquare: Bool { height == width }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let side = try? c.decode(Int.self) { self.init(integerLiteral: side); return }
        guard let pair = try? c.decode([Int].self), pair.count == 2 else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "must be a whole number or [height, width]")
        }
        self.init(height: pair[0], width: pair[1])
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if isSquare { try c.encode(height) } else { try c.encode([height, width]) }
    }
    /// `512` or `[512, 1024]`, as the YAML writes it.
    public var description: String { isSquare ? "\(height)" : "[\(height), \(width)]" }
    /// A leaf of the configuration schema (`input.crop_size`), not a mapping of its fields.
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

/// Where the data comes from and how it is loaded (`data.*`).
public struct DataConfig: Sendable, Equatable, Codable {
    public enum Format: String, Sendable, Codable {
        case cocoInstance = "coco-instance", cocoPanoptic = "coco-panoptic", ade20k
        case cityscapesSemantic = "cityscapes-semantic", cityscapesInstance = "cityscapes-instance"
        case cityscapesPanoptic = "cityscapes-panoptic"
        /// Any semantic segmentation dataset in the folder layout `images/SPLIT/*` + `annotations/SPLIT/<stem>.png`,
        /// with `data.classes`, `data.ignore_label` and `data.reduce_zero_label` (detectron2's `load_sem_seg`).
        case semSeg = "sem-seg"
    }
    public enum BadSample: String, Sendable, Codable { case error, skip }
    public var format: Format = .ade20k
    /// Dataset root (COCO: holds `annotations/` and the image folders; ADE20K: holds ADEChallengeData2016).
    public var root = "datasets/ADEChallengeData2016"
    /// The split trained on, or a list of splits trained as one dataset (detectron2's `DATASETS.TRAIN` tuple):
    /// `train_split: [train, extra]`. Listed splits must have the same classes (COCO: the same `categories`).
    public var trainSplit: SplitNames = "training"
    public var testSplit = "validation"
    /// Where a split's files are, for `coco-instance`, `coco-panoptic` and `sem-seg` (detectron2's
    /// `register_coco_instances(json_file, image_root)`): paths under `data.root` (or absolute) in which `{split}`
    /// stands for the split's name; empty takes the format's layout (the table in docs/data.md). `annotation_file`:
    /// the COCO JSON; `image_folder`: the images; `label_folder`: COCO panoptic's segment PNGs or sem-seg's label PNGs.
    public var annotationFile = ""
    public var imageFolder = ""
    public var labelFolder = ""
    /// `sem-seg` only: the class names, one per class (`model.decoder.num_classes` of them); empty names them
    /// `class 0`, `class 1`, … (detectron2's `stuff_classes`).
    public var classes: [String] = []
    /// `sem-seg` only: the label-PNG value that marks pixels without a label (detectron2's `ignore_label`).
    public var ignoreLabel = 255
    /// `sem-seg` only: label-PNG value 0 is unlabeled and value k is class k − 1 (mmsegmentation's
    /// `reduce_zero_label`, ADE20K's convention); otherwise value k is class k.
    public var reduceZeroLabel = false
    /// `coco-instance` and `cityscapes-instance` training: leave out the images without an annotation that is not a
    /// crowd region (a Cityscapes group region), as detectron2 does by default (`DATALOADER.FILTER_EMPTY_ANNOTATIONS`;
    /// COCO train2017 keeps 117,266 of 118,287 images). Evaluation always scores every image.
    public var filterEmptyAnnotations = true
    /// A corrupt image or bad annotation stops the run (`error`) or is skipped, counted and reported
    /// at the end of the epoch (`skip`).
    public var onBadSample: BadSample = .error
    /// Decode/augment worker threads per rank, and batches kept ready ahead.
    public var workers = 2
    public var prefetch = 2
    public init() {}
}

/// One split name, or a list of them (`data.train_split`): written as a string when one, as `[a, b]` otherwise.
public struct SplitNames: Sendable, Equatable, Codable, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, CustomStringConvertible,
                          CustomReflectable {
    /// At least one name, none empty (ConfigValidation refuses the rest).
    public var names: [String]
    public init(_ names: [String]) { self.names = names }
    public init(stringLiteral name: String) { self.init([name]) }
    public init(arrayLiteral names: String...) { self.init(names) }

    /// A name as YAML may read it: text, or a whole number (`train_split: 2017` is the split "2017").
    struct Name: Decodable {
        let text: String
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { text = s } else { text = String(try c.decode(Int.self)) }
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let name = try? c.decode(Name.self) { self.init([name.text]); return }
        guard let names = try? c.decode([Name].self) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "must be a split name or a list of split names")
        }
        self.init(names.map(\.text))
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if names.count == 1 { try c.encode(names[0]) } else { try c.encode(names) }
    }
    /// `train` or `[train, extra]`, as the YAML writes it.
    public var description: String { names.count == 1 ? names[0] : "[" + names.joined(separator: ", ") + "]" }
    /// A leaf of the configuration schema (`data.train_split`), not a mapping of its fields.
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

/// Data parallelism (`distributed.*`).
public struct DistributedConfig: Sendable, Equatable, Codable {
    /// Gradient all-reduce bucket size in MB (PyTorch DDP's bucket_cap_mb).
    public var bucketMb: Double = 25
    /// Every this many steps the ranks compare a hash of their parameters (0 = never).
    public var checkPeriod = 100
    public init() {}
}

/// Checkpointing (`checkpoint.*`).
public struct CheckpointConfig: Sendable, Equatable, Codable {
    /// Save every this many iterations (0 = only at the end and on a stop signal).
    public var period = 5000
    /// Newest checkpoint files kept in the output folder (0 = every one).
    public var keep = 3
    public init() {}
}

/// Logging and the training run itself (`train.*`).
public struct TrainConfig: Sendable, Equatable, Codable {
    /// Plain progress lines every this many steps when stdout is not a terminal.
    public var logPeriod = 20
    /// Compute threads per rank (MaskPilot's kernels, oneDNN and OpenBLAS together; `--threads`). 0 = automatic:
    /// `OMP_NUM_THREADS` when set (`cluster/launch.sh` sets it to the cores per node ÷ the ranks per node and binds
    /// each rank to that many cores), otherwise the CPUs this process may run on ÷ the ranks on this node. Results do
    /// not depend on it (docs/perf.md#threads-within-a-rank), so a run resumes under another count.
    public var threads = 0
    /// With mask piloting on, every this many steps also measure the two parts of the step's gradient (before
    /// clipping): the matching losses' and the MP losses' (`StepReport.gradientSplit`, logged as `grad_norm_matching`,
    /// `grad_norm_piloting` and `grad_cosine`). Costs one more forward and backward on those steps (`grad_split_seconds`,
    /// counted in the step's images/s); the step itself is bitwise unchanged. 0 = never.
    public var gradientSplitPeriod = 0
    public init() {}
}

/// Evaluation during training and the defaults of `maskpilot eval` (`eval.*`; detectron2's `TEST.EVAL_PERIOD`).
public struct EvalConfig: Sendable, Equatable, Codable {
    /// Evaluate every this many iterations and after the last one (0 = never during training).
    public var period = 0
    /// Evaluate only the first N images of the split (0 = all).
    public var maxImages = 0
    /// The split evaluated (empty = `data.test_split`).
    public var split = ""
    /// Also compute MP-Former's layer-consistency metrics (mIoU-L_i, Util_i; docs/model.md#layer-consistency), which match every
    /// decoder layer's predictions to the ground truth.
    public var layerConsistency = true
    /// Panoptic post-processing (`MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD` / `OVERLAP_THRESHOLD`): a query is
    /// kept when its class score exceeds the first, a segment when it keeps more than the second of its mask.
    public var objectMaskThreshold: Double = 0.8
    public var overlapThreshold: Double = 0.8
    /// Keep the weights of the best periodic evaluation so far as `OUTPUT/model_best.h5` (weights only, for
    /// `eval`, `predict` or `model.weights`), by this metric, higher is better (e.g. AP, PQ, mIoU); its value and
    /// iteration are in `model_best.json`. Empty = off. detectron2's BestCheckpointer.
    public var bestMetric = ""
    /// Semantic formats: test-time augmentation (Mask2Former's `TEST.AUG.ENABLED`, the "ms+flip" results): the semantic
    /// scores of the image at `tta_min_sizes` (empty: the format's, ADE20K 256…896, Cityscapes 512…1792), longest edge
    /// ≤ `tta_max_size` (0: the format's, 3584 / 4096), each also mirrored with `tta_flip`, averaged at the original size.
    public var tta = false
    public var ttaMinSizes: [Int] = []
    public var ttaMaxSize = 0
    public var ttaFlip = true
    public init() {}
}

/// Everything a MaskPilot run is configured by. Keys are snake_case in YAML (`model.decoder.num_queries`).
public struct MaskPilotConfig: Sendable, Equatable, Codable {
    public var model: Mask2FormerConfig = .r50(numClasses: 150)
    public var loss = LossConfig()
    public var solver = SolverConfig()
    public var input = InputConfig()
    public var data = DataConfig()
    public var distributed = DistributedConfig()
    public var checkpoint = CheckpointConfig()
    public var train = TrainConfig()
    public var eval = EvalConfig()
    /// The run's global seed (parameters, data order, noise streams derive from it).
    public var seed: UInt64 = 0
    public init() {}
}

/// A configuration problem, naming the file and the dotted key path.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var message: String
    public var description: String { "\(file): \(message)" }
}

extension MaskPilotConfig {
    /// Reads `path`: YAML whose keys override the defaults; every key must exist in the schema.
    public static func load(path: String, overrides: [String] = []) throws -> MaskPilotConfig {
        try parse(yaml: try readConfigText(path, for: path), file: path, overrides: overrides)
    }

    /// The text of the configuration file `path`; errors are reported against `source` (the file itself, or the file
    /// whose `_BASE_` names it).
    static func readConfigText(_ path: String, for source: String) throws -> String {
        var isDirectory: ObjCBool = false
        let prefix = path == source ? "" : "_BASE_ \(path): "
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ConfigError(file: source, message: prefix + "is a folder, not a YAML configuration file")
        }
        do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError(file: source, message: prefix + "cannot read the file (\(error.localizedDescription))")
        }
    }

    /// Parses YAML `text` (named `file` in errors) over the defaults, then `overrides` ("a.b.c=value", YAML values).
    /// A top-level `_BASE_: PATH` (detectron2's inheritance; relative to `file`'s folder) is read first, its own
    /// `_BASE_` before it, and the file's keys override it.
    public static func parse(yaml text: String, file: String = "<config>", overrides: [String] = []) throws -> MaskPilotConfig {
        var tree = try defaultTree()
        var origins: [String: String] = [:]   // key path → the base file or --set argument that gave it its value
        func recordOrigins(_ value: Any, _ path: String, _ source: String) {
            if let map = value as? [String: Any] {
                for (k, v) in map { recordOrigins(v, path.isEmpty ? k : "\(path).\(k)", source) }
            } else {
                origins[path] = source == file ? nil : source
            }
        }
        for (mapping, source) in try layers(yaml: text, file: file, chain: []) {
            tree = try merge(mapping, into: tree, path: "", file: source)
            recordOrigins(mapping, "", source)
        }
        for item in overrides {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw ConfigError(file: "--set \(item)", message: "not of the form key.path=value (one argument: '=' between the key and "
                                  + "the value, no space)")
            }
            let keyPath = String(item[..<eq]), raw = String(item[item.index(after: eq)...])
            let parts = keyPath.split(separator: ".", omittingEmptySubsequences: false)
            guard !parts.contains(where: \.isEmpty) else {
                throw ConfigError(file: "--set \(item)", message: "the key '\(keyPath)' has an empty part (keys are names joined by single dots)")
            }
            origins[keyPath] = "--set \(item)"
            // A string key takes the text as it is unless YAML reads it as a string (so quotes still work): `{split}/a.json`
            // is a path, not a YAML mapping. So does a split list given one name (`data.train_split=2017`).
            let yaml = Result { try loadYAML(raw, file: "--set \(item)") }
            let parsed = (try? yaml.get()).flatMap { $0 }
            let textual = schemaTypes[keyPath] == "String" || schemaTypes[keyPath] == "SplitNames" && !(parsed is [Any])
            // Any other key takes the text as YAML, whose errors are the argument's.
            if !textual { _ = try yaml.get() }
            let value = textual && !(parsed is String) ? raw : parsed ?? raw
            var nested: Any = value
            for part in parts.reversed() { nested = [String(part): nested] }
            guard let mapping = nested as? [String: Any] else { continue }
            tree = try merge(mapping, into: tree, path: "", file: "--set \(item)")
        }
        return try decode(tree, file: file, origins: origins)
    }

    /// Every leaf of this configuration by its dotted key (`model.decoder.num_queries` → "100"): numbers, booleans and
    /// strings as YAML writes them, lists as `[a, b]`. The one flattening used to compare configurations.
    public func flattened() throws -> [String: String] {
        var out: [String: String] = [:]
        func walk(_ value: Any, _ path: String) {
            switch value {
            case let map as [String: Any]: for (k, v) in map { walk(v, path.isEmpty ? k : "\(path).\(k)") }
            case let list as [Any]: out[path] = "[" + list.map(leaf).joined(separator: ", ") + "]"
            default: out[path] = leaf(value)
            }
        }
        func leaf(_ value: Any) -> String {
            switch MaskPilotConfig.native(value) {
            case let b as Bool: return b ? "true" : "false"
            case let d as Double: return "\(d)"
            case let v: return "\(v)"
            }
        }
        walk(try MaskPilotConfig.tree(of: self), "")
        return out
    }

    /// The keys whose values differ between two configurations (keys either lacks count as differing).
    public static func differences(_ a: MaskPilotConfig, _ b: MaskPilotConfig) throws -> [String] {
        let fa = try a.flattened(), fb = try b.flattened()
        return Set(fa.keys).union(fb.keys).filter { fa[$0] != fb[$0] }.sorted()
    }

    /// The YAML text of this configuration (every key, snake_case), as written to a run's output folder.
    public func yaml() throws -> String {
        try Yams.dump(object: MaskPilotConfig.native(try MaskPilotConfig.tree(of: self)), width: -1, sortKeys: true)
    }

    /// JSONSerialization's NSNumbers as Swift Bool / Int / UInt64 / Double (what Yams can write).
    static func native(_ value: Any) -> Any {
        switch value {
        case let map as [String: Any]: return map.mapValues { native($0) }
        case let list as [Any]: return list.map { native($0) }
        case let n as NSNumber:
            if String(describing: type(of: n)).contains("Boolean") { return n.boolValue }
            switch String(cString: n.objCType) {
            case "d", "f": return n.doubleValue
            case "Q": return n.uint64Value
            default: return n.intValue
            }
        default: return value
        }
    }

    /// The most `_BASE_` files one configuration may chain (detectron2's recipes use two or three).
    static let maxBaseDepth = 16

    /// The mappings of `text` and of its `_BASE_` chain, the deepest base first, each with its file for errors.
    /// `chain`: the files already on the way down, to refuse a cycle.
    static func layers(yaml text: String, file: String, chain: [String]) throws -> [(mapping: [String: Any], file: String)] {
        let loaded = try loadYAML(text, file: file)
        guard let loaded, !(loaded is NSNull) else {
            // An empty or comment-only file would silently train the default recipe.
            throw ConfigError(file: file, message: "holds no settings (empty or only comments); start from a file in configs/")
        }
        guard var mapping = loaded as? [String: Any] else {
            throw ConfigError(file: file, message: "the top level must be a mapping of keys, found \(type(of: loaded))")
        }
        guard let base = mapping.removeValue(forKey: "_BASE_") else { return [(mapping, file)] }
        guard let name = base as? String, !name.isEmpty else {
            throw ConfigError(file: file, message: "_BASE_ must be the path of a YAML configuration file, got \(base)")
        }
        let folder = (file as NSString).deletingLastPathComponent
        let path = name.hasPrefix("/") || folder.isEmpty ? name : (folder as NSString).appendingPathComponent(name)
        // Absolute and without `.` / `..`, so `configs/../configs/x.yaml` is `x.yaml` for the cycle check.
        func key(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.path }
        let here = key(file), there = key(path)
        guard !(chain + [here]).contains(there) else {
            throw ConfigError(file: file, message: "_BASE_ \(name) leads back to itself (" + (chain + [here, there]).joined(separator: " → ") + ")")
        }
        guard chain.count < maxBaseDepth else {
            throw ConfigError(file: file, message: "_BASE_ chains more than \(maxBaseDepth) files")
        }
        return try layers(yaml: try readConfigText(path, for: file), file: path, chain: chain + [here]) + [(mapping, file)]
    }

    /// The most YAML nodes a configuration may expand to (aliases counted each time they are used): a full
    /// configuration has a few hundred; an "alias bomb" of nested anchors expands to billions.
    static let maxYAMLNodes = 100_000

    /// YAML text as plain values (nil for an empty document), refusing what a configuration never needs: more than
    /// `maxYAMLNodes` nodes once aliases are expanded, and a key twice in one mapping (YAML would keep the last).
    /// The node tree is composed first (aliases share their anchor's nodes, so that is cheap) and counted with an
    /// early exit, before anything is expanded.
    static func loadYAML(_ text: String, file: String) throws -> Any? {
        // libyaml's composer recurses once per level: thousands of levels overflow the stack before it can report.
        let depth = yamlNestingDepth(text)
        guard depth <= maxYAMLDepth else {
            throw ConfigError(file: file, message: "nests \(depth) levels deep (a configuration needs 4; at most \(maxYAMLDepth))")
        }
        let root: Node?
        do { root = try Yams.compose(yaml: text, .default, plainConstructor) } catch {
            throw ConfigError(file: file, message: "invalid YAML: \(error)")
        }
        guard let root else { return nil }
        var count = 0
        func visit(_ node: Node, _ path: String) throws {
            count += 1
            guard count <= maxYAMLNodes else {
                throw ConfigError(file: file, message: "holds or expands to more than \(maxYAMLNodes) values (through aliases, say; a "
                                  + "configuration needs a few hundred): refusing to expand it")
            }
            switch node {
            case .scalar: return
            case .sequence(let items):
                for (i, item) in items.enumerated() { try visit(item, "\(path)[\(i)]") }
            case .mapping(let pairs):
                var seen = Set<String>()
                for (key, value) in pairs {
                    guard key.scalar != nil else {
                        throw ConfigError(file: file, message: "a key \(path.isEmpty ? "at the top level" : "under '\(path)'") is a YAML "
                                          + "\(key.sequence != nil ? "list" : "mapping"), not a name"
                                          + (key.mark.map { " (line \($0.line))" } ?? ""))
                    }
                    let name = key.string ?? "\(key)", here = path.isEmpty ? name : "\(path).\(name)"
                    guard seen.insert(name).inserted else {
                        throw ConfigError(file: file, message: "key '\(here)' appears twice" + (key.mark.map { " (the second at line \($0.line))" } ?? ""))
                    }
                    try visit(value, here)
                }
            }
        }
        try visit(root, "")
        return root.any
    }

    /// YAML's core types only: timestamps (`2017-01-01`), `!!binary`, `!!set`, `!!omap` and `!!pairs` stay strings,
    /// mappings and lists, as a configuration's values are (Yams would make Date, Data and Set values, which cannot
    /// become the configuration's JSON).
    static var plainConstructor: Constructor {
        var scalars = Constructor.defaultScalarMap
        scalars[.timestamp] = nil; scalars[.binary] = nil
        var mappings = Constructor.defaultMappingMap
        mappings[.set] = nil
        return Constructor(scalars, mappings, [.seq: Constructor.defaultSequenceMap[.seq]!])
    }

    /// The most levels a configuration's YAML may nest (it needs 4: `model.backbone.swin.depths`'s list).
    static let maxYAMLDepth = 64

    /// How deeply `text` nests, read off the text without parsing it, so that it can bound what libyaml would
    /// recurse into: open block levels (by indentation; each `- `, `? ` or `: ` marker leading a line opens one more)
    /// plus open flow collections. A `[` or `{` opens one inside a flow collection, and outside only where a token
    /// starts (line start or after a space: `a[` is a plain scalar); quoted scalars (across lines), comments and block
    /// scalars (`|`, `>`) are text. It may count more than libyaml on odd input, never fewer.
    static func yamlNestingDepth(_ text: String) -> Int {
        let space = UInt8(ascii: " "), dquote = UInt8(ascii: "\""), squote = UInt8(ascii: "'")
        var deepest = 0, flow = 0
        var indents: [Int] = []
        var quote: UInt8? = nil
        var blockScalarIndent: Int? = nil   // inside a block scalar: lines indented more than this are its text
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline) {
            let c = Array(line.utf8)
            var i = 0
            while i < c.count, c[i] == space { i += 1 }
            if let b = blockScalarIndent {
                if i == c.count || i > b { continue }
                blockScalarIndent = nil
            }
            if quote == nil {
                if i == c.count || c[i] == UInt8(ascii: "#") { continue }
                if flow == 0 {
                    while let last = indents.last, last >= i { indents.removeLast() }
                    indents.append(i)
                }
            }
            let lineIndent = i
            var block = indents.count
            if quote == nil {
                while i + 1 < c.count, [UInt8(ascii: "-"), UInt8(ascii: "?"), UInt8(ascii: ":")].contains(c[i]), c[i + 1] == space {
                    block += 1; i += 2
                    while i < c.count, c[i] == space { i += 1 }
                }
            }
            deepest = max(deepest, block + flow)
            var lastToken = 0   // where the line's last token starts, for a block-scalar header
            while i < c.count {
                let ch = c[i]
                let tokenStart = i == 0 || c[i - 1] == space
                    || flow > 0 && [UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ","), UInt8(ascii: ":")].contains(c[i - 1])
                if let q = quote {
                    if ch == UInt8(ascii: "\\"), q == dquote { i += 1 }
                    else if ch == q, q == squote, i + 1 < c.count, c[i + 1] == squote { i += 1 }   // '' inside '…'
                    else if ch == q { quote = nil }
                } else if ch == UInt8(ascii: "#"), tokenStart {
                    break
                } else if ch == dquote || ch == squote, tokenStart {
                    quote = ch
                } else if ch == UInt8(ascii: "[") || ch == UInt8(ascii: "{"), flow > 0 || tokenStart {
                    flow += 1; deepest = max(deepest, block + flow)
                } else if (ch == UInt8(ascii: "]") || ch == UInt8(ascii: "}")), flow > 0 {
                    flow -= 1
                }
                if ch != space, tokenStart { lastToken = i }
                i += 1
            }
            // A block scalar header (`|`, `>`, with chomping or indentation indicators) ends the line.
            if quote == nil, flow == 0, lastToken < c.count, c[lastToken] == UInt8(ascii: "|") || c[lastToken] == UInt8(ascii: ">"),
               c[(lastToken + 1)...].allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+") || (48...57).contains($0) || $0 == space }) {
                blockScalarIndent = lineIndent
            }
        }
        return deepest
    }

    /// A stable hash of the resolved configuration (FNV-1a over the sorted YAML).
    public func hash() throws -> UInt64 { FNV1a.hash(try yaml()) }

    static func tree(of config: MaskPilotConfig) throws -> [String: Any] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let data = try encoder.encode(config)
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    static func defaultTree() throws -> [String: Any] { try tree(of: MaskPilotConfig()) }

    /// Overlays `user` on `base`; a key absent from `base` is unknown. Mappings merge recursively,
    /// everything else replaces. Strings holding numbers (YAML 1.1 reads `1e-4` as a string) become numbers
    /// where the default is a number.
    static func merge(_ user: [String: Any], into base: [String: Any], path: String, file: String) throws -> [String: Any] {
        var out = base
        for (key, value) in user {
            let here = path.isEmpty ? key : "\(path).\(key)"
            guard let current = base[key] else {
                let known = base.keys.sorted().joined(separator: ", ")
                throw ConfigError(file: file, message: "unknown key '\(here)' (known keys\(path.isEmpty ? "" : " under '\(path)'"): \(known))")
            }
            if let baseMap = current as? [String: Any] {
                guard let userMap = value as? [String: Any] else {
                    throw ConfigError(file: file, message: "'\(here)' must be a mapping with keys \(baseMap.keys.sorted().joined(separator: ", "))")
                }
                out[key] = try merge(userMap, into: baseMap, path: here, file: file)
            } else if current is String, schemaTypes[here] == "String", value is [String: Any] || value is [Any] {
                throw ConfigError(file: file, message: "'\(here)' must be a string, got a YAML \(value is [Any] ? "list" : "mapping"): quote a "
                                  + "value that starts with { or [ (\(key): \"{split}/images\")")
            } else if value is [String: Any] {
                throw ConfigError(file: file, message: "'\(here)' takes a value, not a mapping (it has no keys under it)")
            } else if let number = current as? NSNumber, !isBool(number), let exact = exactInteger(value, key: here) {
                out[key] = exact
            } else if current is NSNumber, !(current is Bool), let s = value as? String, let d = Double(s) {
                out[key] = try checkedNumber(d, key: here, file: file)
            } else if let number = current as? NSNumber, !isBool(number), let given = value as? NSNumber, !isBool(given) {
                out[key] = try checkedNumber(given.doubleValue, key: here, file: file)
            } else {
                try checkFinite(value, key: here, file: file)
                out[key] = value
            }
        }
        return out
    }

    /// Every number in a value (a scalar for a key whose default is not a number, or a list at any depth) is finite:
    /// a NaN or infinity would otherwise stop the configuration's JSON encoding with a message that names neither the
    /// key nor the file.
    static func checkFinite(_ value: Any, key: String, file: String) throws {
        if let list = value as? [Any] {
            for element in list { try checkFinite(element, key: key, file: file) }
        } else if let n = value as? NSNumber, !isBool(n), !n.doubleValue.isFinite {
            throw ConfigError(file: file, message: "'\(key)' must hold finite numbers, got \(n.doubleValue)")
        }
    }

    /// Decodes the merged tree; a bad value is reported against the `_BASE_` file or `--set` argument that gave it
    /// (`origins`: key path → source, a list element counting for its list), else against `file`.
    /// A number for a key whose default is `like`: finite, and for an integer key whole (≥ 0 for an unsigned one).
    /// JSON and Swift's decoders would otherwise fail with messages that do not name the key.
    static func checkedNumber(_ value: Double, key: String, file: String) throws -> Any {
        guard value.isFinite else {
            throw ConfigError(file: file, message: "'\(key)' must be a finite number, got \(value)")
        }
        switch schemaTypes[key] {
        case "Double", "Float", nil: return value
        case "UInt64", "UInt", "UInt32":
            guard value >= 0, value.rounded() == value, value < 1.8e19 else {
                throw ConfigError(file: file, message: "'\(key)' must be a whole number ≥ 0, got \(value)")
            }
            return UInt64(value)
        default:
            guard value.rounded() == value, abs(value) < 9e18 else {
                throw ConfigError(file: file, message: "'\(key)' must be a whole number, got \(value)")
            }
            return Int(value)
        }
    }

    /// A whole number given for an integer key, kept exact (through a Double, 2⁶³ − 1 would become 2⁶³): a YAML integer
    /// for an `Int` key, or a YAML integer or the text of one (YAML reads integers beyond `Int.max` as text) within
    /// 0…2⁶⁴ − 1 for an unsigned key. nil: not one of those (`checkedNumber` judges it).
    static func exactInteger(_ value: Any, key: String) -> Any? {
        guard !(value is Bool) else { return nil }
        switch schemaTypes[key] {
        case "Int": return value as? Int
        case "UInt64", "UInt", "UInt32":
            if let i = value as? Int { return i >= 0 ? UInt64(i) : nil }
            return (value as? String).flatMap { UInt64($0) }
        default: return nil
        }
    }

    /// The Swift type of every leaf key of the schema (`input.crop_size` → `Int`, `seed` → `UInt64`), read off a
    /// default configuration by reflection; a number in the defaults' JSON does not say whether it is an integer.
    static let schemaTypes: [String: String] = {
        var types: [String: String] = [:]
        func walk(_ value: Any, _ path: String) {
            let mirror = Mirror(reflecting: value)
            guard mirror.displayStyle == .struct, !mirror.children.isEmpty else {
                types[path] = String(describing: type(of: value)); return
            }
            for child in mirror.children {
                guard let label = child.label else { continue }
                walk(child.value, path.isEmpty ? snake(label) : "\(path).\(snake(label))")
            }
        }
        walk(MaskPilotConfig(), "")
        return types
    }()

    /// Whether an NSNumber holds a Bool (YAML true/false), which is not a number here.
    static func isBool(_ n: NSNumber) -> Bool { String(describing: type(of: n)).contains("Boolean") }

    static func decode(_ tree: [String: Any], file: String, origins: [String: String] = [:]) throws -> MaskPilotConfig {
        guard JSONSerialization.isValidJSONObject(tree) else {
            throw ConfigError(file: file, message: "holds a value that is not a string, number, boolean, list or mapping")
        }
        let data = try JSONSerialization.data(withJSONObject: tree)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode(MaskPilotConfig.self, from: data) } catch let error as DecodingError {
            let keys: [String]
            switch error {
            case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): keys = c.codingPath.compactMap { $0.intValue == nil ? snake($0.stringValue) : nil }
            case .keyNotFound(_, let c): keys = c.codingPath.compactMap { $0.intValue == nil ? snake($0.stringValue) : nil }
            @unknown default: keys = []
            }
            throw ConfigError(file: origins[keys.joined(separator: ".")] ?? file, message: describe(error))
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? snake($0.stringValue) }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        /// What a value of the schema's Swift type is, in the configuration's words.
        func kind(_ type: Any.Type) -> String {
            switch type {
            case is Int.Type: return "a whole number"
            case is UInt64.Type, is UInt.Type, is UInt32.Type: return "a whole number within 0…2⁶⁴ − 1"
            case is Double.Type, is Float.Type: return "a number"
            case is Bool.Type: return "true or false"
            case is String.Type: return "a string"
            default: return "\(type)".hasPrefix("Array") ? "a list" : "\(type)"
            }
        }
        /// "found a string instead" of Swift's message, without its "Expected to decode T but " (the type is said already).
        func found(_ text: String) -> String {
            guard let range = text.range(of: " but ") else { return text }
            return String(text[range.upperBound...]).replacingOccurrences(of: ".", with: "")
        }
        switch error {
        case .typeMismatch(let type, let ctx): return "'\(path(ctx.codingPath))' must be \(kind(type)), \(found(ctx.debugDescription))"
        case .valueNotFound(let type, let ctx): return "'\(path(ctx.codingPath))' is missing \(kind(type))"
        case .keyNotFound(let key, let ctx): return "'\(path(ctx.codingPath + [key]))' is missing"
        case .dataCorrupted(let ctx): return "'\(path(ctx.codingPath))': \(ctx.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    /// camelCase → snake_case, as the encoder writes keys.
    static func snake(_ s: String) -> String {
        var out = ""
        for c in s {
            if c.isUppercase { if !out.isEmpty { out.append("_") }; out.append(Character(c.lowercased())) } else { out.append(c) }
        }
        return out
    }
}
