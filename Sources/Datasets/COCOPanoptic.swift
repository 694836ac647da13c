// COCO panoptic: panoptic_<split>.json + RGB-encoded segment-id PNGs, categories mapped to contiguous classes.
// Corresponds to detectron2 data/datasets/coco_panoptic.py and panopticapi's rgb2id (docs/model.md#classes-and-ground-truth).

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

    /// Reads the split `split` of `root` laid out as `layout` (default: `annotations/panoptic_<split>.json`, the PNGs in
    /// `annotations/panoptic_<split>/`, the images in `<split>/`) with the byte-level scanner (no object tree, unknown
    /// keys skipped, members and top-level arrays in any order), then checks every reference. Errors name the file and
    /// the record, or for malformed JSON the byte offset, line and column.
    public init(root: String, split: String, layout: DatasetLayout = .cocoPanoptic) throws {
        let (json, imageFolder, pngFolder) = layout.paths(root: root, split: split)
        let file: MappedFile
        do { file = try MappedFile(path: json) } catch {
            throw DataError(file: json, problem: "cannot read the file (missing or unreadable): \(error.reason)")
        }
        var index = PanopticIndex(file: json)
        var scanner = JSONByteScanner(file.bytes)
        var mapped = file
        func located(_ e: JSONSyntaxError) -> DataError {
            let (line, column) = scanner.lineAndColumn(of: e.offset)
            let what = e.schema ? "unexpected JSON structure" : "malformed JSON"
            return DataError(file: json, problem: "\(what) at byte \(e.offset) (line \(line), column \(column)): \(e.message)")
        }
        do {
            try index.scan(&scanner) { pos in mapped.release(below: pos) }
        } catch {
            throw located(error)
        }
        // a syntax error anywhere comes first; then the first value of the wrong type or shape
        switch index.firstProblem {
        case .structure(let e): throw located(e)
        case .record(let e): throw e
        case nil: break
        }
        _ = consume mapped
        self.root = root; self.split = split; jsonPath = json
        records = try index.records(imageDirectory: imageFolder, pngDirectory: pngFolder)
        categories = index.categories
    }

    /// The segment-id map of record `i` (`[height, width]`, 0 = void), checked against its segments:
    /// a non-zero id missing from `segments_info` or a PNG of the wrong size is an error naming the PNG.
    public func idMap(_ i: Int) throws -> [UInt32] {
        let r = records[i]
        return try readPanopticIDMap(pngFile: r.pngFile, width: r.width, height: r.height, segments: r.segments, record: "image \(r.imageId)")
    }

    /// Record `i` decoded: the RGB image and its panoptic targets.
    public func sample(_ i: Int) throws -> Sample {
        let r = records[i]
        return try panopticSample(id: r.imageId, imageFile: r.imageFile, width: r.width, height: r.height, segments: r.segments,
                                  record: "image \(r.imageId)", idMap: { try idMap(i) })
    }
}

/// The segment-id map of a panoptic PNG (`[height, width]`, id = R + 256·G + 256²·B, 0 = void), checked against its
/// segments: a non-zero id missing from `segments` or a PNG of another size is an error naming the PNG and `record`.
public func readPanopticIDMap(pngFile: String, width: Int, height: Int, segments: [PanopticSegment], record: String) throws -> [UInt32] {
    let png = try loadImage(path: pngFile, mode: .rgb)
    guard png.width == width && png.height == height else {
        throw DataError(file: pngFile, record: record, problem: "segment PNG is \(png.width)×\(png.height) but the image is \(width)×\(height)")
    }
    let known = Set(segments.map(\.id))
    var ids = [UInt32](repeating: 0, count: width * height)
    png.pixels.withUnsafeBufferPointer { p in
        for j in 0..<ids.count {
            ids[j] = UInt32(p[3 * j]) | UInt32(p[3 * j + 1]) << 8 | UInt32(p[3 * j + 2]) << 16
        }
    }
    var previous: UInt32 = 0
    for id in ids where id != 0 && id != previous {
        if !known.contains(id) {
            throw DataError(file: pngFile, record: record, problem: "pixel segment id \(id) is not in segments_info")
        }
        previous = id
    }
    return ids
}

