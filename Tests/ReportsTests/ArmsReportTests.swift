import Datasets
import Foundation
import Reports
import Testing

@Suite struct ArmsReportTests {
    /// Student's t against the printed table ExperimentReport carries (two-sided 5 %) and closed forms for 2 degrees of
    /// freedom, where the CDF is 1/2 + t / (2 √(t² + 2)).
    @Test func studentTMatchesTablesAndClosedForms() {
        for df in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 30, 40, 60, 120] {
            let q = StudentT.quantile(0.975, degreesOfFreedom: Double(df))
            #expect(abs(q - ExperimentReport.studentT975(degreesOfFreedom: df)) < 6e-4, "df \(df): \(q)")
            #expect(abs(StudentT.twoSidedP(q, degreesOfFreedom: Double(df)) - 0.05) < 1e-9)
        }
        for t in [-3.0, -0.5, 0, 0.7, 1.0607, 6.9282] {
            #expect(abs(StudentT.cdf(t, degreesOfFreedom: 2) - (0.5 + t / (2 * (t * t + 2).squareRoot()))) < 1e-12)
        }
        #expect(abs(StudentT.quantile(0.8, degreesOfFreedom: 2) - (0.72 / 0.64).squareRoot()) < 1e-9)
        #expect(abs(StudentT.quantile(0.8, degreesOfFreedom: 4) - 0.9410) < 1e-4)
        #expect(abs(StudentT.quantile(0.975, degreesOfFreedom: 1e7) - 1.959964) < 1e-5)
        #expect(abs(StudentT.quantile(0.025, degreesOfFreedom: 4) + 2.776445) < 1e-5)
    }

    /// Differences 2, 2.5, 1.5: mean 2, std 0.5, t = 2 / (0.5/√3) = 6.93 with 2 degrees of freedom, p = 1 − t/√(t²+2),
    /// CI 2 ± 4.3027·0.2887, MDE (4.3027 + 1.0607)·0.2887.
    @Test func pairedTest() throws {
        let test = PairedTest(baseline: SeedStats([1: 10, 2: 20, 3: 30, 4: 40]), arm: SeedStats([1: 12, 2: 22.5, 3: 31.5]))
        #expect(test.n == 3 && test.mean == 2 && test.wins == 3)
        let t = try #require(test.t)
        #expect(abs(t - 2 / (0.5 / 3.0.squareRoot())) < 1e-9)
        #expect(abs(test.p! - (1 - t / (t * t + 2).squareRoot())) < 1e-9)
        let se = 0.5 / 3.0.squareRoot(), q975 = 4.302653, q80 = (0.72 / 0.64).squareRoot()
        #expect(abs(test.interval95!.low - (2 - q975 * se)) < 1e-5 && abs(test.interval95!.high - (2 + q975 * se)) < 1e-5)
        #expect(abs(test.minimumDetectableEffect! - (q975 + q80) * se) < 1e-5)
        let one = PairedTest(baseline: SeedStats([1: 10]), arm: SeedStats([1: 11]))
        #expect(one.t == nil && one.p == nil && one.minimumDetectableEffect == nil)
    }

    /// Gradient summaries: norms 10·step (steps 1…4, clip 0.01), split on even steps with ‖g_m‖ 6·step, ‖g_p‖ 8·step
    /// and cosine 0, so the share along g_m is 6/10.
    @Test func gradientSummary() throws {
        let records = (1...4).map { s in
            ExperimentRun.GradientRecord(step: s, norm: Double(10 * s), matching: s % 2 == 0 ? Double(6 * s) : nil,
                                         piloting: s % 2 == 0 ? Double(8 * s) : nil, cosine: s % 2 == 0 ? 0 : nil)
        }
        let g = try #require(GradientSummary(records, clip: 25))
        #expect(g.clippedShare == 0.5 && g.splitSteps == 2)
        #expect(g.median == 30 || g.median == 20)
        #expect(g.matching == 18 && g.piloting == 24 && abs(g.ratio! - 4.0 / 3) < 1e-12 && g.cosine == 0)
        #expect(abs(g.alignment! - 0.6) < 1e-12)
        #expect(GradientSummary([], clip: 1) == nil)
    }

    private func fakeExperiment() throws -> FakeRuns {
        let fake = try FakeRuns()
        // Baseline final AP 20 and 30; the 90 % targets are 18 and 27.
        let split = "train:\n  gradient_split_period: 2\n"
        for (seed, final) in [(1, 20.0), (2, 30.0)] {
            try fake.addRun(model: "mask2former", seed: seed, ap: final, steps: 6, apCurve: [2: final * 0.5, 4: final * 0.8, 6: final],
                            gradients: true)
            try fake.addRun(model: "mpformer", seed: seed, ap: final + 1, steps: 6,
                            apCurve: [2: final * 0.6, 4: final * 0.95, 6: final + 1], gradients: true, extraConfig: split)
        }
        // One seed of a variant only (seed 2 unfinished), differing in data.workers.
        try fake.addRun(model: "mpformer-halfmp", seed: 1, ap: 15, steps: 6, apCurve: [2: 5, 4: 10, 6: 15], gradients: true,
                        extraConfig: split + "data:\n  workers: 3\n")
        return fake
    }

    @Test func armsLoadConvergenceAndMissingRuns() throws {
        let fake = try fakeExperiment()
        defer { fake.remove() }
        let arms = try ExperimentArms.load(directory: fake.root, seeds: [1, 2], arms: ["mask2former", "mpformer", "mpformer-halfmp"])
        #expect(arms.missing == ["\(fake.root)/mpformer-halfmp-seed2"])
        #expect(arms.evalSteps == [2, 4, 6])
        #expect(arms.stepsToReach(0.9, "mask2former") == [1: 6, 2: 6])
        #expect(arms.stepsToReach(0.9, "mpformer") == [1: 4, 2: 4])
        #expect(arms.stepsToReach(0.9, "mpformer-halfmp") == [1: Int?.none])
        #expect(arms.atStep("AP", 4, "mpformer").values == [1: 19, 2: 28.5])
        #expect(arms.meanAPOverEvaluations("mask2former").values[1]! == (10 + 16 + 20) / 3.0)
        #expect(arms.configDifferences("mpformer") == ["model.mask_piloting.enabled": "true", "train.gradient_split_period": "2"])
        #expect(arms.configDifferences("mpformer-halfmp")["data.workers"] == "3")
        #expect(arms.runs("mpformer")[0].gradients.count == 6 && arms.runs("mpformer")[0].gradients[1].matching == 12)
        #expect(arms.runs("mask2former")[0].gradients.allSatisfy { $0.matching == nil })

        // The baseline is required; other arms may be missing.
        let none = #expect(throws: ExperimentReportError.self) {
            try ExperimentArms.load(directory: fake.root, seeds: [3], arms: ["mask2former", "mpformer"])
        }
        #expect(none?.description.contains("no finished run of the baseline arm mask2former") == true)
    }

    /// A run stopped during its last in-training evaluation: eval/results.json stands in for the missing log line.
    @Test func finalResultsStandInForAMissingLastEvaluation() throws {
        let fake = try FakeRuns()
        defer { fake.remove() }
        try fake.addRun(model: "mask2former", seed: 1, ap: 20, steps: 6)
        let log = fake.root + "/mask2former-seed1/metrics.jsonl"
        let kept = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { !($0.hasPrefix("{\"eval\"") && $0.contains("\"step\":6")) }
        try (kept.joined(separator: "\n") + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        let arms = try ExperimentArms.load(directory: fake.root, seeds: [1], arms: ["mask2former"])
        let evals = arms.runs("mask2former")[0].evals
        #expect(evals.map(\.step) == [2, 4, 6])
        #expect(evals[2].metrics["AP"] == 20 && evals[2].metrics["Util_1"] == 50 && evals[2].metrics["mIoU-L_0"] == 50)
    }

    @Test func writesArmsReport() throws {
        let fake = try fakeExperiment()
        defer { fake.remove() }
        // The dataset's counts as cluster/experiment.sh records them next to the runs (no dataset needed), by the
        // config's split names (here the defaults).
        try #"{"training": {"images": 1024, "annotations": 8723, "categories": 24}, "validation": {"images": 512, "annotations": 4356, "categories": 24}}"#
            .write(toFile: fake.root + "/dataset.json", atomically: true, encoding: .utf8)
        let arms = try ExperimentArms.load(directory: fake.root, seeds: [1, 2], arms: ["mask2former", "mpformer", "mpformer-halfmp"])
        let out = fake.root + "/report"
        let path = try ArmsReport.write(arms, options: ExperimentReportOptions(
            output: out, steps: 6, ranks: 2, wallSeconds: 7200, command: "cluster/experiment.sh --preset powered"))
        let md = try String(contentsOfFile: path, encoding: .utf8)
        #expect(md.contains("1024 training images with 8723 instances, 512 held-out images with 4356 instances, 24 categories"))
        #expect(md.contains("**Partial experiment:** 1 run(s)") && md.contains("`mpformer-halfmp-seed2`"))
        #expect(md.contains("| Mask2Former | 2 | 25.00 ± 7.07 |"))
        #expect(md.contains("| MP-Former | 2 | 2 of 2 | +1.00 ± 0.00 |"))
        // AP at step 4: 16 and 24 vs 19 and 28.5 → differences 3 and 4.5.
        #expect(md.contains("| 4 | 20.00 ± 5.66 | 23.75 ± 6.72 | +3.75 ± 1.06 (t = +5.00, p = 0.126) |"))
        // Convergence: Mask2Former at step 6, MP-Former at 4 (Δ −2), the half-weight arm never (seed 2 unfinished).
        #expect(md.contains("| Mask2Former | 6 | 6 | 6 (2 of 2) |"))
        #expect(md.contains("| MP-Former | 4 | 4 | 4 (2 of 2) | −2.00 ± 0.00 |"))
        #expect(md.contains("| MP-Former, MP losses × 0.5 | — |  | — (0 of 1) | — (1 seed never reached it and is left out, which favours this arm) |"))
        #expect(md.contains("**MP-Former, MP losses × 0.5** (`data.workers=3`, `model.mask_piloting.enabled=true`)"))
        // Norms 10…60 (median: the 4th of 6), split on steps 2, 4, 6.
        #expect(md.contains("| MP-Former | 40.00 ± 0.00 | 10.0–60.0 | 100.0 % | 3 | 24.00 ± 0.00 | 32.00 ± 0.00 | 1.33 ± 0.00 | 0.00 ± 0.00 | 0.60 ± 0.00 |"))
        #expect(md.contains("| Mask2Former | 40.00 ± 0.00 | 10.0–60.0 | 100.0 % | 0 | — |"))
        #expect(md.contains("*The discussion has not been written yet*"))

        var plots = 0
        for line in md.split(separator: "\n") where line.hasPrefix("![](") {
            let file = String(line.dropFirst(4).dropLast())
            let image = try decodePNG([UInt8](Data(contentsOf: URL(fileURLWithPath: out + "/" + file))), file: file)
            #expect(image.width == 800 && image.height == 500)
            plots += 1
        }
        #expect(plots == 6)
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as? [String: Any])
        let mp = try #require((summary["by_arm"] as? [String: Any])?["mpformer"] as? [String: Any])
        let test = try #require(mp["final_ap_paired_test"] as? [String: Any])
        #expect(((test["difference"] as? [String: Any])?["mean"] as? Double) == 1)
        #expect((mp["layers_by_step"] as? [Any])?.count == 3)
        #expect((summary["missing_runs"] as? [String])?.count == 1)
    }
}
