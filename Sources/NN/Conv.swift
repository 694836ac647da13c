// Conv2d over channels-last activations with detectron2's optional norm and activation.
// Corresponds to torch.nn.Conv2d (groups 1, dilation 1) and detectron2.layers.Conv2d (conv → norm → activation).
import TensorCore

/// 2-D convolution, optionally followed by a norm (child key `norm`, as detectron2's Conv2d, e.g.
/// `backbone.res2.0.conv1.norm.running_mean`) and an activation.
///
/// Keys: `weight` (ours `[Cout, kh, kw, Cin]`, PyTorch `[Cout, Cin, kh, kw]`: layout `.convOHWI`),
/// `bias` `[Cout]` when `bias` is true, then `norm.*`. Init: PyTorch's default, weight
/// U(±1/√fan_in), bias U(±1/√fan_in) with fan_in = Cin·kh·kw; models re-initialize as the
/// reference does (`Init.c2XavierFill`, `Init.c2MSRAFill`, `Init.xavierUniform`).
public final class Conv2d: Module {
    @Param(layout: .convOHWI) public var weight: Tensor
    public let bias: Tensor?
    public let norm: (any NormLayer)?
    /// Applied after the norm (e.g. `{ $0.relu() }`); not a module, so it has no keys.
    public let activation: ((Tensor) -> Tensor)?
    public let stride: Int
    public let padding: Int

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, norm: (any NormLayer)? = nil, activation: ((Tensor) -> Tensor)? = nil,
                rng: inout RNG) {
        self.bias = bias ? Tensor.zeros([outChannels], requiresGrad: true) : nil
        self.norm = norm
        self.activation = activation
        self.stride = stride
        self.padding = padding
        super.init()
        weight = Tensor.zeros([outChannels, kernel, kernel, inChannels], requiresGrad: true)
        Init.pytorchDefault(weight: weight, bias: self.bias, rng: &rng)
    }

    /// Same, drawing from `RNG(seed: seed)`.
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                            bias: Bool = true, norm: (any NormLayer)? = nil, activation: ((Tensor) -> Tensor)? = nil,
                            seed: UInt64 = 0) {
        var rng = RNG(seed: seed)
        self.init(inChannels, outChannels, kernel: kernel, stride: stride, padding: padding, bias: bias,
                  norm: norm, activation: activation, rng: &rng)
    }

    public var inChannels: Int { weight.shape[3] }
    public var outChannels: Int { weight.shape[0] }
    public var kernelSize: Int { weight.shape[1] }

    /// `x`: `[B, H, W, Cin]` → `[B, Ho, Wo, Cout]`, `Ho = (H + 2·padding − k) / stride + 1`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var y = Tensor.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
        if let norm { y = norm(y) }
        if let activation { y = activation(y) }
        return y
    }
}
