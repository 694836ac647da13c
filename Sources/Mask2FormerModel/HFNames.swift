// The naming rules between HuggingFace transformers' Mask2Former state dict (as `save_pretrained` writes it) and ours
// (detectron2's), one table read both ways: `model import` translates HF → ours, `model export` ours → HF.
// Corresponds to transformers' convert_mask2former_original_pytorch_checkpoint_to_pytorch.py and its Swin/ResNet
// key layouts.
import Foundation
import TensorCore

/// One segment of a name pattern: literal text, optionally ending in a capture — `{x}` or `{leaf}` any text, `{x*}`
/// the rest of the name (one or more segments; last segment only), any other name a whole number, `{s+2}` one
/// stored 2 lower than written (`res{s+2}` ↔ `stages.{s}`).
private struct NameSegment {
    enum Capture { case none, number(String, offset: Int), text(String), rest(String) }
    let literal: String
    let capture: Capture

    init(_ text: Substring) {
        guard let open = text.firstIndex(of: "{"), text.last == "}" else { literal = String(text); capture = .none; return }
        literal = String(text[..<open])
        let inner = text[text.index(after: open)..<text.index(before: text.endIndex)]
        if inner.hasSuffix("*") { capture = .rest(String(inner.dropLast())); return }
        if let plus = inner.firstIndex(where: { $0 == "+" || $0 == "-" }), let k = Int(inner[plus...]) {
            capture = .number(String(inner[..<plus]), offset: k)
        } else if inner == "x" || inner == "leaf" {
            capture = .text(String(inner))
        } else {
            capture = .number(String(inner), offset: 0)
        }
    }
}

/// A dotted name pattern (`backbone.res{s+2}.{i}.conv{j+1}.{leaf}`).
private struct NamePattern {
    let segments: [NameSegment]
    init(_ text: String) { segments = text.split(separator: ".", omittingEmptySubsequences: false).map(NameSegment.init) }

    /// The captures of `name` when it matches (numbers stored without their offsets), else nil.
    func match(_ name: [Substring]) -> [String: String]? {
        var values: [String: String] = [:]
        var i = 0
        for (k, seg) in segments.enumerated() {
            if case .rest(let key) = seg.capture {
                guard k == segments.count - 1, i < name.count, seg.literal.isEmpty else { return nil }
                values[key] = name[i...].joined(separator: ".")
                return values
            }
            guard i < name.count, name[i].hasPrefix(seg.literal) else { return nil }
            let tail = name[i].dropFirst(seg.literal.count)
            switch seg.capture {
            case .none: guard tail.isEmpty else { return nil }
            case .text(let key):
                guard !tail.isEmpty, values[key].map({ $0 == tail }) ?? true else { return nil }
                values[key] = String(tail)
            case .number(let key, let offset):
                // An index (a layer, a stage) is small: a huge one in a file's tensor name matches nothing, so it
                // cannot overflow here or in `fill`.
                guard !tail.isEmpty, tail.count <= 9, tail.allSatisfy(\.isASCII), tail.allSatisfy(\.isNumber), let v = Int(tail), v - offset >= 0
                else { return nil }
                let stored = String(v - offset)
                guard values[key].map({ $0 == stored }) ?? true else { return nil }
                values[key] = stored
            case .rest: return nil
            }
            i += 1
        }
        return i == name.count ? values : nil
    }

    /// The name with `values` filled in (offsets applied).
    func fill(_ values: [String: String]) -> String {
        segments.map { seg -> String in
            switch seg.capture {
            case .none: return seg.literal
            case .text(let key), .rest(let key): return seg.literal + values[key]!
            case .number(let key, let offset): return seg.literal + String(Int(values[key]!)! + offset)
            }
        }.joined(separator: ".")
    }
}

/// One rule: an HF name and ours; `slots` (q, k, v in order) when one of our tensors is HF's three stacked by rows —
/// the HF pattern's `{x}` segment then takes the slot's name.
private struct HFNameRule {
    let hf: NamePattern, ours: NamePattern
    let slots: [String]
    init(_ hf: String, _ ours: String, slots: [String] = []) { self.hf = NamePattern(hf); self.ours = NamePattern(ours); self.slots = slots }
}

private let hfBackbone = "model.pixel_level_module.encoder"
private let hfPixelDecoder = "model.pixel_level_module.decoder"
private let hfDecoder = "model.transformer_module"
private let pixelDecoder = "sem_seg_head.pixel_decoder"
private let predictor = "sem_seg_head.predictor"

