// Cityscapes' official evaluation protocols: pixel-level semantic labeling (class IoU over the 19 classes) and
// instance-level semantic labeling (AP over IoU 0.5:0.95 and AP50), their task evaluators (mergeable across ranks,
// writing the official result files), and scoring of result files from any tool as the official scripts find them.
// Corresponds to cityscapesscripts' evaluation/evalPixelLevelSemanticLabeling.py and
// evalInstanceLevelSemanticLabeling.py (docs/evaluation.md#cityscapes lists the rules); panoptic quality
// is panopticapi's, as evalPanopticSemanticLabeling.py computes it, in PanopticQuality.swift.
import Datasets
import Foundation

// MARK: - semantic

/// Class IoU as `evalPixelLevelSemanticLabeling` computes it, from a confusion matrix over the 19 classes plus one
/// column (index 19) for predictions of labels that are not evaluated. Pixels whose ground truth is not evaluated
/// are not in the matrix. A class scores tp / (tp + fp + fn), where fn includes predictions of non-evaluated labels;
/// a class with tp + fp + fn = 0 (absent from both) is left out of the mean; one predicted but absent scores 0.
public struct CityscapesSemanticScores: Sendable, Equatable {
    /// nil: absent from the ground truth and the predictions.
    public var perClassIoU: [Double?]
    /// Mean over the classes with a value; NaN when none has one.
    public var meanIoU: Double

    public init(_ evaluator: SemanticEvaluator) {
        let k = Cityscapes.numClasses, n = evaluator.numClasses
        let c = evaluator.confusion
        perClassIoU = (0..<k).map { cls in
            let tp = Double(c[cls * n + cls])
            let fn = Double((0..<n).reduce(Int64(0)) { $0 + c[cls * n + $1] }) - tp
            let fp = Double((0..<k).reduce(Int64(0)) { $1 == cls ? $0 : $0 + c[$1 * n + cls] })
            let denominator = tp + fp + fn
            return denominator > 0 ? tp / denominator : nil
        }
        let valid = perClassIoU.compactMap { $0 }
        meanIoU = valid.isEmpty ? .nan : valid.reduce(0, +) / Double(valid.count)
    }

    /// An evaluator of the matrix these scores read: 19 classes + the column of non-evaluated predictions.
    public static func makeEvaluator() -> SemanticEvaluator { SemanticEvaluator(numClasses: Cityscapes.numClasses + 1) }

    /// A predicted label id (0…33) as a column of that matrix: its training id, or 19 for labels not evaluated.
    public static func column(ofLabelID id: UInt8) -> UInt8 {
        let t = Cityscapes.trainIdOfLabelID[Int(id)]
        return t == 255 ? UInt8(Cityscapes.numClasses) : t
    }
}

/// Cityscapes semantic segmentation: class mIoU (the official protocol) and `cityscapes_semantic/<city>/<stem>_pred.png`
/// label-id PNGs that `evalPixelLevelSemanticLabeling` reads.
public struct CityscapesSemanticTaskEvaluator: TaskEvaluator {
    public let frames: [CityscapesFrame]
    var evaluator = CityscapesSemanticScores.makeEvaluator()

    public init(frames: [CityscapesFrame]) { self.frames = frames }

    public var metricNames: [String] { ["mIoU"] }

    public mutating func update(_ image: EvaluatedImage, files: inout [PredictionFile]?) throws {
        guard case .semantic(let gt) = image.targets, let sem = image.result.semantic else {
            throw EvaluationError(image.context, "no semantic annotation or prediction")
        }
        try evaluator.update(prediction: sem.labels, groundTruth: gt, context: image.context)
        if files != nil {
            let f = frames[image.index]
            let ids = sem.labels.map { UInt8(Cityscapes.classes[Int($0)].id) }
            files!.append(PredictionFile(path: "cityscapes_semantic/\(f.city)/\(f.stem)_pred.png",
                                         png: try encodePNG(Image8(width: sem.width, height: sem.height, channels: 1, pixels: ids))))
        }
    }

    public func encodedState() throws -> String { try encodeJSONText(evaluator.confusion) }

    public mutating func merge(encodedState: String) throws {
        try evaluator.merge(try SemanticEvaluator(numClasses: evaluator.numClasses, confusion: try decodeJSONText([Int64].self, encodedState)))
    }

