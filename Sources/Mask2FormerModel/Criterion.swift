// SetCriterion: Hungarian matching plus weighted CE and point-sampled BCE/dice losses, with deep supervision.
// Corresponds to Mask2Former modeling/criterion.py SetCriterion (loss_labels, loss_masks) and the HF port (docs/model.md#criterion).
import TensorCore

/// One supervised prediction of the decoder (with grad).
public struct MaskPrediction {
    /// `[B, Q, K+1]` class logits (last class = no-object).
    public var classLogits: Tensor
    /// `[B, Q, H, W]` mask logits at stride 4.
    public var maskLogits: Tensor

    public init(classLogits: Tensor, maskLogits: Tensor) {
        self.classLogits = classLogits
        self.maskLogits = maskLogits
    }
}

/// The ground truth of one image.
public struct MaskTargets {
    /// The N segment classes, each in `0..<K`.
    public var labels: [Int]
    /// `[N, Hgt, Wgt]` float 0/1 masks at input resolution (N may be 0).
    public var masks: Tensor

    public init(labels: [Int], masks: Tensor) {
        precondition(masks.rank == 3 && masks.shape[0] == labels.count,
                     "MaskTargets: masks \(masks.shape) [N,H,W] for \(labels.count) labels")
        self.labels = labels
        self.masks = masks
    }
}

/// What `SetCriterion` returns.
public struct CriterionOutput {
    /// Unweighted loss terms by name (scalars with grad): `loss_cross_entropy`, `loss_mask`,
    /// `loss_dice` for the final prediction and `…_{k}` for prediction k of the others.
    public var losses: [String: Tensor]
    /// The keys of `losses` in prediction order (ce, mask, dice per prediction).
    public var lossNames: [String]
    /// `Σ_k w_class·ce_k + w_mask·mask_k + w_dice·dice_k` (scalar with grad).
    public var total: Tensor
    /// `indices[k][b]`: the matched pairs of prediction k on image b.
    public var indices: [[MatchIndices]]
    /// The normaliser of the mask losses (after the hook and the clamp to ≥ 1).
    public var numMasks: Double
}

/// The Mask2Former set criterion (docs/model.md#criterion) over a list of predictions (deep supervision: each
/// prediction is matched and supervised on its own; the total sums all of them).
///
/// Per prediction:
/// - `loss_cross_entropy`: class-weighted mean CE over all B·Q queries (matched queries target their
///   GT label, the others class K "no-object" with weight `noObjectWeight`); not divided by num_masks.
/// - `loss_mask`, `loss_dice`: for the matched pairs, PointRend importance sampling: ⌊ratio·P⌋
///   uniform candidates are sampled under no-grad, the ⌊importance·P⌋ most uncertain (largest −|logit|,
///   `topk` order) are kept and P − ⌊importance·P⌋ random points appended; the GT masks are sampled
///   there under no-grad and the predicted logits with grad. `loss_mask = Σ_pairs mean_p BCE / num_masks`,
///   `loss_dice = Σ_pairs [1 − (2·Σσ(x)t + 1)/(Σσ(x) + Σt + 1)] / num_masks`.
///
/// `num_masks` is the batch's GT count, clamped to ≥ 1; a data-parallel caller passes the mean over ranks instead
/// (`callAsFunction(_:targets:points:numMasks:)`).
public struct SetCriterion {
    /// K, the number of classes without no-object.
    public var numClasses: Int
    public var matcher: HungarianMatcher
    public var classWeight: Float
    public var maskWeight: Float
    public var diceWeight: Float
    /// CE weight of the no-object class.
    public var noObjectWeight: Float
    /// P, points per mask (12544 for the real model).
    public var numPoints: Int
    public var oversampleRatio: Double
    public var importanceSampleRatio: Double

    /// Loss weights default to class 2, mask 5, dice 5 and are also the matcher's cost weights.
    public init(numClasses: Int, classWeight: Float = 2, maskWeight: Float = 5, diceWeight: Float = 5,
                noObjectWeight: Float = 0.1, numPoints: Int = 12544, oversampleRatio: Double = 3,
                importanceSampleRatio: Double = 0.75) {
        precondition(numClasses > 0 && numPoints > 0 && oversampleRatio >= 1
                     && importanceSampleRatio >= 0 && importanceSampleRatio <= 1,
                     "SetCriterion: K \(numClasses), P \(numPoints), oversample \(oversampleRatio), importance \(importanceSampleRatio)")
        self.numClasses = numClasses
        self.matcher = HungarianMatcher(classWeight: classWeight, maskWeight: maskWeight, diceWeight: diceWeight)
        self.classWeight = classWeight
        self.maskWeight = maskWeight
        self.diceWeight = diceWeight
        self.noObjectWeight = noObjectWeight
        self.numPoints = numPoints
        self.oversampleRatio = oversampleRatio
        self.importanceSampleRatio = importanceSampleRatio
    }

    /// ⌊ratio·P⌋ candidates per mask (Python `int(P * ratio)`).
    public var oversampledPointCount: Int { Int(Double(numPoints) * oversampleRatio) }
    /// ⌊importance·P⌋ most uncertain candidates kept per mask.
    public var uncertainPointCount: Int { Int(importanceSampleRatio * Double(numPoints)) }
    /// Random points appended per mask.
    public var randomPointCount: Int { numPoints - uncertainPointCount }

