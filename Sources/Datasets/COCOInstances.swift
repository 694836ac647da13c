// COCO instance annotations (`annotations/instances_<split>.json` + images in `<split>/`) as a compact per-image index.
// Corresponds to pycocotools' COCO() index with annToRLE/annToMask, and detectron2's load_coco_json (contiguous ids).

/// What a reader does with a bad record (an annotation naming an unknown image, a degenerate polygon, …):
/// stop with a `DataError`, or skip the record and count it.
public enum BadSamplePolicy: String, Sendable, CaseIterable {
    case error
    case skip
}

/// One entry of the `categories` array.
public struct COCOCategory: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var supercategory: String
    public init(id: Int, name: String, supercategory: String) {
        self.id = id; self.name = name; self.supercategory = supercategory
    }
}

/// One entry of the `images` array.
public struct COCOImageRecord: Sendable, Equatable {
    public var id: Int
    public var fileName: String
    public var width: Int
    public var height: Int
    public init(id: Int, fileName: String, width: Int, height: Int) {
        self.id = id; self.fileName = fileName; self.width = width; self.height = height
    }
}

/// An annotation's `segmentation`, as written in the file.
public enum COCOSegmentation: Sendable, Equatable {
    /// One or more polygons `[x0, y0, x1, y1, …]` (the parts of one object).
    case polygons([[Double]])
    /// Uncompressed RLE (`counts` is a list of run lengths).
    case rle(COCORLE)
    /// Compressed RLE (`counts` is a string; see `COCORLE.compressedCounts`).
    case compressedRLE(height: Int, width: Int, counts: String)

    /// The object's mask as an RLE, as pycocotools' `annToRLE` builds it: polygons rasterized at the image size
    /// and united; an RLE taken at its own size.
    public func rle(imageHeight: Int, imageWidth: Int) throws(COCOMaskError) -> COCORLE {
        switch self {
        case .polygons(let parts): return COCORLE.polygons(parts, height: imageHeight, width: imageWidth)
        case .rle(let r): return r
        case .compressedRLE(let h, let w, let s): return try COCORLE(compressedCounts: s, height: h, width: w)
        }
    }
}

/// One kept annotation.
public struct COCOAnnotation: Sendable, Equatable {
    public var id: Int
    public var imageID: Int
    public var categoryID: Int
    /// Position of the category in the file's `categories` array (the contiguous class index).
    public var categoryIndex: Int
    public var isCrowd: Bool
    /// The file's `area` (NaN when absent).
    public var area: Double
    /// The file's `bbox` `[x, y, width, height]` (empty when absent).
    public var bbox: [Double]
    public var segmentation: COCOSegmentation
}

/// A COCO instances file loaded into flat arrays: per image its id, file name, size and annotations, with every
/// segmentation kept in file form (polygon coordinates as Double, RLE counts) and rasterized only on request.
///
/// Loading checks every reference and segmentation; each bad record is an error (`.error`) or is skipped and
/// counted (`.skip`). Rules:
/// - an annotation must name an image and a category present in the file;
/// - polygons: each part needs an even number (≥ 6) of finite coordinates and must not have all its points on one
///   line (zero area); coordinates may lie outside the image — they are clipped exactly as pycocotools does —
///   but not more than 10 image sizes away, and the object's polygons must overlap the image;
/// - RLE: `size` must be the image's `[height, width]`, counts must sum to h·w, a compressed string must parse;
/// - images need a positive width and height and a unique id; category ids must be unique.
/// Malformed JSON, a missing file and a missing `images`/`annotations`/`categories` array are always errors.
public struct COCOInstances: Sendable {
    /// `annotations/instances_<split>.json`.
    public let annotationFile: String
    /// Folder holding the images (`<split>/`).
    public let imageDirectory: String
    /// Categories in file order; index = contiguous class index.
    public let categories: [COCOCategory]
    /// Images in file order (skipped images excluded).
    public let images: [COCOImageRecord]
    /// Number of records skipped under `.skip` (0 under `.error`).
    public let skippedCount: Int
    /// The first skipped records' errors (at most 1000).
    public let skippedRecords: [DataError]

