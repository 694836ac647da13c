// The masked-attention transformer decoder: queries, round-robin cross-attention over three scales, shared heads.
// Corresponds to Mask2Former MultiScaleMaskedTransformerDecoder (spec §1.5); MP-Former's additions build on it.
import Foundation
import NN
import TensorCore

/// Hyper-parameters of the decoder (spec §1.5 defaults for R50).
public struct TransformerDecoderConfig: Sendable, Equatable, Codable {
    public var hiddenDim = 256
    public var numQueries = 100
    public var heads = 8
    public var feedforwardDim = 2048
    /// `DEC_LAYERS`: the number of supervised predictions; the decoder has `decLayers − 1` layers.
    public var decLayers = 10
    public var maskDim = 256
    public var numClasses = 150
    /// Learnable query positional embedding (`query_embed`); MP-Former's released code removes it.
    public var queryPositionalEmbedding = true
    /// Number of feature levels attended round-robin.
    public var featureLevels = 3

    public init() {}
}

/// One supervised prediction of the decoder.
public struct DecoderPrediction {
    /// `[B, Q, K+1]` (the last class is "no object").
    public var classLogits: Tensor
    /// `[B, Q, H/4, W/4]`.
    public var maskLogits: Tensor
}

/// Keys (under `sem_seg_head.predictor.`): `transformer_self_attention_layers.i.*`,
/// `transformer_cross_attention_layers.i.*`, `transformer_ffn_layers.i.*`, `decoder_norm.*`,
/// `query_feat.weight`, `query_embed.weight` (optional), `level_embed.weight`, `class_embed.*`,
/// `mask_embed.layers.{0,1,2}.*`. The per-level `input_proj` is the identity (features already have
/// `hiddenDim` channels) and has no keys.
public final class MultiScaleMaskedTransformerDecoder: Module {
    public let config: TransformerDecoderConfig
    @Child(key: "transformer_self_attention_layers") public var selfAttentionLayers: [SelfAttentionLayer]
    @Child(key: "transformer_cross_attention_layers") public var crossAttentionLayers: [CrossAttentionLayer]
    @Child(key: "transformer_ffn_layers") public var ffnLayers: [FFNLayer]
    @Child(key: "decoder_norm") public var decoderNorm: LayerNorm
    @Child(key: "query_feat") public var queryFeat: Embedding
    @Child(key: "query_embed") public var queryEmbed: Embedding?
    @Child(key: "level_embed") public var levelEmbed: Embedding
    @Child(key: "class_embed") public var classEmbed: Linear
    @Child(key: "mask_embed") public var maskEmbed: MLP

    public init(_ config: TransformerDecoderConfig, rng: inout RNG) {
        self.config = config
        let c = config.hiddenDim, n = config.decLayers - 1
        precondition(n >= 0 && c % config.heads == 0, "decoder: \(config)")
        var sa: [SelfAttentionLayer] = [], ca: [CrossAttentionLayer] = [], ffn: [FFNLayer] = []
        for _ in 0..<n {
            sa.append(SelfAttentionLayer(c, heads: config.heads, rng: &rng))
            ca.append(CrossAttentionLayer(c, heads: config.heads, rng: &rng))
            ffn.append(FFNLayer(c, hidden: config.feedforwardDim, rng: &rng))
        }
        let norm = LayerNorm(c)
        let qf = Embedding(config.numQueries, c, rng: &rng)
        let qe = config.queryPositionalEmbedding ? Embedding(config.numQueries, c, rng: &rng) : nil
        let le = Embedding(config.featureLevels, c, rng: &rng)
        let cls = Linear(c, config.numClasses + 1, rng: &rng)
        let me = MLP(inputDim: c, hiddenDim: c, outputDim: config.maskDim, layerCount: 3, rng: &rng)
        super.init()
        selfAttentionLayers = sa; crossAttentionLayers = ca; ffnLayers = ffn
        decoderNorm = norm; queryFeat = qf; queryEmbed = qe; levelEmbed = le; classEmbed = cls; maskEmbed = me
    }

