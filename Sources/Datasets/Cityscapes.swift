// Cityscapes (gtFine): the official folder layout, the label table and the three readings of it — semantic
// (labelIds → the 19 training ids), instances (instanceIds: class·1000 + index) and panoptic (createPanopticImgs'
// JSON + PNGs). Corresponds to cityscapesscripts' helpers/labels.py and preparation/createPanopticImgs.py, and
// detectron2's data/datasets/cityscapes.py (load_cityscapes_instances from the instanceIds PNGs) and
// cityscapes_panoptic.py (docs/data.md#cityscapes).
import Foundation

/// One row of cityscapesscripts' label table.
public struct CityscapesLabel: Sendable, Equatable {
    public var name: String
    /// The value stored in `*_gtFine_labelIds.png` (−1: license plate, never stored).
    public var id: Int
    /// The training class 0…18, or 255 for labels that are not trained on.
    public var trainId: Int
    public var category: String
    /// Whether objects of this label carry instance ids (class·1000 + index).
    public var hasInstances: Bool
    /// Whether the official evaluations leave this label out (void).
    public var ignoreInEval: Bool
    /// The colour of `*_gtFine_color.png`.
    public var color: [UInt8]
}

/// The Cityscapes label space (cityscapesscripts' `labels.py`).
public enum Cityscapes {
    /// Every label, in the table's order (label id order, then license plate).
    public static let labels: [CityscapesLabel] = {
        let rows: [(String, Int, Int, String, Bool, Bool, [UInt8])] = [
            ("unlabeled", 0, 255, "void", false, true, [0, 0, 0]), ("ego vehicle", 1, 255, "void", false, true, [0, 0, 0]),
            ("rectification border", 2, 255, "void", false, true, [0, 0, 0]), ("out of roi", 3, 255, "void", false, true, [0, 0, 0]),
            ("static", 4, 255, "void", false, true, [0, 0, 0]), ("dynamic", 5, 255, "void", false, true, [111, 74, 0]),
            ("ground", 6, 255, "void", false, true, [81, 0, 81]), ("road", 7, 0, "flat", false, false, [128, 64, 128]),
            ("sidewalk", 8, 1, "flat", false, false, [244, 35, 232]), ("parking", 9, 255, "flat", false, true, [250, 170, 160]),
            ("rail track", 10, 255, "flat", false, true, [230, 150, 140]), ("building", 11, 2, "construction", false, false, [70, 70, 70]),
            ("wall", 12, 3, "construction", false, false, [102, 102, 156]), ("fence", 13, 4, "construction", false, false, [190, 153, 153]),
            ("guard rail", 14, 255, "construction", false, true, [180, 165, 180]),
            ("bridge", 15, 255, "construction", false, true, [150, 100, 100]),
            ("tunnel", 16, 255, "construction", false, true, [150, 120, 90]), ("pole", 17, 5, "object", false, false, [153, 153, 153]),
            ("polegroup", 18, 255, "object", false, true, [153, 153, 153]),
            ("traffic light", 19, 6, "object", false, false, [250, 170, 30]),
            ("traffic sign", 20, 7, "object", false, false, [220, 220, 0]), ("vegetation", 21, 8, "nature", false, false, [107, 142, 35]),
            ("terrain", 22, 9, "nature", false, false, [152, 251, 152]), ("sky", 23, 10, "sky", false, false, [70, 130, 180]),
            ("person", 24, 11, "human", true, false, [220, 20, 60]), ("rider", 25, 12, "human", true, false, [255, 0, 0]),
            ("car", 26, 13, "vehicle", true, false, [0, 0, 142]), ("truck", 27, 14, "vehicle", true, false, [0, 0, 70]),
            ("bus", 28, 15, "vehicle", true, false, [0, 60, 100]), ("caravan", 29, 255, "vehicle", true, true, [0, 0, 90]),
            ("trailer", 30, 255, "vehicle", true, true, [0, 0, 110]), ("train", 31, 16, "vehicle", true, false, [0, 80, 100]),
            ("motorcycle", 32, 17, "vehicle", true, false, [0, 0, 230]), ("bicycle", 33, 18, "vehicle", true, false, [119, 11, 32]),
            ("license plate", -1, -1, "vehicle", false, true, [0, 0, 142]),
        ]
        return rows.map { CityscapesLabel(name: $0.0, id: $0.1, trainId: $0.2, category: $0.3, hasInstances: $0.4, ignoreInEval: $0.5,
                                          color: $0.6) }
    }()

