// Synthetic datasets in the official COCO instances, COCO panoptic, ADE20K and Cityscapes layouts and the sem-seg folder layout (real JPEG/PNG + JSON).
// No reference counterpart: MaskPilot's stand-in for downloading COCO / ADE20K in tests, the smoke test and experiments.
import Foundation
import TensorCore

/// Which official layout `writeSyntheticDataset` produces.
public enum SyntheticFormat: String, Sendable, CaseIterable {
    case cocoInstance = "coco-instance"
    case cocoPanoptic = "coco-panoptic"
    case ade20k
    /// All three Cityscapes readings at once: leftImg8bit + gtFine (labelIds, instanceIds, color, polygons) + the
    /// panoptic JSON and PNGs.
    case cityscapes
    /// The generic semantic folder layout (`images/<split>/*.jpg`, `annotations/<split>/*.png`) with the stuff and
    /// thing classes stored as 0…6 (`SyntheticClasses.semSegNames`) and 255 on the unlabeled seam.
    case semSeg = "sem-seg"
}

/// Options of `maskpilot data synth`.
public struct SyntheticOptions: Sendable {
    public var format: SyntheticFormat
    public var images: Int
    public var width: Int
    public var height: Int
    public var seed: UInt64
    /// Split name: COCO `train2017`-style (`instances_<split>.json`, images in `<split>/`); ADE20K `training`/`validation`.
    public var split: String
    public var difficulty: SyntheticDifficulty
    /// Thing classes (COCO formats): 5 is the standard label space (`SyntheticClasses`); more gives
    /// `SyntheticLabelSpace.extended` with look-alike pairs.
    public var classes: Int

    public init(format: SyntheticFormat, images: Int, width: Int, height: Int, seed: UInt64, split: String? = nil,
                difficulty: SyntheticDifficulty = .standard, classes: Int = SyntheticClasses.thingNames.count) {
        self.format = format; self.images = images; self.width = width; self.height = height; self.seed = seed
        self.classes = classes
        self.split = split ?? (format == .ade20k || format == .semSeg ? "training" : format == .cityscapes ? "train" : "train2017")
        self.difficulty = difficulty
    }
}

/// How cluttered the synthetic scenes are.
/// - `standard`: 2–5 objects of 15–40 % of the image side, each in its class colour.
/// - `hard`: 6–11 smaller objects (8–30 %), so occlusion is frequent; every object's colour is jittered by up to ±45
///   per channel around its class colour; 1–4 grey distractor shapes (not annotated) lie under the objects. The
///   class still follows from shape and hue, but matching has crowded, similar-looking candidates.
public enum SyntheticDifficulty: String, Sendable, CaseIterable {
    case standard, hard
}

/// The synthetic label space: thing class c has shape `c % 3` (rectangle, ellipse, triangle) and colour
/// `palette[c]`, so a model can learn classes from appearance. Stuff classes are coloured bands.
public enum SyntheticClasses {
    public static let thingNames = ["red box", "green disc", "blue wedge", "yellow box", "cyan disc"]
    public static let stuffNames = ["sky", "grass"]
    /// COCO-style category ids (not contiguous, to exercise the mapping): things, then stuff.
    public static let thingIds = [1, 2, 3, 5, 7]
    public static let stuffIds = [92, 93]
    static let thingColours: [[UInt8]] = [[220, 30, 30], [30, 200, 40], [40, 60, 230], [230, 220, 30], [30, 210, 220]]
    static let stuffColours: [[UInt8]] = [[150, 170, 200], [90, 140, 70]]
    /// ADE20K class indices (0-based, stored +1 in the PNG) used for things and stuff.
    public static let adeThings = [12, 20, 41, 66, 90]
    public static let adeStuff = [2, 9]
    /// The `sem-seg` classes in stored order: the stuff, then the things.
    public static let semSegNames = stuffNames + thingNames
}

