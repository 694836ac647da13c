// `maskpilot model export`: a MaskPilot model as an HF transformers `save_pretrained` folder (config.json,
// model.safetensors, preprocessor_config.json) that `Mask2FormerForUniversalSegmentation.from_pretrained` loads.
// The inverse of `importModel` for HF folders: config.json is what `applyHFConfig` reads, the weights are named by
// the table in Mask2FormerModel/HFNames.swift.
import Checkpoint
import Datasets
import Foundation
import Mask2FormerModel
import TensorCore

/// What an export wrote and left out.
public struct HFExportReport: Sendable {
    public var folder: String
    public var tensorCount: Int
    public var dropped: [(key: String, reason: String)]
    /// HF tensors written that ours lacks, and why.
    public var added: [(key: String, reason: String)]
}

/// The parts of `config.model` HF's Mask2Former cannot express, each named by key; empty when it can be exported.
public func hfExportProblems(_ config: MaskPilotConfig) -> [String] {
    let m = config.model
    var out: [String] = []
    if m.pixelDecoder.name != .msdeformattn { out.append("model.pixel_decoder.name \(m.pixelDecoder.name.rawValue): HF builds the MSDeformAttn pixel decoder only") }
    if m.pixelDecoder.convDim != m.decoder.hiddenDim {
        out.append("model.pixel_decoder.conv_dim \(m.pixelDecoder.convDim) ≠ model.decoder.hidden_dim \(m.decoder.hiddenDim): HF's feature_size and hidden_dim must agree without an input projection")
    }
    if m.pixelDecoder.maskDim != m.decoder.maskDim {
        out.append("model.pixel_decoder.mask_dim \(m.pixelDecoder.maskDim) ≠ model.decoder.mask_dim \(m.decoder.maskDim): HF has one mask_feature_size")
    }
    if m.pixelDecoder.encoderHeads != m.decoder.heads {
        out.append("model.pixel_decoder.encoder_heads \(m.pixelDecoder.encoderHeads) ≠ model.decoder.heads \(m.decoder.heads): HF has one num_attention_heads")
    }
    if m.pixelDecoder.encoderPoints != 4 { out.append("model.pixel_decoder.encoder_points \(m.pixelDecoder.encoderPoints): HF samples 4 points") }
    if m.pixelDecoder.groups != 32 { out.append("model.pixel_decoder.groups \(m.pixelDecoder.groups): HF's GroupNorm has 32 groups") }
    if m.decoder.featureLevels != 3 { out.append("model.decoder.feature_levels \(m.decoder.featureLevels): HF attends to 3 levels") }
    if m.backbone.name == .swin {
        let s = m.backbone.swin
        if !s.patchNorm { out.append("model.backbone.swin.patch_norm false: HF's Swin always normalizes the patch embedding") }
    }
    return out
}

/// HF `Mask2FormerConfig` JSON for `config` (the fields `applyHFConfig` reads back, and the ones HF needs to build the
/// same model); class names from `data.classes` when it names every class, else HF's `LABEL_k`.
public func hfConfigJSON(_ config: MaskPilotConfig) -> [String: Any] {
    let m = config.model, l = config.loss
    let stages = ["stem", "stage1", "stage2", "stage3", "stage4"]
    var backbone: [String: Any] = ["out_features": Array(stages.dropFirst()), "out_indices": [1, 2, 3, 4], "stage_names": stages,
                                   "num_channels": 3]
    switch m.backbone.name {
    case .swin:
        let s = m.backbone.swin
        backbone.merge(["model_type": "swin", "embed_dim": s.embedDim, "depths": s.depths, "num_heads": s.numHeads,
                        "window_size": s.windowSize, "mlp_ratio": s.mlpRatio, "qkv_bias": s.qkvBias, "drop_path_rate": s.dropPathRate,
                        "patch_size": s.patchSize, "use_absolute_embeddings": false, "hidden_act": "gelu", "layer_norm_eps": 1e-5,
                        "hidden_size": s.embedDim * 8, "num_layers": s.depths.count, "encoder_stride": 32,
                        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0]) { $1 }
    case .resnet:
        let r = m.backbone
        backbone.merge(["model_type": "resnet", "layer_type": r.block.rawValue, "depths": r.depths, "hidden_sizes": r.widths,
                        "embedding_size": r.stemChannels, "downsample_in_bottleneck": r.strideInReduction,
                        "downsample_in_first_stage": false, "hidden_act": "relu"]) { $1 }
    }
    let k = m.decoder.numClasses
    let names = config.data.classNames(numClasses: k) ?? (0..<k).map { "LABEL_\($0)" }
    return [
        "model_type": "mask2former", "architectures": ["Mask2FormerForUniversalSegmentation"], "backbone_config": backbone,
        "feature_size": m.pixelDecoder.convDim, "mask_feature_size": m.pixelDecoder.maskDim, "hidden_dim": m.decoder.hiddenDim,
        "encoder_feedforward_dim": m.pixelDecoder.encoderFeedforwardDim, "encoder_layers": m.pixelDecoder.encoderLayers,
        "decoder_layers": m.decoder.decLayers, "num_attention_heads": m.decoder.heads, "dim_feedforward": m.decoder.feedforwardDim,
        "num_queries": m.decoder.numQueries, "activation_function": "relu", "pre_norm": false, "enforce_input_projection": false,
        "common_stride": 4, "feature_strides": [4, 8, 16, 32], "dropout": 0.0, "ignore_value": 255,
        "no_object_weight": l.noObjectWeight, "class_weight": l.classWeight, "mask_weight": l.maskWeight, "dice_weight": l.diceWeight,
        "train_num_points": l.numPoints, "oversample_ratio": l.oversampleRatio, "importance_sample_ratio": l.importanceSampleRatio,
        "use_auxiliary_loss": true, "output_auxiliary_logits": true, "init_std": 0.02, "init_xavier_std": 1.0, "dtype": "float32",
        "id2label": Dictionary(uniqueKeysWithValues: names.enumerated().map { (String($0.offset), $0.element) }),
        "label2id": Dictionary(names.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a }),
    ]
}

