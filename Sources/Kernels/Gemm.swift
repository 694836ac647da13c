// Gemm: the one matrix-multiply entry point of MaskPilot: oneDNN's fp32 matmul (or cblas_sgemm, `KernelLibrary`) in
// fp32, oneDNN's bf16 matmul (fp32 accumulation and output) when the thread's `GEMMPrecision` is bf16.
// Row-major throughout; corresponds to torch.matmul / F.linear in the reference (under bf16 autocast: their bf16
// versions).
import CBLAS
import Foundation
import CDNNL
import Synchronization

/// Floating-point operations issued through `sgemm` (2·M·N·K per call), for benchmarks that compare a
/// step against the sgemm floor. One relaxed atomic add per call.
public enum GEMMCounter {
    static let flops = Atomic<Int>(0)
    /// FLOPs counted since the last `reset()`.
    public static var value: Int { flops.load(ordering: .relaxed) }
    public static func reset() { flops.store(0, ordering: .relaxed) }
}

/// The precision of the products `sgemm` computes on this thread: `.fp32`, or `.bf16` (operands rounded
/// to bf16, products accumulated in fp32 by oneDNN; `torch.autocast`'s rule for matmul, linear and conv).
public enum GEMMPrecision: String, Sendable, CaseIterable, Codable {
    case fp32, bf16

    fileprivate final class Box {
        var value = GEMMPrecision.fp32, emulated = false
        var library = KernelLibrary.oneDNN
        var shapeLog: GEMMShapeLog?   // while `withGEMMShapeLog` runs (shared with the loops' threads)
    }
    fileprivate static let perThread = ThreadLocal { Box() }

    /// This thread's precision (fp32 until set).
    public static var current: GEMMPrecision {
        get { perThread.value.value }
        set { perThread.value.value = newValue }
    }
}

/// Which library runs this thread's fp32 GEMMs and convolutions.
public enum KernelLibrary: Sendable {
    /// oneDNN: fp32 GEMMs as its matmul, non-pointwise convolutions as its direct convolution (where
    /// `DNNLConvolution.chosen` says; the measured table is in docs/perf.md).
    case oneDNN
    /// OpenBLAS: fp32 GEMMs as `cblas_sgemm`, convolutions as im2col + GEMM (the path before oneDNN; for tests and
    /// comparisons). bf16 GEMMs run on oneDNN either way (emulated where it has no bf16 kernels: `BF16Support`).
    case openBLAS

    /// This thread's library (oneDNN until set).
    public static var current: KernelLibrary {
        get { GEMMPrecision.perThread.value.library }
        set { GEMMPrecision.perThread.value.library = newValue }
    }
}

/// Runs `body` with this thread's fp32 GEMMs and convolutions on `library`, then restores the previous one.
public func withKernelLibrary<T>(_ library: KernelLibrary, _ body: () throws -> T) rethrows -> T {
    let box = GEMMPrecision.perThread.value
    let saved = box.library
    box.library = library
    defer { box.library = saved }
    return try body()
}

/// This thread's GEMM settings (precision, the emulated twin, the library), carried by a parallel loop to the threads
/// that run its chunks, so that a GEMM inside a chunk computes what it would on the calling thread.
struct GEMMSettings {
    var precision: GEMMPrecision, emulated: Bool, library: KernelLibrary, shapeLog: GEMMShapeLog?

    static var current: GEMMSettings {
        let box = GEMMPrecision.perThread.value
        return GEMMSettings(precision: box.value, emulated: box.emulated, library: box.library, shapeLog: box.shapeLog)
    }

    /// Runs `body` with these settings on this thread, then restores the thread's own.
    func apply(_ body: () -> Void) {
        let box = GEMMPrecision.perThread.value
        let saved = (box.value, box.emulated, box.library, box.shapeLog)
        (box.value, box.emulated, box.library, box.shapeLog) = (precision, emulated, library, shapeLog)
        defer { (box.value, box.emulated, box.library, box.shapeLog) = saved }
        body()
    }
}

extension GEMMPrecision {
    /// The operand type of oneDNN's convolutions on this thread; nil under the emulated bf16 twin (whose convolutions
    /// run as im2col + its GEMMs).
    static var dnnlConvolutionInput: DNNLType? {
        let box = perThread.value
        if box.value == .bf16 { return box.emulated || !BF16Support.native ? nil : .bf16 }
        return .f32
    }
}

