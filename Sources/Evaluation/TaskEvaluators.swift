// One evaluator per task (semantic, instance, panoptic) behind one protocol: updated image by image on every rank,
// its state encoded and gathered on one rank, merged there, and reported (numbers, results.json entries, the
// official prediction files). Corresponds to detectron2's DatasetEvaluator (reset / process / evaluate) as
// SemSegEvaluator, COCOEvaluator (segm) and COCOPanopticEvaluator.
import Datasets
import Foundation
import Mask2FormerModel

/// A prediction file encoded where the image was predicted and written by rank 0 alone (`path` is relative to
/// the output folder), so the output folder need not be shared between nodes.
public struct PredictionFile: Codable, Sendable, Equatable {
    public var path: String
    public var png: [UInt8]
    public init(path: String, png: [UInt8]) { self.path = path; self.png = png }

    // The bytes travel as base64 (JSON `Data`), a third of the size of a JSON array of numbers.
    enum CodingKeys: String, CodingKey { case path, png }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decode(String.self, forKey: .path)
        png = [UInt8](try c.decode(Foundation.Data.self, forKey: .png))
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path)
        try c.encode(Foundation.Data(png), forKey: .png)
    }
}

/// One evaluated image: its post-processed prediction at the image's size and its ground truth.
public struct EvaluatedImage {
    /// The image's index in the split and its dataset id.
    public var index: Int, imageID: Int
    public var targets: SampleTargets
    public var result: InferenceResult
    /// Where errors point ("ROOT SPLIT image ID").
    public var context: String

    public init(index: Int, imageID: Int, targets: SampleTargets, result: InferenceResult, context: String) {
        self.index = index; self.imageID = imageID; self.targets = targets; self.result = result; self.context = context
    }
}

/// What an evaluator reports on rank 0.
public struct TaskReport {
    /// The headline numbers in print order (percentages).
    public var scalars: [(name: String, value: Double)] = []
    /// Entries for results.json.
    public var json: [String: Any] = [:]
    /// Human-readable lines.
    public var lines: [String] = []
}

/// A task's evaluator. Every rank updates its own; rank 0 merges every rank's `encodedState()` into a fresh one and
/// reports. `update` appends the image's prediction files to `files` when it is given (an output folder is set).
public protocol TaskEvaluator {
    /// The names `report` gives its scalars, in order.
    var metricNames: [String] { get }
    mutating func update(_ image: EvaluatedImage, files: inout [PredictionFile]?) throws
    /// This evaluator's state as text (for gathering across ranks).
    func encodedState() throws -> String
    mutating func merge(encodedState: String) throws
    /// The metrics of everything merged. With `outputDirectory`, also writes the task's summary file of
    /// predictions (COCO results JSON, panoptic JSON). `skippedImageIDs`: images left out of the evaluation.
    func report(outputDirectory: String?, skippedImageIDs: Set<Int>) throws -> TaskReport
}

func encodeJSONText<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
}

func decodeJSONText<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
    try JSONDecoder().decode(type, from: Foundation.Data(text.utf8))
}

/// Semantic segmentation (ADE20K): mIoU, fwIoU, pACC, mACC from a confusion matrix; label PNGs `semantic/<name>`
/// holding class + 1, as ADE20K stores labels.
public struct SemanticTaskEvaluator: TaskEvaluator {
    public let numClasses: Int
    /// The label PNG name of each split index (the annotation's file name).
    public let fileNames: [String]
    /// What the prediction PNGs store for class c: c + `storedOffset` (1: ADE20K's 0 = unlabeled encoding).
    public let storedOffset: Int
    /// Class names for the per-class table (empty: none printed).
    public let classNames: [String]
    var evaluator: SemanticEvaluator

    public init(numClasses: Int, fileNames: [String], storedOffset: Int = 1, classNames: [String] = []) {
        self.numClasses = numClasses; self.fileNames = fileNames; self.storedOffset = storedOffset; self.classNames = classNames
        evaluator = SemanticEvaluator(numClasses: numClasses)
    }

    public var metricNames: [String] { ["mIoU", "fwIoU", "pACC", "mACC"] }

    public mutating func update(_ image: EvaluatedImage, files: inout [PredictionFile]?) throws {
        guard case .semantic(let gt) = image.targets, let sem = image.result.semantic else {
            throw EvaluationError(image.context, "no semantic annotation or prediction")
        }
        try evaluator.update(prediction: sem.labels, groundTruth: gt, context: image.context)
        if files != nil {
            files!.append(PredictionFile(path: "semantic/\(fileNames[image.index])",
                                         png: try encodeSemanticLabelPNG(sem.labels, width: sem.width, height: sem.height, offset: storedOffset)))
        }
    }

    public func encodedState() throws -> String { try encodeJSONText(evaluator.confusion) }

    public mutating func merge(encodedState: String) throws {
        try evaluator.merge(try SemanticEvaluator(numClasses: numClasses, confusion: try decodeJSONText([Int64].self, encodedState)))
    }

