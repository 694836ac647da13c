// Tests of the COCO panoptic reader: RGB-encoded ids, category mapping, crowd, and bad inputs named by file and id.
// Reference: panopticapi rgb2id (id = R + 256·G + 256²·B) and detectron2's coco_panoptic loader.
import Data
import Foundation
import Testing

@Suite struct COCOPanopticTests {
    /// A 4×2 dataset: segment 300 (thing, G byte used), segment 5 (stuff), segment 70000 (crowd, B byte), void.
    func makeDataset(json: String? = nil, pngIds: [UInt32]? = nil) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pan-\(UUID().uuidString)").path
        for d in ["annotations/panoptic_val2017", "val2017"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(d)", withIntermediateDirectories: true)
        }
        try writeJPEG(Image8(width: 4, height: 2, channels: 3, fill: 90), to: "\(root)/val2017/000000000009.jpg")
        let ids = pngIds ?? [300, 300, 5, 0, 70000, 300, 5, 5]
        let rgb = ids.flatMap { [UInt8($0 & 255), UInt8(($0 >> 8) & 255), UInt8(($0 >> 16) & 255)] }
        try writePNG(Image8(width: 4, height: 2, channels: 3, pixels: rgb), to: "\(root)/annotations/panoptic_val2017/000000000009.png")
        let text = json ?? """
            {"images": [{"id": 9, "file_name": "000000000009.jpg", "width": 4, "height": 2}],
             "annotations": [{"image_id": 9, "file_name": "000000000009.png", "segments_info": [
                {"id": 300, "category_id": 18, "iscrowd": 0, "area": 3},
                {"id": 5, "category_id": 184, "iscrowd": 0, "area": 3},
                {"id": 70000, "category_id": 18, "iscrowd": 1, "area": 1}]}],
             "categories": [{"id": 1, "name": "person", "isthing": 1}, {"id": 18, "name": "dog", "isthing": 1},
                            {"id": 184, "name": "tree-merged", "isthing": 0}]}
            """
        try text.write(toFile: "\(root)/annotations/panoptic_val2017.json", atomically: true, encoding: .utf8)
        return root
    }

    @Test func readsIdsCategoriesAndCrowd() throws {
        let root = try makeDataset()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ds = try COCOPanopticDataset(root: root, split: "val2017")
        #expect(ds.count == 1 && ds.numClasses == 3 && ds.thingClasses == [0, 1])
        #expect(ds.records[0].segments == [PanopticSegment(id: 300, classIndex: 1, isCrowd: false),
                                           PanopticSegment(id: 5, classIndex: 2, isCrowd: false),
                                           PanopticSegment(id: 70000, classIndex: 1, isCrowd: true)])
        #expect(try ds.idMap(0) == [300, 300, 5, 0, 70000, 300, 5, 5])
        let s = try ds.sample(0)
        #expect(s.imageId == 9 && s.image.width == 4)
        guard case .panoptic(let t) = s.targets else { Issue.record("expected panoptic targets"); return }
        #expect(t.ids.count == 8 && t.segments.count == 3)
    }

    @Test func badInputsNameFileAndId() throws {
        func expectError(json: String? = nil, pngIds: [UInt32]? = nil, load: Bool = false, _ needles: [String]) throws {
            let root = try makeDataset(json: json, pngIds: pngIds)
            defer { try? FileManager.default.removeItem(atPath: root) }
            #expect {
                let ds = try COCOPanopticDataset(root: root, split: "val2017")
                if load { _ = try ds.sample(0) }
            } throws: { e in needles.allSatisfy { "\(e)".contains($0) } }
        }
        let base = #"{"images": [{"id": 9, "file_name": "000000000009.jpg", "width": 4, "height": 2}], "categories": [{"id": 18, "name": "dog", "isthing": 1}], "annotations": "#
        try expectError(json: base + #"[{"image_id": 10, "file_name": "x.png", "segments_info": []}]}"#, ["panoptic_val2017.json", "unknown image id 10"])
        try expectError(json: base + #"[{"image_id": 9, "file_name": "x.png", "segments_info": [{"id": 3, "category_id": 99}]}]}"#,
                        ["segment 3", "unknown category id 99"])
        try expectError(json: #"{"images": [1, 2"#, ["panoptic_val2017.json", "malformed"])
        try expectError(pngIds: [300, 300, 5, 0, 70000, 300, 5, 12345], load: true, ["000000000009.png", "12345"])
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("nothing-\(UUID().uuidString)").path
        #expect { _ = try COCOPanopticDataset(root: missing, split: "val2017") } throws: { e in "\(e)".contains("panoptic_val2017.json") }
    }
}