/// The rules, in the on-disk names of `save_pretrained` (transformers 4, and 5 which converts back to them on save).
private let hfNameRules: [HFNameRule] = [
    // ResNet backbone: embedder → stem.conv1; stages.s.layers.i.layer.j → res(s+2).i.conv(j+1).
    HFNameRule("\(hfBackbone).embedder.embedder.convolution.{leaf}", "backbone.stem.conv1.{leaf}"),
    HFNameRule("\(hfBackbone).embedder.embedder.normalization.{leaf}", "backbone.stem.conv1.norm.{leaf}"),
    HFNameRule("\(hfBackbone).encoder.stages.{s}.layers.{i}.shortcut.convolution.{leaf}", "backbone.res{s+2}.{i}.shortcut.{leaf}"),
    HFNameRule("\(hfBackbone).encoder.stages.{s}.layers.{i}.shortcut.normalization.{leaf}", "backbone.res{s+2}.{i}.shortcut.norm.{leaf}"),
    HFNameRule("\(hfBackbone).encoder.stages.{s}.layers.{i}.layer.{j}.convolution.{leaf}", "backbone.res{s+2}.{i}.conv{j+1}.{leaf}"),
    HFNameRule("\(hfBackbone).encoder.stages.{s}.layers.{i}.layer.{j}.normalization.{leaf}", "backbone.res{s+2}.{i}.conv{j+1}.norm.{leaf}"),
    // Swin backbone.
    HFNameRule("\(hfBackbone).embeddings.patch_embeddings.projection.{leaf}", "backbone.patch_embed.proj.{leaf}"),
    HFNameRule("\(hfBackbone).embeddings.norm.{leaf}", "backbone.patch_embed.norm.{leaf}"),
    HFNameRule("\(hfBackbone).hidden_states_norms.stage{k+1}.{leaf}", "backbone.norm{k}.{leaf}"),
    HFNameRule("\(hfBackbone).encoder.layers.{s}.downsample.reduction.{leaf}", "backbone.layers.{s}.downsample.reduction.{leaf}"),
    HFNameRule("\(hfBackbone).encoder.layers.{s}.downsample.norm.{leaf}", "backbone.layers.{s}.downsample.norm.{leaf}"),
    HFNameRule("\(hfBackbone).encoder.layers.{s}.blocks.{b}.layernorm_before.{leaf}", "backbone.layers.{s}.blocks.{b}.norm1.{leaf}"),
    HFNameRule("\(hfBackbone).encoder.layers.{s}.blocks.{b}.layernorm_after.{leaf}", "backbone.layers.{s}.blocks.{b}.norm2.{leaf}"),
    HFNameRule("\(hfBackbone).encoder.layers.{s}.blocks.{b}.attention.self.relative_position_bias_table",
               "backbone.layers.{s}.blocks.{b}.attn.relative_position_bias_table"),
    HFNameRule("\(hfBackbone).encoder.layers.{s}.blocks.{b}.attention.self.{x}.{leaf}", "backbone.layers.{s}.blocks.{b}.attn.qkv.{leaf}",
               slots: ["query", "key", "value"]),
    HFNameRule("\(hfBackbone).encoder.layers.{s}.blocks.{b}.attention.output.dense.{leaf}", "backbone.layers.{s}.blocks.{b}.attn.proj.{leaf}"),
    HFNameRule("\(hfBackbone).encoder.layers.{s}.blocks.{b}.intermediate.dense.{leaf}", "backbone.layers.{s}.blocks.{b}.mlp.fc1.{leaf}"),
    HFNameRule("\(hfBackbone).encoder.layers.{s}.blocks.{b}.output.dense.{leaf}", "backbone.layers.{s}.blocks.{b}.mlp.fc2.{leaf}"),
    // Pixel decoder: HF's Sequential(conv, GroupNorm) → detectron2's Conv2d with `norm`.
    HFNameRule("\(hfPixelDecoder).input_projections.{x*}", "\(pixelDecoder).input_proj.{x*}"),
    HFNameRule("\(hfPixelDecoder).level_embed", "\(pixelDecoder).transformer.level_embed"),
    HFNameRule("\(hfPixelDecoder).mask_projection.{leaf}", "\(pixelDecoder).mask_features.{leaf}"),
    HFNameRule("\(hfPixelDecoder).adapter_1.0.{leaf}", "\(pixelDecoder).adapter_1.{leaf}"),
    HFNameRule("\(hfPixelDecoder).adapter_1.1.{leaf}", "\(pixelDecoder).adapter_1.norm.{leaf}"),
    HFNameRule("\(hfPixelDecoder).layer_1.0.{leaf}", "\(pixelDecoder).layer_1.{leaf}"),
    HFNameRule("\(hfPixelDecoder).layer_1.1.{leaf}", "\(pixelDecoder).layer_1.norm.{leaf}"),
    HFNameRule("\(hfPixelDecoder).encoder.layers.{n}.self_attn.{x*}", "\(pixelDecoder).transformer.encoder.layers.{n}.self_attn.{x*}"),
    HFNameRule("\(hfPixelDecoder).encoder.layers.{n}.self_attn_layer_norm.{leaf}", "\(pixelDecoder).transformer.encoder.layers.{n}.norm1.{leaf}"),
    HFNameRule("\(hfPixelDecoder).encoder.layers.{n}.fc1.{leaf}", "\(pixelDecoder).transformer.encoder.layers.{n}.linear1.{leaf}"),
    HFNameRule("\(hfPixelDecoder).encoder.layers.{n}.fc2.{leaf}", "\(pixelDecoder).transformer.encoder.layers.{n}.linear2.{leaf}"),
    HFNameRule("\(hfPixelDecoder).encoder.layers.{n}.final_layer_norm.{leaf}", "\(pixelDecoder).transformer.encoder.layers.{n}.norm2.{leaf}"),
    // Transformer decoder.
    HFNameRule("\(hfDecoder).level_embed.weight", "\(predictor).level_embed.weight"),
    HFNameRule("\(hfDecoder).queries_embedder.weight", "\(predictor).query_embed.weight"),
    HFNameRule("\(hfDecoder).queries_features.weight", "\(predictor).query_feat.weight"),
    HFNameRule("\(hfDecoder).decoder.layernorm.{leaf}", "\(predictor).decoder_norm.{leaf}"),
    HFNameRule("\(hfDecoder).decoder.mask_predictor.mask_embedder.{n}.0.{leaf}", "\(predictor).mask_embed.layers.{n}.{leaf}"),
    HFNameRule("\(hfDecoder).decoder.layers.{n}.cross_attn.{x*}", "\(predictor).transformer_cross_attention_layers.{n}.multihead_attn.{x*}"),
    HFNameRule("\(hfDecoder).decoder.layers.{n}.cross_attn_layer_norm.{leaf}", "\(predictor).transformer_cross_attention_layers.{n}.norm.{leaf}"),
    HFNameRule("\(hfDecoder).decoder.layers.{n}.self_attn.{x}.{leaf}", "\(predictor).transformer_self_attention_layers.{n}.self_attn.in_proj_{leaf}",
               slots: ["q_proj", "k_proj", "v_proj"]),
    HFNameRule("\(hfDecoder).decoder.layers.{n}.self_attn.out_proj.{leaf}", "\(predictor).transformer_self_attention_layers.{n}.self_attn.out_proj.{leaf}"),
    HFNameRule("\(hfDecoder).decoder.layers.{n}.self_attn_layer_norm.{leaf}", "\(predictor).transformer_self_attention_layers.{n}.norm.{leaf}"),
    HFNameRule("\(hfDecoder).decoder.layers.{n}.fc1.{leaf}", "\(predictor).transformer_ffn_layers.{n}.linear1.{leaf}"),
    HFNameRule("\(hfDecoder).decoder.layers.{n}.fc2.{leaf}", "\(predictor).transformer_ffn_layers.{n}.linear2.{leaf}"),
    HFNameRule("\(hfDecoder).decoder.layers.{n}.final_layer_norm.{leaf}", "\(predictor).transformer_ffn_layers.{n}.norm.{leaf}"),
    HFNameRule("class_predictor.{leaf}", "\(predictor).class_embed.{leaf}"),
]

