// `maskpilot eval-results`: score existing prediction files (from MaskPilot or any tool) without a model.
// Corresponds to pycocotools COCOeval(iouType="segm"), panopticapi pq_compute and detectron2's SemSegEvaluator.
import ArgumentParser
import Datasets
import Evaluation
import Foundation
import Training

struct EvalResultsCommand: ParsableCommand {

    static let configuration = CommandConfiguration(
        commandName: "eval-results", abstract: "Score existing prediction files against a dataset's ground truth.",
        discussion: """
        --task instance: --gt is a COCO root (annotations/instances_<split>.json) or the annotation file itself \
        (instances_val2017.json, as pycocotools' COCO() takes it; --split is then not needed); --results is a COCO results JSON \
        (array of {image_id, category_id, score, segmentation: {size, counts}}, as pycocotools' loadRes reads). \
        Prints COCO mask AP/AR (the 12 COCOeval stats).
        --task panoptic: --gt is a COCO panoptic root (annotations/panoptic_<split>.json + PNGs); --results is a \
        folder holding exactly one prediction JSON ({annotations: [{image_id, file_name, segments_info: [{id, \
        category_id}]}]}) and, next to it, the PNG folder named like the JSON without .json (panopticapi format). \
        Every ground-truth image needs a prediction. Prints PQ/SQ/RQ for all, things, stuff and per class.
        --task semantic: --gt is an ADE20K root (ADEChallengeData2016), or with --num-classes a sem-seg root \
        (images/<split>, annotations/<split>) read with --ignore-label and --reduce-zero-label, its classes named by --classes; --results is a folder \
        of 8-bit gray or palette label PNGs named like the annotation files (ADE_val_00000001.png), holding each class \
        as the annotations store it (ADE20K: class index + 1, 1…150); an unlabeled value there (ADE20K's 0) is scored \
        as wrong for every ground-truth class. Prints mIoU, fwIoU, pACC, mACC and per-class IoU.
        --task cityscapes-semantic / cityscapes-instance / cityscapes-panoptic: --gt is a Cityscapes root (leftImg8bit, gtFine) \
        and --split its split (val); results are found as cityscapesscripts finds them: semantic, one <city>_<seq>_<frame>*.png \
        label-id image per frame anywhere under --results; instance, one <city>_<seq>_<frame>*.txt list per frame whose \
        lines are 'relative/mask.png <labelId> <confidence>' (any non-zero mask pixel is in); panoptic, --results holds \
        one prediction JSON with string image ids and its PNG folder, as for panoptic. Prints class mIoU (evalPixelLevel\
        SemanticLabeling), AP and AP50 (evalInstanceLevelSemanticLabeling) or PQ/SQ/RQ (evalPanopticSemanticLabeling).
        """)

    /// What `--task` scores: the tasks of the COCO and ADE20K formats, and the three Cityscapes protocols.
    enum Task: String, ExpressibleByArgument, CaseIterable {
        case instance, panoptic, semantic
        case cityscapesSemantic = "cityscapes-semantic", cityscapesInstance = "cityscapes-instance", cityscapesPanoptic = "cityscapes-panoptic"
    }

    @Option(help: "instance, panoptic, semantic, cityscapes-semantic, cityscapes-instance or cityscapes-panoptic.") var task: Task
    @Option(help: "Ground-truth dataset root (instance: or its annotation JSON file).") var gt: String
    @Option(help: "Split name (e.g. val2017, validation); not needed when --gt is an annotation file.") var split: String?
    @Option(help: "Results: a JSON file (instance) or a folder (panoptic, semantic).") var results: String
    @Option(parsing: .unconditional, help: "semantic: --gt is a sem-seg root with this many classes (default: an ADE20K root).")
    var numClasses: Int?
    @Option(parsing: .unconditional, help: "semantic with --num-classes: the label value of unlabeled pixels.") var ignoreLabel: Int = 255
    @Flag(help: "semantic with --num-classes: label value 0 is unlabeled and k is class k − 1.") var reduceZeroLabel = false
    @Option(parsing: .upToNextOption, help: "semantic with --num-classes: the class names, one per class (default: class 0, class 1, …).")
    var classes: [String] = []

