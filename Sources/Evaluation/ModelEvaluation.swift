// Evaluating a model on a dataset split, shared by `maskpilot eval` and the periodic evaluation during training:
// ranks run disjoint shards of the split (test-time resize, forward, post-processing), the evaluator states are
// gathered on rank 0, and rank 0 gets the metrics. Corresponds to detectron2's inference_on_dataset with
// SemSegEvaluator / COCOEvaluator (segm) / COCOPanopticEvaluator, plus MP-Former's layer-consistency metrics.
import Datasets
import Distributed
import Foundation
import Kernels
import Mask2FormerModel
import TensorCore

/// What a split is scored on: from the dataset format (ADE20K → semantic, COCO instances → instance, COCO panoptic
/// → panoptic).
public enum EvaluationTask: String, Sendable, CaseIterable { case semantic, instance, panoptic }

/// A split opened for evaluation by its dataset format: its images, classes, post-processing and a factory of its
/// evaluator.
public struct EvaluationData {
    /// Images in the split.
    public var count: Int
    public var load: (Int) throws -> Sample
    /// Display name of each class index.
    public var classNames: [String]
    /// The dataset's category id of each class index (COCO formats), nil for ADE20K.
    public var categoryIDs: [Int]?
    public var postProcessor: Mask2FormerPostProcessor
    /// The dataset's id of image `index`.
    public var imageID: (Int) -> Int
    /// A fresh evaluator for the first `count` images.
    public var makeEvaluator: (_ count: Int) -> any TaskEvaluator
    /// What opening the split dropped under `data.on_bad_sample: skip`, for the log.
    public var notes: [String] = []

    public init(count: Int, load: @escaping (Int) throws -> Sample, classNames: [String], categoryIDs: [Int]?,
                postProcessor: Mask2FormerPostProcessor, imageID: @escaping (Int) -> Int,
                makeEvaluator: @escaping (_ count: Int) -> any TaskEvaluator, notes: [String] = []) {
        self.count = count; self.load = load; self.classNames = classNames; self.categoryIDs = categoryIDs
        self.postProcessor = postProcessor; self.imageID = imageID; self.makeEvaluator = makeEvaluator; self.notes = notes
    }
}

/// A dataset split opened for inference: its images, ground truth, test-time resize and post-processing.
public struct EvaluationSplit: @unchecked Sendable {
    public let task: EvaluationTask
    public let root: String
    public let split: String
    /// Images evaluated: the first `count` of the split.
    public let count: Int
    public let resize: TestTimeResize
    public let postProcessor: Mask2FormerPostProcessor
    /// Display name of each class index.
    public let classNames: [String]
    /// The dataset's category id of each class index (COCO formats), nil for ADE20K.
    public let categoryIDs: [Int]?
    /// What opening the split dropped under `data.on_bad_sample: skip`, for the log.
    public let notes: [String]
    let data: EvaluationData

    /// The first `maxImages` images of `data` (0 = all), read from `root`'s split `split`. Throws when that leaves
    /// no image.
    public init(data: EvaluationData, task: EvaluationTask, root: String, split: String, resize: TestTimeResize,
                maxImages: Int) throws {
        self.data = data
        self.task = task
        classNames = data.classNames; categoryIDs = data.categoryIDs; postProcessor = data.postProcessor; notes = data.notes
        self.resize = resize
        count = maxImages > 0 ? min(data.count, maxImages) : data.count
        self.root = root
        self.split = split
        guard count > 0 else { throw EvaluationError(root, "split \(split) has no images to evaluate") }
    }

    /// Image `index` of the split with its ground truth.
    public func sample(_ index: Int) throws -> Sample { try data.load(index) }

    /// A fresh evaluator of this split's task.
    public func makeEvaluator() -> any TaskEvaluator { data.makeEvaluator(count) }

    /// The dataset's id of image `index` (COCO: its `id`; ADE20K: its number in the file name).
    func imageID(_ index: Int) -> Int { data.imageID(index) }
}

