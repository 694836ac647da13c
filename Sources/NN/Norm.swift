// Normalization layers: LayerNorm, GroupNorm and detectron2's FrozenBatchNorm2d (channels-last inputs).
// Corresponds to torch.nn.LayerNorm / nn.GroupNorm and detectron2.layers.FrozenBatchNorm2d.
import TensorCore

/// A normalization layer over the channel (last) dimension. The optimizer recipe gives the
/// parameters of these modules `WEIGHT_DECAY_NORM`; detectron2-style `Conv2d` accepts one as `norm`.
public protocol NormLayer: Module {
    /// `x`: `[..., C]` → same shape.
    func callAsFunction(_ x: Tensor) -> Tensor
}

/// Layer norm over the last dimension (nn.LayerNorm(dim)). Keys `weight`, `bias` `[dim]`; init 1 and 0.
public final class LayerNorm: Module, NormLayer {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float

    public init(_ dim: Int, eps: Float = 1e-5) {
        weight = Tensor.ones([dim], requiresGrad: true)
        bias = Tensor.zeros([dim], requiresGrad: true)
        self.eps = eps
        super.init()
    }

    /// `x`: `[..., dim]` → same shape.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.layerNorm(x, weight: weight, bias: bias, eps: eps)
    }
}

/// Group norm over channels-last input (nn.GroupNorm(groups, channels)). Keys `weight`, `bias` `[C]`;
/// init 1 and 0. Mask2Former's pixel decoder uses 32 groups.
public final class GroupNorm: Module, NormLayer {
    public let weight: Tensor
    public let bias: Tensor
    public let groups: Int
    public let eps: Float

    public init(groups: Int, channels: Int, eps: Float = 1e-5) {
        precondition(groups > 0 && channels % groups == 0, "GroupNorm: \(channels) channels in \(groups) groups")
        weight = Tensor.ones([channels], requiresGrad: true)
        bias = Tensor.zeros([channels], requiresGrad: true)
        self.groups = groups
        self.eps = eps
        super.init()
    }

    /// `x`: `[B, H, W, C]` or `[B, T, C]` → same shape.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }
}

/// detectron2's FrozenBatchNorm2d: a fixed per-channel affine from batch-norm statistics. All four
/// tensors are buffers (keys `weight`, `bias`, `running_mean`, `running_var`, `[C]`); init as
/// detectron2: weight 1, bias 0, mean 0, var 1 − eps (so the layer starts as the identity).
public final class FrozenBatchNorm2d: Module, NormLayer {
    @Buffer public var weight: Tensor
    @Buffer public var bias: Tensor
    @Buffer public var running_mean: Tensor
    @Buffer public var running_var: Tensor
    public let eps: Float

    public init(_ channels: Int, eps: Float = 1e-5) {
        weight = Tensor.ones([channels])
        bias = Tensor.zeros([channels])
        running_mean = Tensor.zeros([channels])
        running_var = Tensor.full([channels], 1 - eps)
        self.eps = eps
        super.init()
    }

    /// `x`: `[..., C]` (NHWC) → same shape; only `x` gets a gradient.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.frozenBatchNorm(x, weight: weight, bias: bias, runningMean: running_mean, runningVar: running_var, eps: eps)
    }
}
