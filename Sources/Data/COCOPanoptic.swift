// COCO panoptic: panoptic_<split>.json + RGB-encoded segment-id PNGs, categories mapped to contiguous classes.
// Corresponds to detectron2 data/datasets/coco_panoptic.py and panopticapi's rgb2id (spec §4.4).
import Foundation

/// `annotations/panoptic_<split>.json`, segment PNGs in `annotations/panoptic_<split>/`, images in `<split>/`.
///
/// A pixel's segment id is R + 256·G + 256²·B; 0 is void. Categories map to contiguous class indices in
/// the order of the JSON's `categories` array (133 for COCO: 80 things, 53 stuff). Crowd segments and void
/// pixels belong to no target mask (the augmentation pipelines drop them).
public struct COCOPanopticDataset: Sendable {
    public struct Category: Sendable, Equatable {
        public var id: Int, name: String, isThing: Bool
    }
    public struct Record: Sendable {
        public var imageId: Int
        public var imageFile: String
        public var width: Int, height: Int
        public var pngFile: String
        public var segments: [PanopticSegment]
    }

    public let root: String
    public let split: String
    public let jsonPath: String
    public let categories: [Category]
    public let records: [Record]

    public var count: Int { records.count }
    public var numClasses: Int { categories.count }
    /// Contiguous class indices of the thing categories.
    public var thingClasses: Set<Int> { Set(categories.indices.filter { categories[$0].isThing }) }

    private struct File: Decodable {
        struct Image: Decodable { var id: Int; var file_name: String; var width: Int; var height: Int }
        struct Segment: Decodable { var id: Int; var category_id: Int; var iscrowd: Int? }
        struct Annotation: Decodable { var image_id: Int; var file_name: String; var segments_info: [Segment] }
        struct Cat: Decodable { var id: Int; var name: String; var isthing: Int }
        var images: [Image]
        var annotations: [Annotation]
        var categories: [Cat]
    }

    public init(root: String, split: String) throws {
        let json = "\(root)/annotations/panoptic_\(split).json"
        guard let data = FileManager.default.contents(atPath: json) else {
            throw DataError(file: json, problem: "cannot read the file (missing or unreadable)")
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch let e as DecodingError {
            throw DataError(file: json, problem: "malformed panoptic JSON: \(describeDecodingError(e))")
        } catch {
            throw DataError(file: json, problem: "malformed panoptic JSON: \(error)")
        }
        var classOf: [Int: Int] = [:]
        for (i, c) in file.categories.enumerated() {
            if classOf[c.id] != nil { throw DataError(file: json, record: "category \(c.id)", problem: "duplicate category id") }
            classOf[c.id] = i
        }
        var images: [Int: File.Image] = [:]
        for im in file.images { images[im.id] = im }
        var records: [Record] = []
        records.reserveCapacity(file.annotations.count)
        for ann in file.annotations {
            guard let im = images[ann.image_id] else {
                throw DataError(file: json, record: "annotation \(ann.file_name)", problem: "names unknown image id \(ann.image_id)")
            }
            var segs: [PanopticSegment] = []
            var seen = Set<Int>()
            for s in ann.segments_info {
                guard let cls = classOf[s.category_id] else {
                    throw DataError(file: json, record: "segment \(s.id) of image \(im.id)", problem: "unknown category id \(s.category_id)")
                }
                guard s.id > 0 && s.id < 1 << 24 else {
                    throw DataError(file: json, record: "segment \(s.id) of image \(im.id)", problem: "segment id outside 1…2²⁴−1")
                }
                guard seen.insert(s.id).inserted else {
                    throw DataError(file: json, record: "segment \(s.id) of image \(im.id)", problem: "duplicate segment id")
                }
                segs.append(PanopticSegment(id: UInt32(s.id), classIndex: cls, isCrowd: (s.iscrowd ?? 0) != 0))
            }
            records.append(Record(imageId: im.id, imageFile: "\(root)/\(split)/\(im.file_name)", width: im.width, height: im.height,
                                  pngFile: "\(root)/annotations/panoptic_\(split)/\(ann.file_name)", segments: segs))
        }
        records.sort { $0.imageId < $1.imageId }
        self.root = root; self.split = split; jsonPath = json; self.records = records
        categories = file.categories.map { Category(id: $0.id, name: $0.name, isThing: $0.isthing != 0) }
    }

    /// The segment-id map of record `i` (`[height, width]`, 0 = void), checked against its segments:
    /// a non-zero id missing from `segments_info` or a PNG of the wrong size is an error naming the PNG.
    public func idMap(_ i: Int) throws -> [UInt32] {
        let r = records[i]
        let png = try loadImage(path: r.pngFile, mode: .rgb)
        guard png.width == r.width && png.height == r.height else {
            throw DataError(file: r.pngFile, record: "image \(r.imageId)",
                            problem: "segment PNG is \(png.width)×\(png.height) but the image is \(r.width)×\(r.height)")
        }
        let known = Set(r.segments.map(\.id))
        var ids = [UInt32](repeating: 0, count: r.width * r.height)
        png.pixels.withUnsafeBufferPointer { p in
            for j in 0..<ids.count {
                ids[j] = UInt32(p[3 * j]) | UInt32(p[3 * j + 1]) << 8 | UInt32(p[3 * j + 2]) << 16
            }
        }
        var previous: UInt32 = 0
        for id in ids where id != 0 && id != previous {
            if !known.contains(id) {
                throw DataError(file: r.pngFile, record: "image \(r.imageId)", problem: "pixel segment id \(id) is not in segments_info")
            }
            previous = id
        }
        return ids
    }

    /// Record `i` decoded: the RGB image and its panoptic targets.
    public func sample(_ i: Int) throws -> Sample {
        let r = records[i]
        let image = try loadImage(path: r.imageFile, mode: .rgb)
        guard image.width == r.width && image.height == r.height else {
            throw DataError(file: r.imageFile, record: "image \(r.imageId)",
                            problem: "image is \(image.width)×\(image.height) but the JSON says \(r.width)×\(r.height)")
        }
        let targets = PanopticTargets(width: r.width, height: r.height, ids: try idMap(i), segments: r.segments)
        return Sample(imageId: r.imageId, image: image, targets: .panoptic(targets))
    }
}

/// A decoding error as "path: problem" with the JSON key path.
func describeDecodingError(_ error: DecodingError) -> String {
    func path(_ keys: [CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }
    switch error {
    case .typeMismatch(let t, let c): return "\(path(c.codingPath)) must be \(t)"
    case .valueNotFound(let t, let c): return "\(path(c.codingPath)) is missing a \(t)"
    case .keyNotFound(let k, let c): return "\(path(c.codingPath + [k])) is missing"
    case .dataCorrupted(let c): return "\(path(c.codingPath)): \(c.debugDescription) \(c.underlyingError.map { "\($0)" } ?? "")"
    @unknown default: return "\(error)"
    }
}
