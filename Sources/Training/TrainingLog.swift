// Rank 0's record of a run: a progress line on the console and one JSON line per step in metrics.jsonl.
// Corresponds to detectron2's CommonMetricPrinter and JSONWriter.
import Foundation

/// Writes `metrics.jsonl` and prints progress (rank 0 only; other ranks pass `enabled: false`).
public final class TrainingLog {
    let enabled: Bool
    let maxIter: Int
    let period: Int
    let imagesPerStep: Int
    let start = Date()
    var firstLoss: Float?
    var lastLoss: Float = 0
    var metrics: FileHandle?

    public init(directory: String, config: MaskPilotConfig, worldSize: Int, enabled: Bool) throws {
        self.enabled = enabled
        maxIter = config.solver.maxIter
        period = max(1, config.train.logPeriod)
        imagesPerStep = config.solver.imsPerBatch
        guard enabled else { return }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = "\(directory)/metrics.jsonl"
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        metrics = FileHandle(forWritingAtPath: path)
        metrics?.seekToEndOfFile()
    }

    public func record(iteration: Int, report: StepReport, dataWait: Double) {
        guard enabled else { return }
        if firstLoss == nil { firstLoss = report.total }
        lastLoss = report.total
        var line: [String: Any] = ["iteration": iteration, "total_loss": Double(report.total), "lr": report.learningRate,
                                   "grad_norm": report.gradNorm, "time_data_wait": dataWait, "time_forward": report.forward,
                                   "time_criterion": report.criterion, "time_backward": report.backward,
                                   "time_allreduce_wait": report.allReduceWait, "time_optimizer": report.optimizer]
        for (k, v) in report.losses { line[k] = v.isFinite ? Double(v) : Double.nan }
        if let data = try? JSONSerialization.data(withJSONObject: line.mapValues { ($0 as? Double).map { $0.isFinite ? $0 : 0 } ?? $0 },
                                                  options: [.sortedKeys]) {
            metrics?.write(data + Data("\n".utf8))
        }
        if iteration % period == 0 || iteration == maxIter || iteration == 1 {
            let elapsed = Date().timeIntervalSince(start)
            let stepTime = report.forward + report.criterion + report.backward + report.optimizer + report.allReduceWait + dataWait
            print(String(format: "step %d/%d  loss %.4f  ce %.4f  mask %.4f  dice %.4f  lr %.2e  %.2f img/s  elapsed %.0f s",
                         iteration, maxIter, report.total, report.losses["loss_cross_entropy"] ?? 0, report.losses["loss_mask"] ?? 0,
                         report.losses["loss_dice"] ?? 0, report.learningRate, Double(imagesPerStep) / max(stepTime, 1e-9), elapsed))
            fflush(nil)
        }
    }

    public func finish(iteration: Int) {
        guard enabled else { return }
        try? metrics?.synchronize()
        print(String(format: "done: %d steps, loss %.4f → %.4f", iteration, firstLoss ?? 0, lastLoss))
    }
}
