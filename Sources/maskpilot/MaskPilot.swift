// maskpilot: the command-line entry point (swift-argument-parser).
// Subcommands arrive with their issues: bench now; train, eval, predict, data, checkpoint later.
import ArgumentParser

@main
struct MaskPilot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maskpilot",
        abstract: "Train mask-classification segmentation models (Mask2Former / MP-Former) on CPU clusters.",
        version: "0.1.0",
        subcommands: [TrainCommand.self, Bench.self, ModelCommand.self, DataCommand.self, CheckpointCommand.self])
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of MaskPilot's building blocks.",
        subcommands: [BenchKernels.self, BenchStep.self, BenchData.self, BenchAllreduce.self])
}