    /// The largest label id stored in the PNGs.
    public static let maxLabelID = 33

    /// The label of a stored id (0…33), nil otherwise.
    public static func label(id: Int) -> CityscapesLabel? {
        id >= 0 && id <= maxLabelID ? labels[id] : nil
    }

    /// The 19 evaluated classes, in training-id order (semantic and panoptic class indices).
    public static let classes: [CityscapesLabel] = labels.filter { !$0.ignoreInEval }.sorted { $0.trainId < $1.trainId }
    public static var numClasses: Int { classes.count }

    /// The 8 instance classes (`hasInstances` and evaluated), in label-id order: the instance task's class indices,
    /// as detectron2 maps them to contiguous ids.
    public static let thingClasses: [CityscapesLabel] = labels.filter { $0.hasInstances && !$0.ignoreInEval }

    /// Training id of every byte value (255 for labels not trained on and for values that are no label id).
    public static let trainIdOfLabelID: [UInt8] = {
        var lut = [UInt8](repeating: 255, count: 256)
        for l in labels where l.id >= 0 && l.trainId != 255 { lut[l.id] = UInt8(l.trainId) }
        return lut
    }()

    /// The frame stem of a Cityscapes file name: `<city>_<sequence>_<frame>` (the first three `_`-separated
    /// fields, as cityscapesscripts' `getCsFileInfo` reads them), nil when the name has fewer fields.
    public static func stem(ofFileName name: String) -> String? {
        let parts = name.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count >= 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else { return nil }
        let third = parts[2].split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)[0]
        return "\(parts[0])_\(parts[1])_\(third)"
    }
}

/// One image of a split: `leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png` and its `gtFine` files.
public struct CityscapesFrame: Sendable, Equatable {
    public var city: String
    /// `<city>_<sequence>_<frame>`.
    public var stem: String
    public var image: String
    public var labelIds: String
    public var instanceIds: String
    public var polygons: String
}

/// A Cityscapes split in the official layout under `root`: `leftImg8bit/<split>/<city>/*_leftImg8bit.png` with
/// `gtFine/<split>/<city>/*_gtFine_{labelIds,instanceIds}.png` (and `*_gtFine_polygons.json`).
///
/// Frames are sorted by city, then stem; frame i's sample id (which keys its augmentation) is i. Which ground-truth
/// file a reading needs is checked when the split is opened, so a missing file stops the run at once.
public struct CityscapesDataset: Sendable {
    public let root: String
    public let split: String
    public let frames: [CityscapesFrame]

    public var count: Int { frames.count }