    public func report(outputDirectory: String?, skippedImageIDs: Set<Int>) throws -> TaskReport {
        let s = CityscapesSemanticScores(evaluator)
        var out = TaskReport()
        out.scalars = [("mIoU", 100 * s.meanIoU)]
        out.json["per_class_IoU"] = Dictionary(uniqueKeysWithValues: zip(Cityscapes.classes.map(\.name),
                                                                          s.perClassIoU.map { $0.map { 100 * $0 } as Any? ?? NSNull() }))
        out.lines = cityscapesSemanticLines(s)
        return out
    }
}

/// The report lines of semantic scores: mIoU, then each class.
public func cityscapesSemanticLines(_ s: CityscapesSemanticScores) -> [String] {
    var lines = [String(format: "mIoU   %6.2f   (class IoU over %d of %d classes, Cityscapes protocol)", 100 * s.meanIoU,
                        s.perClassIoU.compactMap { $0 }.count, Cityscapes.numClasses)]
    for (c, v) in s.perClassIoU.enumerated() {
        lines.append("  " + Cityscapes.classes[c].name.padding(toLength: 14, withPad: " ", startingAt: 0)
                     + (v.map { String(format: "%6.2f", 100 * $0) } ?? "     -"))
    }
    return lines
}

// MARK: - instance

/// One image's ground-truth instances and predictions with their overlaps, all `evalInstanceLevelSemanticLabeling`
/// needs of the image (its `assignGt2Preds`). Classes index `Cityscapes.thingClasses`.
public struct CityscapesInstanceImage: Codable, Sendable, Equatable {
    public struct GroundTruth: Codable, Sendable, Equatable {
        public var label: Int
        /// The stored id: ≥ 1000 an instance, below a group region (never matched, but its overlap is ignored).
        public var instanceID: Int
        public var pixels: Int
    }
    public struct Prediction: Codable, Sendable, Equatable {
        public var label: Int
        public var pixels: Int
        public var confidence: Double
        /// Pixels on ground truth of a non-evaluated label (void).
        public var voidPixels: Int
        /// `[ground-truth index, intersection]` for every ground truth of the same class it overlaps.
        public var overlaps: [[Int]]
    }
    public var groundTruth: [GroundTruth]
    public var predictions: [Prediction]

    /// Matches `predictions` (label id, confidence, mask: non-zero = in) against an `instanceIds` map. Predictions of
    /// labels that are not instance classes, and empty masks, are left out, as the official script skips them.
    public init(groundTruth map: Gray16Map, predictions: [(labelID: Int, confidence: Double, mask: [UInt8])], context: String) throws {
        var classOfLabel = [Int](repeating: -1, count: Cityscapes.maxLabelID + 1)
        for (c, l) in Cityscapes.thingClasses.enumerated() { classOfLabel[l.id] = c }
        // Ground-truth instances of the instance classes (group regions included), in id order.
        var indexOf: [UInt16: Int32] = [:]
        var gts: [GroundTruth] = []
        var gtIndex = [Int32](repeating: -1, count: map.values.count)
        var void = [Bool](repeating: false, count: map.values.count)
        var lastValue: UInt16 = 0, lastIndex: Int32 = -1, lastVoid = Cityscapes.labels[0].ignoreInEval
        var unseen = true
        for (p, v) in map.values.enumerated() {
            if unseen || v != lastValue {
                unseen = false
                lastValue = v
                let labelID = v >= 1000 ? Int(v) / 1000 : Int(v)
                lastVoid = v < 1000 && (Cityscapes.label(id: labelID)?.ignoreInEval ?? false)
                if labelID <= Cityscapes.maxLabelID, classOfLabel[labelID] >= 0 {
                    if let i = indexOf[v] { lastIndex = i } else {
                        lastIndex = Int32(gts.count); indexOf[v] = lastIndex
                        gts.append(GroundTruth(label: classOfLabel[labelID], instanceID: Int(v), pixels: 0))
                    }
                } else { lastIndex = -1 }
            }
            gtIndex[p] = lastIndex; void[p] = lastVoid
            if lastIndex >= 0 { gts[Int(lastIndex)].pixels += 1 }
        }
        // Id order, as np.unique gives them.
        let order = gts.indices.sorted { gts[$0].instanceID < gts[$1].instanceID }
        var rank = [Int](repeating: 0, count: gts.count)
        for (r, i) in order.enumerated() { rank[i] = r }
        groundTruth = order.map { gts[$0] }

        var preds: [Prediction] = []
        var counts = [Int](repeating: 0, count: gts.count)
        for (n, p) in predictions.enumerated() {
            guard p.mask.count == map.values.count else {
                throw EvaluationError(context, "prediction \(n)'s mask has \(p.mask.count) pixels, the ground truth \(map.values.count)")
            }
            guard p.labelID >= 0, p.labelID <= Cityscapes.maxLabelID, classOfLabel[p.labelID] >= 0 else { continue }
            let cls = classOfLabel[p.labelID]
            var pixels = 0, voidPixels = 0
            for j in 0..<counts.count { counts[j] = 0 }
            for q in 0..<p.mask.count where p.mask[q] != 0 {
                pixels += 1
                if void[q] { voidPixels += 1 }
                let g = gtIndex[q]
                if g >= 0 && gts[Int(g)].label == cls { counts[Int(g)] += 1 }
            }
            guard pixels > 0 else { continue }
            let overlaps = order.compactMap { i in counts[i] > 0 ? [rank[i], counts[i]] : nil }
            preds.append(Prediction(label: cls, pixels: pixels, confidence: p.confidence, voidPixels: voidPixels, overlaps: overlaps))
        }
        self.predictions = preds
    }
}

