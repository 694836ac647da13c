// Gemm: the one matrix-multiply entry point of MaskPilot, a thin typed wrapper over cblas_sgemm.
// Row-major throughout; corresponds to torch.matmul / F.linear in the reference.
import CBLAS
import Synchronization

/// Floating-point operations issued through `sgemm` (2·M·N·K per call), for benchmarks that compare a
/// step against the sgemm floor. One relaxed atomic add per call.
public enum GEMMCounter {
    static let flops = Atomic<Int>(0)
    /// FLOPs counted since the last `reset()`.
    public static var value: Int { flops.load(ordering: .relaxed) }
    public static func reset() { flops.store(0, ordering: .relaxed) }
}

/// Row-major single-precision GEMM: `C = alpha · op(A) · op(B) + beta · C`.
///
/// `op(A)` is `[M, K]`, `op(B)` is `[K, N]`, `C` is `[M, N]`. `lda`, `ldb`, `ldc` are the row strides
/// of the matrices as stored (so a transposed `A` stored as `[K, M]` has `lda ≥ M`).
@inline(__always)
public func sgemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    if m == 0 || n == 0 { return }
    GEMMCounter.flops.add(2 * m * n * k, ordering: .relaxed)
    if k == 0 {
        // BLAS treats K = 0 as C = beta·C; do the same without calling into it.
        for i in 0..<m {
            let row = c + i * ldc
            if beta == 0 { for j in 0..<n { row[j] = 0 } } else { for j in 0..<n { row[j] *= beta } }
        }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Naive reference twin of `sgemm` for tests (accumulates in Double).
public func sgemmReference(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = transA ? a[p * lda + i] : a[i * lda + p]
                let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                s += Double(av) * Double(bv)
            }
            let prior: Float = beta == 0 ? 0 : beta * c[i * ldc + j]
            c[i * ldc + j] = Float(Double(alpha) * s) + prior
        }
    }
}

/// Number of threads OpenBLAS uses for one call.
public enum BLASThreads {
    public static func set(_ n: Int) { mp_blas_set_threads(Int32(max(1, n))) }
    public static var current: Int { Int(mp_blas_get_threads()) }
}
