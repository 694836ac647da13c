// The masked-attention transformer decoder: queries, round-robin cross-attention over three scales, shared heads.
// Corresponds to Mask2Former MultiScaleMaskedTransformerDecoder (docs/model.md#transformer-decoder); MP-Former's additions build on it.
import Foundation
import NN
import TensorCore

/// Hyper-parameters of the decoder (R50 defaults: docs/model.md#transformer-decoder).
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

/// Keys (under `sem_seg_head.predictor.`): `transformer_self_attention_layers.i.*`,
/// `transformer_cross_attention_layers.i.*`, `transformer_ffn_layers.i.*`, `decoder_norm.*`,
/// `query_feat.weight`, `query_embed.weight` (optional), `level_embed.weight`, `class_embed.*`,
/// `mask_embed.layers.{0,1,2}.*`. The per-level `input_proj` is the identity (features already have
/// `hiddenDim` channels) and has no keys.
public final class MultiScaleMaskedTransformerDecoder: Module {
    public let config: TransformerDecoderConfig
    /// MP-Former's mask piloting (training only; adds `label_enc` when enabled).
    public let maskPiloting: MaskPilotingConfig
    @Child(key: "transformer_self_attention_layers") public var selfAttentionLayers: [SelfAttentionLayer]
    @Child(key: "transformer_cross_attention_layers") public var crossAttentionLayers: [CrossAttentionLayer]
    @Child(key: "transformer_ffn_layers") public var ffnLayers: [FFNLayer]
    @Child(key: "decoder_norm") public var decoderNorm: LayerNorm
    @Child(key: "query_feat") public var queryFeat: Embedding
    @Child(key: "query_embed") public var queryEmbed: Embedding?
    @Child(key: "level_embed") public var levelEmbed: Embedding
    @Child(key: "class_embed") public var classEmbed: Linear
    @Child(key: "mask_embed") public var maskEmbed: MLP
    /// MP-Former's `label_enc` (K × C, N(0,1)); present only when mask piloting is enabled.
    @Child(key: "label_enc") public var labelEnc: Embedding?
    /// Called with (layer, mask) for every cross-attention mask a layer uses (diagnostics and tests).
    @Ignored public var crossAttentionMaskObserver: ((Int, [Bool]) -> Void)? = nil

    public init(_ config: TransformerDecoderConfig, maskPiloting: MaskPilotingConfig = MaskPilotingConfig(), rng: inout RNG) {
        self.config = config
        self.maskPiloting = maskPiloting
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
        let lenc = maskPiloting.enabled ? Embedding(config.numClasses, c, rng: &rng) : nil
        super.init()
        selfAttentionLayers = sa; crossAttentionLayers = ca; ffnLayers = ffn
        decoderNorm = norm; queryFeat = qf; queryEmbed = qe; levelEmbed = le; classEmbed = cls; maskEmbed = me
        labelEnc = lenc
    }

    /// Shared heads (docs/model.md#heads): class logits, mask logits, and the attention mask for a level.
    ///
    /// `x` `[B, Q, C]`, `maskFeatures` `[B, H4, W4, D]`. Returns the prediction and, when
    /// `attentionSize` is given, the boolean mask `[B, Q, h·w]` (true = blocked where the bilinearly
    /// resized mask logit gives sigmoid < 0.5), computed without gradient.
    public func heads(_ x: Tensor, maskFeatures: Tensor, attentionSize: (Int, Int)?) -> (MaskPrediction, [Bool]?) {
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
        return (MaskPrediction(classLogits: classLogits, maskLogits: maskLogits), mask)
    }

    /// Runs the decoder (inference, or training without mask piloting).
    ///
    /// - `features`: the pixel decoder's multi-scale features, low to high resolution (strides 32, 16, 8),
    ///   each `[B, H_l, W_l, C]`.
    /// - `maskFeatures`: `[B, H/4, W/4, D]`.
    /// Returns `decLayers` predictions: the layer-0 prediction from the raw queries, then one per layer.
    public func callAsFunction(features: [Tensor], maskFeatures: Tensor) -> [MaskPrediction] {
        let b = maskFeatures.shape[0], c = config.hiddenDim, nq = config.numQueries
        let zeros = Tensor.zeros([b, nq, c])
        let x = zeros + queryFeat.weight.reshaped([1, nq, c])
        let queryPos = queryEmbed.map { zeros + $0.weight.reshaped([1, nq, c]) }
        return run(x, queryPos: queryPos, selfMask: nil, features: features, maskFeatures: maskFeatures) { _, _, _, _ in }
    }

