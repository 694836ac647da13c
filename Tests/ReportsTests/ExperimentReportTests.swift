import Datasets
import Foundation
import Reports
import Testing
import Visualization

/// Builds tiny synthetic run folders `<root>/<model>-seed<S>/` in a fresh temporary directory.
struct FakeRuns {
    let root: String

    init() throws {
        root = NSTemporaryDirectory() + "experiment-report-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }

    static let config = """
        loss:
          class_weight: 2
          dice_weight: 5
          mask_weight: 5e0
        model:
          backbone:
            widths:
            - 16
            - 32
          decoder:
            hidden_dim: 64
            num_queries: 20
            dec_layers: 3
          mask_piloting:
            enabled: ENABLED
        solver:
          ims_per_batch: 8
          max_iter: MAXITER

        """

    /// One run: `steps` step lines with losses (ce, mask, dice) = (1, 0.1, 0.2)·(1 + seed/10) / step, evals every
    /// 2 steps with AP = `ap`·step/steps, a final results.json with `ap` and a 3-layer consistency table.
    /// `apCurve` replaces the evaluations' AP by step; `gradients` adds grad_norm (10·step) to every step line and,
    /// on even steps, a gradient split (‖g_m‖ 6·step, ‖g_p‖ 8·step, cosine 0: so ‖g‖ = 10·step).
    func addRun(model: String, seed: Int, ap: Double, steps: Int = 4, apSmall: Double = -100, metricsText: String? = nil,
                apCurve: [Int: Double]? = nil, gradients: Bool = false, extraConfig: String = "") throws {
        let dir = "\(root)/\(model)-seed\(seed)"
        try FileManager.default.createDirectory(atPath: dir + "/eval", withIntermediateDirectories: true)
        var lines: [String] = []
        for step in 1...steps {
            let f = (1 + Double(seed) / 10) / Double(step)
            var losses = "\"loss_cross_entropy\":\(f),\"loss_mask\":\(0.1 * f),\"loss_dice\":\(0.2 * f),\"loss_cross_entropy_0\":9"
            if model.hasPrefix("mpformer") { losses += ",\"loss_cross_entropy_dn\":100,\"loss_mask_dn\":100" }
            var grad = ""
            if gradients {
                grad = ",\"grad_norm\":\(10 * step)"
                if model.hasPrefix("mpformer") && step % 2 == 0 {
                    grad += ",\"grad_norm_matching\":\(6 * step),\"grad_norm_piloting\":\(8 * step),\"grad_cosine\":0"
                }
            }
            lines.append("{\"epoch\":0\(grad),\"losses\":{\(losses)},\"lr\":0.1,\"step\":\(step),\"time\":1}")
            if step % 2 == 0 {
                let a = apCurve?[step] ?? ap * Double(step) / Double(steps)
                lines.append("{\"eval\":{\"AP\":\(a),\"APl\":-100,\"mIoU-L_0\":50,\"mIoU-L_1\":70,\"Util_0\":40,\"Util_1\":60,\"Util_2\":100},\"eval_images\":4,\"step\":\(step),\"time\":2}")
            }
        }
        try (metricsText ?? lines.joined(separator: "\n") + "\n").write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        let results = """
            {"AP": \(ap), "AP50": \(ap + 10), "AP75": \(ap - 1), "APs": \(apSmall), "APm": \(ap), "APl": -100, "AR100": \(ap + 5),
             "layer_consistency": {"images": 4, "layers": [
               {"layer": 0, "mIoU": 0.5, "util": 0.25, "matched": 8, "kept": 2, "iouQueries": 8},
               {"layer": 1, "mIoU": \(0.6 + Double(seed) / 100), "util": 0.5, "matched": 8, "kept": 4, "iouQueries": 8},
               {"layer": 2, "util": 1.0, "matched": 8, "kept": 8}]},
             "task": "instance", "images": 4}
            """
        try results.write(toFile: dir + "/eval/results.json", atomically: true, encoding: .utf8)
        try "\(100 + seed)\n".write(toFile: dir + "/train_seconds", atomically: true, encoding: .utf8)
        try (Self.config.replacingOccurrences(of: "ENABLED", with: model.hasPrefix("mpformer") ? "true" : "false")
                .replacingOccurrences(of: "MAXITER", with: String(steps)) + extraConfig)
            .write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
    }
}

@Suite struct ExperimentReportTests {
    @Test func meanStdAndPairedDifference() throws {
        let fake = try FakeRuns()
        defer { fake.remove() }
        try fake.addRun(model: "mask2former", seed: 1, ap: 10)
        try fake.addRun(model: "mask2former", seed: 2, ap: 20)
        try fake.addRun(model: "mpformer", seed: 1, ap: 12)
        try fake.addRun(model: "mpformer", seed: 2, ap: 26)
        let runs = try ExperimentRuns.load(directory: fake.root, seeds: [1, 2])
        let a = runs.final("AP", "mask2former"), b = runs.final("AP", "mpformer")
        #expect(a.mean == 15 && b.mean == 19)
        #expect(abs(a.std! - 50.0.squareRoot()) < 1e-12)  // (−5)² + 5² over n − 1 = 1
        let d = a.pairedDifference(to: b)
        #expect(d.values == [1: 2, 2: 6])
        #expect(d.mean == 4)
        #expect(abs(d.std! - 8.0.squareRoot()) < 1e-12)  // 2.83
        #expect(ExperimentReport.format(d, signed: true) == "+4.00 ± 2.83")
        // Layers ×100: mIoU-L_1 is 61 and 62 → 61.5 ± 0.71; the last layer has no mIoU.
        #expect(runs.layerCount == 3)
        #expect(abs(runs.layer(1, util: false, "mpformer").mean! - 61.5) < 1e-9)
        #expect(runs.layer(2, util: false, "mpformer").n == 0)
        #expect(runs.layer(2, util: true, "mask2former").mean == 100)
        // The matched loss uses the config weights 2, 5, 5 and ignores aux and _dn terms: (2 + 0.5 + 1)·1.1 at step 1.
        #expect(abs(runs.mpformer[0].loss[0].value - 3.5 * 1.1) < 1e-9)
        #expect(runs.mpformer[0].loss.count == 4 && runs.mpformer[0].evals.map(\.step) == [2, 4])
    }

