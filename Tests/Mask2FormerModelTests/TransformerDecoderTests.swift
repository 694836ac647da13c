// Tests of the masked-attention transformer decoder: names, parameter count, shapes, masks, gradients.
// Reference: Mask2Former MultiScaleMaskedTransformerDecoder (docs/model.md#transformer-decoder, #parameter-count).
import Mask2FormerModel
import NN
import Testing
import TensorCore
import _TestSupport

@Suite struct TransformerDecoderTests {
    @Test func r50NamesAndCount() {
        var rng = RNG(seed: 1)
        var cfg = TransformerDecoderConfig()
        cfg.numClasses = 150
        let dec = MultiScaleMaskedTransformerDecoder(cfg, rng: &rng)
        let params = dec.namedParameters()
        let total = params.map { $0.1.count }.reduce(0, +)
        // docs/model.md#parameter-count: decoder 14,458,624 plus the class head (K+1)·257 = 38,807 for K = 150.
        #expect(total == 14_458_624 + 38_807)
        let names = Set(params.map(\.0))
        for n in ["transformer_self_attention_layers.0.self_attn.in_proj_weight",
                  "transformer_self_attention_layers.8.self_attn.out_proj.bias",
                  "transformer_cross_attention_layers.3.multihead_attn.in_proj_bias",
                  "transformer_cross_attention_layers.3.norm.weight", "transformer_ffn_layers.8.linear2.weight",
                  "decoder_norm.weight", "query_feat.weight", "query_embed.weight", "level_embed.weight",
                  "class_embed.bias", "mask_embed.layers.2.weight"] {
            #expect(names.contains(n), "missing \(n)")
        }
        cfg.queryPositionalEmbedding = false
        let noPos = MultiScaleMaskedTransformerDecoder(cfg, rng: &rng)
        #expect(!noPos.namedParameters().contains { $0.0.hasPrefix("query_embed") })
    }

    func tiny(seed: UInt64) -> (MultiScaleMaskedTransformerDecoder, [Tensor], Tensor) {
        var rng = RNG(seed: seed)
        var cfg = TransformerDecoderConfig()
        cfg.hiddenDim = 8; cfg.numQueries = 3; cfg.heads = 2; cfg.feedforwardDim = 12
        cfg.decLayers = 4; cfg.maskDim = 8; cfg.numClasses = 4
        let dec = MultiScaleMaskedTransformerDecoder(cfg, rng: &rng)
        let feats = [[1, 1, 2, 8], [1, 2, 2, 8], [1, 2, 4, 8]].enumerated().map { testTensor($0.element, seed: 10 + UInt64($0.offset)) }
        let maskFeatures = testTensor([1, 4, 8, 8], seed: 20)
        return (dec, feats, maskFeatures)
    }

    @Test func shapesAndLayerZero() {
        let (dec, feats, mf) = tiny(seed: 2)
        let preds = withNoGrad { dec(features: feats, maskFeatures: mf) }
        #expect(preds.count == 4)
        for p in preds { #expect(p.classLogits.shape == [1, 3, 5] && p.maskLogits.shape == [1, 3, 4, 8]) }
        // The layer-0 prediction depends only on the queries and the mask features.
        let (p0, mask) = withNoGrad { dec.heads(dec.queryFeat.weight.reshaped([1, 3, 8]), maskFeatures: mf, attentionSize: (1, 2)) }
        #expect(p0.classLogits.values == preds[0].classLogits.values && p0.maskLogits.values == preds[0].maskLogits.values)
        #expect(mask?.count == 3 * 2)
    }

    @Test func attentionMaskIsResizedLogitBelowZero() {
        let (dec, _, mf) = tiny(seed: 3)
        let x = testTensor([1, 3, 8], seed: 4, requiresGrad: false)
        let (p, mask) = withNoGrad { dec.heads(x, maskFeatures: mf, attentionSize: (2, 4)) }
        // 4×8 → 2×4 bilinear with align_corners=False averages each 2×2 block exactly.
        let m = p.maskLogits
        for q in 0..<3 {
            for i in 0..<2 {
                for j in 0..<4 {
                    let avg = (m[0, q, 2 * i, 2 * j] + m[0, q, 2 * i, 2 * j + 1] + m[0, q, 2 * i + 1, 2 * j] + m[0, q, 2 * i + 1, 2 * j + 1]) / 4
                    if abs(avg) > 1e-4 { #expect(mask![q * 8 + i * 4 + j] == (avg < 0)) }
                }
            }
        }
    }

    @Test func gradientsThroughTheDecoder() {
        let (dec, feats, mf) = tiny(seed: 5)
        let w = dec.crossAttentionLayers[1].attention.inProjWeight
        let rep = gradCheck([feats[1], mf, w], rtol: 2e-2, atol: 5e-3) { t in
            let preds = dec(features: [feats[0], t[0], feats[2]], maskFeatures: t[1])
            return Tensor.concat(preds.flatMap { [$0.classLogits.reshaped([-1]), $0.maskLogits.reshaped([-1])] }, axis: 0)
        }
        #expect(rep.passed, "\(rep)")
    }
}
