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
        if let (name, slot) = translateHFName(key) {
            if let slot {
                packed[name, default: [:]][slot] = tensor
                packedSources[name, default: []].append(key)
            } else {
                out[name] = tensor
            }
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