/// transformers 5's in-memory Swin names → the on-disk ones the rules use: the `swin.` level under the encoder,
/// `attention.{q,k,v}_proj` → `attention.self.{query,key,value}`, `attention.o_proj` → `attention.output.dense`,
/// `mlp.fc1`/`fc2` → `intermediate.dense`/`output.dense`, the bias table's own module → `attention.self`.
private func onDiskHFName(_ key: String) -> String {
    let swin = "\(hfBackbone).swin."
    guard key.hasPrefix(swin) || key.contains(".blocks.") else { return key }
    var k = key.hasPrefix(swin) ? "\(hfBackbone)." + key.dropFirst(swin.count) : key
    for (from, to) in [(".attention.q_proj.", ".attention.self.query."), (".attention.k_proj.", ".attention.self.key."),
                       (".attention.v_proj.", ".attention.self.value."), (".attention.o_proj.", ".attention.output.dense."),
                       (".mlp.fc1.", ".intermediate.dense."), (".mlp.fc2.", ".output.dense."),
                       (".attention.relative_position_bias.relative_position_bias_table", ".attention.self.relative_position_bias_table")] {
        k = k.replacingOccurrences(of: from, with: to)
    }
    return k
}

/// An HF key → (our key, the row block 0/1/2 it fills when ours stacks q, k, v; nil otherwise), or nil when no rule
/// maps it. Both transformers generations' Swin names are read.
func translateHFName(_ key: String) -> (name: String, slot: Int?)? {
    let parts = onDiskHFName(key).split(separator: ".", omittingEmptySubsequences: false)
    for rule in hfNameRules {
        guard var values = rule.hf.match(parts) else { continue }
        if rule.slots.isEmpty { return (rule.ours.fill(values), nil) }
        guard let slot = rule.slots.firstIndex(of: values["x"] ?? "") else { continue }
        values["x"] = nil
        return (rule.ours.fill(values), slot)
    }
    return nil
}

