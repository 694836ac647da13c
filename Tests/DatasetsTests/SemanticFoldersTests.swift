// Tests of the generic semantic folder reader (`sem-seg`): label encodings (ignore value, reduce-zero-label), the
// folder pairing, and errors naming the file, image, value and pixel.
// Reference: detectron2 `load_sem_seg` + `ignore_label`; mmsegmentation `reduce_zero_label` (0 → 255, k → k − 1).
import Datasets
import Foundation
import Testing

@Suite struct SemanticFoldersTests {
    /// A temporary sem-seg root with one 4×3 label map per entry of `labels` (stored values), images named
    /// `names[i]` (default `img_<i>.png`) in `images/training`.
    func makeRoot(_ labels: [[UInt8]], names: [String]? = nil, skipAnnotation: Int? = nil) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("semseg-\(UUID().uuidString)").path
        for d in ["images/training", "annotations/training"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(d)", withIntermediateDirectories: true)
        }
        for (i, l) in labels.enumerated() {
            let name = names?[i] ?? "img_\(i).png"
            let stem = URL(fileURLWithPath: name).deletingPathExtension().lastPathComponent
            let image = Image8(width: 4, height: 3, channels: 3, fill: UInt8(40 * i))
            if name.hasSuffix(".png") { try writePNG(image, to: "\(root)/images/training/\(name)") }
            else { try writeJPEG(image, to: "\(root)/images/training/\(name)") }
            if i != skipAnnotation {
                try writePNG(Image8(width: 4, height: 3, channels: 1, pixels: l), to: "\(root)/annotations/training/\(stem).png")
            }
        }
        return root
    }

    @Test func encodingsMapStoredValuesToClasses() throws {
        let plain = LabelEncoding(numClasses: 3)
        #expect(Array(plain.table[0...3]) == [0, 1, 2, nil] && plain.table[255] == 255)
        #expect(plain.storedValue(ofClass: 2) == 2 && plain.storedRangeDescription == "0…2 (255 ignored)")
        let reduced = LabelEncoding(numClasses: 3, ignoreLabel: 255, reduceZeroLabel: true)
        #expect(Array(reduced.table[0...4]) == [255, 0, 1, 2, nil] && reduced.table[255] == 255)
        #expect(reduced.storedRangeDescription == "1…3 (0 and 255 ignored)")
        let custom = LabelEncoding(numClasses: 2, ignoreLabel: 9)
        #expect(custom.table[9] == 255 && custom.table[255] == nil && custom.table[1] == 1 && custom.table[2] == nil)
        // ADE20K: 0 unlabeled, 1…150 classes, 255 an error (as before the generic reader).
        #expect(LabelEncoding.ade20k.table[0] == 255 && LabelEncoding.ade20k.table[150] == 149 && LabelEncoding.ade20k.table[255] == nil)
        #expect(LabelEncoding.ade20k.storedRangeDescription == "1…150 (0 ignored)" && LabelEncoding.ade20k.problem == nil)
        #expect(throws: DataError.self) { _ = try plain.decode([0, 1, 3], width: 3, file: "f.png", record: "image x") }
        #expect { _ = try plain.decode([0, 1, 2, 7], width: 2, file: "f.png", record: "image x") } throws: { e in
            "\(e)" == "f.png: image x: label 7 at pixel 1,1 is outside 0…2 (255 ignored)"
        }
    }

    @Test func encodingProblems() {
        #expect(LabelEncoding(numClasses: 19).problem == nil)
        #expect(LabelEncoding(numClasses: 255, ignoreLabel: 255).problem == nil)   // 0…254, 255 ignored
        #expect(LabelEncoding(numClasses: 256, ignoreLabel: 255).problem?.contains("ignore value 255 is the stored value of class 255 of 256") == true)
        #expect(LabelEncoding(numClasses: 4, ignoreLabel: 2).problem?.contains("class 2 of 4") == true)
        #expect(LabelEncoding(numClasses: 255, ignoreLabel: 0, reduceZeroLabel: true).problem == nil)
        #expect(LabelEncoding(numClasses: 256, ignoreLabel: 0, reduceZeroLabel: true).problem?.contains("up to 256") == true)
        #expect(LabelEncoding(numClasses: 0).problem == "no classes")
    }

    @Test func readsPairsSortedWithTheirEncoding() throws {
        let root = try makeRoot([[0, 1, 2, 255, 0, 0, 1, 1, 2, 2, 255, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]],
                                names: ["b.jpg", "a.png"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ds = try SemanticFolders(root: root, split: "training", encoding: LabelEncoding(numClasses: 4))
        #expect(ds.count == 2 && ds.imageId(0) == "a" && ds.imageId(1) == "b" && ds.annotationName(1) == "b.png")
        #expect(try ds.load(1).labels.labels == [0, 1, 2, 255, 0, 0, 1, 1, 2, 2, 255, 0])
        #expect(try ds.labels(0).labels == [UInt8](repeating: 3, count: 12))
        let sample = try ds.sample(1)
        #expect(sample.imageId == 1 && sample.image.width == 4)

        let reduced = try SemanticFolders(root: root, split: "training", encoding: LabelEncoding(numClasses: 3, reduceZeroLabel: true))
        #expect(try reduced.load(1).labels.labels == [255, 0, 1, 255, 255, 255, 0, 0, 1, 1, 255, 255])
        // With 3 classes and no reduction, the stored 3 is no class: named with its file, image and pixel.
        let three = try SemanticFolders(root: root, split: "training", encoding: LabelEncoding(numClasses: 3))
        #expect { _ = try three.load(0) } throws: { e in
            "\(e)" == "\(root)/annotations/training/a.png: image a: label 3 at pixel 0,0 is outside 0…2 (255 ignored)"
        }
    }

    @Test func layoutErrorsNameTheFiles() throws {
        let missing = try makeRoot([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]], skipAnnotation: 0)
        defer { try? FileManager.default.removeItem(atPath: missing) }
        let enc = LabelEncoding(numClasses: 2)
        #expect { _ = try SemanticFolders(root: missing, split: "training", encoding: enc) } throws: { e in
            "\(e)".contains("annotations/training/img_0.png") && "\(e)".contains("annotation PNG missing")
        }
        #expect { _ = try SemanticFolders(root: missing, split: "validation", encoding: enc) } throws: { e in
            "\(e)".contains("\(missing)/images/validation: no such folder")
        }
        let twins = try makeRoot([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], names: ["x.jpg", "x.png"])
        defer { try? FileManager.default.removeItem(atPath: twins) }
        #expect { _ = try SemanticFolders(root: twins, split: "training", encoding: enc) } throws: { e in
            "\(e)".contains("x.png") && "\(e)".contains("x.jpg") && "\(e)".contains("ambiguous")
        }
        let empty = try makeRoot([])
        defer { try? FileManager.default.removeItem(atPath: empty) }
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: "\(empty)/images/training/notes.txt"))
        #expect { _ = try SemanticFolders(root: empty, split: "training", encoding: enc) } throws: { e in
            "\(e)".contains("no images (files ending in .jpg, .jpeg, .png)")
        }
    }

    /// `data synth --format sem-seg` writes the layout with classes 0…6 and 255 unlabeled, readable with 7 classes.
    @Test func syntheticSemSegRoundTrips() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("semseg-synth-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let written = try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .semSeg, images: 3, width: 48, height: 32, seed: 5))
        let ds = try SemanticFolders(root: root, split: "training", encoding: LabelEncoding(numClasses: SyntheticClasses.semSegNames.count))
        #expect(ds.count == 3 && ds.imageId(0) == "scene_00000")
        var present = 0
        for i in 0..<ds.count { present += Set(try ds.load(i).labels.labels).subtracting([255]).count }
        #expect(present == written && present > 3)
        #expect { _ = try SemanticFolders(root: root, split: "training", encoding: LabelEncoding(numClasses: 2)).load(0) } throws: { e in
            "\(e)".contains("is outside 0…1 (255 ignored)")
        }
    }
}

@Suite struct DatasetLayoutTests {
    @Test func patternsResolveUnderTheRoot() {
        #expect(DatasetLayout.resolve("annotations/instances_{split}.json", root: "/d/coco", split: "val2017") == "/d/coco/annotations/instances_val2017.json")
        #expect(DatasetLayout.resolve("{split}", root: "/d/coco/", split: "train") == "/d/coco/train")
        #expect(DatasetLayout.resolve("/abs/{split}/x.json", root: "/d", split: "a") == "/abs/a/x.json")
        #expect(DatasetLayout.resolve("{split}/{split}.json", root: "r", split: "s") == "r/s/s.json")
        let p = DatasetLayout.cocoPanoptic.paths(root: "r", split: "val2017")
        #expect(p.annotationFile == "r/annotations/panoptic_val2017.json" && p.imageFolder == "r/val2017"
                && p.labelFolder == "r/annotations/panoptic_val2017")
        #expect(DatasetLayout.semanticFolders.paths(root: "r", split: "training").labelFolder == "r/annotations/training")
    }
}
