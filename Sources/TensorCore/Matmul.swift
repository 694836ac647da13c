// Matrix products through cblas_sgemm: matmul, batched matmul with transposes, and the fused linear.
// Corresponds to torch.matmul / torch.bmm / F.linear.
import Kernels

extension Tensor {
    /// Batched matrix product with optional transposes of the last two dimensions.
    ///
    /// `a`: `[..., M, K]` (or `[..., K, M]` when `transA`), `b`: `[..., K, N]` (or `[..., N, K]`).
    /// Batch dimensions must be equal, or one operand is 2-D and shared by every batch.
    /// Output: `[..., M, N]`.
    public static func matmul(_ a: Tensor, _ b: Tensor, transA: Bool = false, transB: Bool = false) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank ≥ 2, got \(a.shape) and \(b.shape)")
        let aBatch = Array(a.shape.dropLast(2)), bBatch = Array(b.shape.dropLast(2))
        precondition(aBatch == bBatch || aBatch.isEmpty || bBatch.isEmpty,
                     "matmul batch dimensions \(aBatch) and \(bBatch) differ")
        let batchShape = aBatch.isEmpty ? bBatch : aBatch
        let batch = batchShape.product
        let ar = a.shape[a.rank - 2], ac = a.shape[a.rank - 1]
        let br = b.shape[b.rank - 2], bc = b.shape[b.rank - 1]
        let m = transA ? ac : ar, k = transA ? ar : ac
        let kb = transB ? bc : br, n = transB ? br : bc
        precondition(k == kb, "matmul inner dimensions \(k) and \(kb) differ (\(a.shape)\(transA ? "ᵀ" : "") · \(b.shape)\(transB ? "ᵀ" : ""))")
        let out = Tensor(uninitialized: batchShape + [m, n])
        let aStep = aBatch.isEmpty ? 0 : ar * ac, bStep = bBatch.isEmpty ? 0 : br * bc
        if bBatch.isEmpty && !transA && batch > 1 {
            // Shared right matrix and row-major A: fold the batch into M (one GEMM).
            sgemm(transA: false, transB: transB, m: batch * m, n: n, k: k, a: a.data, lda: ac,
                  b: b.data, ldb: bc, c: out.data, ldc: n)
        } else {
            for i in 0..<batch {
                sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a.data + i * aStep, lda: ac,
                      b: b.data + i * bStep, ldb: bc, c: out.data + i * m * n, ldc: n)
            }
        }
        return Autograd.record("matmul", out, [a, b]) { g in
            // C = op(A)·op(B).  dop(A) = G·op(B)ᵀ, dop(B) = op(A)ᵀ·G; then undo the transposes and
            // sum over the batch for an operand that was shared.
            var ga: Tensor? = nil, gb: Tensor? = nil
            if a.requiresGrad {
                let full = transA ? matmul(b, g, transA: transB, transB: true) : matmul(g, b, transB: !transB)
                ga = aBatch.isEmpty && batch > 1 ? full.reshaped([batch, ar, ac]).sum(axis: 0) : full
            }
            if b.requiresGrad {
                let full = transB ? matmul(g, a, transA: true, transB: transA) : matmul(a, g, transA: !transA)
                gb = bBatch.isEmpty && batch > 1 ? full.reshaped([batch, br, bc]).sum(axis: 0) : full
            }
            return [ga, gb]
        }
    }

    /// Fused linear layer: `x · weightᵀ + bias`.
    ///
    /// `x`: `[..., in]`, `weight`: `[out, in]` (PyTorch layout), `bias`: `[out]`. Output `[..., out]`.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(weight.rank == 2 && x.shape.last == weight.shape[1],
                     "linear: input \(x.shape) does not match weight \(weight.shape)")
        let inF = weight.shape[1], outF = weight.shape[0]
        let rows = x.count / Swift.max(inF, 1)
        let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outF])
        if let bias {
            precondition(bias.shape == [outF], "linear bias \(bias.shape) for \(outF) outputs")
            for r in 0..<rows { (out.data + r * outF).update(from: bias.data, count: outF) }
        }
        sgemm(transA: false, transB: true, m: rows, n: outF, k: inF, a: x.data, lda: inF,
              b: weight.data, ldb: inF, beta: bias == nil ? 0 : 1, c: out.data, ldc: outF)
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        return Autograd.record("linear", out, inputs) { g in
            var gx: Tensor? = nil, gw: Tensor? = nil, gb: Tensor? = nil
            if x.requiresGrad {
                let t = Tensor(uninitialized: x.shape)
                sgemm(transA: false, transB: false, m: rows, n: inF, k: outF, a: g.data, lda: outF,
                      b: weight.data, ldb: inF, c: t.data, ldc: inF)
                gx = t
            }
            if weight.requiresGrad {
                let t = Tensor(uninitialized: weight.shape)
                sgemm(transA: true, transB: false, m: outF, n: inF, k: rows, a: g.data, lda: outF,
                      b: x.data, ldb: inF, c: t.data, ldc: inF)
                gw = t
            }
            if let bias, bias.requiresGrad { gb = g.reshaped([rows, outF]).sum(axis: 0) }
            return bias == nil ? [gx, gw] : [gx, gw, gb]
        }
    }
}
