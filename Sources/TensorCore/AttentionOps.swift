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
