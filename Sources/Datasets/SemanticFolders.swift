// Semantic segmentation as two folders of files: `images/<split>/*` and one label PNG per image in
// `annotations/<split>/<stem>.png`, with the label encoding (ignore value, reduce-zero-label) as a parameter.
// ADE20K is this layout with reduce-zero-label and 150 classes; the `sem-seg` format is it with the user's encoding.
// Corresponds to detectron2's `load_sem_seg(gt_root, image_root)` with MetadataCatalog's `ignore_label`, and to
// mmsegmentation's `reduce_zero_label`.
import Foundation

/// How a label PNG's stored 8-bit values map to class indices `0..<numClasses` (and 255, "ignore", inside MaskPilot).
///
/// A stored `ignoreLabel` is ignored. With `reduceZeroLabel`, 0 is ignored too and k is class k − 1 (ADE20K's
/// 0 = unlabeled); otherwise k is class k. Any other value (a class ≥ `numClasses`) is an error.
public struct LabelEncoding: Sendable, Equatable {
    public var numClasses: Int
    public var ignoreLabel: UInt8
    public var reduceZeroLabel: Bool

    public init(numClasses: Int, ignoreLabel: UInt8 = 255, reduceZeroLabel: Bool = false) {
        self.numClasses = numClasses; self.ignoreLabel = ignoreLabel; self.reduceZeroLabel = reduceZeroLabel
    }

    /// ADE20K (SceneParsing): 0 unlabeled, 1…150 the classes; anything else is an error.
    public static let ade20k = LabelEncoding(numClasses: 150, ignoreLabel: 0, reduceZeroLabel: true)

    /// Why this encoding cannot be used, or nil: the classes' stored values must fit in 0…255 and must not include
    /// the ignore value (that class could never be labelled).
    public var problem: String? {
        guard numClasses >= 1 else { return "no classes" }
        let last = storedValue(ofClass: numClasses - 1)
        if last > 255 { return "\(numClasses) classes need stored values up to \(last), beyond the 8-bit label PNG's 255" }
        if (storedValue(ofClass: 0)...last).contains(Int(ignoreLabel)) {
            return "the ignore value \(ignoreLabel) is the stored value of class \(Int(ignoreLabel) - storedValue(ofClass: 0)) of \(numClasses)"
        }
        return nil
    }

    /// The stored value of class `c` (what a prediction PNG holds): `c + 1` under reduce-zero-label, else `c`.
    public func storedValue(ofClass c: Int) -> Int { reduceZeroLabel ? c + 1 : c }

    /// The stored values that are classes, for messages: "1…150 (0 unlabeled)" or "0…18 (255 ignored)".
    public var storedRangeDescription: String {
        let classes = "\(storedValue(ofClass: 0))…\(storedValue(ofClass: numClasses - 1))"
        var ignored = reduceZeroLabel ? ["0"] : []
        if !(reduceZeroLabel && ignoreLabel == 0) { ignored.append("\(ignoreLabel)") }
        return "\(classes) (\(ignored.joined(separator: " and ")) ignored)"
    }

    /// The lookup from stored value to class index (255 = ignored), nil for values that are neither.
    public var table: [UInt8?] {
        (0...255).map { v -> UInt8? in
            if v == Int(ignoreLabel) || (reduceZeroLabel && v == 0) { return 255 }
            let c = reduceZeroLabel ? v - 1 : v
            return c < numClasses ? UInt8(c) : nil
        }
    }

    /// `labels` (stored values) as class indices with 255 for ignored pixels; a value that is neither names
    /// `file`, `record`, the value and its pixel.
    public func decode(_ labels: [UInt8], width: Int, file: String, record: String) throws -> [UInt8] {
        let t = table
        var out = labels
        for j in out.indices {
            guard let c = t[Int(out[j])] else {
                throw DataError(file: file, record: record,
                                problem: "label \(out[j]) at pixel \(j % width),\(j / width) is outside \(storedRangeDescription)")
            }
            out[j] = c
        }
        return out
    }
}

