// Rank 0's record of a run: the progress line, metrics.jsonl and TensorBoard scalars, fed once per step.
// Corresponds to detectron2's CommonMetricPrinter, JSONWriter and TensorboardXWriter.
import Evaluation
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fans one step's report out to the progress line, `metrics.jsonl` and `tb/` (rank 0 only; other ranks
/// pass `enabled: false` and write nothing).
public final class TrainingLog {
    let enabled: Bool
    let imagesPerStep: Int
    var progress: ProgressLine?
    /// The plain step lines of `log.txt` (whatever the console's style).
    var fileProgress: ProgressLine?
    var metrics: MetricsLog?
    var tensorBoard: TensorBoardWriter?
    var firstLoss: Float?
    var lastLoss: Float = 0

    public init(directory: String, config: MaskPilotConfig, worldSize: Int, enabled: Bool) throws {
        self.enabled = enabled
        imagesPerStep = config.solver.imsPerBatch
        guard enabled else { return }
        let period = max(1, config.train.logPeriod)
        let style = ProgressLine.standardOutputStyle(period: period)
        progress = ProgressLine(totalSteps: config.solver.maxIter, style: style)
        fileProgress = ProgressLine(totalSteps: config.solver.maxIter, style: .plain(period: period))
        metrics = try MetricsLog(directory: directory)
        tensorBoard = try TensorBoardWriter(directory: "\(directory)/tb")
    }

    /// One step as every rank saw it (`step.report` holds the losses averaged over ranks).
    public func record(_ step: LoggedStep) throws {
        guard enabled else { return }
        let report = step.report
        if firstLoss == nil { firstLoss = report.total }
        lastLoss = report.total
        // The gradient split's extra pass (on the steps that measure it) is part of the step's time.
        let seconds = step.dataWait + report.forward + report.criterion + report.backward + report.allReduceWait + report.optimizer
            + (report.gradientSplit?.seconds ?? 0)
        var extra = ["max_mem_mb": Double(step.peakMemoryBytes) / 1_048_576]
        if let split = report.gradientSplit {
            extra["grad_norm_matching"] = split.matchingNorm
            extra["grad_norm_piloting"] = split.pilotingNorm
            extra["grad_cosine"] = split.cosine
            extra["grad_split_seconds"] = split.seconds
        }
        let record = MetricsRecord(report: report, step: step.iteration, epoch: step.epoch, dataWait: step.dataWait,
                                   allReduceWait: report.allReduceWait, imagesPerSecond: Double(imagesPerStep) / max(seconds, 1e-9),
                                   extra: extra)
        try metrics?.append(record)
        try tensorBoard?.add(scalars: record.scalars, step: step.iteration)
        Console.progress(progress?.update(step: step.iteration, report: report, images: imagesPerStep, stepSeconds: seconds,
                                          dataSeconds: step.dataWait, peakMemoryBytes: step.peakMemoryBytes))
        Console.standard.logOnly(fileProgress?.update(step: step.iteration, report: report, images: imagesPerStep, stepSeconds: seconds,
                                                      dataSeconds: step.dataWait, peakMemoryBytes: step.peakMemoryBytes))
    }

    /// A periodic evaluation: the summary printed, one `metrics.jsonl` line
    /// `{"eval": {"AP": …, "mIoU-L_0": …}, "eval_images": n, "eval_seconds": s, "step": i, "time": t}` and TensorBoard
    /// scalars `eval/<name>`.
    public func recordEvaluation(iteration: Int, outcome: EvaluationOutcome) throws {
        guard enabled else { return }
        Console.message("evaluation at iteration \(iteration) (\(outcome.task.rawValue), \(outcome.images) images):\n\(outcome.text)")
        let fields: [(String, String)] = [
            ("eval", JSONText.object(outcome.scalars.map { ($0.name, JSONText.number($0.value)) })),
            ("eval_images", String(outcome.images)), ("eval_seconds", JSONText.number(outcome.seconds)),
            ("step", String(iteration)), ("time", JSONText.number(Date().timeIntervalSince1970)),
        ]
        try metrics?.appendLine(JSONText.object(fields))
        try tensorBoard?.add(scalars: Dictionary(outcome.scalars.map { ("eval/" + $0.name, $0.value) }, uniquingKeysWith: { a, _ in a }),
                             step: iteration)
        try tensorBoard?.flush()
    }

    public func finish(iteration: Int) throws {
        guard enabled else { return }
        Console.progress(progress?.finish())
        Console.standard.logOnly(fileProgress?.finish())
        try tensorBoard?.flush()
        Console.message(String(format: "done: %d steps, loss %.4f → %.4f", iteration, firstLoss ?? 0, lastLoss))
    }
}

/// Rank 0's `log.txt` in the run folder (detectron2's `OUTPUT_DIR/log.txt`): rank 0's console messages of every
/// invocation from the moment it opens the file (after the configuration is read and the folder checked: refusals
/// before that, and other ranks' errors, are on standard error only), appended (a resume or an --overwrite adds to
/// it; nothing deletes it), each line stamped with the local time, plus a plain step line every `train.log_period`
/// steps whatever the console shows. A failed write
/// (a full disk) is reported once on standard error and ends the copying: metrics.jsonl and the checkpoints are
/// what a run needs, and their own writes stop the run with the error.
public final class LogFile: @unchecked Sendable {
    public let path: String
    private var fd: Int32
    private var atLineStart = true
    private let stamp: DateFormatter

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError("\(path): cannot open the log file (\(String(cString: strerror(errno))))") }
        stamp = DateFormatter()
        stamp.locale = Locale(identifier: "en_US_POSIX")
        stamp.dateFormat = "[yyyy-MM-dd HH:mm:ss] "
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Appends `text`, stamping the start of each line (called under the console's lock).
    public func append(_ text: String) {
        guard fd >= 0, !text.isEmpty else { return }
        let now = stamp.string(from: Date())
        var out = ""
        for ch in text {
            if atLineStart { out += now; atLineStart = false }
            out.append(ch)
            if ch == "\n" { atLineStart = true }
        }
        var bytes = Array(out.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = String(cString: strerror(errno))
                FileHandle.standardError.write(Data("warning: \(path): cannot append to the log file (\(reason)); it stops here\n".utf8))
                close(fd); fd = -1
                return
            }
            bytes = bytes.dropFirst(n)
        }
    }
}
