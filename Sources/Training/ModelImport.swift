// `maskpilot model import`: weights from an HF transformers `save_pretrained` folder, a `.safetensors` file, a
// detectron2 model-zoo `.pkl` (Mask2Former / MP-Former checkpoints, ImageNet ResNet and Swin backbones) or a PyTorch
// `.pth`/`.bin`, translated to MaskPilot's names and checked against the model they are for.
// Corresponds to detectron2's checkpointer with its matching heuristics and to HF's from_pretrained, made explicit:
// every source key is mapped onto a parameter or reported (ignored with its reason, or unused).
import Checkpoint
import Datasets
import Foundation
import Mask2FormerModel
import NN
import TensorCore

/// What an import found, key by key.
public struct ModelImportReport: CustomStringConvertible {
    public var source: String
    /// The files the tensors came from.
    public var files: [String]
    /// Model keys filled from the source.
    public var loaded: [String]
    /// Model keys the source does not have (they keep their initialization when the weights are used).
    public var missing: [String]
    /// Source keys left out on purpose, with the reason.
    public var ignored: [(key: String, reason: String)]
    /// Source keys that match no model key and no rule.
    public var unused: [String]
    /// Where the model configuration came from.
    public var configSource: String

    public var description: String {
        var lines = ["import: \(source) (\(files.joined(separator: ", "))): \(loaded.count) tensor(s) mapped onto the model "
                     + "(configuration from \(configSource)), \(missing.count) missing, \(ignored.count) ignored, \(unused.count) unused"]
        lines += ignored.map { "import:   ignored: \($0.key) — \($0.reason)" }
        lines += missing.map { "import:   missing: \($0) (keeps its initialization)" }
        lines += unused.map { "import:   unused:  \($0) (no parameter of this name)" }
        return lines.joined(separator: "\n")
    }
}

/// An import's outcome: the configuration, the model's tensors found in the source (PyTorch layout, state-dict order)
/// and the report.
public struct ModelImport {
    public var config: MaskPilotConfig
    public var tensors: [(String, Tensor)]
    public var report: ModelImportReport
}

