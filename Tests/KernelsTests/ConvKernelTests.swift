// Tests of the convolution kernels (oneDNN's direct convolution where chosen, im2col + sgemm) against the direct-loop
// reference twin.
// Reference semantics: torch.nn.functional.conv2d (NHWC activations, OHWI weights here).
import Kernels
import Testing
import _TestSupport

@Suite struct ConvKernelTests {
    /// (B, H, W, Cin, Cout, k, stride, padding): pointwise, strided 1×1, 3×3 and 7×7, odd sizes, C = 1; the last four
    /// with enough channels for oneDNN's backward data (a stem-like 7×7 from 3 channels, strided and padded 3×3s).
    static let cases: [(Int, Int, Int, Int, Int, Int, Int, Int)] = [
        (2, 5, 6, 3, 4, 1, 1, 0), (1, 7, 5, 2, 3, 1, 2, 0), (2, 6, 7, 3, 5, 3, 1, 1), (1, 7, 6, 4, 2, 3, 2, 1),
        (1, 9, 8, 3, 2, 7, 2, 3), (1, 8, 7, 2, 3, 7, 1, 3), (1, 5, 5, 1, 1, 3, 1, 0), (1, 8, 8, 2, 3, 3, 2, 0),
        (2, 3, 4, 2, 2, 3, 1, 2), (1, 4, 4, 1, 1, 1, 1, 1),
        (2, 9, 7, 16, 24, 3, 1, 1), (1, 10, 9, 32, 16, 3, 2, 1), (1, 13, 11, 3, 16, 7, 2, 3), (1, 6, 7, 20, 8, 3, 2, 0),
    ]
    static let libraries: [KernelLibrary] = [.oneDNN, .openBLAS]

    static func geometry(_ c: (Int, Int, Int, Int, Int, Int, Int, Int)) -> ConvGeometry {
        ConvGeometry(batch: c.0, height: c.1, width: c.2, inChannels: c.3, outChannels: c.4,
                     kernelHeight: c.5, kernelWidth: c.5, stride: c.6, padding: c.7)
    }

