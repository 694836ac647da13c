// The `--config FILE [--set key=value …]` options shared by every command that reads a configuration.
// Corresponds to detectron2's `--config-file` plus `opts` (merge_from_list).
import ArgumentParser
import Training

struct ConfigOptions: ParsableArguments {
    @Option(help: "Configuration file (YAML).")
    var config: String

    @Option(name: .customLong("set"), help: "Override a key: key.path=value (repeatable).")
    var overrides: [String] = []

    /// The resolved configuration; a bad file or key becomes a usage error naming the file and key path.
    func load() throws -> MaskPilotConfig {
        do { return try MaskPilotConfig.load(path: config, overrides: overrides) } catch let e as ConfigError {
            throw ValidationError(e.description)
        }
    }
}
