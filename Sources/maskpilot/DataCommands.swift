// `maskpilot data synth | masks | stats`: write synthetic datasets, inspect one image's masks, count a dataset.
// Corresponds to detectron2's dataset registration + visualization tools for COCO and ADE20K layouts.
import ArgumentParser
import Datasets
import Foundation
import Training

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Create and inspect datasets.",
                                                    subcommands: [DataSynth.self, DataMasks.self, DataStats.self])
}

extension SyntheticFormat: ExpressibleByArgument {}
extension DataConfig.Format: ExpressibleByArgument {}

struct DataSynth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth", abstract: "Write a synthetic dataset in the official COCO instances, COCO panoptic, ADE20K or Cityscapes layout, or the sem-seg folder layout.")

    @Option(help: "coco-instance, coco-panoptic, ade20k, cityscapes (all three Cityscapes tasks: leftImg8bit, gtFine and the panoptic JSON) or sem-seg (images/SPLIT, annotations/SPLIT; 7 classes stored as 0…6, 255 unlabeled).")
    var format: SyntheticFormat
    @Option(help: "Output folder (the dataset root).") var out: String
    @Option(parsing: .unconditional, help: "Number of images.") var images: Int = 16
    @Option(help: "Image size WxH.") var size: String = "128x96"
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Split name (default train2017 for COCO, training for ADE20K and sem-seg, train for Cityscapes).") var split: String?
    @Option(parsing: .unconditional, help: "Instances per image with --annotations-only (COCO-train: 860001 / 118287).") var annotations: Int?
    @Option(help: "standard (2–5 objects, class colours) or hard (6–11 smaller objects, jittered colours, grey distractors).")
    var difficulty: String = "standard"
    @Option(parsing: .unconditional, help: "coco-instance / coco-panoptic: thing classes; 5 is the standard set, 6…64 come in look-alike pairs (same shape and hue, one darker).")
    var classes: Int = 5
    @Flag(help: "coco-instance only: write just annotations/instances_<split>.json (fast, any size; for scale tests).")
    var annotationsOnly = false

    func validate() throws {
        try requireOption("--images", images, atLeast: 1, atMost: 1 << 24)
        try requireOption("--annotations", annotations, atLeast: 0, atMost: 1 << 30)
        if let split, split.isEmpty || split.contains("/") || split == "." || split == ".." {
            throw ValidationError("--split must be a folder name (no '/', not '.' or '..'), got '\(split)'")
        }
        try requireFolder(out, option: "--out")
    }

    func run() throws {
        let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts.allSatisfy({ (16...(1 << 15)).contains($0) }) else {
            throw ValidationError("--size must be WxH with both within 16…\(1 << 15), got \(size)")
        }
        guard let level = SyntheticDifficulty(rawValue: difficulty) else {
            throw ValidationError("--difficulty must be one of \(SyntheticDifficulty.allCases.map(\.rawValue).joined(separator: ", ")), got \(difficulty)")
        }
        let options = SyntheticOptions(format: format, images: images, width: parts[0], height: parts[1], seed: seed, split: split,
                                       difficulty: level, classes: classes)
        let t0 = Date()
        let written: Int
        if annotationsOnly {
            guard format == .cocoInstance else { throw ValidationError("--annotations-only applies to coco-instance") }
            try FileManager.default.createDirectory(atPath: "\(out)/annotations", withIntermediateDirectories: true)
            var o = COCOSyntheticInstancesOptions(images: images, annotations: annotations ?? images * 860_001 / 118_287, seed: seed)
            o.widths = parts[0]...parts[0]; o.heights = parts[1]...parts[1]
            let bytes = try writeSyntheticCOCOInstancesJSON(to: "\(out)/annotations/instances_\(options.split).json", options: o)
            print(String(format: "annotations/instances_\(options.split).json: %.1f MB", Double(bytes) / 1e6))
            written = o.annotations
        } else {
            written = try writeSyntheticDataset(root: out, options: options)
        }
        print("wrote \(images) images, \(written) annotations (\(format.rawValue), split \(options.split)) to \(out) in "
              + String(format: "%.1f s", Date().timeIntervalSince(t0)))
        if format == .semSeg {
            let names = SyntheticClasses.semSegNames
            print("sem-seg classes, stored as 0…\(names.count - 1) (255 unlabeled): \(names.joined(separator: ", "))\n"
                  + "train with --set data.format=sem-seg --set model.decoder.num_classes=\(names.count) --set 'data.classes=["
                  + names.map { "\"\($0)\"" }.joined(separator: ", ") + "]'")
        }
    }
}

