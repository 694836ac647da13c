// Tests of COCOInstances: reading instances JSON, category mapping, bad records (error / skip), the synth writer.
// Corresponds to pycocotools' COCO() + annToMask and detectron2's load_coco_json.
import Datasets
import Foundation
import _TestSupport
import Testing

/// A fresh temporary directory per test.
private func tempDir() throws -> URL { try makeTestDirectory("coco-tests") }

/// Writes `json` as `<dir>/annotations/instances_<split>.json` and returns the dataset root.
private func writeDataset(_ json: String, split: String = "val") throws -> URL {
    let root = try tempDir()
    let ann = root.appendingPathComponent("annotations")
    try FileManager.default.createDirectory(at: ann, withIntermediateDirectories: true)
    try Data(json.utf8).write(to: ann.appendingPathComponent("instances_\(split).json"))
    return root
}

private func load(_ json: String, policy: BadSamplePolicy = .error) throws -> COCOInstances {
    let root = try writeDataset(json)
    return try COCOInstances(root: root.path, split: "val", onBadSample: policy)
}

/// The error loading `json` throws (nil if it loads).
private func loadError(_ json: String, policy: BadSamplePolicy = .error) throws -> DataError? {
    let root = try writeDataset(json)
    do {
        _ = try COCOInstances(root: root.path, split: "val", onBadSample: policy)
        return nil
    } catch {
        return error
    }
}

/// A small instances file: images 10 (6×5) and 20 (4×3), categories in the order 5, 2, 9, and `annotations`.
private func file(_ annotations: String, images: String? = nil) -> String {
    """
    {"info": {"year": 2017}, "licenses": [],
     "images": \(images ?? #"[{"id": 10, "file_name": "a.jpg", "width": 6, "height": 5, "license": 1}, {"id": 20, "file_name": "b.jpg", "width": 4, "height": 3}]"#),
     "annotations": [\(annotations)],
     "categories": [{"id": 5, "name": "five", "supercategory": "s"}, {"id": 2, "name": "two"}, {"id": 9, "name": "nine", "isthing": 1}]}
    """
}

private let square = #"{"id": 1, "image_id": 10, "category_id": 9, "iscrowd": 0, "area": 4.0, "bbox": [1, 1, 2, 2], "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]]}"#

