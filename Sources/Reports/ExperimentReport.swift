// The MP-Former vs Mask2Former experiment report: reads the runs of cluster/experiment.sh, aggregates over seeds,
// writes report.md, summary.json and PNG plots. Replaces the reference's notebook/matplotlib result tables and figures.
import Foundation
import TensorCore
import Training
import Visualization

// MARK: - Errors

/// A problem with one input file of the report: `file` (with `:line` for a metrics line) and what is wrong.
public struct ExperimentReportError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var problem: String
    public init(_ file: String, _ problem: String) { self.file = file; self.problem = problem }
    public var description: String { "\(file): \(problem)" }
}

// MARK: - Statistics

/// One metric over seeds: the per-seed values, their mean and sample standard deviation (n − 1; nil below 2 seeds).
public struct SeedStats: Sendable, Equatable {
    public var values: [Int: Double]
    public init(_ values: [Int: Double]) { self.values = values }

    public var n: Int { values.count }
    public var sortedValues: [Double] { values.keys.sorted().map { values[$0]! } }
    public var mean: Double? { ExperimentMath.mean(sortedValues) }
    public var std: Double? { ExperimentMath.sampleStd(sortedValues) }
    /// std / √n (nil below 2 seeds).
    public var standardError: Double? { std.map { $0 / Double(n).squareRoot() } }

    /// A final-evaluation metric of `runs` by seed.
    public static func final(_ metric: String, of runs: [ExperimentRun]) -> SeedStats {
        SeedStats(Dictionary(uniqueKeysWithValues: runs.compactMap { r in r.final[metric].map { (r.seed, $0) } }))
    }

    /// A layer's final mIoU-L_i or Util_i (×100) of `runs` by seed.
    public static func layer(_ i: Int, util: Bool, of runs: [ExperimentRun]) -> SeedStats {
        SeedStats(Dictionary(uniqueKeysWithValues: runs.compactMap { r in
            r.layers.first { $0.layer == i }.flatMap { util ? $0.util : $0.mIoU }.map { (r.seed, 100 * $0) }
        }))
    }

    /// Per seed `other − self` over the seeds both have.
    public func pairedDifference(to other: SeedStats) -> SeedStats {
        var d: [Int: Double] = [:]
        for (seed, v) in values { if let w = other.values[seed] { d[seed] = w - v } }
        return SeedStats(d)
    }
}

public enum ExperimentMath {
    public static func mean(_ x: [Double]) -> Double? { x.isEmpty ? nil : x.reduce(0, +) / Double(x.count) }

    /// Sample standard deviation (divisor n − 1); nil for fewer than 2 values.
    public static func sampleStd(_ x: [Double]) -> Double? {
        guard x.count >= 2, let m = mean(x) else { return nil }
        return (x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)).squareRoot()
    }

    /// Trailing moving average by x distance: each output point (x, ȳ) averages the points with x in (x − window, x].
    /// The first points average fewer values (a partial window). Input must be sorted by x.
    public static func movingAverage(_ points: [(x: Double, y: Double)], window: Double) -> [(x: Double, y: Double)] {
        var out: [(x: Double, y: Double)] = []
        out.reserveCapacity(points.count)
        var start = 0, sum = 0.0
        for (k, p) in points.enumerated() {
            sum += p.y
            while points[start].x <= p.x - window { sum -= points[start].y; start += 1 }
            out.append((p.x, sum / Double(k - start + 1)))
        }
        return out
    }

    /// Mean and sample std across seeds at every x that at least one seed has (n may differ between x values).
    public static func acrossSeeds(_ curves: [[(x: Double, y: Double)]]) -> [(x: Double, stats: SeedStats)] {
        var byX: [Double: [Int: Double]] = [:]
        for (k, c) in curves.enumerated() { for p in c where p.y.isFinite { byX[p.x, default: [:]][k] = p.y } }
        return byX.keys.sorted().map { ($0, SeedStats(byX[$0]!)) }
    }
}

// MARK: - Runs

/// One training run `<runs>/<model>-seed<S>/`: its metrics log, final evaluation, config and training time.
public struct ExperimentRun: Sendable {
    public struct LayerRow: Sendable, Equatable {
        public var layer: Int
        /// mIoU-L_i between layers i and i+1, a ratio in 0…1 (nil for the last layer).
        public var mIoU: Double?
        /// Util_i, a ratio in 0…1.
        public var util: Double?
    }

    public var model: String
    public var seed: Int
    public var directory: String
    /// (step, final-layer matched loss class·CE + mask·BCE + dice·dice) from the step lines, in file order.
    public var loss: [(step: Int, value: Double)]
    /// The step lines' gradient norms before clipping (`grad_norm`) and, on the steps `train.gradient_split_period`
    /// picked, the gradient split, in file order.
    public var gradients: [GradientRecord]
    /// Evaluation lines: step and metrics (percentages; undefined −100 values dropped).
    public var evals: [(step: Int, metrics: [String: Double])]
    /// The final evaluation `eval/results.json`: top-level numbers (undefined −100 dropped).
    public var final: [String: Double]
    public var layers: [LayerRow]
    public var trainSeconds: Int?
    /// The run's compute time as its log records it: every step line's `timing` phases (and `grad_split_seconds`)
    /// plus every evaluation's `eval_seconds` (steps a resumed run repeated count once; time lost to a stop does not count).
    public var loggedSeconds: Double
    /// config.yaml flattened to dotted keys (`model.decoder.hidden_dim` → "64"; lists as "[16, 32]").
    public var config: [String: String]
    public var lossWeights: (cls: Double, mask: Double, dice: Double)