/// Our key → its HF key(s), as `save_pretrained` writes them: one, or three (q, k, v: our tensor's row blocks in
/// order) for a stacked projection; nil when no rule maps it.
public func hfNames(ofOurs key: String) -> [String]? {
    let parts = key.split(separator: ".", omittingEmptySubsequences: false)
    for rule in hfNameRules {
        guard var values = rule.ours.match(parts) else { continue }
        if rule.slots.isEmpty { return [rule.hf.fill(values)] }
        return rule.slots.map { slot in values["x"] = slot; return rule.hf.fill(values) }
    }
    return nil
}

/// A MaskPilot state dict (ours, PyTorch layout) in HF transformers' Mask2Former names, as `save_pretrained` writes
/// them: stacked q/k/v projections split into HF's three, plus the tensors HF's model holds that ours computes
/// (`criterion.empty_weight`: ones with `noObjectWeight` last; with `swinFinalNorm` channels, the final layer norm of
/// HF's SwinModel, unused by the backbone, at its initial ones and zeros). `dropped` names ours that HF's model has no
/// place for, with why (MP-Former's label embedding, used in training only).
public func exportHuggingFaceMask2Former(_ stateDict: [(String, Tensor)], numClasses: Int, noObjectWeight: Float,
                                         swinFinalNorm: Int?) throws -> (tensors: [(String, Tensor)], dropped: [(key: String, reason: String)]) {
    var out: [(String, Tensor)] = [], dropped: [(key: String, reason: String)] = []
    for (name, t) in stateDict {
        guard let names = hfNames(ofOurs: name) else {
            if name.hasPrefix("\(predictor).label_enc.") {
                dropped.append((name, "MP-Former's ground-truth label embedding: used in training only, HF's Mask2Former has none"))
                continue
            }
            throw HFImportError(description: "\(name) \(t.shape) has no HF transformers counterpart")
        }
        if names.count == 1 { out.append((names[0], t)); continue }
        guard t.rank >= 1, t.shape[0] % names.count == 0 else {
            throw HFImportError(description: "\(name) \(t.shape) cannot be split into \(names.count) equal row blocks for \(names.joined(separator: ", "))")
        }
        let rows = t.shape[0] / names.count
        for (k, hf) in names.enumerated() { out.append((hf, withNoGrad { t.slice(axis: 0, k * rows ..< (k + 1) * rows) })) }
    }
    var weights = [Float](repeating: 1, count: numClasses + 1)
    weights[numClasses] = noObjectWeight
    out.append(("criterion.empty_weight", Tensor(weights, shape: [numClasses + 1])))
    if let c = swinFinalNorm {
        out.append(("\(hfBackbone).swin.layernorm.weight", Tensor([Float](repeating: 1, count: c), shape: [c])))
        out.append(("\(hfBackbone).swin.layernorm.bias", Tensor([Float](repeating: 0, count: c), shape: [c])))
    }
    return (out, dropped)
}
