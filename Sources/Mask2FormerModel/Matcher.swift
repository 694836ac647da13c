// Hungarian matcher: class, point-sampled mean-BCE and dice costs between queries and targets, then LSAP.
// Corresponds to Mask2Former modeling/matcher.py HungarianMatcher (memory_efficient_forward), docs/model.md#matcher.
import Kernels
import TensorCore

/// The matched (query, target) pairs of one image, sorted by query.
public struct MatchIndices: Equatable, Hashable, Sendable {
    /// Query (prediction row) of each pair, ascending.
    public var queries: [Int]
    /// Target (ground-truth segment) of each pair.
    public var targets: [Int]

    public init(queries: [Int], targets: [Int]) {
        precondition(queries.count == targets.count, "\(queries.count) queries for \(targets.count) targets")
        self.queries = queries
        self.targets = targets
    }

    /// No pairs (an image without targets).
    public static let empty = MatchIndices(queries: [], targets: [])

    /// Number of pairs.
    public var count: Int { queries.count }
}

/// The cost matrices of one image, each `[Q, N]` (float32).
public struct MatchCosts {
    /// `−softmax(logits)[q, label_n]`.
    public var classCost: Tensor
    /// Mean binary cross-entropy over the P points.
    public var maskCost: Tensor
    /// `1 − (2·Σ σ(x)·t + 1) / (Σ σ(x) + Σ t + 1)`.
    public var diceCost: Tensor
    /// `w_mask·maskCost + w_class·classCost + w_dice·diceCost`.
    public var total: Tensor
}

/// Point sampling of stacks of single-channel maps (detectron2 `point_sample` on `[N, 1, H, W]`),
/// through `Tensor.gridSample` on `[N, H, W, 1]` views. Gradients flow to the maps when they
/// require one; points never get a gradient.
public enum MaskPointSampling {
    /// Samples every map of `maps` `[N, H, W]` at the same `points` `[P, 2]` (x, y) ∈ [0,1]² → `[N, P]`.
    ///
    /// The maps are viewed channels-last (`[1, H, W, N]`) so one `gridSample` computes each point's
    /// four taps once for all N maps; each output sums the same taps in the same order as sampling the
    /// maps one by one, so the values are identical (tested).
    public static func shared(_ maps: Tensor, points: Tensor) -> Tensor {
        precondition(maps.rank == 3 && points.rank == 2 && points.shape[1] == 2,
                     "MaskPointSampling.shared: maps \(maps.shape) [N,H,W], points \(points.shape) [P,2]")
        let n = maps.shape[0], h = maps.shape[1], w = maps.shape[2], p = points.shape[0]
        if n == 0 || p == 0 { return Tensor.zeros([n, p]) }
        let channelsLast = maps.reshaped([n, h * w]).transposed().reshaped([1, h, w, n])
        let sampled = Tensor.gridSample(channelsLast, points: points.reshaped([1, p, 2]))   // [1, P, N]
        return sampled.reshaped([p, n]).transposed()
    }

    /// Samples map i of `maps` `[N, H, W]` at its own points `points[i]` (`[N, P, 2]`) → `[N, P]`.
    public static func perMap(_ maps: Tensor, points: Tensor) -> Tensor {
        precondition(maps.rank == 3 && points.rank == 3 && points.shape[0] == maps.shape[0] && points.shape[2] == 2,
                     "MaskPointSampling.perMap: maps \(maps.shape) [N,H,W], points \(points.shape) [N,P,2]")
        let n = maps.shape[0], p = points.shape[1]
        let sampled = Tensor.gridSample(maps.reshaped([n, maps.shape[1], maps.shape[2], 1]), points: points)
        return sampled.reshaped([n, p])
    }

    /// Samples the maps `rows` of `maps` `[N, H, W]`, row `rows[i]` at `points[i]` (`[n, P, 2]`),
    /// without copying the maps (one zero-copy view per row) → `[n, P]`. No gradient.
    public static func selectedRows(_ maps: Tensor, rows: [Int], points: Tensor) -> Tensor {
        precondition(maps.rank == 3 && points.rank == 3 && points.shape[0] == rows.count && points.shape[2] == 2,
                     "MaskPointSampling.selectedRows: maps \(maps.shape), \(rows.count) rows, points \(points.shape)")
        let h = maps.shape[1], w = maps.shape[2], p = points.shape[1]
        let out = Tensor(uninitialized: [rows.count, p])
        withNoGrad {
            for (i, r) in rows.enumerated() {
                precondition(r >= 0 && r < maps.shape[0], "row \(r) outside 0..<\(maps.shape[0])")
                let map = Tensor(shape: [1, h, w, 1], storage: Storage(viewOf: maps.storage, offset: r * h * w, count: h * w))
                let pts = Tensor(shape: [1, p, 2], storage: Storage(viewOf: points.storage, offset: i * p * 2, count: p * 2))
                let y = Tensor.gridSample(map, points: pts)
                if p > 0 { (out.data + i * p).update(from: y.data, count: p) }
            }
        }
        return out
    }
}