    /// Shared heads (spec §1.5 `heads(X)`): class logits, mask logits, and the attention mask for a level.
    ///
    /// `x` `[B, Q, C]`, `maskFeatures` `[B, H4, W4, D]`. Returns the prediction and, when
    /// `attentionSize` is given, the boolean mask `[B, Q, h·w]` (true = blocked where the bilinearly
    /// resized mask logit gives sigmoid < 0.5), computed without gradient.
    public func heads(_ x: Tensor, maskFeatures: Tensor, attentionSize: (Int, Int)?) -> (DecoderPrediction, [Bool]?) {
        let b = x.shape[0], q = x.shape[1]
        let h4 = maskFeatures.shape[1], w4 = maskFeatures.shape[2], d = maskFeatures.shape[3]
        let y = decoderNorm(x)
        let classLogits = classEmbed(y)
        let embedding = maskEmbed(y)                                              // [B, Q, D]
        let features = maskFeatures.reshaped([b, h4 * w4, d])
        let maskLogits = Tensor.matmul(embedding, features, transB: true).reshaped([b, q, h4, w4])
        var mask: [Bool]? = nil
        if let (h, w) = attentionSize {
            mask = withNoGrad {
                let resized = Tensor.resizeBilinear(maskLogits.detached().reshaped([b * q, h4, w4, 1]), height: h, width: w)
                // The reference thresholds the float32 sigmoid, which rounds to 0.5 for logits in (−6e-8, 0).
                return resized.values.map { 1 / (1 + Foundation.exp(-$0)) < 0.5 }
            }
        }
        return (DecoderPrediction(classLogits: classLogits, maskLogits: maskLogits), mask)
    }

    /// Runs the decoder.
    ///
    /// - `features`: the pixel decoder's multi-scale features, low to high resolution (strides 32, 16, 8),
    ///   each `[B, H_l, W_l, C]`.
    /// - `maskFeatures`: `[B, H/4, W/4, D]`.
    /// Returns `decLayers` predictions: the layer-0 prediction from the raw queries, then one per layer.
    public func callAsFunction(features: [Tensor], maskFeatures: Tensor) -> [DecoderPrediction] {
        precondition(features.count == config.featureLevels, "\(features.count) feature levels, expected \(config.featureLevels)")
        let b = maskFeatures.shape[0], c = config.hiddenDim, nq = config.numQueries
        var memories: [Tensor] = [], positions: [Tensor] = [], sizes: [(Int, Int)] = []
        for (l, f) in features.enumerated() {
            let h = f.shape[1], w = f.shape[2]
            sizes.append((h, w))
            positions.append(sinePositionEncoding(height: h, width: w, numPosFeats: c / 2).reshaped([1, h * w, c]))
            memories.append(f.reshaped([b, h * w, c]) + levelEmbed.weight.slice(axis: 0, l..<(l + 1)).reshaped([1, 1, c]))
        }
        let zeros = Tensor.zeros([b, nq, c])
        var x = zeros + queryFeat.weight.reshaped([1, nq, c])                   // [B, Q, C]
        let queryPos = queryEmbed.map { zeros + $0.weight.reshaped([1, nq, c]) }
        let memPos = positions.map { Tensor.zeros([b, $0.shape[1], c]) + $0 }
        var predictions: [DecoderPrediction] = []
        var (prediction, mask) = heads(x, maskFeatures: maskFeatures, attentionSize: sizes[0])
        predictions.append(prediction)
        for i in 0..<(config.decLayers - 1) {
            let l = i % config.featureLevels
            x = crossAttentionLayers[i](x, memory: memories[l], memoryPos: memPos[l], queryPos: queryPos, mask: mask)
            x = selfAttentionLayers[i](x, pos: queryPos)
            x = ffnLayers[i](x)
            let next = (i + 1) % config.featureLevels
            (prediction, mask) = heads(x, maskFeatures: maskFeatures,
                                       attentionSize: i + 1 < config.decLayers - 1 ? sizes[next] : nil)
            predictions.append(prediction)
        }
        return predictions
    }
}
