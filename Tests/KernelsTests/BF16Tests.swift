// bf16 conversions (round to nearest even, NaN and overflow as IEEE) and the bf16 GEMM through oneDNN against the
// fp32 product, within the bound derived from bf16's 8-bit significand (`bf16ProductBound`).
import Foundation
import _TestSupport
import Kernels
import Testing

@Suite struct BF16Tests {
    @Test func roundsToNearestEven() {
        #expect(bfloat16(1) == 0x3F80)
        #expect(bfloat16(1 + 1.0 / 256) == 0x3F80)        // halfway, to the even neighbour 1
        #expect(bfloat16(1 + 3.0 / 256) == 0x3F82)        // halfway, to the even neighbour 1 + 2⁻⁶
        #expect(bfloat16(1 + 1.0 / 256 + 1.0 / 65536) == 0x3F81)   // above halfway
        #expect(bfloat16(-2.5) == 0xC020)
        #expect(bfloat16(.infinity) == 0x7F80 && bfloat16(-.infinity) == 0xFF80)
        #expect(bfloat16(.greatestFiniteMagnitude) == 0x7F80)        // overflows to +∞ as IEEE rounding does
        #expect(float(bfloat16: bfloat16(.nan)).isNaN)
        #expect(float(bfloat16: bfloat16(Float(bitPattern: 0x7F80_0001))).isNaN)   // a NaN never becomes ∞
        #expect(float(bfloat16: 0x3FC0) == 1.5)
    }

