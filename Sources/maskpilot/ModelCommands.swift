// `maskpilot model summary | import | export | run`: the module tree with parameter counts; weights from HF, detectron2 and
// PyTorch files; raw outputs for comparison with other implementations.
// Corresponds to printing a detectron2 model and counting `p.numel()`, to HF's from_pretrained, and to calling
// Mask2FormerForUniversalSegmentation on pixel_values.
import ArgumentParser
import Checkpoint
import Datasets
import Evaluation
import Foundation
import Kernels
import Mask2FormerModel
import NN
import TensorCore
import Training

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "model", abstract: "Inspect model configurations.",
                                                    subcommands: [ModelSummary.self, ModelImportCommand.self, ModelExportCommand.self, ModelRunCommand.self])
}

struct ModelSummary: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary", abstract: "Print the module tree with trainable parameter counts and the total.")

    @OptionGroup var configOptions: ConfigOptions

    @Option(parsing: .unconditional, help: "Deepest module level to list (0 = only the total).")
    var depth: Int = 3

    func validate() throws { try requireOption("--depth", depth, atLeast: 0) }

    func run() throws {
        let cfg = try configOptions.load()
        var rng = RNG(seed: cfg.seed)
        let model = Mask2Former(cfg.model, rng: &rng)
        print(summary(of: model, depth: depth, frozenPrefixes: cfg.model.backbone.frozenParameterPrefixes))
    }
}

/// Lines `name  count` for every module down to `depth` levels, then the trainable total and the
/// buffer count (frozen BN statistics and affines are buffers, not trainable); parameters under `frozenPrefixes`
/// (`model.backbone.freeze_at`) are counted apart.
func summary(of model: Module, depth: Int, frozenPrefixes: [String] = []) -> String {
    let params = model.namedParameters()
    func count(under prefix: String) -> Int {
        params.filter { $0.0 == prefix || $0.0.hasPrefix(prefix + ".") }.reduce(0) { $0 + $1.1.count }
    }
    var lines: [String] = []
    var seen = Set<String>()
    for (name, _) in params {
        let parts = name.split(separator: ".").map(String.init).dropLast()
        for level in 1...max(1, min(depth, parts.count)) where level <= parts.count {
            let prefix = parts.prefix(level).joined(separator: ".")
            guard !seen.contains(prefix) else { continue }
            seen.insert(prefix)
            let indent = String(repeating: "  ", count: level - 1)
            let label = indent + parts[level - 1]
            lines.append(label.padding(toLength: max(label.count, 56), withPad: " ", startingAt: 0)
                         + String(format: "%14@", count(under: prefix).formatted() as NSString))
        }
    }
    let all = params.reduce(0) { $0 + $1.1.count }
    let frozen = params.filter { p in frozenPrefixes.contains { p.0.hasPrefix($0) } }.reduce(0) { $0 + $1.1.count }
    let total = all - frozen
    let buffers = model.namedBuffers().reduce(0) { $0 + $1.1.count }
    if depth > 0 { lines.append(String(repeating: "-", count: 70)) }
    lines.append("trainable parameters: \(total.formatted()) (\(total))")
    if frozen > 0 { lines.append("frozen parameters (model.backbone.freeze_at): \(frozen.formatted()) (\(frozen))") }
    lines.append("buffers (frozen BN): \(buffers.formatted())")
    return lines.joined(separator: "\n")
}

struct ModelExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a model as an HF transformers folder (config.json, model.safetensors, preprocessor_config.json).",
        discussion: """
        The folder loads with Mask2FormerForUniversalSegmentation.from_pretrained and Mask2FormerImageProcessor, and \
        back with `maskpilot model import --from FOLDER`. Weights are named as save_pretrained writes them (the query/key/value \
        projections HF keeps apart are split); config.json takes the model and loss keys, id2label the names of data.classes \
        when it names every class; preprocessor_config.json model.pixel_mean/std and the test-time resize. MP-Former's label \
        embedding (training only) is left out. A model HF cannot build (FPN pixel decoder, conv_dim ≠ hidden_dim, …) is refused, \
        naming the keys.
        """)

    @OptionGroup var configOptions: InferenceConfigOptions

    @Option(help: "Model weights: a MaskPilot checkpoint or weights file, or a run folder.")
    var weights: String

    @Option(help: "The folder to write.")
    var output: String

    func run() throws {
        let (cfg, weights, warnings) = try configOptions.load(weights: self.weights)
        for warning in warnings { print(warning) }
        do {
            let report = try exportHuggingFace(config: cfg, weights: weights, to: output)
            print("export: wrote \(output)/model.safetensors (\(report.tensorCount) tensors), config.json, preprocessor_config.json")
            for d in report.dropped { print("export:   left out: \(d.key) — \(d.reason)") }
            for a in report.added { print("export:   added: \(a.key) — \(a.reason)") }
        } catch let e as TrainingError {
            throw RuntimeError(e.description)
        } catch let e as CheckpointError {
            throw RuntimeError(e.description)
        }
    }
}

