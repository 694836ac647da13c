// The trainer's checkpoints: what a save contains, resuming from one, and the stop-signal agreement.
// Corresponds to detectron2's PeriodicCheckpointer / Checkpointer.resume_or_load and DDP-safe preemption handling.
import Checkpoint
import Distributed
import Evaluation
import Foundation
import Mask2FormerModel
import NN
import Synchronization
import TensorCore

/// Set by SIGTERM / SIGUSR1 (SLURM preemption); every rank checks the flags' OR at each step boundary.
let stopSignalReceived = Atomic<Bool>(false)

/// Installs the SIGTERM and SIGUSR1 handlers that request a checkpoint and a clean exit.
public func installStopSignalHandlers() {
    for sig in [SIGTERM, SIGUSR1] {
        signal(sig) { _ in stopSignalReceived.store(true, ordering: .relaxed) }
    }
}

/// Configuration keys under `model.` that do not change the model's shape (initial-weights import).
let modelKeysExemptOnResume: Set<String> = ["model.weights", "model.weights_ignore"]

/// Configuration keys under `model.` that shape training only (which parameters train), not the model inference runs.
let modelKeysOfTrainingOnly: Set<String> = ["model.backbone.freeze_at"]

/// The keys among `differences` (dotted, as `MaskPilotConfig.differences` gives them) that change the model the
/// weights belong to: `model.*` except the initial-weights import, and for `inference` also the training-only keys.
/// Resume refuses them; eval and predict warn.
public func modelChanges(_ differences: [String], inference: Bool = false) -> [String] {
    differences.filter { $0.hasPrefix("model.") && !modelKeysExemptOnResume.contains($0) && !(inference && modelKeysOfTrainingOnly.contains($0)) }
}

/// The configuration keys that differ between two configs (callers refuse those under `model.*` on resume,
/// except `modelKeysExemptOnResume`).
func configDifferences(_ a: String, _ b: String) throws -> [String] {
    try MaskPilotConfig.differences(MaskPilotConfig.parse(yaml: a, file: "the checkpoint's configuration"),
                                    MaskPilotConfig.parse(yaml: b))
}

/// What `loadPretrainedWeights` did: every list complete, in state-dict order (unused: sorted).
public struct PretrainedWeightsReport: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    /// Keys copied into the model.
    public var loaded: [String]
    /// Keys of the file dropped by a `model.weights_ignore` pattern, in file order.
    public var ignored: [String]
    /// Model keys the file (after dropping ignored keys) does not have: they keep their initialization.
    public var missing: [String]
    /// Keys of the file (not ignored) the model does not have.
    public var unused: [String]

    public var description: String {
        var lines = ["weights: \(path): loaded \(loaded.count) tensor(s), \(ignored.count) ignored, "
                     + "\(missing.count) missing, \(unused.count) unused"]
        lines += ignored.map { "weights:   ignored: \($0)" }
        lines += missing.map { "weights:   missing: \($0)" }
        lines += unused.map { "weights:   unused:  \($0)" }
        return lines.joined(separator: "\n")
    }
}

/// Whether `key` matches a `model.weights_ignore` pattern: a glob (fnmatch, whole key) when the pattern has
/// `*`, `?` or `[`, else a plain substring.
public func weightsIgnorePatternMatches(_ pattern: String, _ key: String) -> Bool {
    if pattern.contains(where: { "*?[".contains($0) }) { return fnmatch(pattern, key, 0) == 0 }
    return !pattern.isEmpty && key.contains(pattern)
}