    /// The name of loss `base` (e.g. `loss_dice`) for prediction `k` of `count`: the final
    /// prediction (k = count − 1) is unsuffixed, the others get `_k`.
    public static func lossName(_ base: String, prediction k: Int, of count: Int) -> String {
        k == count - 1 ? base : "\(base)_\(k)"
    }

    /// The number of target masks in `targets` (Σ_b N_b), before any averaging over ranks.
    public static func targetCount(_ targets: [MaskTargets]) -> Double {
        Double(targets.reduce(0) { $0 + $1.labels.count })
    }

    /// Runs the criterion on `predictions` (first … final) against `targets` (one per image). `numMasks`, the mask
    /// losses' normaliser before clamping to ≥ 1, defaults to this batch's target count.
    public func callAsFunction(_ predictions: [MaskPrediction], targets: [MaskTargets],
                               points: PointSource, numMasks: Double? = nil) -> CriterionOutput {
        precondition(!predictions.isEmpty, "SetCriterion: no predictions")
        let normaliser = Swift.max(numMasks ?? SetCriterion.targetCount(targets), 1)
        var losses: [String: Tensor] = [:]
        var names: [String] = []
        var indices: [[MatchIndices]] = []
        var total: Tensor? = nil
        for (k, prediction) in predictions.enumerated() {
            let matched = match(prediction, targets: targets, predictionIndex: k, points: points)
            indices.append(matched)
            let ce = classificationLoss(prediction.classLogits, targets: targets, indices: matched)
            let (mask, dice) = maskLosses(prediction.maskLogits, targets: targets, indices: matched,
                                          numMasks: normaliser, predictionIndex: k, points: points)
            let terms = [("loss_cross_entropy", ce, classWeight), ("loss_mask", mask, maskWeight),
                         ("loss_dice", dice, diceWeight)]
            for (base, value, weight) in terms {
                let name = SetCriterion.lossName(base, prediction: k, of: predictions.count)
                losses[name] = value
                names.append(name)
                let weighted = value * weight
                total = total.map { $0 + weighted } ?? weighted
            }
        }
        return CriterionOutput(losses: losses, lossNames: names, total: total!, indices: indices,
                               numMasks: normaliser)
    }

    /// Matches one prediction against every image (no-grad). Images without targets get no pairs
    /// and draw no points.
    public func match(_ prediction: MaskPrediction, targets: [MaskTargets], predictionIndex k: Int,
                      points: PointSource) -> [MatchIndices] {
        let (b, q, classes) = checkClassLogits(prediction.classLogits, images: targets.count)
        let m = prediction.maskLogits
        precondition(m.rank == 4 && m.shape[0] == b && m.shape[1] == q,
                     "SetCriterion: mask logits \(m.shape), expected [\(b), \(q), H, W]")
        let h = m.shape[2], w = m.shape[3]
        return (0..<b).map { i -> MatchIndices in
            let t = targets[i]
            if t.labels.isEmpty || q == 0 { return .empty }
            // Zero-copy per-image views (not on the tape; the matcher runs under no-grad).
            let logits = Tensor(shape: [q, classes],
                                storage: Storage(viewOf: prediction.classLogits.storage, offset: i * q * classes, count: q * classes))
            let masks = Tensor(shape: [q, h, w],
                               storage: Storage(viewOf: m.storage, offset: i * q * h * w, count: q * h * w))
            let pts = points.matcherPoints(prediction: k, image: i, count: numPoints)
            return matcher.match(classLogits: logits, maskLogits: masks, labels: t.labels, masks: t.masks, points: pts)
        }
    }

    /// Class-weighted cross-entropy over all B·Q queries of `classLogits` `[B, Q, K+1]`: matched
    /// queries target their GT label, the rest class K (weight `noObjectWeight`).
    public func classificationLoss(_ classLogits: Tensor, targets: [MaskTargets], indices: [MatchIndices]) -> Tensor {
        let (b, q, classes) = checkClassLogits(classLogits, images: targets.count)
        precondition(indices.count == b, "SetCriterion: \(indices.count) matches for \(b) images")
        var targetClasses = [Int](repeating: numClasses, count: b * q)
        for i in 0..<b {
            for (query, target) in zip(indices[i].queries, indices[i].targets) {
                targetClasses[i * q + query] = targets[i].labels[target]
            }
        }
        var weights = [Float](repeating: 1, count: classes)
        weights[numClasses] = noObjectWeight
        return Tensor.crossEntropy(classLogits.reshaped([b * q, classes]), targets: targetClasses, classWeights: weights)
    }

