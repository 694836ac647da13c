// Tests of the dense layers: hand-checked forward values, key names and finite-difference gradient checks.
// Reference semantics: torch.nn.Linear, torch.nn.Embedding and Mask2Former's MLP.
import Testing
import TensorCore
import NN
import _TestSupport

@Suite struct LayerTests {
    @Test func linearForward() {
        let lin = Linear(3, 2, seed: 0)
        lin.weight.assign(Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]))
        lin.bias!.assign(Tensor([0.5, -1], shape: [2]))
        let x = Tensor([1, 0, -1, 2, 1, 0], shape: [2, 3])
        #expect(lin(x).values == [-1.5, -3, 4.5, 12])
        #expect(lin.namedParameters().map(\.0) == ["weight", "bias"])
        let noBias = Linear(3, 2, bias: false, seed: 0)
        noBias.weight.assign(lin.weight)
        #expect(noBias(x).values == [-2, -2, 4, 13])
        #expect(noBias.namedParameters().map(\.0) == ["weight"])
        // Leading dimensions are kept: [2, 1, 3] → [2, 1, 2].
        #expect(lin(x.reshaped([2, 1, 3])).shape == [2, 1, 2])
    }

    @Test func linearGradients() {
        let lin = Linear(4, 3, seed: 1)
        let x = testTensor([2, 5, 4], seed: 2)
        let rep = gradCheck([x, lin.weight, lin.bias!]) { lin($0[0]) }
        #expect(rep.passed, "\(rep)")
    }

    @Test func mlpForwardHasReluBetweenLayersOnly() {
        let mlp = MLP(inputDim: 2, hiddenDim: 2, outputDim: 1, layerCount: 2, seed: 0)
        #expect(mlp.namedParameters().map(\.0) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"])
        mlp.layers[0].weight.assign(Tensor([1, 0, 0, 1], shape: [2, 2]))
        mlp.layers[0].bias!.assign(Tensor([0, 0], shape: [2]))
        mlp.layers[1].weight.assign(Tensor([1, 1], shape: [1, 2]))
        mlp.layers[1].bias!.assign(Tensor([-5], shape: [1]))
        // relu([3, −2]) = [3, 0] → 3 − 5 = −2 (no relu after the last layer).
        let x = Tensor([3, -2], shape: [1, 2])
        #expect(mlp(x).values == [-2])
        let three = MLP(inputDim: 4, hiddenDim: 8, outputDim: 3, layerCount: 3, seed: 1)
        #expect(three.layers.map { [$0.inFeatures, $0.outFeatures] } == [[4, 8], [8, 8], [8, 3]])
    }

    @Test func mlpGradients() {
        let mlp = MLP(inputDim: 4, hiddenDim: 6, outputDim: 3, layerCount: 3, seed: 3)
        let x = testTensor([5, 4], seed: 4)
        let rep = gradCheck([x] + mlp.parameters()) { mlp($0[0]) }
        #expect(rep.passed, "\(rep)")
    }

    @Test func embeddingLookupAndGradient() {
        let e = Embedding(4, 3, seed: 0)
        e.weight.assign(Tensor((0..<12).map(Float.init), shape: [4, 3]))
        #expect(e([2, 0, 2]).values == [6, 7, 8, 0, 1, 2, 6, 7, 8])
        #expect(e.namedParameters().map(\.0) == ["weight"])
        let rep = gradCheck([e.weight]) { _ in e([3, 1, 3]) }
        #expect(rep.passed, "\(rep)")
    }
}