/// Runs `body` with this thread's bf16 products computed by the independent twin of the oneDNN path: operands
/// rounded to bf16 (`bfloat16`) into fp32 buffers and multiplied by OpenBLAS. For tests: it shows that the bf16
/// path computes exactly "bf16 operands, fp32 accumulation", so whatever differs from fp32 is bf16's rounding.
public func withEmulatedBF16<T>(_ body: () throws -> T) rethrows -> T {
    let box = GEMMPrecision.perThread.value
    let saved = box.emulated
    box.emulated = true
    defer { box.emulated = saved }
    return try body()
}

/// `op(A)·op(B)` with both operands rounded to bf16 values first, by OpenBLAS (see `withEmulatedBF16`). The rounded
/// copies are packed (leading dimension = their columns) in this thread's buffers, rounded by the vector conversion
/// (equal to the scalar `bfloat16` element for element): no allocation and no scalar loop per call, which made the
/// emulation's im2col convolutions cost more in rounding than in products.
private func emulatedBF16Gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>,
                              lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let (aRows, aCols) = transA ? (k, m) : (m, k)
    let (bRows, bCols) = transB ? (n, k) : (k, n)
    let buffers = EmulatedBF16Buffers.perThread.value
    let ra = buffers.a.reserve(aRows * aCols), rb = buffers.b.reserve(bRows * bCols)
    let halves = buffers.halves.reserve(max(aRows * aCols, bRows * bCols))
    convertToBF16(rows: aRows, cols: aCols, a, ld: lda, halves)
    convertFromBF16(halves, ra, count: aRows * aCols)
    convertToBF16(rows: bRows, cols: bCols, b, ld: ldb, halves)
    convertFromBF16(halves, rb, count: bRows * bCols)
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, ra, Int32(aCols), rb, Int32(bCols), beta, c, Int32(ldc))
}

/// This thread's buffers for the emulated bf16 GEMM: the rounded operands and the bf16 halves between.
final class EmulatedBF16Buffers {
    let a = GrowingBuffer<Float>(), b = GrowingBuffer<Float>(), halves = GrowingBuffer<UInt16>()
    static let perThread = ThreadLocal { EmulatedBF16Buffers() }
}

/// A GEMM as `sgemm` receives it: shape, row strides, alpha and beta.
public struct GEMMShape: Hashable, Sendable, CustomStringConvertible {
    public let transA: Bool, transB: Bool
    public let m: Int, n: Int, k: Int
    public let lda: Int, ldb: Int, ldc: Int
    public let alpha: Float, beta: Float
    public init(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil,
                alpha: Float = 1, beta: Float = 0) {
        self.transA = transA; self.transB = transB; self.m = m; self.n = n; self.k = k
        self.lda = lda ?? (transA ? m : k); self.ldb = ldb ?? (transB ? k : n); self.ldc = ldc ?? n
        self.alpha = alpha; self.beta = beta
    }
    public var flops: Int { 2 * m * n * k }
    /// `M×Kᵀ·K×N` with the strides, alpha and beta where they are not the packed defaults.
    public var description: String {
        var s = "\(m)×\(k)\(transA ? "ᵀ" : "")·\(k)×\(n)\(transB ? "ᵀ" : "")"
        if lda != (transA ? m : k) || ldb != (transB ? k : n) || ldc != n { s += " ld \(lda),\(ldb),\(ldc)" }
        if alpha != 1 { s += " α\(alpha)" }
        if beta != 0 { s += " β\(beta)" }
        return s
    }
}

/// The calls `withGEMMShapeLog` counts: `sgemm` calls per shape and convolution forwards per geometry, from the
/// calling thread and the threads of the parallel loops it starts (which carry the log with the GEMM settings).
final class GEMMShapeLog: Sendable {
    let counts = Mutex<(shapes: [GEMMShape: Int], convolutions: [ConvGeometry: Int])>(([:], [:]))
}

/// Runs `body` and returns, with its result, how many `sgemm` calls of each shape and convolution forwards of each
/// geometry it made, on this thread and in the parallel loops it ran (for benchmarks: which shapes a step's GEMM time
/// is spent on). An inner call counts its own body only.
public func withGEMMShapeLog<T>(_ body: () throws -> T) rethrows -> (T, [GEMMShape: Int], [ConvGeometry: Int]) {
    let box = GEMMPrecision.perThread.value
    let saved = box.shapeLog
    let log = GEMMShapeLog()
    box.shapeLog = log
    defer { box.shapeLog = saved }
    let result = try body()
    let counts = log.counts.withLock { $0 }
    return (result, counts.shapes, counts.convolutions)
}

