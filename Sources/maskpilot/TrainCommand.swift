// `maskpilot train`: data-parallel training under mpirun (or alone), with logs in the output folder.
// Corresponds to detectron2's train_net.py (launch + DefaultTrainer) for Mask2Former / MP-Former.
import ArgumentParser
import Checkpoint
import Distributed
import Foundation
import Training

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train Mask2Former / MP-Former; run under mpirun for data parallelism.")

    @OptionGroup var configOptions: ConfigOptions

    @Option(help: "Output folder (config.yaml, metrics.jsonl, tb/).")
    var output: String = "checkpoints/run"

    @Option(help: "Stop after this many steps (default: solver.max_iter).")
    var iterations: Int?

    @Option(help: "Resume: `--resume` alone continues from OUTPUT/last_checkpoint (falling back to the newest intact checkpoint; a fresh start when OUTPUT has no checkpoint yet), `--resume PATH` from a file.")
    var resume: String?

    func run() throws {
        let cfg = try configOptions.load()
        let comm = try makeCommunicator()
        do {
            try train(cfg, comm: comm)
        } catch {
            if comm.size > 1 { comm.abort(code: 1, message: "\(error)") }
            throw ValidationError("rank \(comm.rank): \(error)")
        }
    }

    func train(_ cfg: MaskPilotConfig, comm: any Communicator) throws {
        if comm.isCoordinator {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            let yaml = try cfg.yaml()
            print("maskpilot train — \(comm.size) rank(s), config \(configOptions.config), output \(output)\n\(yaml)")
            try yaml.write(toFile: "\(output)/config.yaml", atomically: true, encoding: .utf8)
        }
        var from: (path: String, contents: CheckpointContents)? = nil
        if let resume {
            if resume == MaskPilot.resumeLast, try CheckpointDirectory(output).hasNoCheckpoint() {
                // One job script for the first submission and every resubmission (Slurm preemption): a bare
                // --resume into a folder without checkpoints starts the run.
                if comm.isCoordinator { print("resume: \(output) has no checkpoint yet; starting a fresh run") }
            } else if resume == MaskPilot.resumeLast {
                let found = try resolveResume(directory: output)
                if comm.isCoordinator { for w in found.warnings { print("resume: \(w)") } }
                from = (found.path, found.contents)
            } else {
                from = (resume, try readCheckpoint(path: resume))
            }
            if comm.isCoordinator, let from { print("resume: from \(from.path) at iteration \(from.contents.trainer.iteration)") }
        }
        installStopSignalHandlers()
        let trainer = try Trainer(config: cfg, communicator: comm, outputDirectory: output, resume: from)
        let log = try TrainingLog(directory: output, config: cfg, worldSize: comm.size, enabled: comm.isCoordinator)
        trainer.onStep = { try log.record($0) }
        trainer.onEvaluation = { iteration, outcome in
            try log.recordEvaluation(iteration: iteration, outcome: outcome)
        }
        try trainer.run(iterations: iterations)
        try log.finish(iteration: trainer.state.iteration)
        if trainer.stoppedBySignal && comm.isCoordinator { print("stopped by signal; resume with --resume") }
    }
}

/// MPI when launched by mpirun/srun, else a single process.
func makeCommunicator() throws -> any Communicator {
    MPICommunicator.launchedUnderMPI() ? try MPICommunicator.shared() : LocalCommunicator()
}
