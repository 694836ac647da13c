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
        """)

    @Option(help: "The experiment's runs folder (cluster/experiment.sh --out).")
    var runs: String

    @Option(help: "Seeds, separated by spaces or commas, e.g. \"1 2 3\".")
    var seeds: String

    @Option(help: "Output folder of the report.")
    var output: String

    @Option(help: "Training steps per run.")
    var steps: Int

    @Option(help: "MPI ranks per run.")
    var ranks: Int

    @Option(help: "Wall time of the whole experiment in seconds.")
    var wallSeconds: Int

    @Option(help: "The command that reproduces the experiment (quoted in the report).")
    var command: String

    @Option(help: "Markdown file included as the Discussion (default: OUTPUT/discussion.md if it exists).")
    var notes: String?

    func run() throws {
        let parts = seeds.split(whereSeparator: { $0 == " " || $0 == "," })
        let seedList = try parts.map { p -> Int in
            guard let s = Int(p) else { throw ValidationError("--seeds: \"\(p)\" is not an integer") }
            return s
        }
        guard !seedList.isEmpty else { throw ValidationError("--seeds: no seed given") }
        if let notes, !FileManager.default.fileExists(atPath: notes) { throw ValidationError("--notes: \(notes) does not exist") }
        do {
            let loaded = try ExperimentRuns.load(directory: runs, seeds: seedList)
            let options = ExperimentReportOptions(output: output, steps: steps, ranks: ranks, wallSeconds: wallSeconds,
                                                  command: command, notes: notes)
            let path = try ExperimentReport.write(loaded, options: options)
            print("wrote \(path), \(output)/summary.json and 5 plots")
        } catch let e as ExperimentReportError {
            throw RuntimeError(e.description)
        }
    }
}
