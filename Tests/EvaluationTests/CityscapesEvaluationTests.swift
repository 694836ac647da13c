// Tests of the Cityscapes protocols on hand-computed cases: class IoU (absent-but-predicted classes count, absent ones
// are left out, predictions of void labels are false negatives), instance AP (the script's precision–recall
// integration, second matches as false positives, ignored overlaps with void, group regions and small instances), the
// prediction-list format and the result-file search. The same numbers against cityscapesscripts itself:
// tools/check_cityscapes.py, run by cluster/test-cityscapes.sh.
import _TestSupport
import Datasets
import Evaluation
import Foundation
import Testing

@Suite struct CityscapesEvaluationTests {
    @Test func classIoU() throws {
        var ev = CityscapesSemanticScores.makeEvaluator()
        // gt road(0) ×4, sidewalk(1) ×2, one ignored pixel; predictions: road ×3 and a void label (column 19) on road,
        // road and sidewalk on sidewalk, building (2) on the ignored pixel (dropped).
        try ev.update(prediction: [0, 0, 0, 19, 0, 1, 2] as [UInt8], groundTruth: [0, 0, 0, 0, 1, 1, 255] as [UInt8])
        let s = CityscapesSemanticScores(ev)
        // road: tp 3, fn 1 (void prediction), fp 1 (on sidewalk) → 3/5; sidewalk: tp 1, fn 1 → 1/2; others absent.
        #expect(s.perClassIoU[0] == 0.6 && s.perClassIoU[1] == 0.5 && s.perClassIoU[2] == nil)
        #expect(abs(s.meanIoU - 0.55) < 1e-12)
        // A class predicted where the ground truth is another class scores 0 and counts.
        try ev.update(prediction: [5] as [UInt8], groundTruth: [1] as [UInt8])
        let t = CityscapesSemanticScores(ev)
        #expect(t.perClassIoU[5] == 0 && t.perClassIoU[1] == 1.0 / 3)
        #expect(CityscapesSemanticScores.column(ofLabelID: 26) == 13 && CityscapesSemanticScores.column(ofLabelID: 4) == 19)
    }

    /// A 20×20 instanceIds map: car 26000 (rows 0–9, 200 px), car 26001 (rows 10–11, 40 px: under 100, not counted),
    /// a car group 26 (rows 12–15), ego vehicle 1 (rows 16–19, void).
    func groundTruth() -> Gray16Map {
        var v = [UInt16](repeating: 0, count: 400)
        for p in 0..<400 { v[p] = p < 200 ? 26000 : p < 240 ? 26001 : p < 320 ? 26 : 1 }
        return Gray16Map(width: 20, height: 20, values: v)
    }
    func rows(_ r: Range<Int>) -> [UInt8] { (0..<400).map { r.contains($0 / 20) ? 1 : 0 } }

    @Test func matchingRecordsEveryOverlap() throws {
        let image = try CityscapesInstanceImage(groundTruth: groundTruth(), predictions: [
            (26, 0.9, rows(0..<10)), (26, 0.5, rows(8..<14)), (7, 0.9, rows(0..<10)), (24, 0.3, [UInt8](repeating: 0, count: 400)),
        ], context: "t")
        #expect(image.groundTruth.map(\.instanceID) == [26, 26000, 26001] && image.groundTruth.map(\.pixels) == [80, 200, 40])
        #expect(image.predictions.count == 2)   // road (not an instance class) and the empty mask are skipped
        #expect(image.predictions[1].overlaps == [[0, 40], [1, 40], [2, 40]] && image.predictions[1].voidPixels == 0)
    }

    @Test func averagePrecisionAsTheScriptIntegrates() throws {
        // One exact match: AP 1 at every threshold.
        let exact = try CityscapesInstanceImage(groundTruth: groundTruth(), predictions: [(26, 0.9, rows(0..<10))], context: "t")
        #expect(CityscapesInstanceAP([exact]).ap == 1)
        // A match at 0.8 and a false positive at 0.9 on a second image whose car is missed: points (p .5, r .5),
        // (0, 0) and the artificial (1, 0); widths ¼, ¼, 0 → AP 0.125.
        var second = groundTruth()
        for p in 0..<200 { second.values[p] = 26002 }
        let matched = try CityscapesInstanceImage(groundTruth: groundTruth(), predictions: [(26, 0.8, rows(0..<10))], context: "v")
        let fp = try CityscapesInstanceImage(groundTruth: second, predictions: [(26, 0.9, rows(0..<1))], context: "w")
        let r = CityscapesInstanceAP([matched, fp])
        // image w: the prediction (20 px) overlaps car 26002 with IoU 0.1 → a false positive; its car is a hard FN.
        #expect(abs(r.perClassAP50[2] - 0.125) < 1e-12 && abs(r.ap - 0.125) < 1e-12)
        // Classes without ground truth are left out of the mean.
        #expect(r.perClassAP[0].isNaN && !r.ap.isNaN)
        // A second match becomes a false positive at the lower score.
        let twice = try CityscapesInstanceImage(groundTruth: groundTruth(), predictions: [(26, 0.4, rows(0..<10)), (26, 0.7, rows(0..<9))], context: "x")
        // examples: (0.7 T), (0.4 F) → points (½, 1), (1, 1), (1, 0) → AP = ½·0 + 1·½ + 1·½ = 1 at 0.5; at 0.95 only the exact one
        // matches (0.4 T) and 0.7 is a false positive with IoU 0.9 ≤ 0.95 → (½, 1), (0, 0), (1, 0) → ¼.
        let t = CityscapesInstanceAP([twice])
        #expect(abs(t.perClassAP50[2] - 1) < 1e-12)
        let at95 = CityscapesInstanceAP.averagePrecision([twice], label: 2, threshold: CityscapesInstanceAP.overlaps[9])
        #expect(abs(at95 - 0.25) < 1e-12)
    }