    // compact storage (struct of arrays), indexed by stored annotation
    let annIDs: [Int]
    let annImageIndex: [Int32]
    let annCategoryIndex: [Int32]
    let annFlags: [UInt8]          // bit 0 crowd; bits 1–2 kind (SegmentKind)
    let annArea: [Double]
    let annBox: [Double]           // 4 per annotation, NaN when absent
    let segLo: [Int]               // polygons: first part; RLE: first count / byte
    let segHi: [Int]               // polygons: end part; RLE: end count / byte
    let rleSize: [Int32]           // 2 per annotation (h, w) for RLE kinds
    let partStart: [Int]           // polygon part p covers coords[partStart[p] ..< partStart[p + 1]]
    let coords: [Double]
    let rleCounts: [UInt32]
    let rleBytes: [UInt8]
    let imageAnnStart: [Int]       // annotations of image i: annOrder[imageAnnStart[i] ..< imageAnnStart[i + 1]]
    let annOrder: [Int32]
    let imageIndexByID: [Int: Int32]
    let categoryIndexByID: [Int: Int32]

    /// Loads the split `split` of `root` laid out as `layout` (default `root/annotations/instances_<split>.json` with
    /// images in `root/<split>/`).
    public init(root: String, split: String, layout: DatasetLayout = .cocoInstances, onBadSample policy: BadSamplePolicy = .error) throws(DataError) {
        let paths = layout.paths(root: root, split: split)
        try self.init(annotationFile: paths.annotationFile, imageDirectory: paths.imageFolder, onBadSample: policy)
    }

    /// Loads an instances JSON file.
    public init(annotationFile: String, imageDirectory: String,
                onBadSample policy: BadSamplePolicy = .error) throws(DataError) {
        var b = COCOInstancesBuilder(file: annotationFile, policy: policy)
        try withMappedFile(annotationFile) { (bytes) throws(DataError) in
            var scanner = JSONByteScanner(bytes)
            b.reserve(fileSize: bytes.count)
            do {
                try b.parseTopLevel(&scanner)
            } catch let e as JSONSyntaxError {
                let (line, column) = scanner.lineAndColumn(of: e.offset)
                let what = e.schema ? "unexpected JSON structure" : "malformed JSON"
                throw DataError(file: annotationFile,
                                problem: "\(what) at byte \(e.offset) (line \(line), column \(column)): \(e.message)")
            } catch let e as DataError {
                throw e
            } catch {
                throw DataError(file: annotationFile, problem: "\(error)")
            }
        }
        try b.finish()
        self.annotationFile = annotationFile
        self.imageDirectory = imageDirectory
        categories = b.categories
        images = b.images
        skippedCount = b.skippedCount
        skippedRecords = b.skippedRecords
        annIDs = b.annIDs; annImageIndex = b.annImage; annCategoryIndex = b.annCategory; annFlags = b.annFlags
        annArea = b.annArea; annBox = b.annBox; segLo = b.segLo; segHi = b.segHi; rleSize = b.rleSize
        partStart = b.partStart; coords = b.coords; rleCounts = b.rleCounts; rleBytes = b.rleBytes
        imageAnnStart = b.imageAnnStart; annOrder = b.annOrder
        imageIndexByID = b.imageIndexByID; categoryIndexByID = b.categoryIndexByID
    }

    // MARK: queries

    public var imageCount: Int { images.count }
    /// Number of kept annotations.
    public var annotationCount: Int { annOrder.count }

    /// Index of the image with COCO id `id`.
    public func imageIndex(forID id: Int) -> Int? { imageIndexByID[id].map(Int.init) }
    /// Contiguous class index of COCO category id `id`.
    public func categoryIndex(forID id: Int) -> Int? { categoryIndexByID[id].map(Int.init) }

    /// Path of image `index` (`imageDirectory/file_name`).
    public func imagePath(ofImage index: Int) -> String { joinPath(imageDirectory, images[index].fileName) }

    public func annotationCount(ofImage index: Int) -> Int { imageAnnStart[index + 1] - imageAnnStart[index] }

    /// Whether image `index` has an annotation that is not a crowd region: detectron2 trains only on those images
    /// (`DATALOADER.FILTER_EMPTY_ANNOTATIONS`, `filter_images_with_only_crowd_annotations`).
    public func hasNonCrowdAnnotation(ofImage index: Int) -> Bool {
        (imageAnnStart[index] ..< imageAnnStart[index + 1]).contains { annFlags[Int(annOrder[$0])] & 1 == 0 }
    }

    /// The annotations of image `index`, in file order.
    public func annotations(ofImage index: Int) -> [COCOAnnotation] {
        (imageAnnStart[index] ..< imageAnnStart[index + 1]).map { annotation(stored: Int(annOrder[$0])) }
    }