/// The dataset options shared by `data masks` and `data stats`.
struct DatasetOptions: ParsableArguments {
    @Option(help: "coco-instance, coco-panoptic, ade20k, cityscapes-semantic, cityscapes-instance, cityscapes-panoptic or sem-seg.")
    var format: DataConfig.Format
    @Option(help: "Dataset root.") var root: String
    @Option(help: "Split: NAME for annotations/instances_NAME.json or panoptic_NAME.json; training/validation for ADE20K; train/val for Cityscapes; the folder under images/ and annotations/ for sem-seg.")
    var split: String
    @Option(name: .customLong("set"), help: "A configuration key the reading needs (repeatable): the layout keys data.annotation_file, data.image_folder, data.label_folder; sem-seg: model.decoder.num_classes=N, data.ignore_label=V, data.reduce_zero_label=true, data.classes=[…].")
    var overrides: [String] = []

    /// The defaults with `--set`, `--format` and `--root`, checked.
    func config() throws -> MaskPilotConfig {
        var cfg: MaskPilotConfig
        do { cfg = try MaskPilotConfig.parse(yaml: "{}", file: "--set", overrides: overrides) } catch let e as ConfigError {
            throw RuntimeError(e.description)
        }
        cfg.data.format = format; cfg.data.root = root
        return try ConfigOptions.checked(cfg, source: "--format \(format.rawValue) --set …")
    }

    /// The COCO instances of the split, where the layout keys say.
    func cocoInstances() throws -> COCOInstances {
        try COCOInstances(root: root, split: split, layout: try config().data.layout)
    }

    /// The COCO panoptic split, where the layout keys say.
    func cocoPanoptic() throws -> COCOPanopticDataset {
        try COCOPanopticDataset(root: root, split: split, layout: try config().data.layout)
    }

    /// The split read through the format's descriptor as training reads it (before augmentation), with its class names.
    func openGeneric() throws -> (data: TrainingData, classNames: [String]) {
        var cfg = try config()
        // Every frame, indexed as in the split (training's filter of frames without instances is reported apart).
        if format == .cityscapesInstance { cfg.data.filterEmptyAnnotations = false }
        let data = try format.descriptor.trainingData(config: cfg, split: split)
        cfg.model.decoder.numClasses = data.numClasses
        let names = (try? format.descriptor.evaluationData(config: cfg, split: split).classNames) ?? (0..<data.numClasses).map { "class \($0)" }
        return (data, names)
    }
}

struct DataMasks: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "masks", abstract: "Write each target mask of one image as a 0/255 PNG named by annotation (segment) id.")

    @OptionGroup var dataset: DatasetOptions
    @Option(parsing: .unconditional, help: "Image id (COCO image id; ADE20K: the number in the file name; Cityscapes: the frame's index in the split, sorted by city and name; sem-seg: the image's index in the split, sorted by file name).") var imageId: Int
    @Option(help: "Output folder.") var out: String

    func validate() throws { try requireFolder(out, option: "--out") }

    func run() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var written: [(name: String, cls: String, area: Int)] = []
        func save(_ mask: BinaryMask, name: String, cls: String) throws {
            try writePNG(Image8(width: mask.width, height: mask.height, channels: 1, pixels: mask.bits.map { $0 != 0 ? 255 : 0 }),
                         to: "\(out)/\(name).png")
            written.append((name, cls, mask.area))
        }
        switch dataset.format {
        case .cocoInstance:
            let ds = try dataset.cocoInstances()
            guard let i = ds.imageIndex(forID: imageId) else { throw RuntimeError("image id \(imageId) is not in \(ds.annotationFile)") }
            for (a, m) in zip(ds.annotations(ofImage: i), try ds.masks(ofImage: i)) {
                try save(m, name: "\(a.id)", cls: ds.categories[a.categoryIndex].name + (a.isCrowd ? " (crowd)" : ""))
            }
        case .cocoPanoptic:
            let ds = try dataset.cocoPanoptic()
            guard let i = ds.records.firstIndex(where: { $0.imageId == imageId }) else {
                throw RuntimeError("image id \(imageId) is not in \(ds.jsonPath)")
            }
            let r = ds.records[i], ids = try ds.idMap(i)
            for s in r.segments {
                try save(BinaryMask(width: r.width, height: r.height, bits: ids.map { $0 == s.id ? 1 : 0 }), name: "\(s.id)",
                         cls: ds.categories[s.classIndex].name + (s.isCrowd ? " (crowd)" : ""))
            }
        case .ade20k:
            _ = try dataset.config()   // --set is checked (ADE20K's layout and labels are fixed: its keys are refused)
            let ds = try ADE20KDataset(root: dataset.root, split: dataset.split)
            guard let i = (0..<ds.count).first(where: { Int(ds.imageId($0).filter(\.isNumber)) == imageId }) else {
                throw RuntimeError("no image numbered \(imageId) in \(ds.root)/images/\(dataset.split)")
            }
            let t = semanticTargets(try ds.load(i).labels)
            for (c, m) in zip(t.classes, t.masks) { try save(m, name: "class_\(c)", cls: "class \(c)") }
        case .cityscapesSemantic, .cityscapesInstance, .cityscapesPanoptic, .semSeg:
            let (data, names) = try dataset.openGeneric()
            guard (0..<data.count).contains(imageId) else { throw RuntimeError("image id \(imageId) is not within 0..<\(data.count) (\(dataset.root), split \(dataset.split))") }
            let sample = try data.load(imageId)
            let t = try transformTargets(sample.targets, with: TransformList(inputSize: sample.image.size), dropEmpty: false)
            var crowd = Set<Int>()
            if case .instances(let a) = sample.targets { crowd = Set(a.filter(\.isCrowd).map(\.id)) }
            for (c, (m, id)) in zip(t.classes, zip(t.masks, t.ids)) {
                try save(m, name: dataset.format.descriptor.task == .semantic ? "class_\(c)" : "\(id)", cls: names[c] + (crowd.contains(id) ? " (crowd)" : ""))
            }
        }
        for w in written { print("\(w.name).png  \(w.cls)  \(w.area) px") }
        print("\(written.count) masks written to \(out)")
    }
}