@Suite("COCO instances")
struct COCOInstancesTests {
    @Test("images, annotations and contiguous category indices in category order")
    func basicLoad() throws {
        let rle = COCORLE.polygon([0, 0, 4, 0, 4, 2], height: 3, width: 4)
        let compressed = COCORLE.polygon([1, 0, 4, 3, 0, 3], height: 3, width: 4).compressedCounts
            .replacingOccurrences(of: "\\", with: "\\\\")
        let d = try load(file("""
            \(square),
            {"id": 2, "image_id": 20, "category_id": 5, "iscrowd": 1, "segmentation": {"size": [3, 4], "counts": \(rle.counts)}},
            {"id": 3, "image_id": 10, "category_id": 2, "iscrowd": 0, "segmentation": [[0, 0, 2, 0, 0, 2], [4, 4, 6, 4, 6, 5, 4, 5]], "attributes": {"x": [1, {"y": null}]}},
            {"id": 4, "image_id": 20, "category_id": 2, "iscrowd": false, "segmentation": {"counts": "\(compressed)", "size": [3, 4]}}
            """))
        #expect(d.imageCount == 2 && d.annotationCount == 4 && d.skippedCount == 0)
        #expect(d.categories.map(\.id) == [5, 2, 9])
        #expect(d.categories.map(\.name) == ["five", "two", "nine"])
        #expect(d.categoryIndex(forID: 5) == 0 && d.categoryIndex(forID: 2) == 1 && d.categoryIndex(forID: 9) == 2)
        #expect(d.categoryIndex(forID: 1) == nil)
        #expect(d.images[0] == COCOImageRecord(id: 10, fileName: "a.jpg", width: 6, height: 5))
        #expect(d.imageIndex(forID: 20) == 1)
        #expect(d.imagePath(ofImage: 1).hasSuffix("/val/b.jpg"))

        let a0 = d.annotations(ofImage: 0)
        #expect(a0.map(\.id) == [1, 3])
        #expect(a0[0].categoryIndex == 2 && a0[0].categoryID == 9 && !a0[0].isCrowd)
        #expect(a0[0].bbox == [1, 1, 2, 2] && a0[0].area == 4)
        #expect(a0[0].segmentation == .polygons([[1, 1, 3, 1, 3, 3, 1, 3]]))
        #expect(a0[1].area.isNaN && a0[1].bbox.isEmpty)
        let a1 = d.annotations(ofImage: 1)
        #expect(a1.map(\.id) == [2, 4])
        #expect(a1[0].isCrowd && a1[0].categoryIndex == 0)
        #expect(a1[0].segmentation == .rle(rle))
        #expect(a1[1].segmentation == .compressedRLE(height: 3, width: 4,
                                                     counts: COCORLE.polygon([1, 0, 4, 3, 0, 3], height: 3, width: 4).compressedCounts))

        let masks0 = try d.masks(ofImage: 0)
        #expect(masks0.count == 2 && masks0[0].width == 6 && masks0[0].height == 5)
        #expect(masks0[0] == COCORLE.polygon([1, 1, 3, 1, 3, 3, 1, 3], height: 5, width: 6).decode())
        #expect(masks0[1] == COCORLE.polygons([[0, 0, 2, 0, 0, 2], [4, 4, 6, 4, 6, 5, 4, 5]], height: 5, width: 6).decode())
        let masks1 = try d.masks(ofImage: 1)
        #expect(masks1[0] == rle.decode())
        #expect(masks1[1] == COCORLE.polygon([1, 0, 4, 3, 0, 3], height: 3, width: 4).decode())
        for (a, m) in zip(a0, masks0) { #expect(try a.segmentation.rle(imageHeight: 5, imageWidth: 6).decode() == m) }
    }

    @Test("malformed JSON names the file, the byte offset and the line")
    func malformedJSON() throws {
        let json = "{\"images\": [],\n \"annotations\": [\n  {\"id\": 1,, \"image_id\": 2}],\n \"categories\": []}"
        let e = try #require(try loadError(json))
        let bytes = Array(json.utf8)
        let bad = try #require((1..<bytes.count).first { bytes[$0] == UInt8(ascii: ",") && bytes[$0 - 1] == UInt8(ascii: ",") })
        #expect(e.file.hasSuffix("annotations/instances_val.json"))
        #expect(e.problem.contains("malformed JSON at byte \(bad) (line 3, column 12)"), "\(e)")
        // truncated file, empty file, trailing garbage, bad literal, bad number, unterminated string
        for broken in [String(file(square).dropLast(20)), "", file(square) + "x", file(square).replacingOccurrences(of: "\"iscrowd\": 0", with: "\"iscrowd\": nul"),
                       file(square).replacingOccurrences(of: "\"area\": 4.0", with: "\"area\": 4."),
                       "{\"images\": [{\"file_name\": \"a.jpg}]}"] {
            let e = try #require(try loadError(broken), "\(broken.suffix(40))")
            #expect(e.problem.hasPrefix("malformed JSON at byte"), "\(e)")
            #expect(e.record.isEmpty)
        }
        let missing = try #require(try loadError(#"{"images": [], "annotations": []}"#))
        #expect(missing.problem.contains("categories"))
        let notObject = try #require(try loadError("[1, 2]"))
        #expect(notObject.problem.hasPrefix("unexpected JSON structure at byte 0 (line 1, column 1)"), "\(notObject)")
        let notArray = try #require(try loadError(#"{"images": {}, "annotations": [], "categories": []}"#))
        #expect(notArray.problem.contains("at byte 11") && notArray.problem.contains("'images' must be an array"), "\(notArray)")
    }

    @Test("a missing file is an error naming it")
    func missingFile() throws {
        let root = try tempDir()
        do {
            _ = try COCOInstances(root: root.path, split: "nope")
            Issue.record("expected an error")
        } catch {
            #expect(error.file.hasSuffix("annotations/instances_nope.json"))
            #expect(error.problem.contains("cannot open"))
        }
    }

    @Test("file_name may not lead out of the image folder; a symlinked dataset folder still works")
    func fileNamesStayInsideTheDataset() throws {
        func images(_ name: String) -> String { #"[{"id": 10, "file_name": ""# + name + #"", "width": 6, "height": 5}]"# }
        for name in ["../../../etc/passwd", "/etc/passwd", "x/../../a.jpg", "."] {
            let e = try #require(try loadError(file("", images: images(name))), "\(name) was accepted")
            #expect(e.record == "image 10" && e.problem.contains("file_name '\(name)'"), "\(e)")
        }
        // Under skip the record is dropped and counted; names that stay inside are fine.
        let skipped = try load(file("", images: images("../x.jpg")), policy: .skip)
        #expect(skipped.imageCount == 0 && skipped.skippedCount == 1)
        let inside = try load(file("", images: images("sub/../a.jpg")))
        #expect(inside.imagePath(ofImage: 0).hasSuffix("/val/sub/../a.jpg"))
        // A dataset root reached through a symbolic link.
        let root = try writeDataset(file(square))
        let link = root.deletingLastPathComponent().appendingPathComponent("link-\(UUID().uuidString)")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: root)
        defer { try? FileManager.default.removeItem(at: link) }
        #expect(try COCOInstances(root: link.path, split: "val").imageCount == 2)
    }

    @Test("unknown image or category: error naming the annotation id")
    func unknownReferences() throws {
        let unknownImage = try #require(try loadError(file(square + #", {"id": 77, "image_id": 99, "category_id": 5, "segmentation": [[0,0,1,0,1,1]]}"#)))
        #expect(unknownImage.record == "annotation 77")
        #expect(unknownImage.problem.contains("image_id 99"))
        #expect(unknownImage.file.hasSuffix("instances_val.json"))
        let unknownCategory = try #require(try loadError(file(#"{"id": 78, "image_id": 10, "category_id": 1, "segmentation": [[0,0,1,0,1,1]]}"#)))
        #expect(unknownCategory.record == "annotation 78")
        #expect(unknownCategory.problem.contains("category_id 1"))
    }

    @Test("RLE counts that do not sum to h·w: error naming the annotation id")
    func rleCountsSum() throws {
        let list = try #require(try loadError(file(#"{"id": 31, "image_id": 20, "category_id": 5, "iscrowd": 1, "segmentation": {"size": [3, 4], "counts": [2, 3, 4]}}"#)))
        #expect(list.record == "annotation 31")
        #expect(list.problem.contains("sum to 9") && list.problem.contains("12"), "\(list)")
        let string = COCORLE(height: 3, width: 4, counts: [2, 3, 4]).compressedCounts.replacingOccurrences(of: "\\", with: "\\\\")
        let compressed = try #require(try loadError(file(#"{"id": 32, "image_id": 20, "category_id": 5, "segmentation": {"size": [3, 4], "counts": "\#(string)"}}"#)))
        #expect(compressed.record == "annotation 32" && compressed.problem.contains("sum to 9"))
        let garbage = try #require(try loadError(file(#"{"id": 33, "image_id": 20, "category_id": 5, "segmentation": {"size": [3, 4], "counts": "ab~"}}"#)))
        #expect(garbage.record == "annotation 33" && garbage.problem.contains("invalid character"))
        let size = try #require(try loadError(file(#"{"id": 34, "image_id": 20, "category_id": 5, "segmentation": {"size": [4, 3], "counts": [12]}}"#)))
        #expect(size.record == "annotation 34" && size.problem.contains("differs from image 20"))
    }

    @Test("degenerate polygons: fewer than 3 points, zero area, outside the image")
    func degeneratePolygons() throws {
        let cases: [(String, String)] = [
            (#"[[1, 1, 3, 1]]"#, "fewer than 3"),
            (#"[[1, 1, 3, 1, 2, 2], [1, 1, 3, 1, 2]]"#, "odd number"),
            (#"[[1, 1, 2, 2, 4, 4, 3, 3]]"#, "zero area"),
            (#"[[2, 2, 2, 2, 2, 2]]"#, "zero area"),
            (#"[[10, 10, 20, 10, 15, 20]]"#, "entirely outside"),
            (#"[[-5, 0, -1, 0, -3, 4]]"#, "entirely outside"),
            (#"[[1, 1, 3, 1, 2, 1e9]]"#, "outside"),
            (#"[]"#, "empty"),
            (#"[1, 1, 3, 1, 2, 2]"#, "flat list"),
            (#"[[1, 1, "a", 1, 2, 2]]"#, "other than numbers"),
            (#"7"#, "neither"),
        ]
        for (segmentation, expected) in cases {
            let json = file(#"{"id": 41, "image_id": 10, "category_id": 5, "segmentation": \#(segmentation)}"#)
            let e = try #require(try loadError(json), "\(segmentation)")
            #expect(e.record == "annotation 41", "\(segmentation)")
            #expect(e.problem.contains(expected), "\(segmentation): \(e)")
            let skipped = try load(json, policy: .skip)
            #expect(skipped.skippedCount == 1 && skipped.annotationCount == 0)
        }
        // a bowtie has zero signed area but is not degenerate; a polygon partly outside is clipped
        let ok = try load(file(#"""
            {"id": 1, "image_id": 10, "category_id": 5, "segmentation": [[0, 0, 6, 5, 6, 0, 0, 5]]},
            {"id": 2, "image_id": 10, "category_id": 5, "segmentation": [[-3, -3, 9, -3, 9, 8, -3, 8]]}
            """#))
        let masks = try ok.masks(ofImage: 0)
        #expect(masks[0].area > 0)
        #expect(masks[1].bits.allSatisfy { $0 == 1 })
        // A record may declare up to 2^32 pixels; its masks (decoded without the image by `data masks`) are held to
        // the decoders' pixel budget instead of allocating 4.3 GB per annotation.
        let huge = try load(file(#"{"id": 1, "image_id": 30, "category_id": 5, "segmentation": [[0, 0, 6, 5, 6, 0]]}"#,
                                 images: #"[{"id": 30, "file_name": "h.jpg", "width": 65535, "height": 65535}]"#))
        #expect {
            _ = try huge.masks(ofImage: 0)
        } throws: { error in "\(error)".contains("image 30") && "\(error)".contains("65535×65535") && "\(error)".contains("pixel limit") }
    }

    @Test("skip policy counts and reports every bad record, keeps the rest")
    func skipPolicy() throws {
        let json = file("""
            \(square),
            {"id": 2, "image_id": 99, "category_id": 5, "segmentation": [[0,0,1,0,1,1]]},
            {"id": 3, "image_id": 10, "category_id": 77, "segmentation": [[0,0,1,0,1,1]]},
            {"id": 4, "image_id": 20, "category_id": 5, "segmentation": {"size": [3, 4], "counts": [1]}},
            {"image_id": 20, "category_id": 5, "segmentation": [[0,0,1,0,1,1]]},
            {"id": 6, "image_id": 20, "category_id": 2, "segmentation": [[0,0,2,0,2,2]]}
            """, images: #"[{"id": 10, "file_name": "a.jpg", "width": 6, "height": 5}, {"id": 20, "file_name": "b.jpg", "width": 4, "height": 3}, {"id": 30, "file_name": "c.jpg", "width": 0, "height": 3}, {"id": 10, "file_name": "d.jpg", "width": 2, "height": 2}]"#)
        let d = try load(json, policy: .skip)
        #expect(d.imageCount == 2)
        #expect(d.annotationCount == 2)
        #expect(d.annotations(ofImage: 0).map(\.id) == [1] && d.annotations(ofImage: 1).map(\.id) == [6])
        #expect(d.skippedCount == 6)
        let records = Set(d.skippedRecords.map(\.record))
        #expect(records == ["image 30", "image 10", "annotation 2", "annotation 3", "annotation 4", "annotations[4]"])
        // the same file stops at the first bad record under .error
        let e = try #require(try loadError(json))
        #expect(e.record == "image 30" && e.problem.contains("invalid size"))
    }

    @Test("strings with escapes, numbers in every JSON form, unknown keys anywhere")
    func jsonForms() throws {
        let d = try load("""
            {"categories": [{"id": 1.0, "name": "caf\\u00e9 \\ud83d\\ude00 \\"q\\"", "supercategory": "\\/x"}],
             "extra": {"a": [true, false, null, -0.5e-3, "s\\n"], "b": {}},
             "annotations": [{"id": 1e0, "image_id": 3, "category_id": 1, "segmentation": [[0.5e1, 1E-0, 6, 25e-1, 2.75, 4]],
                              "bbox": [0, 0, 1, 1], "area": -0}],
             "images": [{"id": 3, "file_name": "d\\u00efr/\\u0041.jpg", "width": 8, "height": 6}]}
            """)
        #expect(d.categories[0].name == "café 😀 \"q\"" && d.categories[0].supercategory == "/x")
        #expect(d.images[0].fileName == "dïr/A.jpg")
        let a = d.annotations(ofImage: 0)
        #expect(a.count == 1 && a[0].id == 1)
        #expect(a[0].segmentation == .polygons([[5, 1, 6, 2.5, 2.75, 4]]))
    }

    @Test("synthetic instances file end to end: every mask decodes, ids and categories map")
    func syntheticEndToEnd() throws {
        let root = try tempDir()
        let ann = root.appendingPathComponent("annotations")
        try FileManager.default.createDirectory(at: ann, withIntermediateDirectories: true)
        var options = COCOSyntheticInstancesOptions(images: 40, annotations: 600, seed: 7)
        options.crowdFraction = 0.05
        options.compressedRLEFraction = 0.05
        options.widths = 40...90      // small images keep the debug-build test fast
        options.heights = 30...70
        let path = ann.appendingPathComponent("instances_train.json").path
        let bytes = try writeSyntheticCOCOInstancesJSON(to: path, options: options)
        #expect(bytes > 50_000)
        let d = try COCOInstances(root: root.path, split: "train")
        #expect(d.imageCount == 40 && d.annotationCount == 600 && d.skippedCount == 0)
        #expect(d.categories.count == 80 && d.categories.map(\.id) == cocoThingCategoryIDs)
        #expect(d.categoryIndex(forID: 90) == 79 && d.categoryIndex(forID: 13) == 11)
        var kinds = [0, 0, 0], crowd = 0, seen = Set<Int>()
        for i in 0..<d.imageCount {
            let img = d.images[i]
            let anns = d.annotations(ofImage: i)
            let masks = try d.masks(ofImage: i)
            #expect(anns.count == masks.count && anns.count == d.annotationCount(ofImage: i))
            for (a, m) in zip(anns, masks) {
                seen.insert(a.id)
                #expect(a.imageID == img.id && m.width == img.width && m.height == img.height)
                #expect(d.categories[a.categoryIndex].id == a.categoryID)
                let rle = try a.segmentation.rle(imageHeight: img.height, imageWidth: img.width)
                #expect(throws: Never.self) { try rle.validate() }
                #expect(rle.decode() == m)
                #expect(m.area > 0)
                switch a.segmentation {
                case .polygons: kinds[0] += 1
                case .rle: kinds[1] += 1
                case .compressedRLE: kinds[2] += 1
                }
                if a.isCrowd { crowd += 1 }
            }
        }
        #expect(seen == Set(1...600))
        #expect(kinds[0] > 400 && kinds[1] > 5 && kinds[2] > 5 && crowd == kinds[1])
        // deterministic in the seed
        let again = root.appendingPathComponent("again.json").path
        try writeSyntheticCOCOInstancesJSON(to: again, options: options)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(contentsOf: URL(fileURLWithPath: again)))
    }
}
