// Tests of the synthetic dataset writer: every format is read back by its reader, masks agree with the pixels.
// Reference: the official COCO instances / panoptic and ADE20K layouts the readers implement.
import Datasets
import Foundation
import Testing

@Suite struct SyntheticDatasetTests {
    func tempRoot() -> String { FileManager.default.temporaryDirectory.appendingPathComponent("synth-\(UUID().uuidString)").path }

    /// `--classes 24`: ids 1…24, look-alike pairs of one shape and hue (the second darker), every class drawn in its
    /// colour; refused for formats with a fixed label space.
    @Test func extendedLabelSpaceWithLookAlikePairs() throws {
        let space = SyntheticLabelSpace(count: 24)
        for k in 0..<12 {
            let a = space.colour(2 * k), b = space.colour(2 * k + 1)
            #expect(space.shape(2 * k) == space.shape(2 * k + 1))
            #expect(zip(a, b).allSatisfy { abs(Double($1) - 0.7 * Double($0)) <= 1.5 }, "pair \(k): \(a) \(b)")
        }
        #expect(Set((0..<24).map { space.colour($0) }).count == 24 && Set((0..<24).map(space.name)).count == 24)
        let root = tempRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cocoInstance, images: 20, width: 128, height: 128, seed: 2,
                                                                        classes: 24))
        let ds = try COCOInstances(root: root, split: "train2017")
        #expect(ds.categories.map(\.id) == Array(1...24) && ds.categories[3].name == space.name(3))
        // Per class, most annotated pixels show the class colour (full-polygon annotations of partly occluded objects,
        // edges and JPEG noise aside), and closer to
        // it than to the pair's other member.
        var close = [Int](repeating: 0, count: 24), total = [Int](repeating: 0, count: 24)
        for i in 0..<ds.imageCount {
            let image = try loadImage(path: ds.imagePath(ofImage: i))
            for (a, m) in zip(ds.annotations(ofImage: i), try ds.masks(ofImage: i)) where !a.isCrowd {
                let c = a.categoryIndex, own = space.colour(c), twin = space.colour(c ^ 1)
                for p in 0..<m.bits.count where m.bits[p] != 0 {
                    total[c] += 1
                    let d = (0..<3).map { abs(Int(image.pixels[p * 3 + $0]) - Int(own[$0])) }
                    let e = (0..<3).map { abs(Int(image.pixels[p * 3 + $0]) - Int(twin[$0])) }
                    if d.allSatisfy({ $0 < 30 }) && d.reduce(0, +) < e.reduce(0, +) { close[c] += 1 }
                }
            }
        }
        #expect(total.filter { $0 > 0 }.count >= 20)
        for c in 0..<24 where total[c] > 0 { #expect(close[c] * 2 > total[c], "class \(c): \(close[c]) of \(total[c])") }
        #expect { try writeSyntheticDataset(root: root + "-ade", options: SyntheticOptions(format: .ade20k, images: 1, width: 32, height: 32,
                                                                                          seed: 1, classes: 24)) }
            throws: { "\($0)".contains("--classes applies to coco") }
    }

    @Test func cocoInstancesRoundTrip() throws {
        let root = tempRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let n = try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cocoInstance, images: 6, width: 96, height: 64, seed: 1))
        let ds = try COCOInstances(root: root, split: "train2017")
        #expect(ds.imageCount == 6 && ds.annotationCount == n && n >= 6)
        #expect(ds.categories.map(\.id) == SyntheticClasses.thingIds)
        var kinds = Set<String>()
        for i in 0..<ds.imageCount {
            let image = try loadImage(path: ds.imagePath(ofImage: i))
            #expect(image.width == 96 && image.height == 64)
            let masks = try ds.masks(ofImage: i)
            for (a, m) in zip(ds.annotations(ofImage: i), masks) {
                kinds.insert("\(a.segmentation)".components(separatedBy: "(").first ?? "")
                #expect(m.area > 0, "annotation \(a.id) is empty")
                // Most of an object's pixels show its class colour (occluders and JPEG noise aside).
                let colour = [[220, 30, 30], [30, 200, 40], [40, 60, 230], [230, 220, 30], [30, 210, 220]][a.categoryIndex]
                var match = 0
                for p in 0..<m.bits.count where m.bits[p] != 0 {
                    if (0..<3).allSatisfy({ abs(Int(image.pixels[p * 3 + $0]) - colour[$0]) < 40 }) { match += 1 }
                }
                if !a.isCrowd { #expect(match * 3 >= m.area, "annotation \(a.id): \(match) of \(m.area) pixels coloured") }
            }
        }
        #expect(kinds.count >= 2, "several segmentation kinds: \(kinds)")
    }

    @Test func cocoPanopticRoundTrip() throws {
        let root = tempRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cocoPanoptic, images: 3, width: 64, height: 48, seed: 2, split: "val2017"))
        let ds = try COCOPanopticDataset(root: root, split: "val2017")
        #expect(ds.count == 3 && ds.numClasses == 7 && ds.thingClasses == Set(0..<5))
        for i in 0..<ds.count {
            let ids = try ds.idMap(i)
            #expect(ids.contains(0), "the void seam")
            #expect(ds.records[i].segments.contains { !ds.categories[$0.classIndex].isThing })
            let s = try ds.sample(i)
            #expect(s.image.width == 64)
        }
    }

    @Test func ade20kRoundTrip() throws {
        let root = tempRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .ade20k, images: 3, width: 64, height: 48, seed: 3))
        let ds = try ADE20KDataset(root: root, split: "training")
        #expect(ds.count == 3 && ds.imageId(0) == "ADE_train_00000001")
        let (_, map) = try ds.load(0)
        let present = Set(map.labels)
        #expect(present.contains(255) && present.contains(UInt8(SyntheticClasses.adeStuff[0])))
        #expect(!present.isDisjoint(with: Set(SyntheticClasses.adeThings.map(UInt8.init))))
    }

    /// `hard` scenes: more objects (6–11 drawn, some fully hidden and dropped) than `standard` ones (2–5), still every
    /// annotation non-empty and most object pixels near the class colour (jitter ±45 per channel; edges of small
    /// objects lose more to JPEG's chroma subsampling).
    @Test func hardScenesAreCrowdedAndStillLabelledByColourAndShape() throws {
        let hard = tempRoot(), standard = tempRoot()
        defer { try? FileManager.default.removeItem(atPath: hard); try? FileManager.default.removeItem(atPath: standard) }
        let nHard = try writeSyntheticDataset(root: hard, options: SyntheticOptions(format: .cocoInstance, images: 12, width: 96,
                                                                                    height: 96, seed: 4, difficulty: .hard))
        let nStandard = try writeSyntheticDataset(root: standard, options: SyntheticOptions(format: .cocoInstance, images: 12,
                                                                                            width: 96, height: 96, seed: 4))
        #expect(nStandard >= 12 && nStandard <= 12 * 5)
        #expect(nHard > 12 * 5 && nHard <= 12 * 11, "\(nHard) annotations for 12 hard images")
        let ds = try COCOInstances(root: hard, split: "train2017")
        var near = 0, total = 0
        for i in 0..<ds.imageCount {
            let image = try loadImage(path: ds.imagePath(ofImage: i))
            for (a, m) in zip(ds.annotations(ofImage: i), try ds.masks(ofImage: i)) {
                #expect(m.area > 0)
                let colour = [[220, 30, 30], [30, 200, 40], [40, 60, 230], [230, 220, 30], [30, 210, 220]][a.categoryIndex]
                for p in 0..<m.bits.count where m.bits[p] != 0 {
                    total += 1
                    if (0..<3).allSatisfy({ abs(Int(image.pixels[p * 3 + $0]) - colour[$0]) <= 45 + 8 + 12 }) { near += 1 }
                }
            }
        }
        #expect(near * 10 >= total * 8, "\(near) of \(total) object pixels within jitter + noise + JPEG of the class colour")
    }

    @Test func deterministicForASeed() throws {
        let a = tempRoot(), b = tempRoot()
        defer { try? FileManager.default.removeItem(atPath: a); try? FileManager.default.removeItem(atPath: b) }
        for r in [a, b] { try writeSyntheticDataset(root: r, options: SyntheticOptions(format: .ade20k, images: 2, width: 32, height: 32, seed: 9)) }
        let f = "ADEChallengeData2016/annotations/training/ADE_train_00000002.png"
        #expect(FileManager.default.contents(atPath: "\(a)/\(f)") == FileManager.default.contents(atPath: "\(b)/\(f)"))
    }
}

