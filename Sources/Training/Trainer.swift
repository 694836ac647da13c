// The data-parallel trainer: start-up agreement across ranks, the sharded loader, the step loop, checks and logs.
// Corresponds to detectron2's DefaultTrainer/SimpleTrainer with PyTorch DDP (docs/architecture.md#one-training-step).
import Checkpoint
import Datasets
import Dispatch
import Distributed
import Evaluation
import Kernels
import Foundation
import Mask2FormerModel
import NN
import Optim
import TensorCore

/// A failure that ends the job, with the message every rank's log gets.
public struct TrainingError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The dataset of a `DataConfig`: its size, a thread-safe sample loader and the training augmentation.
public struct TrainingData: Sendable {
    public var count: Int
    /// The dataset's number of classes (ADE20K 150; COCO: its categories).
    public var numClasses: Int
    /// What opening the dataset dropped under `data.on_bad_sample: skip` (bad annotation records), for the log.
    public var notes: [String] = []
    /// The classes as the dataset's own files define them (COCO: `id name` of each category in the contiguous order),
    /// and that file; empty where the format or the configuration fixes the classes. Splits trained together must agree.
    public var categories: [String] = []
    public var categoriesFile = ""
    /// The images of each split trained (in `data.train_split`'s order; one entry for one split).
    public var splitCounts: [Int] = []
    /// Images `data.filter_empty_annotations` left out (COCO images or Cityscapes frames without a non-crowd instance).
    public var imagesWithoutAnnotations = 0
    public var load: @Sendable (Int) throws -> Sample
    public var augment: @Sendable (Sample, inout RNG) throws -> AugmentedSample

    public init(count: Int, numClasses: Int, notes: [String] = [], load: @escaping @Sendable (Int) throws -> Sample,
                augment: @escaping @Sendable (Sample, inout RNG) throws -> AugmentedSample) {
        self.count = count; self.numClasses = numClasses; self.notes = notes; self.load = load; self.augment = augment
    }

    /// The training split(s) of `config.data` (`data.train_split`, or the one split `split`), through its format's descriptor.
    public init(config: MaskPilotConfig, split: String? = nil) throws {
        let splits = split.map { [$0] } ?? config.data.trainSplit.names
        let descriptor = config.data.format.descriptor
        self = try TrainingData(concatenating: try splits.map { try descriptor.trainingData(config: config, split: $0) }, splits: splits)
    }

    /// The most splits `data.train_split` may list (the k-th split's image ids are offset by k·2³²).
    public static let maxSplits = 255

    /// `parts` (the splits `splits`, in order) as one dataset, detectron2's concatenation of `DATASETS.TRAIN`: sample i
    /// is the i-th of the splits' samples in order. The k-th split's image ids are offset by k·2³², so every image keeps
    /// its own augmentation and mask-noise streams (COCO ids are below 2³²); the first split's are unchanged, so one
    /// split trains exactly as before. The splits must have the same classes, and none may be empty.
    init(concatenating parts: [TrainingData], splits: [String]) throws {
        guard !parts.isEmpty, parts.count == splits.count, parts.count <= TrainingData.maxSplits else {
            throw TrainingError("data.train_split: must list 1…\(TrainingData.maxSplits) splits, got \(splits.count)")
        }
        guard parts.count > 1 else { self = parts[0]; splitCounts = [count]; return }
        let first = parts[0]
        for (k, part) in parts.enumerated() {
            guard part.count > 0 else {
                throw TrainingError("data.train_split: the split '\(splits[k])' has no training images"
                                    + (part.notes.isEmpty ? "" : " (" + part.notes.joined(separator: "; ") + ")"))
            }
            guard k > 0 else { continue }
            if part.numClasses != first.numClasses || part.categories != first.categories {
                let at = zip(first.categories, part.categories).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset
                let detail = part.numClasses != first.numClasses
                    ? "\(part.numClasses) classes, '\(splits[0])' \(first.numClasses)"
                    : "class \(at ?? 0) is '\(part.categories[at ?? 0])', in '\(splits[0])' (\(first.categoriesFile)) '\(first.categories[at ?? 0])'"
                throw TrainingError("data.train_split: the split '\(splits[k])'" + (part.categoriesFile.isEmpty ? "" : " (\(part.categoriesFile))")
                                    + " does not have the classes of '\(splits[0])': \(detail). Splits trained together need the same "
                                    + "categories in the same order")
            }
        }
        let starts = parts.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        let loads = parts.map(\.load)
        self.init(count: starts.last!, numClasses: first.numClasses, notes: parts.flatMap(\.notes), load: { i in
            var k = 0
            while i >= starts[k + 1] { k += 1 }
            var sample = try loads[k](i - starts[k])
            sample.imageId &+= k << 32   // ADE20K ids are file-name digits, up to Int.max; the id only keys random streams
            return sample
        }, augment: first.augment)
        categories = first.categories
        categoriesFile = first.categoriesFile
        splitCounts = parts.map(\.count)
        imagesWithoutAnnotations = parts.reduce(0) { $0 + $1.imagesWithoutAnnotations }
    }
}