/// A panoptic sample: the RGB image (checked against the JSON's size) with the id map `idMap()` and `segments`.
func panopticSample(id: Int, imageFile: String, width: Int, height: Int, segments: [PanopticSegment], record: String,
                    idMap: () throws -> [UInt32]) throws -> Sample {
    let image = try loadImage(path: imageFile, mode: .rgb)
    guard image.width == width && image.height == height else {
        throw DataError(file: imageFile, record: record, problem: "image is \(image.width)×\(image.height) but the JSON says \(width)×\(height)")
    }
    return Sample(imageId: id, image: image, targets: .panoptic(PanopticTargets(width: width, height: height, ids: try idMap(), segments: segments)))
}

// MARK: - loading

/// The file's records as scanned, in flat arrays (segments of annotation a: `segStart[a] ..< segStart[a + 1]`),
/// checked against each other once the whole file is read.
private struct PanopticIndex {
    let file: String
    var categories: [COCOPanopticDataset.Category] = []
    var classOf: [Int: Int] = [:]
    var duplicateCategory: Int? = nil
    var sawImages = false, sawAnnotations = false, sawCategories = false

    var imageIndexByID: [Int: Int] = [:]   // a repeated id: the last entry wins
    var imageIDs: [Int] = [], imageNames: [String] = [], imageWidths: [Int] = [], imageHeights: [Int] = []

    var annImageID: [Int] = [], annPNG: [String] = [], segStart: [Int] = [0]
    var segID: [Int] = [], segCategory: [Int] = [], segCrowd: [Bool] = []

    /// The first value of the wrong type or shape met while scanning; reported once the whole file has parsed.
    enum Problem { case structure(JSONSyntaxError), record(DataError) }
    var firstProblem: Problem? = nil

    init(file: String) { self.file = file }

    func bad(_ record: String, _ problem: String) -> DataError { DataError(file: file, record: record, problem: problem) }

    /// Notes a wrong value in record `record` (the first one is reported after the scan).
    mutating func note(_ record: String, _ problem: String) {
        if firstProblem == nil { firstProblem = .record(bad(record, problem)) }
    }

    // MARK: scanning

    /// Reads the top-level object; `progress` is told the scan position now and then (to release scanned pages).
    /// Throws only syntax errors; other problems are left in `firstProblem`.
    mutating func scan(_ s: inout JSONByteScanner, progress: (Int) -> Void) throws(JSONSyntaxError) {
        guard s.peek() == UInt8(ascii: "{") else {
            var e = s.error("expected the top-level object '{', found \(s.found())")
            e.schema = s.peek() != 0
            try s.skipValue()
            try s.expectEnd()
            throw e
        }
        if try s.beginObject() {
            repeat {
                let key = try s.readKey()
                if s.key(key, is: "images") {
                    sawImages = true
                    try array(&s, "images", progress) { (x, s, i) throws(JSONSyntaxError) in try x.scanImage(&s, ordinal: i) }
                } else if s.key(key, is: "annotations") {
                    sawAnnotations = true
                    try array(&s, "annotations", progress) { (x, s, i) throws(JSONSyntaxError) in try x.scanAnnotation(&s, ordinal: i) }
                } else if s.key(key, is: "categories") {
                    sawCategories = true
                    try array(&s, "categories", progress) { (x, s, i) throws(JSONSyntaxError) in try x.scanCategory(&s, ordinal: i) }
                } else {
                    try s.skipValue()
                }
            } while try s.nextMember()
        }
        try s.expectEnd()
        for (seen, name) in [(sawImages, "images"), (sawAnnotations, "annotations"), (sawCategories, "categories")]
        where !seen && firstProblem == nil {
            firstProblem = .record(DataError(file: file, problem: "no '\(name)' array in the file"))
        }
    }

    mutating func array(_ s: inout JSONByteScanner, _ name: String, _ progress: (Int) -> Void,
                        _ element: (inout PanopticIndex, inout JSONByteScanner, Int) throws(JSONSyntaxError) -> Void)
        throws(JSONSyntaxError) {
        guard s.peek() == UInt8(ascii: "[") else {
            var e = s.error("'\(name)' must be an array, found \(s.found())")
            e.schema = true
            try s.skipValue()
            if firstProblem == nil { firstProblem = .structure(e) }
            return
        }
        var i = 0
        if try s.beginArray() {
            repeat {
                try element(&self, &s, i)
                i += 1
                if i & 1023 == 0 { progress(s.pos) }
            } while try s.nextElement()
        }
    }