/// Counts a convolution forward of `geometry` while `withGEMMShapeLog` runs.
func logConvolution(_ geometry: ConvGeometry) {
    GEMMPrecision.perThread.value.shapeLog?.counts.withLock { $0.convolutions[geometry, default: 0] += 1 }
}

/// Runs `body` with this thread's GEMMs in `precision`, then restores the previous one.
public func withGEMMPrecision<T>(_ precision: GEMMPrecision, _ body: () throws -> T) rethrows -> T {
    let saved = GEMMPrecision.current
    GEMMPrecision.current = precision
    defer { GEMMPrecision.current = saved }
    return try body()
}

/// Row-major GEMM with fp32 inputs and output: `C = alpha · op(A) · op(B) + beta · C`, in this thread's
/// `GEMMPrecision`.
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
    let precision = GEMMPrecision.perThread.value   // one thread-local lookup per call
    if let log = precision.shapeLog {
        let shape = GEMMShape(transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, alpha: alpha, beta: beta)
        log.counts.withLock { $0.shapes[shape, default: 0] += 1 }
    }
    if precision.value == .bf16 {
        if precision.emulated || !BF16Support.native {
            emulatedBF16Gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                             beta: beta, c: c, ldc: ldc)
            return
        }
        // `BF16Support.native` ran a bf16 matmul (once, before the first bf16 product), so a failure of one of this
        // shape (primitives are created per shape, lazily) is a resource or oneDNN problem, not user input; the message
        // names the shape and status.
        do {
            try dnnlGemm(input: .bf16, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                         b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        } catch {
            fatalError("sgemm in bf16 (M \(m), N \(n), K \(k)): \(error)")
        }
        return
    }
    // fp32: oneDNN's matmul is 4–17 % faster than OpenBLAS on the model's shapes (`bench step --gemm-shapes`); OpenBLAS
    // when chosen, or should oneDNN fail to make a primitive.
    if precision.library == .oneDNN,
       (try? dnnlGemm(input: .f32, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                      beta: beta, c: c, ldc: ldc)) != nil {
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

/// A rank's compute threads: OpenBLAS's, oneDNN's (OpenMP) and MaskPilot's own parallel loops (`parallelFor`, run on
/// the same OpenMP threads), set together so that they never oversubscribe the cores a rank is given. oneDNN's count
/// applies to the calling thread's calls (the step runs on one thread).
public enum ComputeThreads {
    public static func set(_ n: Int) {
        BLASThreads.set(n)
        DNNLThreads.set(n)
        IntraOpThreads.set(n)
    }

    /// The count last set (MaskPilot's loops; the GEMM libraries were given the same).
    public static var current: Int { IntraOpThreads.current }
}

/// Whether this CPU runs bf16 products natively: oneDNN's bf16 matmul passed `checkBF16Support` (checked once per
/// process). oneDNN 2.6 has bf16 kernels from AVX-512 (avx512_core) on; on a CPU without them (AVX2 only), bf16
/// products run as the emulated twin (`withEmulatedBF16`: operands rounded to bf16, fp32 products by OpenBLAS), so a
/// bf16 run computes the same thing, "bf16 operands, fp32 accumulation", at fp32 speed or below (as torch's autocast
/// does on such CPUs).
///
/// `MASKPILOT_BF16=emulated` in the environment forces the emulated path on any CPU (to compare it with the native one,
/// and so that `make test` covers it on AVX-512 machines too).
public enum BF16Support {
    public static let native: Bool = !forcedEmulation && (try? checkBF16Support()) != nil
    /// Whether `MASKPILOT_BF16=emulated` is set.
    public static let forcedEmulation = ProcessInfo.processInfo.environment["MASKPILOT_BF16"] == "emulated"
}

/// Throws (naming oneDNN's call and status) unless this machine runs oneDNN's bf16 matmul (see `BF16Support`).
public func checkBF16Support() throws {
    var a: [Float] = [1, 2, 3, 4], b: [Float] = [1, 0, 0, 1], c = [Float](repeating: 0, count: 4)
    try dnnlGemm(input: .bf16, transA: false, transB: false, m: 2, n: 2, k: 2, a: &a, lda: 2, b: &b, ldb: 2, c: &c, ldc: 2)
    guard c == a else { throw DNNLError(call: "dnnl_primitive_execute(matmul bf16 self-test: \(c))", status: dnnl_runtime_error) }
}

/// OpenBLAS's build configuration (`openblas_get_config`), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64".
public func openBLASDescription() -> String {
    guard let config = openblas_get_config() else { return "OpenBLAS" }
    let text = String(cString: config)
    return text.hasPrefix("OpenBLAS") ? text : "OpenBLAS " + text
}

