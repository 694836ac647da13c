// The light FPN pixel decoder for tiny configs (no transformer encoder), and the `PixelDecoder` protocol of both decoders.
// Corresponds to Mask2Former pixel_decoder/fpn.py BasePixelDecoder (forward_features), PIXEL_DECODER_NAME "BasePixelDecoder".
//
// Choices, read against fpn.py (Mask2Former HEAD):
// - Levels: Mask2Former's BasePixelDecoder (unlike MaskFormer's) sets `maskformer_num_feature_levels = 3` and
//   `forward_features` collects the first three top-down outputs, i.e. after `layer_4` (res5, stride 32),
//   `layer_3` (res4, stride 16) and `layer_2` (res3, stride 8). We return exactly those as
//   `multiScaleFeatures`, so the masked-attention decoder sees the same L0, L1, L2 strides as with the
//   MSDA decoder. They are post-ReLU conv outputs (the MSDA ones are post-LayerNorm encoder tokens).
// - Top-down upsampling: `F.interpolate(y, size=lateral.shape[-2:], mode="nearest")` (PyTorch's legacy
//   "nearest", src = min(floor(dst·in/out), in−1)), not the bilinear of the MSDA decoder's FPN level.
// - Norm "GN" (all Mask2Former configs): lateral and output convs have no bias; GroupNorm(groups, convDim).
// - `mask_features` is a 3×3 conv, pad 1, with bias in fpn.py (the MSDA decoder's is 1×1); the kernel is
//   `FPNPixelDecoderConfig.maskFeaturesKernel`, default 3 as the reference.
// - Init: every conv c2_xavier_fill (Kaiming-uniform a = 1, bias 0), as the reference.
import NN
import TensorCore

/// A pixel decoder: backbone features in, decoder levels and mask features out. Both
/// `MSDeformAttnPixelDecoder` and `FPNPixelDecoder` conform, so the model can hold `any PixelDecoder`.
public protocol PixelDecoder: Module {
    /// `features`: res2…res5 (strides 4…32) → `multiScaleFeatures` (strides 32, 16, 8, each
    /// `[B, H_l, W_l, convDim]`) and `maskFeatures` `[B, H/4, W/4, maskDim]`.
    func callAsFunction(_ features: BackboneFeatures) -> PixelDecoderOutput
}

extension MSDeformAttnPixelDecoder: PixelDecoder {}

/// Hyper-parameters of `FPNPixelDecoder` (`SEM_SEG_HEAD.CONVS_DIM`, `MASK_DIM`, `NORM: "GN"`).
public struct FPNPixelDecoderConfig: Sendable, Equatable, Codable {
    /// `CONVS_DIM`: channels of every lateral and output conv (and of `multiScaleFeatures`).
    public var convDim = 256
    /// `MASK_DIM`: channels of `maskFeatures`.
    public var maskDim = 256
    /// GroupNorm groups of the lateral and output convs (detectron2's "GN" is 32).
    public var groups = 32
    /// Kernel of the `mask_features` conv: 3 (pad 1) in fpn.py; 1 would match the MSDA decoder's head.
    public var maskFeaturesKernel = 3

    public init() {}

    /// `convDim`, `maskDim` and `groups` taken from the MSDA decoder's config (the rest is unused).
    public init(_ config: PixelDecoderConfig) {
        convDim = config.convDim
        maskDim = config.maskDim
        groups = config.groups
    }
}

/// MaskFormer's FPN ("BasePixelDecoder"): for res5 an output conv; for res4, res3, res2 a lateral conv
/// and, top-down, `y ← output(lateral(x) + nearest(y → size of x))`; `maskFeatures = mask_features(y)`
/// at stride 4.
///
/// Keys (under `sem_seg_head.pixel_decoder.`, in the reference's `state_dict` order):
/// `adapter_1.*`, `layer_1.*` (res2), `adapter_2.*`, `layer_2.*` (res3), `adapter_3.*`, `layer_3.*` (res4),
/// `layer_4.*` (res5), `mask_features.*`. `adapter_i`: 1×1 conv, no bias, + `norm.*` (GroupNorm);
/// `layer_i`: 3×3 conv, pad 1, no bias, + `norm.*`, ReLU; `mask_features`: conv with bias, no norm.
public final class FPNPixelDecoder: Module, PixelDecoder {
    public let config: FPNPixelDecoderConfig
    @Child(key: "adapter_1") public var adapter1: Conv2d
    @Child(key: "layer_1") public var layer1: Conv2d
    @Child(key: "adapter_2") public var adapter2: Conv2d
    @Child(key: "layer_2") public var layer2: Conv2d
    @Child(key: "adapter_3") public var adapter3: Conv2d
    @Child(key: "layer_3") public var layer3: Conv2d
    @Child(key: "layer_4") public var layer4: Conv2d
    @Child(key: "mask_features") public var maskFeaturesConv: Conv2d