    mutating func scanCategory(_ s: inout JSONByteScanner, ordinal: Int) throws(JSONSyntaxError) {
        var id: Int? = nil, name: String? = nil, isThing: Int? = nil
        var problem: String? = nil
        try s.members(&problem) { (s, key, problem) throws(JSONSyntaxError) in
            if s.key(key, is: "id") { id = try s.integer("id", &problem) }
            else if s.key(key, is: "name") { name = try s.string("name", &problem) }
            else if s.key(key, is: "isthing") { isThing = try s.integer("isthing", &problem) }
            else { try s.skipValue() }
        }
        let record = id.map { "category \($0)" } ?? "categories[\(ordinal)]"
        if problem == nil {
            if id == nil { problem = "missing 'id'" }
            else if name == nil { problem = "missing 'name'" }
            else if isThing == nil { problem = "missing 'isthing'" }
            else if isThing != 0 && isThing != 1 { problem = "'isthing' must be 0 or 1, got \(isThing!)" }
        }
        if let problem { note(record, problem); return }
        if classOf[id!] != nil {
            if duplicateCategory == nil { duplicateCategory = id! }   // reported after the scan, as a reference error
        } else {
            classOf[id!] = categories.count
        }
        categories.append(COCOPanopticDataset.Category(id: id!, name: name!, isThing: isThing! != 0))
    }

    mutating func scanImage(_ s: inout JSONByteScanner, ordinal: Int) throws(JSONSyntaxError) {
        var id: Int? = nil, fileName: String? = nil, width: Int? = nil, height: Int? = nil
        var problem: String? = nil
        try s.members(&problem) { (s, key, problem) throws(JSONSyntaxError) in
            if s.key(key, is: "id") { id = try s.integer("id", &problem) }
            else if s.key(key, is: "file_name") { fileName = try s.string("file_name", &problem) }
            else if s.key(key, is: "width") { width = try s.integer("width", &problem) }
            else if s.key(key, is: "height") { height = try s.integer("height", &problem) }
            else { try s.skipValue() }
        }
        let record = id.map { "image \($0)" } ?? "images[\(ordinal)]"
        if problem == nil {
            if id == nil { problem = "missing 'id'" }
            else if fileName == nil { problem = "missing 'file_name'" }
            else if let escape = pathEscapeProblem(fileName!) { problem = escape }
            else if width == nil { problem = "missing 'width'" }
            else if height == nil { problem = "missing 'height'" }
        }
        if let problem { note(record, problem); return }
        imageIndexByID[id!] = imageIDs.count
        imageIDs.append(id!); imageNames.append(fileName!); imageWidths.append(width!); imageHeights.append(height!)
    }

    mutating func scanAnnotation(_ s: inout JSONByteScanner, ordinal: Int) throws(JSONSyntaxError) {
        var imageID: Int? = nil, fileName: String? = nil, sawSegments = false
        var problem: String? = nil
        let first = segID.count
        try s.members(&problem) { (s, key, problem) throws(JSONSyntaxError) in
            if s.key(key, is: "image_id") { imageID = try s.integer("image_id", &problem) }
            else if s.key(key, is: "file_name") { fileName = try s.string("file_name", &problem) }
            else if s.key(key, is: "segments_info") {
                sawSegments = true
                if s.peek() != UInt8(ascii: "[") {
                    try s.skipValue()
                    if problem == nil { problem = "'segments_info' is not an array" }
                    return
                }
                segID.removeSubrange(first...); segCategory.removeSubrange(first...); segCrowd.removeSubrange(first...)
                if try s.beginArray() {
                    var j = 0
                    repeat {
                        try scanSegment(&s, ordinal: j, &problem)
                        j += 1
                    } while try s.nextElement()
                }
            } else { try s.skipValue() }
        }
        let record = fileName.map { "annotation \($0)" } ?? "annotations[\(ordinal)]"
        if problem == nil {
            if imageID == nil { problem = "missing 'image_id'" }
            else if fileName == nil { problem = "missing 'file_name'" }
            else if let escape = pathEscapeProblem(fileName!) { problem = escape }
            else if !sawSegments { problem = "missing 'segments_info'" }
        }
        if let problem { note(record, problem); return }
        annImageID.append(imageID!); annPNG.append(fileName!); segStart.append(segID.count)
    }

