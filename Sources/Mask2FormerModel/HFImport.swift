// Maps HuggingFace-transformers Mask2Former parameter names onto the reference (detectron2) names we use.
// Corresponds to transformers' convert_mask2former_original_pytorch_checkpoint_to_pytorch.py, run backwards.
import TensorCore

/// The outcome of translating an HF `state_dict`: tensors under our names (PyTorch layout), the HF keys no rule
/// maps (every one of them is reported, none silently dropped), and the keys deliberately left out with the reason
/// (tensors the reference computes or never uses).
public struct HFImportResult {
    public var tensors: [String: Tensor]
    public var unmapped: [String]
    public var ignored: [(key: String, reason: String)] = []
}

/// HF tensors that cannot be translated: a q/k/v triple whose pieces cannot be stacked into one projection.
public struct HFImportError: Error, CustomStringConvertible {
    public let description: String
}

/// Translates HF Mask2Former keys (`model.pixel_level_module…`, `model.transformer_module…`,
/// `class_predictor…`) to detectron2/Mask2Former keys (`backbone…`, `sem_seg_head.pixel_decoder…`,
/// `sem_seg_head.predictor…`), for an HF ResNet or Swin backbone, in transformers 4 and 5 naming. HF's separate
/// query/key/value projections are packed (rows q, k, v) into the decoder self-attention's
/// `in_proj_weight`/`in_proj_bias` (as `nn.MultiheadAttention` stores them) and into Swin's `attn.qkv`.
/// Throws `HFImportError` naming the keys and shapes when a q/k/v triple's pieces differ in rank, are scalars, or
/// differ outside their first axis.
public func importHuggingFaceMask2Former(_ source: [String: Tensor]) throws -> HFImportResult {
    var out: [String: Tensor] = [:]
    var unmapped: [String] = []
    var ignored: [(key: String, reason: String)] = []
    var packed: [String: [Int: Tensor]] = [:]   // our packed key → slot (0 q, 1 k, 2 v) → tensor
    var packedSources: [String: [String]] = [:]

    for (key, tensor) in source {
        if let name = translateHFKey(key) {
            out[name] = tensor
        } else if let (target, slot) = packedHFKey(key) {
            packed[target, default: [:]][slot] = tensor
            packedSources[target, default: []].append(key)
        } else if let reason = ignoredHFKey(key) {
            ignored.append((key, reason))
        } else {
            unmapped.append(key)
        }
    }
    for (target, pieces) in packed.sorted(by: { $0.key < $1.key }) {
        if pieces.count == 3 {
            let triple = [pieces[0]!, pieces[1]!, pieces[2]!]
            let shape = triple[0].shape
            guard !shape.isEmpty, triple.allSatisfy({ $0.shape.count == shape.count && $0.shape.dropFirst() == shape.dropFirst() })
            else {
                let shapes = packedSources[target, default: []].sorted().map { key in "\(key) \(source[key]?.shape ?? [])" }
                throw HFImportError(description: "the query/key/value projections cannot be stacked into \(target): "
                                    + shapes.joined(separator: ", ") + " (they must have the same shape after their first axis)")
            }
            out[target] = withNoGrad { Tensor.concat(triple, axis: 0) }
        } else {
            unmapped += packedSources[target, default: []].sorted().map { "\($0) (the other projections of its q/k/v triple are missing)" }
        }
    }
    return HFImportResult(tensors: out, unmapped: unmapped.sorted(), ignored: ignored.sorted { $0.key < $1.key })
}

/// An HF query/key/value projection → (our packed key, row block 0/1/2), or nil.
func packedHFKey(_ key: String) -> (String, Int)? {
    let p = key.split(separator: ".").map(String.init)
    guard let kind = p.last, kind == "weight" || kind == "bias" else { return nil }
    // Decoder self-attention: model.transformer_module.decoder.layers.N.self_attn.{q,k,v}_proj.{weight,bias}
    if p.count == 8, p[0] == "model", p[1] == "transformer_module", p[2] == "decoder", p[3] == "layers",
       Int(p[4]) != nil, p[5] == "self_attn", let slot = ["q_proj", "k_proj", "v_proj"].firstIndex(of: p[6]) {
        return ("sem_seg_head.predictor.transformer_self_attention_layers.\(p[4]).self_attn.in_proj_\(kind)", slot)
    }
    // Swin: …layers.S.blocks.B.attention.{q_proj,k_proj,v_proj} (transformers 5) or .attention.self.{query,key,value} (4).
    if let (s, b, tail) = swinBlock(p), tail.count == 3 || tail.count == 4, tail[0] == "attention" {
        let slot = tail.count == 3 ? ["q_proj", "k_proj", "v_proj"].firstIndex(of: tail[1])
                                   : (tail[1] == "self" ? ["query", "key", "value"].firstIndex(of: tail[2]) : nil)
        if let slot { return ("backbone.layers.\(s).blocks.\(b).attn.qkv.\(kind)", slot) }
    }
    return nil
}