/// How an evaluation runs besides its split (from the run's configuration).
public struct EvaluationOptions: Sendable {
    /// Also compute MP-Former's layer-consistency metrics (mIoU-L_i, Util_i) over every decoder prediction.
    public var layerConsistency: Bool
    /// Decoder layers of the model (its predictions: the one before the first layer + one per layer).
    public var decoderLayers: Int
    /// The matcher of the layer-consistency metrics (the criterion's cost weights).
    public var matcher: HungarianMatcher
    /// Points the layer-consistency matcher samples per image.
    public var numPoints: Int
    /// The run's seed; the layer-consistency points come from its `RandomStreams.layerConsistency` stream.
    public var seed: UInt64
    /// Leave out (and list) images that cannot be read instead of failing (`data.on_bad_sample: skip`).
    public var skipBadImages: Bool
    /// The precision of the model's matrix products (post-processing and the metrics stay fp32).
    public var precision: GEMMPrecision

    /// Semantic test-time augmentation (nil: the single test-time resize).
    public var augmentation: TestTimeAugmentation?
    public init(layerConsistency: Bool, decoderLayers: Int, matcher: HungarianMatcher, numPoints: Int, seed: UInt64,
                skipBadImages: Bool, precision: GEMMPrecision = .fp32, augmentation: TestTimeAugmentation? = nil) {
        self.layerConsistency = layerConsistency; self.decoderLayers = decoderLayers; self.matcher = matcher
        self.numPoints = numPoints; self.seed = seed; self.skipBadImages = skipBadImages; self.precision = precision
        self.augmentation = augmentation
    }
}

/// Watches rank 0's shard being evaluated (a progress line, say).
public protocol EvaluationObserver {
    /// `done` of the shard's `total` images are evaluated; the last took `seconds`.
    mutating func imageEvaluated(done: Int, total: Int, seconds: Double)
    /// The shard is finished.
    mutating func finished()
}

/// An image evaluation left out under `data.on_bad_sample: skip`.
struct SkippedImage: Codable {
    var index: Int
    var imageID: Int
    var problem: String
}

/// One image through the network: the resized input batch, every decoder layer's predictions (the last is the
/// final one) and the post-processed result at the original image size.
public struct InferenceOutput {
    public var batch: Batch
    public var predictions: [MaskPrediction]
    public var result: InferenceResult
}

