// Results files: COCO instance-segmentation results JSON (loadRes format) and COCO panoptic predictions
// (RGB segment-id PNGs + JSON), written and read back so predictions can be re-scored by MaskPilot or the
// official tools.
// Reference: pycocotools COCO.loadRes (a JSON array of {image_id, category_id, score, segmentation: RLE}) and
// panopticapi's prediction format (pq_compute(gt_json, pred_json, gt_folder, pred_folder): pred_json
// "annotations" [{image_id, file_name, segments_info: [{id, category_id}]}], PNG id = R + 256·G + 256²·B).
import Datasets
import Foundation

// MARK: instance results

private struct InstanceResultEntry: Codable {
    struct Segmentation: Codable {
        var size: [Int]
        var counts: Counts
    }
    /// `counts` as COCO's compressed string, or (read only) as an uncompressed array of run lengths.
    enum Counts: Codable {
        case compressed(String), runs([UInt32])
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .compressed(s) } else { self = .runs(try c.decode([UInt32].self)) }
        }
        func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .compressed(let s): try c.encode(s)
            case .runs(let r): try c.encode(r)
            }
        }
    }
    var image_id: Int
    var category_id: Int
    var score: Double
    var segmentation: Segmentation
}

/// Writes `detections` as a COCO results JSON (`COCO.loadRes` format): an array of
/// `{"image_id", "category_id", "score", "segmentation": {"size": [h, w], "counts": compressed RLE string}}`.
public func writeCOCOInstanceResults(_ detections: [COCOMaskAPDetection], to path: String) throws {
    let entries = detections.map {
        InstanceResultEntry(image_id: $0.imageID, category_id: $0.categoryID, score: $0.score,
                            segmentation: .init(size: [$0.rle.height, $0.rle.width], counts: .compressed($0.rle.compressedCounts)))
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    do {
        let data = try encoder.encode(entries)
        try data.write(to: URL(fileURLWithPath: path))
    } catch {
        throw EvaluationError(path, "cannot write the results JSON: \(error.localizedDescription)")
    }
}

/// Reads a COCO instance results JSON (see `writeCOCOInstanceResults`; `counts` may also be an uncompressed
/// array). A malformed entry or a mask whose counts do not cover `size` is an error naming the file and entry.
public func readCOCOInstanceResults(path: String) throws -> [COCOMaskAPDetection] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw EvaluationError(path, "cannot read the file (missing or unreadable)")
    }
    let entries: [InstanceResultEntry]
    do { entries = try JSONDecoder().decode([InstanceResultEntry].self, from: data) } catch {
        throw EvaluationError(path, "not a COCO results JSON (array of {image_id, category_id, score, segmentation: {size, counts}}): \(error)")
    }
    var out: [COCOMaskAPDetection] = []
    out.reserveCapacity(entries.count)
    for (n, e) in entries.enumerated() {
        let context = "\(path): result \(n) (image \(e.image_id))"
        guard e.segmentation.size.count == 2, e.segmentation.size[0] >= 0, e.segmentation.size[1] >= 0 else {
            throw EvaluationError(context, "segmentation.size must be [height, width], got \(e.segmentation.size)")
        }
        let h = e.segmentation.size[0], w = e.segmentation.size[1]
        let rle: COCORLE
        do {
            switch e.segmentation.counts {
            case .compressed(let s): rle = try COCORLE(compressedCounts: s, height: h, width: w)
            case .runs(let r): rle = COCORLE(height: h, width: w, counts: r)
            }
            try rle.validate()
        } catch {
            throw EvaluationError(context, "bad RLE: \(error)")
        }
        guard e.score.isFinite else { throw EvaluationError(context, "score is not finite") }
        out.append(COCOMaskAPDetection(imageID: e.image_id, categoryID: e.category_id, score: e.score, rle: rle))
    }
    return out
}

// MARK: panoptic predictions

/// A panoptic JSON's `image_id`: a number in COCO, the frame name `<city>_<seq>_<frame>` in Cityscapes.
public enum PanopticImageID: Codable, Sendable, Hashable, Comparable, CustomStringConvertible, ExpressibleByIntegerLiteral,
                             ExpressibleByStringLiteral {
    case number(Int), name(String)
    public init(integerLiteral value: Int) { self = .number(value) }
    public init(stringLiteral value: String) { self = .name(value) }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(Int.self) { self = .number(n) } else { self = .name(try c.decode(String.self)) }
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .number(let n): try c.encode(n)
        case .name(let s): try c.encode(s)
        }
    }
    public var description: String {
        switch self {
        case .number(let n): "\(n)"
        case .name(let s): s
        }
    }
    /// Numbers before names; numbers by value, names by text.
    public static func < (a: PanopticImageID, b: PanopticImageID) -> Bool {
        switch (a, b) {
        case (.number(let x), .number(let y)): x < y
        case (.name(let x), .name(let y)): x < y
        case (.number, .name): true
        case (.name, .number): false
        }
    }
}