    /// Lists the split. `requireLabelIds` / `requireInstanceIds`: the ground truth each frame must have (none for
    /// inference or panoptic, whose ground truth is the panoptic JSON).
    public init(root: String, split: String, requireLabelIds: Bool = false, requireInstanceIds: Bool = false) throws {
        let fm = FileManager.default
        let imageDir = "\(root)/leftImg8bit/\(split)"
        guard let cities = try? fm.contentsOfDirectory(atPath: imageDir) else {
            throw DataError(file: imageDir, problem: "no such folder (expected the Cityscapes layout leftImg8bit/\(split)/<city>/)")
        }
        var frames: [CityscapesFrame] = []
        for city in cities.sorted() {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: "\(imageDir)/\(city)", isDirectory: &isDir), isDir.boolValue else { continue }
            let names = (try? fm.contentsOfDirectory(atPath: "\(imageDir)/\(city)")) ?? []
            for name in names.sorted() where name.hasSuffix("_leftImg8bit.png") {
                let stem = String(name.dropLast("_leftImg8bit.png".count))
                guard Cityscapes.stem(ofFileName: name) == stem else {
                    throw DataError(file: "\(imageDir)/\(city)/\(name)", problem: "not a Cityscapes file name (<city>_<sequence>_<frame>_leftImg8bit.png)")
                }
                let gt = "\(root)/gtFine/\(split)/\(city)/\(stem)_gtFine_"
                let frame = CityscapesFrame(city: city, stem: stem, image: "\(imageDir)/\(city)/\(name)", labelIds: gt + "labelIds.png",
                                            instanceIds: gt + "instanceIds.png", polygons: gt + "polygons.json")
                for (needed, file) in [(requireLabelIds, frame.labelIds), (requireInstanceIds, frame.instanceIds)]
                where needed && !fm.fileExists(atPath: file) {
                    throw DataError(file: file, record: "image \(stem)", problem: "ground-truth PNG missing")
                }
                frames.append(frame)
            }
        }
        if frames.isEmpty { throw DataError(file: imageDir, problem: "no <city>/*_leftImg8bit.png images") }
        var seen: [String: String] = [:]
        for f in frames {
            if let other = seen[f.stem] { throw DataError(file: f.image, problem: "frame \(f.stem) also in \(other)") }
            seen[f.stem] = f.image
        }
        self.root = root; self.split = split; self.frames = frames
    }

    /// The index of the frame with stem `stem`.
    public func index(ofStem stem: String) -> Int? { frames.firstIndex { $0.stem == stem } }

    /// Frame i's RGB image.
    public func image(_ i: Int) throws -> Image8 { try loadImage(path: frames[i].image, mode: .rgb) }

    /// Frame i's `labelIds` map, as stored (label ids 0…33), checked against the image size and the label table.
    public func labelIds(_ i: Int, size: ImageSize? = nil) throws -> LabelMap {
        let f = frames[i]
        let ann = try loadImage(path: f.labelIds, mode: .indices)
        try checkSize(file: f.labelIds, frame: f, width: ann.width, height: ann.height, size: size)
        if let j = ann.pixels.firstIndex(where: { Int($0) > Cityscapes.maxLabelID }) {
            throw DataError(file: f.labelIds, record: "image \(f.stem)",
                            problem: "value \(ann.pixels[j]) at pixel \(j % ann.width),\(j / ann.width) is not a label id (0…\(Cityscapes.maxLabelID))")
        }
        return LabelMap(width: ann.width, height: ann.height, labels: ann.pixels)
    }

    /// Frame i's `instanceIds` map (16-bit): below 1000 a label id (stuff, void, or a group region of a thing
    /// class), from 1000 on class·1000 + index. A value naming no label is an error.
    public func instanceIds(_ i: Int, size: ImageSize? = nil) throws -> Gray16Map {
        let f = frames[i]
        let map = try loadGray16PNG(path: f.instanceIds)
        try checkSize(file: f.instanceIds, frame: f, width: map.width, height: map.height, size: size)
        var previous: UInt16 = 0
        for (j, v) in map.values.enumerated() where v != previous {
            let labelID = v >= 1000 ? Int(v) / 1000 : Int(v)
            guard let label = Cityscapes.label(id: labelID), v < 1000 || label.hasInstances else {
                throw DataError(file: f.instanceIds, record: "image \(f.stem)",
                                problem: "value \(v) at pixel \(j % map.width),\(j / map.width) is neither a label id (0…\(Cityscapes.maxLabelID)) "
                                    + "nor class·1000 + index of a class with instances")
            }
            previous = v
        }
        return map
    }

    private func checkSize(file: String, frame f: CityscapesFrame, width: Int, height: Int, size: ImageSize?) throws {
        if let size, size.width != width || size.height != height {
            throw DataError(file: file, record: "image \(f.stem)",
                            problem: "ground truth is \(width)×\(height) but the image is \(size.width)×\(size.height)")
        }
    }

    /// Checks `*_gtFine_polygons.json`, where present, against the image size (`imgWidth`, `imgHeight`): a polygon
    /// file of another image is the usual sign of mixed-up downloads.
    public func checkPolygons(_ i: Int, size: ImageSize) throws {
        let f = frames[i]
        guard let data = FileManager.default.contents(atPath: f.polygons) else { return }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DataError(file: f.polygons, record: "image \(f.stem)", problem: "malformed JSON (expected {imgHeight, imgWidth, objects})")
        }
        guard let w = object["imgWidth"] as? Int, let h = object["imgHeight"] as? Int, object["objects"] is [Any] else {
            throw DataError(file: f.polygons, record: "image \(f.stem)", problem: "missing imgWidth, imgHeight or objects")
        }
        guard w == size.width, h == size.height else {
            throw DataError(file: f.polygons, record: "image \(f.stem)", problem: "says \(w)×\(h) but the image is \(size.width)×\(size.height)")
        }
    }

    /// Frame i for semantic segmentation: labels are training ids (0…18, 255 = not trained on), mapped from
    /// `labelIds` as cityscapesscripts' createTrainIdLabelImgs does.
    public func semanticSample(_ i: Int) throws -> Sample {
        let image = try self.image(i)
        var labels = try labelIds(i, size: image.size)
        try checkPolygons(i, size: image.size)
        let lut = Cityscapes.trainIdOfLabelID
        labels.labels = labels.labels.map { lut[Int($0)] }
        return Sample(imageId: i, image: image, targets: .semantic(labels))
    }

    /// Frame i's instances as detectron2's `load_cityscapes_instances(from_json=False)` reads them: every
    /// `instanceIds` value of an evaluated instance class, in increasing order; values below 1000 (a group region,
    /// e.g. a crowd of cars) are crowd and dropped by training. `classIndex` indexes `Cityscapes.thingClasses`;
    /// `id` is the stored value.
    public static func instances(of map: Gray16Map) -> [InstanceAnnotation] {
        var present = Set<UInt16>()
        var previous: UInt16 = 0
        for v in map.values where v != previous { present.insert(v); previous = v }
        var out: [InstanceAnnotation] = []
        for v in present.sorted() {
            guard let c = thingClass(ofValue: v) else { continue }
            let bits = map.values.map { $0 == v ? UInt8(1) : 0 }
            out.append(InstanceAnnotation(id: Int(v), classIndex: c, isCrowd: v < 1000,
                                          mask: .bitmap(BinaryMask(width: map.width, height: map.height, bits: bits))))
        }
        return out
    }

    /// Whether `instances(of: map)` holds a non-crowd instance (a value from 1000 on, of an evaluated class): the test
    /// of detectron2's `filter_empty_annotations` on a Cityscapes frame.
    public static func hasNonCrowdInstance(_ map: Gray16Map) -> Bool {
        var previous: UInt16 = 0
        for v in map.values where v != previous {
            if v >= 1000, thingClass(ofValue: v) != nil { return true }
            previous = v
        }
        return false
    }

    /// The index in `Cityscapes.thingClasses` of the instance an `instanceIds` value names (below 1000: the class's
    /// group region), or nil for stuff, void and the classes not evaluated (caravan, trailer); values below 24 are
    /// never instances.
    static func thingClass(ofValue v: UInt16) -> Int? {
        guard v >= 24 else { return nil }
        let labelID = v >= 1000 ? Int(v) / 1000 : Int(v)
        guard labelID <= Cityscapes.maxLabelID else { return nil }
        let c = classOfLabel[labelID]
        return c >= 0 ? c : nil
    }

    /// `Cityscapes.thingClasses` index by label id (−1: not a thing class).
    private static let classOfLabel: [Int] = {
        var out = [Int](repeating: -1, count: Cityscapes.maxLabelID + 1)
        for (c, l) in Cityscapes.thingClasses.enumerated() { out[l.id] = c }
        return out
    }()

    /// Frame i for instance segmentation (see `instances(of:)`).
    public func instanceSample(_ i: Int) throws -> Sample {
        let image = try self.image(i)
        let map = try instanceIds(i, size: image.size)
        try checkPolygons(i, size: image.size)
        return Sample(imageId: i, image: image, targets: .instances(CityscapesDataset.instances(of: map)))
    }
}

