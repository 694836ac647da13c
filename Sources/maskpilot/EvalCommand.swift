// `maskpilot eval`: evaluate a trained model on a dataset split, under mpirun (disjoint shards per rank,
// results gathered on rank 0) or alone. Corresponds to detectron2's `train_net.py --eval-only` with
// inference_on_dataset + SemSegEvaluator / COCOEvaluator (segm) / COCOPanopticEvaluator.
import ArgumentParser
import Checkpoint
import Data
import Distributed
import Evaluation
import Foundation
import Mask2FormerModel
import TensorCore
import Training

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a model on a dataset split (mIoU, COCO mask AP or PQ); run under mpirun to shard it.",
        discussion: """
        The task follows data.format: ade20k → semantic (mIoU, fwIoU, pACC, mACC), coco-instance → COCO mask AP, \
        coco-panoptic → PQ/SQ/RQ. Each rank evaluates a contiguous shard of the split; rank 0 merges the \
        evaluators, prints the metrics and writes OUTPUT/results.json (and, for instances, \
        OUTPUT/coco_instances_results.json). The numbers do not depend on the number of ranks.
        """)

    @OptionGroup var configOptions: ConfigOptions

    @Option(help: "Model weights: a MaskPilot checkpoint or a weights-only .h5 (PyTorch layout).")
    var weights: String

    @Option(help: "Split to evaluate (default: data.test_split).")
    var split: String?

    @Option(help: "Output folder for results.json (and coco_instances_results.json).")
    var output: String?

    @Option(help: "Evaluate only the first N images of the split.")
    var maxImages: Int?

    func run() throws {
        let cfg = try configOptions.load()
        let comm = try makeCommunicator()
        do {
            try evaluate(cfg, comm: comm)
        } catch {
            if comm.size > 1 { comm.abort(code: 1, message: "\(error)") }
            throw ValidationError("rank \(comm.rank): \(error)")
        }
    }

    // MARK: dataset

    /// The split as the evaluator needs it: a loader, the test-time resize and the task's evaluator state.
    enum Task { case semantic, instance, panoptic }

    func evaluate(_ cfg: MaskPilotConfig, comm: any Communicator) throws {
        let split = self.split ?? cfg.data.testSplit
        let root = cfg.data.root
        let task: Task
        let count: Int
        let load: (Int) throws -> Sample
        let resize: TestTimeResize
        var cocoInstances: COCOInstances?
        var panopticDataset: COCOPanopticDataset?
        switch cfg.data.format {
        case .ade20k:
            let ds = try ADE20KDataset(root: root, split: split)
            task = .semantic; count = ds.count; load = { try ds.sample($0) }; resize = .ade20k
        case .cocoInstance:
            let ds = try COCOInstances(root: root, split: split)
            task = .instance; count = ds.imageCount; load = { try ds.sample($0) }; resize = .coco
            cocoInstances = ds
        case .cocoPanoptic:
            let ds = try COCOPanopticDataset(root: root, split: split)
            task = .panoptic; count = ds.count; load = { try ds.sample($0) }; resize = .coco
            panopticDataset = ds
        }
        let numImages = min(count, maxImages ?? count)
        guard numImages > 0 else { throw EvaluationError(root, "split \(split) has no images to evaluate") }
        let numClasses = cfg.model.decoder.numClasses
        if let ds = cocoInstances, ds.categories.count != numClasses {
            throw EvaluationError(root, "the dataset has \(ds.categories.count) categories but model.decoder.num_classes is \(numClasses)")
        }
        if let ds = panopticDataset, ds.numClasses != numClasses {
            throw EvaluationError(root, "the dataset has \(ds.numClasses) categories but model.decoder.num_classes is \(numClasses)")
        }

        // Model and weights.
        var rng = RNG(seed: cfg.seed, stream: 0)
        let model = Mask2Former(cfg.model, rng: &rng)
        model.eval()
        let report = try loadPretrainedWeights(into: model, path: weights, ignore: [])
        if comm.isCoordinator {
            print("maskpilot eval — \(comm.size) rank(s), \(cfg.data.format.rawValue) \(root) split \(split), \(numImages) image(s)")
            print(report.description)
        }
        guard !report.loaded.isEmpty else { throw EvaluationError(weights, "no tensor of the file matches the model") }

        let post: Mask2FormerPostProcessor
        switch task {
        case .semantic: post = Mask2FormerPostProcessor(.semantic)
        case .instance: post = Mask2FormerPostProcessor(.instance)
        case .panoptic: post = Mask2FormerPostProcessor(.panoptic(thingClasses: panopticDataset!.thingClasses))
        }

        // This rank's shard.
        let sampler = try InferenceSampler(datasetSize: numImages, worldSize: comm.size, rank: comm.rank)
        let shard = sampler.indices()
        var semantic = SemanticEvaluator(numClasses: numClasses)
        var panoptic = PanopticEvaluator(isThing: panopticDataset?.categories.map(\.isThing) ?? [])
        var detections: [COCOMaskAPDetection] = []

        let style: ProgressLine.Style = ProcessInfo.processInfo.environment["MASKPILOT_PROGRESS"] == "plain"
            ? .plain(period: 10) : ProgressLine.standardOutputStyle(period: 10)
        var progress = EvalProgress(total: shard.count, worldSize: comm.size, style: style)
        let start = Date()
        for (n, index) in shard.enumerated() {
            let t0 = Date()
            let sample = try load(index)
            var noRNG = RNG(seed: 0)
            let resized = try resize.apply(sample, rng: &noRNG)
            let batch = Batch.collate([resized])
            let prediction: MaskPrediction = withNoGrad { model(batch.images).predictions.last! }
            let size = InferenceImageSize(paddedHeight: batch.paddedSize.height, paddedWidth: batch.paddedSize.width,
                                          imageHeight: resized.image.height, imageWidth: resized.image.width,
                                          outputHeight: sample.image.height, outputWidth: sample.image.width)
            let result = post(prediction, sizes: [size])[0]
            let context = "image \(sample.imageId)"
            switch task {
            case .semantic:
                guard case .semantic(let gt) = sample.targets, let sem = result.semantic else {
                    throw EvaluationError(root, "\(context): no semantic annotation or prediction")
                }
                try semantic.update(prediction: sem.labels, groundTruth: gt, context: context)
            case .instance:
                let cats = cocoInstances!.categories
                for inst in result.instances ?? [] {
                    let mask = BinaryMask(width: inst.width, height: inst.height, bits: inst.mask)
                    detections.append(COCOMaskAPDetection(imageID: sample.imageId, categoryID: cats[inst.label].id,
                                                          score: Double(inst.score), rle: COCORLE(mask: mask)))
                }
            case .panoptic:
                guard case .panoptic(let gt) = sample.targets, let pan = result.panoptic else {
                    throw EvaluationError(root, "\(context): no panoptic annotation or prediction")
                }
                let pred = PanopticPrediction(
                    width: pan.width, height: pan.height, ids: pan.ids.map { UInt32(max(0, $0)) },
                    segments: pan.segments.map { PanopticPrediction.Segment(id: UInt32($0.id), classIndex: $0.categoryId) })
                try panoptic.update(groundTruth: gt, prediction: pred, context: context)
            }
            if comm.isCoordinator {
                ProgressLine.emit(progress.update(done: n + 1, seconds: Date().timeIntervalSince(t0)))
            }
        }
        if comm.isCoordinator { ProgressLine.emit(progress.finish()) }
        let elapsed = Date().timeIntervalSince(start)

        // Gather every rank's evaluator state on rank 0 (all ranks receive it; only rank 0 uses it).
        let state: String
        switch task {
        case .semantic: state = semantic.confusion.map(String.init).joined(separator: ",")
        case .panoptic: state = try encodeJSON(panoptic.stats.map { [$0.iouSum, Double($0.truePositives), Double($0.falsePositives), Double($0.falseNegatives)] })
        case .instance: state = try encodeJSON(detections.map(SerializedDetection.init))
        }
        let states = try comm.allGather(state)
        guard comm.isCoordinator else { return }

        var results: [String: Any] = ["task": "\(task)", "split": split, "images": numImages, "weights": weights,
                                       "world_size": comm.size]
        switch task {
        case .semantic:
            var merged = SemanticEvaluator(numClasses: numClasses)
            for s in states {
                let confusion = s.isEmpty ? [] : s.split(separator: ",").map { Int64($0)! }
                try merged.merge(try SemanticEvaluator(numClasses: numClasses, confusion: confusion))
            }
            let r = merged.result()
            print(String(format: "mIoU  %6.2f\nfwIoU %6.2f\npACC  %6.2f\nmACC  %6.2f",
                         100 * r.meanIoU, 100 * r.frequencyWeightedIoU, 100 * r.pixelAccuracy, 100 * r.meanClassAccuracy))
            results["mIoU"] = 100 * r.meanIoU
            results["fwIoU"] = 100 * r.frequencyWeightedIoU
            results["pACC"] = 100 * r.pixelAccuracy
            results["mACC"] = 100 * r.meanClassAccuracy
            results["per_class_IoU"] = r.perClassIoU.map { $0.map { 100 * $0 } as Any? ?? NSNull() }
        case .panoptic:
            let isThing = panopticDataset!.categories.map(\.isThing)
            var merged = PanopticEvaluator(isThing: isThing)
            for s in states {
                let rows = try JSONDecoder().decode([[Double]].self, from: s.data(using: .utf8)!)
                let stats = rows.map { PanopticCategoryStat(iouSum: $0[0], truePositives: Int($0[1]), falsePositives: Int($0[2]),
                                                            falseNegatives: Int($0[3])) }
                try merged.merge(try PanopticEvaluator(isThing: isThing, stats: stats))
            }
            let r = merged.result()
            for (name, s) in [("All", r.all), ("Things", r.things), ("Stuff", r.stuff)] {
                print(name.padding(toLength: 8, withPad: " ", startingAt: 0)
                      + String(format: " PQ %6.2f  SQ %6.2f  RQ %6.2f  N %d", 100 * s.pq, 100 * s.sq, 100 * s.rq, s.count))
                let suffix = name == "All" ? "" : "_" + name.lowercased()
                results["PQ" + suffix] = 100 * s.pq
                results["SQ" + suffix] = 100 * s.sq
                results["RQ" + suffix] = 100 * s.rq
            }
        case .instance:
            let ds = cocoInstances!
            var all: [COCOMaskAPDetection] = []
            for s in states {
                all += try JSONDecoder().decode([SerializedDetection].self, from: s.data(using: .utf8)!).map(\.detection)
            }
            let imageIDs = ds.images.prefix(numImages).map(\.id)
            let evaluated = Set(imageIDs)
            let gt = try COCOMaskAP.groundTruth(from: ds).filter { evaluated.contains($0.imageID) }
            let r = try COCOMaskAP.evaluate(imageIDs: imageIDs, categoryIDs: ds.categories.map(\.id), groundTruth: gt, detections: all)
            print("COCO mask AP: \(all.count) detections, \(imageIDs.count) images")
            for (i, v) in r.stats.enumerated() {
                let name = COCOMaskAPResult.names[i]
                print(name.padding(toLength: 6, withPad: " ", startingAt: 0) + String(format: " %6.2f", 100 * v))
                results[COCOMaskAPResult.names[i]] = 100 * v
            }
            if let output {
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
                try writeCOCOInstanceResults(all, to: "\(output)/coco_instances_results.json")
            }
        }
        print(String(format: "evaluated %d image(s) in %.1f s on %d rank(s)", numImages, elapsed, comm.size))
        if let output {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            let data = try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: "\(output)/results.json"))
            print("wrote \(output)/results.json")
        }
    }
}