struct ModelImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Convert weights from HF transformers, detectron2 or PyTorch into a MaskPilot weights file.",
        discussion: """
        --from takes an HF save_pretrained folder (config.json + model.safetensors, pytorch_model.bin or shards; ResNet \
        or Swin backbone; the model configuration is derived from config.json), a .safetensors file, a detectron2 \
        model-zoo .pkl (Mask2Former / MP-Former checkpoints, ImageNet R-50 and Swin backbones, which get the prefix \
        backbone.), a PyTorch .pth/.pt/.bin, or a MaskPilot .h5. Pickles are read by tools/convert_pkl_to_h5.py \
        (python3 with numpy and h5py; no torch needed for torch's zip format). Every source tensor is mapped onto a \
        parameter of the model or reported (ignored with its reason, or unused); a source that maps onto no \
        parameter is an error. The output is a weights-only HDF5 for --weights and model.weights.
        """)

    @Option(help: "The source: an HF folder, .safetensors, .pkl, .pth/.pt/.bin or .h5.")
    var from: String

    @Option(help: "The MaskPilot weights file to write (.h5).")
    var output: String

    @Option(help: "Write the model's MaskPilot configuration (YAML) here (derived from config.json for HF folders).")
    var configOut: String?

    @Option(help: "The MaskPilot configuration the weights are for (required unless --from is an HF folder with config.json).")
    var config: String?

    @Option(name: .customLong("set"), help: "Override a key of --config: key.path=value (repeatable).")
    var overrides: [String] = []

    @Option(help: "Python interpreter for pickles (needs numpy and h5py).")
    var python: String = "python3"

    func validate() throws {
        // An HF folder: the files import reads there (config.json, the weights and their shard index); a MaskPilot
        // file written next to them is fine.
        var isFolder: ObjCBool = false
        let fromFolder = FileManager.default.fileExists(atPath: from, isDirectory: &isFolder) && isFolder.boolValue
        let read = fromFolder ? ((try? FileManager.default.contentsOfDirectory(atPath: from)) ?? [])
            .filter { ["json", "safetensors", "bin", "pth", "pt"].contains(($0 as NSString).pathExtension.lowercased()) }
            .map { (option: "--from", path: (from as NSString).appendingPathComponent($0)) } : [("--from", from)]
        try requireOutput(output, notOver: read + (config.map { [("--config", $0)] } ?? []))
        if let configOut {
            try requireOutput(configOut, option: "--config-out", notOver: read + [("--output", output)] + (config.map { [("--config", $0)] } ?? []))
        }
    }

    func run() throws {
        do {
            let given = try config.map { path -> MaskPilotConfig in
                do { return try MaskPilotConfig.load(path: path, overrides: overrides) } catch let e as ConfigError { throw RuntimeError(e.description) }
            }
            if config == nil && !overrides.isEmpty { throw ValidationError("--set needs --config") }
            let imported = try importModel(from: from, config: given, python: python)
            print(imported.report)
            // The configuration goes with the weights (eval and predict read it when no --config is given).
            try writeModelWeights(imported.tensors, to: output, source: from, configYAML: try imported.config.yaml())
            print("import: wrote \(output) (\(imported.tensors.count) tensors, PyTorch layout)")
            if let configOut {
                let text = "# MaskPilot configuration of the weights imported from \(from) (maskpilot model import).\n"
                    + "# Its data, input and solver sections are the defaults: set them for training or evaluation.\n"
                    + (try imported.config.yaml())
                do { try text.write(toFile: configOut, atomically: true, encoding: .utf8) } catch {
                    throw RuntimeError("--config-out \(configOut): \(error.localizedDescription)")
                }
                print("import: wrote \(configOut)")
            }
        } catch let e as ValidationError { throw e } catch let e as RuntimeError { throw e } catch {
            throw RuntimeError("\(error)")
        }
    }
}