/// Cityscapes panoptic ground truth as cityscapesscripts' `createPanopticImgs` writes it:
/// `gtFine/cityscapes_panoptic_<split>.json` (string image ids `<city>_<seq>_<frame>`, category ids = label ids) and
/// the RGB segment-id PNGs in `gtFine/cityscapes_panoptic_<split>/`; images come from `leftImg8bit/<split>/<city>/`.
/// Category ids map to class indices by training id, as detectron2's cityscapes_panoptic registration does.
public struct CityscapesPanopticDataset: Sendable {
    public struct Record: Sendable {
        /// `<city>_<seq>_<frame>`, the JSON's `image_id`.
        public var stem: String
        public var imageFile: String
        public var width: Int, height: Int
        public var pngFile: String
        public var segments: [PanopticSegment]
    }
    public let root: String
    public let split: String
    public let jsonPath: String
    /// Sorted by stem; record i's sample id is i.
    public let records: [Record]
    public var count: Int { records.count }

    public init(root: String, split: String) throws {
        let json = "\(root)/gtFine/cityscapes_panoptic_\(split).json"
        let pngDir = "\(root)/gtFine/cityscapes_panoptic_\(split)"
        guard let data = FileManager.default.contents(atPath: json) else {
            throw DataError(file: json, problem: "cannot read the file (missing or unreadable; cityscapesscripts' createPanopticImgs writes it)")
        }
        let top: [String: Any]
        do {
            guard let t = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw DataError(file: json, problem: "the top level must be an object {images, annotations, categories}")
            }
            top = t
        } catch let e as DataError { throw e } catch {
            throw DataError(file: json, problem: "malformed JSON: \(error.localizedDescription)")
        }
        guard let images = top["images"] as? [[String: Any]], let annotations = top["annotations"] as? [[String: Any]],
              let categories = top["categories"] as? [[String: Any]] else {
            throw DataError(file: json, problem: "expected arrays of objects 'images', 'annotations' and 'categories'")
        }
        var classOfCategory: [Int: Int] = [:]
        for (n, c) in categories.enumerated() {
            guard let id = c["id"] as? Int, let label = Cityscapes.label(id: id), !label.ignoreInEval else {
                throw DataError(file: json, record: "category \(n)", problem: "id \(c["id"] ?? "missing") is not an evaluated Cityscapes label id")
            }
            classOfCategory[id] = label.trainId
        }
        var imageOf: [String: (file: String, width: Int, height: Int)] = [:]
        for (n, im) in images.enumerated() {
            guard let id = im["id"] as? String, let file = im["file_name"] as? String, let w = im["width"] as? Int,
                  let h = im["height"] as? Int, w > 0, h > 0 else {
                throw DataError(file: json, record: "image \(n)", problem: "needs a string id, file_name and positive width and height")
            }
            let city = String(id.prefix { $0 != "_" })
            guard imageOf[id] == nil else { throw DataError(file: json, record: "image \(n)", problem: "id \(id) appears twice in 'images'") }
            imageOf[id] = ("\(root)/leftImg8bit/\(split)/\(city)/\(file)", w, h)
        }
        var records: [Record] = []
        var seen = Set<String>()
        for (n, a) in annotations.enumerated() {
            guard let id = a["image_id"] as? String, let file = a["file_name"] as? String,
                  let infos = a["segments_info"] as? [[String: Any]] else {
                throw DataError(file: json, record: "annotation \(n)", problem: "needs a string image_id, file_name and segments_info")
            }
            guard let image = imageOf[id] else {
                throw DataError(file: json, record: "annotation \(n)", problem: "image_id \(id) is not in 'images'")
            }
            guard seen.insert(id).inserted else { throw DataError(file: json, record: "image \(id)", problem: "two annotations") }
            var segments: [PanopticSegment] = []
            var ids = Set<Int>()
            for s in infos {
                guard let sid = s["id"] as? Int, sid > 0, sid < 1 << 24, let cat = s["category_id"] as? Int else {
                    throw DataError(file: json, record: "image \(id)", problem: "a segment needs an id in 1…2²⁴−1 and a category_id")
                }
                guard let c = classOfCategory[cat] else {
                    throw DataError(file: json, record: "image \(id) segment \(sid)", problem: "category_id \(cat) is not in 'categories'")
                }
                guard ids.insert(sid).inserted else { throw DataError(file: json, record: "image \(id)", problem: "segment id \(sid) twice") }
                let crowd = s["iscrowd"] == nil ? 0 : s["iscrowd"] as? Int
                guard let crowd, crowd == 0 || crowd == 1 else {
                    throw DataError(file: json, record: "image \(id) segment \(sid)", problem: "iscrowd must be 0 or 1, got \(s["iscrowd"]!)")
                }
                segments.append(PanopticSegment(id: UInt32(sid), classIndex: c, isCrowd: crowd == 1))
            }
            records.append(Record(stem: id, imageFile: image.file, width: image.width, height: image.height,
                                  pngFile: "\(pngDir)/\(file)", segments: segments))
        }
        if records.isEmpty { throw DataError(file: json, problem: "no annotations") }
        self.root = root; self.split = split; jsonPath = json
        self.records = records.sorted { $0.stem < $1.stem }
    }

    /// Thing classes (training ids of the labels with instances).
    public static var thingClasses: Set<Int> { Set(Cityscapes.classes.indices.filter { Cityscapes.classes[$0].hasInstances }) }

    /// Record i's segment-id map, checked against its segments and size.
    public func idMap(_ i: Int) throws -> [UInt32] {
        let r = records[i]
        return try readPanopticIDMap(pngFile: r.pngFile, width: r.width, height: r.height, segments: r.segments, record: "image \(r.stem)")
    }

    /// Record i decoded: the RGB image and its panoptic targets.
    public func sample(_ i: Int) throws -> Sample {
        let r = records[i]
        return try panopticSample(id: i, imageFile: r.imageFile, width: r.width, height: r.height, segments: r.segments,
                                  record: "image \(r.stem)", idMap: { try idMap(i) })
    }
}