    /// One step line's gradient numbers: the norm before clipping and, when measured, ‖g_m‖, ‖g_p‖ and their cosine.
    public struct GradientRecord: Sendable, Equatable {
        public var step: Int
        public var norm: Double
        public var matching: Double?, piloting: Double?, cosine: Double?
        public init(step: Int, norm: Double, matching: Double? = nil, piloting: Double? = nil, cosine: Double? = nil) {
            self.step = step; self.norm = norm; self.matching = matching; self.piloting = piloting; self.cosine = cosine
        }
    }

    /// Reads the run folder; errors name the file and the problem.
    public static func load(directory: String, model: String, seed: Int) throws -> ExperimentRun {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw ExperimentReportError(directory, "missing run folder")
        }
        let configPath = directory + "/config.yaml"
        let config = try flattenConfig(readText(configPath), path: configPath)
        func weight(_ key: String) throws -> Double {
            guard let s = config[key] else { throw ExperimentReportError(configPath, "missing key \(key)") }
            guard let v = Double(s) else { throw ExperimentReportError(configPath, "\(key) is not a number: \(s)") }
            return v
        }
        let weights = (cls: try weight("loss.class_weight"), mask: try weight("loss.mask_weight"), dice: try weight("loss.dice_weight"))
        let (loss, evals, gradients, seconds) = try parseMetrics(path: directory + "/metrics.jsonl", weights: weights)
        let (final, layers) = try parseResults(path: directory + "/eval/results.json")
        let secondsText = try? String(contentsOfFile: directory + "/train_seconds", encoding: .utf8)
        let trainSeconds = secondsText.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        return ExperimentRun(model: model, seed: seed, directory: directory, loss: loss, gradients: gradients, evals: evals, final: final,
                             layers: layers, trainSeconds: trainSeconds, loggedSeconds: seconds.reduce(0) { $0 + $1.value },
                             config: config, lossWeights: weights)
    }

    /// Parses metrics.jsonl. A last line without its newline that does not parse is a line still being written
    /// and is skipped; any other malformed line is an error naming the file and line. A step line whose step is not
    /// after the previous one starts a resumed segment: what the log holds from that step on is replaced.
    public static func parseMetrics(path: String, weights: (cls: Double, mask: Double, dice: Double)) throws
        -> (loss: [(step: Int, value: Double)], evals: [(step: Int, metrics: [String: Double])], gradients: [GradientRecord],
            seconds: [(step: Int, value: Double)]) {
        let text = try readText(path)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let complete = text.hasSuffix("\n")
        if lines.last == "" { lines.removeLast() }
        var loss: [(step: Int, value: Double)] = []
        var evals: [(step: Int, metrics: [String: Double])] = []
        var gradients: [GradientRecord] = []
        var seconds: [(step: Int, value: Double)] = []
        for (k, line) in lines.enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let at = "\(path):\(k + 1)"
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8))
            guard let dict = object as? [String: Any] else {
                if k == lines.count - 1 && !complete { break }
                throw ExperimentReportError(at, "malformed line (not a JSON object)")
            }
            guard dict["step"] != nil else { throw ExperimentReportError(at, "missing key step") }
            guard let step = whole(dict["step"]) else { throw ExperimentReportError(at, "step is not a whole number within 0…2^40: \(dict["step"]!)") }
            func duration(_ key: String, in object: [String: Any], named: String) throws -> Double? {
                guard let v = object[key] else { return nil }
                guard let t = number(v), t.isFinite, (0...1e9).contains(t) else {
                    throw ExperimentReportError(at, "\(named) is not a duration within 0…10^9 seconds: \(v)")
                }
                return t
            }
            if let e = dict["eval"] {
                guard let metrics = e as? [String: Any] else { throw ExperimentReportError(at, "eval is not an object") }
                evals.append((step, definedNumbers(metrics)))
                if let t = try duration("eval_seconds", in: dict, named: "eval_seconds") { seconds.append((step, t)) }
            } else if let l = dict["losses"] {
                guard let losses = l as? [String: Any] else { throw ExperimentReportError(at, "losses is not an object") }
                // A resumed run appends from its checkpoint's step on: the lines it repeats replace the earlier ones.
                let s = step
                if let last = loss.last, last.step >= s {
                    loss.removeAll { $0.step >= s }; gradients.removeAll { $0.step >= s }; evals.removeAll { $0.step >= s }
                    seconds.removeAll { $0.step >= s }
                }
                if let timing = dict["timing"] as? [String: Any] {
                    var total = try duration("grad_split_seconds", in: dict, named: "grad_split_seconds") ?? 0
                    for key in timing.keys.sorted() { total += try duration(key, in: timing, named: "timing.\(key)") ?? 0 }
                    seconds.append((s, total))
                }
                func term(_ key: String) throws -> Double {
                    guard let v = number(losses[key]) else { throw ExperimentReportError(at, "missing key losses.\(key)") }
                    return v
                }
                let value = weights.cls * (try term("loss_cross_entropy")) + weights.mask * (try term("loss_mask"))
                    + weights.dice * (try term("loss_dice"))
                loss.append((step, value))
                if let norm = number(dict["grad_norm"]) {
                    gradients.append(GradientRecord(step: step, norm: norm, matching: number(dict["grad_norm_matching"]),
                                                    piloting: number(dict["grad_norm_piloting"]), cosine: number(dict["grad_cosine"])))
                }
            } else {
                throw ExperimentReportError(at, "neither losses nor eval")
            }
        }
        return (loss, evals, gradients, seconds)
    }

    /// Parses eval/results.json: the top-level numbers and the `layer_consistency.layers` table.
    public static func parseResults(path: String) throws -> (final: [String: Double], layers: [LayerRow]) {
        let data = try readData(path)
        guard let dict = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ExperimentReportError(path, "not a JSON object")
        }
        let final = definedNumbers(dict)
        guard final["AP"] != nil else { throw ExperimentReportError(path, "missing key AP") }
        var layers: [LayerRow] = []
        if let lc = dict["layer_consistency"] {
            guard let rows = (lc as? [String: Any])?["layers"] as? [[String: Any]] else {
                throw ExperimentReportError(path, "layer_consistency has no layers array")
            }
            for (k, row) in rows.enumerated() {
                guard let i = whole(row["layer"]), i <= 1 << 20 else {
                    throw ExperimentReportError(path, "layer_consistency.layers[\(k)]: layer is missing or not a whole number within 0…2^20")
                }
                layers.append(LayerRow(layer: i, mIoU: number(row["mIoU"]), util: number(row["util"])))
            }
        }
        return (final, layers.sorted { $0.layer < $1.layer })
    }

    /// The numbers of a JSON object, without undefined values (−100, as COCOeval reports an empty area range).
    static func definedNumbers(_ dict: [String: Any]) -> [String: Double] {
        var out: [String: Double] = [:]
        for (k, v) in dict { if let x = number(v), x != -100, x.isFinite { out[k] = x } }
        return out
    }

    /// A JSON number as Double (on Linux JSONSerialization gives NSNumber, which also casts to Bool, so no Bool check).
    /// A JSON number that counts (a step, a layer): whole and within 0…2^40, else nil.
    static func whole(_ v: Any?) -> Int? {
        guard let d = number(v), d.rounded() == d, (0...Double(Limit.iterations)).contains(d) else { return nil }
        return Int(d)
    }

    static func number(_ v: Any?) -> Double? {
        if let d = v as? Double { return d }
        if let i = v as? Int { return Double(i) }
        if let n = v as? NSNumber { return n.doubleValue }
        return nil
    }

    static func readData(_ path: String) throws -> Data {
        guard FileManager.default.fileExists(atPath: path) else { throw ExperimentReportError(path, "missing file") }
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ExperimentReportError(path, "cannot read: \(error.localizedDescription)")
        }
    }

    static func readText(_ path: String) throws -> String {
        guard let s = String(data: try readData(path), encoding: .utf8) else { throw ExperimentReportError(path, "not UTF-8 text") }
        return s
    }

    /// A run's `config.yaml` (as `maskpilot train` writes it) by dotted key, through `MaskPilotConfig.flattened()`.
    public static func flattenConfig(_ text: String, path: String) throws -> [String: String] {
        do { return try MaskPilotConfig.parse(yaml: text, file: path).flattened() } catch {
            throw ExperimentReportError(path, "not a MaskPilot configuration: \(error)")
        }
    }
}

