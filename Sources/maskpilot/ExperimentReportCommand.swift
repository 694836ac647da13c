// `maskpilot experiment-report`: the MP-Former vs Mask2Former experiment's report.md, summary.json and plots from
// the run folders cluster/experiment.sh leaves. Replaces the reference's hand-made result tables and matplotlib figures.
import ArgumentParser
import Foundation
import Reports
import Visualization

struct ExperimentReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment-report",
        abstract: "Write the MP-Former vs Mask2Former experiment report (report.md, summary.json, PNG plots).",
        discussion: """
        Reads RUNS/<model>-seed<S>/ for model in mask2former, mpformer and every seed: metrics.jsonl (loss and \
        periodic evaluations), eval/results.json (final COCO mask AP and layer consistency), config.yaml and \
        train_seconds; and RUNS/data/annotations/instances_<split>.json for the dataset sizes. Writes into OUTPUT: \
        report.md (setup, results over seeds with paired differences and a verdict, layer consistency, plots, \
        OUTPUT/overlays/{mask2former,mpformer}/*.png side by side, the discussion, how to reproduce), \
        summary.json (every aggregated number) and loss.png, ap.png, layer_miou.png, layer_util.png, \
        consistency_vs_step.png. cluster/experiment.sh runs it at the end.

        With --arms (cluster/experiment.sh --preset powered), the paired-arms report instead: RUNS/<arm>-seed<S>/ for \
        every arm, the first the baseline; runs that have not finished are listed and left out. It adds AP vs step \
        with paired differences, the step each arm first reaches 90 % of the baseline's final AP, a paired t-test with \
        its 95 % interval and minimum detectable effect, the gradient diagnostics (norm before clipping, the \
        matching / MP split) and Util_i / mIoU-L_i at every evaluation; plots ap.png, ap_difference.png, \
        util_vs_step.png, layer_util.png, grad_norm.png, gradient_split.png.
        """)

    @Option(help: "The experiment's runs folder (cluster/experiment.sh --out).")
    var runs: String

    @Option(help: "Seeds, separated by spaces or commas, e.g. \"1 2 3\".")
    var seeds: String

    @Option(help: "Arms, separated by spaces or commas, the baseline first (e.g. \"mask2former mpformer mpformer-halfmp\"): the paired-arms report.")
    var arms: String?

    @Option(help: "Output folder of the report.")
    var output: String

    @Option(parsing: .unconditional, help: "Training steps per run.")
    var steps: Int

    @Option(parsing: .unconditional, help: "MPI ranks per run.")
    var ranks: Int

    @Option(parsing: .unconditional, help: "Wall time of the whole experiment in seconds.")
    var wallSeconds: Int

    @Option(help: "The command that reproduces the experiment (quoted in the report).")
    var command: String

    @Option(help: "Markdown file included as the Discussion (default: OUTPUT/discussion.md if it exists).")
    var notes: String?

    func validate() throws {
        try requireOption("--steps", steps, atLeast: 1)
        try requireOption("--ranks", ranks, atLeast: 1)
        try requireOption("--wall-seconds", wallSeconds, atLeast: 0)
    }

    func run() throws {
        let parts = seeds.split(whereSeparator: { $0 == " " || $0 == "," })
        let seedList = try parts.map { p -> Int in
            guard let s = Int(p) else { throw ValidationError("--seeds: \"\(p)\" is not an integer") }
            return s
        }
        guard !seedList.isEmpty else { throw ValidationError("--seeds: no seed given") }
        if let seed = firstRepeated(seedList) { throw ValidationError("--seeds: \(seed) is listed twice") }
        if let notes, !FileManager.default.fileExists(atPath: notes) { throw ValidationError("--notes: \(notes) does not exist") }
        let options = ExperimentReportOptions(output: output, steps: steps, ranks: ranks, wallSeconds: wallSeconds,
                                              command: command, notes: notes)
        do {
            if let arms {
                let armList = arms.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
                guard !armList.isEmpty else { throw ValidationError("--arms: no arm given") }
                if let arm = firstRepeated(armList) { throw ValidationError("--arms: \(arm) is listed twice") }
                let loaded = try ExperimentArms.load(directory: runs, seeds: seedList, arms: armList)
                let path = try ArmsReport.write(loaded, options: options)
                print("wrote \(path), \(output)/summary.json and 6 plots"
                      + (loaded.missing.isEmpty ? "" : " (\(loaded.missing.count) unfinished run(s) left out)"))
                return
            }
            let loaded = try ExperimentRuns.load(directory: runs, seeds: seedList)
            let path = try ExperimentReport.write(loaded, options: options)
            print("wrote \(path), \(output)/summary.json and 5 plots")
        } catch let e as ExperimentReportError {
            throw RuntimeError(e.description)
        }
    }
}

/// The first element of `list` that an earlier one equals.
private func firstRepeated<T: Hashable>(_ list: [T]) -> T? {
    var seen = Set<T>()
    return list.first { !seen.insert($0).inserted }
}
