// Tests of oneDNN's convolution in bf16 (against the emulated twin and the fp32 reference, within bounds derived from
// bf16's precision) and of the parameter cache (copies made once per scope, made again in the next).
// Reference semantics: torch.nn.functional.conv2d under torch.autocast("cpu", dtype=torch.bfloat16).
import Foundation
import Kernels
import Synchronization
import Testing
import _TestSupport

@Suite struct OneDNNConvTests {
    /// (B, H, W, Cin, Cout, k, stride, padding), all run by oneDNN (backward data from 16 channels on).
    static let cases: [(Int, Int, Int, Int, Int, Int, Int, Int)] = [
        (2, 9, 7, 16, 24, 3, 1, 1), (1, 10, 9, 32, 16, 3, 2, 1), (1, 13, 11, 3, 16, 7, 2, 3), (1, 6, 7, 20, 8, 3, 2, 0),
    ]

    static func geometry(_ c: (Int, Int, Int, Int, Int, Int, Int, Int)) -> ConvGeometry {
        ConvGeometry(batch: c.0, height: c.1, width: c.2, inChannels: c.3, outChannels: c.4,
                     kernelHeight: c.5, kernelWidth: c.5, stride: c.6, padding: c.7)
    }

    /// Every entry of `got` within `bound(i)` of `want`; the worst case in the message.
    static func within(_ got: [Float], _ want: [Float], _ bound: (Int) -> Double) -> (Bool, String) {
        var worst = 0.0, at = -1
        for i in got.indices {
            let excess = Swift.abs(Double(got[i]) - Double(want[i])) / bound(i)
            if !(excess <= worst) { worst = excess; at = i }
        }
        return (worst <= 1, "worst |Δ| / bound \(worst) at \(at)")
    }

    /// Forward and backward in bf16: oneDNN equals the emulated twin (bf16 operands, fp32 accumulation through
    /// OpenBLAS) up to fp32 accumulation order (2·k·2⁻²⁴ of Σ|products|), and the fp32 reference within
    /// `bf16ProductBound`.
    @Test(arguments: 0..<cases.count)
    func bf16MatchesTwinAndReference(_ index: Int) {
        let g = Self.geometry(Self.cases[index])
        let x = randomFloats(g.inputCount, seed: 11), w = randomFloats(g.weightCount, seed: 12, low: -0.5, high: 0.5)
        let b = randomFloats(g.outChannels, seed: 13), dy = randomFloats(g.outputCount, seed: 14)
        // fp32 references and the sums of magnitudes (the same convolutions of absolute values).
        var ref = [Float](repeating: 0, count: g.outputCount), mag = ref
        conv2dForwardReference(x: x, weight: w, bias: b, y: &ref, geometry: g)
        conv2dForwardReference(x: x.map(abs), weight: w.map(abs), bias: b.map(abs), y: &mag, geometry: g)
        var rdx = [Float](repeating: 0, count: g.inputCount), rdw = [Float](repeating: 0, count: g.weightCount)
        var mdx = rdx, mdw = rdw
        conv2dBackwardReference(x: x, weight: w, dy: dy, dx: &rdx, dWeight: &rdw, dBias: nil, geometry: g)
        conv2dBackwardReference(x: x.map(abs), weight: w.map(abs), dy: dy.map(abs), dx: &mdx, dWeight: &mdw, dBias: nil,
                                geometry: g)

        func run() -> (y: [Float], dx: [Float], dw: [Float]) {
            var ws = [Float](repeating: .nan, count: Swift.max(1, g.workspaceCount()))
            var y = [Float](repeating: .nan, count: g.outputCount)
            var dx = [Float](repeating: .nan, count: g.inputCount), dw = [Float](repeating: .nan, count: g.weightCount)
            conv2dForward(x: x, weight: w, bias: b, y: &y, geometry: g, workspace: &ws, workspaceCount: ws.count)
            conv2dBackward(x: x, weight: w, dy: dy, dx: &dx, dWeight: &dw, dBias: nil, geometry: g, workspace: &ws,
                           workspaceCount: ws.count)
            return (y, dx, dw)
        }
        let onednn = withGEMMPrecision(.bf16) { run() }
        let twin = withGEMMPrecision(.bf16) { withEmulatedBF16 { run() } }
        let fp32 = 1.0 / 16_777_216
        let kForward = g.patchSize, kData = g.outChannels * g.kernelHeight * g.kernelWidth, kWeights = g.outPixels
        for (name, got, emulated, want, magnitude, k) in [
            ("y", onednn.y, twin.y, ref, mag, kForward), ("dx", onednn.dx, twin.dx, rdx, mdx, kData),
            ("dW", onednn.dw, twin.dw, rdw, mdw, kWeights),
        ] {
            let (twinOK, twinWorst) = Self.within(got, emulated) { 2 * Double(k) * fp32 * Double(magnitude[$0]) + 1e-30 }
            #expect(twinOK, "\(name) \(g) vs emulated twin: \(twinWorst)")
            let (refOK, refWorst) = Self.within(got, want) { bf16ProductBound(magnitude: Double(magnitude[$0]), k: k) }
            #expect(refOK, "\(name) \(g) vs fp32 reference: \(refWorst)")
            #expect(got != want, "\(name) \(g): bf16 gave exactly the fp32 result, so it did not round")
        }
    }