/// Imports `path` (see the file comment). `config`: the MaskPilot configuration to check against; nil takes it from
/// an HF folder's `config.json` (other sources then need one). `python`: the interpreter for pickles (numpy + h5py);
/// `tools`: the folder holding `convert_pkl_to_h5.py`.
public func importModel(from path: String, config given: MaskPilotConfig?, python: String = "python3",
                        tools: String? = nil) throws -> ModelImport {
    let fm = FileManager.default
    var isDirectory: ObjCBool = false
    guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { throw TrainingError("\(path): no such file or folder") }
    var files: [String] = []
    var hfConfig: [String: Any]?
    var hfNormalization: (file: String, value: PixelNormalization)?
    if isDirectory.boolValue {
        let configPath = (path as NSString).appendingPathComponent("config.json")
        if fm.fileExists(atPath: configPath) { hfConfig = try readJSONObject(configPath) }
        files = try weightFiles(inFolder: path)
        let preprocessor = (path as NSString).appendingPathComponent("preprocessor_config.json")
        if fm.fileExists(atPath: preprocessor) { hfNormalization = (preprocessor, try hfInputNormalization(preprocessor)) }
    } else {
        files = [path]
    }

    // Raw tensors, then our names.
    var raw: [(String, Tensor)] = []
    var notes: [(key: String, reason: String)] = []
    for file in files {
        let (tensors, skipped) = try readWeightFile(file, python: python, tools: tools)
        raw += tensors
        notes += skipped.map { ($0, "not a float tensor") }
    }
    var seen = Set<String>()
    for (name, _) in raw where !seen.insert(name).inserted {
        throw TrainingError("\(path): the tensor \(name) appears twice (in \(files.count) file(s))")
    }
    let isHF = raw.contains { $0.0.hasPrefix("model.pixel_level_module.") || $0.0.hasPrefix("model.transformer_module.") || $0.0.hasPrefix("class_predictor.") }
    var named: [String: Tensor] = [:]
    var unused: [String] = []
    if isHF {
        let imported: HFImportResult
        do { imported = try importHuggingFaceMask2Former(Dictionary(raw, uniquingKeysWith: { a, _ in a })) }
        catch { throw TrainingError("\(path): \(error)") }
        named = imported.tensors
        notes += imported.ignored
        unused += imported.unmapped
    } else {
        for (name, tensor) in raw {
            if let reason = ignoredImportKey(name) { notes.append((name, reason)) } else { named[name] = tensor }
        }
    }

    // The model the tensors are for.
    var config: MaskPilotConfig
    var configSource: String
    if let given {
        config = given
        configSource = "the given configuration"
        if let (file, theirs) = hfNormalization, !config.model.pixelNormalization.isClose(to: theirs) {
            throw TrainingError("\(file): the model was trained on pixels normalized with mean \(decimals(theirs.mean)) and std "
                                + "\(decimals(theirs.std)) (0–255 scale), but the given configuration has model.pixel_mean "
                                + "\(decimals(config.model.pixelMean)) and model.pixel_std \(decimals(config.model.pixelStd)); set "
                                + "them to the model's values (its predictions would be off), so the import stops")
        }
    } else if let hfConfig {
        config = MaskPilotConfig()
        try applyHFConfig(hfConfig, to: &config, file: (path as NSString).appendingPathComponent("config.json"))
        configSource = "config.json"
        if let (_, theirs) = hfNormalization, !PixelNormalization.mask2former.isClose(to: theirs) {
            // Statistics other than ImageNet's (which keep the exact defaults): model.pixel_mean / pixel_std.
            func round6(_ x: Double) -> Double { (x * 1e6).rounded() / 1e6 }
            config.model.pixelMean = theirs.mean.map(round6)
            config.model.pixelStd = theirs.std.map(round6)
            configSource += " and preprocessor_config.json (model.pixel_mean \(decimals(config.model.pixelMean)), "
                + "model.pixel_std \(decimals(config.model.pixelStd)))"
        }
    } else {
        throw TrainingError("\(path): no HF config.json to take the model from; give --config (the MaskPilot configuration "
                            + "these weights are for)")
    }
    var problems = config.violations()
    if problems.isEmpty { problems = config.inferenceViolations() }
    guard problems.isEmpty else {
        throw TrainingError("\(configSource): " + problems.map { "\($0.key): \($0.problem)" }.joined(separator: "; "))
    }
    var rng = RNG(seed: config.seed)
    let model = Mask2Former(config.model, rng: &rng)
    let expected = model.stateDict(layout: .pytorch)
    var tensors: [(String, Tensor)] = []
    var missing: [String] = []
    var misshaped: [String] = []
    for (key, ours) in expected {
        guard let t = named.removeValue(forKey: key) else { missing.append(key); continue }
        if t.shape != ours.shape { misshaped.append("\(key): the source has \(t.shape), the model \(ours.shape)"); continue }
        tensors.append((key, t))
    }
    unused += named.keys
    guard misshaped.isEmpty else {
        throw TrainingError("\(path): \(misshaped.count) tensor(s) have another shape than the model's (configuration from "
                            + "\(configSource)): " + misshaped.prefix(5).joined(separator: "; "))
    }
    guard !tensors.isEmpty else {
        let theirs = raw.prefix(3).map { "'\($0.0)'" }.joined(separator: ", ")
        throw TrainingError("\(path): none of its \(raw.count) tensor(s) maps onto a parameter of the model (the source has "
                            + "\(theirs)…; the model has '\(expected.first?.0 ?? "")'…): another model or naming")
    }
    let report = ModelImportReport(source: path, files: files.map { ($0 as NSString).lastPathComponent }, loaded: tensors.map(\.0),
                                   missing: missing, ignored: notes.sorted { $0.key < $1.key }, unused: unused.sorted(),
                                   configSource: configSource)
    return ModelImport(config: config, tensors: tensors, report: report)
}

