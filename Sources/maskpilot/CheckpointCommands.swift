// `maskpilot checkpoint inspect FILE`, `maskpilot checkpoint diff A B` and `maskpilot checkpoint weights FILE --output W`:
// what a checkpoint holds (with every dataset's checksum verified), how two checkpoints differ tensor by tensor, and
// its model weights alone (or a part of them) as a weights-only file.
// Corresponds to loading a detectron2 checkpoint with torch.load and comparing state_dicts by hand.
import ArgumentParser
import Checkpoint
import Foundation
import TensorCore
import Training

struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint", abstract: "Inspect and compare HDF5 checkpoints.",
        subcommands: [CheckpointInspect.self, CheckpointDiff.self, CheckpointWeights.self])
}

struct CheckpointInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a checkpoint's training state, config summary, tensor counts and bytes, and verify every checksum.")

    @Argument(help: "Checkpoint file (.h5).")
    var file: String

    func run() throws {
        // Every dataset first, one by one, so damage is reported per dataset rather than stopping at the first.
        let reports: [CheckpointDatasetReport]
        do { reports = try scanCheckpoint(path: file) } catch let e as CheckpointError { throw failure(e.description) }
        let contents: CheckpointContents?
        var readError: String? = nil
        do { contents = try readCheckpoint(path: file) } catch {
            contents = nil
            readError = String(describing: error)
        }
        print("checkpoint: \(file)")
        if let c = contents {
            print("iteration: \(c.trainer.iteration)   epoch: \(c.trainer.epoch)   position in epoch: \(c.trainer.position)")
            print("optimizer step: \(c.optimizerStep)")
            print("world size: \(c.meta.worldSize)   created: \(c.meta.createdAt)   MaskPilot \(c.meta.maskpilotVersion)"
                  + "   format version \(c.meta.formatVersion)")
            print("parameter signature: \(String(c.meta.parameterSignature, radix: 16))")
            print("model digest: \(hex16(c.modelDigest))")
            if !c.trainer.schedule.isEmpty {
                print("schedule: " + c.trainer.schedule.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                    .joined(separator: "  "))
            }
            if !c.trainer.rng.isEmpty { print("RNG streams: \(c.trainer.rng.keys.sorted().joined(separator: ", "))") }
            print("config: " + configSummary(c.meta.configYAML))
        }
        for group in ["model", "optimizer"] {
            let members = reports.filter { $0.path.hasPrefix("/\(group)/") }
            let bytes = members.reduce(0) { $0 + $1.bytes }
            print("/\(group): \(members.count) tensors, \(bytes.formatted()) bytes (\(megabytes(bytes)))")
        }
        let others = reports.filter { !$0.path.hasPrefix("/model/") && !$0.path.hasPrefix("/optimizer/") }
        if !others.isEmpty { print("other datasets: \(others.map(\.path).joined(separator: ", "))") }

        let failures = reports.filter { $0.failure != nil }
        let unprotected = reports.filter { $0.failure == nil && !$0.checksummed }
        if failures.isEmpty {
            print("checksums: all \(reports.count) datasets verified"
                  + (unprotected.isEmpty ? "" : " (\(unprotected.count) without a checksum: "
                     + unprotected.map(\.path).joined(separator: ", ") + ")"))
        } else {
            print("checksums: \(failures.count) of \(reports.count) datasets FAILED:")
            for f in failures { print("  \(f.path): \(f.failure!)") }
        }
        if let readError { print("not loadable: \(readError)") }
        if !failures.isEmpty || readError != nil { throw ExitCode(1) }
    }

    /// Model size keys and MP on/off from the stored YAML (or why it cannot be parsed).
    private func configSummary(_ yaml: String) -> String {
        do {
            let cfg = try MaskPilotConfig.parse(yaml: yaml, file: "\(file):/meta/config")
            let m = cfg.model
            return "backbone depths \(m.backbone.depths), pixel decoder \(m.pixelDecoder.name) (conv_dim \(m.pixelDecoder.convDim)), "
                + "hidden_dim \(m.decoder.hiddenDim), queries \(m.decoder.numQueries), dec_layers \(m.decoder.decLayers), "
                + "classes \(m.decoder.numClasses), mask piloting \(m.maskPiloting.enabled ? "on" : "off"), seed \(cfg.seed)"
        } catch {
            return "(cannot parse the stored config: \(error))"
        }
    }
}

