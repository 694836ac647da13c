// The report of an experiment with a baseline arm and variants paired by seed (cluster/experiment.sh --preset powered):
// AP vs step with paired differences, the step each arm first reaches 90 % of the baseline's final AP, a paired
// t-test with its minimum detectable effect, the gradient diagnostics and layer consistency at every evaluation.
// Writes report.md, summary.json and PNG plots, as ExperimentReport does for the two-arm experiment.
import Foundation
import Training
import Visualization

// MARK: - Statistics

/// Student's t distribution: CDF through the regularized incomplete beta function, quantiles by bisection.
public enum StudentT {
    /// P(T ≤ t) for `degreesOfFreedom` ν > 0.
    public static func cdf(_ t: Double, degreesOfFreedom nu: Double) -> Double {
        let tail = 0.5 * regularizedIncompleteBeta(nu / (nu + t * t), a: nu / 2, b: 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// Two-sided p-value of |T| ≥ |t|.
    public static func twoSidedP(_ t: Double, degreesOfFreedom nu: Double) -> Double {
        t.isInfinite ? 0 : regularizedIncompleteBeta(nu / (nu + t * t), a: nu / 2, b: 0.5)
    }

    /// The t with P(T ≤ t) = p, for 0 < p < 1.
    public static func quantile(_ p: Double, degreesOfFreedom nu: Double) -> Double {
        if p < 0.5 { return -quantile(1 - p, degreesOfFreedom: nu) }
        var low = 0.0, high = 1.0
        while cdf(high, degreesOfFreedom: nu) < p { high *= 2 }
        for _ in 0..<200 {
            let mid = (low + high) / 2
            if cdf(mid, degreesOfFreedom: nu) < p { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }

    /// I_x(a, b) by the continued fraction of the incomplete beta function (modified Lentz), using the symmetry
    /// I_x(a, b) = 1 − I_{1−x}(b, a) where the fraction converges slowly.
    public static func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let logFront = logGammas + logPowers
        if x > (a + 1) / (a + b + 2) { return 1 - regularizedIncompleteBeta(1 - x, a: b, b: a) }
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var f = d
        for m in 1...500 {
            let m = Double(m)
            let k = a + 2 * m
            let even: Double = m * (b - m) * x / ((k - 1) * k)
            d = 1 + even * d; if abs(d) < tiny { d = tiny }
            c = 1 + even / c; if abs(c) < tiny { c = tiny }
            d = 1 / d; f *= d * c
            let odd: Double = -(a + m) * (a + b + m) * x / (k * (k + 1))
            d = 1 + odd * d; if abs(d) < tiny { d = tiny }
            c = 1 + odd / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            f *= delta
            if abs(delta - 1) < 1e-15 { break }
        }
        return exp(logFront) * f / a
    }
}

/// A two-sided paired t-test of `arm − baseline` over the seeds both have, with the 95 % confidence interval and the
/// minimum detectable effect: the true mean difference this many seeds would detect with probability `power` at the
/// 5 % level, given the observed spread of the differences, (t_{0.975, n−1} + t_{power, n−1}) · std / √n.
public struct PairedTest: Sendable {
    public var difference: SeedStats
    public var power: Double
    public init(baseline: SeedStats, arm: SeedStats, power: Double = 0.8) {
        difference = baseline.pairedDifference(to: arm); self.power = power
    }

    public var n: Int { difference.n }
    public var mean: Double? { difference.mean }
    public var degreesOfFreedom: Double { Double(n - 1) }
    public var t: Double? {
        guard let m = mean, let se = difference.standardError else { return nil }
        return se > 0 ? m / se : (m == 0 ? 0 : m.sign == .minus ? -.infinity : .infinity)
    }
    public var p: Double? { t.map { StudentT.twoSidedP($0, degreesOfFreedom: degreesOfFreedom) } }
    public var interval95: (low: Double, high: Double)? {
        guard let m = mean, let se = difference.standardError else { return nil }
        let q = StudentT.quantile(0.975, degreesOfFreedom: degreesOfFreedom) * se
        return (m - q, m + q)
    }
    public var minimumDetectableEffect: Double? {
        guard let se = difference.standardError else { return nil }
        return (StudentT.quantile(0.975, degreesOfFreedom: degreesOfFreedom) + StudentT.quantile(power, degreesOfFreedom: degreesOfFreedom)) * se
    }
    /// Seeds where the arm is higher.
    public var wins: Int { difference.values.values.filter { $0 > 0 }.count }
}

// MARK: - Runs

/// The arms of an experiment over the seeds: `<directory>/<arm>-seed<S>/`, the first arm the baseline. Runs without
/// `eval/results.json` (not finished) are listed in `missing`, so a partial experiment still reports.
public struct ExperimentArms: Sendable {
    public var directory: String
    public var seeds: [Int]
    public var arms: [String]
    public var runs: [String: [ExperimentRun]]
    public var missing: [String]
    public var baseline: String { arms[0] }

    public static func load(directory: String, seeds: [Int], arms: [String]) throws -> ExperimentArms {
        guard !seeds.isEmpty else { throw ExperimentReportError(directory, "no seeds given") }
        guard !arms.isEmpty else { throw ExperimentReportError(directory, "no arms given") }
        var runs: [String: [ExperimentRun]] = [:], missing: [String] = []
        for arm in arms {
            for seed in seeds {
                let dir = "\(directory)/\(arm)-seed\(seed)"
                guard FileManager.default.fileExists(atPath: dir + "/eval/results.json") else { missing.append(dir); continue }
                var run = try ExperimentRun.load(directory: dir, model: arm, seed: seed)
                // A run stopped during its last in-training evaluation has no log line for the last step; its final
                // evaluation (eval/results.json, the same weights and images) stands in.
                if let last = run.config["solver.max_iter"].flatMap(Int.init), !run.evals.contains(where: { $0.step == last }) {
                    var metrics = run.final
                    for row in run.layers {
                        if let u = row.util { metrics["Util_\(row.layer)"] = 100 * u }
                        if let m = row.mIoU { metrics["mIoU-L_\(row.layer)"] = 100 * m }
                    }
                    run.evals.append((last, metrics))
                }
                runs[arm, default: []].append(run)
            }
        }
        guard runs[arms[0]] != nil else {
            throw ExperimentReportError(directory, "no finished run of the baseline arm \(arms[0]) (\(arms[0])-seed<S>/eval/results.json)")
        }
        return ExperimentArms(directory: directory, seeds: seeds, arms: arms, runs: runs, missing: missing)
    }

    public func runs(_ arm: String) -> [ExperimentRun] { runs[arm] ?? [] }

    /// A final metric of one arm over seeds.
    public func final(_ metric: String, _ arm: String) -> SeedStats { SeedStats.final(metric, of: runs(arm)) }

    /// A metric of the periodic evaluation at `step`, over seeds.
    public func atStep(_ metric: String, _ step: Int, _ arm: String) -> SeedStats {
        SeedStats(Dictionary(uniqueKeysWithValues: runs(arm).compactMap { r in
            r.evals.last(where: { $0.step == step })?.metrics[metric].map { (r.seed, $0) }
        }))
    }

    /// Every evaluated step of any run, sorted.
    public var evalSteps: [Int] { Set(runs.values.joined().flatMap { $0.evals.map(\.step) }).sorted() }

    /// The first evaluated step at which each run of `arm` reaches `fraction` × the baseline's final AP of its seed
    /// (nil: never within the run; seeds without a baseline run are left out).
    public func stepsToReach(_ fraction: Double, _ arm: String) -> [Int: Int?] {
        var out: [Int: Int?] = [:]
        let target = final("AP", baseline)
        for r in runs(arm) {
            guard let t = target.values[r.seed] else { continue }
            // updateValue, since assigning nil through the subscript would remove the seed.
            out.updateValue(r.evals.sorted { $0.step < $1.step }.first { ($0.metrics["AP"] ?? -.infinity) >= fraction * t }.map(\.step),
                            forKey: r.seed)
        }
        return out
    }

    /// The mean AP over a run's periodic evaluations (the area under its AP curve ÷ its length), over seeds.
    public func meanAPOverEvaluations(_ arm: String) -> SeedStats {
        SeedStats(Dictionary(uniqueKeysWithValues: runs(arm).compactMap { r in
            ExperimentMath.mean(r.evals.compactMap { $0.metrics["AP"] }).map { (r.seed, $0) }
        }))
    }

    public var layerCount: Int { runs.values.joined().map { ($0.layers.map(\.layer).max() ?? -1) + 1 }.max() ?? 0 }

    /// Config keys whose value in an arm's run differs from the baseline run of the same seed (besides `seed`).
    public func configDifferences(_ arm: String) -> [String: String] {
        var out: [String: String] = [:]
        for r in runs(arm) {
            guard let b = runs(baseline).first(where: { $0.seed == r.seed }) else { continue }
            for k in Set(r.config.keys).union(b.config.keys) where r.config[k] != b.config[k] { out[k] = r.config[k] ?? "(absent)" }
        }
        return out
    }
}

/// One run's gradient numbers over its logged steps.
public struct GradientSummary: Sendable {
    /// Median and 5th / 95th percentiles of the norm before clipping, and the share of steps above the clip.
    public var median: Double, p5: Double, p95: Double, clippedShare: Double
    /// Means over the split steps: ‖g_m‖, ‖g_p‖, ‖g_p‖ / ‖g_m‖, cos(g_m, g_p), and cos(g, g_m) = (‖g_m‖ + ‖g_p‖ cos) / ‖g‖,
    /// how far the MP losses turn the step's gradient away from the matching objective's. Nil without split steps.
    public var matching: Double?, piloting: Double?, ratio: Double?, cosine: Double?, alignment: Double?
    public var splitSteps: Int

    public init?(_ records: [ExperimentRun.GradientRecord], clip: Double) {
        let norms = records.map(\.norm).sorted()
        guard !norms.isEmpty else { return nil }
        func quantile(_ q: Double) -> Double { norms[min(norms.count - 1, Int((q * Double(norms.count - 1)).rounded()))] }
        median = quantile(0.5); p5 = quantile(0.05); p95 = quantile(0.95)
        clippedShare = Double(norms.filter { $0 > clip }.count) / Double(norms.count)
        let split = records.compactMap { r -> (m: Double, p: Double, c: Double, g: Double)? in
            guard let m = r.matching, let p = r.piloting, let c = r.cosine else { return nil }
            return (m, p, c, r.norm)
        }
        splitSteps = split.count
        matching = ExperimentMath.mean(split.map(\.m))
        piloting = ExperimentMath.mean(split.map(\.p))
        ratio = ExperimentMath.mean(split.filter { $0.m > 0 }.map { $0.p / $0.m })
        cosine = ExperimentMath.mean(split.map(\.c))
        alignment = ExperimentMath.mean(split.filter { $0.g > 0 }.map { ($0.m + $0.p * $0.c) / $0.g })
    }
}

// MARK: - Report

public enum ArmsReport {
    /// Display names of the arms cluster/experiment.sh defines (others show as given), in the characters the plots'
    /// font has (ASCII and ± × ° µ −).
    public static let names = ["mask2former": "Mask2Former", "mpformer": "MP-Former",
                               "mpformer-first4": "MP-Former, MP in layers 0-3", "mpformer-halfmp": "MP-Former, MP losses × 0.5"]
    static func name(_ arm: String) -> String { names[arm] ?? arm }
    static func color(_ arms: ExperimentArms, _ arm: String) -> RGB { Palette.color(arms.arms.firstIndex(of: arm) ?? 0) }
    /// The convergence criterion: the first evaluation at this fraction of the baseline's final AP.
    public static let convergenceFraction = 0.9

    @discardableResult
    public static func write(_ arms: ExperimentArms, options: ExperimentReportOptions) throws -> String {
        try FileManager.default.createDirectory(atPath: options.output, withIntermediateDirectories: true)
        try writePlots(arms, options: options)
        let json = try JSONSerialization.data(withJSONObject: summaryObject(arms, options: options), options: [.prettyPrinted, .sortedKeys])
        try json.write(to: URL(fileURLWithPath: options.output + "/summary.json"))
        let path = options.output + "/report.md"
        try markdown(arms, options: options).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func fixed(_ v: Double, _ digits: Int = 2) -> String { ExperimentReport.fixed(v, digits) }
    static func signed(_ v: Double, _ digits: Int = 2) -> String { ExperimentReport.signed(v, digits) }
    static func format(_ s: SeedStats, signed isSigned: Bool = false) -> String { ExperimentReport.format(s, signed: isSigned) }
    static func pValue(_ p: Double?) -> String { p.map { $0 < 0.001 ? "< 0.001" : String(format: "%.3f", $0) } ?? "—" }

    /// "−0.52 ± 0.80 (t = −1.45, p = 0.22)" for a paired difference.
    static func pairedCell(_ test: PairedTest) -> String {
        guard test.n > 0 else { return "—" }
        var s = format(test.difference, signed: true)
        if let t = test.t { s += " (t = \(t.isFinite ? signed(t) : "±∞"), p = \(pValue(test.p)))" }
        return s
    }

    // MARK: Markdown

    static func markdown(_ arms: ExperimentArms, options: ExperimentReportOptions) -> String {
        let base = arms.baseline, variants = Array(arms.arms.dropFirst())
        var md = ["# MP-Former vs Mask2Former, powered: paired arms on cluttered look-alike data", ""]
        md.append(setupParagraph(arms, options: options))
        md.append("")
        if !arms.missing.isEmpty {
            md += ["**Partial experiment:** \(arms.missing.count) run(s) have not finished and are left out of every "
                   + "number below: " + arms.missing.map { "`\(URL(fileURLWithPath: $0).lastPathComponent)`" }.joined(separator: ", ")
                   + ". Run the same command again to continue.", ""]
        }

        // Final results and the paired test.
        let metrics = ExperimentReport.metrics
        md += ["## Final results and the paired test", "",
               "COCO mask AP/AR (%) on the held-out split from each run's `eval/results.json`: mean ± sample std over seeds.", ""]
        md.append("| arm | n | " + metrics.joined(separator: " | ") + " |")
        md.append("|---|---:|" + String(repeating: "---:|", count: metrics.count))
        for arm in arms.arms {
            let stats = metrics.map { arms.final($0, arm) }
            md.append("| \(name(arm)) | \(stats.map(\.n).max() ?? 0) | " + stats.map { format($0) }.joined(separator: " | ") + " |")
        }
        md += ["", "Final AP of each variant minus \(name(base))'s of the same seed: a two-sided paired t-test (n − 1 degrees "
               + "of freedom), its 95 % confidence interval, and the minimum detectable effect (MDE): the true difference "
               + "this many seeds detect with 80 % power at the 5 % level given the observed spread, "
               + "(t₀.₉₇₅ + t₀.₈) · std / √n.", "",
               "| arm − \(name(base)) | n | higher in | mean ± std | t | p | 95 % CI | MDE (80 %) |",
               "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for arm in variants {
            let test = PairedTest(baseline: arms.final("AP", base), arm: arms.final("AP", arm))
            let ci = test.interval95.map { "[\(signed($0.low)), \(signed($0.high))]" } ?? "—"
            md.append("| \(name(arm)) | \(test.n) | \(test.wins) of \(test.n) | \(format(test.difference, signed: true)) | "
                      + "\(test.t.map { $0.isFinite ? signed($0) : "±∞" } ?? "—") | \(pValue(test.p)) | \(ci) | "
                      + "\(test.minimumDetectableEffect.map { fixed($0) } ?? "—") |")
        }
        md.append("")
        if arms.arms.contains("mpformer") { md += ["**Verdict (final AP).** " + verdictSentence(arms, arm: "mpformer"), ""] }

        // AP vs step.
        let steps = arms.evalSteps
        md += ["## AP versus step (paired)", "",
               "AP (%) at every periodic evaluation: mean ± std over seeds, and each variant's paired difference to "
               + "\(name(base)) at the same step and seed (t-test as above; one test per row, not corrected for multiple "
               + "comparisons).", ""]
        var header = "| step | \(name(base)) |", rule = "|---:|---:|"
        for arm in variants { header += " \(name(arm)) | Δ \(name(arm)) |"; rule += "---:|---:|" }
        md += [header, rule]
        for step in steps {
            var row = "| \(step) | \(format(arms.atStep("AP", step, base))) |"
            for arm in variants {
                row += " \(format(arms.atStep("AP", step, arm))) | \(pairedCell(PairedTest(baseline: arms.atStep("AP", step, base), arm: arms.atStep("AP", step, arm)))) |"
            }
            md.append(row)
        }
        md.append("")

        // Convergence.
        let pct = Int(convergenceFraction * 100)
        md += ["## Convergence: the step at \(pct) % of \(name(base))'s final AP", "",
               "For each run, the first evaluated step at which its AP reaches \(pct) % of \(name(base))'s final AP of "
               + "the same seed (evaluations every \(steps.count > 1 ? String(steps[1] - steps[0]) : "?") steps, so the "
               + "resolution is one evaluation period; “—” never within \(options.steps) steps). MP-Former's claim is "
               + "that it gets there sooner. The last column is the mean AP over the run's evaluations (the area under "
               + "its AP curve ÷ its length), with its paired difference to \(name(base)).", ""]
        md.append("| arm | " + arms.seeds.map { "seed \($0)" }.joined(separator: " | ") + " | mean step (reached) | paired Δ steps | mean AP over evaluations |")
        md.append("|---|" + String(repeating: "---:|", count: arms.seeds.count + 3))
        let baseSteps = arms.stepsToReach(convergenceFraction, base)
        for arm in arms.arms {
            let reached = arms.stepsToReach(convergenceFraction, arm)
            let cells = arms.seeds.map { seed in reached[seed].map { $0.map(String.init) ?? "—" } ?? "" }
            let got = reached.values.compactMap { $0 }.map(Double.init)
            let meanStep = ExperimentMath.mean(got).map { "\(Int($0.rounded())) (\(got.count) of \(reached.count))" } ?? "— (0 of \(reached.count))"
            var pairs: [Int: Double] = [:], censored = 0
            for (seed, s) in reached {
                guard let b = baseSteps[seed] ?? nil else { continue }
                if let s { pairs[seed] = Double(s - b) } else { censored += 1 }
            }
            var delta = arm == base ? "" : format(SeedStats(pairs), signed: true)
            if censored > 0 {
                delta += " (\(censored) seed\(censored == 1 ? "" : "s") never reached it and \(censored == 1 ? "is" : "are") left out, "
                    + "which favours this arm)"
            }
            let auc = arms.meanAPOverEvaluations(arm)
            let aucCell = arm == base ? format(auc) : format(auc) + " (Δ " + pairedCell(PairedTest(baseline: arms.meanAPOverEvaluations(base), arm: auc)) + ")"
            md.append("| \(name(arm)) | " + cells.joined(separator: " | ") + " | \(meanStep) | \(delta) | \(aucCell) |")
        }
        md.append("")

        md += gradientSection(arms)
        md += layerSection(arms, steps: steps)

        md += ["## Plots", "",
               "Lines are means over seeds, bands ± one sample std.", "",
               "![](ap.png)", "", "*ap.png:* AP (%) vs step for every arm.", "",
               "![](ap_difference.png)", "", "*ap_difference.png:* each variant's AP minus \(name(base))'s, paired by seed, vs step.", "",
               "![](util_vs_step.png)", "", "*util_vs_step.png:* Util_0 (solid) and Util_2 (dashed) vs step.", "",
               "![](layer_util.png)", "", "*layer_util.png:* final Util_i vs decoder layer i.", "",
               "![](grad_norm.png)", "", "*grad_norm.png:* gradient norm before clipping vs step (log scale; "
                   + "trailing moving average over 100 steps of the logged steps).", "",
               "![](gradient_split.png)", "", "*gradient_split.png:* ‖g_p‖ / ‖g_m‖ (solid) and cos(g_m, g_p) (dashed) "
                   + "vs step for the arms with mask piloting.", ""]

        md += ["## Example predictions", ""]
        md += ExperimentReport.overlayTable(options.output, models: arms.arms, names: arms.arms.map(name))
        md.append("")
        md += ["## Discussion", ""]
        if let notes = ExperimentReport.discussion(options) { md.append(notes.trimmingCharacters(in: .whitespacesAndNewlines)) } else {
            md.append("*The discussion has not been written yet* (write it in `discussion.md` next to this report and "
                      + "re-run `maskpilot experiment-report`).")
        }
        md += ["", "## Reproduce", "", "```sh", options.command, "```", "",
               "Every finished run is recorded in `\(arms.directory)` (its config, training log and evaluation, with the "
               + "shared initialization's weights and the dataset's fingerprint), and a stopped run continues from its last "
               + "checkpoint, so the command continues an interrupted experiment, also from a fresh clone on another machine. "
               + "The report alone, from the records:", "", "```sh",
               "maskpilot experiment-report --runs \(arms.directory) --seeds \"\(arms.seeds.map(String.init).joined(separator: " "))\" "
               + "--arms \"\(arms.arms.joined(separator: " "))\" --output \(options.output) --steps \(options.steps) "
               + "--ranks \(options.ranks) --wall-seconds \(options.wallSeconds) --command '\(options.command)'", "```", ""]
        return md.joined(separator: "\n")
    }

    static func verdictSentence(_ arms: ExperimentArms, arm: String) -> String {
        let test = PairedTest(baseline: arms.final("AP", arms.baseline), arm: arms.final("AP", arm))
        guard let mean = test.mean else { return "No seed has both arms' final AP yet." }
        guard let p = test.p, let mde = test.minimumDetectableEffect, let ci = test.interval95 else {
            return "One seed: \(name(arm)) − \(name(arms.baseline)) = \(signed(mean)) AP; no test is possible."
        }
        if test.difference.std == 0 && mean == 0 { return "\(name(arm)) and \(name(arms.baseline)) have the same final AP in every seed." }
        var s = "\(name(arm)) − \(name(arms.baseline)) = \(signed(mean)) AP over \(test.n) paired seeds (higher in \(test.wins)), "
            + "95 % CI [\(signed(ci.low)), \(signed(ci.high))], p = \(pValue(p)). "
        if p < 0.05 {
            s += mean > 0 ? "\(name(arm)) is better on this budget." : "\(name(arms.baseline)) is better on this budget."
        } else {
            s += "Not significant: the interval contains 0, so the data are consistent with no difference and exclude, "
                + "at the 5 % level, only effects outside [\(signed(ci.low)), \(signed(ci.high))] AP. With this spread, "
                + "\(test.n) seeds detect a true difference of \(fixed(mde)) AP with 80 % power (the minimum detectable effect)."
        }
        return s
    }

    static func setupParagraph(_ arms: ExperimentArms, options: ExperimentReportOptions) -> String {
        let c = arms.runs(arms.baseline).first?.config ?? [:]
        func v(_ key: String) -> String { c[key] ?? "?" }
        var s = "**Setup.** "
        if let train = ExperimentReport.datasetCounts(arms.directory, dataRoot: v("data.root"), v("data.train_split")),
           let val = ExperimentReport.datasetCounts(arms.directory, dataRoot: v("data.root"), v("data.test_split")) {
            s += "Data: MaskPilot's synthetic COCO-instance set (`\(v("data.root"))`), \(train.images) training images "
                + "with \(train.annotations) instances, \(val.images) held-out images with \(val.annotations) instances, "
                + "\(train.categories) categories, \(v("input.crop_size"))² crops, LSJ scale \(v("input.min_scale"))–\(v("input.max_scale")). "
        }
        s += "Model: a ResNet (\(v("model.backbone.block")) blocks, depths \(v("model.backbone.depths")), widths "
            + "\(v("model.backbone.widths"))), an MSDeformAttn pixel decoder (\(v("model.pixel_decoder.encoder_layers")) encoder "
            + "layers, \(v("model.pixel_decoder.conv_dim")) channels), a masked-attention decoder with "
            + "\(v("model.decoder.dec_layers")) mask predictions, \(v("model.decoder.num_queries")) queries, hidden "
            + "\(v("model.decoder.hidden_dim")), \(v("model.decoder.heads")) heads. "
        let weights = v("model.weights")
        if !weights.isEmpty && weights != "?" {
            let ignored = v("model.weights_ignore")
            s += "Every arm's backbone and pixel decoder start from `\(weights)`"
                + (ignored.isEmpty || ignored == "?" || ignored == "[]" ? "; " : " (ignoring \(ignored)); ")
                + "the transformer decoder keeps each seed's random initialization, the same in every arm. "
        }
        let perRun = arms.runs.values.joined().map(\.loggedSeconds).filter { $0 > 0 }
        s += "Budget: \(options.steps) steps of \(v("solver.ims_per_batch")) images on \(options.ranks) rank(s) per run, "
            + "lr \(v("solver.base_learning_rate")), clip \(v("solver.clip_grad_norm")), seeds \(arms.seeds.map(String.init).joined(separator: ", ")); "
            + "wall time \(ExperimentReport.duration(options.wallSeconds))"
        if let m = ExperimentMath.mean(perRun) {
            s += " (invocations a stop interrupted are not counted), \(ExperimentReport.duration(Int(m.rounded()))) of logged "
                + "training and evaluation per run (\(perRun.count) runs, \(ExperimentReport.duration(Int(perRun.reduce(0, +)))) in all)"
        }
        s += ". Arms (each run's config.yaml against \(name(arms.baseline))'s of the same seed): "
        s += arms.arms.map { arm -> String in
            if arm == arms.baseline { return "**\(name(arm))** (the baseline)" }
            let d = arms.configDifferences(arm).filter { $0.key != "train.gradient_split_period" }
            return "**\(name(arm))** (" + (d.isEmpty ? "no difference" : d.keys.sorted().map { "`\($0)=\(d[$0]!)`" }.joined(separator: ", ")) + ")"
        }.joined(separator: ", ") + "."
        return s
    }

    static func gradientSection(_ arms: ExperimentArms) -> [String] {
        var md = ["## Gradient diagnostics", "",
                  "From every logged step of `metrics.jsonl`: the gradient norm before clipping ‖g‖ (median and 5–95 % "
                  + "range over a run's steps, then mean over seeds), and the share of steps where the clip binds "
                  + "(‖g‖ > `solver.clip_grad_norm`). For the arms with mask piloting, every "
                  + "`train.gradient_split_period`-th step also splits the gradient into its matching part g_m and its "
                  + "MP part g_p (g = g_m + g_p, loss weight included): their norms, ‖g_p‖/‖g_m‖, their cosine, and "
                  + "cos(g, g_m) = (‖g_m‖ + ‖g_p‖ cos) / ‖g‖, how far the MP losses turn the gradient away from the "
                  + "matching objective's (1 for \(name(arms.baseline))). When the clip binds, the clipped gradient has "
                  + "the fixed norm `clip_grad_norm` whatever ‖g‖ is, so the MP part changes the direction of the step "
                  + "AdamW receives, not its size.", "",
                  "| arm | ‖g‖ median | ‖g‖ 5–95 % | clipped steps | split steps | ‖g_m‖ | ‖g_p‖ | ‖g_p‖/‖g_m‖ | cos(g_m, g_p) | cos(g, g_m) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for arm in arms.arms {
            let g = gradientStats(arms, arm)
            func cell(_ key: String) -> String { g[key].map { format($0) } ?? "—" }
            let range = g["p5"].flatMap(\.mean).flatMap { lo in g["p95"].flatMap(\.mean).map { "\(fixed(lo, 1))–\(fixed($0, 1))" } } ?? "—"
            let clipped = g["clipped"].flatMap(\.mean).map { "\(fixed(100 * $0, 1)) %" } ?? "—"
            let split = g["split_steps"].flatMap(\.mean).map { String(Int($0)) } ?? "0"
            md.append("| \(name(arm)) | \(cell("median")) | \(range) | \(clipped) | \(split) | \(cell("matching")) | \(cell("piloting")) | "
                      + "\(cell("ratio")) | \(cell("cosine")) | \(cell("alignment")) |")
        }
        md.append("")
        return md
    }

    /// Per arm, each gradient number as stats over seeds of the per-run summaries.
    static func gradientStats(_ arms: ExperimentArms, _ arm: String) -> [String: SeedStats] {
        var out: [String: [Int: Double]] = [:]
        for r in arms.runs(arm) {
            let clip = r.config["solver.clip_grad_norm"].flatMap(Double.init) ?? .infinity
            guard let g = GradientSummary(r.gradients, clip: clip) else { continue }
            let fields: [(String, Double?)] = [("median", g.median), ("p5", g.p5), ("p95", g.p95), ("clipped", g.clippedShare),
                                               ("split_steps", g.splitSteps > 0 ? Double(g.splitSteps) : nil),
                                               ("matching", g.matching), ("piloting", g.piloting), ("ratio", g.ratio),
                                               ("cosine", g.cosine), ("alignment", g.alignment)]
            for (k, v) in fields { if let v { out[k, default: [:]][r.seed] = v } }
        }
        return out.mapValues(SeedStats.init)
    }

    static func layerSection(_ arms: ExperimentArms, steps: [Int]) -> [String] {
        let layers = arms.layerCount
        guard layers > 0 else { return ["## Layer consistency", "", "No run has a `layer_consistency` table.", ""] }
        var md = ["## Layer consistency", "",
                  "Util_i: the share of the queries matched at decoder layer i that are matched to the same ground truth at "
                  + "the last layer; mIoU-L_i: the mean IoU of a matched query's masks at layers i and i+1 (×100). Low "
                  + "early-layer Util is the unstable matching mask piloting addresses. Final values (mean ± std over seeds):", ""]
        md.append("| layer i | " + arms.arms.map { "Util_i \(name($0))" }.joined(separator: " | ") + " | "
                  + arms.arms.map { "mIoU-L_i \(name($0))" }.joined(separator: " | ") + " |")
        md.append("|---:|" + String(repeating: "---:|", count: 2 * arms.arms.count))
        for i in 0..<layers {
            let u = arms.arms.map { format(finalLayer(arms, i, util: true, $0)) }
            let m = arms.arms.map { format(finalLayer(arms, i, util: false, $0)) }
            md.append("| \(i) | " + (u + m).joined(separator: " | ") + " |")
        }
        md += ["", "At every evaluation (means over seeds; the full table with stds is in summary.json, `layers_by_step`):", ""]
        for (title, prefix, count) in [("Util_i", "Util_", layers - 1), ("mIoU-L_i", "mIoU-L_", layers - 1)] {
            md.append("| step | arm | " + (0..<count).map { "\(title.dropLast(2))_\($0)" }.joined(separator: " | ") + " |")
            md.append("|---:|---|" + String(repeating: "---:|", count: count))
            for step in steps {
                for arm in arms.arms {
                    let cells = (0..<count).map { i in arms.atStep("\(prefix)\(i)", step, arm).mean.map { fixed($0, 1) } ?? "—" }
                    md.append("| \(step) | \(name(arm)) | " + cells.joined(separator: " | ") + " |")
                }
            }
            md.append("")
        }
        return md
    }

    static func finalLayer(_ arms: ExperimentArms, _ i: Int, util: Bool, _ arm: String) -> SeedStats {
        SeedStats.layer(i, util: util, of: arms.runs(arm))
    }

    // MARK: Plots

    static func writePlots(_ arms: ExperimentArms, options: ExperimentReportOptions) throws {
        func save(_ plot: LinePlot, _ file: String) throws { try plot.render(width: 800, height: 500).writePNG(to: "\(options.output)/\(file)") }
        func line(_ name: String, _ arm: String, _ curve: [(x: Double, stats: SeedStats)], dashed: Bool = false, markers: Bool = true) -> LinePlot.Series {
            var s = ExperimentReport.series(name, arm, curve, markers: markers, dashed: dashed)
            s.color = color(arms, arm)
            return s
        }
        let steps = arms.evalSteps
        var ap = LinePlot(title: "COCO mask AP on the held-out split", xLabel: "step", yLabel: "AP (%)")
        var diff = LinePlot(title: "AP minus \(name(arms.baseline))'s, paired by seed", xLabel: "step", yLabel: "AP difference (%)")
        var util = LinePlot(title: "Util_0 (solid) and Util_2 (dashed) during training", xLabel: "step", yLabel: "Util_i (%)")
        for arm in arms.arms {
            ap.series.append(line(name(arm), arm, steps.map { (Double($0), arms.atStep("AP", $0, arm)) }.filter { $0.1.n > 0 }))
            if arm != arms.baseline {
                diff.series.append(line(name(arm), arm, steps.map {
                    (Double($0), arms.atStep("AP", $0, arms.baseline).pairedDifference(to: arms.atStep("AP", $0, arm)))
                }.filter { $0.1.n > 0 }))
            }
            util.series.append(line(name(arm) + " Util_0", arm, steps.map { (Double($0), arms.atStep("Util_0", $0, arm)) }.filter { $0.1.n > 0 }))
            util.series.append(line(name(arm) + " Util_2", arm, steps.map { (Double($0), arms.atStep("Util_2", $0, arm)) }.filter { $0.1.n > 0 }, dashed: true))
        }
        try save(ap, "ap.png"); try save(diff, "ap_difference.png"); try save(util, "util_vs_step.png")

        var layerUtil = LinePlot(title: "Final query utilization Util_i", xLabel: "decoder layer i", yLabel: "Util_i (%)", integerXTicks: true)
        for arm in arms.arms {
            layerUtil.series.append(line(name(arm), arm, (0..<arms.layerCount).map { (Double($0), finalLayer(arms, $0, util: true, arm)) }.filter { $0.1.n > 0 }))
        }
        try save(layerUtil, "layer_util.png")

        var norm = LinePlot(title: "Gradient norm before clipping (100-step moving average)", xLabel: "step", yLabel: "|g| (log scale)", logY: true)
        var split = LinePlot(title: "Gradient split: |g_p| / |g_m| (solid), cos(g_m, g_p) (dashed)", xLabel: "step", yLabel: "ratio / cosine")
        for arm in arms.arms {
            let runs = arms.runs(arm)
            let curves = runs.map { r in ExperimentMath.movingAverage(r.gradients.map { (Double($0.step), $0.norm) }, window: 100) }
            norm.series.append(line(name(arm), arm, ExperimentMath.acrossSeeds(curves), markers: false))
            let ratio = runs.map { r in r.gradients.compactMap { g in g.matching.flatMap { m in g.piloting.map { (Double(g.step), m > 0 ? $0 / m : .nan) } } } }
            let cosine = runs.map { r in r.gradients.compactMap { g in g.cosine.map { (Double(g.step), $0) } } }
            if ratio.contains(where: { !$0.isEmpty }) {
                split.series.append(line(name(arm) + " |g_p|/|g_m|", arm, ExperimentMath.acrossSeeds(ratio), markers: false))
                split.series.append(line(name(arm) + " cos", arm, ExperimentMath.acrossSeeds(cosine), dashed: true, markers: false))
            }
        }
        try save(norm, "grad_norm.png"); try save(split, "gradient_split.png")
    }

    // MARK: summary.json

    static func summaryObject(_ arms: ExperimentArms, options: ExperimentReportOptions) -> [String: Any] {
        let stats = ExperimentReport.statsObject
        func testObject(_ t: PairedTest) -> [String: Any] {
            ["difference": stats(t.difference), "wins": t.wins, "t": t.t.map { $0.isFinite ? $0 : ($0 > 0 ? 1e308 : -1e308) } ?? NSNull(),
             "p": t.p ?? NSNull(), "ci95": t.interval95.map { [$0.low, $0.high] } ?? NSNull(),
             "mde_80": t.minimumDetectableEffect ?? NSNull()]
        }
        let base = arms.baseline
        var perArm: [String: Any] = [:]
        for arm in arms.arms {
            var final: [String: Any] = [:]
            for m in ExperimentReport.metrics { final[m] = stats(arms.final(m, arm)) }
            var o: [String: Any] = ["name": name(arm), "final": final,
                                    "seeds_finished": arms.runs(arm).map(\.seed),
                                    "config_differences": arms.configDifferences(arm),
                                    "gradients": gradientStats(arms, arm).mapValues(stats),
                                    "mean_ap_over_evaluations": stats(arms.meanAPOverEvaluations(arm))]
            let reached = arms.stepsToReach(convergenceFraction, arm)
            o["steps_to_\(Int(convergenceFraction * 100))pct_of_baseline_final_ap"] =
                Dictionary(uniqueKeysWithValues: reached.map { (String($0.key), $0.value.map { $0 as Any } ?? NSNull()) })
            o["ap_by_step"] = arms.evalSteps.map { s -> [String: Any] in
                var row: [String: Any] = ["step": s, "ap": stats(arms.atStep("AP", s, arm))]
                if arm != base { row["paired_vs_baseline"] = testObject(PairedTest(baseline: arms.atStep("AP", s, base), arm: arms.atStep("AP", s, arm))) }
                return row
            }
            if arm != base {
                o["final_ap_paired_test"] = testObject(PairedTest(baseline: arms.final("AP", base), arm: arms.final("AP", arm)))
                o["mean_ap_over_evaluations_paired_test"] = testObject(PairedTest(baseline: arms.meanAPOverEvaluations(base), arm: arms.meanAPOverEvaluations(arm)))
            }
            o["layers_by_step"] = arms.evalSteps.map { s -> [String: Any] in
                ["step": s,
                 "util": (0..<arms.layerCount).map { stats(arms.atStep("Util_\($0)", s, arm)) },
                 "mIoU": (0..<max(0, arms.layerCount - 1)).map { stats(arms.atStep("mIoU-L_\($0)", s, arm)) }]
            }
            o["logged_seconds"] = Dictionary(uniqueKeysWithValues: arms.runs(arm).map { (String($0.seed), $0.loggedSeconds) })
            perArm[arm] = o
        }
        return ["seeds": arms.seeds, "arms": arms.arms, "baseline": base, "steps": options.steps, "ranks": options.ranks,
                "wall_seconds": options.wallSeconds, "command": options.command, "runs": arms.directory,
                "missing_runs": arms.missing, "convergence_fraction": convergenceFraction, "by_arm": perArm,
                "values": "percent; steps are training iterations; gradient norms before clipping"]
    }
}