/// The input normalization of the HF image processor `file` (`preprocessor_config.json`) on MaskPilot's 0–255 scale:
/// `(x · rescale_factor − image_mean) / image_std`, with HF's defaults (rescale by 1/255, normalize with ImageNet's
/// statistics). The import carries it into `model.pixel_mean` / `pixel_std`, or refuses a given configuration that
/// disagrees: a model fed other statistics than it was trained on predicts from shifted inputs.
func hfInputNormalization(_ file: String) throws -> PixelNormalization {
    let json = try readJSONObject(file)
    func flag(_ key: String) throws -> Bool {
        guard let value = json[key] else { return true }
        guard let b = value as? Bool else { throw TrainingError("\(file): \(key): expected true or false, got \(value)") }
        return b
    }
    func number(_ value: Any) -> Double? { value is Bool ? nil : (value as? NSNumber)?.doubleValue }
    /// An RGB triple (HF also writes one number for all three channels).
    func triple(_ key: String, default fallback: [Double]) throws -> [Double] {
        guard let value = json[key] else { return fallback }
        if let x = number(value) { return [x, x, x] }
        guard let xs = (value as? [Any])?.compactMap(number), xs.count == 3 else {
            throw TrainingError("\(file): \(key): expected 3 numbers (RGB), got \(value)")
        }
        return xs
    }
    var rescale = 1.0
    if try flag("do_rescale") {
        let value = json["rescale_factor"] ?? 1.0 / 255
        guard let x = number(value) else { throw TrainingError("\(file): rescale_factor: expected a number, got \(value)") }
        rescale = x
    }
    let normalize = try flag("do_normalize")
    // HF's defaults for a Mask2Former image processor: ImageNet's mean and std.
    let mean = normalize ? try triple("image_mean", default: [0.485, 0.456, 0.406]) : [0, 0, 0]
    let std = normalize ? try triple("image_std", default: [0.229, 0.224, 0.225]) : [1, 1, 1]
    guard rescale > 0, std.allSatisfy({ $0 > 0 }) else {
        throw TrainingError("\(file): rescale_factor and image_std must be positive")
    }
    // On the 0–255 scale: (x − mean / rescale) / (std / rescale).
    return PixelNormalization(mean: mean.map { $0 / rescale }, std: std.map { $0 / rescale })
}

/// `[123.675, 116.280, 103.530]`: three decimals, for messages.
func decimals(_ xs: [Double]) -> String { "[" + xs.map { String(format: "%.3f", $0) }.joined(separator: ", ") + "]" }

/// The JSON object in `file`, or an error naming the file and the problem.
func readJSONObject(_ file: String) throws -> [String: Any] {
    let object: Any
    do {
        object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file)))
    } catch {
        throw TrainingError("\(file): not valid JSON (\(error.localizedDescription))")
    }
    guard let json = object as? [String: Any] else { throw TrainingError("\(file): not a JSON object") }
    return json
}

/// Source keys that hold no weight of ours, and why (any naming: HF's, detectron2's, the ImageNet classifiers').
public func ignoredImportKey(_ key: String) -> String? {
    if let reason = ignoredHFKey(key) { return reason }
    if key.hasSuffix(".attn_mask") { return "Swin's shifted-window mask: derived from the input size, not a weight" }
    if key.hasPrefix("backbone.head.") || key.hasPrefix("backbone.fc.") { return "the ImageNet classifier head" }
    if key == "backbone.norm.weight" || key == "backbone.norm.bias" {
        return "the ImageNet Swin's final norm (D2SwinTransformer has the per-stage norms norm0–norm3 instead)"
    }
    if key.hasSuffix("pixel_mean") || key.hasSuffix("pixel_std") {
        return "input normalization, not a weight (MaskPilot normalizes in the data pipeline)"
    }
    return nil
}