    /// A split's counts come from the recorded dataset.json; a `data.train_split` list (`[a, b]`) sums its splits.
    @Test func datasetCountsOfASplitAndAList() throws {
        let dir = NSTemporaryDirectory() + "maskpilot-counts-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(#"{"a": {"images": 3, "annotations": 10, "categories": 5}, "b": {"images": 2, "annotations": 7, "categories": 5}}"#.utf8)
            .write(to: URL(fileURLWithPath: dir + "/dataset.json"))
        #expect(ExperimentReport.datasetCounts(dir, dataRoot: "/nowhere", "a").map { [$0.images, $0.annotations, $0.categories] } == [3, 10, 5])
        #expect(ExperimentReport.datasetCounts(dir, dataRoot: "/nowhere", "[a, b]").map { [$0.images, $0.annotations, $0.categories] } == [5, 17, 5])
        #expect(ExperimentReport.datasetCounts(dir, dataRoot: "/nowhere", "[a, c]") == nil)
    }

    @Test func oneValueHasNoStd() {
        let s = SeedStats([3: 7])
        #expect(s.mean == 7 && s.std == nil && s.standardError == nil)
        #expect(ExperimentReport.format(s) == "7.00")
        #expect(ExperimentReport.format(SeedStats([:])) == "—")
    }

    @Test func movingAverage() {
        let p: [(x: Double, y: Double)] = [(1, 1), (2, 2), (3, 3), (4, 4), (6, 10)]
        let m = ExperimentMath.movingAverage(p, window: 2)
        // Windows (x − 2, x]: {1}, {1,2}, {2,3}, {3,4}, {6} (5 is missing, so only one point).
        #expect(m.map(\.x) == [1, 2, 3, 4, 6])
        #expect(m.map(\.y) == [1, 1.5, 2.5, 3.5, 10])
        #expect(ExperimentMath.movingAverage(p, window: 1).map(\.y) == p.map(\.y))
        #expect(ExperimentMath.movingAverage([], window: 3).isEmpty)
    }

