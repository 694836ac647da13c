// `maskpilot bench kernels`: GFLOP/s and GB/s of the kernels against raw sgemm and memcpy.
// Measures the numbers docs/perf.md records; nothing here asserts a speed.
import ArgumentParser
import CBLAS
import Foundation
import Kernels
import TensorCore

struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels", abstract: "sgemm, matmul, conv2d, attention, elementwise and layer-norm throughput.")

    @Option(parsing: .unconditional, help: "BLAS threads (the targets are stated for one thread).")
    var threads: Int = 1

    @Option(parsing: .unconditional, help: "Minimum seconds to time each case.")
    var seconds: Double = 1.0

    func validate() throws {
        try requireOption("--threads", threads, atLeast: 1, atMost: Limit.threads)
        try requireOption("--seconds", seconds, in: 0...3600)
    }

    func run() throws {
        ComputeThreads.set(threads)
        var rng = RNG(seed: 1)
        var rows: [(String, String, String)] = []
        func add(_ name: String, _ value: String, _ note: String = "") {
            rows.append((name, value, note))
            print(pad(name, 46) + pad(value, 18, left: true) + "  " + note)
            fflush(nil)
        }
        print("maskpilot bench kernels — \(threads) BLAS thread(s), best of ≥ \(seconds) s per case")
        print(String(repeating: "-", count: 90))

        // Raw sgemm and the matmul op at n = 256, 512, 1024.
        var rawAt: [Int: Double] = [:]
        for n in [256, 512, 1024] {
            let a = Tensor.uniform([n, n], low: -1, high: 1, rng: &rng), b = Tensor.uniform([n, n], low: -1, high: 1, rng: &rng)
            let c = Tensor(uninitialized: [n, n])
            let flops = 2 * Double(n * n * n)
            let raw = flops / time { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1,
                                                 a.data, Int32(n), b.data, Int32(n), 0, c.data, Int32(n)) } / 1e9
            rawAt[n] = raw
            add("raw cblas_sgemm n=\(n)", String(format: "%.1f GFLOP/s", raw))
            let op = flops / time { _ = withNoGrad { Tensor.matmul(a, b) } } / 1e9
            add("matmul op n=\(n)", String(format: "%.1f GFLOP/s", op), String(format: "%.1f %% of sgemm", 100 * op / raw))
        }

        // conv2d 3×3, B=2, 64×64, 256→256, against sgemm at the equivalent GEMM shape.
        do {
            let bsz = 2, hw = 64, cin = 256, cout = 256
            let x = Tensor.uniform([bsz, hw, hw, cin], low: -1, high: 1, rng: &rng)
            let w = Tensor.uniform([cout, 3, 3, cin], low: -0.05, high: 0.05, rng: &rng)
            let bias = Tensor.zeros([cout])
            let m = bsz * hw * hw, k = 9 * cin
            let flops = 2 * Double(m) * Double(k) * Double(cout)
            let conv = flops / time { _ = withNoGrad { Tensor.conv2d(x, weight: w, bias: bias, stride: 1, padding: 1) } } / 1e9
            let a = Tensor.uniform([m, k], low: -1, high: 1, rng: &rng), c = Tensor(uninitialized: [m, cout])
            let gemm = flops / time { sgemm(transA: false, transB: true, m: m, n: cout, k: k, a: a.data, lda: k,
                                            b: w.data, ldb: k, c: c.data, ldc: cout) } / 1e9
            add("sgemm at conv shape (8192×2304·2304×256)", String(format: "%.1f GFLOP/s", gemm))
            add("conv2d 3×3 B=2 64×64 256→256 forward", String(format: "%.1f GFLOP/s", conv),
                String(format: "%.1f %% of sgemm", 100 * conv / gemm))
            let xg = x.detached(); xg.requiresGrad = true
            let wg = w.detached(); wg.requiresGrad = true
            let bwdFlops = 3 * flops
            let train = bwdFlops / time {
                let y = withGrad { Tensor.conv2d(xg, weight: wg, bias: bias, stride: 1, padding: 1) }
                y.backward(seed: Tensor.ones(y.shape))
                xg.grad = nil; wg.grad = nil
            } / 1e9
            add("conv2d 3×3 same, forward+backward", String(format: "%.1f GFLOP/s", train),
                String(format: "%.1f %% of sgemm", 100 * train / gemm))
        }

        // oneDNN at the same shapes, fp32 and bf16 (bf16: operands rounded and packed per call, as `sgemm` does under
        // GEMMPrecision.bf16; fp32 accumulation). The bf16 peak is the best bf16 rate measured here.
        var bf16Rates: [(String, Double)] = []
        for (name, m, n, k, transB) in [("n=256", 256, 256, 256, false), ("n=512", 512, 512, 512, false),
                                        ("n=1024", 1024, 1024, 1024, false), ("conv shape 8192×2304·2304×256", 8192, 256, 2304, true)] {
            let a = Tensor.uniform([m, k], low: -1, high: 1, rng: &rng), b = Tensor.uniform([k, n], low: -1, high: 1, rng: &rng)
            let c = Tensor(uninitialized: [m, n])
            let flops = 2 * Double(m) * Double(n) * Double(k)
            let ldb = transB ? k : n
            let blas = flops / time { sgemm(transA: false, transB: transB, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: ldb,
                                            c: c.data, ldc: n) } / 1e9
            var failure: Error?
            func dnnl(_ input: DNNLType) -> Double {
                flops / time {
                    do { try dnnlGemm(input: input, transA: false, transB: transB, m: m, n: n, k: k, a: a.data, lda: k, b: b.data,
                                      ldb: ldb, c: c.data, ldc: n) } catch { failure = error }
                } / 1e9
            }
            let f32 = dnnl(.f32), b16 = BF16Support.native ? dnnl(.bf16) : nil
            if let failure { throw RuntimeError("bench kernels: \(failure)") }
            add("oneDNN fp32 matmul \(name)", String(format: "%.1f GFLOP/s", f32), String(format: "%.2f× sgemm", f32 / blas))
            if let b16 {
                add("oneDNN bf16 matmul \(name)", String(format: "%.1f GFLOP/s", b16), String(format: "%.2f× sgemm", b16 / blas))
                bf16Rates.append((name, b16))
            }
        }
        if let bf16Peak = bf16Rates.map(\.1).max() {
            print("bf16 peak measured: \(String(format: "%.1f", bf16Peak)) GFLOP/s (\(dnnlDescription())); per shape: "
                  + bf16Rates.map { "\($0.0) \(String(format: "%.0f", 100 * $0.1 / bf16Peak)) %" }.joined(separator: ", "))
        } else {
            print("bf16: \(dnnlDescription()) has no bf16 kernels for this CPU (they need AVX-512); bf16 products run emulated "
                  + "(operands rounded to bf16, fp32 products by OpenBLAS), the bf16 columns below included")
        }

        try convolutionTable()

        // Fused attention: B·heads = 16, Q = 100, keys 4096, head dim 32, forward + backward.
        do {
            let b = 2, heads = 8, tq = 100, tk = 4096, d = 32
            let q = Tensor.uniform([b, tq, heads * d], low: -1, high: 1, rng: &rng, requiresGrad: true)
            let k = Tensor.uniform([b, tk, heads * d], low: -1, high: 1, rng: &rng, requiresGrad: true)
            let v = Tensor.uniform([b, tk, heads * d], low: -1, high: 1, rng: &rng, requiresGrad: true)
            let mask = (0..<(b * tq * tk)).map { ($0 / 7) % 3 == 0 }
            let flops = 12 * Double(b * heads * tq * tk * d)
            let rate = flops / time {
                let o = withGrad { Tensor.attention(q: q, k: k, v: v, heads: heads, mask: mask) }
                o.backward(seed: Tensor.ones(o.shape))
                q.grad = nil; k.grad = nil; v.grad = nil
            } / 1e9
            add("attention B·h=16 Q=100 K=4096 d=32 fwd+bwd", String(format: "%.1f GFLOP/s", rate),
                String(format: "%.1f %% of sgemm n=256", 100 * rate / (rawAt[256] ?? rate)))
        }

        // Bandwidth: memcpy, elementwise add and layer norm on 16 Mi floats (64 MiB per tensor).
        do {
            let n = 1 << 24
            let a = Tensor.uniform([n], rng: &rng), b = Tensor.uniform([n], rng: &rng)
            let dst = Tensor(uninitialized: [n])
            let bytes = Double(n * 4)
            let memcpyBW = 2 * bytes / time { memcpy(dst.data, a.data, n * 4) } / 1e9
            add("memcpy 64 MiB (read + write)", String(format: "%.2f GB/s", memcpyBW))
            let addBW = 3 * bytes / time { _ = withNoGrad { a + b } } / 1e9
            add("elementwise add (2 reads + 1 write)", String(format: "%.2f GB/s", addBW),
                String(format: "%.1f %% of memcpy", 100 * addBW / memcpyBW))
            let reluBW = 2 * bytes / time { _ = withNoGrad { a.relu() } } / 1e9
            add("elementwise relu (1 read + 1 write)", String(format: "%.2f GB/s", reluBW),
                String(format: "%.1f %% of memcpy", 100 * reluBW / memcpyBW))
            // GELU: the op (fastErf, vectorized) against the same loop through glibc's scalar erff.
            let geluBW = 2 * bytes / time { _ = withNoGrad { a.gelu() } } / 1e9
            let pa = a.data, pd = dst.data
            let erffBW = 2 * bytes / time {
                parallelFor(n, grain: 1 << 14) { r in for i in r { pd[i] = 0.5 * pa[i] * (1 + Foundation.erf(pa[i] * 0.70710678)) } }
            } / 1e9
            add("elementwise gelu (1 read + 1 write)", String(format: "%.2f GB/s", geluBW),
                String(format: "%.1f %% of memcpy; %.2f GB/s through glibc erff", 100 * geluBW / memcpyBW, erffBW))
            let x = a.reshaped([n / 256, 256])
            let gamma = Tensor.ones([256]), beta = Tensor.zeros([256])
            let lnBW = 2 * bytes / time { _ = withNoGrad { Tensor.layerNorm(x, weight: gamma, bias: beta, eps: 1e-5) } } / 1e9
            add("layer norm [65536, 256] forward", String(format: "%.2f GB/s", lnBW),
                String(format: "%.1f %% of memcpy", 100 * lnBW / memcpyBW))
        }
    }

    /// The convolutions of the bench (R18, 256², batch 2) and R50 models, each pass timed as im2col + GEMM and as
    /// oneDNN's direct convolution, in fp32 and bf16: the table behind `DNNLConvolution.chosen` (docs/perf.md).
    func convolutionTable() throws {
        // (name, B, H, W, Cin, Cout, k, stride, padding)
        let shapes: [(String, Int, Int, Int, Int, Int, Int, Int, Int)] = [
            ("stem 7×7/2 3→64 @256²", 2, 256, 256, 3, 64, 7, 2, 3),
            ("res2 3×3 64→64 @64²", 2, 64, 64, 64, 64, 3, 1, 1),
            ("res3 3×3/2 64→128 @64²", 2, 64, 64, 64, 128, 3, 2, 1),
            ("res3 3×3 128→128 @32²", 2, 32, 32, 128, 128, 3, 1, 1),
            ("res4 3×3 256→256 @16²", 2, 16, 16, 256, 256, 3, 1, 1),
            ("res5 3×3 512→512 @8²", 2, 8, 8, 512, 512, 3, 1, 1),
            ("pixel decoder 3×3 256→256 @64²", 2, 64, 64, 256, 256, 3, 1, 1),
            ("R50 res4 3×3 256→256 @32², B=1", 1, 32, 32, 256, 256, 3, 1, 1),
        ]
        print(String(repeating: "-", count: 90))
        print("convolutions, ms per pass (forward / backward data / backward weights), best of ≥ \(seconds / 4) s:")
        print(pad("shape", 34) + pad("im2col fp32", 20, left: true) + pad("oneDNN fp32", 20, left: true)
              + pad("im2col bf16", 20, left: true) + pad("oneDNN bf16", 20, left: true))
        var rng = RNG(seed: 2)
        var impls: Set<String> = []
        for (name, b, h, w, cin, cout, k, s, p) in shapes {
            let g = ConvGeometry(batch: b, height: h, width: w, inChannels: cin, outChannels: cout, kernelHeight: k,
                                 kernelWidth: k, stride: s, padding: p)
            let x = Tensor.uniform([g.inputCount], low: -1, high: 1, rng: &rng)
            let wt = Tensor.uniform([g.weightCount], low: -0.05, high: 0.05, rng: &rng)
            let dy = Tensor.uniform([g.outputCount], low: -1, high: 1, rng: &rng)
            let y = Tensor(uninitialized: [g.outputCount]), dx = Tensor(uninitialized: [g.inputCount])
            let dw = Tensor(uninitialized: [g.weightCount])
            let wsCount = g.workspaceCount()
            let ws = Tensor(uninitialized: [max(1, wsCount)])
            var cells: [String] = []
            for (precision, library) in [(GEMMPrecision.fp32, KernelLibrary.openBLAS), (.fp32, .oneDNN), (.bf16, .openBLAS),
                                         (.bf16, .oneDNN)] {
                let ms = withGEMMPrecision(precision) { withKernelLibrary(library) { () -> [Double] in
                    let i = convolutionImplementations(for: g)
                    impls.formUnion([i.forward, i.backwardData, i.backwardWeights])
                    return [time(minimum: seconds / 4) {
                        conv2dForward(x: x.data, weight: wt.data, bias: nil, y: y.data, geometry: g, workspace: ws.data,
                                      workspaceCount: wsCount)
                    }, time(minimum: seconds / 4) {
                        conv2dBackward(x: x.data, weight: wt.data, dy: dy.data, dx: dx.data, dWeight: nil, dBias: nil, geometry: g,
                                       workspace: ws.data, workspaceCount: wsCount)
                    }, time(minimum: seconds / 4) {
                        conv2dBackward(x: x.data, weight: wt.data, dy: dy.data, dx: nil, dWeight: dw.data, dBias: nil, geometry: g,
                                       workspace: ws.data, workspaceCount: wsCount)
                    }].map { $0 * 1e3 }
                } }
                cells.append(ms.map { String(format: "%.2f", $0) }.joined(separator: "/"))
            }
            print(pad(name, 34) + cells.map { pad($0, 20, left: true) }.joined())
            fflush(nil)
        }
        print("oneDNN implementations used: " + impls.filter { $0 != "im2col" }.sorted().joined(separator: ", "))
    }

    func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - s.count))
        return left ? fill + s : s + fill
    }

    /// Best wall-clock seconds of one call of `body`, repeated for at least `minimum` seconds (default `seconds`;
    /// and ≥ 3 runs).
    func time(minimum: Double? = nil, _ body: () -> Void) -> Double {
        body()  // warm-up: page faults, BLAS buffers
        var best = Double.infinity, total = 0.0, runs = 0
        while total < (minimum ?? seconds) || runs < 3 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = min(best, dt); total += dt; runs += 1
        }
        return best
    }
}