    /// Training forward with MP-Former's mask piloting (docs/model.md#mp-forward): G groups of M label-embedding
    /// queries before the Q matching queries, GT masks (area-downsampled, point-noised, re-drawn per
    /// layer) as their cross-attention masks, and the self-attention mask of
    /// docs/model.md#self-attention-isolation. A plain forward (no piloted predictions) when MP is disabled or
    /// the batch has no GT.
    public func callAsFunction(features: [Tensor], maskFeatures: Tensor, maskPiloting targets: MaskPilotingTargets) -> TrainingPredictions {
        let mp = maskPiloting
        let b = maskFeatures.shape[0], c = config.hiddenDim, nq = config.numQueries
        let counts = targets.labels.map(\.count)
        precondition(counts.count == b, "MP targets for \(counts.count) images, batch of \(b)")
        let m = counts.max() ?? 0
        let g = mp.groups(maxTargets: m)
        guard mp.enabled, let labelEnc, g > 0 else {
            return TrainingPredictions(matching: callAsFunction(features: features, maskFeatures: maskFeatures), piloted: nil)
        }
        let layout = MaskPilotingLayout(groups: g, slotsPerGroup: m, targetCounts: counts)
        let pad = layout.padSize, t = pad + nq, k = config.numClasses
        var rngs = targets.rngs
        // MP content: label_enc[flipped label] for slot (g, j < N_b); zeros (row K of an extended table) for padding.
        var rows: [Int] = []
        rows.reserveCapacity(b * pad)
        for i in 0..<b {
            for _ in 0..<g {
                let flipped = flipLabels(targets.labels[i], ratio: mp.labelNoise, numClasses: k, rng: &rngs[i])
                rows += (0..<m).map { $0 < flipped.count ? flipped[$0] : k }
            }
        }
        let table = Tensor.concat([labelEnc.weight, Tensor.zeros([1, c])], axis: 0)
        let content = table.indexSelect(axis: 0, rows).reshaped([b, pad, c])
        let zeros = Tensor.zeros([b, nq, c])
        let x = Tensor.concat([content, zeros + queryFeat.weight.reshaped([1, nq, c])], axis: 1)
        let queryPos = queryEmbed.map { Tensor.concat([Tensor.zeros([b, pad, c]), zeros + $0.weight.reshaped([1, nq, c])], axis: 1) }
        let single = maskPilotingSelfAttentionMask(groups: g, slotsPerGroup: m, queries: nq)
        let selfMask = Array((0..<b).map { _ in single }.joined())
        var pilot = PilotedAttentionMasks(config: mp, layout: layout, masks: targets.masks, rngs: rngs, heads: config.heads, queries: nq)
        let predictions = run(x, queryPos: queryPos, selfMask: selfMask, features: features, maskFeatures: maskFeatures) {
            pilot.apply(layer: $0, height: $1, width: $2, mask: &$3)
        }
        let split = { (p: MaskPrediction, range: Range<Int>) in
            MaskPrediction(classLogits: p.classLogits.slice(axis: 1, range), maskLogits: p.maskLogits.slice(axis: 1, range))
        }
        return TrainingPredictions(matching: predictions.map { split($0, pad..<t) },
                                   piloted: PilotedPredictions(predictions: predictions.map { split($0, 0..<pad) }, layout: layout))
    }

    /// The decoder loop shared by both paths. `overrideMask(layer, h, w, &mask)` may rewrite the
    /// cross-attention mask `[B(·heads), T, h·w]` that layer `layer` will use (MP rows).
    private func run(_ x0: Tensor, queryPos: Tensor?, selfMask: [Bool]?, features: [Tensor], maskFeatures: Tensor,
                     overrideMask: (Int, Int, Int, inout [Bool]) -> Void) -> [MaskPrediction] {
        precondition(features.count == config.featureLevels, "\(features.count) feature levels, expected \(config.featureLevels)")
        let b = maskFeatures.shape[0], c = config.hiddenDim
        var memories: [Tensor] = [], memPos: [Tensor] = [], sizes: [(Int, Int)] = []
        for (l, f) in features.enumerated() {
            let h = f.shape[1], w = f.shape[2]
            sizes.append((h, w))
            let pe = sinePositionEncoding(height: h, width: w, numPosFeats: c / 2).reshaped([1, h * w, c])
            memPos.append(Tensor.zeros([b, h * w, c]) + pe)
            memories.append(f.reshaped([b, h * w, c]) + levelEmbed.weight.slice(axis: 0, l..<(l + 1)).reshaped([1, 1, c]))
        }
        let layers = config.decLayers - 1
        var x = x0
        var predictions: [MaskPrediction] = []
        var (prediction, mask) = heads(x, maskFeatures: maskFeatures, attentionSize: layers > 0 ? sizes[0] : nil)
        predictions.append(prediction)
        for i in 0..<layers {
            let l = i % config.featureLevels
            if var m = mask {
                overrideMask(i, sizes[l].0, sizes[l].1, &m)
                mask = m
                crossAttentionMaskObserver?(i, m)
            }
            x = crossAttentionLayers[i](x, memory: memories[l], memoryPos: memPos[l], queryPos: queryPos, mask: mask)
            x = selfAttentionLayers[i](x, pos: queryPos, mask: selfMask)
            x = ffnLayers[i](x)
            let next = (i + 1) % config.featureLevels
            (prediction, mask) = heads(x, maskFeatures: maskFeatures, attentionSize: i + 1 < layers ? sizes[next] : nil)
            predictions.append(prediction)
        }
        return predictions
    }
}