    @Test func vectorConversionEqualsScalar() {
        var x = testTensor([97], seed: 4, low: -1000, high: 1000).values
        x[3] = .nan; x[17] = .infinity; x[40] = -0.0; x[90] = Float(bitPattern: 0x7F80_0001); x[91] = Float(bitPattern: 0x0001_2345)
        var y = [UInt16](repeating: 0, count: x.count)
        convertToBF16(x, &y, count: x.count)
        for i in x.indices { #expect(y[i] == bfloat16(x[i]), "element \(i): \(x[i])") }
        var back = [Float](repeating: 0, count: x.count)
        convertFromBF16(y, &back, count: x.count)
        for i in x.indices where x[i].isFinite && abs(x[i]) > 1e-30 {
            #expect(abs(Double(back[i] - x[i])) <= bf16UnitRoundoff * abs(Double(x[i])))
        }
    }

    /// Every transpose combination, padded strides, alpha and beta: the bf16 product (oneDNN's where the CPU has its
    /// bf16 kernels, else the emulated twin) against OpenBLAS's fp32 product, entry by entry within `bf16ProductBound`;
    /// and `sgemm` under `withGEMMPrecision(.bf16)` is that same bf16 product, bit for bit.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func bf16GemmIsWithinTheBoundOfFP32(_ transA: Bool, _ transB: Bool) throws {
        let m = 13, n = 21, k = 70
        let g = PaddedGEMM(m: m, n: n, k: k, pad: 3, transA: transA, transB: transB, seeds: (1, 2, 3), range: 2)
        let (a, b, c0, lda, ldb, ldc) = (g.a, g.b, g.c0, g.lda, g.ldb, g.ldc)
        for (alpha, beta) in [(Float(1), Float(0)), (Float(0.125), Float(1)), (Float(-2), Float(0.5))] {
            var fp32 = c0, bf16 = c0, viaSgemm = c0, magnitude = [Float](repeating: 0, count: m * ldc)
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                  beta: beta, c: &fp32, ldc: ldc)
            if BF16Support.native {
                try dnnlGemm(input: .bf16, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                             b: b, ldb: ldb, beta: beta, c: &bf16, ldc: ldc)
            } else {
                bf16 = g.twin(alpha: alpha, beta: beta)
            }
            withGEMMPrecision(.bf16) {
                sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                      beta: beta, c: &viaSgemm, ldc: ldc)
            }
            #expect(GEMMPrecision.current == .fp32)
            sgemmReference(transA: transA, transB: transB, m: m, n: n, k: k, alpha: abs(alpha), a: a.map(abs), lda: lda,
                           b: b.map(abs), ldb: ldb, c: &magnitude, ldc: ldc)
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    let e = i * ldc + j
                    let err = abs(Double(bf16[e]) - Double(fp32[e]))
                    let bound = bf16ProductBound(magnitude: Double(magnitude[e]), k: k) + 2 * abs(Double(beta * c0[e])) / 16_777_216
                    worst = max(worst, err / bound)
                    #expect(err <= bound, "(\(i), \(j)) alpha \(alpha) beta \(beta): \(bf16[e]) vs \(fp32[e])")
                    #expect(viaSgemm[e].bitPattern == bf16[e].bitPattern)
                }
                for j in n..<ldc { #expect(bf16[i * ldc + j] == c0[i * ldc + j], "padding written") }
            }
            // The bound is not loose by orders of magnitude: the worst entry uses a visible part of it.
            #expect(worst > 0.01, "worst error \(worst) of the bound")
        }
    }

    /// fp32 `sgemm` runs oneDNN's matmul (bit for bit `dnnlGemm(input: .f32)`), which agrees with OpenBLAS up to
    /// fp32 accumulation order (2·k·2⁻²⁴ of Σ|products|) for every transpose, padded strides, alpha and beta, and
    /// leaves the padding alone.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func fp32ThroughOneDNNMatchesOpenBLAS(_ transA: Bool, _ transB: Bool) throws {
        let m = 31, n = 17, k = 45
        let g = PaddedGEMM(m: m, n: n, k: k, pad: 2, transA: transA, transB: transB, seeds: (5, 6, 7), range: 1)
        let (a, b, c0, lda, ldb, ldc) = (g.a, g.b, g.c0, g.lda, g.ldb, g.ldc)
        for (alpha, beta) in [(Float(1), Float(0)), (Float(0.5), Float(1)), (Float(-3), Float(0.25))] {
            var blas = c0, dnnl = c0, viaSgemm = c0, magnitude = [Float](repeating: 0, count: m * ldc)
            withKernelLibrary(.openBLAS) {
                sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                      beta: beta, c: &blas, ldc: ldc)
            }
            try dnnlGemm(input: .f32, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
                         ldb: ldb, beta: beta, c: &dnnl, ldc: ldc)
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta,
                  c: &viaSgemm, ldc: ldc)
            sgemmReference(transA: transA, transB: transB, m: m, n: n, k: k, alpha: abs(alpha), a: a.map(abs), lda: lda,
                           b: b.map(abs), ldb: ldb, c: &magnitude, ldc: ldc)
            for i in 0..<m {
                for j in 0..<n {
                    let e = i * ldc + j
                    let bound = (2 * Double(k) * Double(magnitude[e]) + 4 * abs(Double(beta * c0[e]))) / 16_777_216 + 1e-30
                    #expect(abs(Double(dnnl[e]) - Double(blas[e])) <= bound, "(\(i), \(j)) alpha \(alpha) beta \(beta)")
                    #expect(viaSgemm[e].bitPattern == dnnl[e].bitPattern)
                }
                for j in n..<ldc { #expect(viaSgemm[i * ldc + j] == c0[i * ldc + j], "padding written") }
            }
        }
    }

    /// The emulated twin is exactly "operands rounded to bf16 one by one (the scalar `bfloat16`), then OpenBLAS's fp32
    /// product", bit for bit, for every transpose, padded strides, alpha and beta, and leaves C's padding alone.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func emulatedTwinIsRoundedOperandsThroughOpenBLAS(_ transA: Bool, _ transB: Bool) {
        let m = 37, n = 19, k = 53
        let g = PaddedGEMM(m: m, n: n, k: k, pad: 5, transA: transA, transB: transB, seeds: (11, 12, 13), range: 3)
        let (a, b, c0, lda, ldb, ldc, aCols, bCols) = (g.a, g.b, g.c0, g.lda, g.ldb, g.ldc, g.aCols, g.bCols)
        var ra: [Float] = [], rb: [Float] = []
        for r in 0..<g.aRows { for j in 0..<aCols { ra.append(float(bfloat16: bfloat16(a[r * lda + j]))) } }
        for r in 0..<g.bRows { for j in 0..<bCols { rb.append(float(bfloat16: bfloat16(b[r * ldb + j]))) } }
        for (alpha, beta) in [(Float(1), Float(0)), (Float(0.25), Float(1)), (Float(-1.5), Float(0.5))] {
            let twin = g.twin(alpha: alpha, beta: beta)
            var expected = c0
            withKernelLibrary(.openBLAS) {
                sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ra, lda: aCols, b: rb, ldb: bCols,
                      beta: beta, c: &expected, ldc: ldc)
            }
            #expect(twin.map(\.bitPattern) == expected.map(\.bitPattern), "alpha \(alpha) beta \(beta)")
        }
    }

    /// bf16 runs natively exactly where the CPU has what oneDNN 2.6's bf16 kernels need (AVX-512 F, BW, VL and DQ, read
    /// from /proc/cpuinfo independently of oneDNN) and MASKPILOT_BF16=emulated is not set, so a capable machine never
    /// falls back silently; elsewhere `sgemm` in bf16 is the emulated twin, bit for bit (and without AVX-512 oneDNN
    /// refuses a bf16 matmul). `make test` runs the bf16 suites again under MASKPILOT_BF16=emulated.
    @Test func bf16RunsNativelyWhereTheCPUCanElseEmulated() throws {
        #expect(dnnlDescription().hasPrefix("oneDNN 2."))
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flags = Set(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? [])
        let capable = ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy(flags.contains)
        #expect(BF16Support.native == (capable && !BF16Support.forcedEmulation),
                "CPU flags say \(capable ? "" : "not ")AVX-512 (F, BW, VL, DQ); MASKPILOT_BF16=emulated \(BF16Support.forcedEmulation)")
        if BF16Support.native {
            try checkBF16Support()
            return
        }
        if !capable { #expect(throws: DNNLError.self) { try checkBF16Support() } }
        let m = 9, n = 11, k = 37
        let a = testTensor([m * k], seed: 8).values, b = testTensor([k * n], seed: 9).values
        var viaSgemm = [Float](repeating: 0, count: m * n), twin = viaSgemm, fp32 = viaSgemm
        withGEMMPrecision(.bf16) {
            sgemm(transA: false, transB: false, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &viaSgemm, ldc: n)
            withEmulatedBF16 { sgemm(transA: false, transB: false, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &twin, ldc: n) }
        }
        sgemm(transA: false, transB: false, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &fp32, ldc: n)
        #expect(viaSgemm.map(\.bitPattern) == twin.map(\.bitPattern))
        #expect(viaSgemm != fp32, "the bf16 product rounds its operands")
    }
}