/// Initializes `model` from the `/model` group of `path` (a checkpoint or a weights-only HDF5, PyTorch layout):
/// keys matching an `ignore` pattern are dropped, the rest loaded with `strict: false`. Missing and unused keys
/// are returned; a mis-shaped key is an error naming the file, the key and both shapes (nothing is copied then).
///
/// `path` may also be a run folder: its `last_checkpoint`, else its newest checkpoint, is read. `option` names the
/// setting in errors (`model.weights`, or `--weights` for eval and predict).
public func loadPretrainedWeights(into model: Module, path given: String, ignore: [String],
                                  option: String = "model.weights") throws -> PretrainedWeightsReport {
    let path = try resolveWeightsPath(given, option: option)
    let (tensors, notes) = try readPretrainedWeights(path: path, option: option)
    var kept: [(String, Tensor)] = [], ignored: [String] = []
    for (name, tensor) in tensors {
        if ignore.contains(where: { weightsIgnorePatternMatches($0, name) }) { ignored.append(name) } else { kept.append((name, tensor)) }
    }
    // A NaN or infinity would run through every prediction (and, in training, every gradient) without a word.
    for (name, tensor) in kept {
        let p = tensor.data
        if let i = (0..<tensor.count).first(where: { !p[$0].isFinite }) {
            throw TrainingError("\(option): \(path): tensor '\(name)' holds \(p[i]) (value \(i) of \(tensor.count)): the file is "
                                + "corrupt or comes from a diverged run")
        }
    }
    let report: StateDictReport
    do {
        report = try model.load(kept, layout: .pytorch, strict: false)
    } catch let r as StateDictReport {
        let shapes = r.misshaped.map { "\($0.key): the model has \($0.expected), the file has \($0.found)" }
        throw TrainingError("\(option): \(path): \(r.misshaped.count) tensor(s) have the wrong shape (PyTorch layout; "
                            + "skip them with model.weights_ignore): " + shapes.joined(separator: "; "))
    }
    let missingSet = Set(report.missing)
    let loaded = model.stateDictKeys().filter { !missingSet.contains($0) }
    guard !loaded.isEmpty || kept.isEmpty else {
        // Nothing matched: the wrong file or another naming scheme; training from random init would hide it.
        let theirs = kept.prefix(3).map { "'\($0.0)'" }.joined(separator: ", ")
        let ours = model.stateDictKeys().prefix(2).map { "'\($0)'" }.joined(separator: ", ")
        throw TrainingError("\(option): \(path): none of its \(kept.count) tensor(s) is a parameter of this model "
                            + "(the file has \(theirs)…; the model has \(ours)…): a different model or naming. detectron2/"
                            + "model-zoo files convert with tools/convert_pkl_to_h5.py (--prefix for a backbone alone)")
    }
    return PretrainedWeightsReport(path: path, loaded: loaded, ignored: ignored, missing: report.missing,
                                   unused: report.unused + notes)
}

/// The tensors of a `model.weights` file, by its extension: a MaskPilot HDF5 (checkpoint or weights-only), or a
/// `.safetensors` file (HF Mask2Former names are translated to ours; the HF keys no rule maps and non-float tensors
/// come back as notes for the report's unused list). PyTorch and detectron2 pickles are refused with the
/// converter command to run.
func readPretrainedWeights(path: String, option: String) throws -> (tensors: [(String, Tensor)], notes: [String]) {
    let ext = (path as NSString).pathExtension.lowercased()
    if ["pkl", "pth", "pt", "bin", "ckpt"].contains(ext) {
        let out = (path as NSString).deletingPathExtension + ".h5"
        throw TrainingError("\(option): \(path) is a PyTorch/detectron2 pickle, which MaskPilot does not read; convert it "
                            + "once with `python3 tools/convert_pkl_to_h5.py \(path) \(out)` (numpy and h5py; torch for .pth) "
                            + "and give \(out)")
    }
    do {
        guard ext == "safetensors" else { return (try readModelWeights(path: path), []) }
        let (tensors, skipped) = try readSafeTensors(path: path)
        let isHF = tensors.contains { $0.0.hasPrefix("model.pixel_level_module.") || $0.0.hasPrefix("model.transformer_module.") }
        guard isHF else { return (tensors, skipped.map { "\($0) (not a float tensor)" }) }
        let imported = try importHuggingFaceMask2Former(Dictionary(tensors, uniquingKeysWith: { a, _ in a }))
        return (imported.tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                imported.unmapped.map { "\($0) (HF name without a MaskPilot counterpart)" }
                    + imported.ignored.map { "\($0.key) (ignored: \($0.reason))" } + skipped.map { "\($0) (not a float tensor)" })
    } catch let e as TrainingError { throw e } catch let e as HFImportError {
        throw TrainingError("\(option): \(path): \(e)")
    } catch {
        throw TrainingError("\(option): \(error)")
    }
}

/// A weights path as given, or for a run folder the checkpoint it points to (`last_checkpoint`, else the newest
/// `model_*.h5`); a folder without either is an error saying what was expected.
public func resolveWeightsPath(_ path: String, option: String) throws -> String {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return path }
    let folder = CheckpointDirectory(path)
    do {
        if let pointed = try folder.pointedPath() { return pointed }
        if let newest = try folder.checkpoints().first { return newest.path }
    } catch {
        throw TrainingError("\(option): \(error)")
    }
    throw TrainingError("\(option): \(path) is a folder without a last_checkpoint file or model_*.h5 checkpoints; give a run "
                        + "folder that has them, or a weights file (.h5 checkpoint or weights-only file, .safetensors)")
}

