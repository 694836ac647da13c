// Tests of the dataset-format descriptors' training recipes: the configuration's input keys reach the augmentation
// (LSJ scale range; the short-edge crop's sizes for Cityscapes), and every format opens its synthetic split.
import Datasets
import Evaluation
import Foundation
import Testing
import TensorCore
import Training
import _TestSupport

@Suite struct DatasetFormatsTests {
    /// `input.min_scale = max_scale = 0.5` on 64×64 COCO images with a 64 crop: every image is resized to 32×32 and
    /// padded (128) to 64×64; a range of 1…1 leaves no pad.
    @Test func lsjScaleRangeComesFromTheConfig() throws {
        let root = try makeTestDirectory("lsj").path
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cocoInstance, images: 3, width: 64, height: 64, seed: 2))
        for (scale, padded) in [(0.5, true), (1.0, false)] {
            var config = MaskPilotConfig()
            config.data.format = .cocoInstance; config.data.root = root
            config.input.cropSize = 64; config.input.minScale = scale; config.input.maxScale = scale
            let data = try config.data.format.descriptor.trainingData(config: config, split: "train2017")
            for i in 0..<data.count {
                var rng = RNG(seed: 1, stream: UInt64(i))
                let out = try data.augment(try data.load(i), &rng)
                #expect(out.image.width == 64 && out.image.height == 64)
                let corner = out.image.pixels[(63 * 64 + 63) * 3]
                #expect((corner == 128) == padded)
                #expect(out.masks.allSatisfy { m in (0..<64).allSatisfy { m.bits[63 * 64 + $0] == 0 } } || !padded)
            }
        }
    }

    /// Cityscapes: `input.crop_size [h, w]`, `min_size_train`, `max_size_train` reach the recipe (no pad).
    @Test func cityscapesCropComesFromTheConfig() throws {
        let root = try makeTestDirectory("cs-formats").path
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cityscapes, images: 2, width: 128, height: 64, seed: 2))
        for format in [DataConfig.Format.cityscapesSemantic, .cityscapesInstance, .cityscapesPanoptic] {
            var config = MaskPilotConfig()
            config.data.format = format; config.data.root = root
            config.input.cropSize = CropSize(height: 32, width: 48); config.input.minSizeTrain = [40]; config.input.maxSizeTrain = 1000
            let data = try format.descriptor.trainingData(config: config, split: "train")
            #expect(data.count == 2 && data.numClasses == (format == .cityscapesInstance ? 8 : 19))
            var rng = RNG(seed: 1, stream: 3)
            let out = try data.augment(try data.load(0), &rng)
            #expect(out.image.width == 48 && out.image.height == 32, "\(format): \(out.image.width)×\(out.image.height)")
            #expect(out.masks.allSatisfy { $0.width == 48 && $0.height == 32 })
        }
    }
    /// `sem-seg` reads `data.root` with `model.decoder.num_classes`, `data.ignore_label` and `data.reduce_zero_label`,
    /// names its classes from `data.classes`, and writes prediction PNGs in the annotations' own encoding.
    @Test func semSegFollowsItsKeys() throws {
        let root = try makeTestDirectory("semseg-format").path
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .semSeg, images: 2, width: 48, height: 32, seed: 2))
        var config = MaskPilotConfig()
        config.data.format = .semSeg; config.data.root = root; config.input.cropSize = 32
        config.model.decoder.numClasses = SyntheticClasses.semSegNames.count
        config.data.classes = SyntheticClasses.semSegNames
        #expect(config.violations().isEmpty)
        let train = try config.data.format.descriptor.trainingData(config: config, split: "training")
        #expect(train.count == 2 && train.numClasses == 7)
        var rng = RNG(seed: 1, stream: 0)
        let out = try train.augment(try train.load(0), &rng)
        #expect(out.image.width == 32 && out.image.height == 32 && out.classes.allSatisfy { (0..<7).contains($0) })
        let eval = try config.data.format.descriptor.evaluationData(config: config, split: "training")
        #expect(eval.classNames == SyntheticClasses.semSegNames && eval.categoryIDs == nil && eval.imageID(1) == 1)
        #expect((eval.makeEvaluator(2) as? SemanticTaskEvaluator)?.storedOffset == 0)

        // Reduce-zero-label: stored 0 (sky) is unlabeled, 1…6 are classes 0…5, named "class k" without data.classes.
        config.data.classes = []; config.data.reduceZeroLabel = true; config.model.decoder.numClasses = 6
        let reduced = try config.data.format.descriptor.evaluationData(config: config, split: "training")
        #expect(reduced.classNames.first == "class 0" && reduced.classNames.count == 6)
        #expect((reduced.makeEvaluator(2) as? SemanticTaskEvaluator)?.storedOffset == 1)
        guard case .semantic(let map) = try reduced.load(0).targets else { Issue.record("not semantic"); return }
        #expect(!map.labels.contains(6) && map.labels.contains(255))
        // Too few classes for the stored values: the error names the annotation and the value.
        config.model.decoder.numClasses = 3
        #expect { _ = try config.data.format.descriptor.trainingData(config: config, split: "training").load(0) } throws: { e in
            "\(e)".contains("\(root)/annotations/training/scene_00000.png: image scene_00000: label") && "\(e)".contains("outside 1…3 (0 and 255 ignored)")
        }
    }
    /// `data.annotation_file`, `data.image_folder` and `data.label_folder` move a COCO or sem-seg split's files (a
    /// Roboflow-style export: `train/_annotations.coco.json` next to its images; absolute paths as given).
    @Test func layoutKeysMoveTheFiles() throws {
        let fm = FileManager.default
        let coco = try makeTestDirectory("layout-coco").path
        try writeSyntheticDataset(root: coco, options: SyntheticOptions(format: .cocoInstance, images: 3, width: 48, height: 48, seed: 2))
        try fm.moveItem(atPath: "\(coco)/train2017", toPath: "\(coco)/train")
        try fm.moveItem(atPath: "\(coco)/annotations/instances_train2017.json", toPath: "\(coco)/train/_annotations.coco.json")
        var config = MaskPilotConfig()
        config.data.format = .cocoInstance; config.data.root = coco; config.model.decoder.numClasses = 5
        #expect { _ = try config.data.format.descriptor.trainingData(config: config, split: "train") } throws: { e in
            "\(e)".contains("\(coco)/annotations/instances_train.json")
        }
        config.data.annotationFile = "{split}/annotations.json"   // a wrong pattern is named with the key that made it
        #expect { _ = try config.data.format.descriptor.trainingData(config: config, split: "train") } throws: { e in
            "\(e)".contains("\(coco)/train/annotations.json") && "\(e)".contains("(data.annotation_file {split}/annotations.json, split train)")
        }
        config.data.annotationFile = "{split}/_annotations.coco.json"; config.data.imageFolder = "{split}"
        #expect(config.violations().isEmpty)
        let train = try config.data.format.descriptor.trainingData(config: config, split: "train")
        #expect(train.count == 3 && train.numClasses == 5)
        #expect(try train.load(2).image.width == 48)
        #expect(try config.data.format.descriptor.evaluationData(config: config, split: "train").count == 3)
        config.data.imageFolder = "\(coco)/train"   // absolute paths, no {split}: every split reads these files
        config.data.annotationFile = "\(coco)/train/_annotations.coco.json"
        #expect(try config.data.format.descriptor.trainingData(config: config, split: "any").load(0).image.height == 48)

        let pan = try makeTestDirectory("layout-pan").path
        try writeSyntheticDataset(root: pan, options: SyntheticOptions(format: .cocoPanoptic, images: 2, width: 48, height: 48, seed: 3))
        try fm.moveItem(atPath: "\(pan)/annotations/panoptic_train2017", toPath: "\(pan)/pngs")
        var panoptic = MaskPilotConfig()
        panoptic.data.format = .cocoPanoptic; panoptic.data.root = pan; panoptic.model.decoder.numClasses = 7
        panoptic.data.labelFolder = "pngs"
        let p = try panoptic.data.format.descriptor.evaluationData(config: panoptic, split: "train2017")
        #expect(p.count == 2)
        guard case .panoptic = try p.load(1).targets else { Issue.record("not panoptic"); return }

        let sem = try makeTestDirectory("layout-semseg").path
        try writeSyntheticDataset(root: sem, options: SyntheticOptions(format: .semSeg, images: 2, width: 48, height: 32, seed: 4))
        try fm.moveItem(atPath: "\(sem)/images/training", toPath: "\(sem)/rgb")
        try fm.moveItem(atPath: "\(sem)/annotations/training", toPath: "\(sem)/labels")
        var semseg = MaskPilotConfig()
        semseg.data.format = .semSeg; semseg.data.root = sem; semseg.model.decoder.numClasses = 7
        semseg.data.imageFolder = "rgb"; semseg.data.labelFolder = "labels"
        #expect(try semseg.data.format.descriptor.trainingData(config: semseg, split: "training").count == 2)
        semseg.data.labelFolder = "rgb"
        #expect { _ = try semseg.data.format.descriptor.trainingData(config: semseg, split: "training") } throws: { e in
            "\(e)".contains("holds both the images and the label PNGs")
        }
        semseg.data.imageFolder = "pictures/{split}"
        #expect { _ = try semseg.data.format.descriptor.trainingData(config: semseg, split: "training") } throws: { e in
            "\(e)".contains("\(sem)/pictures/training: no such folder (expected data.image_folder pictures/{split} for split training)")
        }

        var ade = MaskPilotConfig()
        ade.data.imageFolder = "rgb"; ade.data.annotationFile = "x.json"
        #expect(ade.violations().map(\.key) == ["data.annotation_file", "data.image_folder"])
        ade.data.format = .cocoInstance; ade.data.labelFolder = "pngs"
        #expect(ade.violations().map(\.description) == ["data.label_folder: applies to data.format coco-panoptic, sem-seg only (coco-instance does not use it); leave it out"])
    }

    /// `data.train_split: [a, b]` trains the splits as one dataset: sample i runs through them in order, the second
    /// split's image ids are offset by 2³² (so equal ids keep distinct augmentation streams), a single split is unchanged;
    /// splits with other categories, or none, are refused naming the split and files.
    @Test func listedTrainSplitsAreConcatenated() throws {
        let root = try makeTestDirectory("concat-splits").path
        for (split, images, seed) in [("a", 3, UInt64(5)), ("b", 2, UInt64(6))] {
            try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cocoInstance, images: images, width: 48, height: 48,
                                                                            seed: seed, split: split))
        }
        var config = MaskPilotConfig()
        config.data.format = .cocoInstance; config.data.root = root; config.model.decoder.numClasses = 5
        config.data.trainSplit = ["a", "b"]
        let both = try TrainingData(config: config)
        let a = try TrainingData(config: config, split: "a"), b = try TrainingData(config: config, split: "b")
        #expect(both.count == 5 && both.numClasses == 5 && both.categories == a.categories && a.categories.count == 5)
        #expect(both.splitCounts == [3, 2] && a.splitCounts == [3])
        for i in 0..<3 {
            let s = try both.load(i), t = try a.load(i)
            #expect(s.imageId == t.imageId && s.image.pixels == t.image.pixels)
        }
        for i in 0..<2 {
            let s = try both.load(3 + i), t = try b.load(i)
            #expect(s.imageId == t.imageId + (1 << 32) && s.image.pixels == t.image.pixels)
        }
        config.data.trainSplit = ["a"]
        #expect(try TrainingData(config: config).load(1).imageId == a.load(1).imageId)

        // Other categories (a 6-class synthetic split): refused with both files and the first class that differs.
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cocoInstance, images: 2, width: 48, height: 48, seed: 7,
                                                                        split: "c", classes: 6))
        config.data.trainSplit = ["a", "c"]
        #expect { _ = try TrainingData(config: config) } throws: { e in
            "\(e)".hasPrefix("data.train_split: the split 'c' (\(root)/annotations/instances_c.json) does not have the classes of 'a': 6 classes, 'a' 5")
        }
        // An empty split among several is refused by name.
        let json = try String(contentsOfFile: "\(root)/annotations/instances_a.json", encoding: .utf8)
        let emptied = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        var dict = emptied; dict["images"] = [Any](); dict["annotations"] = [Any]()
        try JSONSerialization.data(withJSONObject: dict).write(to: URL(fileURLWithPath: "\(root)/annotations/instances_e.json"))
        config.data.trainSplit = ["a", "e"]
        #expect { _ = try TrainingData(config: config) } throws: { "\($0)" == "data.train_split: the split 'e' has no training images" }
        // Same count, another name: the message names the class.
        var renamed = emptied
        var cats = try #require(renamed["categories"] as? [[String: Any]])
        cats[2]["name"] = "renamed"; renamed["categories"] = cats
        try JSONSerialization.data(withJSONObject: renamed).write(to: URL(fileURLWithPath: "\(root)/annotations/instances_r.json"))
        try FileManager.default.copyItem(atPath: "\(root)/a", toPath: "\(root)/r")
        config.data.trainSplit = ["a", "r"]
        #expect { _ = try TrainingData(config: config) } throws: { e in
            "\(e)".contains("the split 'r' (\(root)/annotations/instances_r.json) does not have the classes of 'a': class 2 is '3 renamed'")
        }
    }

    /// COCO instance training leaves out images without a non-crowd annotation (detectron2's FILTER_EMPTY_ANNOTATIONS,
    /// on by default), says so in the notes, and keeps every image with `data.filter_empty_annotations: false`;
    /// evaluation scores every image either way. Other formats refuse the key.
    @Test func imagesWithoutUsableAnnotationsAreLeftOutOfTraining() throws {
        let root = try makeTestDirectory("filter-empty").path
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cocoInstance, images: 5, width: 48, height: 48, seed: 4))
        let file = "\(root)/annotations/instances_train2017.json"
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
        let images = try #require(json["images"] as? [[String: Any]])
        let (crowdOnly, bare) = (try #require(images[1]["id"] as? Int), try #require(images[3]["id"] as? Int))
        var annotations = try #require(json["annotations"] as? [[String: Any]])
        annotations = annotations.filter { $0["image_id"] as? Int != bare }.map { a in
            var a = a
            if a["image_id"] as? Int == crowdOnly { a["iscrowd"] = 1 }
            return a
        }
        json["annotations"] = annotations
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: file))

        var config = MaskPilotConfig()
        config.data.format = .cocoInstance; config.data.root = root; config.model.decoder.numClasses = 5
        let train = try config.data.format.descriptor.trainingData(config: config, split: "train2017")
        #expect(train.count == 3)
        #expect(try (0..<3).map { try train.load($0).imageId } == [0, 2, 4].map { images[$0]["id"] as! Int })
        #expect(train.notes == ["data: \(file): removed 2 image(s) with no usable annotations (none, or only crowd regions; "
                                + "data.filter_empty_annotations), 3 left"])
        #expect(try config.data.format.descriptor.evaluationData(config: config, split: "train2017").count == 5)
        config.data.filterEmptyAnnotations = false
        #expect(config.violations().isEmpty)
        let all = try config.data.format.descriptor.trainingData(config: config, split: "train2017")
        #expect(all.count == 5 && all.notes.isEmpty)
        config.data.format = .cocoPanoptic
        #expect(config.violations().map(\.key) == ["data.filter_empty_annotations"])
    }

    /// Cityscapes instance training leaves out the frames whose `instanceIds` hold no non-crowd instance of an
    /// evaluated class (only a car group region; only a caravan, a class not evaluated), as detectron2's filter does for
    /// its Cityscapes registration; semantic training of the same frames keeps them all. An unreadable map stops
    /// training before the first step, naming the file, unless `data.on_bad_sample: skip`.
    @Test func cityscapesFramesWithoutInstancesAreLeftOutOfTraining() throws {
        let root = try makeTestDirectory("filter-empty-cityscapes").path
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cityscapes, images: 5, width: 64, height: 32, seed: 6))
        let ds = try CityscapesDataset(root: root, split: "train", requireInstanceIds: true)
        #expect(try (0..<5).allSatisfy { CityscapesDataset.hasNonCrowdInstance(try ds.instanceIds($0)) })
        func rewrite(_ i: Int, _ values: (UInt16) -> UInt16) throws {
            let map = try ds.instanceIds(i)
            try writeGray16PNG(Gray16Map(width: map.width, height: map.height, values: map.values.map(values)), to: ds.frames[i].instanceIds)
        }
        try rewrite(1) { $0 >= 1000 ? 26 : $0 }                        // every instance becomes the car group region
        try rewrite(3) { $0 >= 1000 ? 29_001 : $0 }                    // every instance becomes one caravan
        #expect(CityscapesDataset.instances(of: try ds.instanceIds(3)).isEmpty)
        #expect(CityscapesDataset.instances(of: try ds.instanceIds(1)).allSatisfy(\.isCrowd))

        var config = MaskPilotConfig()
        config.data.format = .cityscapesInstance; config.data.root = root; config.data.trainSplit = "train"
        config.input.cropSize = CropSize(height: 32, width: 32)
        #expect(config.violations().filter { $0.key.hasPrefix("data.") }.isEmpty)
        let train = try config.data.format.descriptor.trainingData(config: config, split: "train")
        #expect(train.count == 3 && train.imagesWithoutAnnotations == 2)
        #expect(try (0..<3).map { try train.load($0).imageId } == [0, 2, 4])
        #expect(train.notes == ["data: \(root)/gtFine/train: removed 2 frame(s) with no usable instances (none, or only group "
                                + "regions; data.filter_empty_annotations), 3 left"])
        config.data.filterEmptyAnnotations = false
        #expect(config.violations().filter { $0.key.hasPrefix("data.") }.isEmpty)
        let all = try config.data.format.descriptor.trainingData(config: config, split: "train")
        #expect(all.count == 5 && all.notes.isEmpty && all.imagesWithoutAnnotations == 0)
        config.data.format = .cityscapesSemantic
        #expect(config.violations().map(\.key).contains("data.filter_empty_annotations"))
        config.data.filterEmptyAnnotations = true
        #expect(try config.data.format.descriptor.trainingData(config: config, split: "train").count == 5)

        // A truncated instanceIds PNG: an error naming it at start-up, or kept for the loader to skip.
        let file = ds.frames[2].instanceIds
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: file))
        config.data.format = .cityscapesInstance
        #expect { _ = try config.data.format.descriptor.trainingData(config: config, split: "train") } throws: { "\($0)".contains(file) }
        config.data.onBadSample = .skip
        let skipping = try config.data.format.descriptor.trainingData(config: config, split: "train")
        #expect(skipping.count == 3 && skipping.imagesWithoutAnnotations == 2)
    }
}