/// Test-time resize, forward without gradients (its matrix products in `precision`) and post-processing (fp32) of one
/// image (`model` must be in eval mode). An image whose post-processing at its original size cannot fit in memory
/// (`memoryBytes`) is an `EvaluationError` naming `context` (its file or dataset record) before anything runs.
/// With `augmentation` the semantic result averages the scores of its passes instead; the single test-time resize's
/// forward then runs only when `predictions` are needed (the layer-consistency metrics), else `predictions` is empty.
public func infer(_ model: Mask2Former, sample: Sample, resize: TestTimeResize, postProcessor: Mask2FormerPostProcessor,
                  precision: GEMMPrecision = .fp32, augmentation: TestTimeAugmentation? = nil, needsPredictions: Bool = true,
                  context: String, memoryBytes: Int = physicalMemoryBytes()) throws -> InferenceOutput {
    let (h, w) = (sample.image.height, sample.image.width)
    let queries = model.config.decoder.numQueries
    var need = postProcessor.bytesLowerBound(queries: queries, classes: model.config.decoder.numClasses,
                                             outputHeight: h, outputWidth: w)
    if augmentation != nil { need += 4 * Double(model.config.decoder.numClasses) * Double(h) * Double(w) }   // the running sum
    let memory = memoryBytes
    guard memory <= 0 || need <= Double(memory) else {
        throw EvaluationError(context, String(format: "the %d×%d image's post-processing at its original size needs at least %.1f GB "
                                              + "(%d queries), more than this machine's %.1f GB", w, h, need / 1e9,
                                              queries, Double(memory) / 1e9))
    }
    // The model's input: the largest test-time resize of the image (padded to 32), the forward pass's predictions and
    // the post-processing at the resized size.
    let resizes = augmentation.map { a in postProcessor.config.semanticOn ? a.passes.map(\.resize) : [resize] } ?? [resize]
    var largest = (height: 0, width: 0, bytes: 0.0)
    for r in resizes {
        let o = shortestEdgeResize(sample.image.size, shortEdge: r.shortEdge, maxSize: r.maxSize).output
        let ph = (o.height + 31) / 32 * 32, pw = (o.width + 31) / 32 * 32
        let bytes = model.config.inferenceBytesLowerBound(batch: 1, paddedHeight: ph, paddedWidth: pw)
            + postProcessor.resizedBytesLowerBound(queries: queries, imageHeight: o.height, imageWidth: o.width)
        if bytes > largest.bytes { largest = (ph, pw, bytes) }
    }
    let inputNeed = largest.bytes
    guard memory <= 0 || inputNeed <= Double(memory) else {
        throw EvaluationError(context, String(format: "the %d×%d image resized for the model to %d×%d (input.min_size_test / max_size_test, "
                                              + "or eval.tta_min_sizes / tta_max_size) needs at least %.1f GB (%d queries), more than "
                                              + "this machine's %.1f GB", w, h, largest.width, largest.height, inputNeed / 1e9, queries,
                                              Double(memory) / 1e9))
    }
    var noRNG = RNG(seed: 0)
    let resized = try resize.apply(sample, rng: &noRNG)
    let batch = Batch.collate([resized], normalization: model.config.pixelNormalization)
    if let augmentation, postProcessor.config.semanticOn {
        let predictions: [MaskPrediction] = needsPredictions
            ? withGEMMPrecision(precision) { withNoGrad { model(batch.images).predictions } } : []
        let scores = try augmentedSemanticScores(model, sample: sample, augmentation: augmentation, postProcessor: postProcessor,
                                                 precision: precision, context: context)
        return InferenceOutput(batch: batch, predictions: predictions,
                               result: InferenceResult(semantic: MaskPostProcessing.semanticResult(scores: scores)))
    }
    let predictions: [MaskPrediction] = withGEMMPrecision(precision) { withNoGrad { model(batch.images).predictions } }
    try requireFinite(predictions.last!, context: context)
    let size = InferenceImageSize(paddedHeight: batch.paddedSize.height, paddedWidth: batch.paddedSize.width,
                                  imageHeight: resized.image.height, imageWidth: resized.image.width,
                                  outputHeight: sample.image.height, outputWidth: sample.image.width)
    let result = postProcessor(predictions.last!, sizes: [size])[0]
    return InferenceOutput(batch: batch, predictions: predictions, result: result)
}

/// A final prediction whose class or mask logits hold a NaN or an infinity (weights of huge magnitude, or a diverged
/// model) is an `EvaluationError` naming `context`: its scores would otherwise reach the metrics and the result files.
func requireFinite(_ prediction: MaskPrediction, context: String) throws {
    for (name, t) in [("class", prediction.classLogits), ("mask", prediction.maskLogits)] {
        let p = t.data
        for i in 0..<t.count where !p[i].isFinite {
            throw EvaluationError(context, "the model's \(name) logits hold \(p[i]) (value \(i) of \(t.count)): its weights are of "
                                  + "huge magnitude or come from a diverged run")
        }
    }
}