/// `ROOT/images/<split>/*.{jpg,jpeg,png}` with `ROOT/annotations/<split>/<stem>.png` label maps (gray or palette
/// indices), sorted by file name.
public struct SemanticFolders: Sendable {
    public let root: String
    public let split: String
    public let encoding: LabelEncoding
    /// Image and annotation paths, sorted by image file name.
    public let images: [String]
    public let annotations: [String]

    /// Lists the image folder of `layout` (default `root/images/<split>`) for files ending in one of `extensions` (lower
    /// case, compared case-insensitively); each needs `<stem>.png` in the label folder (default
    /// `root/annotations/<split>`), and no two images may share a stem, else a `DataError` names the files.
    /// `expected` describes the image folder in the error for a missing one.
    public init(root: String, split: String, encoding: LabelEncoding, layout: DatasetLayout = .semanticFolders,
                extensions: [String] = ["jpg", "jpeg", "png"], expected: String? = nil) throws {
        let fm = FileManager.default
        let (_, imageDir, annotationDir) = layout.paths(root: root, split: split)
        guard imageDir != annotationDir else {
            throw DataError(file: imageDir, problem: "holds both the images and the label PNGs: the image folder and the label folder "
                                                     + "must differ (data.image_folder, data.label_folder)")
        }
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: imageDir, isDirectory: &isDir), isDir.boolValue,
              let names = try? fm.contentsOfDirectory(atPath: imageDir) else {
            throw DataError(file: imageDir, problem: "no such folder (expected \(expected ?? "the images of split \(split)"))")
        }
        let files = names.filter { extensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }.sorted()
        if files.isEmpty {
            throw DataError(file: imageDir, problem: "no images (files ending in " + extensions.map { ".\($0)" }.joined(separator: ", ") + ")")
        }
        var imgs: [String] = [], anns: [String] = [], byStem: [String: String] = [:]
        for name in files {
            let stem = URL(fileURLWithPath: name).deletingPathExtension().lastPathComponent
            if let other = byStem[stem] {
                throw DataError(file: "\(imageDir)/\(name)", problem: "shares its name \(stem) with \(other): which one \(stem).png labels is ambiguous")
            }
            byStem[stem] = name
            let ann = "\(annotationDir)/\(stem).png"
            guard fm.fileExists(atPath: ann) else {
                throw DataError(file: ann, record: "image \(stem)", problem: "annotation PNG missing")
            }
            imgs.append("\(imageDir)/\(name)"); anns.append(ann)
        }
        self.root = root; self.split = split; self.encoding = encoding; images = imgs; annotations = anns
    }

    public var count: Int { images.count }

    /// The image id (file stem) of sample `i`.
    public func imageId(_ i: Int) -> String { URL(fileURLWithPath: images[i]).deletingPathExtension().lastPathComponent }

    /// The annotation file name of sample `i` (a prediction PNG's name).
    public func annotationName(_ i: Int) -> String { URL(fileURLWithPath: annotations[i]).lastPathComponent }

    /// The class map of sample `i` (255 ignored), without its image. A label outside the encoding is an error
    /// naming the file, the value and the pixel.
    public func labels(_ i: Int) throws -> LabelMap {
        let ann = try loadImage(path: annotations[i], mode: .indices)
        let labels = try encoding.decode(ann.pixels, width: ann.width, file: annotations[i], record: "image \(imageId(i))")
        return LabelMap(width: ann.width, height: ann.height, labels: labels)
    }

    /// Sample `i`: the RGB image and its class map (255 ignored). A label outside the encoding, or an annotation
    /// whose size differs from the image, is an error naming the file.
    public func load(_ i: Int) throws -> (image: Image8, labels: LabelMap) {
        let image = try loadImage(path: images[i], mode: .rgb)
        let map = try labels(i)
        guard map.width == image.width && map.height == image.height else {
            throw DataError(file: annotations[i], record: "image \(imageId(i))",
                            problem: "annotation is \(map.width)×\(map.height) but the image is \(image.width)×\(image.height)")
        }
        return (image, map)
    }

    /// Sample `i` for the augmentation pipelines; its image id (which keys the augmentation) is `i`.
    public func sample(_ i: Int) throws -> Sample {
        let (image, labels) = try load(i)
        return Sample(imageId: i, image: image, targets: .semantic(labels))
    }
}