/// HF `Mask2FormerImageProcessor` JSON: `model.pixel_mean` / `pixel_std` on HF's 0–1 scale, and the test-time resize
/// of the data format (`input.min_size_test` / `max_size_test` when set), padded to multiples of 32.
public func hfPreprocessorJSON(_ config: MaskPilotConfig) -> [String: Any] {
    let resize = TestTimeResize(config: config)
    return [
        "image_processor_type": "Mask2FormerImageProcessor", "do_resize": true,
        "size": ["shortest_edge": resize.shortEdge, "longest_edge": resize.maxSize], "size_divisor": 32, "resample": 2,
        "do_rescale": true, "rescale_factor": 1.0 / 255, "do_normalize": true,
        "image_mean": config.model.pixelMean.map { $0 / 255 }, "image_std": config.model.pixelStd.map { $0 / 255 },
        "ignore_index": 255, "do_reduce_labels": false, "num_labels": config.model.decoder.numClasses,
    ]
}

/// Writes `folder/config.json`, `model.safetensors` and `preprocessor_config.json` for the model of `config` with
/// the weights `weights` (every model tensor must be there). Refuses a configuration HF cannot express, naming keys.
public func exportHuggingFace(config: MaskPilotConfig, weights: String, to folder: String) throws -> HFExportReport {
    let problems = hfExportProblems(config)
    guard problems.isEmpty else {
        throw TrainingError("the model cannot be written as HF transformers' Mask2Former:\n  " + problems.joined(separator: "\n  "))
    }
    let model = try loadInferenceModel(config: config, weights: weights)
    let swinNorm = config.model.backbone.name == .swin ? config.model.backbone.swin.embedDim * 8 : nil
    var stateDict = model.stateDict(layout: .pytorch)
    var added: [(key: String, reason: String)] = []
    let d = config.model.decoder
    if !d.queryPositionalEmbedding {
        // HF's decoder always adds a learned query position (queries_embedder); zeros add nothing, as ours without one.
        stateDict.append(("sem_seg_head.predictor.query_embed.weight", Tensor([Float](repeating: 0, count: d.numQueries * d.hiddenDim),
                                                                          shape: [d.numQueries, d.hiddenDim])))
        added.append(("model.transformer_module.queries_embedder.weight",
                      "model.decoder.query_positional_embedding is false: written as zeros for HF's queries_embedder (the same outputs)"))
    }
    let exported: (tensors: [(String, Tensor)], dropped: [(key: String, reason: String)])
    do {
        exported = try exportHuggingFaceMask2Former(stateDict, numClasses: d.numClasses,
                                                    noObjectWeight: Float(config.loss.noObjectWeight), swinFinalNorm: swinNorm)
    } catch let e as HFImportError { throw TrainingError("\(weights): \(e.description)") }
    do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
        throw TrainingError("\(folder): cannot create the folder: \(error.localizedDescription)")
    }
    func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
    // HF's ResNet uses BatchNorm2d, whose batch counter from_pretrained expects; ours are frozen (never counted).
    let counters = exported.tensors.compactMap { name, _ -> (String, Int64)? in
        name.hasSuffix(".normalization.running_mean") ? (String(name.dropLast("running_mean".count)) + "num_batches_tracked", 0) : nil
    }
    try writeSafeTensors(exported.tensors, int64Scalars: counters, to: path("model.safetensors"))
    for (name, object) in [("config.json", hfConfigJSON(config)), ("preprocessor_config.json", hfPreprocessorJSON(config))] {
        let data = Data(typedJSONText(object).utf8)
        try writeAtomically(to: path(name)) { tmp in
            do { try data.write(to: URL(fileURLWithPath: tmp)) } catch {
                throw TrainingError("\(tmp): cannot write: \(error.localizedDescription)")
            }
        }
    }
    return HFExportReport(folder: folder, tensorCount: exported.tensors.count + counters.count, dropped: exported.dropped, added: added)
}

/// `value` (dictionaries, arrays, String, Bool, Int, Double) as indented JSON with sorted keys, every Double written
/// with a fraction or exponent (`2.0`, not `2`): transformers 5 validates config fields by type, and a float field
/// read as an int is refused. Foundation's JSONSerialization drops the `.0`.
func typedJSONText(_ value: Any, indent: String = "") -> String {
    let inner = indent + "  "
    switch value {
    case let map as [String: Any]:
        if map.isEmpty { return "{}" }
        let items = map.keys.sorted().map { "\(inner)\(typedJSONText($0)): \(typedJSONText(map[$0]!, indent: inner))" }
        return "{\n" + items.joined(separator: ",\n") + "\n\(indent)}"
    case let list as [Any]:
        if list.isEmpty { return "[]" }
        return "[" + list.map { typedJSONText($0, indent: inner) }.joined(separator: ", ") + "]"
    case let b as Bool: return b ? "true" : "false"
    case let i as Int: return String(i)
    case let i as Int64: return String(i)
    case let f as Float: return typedJSONText(Double(f), indent: indent)
    case let d as Double:
        let text = "\(d)"   // Swift's shortest round-trip form: 2.0, 0.1, 1e-05
        return d.isFinite ? text : "null"
    case let s as String:
        let data = (try? JSONSerialization.data(withJSONObject: s, options: [.fragmentsAllowed])) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    case let n as NSNumber: return typedJSONText(n.doubleValue, indent: indent)
    default: return "null"   // NSNull, and nothing else the export writes
    }
}