/// The mean semantic scores `[K, H, W]` (the original image's size) over `augmentation`'s passes: each pass resizes
/// the (mirrored) image, runs the model and post-processes its final prediction to scores at the original size,
/// mirrored back — Mask2Former's `SemanticSegmentorWithTTA`, which averages the `sem_seg` outputs.
public func augmentedSemanticScores(_ model: Mask2Former, sample: Sample, augmentation: TestTimeAugmentation,
                             postProcessor: Mask2FormerPostProcessor, precision: GEMMPrecision,
                             context: String = "the image") throws -> Tensor {
    let (h, w) = (sample.image.height, sample.image.width)
    let k = model.config.decoder.numClasses
    let mean = Tensor.zeros([k, h, w])   // the running sum, then the mean, in place
    let sum = mean.data
    var noRNG = RNG(seed: 0)
    let passes = augmentation.passes
    for (resize, flipped) in passes {
        let image = flipped ? sample.image.flippedHorizontally() : sample.image
        let resized = try resize.apply(Sample(imageId: sample.imageId, image: image, targets: .none), rng: &noRNG)
        let batch = Batch.collate([resized], normalization: model.config.pixelNormalization)
        let last = withGEMMPrecision(precision) { withNoGrad { model(batch.images).predictions.last! } }
        try requireFinite(last, context: context)
        let size = InferenceImageSize(paddedHeight: batch.paddedSize.height, paddedWidth: batch.paddedSize.width,
                                      imageHeight: resized.image.height, imageWidth: resized.image.width, outputHeight: h, outputWidth: w)
        let q = last.classLogits.shape[1], mh = last.maskLogits.shape[2], mw = last.maskLogits.shape[3]
        let scores = postProcessor.semanticScores(classLogits: last.classLogits.reshaped([q, last.classLogits.shape[2]]),
                                                  maskLogits: last.maskLogits.reshaped([q, mh, mw]), size: size)
        let s = scores.data
        for c in 0..<k {
            for y in 0..<h {
                let row = (c * h + y) * w
                if flipped { for x in 0..<w { sum[row + x] += s[row + w - 1 - x] } }
                else { for x in 0..<w { sum[row + x] += s[row + x] } }
            }
        }
    }
    let n = Float(passes.count)
    for i in 0..<(k * h * w) { sum[i] /= n }
    return mean
}

/// The outcome of an evaluation, on rank 0.
public struct EvaluationOutcome {
    public var task: EvaluationTask
    public var images: Int
    public var seconds: Double
    /// The headline numbers in print order (percentages): mIoU…, AP…, PQ…, then `mIoU-L_i` / `Util_i` per layer.
    public var scalars: [(name: String, value: Double)]
    /// Everything, as written to results.json (per-class values, the layer table, the run's facts).
    public var json: [String: Any]
    /// The human-readable summary (metric lines and the layer table).
    public var text: String
}

/// Evaluates models on one split; `run` is called on every rank and returns the outcome on rank 0 (nil elsewhere).
public struct ModelEvaluation {
    public let split: EvaluationSplit
    public let options: EvaluationOptions

    public init(split: EvaluationSplit, options: EvaluationOptions) {
        self.split = split
        self.options = options
    }

    /// The names of the scalars `run` reports (`EvaluationOutcome.scalars`), in order.
    public var metricNames: [String] {
        var names = split.makeEvaluator().metricNames
        if options.layerConsistency {
            let layers = options.decoderLayers
            names += (0..<max(0, layers - 1)).map { "mIoU-L_\($0)" } + (0..<layers).map { "Util_\($0)" }
        }
        return names
    }