/// AP and AP50 as `evalInstanceLevelSemanticLabeling` computes them (fractions; NaN where undefined).
public struct CityscapesInstanceAP: Sendable, Equatable {
    /// Mean over the classes with ground truth of each class's mean AP over IoU 0.50, 0.55, …, 0.95.
    public var ap: Double
    public var ap50: Double
    /// Per class (index into `Cityscapes.thingClasses`): NaN for a class without ground truth.
    public var perClassAP: [Double]
    public var perClassAP50: [Double]

    /// The official IoU thresholds, `np.arange(0.5, 1.0, 0.05)`.
    public static let overlaps: [Double] = (0..<10).map { 0.5 + Double($0) * 0.05 }
    /// Ground-truth instances smaller than this are not counted (only the first of the script's `[100, 1000, 1000]`
    /// applies without depth data); predictions matching them are ignored.
    public static let minRegionSize = 100

    public init(_ images: [CityscapesInstanceImage]) {
        let classes = Cityscapes.thingClasses.count
        var table = [[Double]](repeating: [Double](repeating: .nan, count: CityscapesInstanceAP.overlaps.count), count: classes)
        for (o, threshold) in CityscapesInstanceAP.overlaps.enumerated() {
            for c in 0..<classes { table[c][o] = CityscapesInstanceAP.averagePrecision(images, label: c, threshold: threshold) }
        }
        perClassAP = table.map { $0.reduce(0, +) / Double($0.count) }
        perClassAP50 = table.map { $0[0] }
        func nanMean(_ v: [Double]) -> Double {
            let valid = v.filter { !$0.isNaN }
            return valid.isEmpty ? .nan : valid.reduce(0, +) / Double(valid.count)
        }
        ap = nanMean(table.flatMap { $0 })
        ap50 = nanMean(perClassAP50)
    }

