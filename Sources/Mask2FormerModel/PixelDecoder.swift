// The multi-scale deformable-attention pixel decoder: input projections, MSDA encoder, FPN to stride 4, mask features.
// Corresponds to Mask2Former pixel_decoder/msdeformattn.py MSDeformAttnPixelDecoder (docs/model.md#pixel-decoder).
import NN
import TensorCore

/// Hyper-parameters of the pixel decoder (R50 defaults: docs/model.md#pixel-decoder).
public struct PixelDecoderConfig: Sendable, Equatable, Codable {
    /// `SEM_SEG_HEAD.PIXEL_DECODER_NAME`: the MSDA pixel decoder, or the light FPN for tiny configs.
    public enum Name: String, Sendable, Codable {
        case msdeformattn
        case fpn
    }
    public var name: Name = .msdeformattn
    /// `CONVS_DIM` (= the encoder's d_model).
    public var convDim = 256
    /// `MASK_DIM`.
    public var maskDim = 256
    public var encoderLayers = 6
    public var encoderHeads = 8
    public var encoderPoints = 4
    /// The encoder FFN width (hard-coded 1024 in the reference).
    public var encoderFeedforwardDim = 1024
    /// GroupNorm groups of the input projections and FPN convs.
    public var groups = 32
    public init() {}
}

/// One post-norm encoder layer: `src ← LN(src + MSDA(src + pos, ref, src))`, `src ← LN(src + FFN(src))`.
/// Keys `self_attn.*`, `norm1.*`, `linear1.*`, `linear2.*`, `norm2.*`.
public final class MSDeformAttnEncoderLayer: Module {
    @Child(key: "self_attn") public var attention: MSDeformAttn
    public let norm1: LayerNorm
    public let linear1: Linear
    public let linear2: Linear
    public let norm2: LayerNorm

    public init(_ c: Int, ffn: Int, heads: Int, levels: Int, points: Int, rng: inout RNG) {
        let attn = MSDeformAttn(dModel: c, levels: levels, heads: heads, points: points, rng: &rng)
        norm1 = LayerNorm(c)
        linear1 = Linear(c, ffn, rng: &rng)
        linear2 = Linear(ffn, c, rng: &rng)
        norm2 = LayerNorm(c)
        super.init()
        attention = attn
    }

    /// `src`, `pos` `[B, S, C]`; `reference` `[B, S, 2]`.
    public func callAsFunction(_ src: Tensor, pos: Tensor, reference: Tensor,
                               levelShapes: [(height: Int, width: Int)]) -> Tensor {
        let a = attention(query: src + pos, referencePoints: reference, value: src, levelShapes: levelShapes)
        let x = norm1(src + a)
        return norm2(x + linear2(linear1(x).relu()))
    }
}

/// Keys `level_embed` `[L, C]` and `encoder.layers.i.*` (the reference's `MSDeformAttnTransformerEncoderOnly`).
public final class MSDeformAttnTransformerEncoder: Module {
    @Param(key: "level_embed") public var levelEmbed: Tensor
    public let encoder: EncoderStack

    /// Holds `layers.i` so the keys read `encoder.layers.i.*`.
    public final class EncoderStack: Module {
        public let layers: [MSDeformAttnEncoderLayer]
        init(_ layers: [MSDeformAttnEncoderLayer]) { self.layers = layers; super.init() }
    }

    public init(_ config: PixelDecoderConfig, levels: Int, rng: inout RNG) {
        var layers: [MSDeformAttnEncoderLayer] = []
        for _ in 0..<config.encoderLayers {
            let layer = MSDeformAttnEncoderLayer(config.convDim, ffn: config.encoderFeedforwardDim, heads: config.encoderHeads,
                                                 levels: levels, points: config.encoderPoints, rng: &rng)
            // Reference init order: Xavier on every >1-D encoder parameter, then MSDA's own reset.
            Init.xavierUniform(layer.linear1.weight, rng: &rng)
            Init.xavierUniform(layer.linear2.weight, rng: &rng)
            layers.append(layer)
        }
        encoder = EncoderStack(layers)
        super.init()
        levelEmbed = Tensor.zeros([levels, config.convDim], requiresGrad: true)
        Init.normal(levelEmbed, rng: &rng)
    }
}

/// The pixel decoder's outputs.
public struct PixelDecoderOutput {
    /// Encoder outputs, low to high resolution (strides 32, 16, 8), each `[B, H_l, W_l, C]`.
    public var multiScaleFeatures: [Tensor]
    /// `[B, H/4, W/4, maskDim]`.
    public var maskFeatures: Tensor
}