extension Trainer {
    /// FNV-1a of the parameter names and shapes (the signature every rank agrees on at start).
    var parameterSignature: UInt64 { Trainer.parameterSignature(of: step) }

    static func parameterSignature(of step: TrainingStep) -> UInt64 { FNV1a.hash(parameterSignatureText(of: step)) }

    /// One line "name shape" per parameter, in state-dict order.
    static func parameterSignatureText(of step: TrainingStep) -> String {
        step.model.namedParameters().map { "\($0.0) \($0.1.shape)" }.joined(separator: "\n")
    }

    /// The size of the training set a checkpoint's run consumed, read back from `epoch` and `position` as
    /// `checkpointContents` writes them (consumed = iteration · ims_per_batch = epoch · size + position); nil in the
    /// first epoch, where they do not tell it.
    static func trainingSetSize(of contents: CheckpointContents) -> Int? {
        let t = contents.trainer
        guard t.epoch > 0, let stored = try? MaskPilotConfig.parse(yaml: contents.meta.configYAML) else { return nil }
        // The stored configuration was not validated: a hand-edited one must not overflow here.
        let (consumed, overflow) = t.iteration.multipliedReportingOverflow(by: stored.solver.imsPerBatch)
        guard !overflow, consumed >= t.position, (consumed - t.position) % t.epoch == 0 else { return nil }
        return (consumed - t.position) / t.epoch
    }

    /// Resume warnings about the training set: another size than the checkpoint's run (images added, a split list
    /// edited) changes the data order from here; so does `data.filter_empty_annotations` (default true) on a checkpoint
    /// from before it existed, which trained on every image, with no configuration difference to show it.
    static func trainingSetChanges(since contents: CheckpointContents, config: MaskPilotConfig, data: TrainingData) -> [String] {
        var out: [String] = []
        let beforeFilter = data.imagesWithoutAnnotations > 0 && !contents.meta.configYAML.contains("filter_empty_annotations")
        if let size = trainingSetSize(of: contents), size != data.count {
            // Cityscapes instance frames were filtered only later than the key existed: name the filter there too.
            let filtered = config.data.format == .cityscapesInstance && data.imagesWithoutAnnotations > 0 && !beforeFilter
                ? " (this run leaves out \(data.imagesWithoutAnnotations) without usable annotations: data.filter_empty_annotations)" : ""
            out.append("resume: warning: the training set has \(data.count) images\(filtered), the checkpoint's run had \(size): the data order "
                       + "from here differs from an uninterrupted run's")
        }
        if beforeFilter {
            out.append("resume: warning: the checkpoint was written before data.filter_empty_annotations existed and trained on every "
                       + "image; this run leaves out the images without usable annotations, so the data order from here differs "
                       + "(--set data.filter_empty_annotations=false keeps the checkpoint's)")
        }
        return out
    }

    /// The state a checkpoint holds. All random streams are keyed by (seed, epoch, image id, iteration),
    /// so the seed and the iteration restore them exactly; they are recorded under `rng.*`.
    func checkpointContents() throws -> CheckpointContents {
        let optimizerState = step.optimizer.namedState().filter { $0.0 != "step" }
        let global = config.solver.imsPerBatch
        let consumed = iteration * global
        return CheckpointContents(
            model: step.model.stateDict(layout: .pytorch), optimizer: optimizerState, optimizerStep: step.optimizer.stepCount,
            trainer: CheckpointTrainerState(iteration: iteration, epoch: consumed / max(data.count, 1),
                                            position: consumed % max(data.count, 1),
                                            schedule: ["lr": .double(step.schedule.learningRate(at: iteration))],
                                            rng: ["seed": [config.seed], "streams": [config.seed &+ RandomStreams.maskPiloting, config.seed &+ RandomStreams.criterionPoints]]),
            meta: CheckpointMeta(configYAML: try config.yaml(), worldSize: communicator.size,
                                 parameterSignature: parameterSignature, maskpilotVersion: "0.1.0"))
    }