/// The weight files of an HF folder: `model.safetensors`, the shards of `model.safetensors.index.json`, or
/// `pytorch_model.bin` (or its shards).
func weightFiles(inFolder folder: String) throws -> [String] {
    let fm = FileManager.default
    func at(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
    for single in ["model.safetensors", "pytorch_model.bin"] where fm.fileExists(atPath: at(single)) { return [at(single)] }
    for index in ["model.safetensors.index.json", "pytorch_model.bin.index.json"] where fm.fileExists(atPath: at(index)) {
        let data = try Data(contentsOf: URL(fileURLWithPath: at(index)))
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let map = object["weight_map"] as? [String: String] else {
            throw TrainingError("\(at(index)): not a shard index (a JSON object with a \"weight_map\" of tensor → file)")
        }
        let shards = Set(map.values).sorted().map(at)
        for shard in shards where !fm.fileExists(atPath: shard) { throw TrainingError("\(at(index)): its shard \(shard) does not exist") }
        return shards
    }
    let listing = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).sorted().prefix(8).joined(separator: ", ")
    throw TrainingError("\(folder): no model.safetensors, pytorch_model.bin or shard index in the folder (it has: \(listing))")
}

/// One weight file's float tensors (PyTorch layout, its own names) and the keys it skipped: `.safetensors` and
/// MaskPilot `.h5` natively; pickles (`.pkl`, `.pth`, `.pt`, `.bin`, `.ckpt`) through `tools/convert_pkl_to_h5.py`.
func readWeightFile(_ path: String, python: String, tools: String?) throws -> (tensors: [(String, Tensor)], skipped: [String]) {
    let ext = (path as NSString).pathExtension.lowercased()
    do {
        switch ext {
        case "safetensors": return try readSafeTensors(path: path)
        case "h5", "hdf5": return (try readModelWeights(path: path), [])
        case "pkl", "pth", "pt", "bin", "ckpt": return (try convertPickle(path, python: python, tools: tools), [])
        default:
            throw TrainingError("\(path): unknown weights format .\(ext) (expected .safetensors, .h5, .pkl, .pth, .pt or .bin, "
                                + "or an HF save_pretrained folder)")
        }
    } catch let e as TrainingError { throw e } catch {
        throw TrainingError("\(error)")
    }
}

