// `maskpilot predict`: run a trained model on image files and write, per image, a PNG overlay (segments coloured,
// outlined and labelled with class names and scores, with a legend) and the raw prediction (label PNG + JSON).
// Corresponds to detectron2's demo/demo.py with the Visualizer.
import ArgumentParser
import Datasets
import Distributed
import Evaluation
import Foundation
import Mask2FormerModel
import TensorCore
import Training
import Visualization

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict", abstract: "Predict images with a trained model: PNG overlays and raw label PNGs.",
        discussion: """
        For each input image IMG (JPEG or PNG) writes into OUTPUT: IMG_overlay.png (the image with the predicted \
        segments filled, outlined and labelled, and a legend) and the raw prediction: \
        semantic → IMG_semantic.png (8-bit class index per pixel, 255 = class ≥ 255; note: `eval` writes ADE20K's \
        class + 1 instead); \
        instance → IMG_instances.png (8-bit: 0 = background, k = k-th instance of IMG.json, higher scores on top); \
        panoptic → IMG_panoptic.png (COCO panoptic RGB segment ids, 0 = void). IMG.json lists the segments \
        (id, class, name, score where the task has one). Class names and the panoptic thing/stuff split come \
        from the dataset in the config (data.root, the test split) when it can be read, else from data.classes \
        (sem-seg) when it names every class.
        """)


    @OptionGroup var configOptions: InferenceConfigOptions

    @Option(help: "Model weights: a MaskPilot checkpoint, a weights-only .h5 (PyTorch layout), a .safetensors file, or a run folder (its last_checkpoint).")
    var weights: String

    @Option(parsing: .upToNextOption, help: "Image files (JPEG or PNG), or folders: their .jpg, .jpeg and .png files (not recursive).")
    var input: [String]

    @Option(help: "Output folder.")
    var output: String

    @Option(help: "semantic, instance or panoptic (default: from data.format).")
    var task: EvaluationTask?

    @Option(parsing: .unconditional, help: "Instance task: draw instances scoring at least this.")
    var scoreThreshold: Double = 0.5

    @OptionGroup var precisionOption: PrecisionOption

    func validate() throws {
        // Above 1 is allowed: nothing is drawn and the best score is said.
        guard scoreThreshold.isFinite, scoreThreshold >= 0 else {
            throw ValidationError("--score-threshold must be a finite number ≥ 0 (scores are within 0…1), got \(scoreThreshold)")
        }
        try requireFolder(output, option: "--output")
    }

    func run() throws {
        let comm = try makeCommunicator()
        do { try predict(comm: comm) } catch let e as ValidationError where comm.size == 1 { throw e } catch {
            if comm.size > 1 { comm.abort(code: 1, message: "rank \(comm.rank): \(error)") }
            throw RuntimeError("\(error)")
        }
    }

    /// Under several ranks (`cluster/launch.sh -n N -- predict …`) image i is predicted by rank i mod N, each rank
    /// writing its images' files into `--output` (a folder every rank can write: on several nodes, a shared one).
    func predict(comm: any Communicator) throws {
        let (loaded, weights, warnings) = try configOptions.load(weights: self.weights)
        var cfg = loaded
        if comm.isCoordinator { for warning in warnings { print(warning) } }
        try precisionOption.apply(to: &cfg)
        guard !input.isEmpty else { throw ValidationError("--input: no image given") }
        let images = try expandImageInputs(input, outputFolder: output)
        let task = self.task ?? cfg.data.format.descriptor.task
        // The dataset, when readable, gives class names, the thing classes and the test-time resize.
        var split: EvaluationSplit?
        var splitError = ""
        do { split = try EvaluationSplit(config: cfg) } catch {
            splitError = "\(error)"
            if comm.isCoordinator { print("predict: the dataset of the config cannot be read (\(error)); classes are shown "
                  + (cfg.data.classes.isEmpty ? "as \"class N\"" : "by data.classes")) }
        }
        let categoryIDs = split?.categoryIDs
        var stems: [String: String] = [:]
        for path in images {
            let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            if let other = stems[stem] {
                throw ValidationError("--input: \(other) and \(path) would write the same files (\(stem)_overlay.png …); rename one")
            }
            stems[stem] = path
        }
        let numClasses = cfg.model.decoder.numClasses
        // Without the dataset, a sem-seg configuration's data.classes still names them (weights store their config).
        // Cityscapes: no dataset needed (when the model has the format's class count).
        let fixed = cfg.data.format.descriptor.fixedClasses.flatMap { $0.names.count == cfg.model.decoder.numClasses ? $0 : nil }
        let names = split.map(\.classNames) ?? fixed?.names
            ?? cfg.data.classNames(numClasses: numClasses) ?? (0..<numClasses).map { "class \($0)" }
        let post: Mask2FormerPostProcessor
        switch task {
        case .semantic: post = Mask2FormerPostProcessor(.semantic)
        case .instance: post = Mask2FormerPostProcessor(.instance)
        case .panoptic where split == nil && cfg.data.format.descriptor.task == .panoptic && fixed != nil:
            post = panopticPostProcessor(cfg, thingClasses: fixed!.thingClasses)
        case .panoptic:
            guard let split, case .panoptic = split.task else {
                throw RuntimeError("--task panoptic needs the panoptic dataset of the config (data.format coco-panoptic, data.root \(cfg.data.root)) for its thing/stuff categories" + (splitError.isEmpty ? "" : ": \(splitError)"))
            }
            post = split.postProcessor
        }
        let resize = split?.resize ?? TestTimeResize(config: cfg)
        let model = try loadInferenceModel(config: cfg, weights: weights)
        // Rank 0 makes the folder; the others wait for it (several creating it at once may see EEXIST).
        if comm.isCoordinator { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) }
        try comm.barrier()

        let t0 = Date()
        for (n, path) in images.enumerated() where n % comm.size == comm.rank {
            let image = try loadImage(path: path)
            let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            let out = try infer(model, sample: Sample(imageId: n, image: image, targets: .none), resize: resize, postProcessor: post,
                                precision: cfg.solver.precision, augmentation: task == .semantic ? TestTimeAugmentation(config: cfg) : nil,
                                needsPredictions: false, context: path)
            let w = image.width, h = image.height
            var segments: [OverlaySegment] = []
            var records: [[String: Any]] = []
            var legendOrder = Overlay.LegendOrder.drawing
            let raw: Image8
            switch task {
            case .semantic:
                let labels = out.result.semantic!.labels
                raw = Image8(width: w, height: h, channels: 1, pixels: labels.map { UInt8(clamping: Int($0)) })
                var area = [Int](repeating: 0, count: numClasses)
                for l in labels { area[Int(l)] += 1 }
                for c in area.indices.sorted(by: { area[$0] > area[$1] }) where area[c] > 0 {
                    let bits = labels.map { $0 == Int32(c) ? UInt8(1) : 0 }
                    segments.append(OverlaySegment(mask: BinaryMask(width: w, height: h, bits: bits), color: Palette.color(c),
                                                   label: names[c], legend: names[c]))
                    var record: [String: Any] = ["class": c, "name": names[c], "pixels": area[c]]
                    if let categoryIDs { record["category_id"] = categoryIDs[c] }
                    records.append(record)
                }
            case .instance:
                let found = (out.result.instances ?? []).filter { $0.mask.contains(1) }
                let kept = found.filter { Double($0.score) >= scoreThreshold }.sorted { $0.score > $1.score }
                if kept.isEmpty, let best = found.map(\.score).max() {
                    print(String(format: "predict: %@: no instance scores %.2f or more (--score-threshold); the best scores %.3f, "
                                 + "so lower --score-threshold to see it", path, scoreThreshold, Double(best)))
                }
                var pixels = [UInt8](repeating: 0, count: w * h)
                for (k, inst) in kept.enumerated().reversed() where k < 255 {
                    for j in 0..<(w * h) where inst.mask[j] != 0 { pixels[j] = UInt8(k + 1) }
                }
                raw = Image8(width: w, height: h, channels: 1, pixels: pixels)
                // Lowest score first, so the best instance is drawn on top, as in the raw PNG; the legend lists
                // them best first.
                for (k, inst) in kept.enumerated().reversed() {
                    let text = "\(names[inst.label]) \(String(format: "%.2f", inst.score))"
                    segments.append(OverlaySegment(mask: BinaryMask(width: w, height: h, bits: inst.mask), color: Palette.color(k),
                                                   label: text, legend: "#\(k + 1) " + text))
                }
                legendOrder = .reversed
                records = kept.enumerated().map { k, inst in
                    var record: [String: Any] = ["id": k + 1, "class": inst.label, "name": names[inst.label], "score": Double(inst.score)]
                    if let categoryIDs { record["category_id"] = categoryIDs[inst.label] }
                    return record
                }
            case .panoptic:
                let pan = out.result.panoptic!
                var pixels = [UInt8](repeating: 0, count: w * h * 3)
                for (j, id) in pan.ids.enumerated() where id > 0 {
                    pixels[3 * j] = UInt8(id & 0xff); pixels[3 * j + 1] = UInt8((id >> 8) & 0xff); pixels[3 * j + 2] = UInt8((id >> 16) & 0xff)
                }
                raw = Image8(width: w, height: h, channels: 3, pixels: pixels)
                var thingCount: [Int: Int] = [:]
                for s in pan.segments {
                    let bits = pan.ids.map { $0 == Int32(s.id) ? UInt8(1) : 0 }
                    let name = names[s.categoryId]
                    let color: RGB, legend: String
                    if s.isThing {
                        thingCount[s.categoryId, default: 0] += 1
                        legend = "\(name) #\(thingCount[s.categoryId]!)"; color = Palette.color(s.id + numClasses)
                    } else {
                        legend = name; color = Palette.color(s.categoryId)
                    }
                    segments.append(OverlaySegment(mask: BinaryMask(width: w, height: h, bits: bits), color: color, label: name, legend: legend))
                    var record: [String: Any] = ["id": s.id, "class": s.categoryId, "name": name, "isthing": s.isThing]
                    if let categoryIDs { record["category_id"] = categoryIDs[s.categoryId] }
                    records.append(record)
                }
            }
            let overlay = Overlay.render(image: image, segments: segments, title: "\(stem) (\(task.rawValue))", legendOrder: legendOrder)
            try overlay.writePNG(to: "\(output)/\(stem)_overlay.png")
            let rawName = "\(output)/\(stem)_\(task == .instance ? "instances" : task.rawValue).png"
            try writePNG(raw, to: rawName)
            let json: [String: Any] = ["image": path, "width": w, "height": h, "task": task.rawValue, "segments": records]
            try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: "\(output)/\(stem).json"))
            print("\(path): \(segments.count) segment(s) → \(output)/\(stem)_overlay.png, \(rawName)")
        }
        try comm.barrier()
        if comm.isCoordinator {
            print("predicted \(images.count) image(s) on \(comm.size) rank(s) in " + String(format: "%.1f s", Date().timeIntervalSince(t0)) + " → \(output)")
        }
    }
}

extension EvaluationTask: ExpressibleByArgument {}

/// `--input` entries as image files: a folder stands for its `.jpg`, `.jpeg` and `.png` files (any case, sorted, not
/// recursive; detectron2's demo takes a glob); a folder without images is refused by name, and so is the
/// `outputFolder` itself (its predictions, PNGs too, would be read back as images).
func expandImageInputs(_ entries: [String], outputFolder: String? = nil) throws -> [String] {
    var files: [String] = []
    for entry in entries {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: entry, isDirectory: &isDirectory), isDirectory.boolValue else {
            files.append(entry)   // a file (a missing one is named when it is read)
            continue
        }
        if let outputFolder, resolvedPath(entry) == resolvedPath(outputFolder) {
            throw RuntimeError("--input \(entry) is the --output folder: its predictions would be read as images; write them elsewhere")
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: entry) } catch {
            throw RuntimeError("--input \(entry): cannot list the folder (\(error.localizedDescription))")
        }
        let found = names.filter { ["jpg", "jpeg", "png"].contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
        guard !found.isEmpty else { throw RuntimeError("--input \(entry): the folder holds no .jpg, .jpeg or .png file") }
        files += found.map { (entry as NSString).appendingPathComponent($0) }
    }
    return files
}
