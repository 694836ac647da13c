// Fused multi-head scaled-dot-product attention op with a boolean mask and its backward.
// Corresponds to torch.nn.MultiheadAttention's core (softmax(QKᵀ/√d + mask)·V), Mask2Former's masked attention.
import Kernels

extension Tensor {
    /// Multi-head attention on projected inputs.
    ///
    /// `q`: `[B, Tq, heads·d]`, `k`, `v`: `[B, Tk, heads·d]` → `[B, Tq, heads·d]`.
    /// `mask`: `[B, Tq, Tk]` (shared by the heads) or `[B·heads, Tq, Tk]` row-major, `true` = blocked.
    /// A query row that blocks every key attends to every key instead (Mask2Former's rule).
    /// `scale` defaults to 1/√d.
    public static func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, mask: [Bool]? = nil,
                                 scale: Float? = nil) -> Tensor {
        precondition(q.rank == 3 && k.rank == 3 && v.rank == 3, "attention expects rank-3 q, k, v")
        let b = q.shape[0], tq = q.shape[1], w = q.shape[2], tk = k.shape[1]
        precondition(k.shape == [b, tk, w] && v.shape == [b, tk, w], "attention q \(q.shape), k \(k.shape), v \(v.shape)")
        precondition(heads > 0 && w % heads == 0, "width \(w) not divisible by \(heads) heads")
        let s = AttentionShape(batch: b, heads: heads, queries: tq, keys: tk, headDim: w / heads)
        let sc = scale ?? 1 / Float(s.headDim).squareRoot()
        var perHead = false
        if let mask {
            perHead = mask.count == b * heads * tq * tk
            precondition(perHead || mask.count == b * tq * tk,
                         "attention mask of \(mask.count) elements for [B=\(b) (·\(heads)), \(tq), \(tk)]")
        }
        let out = Tensor(uninitialized: [b, tq, w])
        let probs = Storage(uninitializedCount: b * heads * tq * tk)
        func run(_ m: UnsafePointer<Bool>?) {
            attentionForward(q: q.data, k: k.data, v: v.data, out: out.data, probs: probs.base, shape: s,
                             scale: sc, mask: m, maskPerHead: perHead)
        }
        if let mask { mask.withUnsafeBufferPointer { run($0.baseAddress) } } else { run(nil) }
        return Autograd.record("attention", out, [q, k, v]) { g in
            let dq = q.requiresGrad ? Tensor(uninitialized: q.shape) : nil
            let dk = k.requiresGrad ? Tensor(uninitialized: k.shape) : nil
            let dv = v.requiresGrad ? Tensor(uninitialized: v.shape) : nil
            let scratch = Storage(uninitializedCount: tq * tk)
            attentionBackward(q: q.data, k: k.data, v: v.data, probs: probs.base, dOut: g.data,
                              dq: dq?.data, dk: dk?.data, dv: dv?.data, scratch: scratch.base, shape: s, scale: sc)
            return [dq, dk, dv]
        }
    }

    /// Window attention (Swin): per item b and head h, `softmax(scale·q·kᵀ + bias[h] + windowMask[b mod nW])·v`.
    ///
    /// `q`, `k`, `v`: `[B', T, heads·d]` with B' = images·nW (each image's windows consecutive); `bias`:
    /// `[heads, T, T]` (the gathered relative position bias, gradient summed over the items); `windowMask`:
    /// `[nW, T, T]` additive (the shifted windows' −100 / 0), or nil. `scale` defaults to 1/√d.
    public static func windowAttention(q: Tensor, k: Tensor, v: Tensor, heads: Int, bias: Tensor, windowMask: Tensor?,
                                       scale: Float? = nil) -> Tensor {
        precondition(q.rank == 3 && k.shape == q.shape && v.shape == q.shape, "window attention q \(q.shape), k \(k.shape), v \(v.shape)")
        let b = q.shape[0], t = q.shape[1], w = q.shape[2]
        precondition(heads > 0 && w % heads == 0, "width \(w) not divisible by \(heads) heads")
        precondition(bias.shape == [heads, t, t], "window attention bias \(bias.shape), expected [\(heads), \(t), \(t)]")
        let period = windowMask?.shape[0] ?? 1
        if let windowMask {
            precondition(windowMask.shape == [period, t, t] && b % period == 0,
                         "window mask \(windowMask.shape) for \(b) windows of \(t) tokens")
        }
        let s = AttentionShape(batch: b, heads: heads, queries: t, keys: t, headDim: w / heads)
        let sc = scale ?? 1 / Float(s.headDim).squareRoot()
        let out = Tensor(uninitialized: [b, t, w])
        let probs = Storage(uninitializedCount: b * heads * t * t)
        let terms = AttentionScoreTerms(bias: UnsafePointer(bias.data), windowMask: windowMask.map { UnsafePointer($0.data) }, period: period)
        attentionForward(q: q.data, k: k.data, v: v.data, out: out.data, probs: probs.base, shape: s, scale: sc,
                         mask: nil, maskPerHead: false, terms: terms)
        let keep = windowMask
        return Autograd.record("window_attention", out, [q, k, v, bias]) { g in
            _ = keep
            let dq = q.requiresGrad ? Tensor(uninitialized: q.shape) : nil
            let dk = k.requiresGrad ? Tensor(uninitialized: k.shape) : nil
            let dv = v.requiresGrad ? Tensor(uninitialized: v.shape) : nil
            let dScores = bias.requiresGrad ? Storage(uninitializedCount: b * heads * t * t) : nil
            let scratch = Storage(uninitializedCount: t * t)
            attentionBackward(q: q.data, k: k.data, v: v.data, probs: probs.base, dOut: g.data, dq: dq?.data, dk: dk?.data,
                              dv: dv?.data, scratch: scratch.base, shape: s, scale: sc, dScores: dScores?.base)
            var dBias: Tensor? = nil
            if let dScores {
                let db = Tensor(uninitialized: bias.shape)
                attentionBiasGradient(dScores: dScores.base, dBias: db.data, shape: s)
                dBias = db
            }
            return [dq, dk, dv, dBias]
        }
    }

    /// `windowAttention` composed from primitive ops (permute, batched matmul, broadcast adds, softmax), to test the
    /// fused op and as a readable statement of what it computes.
    public static func windowAttentionComposed(q: Tensor, k: Tensor, v: Tensor, heads: Int, bias: Tensor, windowMask: Tensor?,
                                               scale: Float? = nil) -> Tensor {
        let b = q.shape[0], t = q.shape[1], w = q.shape[2], d = w / heads
        let sc = scale ?? 1 / Float(d).squareRoot()
        func split(_ x: Tensor) -> Tensor { x.reshaped([b, t, heads, d]).permuted(0, 2, 1, 3) }   // [B', heads, T, d]
        var scores = matmul(split(q), split(k), transB: true) * sc + bias                         // [B', heads, T, T]
        if let windowMask {
            let nW = windowMask.shape[0]
            scores = (scores.reshaped([b / nW, nW, heads, t, t]) + windowMask.reshaped([1, nW, 1, t, t])).reshaped([b, heads, t, t])
        }
        return matmul(scores.softmax(axis: -1), split(v)).permuted(0, 2, 1, 3).reshaped([b, t, w])
    }

    /// The same attention composed from primitive ops (permute, matmul, masked softmax); used to test
    /// the fused op and as a readable statement of what it computes.
    public static func attentionComposed(q: Tensor, k: Tensor, v: Tensor, heads: Int, mask: [Bool]? = nil,
                                         scale: Float? = nil) -> Tensor {
        let b = q.shape[0], tq = q.shape[1], w = q.shape[2], tk = k.shape[1], d = w / heads
        let sc = scale ?? 1 / Float(d).squareRoot()
        let qh = q.reshaped([b, tq, heads, d]).permuted(0, 2, 1, 3)   // [B, h, Tq, d]
        let kh = k.reshaped([b, tk, heads, d]).permuted(0, 2, 1, 3)   // [B, h, Tk, d]
        let vh = v.reshaped([b, tk, heads, d]).permuted(0, 2, 1, 3)
        let scores = matmul(qh, kh, transB: true) * sc                // [B, h, Tq, Tk]
        var fullMask: [Bool]? = nil
        if let mask {
            if mask.count == b * heads * tq * tk { fullMask = mask } else {
                var m = [Bool](); m.reserveCapacity(b * heads * tq * tk)
                for bi in 0..<b { for _ in 0..<heads { m += mask[(bi * tq * tk)..<((bi + 1) * tq * tk)] } }
                fullMask = m
            }
        }
        let p = scores.softmax(axis: -1, mask: fullMask, fullyMasked: .unmasked)
        return matmul(p, vh).permuted(0, 2, 1, 3).reshaped([b, tq, w])
    }
}
