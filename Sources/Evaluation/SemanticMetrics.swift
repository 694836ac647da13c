// SemanticEvaluator: semantic-segmentation metrics (mIoU, fwIoU, pixel accuracy, mean class accuracy, per-class IoU)
// from a K×K confusion matrix accumulated over images, with the ignore label excluded.
// Reference: detectron2 evaluation/sem_seg_evaluation.py (SemSegEvaluator.process / evaluate): ignore pixels dropped,
// acc_valid = pos_gt > 0, iou_valid = acc_valid ∧ union > 0, mIoU / mACC averaged over the valid classes,
// fwIoU = Σ_valid IoU·pos_gt/Σpos_gt, pACC = Σtp/Σpos_gt.
import Datasets

/// The metrics of a `SemanticEvaluator`. Ratios are in [0, 1] (detectron2 reports them ×100).
public struct SemanticResult: Sendable, Equatable {
    /// Mean IoU over classes that occur in the ground truth (detectron2's `iou_valid`); NaN when no pixel was scored.
    public var meanIoU: Double
    /// Frequency-weighted IoU: Σ over valid classes of IoU × (GT pixels of the class / all GT pixels).
    public var frequencyWeightedIoU: Double
    /// Pixel accuracy: correctly labelled pixels / scored pixels (ignore pixels excluded).
    public var pixelAccuracy: Double
    /// Mean over classes present in the ground truth of (correct pixels of the class / GT pixels of the class).
    public var meanClassAccuracy: Double
    /// Per-class IoU; nil for a class absent from the ground truth (excluded from the mean, as detectron2's NaN).
    public var perClassIoU: [Double?]
    /// Per-class accuracy (recall); nil for a class absent from the ground truth.
    public var perClassAccuracy: [Double?]
    /// Number of pixels scored (ground truth not the ignore label).
    public var scoredPixels: Int64
}

/// Accumulates a K×K confusion matrix (rows = ground truth, columns = prediction) over images.
/// Pixels whose ground truth is the ignore label are dropped (whatever was predicted there).
public struct SemanticEvaluator: Sendable, Equatable {
    public let numClasses: Int
    public let ignoreLabel: Int
    /// Row-major `[gt * numClasses + prediction]` pixel counts.
    public private(set) var confusion: [Int64]

    public init(numClasses: Int, ignoreLabel: Int = 255) {
        precondition(numClasses > 0, "SemanticEvaluator: numClasses must be positive")
        self.numClasses = numClasses; self.ignoreLabel = ignoreLabel
        confusion = [Int64](repeating: 0, count: numClasses * numClasses)
    }

    /// Rebuilds an evaluator from a confusion matrix (e.g. one gathered from another rank).
    public init(numClasses: Int, ignoreLabel: Int = 255, confusion: [Int64]) throws {
        guard confusion.count == numClasses * numClasses else {
            throw EvaluationError("semantic confusion matrix", "\(confusion.count) entries for \(numClasses) classes (expected \(numClasses * numClasses))")
        }
        self.init(numClasses: numClasses, ignoreLabel: ignoreLabel)
        self.confusion = confusion
    }

    /// Adds one image: `prediction` and `groundTruth` are row-major per-pixel class indices of the same size.
    /// Throws when the sizes differ, a prediction is outside 0..<numClasses, or a ground-truth label is neither
    /// a class nor the ignore label.
    public mutating func update<P: BinaryInteger, G: BinaryInteger>(prediction: [P], groundTruth: [G], context: String = "") throws {
        guard prediction.count == groundTruth.count else {
            throw EvaluationError(context, "prediction has \(prediction.count) pixels, ground truth \(groundTruth.count)")
        }
        let k = numClasses
        var local = [Int64](repeating: 0, count: k * k)
        for i in 0..<prediction.count {
            let g = Int(groundTruth[i])
            if g == ignoreLabel { continue }
            let p = Int(prediction[i])
            guard g >= 0 && g < k else {
                throw EvaluationError(context, "ground-truth label \(g) at pixel \(i) is not a class (0..<\(k)) nor the ignore label \(ignoreLabel)")
            }
            guard p >= 0 && p < k else {
                throw EvaluationError(context, "predicted class \(p) at pixel \(i) is outside 0..<\(k)")
            }
            local[g * k + p] += 1
        }
        for j in 0..<local.count { confusion[j] += local[j] }
    }

    /// Adds one image with a `LabelMap` ground truth (sizes must agree).
    public mutating func update<P: BinaryInteger>(prediction: [P], groundTruth: LabelMap, context: String = "") throws {
        try update(prediction: prediction, groundTruth: groundTruth.labels, context: context)
    }

    /// Adds one image given as two label maps of the same width and height.
    public mutating func update(prediction: LabelMap, groundTruth: LabelMap, context: String = "") throws {
        guard prediction.width == groundTruth.width && prediction.height == groundTruth.height else {
            throw EvaluationError(context, "prediction is \(prediction.width)×\(prediction.height), ground truth \(groundTruth.width)×\(groundTruth.height)")
        }
        try update(prediction: prediction.labels, groundTruth: groundTruth.labels, context: context)
    }

    /// Adds another evaluator's matrix (another rank's shard). Class count and ignore label must agree.
    public mutating func merge(_ other: SemanticEvaluator) throws {
        guard other.numClasses == numClasses && other.ignoreLabel == ignoreLabel else {
            throw EvaluationError("semantic merge", "\(other.numClasses) classes / ignore \(other.ignoreLabel) vs \(numClasses) / \(ignoreLabel)")
        }
        for j in 0..<confusion.count { confusion[j] += other.confusion[j] }
    }

    /// The metrics of everything accumulated so far.
    public func result() -> SemanticResult {
        let k = numClasses
        var tp = [Double](repeating: 0, count: k), posGT = tp, posPred = tp
        for g in 0..<k {
            for p in 0..<k {
                let c = Double(confusion[g * k + p])
                posGT[g] += c; posPred[p] += c
                if g == p { tp[g] = c }
            }
        }
        let total = posGT.reduce(0, +)
        var iou = [Double?](repeating: nil, count: k), acc = iou
        var iouSum = 0.0, iouN = 0, accSum = 0.0, accN = 0, fw = 0.0
        for c in 0..<k where posGT[c] > 0 {
            let a = tp[c] / posGT[c]
            acc[c] = a; accSum += a; accN += 1
            let union = posGT[c] + posPred[c] - tp[c]
            if union > 0 {
                let v = tp[c] / union
                iou[c] = v; iouSum += v; iouN += 1
                fw += v * posGT[c] / total
            }
        }
        return SemanticResult(
            meanIoU: iouN > 0 ? iouSum / Double(iouN) : .nan,
            frequencyWeightedIoU: total > 0 ? fw : .nan,
            pixelAccuracy: total > 0 ? tp.reduce(0, +) / total : .nan,
            meanClassAccuracy: accN > 0 ? accSum / Double(accN) : .nan,
            perClassIoU: iou, perClassAccuracy: acc, scoredPixels: Int64(total))
    }
}