    /// The script's `evaluateMatches` for one class and one IoU threshold.
    public static func averagePrecision(_ images: [CityscapesInstanceImage], label: Int, threshold: Double) -> Double {
        var examples: [(score: Double, isTrue: Bool)] = []
        var hardFalseNegatives = 0
        var haveGroundTruth = false, havePredictions = false
        func iou(_ intersection: Int, _ a: Int, _ b: Int) -> Double { Double(intersection) / Double(a + b - intersection) }
        for image in images {
            let gts = image.groundTruth
            let preds = image.predictions.filter { $0.label == label }
            if !preds.isEmpty { havePredictions = true }
            // Predictions matched to each ground truth, in prediction order.
            var matchedPredictions = [[(prediction: Int, intersection: Int)]](repeating: [], count: gts.count)
            for (k, p) in preds.enumerated() {
                for pair in p.overlaps { matchedPredictions[pair[0]].append((k, pair[1])) }
            }
            for (g, gt) in gts.enumerated() where gt.label == label && gt.instanceID >= 1000 && gt.pixels >= minRegionSize {
                haveGroundTruth = true
                var score = -Double.infinity, matched = false
                for m in matchedPredictions[g] where iou(m.intersection, gt.pixels, preds[m.prediction].pixels) > threshold {
                    let confidence = preds[m.prediction].confidence
                    if matched {
                        // A second match: the lower score becomes a false positive.
                        examples.append((min(score, confidence), false))
                        score = max(score, confidence)
                    } else {
                        matched = true; score = confidence
                    }
                }
                if matched { examples.append((score, true)) } else { hardFalseNegatives += 1 }
            }
            for p in preds {
                let foundGroundTruth = p.overlaps.contains { iou($0[1], gts[$0[0]].pixels, p.pixels) > threshold }
                if foundGroundTruth { continue }
                var ignored = p.voidPixels
                for pair in p.overlaps {
                    let gt = gts[pair[0]]
                    if gt.instanceID < 1000 { ignored += pair[1] }
                    if gt.pixels < minRegionSize { ignored += pair[1] }
                }
                if Double(ignored) / Double(p.pixels) <= threshold { examples.append((p.confidence, false)) }
            }
        }
        guard haveGroundTruth else { return .nan }
        guard havePredictions, !examples.isEmpty else { return 0 }
        // Precision and recall at every distinct score, lowest first, then the artificial point (1, 0); step-wise
        // integration with the script's widths ½·(r[i−1] − r[i+1]).
        let sorted = examples.sorted { $0.score < $1.score }
        var cumulative = [Int](repeating: 0, count: sorted.count)
        var running = 0
        for (i, e) in sorted.enumerated() { running += e.isTrue ? 1 : 0; cumulative[i] = running }
        let trueCount = running, total = sorted.count
        var precision: [Double] = [], recall: [Double] = []
        for i in 0..<total where i == 0 || sorted[i].score != sorted[i - 1].score {
            let below = i == 0 ? 0 : cumulative[i - 1]
            let tp = trueCount - below, fp = total - i - tp, fn = below + hardFalseNegatives
            precision.append(Double(tp) / Double(tp + fp))
            recall.append(Double(tp) / Double(tp + fn))
        }
        precision.append(1); recall.append(0)
        var ap = 0.0
        for i in 0..<precision.count {
            let before = i == 0 ? recall[0] : recall[i - 1]
            let after = i + 1 < recall.count ? recall[i + 1] : 0
            ap += precision[i] * 0.5 * (before - after)
        }
        return ap
    }

    /// The report lines: AP, AP50, then each class.
    public var lines: [String] {
        var out = [String(format: "AP     %6.2f\nAP50   %6.2f", 100 * ap, 100 * ap50)]
        out.append("  " + "class".padding(toLength: 12, withPad: " ", startingAt: 0) + "     AP   AP50")
        for (c, l) in Cityscapes.thingClasses.enumerated() {
            out.append("  " + l.name.padding(toLength: 12, withPad: " ", startingAt: 0)
                       + (perClassAP[c].isNaN ? "      -      -" : String(format: " %6.2f %6.2f", 100 * perClassAP[c], 100 * perClassAP50[c])))
        }
        return out
    }
}

/// Cityscapes instance segmentation: AP and AP50 (the official protocol) and, per image,
/// `cityscapes_instance/<city>/<stem>_pred.txt` listing `masks/mask_<stem>_<j>.png <labelId> <confidence>`, the
/// format `evalInstanceLevelSemanticLabeling` reads (mask names do not start with the frame name, so the script's
/// search for `<stem>*` finds only the list).
public struct CityscapesInstanceTaskEvaluator: TaskEvaluator {
    public let dataset: CityscapesDataset
    var images: [CityscapesInstanceImage] = []

    public init(dataset: CityscapesDataset) { self.dataset = dataset }

    public var metricNames: [String] { ["AP", "AP50"] }

    public mutating func update(_ image: EvaluatedImage, files: inout [PredictionFile]?) throws {
        let map = try dataset.instanceIds(image.index)
        let instances = image.result.instances ?? []
        let predictions = instances.map { (labelID: Cityscapes.thingClasses[$0.label].id, confidence: Double($0.score), mask: $0.mask) }
        images.append(try CityscapesInstanceImage(groundTruth: map, predictions: predictions, context: image.context))
        if files != nil {
            let f = dataset.frames[image.index]
            var list = ""
            for (j, inst) in instances.enumerated() {
                let name = "masks/mask_\(f.stem)_\(j).png"
                files!.append(PredictionFile(path: "cityscapes_instance/\(f.city)/\(name)",
                                             png: try encodePNG(Image8(width: inst.width, height: inst.height, channels: 1,
                                                                       pixels: inst.mask.map { $0 != 0 ? 255 : 0 }))))
                list += "\(name) \(Cityscapes.thingClasses[inst.label].id) \(String(format: "%.6f", inst.score))\n"
            }
            files!.append(PredictionFile(path: "cityscapes_instance/\(f.city)/\(f.stem)_pred.txt", png: Array(list.utf8)))
        }
    }