    @Test func verdicts() {
        let base = SeedStats([1: 10, 2: 20, 3: 30])
        let win = ExperimentReport.verdict(metric: "AP", mask2former: base, mpformer: SeedStats([1: 12, 2: 22.5, 3: 31.5]))
        #expect(win.wins == 3 && win.significant)
        #expect(win.sentence.hasPrefix("MP-Former's final AP is higher in 3 of 3 seeds; the mean paired difference is +2.00 ± 0.50 AP"))
        #expect(win.sentence.contains("MP-Former is better"))

        let loss = ExperimentReport.verdict(metric: "AP", mask2former: base, mpformer: SeedStats([1: 8, 2: 17, 3: 28]))
        #expect(loss.wins == 0 && loss.significant)
        #expect(loss.sentence.contains("higher in 0 of 3 seeds") && loss.sentence.contains("−2.33 ± 0.58 AP"))
        #expect(loss.sentence.contains("Mask2Former is better"))

        let noise = ExperimentReport.verdict(metric: "AP", mask2former: base, mpformer: SeedStats([1: 13, 2: 19, 3: 31]))
        #expect(noise.wins == 2 && !noise.significant)
        #expect(noise.sentence.contains("higher in 2 of 3 seeds") && noise.sentence.contains("within noise"))

        // The committed experiment's pattern: every seed lower, but t = 1.07 / 0.346 = 3.09 < 4.303 (2 degrees of freedom).
        let consistent = ExperimentReport.verdict(metric: "AP", mask2former: base, mpformer: SeedStats([1: 9.09, 2: 19.43, 3: 28.26]))
        #expect(consistent.wins == 0 && !consistent.significant)
        #expect(consistent.sentence.contains("not significant (paired t = 3.09, critical value 4.303 for 2 degrees of freedom, two-sided 5 %)"))
        #expect(consistent.sentence.contains("all seeds point the same way"))
        #expect(ExperimentReport.studentT975(degreesOfFreedom: 1) == 12.706 && ExperimentReport.studentT975(degreesOfFreedom: 9) == 2.262)
        #expect(ExperimentReport.studentT975(degreesOfFreedom: 11) == 2.228 && ExperimentReport.studentT975(degreesOfFreedom: 500) == 1.96)

        let single = ExperimentReport.verdict(metric: "AP", mask2former: SeedStats([1: 10]), mpformer: SeedStats([1: 11]))
        #expect(!single.significant && single.sentence.contains("1 of 1 seed;") && single.sentence.contains("one seed"))
    }

    @Test func undefinedValuesAreSkipped() throws {
        let fake = try FakeRuns()
        defer { fake.remove() }
        try fake.addRun(model: "mask2former", seed: 1, ap: 10, apSmall: 5)
        try fake.addRun(model: "mask2former", seed: 2, ap: 20, apSmall: -100)
        try fake.addRun(model: "mpformer", seed: 1, ap: 12)
        try fake.addRun(model: "mpformer", seed: 2, ap: 26)
        let runs = try ExperimentRuns.load(directory: fake.root, seeds: [1, 2])
        #expect(runs.final("APs", "mask2former").values == [1: 5])
        #expect(runs.final("APs", "mpformer").n == 0)
        #expect(runs.final("APl", "mpformer").n == 0)
        #expect(runs.mask2former[0].evals[0].metrics["APl"] == nil)
        #expect(runs.mask2former[0].evals[0].metrics["AP"] == 5)
    }