struct ModelRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a model on images or pixel values and write its raw outputs (HF layout) to HDF5.",
        discussion: """
        --input takes image files (JPEG/PNG; resized as eval does — input.min_size_test / max_size_test or the data \
        format's default —, normalized and padded to multiples of 32 in one batch) or one HDF5 file with a dataset \
        pixel_values [B, 3, H, W] already normalized (H, W multiples of 32), used as is. OUT.h5 holds pixel_values \
        (the batch the model saw), class_queries_logits [B, Q, K+1] and masks_queries_logits [B, Q, H/4, W/4] of \
        the final prediction in PyTorch layout (HF transformers' names), and every auxiliary prediction under \
        aux/<i>/ (i = 0 the query features' prediction, as HF's auxiliary_logits).
        """)

    @OptionGroup var configOptions: ConfigOptions

    @Option(help: "Model weights: a MaskPilot checkpoint or weights file, a .safetensors file, or a run folder.")
    var weights: String

    @Option(parsing: .upToNextOption, help: "Image files or folders (their .jpg, .jpeg and .png files), or one .h5 file with a pixel_values dataset.")
    var input: [String]

    @Option(help: "The HDF5 file to write.")
    var output: String

    @OptionGroup var precisionOption: PrecisionOption

    func run() throws {
        do { try runModel() } catch let e as ValidationError { throw e } catch let e as RuntimeError { throw e } catch {
            throw RuntimeError("\(error)")
        }
    }

    func runModel() throws {
        var cfg = try configOptions.load()
        try precisionOption.apply(to: &cfg)
        guard !input.isEmpty else { throw ValidationError("--input: nothing given") }
        try requireOutput(output, notOver: [("--weights", try resolveWeightsPath(weights, option: "--weights"))] + input.map { ("--input", $0) })
        let pixels: Tensor   // [B, H, W, 3]
        if input.count == 1, ["h5", "hdf5"].contains((input[0] as NSString).pathExtension.lowercased()) {
            let file: HDF5File
            do { file = try HDF5File(open: input[0]) } catch { throw RuntimeError("--input \(input[0]): cannot open as HDF5: \(error)") }
            defer { try? file.close() }
            guard (try? file.contains("pixel_values")) == true else {
                throw RuntimeError("--input \(input[0]): no dataset pixel_values ([B, 3, H, W], normalized)")
            }
            let t = try file.readTensor("pixel_values")
            guard t.rank == 4, t.shape[1] == 3 else {
                throw RuntimeError("--input \(input[0]): pixel_values has shape \(t.shape), expected [B, 3, H, W]")
            }
            guard t.shape[0] > 0, t.shape[2] > 0, t.shape[3] > 0 else {
                throw RuntimeError("--input \(input[0]): pixel_values has shape \(t.shape), an empty batch or image")
            }
            guard t.shape[2] % 32 == 0, t.shape[3] % 32 == 0 else {
                throw RuntimeError("--input \(input[0]): pixel_values is \(t.shape[2])×\(t.shape[3]); the model needs multiples of 32 (pad first)")
            }
            pixels = withNoGrad { t.permuted(0, 2, 3, 1) }
        } else {
            let resize = TestTimeResize(config: cfg)
            var noRNG = RNG(seed: 0)
            let files = try expandImageInputs(input)
            try requireOutput(output, notOver: files.map { ("--input", $0) })
            let samples = try files.enumerated().map { n, path in
                try resize.apply(Sample(imageId: n, image: try loadImage(path: path), targets: .none), rng: &noRNG)
            }
            pixels = Batch.collate(samples, normalization: cfg.model.pixelNormalization).images
        }
        // One batch: every prediction's mask logits are kept for the file, B × Q × H/4 × W/4 floats each (a lower bound).
        let (b, h, w) = (pixels.shape[0], pixels.shape[1], pixels.shape[2])
        let d = cfg.model.decoder
        let need = cfg.model.inferenceBytesLowerBound(batch: b, paddedHeight: h, paddedWidth: w)
        let memory = physicalMemoryBytes()
        guard memory <= 0 || need <= Double(memory) else {
            throw RuntimeError(String(format: "--input: %d image(s) in one %d×%d batch with their %d predictions need at least %.1f GB, more "
                                      + "than this machine's %.1f GB; give fewer images (`maskpilot predict` takes a folder one image "
                                      + "at a time)", b, w, h, d.decLayers, need / 1e9, Double(memory) / 1e9))
        }
        let model = try loadInferenceModel(config: cfg, weights: weights)
        let predictions = withGEMMPrecision(cfg.solver.precision) { withNoGrad { model(pixels).predictions } }
        try writeAtomically(to: output) { tmp in try writeHDF5File(tmp) { file in
            _ = try file.write(withNoGrad { pixels.permuted(0, 3, 1, 2) }, to: "pixel_values")
            func put(_ p: MaskPrediction, _ prefix: String) throws {
                _ = try file.write(p.classLogits, to: prefix + "class_queries_logits")
                _ = try file.write(p.maskLogits, to: prefix + "masks_queries_logits")
            }
            try put(predictions.last!, "")
            for (i, p) in predictions.dropLast().enumerated() {
                _ = try file.createGroup("aux/\(i)")
                try put(p, "aux/\(i)/")
            }
            try file.root.setAttribute("weights", string: weights)
            try file.root.setAttribute("config", string: try cfg.yaml())
        } }
        print("run: \(pixels.shape[0]) image(s) of \(pixels.shape[1])×\(pixels.shape[2]) → \(output) (final prediction and "
              + "\(predictions.count - 1) auxiliary)")
    }
}