public final class Trainer {
    public let config: MaskPilotConfig
    public let communicator: any Communicator
    public let step: TrainingStep
    public let outputDirectory: String
    let data: TrainingData
    /// The order of the samples, one epoch plan at a time (rank 0 draws each plan and broadcasts it).
    let epochPlans: TrainingSchedule
    let loader: Loader
    /// The epoch of the first batch this run consumes.
    let startEpoch: Int
    /// The epoch of the batches being consumed now.
    var currentEpoch: Int
    /// Optimizer steps taken (the step's counter; a resume starts it at the checkpoint's iteration).
    public var iteration: Int { step.iteration }
    /// Called on rank 0 after every step with the step as all ranks saw it (losses averaged over ranks).
    public var onStep: ((LoggedStep) throws -> Void)?
    /// The periodic evaluation (`eval.period` > 0): the split is opened at start-up, so a missing split fails early.
    public let evaluation: ModelEvaluation?
    /// Called on rank 0 after each periodic evaluation with (iteration, outcome).
    public var onEvaluation: ((Int, EvaluationOutcome) throws -> Void)?

    /// Builds the model on every rank, checks that all ranks agree on the configuration and the
    /// parameter signature, broadcasts rank 0's initial parameters, and starts the loader.
    /// With `resume`, model, optimizer and iteration come from that checkpoint (read by every rank).
    public init(config: MaskPilotConfig, communicator comm: any Communicator, outputDirectory: String,
                resume: (path: String, contents: CheckpointContents)? = nil) throws {
        self.config = config
        self.communicator = comm
        self.outputDirectory = outputDirectory
        let global = config.solver.imsPerBatch, accumulate = config.solver.accumulate
        try Trainer.checkAgreement(name: "configuration", text: try config.yaml(), comm: comm)
        // Everything about the configuration is checked before the model or the loader allocate anything.
        try Trainer.refuse(config.violations(worldSize: comm.size))
        let threads = try computeThreads(configured: config.train.threads)
        ComputeThreads.set(threads)
        if comm.isCoordinator { Console.message("threads: \(threads) compute thread(s) per rank") }
        Trainer.preparePrecision(config.solver.precision, announce: comm.isCoordinator)
        if config.solver.precision == .bf16 {
            // Ranks on CPUs with and without AVX-512 round their bf16 products differently: valid, but not bitwise
            // the same on another placement, so say which.
            let native = try comm.allGather(UInt64(BF16Support.native ? 1 : 0))
            let emulated = native.indices.filter { native[$0] == 0 }
            if !emulated.isEmpty, emulated.count < native.count, comm.isCoordinator {
                Console.message("precision: warning: rank(s) \(emulated.map(String.init).joined(separator: ", ")) run bf16 emulated "
                                + "(no oneDNN bf16 kernels for their CPUs), the others natively: their products round "
                                + "differently, so results depend on which ranks run where")
            }
        }
        data = try TrainingData(config: config)
        guard data.count > 0 else {
            throw TrainingError("data.root \(config.data.root): the \(config.data.format.rawValue) split '\(config.data.trainSplit)' has no "
                                + "training images\(data.notes.isEmpty ? "" : " (" + data.notes.joined(separator: "; ") + ")")")
        }
        try Trainer.refuse(config.violations(worldSize: comm.size, datasetClasses: data.numClasses))
        if comm.isCoordinator {
            for note in data.notes { Console.message(note) }
            let splits = config.data.trainSplit.names
            Console.message("data: \(data.count) training images (\(config.data.format.rawValue) in \(config.data.root): "
                            + zip(splits, data.splitCounts).map { "\($0) \($1)" }.joined(separator: ", ") + "), \(data.numClasses) classes")
        }
        step = TrainingStep(config: config, communicator: comm)
        try Trainer.checkAgreement(name: "parameter signature", text: Trainer.parameterSignatureText(of: step), comm: comm)
        if resume == nil, !config.model.weights.isEmpty {
            // Every rank reads the file (no extra broadcast of the whole model); the broadcast below then
            // only confirms rank 0's values.
            let report = try loadPretrainedWeights(into: step.model, path: config.model.weights, ignore: config.model.weightsIgnore)
            if comm.isCoordinator { Console.message("\(report)") }
        } else if resume != nil, !config.model.weights.isEmpty, comm.isCoordinator {
            Console.message("weights: model.weights (\(config.model.weights)) is not loaded when resuming; the checkpoint's model is used")
        } else if resume == nil, comm.isCoordinator {
            // detectron2's recipes start from MODEL.WEIGHTS (an ImageNet backbone at least); say so when none is given.
            Console.message("weights: model.weights is not set: every parameter starts from its seeded random initialization "
                            + "(the reference recipes start from ImageNet or model-zoo weights: docs/checkpoint-format.md#pretrained-weights-modelweights-and-converters)")
        }
        // Rank 0's initial parameters everywhere (they are equal by seed, but the reference broadcasts).
        let values = step.parameters.values
        try comm.broadcast(UnsafeMutableRawBufferPointer(start: values.base, count: values.count * 4), root: 0)
        evaluation = config.eval.period > 0 ? try ModelEvaluation(config: config) : nil
        let best = config.eval.bestMetric
        if !best.isEmpty {
            guard let evaluation else { throw TrainingError("eval.best_metric '\(best)' needs the periodic evaluation (eval.period > 0)") }
            guard evaluation.metricNames.contains(best) else {
                throw TrainingError("eval.best_metric '\(best)' is not a metric of the \(evaluation.split.task.rawValue) evaluation; one of: \(evaluation.metricNames.joined(separator: ", "))")
            }
        }
        var startIteration = 0
        if let resume {
            startIteration = try Trainer.restore(step, config: config, communicator: comm, from: resume.contents, path: resume.path)
            resumedIteration = startIteration
            if comm.isCoordinator { for warning in Trainer.trainingSetChanges(since: resume.contents, config: config, data: data) { Console.message(warning) } }
        }
        // The loader serves micro-batches: each optimizer step consumes `accumulate` global micro-batches.
        let sampler = try TrainingSampler(datasetSize: data.count, globalBatchSize: global / accumulate,
                                          worldSize: comm.size, rank: comm.rank)
        let startBatch = startIteration * accumulate
        epochPlans = TrainingSchedule(sampler: sampler, seed: config.seed, startBatch: startBatch)
        startEpoch = sampler.epoch(ofGlobalBatch: startBatch)
        currentEpoch = startEpoch
        let firstPlan = try comm.broadcast(epochPlans.plan(startEpoch).order, root: 0)
        epochPlans.install(try EpochPlan(epoch: startEpoch, order: firstPlan))
        loader = try Loader(schedule: epochPlans, seed: config.seed, workers: config.data.workers, prefetchBatches: config.data.prefetch,
                        onBadSample: config.data.onBadSample == .skip ? .skip : .error,
                        sizeDivisibility: 32, normalization: config.model.pixelNormalization, load: data.load, augment: data.augment)
    }

