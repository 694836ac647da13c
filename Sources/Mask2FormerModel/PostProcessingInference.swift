// Semantic, instance and panoptic inference of one image from class logits and (resized) mask logits.
// Corresponds to maskformer_model.py semantic_inference / instance_inference / panoptic_inference (docs/model.md#inference).
import Foundation
import Kernels
import TensorCore

/// σ(x) in float32, as torch.sigmoid.
@inline(__always)
private func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

extension MaskPostProcessing {
    /// Softmax over the K+1 classes of each query: `[Q, K+1]` → `[Q, K+1]` (last column = no-object).
    public static func classProbabilities(_ classLogits: Tensor) -> Tensor {
        precondition(classLogits.rank == 2 && classLogits.shape[1] >= 2,
                     "class logits \(classLogits.shape) are not [Q, K+1] with K ≥ 1")
        return withNoGrad { classLogits.softmax(axis: -1) }
    }

    /// Semantic scores `einsum("qc,qhw->chw", softmax(class)[:, :-1], σ(mask))`: one GEMM.
    ///
    /// `classLogits`: `[Q, K+1]`, `maskLogits`: `[Q, H, W]` → `[K, H, W]`.
    public static func semanticScores(classLogits: Tensor, maskLogits: Tensor) -> Tensor {
        checkMasks(maskLogits)
        let probs = classProbabilities(classLogits)
        let q = classLogits.shape[0], k1 = classLogits.shape[1], k = k1 - 1
        precondition(maskLogits.shape[0] == q, "\(maskLogits.shape[0]) masks for \(q) queries")
        let h = maskLogits.shape[1], w = maskLogits.shape[2], n = h * w
        let sig = Tensor(uninitialized: [q, h, w])
        let src = maskLogits.data, s = sig.data
        for i in 0..<(q * n) { s[i] = sigmoid(src[i]) }
        let out = Tensor(uninitialized: [k, h, w])
        // out[K, HW] = probs[:, :K]ᵀ · σ[Q, HW]
        sgemm(transA: true, transB: false, m: k, n: n, k: q, a: probs.data, lda: k1, b: sig.data, ldb: n,
              c: out.data, ldc: n)
        return out
    }