/// One image's entry of a COCO panoptic prediction JSON (panopticapi's `annotations` item).
public struct COCOPanopticAnnotation: Codable, Sendable, Equatable {
    public struct Segment: Codable, Sendable, Equatable {
        public var id: Int
        public var category_id: Int
        public var area: Int?
        public init(id: Int, category_id: Int, area: Int?) { self.id = id; self.category_id = category_id; self.area = area }
    }
    public var image_id: PanopticImageID
    public var file_name: String
    public var segments_info: [Segment]
    public init(image_id: PanopticImageID, file_name: String, segments_info: [Segment]) {
        self.image_id = image_id; self.file_name = file_name; self.segments_info = segments_info
    }
}

private struct PanopticPredictionFile: Codable {
    var annotations: [COCOPanopticAnnotation]
}

/// The default PNG name of an image's panoptic prediction: the COCO image file stem (`%012d.png`), or for a named
/// image (Cityscapes) `<name>_panoptic.png`.
public func panopticPNGName(imageID: PanopticImageID) -> String {
    switch imageID {
    case .number(let n): String(format: "%012d.png", n)
    case .name(let s): "\(s)_panoptic.png"
    }
}

/// Writes panoptic predictions in the COCO panoptic format: `directory/<name>.json` with
/// `{"annotations": [{"image_id", "file_name", "segments_info": [{"id", "category_id", "area"}]}]}` and one RGB
/// segment-id PNG per image in `directory/<name>/` (id = R + 256·G + 256²·B, 0 = void) — panopticapi's
/// `pred_json_file` / `pred_folder`. `categoryIDs[c]` is the COCO category id of class index c.
/// `fileNames` overrides the PNG name of an image (default `cocoPanopticPNGName`). Returns the JSON path.
@discardableResult
public func writeCOCOPanopticPredictions(_ predictions: [PanopticImageID: PanopticPrediction], categoryIDs: [Int], directory: String,
                                         name: String = "panoptic_predictions", fileNames: [PanopticImageID: String] = [:]) throws -> String {
    let folder = "\(directory)/\(name)", json = "\(directory)/\(name).json"
    var annotations: [COCOPanopticAnnotation] = []
    for imageID in predictions.keys.sorted() {
        annotations.append(try writeCOCOPanopticPNG(predictions[imageID]!, imageID: imageID, categoryIDs: categoryIDs, folder: folder,
                                                    fileName: fileNames[imageID] ?? panopticPNGName(imageID: imageID)))
    }
    try writeCOCOPanopticJSON(annotations, to: json)
    return json
}

/// Writes one image's segment-id PNG as `folder/fileName` (creating `folder`) and returns its JSON entry.
public func writeCOCOPanopticPNG(_ p: PanopticPrediction, imageID: PanopticImageID, categoryIDs: [Int], folder: String,
                                 fileName: String) throws -> COCOPanopticAnnotation {
    let encoded = try encodeCOCOPanopticPNG(p, imageID: imageID, categoryIDs: categoryIDs, fileName: fileName)
    try writeFile(encoded.png, to: "\(folder)/\(fileName)")
    return encoded.annotation
}

/// One image's panoptic prediction as the bytes of its RGB segment-id PNG and its JSON entry (areas counted from
/// the id map), so that ranks can encode their images and rank 0 write every file.
public func encodeCOCOPanopticPNG(_ p: PanopticPrediction, imageID: PanopticImageID, categoryIDs: [Int],
                                  fileName: String) throws -> (png: [UInt8], annotation: COCOPanopticAnnotation) {
    var area: [UInt32: Int] = [:]
    var pixels = [UInt8](repeating: 0, count: p.ids.count * 3)
    for (j, id) in p.ids.enumerated() {
        guard id < 1 << 24 else { throw EvaluationError("image \(imageID)", "segment id \(id) does not fit in an RGB PNG (≥ 2²⁴)") }
        if id != 0 { area[id, default: 0] += 1 }
        pixels[3 * j] = UInt8(id & 0xff); pixels[3 * j + 1] = UInt8((id >> 8) & 0xff); pixels[3 * j + 2] = UInt8(id >> 16)
    }
    var segments: [COCOPanopticAnnotation.Segment] = []
    for s in p.segments {
        guard s.classIndex >= 0 && s.classIndex < categoryIDs.count else {
            throw EvaluationError("image \(imageID)", "segment \(s.id) has class \(s.classIndex) outside 0..<\(categoryIDs.count)")
        }
        segments.append(.init(id: Int(s.id), category_id: categoryIDs[s.classIndex], area: area[s.id] ?? 0))
    }
    let png = try encodePNG(Image8(width: p.width, height: p.height, channels: 3, pixels: pixels))
    return (png, COCOPanopticAnnotation(image_id: imageID, file_name: fileName, segments_info: segments))
}

