// `maskpilot data synth | masks | stats`: write synthetic datasets, inspect one image's masks, count a dataset.
// Corresponds to detectron2's dataset registration + visualization tools for COCO and ADE20K layouts.
import ArgumentParser
import Datasets
import Foundation

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Create and inspect datasets.",
                                                    subcommands: [DataSynth.self, DataMasks.self, DataStats.self])
}

extension SyntheticFormat: ExpressibleByArgument {}

struct DataSynth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth", abstract: "Write a synthetic dataset in the official COCO instances, COCO panoptic or ADE20K layout.")

    @Option(help: "coco-instance, coco-panoptic or ade20k.") var format: SyntheticFormat
    @Option(help: "Output folder (the dataset root).") var out: String
    @Option(help: "Number of images.") var images: Int = 16
    @Option(help: "Image size WxH.") var size: String = "128x96"
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Split name (default train2017 for COCO, training for ADE20K).") var split: String?
    @Option(help: "Instances per image with --annotations-only (COCO-train: 860001 / 118287).") var annotations: Int?
    @Option(help: "standard (2–5 objects, class colours) or hard (6–11 smaller objects, jittered colours, grey distractors).")
    var difficulty: String = "standard"
    @Flag(help: "coco-instance only: write just annotations/instances_<split>.json (fast, any size; for scale tests).")
    var annotationsOnly = false

    func run() throws {
        let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 16, parts[1] >= 16 else { throw ValidationError("--size must be WxH with both ≥ 16, got \(size)") }
        guard images > 0 else { throw ValidationError("--images must be positive") }
        guard let level = SyntheticDifficulty(rawValue: difficulty) else {
            throw ValidationError("--difficulty must be one of \(SyntheticDifficulty.allCases.map(\.rawValue).joined(separator: ", ")), got \(difficulty)")
        }
        let options = SyntheticOptions(format: format, images: images, width: parts[0], height: parts[1], seed: seed, split: split,
                                       difficulty: level)
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
    }
}

/// The dataset options shared by `data masks` and `data stats`.
struct DatasetOptions: ParsableArguments {
    @Option(help: "coco-instance, coco-panoptic or ade20k.") var format: SyntheticFormat
    @Option(help: "Dataset root.") var root: String
    @Option(help: "Split: NAME for annotations/instances_NAME.json or panoptic_NAME.json; training/validation for ADE20K.")
    var split: String
}

struct DataMasks: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "masks", abstract: "Write each target mask of one image as a 0/255 PNG named by annotation (segment) id.")

    @OptionGroup var dataset: DatasetOptions
    @Option(help: "Image id (COCO image id; ADE20K: the number in the file name).") var imageId: Int
    @Option(help: "Output folder.") var out: String

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
            let ds = try COCOInstances(root: dataset.root, split: dataset.split)
            guard let i = ds.imageIndex(forID: imageId) else { throw RuntimeError("image id \(imageId) is not in \(ds.annotationFile)") }
            for (a, m) in zip(ds.annotations(ofImage: i), try ds.masks(ofImage: i)) {
                try save(m, name: "\(a.id)", cls: ds.categories[a.categoryIndex].name + (a.isCrowd ? " (crowd)" : ""))
            }
        case .cocoPanoptic:
            let ds = try COCOPanopticDataset(root: dataset.root, split: dataset.split)
            guard let i = ds.records.firstIndex(where: { $0.imageId == imageId }) else {
                throw RuntimeError("image id \(imageId) is not in \(ds.jsonPath)")
            }
            let r = ds.records[i], ids = try ds.idMap(i)
            for s in r.segments {
                try save(BinaryMask(width: r.width, height: r.height, bits: ids.map { $0 == s.id ? 1 : 0 }), name: "\(s.id)",
                         cls: ds.categories[s.classIndex].name + (s.isCrowd ? " (crowd)" : ""))
            }
        case .ade20k:
            let ds = try ADE20KDataset(root: dataset.root, split: dataset.split)
            guard let i = (0..<ds.count).first(where: { Int(ds.imageId($0).filter(\.isNumber)) == imageId }) else {
                throw RuntimeError("no image numbered \(imageId) in \(ds.root)/images/\(dataset.split)")
            }
            let t = semanticTargets(try ds.load(i).labels)
            for (c, m) in zip(t.classes, t.masks) { try save(m, name: "class_\(c)", cls: "class \(c)") }
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
            let ds = try COCOInstances(root: dataset.root, split: dataset.split)
            images = ds.imageCount; annotations = ds.annotationCount
            for i in 0..<ds.imageCount { for a in ds.annotations(ofImage: i) { perClass[ds.categories[a.categoryIndex].name, default: 0] += 1 } }
            if ds.skippedCount > 0 { print("skipped \(ds.skippedCount) bad records") }
        case .cocoPanoptic:
            let ds = try COCOPanopticDataset(root: dataset.root, split: dataset.split)
            images = ds.count
            for r in ds.records { for s in r.segments { annotations += 1; perClass[ds.categories[s.classIndex].name, default: 0] += 1 } }
        case .ade20k:
            let ds = try ADE20KDataset(root: dataset.root, split: dataset.split)
            images = ds.count
            for i in 0..<ds.count {
                for c in semanticTargets(try ds.load(i).labels).classes { annotations += 1; perClass["class \(c)", default: 0] += 1 }
            }
        }
        print("images: \(images)\nannotations: \(annotations)\nclasses present: \(perClass.count)")
        for (name, n) in perClass.sorted(by: { $0.value > $1.value }) { print("  \(name): \(n)") }
        print(String(format: "read in %.1f s", Date().timeIntervalSince(t0)))
    }
}