    public func encodedState() throws -> String { try encodeJSONText(images) }

    public mutating func merge(encodedState: String) throws {
        images += try decodeJSONText([CityscapesInstanceImage].self, encodedState)
    }

    public func report(outputDirectory: String?, skippedImageIDs: Set<Int>) throws -> TaskReport {
        let r = CityscapesInstanceAP(images)
        var out = TaskReport()
        out.scalars = [("AP", 100 * r.ap), ("AP50", 100 * r.ap50)]
        out.json["per_class"] = Dictionary(uniqueKeysWithValues: Cityscapes.thingClasses.enumerated().map { c, l in
            (l.name, ["AP": r.perClassAP[c].isNaN ? "nan" as Any : 100 * r.perClassAP[c],
                      "AP50": r.perClassAP50[c].isNaN ? "nan" as Any : 100 * r.perClassAP50[c]] as [String: Any])
        })
        out.lines = ["Cityscapes instance AP: \(images.count) images, \(images.reduce(0) { $0 + $1.predictions.count }) predictions"] + r.lines
        return out
    }
}

// MARK: - result files from any tool

/// The official scripts' search: every file under `folder` (recursively) whose name starts with the frame's
/// `<city>_<seq>_<frame>` and ends with `suffix`; none or more than one for a frame is an error.
public func findCityscapesResultFiles(in folder: String, stems: [String], suffix: String) throws -> [String] {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
        throw EvaluationError(folder, "no such folder")
    }
    // A symlinked results folder is followed, as os.walk follows its starting folder.
    let folder = URL(fileURLWithPath: folder).resolvingSymlinksInPath().path
    var byStem: [String: [String]] = [:]
    let wanted = Set(stems)
    let walker = FileManager.default.enumerator(atPath: folder)
    while let relative = walker?.nextObject() as? String {
        let name = (relative as NSString).lastPathComponent
        guard name.hasSuffix(suffix), let stem = Cityscapes.stem(ofFileName: name), wanted.contains(stem) else { continue }
        // fnmatch("<stem>*"): the name must start with the stem itself (a longer frame number is another frame).
        guard name.hasPrefix(stem) else { continue }
        // os.walk's filenames: a folder named like a prediction is not one.
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: "\(folder)/\(relative)", isDirectory: &isFolder), isFolder.boolValue { continue }
        byStem[stem, default: []].append("\(folder)/\(relative)")
    }
    return try stems.map { stem in
        let found = byStem[stem] ?? []
        guard found.count == 1 else {
            throw EvaluationError(folder, found.isEmpty ? "no \(stem)*\(suffix) prediction for frame \(stem)"
                                  : "\(found.count) predictions for frame \(stem): \(found.sorted().joined(separator: ", "))")
        }
        return found[0]
    }
}

/// Scores label-id PNGs (`<stem>*.png` anywhere under `results`) against `labelIds` as `evalPixelLevelSemanticLabeling`
/// does. A value that is no label id (0…33) or a PNG of another size is an error naming the file.
public func scoreCityscapesSemanticResults(_ ds: CityscapesDataset, results: String) throws -> CityscapesSemanticScores {
    let files = try findCityscapesResultFiles(in: results, stems: ds.frames.map(\.stem), suffix: ".png")
    var ev = CityscapesSemanticScores.makeEvaluator()
    for i in 0..<ds.count {
        let gt = try ds.labelIds(i)
        let pred = try loadImage(path: files[i], mode: .indices)
        guard pred.width == gt.width && pred.height == gt.height else {
            throw EvaluationError(files[i], "prediction is \(pred.width)×\(pred.height) but \(ds.frames[i].labelIds) is \(gt.width)×\(gt.height)")
        }
        if let j = pred.pixels.firstIndex(where: { Int($0) > Cityscapes.maxLabelID }) {
            throw EvaluationError(files[i], "value \(pred.pixels[j]) at pixel \(j % pred.width),\(j / pred.width) is not a label id (0…\(Cityscapes.maxLabelID))")
        }
        let lut = Cityscapes.trainIdOfLabelID
        try ev.update(prediction: pred.pixels.map { CityscapesSemanticScores.column(ofLabelID: $0) },
                      groundTruth: gt.labels.map { lut[Int($0)] }, context: files[i])
    }
    return CityscapesSemanticScores(ev)
}