    /// Convolutions made at the same time on two threads, one in fp32 and one in bf16, compute what they should.
    /// oneDNN 2.6.3 does not allow this by itself: making an fp32 and a bf16 convolution's primitive descriptor at the
    /// same time builds, about once in a thousand, a convolution that computes wrong values on every call (measured
    /// in C against libdnnl: 8–18 of 12,000 fresh convolutions; none when one thread makes them, when both threads use
    /// one precision, or when descriptor creation is serialized). Swift Testing's parallel suites hit it (a wrong
    /// `forwardMatchesReference` about once in 50 runs of the Kernels tests), so MaskPilot serializes descriptor
    /// creation (`DNNLContext.creation`). Each shape here is new, so each convolution is made, not reused. Only where
    /// oneDNN runs bf16 convolutions (native bf16): elsewhere they run as im2col and nothing can race.
    @Test(.enabled(if: BF16Support.native, "bf16 convolutions run on oneDNN only with native bf16"))
    func convolutionsMadeConcurrentlyInTwoPrecisions() {
        let shapes = (0..<3000).map { i in
            ConvGeometry(batch: 1, height: 4 + i % 40, width: 4 + i / 40, inChannels: 2 + i % 5, outChannels: 2 + i % 7,
                         kernelHeight: 3, kernelWidth: 3, stride: 1 + i % 2, padding: 1)
        }
        let wrong = Mutex<[String]>([])
        let done = DispatchGroup()
        for precision in GEMMPrecision.allCases {
            done.enter()
            let thread = Thread {
                defer { done.leave() }
                withGEMMPrecision(precision) {
                    for (i, g) in shapes.enumerated() {
                        let x = randomFloats(g.inputCount, seed: UInt64(2 * i)), w = randomFloats(g.weightCount, seed: UInt64(2 * i + 1))
                        let b: [Float]? = i / 2 % 2 == 0 ? randomFloats(g.outChannels, seed: 7) : nil
                        var ref = [Float](repeating: 0, count: g.outputCount), mag = ref
                        conv2dForwardReference(x: x, weight: w, bias: b, y: &ref, geometry: g)
                        conv2dForwardReference(x: x.map(abs), weight: w.map(abs), bias: b?.map(abs), y: &mag, geometry: g)
                        var ws = [Float](repeating: 0, count: g.workspaceCount())
                        var y = [Float](repeating: .nan, count: g.outputCount)
                        conv2dForward(x: x, weight: w, bias: b, y: &y, geometry: g, workspace: &ws, workspaceCount: ws.count)
                        let bound = { (j: Int) in
                            precision == .fp32 ? 1e-5 * (1 + Double(mag[j]))
                                               : bf16ProductBound(magnitude: Double(mag[j]), k: g.patchSize)
                        }
                        if let j = y.indices.first(where: { !(Swift.abs(Double(y[$0]) - Double(ref[$0])) <= bound($0)) }) {
                            wrong.withLock { $0.append("\(precision) \(g) bias \(b != nil): y[\(j)] = \(y[j]), want \(ref[j])") }
                        }
                    }
                }
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        done.wait()
        let found = wrong.withLock { $0 }
        #expect(found.isEmpty, "\(found.count) of \(2 * shapes.count) convolutions wrong: \(found.prefix(4))")
    }

    /// `count` floats at a fixed address (parameters must not move between calls).
    final class Parameters {
        let pointer: UnsafeMutablePointer<Float>
        let count: Int
        init(_ values: [Float]) {
            count = values.count
            pointer = .allocate(capacity: count)
            pointer.initialize(from: values, count: count)
        }
        deinit { pointer.deallocate() }
        func scale(by s: Float) { for i in 0..<count { pointer[i] *= s } }
    }

    /// A scope keeps every copy it made, however many: the cache starts over only when a scope opens (emptying it
    /// inside one could free one operand's copy while the other's was made). Checked by the documented staleness: a
    /// copy made before 4100 others is still the one made from the old values.
    @Test func parameterCacheKeepsCopiesWithinAScope() {
        let params = Parameters(randomFloats(4200, seed: 31))
        let a = randomFloats(3 * 16, seed: 32)
        func gemm(at offset: Int, k: Int = 16) -> [Float] {   // a[3, k] · w[k, 1], w the parameters from offset
            var c = [Float](repeating: .nan, count: 3)
            sgemm(transA: false, transB: false, m: 3, n: 1, k: k, a: a, lda: k, b: params.pointer + offset, ldb: 1, c: &c, ldc: 1)
            return c
        }
        withGEMMPrecision(.bf16) {
            let plain = gemm(at: 0)
            withParameterCache(params.pointer, count: params.count) {
                #expect(gemm(at: 0) == plain)
                params.scale(by: 2)
                for offset in 1...4100 { _ = gemm(at: offset, k: 1) }   // 4100 more copies (one per address)
                let again = gemm(at: 0)
                if BF16Support.native {
                    #expect(again == plain, "the first copy was kept through 4100 others in the scope")
                } else {
                    #expect(again == plain.map { 2 * $0 }, "emulated bf16 caches nothing")
                }
            }
            withParameterCache(params.pointer, count: params.count) {
                #expect(gemm(at: 0) == plain.map { 2 * $0 }, "the next scope starts over")
            }
            params.scale(by: 0.5)
        }
    }

    /// In bf16, inside one scope a parameter's converted copy is made once (a change to the parameter inside the scope
    /// is not seen: the documented contract), the next scope makes it again, and outside any scope nothing is cached.
    /// In fp32 nothing is cached (the GEMM reads the parameter, the convolution reorders it per call).
    @Test(arguments: GEMMPrecision.allCases)
    func parameterCacheLivesForOneScope(_ precision: GEMMPrecision) {
        let g = ConvGeometry(batch: 1, height: 8, width: 7, inChannels: 16, outChannels: 8, kernelHeight: 3, kernelWidth: 3,
                             padding: 1)
        let x = randomFloats(g.inputCount, seed: 21)
        let a = randomFloats(5 * g.patchSize, seed: 22)
        let params = Parameters(randomFloats(g.weightCount + 3, seed: 23))
        let w = params.pointer + 3   // a parameter that is not the first in the buffer
        var ws = [Float](repeating: 0, count: g.workspaceCount())
        func conv() -> [Float] {
            var y = [Float](repeating: .nan, count: g.outputCount)
            conv2dForward(x: x, weight: w, bias: nil, y: &y, geometry: g, workspace: &ws, workspaceCount: ws.count)
            return y
        }
        func gemm() -> [Float] {   // a · wᵀ: w as the transposed B operand, as a linear layer uses its weight
            var c = [Float](repeating: .nan, count: 5 * g.outChannels)
            sgemm(transA: false, transB: true, m: 5, n: g.outChannels, k: g.patchSize, a: a, lda: g.patchSize, b: w,
                  ldb: g.patchSize, c: &c, ldc: g.outChannels)
            return c
        }
        withGEMMPrecision(precision) {
            let plain = (conv(), gemm())
            // Doubling is exact in bf16 and fp32 and commutes with every product and sum.
            let doubled = (plain.0.map { 2 * $0 }, plain.1.map { 2 * $0 })
            withParameterCache(params.pointer, count: params.count) {
                #expect(conv() == plain.0 && gemm() == plain.1, "a cached copy computes what the parameter does")
                params.scale(by: 2)
                let stale = (conv(), gemm())
                if precision == .bf16 && BF16Support.native {
                    #expect(stale.0 == plain.0, "the convolution's bf16 weights were reordered once in the scope")
                    #expect(stale.1 == plain.1, "the GEMM's bf16 operand was converted once in the scope")
                } else {
                    // fp32, and bf16 emulated where the CPU has no oneDNN bf16 kernels, read the parameter per call.
                    #expect(stale.0 == doubled.0 && stale.1 == doubled.1, "fp32 caches nothing")
                }
            }
            withParameterCache(params.pointer, count: params.count) {
                #expect(conv() == doubled.0 && gemm() == doubled.1, "the next scope makes the copies again")
            }
            params.scale(by: 0.5)
            #expect(conv() == plain.0 && gemm() == plain.1, "outside a scope nothing is cached")
        }
    }
}