/// Both arms of the experiment over the seeds.
public struct ExperimentRuns: Sendable {
    public static let models = ["mask2former", "mpformer"]
    public static let names = ["mask2former": "Mask2Former", "mpformer": "MP-Former"]

    public var directory: String
    public var seeds: [Int]
    public var mask2former: [ExperimentRun]
    public var mpformer: [ExperimentRun]

    /// Loads `<directory>/<model>-seed<S>/` for both models and every seed.
    public static func load(directory: String, seeds: [Int]) throws -> ExperimentRuns {
        guard !seeds.isEmpty else { throw ExperimentReportError(directory, "no seeds given") }
        func arm(_ model: String) throws -> [ExperimentRun] {
            try seeds.map { try ExperimentRun.load(directory: "\(directory)/\(model)-seed\($0)", model: model, seed: $0) }
        }
        return ExperimentRuns(directory: directory, seeds: seeds, mask2former: try arm("mask2former"), mpformer: try arm("mpformer"))
    }

    public func runs(_ model: String) -> [ExperimentRun] { model == "mpformer" ? mpformer : mask2former }

    /// A final-evaluation metric of one arm over seeds.
    public func final(_ metric: String, _ model: String) -> SeedStats { SeedStats.final(metric, of: runs(model)) }

    /// A layer's final mIoU-L_i or Util_i (×100) of one arm over seeds.
    public func layer(_ i: Int, util: Bool, _ model: String) -> SeedStats { SeedStats.layer(i, util: util, of: runs(model)) }

    public var layerCount: Int { (mask2former + mpformer).map { ($0.layers.map(\.layer).max() ?? -1) + 1 }.max() ?? 0 }
}

// MARK: - Report

/// The inputs of the report that do not come from the run folders.
public struct ExperimentReportOptions: Sendable {
    public var output: String
    public var steps: Int
    public var ranks: Int
    public var wallSeconds: Int
    public var command: String
    /// Markdown included as the Discussion; nil reads `<output>/discussion.md` if present.
    public var notes: String?
    /// Moving-average window of the loss plot in steps; nil picks min(50, max(5, steps / 10)).
    public var smoothingWindow: Int?