    deinit { loader.stop() }

    /// For bf16, says how this machine runs its products: natively through oneDNN, or emulated where oneDNN has no
    /// bf16 kernel for the CPU (`BF16Support`; a warning, since such a run gets none of bf16's speed).
    public static func preparePrecision(_ precision: GEMMPrecision, announce: Bool) {
        guard precision == .bf16 else { return }
        let native = BF16Support.native   // probed here, on every rank, before any product
        guard announce else { return }
        if native {
            Console.message("precision: bf16 matrix products through \(dnnlDescription()), fp32 accumulation")
        } else {
            let why = BF16Support.forcedEmulation ? "MASKPILOT_BF16=emulated is set"
                : "\(dnnlDescription()) has no bf16 kernels for this CPU, they need AVX-512"
            Console.message("precision: bf16 matrix products emulated, fp32 accumulation (warning: \(why): operands are rounded "
                            + "to bf16 and multiplied in fp32 by OpenBLAS, at fp32 speed or below; solver.precision=fp32 is "
                            + "faster here)")
        }
    }

    /// Throws one error listing every violation (nothing when there is none).
    static func refuse(_ violations: [ConfigViolation]) throws {
        guard !violations.isEmpty else { return }
        throw TrainingError("the configuration cannot be used (\(violations.count) problem(s)):\n  "
                            + violations.map(\.description).joined(separator: "\n  "))
    }