    /// The point-sampled BCE and dice losses of the matched pairs of `maskLogits` `[B, Q, H, W]`,
    /// each summed over pairs and divided by `numMasks`. Zero (no gradient) without pairs.
    public func maskLosses(_ maskLogits: Tensor, targets: [MaskTargets], indices: [MatchIndices], numMasks: Double,
                           predictionIndex k: Int, points: PointSource) -> (mask: Tensor, dice: Tensor) {
        precondition(maskLogits.rank == 4 && maskLogits.shape[0] == targets.count && indices.count == targets.count,
                     "SetCriterion: mask logits \(maskLogits.shape) for \(targets.count) images, \(indices.count) matches")
        let b = maskLogits.shape[0], q = maskLogits.shape[1], h = maskLogits.shape[2], w = maskLogits.shape[3]
        // Matched pairs in batch order: image, then query (the matcher's order).
        var flatQueries: [Int] = []
        for i in 0..<b {
            for query in indices[i].queries { flatQueries.append(i * q + query) }
        }
        let n = flatQueries.count
        if n == 0 { return (Tensor(scalar: 0), Tensor(scalar: 0)) }
        let p = numPoints
        // [n, H, W, 1] with grad (index-select of the flattened [B·Q, H, W, 1] stack).
        let picked = maskLogits.reshaped([b * q, h, w, 1]).indexSelect(axis: 0, flatQueries)
        var pairImages: [Int] = []
        pairImages.reserveCapacity(n)
        for i in 0..<b { pairImages += repeatElement(i, count: indices[i].count) }
        let samplePoints = importanceSampledPoints(picked.detached(), predictionIndex: k, points: points,
                                                   pairImages: pairImages)
        // GT labels at the points (no-grad), image by image from views of the matched target masks.
        let labels = Tensor(uninitialized: [n, p])
        var start = 0
        for i in 0..<b where indices[i].count > 0 {
            let count = indices[i].count
            let pts = Tensor(shape: [count, p, 2],
                             storage: Storage(viewOf: samplePoints.storage, offset: start * p * 2, count: count * p * 2))
            let sampled = MaskPointSampling.selectedRows(targets[i].masks, rows: indices[i].targets, points: pts)
            (labels.data + start * p).update(from: sampled.data, count: count * p)
            start += count
        }
        // Predicted logits at the same points, with grad.
        let logits = Tensor.gridSample(picked, points: samplePoints).reshaped([n, p])
        let divisor = Tensor(scalar: Float(numMasks))
        let bce = Tensor.binaryCrossEntropyWithLogits(logits, targets: labels)
        let lossMask = bce.mean(axis: 1).sum() / divisor
        let probs = logits.sigmoid()
        let numerator = 2 * (probs * labels).sum(axis: 1)
        let denominator = probs.sum(axis: 1) + labels.sum(axis: 1)
        let lossDice = (1 - (numerator + 1) / (denominator + 1)).sum() / divisor
        return (lossMask, lossDice)
    }

    /// PointRend importance sampling (no-grad): for each of the n maps of `maps` `[n, H, W, 1]`,
    /// sample ⌊ratio·P⌋ candidates, keep the ⌊importance·P⌋ with the largest −|logit| in `topk`
    /// order, then append the random points → `[n, P, 2]`. `pairImages[j]` is the batch image of map j
    /// (passed to the point source; default: every map from image 0).
    public func importanceSampledPoints(_ maps: Tensor, predictionIndex k: Int, points: PointSource,
                                        pairImages: [Int]? = nil) -> Tensor {
        precondition(maps.rank == 4 && maps.shape[3] == 1, "importance sampling of \(maps.shape), expected [n,H,W,1]")
        let n = maps.shape[0], p = numPoints
        let images = pairImages ?? [Int](repeating: 0, count: n)
        precondition(images.count == n, "importance sampling: \(images.count) pair images for \(n) maps")
        let m = oversampledPointCount, kept = uncertainPointCount, extra = randomPointCount
        let candidates = points.oversamplePoints(prediction: k, pairImages: images, count: m)
        let random = extra > 0 ? points.randomPoints(prediction: k, pairImages: images, count: extra) : nil
        return withNoGrad {
            let sampled = Tensor.gridSample(maps, points: candidates)   // [n, m, 1]
            let uncertainty = Tensor(uninitialized: [n, m])
            for i in 0..<(n * m) { uncertainty.data[i] = -Swift.abs(sampled.data[i]) }
            let top = uncertainty.topk(kept).indices                     // n·kept, row-major
            let out = Tensor(uninitialized: [n, p, 2])
            let c = candidates.data, o = out.data
            for i in 0..<n {
                let row = o + i * p * 2
                for j in 0..<kept {
                    let src = c + (i * m + top[i * kept + j]) * 2
                    row[2 * j] = src[0]
                    row[2 * j + 1] = src[1]
                }
                if let random, extra > 0 {
                    (row + kept * 2).update(from: random.data + i * extra * 2, count: extra * 2)
                }
            }
            return out
        }
    }

    /// Checks `[B, Q, K+1]` against the criterion's K and the image count.
    private func checkClassLogits(_ logits: Tensor, images: Int) -> (Int, Int, Int) {
        precondition(logits.rank == 3 && logits.shape[0] == images && logits.shape[2] == numClasses + 1,
                     "SetCriterion: class logits \(logits.shape), expected [\(images), Q, \(numClasses + 1)]")
        return (logits.shape[0], logits.shape[1], logits.shape[2])
    }
}