    @Test func outputSize() {
        let g = ConvGeometry(batch: 2, height: 64, width: 63, inChannels: 3, outChannels: 8,
                             kernelHeight: 7, kernelWidth: 7, stride: 2, padding: 3)
        #expect(g.outHeight == 32 && g.outWidth == 32)
        #expect(g.patchSize == 147)
        #expect(ConvGeometry(batch: 1, height: 5, width: 5, inChannels: 4, outChannels: 4, kernelHeight: 1,
                             kernelWidth: 1).isPointwise)
    }

    @Test(arguments: 0..<cases.count, libraries)
    func forwardMatchesReference(_ index: Int, _ library: KernelLibrary) { withKernelLibrary(library) {
        let g = Self.geometry(Self.cases[index])
        let x = randomFloats(g.inputCount, seed: 1), w = randomFloats(g.weightCount, seed: 2)
        let b = randomFloats(g.outChannels, seed: 3)
        var ref = [Float](repeating: 0, count: g.outputCount)
        conv2dForwardReference(x: x, weight: w, bias: b, y: &ref, geometry: g)
        var refNoBias = [Float](repeating: 0, count: g.outputCount)
        conv2dForwardReference(x: x, weight: w, bias: nil, y: &refNoBias, geometry: g)
        // A one-line workspace (many chunks) and a full one (one chunk).
        for maxBytes in [0, 64 << 20] {
            var ws = [Float](repeating: .nan, count: Swift.max(1, g.workspaceCount(maxBytes: maxBytes)))
            var y = [Float](repeating: .nan, count: g.outputCount)
            conv2dForward(x: x, weight: w, bias: b, y: &y, geometry: g, workspace: &ws, workspaceCount: ws.count)
            let rep = allClose(y, ref)
            #expect(rep.passed, "\(g) maxBytes \(maxBytes): \(rep)")
            conv2dForward(x: x, weight: w, bias: nil, y: &y, geometry: g, workspace: &ws, workspaceCount: ws.count)
            let rep2 = allClose(y, refNoBias)
            #expect(rep2.passed, "\(g) no bias, maxBytes \(maxBytes): \(rep2)")
        }
    } }

    @Test(arguments: 0..<cases.count, libraries)
    func backwardMatchesReference(_ index: Int, _ library: KernelLibrary) { withKernelLibrary(library) {
        let g = Self.geometry(Self.cases[index])
        let x = randomFloats(g.inputCount, seed: 4), w = randomFloats(g.weightCount, seed: 5)
        let dy = randomFloats(g.outputCount, seed: 6)
        var rdx = [Float](repeating: 0, count: g.inputCount), rdw = [Float](repeating: 0, count: g.weightCount)
        var rdb = [Float](repeating: 0, count: g.outChannels)
        conv2dBackwardReference(x: x, weight: w, dy: dy, dx: &rdx, dWeight: &rdw, dBias: &rdb, geometry: g)
        for maxBytes in [0, 64 << 20] {
            var ws = [Float](repeating: .nan, count: Swift.max(1, g.workspaceCount(maxBytes: maxBytes)))
            var dx = [Float](repeating: .nan, count: g.inputCount), dw = [Float](repeating: .nan, count: g.weightCount)
            var db = [Float](repeating: .nan, count: g.outChannels)
            conv2dBackward(x: x, weight: w, dy: dy, dx: &dx, dWeight: &dw, dBias: &db, geometry: g,
                           workspace: &ws, workspaceCount: ws.count)
            for (name, got, want) in [("dx", dx, rdx), ("dW", dw, rdw), ("db", db, rdb)] {
                let rep = allClose(got, want)
                #expect(rep.passed, "\(name) \(g) maxBytes \(maxBytes): \(rep)")
            }
            // Each gradient alone (the others nil) gives the same values.
            var dx2 = [Float](repeating: .nan, count: g.inputCount)
            conv2dBackward(x: x, weight: w, dy: dy, dx: &dx2, dWeight: nil, dBias: nil, geometry: g,
                           workspace: &ws, workspaceCount: ws.count)
            #expect(dx2 == dx, "dx alone \(g)")
            var dw2 = [Float](repeating: .nan, count: g.weightCount)
            conv2dBackward(x: x, weight: w, dy: dy, dx: nil, dWeight: &dw2, dBias: nil, geometry: g,
                           workspace: &ws, workspaceCount: ws.count)
            #expect(dw2 == dw, "dW alone \(g)")
        }
    } }

    /// The oneDNN library really runs oneDNN (an optimized kernel, not its reference one) for every non-pointwise
    /// case, in both precisions, except backward data from few channels; pointwise convs and `.openBLAS` never do.
    @Test func oneDNNRunsWhereChosen() {
        for precision in GEMMPrecision.allCases {
            withGEMMPrecision(precision) {
                for c in Self.cases {
                    let g = Self.geometry(c)
                    let impl = convolutionImplementations(for: g)
                    if g.isPointwise {
                        #expect(impl.forward == "im2col" && impl.backwardWeights == "im2col", "\(g)")
                        continue
                    }
                    if precision == .bf16 && !BF16Support.native {
                        // No oneDNN bf16 kernels on this CPU: the emulated twin runs bf16 convolutions as im2col.
                        #expect(impl.forward == "im2col" && impl.backwardData == "im2col" && impl.backwardWeights == "im2col")
                        continue
                    }
                    for name in [impl.forward, impl.backwardWeights] {
                        #expect(name != "im2col" && !name.hasPrefix("ref"), "\(precision) \(g): \(impl)")
                    }
                    #expect((impl.backwardData == "im2col") == (g.inChannels < 16), "\(precision) \(g): \(impl)")
                    let forced = withKernelLibrary(.openBLAS) { convolutionImplementations(for: g) }
                    #expect(forced.forward == "im2col" && forced.backwardData == "im2col" && forced.backwardWeights == "im2col")
                }
            }
        }
    }

    @Test func workspaceIsBoundedAndBalanced() {
        let g = ConvGeometry(batch: 2, height: 64, width: 64, inChannels: 256, outChannels: 256,
                             kernelHeight: 3, kernelWidth: 3, padding: 1)
        let line = g.outWidth * g.patchSize
        let count = g.workspaceCount(maxBytes: 64 << 20)
        #expect(count * 4 <= 64 << 20)
        #expect(count % line == 0 && (g.batch * g.outHeight) % (count / line) == 0)
        #expect(g.workspaceCount(maxBytes: 0) == line)
        let pw = ConvGeometry(batch: 2, height: 8, width: 8, inChannels: 4, outChannels: 4, kernelHeight: 1, kernelWidth: 1)
        #expect(pw.workspaceCount() == 0)
    }

    @Test func im2colLayout() {
        // 1 image 2×2×2, 3×3 kernel, padding 1: the patch of output (0, 0) holds zeros in the padded
        // taps and pixel (iy, ix) channel c at column (ky·3 + kx)·2 + c with ky = iy + 1, kx = ix + 1.
        let g = ConvGeometry(batch: 1, height: 2, width: 2, inChannels: 2, outChannels: 1, kernelHeight: 3,
                             kernelWidth: 3, padding: 1)
        let x: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]
        var cols = [Float](repeating: .nan, count: 4 * 18)
        im2col(x, g, firstLine: 0, lineCount: 2, cols: &cols)
        let first = Array(cols[0..<18])
        #expect(first == [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 5, 6, 7, 8])
        let last = Array(cols[54..<72])
        #expect(last == [1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0])
    }
}
