// Tests of the Conv2d and normalization layers: keys (incl. detectron2's conv.norm), hand-checked values, gradient checks.
// Reference semantics: detectron2 Conv2d + FrozenBatchNorm2d, torch.nn.LayerNorm / GroupNorm.
import Testing
import TensorCore
import NN
import _TestSupport

@Suite struct ConvNormLayerTests {
    @Test func convKeysWithNormAndPyTorchLayout() {
        let conv = Conv2d(4, 8, kernel: 3, padding: 1, bias: false, norm: FrozenBatchNorm2d(8), seed: 1)
        #expect(conv.stateDictKeys() == ["weight", "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var"])
        #expect(conv.namedParameters().map(\.0) == ["weight"])
        #expect(conv.namedBuffers().map(\.0) == ["norm.weight", "norm.bias", "norm.running_mean", "norm.running_var"])
        #expect(conv.weight.shape == [8, 3, 3, 4])
        #expect(conv.stateDict(layout: .pytorch)[0].1.shape == [8, 4, 3, 3])
        let withBias = Conv2d(4, 8, kernel: 1, norm: GroupNorm(groups: 2, channels: 8), seed: 1)
        #expect(withBias.namedParameters().map(\.0) == ["weight", "bias", "norm.weight", "norm.bias"])
        // PyTorch default bound 1/√(Cin·kh·kw).
        let big = Conv2d(32, 64, kernel: 3, seed: 2)
        let bound: Float = 1 / (32 * 9 as Float).squareRoot()
        #expect(big.weight.values.allSatisfy { Swift.abs($0) <= bound })
        #expect(big.weight.values.contains { Swift.abs($0) > 0.99 * bound })
    }

    @Test func convForwardByHand() {
        // One channel of ones, 3×3 kernel of ones, padding 1: corner 4, edge 6, centre 9, plus the bias.
        let conv = Conv2d(1, 1, kernel: 3, padding: 1, seed: 0)
        conv.weight.assign(Tensor.ones([1, 3, 3, 1]))
        conv.bias!.assign(Tensor([0.5], shape: [1]))
        let y = conv(Tensor.ones([1, 3, 3, 1]))
        #expect(y.shape == [1, 3, 3, 1])
        #expect(y.values == [4.5, 6.5, 4.5, 6.5, 9.5, 6.5, 4.5, 6.5, 4.5])
        // Stride 2 over 1…9: windows sum to 12, 16, 24, 28; bias −20, then the ReLU activation.
        let strided = Conv2d(1, 1, kernel: 3, stride: 2, padding: 1, activation: { $0.relu() }, seed: 0)
        strided.weight.assign(Tensor.ones([1, 3, 3, 1]))
        strided.bias!.assign(Tensor([-20], shape: [1]))
        let x = Tensor((1...9).map(Float.init), shape: [1, 3, 3, 1])
        #expect(strided(x).values == [0, 0, 4, 8])
    }

    @Test func convGradients() {
        let conv = Conv2d(2, 3, kernel: 3, stride: 2, padding: 1, seed: 3)
        let x = testTensor([2, 5, 4, 2], seed: 4)
        let rep = gradCheck([x, conv.weight, conv.bias!]) { conv($0[0]) }
        #expect(rep.passed, "\(rep)")
        let withNorm = Conv2d(2, 4, kernel: 1, bias: false, norm: GroupNorm(groups: 2, channels: 4), seed: 5)
        let rep2 = gradCheck([x] + withNorm.parameters()) { withNorm($0[0]) }
        #expect(rep2.passed, "\(rep2)")
    }

    @Test func layerNormByHand() {
        let ln = LayerNorm(3)
        #expect(ln.namedParameters().map(\.0) == ["weight", "bias"])
        ln.weight.assign(Tensor([1, 2, 1], shape: [3]))
        ln.bias.assign(Tensor([0, 0, 1], shape: [3]))
        // [1, 2, 3]: mean 2, biased variance 2/3.
        let s = Float(1 / (2.0 / 3 + 1e-5).squareRoot())
        let y = ln(Tensor([1, 2, 3], shape: [1, 3]))
        #expect(allClose(y.values, [-s, 0, s + 1], rtol: 1e-5, atol: 1e-6).passed, "\(y)")
        let x = testTensor([4, 3], seed: 6)
        ln.weight.requiresGrad = true
        let rep = gradCheck([x, ln.weight, ln.bias]) { ln($0[0]) }
        #expect(rep.passed, "\(rep)")
    }

    @Test func groupNormByHand() {
        let gn = GroupNorm(groups: 2, channels: 2)
        gn.weight.assign(Tensor([2, 2], shape: [2]))
        gn.bias.assign(Tensor([0.5, 0.5], shape: [2]))
        // [B=1, T=2, C=2]: channel 0 {1, 3} (mean 2, var 1), channel 1 {10, 20} (mean 15, var 25).
        let y = gn(Tensor([1, 10, 3, 20], shape: [1, 2, 2]))
        let a = Float(2 / (1 + 1e-5).squareRoot()), b = Float(2 * 5 / (25 + 1e-5).squareRoot())
        #expect(allClose(y.values, [0.5 - a, 0.5 - b, 0.5 + a, 0.5 + b], rtol: 1e-5, atol: 1e-6).passed, "\(y)")
        let big = GroupNorm(groups: 2, channels: 4)
        let x = testTensor([2, 3, 2, 4], seed: 7)
        let rep = gradCheck([x, big.weight, big.bias]) { big($0[0]) }
        #expect(rep.passed, "\(rep)")
    }

    @Test func frozenBatchNorm() throws {
        let bn = FrozenBatchNorm2d(2)
        #expect(bn.namedParameters().isEmpty)
        #expect(bn.stateDictKeys() == ["weight", "bias", "running_mean", "running_var"])
        // Starts as the identity (running_var = 1 − eps).
        let x = Tensor([1, -2, 3, 4], shape: [1, 1, 2, 2])
        #expect(allClose(bn(x).values, x.values, rtol: 1e-6, atol: 1e-6).passed)
        try bn.load(["weight": Tensor([2, 1], shape: [2]), "bias": Tensor([0, 1], shape: [2]),
                     "running_mean": Tensor([1, 0], shape: [2]), "running_var": Tensor([4, 0.25], shape: [2])])
        let want: [Float] = [0, -2 / Float(0.25 + 1e-5).squareRoot() + 1, 2 * 2 / Float(4 + 1e-5).squareRoot(),
                             4 / Float(0.25 + 1e-5).squareRoot() + 1]
        #expect(allClose(bn(x).values, want, rtol: 1e-5, atol: 1e-6).passed)
    }
}