/// HF keys with no counterpart by design, and why.
public func ignoredHFKey(_ key: String) -> String? {
    if key.hasSuffix(".relative_position_index") {
        return "Swin's relative position index: derived from the window size, not a weight"
    }
    if key.hasSuffix("num_batches_tracked") { return "BatchNorm's batch counter: unused in eval-mode (frozen) BN" }
    if key == "criterion.empty_weight" { return "the loss's class weights, not a model tensor (set by loss.no_object_weight)" }
    let p = key.split(separator: ".").map(String.init)
    if let rest = hfBackbonePath(p), rest.first == "layernorm" {
        return "HF SwinModel's final layer norm: the backbone's outputs go through hidden_states_norms instead"
    }
    return nil
}

/// The part of an HF backbone key after `model.pixel_level_module.encoder.` (and transformers 5's `swin.`).
private func hfBackbonePath(_ p: [String]) -> ArraySlice<String>? {
    guard p.starts(with: ["model", "pixel_level_module", "encoder"]) else { return nil }
    let rest = p.dropFirst(3)
    return rest.first == "swin" ? rest.dropFirst() : rest
}

/// (stage, block, rest) of an HF Swin block key `…encoder.layers.S.blocks.B.<rest>`.
private func swinBlock(_ p: [String]) -> (Int, Int, [String])? {
    guard let rest = hfBackbonePath(p), rest.count >= 6 else { return nil }
    let r = Array(rest)
    guard r[0] == "encoder", r[1] == "layers", let s = Int(r[2]), r[3] == "blocks", let b = Int(r[4]) else { return nil }
    return (s, b, Array(r[5...]))
}

/// One HF Swin backbone key → ours (`backbone.patch_embed…`, `backbone.layers.S.blocks.B…`, `backbone.normK…`).
func translateHFSwinKey(_ p: [String]) -> String? {
    guard let rest = hfBackbonePath(p) else { return nil }
    let r = Array(rest)
    let leaf = r.last ?? ""
    if r.count == 4, r[0] == "embeddings", r[1] == "patch_embeddings", r[2] == "projection" { return "backbone.patch_embed.proj.\(leaf)" }
    if r.count == 3, r[0] == "embeddings", r[1] == "norm" { return "backbone.patch_embed.norm.\(leaf)" }
    if r.count == 3, r[0] == "hidden_states_norms", r[1].hasPrefix("stage"), let k = Int(r[1].dropFirst(5)), k >= 1 {
        return "backbone.norm\(k - 1).\(leaf)"
    }
    if r.count == 6, r[0] == "encoder", r[1] == "layers", let s = Int(r[2]), r[3] == "downsample", ["reduction", "norm"].contains(r[4]) {
        return "backbone.layers.\(s).downsample.\(r[4]).\(leaf)"
    }
    guard let (s, b, tail) = swinBlock(p) else { return nil }
    let block = "backbone.layers.\(s).blocks.\(b)"
    switch tail.dropLast().joined(separator: ".") {
    case "layernorm_before": return "\(block).norm1.\(leaf)"
    case "layernorm_after": return "\(block).norm2.\(leaf)"
    case "attention.relative_position_bias" where leaf == "relative_position_bias_table",
         "attention.self" where leaf == "relative_position_bias_table":
        return "\(block).attn.relative_position_bias_table"
    case "attention.o_proj", "attention.output.dense": return "\(block).attn.proj.\(leaf)"
    case "mlp.fc1", "intermediate.dense": return "\(block).mlp.fc1.\(leaf)"
    case "mlp.fc2", "output.dense": return "\(block).mlp.fc2.\(leaf)"
    default: return nil
    }
}

/// One HF key → our key, or nil when no one-to-one rule applies.
func translateHFKey(_ key: String) -> String? {
    var p = key.split(separator: ".").map(String.init)
    func rest(_ from: Int) -> String { p[from...].joined(separator: ".") }
    if let swin = translateHFSwinKey(p) { return swin }
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
