// Fused multi-head scaled-dot-product attention over sgemm, forward and backward, with a naive twin.
// Corresponds to the core of torch.nn.MultiheadAttention (after in_proj, before out_proj).
import Foundation

/// Dimensions of one fused attention call. Tensors are token-major with heads interleaved:
/// q `[B, Tq, heads·d]`, k and v `[B, Tk, heads·d]`, output `[B, Tq, heads·d]`,
/// probabilities `[B, heads, Tq, Tk]`, mask `[B or B·heads, Tq, Tk]` (true = blocked).
public struct AttentionShape: Sendable, Equatable {
    public var batch: Int, heads: Int, queries: Int, keys: Int, headDim: Int
    public init(batch: Int, heads: Int, queries: Int, keys: Int, headDim: Int) {
        self.batch = batch; self.heads = heads; self.queries = queries; self.keys = keys; self.headDim = headDim
    }
    public var width: Int { heads * headDim }
}

/// Additive terms of the scores before the softmax (Swin's window attention): `bias` `[heads, Tq, Tk]` shared by
/// every batch item (the relative position bias), and `windowMask` `[period, Tq, Tk]` added to batch item b at
/// b mod `period` (the shifted windows' mask: items are (image, window) pairs, windows fastest).
public struct AttentionScoreTerms {
    public var bias: UnsafePointer<Float>?
    public var windowMask: UnsafePointer<Float>?
    public var period: Int
    public init(bias: UnsafePointer<Float>?, windowMask: UnsafePointer<Float>?, period: Int) {
        self.bias = bias; self.windowMask = windowMask; self.period = max(1, period)
    }
}

/// Forward: `P = softmax(scale·Q_h·K_hᵀ [+ terms], masked)`, `O_h = P·V_h` for every batch item and head.
/// `probs` receives P (needed by the backward). A fully blocked row attends everywhere.
/// `maskPerHead`: the mask's first dimension is B·heads (else B, shared by the heads).
public func attentionForward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                             shape s: AttentionShape, scale: Float,
                             mask: UnsafePointer<Bool>?, maskPerHead: Bool, terms: AttentionScoreTerms? = nil) {
    let w = s.width, tq = s.queries, tk = s.keys, d = s.headDim
    // One chunk per (item, head): each writes its own probabilities and output columns.
    parallelChunks(s.batch * s.heads) { bh in
        let b = bh / s.heads, h = bh % s.heads
        do {
            let p = probs + (b * s.heads + h) * tq * tk
            let qb = q + b * tq * w + h * d, kb = k + b * tk * w + h * d, vb = v + b * tk * w + h * d
            sgemm(transA: false, transB: true, m: tq, n: tk, k: d, alpha: scale, a: qb, lda: w, b: kb, ldb: w,
                  c: p, ldc: tk)
            if let terms {
                if let bias = terms.bias { addRow(p, bias + h * tq * tk, tq * tk) }
                if let wm = terms.windowMask { addRow(p, wm + (b % terms.period) * tq * tk, tq * tk) }
            }
            let m = mask.map { $0 + (maskPerHead ? b * s.heads + h : b) * tq * tk }
            softmaxForward(p, p, outer: tq, n: tk, inner: 1, mask: m, fullyMasked: .unmasked, logOutput: false)
            sgemm(transA: false, transB: false, m: tq, n: d, k: tk, a: p, lda: tk, b: vb, ldb: w,
                  c: out + b * tq * w + h * d, ldc: w)
        }
    }
}

/// `x[i] += y[i]` for `n` elements.
@inline(__always) private func addRow(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) {
    for i in 0..<n { x[i] += y[i] }
}

