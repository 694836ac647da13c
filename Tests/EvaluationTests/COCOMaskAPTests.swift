// COCOMaskAP against the COCO API (fixture from tools/make_coco_ap_fixture.py, stats from pycocotools COCOeval
// iouType='segm') and hand-computed cases: perfect detections, no detections, the crowd IoU rule.

import Datasets
import Evaluation
import Foundation
import Testing

private func loadFixture() throws -> (images: [Int], categories: [Int], gt: [COCOMaskAPGroundTruth],
                                      dt: [COCOMaskAPDetection], stats: [Double]) {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/coco_ap_fixture.json")
    let root = try JSONSerialization.jsonObject(with: Foundation.Data(contentsOf: url)) as! [String: Any]
    let gtJSON = root["ground_truth"] as! [String: Any]
    let images = (gtJSON["images"] as! [[String: Any]]).map { $0["id"] as! Int }
    let categories = (gtJSON["categories"] as! [[String: Any]]).map { $0["id"] as! Int }
    func rle(_ seg: Any) throws -> COCORLE {
        let s = seg as! [String: Any]
        let size = s["size"] as! [Int]
        return try COCORLE(compressedCounts: s["counts"] as! String, height: size[0], width: size[1])
    }
    let gt = try (gtJSON["annotations"] as! [[String: Any]]).map { a in
        COCOMaskAPGroundTruth(imageID: a["image_id"] as! Int, categoryID: a["category_id"] as! Int,
                              isCrowd: (a["iscrowd"] as! Int) != 0, area: (a["area"] as! NSNumber).doubleValue,
                              rle: try rle(a["segmentation"]!))
    }
    let dt = try (root["detections"] as! [[String: Any]]).map { d in
        COCOMaskAPDetection(imageID: d["image_id"] as! Int, categoryID: d["category_id"] as! Int,
                            score: (d["score"] as! NSNumber).doubleValue, rle: try rle(d["segmentation"]!))
    }
    let stats = (root["stats"] as! [NSNumber]).map(\.doubleValue)
    return (images, categories, gt, dt, stats)
}

private func square(_ h: Int, _ w: Int, y: Int, x: Int, size: Int) -> COCORLE {
    var bits = [UInt8](repeating: 0, count: h * w)
    for yy in y..<min(h, y + size) { for xx in x..<min(w, x + size) { bits[yy * w + xx] = 1 } }
    return COCORLE(mask: BinaryMask(width: w, height: h, bits: bits))
}

@Suite struct COCOMaskAPTests {
    @Test func matchesPycocotoolsFixture() throws {
        let f = try loadFixture()
        #expect(f.gt.contains { $0.isCrowd })
        let result = try COCOMaskAP.evaluate(imageIDs: f.images, categoryIDs: f.categories, groundTruth: f.gt,
                                             detections: f.dt)
        #expect(result.stats.count == 12)
        for (i, (mine, coco)) in zip(result.stats, f.stats).enumerated() {
            #expect(abs(mine - coco) < 1e-6, "\(COCOMaskAPResult.names[i]): \(mine) vs COCO API \(coco)")
        }
        // Every category with ground truth fills all its precision entries, so AP is the mean of the per-category APs
        // (tools/check_coco_ap.py compares each with pycocotools' precision array).
        let defined = result.perCategoryAP.filter { !$0.isNaN }
        #expect(result.perCategoryAP.count == f.categories.count && !defined.isEmpty)
        #expect(abs(defined.reduce(0, +) / Double(defined.count) - result.ap) < 1e-12)
        // Categories given out of id order get their own APs (the evaluation sorts them internally).
        let reversed = try COCOMaskAP.evaluate(imageIDs: f.images, categoryIDs: f.categories.reversed(), groundTruth: f.gt, detections: f.dt)
        #expect(reversed.perCategoryAP.map { $0.isNaN ? -1 : $0 } == result.perCategoryAP.reversed().map { $0.isNaN ? -1 : $0 })
        #expect(reversed.stats == result.stats)
    }