/// One line of an instance prediction list: `relative/mask.png <labelId> <confidence>`.
public struct CityscapesInstanceListEntry: Sendable, Equatable {
    public var mask: String
    public var labelID: Int
    public var confidence: Double
}

/// Reads an instance prediction list as the official script does: lines (ended by LF, CRLF or CR, as Python's text
/// mode reads them) of exactly three fields separated by single spaces, the mask path relative to the list's folder
/// (absolute paths refused, and with `root` a path outside it, by string prefix as the script compares); a mask listed
/// twice keeps its last line's values at its first line's place.
public func readCityscapesInstanceList(_ path: String, root: String? = nil) throws -> [CityscapesInstanceListEntry] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw EvaluationError(path, "cannot read the file (missing or unreadable)")
    }
    let text = String(decoding: data, as: UTF8.self)
    var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
    if lines.last == "" { lines.removeLast() }
    let folder = (path as NSString).deletingLastPathComponent
    var out: [CityscapesInstanceListEntry] = []
    var position: [String: Int] = [:]
    for (n, line) in lines.enumerated() {
        let fields = line.components(separatedBy: " ")
        let at = "\(path): line \(n + 1)"
        guard fields.count == 3 else {
            throw EvaluationError(at, "expected 'relative/mask.png <labelId> <confidence>' (three fields separated by single spaces), got '\(line)'")
        }
        guard !fields[0].hasPrefix("/") else { throw EvaluationError(at, "the mask path must be relative to the list's folder, got \(fields[0])") }
        let number = fields[2].trimmingCharacters(in: .whitespacesAndNewlines)
        // Decimal as Python's float() reads it (Swift's Double also reads hexadecimal: 0x1A).
        func decimal(_ text: String) -> Double? { text.lowercased().contains("x") ? nil : Double(text) }
        guard let label = decimal(fields[1]), label.isFinite, let confidence = decimal(number), confidence.isFinite else {
            throw EvaluationError(at, "label id '\(fields[1])' or confidence '\(fields[2])' is not a number")
        }
        guard label.magnitude < 1e9 else { throw EvaluationError(at, "label id '\(fields[1])' is not a Cityscapes label id") }
        let mask = ((folder as NSString).appendingPathComponent(fields[0]) as NSString).standardizingPath
        if let root, !mask.hasPrefix(root) {
            throw EvaluationError(at, "the mask \(mask) lies outside the results folder \(root)")
        }
        let entry = CityscapesInstanceListEntry(mask: mask, labelID: Int(label.rounded(.towardZero)), confidence: confidence)
        if let k = position[mask] { out[k] = entry } else { position[mask] = out.count; out.append(entry) }
    }
    return out
}

/// Scores instance prediction lists (`<stem>*.txt` anywhere under `results`) against `instanceIds` as
/// `evalInstanceLevelSemanticLabeling` does; masks are read as PIL's `convert("L")`, non-zero = in.
public func scoreCityscapesInstanceResults(_ ds: CityscapesDataset, results: String) throws -> (ap: CityscapesInstanceAP, images: [CityscapesInstanceImage]) {
    let lists = try findCityscapesResultFiles(in: results, stems: ds.frames.map(\.stem), suffix: ".txt")
    let root = URL(fileURLWithPath: results).resolvingSymlinksInPath().standardizedFileURL.path
    var images: [CityscapesInstanceImage] = []
    for i in 0..<ds.count {
        let gt = try ds.instanceIds(i)
        var predictions: [(labelID: Int, confidence: Double, mask: [UInt8])] = []
        for entry in try readCityscapesInstanceList(lists[i], root: root) {
            guard entry.labelID >= 0, entry.labelID <= Cityscapes.maxLabelID, Cityscapes.thingClasses.contains(where: { $0.id == entry.labelID }) else {
                continue   // not an instance class: skipped, as the script does
            }
            let mask: Image8
            do { mask = try loadImage(path: entry.mask, mode: .gray) } catch {
                throw EvaluationError(entry.mask, "cannot read the mask listed in \(lists[i]): \(error)")
            }
            guard mask.width == gt.width && mask.height == gt.height else {
                throw EvaluationError(entry.mask, "mask is \(mask.width)×\(mask.height) but \(ds.frames[i].instanceIds) is \(gt.width)×\(gt.height)")
            }
            predictions.append((entry.labelID, entry.confidence, mask.pixels))
        }
        images.append(try CityscapesInstanceImage(groundTruth: gt, predictions: predictions, context: lists[i]))
    }
    return (CityscapesInstanceAP(images), images)
}