    /// `inChannels`: channels of res2, res3, res4, res5.
    public init(_ config: FPNPixelDecoderConfig, inChannels: [Int], rng: inout RNG) {
        precondition(inChannels.count == 4, "FPN pixel decoder expects res2…res5 channels, got \(inChannels)")
        precondition(config.maskFeaturesKernel % 2 == 1, "mask_features kernel must be odd, got \(config.maskFeaturesKernel)")
        self.config = config
        let c = config.convDim, g = config.groups
        // Reference order: per level res2…res5, build the lateral and output convs, then c2_xavier_fill both.
        func lateral(_ cin: Int) -> Conv2d {
            let conv = Conv2d(cin, c, kernel: 1, bias: false, norm: GroupNorm(groups: g, channels: c), rng: &rng)
            Init.c2XavierFill(weight: conv.weight, bias: nil, rng: &rng)
            return conv
        }
        func output(_ cin: Int) -> Conv2d {
            let conv = Conv2d(cin, c, kernel: 3, padding: 1, bias: false, norm: GroupNorm(groups: g, channels: c),
                              activation: { $0.relu() }, rng: &rng)
            Init.c2XavierFill(weight: conv.weight, bias: nil, rng: &rng)
            return conv
        }
        let a1 = lateral(inChannels[0]), l1 = output(c)
        let a2 = lateral(inChannels[1]), l2 = output(c)
        let a3 = lateral(inChannels[2]), l3 = output(c)
        let l4 = output(inChannels[3])
        let k = config.maskFeaturesKernel
        let mf = Conv2d(c, config.maskDim, kernel: k, padding: k / 2, bias: true, rng: &rng)
        Init.c2XavierFill(weight: mf.weight, bias: mf.bias, rng: &rng)
        super.init()
        adapter1 = a1; layer1 = l1; adapter2 = a2; layer2 = l2; adapter3 = a3; layer3 = l3; layer4 = l4
        maskFeaturesConv = mf
    }

    /// The lateral convs in top-down order (res4, res3, res2), as the reference's `lateral_convs`
    /// without its leading `None` for res5.
    public var lateralConvs: [Conv2d] { [adapter3, adapter2, adapter1] }
    /// The output convs in top-down order (res5, res4, res3, res2), as the reference's `output_convs`.
    public var outputConvs: [Conv2d] { [layer4, layer3, layer2, layer1] }

    /// `features` res2…res5 `[B, H/s, W/s, C_s]` → `multiScaleFeatures` = outputs of `layer_4`, `layer_3`,
    /// `layer_2` (strides 32, 16, 8, `[B, H_l, W_l, convDim]`) and `maskFeatures` `[B, H/4, W/4, maskDim]`.
    public func callAsFunction(_ features: BackboneFeatures) -> PixelDecoderOutput {
        var y = layer4(features.res5)
        var levels = [y]
        let topDown = [(adapter3, layer3, features.res4), (adapter2, layer2, features.res3), (adapter1, layer1, features.res2)]
        for (lateral, output, x) in topDown {
            let l = lateral(x)
            y = output(l + FPNPixelDecoder.upsampleNearest(y, height: l.shape[1], width: l.shape[2]))
            if levels.count < 3 { levels.append(y) }
        }
        return PixelDecoderOutput(multiScaleFeatures: levels, maskFeatures: maskFeaturesConv(y))
    }

    /// PyTorch's `F.interpolate(x, size: (height, width), mode: "nearest")` on channels-last `x`
    /// `[B, H, W, C]` → `[B, height, width, C]`: output row i reads input row min(⌊i·(H/height)⌋, H − 1)
    /// (the ratio in float32, as PyTorch's CPU kernel), same for columns. Composed of two
    /// `indexSelect`s, whose backward scatter-adds (so each input pixel gets the sum of its copies).
    public static func upsampleNearest(_ x: Tensor, height: Int, width: Int) -> Tensor {
        precondition(x.rank == 4 && height > 0 && width > 0, "nearest resize of \(x.shape) to \(height)×\(width)")
        func indices(_ n: Int, _ m: Int) -> [Int] {
            let scale = Float(n) / Float(m)
            return (0..<m).map { Swift.min(Int((Float($0) * scale).rounded(.down)), n - 1) }
        }
        var t = x
        if height != x.shape[1] { t = t.indexSelect(axis: 1, indices(x.shape[1], height)) }
        if width != x.shape[2] { t = t.indexSelect(axis: 2, indices(x.shape[2], width)) }
        return t
    }
}