/// The thing classes of a synthetic dataset: each class's shape (0 box, 1 disc, 2 wedge, 3 diamond), colour, name and
/// COCO category id.
/// - `standard` (5 classes): `SyntheticClasses` — shape `c % 3`, five saturated colours, ids 1, 2, 3, 5, 7.
/// - `extended(n)` (6…64 classes, for the powered experiment): classes come in look-alike pairs (2k, 2k + 1) of the
///   same shape and hue, the second at 70 % of the first's brightness, so only brightness tells them apart (and with
///   `hard`'s ±45 colour jitter not always); pair k has shape `k % 4` and hue `k · 360° / ⌈n/2⌉`; ids 1…n.
public struct SyntheticLabelSpace: Sendable, Equatable {
    public let count: Int
    public static let standard = SyntheticLabelSpace(count: SyntheticClasses.thingNames.count)
    public static let maxClasses = 64

    public init(count: Int) { self.count = count }

    var isStandard: Bool { count == SyntheticClasses.thingNames.count }

    public func shape(_ c: Int) -> Int { isStandard ? c % 3 : (c / 2) % 4 }

    public func colour(_ c: Int) -> [UInt8] {
        if isStandard { return SyntheticClasses.thingColours[c] }
        let pairs = (count + 1) / 2, hue = Double(c / 2) * 360 / Double(pairs)
        // HSV (hue, 0.85, 0.9) → RGB, then the pair's second member at 70 % brightness.
        let v = 0.9 * (c % 2 == 0 ? 1 : 0.7), sat = 0.85
        let h = hue / 60, x = v * sat * (1 - abs(h.truncatingRemainder(dividingBy: 2) - 1)), chroma = v * sat, m = v - chroma
        let (r, g, b): (Double, Double, Double)
        switch Int(h) % 6 {
        case 0: (r, g, b) = (chroma, x, 0)
        case 1: (r, g, b) = (x, chroma, 0)
        case 2: (r, g, b) = (0, chroma, x)
        case 3: (r, g, b) = (0, x, chroma)
        case 4: (r, g, b) = (x, 0, chroma)
        default: (r, g, b) = (chroma, 0, x)
        }
        return [r, g, b].map { UInt8(max(0, min(255, (($0 + m) * 255).rounded()))) }
    }

    public func name(_ c: Int) -> String {
        if isStandard { return SyntheticClasses.thingNames[c] }
        return "\(["box", "disc", "wedge", "diamond"][shape(c)]) \(c / 2)\(c % 2 == 0 ? "" : " dark")"
    }

    public func cocoID(_ c: Int) -> Int { isStandard ? SyntheticClasses.thingIds[c] : c + 1 }
}

/// One drawn object: its class, polygon parts (COCO [x1, y1, x2, y2, …]), and the pixels it shows.
struct SyntheticObject {
    var thing: Int
    var parts: [[Double]]
    var full: BinaryMask
    var visible: BinaryMask
    var crowd: Bool
}

/// One synthetic image: pixels, stuff band per row range, objects front to back order of drawing.
struct SyntheticScene {
    var image: Image8
    /// Stuff class of each pixel (index into `SyntheticClasses.stuffNames`), or −1 on the void seam.
    var stuff: [Int8]
    var objects: [SyntheticObject]
}