    /// Every rank's `text` must equal rank 0's; otherwise every rank throws naming the first difference.
    public static func checkAgreement(name: String, text: String, comm: any Communicator) throws {
        let hashes = try comm.allGather(FNV1a.hash(text))
        guard hashes.contains(where: { $0 != hashes[0] }) else { return }
        let texts = try comm.allGather(text)
        let reference = texts[0].split(separator: "\n", omittingEmptySubsequences: false)
        var problems: [String] = []
        for (r, t) in texts.enumerated() where r > 0 && t != texts[0] {
            let lines = t.split(separator: "\n", omittingEmptySubsequences: false)
            let first = zip(reference, lines).enumerated().first { $0.element.0 != $0.element.1 }
            let detail = first.map { "line \($0.offset + 1): rank 0 has '\($0.element.0)', rank \(r) has '\($0.element.1)'" }
                ?? "rank 0 has \(reference.count) lines, rank \(r) has \(lines.count)"
            problems.append("rank \(r) differs from rank 0: \(detail)")
        }
        throw TrainingError("the \(name) differs between ranks: " + problems.joined(separator: "; "))
    }

    /// FNV-1a of the flat parameter buffer's bytes.
    func parameterHash() -> UInt64 {
        let v = step.parameters.values
        return FNV1a.hash(UnsafePointer(v.base), count: v.count)
    }

    /// True when the last `run` ended because a rank received SIGTERM / SIGUSR1.
    public private(set) var stoppedBySignal = false

    /// Trains until `solver.max_iter` (or `iterations` more steps); writes `model_final.h5` when it reaches
    /// `solver.max_iter`.
    public func run(iterations: Int? = nil) throws {
        try evaluateIfInterrupted()
        try runLoop(iterations: iterations)
        try reportSkippedSamples(epoch: currentEpoch)
        if !stoppedBySignal && iteration >= config.solver.maxIter {
            try saveCheckpoint(name: CheckpointDirectory.finalName)
            try evaluate()
        }
    }