@Suite struct COCOSampleAugmentationTests {
    @Test func polygonsRasterizedAfterLSJStayOnTheirObjects() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("synth-lsj-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cocoInstance, images: 4, width: 160, height: 120, seed: 5))
        let ds = try COCOInstances(root: root, split: "train2017")
        var aug = LSJTrainAugmentation()
        aug.imageSize = 256
        let colours: [[Int]] = [[220, 30, 30], [30, 200, 40], [40, 60, 230], [230, 220, 30], [30, 210, 220]]
        var checked = 0
        for i in 0..<ds.imageCount {
            let s = try ds.sample(i)
            for epoch in 0..<3 {
                var rng = augmentationRNG(seed: 1, epoch: epoch, imageId: s.imageId)
                let out = try aug.apply(s, rng: &rng)
                #expect(out.image.width == 256 && out.image.height == 256)
                for (cls, m) in zip(out.classes, out.masks) where m.area >= 30 {
                    var match = 0
                    for p in 0..<m.bits.count where m.bits[p] != 0 {
                        if (0..<3).allSatisfy({ abs(Int(out.image.pixels[p * 3 + $0]) - colours[cls][$0]) < 60 }) { match += 1 }
                    }
                    #expect(match * 2 >= m.area, "image \(s.imageId) epoch \(epoch): \(match) of \(m.area) pixels on the class colour")
                    checked += 1
                }
            }
        }
        #expect(checked > 10)
    }
}
