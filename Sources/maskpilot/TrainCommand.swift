// `maskpilot train`: data-parallel training under mpirun (or alone), with logs in the output folder.
// Corresponds to detectron2's train_net.py (launch + DefaultTrainer) for Mask2Former / MP-Former.
import ArgumentParser
import Checkpoint
import Distributed
import Foundation
import Kernels
import Training
#if canImport(Glibc)
import Glibc
#endif

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train Mask2Former / MP-Former; run under mpirun for data parallelism.")

    @OptionGroup var configOptions: ConfigOptions

    @Option(help: "Output folder (config.yaml, log.txt, metrics.jsonl, tb/, checkpoints).")
    var output: String = "checkpoints/run"

    @Option(parsing: .unconditional, help: "Stop after this many steps (default: solver.max_iter).")
    var iterations: Int?

    @Option(help: "Resume: `--resume` alone continues from OUTPUT/last_checkpoint (falling back to the newest intact checkpoint; a fresh start when OUTPUT has no checkpoint yet), `--resume PATH` from a file.")
    var resume: String?

    @Flag(help: "Start over in an OUTPUT that holds a run: delete its checkpoints, last_checkpoint, metrics.jsonl, tb/ and model_best.* first.")
    var overwrite = false

    @Option(parsing: .unconditional, help: "Compute threads per rank (train.threads; default: OMP_NUM_THREADS as cluster/launch.sh sets it, else the CPUs ÷ the ranks on this node).")
    var threads: Int?

    func validate() throws {
        try requireOption("--iterations", iterations, atLeast: 1)
        if overwrite && resume != nil { throw ValidationError("--overwrite starts the run over and --resume continues it: give one of them") }
        try requireOption("--threads", threads, atLeast: 1)
    }

    func run() throws {
        var cfg = try configOptions.load()
        if let threads { cfg.train.threads = threads }
        let comm = try makeCommunicator()
        do {
            try train(cfg, comm: comm)
        } catch {
            Console.standard.logOnly("error: \(error)\n")
            if comm.size > 1 { comm.abort(code: 1, message: "\(error)") }
            throw RuntimeError(comm.size > 1 ? "rank \(comm.rank): \(error)" : "\(error)")
        }
    }

    func train(_ cfg: MaskPilotConfig, comm: any Communicator) throws {
        let run = RunFolder(output)
        // Files of an earlier run to delete once this invocation has been validated (nothing is deleted before).
        var startingOver: String? = nil
        if resume == nil {
            let existing = try run.runFiles()
            if !existing.isEmpty && !overwrite {
                throw TrainingError("\(output) already holds a run (\(existing.prefix(4).joined(separator: ", "))\(existing.count > 4 ? ", …" : "")): "
                                    + "continue it with --resume, start it over with --overwrite (deletes its checkpoints and logs), or "
                                    + "choose another --output")
            }
            if overwrite { startingOver = "overwrite" }
        }
        if comm.isCoordinator {
            try run.prepareForWriting()
            let logFile = try LogFile(path: (output as NSString).appendingPathComponent("log.txt"))
            Console.standard.setMirror { logFile.append($0) }
            Console.message("maskpilot train — \(comm.size) rank(s), config \(configOptions.config), output \(output)")
            Console.message("command: " + CommandLine.arguments.joined(separator: " "))
            Console.message("environment: " + environmentDescription(cfg, ranks: comm.size))
            Console.message(try cfg.yaml().trimmingCharacters(in: .newlines))
        }
        var from: (path: String, contents: CheckpointContents)? = nil
        if let resume {
            if resume == MaskPilot.resumeLast, try CheckpointDirectory(output).hasNoCheckpoint() {
                // One job script for the first submission and every resubmission (Slurm preemption): a bare
                // --resume into a folder without checkpoints starts the run.
                // Logs of a run killed before its first checkpoint are its, not this run's.
                if comm.isCoordinator { Console.message("resume: \(output) has no checkpoint yet; starting a fresh run") }
                startingOver = "resume"
            } else if resume == MaskPilot.resumeLast {
                let found = try resolveResume(directory: output)
                if comm.isCoordinator { for w in found.warnings { Console.message("resume: \(w)") } }
                from = (found.path, found.contents)
            } else {
                from = (resume, try readCheckpoint(path: resume))
            }
            if comm.isCoordinator, let from { Console.message("resume: from \(from.path) at iteration \(from.contents.trainer.iteration)") }
        }
        // Every rank must start from the same point (a folder not shared between nodes could differ).
        try Trainer.checkAgreement(name: "resume point", text: from.map { "\($0.path) at iteration \($0.contents.trainer.iteration)" } ?? "a fresh start",
                                   comm: comm)
        installStopSignalHandlers()
        let trainer = try Trainer(config: cfg, communicator: comm, outputDirectory: output, resume: from)
        // Done once the invocation has been validated (configuration, data, checkpoint), so a failed one never deletes
        // an earlier run's files or replaces the run's config.yaml.
        if comm.isCoordinator {
            if let reason = startingOver, case let old = try run.runFiles(), !old.isEmpty {
                try run.deleteRunFiles()
                Console.message("\(reason): deleted the earlier run's \(old.joined(separator: ", ")) in \(output)")
            }
            try run.writeConfig(try cfg.yaml())
        }
        let log = try TrainingLog(directory: output, config: cfg, worldSize: comm.size, enabled: comm.isCoordinator)
        trainer.onStep = { try log.record($0) }
        trainer.onEvaluation = { iteration, outcome in
            try log.recordEvaluation(iteration: iteration, outcome: outcome)
        }
        try trainer.run(iterations: iterations)
        try log.finish(iteration: trainer.iteration)
        if trainer.stoppedBySignal && comm.isCoordinator { Console.message("stopped by signal; resume with --resume") }
    }
}