/// One image's semantic prediction (class indices `[h·w]`, row-major) as an 8-bit gray PNG holding class + `offset`:
/// 1 is the ADE20K annotation encoding (0 = unlabeled), which `maskpilot eval-results --task semantic` reads back;
/// a `sem-seg` dataset without reduce-zero-label stores the class itself (offset 0).
public func encodeSemanticLabelPNG(_ labels: [Int32], width: Int, height: Int, offset: Int = 1) throws -> [UInt8] {
    try encodePNG(Image8(width: width, height: height, channels: 1, pixels: labels.map { UInt8(clamping: Int($0) + offset) }))
}

/// Writes `bytes` to `path`, creating its folder; errors name the path.
public func writeFile(_ bytes: [UInt8], to path: String) throws {
    let folder = (path as NSString).deletingLastPathComponent
    do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
        throw EvaluationError(folder, "cannot create folder: \(error.localizedDescription)")
    }
    do { try Data(bytes).write(to: URL(fileURLWithPath: path)) } catch {
        throw EvaluationError(path, "cannot write the file: \(error.localizedDescription)")
    }
}

/// Writes the prediction JSON `{"annotations": […]}` (entries sorted by image id) to `path`.
public func writeCOCOPanopticJSON(_ annotations: [COCOPanopticAnnotation], to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let sorted = annotations.sorted { $0.image_id < $1.image_id }
    do { try encoder.encode(PanopticPredictionFile(annotations: sorted)).write(to: URL(fileURLWithPath: path)) } catch {
        throw EvaluationError(path, "cannot write the JSON: \(error.localizedDescription)")
    }
}

/// Finds the prediction JSON in a results folder: the only `.json` file in `directory`. Its PNG folder is the
/// JSON path without `.json` (panopticapi's default `pred_folder`).
public func findCOCOPanopticPredictionJSON(in directory: String) throws -> String {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
        throw EvaluationError(directory, "no such folder")
    }
    let jsons = names.filter { $0.lowercased().hasSuffix(".json") }.sorted()
    guard jsons.count == 1 else {
        throw EvaluationError(directory, jsons.isEmpty ? "no .json prediction file"
                              : "\(jsons.count) .json files (\(jsons.joined(separator: ", "))); expected exactly one")
    }
    return "\(directory)/\(jsons[0])"
}

/// Reads panoptic predictions written in the COCO panoptic format, keyed by image id. `folder` defaults to the
/// JSON path without `.json`. `categoryIDs[c]` is the COCO id of class index c; an unknown category id, a
/// missing or unreadable PNG, or a duplicate image is an error naming the file.
public func readCOCOPanopticPredictions(json: String, folder: String? = nil, categoryIDs: [Int]) throws -> [PanopticImageID: PanopticPrediction] {
    let folder = folder ?? (json.lowercased().hasSuffix(".json") ? String(json.dropLast(5)) : json)
    guard let data = FileManager.default.contents(atPath: json) else {
        throw EvaluationError(json, "cannot read the file (missing or unreadable)")
    }
    let file: PanopticPredictionFile
    do { file = try JSONDecoder().decode(PanopticPredictionFile.self, from: data) } catch {
        throw EvaluationError(json, "not a COCO panoptic prediction JSON ({annotations: [{image_id, file_name, segments_info}]}): \(error)")
    }
    var classOf: [Int: Int] = [:]
    for (c, id) in categoryIDs.enumerated() { classOf[id] = c }
    var out: [PanopticImageID: PanopticPrediction] = [:]
    for a in file.annotations {
        guard out[a.image_id] == nil else { throw EvaluationError(json, "image \(a.image_id) has two annotations") }
        var segments: [PanopticPrediction.Segment] = []
        for s in a.segments_info {
            guard let c = classOf[s.category_id] else {
                throw EvaluationError(json, "image \(a.image_id): segment \(s.id) has unknown category id \(s.category_id)")
            }
            guard s.id > 0 && s.id < 1 << 24 else {
                throw EvaluationError(json, "image \(a.image_id): segment id \(s.id) outside 1…2²⁴−1")
            }
            segments.append(.init(id: UInt32(s.id), classIndex: c))
        }
        let png = "\(folder)/\(a.file_name)"
        let image: Image8
        do { image = try loadImage(path: png, mode: .rgb) } catch {
            throw EvaluationError(png, "cannot read the prediction PNG of image \(a.image_id): \(error)")
        }
        var ids = [UInt32](repeating: 0, count: image.width * image.height)
        for j in 0..<ids.count {
            ids[j] = UInt32(image.pixels[3 * j]) | UInt32(image.pixels[3 * j + 1]) << 8 | UInt32(image.pixels[3 * j + 2]) << 16
        }
        out[a.image_id] = PanopticPrediction(width: image.width, height: image.height, ids: ids, segments: segments)
    }
    return out
}