    /// Each annotation's mask of image `index` as an RLE at the image size (pycocotools' `annToRLE`).
    public func rles(ofImage index: Int) throws(DataError) -> [COCORLE] {
        var out: [COCORLE] = []
        for k in imageAnnStart[index] ..< imageAnnStart[index + 1] { out.append(try rle(stored: Int(annOrder[k]))) }
        return out
    }

    /// Each annotation's binary mask of image `index` (row-major, image size), in file order
    /// (pycocotools' `annToMask`). The JSON's declared size is held to the image decoders' pixel budget first: a
    /// caller may decode masks without the image (`data masks`), and a record may declare up to 2^32 pixels.
    public func masks(ofImage index: Int) throws(DataError) -> [BinaryMask] {
        let image = images[index]
        do { try checkPixelBudget(width: image.width, height: image.height, file: "\(annotationFile) image \(image.id)") }
        catch let e as DataError { throw e } catch { throw DataError(file: annotationFile, problem: "\(error)") }
        return try rles(ofImage: index).map { $0.decode() }
    }

    // MARK: stored annotation access

    func annotation(stored a: Int) -> COCOAnnotation {
        let img = images[Int(annImageIndex[a])]
        let cat = Int(annCategoryIndex[a])
        let box = Array(annBox[4 * a ..< 4 * a + 4])
        return COCOAnnotation(id: annIDs[a], imageID: img.id, categoryID: categories[cat].id, categoryIndex: cat,
                              isCrowd: annFlags[a] & 1 != 0, area: annArea[a],
                              bbox: box.contains(where: { $0.isNaN }) ? [] : box,
                              segmentation: segmentation(stored: a))
    }

    func segmentation(stored a: Int) -> COCOSegmentation {
        switch SegmentKind(rawValue: annFlags[a] >> 1) ?? .polygons {
        case .polygons:
            return .polygons((segLo[a] ..< segHi[a]).map { Array(coords[partStart[$0] ..< partStart[$0 + 1]]) })
        case .rle:
            return .rle(COCORLE(height: Int(rleSize[2 * a]), width: Int(rleSize[2 * a + 1]),
                                counts: Array(rleCounts[segLo[a] ..< segHi[a]])))
        case .compressedRLE:
            return .compressedRLE(height: Int(rleSize[2 * a]), width: Int(rleSize[2 * a + 1]),
                                  counts: String(decoding: rleBytes[segLo[a] ..< segHi[a]], as: UTF8.self))
        }
    }

    func rle(stored a: Int) throws(DataError) -> COCORLE {
        let img = images[Int(annImageIndex[a])]
        switch SegmentKind(rawValue: annFlags[a] >> 1) ?? .polygons {
        case .polygons:
            var result: COCORLE? = nil
            coords.withUnsafeBufferPointer { all in
                for p in segLo[a] ..< segHi[a] {
                    let part = UnsafeBufferPointer(rebasing: all[partStart[p] ..< partStart[p + 1]])
                    let r = COCORLE.polygon(part, height: img.height, width: img.width)
                    if let prev = result {
                        result = COCORLE(height: img.height, width: img.width,
                                         counts: COCORLE.mergeRuns(prev.counts, r.counts, intersect: false))
                    } else {
                        result = r
                    }
                }
            }
            return result ?? .empty(height: img.height, width: img.width)
        case .rle:
            return COCORLE(height: Int(rleSize[2 * a]), width: Int(rleSize[2 * a + 1]),
                           counts: Array(rleCounts[segLo[a] ..< segHi[a]]))
        case .compressedRLE:
            switch parseCompressed(rleBytes, segLo[a] ..< segHi[a]) {
            case .success(let counts):
                return COCORLE(height: Int(rleSize[2 * a]), width: Int(rleSize[2 * a + 1]), counts: counts)
            case .failure(let error):
                throw DataError(file: annotationFile, record: "annotation \(annIDs[a])", problem: error.problem)
            }
        }
    }
}

private enum SegmentKind: UInt8 {
    case polygons = 0, rle = 1, compressedRLE = 2
}

/// Parses the compressed counts string stored at `bytes[range]`.
private func parseCompressed(_ bytes: [UInt8], _ range: Range<Int>) -> Result<[UInt32], COCOMaskError> {
    bytes.withUnsafeBufferPointer { all in
        Result { () throws(COCOMaskError) -> [UInt32] in
            try COCORLE.parseCompressedCounts(UnsafeBufferPointer(rebasing: all[range]))
        }
    }
}