/// Keys (under `sem_seg_head.pixel_decoder.`): `input_proj.l.0.*` (1×1 conv with bias, l = 0 for res5),
/// `input_proj.l.1.*` (GroupNorm), `transformer.level_embed`, `transformer.encoder.layers.i.*`,
/// `mask_features.*`, `adapter_1.weight`, `adapter_1.norm.*`, `layer_1.weight`, `layer_1.norm.*`.
public final class MSDeformAttnPixelDecoder: Module {
    public let config: PixelDecoderConfig
    @Child(key: "input_proj") public var inputProj: [InputProjection]
    public let transformer: MSDeformAttnTransformerEncoder
    @Child(key: "mask_features") public var maskFeaturesConv: Conv2d
    @Child(key: "adapter_1") public var lateral: Conv2d
    @Child(key: "layer_1") public var output: Conv2d

    /// `input_proj.l`: keys `0.*` (conv) and `1.*` (GroupNorm).
    public final class InputProjection: Module {
        @Child(key: "0") public var conv: Conv2d
        @Child(key: "1") public var norm: GroupNorm
        init(_ cin: Int, _ cout: Int, groups: Int, rng: inout RNG) {
            let c = Conv2d(cin, cout, kernel: 1, bias: true, rng: &rng)
            Init.xavierUniform(c.weight, rng: &rng)
            c.bias?.zero()
            let n = GroupNorm(groups: groups, channels: cout)
            super.init()
            conv = c; norm = n
        }
        func callAsFunction(_ x: Tensor) -> Tensor { norm(conv(x)) }
    }

    /// `inChannels`: channels of res2, res3, res4, res5.
    public init(_ config: PixelDecoderConfig, inChannels: [Int], rng: inout RNG) {
        precondition(inChannels.count == 4, "pixel decoder expects res2…res5 channels, got \(inChannels)")
        self.config = config
        let c = config.convDim
        let proj = [inChannels[3], inChannels[2], inChannels[1]].map { InputProjection($0, c, groups: config.groups, rng: &rng) }
        transformer = MSDeformAttnTransformerEncoder(config, levels: 3, rng: &rng)
        let mf = Conv2d(c, config.maskDim, kernel: 1, bias: true, rng: &rng)
        Init.c2XavierFill(weight: mf.weight, bias: mf.bias, rng: &rng)
        let lat = Conv2d(inChannels[0], c, kernel: 1, bias: false, norm: GroupNorm(groups: config.groups, channels: c), rng: &rng)
        Init.c2XavierFill(weight: lat.weight, bias: nil, rng: &rng)
        let out = Conv2d(c, c, kernel: 3, padding: 1, bias: false, norm: GroupNorm(groups: config.groups, channels: c),
                         activation: { $0.relu() }, rng: &rng)
        Init.c2XavierFill(weight: out.weight, bias: nil, rng: &rng)
        super.init()
        inputProj = proj; maskFeaturesConv = mf; lateral = lat; output = out
    }

    public func callAsFunction(_ features: BackboneFeatures) -> PixelDecoderOutput {
        let b = features.res5.shape[0], c = config.convDim
        let inputs = [features.res5, features.res4, features.res3]
        var sources: [Tensor] = [], positions: [Tensor] = [], shapes: [(height: Int, width: Int)] = []
        var refs: [Float] = []
        for (l, x) in inputs.enumerated() {
            let s = inputProj[l](x)
            let h = s.shape[1], w = s.shape[2]
            shapes.append((height: h, width: w))
            sources.append(s.reshaped([b, h * w, c]))
            let pe = sinePositionEncoding(height: h, width: w, numPosFeats: c / 2)
            positions.append(pe.reshaped([1, h * w, c]) + transformer.levelEmbed.slice(axis: 0, l..<(l + 1)).reshaped([1, 1, c]))
            for i in 0..<h { for j in 0..<w { refs += [(Float(j) + 0.5) / Float(w), (Float(i) + 0.5) / Float(h)] } }
        }
        let total = shapes.map { $0.height * $0.width }.reduce(0, +)
        var src = Tensor.concat(sources, axis: 1)                                   // [B, S, C]
        let pos = Tensor.zeros([b, total, c]) + Tensor.concat(positions, axis: 1)
        let reference = Tensor((0..<b).flatMap { _ in refs }, shape: [b, total, 2])
        for layer in transformer.encoder.layers {
            src = layer(src, pos: pos, reference: reference, levelShapes: shapes)
        }
        var outs: [Tensor] = []
        var start = 0
        for (h, w) in shapes {
            outs.append(src.slice(axis: 1, start..<(start + h * w)).reshaped([b, h, w, c]))
            start += h * w
        }
        // FPN: one level at stride 4 from res2, with the stride-8 encoder output upsampled bilinearly.
        let lat = lateral(features.res2)
        let up = Tensor.resizeBilinear(outs[2], height: lat.shape[1], width: lat.shape[2])
        let y = output(lat + up)
        return PixelDecoderOutput(multiScaleFeatures: outs, maskFeatures: maskFeaturesConv(y))
    }
}