/// A detection as gathered between ranks: uncompressed RLE counts, the score exactly (JSON round-trips a Double).
private struct SerializedDetection: Codable {
    var image: Int, category: Int, score: Double, height: Int, width: Int, counts: [UInt32]
    init(_ d: COCOMaskAPDetection) {
        image = d.imageID; category = d.categoryID; score = d.score
        height = d.rle.height; width = d.rle.width; counts = d.rle.counts
    }
    var detection: COCOMaskAPDetection {
        COCOMaskAPDetection(imageID: image, categoryID: category, score: score,
                            rle: COCORLE(height: height, width: width, counts: counts))
    }
}

private func encodeJSON<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
}

/// Rank 0's evaluation progress: `eval  12/250  3.1 img/s  ETA 1m17s`, images/s for all ranks (rank 0's
/// rate × world size, the shards being equal to within one image), redrawn in place on a terminal.
struct EvalProgress {
    let total: Int, worldSize: Int, style: ProgressLine.Style
    private var secondsPerImage: Double?
    private var drawn = false, lastPrinted = 0, last = 0

    init(total: Int, worldSize: Int, style: ProgressLine.Style) {
        self.total = total; self.worldSize = worldSize; self.style = style
    }

    mutating func update(done: Int, seconds: Double) -> String? {
        if seconds.isFinite && seconds > 0 { secondsPerImage = secondsPerImage.map { 0.9 * $0 + 0.1 * seconds } ?? seconds }
        last = done
        switch style {
        case .terminal:
            drawn = true; lastPrinted = done
            return "\r" + line(done) + "\u{1B}[K"
        case .plain(let period):
            guard done == 1 || done % period == 0 || done == total else { return nil }
            lastPrinted = done
            return line(done) + "\n"
        }
    }

    mutating func finish() -> String? {
        switch style {
        case .terminal: return drawn ? "\n" : nil
        case .plain: return last > 0 && lastPrinted != last ? line(last) + "\n" : nil
        }
    }

    func line(_ done: Int) -> String {
        let rate = secondsPerImage.map { String(format: "%.3g", Double(worldSize) / $0) } ?? "-"
        let eta = secondsPerImage.map { ProgressLine.duration(ProgressLine.eta(remainingSteps: total - done, secondsPerStep: $0)) } ?? "-"
        return "eval  \(done)/\(total)  \(rate) img/s  ETA \(eta)"
    }
}