/// Why `name` (a `file_name` from an annotation file) may not be opened under the dataset's folder, or nil when it
/// may: an absolute path, or `..` components that climb out of the folder. Checked on the name alone, so a dataset
/// folder that is itself a symbolic link still works.
func pathEscapeProblem(_ name: String) -> String? {
    if name.hasPrefix("/") { return "file_name '\(name)' is an absolute path; it must be relative to the image folder" }
    var depth = 0
    for part in name.split(separator: "/", omittingEmptySubsequences: true) {
        if part == ".." { depth -= 1 } else if part != "." { depth += 1 }
        if depth < 0 { return "file_name '\(name)' leads out of the image folder" }
    }
    return depth == 0 ? "file_name '\(name)' names no file" : nil
}

private func joinPath(_ a: String, _ b: String) -> String {
    if a.isEmpty { return b }
    return a.hasSuffix("/") ? a + b : a + "/" + b
}

// MARK: - loading

/// Accumulates the file's records while scanning, then checks references and segmentations.
private struct COCOInstancesBuilder {
    let file: String
    let policy: BadSamplePolicy
    var skippedCount = 0
    var skippedRecords: [DataError] = []

    var categories: [COCOCategory] = []
    var images: [COCOImageRecord] = []
    var sawImages = false, sawAnnotations = false, sawCategories = false
    var released = 0   // bytes of the mapped file given back to the kernel

    var annIDs: [Int] = []
    var annImageID: [Int] = []       // raw ids while scanning
    var annCategoryID: [Int] = []
    var annImage: [Int32] = []       // indices after finish()
    var annCategory: [Int32] = []
    var annFlags: [UInt8] = []
    var annArea: [Double] = []
    var annBox: [Double] = []
    var segLo: [Int] = []
    var segHi: [Int] = []
    var rleSize: [Int32] = []
    var partStart: [Int] = []
    var coords: [Double] = []
    var rleCounts: [UInt32] = []
    var rleBytes: [UInt8] = []
    var imageAnnStart: [Int] = []
    var annOrder: [Int32] = []
    var imageIndexByID: [Int: Int32] = [:]
    var categoryIndexByID: [Int: Int32] = [:]

    init(file: String, policy: BadSamplePolicy) { self.file = file; self.policy = policy }

    /// Reserves room from the file size so the big arrays never grow by copying (untouched capacity is not
    /// resident memory).
    mutating func reserve(fileSize: Int) {
        coords.reserveCapacity(fileSize / 5)
        let annotations = fileSize / 300 + 16
        annIDs.reserveCapacity(annotations); annImageID.reserveCapacity(annotations)
        annCategoryID.reserveCapacity(annotations); annFlags.reserveCapacity(annotations)
        annArea.reserveCapacity(annotations); annBox.reserveCapacity(4 * annotations)
        segLo.reserveCapacity(annotations); segHi.reserveCapacity(annotations)
        rleSize.reserveCapacity(2 * annotations); partStart.reserveCapacity(annotations + annotations / 4)
    }

    /// Reports a bad record: throws under `.error`, counts it under `.skip`.
    mutating func bad(_ record: String, _ problem: String) throws(DataError) {
        let e = DataError(file: file, record: record, problem: problem)
        if policy == .error { throw e }
        skippedCount += 1
        if skippedRecords.count < 1000 { skippedRecords.append(e) }
    }

    // MARK: scanning

    mutating func parseTopLevel(_ s: inout JSONByteScanner) throws {
        guard s.peek() == UInt8(ascii: "{") else {
            var e = s.error("expected the top-level object '{', found \(s.found())")
            e.schema = s.peek() != 0 && "[\"-0123456789tfn".utf8.contains(s.peek())
            throw e
        }
        if try s.beginObject() {
            repeat {
                let key = try s.readKey()
                if s.key(key, is: "images") {
                    sawImages = true
                    try array(&s, "images") { (b, s, i) in try b.parseImage(&s, ordinal: i) }
                } else if s.key(key, is: "annotations") {
                    sawAnnotations = true
                    try array(&s, "annotations") { (b, s, i) in try b.parseAnnotation(&s, ordinal: i) }
                } else if s.key(key, is: "categories") {
                    sawCategories = true
                    try array(&s, "categories") { (b, s, i) in try b.parseCategory(&s, ordinal: i) }
                } else {
                    try s.skipValue()
                }
            } while try s.nextMember()
        }
        try s.expectEnd()
        for (seen, name) in [(sawImages, "images"), (sawAnnotations, "annotations"), (sawCategories, "categories")]
        where !seen {
            throw DataError(file: file, problem: "no '\(name)' array in the file")
        }
    }