/// Backward of `attentionForward`. Writes (not accumulates) dq, dk, dv; any may be nil.
/// `scratch` holds at least `Tq·Tk` floats (the calling thread's; threads running other heads use their own).
/// `dScores` (`[B·heads, Tq, Tk]`, optional) receives each item's and head's score gradient dS, from which the
/// caller sums the gradient of additive score terms (`attentionBiasGradient`).
public func attentionBackward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                              probs: UnsafePointer<Float>, dOut: UnsafePointer<Float>,
                              dq: UnsafeMutablePointer<Float>?, dk: UnsafeMutablePointer<Float>?,
                              dv: UnsafeMutablePointer<Float>?, scratch callerScratch: UnsafeMutablePointer<Float>,
                              shape s: AttentionShape, scale: Float, dScores: UnsafeMutablePointer<Float>? = nil) {
    let w = s.width, tq = s.queries, tk = s.keys, d = s.headDim
    let caller = AttentionScratch.perThread.value
    // One chunk per (item, head): each writes its own columns of dq, dk, dv.
    parallelChunks(s.batch * s.heads) { bh in
        let b = bh / s.heads, h = bh % s.heads
        let local = AttentionScratch.perThread.value
        let scratch = local === caller ? callerScratch : local.buffer(tq * tk)
        do {
            let p = probs + (b * s.heads + h) * tq * tk
            let off = h * d
            let qb = q + b * tq * w + off, kb = k + b * tk * w + off, vb = v + b * tk * w + off
            let gb = dOut + b * tq * w + off
            if let dv {  // dV = Pᵀ·dO
                sgemm(transA: true, transB: false, m: tk, n: d, k: tq, a: p, lda: tk, b: gb, ldb: w,
                      c: dv + b * tk * w + off, ldc: w)
            }
            guard dq != nil || dk != nil || dScores != nil else { return }
            // dP = dO·Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P)) in place.
            sgemm(transA: false, transB: true, m: tq, n: tk, k: d, a: gb, lda: w, b: vb, ldb: w, c: scratch, ldc: tk)
            softmaxBackward(p, scratch, scratch, outer: tq, n: tk, inner: 1, logOutput: false)
            if let dScores { (dScores + (b * s.heads + h) * tq * tk).update(from: scratch, count: tq * tk) }
            if let dq {  // dQ = scale·dS·K
                sgemm(transA: false, transB: false, m: tq, n: d, k: tk, alpha: scale, a: scratch, lda: tk,
                      b: kb, ldb: w, c: dq + b * tq * w + off, ldc: w)
            }
            if let dk {  // dK = scale·dSᵀ·Q
                sgemm(transA: true, transB: false, m: tk, n: d, k: tq, alpha: scale, a: scratch, lda: tk,
                      b: qb, ldb: w, c: dk + b * tk * w + off, ldc: w)
            }
        }
    }
}

/// The gradient of a `[heads, Tq, Tk]` score bias shared by the batch items: `dBias[h] = Σ_b dScores[b, h]`, summed in
/// item order for every element (chunks over elements, so the result does not depend on the thread count).
public func attentionBiasGradient(dScores: UnsafePointer<Float>, dBias: UnsafeMutablePointer<Float>, shape s: AttentionShape) {
    let per = s.queries * s.keys, n = s.heads * per, stride = n
    parallelFor(n, grain: elementwiseGrain) { r in
        for i in r { dBias[i] = dScores[i] }
        for b in 1..<max(1, s.batch) {
            let src = dScores + b * stride
            for i in r { dBias[i] += src[i] }
        }
    }
}

/// A thread's scratch for the heads of `attentionBackward` it runs for other threads.
final class AttentionScratch {
    private let storage = GrowingBuffer<Float>()
    static let perThread = ThreadLocal { AttentionScratch() }

    func buffer(_ count: Int) -> UnsafeMutablePointer<Float> { storage.reserve(count) }
}

/// Naive twin of `attentionForward` (Double arithmetic, direct loops), for tests. Returns the output.
public func attentionReference(q: [Float], k: [Float], v: [Float], shape s: AttentionShape, scale: Float,
                               mask: [Bool]?, maskPerHead: Bool) -> [Float] {
    let w = s.width, tq = s.queries, tk = s.keys, d = s.headDim
    var out = [Float](repeating: 0, count: s.batch * tq * w)
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            for i in 0..<tq {
                var scores = [Double](repeating: 0, count: tk)
                for j in 0..<tk {
                    var acc = 0.0
                    for c in 0..<d { acc += Double(q[(b * tq + i) * w + h * d + c]) * Double(k[(b * tk + j) * w + h * d + c]) }
                    scores[j] = acc * Double(scale)
                }
                let mrow = (maskPerHead ? b * s.heads + h : b) * tq * tk + i * tk
                var blocked = (0..<tk).map { mask?[mrow + $0] ?? false }
                if blocked.allSatisfy({ $0 }) { blocked = [Bool](repeating: false, count: tk) }
                let mx = (0..<tk).filter { !blocked[$0] }.map { scores[$0] }.max() ?? 0
                var z = 0.0
                for j in 0..<tk where !blocked[j] { z += Foundation.exp(scores[j] - mx) }
                for c in 0..<d {
                    var acc = 0.0
                    for j in 0..<tk where !blocked[j] { acc += Foundation.exp(scores[j] - mx) / z * Double(v[(b * tk + j) * w + h * d + c]) }
                    out[(b * tq + i) * w + h * d + c] = Float(acc)
                }
            }
        }
    }
    return out
}
