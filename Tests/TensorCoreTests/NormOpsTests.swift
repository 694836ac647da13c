// Tests of the norm ops: hand-checked values, gradient checks and agreement with composed ops.
// Reference semantics: detectron2 FrozenBatchNorm2d, torch.nn.functional.group_norm / layer_norm.
import Testing
import TensorCore
import _TestSupport

@Suite struct NormOpsTests {
    @Test func frozenBatchNormHandChecked() {
        // scale = w/sqrt(rv) = [2/2, 1/0.5] = [1, 2]; shift = b − rm·scale = [1 − 1, 0 − 4] = [0, −4].
        let x = Tensor([3, 5, -1, 2], shape: [1, 1, 2, 2], requiresGrad: true)
        let y = withGrad {
            Tensor.frozenBatchNorm(x, weight: Tensor([2, 1], shape: [2]), bias: Tensor([1, 0], shape: [2]),
                                   runningMean: Tensor([1, 2], shape: [2]), runningVar: Tensor([4, 0.25], shape: [2]),
                                   eps: 0)
        }
        #expect(y.values == [3, 6, -1, 0])
        y.sum().backward()
        #expect(x.grad?.values == [1, 2, 1, 2])
    }

    @Test func frozenBatchNormGradientOnlyToInput() {
        let w = testTensor([3], seed: 1), b = testTensor([3], seed: 2)
        let x = testTensor([2, 3, 2, 3], seed: 3)
        let rv = testTensor([3], seed: 4, low: 0.5, high: 2, requiresGrad: false)
        let rm = testTensor([3], seed: 5, requiresGrad: false)
        let rep = gradCheck([x]) {
            Tensor.frozenBatchNorm($0[0], weight: w.detached(), bias: b.detached(), runningMean: rm, runningVar: rv)
        }
        #expect(rep.passed, "\(rep)")
        let y = withGrad { Tensor.frozenBatchNorm(x, weight: w, bias: b, runningMean: rm, runningVar: rv) }
        w.grad = nil; b.grad = nil
        y.sum().backward()
        #expect(w.grad == nil && b.grad == nil)
    }

    @Test func channelAffineGradientCheck() {
        let x = testTensor([2, 3, 4], seed: 6), s = testTensor([4], seed: 7), t = testTensor([4], seed: 8)
        let rep = gradCheck([x, s, t]) { Tensor.channelAffine($0[0], scale: $0[1], shift: $0[2]) }
        #expect(rep.passed, "\(rep)")
        let y = Tensor.channelAffine(Tensor([1, 2, 3, 4], shape: [2, 2]), scale: Tensor([2, -1], shape: [2]),
                                     shift: Tensor([0.5, 1], shape: [2]))
        #expect(y.values == [2.5, -1, 6.5, -3])
    }

    @Test func groupNormHandChecked() {
        // [B=1, T=2, C=2] = [[1, 2], [3, 4]], eps 0.
        let x = Tensor([1, 2, 3, 4], shape: [1, 2, 2])
        let w = Tensor([1, 2], shape: [2]), b = Tensor([0, 1], shape: [2])
        // Two groups (one channel each): channel 0 {1, 3}, channel 1 {2, 4} → x̂ = ∓1.
        let y2 = Tensor.groupNorm(x, groups: 2, weight: w, bias: b, eps: 0)
        #expect(y2.values == [-1, -1, 1, 3])
        // One group: mean 2.5, variance 1.25 → x̂ = (x − 2.5)/sqrt(1.25).
        let y1 = Tensor.groupNorm(x, groups: 1, weight: w, bias: b, eps: 0)
        let r: Float = 1 / Float(1.25).squareRoot()
        let expected: [Float] = [-1.5 * r, -0.5 * r * 2 + 1, 0.5 * r, 1.5 * r * 2 + 1]
        #expect(allClose(y1.values, expected).passed, "\(y1.values) vs \(expected)")
    }

    @Test(arguments: [1, 2, 4])
    func groupNormGradientCheck(groups: Int) {
        let x = testTensor([2, 3, 2, 4], seed: 9), w = testTensor([4], seed: 10, low: 0.5, high: 1.5)
        let b = testTensor([4], seed: 11)
        let rep = gradCheck([x, w, b]) { Tensor.groupNorm($0[0], groups: groups, weight: $0[1], bias: $0[2]) }
        #expect(rep.passed, "groups \(groups): \(rep)")
        let xt = testTensor([2, 5, 4], seed: 12)
        let rep2 = gradCheck([xt, w, b]) { Tensor.groupNorm($0[0], groups: groups, weight: $0[1], bias: $0[2]) }
        #expect(rep2.passed, "[B,T,C] groups \(groups): \(rep2)")
    }