    mutating func array(_ s: inout JSONByteScanner, _ name: String,
                        _ element: (inout COCOInstancesBuilder, inout JSONByteScanner, Int) throws -> Void) throws {
        guard s.peek() == UInt8(ascii: "[") else {
            var e = s.error("'\(name)' must be an array, found \(s.found())")
            e.schema = "{\"-0123456789tfn".utf8.contains(s.peek())
            throw e
        }
        var i = 0
        if try s.beginArray() {
            repeat {
                try element(&self, &s, i)
                i += 1
                if i & 1023 == 0 { releaseScanned(s) }
            } while try s.nextElement()
        }
    }

    /// Lets the kernel drop the mapped file pages already scanned (whole 16 MB blocks), so the peak resident
    /// memory holds little more than the index; pages read again (for an error's line number) fault back in.
    mutating func releaseScanned(_ s: JSONByteScanner) {
        released = releaseMappedPages(s.base, released: released, below: s.pos)
    }

    /// Reads an integer member value; records a problem (and consumes the value) if it is not one.
    func integer(_ s: inout JSONByteScanner, _ name: String, _ problem: inout String?) throws -> Int? {
        if s.atNumber() {
            if let v = try s.readInteger() { return v }
        } else {
            try s.skipValue()
        }
        if problem == nil { problem = "'\(name)' is not an integer" }
        return nil
    }

    func string(_ s: inout JSONByteScanner, _ name: String, _ problem: inout String?) throws -> String? {
        if s.peek() == UInt8(ascii: "\"") { return try s.readString() }
        try s.skipValue()
        if problem == nil { problem = "'\(name)' is not a string" }
        return nil
    }

    mutating func parseCategory(_ s: inout JSONByteScanner, ordinal: Int) throws {
        var id: Int? = nil, name = "", supercategory = ""
        var problem: String? = nil
        if s.peek() != UInt8(ascii: "{") {
            try s.skipValue(); problem = "is not an object"
        } else if try s.beginObject() {
            repeat {
                let key = try s.readKey()
                if s.key(key, is: "id") { id = try integer(&s, "id", &problem) }
                else if s.key(key, is: "name") { name = try string(&s, "name", &problem) ?? "" }
                else if s.key(key, is: "supercategory") { supercategory = try string(&s, "supercategory", &problem) ?? "" }
                else { try s.skipValue() }
            } while try s.nextMember()
        }
        let record = id.map { "category \($0)" } ?? "categories[\(ordinal)]"
        if problem == nil && id == nil { problem = "missing 'id'" }
        if problem == nil, let id, categoryIndexByID[id] != nil { problem = "duplicate category id \(id)" }
        if let problem { try bad(record, problem); return }
        categoryIndexByID[id!] = Int32(categories.count)
        categories.append(COCOCategory(id: id!, name: name, supercategory: supercategory))
    }

    mutating func parseImage(_ s: inout JSONByteScanner, ordinal: Int) throws {
        var id: Int? = nil, fileName: String? = nil, width: Int? = nil, height: Int? = nil
        var problem: String? = nil
        if s.peek() != UInt8(ascii: "{") {
            try s.skipValue(); problem = "is not an object"
        } else if try s.beginObject() {
            repeat {
                let key = try s.readKey()
                if s.key(key, is: "id") { id = try integer(&s, "id", &problem) }
                else if s.key(key, is: "file_name") { fileName = try string(&s, "file_name", &problem) }
                else if s.key(key, is: "width") { width = try integer(&s, "width", &problem) }
                else if s.key(key, is: "height") { height = try integer(&s, "height", &problem) }
                else { try s.skipValue() }
            } while try s.nextMember()
        }
        let record = id.map { "image \($0)" } ?? "images[\(ordinal)]"
        if problem == nil {
            if id == nil { problem = "missing 'id'" }
            else if fileName == nil || fileName!.isEmpty { problem = "missing 'file_name'" }
            else if let escape = pathEscapeProblem(fileName!) { problem = escape }
            else if width == nil || height == nil { problem = "missing 'width' or 'height'" }
            else if width! <= 0 || height! <= 0 || width! > 1 << 20 || height! > 1 << 20
                        || width! * height! > Int(UInt32.max) {
                problem = "invalid size \(width!)×\(height!)"
            } else if imageIndexByID[id!] != nil { problem = "duplicate image id \(id!)" }
        }
        if let problem { try bad(record, problem); return }
        imageIndexByID[id!] = Int32(images.count)
        images.append(COCOImageRecord(id: id!, fileName: fileName!, width: width!, height: height!))
    }