    func runLoop(iterations: Int?) throws {
        let comm = communicator
        // `iteration + iterations`, saturating: `--iterations` has no upper bound of its own, `solver.max_iter` does.
        let end = min(config.solver.maxIter, iterations.map { iteration.addingReportingOverflow($0).overflow ? .max : iteration + $0 }
                                             ?? config.solver.maxIter)
        let perRank = config.solver.imsPerBatch / comm.size / config.solver.accumulate
        while iteration < end {
            var micro: [TrainBatch] = []
            var dataWait = 0.0, epoch = currentEpoch
            for m in 0..<config.solver.accumulate {
                let t0 = DispatchTime.now().uptimeNanoseconds
                guard let batch = try loader.next() else { throw TrainingError("the data loader ended early") }
                dataWait += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                // Under data.on_bad_sample: skip a sample whose replacements all failed too is dropped: training
                // needs full batches (every rank's share of the global batch), so it stops, naming the failures.
                guard batch.count == perRank else {
                    let missing = perRank - batch.count
                    throw TrainingError("data: \(missing) sample(s) of a batch of \(perRank) could not be read, nor their replacements "
                                        + "(data.on_bad_sample: skip; \(batch.skipped.count) failure(s), first: "
                                        + "\(batch.skipped.first.map { "\($0.error)" } ?? "none recorded")); check data.root and the layout keys")
                }
                // The epoch of the global micro-batch's first sample: the same on every rank, also when the global
                // batch straddles an epoch boundary (each rank's own first sample may then be in different epochs,
                // and the collectives below must be entered by all ranks at the same step or none).
                epoch = epochPlans.sampler.epoch(ofGlobalBatch: iteration * config.solver.accumulate + m)
                if epoch > currentEpoch {
                    try reportSkippedSamples(epoch: currentEpoch)
                    // The coordinator's plan for the next epoch, installed before the loader needs it.
                    let next = try comm.broadcast(epochPlans.plan(epoch + 1).order, root: 0)
                    epochPlans.install(try EpochPlan(epoch: epoch + 1, order: next))
                    currentEpoch = epoch
                }
                let targets = (0..<batch.count).map { MaskTargets(labels: batch.targets[$0].labels, masks: batch.maskTensor($0)) }
                let keys = zip(batch.refs, batch.imageIds).map { KeyedPointSource.imageKey(epoch: $0.0.epoch, imageId: $0.1) }
                let rngs = keys.map { RNG(seed: config.seed &+ RandomStreams.maskPiloting, stream: $0) }
                micro.append(TrainBatch(images: batch.images, targets: targets, rngs: rngs, imageKeys: keys))
            }
            let local = try step.train(on: micro)
            let logged = try LoggedStep.reduce(local, iteration: iteration, epoch: epoch, dataWait: dataWait,
                                               peakMemoryBytes: peakResidentBytes(), communicator: comm)
            let report = logged.report
            guard report.total.isFinite else {
                let terms = report.losses.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
                throw TrainingError("non-finite loss \(report.total) at step \(iteration): \(terms)")
            }
            let period = config.distributed.checkPeriod
            if comm.size > 1, period > 0, iteration % period == 0 {
                let hashes = try comm.allGather(parameterHash())
                let bad = hashes.indices.filter { hashes[$0] != hashes[0] }
                if !bad.isEmpty {
                    throw TrainingError("parameters differ from rank 0 on rank(s) \(bad.map(String.init).joined(separator: ", ")) after step \(iteration)")
                }
            }
            if comm.isCoordinator { try onStep?(logged) }
            let savePeriod = config.checkpoint.period
            if savePeriod > 0, iteration % savePeriod == 0, iteration < config.solver.maxIter {
                try saveCheckpoint(name: CheckpointDirectory.fileName(iteration: iteration))
            }
            if try stopRequested() {
                if !(savePeriod > 0 && iteration % savePeriod == 0) {
                    try saveCheckpoint(name: CheckpointDirectory.fileName(iteration: iteration))
                }
                if comm.isCoordinator { Console.message("stop signal: checkpoint written at iteration \(iteration); exiting") }
                stoppedBySignal = true
                return
            }
            // The evaluation after the last step runs in `run`, once model_final.h5 is safe.
            if evaluation != nil, iteration % config.eval.period == 0, iteration < config.solver.maxIter { try evaluate() }
        }
    }

    /// One summary of the samples every rank skipped in `epoch` (`data.on_bad_sample: skip`), printed by rank 0.
    /// Collective: every rank calls it at the same step.
    func reportSkippedSamples(epoch: Int) throws {
        let mine = loader.skippedSamples(epoch: epoch).map(\.description).joined(separator: "\n")
        guard let all = try communicator.gather(mine, root: 0) else { return }
        let lines = all.flatMap { $0.split(separator: "\n").map(String.init) }
        guard !lines.isEmpty else { return }
        let ranks = all.filter { !$0.isEmpty }.count
        Console.message("epoch \(epoch): skipped \(lines.count) bad sample(s) on \(ranks) of \(communicator.size) rank(s) "
                        + "(data.on_bad_sample: skip): " + lines.prefix(5).joined(separator: "; ") + (lines.count > 5 ? "; …" : ""))
    }

    /// The iteration a resume started from (nil: a fresh start, or already handled by `evaluateIfInterrupted`).
    var resumedIteration: Int?

    /// A resume at an evaluation step whose evaluation `metrics.jsonl` lacks (the run stopped during it: the checkpoint
    /// comes first) runs that evaluation before training on, so a stop costs no evaluation point. Collective.
    func evaluateIfInterrupted() throws {
        guard let at = resumedIteration else { return }
        resumedIteration = nil
        let period = config.eval.period
        guard evaluation != nil, period > 0, at > 0, at % period == 0, at < config.solver.maxIter else { return }
        let missing = communicator.isCoordinator && !MetricsLog.hasEvaluation(directory: outputDirectory, step: at)
        guard try communicator.allReduceSum(missing ? 1 : 0) > 0 else { return }
        if communicator.isCoordinator { Console.message("resume: the evaluation at iteration \(at) did not finish before the stop; running it") }
        try evaluate()
    }