    /// Runs the evaluation. With `outputDirectory`, rank 0 writes `results.json` and the predictions in the
    /// official formats: `coco_instances_results.json` (instance), `panoptic_predictions.json` + PNG folder
    /// (panoptic), `semantic/<annotation name>` label PNGs holding class + 1
    /// (semantic, ADE20K's encoding). `observer` (rank 0's) watches rank 0's shard.
    public func run(model: Mask2Former, communicator comm: any Communicator, outputDirectory: String? = nil,
                    observer: (any EvaluationObserver)? = nil) throws -> EvaluationOutcome? {
        let split = self.split
        let wasTraining = model.isTraining
        model.eval()
        defer { if wasTraining { model.train() } }
        let shard = try InferenceSampler(datasetSize: split.count, worldSize: comm.size, rank: comm.rank).indices()
        var evaluator = split.makeEvaluator()
        // Prediction files are encoded where they are predicted and written by rank 0 alone, so `outputDirectory` need
        // not be on a file system every node shares.
        var files: [PredictionFile]? = outputDirectory == nil ? nil : []
        let layers = options.decoderLayers
        var consistency = LayerConsistencyEvaluator(layers: layers)
        if let outputDirectory {
            do { try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true) } catch {
                throw EvaluationError(outputDirectory, "cannot create folder: \(error.localizedDescription)")
            }
        }
        var observer = comm.isCoordinator ? observer : nil
        let start = Date()
        // Under data.on_bad_sample: skip, an image that cannot be read is left out (and listed), as in training.
        var skipped: [SkippedImage] = []
        for (n, index) in shard.enumerated() {
            let t0 = Date()
            let sample: Sample
            do { sample = try split.sample(index) } catch let e as DataError where options.skipBadImages {
                skipped.append(SkippedImage(index: index, imageID: split.imageID(index), problem: e.description))
                continue
            }
            let context = "\(split.root) \(split.split) image \(sample.imageId)"
            let out = try infer(model, sample: sample, resize: split.resize, postProcessor: split.postProcessor,
                                precision: options.precision, augmentation: options.augmentation,
                                needsPredictions: options.layerConsistency, context: context)
            try evaluator.update(EvaluatedImage(index: index, imageID: sample.imageId, targets: sample.targets, result: out.result,
                                                context: context), files: &files)
            if options.layerConsistency {
                try updateConsistency(&consistency, output: out, imageId: sample.imageId, context: context)
            }
            observer?.imageEvaluated(done: n + 1, total: shard.count, seconds: Date().timeIntervalSince(t0))
        }
        observer?.finished()
        let elapsed = Date().timeIntervalSince(start)

        // Every rank's states, gathered on rank 0 (the coordinator), which merges them into fresh evaluators.
        let root = 0
        let states = try comm.gather(try evaluator.encodedState(), root: root)
        let consistencyStates = try comm.gather(try encodeJSONText(ConsistencyState(consistency)), root: root)
        let fileStates = try comm.gather(try encodeJSONText(files ?? []), root: root)
        let skippedStates = try comm.gather(try encodeJSONText(skipped), root: root)
        guard let states, let consistencyStates, let fileStates, let skippedStates else { return nil }
        let allSkipped = try skippedStates.flatMap { try decodeJSONText([SkippedImage].self, $0) }.sorted { $0.index < $1.index }
        if let outputDirectory {
            for state in fileStates {
                for f in try decodeJSONText([PredictionFile].self, state) { try writeFile(f.png, to: "\(outputDirectory)/\(f.path)") }
            }
        }
        var merged = split.makeEvaluator()
        for state in states { try merged.merge(encodedState: state) }
        let report = try merged.report(outputDirectory: outputDirectory, skippedImageIDs: Set(allSkipped.map(\.imageID)))