    public func report(outputDirectory: String?, skippedImageIDs: Set<Int>) throws -> TaskReport {
        let r = evaluator.result()
        var out = TaskReport()
        out.scalars = [("mIoU", 100 * r.meanIoU), ("fwIoU", 100 * r.frequencyWeightedIoU), ("pACC", 100 * r.pixelAccuracy),
                       ("mACC", 100 * r.meanClassAccuracy)]
        out.json["per_class_IoU"] = r.perClassIoU.map { $0.map { 100 * $0 } as Any? ?? NSNull() }
        out.lines = out.scalars.map { $0.name.padding(toLength: 6, withPad: " ", startingAt: 0) + String(format: " %6.2f", $0.value) }
        if classNames.count == numClasses {
            out.json["per_class"] = zip(classNames, r.perClassIoU).map { ["name": $0, "IoU": $1.map { 100 * $0 } as Any? ?? NSNull()] as [String: Any] }
            out.lines += perClassLines(title: "per-class IoU (nan: not in the ground truth):", names: classNames, values: r.perClassIoU.map { $0.map { 100 * $0 } })
        }
        return out
    }
}

/// COCO instance segmentation: the 12 COCOeval mask AP/AR numbers (undefined ones NaN, as detectron2 reports them)
/// and `coco_instances_results.json`.
public struct InstanceTaskEvaluator: TaskEvaluator {
    public let dataset: COCOInstances
    /// The evaluated images: the first `count` of the dataset.
    public let count: Int
    var detections: [COCOMaskAPDetection] = []

    public init(dataset: COCOInstances, count: Int) { self.dataset = dataset; self.count = count }

    public var metricNames: [String] { COCOMaskAPResult.names }

    public mutating func update(_ image: EvaluatedImage, files: inout [PredictionFile]?) throws {
        let categories = dataset.categories
        for inst in image.result.instances ?? [] {
            let mask = BinaryMask(width: inst.width, height: inst.height, bits: inst.mask)
            detections.append(COCOMaskAPDetection(imageID: image.imageID, categoryID: categories[inst.label].id,
                                                  score: Double(inst.score), rle: COCORLE(mask: mask)))
        }
    }

    public func encodedState() throws -> String { try encodeJSONText(detections.map(SerializedDetection.init)) }

    public mutating func merge(encodedState: String) throws {
        detections += try decodeJSONText([SerializedDetection].self, encodedState).map { try $0.detection() }
    }

    public func report(outputDirectory: String?, skippedImageIDs: Set<Int>) throws -> TaskReport {
        let imageIDs = dataset.images.prefix(count).map(\.id).filter { !skippedImageIDs.contains($0) }
        let gt = try COCOMaskAP.groundTruth(from: dataset, images: count)
        let r = try COCOMaskAP.evaluate(imageIDs: imageIDs, categoryIDs: dataset.categories.map(\.id), groundTruth: gt,
                                        detections: detections)
        var out = TaskReport()
        out.lines.append("COCO mask AP: \(detections.count) detections, \(imageIDs.count) images")
        for (i, v) in r.stats.enumerated() {
            // COCOeval's −1 (no ground truth in that area range) is undefined: NaN, as detectron2 reports it.
            let name = COCOMaskAPResult.names[i], value = v < 0 ? Double.nan : 100 * v
            out.scalars.append((name, value))
            out.lines.append(name.padding(toLength: 6, withPad: " ", startingAt: 0) + String(format: " %6.2f", value))
        }
        out.json["detections"] = detections.count
        let categories = dataset.categories
        out.json["per_category_AP"] = zip(categories, r.perCategoryAP).map { c, ap -> [String: Any] in
            ["category_id": c.id, "name": c.name, "AP": ap.isNaN ? NSNull() : 100 * ap as Any]
        }
        out.lines += perClassLines(title: "per-category AP:", names: categories.map(\.name), values: r.perCategoryAP.map { 100 * $0 })
        if let outputDirectory { try writeCOCOInstanceResults(detections, to: "\(outputDirectory)/coco_instances_results.json") }
        return out
    }

    /// A detection as gathered between ranks: the COCO compressed RLE string (several times smaller than the
    /// counts as JSON numbers), the score exactly (JSON round-trips a Double).
    struct SerializedDetection: Codable {
        var image: Int, category: Int, score: Double, height: Int, width: Int, counts: String
        init(_ d: COCOMaskAPDetection) {
            image = d.imageID; category = d.categoryID; score = d.score
            height = d.rle.height; width = d.rle.width; counts = d.rle.compressedCounts
        }
        func detection() throws -> COCOMaskAPDetection {
            let rle: COCORLE
            do { rle = try COCORLE(compressedCounts: counts, height: height, width: width) } catch {
                throw EvaluationError("gathered detection of image \(image)", "\(error)")
            }
            return COCOMaskAPDetection(imageID: image, categoryID: category, score: score, rle: rle)
        }
    }
}

