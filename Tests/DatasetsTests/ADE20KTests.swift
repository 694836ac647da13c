// Tests of the ADE20K reader: folder layout, reduce-zero-label, and errors naming the file and image.
// Reference: ADEChallengeData2016 layout; Mask2Former prepare_ade20k_sem_seg.py (label − 1 on uint8).
import Datasets
import Foundation
import Testing

@Suite struct ADE20KTests {
    /// A temporary ADEChallengeData2016 with `labels` per image (4×3 label maps, values as stored).
    func makeDataset(_ labels: [[UInt8]], sizes: [(Int, Int)]? = nil, skipAnnotation: Int? = nil) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ade-\(UUID().uuidString)").path
        let base = "\(root)/ADEChallengeData2016"
        for d in ["images/training", "annotations/training"] {
            try FileManager.default.createDirectory(atPath: "\(base)/\(d)", withIntermediateDirectories: true)
        }
        for (i, l) in labels.enumerated() {
            let name = String(format: "ADE_train_%08d", i + 1)
            let (w, h) = sizes?[i] ?? (4, 3)
            try writeJPEG(Image8(width: 4, height: 3, channels: 3, fill: UInt8(40 * i)), to: "\(base)/images/training/\(name).jpg")
            if i != skipAnnotation {
                try writePNG(Image8(width: w, height: h, channels: 1, pixels: l), to: "\(base)/annotations/training/\(name).png")
            }
        }
        return root
    }

    @Test func reduceZeroLabel() throws {
        let root = try makeDataset([[0, 1, 2, 150, 0, 1, 1, 1, 5, 5, 5, 0], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ds = try ADE20KDataset(root: root, split: "training")
        #expect(ds.count == 2 && ds.imageId(0) == "ADE_train_00000001")
        let (image, map) = try ds.load(0)
        #expect(image.width == 4 && image.height == 3 && image.channels == 3)
        #expect(map.labels == [255, 0, 1, 149, 255, 0, 0, 0, 4, 4, 4, 255])
        let t = semanticTargets(map)
        #expect(t.classes == [0, 1, 4, 149] && t.masks[0].bits == [0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0])
    }

    @Test func classNamesFromObjectInfo() throws {
        let root = try makeDataset([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ds = try ADE20KDataset(root: root, split: "training")
        #expect(ds.classNames == nil)
        var text = "Idx\tRatio\tTrain\tVal\tName\n"
        for i in 1...150 { text += "\(i)\t0.1\t10\t2\t\(i == 1 ? "wall" : i == 3 ? "sky" : "thing\(i)");syn\n" }
        try text.write(toFile: "\(root)/ADEChallengeData2016/objectInfo150.txt", atomically: true, encoding: .utf8)
        let names = try #require(ds.classNames)
        #expect(names.count == 150 && names[0] == "wall" && names[2] == "sky" && names[149] == "thing150")
        try "Idx\tName\n1\twall\n".write(toFile: "\(root)/ADEChallengeData2016/objectInfo150.txt", atomically: true, encoding: .utf8)
        #expect(ds.classNames == nil)
    }

    @Test func badInputsNameTheFile() throws {
        let missing = try makeDataset([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]], skipAnnotation: 0)
        defer { try? FileManager.default.removeItem(atPath: missing) }
        #expect { _ = try ADE20KDataset(root: missing, split: "training") } throws: { e in
            "\(e)".contains("ADE_train_00000001.png") && "\(e)".contains("missing")
        }
        #expect { _ = try ADE20KDataset(root: missing, split: "validation") } throws: { e in "\(e)".contains("validation") }

        let big = try makeDataset([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 200]])
        defer { try? FileManager.default.removeItem(atPath: big) }
        #expect { _ = try ADE20KDataset(root: big, split: "training").load(0) } throws: { e in
            "\(e)".contains("ADE_train_00000001") && "\(e)".contains("200")
        }
        let mismatched = try makeDataset([[UInt8](repeating: 1, count: 4)], sizes: [(2, 2)])
        defer { try? FileManager.default.removeItem(atPath: mismatched) }
        #expect { _ = try ADE20KDataset(root: mismatched, split: "training").load(0) } throws: { e in "\(e)".contains("2×2") }
    }
}
