// Tests of the conv2d op: hand-checked values, finite-difference gradients and agreement with the
// direct-loop convolution (forward and backward). Reference semantics: torch.nn.functional.conv2d.
import Kernels
import Testing
import TensorCore
import _TestSupport

@Suite struct ConvOpsTests {
    @Test func handCheckedForward() {
        // 3×3 image 1…9, one channel; 2×2 kernel [[1, 0], [0, 1]] + 0.5: sums of diagonal pairs.
        let x = Tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], shape: [1, 3, 3, 1])
        let w = Tensor([1, 0, 0, 1], shape: [1, 2, 2, 1])
        let y = Tensor.conv2d(x, weight: w, bias: Tensor([0.5], shape: [1]))
        #expect(y.shape == [1, 2, 2, 1])
        #expect(y.values == [6.5, 8.5, 12.5, 14.5])
        // 3×3 ones kernel, stride 2, padding 1: windows centred on the four corners.
        let y2 = Tensor.conv2d(x, weight: Tensor.ones([1, 3, 3, 1]), bias: nil, stride: 2, padding: 1)
        #expect(y2.shape == [1, 2, 2, 1])
        #expect(y2.values == [12, 16, 24, 28])
        // 1×1 conv with 2 → 3 channels is a matrix product per pixel: W = [[1, 2], [0, 1], [-1, 0]].
        let x3 = Tensor([1, 2, 3, 4], shape: [1, 1, 2, 2])
        let w3 = Tensor([1, 2, 0, 1, -1, 0], shape: [3, 1, 1, 2])
        let y3 = Tensor.conv2d(x3, weight: w3, bias: Tensor([0, 0, 1], shape: [3]))
        #expect(y3.values == [5, 2, 0, 11, 4, -2])
    }

    /// (H, W, Cin, Cout, k, stride, padding) for the gradient checks (a few hundred elements).
    static let gradCases: [(Int, Int, Int, Int, Int, Int, Int)] = [
        (4, 5, 2, 3, 3, 1, 1), (5, 4, 2, 2, 3, 2, 1), (3, 3, 3, 2, 1, 1, 0), (5, 5, 2, 2, 1, 2, 0), (7, 6, 1, 2, 7, 2, 3),
    ]

    @Test(arguments: 0..<gradCases.count)
    func gradientCheck(_ index: Int) {
        let (h, w, ci, co, k, s, p) = Self.gradCases[index]
        let x = testTensor([1, h, w, ci], seed: 1)
        let wt = testTensor([co, k, k, ci], seed: 2)
        let b = testTensor([co], seed: 3)
        let rep = gradCheck([x, wt, b]) { Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], stride: s, padding: p) }
        #expect(rep.passed, "\(Self.gradCases[index]): \(rep)")
        let rep2 = gradCheck([x, wt]) { Tensor.conv2d($0[0], weight: $0[1], bias: nil, stride: s, padding: p) }
        #expect(rep2.passed, "no bias \(Self.gradCases[index]): \(rep2)")
    }

    /// Kernels 1, 3, 7 × strides 1, 2, against the direct convolution.
    @Test(arguments: [1, 3, 7], [1, 2])
    func matchesDirectConvolution(kernel: Int, stride: Int) {
        let pad = kernel / 2
        let x = testTensor([2, 9, 8, 3], seed: 10), w = testTensor([4, kernel, kernel, 3], seed: 11)
        let b = testTensor([4], seed: 12)
        let y = withGrad { Tensor.conv2d(x, weight: w, bias: b, stride: stride, padding: pad) }
        let geo = ConvGeometry(batch: 2, height: 9, width: 8, inChannels: 3, outChannels: 4, kernelHeight: kernel,
                               kernelWidth: kernel, stride: stride, padding: pad)
        #expect(y.shape == [2, geo.outHeight, geo.outWidth, 4])
        let ref = Tensor(uninitialized: y.shape)
        conv2dForwardReference(x: x.data, weight: w.data, bias: b.data, y: ref.data, geometry: geo)
        let rep = allClose(y, ref)
        #expect(rep.passed, "forward k\(kernel) s\(stride): \(rep)")

        let dy = testTensor(y.shape, seed: 13, requiresGrad: false)
        x.grad = nil; w.grad = nil; b.grad = nil
        y.backward(seed: dy)
        let rdx = Tensor(uninitialized: x.shape), rdw = Tensor(uninitialized: w.shape), rdb = Tensor(uninitialized: [4])
        conv2dBackwardReference(x: x.data, weight: w.data, dy: dy.data, dx: rdx.data, dWeight: rdw.data,
                                dBias: rdb.data, geometry: geo)
        for (name, got, want) in [("dx", x.grad, rdx), ("dW", w.grad, rdw), ("db", b.grad, rdb)] {
            guard let got else { Issue.record("\(name): no gradient"); continue }
            let r = allClose(got, want)
            #expect(r.passed, "\(name) k\(kernel) s\(stride): \(r)")
        }
    }

    @Test func gradientsOnlyWhereRequired() {
        let x = testTensor([1, 4, 4, 2], seed: 20, requiresGrad: false)
        let w = testTensor([3, 3, 3, 2], seed: 21)
        let b = testTensor([3], seed: 22, requiresGrad: false)
        let y = withGrad { Tensor.conv2d(x, weight: w, bias: b, padding: 1) }
        y.sum().backward()
        #expect(x.grad == nil && b.grad == nil)
        #expect(w.grad?.shape == [3, 3, 3, 2])
    }
}
