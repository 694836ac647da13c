// Where a split's files are inside a dataset root, for the formats whose layout a user may change: COCO instances,
// COCO panoptic and sem-seg. Paths are relative to the root unless absolute; `{split}` stands for the split name.
// Corresponds to detectron2's `register_coco_instances(name, {}, json_file, image_root)`,
// `register_coco_panoptic(…, panoptic_root, panoptic_json)` and `load_sem_seg(gt_root, image_root)`.
import Foundation

/// A split's annotation file (COCO formats), image folder and label folder (COCO panoptic PNGs, sem-seg label PNGs)
/// as patterns over the root and the split name.
public struct DatasetLayout: Sendable, Equatable {
    /// The annotation JSON (COCO formats; unused by sem-seg).
    public var annotationFile: String
    public var imageFolder: String
    /// The label PNGs' folder (COCO panoptic segment PNGs, sem-seg label maps; unused by COCO instances).
    public var labelFolder: String

    public init(annotationFile: String, imageFolder: String, labelFolder: String) {
        self.annotationFile = annotationFile; self.imageFolder = imageFolder; self.labelFolder = labelFolder
    }

    /// COCO instances: `annotations/instances_<split>.json`, images in `<split>/`.
    public static let cocoInstances = DatasetLayout(annotationFile: "annotations/instances_{split}.json", imageFolder: "{split}", labelFolder: "")
    /// COCO panoptic: `annotations/panoptic_<split>.json`, PNGs in `annotations/panoptic_<split>/`, images in `<split>/`.
    public static let cocoPanoptic = DatasetLayout(annotationFile: "annotations/panoptic_{split}.json", imageFolder: "{split}",
                                                   labelFolder: "annotations/panoptic_{split}")
    /// The semantic folders (ADE20K's and sem-seg's): `images/<split>/`, `annotations/<split>/`.
    public static let semanticFolders = DatasetLayout(annotationFile: "", imageFolder: "images/{split}", labelFolder: "annotations/{split}")

    /// `pattern` with `{split}` replaced, under `root` unless it is absolute.
    public static func resolve(_ pattern: String, root: String, split: String) -> String {
        let path = pattern.replacingOccurrences(of: "{split}", with: split)
        if path.hasPrefix("/") || root.isEmpty { return path }
        return root.hasSuffix("/") ? root + path : root + "/" + path
    }

    /// The three paths for `split` under `root`.
    public func paths(root: String, split: String) -> (annotationFile: String, imageFolder: String, labelFolder: String) {
        (Self.resolve(annotationFile, root: root, split: split), Self.resolve(imageFolder, root: root, split: split),
         Self.resolve(labelFolder, root: root, split: split))
    }
}