    /// Appends one `segments_info` entry; a problem is described with the entry's position.
    mutating func scanSegment(_ s: inout JSONByteScanner, ordinal j: Int, _ problem: inout String?) throws(JSONSyntaxError) {
        var id: Int? = nil, category: Int? = nil, crowd = 0
        var own: String? = nil
        try s.members(&own) { (s, key, own) throws(JSONSyntaxError) in
            if s.key(key, is: "id") { id = try s.integer("id", &own) }
            else if s.key(key, is: "category_id") { category = try s.integer("category_id", &own) }
            else if s.key(key, is: "iscrowd") {
                if s.peek() == UInt8(ascii: "n") { try s.literal("null") }   // null: absent, as before
                else { crowd = try s.integer("iscrowd", &own) ?? 0 }
            } else { try s.skipValue() }
        }
        if own == nil {
            if id == nil { own = "missing 'id'" }
            else if category == nil { own = "missing 'category_id'" }
        }
        if let own {
            if problem == nil { problem = "segments_info[\(j)]\(id.map { " (segment \($0))" } ?? ""): \(own)" }
            return
        }
        segID.append(id!); segCategory.append(category!); segCrowd.append(crowd != 0)
    }

    // MARK: checks after scanning

    /// One record per annotation, sorted by image id; the first bad reference (in file order) is an error.
    func records(imageDirectory: String, pngDirectory: String) throws -> [COCOPanopticDataset.Record] {
        if let id = duplicateCategory { throw bad("category \(id)", "duplicate category id") }
        var records: [COCOPanopticDataset.Record] = []
        records.reserveCapacity(annImageID.count)
        var seen = Set<Int>(), annotated = Set<Int>()
        for a in annImageID.indices {
            guard let im = imageIndexByID[annImageID[a]] else {
                throw bad("annotation \(annPNG[a])", "names unknown image id \(annImageID[a])")
            }
            guard annotated.insert(im).inserted else {
                throw bad("annotation \(annPNG[a])", "is a second annotation of image \(annImageID[a]) (one per image)")
            }
            let imageID = imageIDs[im]
            let range = segStart[a] ..< segStart[a + 1]
            var segments: [PanopticSegment] = []
            segments.reserveCapacity(range.count)
            let small = range.count <= 32   // a few segments: look back instead of hashing
            if !small { seen.removeAll(keepingCapacity: true) }
            for k in range {
                let id = segID[k]
                guard let cls = classOf[segCategory[k]] else {
                    throw bad("segment \(id) of image \(imageID)", "unknown category id \(segCategory[k])")
                }
                guard id > 0 && id < 1 << 24 else {
                    throw bad("segment \(id) of image \(imageID)", "segment id outside 1…2²⁴−1")
                }
                let duplicate = small ? segID[range.lowerBound ..< k].contains(id) : !seen.insert(id).inserted
                guard !duplicate else { throw bad("segment \(id) of image \(imageID)", "duplicate segment id") }
                segments.append(PanopticSegment(id: UInt32(id), classIndex: cls, isCrowd: segCrowd[k]))
            }
            records.append(COCOPanopticDataset.Record(
                imageId: imageID, imageFile: "\(imageDirectory)/\(imageNames[im])",
                width: imageWidths[im], height: imageHeights[im],
                pngFile: "\(pngDirectory)/\(annPNG[a])", segments: segments))
        }
        records.sort { $0.imageId < $1.imageId }
        return records
    }
}

private extension JSONByteScanner {
    /// Calls `member` for each key of the object at the scan position; a non-object is consumed and is a problem.
    mutating func members(_ problem: inout String?,
                          _ member: (inout JSONByteScanner, JSONKey, inout String?) throws(JSONSyntaxError) -> Void)
        throws(JSONSyntaxError) {
        guard peek() == UInt8(ascii: "{") else {
            try skipValue()
            if problem == nil { problem = "is not an object" }
            return
        }
        if try beginObject() {
            repeat {
                let key = try readKey()
                try member(&self, key, &problem)
            } while try nextMember()
        }
    }

    /// Reads an integer member value; records a problem (and consumes the value) if it is not one.
    mutating func integer(_ name: String, _ problem: inout String?) throws(JSONSyntaxError) -> Int? {
        if atNumber() {
            if let v = try readInteger() { return v }
        } else {
            try skipValue()
        }
        if problem == nil { problem = "'\(name)' is not an integer" }
        return nil
    }

    mutating func string(_ name: String, _ problem: inout String?) throws(JSONSyntaxError) -> String? {
        if peek() == UInt8(ascii: "\"") { return try readString() }
        try skipValue()
        if problem == nil { problem = "'\(name)' is not a string" }
        return nil
    }
}
