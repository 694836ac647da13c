// Tests of the Cityscapes reader: the label table, 16-bit instance ids, the three readings of the synthetic split, the
// short-edge crop recipe at Cityscapes' sizes and the single-category area rule, and errors naming the file.
// Reference: cityscapesscripts helpers/labels.py and createPanopticImgs.py; detectron2 load_cityscapes_instances
// (from_json=False) and RandomCrop_CategoryAreaConstraint.
import _TestSupport
import Datasets
import Foundation
import Testing
import TensorCore

@Suite struct CityscapesTests {
    @Test func labelTable() {
        #expect(Cityscapes.numClasses == 19)
        #expect(Cityscapes.classes.map(\.trainId) == Array(0..<19))
        #expect(Cityscapes.classes.first?.name == "road" && Cityscapes.classes.last?.name == "bicycle")
        #expect(Cityscapes.thingClasses.map(\.id) == [24, 25, 26, 27, 28, 31, 32, 33])
        let lut = Cityscapes.trainIdOfLabelID
        #expect(lut[7] == 0 && lut[26] == 13 && lut[33] == 18 && lut[0] == 255 && lut[29] == 255 && lut[34] == 255)
        #expect(Cityscapes.stem(ofFileName: "aachen_000001_000019_leftImg8bit.png") == "aachen_000001_000019")
        #expect(Cityscapes.stem(ofFileName: "aachen_000001_000019.png") == "aachen_000001_000019")
        #expect(Cityscapes.stem(ofFileName: "aachen_000001.png") == nil)
    }

    @Test func gray16RoundTrip() throws {
        let values: [UInt16] = [0, 1, 255, 256, 26001, 33999, 65535, 7, 24000, 1000, 999, 12]
        let map = Gray16Map(width: 4, height: 3, values: values)
        #expect(try decodeGray16PNG(try encodeGray16PNG(map), file: "x") == map)
        // An 8-bit gray PNG reads as its values.
        let eight = try encodePNG(Image8(width: 3, height: 1, channels: 1, pixels: [0, 26, 255]))
        #expect(try decodeGray16PNG(eight, file: "x").values == [0, 26, 255])
        #expect { _ = try decodeGray16PNG(try encodePNG(Image8(width: 1, height: 1, channels: 3, pixels: [1, 2, 3])), file: "rgb.png") }
            throws: { "\($0)".contains("rgb.png") && "\($0)".contains("single-channel gray") }
    }