    @Test func perfectDetectionsScoreOne() throws {
        // Objects in all three area ranges: 5×5 (small), 40×40 (medium), 110×110 (large).
        let h = 128, w = 128
        let masks = [square(h, w, y: 0, x: 0, size: 5), square(h, w, y: 10, x: 10, size: 40),
                     square(h, w, y: 0, x: 0, size: 110)]
        let gt = masks.enumerated().map { i, m in
            COCOMaskAPGroundTruth(imageID: 1, categoryID: i + 1, isCrowd: false, area: Double(m.area), rle: m)
        }
        let dt = masks.enumerated().map { i, m in COCOMaskAPDetection(imageID: 1, categoryID: i + 1, score: 0.9, rle: m) }
        let r = try COCOMaskAP.evaluate(imageIDs: [1], categoryIDs: [1, 2, 3], groundTruth: gt, detections: dt)
        for v in r.stats { #expect(abs(v - 1) < 1e-12) }
    }

    /// A 10×10 object and its detection shifted by one pixel: IoU = 90 / 110 ≈ 0.818, a true positive at the
    /// thresholds 0.50…0.80 (7 of 10) and a false positive at 0.85…0.95, so AP = 0.7, AP50 = AP75 = 1.
    @Test func onePixelShiftFailsOnlyTheStrictThresholds() throws {
        let m = square(64, 64, y: 20, x: 20, size: 10), shifted = square(64, 64, y: 20, x: 21, size: 10)
        #expect(abs(COCOMaskAP.iou(shifted, m, gtIsCrowd: false) - 90.0 / 110) < 1e-12)
        let gt = [COCOMaskAPGroundTruth(imageID: 1, categoryID: 1, isCrowd: false, area: Double(m.area), rle: m)]
        let r = try COCOMaskAP.evaluate(imageIDs: [1], categoryIDs: [1], groundTruth: gt,
                                        detections: [COCOMaskAPDetection(imageID: 1, categoryID: 1, score: 0.9, rle: shifted)])
        #expect(abs(r.ap - 0.7) < 1e-12 && abs(r.ap50 - 1) < 1e-12 && abs(r.ap75 - 1) < 1e-12 && abs(r.ar100 - 0.7) < 1e-12, "\(r.stats)")
    }

    /// Two objects; detections by score: A (TP), a duplicate of A (FP: A is taken), B (TP). Precision/recall:
    /// (1, ½), (½, ½), (⅔, 1); the interpolated precision is 1 for the 51 recall points ≤ ½ and ⅔ for the 50 above,
    /// so AP = (51 + 50·⅔) / 101 at every IoU threshold. A duplicate ranked last instead costs nothing (AP = 1).
    @Test func duplicateDetectionsAreFalsePositives() throws {
        let a = square(64, 64, y: 0, x: 0, size: 20), b = square(64, 64, y: 30, x: 30, size: 20)
        let gt = [a, b].map { COCOMaskAPGroundTruth(imageID: 1, categoryID: 1, isCrowd: false, area: Double($0.area), rle: $0) }
        func ap(_ scores: [Double]) throws -> COCOMaskAPResult {
            let dt = zip([a, a, b], scores).map { COCOMaskAPDetection(imageID: 1, categoryID: 1, score: $0.1, rle: $0.0) }
            return try COCOMaskAP.evaluate(imageIDs: [1], categoryIDs: [1], groundTruth: gt, detections: dt)
        }
        let middle = try ap([0.9, 0.8, 0.7])
        let expected = (51 + 50 * 2.0 / 3) / 101
        #expect(abs(middle.ap - expected) < 1e-12 && abs(middle.ap50 - expected) < 1e-12 && middle.ar100 == 1)
        let last = try ap([0.9, 0.1, 0.7])
        #expect(abs(last.ap - 1) < 1e-12)
    }

    @Test func noDetectionsScoreZero() throws {
        let m = square(64, 64, y: 4, x: 4, size: 20)
        let gt = [COCOMaskAPGroundTruth(imageID: 1, categoryID: 1, isCrowd: false, area: Double(m.area), rle: m)]
        let r = try COCOMaskAP.evaluate(imageIDs: [1], categoryIDs: [1], groundTruth: gt, detections: [])
        // AP and AR 0 where there is ground truth (small: 400 px); −1 for the empty medium/large ranges.
        #expect(r.ap == 0 && r.ap50 == 0 && r.ap75 == 0 && r.apSmall == 0)
        #expect(r.apMedium == -1 && r.apLarge == -1)
        #expect(r.ar1 == 0 && r.ar100 == 0 && r.arSmall == 0 && r.arMedium == -1 && r.arLarge == -1)
    }

    @Test func crowdIoUUsesDetectionArea() throws {
        let crowd = square(64, 64, y: 0, x: 0, size: 40)        // 1600 px
        let inside = square(64, 64, y: 5, x: 5, size: 10)       // 100 px, all inside the crowd region
        let half = square(64, 64, y: 35, x: 35, size: 10)       // 25 of its 100 px inside
        #expect(COCOMaskAP.iou(inside, crowd, gtIsCrowd: true) == 1)
        #expect(COCOMaskAP.iou(inside, crowd, gtIsCrowd: false) == 100.0 / 1600)
        #expect(COCOMaskAP.iou(half, crowd, gtIsCrowd: true) == 0.25)
        #expect(COCOMaskAP.iou(half, crowd, gtIsCrowd: false) == 25.0 / 1675)

        // Detections on a crowd region are ignored: one real object found perfectly, plus two detections in
        // the crowd region scored higher than it — AP stays 1.
        let object = square(64, 64, y: 45, x: 45, size: 15)
        let gt = [COCOMaskAPGroundTruth(imageID: 1, categoryID: 1, isCrowd: true, area: 1600, rle: crowd),
                  COCOMaskAPGroundTruth(imageID: 1, categoryID: 1, isCrowd: false, area: 225, rle: object)]
        let dt = [COCOMaskAPDetection(imageID: 1, categoryID: 1, score: 0.99, rle: inside),
                  COCOMaskAPDetection(imageID: 1, categoryID: 1, score: 0.98, rle: square(64, 64, y: 20, x: 20, size: 12)),
                  COCOMaskAPDetection(imageID: 1, categoryID: 1, score: 0.5, rle: object)]
        let r = try COCOMaskAP.evaluate(imageIDs: [1], categoryIDs: [1], groundTruth: gt, detections: dt)
        #expect(abs(r.ap - 1) < 1e-12 && r.ar100 == 1)
        // Without the crowd flag the same region is a real object: the two high-scoring detections are false
        // positives (IoU 100/1600 and 144/1600) and precision drops.
        var plain = gt; plain[0].isCrowd = false
        let r2 = try COCOMaskAP.evaluate(imageIDs: [1], categoryIDs: [1], groundTruth: plain, detections: dt)
        #expect(r2.ap < 0.5)
    }
}