    @Test func ignoredPredictions() throws {
        // On the group region, on void, on the small car: none is a false positive (ignored share > the threshold).
        let image = try CityscapesInstanceImage(groundTruth: groundTruth(), predictions: [
            (26, 0.9, rows(0..<10)), (26, 0.95, rows(12..<16)), (26, 0.97, rows(16..<20)), (26, 0.99, rows(10..<12)),
        ], context: "t")
        #expect(CityscapesInstanceAP([image]).ap == 1)
        // The same predictions as another class (person, no ground truth): that class is NaN, cars unaffected.
        #expect(CityscapesInstanceAP([image]).perClassAP[0].isNaN)
        // Ground truth and predictions, but every prediction ignored and every car missed: the script crashes on an
        // empty cumulative sum; MaskPilot scores 0.
        let ignoredOnly = try CityscapesInstanceImage(groundTruth: groundTruth(), predictions: [(26, 0.95, rows(12..<16))], context: "y")
        #expect(CityscapesInstanceAP([ignoredOnly]).perClassAP[2] == 0)
    }

    @Test func predictionListFormat() throws {
        let dir = try makeTestDirectory("cs-list").path
        let list = "\(dir)/aachen_000000_000019_pred.txt"
        try "masks/a.png 26 0.5\nmasks/b.png 24.0 0.25\nmasks/a.png 33 0.75\n".write(toFile: list, atomically: true, encoding: .utf8)
        let entries = try readCityscapesInstanceList(list)
        #expect(entries.map(\.labelID) == [33, 24] && entries.map(\.confidence) == [0.75, 0.25])
        #expect(entries[0].mask == "\(dir)/masks/a.png")
        // CRLF and CR line ends, as Python's text mode reads them.
        try "masks/a.png 26 0.5\r\nmasks/b.png 24 0.25\rmasks/c.png 25 0.125\r\n".write(toFile: list, atomically: true, encoding: .utf8)
        #expect(try readCityscapesInstanceList(list).map(\.labelID) == [26, 24, 25])
        // A mask outside the results folder is refused, as the script does.
        try "../../a.png 26 0.5\n".write(toFile: list, atomically: true, encoding: .utf8)
        #expect { _ = try readCityscapesInstanceList(list, root: dir) } throws: { "\($0)".contains("outside the results folder") }
        for bad in ["masks/a.png 26\n", "masks/a.png  26 0.5\n", "/abs/a.png 26 0.5\n", "masks/a.png car 0.5\n", "masks/a.png 1e300 0.5\n",
                    "masks/a.png 0x1A 0.5\n", "masks/a.png 26 0x1p-1\n"] {
            try bad.write(toFile: list, atomically: true, encoding: .utf8)
            #expect { _ = try readCityscapesInstanceList(list) } throws: { "\($0)".contains("\(list): line 1") }
        }
    }

    @Test func resultFileSearch() throws {
        let dir = try makeTestDirectory("cs-find").path
        try FileManager.default.createDirectory(atPath: "\(dir)/a/b", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(dir)/aachen_000000_000019_dir.png", withIntermediateDirectories: true)   // not a file
        for f in ["a/b/aachen_000000_000019_pred.png", "a/mask_aachen_000000_000019_0.png", "aachen_000000_0000190_pred.png",
                  "bochum_000000_000001_x.png", "bochum_000000_000001_y.png"] {
            FileManager.default.createFile(atPath: "\(dir)/\(f)", contents: Data())
        }
        #expect(try findCityscapesResultFiles(in: dir, stems: ["aachen_000000_000019"], suffix: ".png") == ["\(dir)/a/b/aachen_000000_000019_pred.png"])
        #expect { _ = try findCityscapesResultFiles(in: dir, stems: ["bochum_000000_000001"], suffix: ".png") } throws: { "\($0)".contains("2 predictions") }
        #expect { _ = try findCityscapesResultFiles(in: dir, stems: ["aachen_000000_000019"], suffix: ".txt") } throws: { "\($0)".contains("no aachen") }
        // A symlinked results folder is followed.
        let link = dir + "-link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: dir + "/a")
        #expect(try findCityscapesResultFiles(in: link, stems: ["aachen_000000_000019"], suffix: ".png").count == 1)
    }
}