    /// detectron2's from_json=False reading: values ≥ 24 of evaluated instance classes in increasing order; below 1000 a
    /// crowd (group region); caravan (29, not evaluated) and stuff skipped.
    @Test func instancesOfAnInstanceIdMap() {
        let map = Gray16Map(width: 4, height: 2, values: [7, 26, 26, 26001, 24000, 29000, 1, 26001])
        let instances = CityscapesDataset.instances(of: map)
        #expect(instances.map(\.id) == [26, 24000, 26001])
        #expect(instances.map(\.classIndex) == [2, 0, 2])
        #expect(instances.map(\.isCrowd) == [true, false, false])
        if case .bitmap(let m) = instances[2].mask { #expect(m.bits == [0, 0, 0, 1, 0, 0, 0, 1]) } else { Issue.record("not a bitmap") }
    }

    func synthetic(_ split: String = "val", images: Int = 4) throws -> String {
        let root = try makeTestDirectory("cityscapes").path
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cityscapes, images: images, width: 128, height: 64,
                                                                        seed: 4, split: split))
        return root
    }

    @Test func theThreeReadingsOfTheSyntheticSplit() throws {
        let root = try synthetic()
        let ds = try CityscapesDataset(root: root, split: "val", requireLabelIds: true, requireInstanceIds: true)
        #expect(ds.count == 4)
        #expect(ds.frames.map(\.city) == ds.frames.map(\.city).sorted())
        #expect(Set(ds.frames.map(\.city)) == ["frankfurt", "lindau", "munster"])
        for i in 0..<ds.count {
            let s = try ds.semanticSample(i)
            #expect(s.imageId == i)
            guard case .semantic(let labels) = s.targets else { Issue.record("not semantic"); continue }
            let raw = try ds.labelIds(i)
            #expect(labels.labels == raw.labels.map { Cityscapes.trainIdOfLabelID[Int($0)] })
            #expect(Set(labels.labels).isSubset(of: Set((0..<19).map(UInt8.init) + [255])))
            guard case .instances(let instances) = try ds.instanceSample(i).targets else { Issue.record("not instances"); continue }
            let ids = try ds.instanceIds(i)
            for a in instances {
                let labelID = a.id >= 1000 ? a.id / 1000 : a.id
                #expect(Cityscapes.thingClasses[a.classIndex].id == labelID)
                #expect(a.isCrowd == (a.id < 1000))
                // instanceIds agree with labelIds.
                for (p, v) in ids.values.enumerated() where Int(v) == a.id { #expect(Int(raw.labels[p]) == labelID) }
            }
        }
        let pan = try CityscapesPanopticDataset(root: root, split: "val")
        #expect(pan.records.map(\.stem) == ds.frames.map(\.stem).sorted())
        for i in 0..<pan.count {
            let s = try pan.sample(i)
            guard case .panoptic(let t) = s.targets else { Issue.record("not panoptic"); continue }
            let frame = ds.frames[ds.index(ofStem: pan.records[i].stem)!]
            let ids = try loadGray16PNG(path: frame.instanceIds)
            for seg in t.segments {
                // createPanopticImgs: the segment id is the instanceIds value; crowd = a group region of a thing class.
                let labelID = seg.id >= 1000 ? Int(seg.id) / 1000 : Int(seg.id)
                #expect(Cityscapes.label(id: labelID)?.trainId == seg.classIndex)
                #expect(seg.isCrowd == (seg.id < 1000 && Cityscapes.labels[labelID].hasInstances))
                #expect(ids.values.indices.allSatisfy { (ids.values[$0] == UInt16(seg.id)) == (t.ids[$0] == seg.id) })
            }
        }
    }

    @Test func badFilesAreNamed() throws {
        let root = try synthetic()
        let ds = try CityscapesDataset(root: root, split: "val")
        let f = ds.frames[0]
        // A label id above 33.
        var labels = try ds.labelIds(0)
        labels.labels[5] = 40
        try writePNG(Image8(width: labels.width, height: labels.height, channels: 1, pixels: labels.labels), to: f.labelIds)
        #expect { _ = try ds.semanticSample(0) } throws: { "\($0)".contains(f.labelIds) && "\($0)".contains("not a label id") }
        // An instance id of a class without instances (7 = road).
        var ids = try ds.instanceIds(0)
        ids.values[3] = 7001
        try writeGray16PNG(ids, to: f.instanceIds)
        #expect { _ = try ds.instanceSample(0) } throws: { "\($0)".contains(f.instanceIds) && "\($0)".contains("7001") }
        // A polygons file of another size.
        try Data(#"{"imgHeight": 10, "imgWidth": 20, "objects": []}"#.utf8).write(to: URL(fileURLWithPath: ds.frames[1].polygons))
        #expect { _ = try ds.semanticSample(1) } throws: { "\($0)".contains(ds.frames[1].polygons) && "\($0)".contains("20×10") }
        // A missing ground truth stops opening the split.
        try FileManager.default.removeItem(atPath: ds.frames[2].instanceIds)
        #expect { _ = try CityscapesDataset(root: root, split: "val", requireInstanceIds: true) }
            throws: { "\($0)".contains(ds.frames[2].instanceIds) && "\($0)".contains("missing") }
        // A panoptic category that is not an evaluated label.
        let json = "\(root)/gtFine/cityscapes_panoptic_val.json"
        let text = try String(contentsOfFile: json, encoding: .utf8).replacingOccurrences(of: "\"id\":7,", with: "\"id\":9,")
        try text.write(toFile: json, atomically: true, encoding: .utf8)
        #expect { _ = try CityscapesPanopticDataset(root: root, split: "val") } throws: { "\($0)".contains(json) && "\($0)".contains("id 9") }
        // An image listed twice in 'images', and an iscrowd that is not 0 or 1 (it read as 0).
        try text.replacingOccurrences(of: "\"id\":9,", with: "\"id\":7,").write(toFile: json, atomically: true, encoding: .utf8)
        var top = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        let good = top
        var images = try #require(top["images"] as? [[String: Any]])
        images.append(images[0]); top["images"] = images
        try JSONSerialization.data(withJSONObject: top).write(to: URL(fileURLWithPath: json))
        #expect { _ = try CityscapesPanopticDataset(root: root, split: "val") } throws: { "\($0)".contains("appears twice in 'images'") }
        top = good
        var annotations = try #require(top["annotations"] as? [[String: Any]])
        var infos = try #require(annotations[0]["segments_info"] as? [[String: Any]])
        infos[0]["iscrowd"] = "yes"; annotations[0]["segments_info"] = infos; top["annotations"] = annotations
        try JSONSerialization.data(withJSONObject: top).write(to: URL(fileURLWithPath: json))
        #expect { _ = try CityscapesPanopticDataset(root: root, split: "val") } throws: { "\($0)".contains("iscrowd must be 0 or 1, got yes") }
    }

    /// The Cityscapes recipe: short edge from its choices, crop [h, w] without a pad; an image smaller than the crop
    /// keeps its size.
    @Test func shortEdgeCropAtCityscapesSizes() throws {
        var aug = ShortEdgeCropAugmentation.cityscapes
        #expect(aug.shortEdges.first == 512 && aug.shortEdges.last == 2048 && aug.shortEdges.count == 16 && aug.maxSize == 4096)
        aug.shortEdges = [64]; aug.maxSize = 512; aug.cropSize = ImageSize(height: 32, width: 64)
        let labels = LabelMap(width: 256, height: 128, labels: (0..<(256 * 128)).map { UInt8(($0 % 256) / 64) })
        let sample = Sample(imageId: 3, image: Image8(width: 256, height: 128, channels: 3, fill: 90), targets: .semantic(labels))
        var rng = RNG(seed: 1, stream: 2)
        let out = try aug.apply(sample, rng: &rng)
        #expect(out.image.width == 64 && out.image.height == 32)
        aug.shortEdges = [16]
        var rng2 = RNG(seed: 1, stream: 2)
        let small = try aug.apply(sample, rng: &rng2)
        #expect(small.image.width == 32 && small.image.height == 16)   // no pad to the crop
    }

    /// RandomCrop_CategoryAreaConstraint: the first draw is RandomCrop's; crops where one class covers the share are
    /// redrawn (up to 10 times).
    @Test func singleCategoryAreaRule() {
        // Class 1 fills everything but a 4-pixel-wide column of class 2 at x = 60…63.
        let labels = LabelMap(width: 64, height: 8, labels: (0..<(64 * 8)).map { $0 % 64 >= 60 ? 2 : 1 })
        for seed in 0..<20 as Range<UInt64> {
            var a = RNG(seed: seed, stream: 9), b = RNG(seed: seed, stream: 9)
            let plain = randomAbsoluteCrop(labels.size, height: 8, width: 16, rng: &a)
            let ruled = categoryAreaCrop(labels, height: 8, width: 16, maxArea: 1.0, ignore: 255, rng: &b)
            #expect(plain == ruled)   // 1.0: a plain RandomCrop
            var c = RNG(seed: seed, stream: 9)
            let crop = categoryAreaCrop(labels, height: 8, width: 16, maxArea: 0.9, ignore: 255, rng: &c)
            // The accepted window holds ≥ 2 columns of class 2 (class 1 then covers < 90 %), else the 10th draw.
            var d = RNG(seed: seed, stream: 9)
            var draws: [CropTransform] = []
            for _ in 0..<10 { draws.append(randomAbsoluteCrop(labels.size, height: 8, width: 16, rng: &d)) }
            let firstGood = draws.first { $0.x0 + 16 - 60 >= 2 }
            #expect(crop == (firstGood ?? draws[9]))
        }
    }
}
