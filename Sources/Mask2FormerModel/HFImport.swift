// Maps HuggingFace-transformers Mask2Former parameter names onto the reference (detectron2) names we use.
// Corresponds to transformers' convert_mask2former_original_pytorch_checkpoint_to_pytorch.py, run backwards.
import TensorCore

/// The outcome of translating an HF `state_dict`: tensors under our names (PyTorch layout), and the
/// HF keys no rule maps (every one of them is reported, none silently dropped).
public struct HFImportResult {
    public var tensors: [String: Tensor]
    public var unmapped: [String]
}

/// Translates HF Mask2Former keys (`model.pixel_level_module…`, `model.transformer_module…`,
/// `class_predictor…`) to detectron2/Mask2Former keys (`backbone…`, `sem_seg_head.pixel_decoder…`,
/// `sem_seg_head.predictor…`). HF's separate self-attention `q_proj`/`k_proj`/`v_proj` are packed into
/// `in_proj_weight`/`in_proj_bias` (rows q, k, v), as `nn.MultiheadAttention` stores them.
public func importHuggingFaceMask2Former(_ source: [String: Tensor]) -> HFImportResult {
    var out: [String: Tensor] = [:]
    var unmapped: [String] = []
    var packed: [String: [String: Tensor]] = [:]   // our in_proj prefix → "q_proj.weight" etc.

    for (key, tensor) in source {
        if let name = translateHFKey(key) {
            out[name] = tensor
            continue
        }
        // Self-attention projections: model.transformer_module.decoder.layers.N.self_attn.{q,k,v}_proj.{weight,bias}
        let parts = key.split(separator: ".").map(String.init)
        if parts.count == 8, parts[0] == "model", parts[1] == "transformer_module", parts[2] == "decoder",
           parts[3] == "layers", Int(parts[4]) != nil, parts[5] == "self_attn",
           ["q_proj", "k_proj", "v_proj"].contains(parts[6]), ["weight", "bias"].contains(parts[7]) {
            packed["sem_seg_head.predictor.transformer_self_attention_layers.\(parts[4]).self_attn", default: [:]][parts[6] + "." + parts[7]] = tensor
            continue
        }
        unmapped.append(key)
    }
    for (prefix, pieces) in packed.sorted(by: { $0.key < $1.key }) {
        for kind in ["weight", "bias"] {
            let qkv = ["q_proj", "k_proj", "v_proj"].compactMap { pieces["\($0).\(kind)"] }
            if qkv.count == 3 {
                out["\(prefix).in_proj_\(kind)"] = withNoGrad { Tensor.concat(qkv, axis: 0) }
            } else {
                unmapped += ["q_proj", "k_proj", "v_proj"].filter { pieces["\($0).\(kind)"] != nil }
                    .map { "\(prefix) \($0).\(kind) (the other projections of the triple are missing)" }
            }
        }
    }
    return HFImportResult(tensors: out, unmapped: unmapped.sorted())
}

/// One HF key → our key, or nil when no one-to-one rule applies.
func translateHFKey(_ key: String) -> String? {
    var p = key.split(separator: ".").map(String.init)
    func rest(_ from: Int) -> String { p[from...].joined(separator: ".") }
    // Backbone (HF ResNet): embedder → stem.conv1; stages.s.layers.i.layer.j → res(s+2).i.conv(j+1).
    if p.starts(with: ["model", "pixel_level_module", "encoder"]) {
        p.removeFirst(3)
        func convNorm(_ prefix: String, _ tail: ArraySlice<String>) -> String? {
            guard let head = tail.first else { return nil }
            let leaf = tail.dropFirst().joined(separator: ".")
            switch head {
            case "convolution": return "\(prefix).\(leaf)"
            case "normalization": return "\(prefix).norm.\(leaf)"
            default: return nil
            }
        }
        if p.starts(with: ["embedder", "embedder"]) { return convNorm("backbone.stem.conv1", p[2...]) }
        if p.count >= 7, p[0] == "encoder", p[1] == "stages", let s = Int(p[2]), p[3] == "layers", let i = Int(p[4]) {
            if p[5] == "shortcut" { return convNorm("backbone.res\(s + 2).\(i).shortcut", p[6...]) }
            if p[5] == "layer", p.count >= 8, let j = Int(p[6]) { return convNorm("backbone.res\(s + 2).\(i).conv\(j + 1)", p[7...]) }
        }
        return nil
    }
    // Pixel decoder.
    if p.starts(with: ["model", "pixel_level_module", "decoder"]) {
        p.removeFirst(3)
        let base = "sem_seg_head.pixel_decoder"
        switch p.first {
        case "input_projections": return p.count >= 4 ? "\(base).input_proj.\(rest(1))" : nil
        case "level_embed": return p.count == 1 ? "\(base).transformer.level_embed" : nil
        case "mask_projection": return "\(base).mask_features.\(rest(1))"
        case "adapter_1", "layer_1":
            // HF: Sequential(conv, GroupNorm[, ReLU]) → detectron2 Conv2d with `norm`.
            guard p.count == 3 else { return nil }
            if p[1] == "0" { return "\(base).\(p[0]).\(p[2])" }
            if p[1] == "1" { return "\(base).\(p[0]).norm.\(p[2])" }
            return nil
        case "encoder":
            guard p.count >= 5, p[1] == "layers", Int(p[2]) != nil else { return nil }
            let layer = "\(base).transformer.encoder.layers.\(p[2])"
            let renames = ["self_attn": "self_attn", "self_attn_layer_norm": "norm1", "fc1": "linear1",
                           "fc2": "linear2", "final_layer_norm": "norm2"]
            guard let mapped = renames[p[3]] else { return nil }
            return "\(layer).\(mapped).\(rest(4))"
        default: return nil
        }
    }
    // Transformer decoder.
    if p.starts(with: ["model", "transformer_module"]) {
        p.removeFirst(2)
        let base = "sem_seg_head.predictor"
        switch p.joined(separator: ".") {
        case "level_embed.weight": return "\(base).level_embed.weight"
        case "queries_embedder.weight": return "\(base).query_embed.weight"
        case "queries_features.weight": return "\(base).query_feat.weight"
        default: break
        }
        guard p.first == "decoder", p.count >= 3 else { return nil }
        if p[1] == "layernorm" { return "\(base).decoder_norm.\(rest(2))" }
        if p[1] == "mask_predictor", p.count == 6, p[2] == "mask_embedder", Int(p[3]) != nil, p[4] == "0" {
            return "\(base).mask_embed.layers.\(p[3]).\(p[5])"
        }
        if p[1] == "layers", p.count >= 5, let n = Int(p[2]) {
            let tail = rest(4)
            switch p[3] {
            case "cross_attn": return "\(base).transformer_cross_attention_layers.\(n).multihead_attn.\(tail)"
            case "cross_attn_layer_norm": return "\(base).transformer_cross_attention_layers.\(n).norm.\(tail)"
            case "self_attn" where p[4] == "out_proj": return "\(base).transformer_self_attention_layers.\(n).self_attn.\(tail)"
            case "self_attn_layer_norm": return "\(base).transformer_self_attention_layers.\(n).norm.\(tail)"
            case "fc1": return "\(base).transformer_ffn_layers.\(n).linear1.\(tail)"
            case "fc2": return "\(base).transformer_ffn_layers.\(n).linear2.\(tail)"
            case "final_layer_norm": return "\(base).transformer_ffn_layers.\(n).norm.\(tail)"
            default: return nil
            }
        }
        return nil
    }
    if p.first == "class_predictor", p.count == 2 { return "sem_seg_head.predictor.class_embed.\(p[1])" }
    return nil
}
