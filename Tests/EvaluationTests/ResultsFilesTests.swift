// Tests of the results files: COCO instance results JSON and COCO panoptic predictions written and read back,
// and end-to-end scoring through the files of ground truth turned into "perfect" predictions.
import Datasets
import Evaluation
import Foundation
import Testing

@Suite struct ResultsFilesTests {
    func tempDir(_ tag: String) throws -> String {
        let d = NSTemporaryDirectory() + "maskpilot-results-\(tag)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test func instanceResultsRoundTrip() throws {
        let dir = try tempDir("inst"); defer { try? FileManager.default.removeItem(atPath: dir) }
        var bits = [UInt8](repeating: 0, count: 7 * 5)
        for i in [3, 4, 10, 11, 12, 30] { bits[i] = 1 }
        let rle = COCORLE(mask: BinaryMask(width: 7, height: 5, bits: bits))
        let dets = [COCOMaskAPDetection(imageID: 4, categoryID: 7, score: 0.875, rle: rle),
                    COCOMaskAPDetection(imageID: 9, categoryID: 1, score: 0.1, rle: .empty(height: 5, width: 7))]
        let path = dir + "/results.json"
        try writeCOCOInstanceResults(dets, to: path)
        let back = try readCOCOInstanceResults(path: path)
        #expect(back.count == 2)
        for (a, b) in zip(dets, back) {
            #expect(a.imageID == b.imageID && a.categoryID == b.categoryID && a.score == b.score && a.rle == b.rle)
        }
        // The JSON is COCO's loadRes layout.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [[String: Any]]
        let seg = json[0]["segmentation"] as! [String: Any]
        #expect(seg["size"] as? [Int] == [5, 7])
        #expect(seg["counts"] as? String == rle.compressedCounts)
        #expect(json[0]["image_id"] as? Int == 4 && json[0]["category_id"] as? Int == 7)
    }

    @Test func instanceResultsErrorsNameTheFile() throws {
        let dir = try tempDir("bad"); defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/bad.json"
        try Data(#"[{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [2, 2], "counts": [1, 9]}}]"#.utf8)
            .write(to: URL(fileURLWithPath: path))
        #expect { try readCOCOInstanceResults(path: path) } throws: { "\($0)".contains(path) && "\($0)".contains("result 0") }
        #expect { try readCOCOInstanceResults(path: dir + "/missing.json") } throws: { "\($0)".contains("missing.json") }
    }

    @Test func panopticPredictionsRoundTrip() throws {
        let dir = try tempDir("pan"); defer { try? FileManager.default.removeItem(atPath: dir) }
        let ids: [UInt32] = [0, 1, 1, 70000, 70000, 300, 300, 1, 0, 0, 70000, 300]
        let p = PanopticPrediction(width: 4, height: 3, ids: ids,
                                   segments: [.init(id: 1, classIndex: 2), .init(id: 70000, classIndex: 0), .init(id: 300, classIndex: 1)])
        let categoryIDs = [5, 92, 17]
        let json = try writeCOCOPanopticPredictions([42: p], categoryIDs: categoryIDs, directory: dir)
        #expect(try findCOCOPanopticPredictionJSON(in: dir) == json)
        #expect(FileManager.default.fileExists(atPath: dir + "/panoptic_predictions/000000000042.png"))
        let back = try readCOCOPanopticPredictions(json: json, categoryIDs: categoryIDs)
        #expect(back.count == 1)
        let q = try #require(back[42])
        #expect(q.width == 4 && q.height == 3 && q.ids == ids && q.segments == p.segments)
        // categories are written by their COCO ids
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as! [String: Any]
        let ann = (obj["annotations"] as! [[String: Any]])[0]
        #expect((ann["segments_info"] as! [[String: Any]]).map { $0["category_id"] as! Int } == [17, 5, 92])
        // an unknown category id is an error naming the JSON
        #expect { try readCOCOPanopticPredictions(json: json, categoryIDs: [5, 92]) } throws: { "\($0)".contains(json) }
    }

    @Test func perfectInstanceDetectionsThroughFilesGiveAP1() throws {
        let root = try tempDir("coco"); defer { try? FileManager.default.removeItem(atPath: root) }
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cocoInstance, images: 4, width: 64, height: 48,
                                                                         seed: 3, split: "val2017"))
        let ds = try COCOInstances(root: root, split: "val2017")
        let gt = try COCOMaskAP.groundTruth(from: ds)
        #expect(gt.contains { !$0.isCrowd })
        let dets = gt.filter { !$0.isCrowd }.enumerated().map {
            COCOMaskAPDetection(imageID: $1.imageID, categoryID: $1.categoryID, score: 1 - Double($0) * 1e-3, rle: $1.rle)
        }
        let path = root + "/results.json"
        try writeCOCOInstanceResults(dets, to: path)
        let back = try readCOCOInstanceResults(path: path)
        let r = try COCOMaskAP.evaluate(imageIDs: ds.images.map(\.id), categoryIDs: ds.categories.map(\.id),
                                        groundTruth: gt, detections: back)
        #expect(abs(r.ap - 1) < 1e-12 && abs(r.ap50 - 1) < 1e-12 && abs(r.ap75 - 1) < 1e-12)
        #expect(abs(r.ar100 - 1) < 1e-12)
    }

    @Test func perfectPanopticPredictionsThroughFilesGivePQ1() throws {
        let root = try tempDir("cocopan"); defer { try? FileManager.default.removeItem(atPath: root) }
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cocoPanoptic, images: 4, width: 64, height: 48,
                                                                         seed: 5, split: "val2017"))
        let ds = try COCOPanopticDataset(root: root, split: "val2017")
        var preds: [PanopticImageID: PanopticPrediction] = [:]
        var targets: [PanopticImageID: PanopticTargets] = [:]
        for i in 0..<ds.count {
            let r = ds.records[i]
            let ids = try ds.idMap(i)
            let present = Set(ids)
            targets[.number(r.imageId)] = PanopticTargets(width: r.width, height: r.height, ids: ids, segments: r.segments)
            preds[.number(r.imageId)] = PanopticPrediction(width: r.width, height: r.height, ids: ids,
                                                  segments: r.segments.filter { present.contains($0.id) }
                                                      .map { .init(id: $0.id, classIndex: $0.classIndex) })
        }
        let out = root + "/predictions"
        try writeCOCOPanopticPredictions(preds, categoryIDs: ds.categories.map(\.id), directory: out)
        let back = try readCOCOPanopticPredictions(json: try findCOCOPanopticPredictionJSON(in: out),
                                                   categoryIDs: ds.categories.map(\.id))
        #expect(back.count == ds.count)
        var ev = PanopticEvaluator(isThing: ds.categories.map(\.isThing))
        for (id, t) in targets { try ev.update(groundTruth: t, prediction: try #require(back[id])) }
        let r = ev.result()
        #expect(r.all.count > 0)
        #expect(abs(r.all.pq - 1) < 1e-12 && abs(r.all.sq - 1) < 1e-12 && abs(r.all.rq - 1) < 1e-12)
    }
}