    /// Rank 0 writes `name` in the output folder (atomically, then the pointer, then retention); every rank
    /// waits for it, so a job that stops right after never loses the checkpoint.
    public func saveCheckpoint(name: String) throws {
        if communicator.isCoordinator {
            let contents = try checkpointContents()
            let deleted = try CheckpointDirectory(outputDirectory).save(contents, name: name, keep: config.checkpoint.keep)
            Console.message("checkpoint: \(outputDirectory)/\(name) (iteration \(iteration))"
                  + (deleted.isEmpty ? "" : "; removed \(deleted.joined(separator: ", "))"))
        }
        try communicator.barrier()
    }

    /// Restores model, optimizer and iteration from `contents`. A model-changing config difference is
    /// refused with the keys listed; other differences are logged; a different world size is a warning.
    /// Returns the iteration to continue from.
    static func restore(_ step: TrainingStep, config: MaskPilotConfig, communicator: any Communicator,
                        from contents: CheckpointContents, path: String) throws -> Int {
        let differences = try configDifferences(contents.meta.configYAML, try config.yaml())
        let modelChanges = modelChanges(differences)
        if !modelChanges.isEmpty {
            throw TrainingError("\(path): the checkpoint's model configuration differs: \(modelChanges.joined(separator: ", "))")
        }
        if communicator.isCoordinator {
            if !differences.isEmpty { Console.message("resume: configuration changes since the checkpoint: \(differences.joined(separator: ", "))") }
            if contents.meta.worldSize != communicator.size {
                Console.message("resume: the checkpoint was written by \(contents.meta.worldSize) rank(s), this run has \(communicator.size): "
                                + "the same images in the same global batches and the same random draws, but the gradient is summed "
                                + "in another order, so the run continues with float rounding differences")
            }
        }
        guard contents.meta.parameterSignature == parameterSignature(of: step) else {
            throw TrainingError("\(path): parameter signature differs from the model's")
        }
        do {
            try step.model.load(Dictionary(contents.model, uniquingKeysWith: { a, _ in a }), layout: .pytorch)
        } catch {
            throw TrainingError("\(path): \(error)")
        }
        var optimizer = Dictionary(contents.optimizer, uniquingKeysWith: { a, _ in a })
        optimizer["step"] = Tensor(scalar: Float(contents.optimizerStep))
        do { try step.optimizer.loadState(optimizer) } catch { throw TrainingError("\(path): \(error)") }
        step.iteration = contents.trainer.iteration
        return contents.trainer.iteration
    }

    /// Whether any rank received a stop signal (collective: every rank calls it at the same step).
    func stopRequested() throws -> Bool {
        guard communicator.size > 1 else { return stopSignalReceived.load(ordering: .relaxed) }
        return try communicator.allReduceSum(stopSignalReceived.load(ordering: .relaxed) ? 1 : 0) > 0
    }
}

// MARK: the best model so far

/// `OUTPUT/model_best.json`: which evaluation `model_best.h5` holds.
struct BestModelRecord: Codable, Equatable {
    var metric: String
    var value: Double
    var iteration: Int
}

extension Trainer {
    /// Rank 0, after a periodic evaluation: when `eval.best_metric` is set and the outcome beats the value recorded
    /// in `model_best.json` (or there is none, or it is for another metric), writes the model's weights to
    /// `model_best.h5`, then the record, each atomically. A crash between the two leaves the older record, so the
    /// next better evaluation replaces the file again.
    func keepIfBest(_ outcome: EvaluationOutcome, iteration: Int) throws {
        let metric = config.eval.bestMetric
        guard !metric.isEmpty, let value = outcome.scalars.first(where: { $0.name == metric })?.value, value.isFinite else { return }
        let recordPath = (outputDirectory as NSString).appendingPathComponent("model_best.json")
        if FileManager.default.fileExists(atPath: recordPath) {
            let previous: BestModelRecord
            do { previous = try JSONDecoder().decode(BestModelRecord.self, from: Data(contentsOf: URL(fileURLWithPath: recordPath))) } catch {
                throw TrainingError("\(recordPath): not a best-model record (\(error)); delete it to start a new one")
            }
            if previous.metric == metric && previous.value >= value { return }
        }
        try writeModelWeights(step.model.stateDict(layout: .pytorch), to: (outputDirectory as NSString).appendingPathComponent("model_best.h5"),
                              configYAML: try config.yaml())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(BestModelRecord(metric: metric, value: value, iteration: iteration))
        try writeAtomically(to: recordPath) { try data.write(to: URL(fileURLWithPath: $0)) }
        Console.message(String(format: "best: %@ %.2f at iteration %d → %@/model_best.h5", metric, value, iteration, outputDirectory))
    }
}