    /// The periodic evaluation (every rank takes part; rank 0 logs it and keeps the best model). Runs after the
    /// step's checkpoint and stop check, as detectron2's EvalHook runs after the PeriodicCheckpointer, so a failing
    /// evaluation never costs trained steps.
    func evaluate() throws {
        guard let evaluation else { return }
        if let outcome = try evaluation.run(model: step.model, communicator: communicator) {
            try onEvaluation?(iteration, outcome)
            try keepIfBest(outcome, iteration: iteration)
        }
    }
}

/// One step as logged: what detectron2 writes after reducing its metrics across workers.
public struct LoggedStep {
    public var iteration: Int
    public var epoch: Int
    /// The step's report with `total` and `losses` averaged over ranks (times and gradient norm are this rank's;
    /// the gradient norm is the same on every rank).
    public var report: StepReport
    /// The slowest rank's wait for data, seconds.
    public var dataWait: Double
    /// The largest peak resident memory of any rank, bytes.
    public var peakMemoryBytes: Int

    public init(iteration: Int, epoch: Int, report: StepReport, dataWait: Double, peakMemoryBytes: Int) {
        self.iteration = iteration; self.epoch = epoch; self.report = report; self.dataWait = dataWait
        self.peakMemoryBytes = peakMemoryBytes
    }

    /// Every rank's `report` reduced in one all-reduce (every rank calls it, every rank gets the result): loss
    /// terms and total averaged over ranks, data wait and peak memory as their maximum over ranks. Ranks whose
    /// loss-term names differ (they follow from the configuration, which ranks agree on at start) are an error.
    public static func reduce(_ report: StepReport, iteration: Int, epoch: Int, dataWait: Double, peakMemoryBytes: Int,
                              communicator comm: any Communicator) throws -> LoggedStep {
        let keys = report.losses.keys.sorted()
        let size = comm.size, rank = comm.rank
        // [name check, total, terms…, data wait per rank…, memory (MiB) per rank…]; sums of one-hot slots give maxima.
        let names = UInt32(truncatingIfNeeded: FNV1a.hash(keys.joined(separator: ",")))   // exact in a Double
        var values = [Double(names), Double(report.total)] + keys.map { Double(report.losses[$0]!) }
        let perRank = values.count
        values += [Double](repeating: 0, count: 2 * size)
        values[perRank + rank] = dataWait
        values[perRank + size + rank] = Double(peakMemoryBytes) / 1_048_576
        try values.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }
        guard values[0] == Double(names) * Double(size) else {
            throw TrainingError("step \(iteration): the ranks report different loss terms (this rank: \(keys.joined(separator: ", ")))")
        }
        var mean = report
        mean.total = Float(values[1] / Double(size))
        for (i, key) in keys.enumerated() { mean.losses[key] = Float(values[2 + i] / Double(size)) }
        let waits = values[perRank..<(perRank + size)], memory = values[(perRank + size)...]
        return LoggedStep(iteration: iteration, epoch: epoch, report: mean, dataWait: waits.max() ?? dataWait,
                          peakMemoryBytes: Int((memory.max() ?? 0) * 1_048_576))
    }
}

/// This process's peak resident set size so far (getrusage's ru_maxrss), bytes.
public func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
    guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
    return Int(usage.ru_maxrss) * 1024   // kilobytes on Linux
    #else
    guard getrusage(RUSAGE_SELF, &usage) == 0 else { return 0 }
    return Int(usage.ru_maxrss)          // bytes on Darwin
    #endif
}

/// The compute threads of this rank for `train.threads` = `configured` (see `TrainConfig.threads`): `configured` when
/// positive, else `OMP_NUM_THREADS` when it is a positive number, else the CPUs this process may run on (its affinity
/// mask, as mpirun's binding sets it) ÷ the ranks Open MPI reports on this node, at least 1. An `OMP_NUM_THREADS`
/// above `Limit.threads` is an error naming it.
public func computeThreads(configured: Int, environment: [String: String] = ProcessInfo.processInfo.environment,
                           availableCPUs: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> Int {
    if configured > 0 { return configured }
    if let text = environment["OMP_NUM_THREADS"], let omp = Int(text.trimmingCharacters(in: .whitespaces)), omp > 0 {
        guard omp <= Limit.threads else {
            throw TrainingError("OMP_NUM_THREADS=\(text) asks for more compute threads per rank than \(Limit.threads); "
                                + "set it to the cores per rank (or train.threads)")
        }
        return omp
    }
    let local = environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? 1
    return max(1, availableCPUs / max(1, local))
}