/// A pickle converted by our Python tool into a temporary weights file, read back. No name prefix is added here
/// (`--prefix` empty is not passed: the tool prefixes backbone-only ImageNet files with `backbone.`).
func convertPickle(_ path: String, python: String, tools: String?) throws -> [(String, Tensor)] {
    guard let folder = tools ?? locateTools() else {
        throw TrainingError("\(path): pickles are read by tools/convert_pkl_to_h5.py, which was not found next to this program; "
                            + "set MASKPILOT_TOOLS to the repository's tools folder")
    }
    let script = (folder as NSString).appendingPathComponent("convert_pkl_to_h5.py")
    let out = NSTemporaryDirectory() + "maskpilot-import-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).h5"
    defer { try? FileManager.default.removeItem(atPath: out) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [python, script, path, out]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do { try process.run() } catch {
        throw TrainingError("\(path): cannot run \(python) \(script): \(error.localizedDescription)")
    }
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TrainingError("\(path): \(python) \(script) failed (exit \(process.terminationStatus)): "
                            + output.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    return try readModelWeights(path: out)
}

/// The repository's `tools` folder: `MASKPILOT_TOOLS`, else searched upwards from this executable (a build in
/// `.build/<config>/`) and from the working directory.
func locateTools() -> String? {
    let fm = FileManager.default
    if let env = ProcessInfo.processInfo.environment["MASKPILOT_TOOLS"], !env.isEmpty { return env }
    var starts = [fm.currentDirectoryPath]
    if let exe = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent().path { starts.insert(exe, at: 0) }
    for start in starts {
        var dir = URL(fileURLWithPath: start)
        for _ in 0..<6 {
            let candidate = dir.appendingPathComponent("tools/convert_pkl_to_h5.py").path
            if fm.fileExists(atPath: candidate) { return dir.appendingPathComponent("tools").path }
            dir.deleteLastPathComponent()
        }
    }
    return nil
}

/// Sets `config.model` (and the loss weights) from an HF `Mask2FormerConfig` JSON (`config.json` of a
/// `save_pretrained` folder): ResNet or Swin backbone, pixel decoder, decoder, classes. What MaskPilot's model cannot
/// express (another activation, pre-norm, a forced input projection, absolute position embeddings …) is an error
/// naming the key.
public func applyHFConfig(_ json: [String: Any], to config: inout MaskPilotConfig, file: String) throws {
    func fail(_ key: String, _ problem: String) -> TrainingError { TrainingError("\(file): \(key): \(problem)") }
    func int(_ object: [String: Any], _ key: String, _ prefix: String = "") throws -> Int? {
        guard let v = object[key] else { return nil }
        guard let n = v as? NSNumber, Double(truncating: n).rounded() == Double(truncating: n) else { throw fail(prefix + key, "expected an integer, got \(v)") }
        return n.intValue
    }
    func ints(_ object: [String: Any], _ key: String, _ prefix: String = "") throws -> [Int]? {
        guard let v = object[key] else { return nil }
        guard let a = v as? [NSNumber] else { throw fail(prefix + key, "expected a list of integers, got \(v)") }
        return a.map(\.intValue)
    }
    func double(_ object: [String: Any], _ key: String, _ prefix: String = "") throws -> Double? {
        guard let v = object[key] else { return nil }
        guard let n = v as? NSNumber else { throw fail(prefix + key, "expected a number, got \(v)") }
        return n.doubleValue
    }
    func expect(_ object: [String: Any], _ key: String, _ allowed: [String], _ prefix: String = "") throws {
        if let v = object[key], !(v is NSNull) {
            let text = "\(v)"
            guard allowed.contains(text) else { throw fail(prefix + key, "\(text) is not supported (MaskPilot's model has \(allowed.joined(separator: " or ")))") }
        }
    }
    if let type = json["model_type"] as? String, type != "mask2former" {
        throw fail("model_type", "\(type): not a Mask2Former configuration")
    }
    try expect(json, "activation_function", ["relu"])
    try expect(json, "pre_norm", ["0", "false"])
    try expect(json, "common_stride", ["4"])
    if let strides = try ints(json, "feature_strides"), strides != [4, 8, 16, 32] { throw fail("feature_strides", "\(strides) is not [4, 8, 16, 32]") }

    var m = config.model
    guard let backbone = json["backbone_config"] as? [String: Any] else {
        throw fail("backbone_config", "missing (a timm or hub backbone by name cannot be imported; MaskPilot builds HF ResNet and Swin)")
    }
    let bp = "backbone_config."
    switch backbone["model_type"] as? String {
    case "swin":
        var s = SwinConfig()
        s.embedDim = try int(backbone, "embed_dim", bp) ?? s.embedDim
        s.depths = try ints(backbone, "depths", bp) ?? s.depths
        s.numHeads = try ints(backbone, "num_heads", bp) ?? s.numHeads
        s.windowSize = try int(backbone, "window_size", bp) ?? s.windowSize
        s.mlpRatio = try double(backbone, "mlp_ratio", bp) ?? s.mlpRatio
        s.qkvBias = (backbone["qkv_bias"] as? Bool) ?? s.qkvBias
        s.dropPathRate = try double(backbone, "drop_path_rate", bp) ?? s.dropPathRate
        s.patchSize = try int(backbone, "patch_size", bp) ?? s.patchSize
        try expect(backbone, "use_absolute_embeddings", ["0", "false"], bp)
        try expect(backbone, "hidden_act", ["gelu"], bp)
        if let eps = try double(backbone, "layer_norm_eps", bp), eps != 1e-5 { throw fail(bp + "layer_norm_eps", "\(eps) is not 1e-05") }
        m.backbone = .swin(s)
    case "resnet":
        var r = BackboneConfig.standard(depth: 50)
        switch backbone["layer_type"] as? String ?? "bottleneck" {
        case "basic": r.block = .basic
        case "bottleneck": r.block = .bottleneck
        case let other: throw fail(bp + "layer_type", "\(other) is not basic or bottleneck")
        }
        r.depths = try ints(backbone, "depths", bp) ?? r.depths
        r.widths = try ints(backbone, "hidden_sizes", bp) ?? r.widths
        r.stemChannels = try int(backbone, "embedding_size", bp) ?? r.stemChannels
        r.strideInReduction = (backbone["downsample_in_bottleneck"] as? Bool) ?? false
        try expect(backbone, "hidden_act", ["relu"], bp)
        try expect(backbone, "downsample_in_first_stage", ["0", "false"], bp)
        m.backbone = r
    case let other:
        throw fail(bp + "model_type", "\(other ?? "missing"): MaskPilot builds resnet and swin backbones")
    }
    if let outs = backbone["out_features"] as? [String], outs != ["stage1", "stage2", "stage3", "stage4"] {
        throw fail(bp + "out_features", "\(outs) is not [stage1, stage2, stage3, stage4]")
    }

    m.pixelDecoder.convDim = try int(json, "feature_size") ?? m.pixelDecoder.convDim
    m.pixelDecoder.maskDim = try int(json, "mask_feature_size") ?? m.pixelDecoder.maskDim
    m.pixelDecoder.encoderLayers = try int(json, "encoder_layers") ?? m.pixelDecoder.encoderLayers
    m.pixelDecoder.encoderFeedforwardDim = try int(json, "encoder_feedforward_dim") ?? m.pixelDecoder.encoderFeedforwardDim
    let heads = try int(json, "num_attention_heads") ?? m.decoder.heads
    m.pixelDecoder.encoderHeads = heads
    m.decoder.heads = heads
    m.decoder.hiddenDim = try int(json, "hidden_dim") ?? m.decoder.hiddenDim
    m.decoder.maskDim = m.pixelDecoder.maskDim
    m.decoder.numQueries = try int(json, "num_queries") ?? m.decoder.numQueries
    m.decoder.feedforwardDim = try int(json, "dim_feedforward") ?? m.decoder.feedforwardDim
    m.decoder.decLayers = try int(json, "decoder_layers") ?? m.decoder.decLayers
    m.decoder.queryPositionalEmbedding = true
    if let labels = json["id2label"] as? [String: Any] {
        m.decoder.numClasses = labels.count
    } else if let n = try int(json, "num_labels") {
        m.decoder.numClasses = n
    }
    if (json["enforce_input_projection"] as? Bool) == true || m.pixelDecoder.convDim != m.decoder.hiddenDim {
        throw fail("enforce_input_projection", "a projection between the pixel decoder (feature_size \(m.pixelDecoder.convDim)) and the "
                   + "decoder (hidden_dim \(m.decoder.hiddenDim)) is not supported: they must be equal")
    }
    m.maskPiloting.enabled = false
    config.model = m
    config.loss.classWeight = try double(json, "class_weight") ?? config.loss.classWeight
    config.loss.maskWeight = try double(json, "mask_weight") ?? config.loss.maskWeight
    config.loss.diceWeight = try double(json, "dice_weight") ?? config.loss.diceWeight
    config.loss.noObjectWeight = try double(json, "no_object_weight") ?? config.loss.noObjectWeight
    config.loss.numPoints = try int(json, "train_num_points") ?? config.loss.numPoints
    config.loss.oversampleRatio = try double(json, "oversample_ratio") ?? config.loss.oversampleRatio
    config.loss.importanceSampleRatio = try double(json, "importance_sample_ratio") ?? config.loss.importanceSampleRatio
}