func makeSyntheticScene(width w: Int, height h: Int, difficulty: SyntheticDifficulty = .standard, classes: SyntheticLabelSpace = .standard,
                        rng: inout RNG) -> SyntheticScene {
    let hard = difficulty == .hard
    var stuff = [Int8](repeating: 0, count: w * h)
    let horizon = h / 3 + rng.nextInt(below: max(1, h / 3))
    for y in 0..<h { for x in 0..<w { stuff[y * w + x] = y < horizon ? 0 : (y == horizon ? -1 : 1) } }  // void seam
    var pixels = [UInt8](repeating: 0, count: w * h * 3)
    for i in 0..<(w * h) where stuff[i] >= 0 {
        let c = SyntheticClasses.stuffColours[Int(stuff[i])]
        for ch in 0..<3 { pixels[i * 3 + ch] = c[ch] }
    }
    if hard {
        // Unannotated grey distractors under the objects.
        for _ in 0..<(1 + rng.nextInt(below: 4)) {
            let bw = Double(w) * (0.1 + 0.2 * rng.nextDouble()), bh = Double(h) * (0.1 + 0.2 * rng.nextDouble())
            let x0 = Double(rng.nextInt(below: max(1, w - Int(bw)))), y0 = Double(rng.nextInt(below: max(1, h - Int(bh))))
            let grey = UInt8(90 + rng.nextInt(below: 120))
            let shape = rng.nextInt(below: 2) == 0
                ? [x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh] : [x0 + bw / 2, y0, x0 + bw, y0 + bh, x0, y0 + bh]
            let m = COCORLE.polygons([shape], height: h, width: w).decode()
            for p in 0..<(w * h) where m.bits[p] != 0 { for ch in 0..<3 { pixels[p * 3 + ch] = grey } }
        }
    }
    var objects: [SyntheticObject] = []
    var colours: [[UInt8]] = []
    let count = hard ? 6 + rng.nextInt(below: 6) : 2 + rng.nextInt(below: 4)
    let (minSide, sideRange) = hard ? (0.08, 0.22) : (0.15, 0.25)
    for k in 0..<count {
        let thing = rng.nextInt(below: classes.count)
        let partCount = rng.nextDouble() < 0.2 ? 2 : 1
        var parts: [[Double]] = []
        for _ in 0..<partCount {
            let bw = Double(w) * (minSide + sideRange * rng.nextDouble()), bh = Double(h) * (minSide + sideRange * rng.nextDouble())
            let x0 = Double(rng.nextInt(below: max(1, w - Int(bw)))), y0 = Double(rng.nextInt(below: max(1, h - Int(bh))))
            switch classes.shape(thing) {
            case 0: parts.append([x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh])
            case 1:
                var poly: [Double] = []
                for j in 0..<20 {
                    let a = 2 * Double.pi * Double(j) / 20
                    poly += [x0 + bw / 2 * (1 + cos(a)), y0 + bh / 2 * (1 + sin(a))]
                }
                parts.append(poly)
            case 2: parts.append([x0 + bw / 2, y0, x0 + bw, y0 + bh, x0, y0 + bh])
            default: parts.append([x0 + bw / 2, y0, x0 + bw, y0 + bh / 2, x0 + bw / 2, y0 + bh, x0, y0 + bh / 2])
            }
        }
        let full = COCORLE.polygons(parts, height: h, width: w).decode()
        if full.area == 0 { continue }
        objects.append(SyntheticObject(thing: thing, parts: parts, full: full, visible: full,
                                       crowd: k == count - 1 && rng.nextDouble() < 0.15))
        var colour = classes.colour(thing)
        if hard { colour = colour.map { UInt8(clamping: Int($0) + rng.nextInt(below: 91) - 45) } }
        colours.append(colour)
    }
    // Paint back to front; later objects occlude earlier ones.
    for (i, o) in objects.enumerated() {
        let colour = colours[i]
        for p in 0..<(w * h) where o.full.bits[p] != 0 {
            for ch in 0..<3 { pixels[p * 3 + ch] = colour[ch] }
            for j in 0..<i where objects[j].visible.bits[p] != 0 { objects[j].visible.bits[p] = 0 }
        }
    }
    // Mild noise so JPEG sees texture, never changing which colour a pixel shows.
    for i in 0..<pixels.count {
        let n = Int(rng.nextInt(below: 17)) - 8
        pixels[i] = UInt8(clamping: Int(pixels[i]) + n)
    }
    return SyntheticScene(image: Image8(width: w, height: h, channels: 3, pixels: pixels), stuff: stuff,
                          objects: objects.filter { $0.visible.area > 0 })
}