    mutating func parseAnnotation(_ s: inout JSONByteScanner, ordinal: Int) throws {
        let mark = (coords.count, partStart.count, rleCounts.count, rleBytes.count)
        var id: Int? = nil, imageID: Int? = nil, categoryID: Int? = nil
        var crowd: UInt8 = 0, area = Double.nan
        var box = [Double.nan, .nan, .nan, .nan]
        var kind: SegmentKind? = nil
        var lo = 0, hi = 0, rh: Int32 = 0, rw: Int32 = 0
        var problem: String? = nil
        if s.peek() != UInt8(ascii: "{") {
            try s.skipValue(); problem = "is not an object"
        } else if try s.beginObject() {
            repeat {
                let key = try s.readKey()
                if s.key(key, is: "segmentation") {
                    let c = s.peek()
                    if c == UInt8(ascii: "[") {
                        kind = .polygons; lo = partStart.count
                        if let p = try parsePolygons(&s), problem == nil { problem = p }
                        hi = partStart.count
                    } else if c == UInt8(ascii: "{") {
                        let r = try parseRLE(&s)
                        if let p = r.problem, problem == nil { problem = p }
                        kind = r.compressed ? .compressedRLE : .rle
                        (lo, hi, rh, rw) = (r.lo, r.hi, r.h, r.w)
                    } else {
                        try s.skipValue()
                        if problem == nil { problem = "'segmentation' is neither a list of polygons nor an RLE object" }
                    }
                } else if s.key(key, is: "id") { id = try integer(&s, "id", &problem) }
                else if s.key(key, is: "image_id") { imageID = try integer(&s, "image_id", &problem) }
                else if s.key(key, is: "category_id") { categoryID = try integer(&s, "category_id", &problem) }
                else if s.key(key, is: "iscrowd") {
                    let c = s.peek()
                    if c == UInt8(ascii: "t") || c == UInt8(ascii: "f") || s.atNumber() {
                        let v = try s.readBoolOrNumber()
                        if v == 0 || v == 1 { crowd = UInt8(v) } else if problem == nil { problem = "'iscrowd' is \(v), not 0 or 1" }
                    } else {
                        try s.skipValue(); if problem == nil { problem = "'iscrowd' is not 0 or 1" }
                    }
                } else if s.key(key, is: "area") {
                    if s.atNumber() { area = try s.readDouble() } else {
                        try s.skipValue(); if problem == nil { problem = "'area' is not a number" }
                    }
                } else if s.key(key, is: "bbox") {
                    var values: [Double] = []
                    if s.peek() == UInt8(ascii: "[") {
                        if try s.beginArray() {
                            repeat {
                                if s.atNumber() { values.append(try s.readDouble()) } else { try s.skipValue(); values.append(.nan) }
                            } while try s.nextElement()
                        }
                    } else {
                        try s.skipValue()
                    }
                    if values.count == 4 && !values.contains(where: { $0.isNaN }) { box = values }
                    else if problem == nil { problem = "'bbox' is not 4 numbers" }
                } else {
                    try s.skipValue()
                }
            } while try s.nextMember()
        }
        let record = id.map { "annotation \($0)" } ?? "annotations[\(ordinal)]"
        if problem == nil {
            if id == nil { problem = "missing 'id'" }
            else if imageID == nil { problem = "missing 'image_id'" }
            else if categoryID == nil { problem = "missing 'category_id'" }
            else if kind == nil { problem = "missing 'segmentation'" }
        }
        if let problem {
            coords.removeSubrange(mark.0...); partStart.removeSubrange(mark.1...)
            rleCounts.removeSubrange(mark.2...); rleBytes.removeSubrange(mark.3...)
            try bad(record, problem)
            return
        }
        annIDs.append(id!); annImageID.append(imageID!); annCategoryID.append(categoryID!)
        annFlags.append(crowd | (kind!.rawValue << 1))
        annArea.append(area); annBox.append(contentsOf: box)
        segLo.append(lo); segHi.append(hi); rleSize.append(rh); rleSize.append(rw)
    }

