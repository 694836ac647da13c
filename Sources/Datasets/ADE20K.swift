// ADE20K (SceneParsing ADEChallengeData2016): the semantic folder layout with the reduce-zero-label convention.
// Corresponds to Mask2Former datasets/prepare_ade20k_sem_seg.py + detectron2's sem_seg loading (docs/model.md#classes-and-ground-truth).
import Foundation

/// `ADEChallengeData2016/images/{training,validation}/*.jpg` with `annotations/…/*.png` label maps.
///
/// Annotation PNGs store 0 = unlabeled and 1…150 = classes; reading applies reduce-zero-label:
/// 0 → 255 (ignored) and k → k − 1, so classes are 0…149 (the `label − 1` on uint8 of docs/model.md#classes-and-ground-truth).
public struct ADE20KDataset: Sendable {
    public static let numClasses = LabelEncoding.ade20k.numClasses
    /// The split's files, read with `LabelEncoding.ade20k`.
    public let folders: SemanticFolders

    /// Lists `root/images/<split>` (the folder may also be `root/ADEChallengeData2016`); every image must
    /// have its annotation, else a `DataError` names the image.
    public init(root: String, split: String) throws {
        let fm = FileManager.default
        var base = root
        if !fm.fileExists(atPath: "\(base)/images/\(split)"), fm.fileExists(atPath: "\(base)/ADEChallengeData2016/images/\(split)") {
            base = "\(root)/ADEChallengeData2016"
        }
        folders = try SemanticFolders(root: base, split: split, encoding: .ade20k, extensions: ["jpg"],
                                      expected: "ADEChallengeData2016/images/\(split)")
    }

    public var root: String { folders.root }
    public var split: String { folders.split }
    public var images: [String] { folders.images }
    public var annotations: [String] { folders.annotations }
    public var count: Int { folders.count }

    /// Class names from the release's `objectInfo150.txt` (tab-separated `Idx Ratio Train Val Name`; the first of
    /// the `;`-separated synonyms), index = label − 1; nil when the file is absent or not in that form.
    public var classNames: [String]? {
        guard let text = try? String(contentsOfFile: "\(root)/objectInfo150.txt", encoding: .utf8) else { return nil }
        var names = [String](repeating: "", count: ADE20KDataset.numClasses)
        for line in text.split(whereSeparator: \.isNewline).dropFirst() {
            let fields = line.split(separator: "\t")
            guard fields.count >= 5, let idx = Int(fields[0].trimmingCharacters(in: .whitespaces)),
                  (1...ADE20KDataset.numClasses).contains(idx) else { return nil }
            names[idx - 1] = fields[4].split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        }
        return names.contains("") ? nil : names
    }

    /// The image id (file stem) of sample `i`.
    public func imageId(_ i: Int) -> String { folders.imageId(i) }

    /// Sample `i`: the RGB image and its label map after reduce-zero-label. A label above 150, or an
    /// annotation whose size differs from the image, is an error naming the file.
    public func load(_ i: Int) throws -> (image: Image8, labels: LabelMap) { try folders.load(i) }

    /// Sample `i` for the augmentation pipelines; the image id is the number in the file name
    /// (`ADE_train_00000042` → 42), unique within a split.
    public func sample(_ i: Int) throws -> Sample {
        let (image, labels) = try load(i)
        let digits = imageId(i).filter(\.isNumber)
        return Sample(imageId: Int(digits) ?? i, image: image, targets: .semantic(labels))
    }
}