    /// Wraps `[K, H, W]` scores with their label map (argmax over K, first maximum on ties).
    public static func semanticResult(scores: Tensor) -> SemanticResult {
        precondition(scores.rank == 3 && scores.shape[0] > 0, "semantic scores \(scores.shape) are not [K, H, W]")
        let k = scores.shape[0], h = scores.shape[1], w = scores.shape[2], n = h * w
        var labels = [Int32](repeating: 0, count: n)
        let best = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(n, 1))
        defer { best.deallocate() }
        let s = scores.data
        best.update(from: s, count: n)
        labels.withUnsafeMutableBufferPointer { lab in
            for c in 1..<k {
                let row = s + c * n, cl = Int32(c)
                for p in 0..<n where row[p] > best[p] { best[p] = row[p]; lab[p] = cl }
            }
        }
        return SemanticResult(scores: scores, labels: labels, height: h, width: w)
    }

    /// Instance inference: the top-`topK` (query, class) pairs of `softmax(class)[:, :-1]` flattened
    /// over Q·K (k = min(topK, Q·K)), in descending class probability (ties: lower flat index
    /// `q·K + c` first). A query may appear with several classes. With `keepClasses` (panoptic on:
    /// the thing classes) pairs of other classes are dropped after the top-k.
    ///
    /// Each pair gets the binary mask `logit > 0` of its query, `maskScore = Σ σ·bin / (Σ bin + 1e-6)`
    /// (float32 division, sum in Double) and `score = classScore · maskScore`.
    /// `classLogits`: `[Q, K+1]`, `maskLogits`: `[Q, H, W]` at the output size.
    public static func instanceInference(classLogits: Tensor, maskLogits: Tensor, topK: Int,
                                         keepClasses: Set<Int>? = nil) -> [InstanceResult] {
        checkMasks(maskLogits)
        let probs = classProbabilities(classLogits)
        let q = classLogits.shape[0], k1 = classLogits.shape[1], k = k1 - 1
        precondition(maskLogits.shape[0] == q, "\(maskLogits.shape[0]) masks for \(q) queries")
        precondition(topK >= 0, "topK \(topK) is negative")
        let h = maskLogits.shape[1], w = maskLogits.shape[2], n = h * w
        let flat = Tensor(uninitialized: [q * k])
        for i in 0..<q { (flat.data + i * k).update(from: probs.data + i * k1, count: k) }
        let (values, indices) = withNoGrad { flat.topk(Swift.min(topK, q * k)) }
        var perQuery: [Int: (mask: [UInt8], score: Float)] = [:]
        var results: [InstanceResult] = []
        for (j, flatIndex) in indices.enumerated() {
            let query = flatIndex / k, label = flatIndex % k
            if let keepClasses, !keepClasses.contains(label) { continue }
            let binary: (mask: [UInt8], score: Float)
            if let cached = perQuery[query] {
                binary = cached
            } else {
                binary = binaryMask(maskLogits.data + query * n, count: n)
                perQuery[query] = binary
            }
            let classScore = values.data[j]
            results.append(InstanceResult(score: classScore * binary.score, label: label, queryIndex: query,
                                          classScore: classScore, maskScore: binary.score, mask: binary.mask,
                                          height: h, width: w))
        }
        return results
    }

    /// `logit > 0` as 0/1 bytes and the mean sigmoid inside it, `Σ σ·bin / (Σ bin + 1e-6)`.
    private static func binaryMask(_ logits: UnsafePointer<Float>, count n: Int) -> (mask: [UInt8], score: Float) {
        var mask = [UInt8](repeating: 0, count: n)
        var sum = 0.0, area = 0
        mask.withUnsafeMutableBufferPointer { m in
            for p in 0..<n where logits[p] > 0 {
                m[p] = 1
                sum += Double(sigmoid(logits[p]))
                area += 1
            }
        }
        let eps: Float = 1e-6
        return (mask, Float(sum) / (Float(area) + eps))
    }

    /// Panoptic inference.
    ///
    /// 1. `(score, label) = max softmax(class)` over all K+1 classes (first maximum on ties).
    /// 2. Keep queries with `label ≠ K` and `score > objectMaskThreshold` (float32 compare), in query order.
    /// 3. Per pixel, `id = argmax_k score_k·σ(mask_k)` over the kept queries (first maximum on ties).
    /// 4. For each kept k in order: `area = #(id = k)`, `original = #(σ_k ≥ 0.5)`,
    ///    `seg = (id = k) ∧ (σ_k ≥ 0.5)`; skip k when any of them is empty or
    ///    `area / original < overlapThreshold` (Double compare). A stuff class already seen paints
    ///    `seg` with that class's segment id; otherwise k opens the next id (things always do).
    ///
    /// `classLogits`: `[Q, K+1]`, `maskLogits`: `[Q, H, W]` at the output size. Pixels in no
    /// accepted `seg` are 0 (void).
    public static func panopticInference(classLogits: Tensor, maskLogits: Tensor, objectMaskThreshold: Double,
                                         overlapThreshold: Double, thingClasses: Set<Int>) -> PanopticResult {
        checkMasks(maskLogits)
        let probs = classProbabilities(classLogits)
        let q = classLogits.shape[0], k1 = classLogits.shape[1], k = k1 - 1
        precondition(maskLogits.shape[0] == q, "\(maskLogits.shape[0]) masks for \(q) queries")
        let h = maskLogits.shape[1], w = maskLogits.shape[2], n = h * w
        let threshold = Float(objectMaskThreshold)
        var kept: [(query: Int, score: Float, label: Int)] = []
        for i in 0..<q {
            let row = probs.data + i * k1
            var best = row[0], label = 0
            for c in 1..<k1 where row[c] > best { best = row[c]; label = c }
            if label != k && best > threshold { kept.append((i, best, label)) }
        }
        var ids = [Int32](repeating: 0, count: n)
        guard !kept.isEmpty else { return PanopticResult(ids: ids, height: h, width: w, segments: []) }

        let m = kept.count
        // σ of the kept masks, [m, HW].
        let sig = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
        let owner = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        let best = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { sig.deallocate(); owner.deallocate(); best.deallocate() }
        for (j, kq) in kept.enumerated() {
            let src = maskLogits.data + kq.query * n, dst = sig + j * n
            for p in 0..<n { dst[p] = sigmoid(src[p]) }
        }
        // Per-pixel argmax of score·σ over the kept queries (running maximum, strict > keeps the first).
        let s0 = kept[0].score
        for p in 0..<n { best[p] = s0 * sig[p] }
        owner.update(repeating: 0, count: n)
        for j in 1..<m {
            let sj = kept[j].score, row = sig + j * n, tag = Int32(j)
            for p in 0..<n {
                let v = sj * row[p]
                if v > best[p] { best[p] = v; owner[p] = tag }
            }
        }
        // Areas: #(id = k), #(σ_k ≥ 0.5), #((id = k) ∧ (σ_k ≥ 0.5)).
        var area = [Int](repeating: 0, count: m), inside = [Int](repeating: 0, count: m)
        var original = [Int](repeating: 0, count: m)
        for p in 0..<n {
            let j = Int(owner[p])
            area[j] += 1
            if sig[j * n + p] >= 0.5 { inside[j] += 1 }
        }
        for j in 0..<m {
            let row = sig + j * n
            var c = 0
            for p in 0..<n where row[p] >= 0.5 { c += 1 }
            original[j] = c
        }
        // Segment id of each kept query (0 = skipped), stuff merged per class.
        var segmentOf = [Int32](repeating: 0, count: m)
        var segments: [PanopticSegment] = []
        var stuffSegment: [Int: Int] = [:]
        for j in 0..<m {
            guard area[j] > 0 && original[j] > 0 && inside[j] > 0 else { continue }
            if Double(area[j]) / Double(original[j]) < overlapThreshold { continue }
            let label = kept[j].label
            let isThing = thingClasses.contains(label)
            if !isThing, let id = stuffSegment[label] { segmentOf[j] = Int32(id); continue }
            let id = segments.count + 1
            if !isThing { stuffSegment[label] = id }
            segments.append(PanopticSegment(id: id, categoryId: label, isThing: isThing))
            segmentOf[j] = Int32(id)
        }
        // Paint: pixel p belongs to seg of exactly one k, its owner.
        segmentOf.withUnsafeBufferPointer { seg in
            ids.withUnsafeMutableBufferPointer { out in
                for p in 0..<n {
                    let j = Int(owner[p])
                    if sig[j * n + p] >= 0.5 { out[p] = seg[j] }
                }
            }
        }
        return PanopticResult(ids: ids, height: h, width: w, segments: segments)
    }
}