/// One line for the log (detectron2's `collect_env_info`): MaskPilot's version, the host and CPU, the layout, how bf16
/// runs and the libraries' versions, so a run's numbers can be tied to the machine and build that made them.
func environmentDescription(_ cfg: MaskPilotConfig, ranks: Int) -> String {
    let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
        .split(separator: "\n").first { $0.hasPrefix("model name") }
        .flatMap { $0.split(separator: ":", maxSplits: 1).last }
        .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    let bf16 = cfg.solver.precision == .bf16
        ? (BF16Support.native ? "bf16 native" : (BF16Support.forcedEmulation ? "bf16 emulated (MASKPILOT_BF16)" : "bf16 emulated (no oneDNN bf16 kernels)"))
        : "fp32"
    let mpi = (try? MPICommunicator.libraryVersion()) ?? "MPI version unknown"
    let hdf5 = (try? hdf5LibraryVersion()) ?? "HDF5 version unknown"
    return "maskpilot \(MaskPilot.configuration.version); host \(ProcessInfo.processInfo.hostName), \(cpu), "
        + "\(ProcessInfo.processInfo.activeProcessorCount) CPUs; \(ranks) rank(s); \(bf16); \(openBLASDescription()); "
        + "\(dnnlDescription()); \(mpi); \(hdf5)"
}

/// MPI when launched by mpirun/srun, else a single process.
func makeCommunicator() throws -> any Communicator {
    MPICommunicator.launchedUnderMPI() ? try MPICommunicator.shared() : LocalCommunicator()
}

/// A training run's output folder: what belongs to a run, starting it over, and checking it can be written.
struct RunFolder {
    let path: String
    init(_ path: String) { self.path = path }

    /// The files and folders a run writes (checkpoints, last_checkpoint, metrics.jsonl, tb/, model_best.*), sorted;
    /// empty for a missing or fresh folder.
    func runFiles() throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
            throw TrainingError("\(path): cannot list the output folder (\(error.localizedDescription))")
        }
        let fixed: Set<String> = [CheckpointDirectory.pointerName, "metrics.jsonl", "tb", "model_best.h5", "model_best.json"]
        return names.filter { fixed.contains($0) || CheckpointDirectory.parse(name: $0) != nil }.sorted()
    }

    /// Deletes `runFiles()` (nothing else in the folder).
    func deleteRunFiles() throws {
        for name in try runFiles() {
            let file = (path as NSString).appendingPathComponent(name)
            do { try FileManager.default.removeItem(atPath: file) } catch {
                throw TrainingError("--overwrite: cannot delete \(file) (\(error.localizedDescription))")
            }
        }
    }

    /// Creates the folder if needed and checks it can be written, so a read-only or misnamed folder fails at start.
    func prepareForWriting() throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw TrainingError("--output \(path) is a file, not a folder")
        }
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw TrainingError("--output \(path): cannot create the folder (\(String(cString: strerror(errno))))")
        }
        guard access(path, W_OK) == 0 else {
            throw TrainingError("--output \(path): the folder is not writable (\(String(cString: strerror(errno))))")
        }
    }

    /// Writes `config.yaml` (atomically).
    func writeConfig(_ yaml: String) throws {
        let file = (path as NSString).appendingPathComponent("config.yaml")
        do { try yaml.write(toFile: file, atomically: true, encoding: .utf8) } catch {
            throw TrainingError("\(file): cannot write the configuration (\(error.localizedDescription))")
        }
    }
}