struct CheckpointDiff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "Compare two checkpoints tensor by tensor (max abs difference; \"identical\" when bitwise equal).")

    @Argument(help: "First checkpoint file.")
    var a: String
    @Argument(help: "Second checkpoint file.")
    var b: String

    func run() throws {
        let first: CheckpointContents, second: CheckpointContents
        do {
            first = try readCheckpoint(path: a)
            second = try readCheckpoint(path: b)
        } catch let e as CheckpointError { throw failure(e.description) }
        var differing = 0
        for (group, x, y) in [("model", first.model, second.model), ("optimizer", first.optimizer, second.optimizer)] {
            let ys = Dictionary(y, uniquingKeysWith: { p, _ in p })
            let xs = Set(x.map(\.0))
            for (name, t) in x {
                let label = "/\(group)/\(name)"
                guard let u = ys[name] else { print("\(label): only in \(a)"); differing += 1; continue }
                if t.shape != u.shape {
                    print("\(label): shape \(t.shape) vs \(u.shape)"); differing += 1; continue
                }
                let tv = t.values, uv = u.values
                if zip(tv, uv).allSatisfy({ $0.bitPattern == $1.bitPattern }) { print("\(label): identical"); continue }
                differing += 1
                var maxDiff: Float = 0
                for (p, q) in zip(tv, uv) {
                    let d = abs(p - q)
                    if d.isNaN || d > maxDiff { maxDiff = d.isNaN ? .nan : d }
                    if maxDiff.isNaN { break }
                }
                print("\(label): max abs difference \(maxDiff)")
            }
            for (name, _) in y where !xs.contains(name) { print("/\(group)/\(name): only in \(b)"); differing += 1 }
        }
        var attributes: [String] = []
        if first.optimizerStep != second.optimizerStep { attributes.append("optimizer step \(first.optimizerStep) vs \(second.optimizerStep)") }
        if first.trainer != second.trainer {
            attributes.append("trainer state (iteration \(first.trainer.iteration) vs \(second.trainer.iteration))")
        }
        // Compared as configurations (keys a later version added read back as their defaults), naming the keys.
        if first.meta.configYAML != second.meta.configYAML {
            let keys = (try? MaskPilotConfig.differences(MaskPilotConfig.parse(yaml: first.meta.configYAML, file: a),
                                                         MaskPilotConfig.parse(yaml: second.meta.configYAML, file: b)))
            if let keys, !keys.isEmpty { attributes.append("config: " + keys.joined(separator: ", ")) }
            else if keys == nil { attributes.append("config (one of them cannot be read as a configuration)") }
        }
        if first.meta.worldSize != second.meta.worldSize { attributes.append("world size \(first.meta.worldSize) vs \(second.meta.worldSize)") }
        for line in attributes { print("differs: \(line)") }
        print(differing == 0 ? "tensors: all identical" : "tensors: \(differing) differ")
    }
}

struct CheckpointWeights: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "Write a checkpoint's model weights (all, or those --only selects) as a weights-only file for model.weights.",
        discussion: """
        Drops the optimizer and trainer state, as detectron2 users strip a training checkpoint to its model; without \
        --only the file keeps the checkpoint's configuration, so eval and predict need no --config for it. Prints the \
        weights' model digest (the one `checkpoint inspect` prints for a checkpoint with the same weights).
        """)

    @Argument(help: "Checkpoint or weights file (.h5).")
    var file: String
    @Option(help: "The weights file to write (.h5; written crash-safely, replacing an existing one).")
    var output: String
    @Option(help: ArgumentHelp("Keep only tensors matching this pattern (repeatable): a glob when it has *, ? or [, else a substring, as model.weights_ignore.",
                               valueName: "pattern"))
    var only: [String] = []

    func validate() throws { try requireOutput(output, notOver: [("the checkpoint argument", file)]) }

    func run() throws {
        let model: [(String, Tensor)]
        do { model = try readModelWeights(path: file) } catch let e as CheckpointError { throw failure(e.description) }
        let kept = only.isEmpty ? model : model.filter { t in only.contains { weightsIgnorePatternMatches($0, t.0) } }
        guard !kept.isEmpty else { throw failure("\(file): none of its \(model.count) tensors matches --only \(only.joined(separator: " "))") }
        // The whole model keeps its configuration (eval and predict then need no --config); a part of it does not.
        let config: String?
        do { config = only.isEmpty ? try readStoredConfiguration(path: file) : nil } catch let e as CheckpointError { throw failure(e.description) }
        do { try writeModelWeights(kept, to: output, source: "maskpilot checkpoint weights \(file)", configYAML: config) } catch let e as CheckpointError {
            throw failure(e.description)
        }
        let values = kept.reduce(0) { $0 + $1.1.count }
        print("wrote \(kept.count) of \(model.count) tensors (\(values.formatted()) values) to \(output); model digest: \(hex16(weightsDigest(kept)))")
    }
}

/// Prints `message` to stderr and returns the failure exit code (no usage text: the arguments were fine).
private func failure(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
    return ExitCode.failure
}

private func megabytes(_ bytes: Int) -> String { String(format: "%.2f MB", Double(bytes) / 1_048_576) }