/// A GEMM test case with padded strides: `op(A)` [m, k] and `op(B)` [k, n] stored as given by the transposes with
/// `pad` extra elements per row, entries uniform in ±`range` (C's in ±1), from three seeds.
private struct PaddedGEMM {
    let m: Int, n: Int, k: Int, transA: Bool, transB: Bool
    let aRows: Int, aCols: Int, bRows: Int, bCols: Int
    let lda: Int, ldb: Int, ldc: Int
    let a: [Float], b: [Float], c0: [Float]

    init(m: Int, n: Int, k: Int, pad: Int, transA: Bool, transB: Bool, seeds: (UInt64, UInt64, UInt64), range: Float) {
        (self.m, self.n, self.k, self.transA, self.transB) = (m, n, k, transA, transB)
        (aRows, aCols) = transA ? (k, m) : (m, k)
        (bRows, bCols) = transB ? (n, k) : (k, n)
        (lda, ldb, ldc) = (aCols + pad, bCols + pad, n + pad)
        a = testTensor([aRows * lda], seed: seeds.0, low: -range, high: range).values
        b = testTensor([bRows * ldb], seed: seeds.1, low: -range, high: range).values
        c0 = testTensor([m * ldc], seed: seeds.2).values
    }

    /// `alpha·op(A)·op(B) + beta·C` by the emulated bf16 twin.
    func twin(alpha: Float, beta: Float) -> [Float] {
        var c = c0
        withGEMMPrecision(.bf16) { withEmulatedBF16 {
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                  beta: beta, c: &c, ldc: ldc)
        } }
        return c
    }
}