        var json: [String: Any] = ["task": split.task.rawValue, "split": split.split, "images": split.count - allSkipped.count,
                                   "world_size": comm.size, "seconds": elapsed]
        var scalars = report.scalars
        var lines: [String] = split.notes
        if let a = options.augmentation, split.task == .semantic {
            json["test_time_augmentation"] = ["min_sizes": a.minSizes, "max_size": a.maxSize, "flip": a.flip] as [String: Any]
            lines.append("test-time augmentation: short edges \(a.minSizes.map(String.init).joined(separator: ", ")), longest ≤ \(a.maxSize)"
                         + (a.flip ? ", each also mirrored" : "") + " (\(a.passes.count) passes per image, scores averaged)")
        }
        if !allSkipped.isEmpty {
            json["skipped_images"] = allSkipped.map { ["image_id": $0.imageID, "problem": $0.problem] as [String: Any] }
            lines.append("skipped \(allSkipped.count) unreadable image(s) (data.on_bad_sample: skip): "
                         + allSkipped.prefix(5).map { "image \($0.imageID): \($0.problem)" }.joined(separator: "; ")
                         + (allSkipped.count > 5 ? "; …" : ""))
        }
        lines += report.lines
        for (key, value) in report.json { json[key] = value }
        for s in scalars { json[s.name] = s.value }
        if options.layerConsistency {
            var merged = LayerConsistencyEvaluator(layers: layers)
            for s in consistencyStates { try merged.merge(try decodeJSONText(ConsistencyState.self, s).evaluator(layers: layers)) }
            json["layer_consistency"] = merged.jsonObject()
            for r in merged.result() {
                if let m = r.mIoU { scalars.append(("mIoU-L_\(r.layer)", 100 * m)) }
                if let u = r.util { scalars.append(("Util_\(r.layer)", 100 * u)) }
            }
            lines.append("layer consistency (MP-Former's mIoU-L_i and Util_i, docs/model.md; layer \(layers - 1) is the final prediction):")
            lines.append(merged.table())
        }
        lines.append(String(format: "evaluated %d image(s) in %.1f s on %d rank(s)", split.count, elapsed, comm.size))
        if let outputDirectory {
            let path = "\(outputDirectory)/results.json"
            do {
                let data = try JSONSerialization.data(withJSONObject: jsonSafe(json), options: [.prettyPrinted, .sortedKeys])
                try data.write(to: URL(fileURLWithPath: path))
            } catch {
                throw EvaluationError(path, "cannot write the results: \(error.localizedDescription)")
            }
        }
        return EvaluationOutcome(task: split.task, images: split.count, seconds: elapsed, scalars: scalars, json: json,
                                 text: lines.joined(separator: "\n"))
    }

    /// Matches every layer's predictions of the image to its ground truth (resized with the image, at the padded
    /// input size) on points drawn from a stream keyed by the image id, so the numbers do not depend on the ranks.
    func updateConsistency(_ evaluator: inout LayerConsistencyEvaluator, output: InferenceOutput, imageId: Int,
                           context: String) throws {
        let labels = output.batch.targets[0].labels
        let masks = output.batch.maskTensor(0)
        var rng = RNG(seed: options.seed &+ RandomStreams.layerConsistency, stream: UInt64(truncatingIfNeeded: imageId))
        let points = Tensor.uniform([options.numPoints, 2], rng: &rng)
        var logits: [Tensor] = [], matches: [[(query: Int, target: Int)]] = []
        for p in output.predictions {
            let q = p.maskLogits.shape[1]
            let classLogits = p.classLogits.reshaped([q, p.classLogits.shape[2]])
            let maskLogits = p.maskLogits.reshaped([q, p.maskLogits.shape[2], p.maskLogits.shape[3]])
            let m = labels.isEmpty ? MatchIndices.empty
                : options.matcher.match(classLogits: classLogits, maskLogits: maskLogits, labels: labels, masks: masks, points: points)
            logits.append(maskLogits)
            matches.append(zip(m.queries, m.targets).map { (query: $0.0, target: $0.1) })
        }
        try evaluator.update(maskLogits: logits, matches: matches, context: context)
    }
}

/// A layer-consistency evaluator's counts as gathered between ranks.
private struct ConsistencyState: Codable {
    var iouSum: [Double], iouCount: [Int], keptCount: [Int], matchedCount: [Int], images: Int
    init(_ e: LayerConsistencyEvaluator) {
        iouSum = e.iouSum; iouCount = e.iouCount; keptCount = e.keptCount; matchedCount = e.matchedCount; images = e.images
    }
    func evaluator(layers: Int) throws -> LayerConsistencyEvaluator {
        try LayerConsistencyEvaluator(layers: layers, iouSum: iouSum, iouCount: iouCount, keptCount: keptCount,
                                      matchedCount: matchedCount, images: images)
    }
}

/// JSON has no NaN or infinity: such numbers become the strings "nan", "inf", "-inf" (as in metrics.jsonl).
func jsonSafe(_ value: Any) -> Any {
    switch value {
    case let d as Double where !d.isFinite: return d.isNaN ? "nan" : (d > 0 ? "inf" : "-inf")
    case let map as [String: Any]: return map.mapValues(jsonSafe)
    case let list as [Any]: return list.map(jsonSafe)
    default: return value
    }
}
