// LayerConsistencyEvaluator: MP-Former's layer-consistency metrics, mIoU-L_i between consecutive decoder
// layers' binary masks of the same query, and Util_i (query utilization across layers).
// Reference: no code exists in the MP-Former repo; the definitions follow our reconstruction in
// docs/model.md#layer-consistency, which is NOT verified against the paper text.
//
// Definitions used here (per image, with `layers` = L predictions ordered so that prediction L−1 is the final layer):
// - m_i(q) = (σ(mask logit at layer i) > 0.5) ⇔ (logit > 0), pixelwise.
// - mIoU-L_i, i in 0..<L−1: the mean of IoU(m_i(q), m_{i+1}(q)) over all (image, query) pairs whose query is matched
//   to a ground truth at the LAST layer (a pooled mean: every such query of every image weighs the same).
//   The IoU of two empty masks is defined as 1 (the masks agree exactly).
// - Util_i, i in 0..<L: among the queries the Hungarian matching assigns to a ground truth at layer i, the fraction
//   assigned to the same ground truth at the last layer (pooled over images). A query unmatched at the last layer
//   counts as not kept. Util_{L−1} is 1 whenever the last layer matched anything.
// A ratio with nothing to average over is nil.
import TensorCore

/// Accumulates the layer-consistency statistics (mIoU-L_i, Util_i) over images; see the file header for definitions.
public struct LayerConsistencyEvaluator: Sendable, Equatable {
    /// Number of predictions per image (decoder layers including the final one).
    public let layers: Int
    /// Per consecutive pair (i, i+1), i in 0..<layers−1: sum of IoUs over the queries matched at the last layer.
    public private(set) var iouSum: [Double]
    /// Per consecutive pair: how many (image, query) IoUs were summed.
    public private(set) var iouCount: [Int]
    /// Per layer: how many matched queries keep the same target at the last layer.
    public private(set) var keptCount: [Int]
    /// Per layer: how many queries were matched.
    public private(set) var matchedCount: [Int]
    /// Images seen.
    public private(set) var images: Int

    public init(layers: Int) {
        precondition(layers >= 1, "LayerConsistencyEvaluator: layers must be at least 1")
        self.layers = layers
        iouSum = [Double](repeating: 0, count: layers - 1)
        iouCount = [Int](repeating: 0, count: layers - 1)
        keptCount = [Int](repeating: 0, count: layers)
        matchedCount = [Int](repeating: 0, count: layers)
        images = 0
    }

    /// Rebuilds an evaluator from its counts (e.g. another rank's); throws when the array lengths do not fit `layers`
    /// or a count is negative.
    public init(layers: Int, iouSum: [Double], iouCount: [Int], keptCount: [Int], matchedCount: [Int], images: Int) throws {
        guard layers >= 1, iouSum.count == layers - 1, iouCount.count == layers - 1, keptCount.count == layers,
              matchedCount.count == layers else {
            throw EvaluationError("layer-consistency state", "counts of lengths \(iouSum.count), \(iouCount.count), \(keptCount.count), \(matchedCount.count) do not fit \(layers) layers")
        }
        guard images >= 0, (iouCount + keptCount + matchedCount).allSatisfy({ $0 >= 0 }),
              zip(keptCount, matchedCount).allSatisfy({ $0 <= $1 }) else {
            throw EvaluationError("layer-consistency state", "negative count or more kept than matched queries")
        }
        self.layers = layers
        self.iouSum = iouSum; self.iouCount = iouCount; self.keptCount = keptCount; self.matchedCount = matchedCount
        self.images = images
    }

