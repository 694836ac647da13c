// Tests of the COCO panoptic reader: RGB-encoded ids, category mapping, crowd, and bad inputs named by file and id.
// Reference: panopticapi rgb2id (id = R + 256·G + 256²·B) and detectron2's coco_panoptic loader.
import Datasets
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

    /// Runs `body` on a dataset folder whose panoptic JSON is `json` (no images or PNGs needed to load).
    func withJSON(_ json: String, _ body: (String) throws -> Void) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("panj-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: "\(root)/annotations", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try json.write(toFile: "\(root)/annotations/panoptic_val2017.json", atomically: true, encoding: .utf8)
        try body(root)
    }

    /// The error message `COCOPanopticDataset` throws for `json` ("" if it loads).
    func loadError(_ json: String) throws -> String {
        var message = ""
        try withJSON(json) { root in
            do { _ = try COCOPanopticDataset(root: root, split: "val2017") } catch { message = "\(error)" }
        }
        return message
    }

    @Test func keysInAnyOrderAndUnknownKeysSkipped() throws {
        // top-level arrays in reverse order, members reversed, unknown keys of every JSON type (nested too),
        // iscrowd absent / null / 1, escapes in strings, integers written as 2.0 and 4e0
        let json = #"""
            {"categories": [{"supercategory": {"a": [1, {"b": null}]}, "isthing": 0, "name": "sky\u002dother", "id": 7},
                            {"isthing": 1, "id": 3, "name": "cat", "color": [1, 2, 3]}],
             "info": {"year": 2017, "nested": [[], {}, "x", -1.5e-3, true, false, null]},
             "annotations": [
                {"segments_info": [{"bbox": [0, 0, 1, 1], "category_id": 3, "area": 12.5, "id": 65793},
                                   {"iscrowd": null, "id": 2, "category_id": 7},
                                   {"id": 16777215, "iscrowd": 1, "category_id": 3}],
                 "file_name": "b\/x.png", "image_id": 20, "extra": "x"},
                {"image_id": 10, "segments_info": [], "file_name": "a.png"}],
             "licenses": [],
             "images": [{"coco_url": "http://x", "height": 2.0, "width": 4e0, "file_name": "b.jpg", "id": 20},
                        {"id": 10, "file_name": "a.jpg", "width": 3, "height": 5, "license": 1},
                        {"id": 30, "file_name": "unused.jpg", "width": 1, "height": 1}]}
            """#
        try withJSON(json) { root in
            let ds = try COCOPanopticDataset(root: root, split: "val2017")
            #expect(ds.categories.map(\.id) == [7, 3] && ds.categories.map(\.name) == ["sky-other", "cat"])
            #expect(ds.thingClasses == [1])
            #expect(ds.records.map(\.imageId) == [10, 20])
            let (a, b) = (ds.records[0], ds.records[1])
            #expect(a.imageFile == "\(root)/val2017/a.jpg" && a.pngFile == "\(root)/annotations/panoptic_val2017/a.png")
            #expect(a.width == 3 && a.height == 5 && a.segments.isEmpty)
            #expect(b.imageFile == "\(root)/val2017/b.jpg" && b.pngFile == "\(root)/annotations/panoptic_val2017/b/x.png")
            #expect(b.width == 4 && b.height == 2)
            #expect(b.segments == [PanopticSegment(id: 65793, classIndex: 1, isCrowd: false),
                                   PanopticSegment(id: 2, classIndex: 0, isCrowd: false),
                                   PanopticSegment(id: 16777215, classIndex: 1, isCrowd: true)])
        }
    }

    @Test func malformedAndMistypedJSONNameFileAndPlace() throws {
        let good = #"{"images": [{"id": 9, "file_name": "a.jpg", "width": 4, "height": 2}], "categories": [{"id": 18, "name": "dog", "isthing": 1}], "annotations": [{"image_id": 9, "file_name": "a.png", "segments_info": [{"id": 3, "category_id": 18}]}]}"#
        #expect(try loadError(good) == "")
        // truncated file: a syntax error with the byte offset and line
        let truncated = try loadError(String(good.prefix(good.count / 2)))
        #expect(truncated.contains("panoptic_val2017.json") && truncated.contains("malformed JSON at byte")
                && truncated.contains("line 1"), "\(truncated)")
        let twoLines = try loadError("{\"images\": [\n  {\"id\": 1,, }]}")
        #expect(twoLines.contains("malformed JSON at byte 24 (line 2, column 12)"), "\(twoLines)")
        #expect(try loadError("").contains("malformed JSON at byte 0"))
        #expect(try loadError(good + " x").contains("after the top-level value"))
        // well-formed, wrong types: named by record and key
        let mistyped = try loadError(good.replacingOccurrences(of: #""id": 9"#, with: #""id": "7""#))
        #expect(mistyped.contains("panoptic_val2017.json") && mistyped.contains("images[0]")
                && mistyped.contains("'id' is not an integer"), "\(mistyped)")
        let segment = try loadError(good.replacingOccurrences(of: #""id": 3"#, with: #""id": 3.5"#))
        #expect(segment.contains("annotation a.png") && segment.contains("segments_info[0]")
                && segment.contains("'id' is not an integer"), "\(segment)")
        #expect(try loadError(good.replacingOccurrences(of: #""name": "dog""#, with: #""name": 5"#))
                    .contains("category 18: 'name' is not a string"))
        #expect(try loadError(good.replacingOccurrences(of: #""width": 4, "#, with: "")).contains("image 9: missing 'width'"))
        #expect(try loadError(good.replacingOccurrences(of: #", "isthing": 1"#, with: "")).contains("missing 'isthing'"))
        #expect(try loadError(good.replacingOccurrences(of: #""annotations": ["#, with: #""annotations": {"x": ["#)
                              .replacingOccurrences(of: "}]}]}", with: "}]}]}}")).contains("'annotations' must be an array"))
        #expect(try loadError(#"{"images": [], "annotations": []}"#).contains("no 'categories' array"))
        #expect(try loadError("[]").contains("unexpected JSON structure"))
    }

    @Test func badReferencesNamed() throws {
        let cats = #""categories": [{"id": 18, "name": "dog", "isthing": 1}, {"id": 5, "name": "sky", "isthing": 0}]"#
        let images = #""images": [{"id": 9, "file_name": "a.jpg", "width": 4, "height": 2}]"#
        func annotations(_ imageID: Int, _ segments: String) -> String {
            #""annotations": [{"image_id": \#(imageID), "file_name": "a.png", "segments_info": [\#(segments)]}]"#
        }
        // annotations before images: the image is still found; an unknown one is named
        #expect(try loadError("{\(annotations(9, #"{"id": 1, "category_id": 5}"#)), \(images), \(cats)}") == "")
        let unknownImage = try loadError("{\(annotations(10, "")), \(images), \(cats)}")
        #expect(unknownImage.contains("panoptic_val2017.json: annotation a.png: names unknown image id 10"), "\(unknownImage)")
        #expect(try loadError("{\(images), \(cats), \(annotations(9, #"{"id": 4, "category_id": 6}"#))}")
                    .contains("segment 4 of image 9: unknown category id 6"))
        for bad in [0, -3, 1 << 24] {
            #expect(try loadError("{\(images), \(cats), \(annotations(9, #"{"id": \#(bad), "category_id": 5}"#))}")
                        .contains("segment \(bad) of image 9: segment id outside 1…2²⁴−1"))
        }
        #expect(try loadError("{\(images), \(cats), \(annotations(9, #"{"id": 4, "category_id": 5}, {"id": 4, "category_id": 18}"#))}")
                    .contains("segment 4 of image 9: duplicate segment id"))
        // a duplicate among many segments (the hashed path)
        let many = (1...40).map { #"{"id": \#($0), "category_id": 5}"# }.joined(separator: ", ") + #", {"id": 17, "category_id": 5}"#
        #expect(try loadError("{\(images), \(cats), \(annotations(9, many))}").contains("segment 17 of image 9: duplicate segment id"))
        let dupCat = cats.replacingOccurrences(of: #""id": 5"#, with: #""id": 18"#)
        #expect(try loadError("{\(images), \(dupCat), \(annotations(9, ""))}").contains("category 18: duplicate category id"))
        // Two annotation records for one image; isthing other than 0/1.
        let twice = #""annotations": [{"image_id": 9, "file_name": "a.png", "segments_info": []}, "#
            + #"{"image_id": 9, "file_name": "b.png", "segments_info": []}]"#
        #expect(try loadError("{\(images), \(cats), \(twice)}").contains("annotation b.png: is a second annotation of image 9 (one per image)"))
        let thing2 = cats.replacingOccurrences(of: #""isthing": 1"#, with: #""isthing": 2"#)
        #expect(try loadError("{\(images), \(thing2), \(annotations(9, ""))}").contains("category 18: 'isthing' must be 0 or 1, got 2"))
    }

    @Test func largeGeneratedFileMatchesExpectations() throws {
        // 2000 images, ~1 in 10 without an annotation, annotations in a scrambled order, 0–39 segments each
        var rng = TestStream(seed: 12345)
        let categoryIDs = (0..<133).map { 1 + 3 * $0 + ($0 % 2) }
        let cats = categoryIDs.enumerated().map { i, id in #"{"id": \#(id), "name": "c\#(i)", "supercategory": "s", "isthing": \#(i < 80 ? 1 : 0)}"# }
        var images: [String] = [], annotations: [String] = []
        var expected: [(imageId: Int, width: Int, height: Int, segments: [PanopticSegment])] = []
        for i in 0..<2000 {
            let id = 1 + 7 * ((i * 389) % 2000)   // ids out of file order
            let (w, h) = (100 + Int(rng.next() % 500), 100 + Int(rng.next() % 500))
            images.append(#"{"license": 3, "file_name": "\#(id).jpg", "coco_url": "http://h/\#(id)", "height": \#(h), "width": \#(w), "id": \#(id)}"#)
            guard rng.next() % 10 != 0 else { continue }
            var segs: [PanopticSegment] = [], infos: [String] = []
            var used = Set<UInt32>()
            for _ in 0..<Int(rng.next() % 40) {
                let sid = UInt32(1 + rng.next() % (1 << 24 - 1))
                guard used.insert(sid).inserted else { continue }
                let cls = Int(rng.next() % 133), crowd = rng.next() % 7 == 0
                segs.append(PanopticSegment(id: sid, classIndex: cls, isCrowd: crowd))
                infos.append(crowd || rng.next() % 2 == 0
                    ? #"{"id": \#(sid), "category_id": \#(categoryIDs[cls]), "iscrowd": \#(crowd ? 1 : 0), "bbox": [1, 2, 3, 4], "area": 99}"#
                    : #"{"area": 5, "category_id": \#(categoryIDs[cls]), "id": \#(sid)}"#)
            }
            annotations.append(#"{"segments_info": [\#(infos.joined(separator: ", "))], "file_name": "\#(id).png", "image_id": \#(id)}"#)
            expected.append((id, w, h, segs))
        }
        annotations.reverse()
        let json = #"{"info": {"description": "generated"}, "annotations": [\#(annotations.joined(separator: ",\n"))], "#
            + #""images": [\#(images.joined(separator: ",\n"))], "categories": [\#(cats.joined(separator: ", "))], "licenses": []}"#
        expected.sort { $0.imageId < $1.imageId }
        try withJSON(json) { root in
            let ds = try COCOPanopticDataset(root: root, split: "val2017")
            #expect(ds.count == expected.count && ds.numClasses == 133 && ds.thingClasses == Set(0..<80))
            #expect(ds.categories.map(\.id) == categoryIDs && ds.categories[5].name == "c5")
            #expect(ds.records.map(\.imageId) == expected.map(\.imageId))
            for (r, e) in zip(ds.records, expected) {
                #expect(r.width == e.width && r.height == e.height && r.segments == e.segments)
                #expect(r.imageFile == "\(root)/val2017/\(e.imageId).jpg")
                #expect(r.pngFile == "\(root)/annotations/panoptic_val2017/\(e.imageId).png")
            }
            #expect(ds.records.reduce(0) { $0 + $1.segments.count } == expected.reduce(0) { $0 + $1.segments.count })
        }
    }
}

/// A seeded 64-bit linear congruential stream (top 32 bits returned) so the generated file is the same every run.
private struct TestStream {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 32
    }
}