    /// Reads `[[x, y, …], …]` into `coords`/`partStart`; returns a problem, if any.
    mutating func parsePolygons(_ s: inout JSONByteScanner) throws -> String? {
        var problem: String? = nil
        guard try s.beginArray() else { return "'segmentation' is an empty list" }
        var part = 0
        repeat {
            if s.peek() == UInt8(ascii: "[") {
                partStart.append(coords.count)
                if try s.beginArray() {
                    repeat {
                        if s.atNumber() {
                            coords.append(try s.readDouble())
                        } else {
                            try s.skipValue()
                            if problem == nil { problem = "polygon \(part) holds something other than numbers" }
                        }
                    } while try s.nextElement()
                }
            } else {
                if problem == nil {
                    problem = s.atNumber() ? "'segmentation' is a flat list of numbers, not a list of polygons"
                                           : "'segmentation'[\(part)] is not a list of numbers"
                }
                try s.skipValue()
            }
            part += 1
        } while try s.nextElement()
        return problem
    }

    /// Reads `{"size": [h, w], "counts": [...] | "..."}` into `rleCounts`/`rleBytes`.
    mutating func parseRLE(_ s: inout JSONByteScanner)
        throws -> (problem: String?, compressed: Bool, lo: Int, hi: Int, h: Int32, w: Int32) {
        var problem: String? = nil
        var size: [Int] = []
        var compressed = false, haveCounts = false
        var lo = 0, hi = 0
        if try s.beginObject() {
            repeat {
                let key = try s.readKey()
                if s.key(key, is: "size") {
                    if s.peek() == UInt8(ascii: "[") {
                        if try s.beginArray() {
                            repeat {
                                var v: Int? = nil
                                if s.atNumber() { v = try s.readInteger() } else { try s.skipValue() }
                                size.append(v ?? -1)
                            } while try s.nextElement()
                        }
                    } else {
                        try s.skipValue()
                    }
                } else if s.key(key, is: "counts") {
                    haveCounts = true
                    let c = s.peek()
                    if c == UInt8(ascii: "\"") {
                        compressed = true
                        let (start, count, escapes) = try s.scanString()
                        lo = rleBytes.count
                        if escapes {
                            rleBytes.append(contentsOf: Array(s.decodeString(start: start, count: count).utf8))
                        } else {
                            rleBytes.append(contentsOf: UnsafeBufferPointer(start: s.base + start, count: count))
                        }
                        hi = rleBytes.count
                    } else if c == UInt8(ascii: "[") {
                        compressed = false
                        lo = rleCounts.count
                        if try s.beginArray() {
                            repeat {
                                var v: Int? = nil
                                if s.atNumber() { v = try s.readInteger() } else { try s.skipValue() }
                                if let v, v >= 0, v <= Int(UInt32.max) {
                                    rleCounts.append(UInt32(v))
                                } else if problem == nil {
                                    problem = "RLE counts hold something other than non-negative integers"
                                }
                            } while try s.nextElement()
                        }
                        hi = rleCounts.count
                    } else {
                        try s.skipValue()
                        if problem == nil { problem = "RLE 'counts' is neither a list nor a string" }
                    }
                } else {
                    try s.skipValue()
                }
            } while try s.nextMember()
        }
        if problem == nil {
            if size.count != 2 || size[0] < 0 || size[1] < 0 || size[0] > 1 << 20 || size[1] > 1 << 20
                || size[0] * size[1] > Int(UInt32.max) {
                problem = "RLE 'size' is not [height, width]"
            } else if !haveCounts { problem = "RLE has no 'counts'" }
        }
        let h = size.count == 2 ? Int32(clamping: size[0]) : 0, w = size.count == 2 ? Int32(clamping: size[1]) : 0
        return (problem, compressed, lo, hi, h, w)
    }

    // MARK: checks after scanning

