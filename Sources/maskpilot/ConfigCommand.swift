// `maskpilot config`: the resolved configuration, every key with its value (the defaults where the file and --set
// say nothing), as the YAML a run folder's config.yaml holds. The list of keys is Config.swift's schema, so this is
// the documentation of what keys exist.
// Corresponds to detectron2's `cfg.dump()` (and `--config-file … opts` merged the same way as train).
import ArgumentParser
import Training

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the resolved configuration: every key with its value, as YAML (or one `key = value` line per key).",
        discussion: """
        Without --config, the built-in defaults. The values are checked as every --config command checks them (ranges, \
        divisibility, whether the model's parameters fit this machine's memory; train checks more once it knows the \
        ranks and the dataset), so a bad key or value is an error naming it; the output can be given back as --config.
        """)

    @Option(help: "Configuration file (YAML); default: the built-in defaults.")
    var config: String?

    @Option(name: .customLong("set"), help: "Override a key: key.path=value (repeatable).")
    var overrides: [String] = []

    @Flag(help: "One `key = value` line per key, sorted, instead of YAML.")
    var keys = false

    func run() throws {
        let cfg = try ConfigOptions.resolve(path: config, overrides: overrides)
        if keys {
            for (key, value) in try cfg.flattened().sorted(by: { $0.key < $1.key }) { print("\(key) = \(value)") }
        } else {
            print(try cfg.yaml(), terminator: "")
        }
    }
}