    @Test func malformedLineNamesFileAndLine() throws {
        let fake = try FakeRuns()
        defer { fake.remove() }
        let bad = "{\"losses\":{\"loss_cross_entropy\":1,\"loss_mask\":1,\"loss_dice\":1},\"step\":1}\n{\"losses\": oops\n{\"step\":3}\n"
        try fake.addRun(model: "mask2former", seed: 1, ap: 10, metricsText: bad)
        try fake.addRun(model: "mpformer", seed: 1, ap: 12)
        let error = #expect(throws: ExperimentReportError.self) { try ExperimentRuns.load(directory: fake.root, seeds: [1]) }
        #expect(error?.file == "\(fake.root)/mask2former-seed1/metrics.jsonl:2")
        #expect(error?.description.contains("malformed") == true)

        // A missing loss key names the key; a missing run folder names the folder.
        try fake.addRun(model: "mask2former", seed: 1, ap: 10, metricsText: "{\"losses\":{\"loss_mask\":1,\"loss_dice\":1},\"step\":1}\n")
        let missing = #expect(throws: ExperimentReportError.self) { try ExperimentRuns.load(directory: fake.root, seeds: [1]) }
        #expect(missing?.description.contains("metrics.jsonl:1: missing key losses.loss_cross_entropy") == true)
        let folder = #expect(throws: ExperimentReportError.self) { try ExperimentRuns.load(directory: fake.root, seeds: [2]) }
        #expect(folder?.description == "\(fake.root)/mask2former-seed2: missing run folder")

        // Numbers that cannot be a step or a duration are named, not converted (1e300 used to trap in Int(_:)).
        for (line, problem) in [("{\"losses\":{\"loss_cross_entropy\":1,\"loss_mask\":1,\"loss_dice\":1},\"step\":1e300}", "step is not a whole number"),
                                ("{\"losses\":{\"loss_cross_entropy\":1,\"loss_mask\":1,\"loss_dice\":1},\"step\":2.5}", "step is not a whole number"),
                                ("{\"losses\":{\"loss_cross_entropy\":1,\"loss_mask\":1,\"loss_dice\":1},\"step\":1,\"timing\":{\"forward\":1e300}}",
                                 "timing.forward is not a duration"),
                                ("{\"eval\":{\"AP\":1},\"eval_seconds\":-3,\"step\":1}", "eval_seconds is not a duration")] {
            try fake.addRun(model: "mask2former", seed: 1, ap: 10, metricsText: line + "\n")
            let e = #expect(throws: ExperimentReportError.self) { try ExperimentRuns.load(directory: fake.root, seeds: [1]) }
            #expect(e?.description.contains("metrics.jsonl:1: \(problem)") == true, "\(String(describing: e))")
        }

        // A last line still being written (no newline) is skipped.
        let partial = "{\"losses\":{\"loss_cross_entropy\":1,\"loss_mask\":1,\"loss_dice\":1},\"step\":1}\n{\"losses\":{\"loss_cr"
        try fake.addRun(model: "mask2former", seed: 1, ap: 10, metricsText: partial)
        let runs = try ExperimentRuns.load(directory: fake.root, seeds: [1])
        #expect(runs.mask2former[0].loss.count == 1)
    }

    /// A run stopped after step 3 and resumed from its step-2 checkpoint repeats steps 3 and the step-2… evaluations
    /// after it: the repeated lines replace the earlier ones.
    @Test func resumedLogReplacesRepeatedSteps() throws {
        let fake = try FakeRuns()
        defer { fake.remove() }
        func step(_ s: Int, _ v: Double) -> String {
            "{\"grad_norm\":\(v),\"losses\":{\"loss_cross_entropy\":\(v),\"loss_mask\":0,\"loss_dice\":0},\"step\":\(s),"
                + "\"timing\":{\"forward\":\(v),\"backward\":1}}"
        }
        func eval(_ s: Int, _ ap: Double) -> String { "{\"eval\":{\"AP\":\(ap)},\"eval_seconds\":10,\"step\":\(s)}" }
        let text = [step(1, 1), step(2, 1), eval(2, 10), step(3, 1), eval(3, 11), step(3, 2), eval(3, 12), step(4, 2)].joined(separator: "\n") + "\n"
        try fake.addRun(model: "mask2former", seed: 1, ap: 10, metricsText: text)
        try fake.addRun(model: "mpformer", seed: 1, ap: 12)
        let run = try ExperimentRuns.load(directory: fake.root, seeds: [1]).mask2former[0]
        #expect(run.loss.map(\.step) == [1, 2, 3, 4] && run.loss.map(\.value) == [2, 2, 4, 4])
        #expect(run.gradients.map(\.norm) == [1, 1, 2, 2])
        #expect(run.evals.map(\.step) == [2, 3] && run.evals.map { $0.metrics["AP"]! } == [10, 12])
        // Steps 1, 2 (2 s each), 3, 4 (3 s each) and two evaluations (10 s each).
        #expect(run.loggedSeconds == 30)
    }

    /// A run's config.yaml flattens through MaskPilotConfig: the file's values over the defaults, by dotted key.
    @Test func configFlattening() throws {
        let c = try ExperimentRun.flattenConfig(FakeRuns.config.replacingOccurrences(of: "ENABLED", with: "true")
            .replacingOccurrences(of: "MAXITER", with: "4"), path: "config.yaml")
        #expect(c["loss.mask_weight"].flatMap(Double.init) == 5)
        #expect(c["model.backbone.widths"] == "[16, 32]")
        #expect(c["model.decoder.num_queries"] == "20")
        #expect(c["solver.ims_per_batch"] == "8")
        #expect(c["model.mask_piloting.enabled"] == "true")
        #expect(c["seed"] != nil && c["input.crop_size"] != nil)   // defaults are there too
        #expect(throws: ExperimentReportError.self) { _ = try ExperimentRun.flattenConfig("input:\n  sizes: [1]\n", path: "bad.yaml") }
    }