struct DataStats: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Count images, annotations and classes.")

    @OptionGroup var dataset: DatasetOptions

    func run() throws {
        let t0 = Date()
        var perClass: [String: Int] = [:]
        var images = 0, annotations = 0
        switch dataset.format {
        case .cocoInstance:
            let ds = try dataset.cocoInstances()
            images = ds.imageCount; annotations = ds.annotationCount
            for i in 0..<ds.imageCount { for a in ds.annotations(ofImage: i) { perClass[ds.categories[a.categoryIndex].name, default: 0] += 1 } }
            if ds.skippedCount > 0 { print("skipped \(ds.skippedCount) bad records") }
            let unusable = (0..<ds.imageCount).filter { !ds.hasNonCrowdAnnotation(ofImage: $0) }.count
            print("images without usable annotations (none, or only crowd regions): \(unusable)"
                  + (unusable > 0 ? " (training leaves them out: data.filter_empty_annotations)" : ""))
        case .cocoPanoptic:
            let ds = try dataset.cocoPanoptic()
            images = ds.count
            for r in ds.records { for s in r.segments { annotations += 1; perClass[ds.categories[s.classIndex].name, default: 0] += 1 } }
        case .ade20k:
            _ = try dataset.config()   // --set is checked (ADE20K's layout and labels are fixed: its keys are refused)
            let ds = try ADE20KDataset(root: dataset.root, split: dataset.split)
            images = ds.count
            for i in 0..<ds.count {
                for c in semanticTargets(try ds.load(i).labels).classes { annotations += 1; perClass["class \(c)", default: 0] += 1 }
            }
        case .cityscapesSemantic, .cityscapesInstance, .cityscapesPanoptic, .semSeg:
            // Every frame decoded as training reads it; crowd (group) regions counted apart.
            let (data, names) = try dataset.openGeneric()
            images = data.count
            var unusable = 0
            for i in 0..<data.count {
                let sample = try data.load(i)
                switch sample.targets {
                case .semantic(let labels):
                    for c in semanticTargets(labels).classes { annotations += 1; perClass[names[c], default: 0] += 1 }
                case .instances(let list):
                    if !list.contains(where: { !$0.isCrowd }) { unusable += 1 }
                    for a in list { annotations += 1; perClass[names[a.classIndex] + (a.isCrowd ? " (group)" : ""), default: 0] += 1 }
                case .panoptic(let p):
                    for s in p.segments { annotations += 1; perClass[names[s.classIndex] + (s.isCrowd ? " (group)" : ""), default: 0] += 1 }
                case .none: break
                }
            }
            if dataset.format == .cityscapesInstance {
                print("frames without usable instances (none, or only group regions): \(unusable)"
                      + (unusable > 0 ? " (training leaves them out: data.filter_empty_annotations)" : ""))
            }
        }
        print("images: \(images)\nannotations: \(annotations)\nclasses present: \(perClass.count)")
        for (name, n) in perClass.sorted(by: { $0.value > $1.value }) { print("  \(name): \(n)") }
        print(String(format: "read in %.1f s", Date().timeIntervalSince(t0)))
    }
}
