// maskpilot: the command-line entry point (swift-argument-parser).
// Corresponds to detectron2's train_net.py and tools/ entry points; the subcommands: docs/architecture.md#targets.
import ArgumentParser
import Foundation

@main
struct MaskPilot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maskpilot",
        abstract: "Train mask-classification segmentation models (Mask2Former / MP-Former) on CPU clusters.",
        version: "0.1.0",
        subcommands: [TrainCommand.self, EvalCommand.self, Bench.self, ModelCommand.self, DataCommand.self, CheckpointCommand.self, EvalResultsCommand.self, PredictCommand.self, ExperimentReportCommand.self, ConfigCommand.self])
}

extension MaskPilot {
    /// What a bare `--resume` stands for (the output folder's last checkpoint).
    static let resumeLast = "@last_checkpoint"

    /// `--resume` may stand alone (last checkpoint) or take a path; ArgumentParser options need a value,
    /// so a bare `--resume` is rewritten before parsing.
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        // `--set key value` (a space instead of '='): ArgumentParser would only say "unexpected argument".
        for i in args.indices where args[i] == "--set" && i + 2 < args.count {
            let key = args[i + 1], value = args[i + 2]
            if !key.contains("="), !key.hasPrefix("-"), !value.hasPrefix("-") {
                FileHandle.standardError.write(Data("Error: --set \(key) \(value): write the override as one argument with '=': --set \(key)=\(value)\n".utf8))
                Foundation.exit(1)
            }
        }
        if let i = args.firstIndex(of: "--resume"), i + 1 == args.count || args[i + 1].hasPrefix("-") {
            args.insert(resumeLast, at: i + 1)
        }
        main(args)
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of MaskPilot's building blocks.",
        subcommands: [BenchKernels.self, BenchStep.self, BenchData.self, BenchAllreduce.self])
}

/// A failure while running (a bad input file or configuration value, I/O): ArgumentParser prints "Error: …" and exits
/// with status 1, without the usage text it prints (exit 64) for a mistyped command line.
struct RuntimeError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