/// COCO (and Cityscapes) panoptic segmentation: PQ/SQ/RQ for all, things and stuff and per class, and the predictions
/// in panopticapi's format (`<outputName>.json` + `<outputName>/<png>`; COCO: `panoptic_predictions`, PNGs named
/// `<image id>.png`; Cityscapes: string image ids `<city>_<seq>_<frame>` from `imageNames`).
public struct PanopticTaskEvaluator: TaskEvaluator {
    public let isThing: [Bool]
    public let categoryIDs: [Int]
    public let classNames: [String]
    /// The JSON `image_id` of each split index when it is a name (Cityscapes); nil: the dataset's numeric id.
    public let imageNames: [String]?
    public let outputName: String
    var evaluator: PanopticEvaluator
    var annotations: [COCOPanopticAnnotation] = []

    public init(isThing: [Bool], categoryIDs: [Int], classNames: [String], imageNames: [String]? = nil,
                outputName: String = "panoptic_predictions") {
        self.isThing = isThing; self.categoryIDs = categoryIDs; self.classNames = classNames
        self.imageNames = imageNames; self.outputName = outputName
        evaluator = PanopticEvaluator(isThing: isThing)
    }

    public var metricNames: [String] { ["", "_things", "_stuff"].flatMap { s in ["PQ", "SQ", "RQ"].map { $0 + s } } }

    public mutating func update(_ image: EvaluatedImage, files: inout [PredictionFile]?) throws {
        guard case .panoptic(let gt) = image.targets, let pan = image.result.panoptic else {
            throw EvaluationError(image.context, "no panoptic annotation or prediction")
        }
        let prediction = PanopticPrediction(
            width: pan.width, height: pan.height, ids: pan.ids.map { UInt32(max(0, $0)) },
            segments: pan.segments.map { PanopticPrediction.Segment(id: UInt32($0.id), classIndex: $0.categoryId) })
        try evaluator.update(groundTruth: gt, prediction: prediction, context: image.context)
        if files != nil {
            let id: PanopticImageID = imageNames.map { .name($0[image.index]) } ?? .number(image.imageID)
            let name = panopticPNGName(imageID: id)
            let encoded = try encodeCOCOPanopticPNG(prediction, imageID: id, categoryIDs: categoryIDs, fileName: name)
            annotations.append(encoded.annotation)
            files!.append(PredictionFile(path: "\(outputName)/\(name)", png: encoded.png))
        }
    }

    struct State: Codable {
        var stats: [[Double]]
        var annotations: [COCOPanopticAnnotation]
    }

    public func encodedState() throws -> String {
        try encodeJSONText(State(stats: evaluator.stats.map { [$0.iouSum, Double($0.truePositives), Double($0.falsePositives),
                                                               Double($0.falseNegatives)] },
                                 annotations: annotations))
    }

    public mutating func merge(encodedState: String) throws {
        let state = try decodeJSONText(State.self, encodedState)
        let stats = state.stats.map {
            PanopticCategoryStat(iouSum: $0[0], truePositives: Int($0[1]), falsePositives: Int($0[2]), falseNegatives: Int($0[3]))
        }
        try evaluator.merge(try PanopticEvaluator(isThing: isThing, stats: stats))
        annotations += state.annotations
    }

    public func report(outputDirectory: String?, skippedImageIDs: Set<Int>) throws -> TaskReport {
        let r = evaluator.result()
        var out = TaskReport()
        for (name, s) in [("All", r.all), ("Things", r.things), ("Stuff", r.stuff)] {
            out.lines.append(name.padding(toLength: 8, withPad: " ", startingAt: 0)
                             + String(format: " PQ %6.2f  SQ %6.2f  RQ %6.2f  N %d", 100 * s.pq, 100 * s.sq, 100 * s.rq, s.count))
            let suffix = name == "All" ? "" : "_" + name.lowercased()
            out.scalars += [("PQ" + suffix, 100 * s.pq), ("SQ" + suffix, 100 * s.sq), ("RQ" + suffix, 100 * s.rq)]
        }
        out.json["per_class"] = r.perClass.enumerated().map { c, s -> [String: Any] in
            var row: [String: Any] = ["class": c, "name": classNames[c], "thing": isThing[c], "counted": s.isCounted]
            if s.isCounted { row["PQ"] = 100 * s.pq; row["SQ"] = 100 * s.sq; row["RQ"] = 100 * s.rq }
            return row
        }
        if let outputDirectory { try writeCOCOPanopticJSON(annotations, to: "\(outputDirectory)/\(outputName).json") }
        return out
    }
}

/// detectron2's per-class tables ("Per-category segm AP", SemSegEvaluator's IoU-<class>): `name value` pairs (values
/// in percent, "nan" for a class without ground truth), three to a line, under `title`.
public func perClassLines(title: String, names: [String], values: [Double?]) -> [String] {
    guard !names.isEmpty else { return [] }
    let width = min(max(names.map(\.count).max() ?? 0, 8), 24)
    let cells = zip(names, values).map { name, v in
        String(name.prefix(width)).padding(toLength: width, withPad: " ", startingAt: 0)
            + (v.map { $0.isNaN ? "    nan" : String(format: " %6.2f", $0) } ?? "    nan")
    }
    return [title] + stride(from: 0, to: cells.count, by: 3).map { cells[$0..<min($0 + 3, cells.count)].joined(separator: " | ") }
}