    public init(output: String, steps: Int, ranks: Int, wallSeconds: Int, command: String, notes: String? = nil,
                smoothingWindow: Int? = nil) {
        self.output = output; self.steps = steps; self.ranks = ranks; self.wallSeconds = wallSeconds
        self.command = command; self.notes = notes; self.smoothingWindow = smoothingWindow
    }
}

/// The outcome of comparing a final metric by seed.
public struct ExperimentVerdict: Sendable {
    public var metric: String
    public var wins: Int
    public var difference: SeedStats
    public var significant: Bool
    public var sentence: String
}

public enum ExperimentReport {
    public static let metrics = ["AP", "AP50", "AP75", "APs", "APm", "AR100"]
    static let colors = ["mask2former": Palette.series[0], "mpformer": Palette.series[1]]

    /// Writes report.md, summary.json and the plots into `options.output`; returns the report's path.
    @discardableResult
    public static func write(_ runs: ExperimentRuns, options: ExperimentReportOptions) throws -> String {
        try FileManager.default.createDirectory(atPath: options.output, withIntermediateDirectories: true)
        let window = options.smoothingWindow ?? min(50, max(5, options.steps / 10))
        try writePlots(runs, options: options, window: window)
        let summary = summaryObject(runs, options: options)
        let json = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
        try json.write(to: URL(fileURLWithPath: options.output + "/summary.json"))
        let path = options.output + "/report.md"
        try markdown(runs, options: options, window: window).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    // MARK: Verdict

    /// Compares `metric` of MP-Former against Mask2Former by seed: wins, mean ± std of the paired difference, and
    /// whether |mean| exceeds two standard errors (std / √n).
    public static func verdict(metric: String, mask2former: SeedStats, mpformer: SeedStats) -> ExperimentVerdict {
        let d = mask2former.pairedDifference(to: mpformer)
        let wins = d.values.values.filter { $0 > 0 }.count
        guard let mean = d.mean else {
            return ExperimentVerdict(metric: metric, wins: 0, difference: d, significant: false,
                                     sentence: "No seed has the final \(metric) of both models, so there is no verdict.")
        }
        let seedWord = d.n == 1 ? "seed" : "seeds"
        var s = "MP-Former's final \(metric) is higher in \(wins) of \(d.n) \(seedWord); "
        guard let std = d.std, let se = d.standardError else {
            s += "the paired difference is \(signed(mean)) \(metric). With one seed the noise cannot be estimated, "
                + "so this is no evidence either way."
            return ExperimentVerdict(metric: metric, wins: wins, difference: d, significant: false, sentence: s)
        }
        s += "the mean paired difference is \(signed(mean)) ± \(fixed(std)) \(metric) (sample std, n = \(d.n); "
            + "standard error \(fixed(se))). "
        // A two-sided paired t-test at the 5 % level: |mean| / SE against Student's t quantile for n − 1 degrees of freedom.
        let critical = studentT975(degreesOfFreedom: d.n - 1)
        let t = se > 0 ? abs(mean) / se : (mean == 0 ? 0 : .infinity)
        let significant = t > critical
        let test = "paired t = \(se > 0 ? fixed(t) : "∞"), critical value \(fixed(critical, 3)) for \(d.n - 1) degree\(d.n == 2 ? "" : "s") of freedom, two-sided 5 %"
        if significant {
            s += "The difference is significant (\(test)): " + (mean > 0 ? "MP-Former is better" : "Mask2Former is better") + " on this budget."
        } else {
            s += "The difference is not significant (\(test)); "
                + (wins == 0 || wins == d.n ? "all seeds point the same way, but more seeds are needed to separate it from noise."
                                             : "the seeds disagree, so it is within noise.")
        }
        return ExperimentVerdict(metric: metric, wins: wins, difference: d, significant: significant, sentence: s)
    }

    /// Student's t 0.975 quantile (two-sided 5 %) for `degreesOfFreedom` ≥ 1; between tabulated values the next
    /// smaller degrees of freedom (the larger, conservative quantile); 1.96 beyond 120.
    public static func studentT975(degreesOfFreedom df: Int) -> Double {
        let table: [(Int, Double)] = [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (6, 2.447), (7, 2.365),
                                      (8, 2.306), (9, 2.262), (10, 2.228), (12, 2.179), (15, 2.131), (20, 2.086), (25, 2.060),
                                      (30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980)]
        guard df >= 1 else { return .infinity }
        if df > 120 { return 1.960 }
        return table.last { $0.0 <= df }!.1
    }

    // MARK: Formatting

    static func fixed(_ v: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", v) }
    static func signed(_ v: Double, _ digits: Int = 2) -> String {
        let s = fixed(v, digits)
        return v >= 0 && !s.hasPrefix("-") ? "+" + s : s.replacingOccurrences(of: "-", with: "−")
    }

    /// "mean ± std" (std omitted below 2 values; "—" without values).
    public static func format(_ s: SeedStats, signed isSigned: Bool = false) -> String {
        guard let m = s.mean else { return "—" }
        let head = isSigned ? signed(m) : fixed(m)
        return s.std.map { head + " ± " + fixed($0) } ?? head
    }

    /// A number without trailing zeros ("2", "0.5").
    static func compact(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }

    static func duration(_ seconds: Int) -> String {
        seconds >= 3600 ? String(format: "%d h %02d min", seconds / 3600, (seconds % 3600) / 60)
            : seconds >= 60 ? String(format: "%d min %02d s", seconds / 60, seconds % 60) : "\(seconds) s"
    }

    // MARK: Markdown

    static func markdown(_ runs: ExperimentRuns, options: ExperimentReportOptions, window: Int) -> String {
        let m2f = "mask2former", mp = "mpformer"
        var md: [String] = ["# MP-Former vs Mask2Former on the synthetic COCO-instance dataset", ""]
        md.append(setupParagraph(runs, options: options))
        md.append("")

        md += ["## Final results (held-out split)", "",
               "COCO mask AP/AR in percent from each run's `eval/results.json`: mean ± sample std (n − 1) over seeds; "
                   + "n is the number of seeds with the value. The last row is the per-seed difference MP-Former − "
                   + "Mask2Former (same seed), then mean ± std. Undefined values (COCOeval's −100) are left out.", ""]
        md.append("| model | n | " + metrics.joined(separator: " | ") + " |")
        md.append("|---|---:|" + String(repeating: "---:|", count: metrics.count))
        for model in [m2f, mp] {
            let stats = metrics.map { runs.final($0, model) }
            md.append("| \(ExperimentRuns.names[model]!) | \(stats.map(\.n).max() ?? 0) | "
                      + stats.map { format($0) }.joined(separator: " | ") + " |")
        }
        let diffs = metrics.map { runs.final($0, m2f).pairedDifference(to: runs.final($0, mp)) }
        md.append("| MP − M2F (paired by seed) | \(diffs.map(\.n).max() ?? 0) | "
                  + diffs.map { format($0, signed: true) }.joined(separator: " | ") + " |")
        md.append("")

        let verdict = verdict(metric: "AP", mask2former: runs.final("AP", m2f), mpformer: runs.final("AP", mp))
        md += ["**Verdict.** " + verdict.sentence, ""]

        md += ["Per seed:", ""]
        md.append("| seed | model | " + metrics.joined(separator: " | ") + " | train time |")
        md.append("|---:|---|" + String(repeating: "---:|", count: metrics.count + 1))
        for seed in runs.seeds {
            for model in [m2f, mp] {
                let run = runs.runs(model).first { $0.seed == seed }
                let cells = metrics.map { m in run?.final[m].map { fixed($0) } ?? "—" }
                md.append("| \(seed) | \(ExperimentRuns.names[model]!) | " + cells.joined(separator: " | ")
                          + " | " + (run?.trainSeconds.map(duration) ?? "—") + " |")
            }
            let cells = diffs.map { d in d.values[seed].map { signed($0) } ?? "—" }
            md.append("| \(seed) | MP − M2F | " + cells.joined(separator: " | ") + " | |")
        }
        md.append("")

        md += ["## Layer consistency", "",
               "From the final evaluation (×100, mean ± sample std over seeds). mIoU-L_i is the mean IoU between the "
                   + "binary masks of the same query at decoder layers i and i+1, over the queries matched to a ground "
                   + "truth at the last layer; Util_i is the fraction of queries matched at layer i that are matched to "
                   + "the same ground truth at the last layer. Layer \(max(0, runs.layerCount - 1)) is the final prediction.", ""]
        if runs.layerCount == 0 {
            md += ["No run has a `layer_consistency` table in its results.json.", ""]
        } else {
            md.append("| layer i | mIoU-L_i (i,i+1) M2F | mIoU-L_i (i,i+1) MP | Util_i M2F | Util_i MP |")
            md.append("|---:|---:|---:|---:|---:|")
            for i in 0..<runs.layerCount {
                let cells = [runs.layer(i, util: false, m2f), runs.layer(i, util: false, mp),
                             runs.layer(i, util: true, m2f), runs.layer(i, util: true, mp)].map { format($0) }
                md.append("| \(i) | " + cells.joined(separator: " | ") + " |")
            }
            md.append("")
        }

        let weights = runs.mask2former.first?.lossWeights ?? (cls: 0, mask: 0, dice: 0)
        md += ["## Plots", "",
               "Blue: Mask2Former; orange: MP-Former. Lines are means over seeds; shaded bands are ± one sample std "
                   + "(absent where only one seed has a value).", "",
               "![](loss.png)", "",
               "*loss.png:* the final decoder layer's matched loss \(compact(weights.cls))·loss_cross_entropy + "
                   + "\(compact(weights.mask))·loss_mask + \(compact(weights.dice))·loss_dice (weights from config.yaml) vs "
                   + "training step, log y axis; each seed smoothed by a trailing moving average over \(window) steps, "
                   + "then mean ± std over seeds. MP-Former's denoising (`_dn`) terms and the auxiliary layers are left "
                   + "out, so both curves measure the same thing.", "",
               "![](ap.png)", "",
               "*ap.png:* COCO mask AP (%) on the held-out split vs training step, from the periodic evaluations in "
                   + "metrics.jsonl (the final evaluation is used at step \(options.steps) when the log has none there); "
                   + "markers at the evaluated steps.", "",
               "![](layer_miou.png)", "",
               "*layer_miou.png:* final mIoU-L_i (%) vs layer pair index i (layers i and i+1).", "",
               "![](layer_util.png)", "",
               "*layer_util.png:* final Util_i (%) vs decoder layer i.", "",
               "![](consistency_vs_step.png)", "",
               "*consistency_vs_step.png:* the mean over i of mIoU-L_i (solid) and of Util_i (dashed), in %, vs training "
                   + "step, from the periodic evaluations.", ""]

        md += ["## Example predictions", ""]
        md += overlayTable(options.output)
        md.append("")

        md += ["## Discussion", ""]
        if let notes = discussion(options) { md.append(notes.trimmingCharacters(in: .whitespacesAndNewlines)) } else {
            md.append("*The discussion has not been written yet* (write it in `discussion.md` next to this report, "
                      + "or pass `--notes FILE`, and re-run `maskpilot experiment-report`).")
        }
        md.append("")
        md += ["## Reproduce", "", "```sh", options.command, "```", "",
               "or `make experiment` for the default budget. Finished runs (those with `eval/results.json`) are kept; "
                   + "delete the runs folder to start over. The report alone:", "",
               "```sh",
               "maskpilot experiment-report --runs \(runs.directory) --seeds \"\(runs.seeds.map(String.init).joined(separator: " "))\" "
                   + "--output \(options.output) --steps \(options.steps) --ranks \(options.ranks) --wall-seconds \(options.wallSeconds) "
                   + "--command '\(options.command)'",
               "```", ""]
        return md.joined(separator: "\n")
    }

    static func discussion(_ options: ExperimentReportOptions) -> String? {
        let path = options.notes ?? options.output + "/discussion.md"
        return try? String(contentsOfFile: path, encoding: .utf8)
    }

    static func setupParagraph(_ runs: ExperimentRuns, options: ExperimentReportOptions) -> String {
        let c = runs.mpformer.first?.config ?? runs.mask2former.first?.config ?? [:]
        func v(_ key: String) -> String { c[key] ?? "?" }
        var s = "**Setup.** "
        let trainSplit = c["data.train_split"] ?? "train2017", valSplit = c["data.test_split"] ?? "val2017"
        if let train = datasetCounts(runs.directory, dataRoot: v("data.root"), trainSplit),
           let val = datasetCounts(runs.directory, dataRoot: v("data.root"), valSplit) {
            s += "Dataset: MaskPilot's synthetic COCO-instance set (`\(v("data.root"))`), \(train.images) training "
                + "images with \(train.annotations) instances and a held-out split of \(val.images) images with "
                + "\(val.annotations) instances, \(train.categories) categories. "
        } else {
            s += "Dataset: `\(v("data.root"))` (neither `\(runs.directory)/dataset.json` nor its annotation files were found). "
        }
        s += "Model: a ResNet (\(v("model.backbone.block")) blocks, depths \(v("model.backbone.depths")), widths "
            + "\(v("model.backbone.widths"))), an MSDeformAttn pixel decoder (\(v("model.pixel_decoder.encoder_layers")) "
            + "encoder layers, \(v("model.pixel_decoder.conv_dim")) channels) and a masked-attention decoder with hidden "
            + "dim \(v("model.decoder.hidden_dim")), \(v("model.decoder.num_queries")) queries, "
            + "\(v("model.decoder.dec_layers")) mask predictions (one before the first decoder layer, then one per layer) "
            + "and \(v("model.decoder.num_classes")) classes. "
        let perRun = (runs.mask2former + runs.mpformer).compactMap(\.trainSeconds)
        s += "Budget: \(options.steps) steps at a global batch of \(v("solver.ims_per_batch")) images on "
            + "\(options.ranks) rank(s), seeds \(runs.seeds.map(String.init).joined(separator: ", ")); wall time "
            + "\(duration(options.wallSeconds)) in total"
        if let m = ExperimentMath.mean(perRun.map(Double.init)) {
            s += ", \(duration(Int(m.rounded()))) of training per run on average (\(perRun.count) runs"
                + (perRun.min()! == perRun.max()! ? ")" : ", \(duration(perRun.min()!))–\(duration(perRun.max()!)))")
        }
        s += ". Command: `\(options.command)`. "
        s += "The two arms differ only in `model.mask_piloting.enabled` (false: Mask2Former, true: MP-Former): the "
            + "same seed gives the same initial parameters (MP-Former only adds the `label_enc` embedding) and the same "
            + "data order."
        let differing = configDifferences(runs)
        if differing.isEmpty || differing == ["model.mask_piloting.enabled"] {
            s += " Checked: the two arms' config.yaml files differ in no other key."
        } else {
            s += " **Warning:** the config.yaml files of the two arms also differ in: "
                + differing.filter { $0 != "model.mask_piloting.enabled" }.map { "`\($0)`" }.joined(separator: ", ") + "."
        }
        return s
    }

    /// Config keys whose values differ between the two arms of some seed.
    static func configDifferences(_ runs: ExperimentRuns) -> [String] {
        var keys = Set<String>()
        for a in runs.mask2former {
            guard let b = runs.mpformer.first(where: { $0.seed == a.seed }) else { continue }
            for k in Set(a.config.keys).union(b.config.keys) where a.config[k] != b.config[k] { keys.insert(k) }
        }
        return keys.sorted()
    }

    /// A split's counts: from `<runs>/dataset.json` (`{"<split>": {"images": N, "annotations": N, "categories": N}}`,
    /// which cluster/experiment.sh records next to the runs, so the report needs no dataset), else from the split's
    /// annotation file under `dataRoot`; nil when neither is readable.
    public static func datasetCounts(_ runsDirectory: String, dataRoot: String, _ split: String)
        -> (images: Int, annotations: Int, categories: Int)? {
        // A `data.train_split` list, as the flattened configuration writes it (`[a, b]`): the splits' sums.
        if split.hasPrefix("["), split.hasSuffix("]") {
            let names = split.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let parts = names.map { datasetCounts(runsDirectory, dataRoot: dataRoot, $0) }
            guard !parts.isEmpty, let first = parts[0], parts.allSatisfy({ $0 != nil }) else { return nil }
            return (parts.reduce(0) { $0 + $1!.images }, parts.reduce(0) { $0 + $1!.annotations }, first.categories)
        }
        func json(_ path: String) -> [String: Any]? {
            guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else { return nil }
            return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        }
        if let recorded = json("\(runsDirectory)/dataset.json")?[split] as? [String: Any] {
            guard let i = recorded["images"] as? Int, let a = recorded["annotations"] as? Int, let c = recorded["categories"] as? Int
            else { return nil }
            return (i, a, c)
        }
        guard let d = json("\(dataRoot)/annotations/instances_\(split).json") else { return nil }
        return ((d["images"] as? [Any])?.count ?? 0, (d["annotations"] as? [Any])?.count ?? 0, (d["categories"] as? [Any])?.count ?? 0)
    }

    /// The overlays `output/overlays/<model>/*.png` of `models` side by side, one row per image.
    static func overlayTable(_ output: String, models: [String] = ExperimentRuns.models,
                             names: [String] = ExperimentRuns.models.map { ExperimentRuns.names[$0]! }) -> [String] {
        let fm = FileManager.default
        func pngs(_ model: String) -> [String] {
            let all = ((try? fm.contentsOfDirectory(atPath: "\(output)/overlays/\(model)")) ?? []).filter { $0.lowercased().hasSuffix(".png") }
            // `maskpilot predict` also writes raw label PNGs (IMG_instances.png …); show only its overlays when present.
            let overlays = all.filter { $0.hasSuffix("_overlay.png") }
            return overlays.isEmpty ? all : overlays
        }
        let files = models.map(pngs)
        let images = Set(files.joined()).sorted()
        guard !images.isEmpty else {
            return ["No overlays: " + models.map { "`overlays/\($0)/*.png`" }.joined(separator: ", ")
                    + " are absent (cluster/experiment.sh draws them with `maskpilot predict` as the first seed's runs finish)."]
        }
        var lines = ["Predictions of the first seed's models on held-out images (drawn by `maskpilot predict`).", ""]
        lines += ["| image | " + names.joined(separator: " | ") + " |", "|---|" + String(repeating: "---|", count: models.count)]
        for n in images {
            let cells = zip(models, files).map { model, have in have.contains(n) ? "![](overlays/\(model)/\(n))" : "(missing)" }
            let label = n.hasSuffix("_overlay.png") ? String(n.dropLast("_overlay.png".count)) : n
            lines.append("| \(label) | " + cells.joined(separator: " | ") + " |")
        }
        return lines
    }

    // MARK: Plots

    typealias Curve = [(x: Double, y: Double)]

    static func series(_ name: String, _ model: String, _ curve: [(x: Double, stats: SeedStats)], markers: Bool = false,
                       dashed: Bool = false) -> LinePlot.Series {
        let points: Curve = curve.compactMap { p in p.stats.mean.map { (p.x, $0) } }
        let band: [(x: Double, low: Double, high: Double)] = curve.compactMap { p in
            guard let m = p.stats.mean, let s = p.stats.std else { return nil }
            return (p.x, m - s, m + s)
        }
        return LinePlot.Series(name: name, points: points, color: colors[model], band: band, dashed: dashed, markers: markers)
    }

    /// Per-seed evaluation curves of one arm: `value(metrics)` at each eval step, plus the final evaluation at
    /// `steps` when the log has no evaluation there.
    static func evalCurves(_ runs: [ExperimentRun], steps: Int, _ value: ([String: Double]) -> Double?, final: ((ExperimentRun) -> Double?)? = nil) -> [Curve] {
        runs.map { r in
            var c: Curve = r.evals.compactMap { e in value(e.metrics).map { (Double(e.step), $0) } }
            if let final, !r.evals.contains(where: { $0.step == steps }), let f = final(r) { c.append((Double(steps), f)) }
            return c.sorted { $0.x < $1.x }
        }
    }

    /// Mean of the metrics named `prefix<i>`, or nil when there are none.
    static func layerMean(_ metrics: [String: Double], prefix: String) -> Double? {
        ExperimentMath.mean(metrics.filter { $0.key.hasPrefix(prefix) && Int($0.key.dropFirst(prefix.count)) != nil }.map(\.value))
    }

    static func writePlots(_ runs: ExperimentRuns, options: ExperimentReportOptions, window: Int) throws {
        let out = options.output
        func save(_ plot: LinePlot, _ file: String) throws { try plot.render(width: 800, height: 500).writePNG(to: "\(out)/\(file)") }
        let models = ExperimentRuns.models

        let w = runs.mask2former.first?.lossWeights ?? (cls: 0, mask: 0, dice: 0)
        var loss = LinePlot(title: "Final-layer matched loss (\(window)-step moving average)", xLabel: "step",
                            yLabel: "\(compact(w.cls))×CE + \(compact(w.mask))×BCE + \(compact(w.dice))×dice (log scale)", logY: true)
        for m in models {
            let curves = runs.runs(m).map { r in
                ExperimentMath.movingAverage(r.loss.map { (Double($0.step), $0.value) }.sorted { $0.x < $1.x }, window: Double(window))
            }
            loss.series.append(series(ExperimentRuns.names[m]!, m, ExperimentMath.acrossSeeds(curves)))
        }
        try save(loss, "loss.png")

        var ap = LinePlot(title: "COCO mask AP on the held-out split", xLabel: "step", yLabel: "AP (%)")
        for m in models {
            let curves = evalCurves(runs.runs(m), steps: options.steps, { $0["AP"] }, final: { $0.final["AP"] })
            ap.series.append(series(ExperimentRuns.names[m]!, m, ExperimentMath.acrossSeeds(curves), markers: true))
        }
        try save(ap, "ap.png")

        let layers = runs.layerCount
        var miou = LinePlot(title: "Final mIoU-L_i between layers i and i+1", xLabel: "layer pair i (i, i+1)",
                            yLabel: "mIoU-L_i (%)", integerXTicks: true)
        var util = LinePlot(title: "Final query utilization Util_i", xLabel: "decoder layer i", yLabel: "Util_i (%)",
                            integerXTicks: true)
        for m in models {
            let mi = (0..<max(0, layers - 1)).map { (Double($0), runs.layer($0, util: false, m)) }.filter { $0.1.n > 0 }
            let ut = (0..<layers).map { (Double($0), runs.layer($0, util: true, m)) }.filter { $0.1.n > 0 }
            miou.series.append(series(ExperimentRuns.names[m]!, m, mi, markers: true))
            util.series.append(series(ExperimentRuns.names[m]!, m, ut, markers: true))
        }
        try save(miou, "layer_miou.png")
        try save(util, "layer_util.png")

        var consistency = LinePlot(title: "Layer consistency during training", xLabel: "step",
                                   yLabel: "mean over i (%): mIoU-L_i solid, Util_i dashed")
        for m in models {
            let name = ExperimentRuns.names[m]!
            let mi = evalCurves(runs.runs(m), steps: options.steps, { layerMean($0, prefix: "mIoU-L_") })
            let ut = evalCurves(runs.runs(m), steps: options.steps, { layerMean($0, prefix: "Util_") })
            consistency.series.append(series(name + " mIoU-L", m, ExperimentMath.acrossSeeds(mi), markers: true))
            consistency.series.append(series(name + " Util", m, ExperimentMath.acrossSeeds(ut), markers: true, dashed: true))
        }
        try save(consistency, "consistency_vs_step.png")
    }

    // MARK: summary.json

    static func statsObject(_ s: SeedStats) -> [String: Any] {
        var values: [String: Any] = [:]
        for (seed, v) in s.values { values[String(seed)] = v }
        return ["n": s.n, "mean": s.mean ?? NSNull(), "std": s.std ?? NSNull(), "values": values]
    }

    static func summaryObject(_ runs: ExperimentRuns, options: ExperimentReportOptions) -> [String: Any] {
        let m2f = "mask2former", mp = "mpformer"
        var metricsObject: [String: Any] = [:]
        for metric in metrics {
            let a = runs.final(metric, m2f), b = runs.final(metric, mp)
            metricsObject[metric] = [m2f: statsObject(a), mp: statsObject(b), "paired_difference": statsObject(a.pairedDifference(to: b))]
        }
        let layers: [[String: Any]] = (0..<runs.layerCount).map { i in
            ["layer": i,
             "mIoU": [m2f: statsObject(runs.layer(i, util: false, m2f)), mp: statsObject(runs.layer(i, util: false, mp))],
             "util": [m2f: statsObject(runs.layer(i, util: true, m2f)), mp: statsObject(runs.layer(i, util: true, mp))]]
        }
        let v = verdict(metric: "AP", mask2former: runs.final("AP", m2f), mpformer: runs.final("AP", mp))
        var trainSeconds: [String: Any] = [:]
        for m in ExperimentRuns.models {
            var perSeed: [String: Any] = [:]
            for r in runs.runs(m) { perSeed[String(r.seed)] = r.trainSeconds ?? NSNull() }
            trainSeconds[m] = perSeed
        }
        return [
            "seeds": runs.seeds, "steps": options.steps, "ranks": options.ranks, "wall_seconds": options.wallSeconds,
            "command": options.command, "runs": runs.directory,
            "metrics": metricsObject,
            "layers": layers,
            "layer_values": "percent (ratio × 100); mIoU of the last layer is undefined",
            "verdict": ["metric": v.metric, "wins": v.wins, "seeds": v.difference.n, "mean": v.difference.mean ?? NSNull(),
                        "std": v.difference.std ?? NSNull(), "standard_error": v.difference.standardError ?? NSNull(),
                        "significant": v.significant, "sentence": v.sentence],
            "train_seconds": trainSeconds,
            "config_differences": configDifferences(runs),
        ]
    }
}
