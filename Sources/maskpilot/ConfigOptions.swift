// The `--config FILE [--set key=value …]` options shared by every command that reads a configuration.
// Corresponds to detectron2's `--config-file` plus `opts` (merge_from_list).
import ArgumentParser
import Checkpoint
import Foundation
import Kernels
import Training

struct ConfigOptions: ParsableArguments {
    @Option(help: "Configuration file (YAML).")
    var config: String

    @Option(name: .customLong("set"), help: "Override a key: key.path=value (repeatable).")
    var overrides: [String] = []

    /// The resolved configuration; a bad file or key becomes a usage error naming the file and key path.
    /// Every value is checked (ranges, divisibility; `MaskPilotConfig.violations`, then the parameters' memory,
    /// `inferenceViolations`) before a command allocates anything; all problems are reported at once.
    func load() throws -> MaskPilotConfig { try ConfigOptions.resolve(path: config, overrides: overrides) }

    /// The configuration of `path` (nil: the built-in defaults) with `overrides`, checked as `load()` describes.
    static func resolve(path: String?, overrides: [String]) throws -> MaskPilotConfig {
        let cfg: MaskPilotConfig
        do {
            if let path { cfg = try MaskPilotConfig.load(path: path, overrides: overrides) }
            else { cfg = try MaskPilotConfig.parse(yaml: "{}", file: "the defaults", overrides: overrides) }
        } catch let e as ConfigError {
            throw RuntimeError(e.description)
        }
        return try checked(cfg, source: path ?? "the defaults")
    }

    /// `cfg` if its values pass `violations()` and then `inferenceViolations()`, else every problem named against `source`.
    static func checked(_ cfg: MaskPilotConfig, source: String) throws -> MaskPilotConfig {
        var problems = cfg.violations()
        if problems.isEmpty { problems = cfg.inferenceViolations() }
        guard problems.isEmpty else {
            throw RuntimeError("\(source): the configuration cannot be used (\(problems.count) problem(s)):\n  "
                               + problems.map(\.description).joined(separator: "\n  "))
        }
        return cfg
    }
}

/// `--config` / `--set` of `eval` and `predict`, where the configuration may come from the weights: a MaskPilot
/// checkpoint, `model_best.h5` and `checkpoint weights` output store the configuration they were trained with
/// (detectron2 users give `OUTPUT/config.yaml`; HF users expect weights that describe themselves).
struct InferenceConfigOptions: ParsableArguments {
    @Option(help: "Configuration file (YAML); default: the one stored in --weights (a MaskPilot checkpoint, model_best.h5 or checkpoint weights output).")
    var config: String?

    @Option(name: .customLong("set"), help: "Override a key: key.path=value (repeatable).")
    var overrides: [String] = []

    /// The configuration for `weights` (a file or run folder), with the weights file it resolved to (a run folder's
    /// checkpoint, read once so that the configuration and the weights are the same file's): --config with its
    /// overrides, checked as `ConfigOptions.resolve` does, and compared with the weights' stored one (`warnings` names
    /// the model keys that differ: the weights were trained with the stored values; the caller prints them, once);
    /// without --config, the stored one with the overrides.
    func load(weights: String) throws -> (config: MaskPilotConfig, weights: String, warnings: [String]) {
        let path = try resolveWeightsPath(weights, option: "--weights")
        let stored: String?
        let ext = (path as NSString).pathExtension.lowercased()
        do { stored = ext == "h5" || ext == "hdf5" ? try readStoredConfiguration(path: path) : nil } catch {
            throw RuntimeError("--weights: \(error)")
        }
        guard let config else {
            guard let stored else {
                throw RuntimeError("--weights \(path) holds no MaskPilot configuration (a converted or imported weights file): give the "
                                   + "configuration it was trained with as --config")
            }
            let source = "\(path) (its stored configuration)"
            let cfg: MaskPilotConfig
            do { cfg = try MaskPilotConfig.parse(yaml: stored, file: source, overrides: overrides) } catch let e as ConfigError {
                throw RuntimeError(e.description)
            }
            return (try ConfigOptions.checked(cfg, source: source), path, [])
        }
        let cfg = try ConfigOptions.resolve(path: config, overrides: overrides)
        var warnings: [String] = []
        if let stored, let theirs = try? MaskPilotConfig.parse(yaml: stored, file: path) {
            let changed = modelChanges((try? MaskPilotConfig.differences(theirs, cfg)) ?? [], inference: true)
            if !changed.isEmpty {
                warnings.append("warning: --config differs from the configuration stored in \(path) in \(changed.joined(separator: ", ")); "
                                + "the weights were trained with the stored values (leave out --config to use them)")
            }
        }
        return (cfg, path, warnings)
    }
}

/// `--precision fp32|bf16` of `eval`, `predict`, `model run` and `bench step`: the precision of the model's matrix products,
/// overriding `solver.precision` (checkpoints are fp32 either way, so any checkpoint runs in either).
struct PrecisionOption: ParsableArguments {
    @Option(help: "Matrix products in fp32 or bf16 (default: the config's solver.precision).")
    var precision: GEMMPrecision?

    /// `cfg` with the option applied (bf16 runs emulated on a CPU without oneDNN bf16 kernels: `BF16Support`).
    func apply(to cfg: inout MaskPilotConfig) throws {
        if let precision { cfg.solver.precision = precision }
    }
}

extension GEMMPrecision: ExpressibleByArgument {}
