// The run's configuration turned into an evaluation (the engine is Evaluation's `ModelEvaluation`): the split from
// `config.data.format.descriptor`, the options from `eval`, `loss` and `model`, and rank 0's progress line.
import Datasets
import Evaluation
import Foundation
import Mask2FormerModel
import TensorCore

extension EvaluationSplit {
    /// Opens `split` (default `eval.split`, else `data.test_split`) of `config.data`, limited to `maxImages`
    /// (default `eval.max_images`; 0 = all), with the format's test-time resize unless `input.min_size_test` /
    /// `max_size_test` set it. Throws naming the file when the split cannot be read, is empty, or its class count
    /// differs from the model's.
    public init(config: MaskPilotConfig, split: String? = nil, maxImages: Int? = nil) throws {
        let split = split ?? (config.eval.split.isEmpty ? config.data.testSplit : config.eval.split)
        let format = config.data.format.descriptor
        var resize = TestTimeResize(config: config)
        resize.keepTargets = config.eval.layerConsistency
        try self.init(data: try format.evaluationData(config: config, split: split), task: format.task,
                      root: config.data.root, split: split, resize: resize, maxImages: maxImages ?? config.eval.maxImages)
    }
}

extension TestTimeResize {
    /// The data format's test-time resize, or `input.min_size_test` / `max_size_test` where they are set.
    public init(config: MaskPilotConfig) {
        let format = config.data.format.descriptor.testResize
        self.init(shortEdge: config.input.minSizeTest > 0 ? config.input.minSizeTest : format.shortEdge,
                  maxSize: config.input.maxSizeTest > 0 ? config.input.maxSizeTest : format.maxSize)
    }
}

extension TestTimeAugmentation {
    /// `eval.tta`'s augmentation: the format's, with `eval.tta_min_sizes` / `tta_max_size` where set and `tta_flip`;
    /// nil when `eval.tta` is off or the format has none.
    public init?(config: MaskPilotConfig) {
        guard config.eval.tta, let format = config.data.format.descriptor.testAugmentation else { return nil }
        let e = config.eval
        self.init(minSizes: e.ttaMinSizes.isEmpty ? format.minSizes : e.ttaMinSizes, maxSize: e.ttaMaxSize > 0 ? e.ttaMaxSize : format.maxSize,
                  flip: e.ttaFlip)
    }
}

/// The model of `config` in eval mode with every tensor from `weights` (a checkpoint, weights file, .safetensors or run
/// folder); a file that lacks any model tensor is an error, since those would keep random values.
public func loadInferenceModel(config: MaskPilotConfig, weights: String) throws -> Mask2Former {
    var rng = RNG(seed: config.seed, stream: 0)
    let model = Mask2Former(config.model, rng: &rng)
    model.eval()
    let report = try loadPretrainedWeights(into: model, path: weights, ignore: [], option: "--weights")
    guard report.missing.isEmpty else {
        throw TrainingError("\(weights): \(report.missing.count) tensor(s) of the model are not in the file (e.g. "
                            + "\(report.missing.prefix(3).joined(separator: ", "))); they would keep random values")
    }
    return model
}

extension EvaluationOptions {
    /// The options of `config`: `eval.layer_consistency`, the decoder's depth, the criterion's matcher weights and
    /// point count, the seed, `data.on_bad_sample`, `solver.precision`.
    public init(config: MaskPilotConfig) {
        self.init(layerConsistency: config.eval.layerConsistency, decoderLayers: config.model.decoder.decLayers,
                  matcher: HungarianMatcher(classWeight: Float(config.loss.classWeight), maskWeight: Float(config.loss.maskWeight),
                                            diceWeight: Float(config.loss.diceWeight)),
                  numPoints: config.loss.numPoints, seed: config.seed, skipBadImages: config.data.onBadSample == .skip,
                  precision: config.solver.precision, augmentation: TestTimeAugmentation(config: config))
    }
}

extension ModelEvaluation {
    /// The evaluation `config` describes, on `split` (default `eval.split`, else `data.test_split`) limited to
    /// `maxImages` (default `eval.max_images`).
    public init(config: MaskPilotConfig, split: String? = nil, maxImages: Int? = nil) throws {
        self.init(split: try EvaluationSplit(config: config, split: split, maxImages: maxImages),
                  options: EvaluationOptions(config: config))
    }
}

/// Rank 0's evaluation progress: `eval  12/250  3.1 img/s  ETA 1m17s`, images/s for all ranks (rank 0's
/// rate × world size, the shards being equal to within one image), redrawn in place on a terminal. As an
/// `EvaluationObserver` it draws on `Console`.
public struct EvalProgress: EvaluationObserver {
    /// Images in rank 0's shard.
    public var total: Int
    let worldSize: Int, style: ProgressLine.Style, label: String
    private var secondsPerImage: Double?
    private var drawn = false, lastPrinted = 0, last = 0

    /// `total` is set by each `imageEvaluated` call.
    public init(worldSize: Int, style: ProgressLine.Style, label: String = "eval") {
        self.total = 0; self.worldSize = worldSize; self.style = style; self.label = label
    }

    public mutating func imageEvaluated(done: Int, total: Int, seconds: Double) {
        self.total = total
        Console.progress(update(done: done, seconds: seconds))
    }

    public mutating func finished() { Console.progress(finish()) }

    public mutating func update(done: Int, seconds: Double) -> String? {
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

    public mutating func finish() -> String? {
        switch style {
        case .terminal: return drawn ? "\n" : nil
        case .plain: return last > 0 && lastPrinted != last ? line(last) + "\n" : nil
        }
    }

    public func line(_ done: Int) -> String {
        let rate = secondsPerImage.map { String(format: "%.3g", Double(worldSize) / $0) } ?? "-"
        let eta = secondsPerImage.map { ProgressLine.duration(ProgressLine.eta(remainingSteps: total - done, secondsPerStep: $0)) } ?? "-"
        return "\(label)  \(done)/\(total)  \(rate) img/s  ETA \(eta)"
    }
}