/// The Hungarian matcher of one prediction and one image (docs/model.md#matcher), run under no-grad in float32.
///
/// Costs between the Q queries and the N targets: `cost_class = −softmax(logits)[q, label_n]`;
/// with `x [Q, P]` the predicted mask logits and `t [N, P]` the GT masks, both point-sampled at the
/// same P points, `cost_mask = (softplus(−x)/P)·tᵀ + (softplus(x)/P)·(1−t)ᵀ` (mean BCE as two GEMMs)
/// and `cost_dice = 1 − (2·σ(x)·tᵀ + 1) / (Σ_p σ(x) + Σ_p t + 1)`. The total
/// `C = w_mask·cost_mask + w_class·cost_class + w_dice·cost_dice` goes to `linearSumAssignment`
/// (non-finite costs are sanitised there).
public struct HungarianMatcher: Sendable {
    public var classWeight: Float
    public var maskWeight: Float
    public var diceWeight: Float

    public init(classWeight: Float = 2, maskWeight: Float = 5, diceWeight: Float = 5) {
        self.classWeight = classWeight
        self.maskWeight = maskWeight
        self.diceWeight = diceWeight
    }

    /// The cost matrices `[Q, N]` of one image.
    ///
    /// - Parameters:
    ///   - classLogits: `[Q, K+1]`.
    ///   - maskLogits: `[Q, H, W]` (stride-4 predictions).
    ///   - labels: the N target classes, each in `0..<K`.
    ///   - masks: `[N, Hgt, Wgt]` float 0/1 target masks at input resolution.
    ///   - points: `[P, 2]` (x, y) in [0,1]², shared by all queries and targets.
    public func costs(classLogits: Tensor, maskLogits: Tensor, labels: [Int], masks: Tensor,
                      points: Tensor) -> MatchCosts {
        precondition(classLogits.rank == 2 && maskLogits.rank == 3 && maskLogits.shape[0] == classLogits.shape[0],
                     "matcher: class logits \(classLogits.shape) [Q,K+1] and mask logits \(maskLogits.shape) [Q,H,W]")
        precondition(masks.rank == 3 && masks.shape[0] == labels.count,
                     "matcher: masks \(masks.shape) [N,H,W] for \(labels.count) labels")
        precondition(points.rank == 2 && points.shape[1] == 2 && points.shape[0] > 0,
                     "matcher: points \(points.shape) must be [P,2] with P > 0")
        let q = classLogits.shape[0], classes = classLogits.shape[1], n = labels.count
        precondition(q > 0 && n > 0, "matcher costs need Q > 0 and N > 0 (got \(q), \(n)); `match` handles empty sides")
        let p = Float(points.shape[0])
        // The matcher stays in fp32 whatever the model's GEMM precision (as under torch.autocast, where the
        // reference's matcher runs with autocast disabled).
        return withGEMMPrecision(.fp32) { withNoGrad {
            let prob = classLogits.softmax(axis: -1)
            let classCost = Tensor(uninitialized: [q, n])
            for (j, label) in labels.enumerated() {
                precondition(label >= 0 && label < classes - 1, "matcher: label \(label) outside 0..<\(classes - 1)")
                for i in 0..<q { classCost.data[i * n + j] = -prob.data[i * classes + label] }
            }
            let x = MaskPointSampling.shared(maskLogits, points: points)   // [Q, P]
            let t = MaskPointSampling.shared(masks, points: points)        // [N, P]
            // Mean BCE: BCE(x, 1) = softplus(−x), BCE(x, 0) = softplus(x), each divided by P before the
            // GEMMs; and σ(x). One fused pass: with e = exp(−|x|) and l = log1p(e),
            // softplus(±x) = max(±x, 0) + l (equal to the reference's max(x,0) − x·t + l at t = 1, 0)
            // and σ(x) = 1/(1+e) for x ≥ 0, e/(1+e) otherwise.
            let pos = Tensor(uninitialized: x.shape), neg = Tensor(uninitialized: x.shape)
            let s = Tensor(uninitialized: x.shape)
            let xp = x.data, pp = pos.data, np = neg.data, sp = s.data
            parallelFor(x.count, grain: elementwiseGrain / 4) { chunk in for i in chunk {
                let v = xp[i]
                let e = fastExp(-Swift.abs(v))
                let l = fastLog1p(e)
                pp[i] = (Swift.max(-v, 0) + l) / p
                np[i] = (Swift.max(v, 0) + l) / p
                let r = 1 / (1 + e)
                sp[i] = v >= 0 ? r : e * r
            } }
            let maskCost = Tensor.matmul(pos, t, transB: true) + Tensor.matmul(neg, 1 - t, transB: true)
            let numerator = 2 * Tensor.matmul(s, t, transB: true)
            let denominator = s.sum(axis: 1, keepDims: true) + t.sum(axis: 1).reshaped([1, n])
            let diceCost = 1 - (numerator + 1) / (denominator + 1)
            let total = maskWeight * maskCost + classWeight * classCost + diceWeight * diceCost
            return MatchCosts(classCost: classCost, maskCost: maskCost, diceCost: diceCost, total: total)
        } }
    }

    /// The optimal assignment of one image (shapes as in `costs`): `min(Q, N)` pairs sorted by query.
    /// An image without targets (or a prediction without queries) gives no pairs.
    public func match(classLogits: Tensor, maskLogits: Tensor, labels: [Int], masks: Tensor,
                      points: Tensor) -> MatchIndices {
        if labels.isEmpty || classLogits.shape[0] == 0 { return .empty }
        let c = costs(classLogits: classLogits, maskLogits: maskLogits, labels: labels, masks: masks, points: points)
        let pairs = linearSumAssignment(c.total)
        return MatchIndices(queries: pairs.map(\.row), targets: pairs.map(\.col))
    }
}