/// Writes `options.images` images and their annotations under `root` in the official layout of
/// `options.format`. Returns the number of annotations (instances or segments) written.
@discardableResult
public func writeSyntheticDataset(root: String, options o: SyntheticOptions) throws -> Int {
    let fm = FileManager.default
    func mkdir(_ p: String) throws {
        do { try fm.createDirectory(atPath: p, withIntermediateDirectories: true) } catch {
            throw DataError(file: p, problem: "cannot create folder: \(error.localizedDescription)")
        }
    }
    let space = SyntheticLabelSpace(count: o.classes)
    guard o.classes == SyntheticLabelSpace.standard.count || (o.format == .cocoInstance || o.format == .cocoPanoptic) else {
        throw DataError(file: root, problem: "--classes applies to coco-instance and coco-panoptic (\(o.format.rawValue) has a fixed label space)")
    }
    guard (1...SyntheticLabelSpace.maxClasses).contains(o.classes), o.classes >= SyntheticLabelSpace.standard.count else {
        throw DataError(file: root, problem: "--classes must be within \(SyntheticLabelSpace.standard.count)…\(SyntheticLabelSpace.maxClasses), got \(o.classes)")
    }
    var rng = RNG(seed: o.seed, stream: 0x5EED)
    let w = o.width, h = o.height
    var annotationCount = 0
    switch o.format {
    case .cityscapes:
        annotationCount = try writeSyntheticCityscapes(root: root, options: o)
    case .ade20k, .semSeg:
        // ADE20K stores its class indices + 1 (0 unlabeled); sem-seg the 7 synthetic classes as 0…6 (255 unlabeled).
        let ade = o.format == .ade20k
        let base = ade ? "\(root)/ADEChallengeData2016" : root
        let unlabeled: UInt8 = ade ? 0 : 255
        let stuffValues = ade ? SyntheticClasses.adeStuff.map { UInt8($0 + 1) } : (0..<SyntheticClasses.stuffNames.count).map { UInt8($0) }
        let thingValues = ade ? SyntheticClasses.adeThings.map { UInt8($0 + 1) }
                              : (0..<SyntheticClasses.thingNames.count).map { UInt8(SyntheticClasses.stuffNames.count + $0) }
        try mkdir("\(base)/images/\(o.split)"); try mkdir("\(base)/annotations/\(o.split)")
        for i in 0..<o.images {
            let scene = makeSyntheticScene(width: w, height: h, difficulty: o.difficulty, rng: &rng)
            var labels = [UInt8](repeating: unlabeled, count: w * h)
            for p in 0..<(w * h) where scene.stuff[p] >= 0 { labels[p] = stuffValues[Int(scene.stuff[p])] }
            for obj in scene.objects {
                for p in 0..<(w * h) where obj.visible.bits[p] != 0 { labels[p] = thingValues[obj.thing] }
            }
            let name = ade ? String(format: "ADE_%@_%08d", o.split == "validation" ? "val" : "train", i + 1) : String(format: "scene_%05d", i)
            try writeJPEG(scene.image, to: "\(base)/images/\(o.split)/\(name).jpg")
            try writePNG(Image8(width: w, height: h, channels: 1, pixels: labels), to: "\(base)/annotations/\(o.split)/\(name).png")
            annotationCount += Set(labels).subtracting([unlabeled]).count
        }
    case .cocoInstance, .cocoPanoptic:
        try mkdir("\(root)/\(o.split)"); try mkdir("\(root)/annotations")
        if o.format == .cocoPanoptic { try mkdir("\(root)/annotations/panoptic_\(o.split)") }
        var images: [[String: Any]] = [], annotations: [[String: Any]] = []
        var nextId = 1
        for i in 0..<o.images {
            let imageId = 1000 + i * 7
            let file = String(format: "%012d", imageId)
            let scene = makeSyntheticScene(width: w, height: h, difficulty: o.difficulty, classes: space, rng: &rng)
            try writeJPEG(scene.image, to: "\(root)/\(o.split)/\(file).jpg")
            images.append(["id": imageId, "file_name": "\(file).jpg", "width": w, "height": h])
            if o.format == .cocoInstance {
                for obj in scene.objects {
                    // Polygons outline the object where it is mostly visible; an occluded object (as COCO
                    // annotates what is visible) and some others are compressed RLE of the visible pixels;
                    // crowd regions are uncompressed RLE, as in COCO.
                    let segmentation: Any
                    let annotated: BinaryMask
                    let occluded = obj.visible.area * 10 < obj.full.area * 6
                    if obj.crowd {
                        annotated = obj.visible
                        segmentation = ["size": [h, w], "counts": COCORLE(mask: annotated).counts.map { Int($0) }] as [String: Any]
                    } else if occluded || rng.nextDouble() < 0.15 {
                        annotated = obj.visible
                        segmentation = ["size": [h, w], "counts": COCORLE(mask: annotated).compressedCounts] as [String: Any]
                    } else {
                        annotated = obj.full
                        segmentation = obj.parts
                    }
                    let rle = COCORLE(mask: annotated)
                    annotations.append(["id": nextId, "image_id": imageId, "category_id": space.cocoID(obj.thing),
                                        "segmentation": segmentation, "area": Double(rle.area), "bbox": rle.boundingBox,
                                        "iscrowd": obj.crowd ? 1 : 0])
                    nextId += 1
                }
            } else {
                var ids = [UInt32](repeating: 0, count: w * h)
                var segments: [[String: Any]] = []
                func segment(_ mask: (Int) -> Bool, category: Int, crowd: Bool) {
                    let id = UInt32(nextId * 9_973 % 16_777_213 + 1)   // spread over the three bytes
                    nextId += 1
                    var area = 0, x0 = w, y0 = h, x1 = -1, y1 = -1
                    for p in 0..<(w * h) where mask(p) {
                        ids[p] = id; area += 1
                        x0 = min(x0, p % w); x1 = max(x1, p % w); y0 = min(y0, p / w); y1 = max(y1, p / w)
                    }
                    guard area > 0 else { return }
                    segments.append(["id": Int(id), "category_id": category, "iscrowd": crowd ? 1 : 0, "area": area,
                                     "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1]])
                }
                for (s, cat) in SyntheticClasses.stuffIds.enumerated() { segment({ scene.stuff[$0] == Int8(s) }, category: cat, crowd: false) }
                for obj in scene.objects {
                    segment({ obj.visible.bits[$0] != 0 }, category: space.cocoID(obj.thing), crowd: obj.crowd)
                }
                let rgb = ids.flatMap { [UInt8($0 & 255), UInt8(($0 >> 8) & 255), UInt8($0 >> 16)] }
                try writePNG(Image8(width: w, height: h, channels: 3, pixels: rgb), to: "\(root)/annotations/panoptic_\(o.split)/\(file).png")
                annotations.append(["image_id": imageId, "file_name": "\(file).png", "segments_info": segments])
                annotationCount += segments.count
            }
            if o.format == .cocoInstance { annotationCount = annotations.count }
        }
        var categories: [[String: Any]] = []
        for c in 0..<space.count {
            categories.append(["id": space.cocoID(c), "name": space.name(c), "supercategory": "shape", "isthing": 1])
        }
        if o.format == .cocoPanoptic {
            for (i, id) in SyntheticClasses.stuffIds.enumerated() {
                categories.append(["id": id, "name": SyntheticClasses.stuffNames[i], "supercategory": "stuff", "isthing": 0])
            }
        }
        let json: [String: Any] = ["info": ["description": "MaskPilot synthetic dataset", "version": "1.0"],
                                   "licenses": [], "images": images, "annotations": annotations, "categories": categories]
        let path = "\(root)/annotations/\(o.format == .cocoInstance ? "instances" : "panoptic")_\(o.split).json"
        do {
            let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
            let tmp = path + ".tmp"
            try data.write(to: URL(fileURLWithPath: tmp))
            guard rename(tmp, path) == 0 else {
                throw DataError(file: path, problem: "cannot rename \(tmp) into place: \(String(cString: strerror(errno)))")
            }
        } catch let e as DataError { throw e } catch {
            throw DataError(file: path, problem: "cannot write: \(error.localizedDescription)")
        }
    }
    return annotationCount
}
