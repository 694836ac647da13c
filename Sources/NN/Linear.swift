// Dense layers: Linear, Embedding and Mask2Former's MLP (Linear layers with ReLU in between).
// Corresponds to torch.nn.Linear, torch.nn.Embedding and mask2former_transformer_decoder.MLP.
import TensorCore

/// `y = x·Wᵀ + b` (nn.Linear). Keys `weight` `[out, in]` and `bias` `[out]`.
///
/// Init: PyTorch's default, weight U(±1/√in), bias U(±1/√in).
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout RNG) {
        weight = Tensor.zeros([outFeatures, inFeatures], requiresGrad: true)
        self.bias = bias ? Tensor.zeros([outFeatures], requiresGrad: true) : nil
        super.init()
        Init.pytorchDefault(weight: weight, bias: self.bias, rng: &rng)
    }

    /// Same, drawing from `RNG(seed: seed)`.
    public convenience init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, seed: UInt64 = 0) {
        var rng = RNG(seed: seed)
        self.init(inFeatures, outFeatures, bias: bias, rng: &rng)
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// `x`: `[..., in]` → `[..., out]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.linear(x, weight: weight, bias: bias)
    }
}

/// A lookup table of `count` vectors of size `dim` (nn.Embedding). Key `weight` `[count, dim]`.
///
/// Init: N(0, 1), PyTorch's default. The optimizer recipe gives embeddings no weight decay.
public final class Embedding: Module {
    public let weight: Tensor

    public init(_ count: Int, _ dim: Int, rng: inout RNG) {
        weight = Tensor.zeros([count, dim], requiresGrad: true)
        super.init()
        Init.normal(weight, mean: 0, std: 1, rng: &rng)
    }

    /// Same, drawing from `RNG(seed: seed)`.
    public convenience init(_ count: Int, _ dim: Int, seed: UInt64 = 0) {
        var rng = RNG(seed: seed)
        self.init(count, dim, rng: &rng)
    }

    public var count: Int { weight.shape[0] }
    public var dim: Int { weight.shape[1] }

    /// Rows `indices` of the table: `[indices.count, dim]`.
    public func callAsFunction(_ indices: [Int]) -> Tensor {
        weight.embedding(indices)
    }
}

/// Mask2Former's MLP: `layerCount` Linear layers `input → hidden → … → output` with ReLU after every
/// layer but the last. Keys `layers.0.weight`, `layers.0.bias`, `layers.1.weight`, …
public final class MLP: Module {
    public let layers: [Linear]

    public init(inputDim: Int, hiddenDim: Int, outputDim: Int, layerCount: Int, rng: inout RNG) {
        precondition(layerCount >= 1, "MLP needs at least one layer")
        let dims = [inputDim] + Array(repeating: hiddenDim, count: layerCount - 1) + [outputDim]
        var ls: [Linear] = []
        for i in 0..<layerCount { ls.append(Linear(dims[i], dims[i + 1], rng: &rng)) }
        layers = ls
        super.init()
    }

    /// Same, drawing from `RNG(seed: seed)`.
    public convenience init(inputDim: Int, hiddenDim: Int, outputDim: Int, layerCount: Int, seed: UInt64 = 0) {
        var rng = RNG(seed: seed)
        self.init(inputDim: inputDim, hiddenDim: hiddenDim, outputDim: outputDim, layerCount: layerCount, rng: &rng)
    }

    /// `x`: `[..., input]` → `[..., output]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for (i, layer) in layers.enumerated() {
            h = layer(h)
            if i < layers.count - 1 { h = h.relu() }
        }
        return h
    }
}