    /// Adds one image. `maskLogits[i]` is layer i's `[Q, H, W]` mask logits (all layers the same shape; the last entry
    /// is the final layer); `matches[i]` are layer i's Hungarian (query, target) pairs for this image.
    /// Throws when the counts differ from `layers`, shapes disagree, a query is outside 0..<Q or matched twice in a
    /// layer, or a target is negative. Nothing is accumulated when it throws.
    public mutating func update(maskLogits: [Tensor], matches: [[(query: Int, target: Int)]], context: String = "") throws {
        guard maskLogits.count == layers else {
            throw EvaluationError(context, "\(maskLogits.count) mask-logit tensors for \(layers) layers")
        }
        guard matches.count == layers else {
            throw EvaluationError(context, "\(matches.count) match lists for \(layers) layers")
        }
        let shape = maskLogits[0].shape
        guard shape.count == 3 else {
            throw EvaluationError(context, "mask logits of layer 0 have shape \(shape), expected [Q, H, W]")
        }
        for (i, t) in maskLogits.enumerated() where t.shape != shape {
            throw EvaluationError(context, "mask logits of layer \(i) have shape \(t.shape), layer 0 has \(shape)")
        }
        let q = shape[0], hw = shape[1] * shape[2]
        // target per query per layer (nil = unmatched)
        var assignment = [[Int?]](repeating: [Int?](repeating: nil, count: q), count: layers)
        for (i, pairs) in matches.enumerated() {
            for p in pairs {
                guard p.query >= 0 && p.query < q else {
                    throw EvaluationError(context, "layer \(i) matches query \(p.query), outside 0..<\(q)")
                }
                guard p.target >= 0 else {
                    throw EvaluationError(context, "layer \(i) matches query \(p.query) to negative target \(p.target)")
                }
                guard assignment[i][p.query] == nil else {
                    throw EvaluationError(context, "layer \(i) matches query \(p.query) twice")
                }
                assignment[i][p.query] = p.target
            }
        }
        let last = assignment[layers - 1]
        for i in 0..<layers {
            for (query, target) in assignment[i].enumerated() {
                guard let target else { continue }
                matchedCount[i] += 1
                if last[query] == target { keptCount[i] += 1 }
            }
        }
        let reference = (0..<q).filter { last[$0] != nil }
        if layers > 1 && !reference.isEmpty {
            for i in 0..<(layers - 1) {
                let a = maskLogits[i].data, b = maskLogits[i + 1].data
                for query in reference {
                    let base = query * hw
                    var inter = 0, union = 0
                    for j in base..<(base + hw) {
                        let x = a[j] > 0, y = b[j] > 0
                        if x && y { inter += 1 }
                        if x || y { union += 1 }
                    }
                    iouSum[i] += union == 0 ? 1 : Double(inter) / Double(union)
                    iouCount[i] += 1
                }
            }
        }
        images += 1
    }

    /// Adds the statistics of another evaluator (e.g. another rank's); throws when the layer counts differ.
    public mutating func merge(_ other: LayerConsistencyEvaluator) throws {
        guard other.layers == layers else {
            throw EvaluationError("layer-consistency merge", "\(other.layers) layers vs \(layers)")
        }
        for i in 0..<iouSum.count { iouSum[i] += other.iouSum[i]; iouCount[i] += other.iouCount[i] }
        for i in 0..<layers { keptCount[i] += other.keptCount[i]; matchedCount[i] += other.matchedCount[i] }
        images += other.images
    }

    /// One row per layer: `mIoU` is mIoU-L_i between layers i and i+1 (nil for the last layer or when no query was
    /// matched at the last layer), `util` is Util_i (nil when nothing was matched at layer i).
    public func result() -> [(layer: Int, mIoU: Double?, util: Double?)] {
        (0..<layers).map { i in
            let miou: Double? = i < layers - 1 && iouCount[i] > 0 ? iouSum[i] / Double(iouCount[i]) : nil
            let util: Double? = matchedCount[i] > 0 ? Double(keptCount[i]) / Double(matchedCount[i]) : nil
            return (layer: i, mIoU: miou, util: util)
        }
    }

    /// A per-layer text table (values ×100, two decimals; "-" where undefined).
    public func table() -> String {
        var lines = ["layer  mIoU-L_i(i,i+1)  Util_i  matched", "-----  ---------------  ------  -------"]
        for r in result() {
            lines.append(pad(String(r.layer), 5) + "  " + pad(fmt(r.mIoU), 15) + "  " + pad(fmt(r.util), 6) + "  "
                         + pad(String(matchedCount[r.layer]), 7))
        }
        lines.append("images: \(images); mIoU-L over \(iouCount.first ?? 0) queries matched at the last layer")
        return lines.joined(separator: "\n")
    }

    /// A JSON-ready dictionary (only Int, Double, String, arrays and dictionaries; undefined values omitted):
    /// `{"images": n, "layers": [{"layer": i, "mIoU": x, "util": y, "matched": m, "kept": k, "iouQueries": c}, …]}`.
    /// `mIoU` / `util` are ratios in [0, 1].
    public func jsonObject() -> [String: Any] {
        let rows: [[String: Any]] = result().map { r in
            var row: [String: Any] = ["layer": r.layer, "matched": matchedCount[r.layer], "kept": keptCount[r.layer]]
            if let m = r.mIoU { row["mIoU"] = m }
            if let u = r.util { row["util"] = u }
            if r.layer < layers - 1 { row["iouQueries"] = iouCount[r.layer] }
            return row
        }
        return ["images": images, "layers": rows]
    }

    private func fmt(_ v: Double?) -> String {
        guard let v else { return "-" }
        let hundredths = Int((v * 10000).rounded())
        let frac = hundredths % 100
        return "\(hundredths / 100)." + (frac < 10 ? "0" : "") + "\(frac)"
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
    }
}