    mutating func finish() throws(DataError) {
        partStart.append(coords.count)   // sentinel: end of the last part
        let n = annIDs.count
        annImage = [Int32](repeating: -1, count: n)
        annCategory = [Int32](repeating: -1, count: n)
        var perImage = [Int](repeating: 0, count: images.count + 1)
        for a in 0..<n {
            let record = "annotation \(annIDs[a])"
            guard let img = imageIndexByID[annImageID[a]] else {
                try bad(record, "image_id \(annImageID[a]) names no image in the file"); continue
            }
            guard let cat = categoryIndexByID[annCategoryID[a]] else {
                try bad(record, "category_id \(annCategoryID[a]) names no category in the file"); continue
            }
            if let problem = segmentationProblem(a, image: images[Int(img)]) { try bad(record, problem); continue }
            annImage[a] = img
            annCategory[a] = cat
            perImage[Int(img) + 1] += 1
        }
        // group kept annotations by image, file order within an image (counting sort)
        for i in 0..<images.count { perImage[i + 1] += perImage[i] }
        imageAnnStart = perImage
        var next = perImage
        annOrder = [Int32](repeating: 0, count: perImage[images.count])
        for a in 0..<n where annImage[a] >= 0 {
            let i = Int(annImage[a])
            annOrder[next[i]] = Int32(a)
            next[i] += 1
        }
        annImageID = []; annCategoryID = []
    }

    /// Why annotation `a`'s segmentation cannot be used on `image`, or nil.
    func segmentationProblem(_ a: Int, image: COCOImageRecord) -> String? {
        let W = Double(image.width), H = Double(image.height)
        switch SegmentKind(rawValue: annFlags[a] >> 1)! {
        case .polygons:
            var minX = Double.infinity, maxX = -Double.infinity, minY = Double.infinity, maxY = -Double.infinity
            for (k, p) in (segLo[a] ..< segHi[a]).enumerated() {
                let lo = partStart[p], n = partStart[p + 1] - lo
                if n % 2 != 0 { return "polygon \(k) has an odd number of coordinates (\(n))" }
                if n < 6 { return "polygon \(k) has \(n / 2) points (fewer than 3)" }
                for i in stride(from: lo, to: lo + n, by: 2) {
                    let x = coords[i], y = coords[i + 1]
                    guard x.isFinite && y.isFinite else { return "polygon \(k) has a non-finite coordinate" }
                    if x < -10 * W || x > 11 * W || y < -10 * H || y > 11 * H {
                        return "polygon \(k) has point (\(x), \(y)) more than 10 image sizes outside the \(image.width)×\(image.height) image"
                    }
                    minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y)
                }
                if isCollinear(lo, n / 2) { return "polygon \(k) has zero area (all its points lie on one line)" }
            }
            if maxX <= 0 || minX >= W || maxY <= 0 || minY >= H {
                return "polygons lie entirely outside the \(image.width)×\(image.height) image (x \(minX)…\(maxX), y \(minY)…\(maxY))"
            }
            return nil
        case .rle, .compressedRLE:
            let h = Int(rleSize[2 * a]), w = Int(rleSize[2 * a + 1])
            if h != image.height || w != image.width {
                return "RLE size [\(h), \(w)] differs from image \(image.id)'s [height, width] [\(image.height), \(image.width)]"
            }
            var sum = 0
            if annFlags[a] >> 1 == SegmentKind.rle.rawValue {
                for i in segLo[a] ..< segHi[a] { sum += Int(rleCounts[i]) }
            } else {
                switch parseCompressed(rleBytes, segLo[a] ..< segHi[a]) {
                case .success(let counts): sum = counts.reduce(0) { $0 + Int($1) }
                case .failure(let error): return error.problem
                }
            }
            if sum != h * w { return "RLE counts sum to \(sum), not h·w = \(h)·\(w) = \(h * w)" }
            return nil
        }
    }

    /// True if all `count` points starting at coords[lo] lie on one line (or coincide).
    func isCollinear(_ lo: Int, _ count: Int) -> Bool {
        let x0 = coords[lo], y0 = coords[lo + 1]
        var i = 1
        while i < count && coords[lo + 2 * i] == x0 && coords[lo + 2 * i + 1] == y0 { i += 1 }
        guard i < count else { return true }
        let dx = coords[lo + 2 * i] - x0, dy = coords[lo + 2 * i + 1] - y0
        for j in (i + 1) ..< max(i + 1, count) {
            let ex = coords[lo + 2 * j] - x0, ey = coords[lo + 2 * j + 1] - y0
            if dx * ey - dy * ex != 0 { return false }
        }
        return true
    }
}

/// Maps a whole file read-only for the duration of `body`.
private func withMappedFile(_ path: String,
                            _ body: (UnsafeBufferPointer<UInt8>) throws(DataError) -> Void) throws(DataError) {
    let file: MappedFile
    do { file = try MappedFile(path: path) } catch { throw DataError(file: path, problem: "cannot open the file: \(error.reason)") }
    try body(file.bytes)
}