    /// Group norm written with elementwise and reduction ops, for the fused-versus-composed check.
    static func composedGroupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float) -> Tensor {
        let b = x.shape[0], c = x.shape[x.rank - 1], s = x.count / (b * c)
        let xg = x.reshaped([b, s, groups, c / groups])
        let mean = xg.mean(axes: [1, 3], keepDims: true)
        let centered = xg - mean
        let variance = (centered * centered).mean(axes: [1, 3], keepDims: true)
        let xhat = (centered / (variance + eps).sqrt()).reshaped(x.shape)
        return xhat * weight + bias
    }

    @Test func groupNormMatchesComposed() {
        let x = testTensor([2, 3, 3, 6], seed: 13), w = testTensor([6], seed: 14), b = testTensor([6], seed: 15)
        let dy = testTensor([2, 3, 3, 6], seed: 16, requiresGrad: false)
        func run(_ f: () -> Tensor) -> [[Float]] {
            x.grad = nil; w.grad = nil; b.grad = nil
            let y = withGrad(f)
            y.backward(seed: dy)
            return [y.values, x.grad!.values, w.grad!.values, b.grad!.values]
        }
        let fused = run { Tensor.groupNorm(x, groups: 3, weight: w, bias: b) }
        let composed = run { Self.composedGroupNorm(x, groups: 3, weight: w, bias: b, eps: 1e-5) }
        for (i, name) in ["y", "dx", "dW", "db"].enumerated() {
            let r = allClose(fused[i], composed[i], rtol: 1e-4, atol: 1e-5)
            #expect(r.passed, "\(name): \(r)")
        }
    }

    @Test func layerNormHandChecked() {
        // Row [1, 2, 3, 4]: mean 2.5, variance 1.25. Row [2, 2, 2, 2] with eps 1: zeros, then the bias.
        let x = Tensor([1, 2, 3, 4, 2, 2, 2, 2], shape: [2, 4])
        let w = Tensor.ones([4]), b = Tensor([0, 0, 0, 1], shape: [4])
        let r: Float = 1 / Float(1.25).squareRoot()
        let y = Tensor.layerNorm(x, weight: w, bias: b, eps: 0)
        #expect(allClose(Array(y.values[0..<4]), [-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r + 1]).passed, "\(y.values)")
        let y2 = Tensor.layerNorm(x, weight: w, bias: b, eps: 1)
        #expect(Array(y2.values[4..<8]) == [0, 0, 0, 1])
    }

    @Test func layerNormGradientCheck() {
        let x = testTensor([2, 3, 5], seed: 17), w = testTensor([5], seed: 18, low: 0.5, high: 1.5)
        let b = testTensor([5], seed: 19)
        let rep = gradCheck([x, w, b]) { Tensor.layerNorm($0[0], weight: $0[1], bias: $0[2]) }
        #expect(rep.passed, "\(rep)")
    }

    @Test func layerNormMatchesComposed() {
        let x = testTensor([4, 3, 10], seed: 20), w = testTensor([10], seed: 21), b = testTensor([10], seed: 22)
        let dy = testTensor([4, 3, 10], seed: 23, requiresGrad: false)
        func run(_ f: () -> Tensor) -> [[Float]] {
            x.grad = nil; w.grad = nil; b.grad = nil
            let y = withGrad(f)
            y.backward(seed: dy)
            return [y.values, x.grad!.values, w.grad!.values, b.grad!.values]
        }
        let fused = run { Tensor.layerNorm(x, weight: w, bias: b) }
        let composed = run {
            let mean = x.mean(axis: -1, keepDims: true)
            let centered = x - mean
            let variance = (centered * centered).mean(axis: -1, keepDims: true)
            return centered / (variance + 1e-5).sqrt() * w + b
        }
        for (i, name) in ["y", "dx", "dW", "db"].enumerated() {
            let r = allClose(fused[i], composed[i], rtol: 1e-4, atol: 1e-5)
            #expect(r.passed, "\(name): \(r)")
        }
    }
}
