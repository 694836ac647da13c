// Tests of the flat parameter set and global-norm clipping: bindings to the flat buffers, backward into them, clipping by hand.
// Reference semantics: parameters/grads as views of one buffer (DDP buckets), torch.nn.utils.clip_grad_norm_.
import Testing
import TensorCore
import NN
import Optim
import _TestSupport

@Suite struct FlatParametersTests {
    @Test func layoutAndValuesPreserved() {
        let mlp = MLP(inputDim: 3, hiddenDim: 4, outputDim: 2, layerCount: 2, seed: 5)
        let before = mlp.parameters().map(\.values)
        let flat = FlatParameters(mlp.namedParameters())
        #expect(flat.names == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"])
        #expect(flat.offsets == [0, 12, 16, 24])
        #expect(flat.count == 26)
        #expect(flat.range(of: "layers.1.weight") == 16..<24)
        #expect(mlp.parameters().map(\.values) == before)
        #expect(Array(flat.values.buffer) == before.flatMap { $0 })
        #expect(flat.brokenBindings().isEmpty)
        #expect(Array(flat.grads.buffer).allSatisfy { $0 == 0 })
    }

    @Test func backwardWritesIntoFlatGradients() {
        let model = MLP(inputDim: 3, hiddenDim: 4, outputDim: 2, layerCount: 2, seed: 6)
        let reference = MLP(inputDim: 3, hiddenDim: 4, outputDim: 2, layerCount: 2, seed: 6)
        let flat = FlatParameters(model.namedParameters())
        let x = testTensor([5, 3], seed: 7, requiresGrad: false)

        withGrad { reference(x).square().sum() }.backward()
        withGrad { model(x).square().sum() }.backward()
        let expected = reference.parameters().flatMap { $0.grad!.values }
        #expect(allClose(Array(flat.grads.buffer), expected, rtol: 1e-6, atol: 1e-7).passed)
        #expect(flat.brokenBindings().isEmpty)
        // A second backward accumulates in place.
        withGrad { model(x).square().sum() }.backward()
        #expect(allClose(Array(flat.grads.buffer), expected.map { 2 * $0 }, rtol: 1e-6, atol: 1e-7).passed)
        // zeroGrad clears the flat buffer, which is what the tensors' grads show.
        flat.zeroGrad()
        #expect(model.parameters().allSatisfy { $0.grad!.values.allSatisfy { $0 == 0 } })
        // Tensor.zeroGrad keeps the binding.
        model.layers[0].weight.zeroGrad()
        #expect(flat.brokenBindings().isEmpty)
    }

    @Test func writingTheFlatBufferChangesParameters() {
        let model = MLP(inputDim: 2, hiddenDim: 2, outputDim: 1, layerCount: 2, seed: 8)
        let flat = FlatParameters(model.namedParameters())
        for i in 0..<flat.count { flat.values.base[i] = Float(i) }
        #expect(model.layers[0].weight.values == [0, 1, 2, 3])
        #expect(model.layers[0].bias!.values == [4, 5])
        #expect(model.layers[1].weight.values == [6, 7])
        #expect(model.layers[1].bias!.values == [8])
        // relu(W0·[1, 1] + b0) = [5, 10]; 6·5 + 7·10 + 8 = 108.
        #expect(model(Tensor([1, 1], shape: [1, 2])).values == [108])
    }

    @Test func clippingMatchesHandComputation() {
        let a = Tensor.zeros([2], requiresGrad: true), b = Tensor.zeros([1], requiresGrad: true)
        let flat = FlatParameters([("a", a), ("b", b)])
        let g: [Float] = [3, 4, 12]  // norm 13
        for i in 0..<3 { flat.grads.base[i] = g[i] }
        // Below the limit: unchanged.
        #expect(clipGradNorm(flat, maxNorm: 20) == 13)
        #expect(Array(flat.grads.buffer) == g)
        // Above: scaled by maxNorm / (norm + 1e-6).
        let norm = clipGradNorm(flat, maxNorm: 0.01)
        #expect(norm == 13)
        let scale = 0.01 / (13 + 1e-6)
        #expect(allClose(Array(flat.grads.buffer), g.map { Float(Double($0) * scale) }, rtol: 1e-6, atol: 0).passed)
        #expect(allClose(a.grad!.values, [Float(3 * scale), Float(4 * scale)], rtol: 1e-6, atol: 0).passed)
        #expect(Swift.abs(l2Norm(flat.grads.base, count: 3) - 0.01) < 1e-8)
    }
}