    func validate() throws {
        guard let numClasses else {
            if ignoreLabel != 255 || reduceZeroLabel || !classes.isEmpty {
                throw ValidationError("--ignore-label, --reduce-zero-label and --classes need --num-classes (a sem-seg root)")
            }
            return
        }
        guard classes.isEmpty || classes.count == numClasses else {
            throw ValidationError("--classes names \(classes.count) classes but --num-classes is \(numClasses)")
        }
        guard task == .semantic else { throw ValidationError("--num-classes applies to --task semantic") }
        try requireOption("--num-classes", numClasses, atLeast: 1, atMost: 255)
        try requireOption("--ignore-label", ignoreLabel, atLeast: 0, atMost: 255)
        if let problem = LabelEncoding(numClasses: numClasses, ignoreLabel: UInt8(ignoreLabel), reduceZeroLabel: reduceZeroLabel).problem {
            throw ValidationError("--num-classes \(numClasses) with --ignore-label \(ignoreLabel)\(reduceZeroLabel ? " --reduce-zero-label" : ""): \(problem)")
        }
    }

    func run() throws {
        do {
            switch task {
            case .instance: try instance()
            case .panoptic: try panoptic()
            case .semantic: try semantic()
            case .cityscapesSemantic:
                let ds = try CityscapesDataset(root: gt, split: try requiredSplit(), requireLabelIds: true)
                let scores = try scoreCityscapesSemanticResults(ds, results: results)
                print("Cityscapes semantic labeling: \(ds.count) images")
                for line in cityscapesSemanticLines(scores) { print(line) }
            case .cityscapesInstance:
                let ds = try CityscapesDataset(root: gt, split: try requiredSplit(), requireInstanceIds: true)
                let (ap, images) = try scoreCityscapesInstanceResults(ds, results: results)
                print("Cityscapes instance AP: \(ds.count) images, \(images.reduce(0) { $0 + $1.predictions.count }) predictions of instance classes")
                for line in ap.lines { print(line) }
            case .cityscapesPanoptic: try cityscapesPanoptic()
            }
        } catch let e as EvaluationError {
            throw RuntimeError(e.description)
        } catch let e as DataError {
            throw RuntimeError(e.description)
        }
    }

    /// `--split`, which a dataset root needs.
    func requiredSplit() throws -> String {
        guard let split else { throw ValidationError("--split is needed when --gt is a dataset root (\(gt))") }
        return split
    }

