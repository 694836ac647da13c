// The `--config FILE [--set key=value …]` options shared by every command that reads a configuration.
// Corresponds to detectron2's `--config-file` plus `opts` (merge_from_list).
import ArgumentParser
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
        var problems = cfg.violations()
        if problems.isEmpty { problems = cfg.inferenceViolations() }
        guard problems.isEmpty else {
            throw RuntimeError("\(path ?? "the defaults"): the configuration cannot be used (\(problems.count) problem(s)):\n  "
                               + problems.map(\.description).joined(separator: "\n  "))
        }
        return cfg
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