    @Test func writesReportWithTablesAndDecodablePlots() throws {
        let fake = try FakeRuns()
        defer { fake.remove() }
        for (seed, a, b) in [(1, 10.0, 12.0), (2, 20.0, 26.0)] {
            try fake.addRun(model: "mask2former", seed: seed, ap: a)
            try fake.addRun(model: "mpformer", seed: seed, ap: b)
        }
        let out = fake.root + "/report"
        try FileManager.default.createDirectory(atPath: out + "/overlays/mpformer", withIntermediateDirectories: true)
        try Canvas(width: 4, height: 4).writePNG(to: out + "/overlays/mpformer/img1_overlay.png")
        try Canvas(width: 4, height: 4).writePNG(to: out + "/overlays/mpformer/img1_instances.png")
        try "We saw things.\n".write(toFile: out + "/discussion.md", atomically: true, encoding: .utf8)
        let runs = try ExperimentRuns.load(directory: fake.root, seeds: [1, 2])
        let path = try ExperimentReport.write(runs, options: ExperimentReportOptions(
            output: out, steps: 4, ranks: 2, wallSeconds: 3725, command: "cluster/experiment.sh --steps 4 --seeds \"1 2\""))
        let md = try String(contentsOfFile: path, encoding: .utf8)

        #expect(md.contains("| Mask2Former | 2 | 15.00 ± 7.07 | 25.00 ± 7.07 |"))
        #expect(md.contains("| MP-Former | 2 | 19.00 ± 9.90 |"))
        #expect(md.contains("| MP − M2F (paired by seed) | 2 | +4.00 ± 2.83 |"))
        #expect(md.contains("| 2 | MP − M2F | +6.00 |"))
        #expect(md.contains("MP-Former's final AP is higher in 2 of 2 seeds; the mean paired difference is +4.00 ± 2.83 AP"))
        #expect(md.contains("| 1 | 61.50 ± 0.71 | 61.50 ± 0.71 | 50.00 ± 0.00 | 50.00 ± 0.00 |"))
        #expect(md.contains("| 2 | — | — | 100.00 ± 0.00 | 100.00 ± 0.00 |"))
        #expect(md.contains("cluster/experiment.sh --steps 4 --seeds \"1 2\""))
        #expect(md.contains("1 h 02 min"))
        #expect(md.contains("differ in no other key"))
        #expect(md.contains("| img1 | (missing) | ![](overlays/mpformer/img1_overlay.png) |"))
        #expect(!md.contains("img1_instances"))
        #expect(md.contains("## Discussion\n\nWe saw things."))

        // Every referenced PNG exists, decodes and is 800×500.
        var plots = 0
        for line in md.split(separator: "\n") where line.hasPrefix("![](") {
            let file = String(line.dropFirst(4).dropLast())
            let bytes = try [UInt8](Foundation.Data(contentsOf: URL(fileURLWithPath: out + "/" + file)))
            let image = try decodePNG(bytes, file: file)
            #expect(image.width == 800 && image.height == 500)
            plots += 1
        }
        #expect(plots == 5)

        let summary = try JSONSerialization.jsonObject(with: Foundation.Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as? [String: Any]
        let ap = (summary?["metrics"] as? [String: Any])?["AP"] as? [String: Any]
        let diff = ap?["paired_difference"] as? [String: Any]
        #expect(diff?["mean"] as? Double == 4)
        #expect(((diff?["values"] as? [String: Any])?["2"] as? Double) == 6)
        #expect((summary?["layers"] as? [Any])?.count == 3)
    }

    @Test func missingDiscussionAndOverlaysAreSaid() throws {
        let fake = try FakeRuns()
        defer { fake.remove() }
        try fake.addRun(model: "mask2former", seed: 1, ap: 10)
        try fake.addRun(model: "mpformer", seed: 1, ap: 12)
        let runs = try ExperimentRuns.load(directory: fake.root, seeds: [1])
        let path = try ExperimentReport.write(runs, options: ExperimentReportOptions(
            output: fake.root + "/out", steps: 4, ranks: 1, wallSeconds: 10, command: "x"))
        let md = try String(contentsOfFile: path, encoding: .utf8)
        #expect(md.contains("has not been written yet"))
        #expect(md.contains("No overlays"))
        #expect(md.contains("| Mask2Former | 1 | 10.00 |"))
    }
}