    func instance() throws {
        let ds: COCOInstances
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: gt, isDirectory: &isDirectory), !isDirectory.boolValue {
            // The annotation file itself, as pycocotools users pass it (images are not read for scoring).
            ds = try COCOInstances(annotationFile: gt, imageDirectory: (gt as NSString).deletingLastPathComponent)
        } else {
            ds = try COCOInstances(root: gt, split: try requiredSplit())
        }
        let groundTruth = try COCOMaskAP.groundTruth(from: ds)
        let detections = try readCOCOInstanceResults(path: results)
        // Every result must fit the ground truth, as pycocotools' loadRes requires of image ids: a mask of another
        // size or an unknown category would be scored as a silent miss, and a score outside 0…1 is no confidence.
        let sizes = Dictionary(uniqueKeysWithValues: ds.images.map { ($0.id, ($0.height, $0.width)) })
        let categories = Set(ds.categories.map(\.id))
        for (n, d) in detections.enumerated() {
            let at = "\(results): result \(n)"
            guard let (h, w) = sizes[d.imageID] else {
                throw EvaluationError(at, "image id \(d.imageID) is not in \(ds.annotationFile)")
            }
            guard categories.contains(d.categoryID) else {
                throw EvaluationError(at, "category id \(d.categoryID) is not in \(ds.annotationFile) (ids: \(categories.sorted().prefix(20).map(String.init).joined(separator: ", ")))")
            }
            guard d.rle.height == h, d.rle.width == w else {
                throw EvaluationError(at, "the segmentation's size [\(d.rle.height), \(d.rle.width)] is not image \(d.imageID)'s [\(h), \(w)] (height, width)")
            }
            guard d.score.isFinite, (0...1).contains(d.score) else {
                throw EvaluationError(at, "score \(d.score) is not a confidence within 0…1")
            }
        }
        let r = try COCOMaskAP.evaluate(imageIDs: ds.images.map(\.id), categoryIDs: ds.categories.map(\.id),
                                        groundTruth: groundTruth, detections: detections)
        print("COCO mask AP: \(detections.count) detections, \(ds.imageCount) images, \(ds.categories.count) categories")
        let labels = ["Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
                      "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]",
                      "Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ]",
                      "Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
                      "Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
                      "Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
                      "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ]",
                      "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ]",
                      "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
                      "Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
                      "Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
                      "Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]"]
        for (i, v) in r.stats.enumerated() {
            print(pad(COCOMaskAPResult.names[i], 6) + " " + labels[i] + String(format: " = %.6f", v))
        }
        print("\nper-category AP (IoU=0.50:0.95, area=all, maxDets=100; nan: no ground truth):")
        for (c, v) in zip(ds.categories, r.perCategoryAP) {
            print("category \(c.id) = " + (v.isNaN ? "nan" : String(format: "%.6f", v)) + "  \(c.name)")
        }
    }

    func panoptic() throws {
        let ds = try COCOPanopticDataset(root: gt, split: try requiredSplit())
        let r = try scorePanoptic(categoryIDs: ds.categories.map(\.id), isThing: ds.categories.map(\.isThing), count: ds.count) { i in
            let rec = ds.records[i]
            return (.number(rec.imageId), rec.pngFile,
                    PanopticTargets(width: rec.width, height: rec.height, ids: try ds.idMap(i), segments: rec.segments))
        }
        print("COCO panoptic quality: \(ds.count) images, \(ds.numClasses) categories")
        printPanoptic(r, categories: ds.categories.map { ($0.id, $0.name, $0.isThing) })
    }

    func cityscapesPanoptic() throws {
        let ds = try CityscapesPanopticDataset(root: gt, split: try requiredSplit())
        let classes = Cityscapes.classes
        let r = try scorePanoptic(categoryIDs: classes.map(\.id), isThing: classes.map(\.hasInstances), count: ds.count) { i in
            let rec = ds.records[i]
            return (.name(rec.stem), rec.pngFile,
                    PanopticTargets(width: rec.width, height: rec.height, ids: try ds.idMap(i), segments: rec.segments))
        }
        print("Cityscapes panoptic quality: \(ds.count) images, \(classes.count) categories")
        printPanoptic(r, categories: classes.map { ($0.id, $0.name, $0.hasInstances) })
    }

    /// PQ of the prediction JSON in `--results` against `count` ground-truth images (`groundTruth(i)`: the JSON image
    /// id, the PNG for messages, the targets); every image needs a prediction.
    func scorePanoptic(categoryIDs: [Int], isThing: [Bool], count: Int,
                       groundTruth: (Int) throws -> (id: PanopticImageID, png: String, targets: PanopticTargets)) throws -> PanopticResult {
        let json = try findCOCOPanopticPredictionJSON(in: results)
        let predictions = try readCOCOPanopticPredictions(json: json, categoryIDs: categoryIDs)
        var ev = PanopticEvaluator(isThing: isThing)
        for i in 0..<count {
            let g = try groundTruth(i)
            guard let p = predictions[g.id] else { throw EvaluationError(json, "no prediction for image \(g.id) (\(g.png))") }
            try ev.update(groundTruth: g.targets, prediction: p, context: "\(json): image \(g.id)")
        }
        return ev.result()
    }

    func printPanoptic(_ r: PanopticResult, categories: [(id: Int, name: String, isThing: Bool)]) {
        print(pad("", 8) + " " + lpad("PQ", 7) + " " + lpad("SQ", 7) + " " + lpad("RQ", 7) + " " + lpad("N", 5))
        for (name, s) in [("All", r.all), ("Things", r.things), ("Stuff", r.stuff)] {
            print(pad(name, 8) + String(format: " %7.2f %7.2f %7.2f %5d", 100 * s.pq, 100 * s.sq, 100 * s.rq, s.count))
        }
        print("\nper class:")
        print(pad("category", 24) + " " + pad("kind", 5) + " " + ["PQ", "SQ", "RQ"].map { lpad($0, 7) }.joined(separator: " ") + " "
              + ["TP", "FP", "FN"].map { lpad($0, 5) }.joined(separator: " "))
        for (c, s) in r.perClass.enumerated() {
            let cat = categories[c]
            let kind = cat.isThing ? "thing" : "stuff"
            if !s.isCounted {
                print(pad("\(cat.id) \(cat.name)", 24) + " " + pad(kind, 5) + " " + ["-", "-", "-"].map { lpad($0, 7) }.joined(separator: " ")
                      + String(format: " %5d %5d %5d", 0, 0, 0))
                continue
            }
            print(pad("\(cat.id) \(cat.name)", 24) + " " + pad(kind, 5) + String(format: " %7.2f %7.2f %7.2f %5d %5d %5d",
                         100 * s.pq, 100 * s.sq, 100 * s.rq, s.truePositives, s.falsePositives, s.falseNegatives))
        }
    }

    func semantic() throws {
        let ds: SemanticFolders
        let name: String
        var names: [String]?
        if let numClasses {
            ds = try SemanticFolders(root: gt, split: try requiredSplit(),
                                     encoding: LabelEncoding(numClasses: numClasses, ignoreLabel: UInt8(ignoreLabel), reduceZeroLabel: reduceZeroLabel))
            name = "sem-seg"
            names = classes.isEmpty ? nil : classes
        } else {
            let ade = try ADE20KDataset(root: gt, split: try requiredSplit())
            ds = ade.folders
            name = "ADE20K"
            names = ade.classNames
        }
        let encoding = ds.encoding, k = encoding.numClasses
        // Class k stands for an unlabeled prediction: never in the ground truth, so it counts as wrong for the
        // pixel's class and is itself left out of the averages.
        var ev = SemanticEvaluator(numClasses: k + 1)
        for i in 0..<ds.count {
            let file = "\(results)/\(ds.annotationName(i))"
            guard FileManager.default.fileExists(atPath: file) else {
                throw EvaluationError(file, "prediction PNG missing for image \(ds.imageId(i))")
            }
            let gtLabels = try ds.labels(i)
            let pred = try loadImage(path: file, mode: .indices)
            guard pred.width == gtLabels.width && pred.height == gtLabels.height else {
                throw EvaluationError(file, "prediction is \(pred.width)×\(pred.height) but the annotation is \(gtLabels.width)×\(gtLabels.height)")
            }
            var labels = try encoding.decode(pred.pixels, width: pred.width, file: file, record: "prediction")
            for j in labels.indices where labels[j] == 255 { labels[j] = UInt8(k) }
            try ev.update(prediction: labels, groundTruth: gtLabels.labels, context: file)
        }
        let r = ev.result()
        print("\(name) semantic segmentation: \(ds.count) images, \(r.scoredPixels) scored pixels")
        print(String(format: "mIoU  %6.2f\nfwIoU %6.2f\npACC  %6.2f\nmACC  %6.2f",
                     100 * r.meanIoU, 100 * r.frequencyWeightedIoU, 100 * r.pixelAccuracy, 100 * r.meanClassAccuracy))
        let labels = (0..<k).map { c in names.map { "\(c) \($0[c])" } ?? "class \(c)" }
        print("")
        for line in perClassLines(title: "per-class IoU (index = stored label\(encoding.reduceZeroLabel ? " − 1" : ""); nan = absent from the ground truth):",
                                  names: labels, values: (0..<k).map { r.perClassIoU[$0].map { 100 * $0 } }) {
            print(line)
        }
    }
}

private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
private func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
