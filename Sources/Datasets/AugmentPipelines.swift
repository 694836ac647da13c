// The training and test-time augmentation recipes (ADE20K semantic, COCO LSJ) from a decoded sample to its targets.
// Corresponds to Mask2Former's MaskFormerSemanticDatasetMapper and COCO{Instance,Panoptic}NewBaselineDatasetMapper (docs/model.md#augmentation).
import TensorCore

// MARK: - Input

/// Produces an object's mask at the output size after the geometric transforms, e.g. COCO polygons
/// rasterized after the transform (as the reference does). `transform` maps source pixel coordinates
/// (a pixel covers [i, i+1)) to the output frame; the result must be `width × height`.
///
/// To match detectron2 exactly, a polygon rasterizer maps every vertex with `transform`, clips the
/// polygon to the output rectangle [0, width] × [0, height] (detectron2 intersects polygons with the
/// crop box using shapely; with LSJ that box is the whole 1024² output), then rasterizes with the
/// COCO API's rule (`frPyObjects` + `decode`, parts merged). A horizontal flip makes `scaleX`
/// negative, so polygon orientation flips too (irrelevant to the COCO rule).
public protocol MaskRasterizer: Sendable {
    func rasterize(width: Int, height: Int, transform: AxisAlignedAffine) throws -> BinaryMask
}

/// A `MaskRasterizer` from a closure.
public struct ClosureMaskRasterizer: MaskRasterizer {
    public let body: @Sendable (Int, Int, AxisAlignedAffine) throws -> BinaryMask
    public init(_ body: @escaping @Sendable (_ width: Int, _ height: Int, _ transform: AxisAlignedAffine) throws -> BinaryMask) {
        self.body = body
    }
    public func rasterize(width: Int, height: Int, transform: AxisAlignedAffine) throws -> BinaryMask {
        try body(width, height, transform)
    }
}

/// An instance's mask before augmentation.
public enum InstanceMask: Sendable {
    /// Already rasterized at the image size; moved with nearest resampling.
    case bitmap(BinaryMask)
    /// Rasterized after the transform at the output size (polygons).
    case deferred(any MaskRasterizer)
}

/// One annotated object (COCO instance) with its contiguous class index.
public struct InstanceAnnotation: Sendable {
    /// Annotation id (kept for inspection; not used by the loss).
    public var id: Int
    public var classIndex: Int
    public var isCrowd: Bool
    public var mask: InstanceMask
    public init(id: Int, classIndex: Int, isCrowd: Bool, mask: InstanceMask) {
        self.id = id; self.classIndex = classIndex; self.isCrowd = isCrowd; self.mask = mask
    }
}

/// One segment of a panoptic id map.
public struct PanopticSegment: Sendable, Hashable {
    /// Segment id as stored in the PNG (R + 256·G + 256²·B); never 0.
    public var id: UInt32
    public var classIndex: Int
    public var isCrowd: Bool
    public init(id: UInt32, classIndex: Int, isCrowd: Bool) {
        self.id = id; self.classIndex = classIndex; self.isCrowd = isCrowd
    }
}

/// A panoptic annotation: a row-major id map (0 = void) and its segments.
public struct PanopticTargets: Sendable {
    public var width: Int, height: Int
    public var ids: [UInt32]
    public var segments: [PanopticSegment]
    public init(width: Int, height: Int, ids: [UInt32], segments: [PanopticSegment]) {
        precondition(ids.count == width * height, "panoptic id map of \(ids.count) for \(width)×\(height)")
        self.width = width; self.height = height; self.ids = ids; self.segments = segments
    }
}

/// The annotation of one image before augmentation.
public enum SampleTargets: Sendable {
    /// Semantic labels (ADE20K after reduce-zero-label): 255 = ignore.
    case semantic(LabelMap)
    /// Instances (COCO instance): crowd ones are dropped by the training recipes.
    case instances([InstanceAnnotation])
    /// Panoptic segments (COCO panoptic): crowd segments and void pixels belong to no target mask.
    case panoptic(PanopticTargets)
    /// No annotation (inference).
    case none
}

/// A decoded image with its annotation, as a dataset reader's `load(index)` returns it.
public struct Sample: Sendable {
    /// The dataset's image id (COCO `image.id`; ADE20K: the index or the number in the file name).
    /// Augmentation randomness is keyed by it, so it must be unique within the dataset.
    public var imageId: Int
    /// RGB, 3 channels.
    public var image: Image8
    public var targets: SampleTargets
    public init(imageId: Int, image: Image8, targets: SampleTargets) {
        self.imageId = imageId; self.image = image; self.targets = targets
    }
}

// MARK: - Output

/// An augmented image with its training targets, all at the image's (augmented) size.
public struct AugmentedSample: Sendable {
    public var imageId: Int
    /// RGB, 3 channels.
    public var image: Image8
    /// Class index of each target mask.
    public var classes: [Int]
    /// One binary mask per target, at `image.size`.
    public var masks: [BinaryMask]
    /// Per target: the annotation / segment id (instances, panoptic) or the class (semantic).
    public var targetIds: [Int]
    /// Size of the decoded image before augmentation.
    public var originalSize: ImageSize
    /// Everything that was applied, with its random parameters.
    public var transforms: TransformList

    public init(imageId: Int, image: Image8, classes: [Int], masks: [BinaryMask], targetIds: [Int],
                originalSize: ImageSize, transforms: TransformList) {
        precondition(classes.count == masks.count && targetIds.count == masks.count,
                     "\(classes.count) classes, \(masks.count) masks, \(targetIds.count) ids")
        precondition(masks.allSatisfy { $0.width == image.width && $0.height == image.height },
                     "masks must have the image size \(image.size)")
        self.imageId = imageId; self.image = image; self.classes = classes; self.masks = masks
        self.targetIds = targetIds; self.originalSize = originalSize; self.transforms = transforms
    }
}

/// Per-image augmentation and target construction; `rng` is the image's own stream (see `augmentationRNG`).
public protocol SampleAugmentation: Sendable {
    func apply(_ sample: Sample, rng: inout RNG) throws -> AugmentedSample
}

/// The RNG of one image's augmentation: `RNG(seed: seed, stream: augmentationStream(epoch:imageId:))`.
/// It depends only on (seed, epoch, image id), never on the thread, rank or order that processes it.
public func augmentationRNG(seed: UInt64, epoch: Int, imageId: Int) -> RNG {
    RNG(seed: seed, stream: augmentationStream(epoch: epoch, imageId: imageId))
}

/// The Philox stream of (epoch, image id): two rounds of SplitMix64 over both 64-bit values.
public func augmentationStream(epoch: Int, imageId: Int) -> UInt64 {
    splitMix64(splitMix64(UInt64(bitPattern: Int64(epoch)) ^ 0x4155_474D_454E_5400) ^ UInt64(bitPattern: Int64(imageId)))
}

// MARK: - Random augmentations (each returns a recorded Transform)

/// detectron2 `ResizeShortestEdge` geometry: short side → `shortEdge`, long side capped at `maxSize`,
/// sides rounded with `int(x + 0.5)`. A side that would round to 0 (a very thin image, or a small `maxSize`) is 1, where
/// detectron2 would fail.
public func shortestEdgeResize(_ input: ImageSize, shortEdge: Int, maxSize: Int) -> ResizeTransform {
    let h = Double(input.height), w = Double(input.width)
    let size = Double(shortEdge)
    let scale = size / min(h, w)
    var newH: Double, newW: Double
    if h < w { newH = size; newW = scale * w } else { newH = scale * h; newW = size }
    if max(newH, newW) > Double(maxSize) {
        let s = Double(maxSize) / max(newH, newW)
        newH *= s; newW *= s
    }
    return ResizeTransform(input: input, output: ImageSize(height: max(Int(newH + 0.5), 1), width: max(Int(newW + 0.5), 1)))
}

/// detectron2 `ResizeScale`: fit the image inside `target·scale` keeping its aspect ratio; sides are
/// `np.round` (half to even) of `size · min(target·s/h, target·s/w)`.
public func resizeScaleTransform(_ input: ImageSize, targetHeight: Int, targetWidth: Int, scale: Double) -> ResizeTransform {
    let th = Double(targetHeight) * scale, tw = Double(targetWidth) * scale
    let s = min(th / Double(input.height), tw / Double(input.width))
    let oh = (Double(input.height) * s).rounded(.toNearestOrEven)
    let ow = (Double(input.width) * s).rounded(.toNearestOrEven)
    return ResizeTransform(input: input, output: ImageSize(height: max(Int(oh), 1), width: max(Int(ow), 1)))
}

/// detectron2 `FixedSizeCrop` offsets: `round(max(0, size − crop) · u)` with one `u ~ U(0, 1)` for both
/// axes (numpy half-to-even rounding), then a crop of `crop` (clipped) and a pad to `crop` at the
/// right / bottom.
public func fixedSizeCropTransforms(_ input: ImageSize, cropHeight: Int, cropWidth: Int, u: Double,
                                    padImage: UInt8 = 128, padLabel: UInt8 = 255) -> [Transform] {
    let maxY = Double(max(input.height - cropHeight, 0)), maxX = Double(max(input.width - cropWidth, 0))
    let y0 = Int((maxY * u).rounded(.toNearestOrEven)), x0 = Int((maxX * u).rounded(.toNearestOrEven))
    let crop = CropTransform(input: input, x0: x0, y0: y0, width: cropWidth, height: cropHeight)
    let c = crop.output
    let pad = PadTransform(input: c, right: max(cropWidth - c.width, 0), bottom: max(cropHeight - c.height, 0),
                           imageValue: padImage, labelValue: padLabel)
    return [.crop(crop), .pad(pad)]
}

/// detectron2 `RandomCrop("absolute", (h, w))`: the crop is `(min(h, H), min(w, W))` (a short side keeps
/// its length); `y0 = randint(H − ch + 1)` is drawn before `x0 = randint(W − cw + 1)`.
public func randomAbsoluteCrop(_ input: ImageSize, height: Int, width: Int, rng: inout RNG) -> CropTransform {
    let ch = min(height, input.height), cw = min(width, input.width)
    let y0 = rng.nextInt(below: input.height - ch + 1)
    let x0 = rng.nextInt(below: input.width - cw + 1)
    return CropTransform(input: input, x0: x0, y0: y0, width: cw, height: ch)
}

// MARK: - Target construction

/// Per-class masks of a label map (`np.unique` order, 255 excluded), as the semantic mapper builds them.
public func semanticTargets(_ labels: LabelMap, ignoreLabel: UInt8 = 255) -> (classes: [Int], masks: [BinaryMask]) {
    var present = [Bool](repeating: false, count: 256)
    for v in labels.labels { present[Int(v)] = true }
    let classes = (0..<256).filter { present[$0] && $0 != Int(ignoreLabel) }
    var slot = [Int32](repeating: -1, count: 256)
    for (i, c) in classes.enumerated() { slot[c] = Int32(i) }
    let slots = labels.labels.map { slot[Int($0)] }
    let split = splitIntoMasks(slots: slots, width: labels.width, height: labels.height, count: classes.count)
    return (classes, split.masks)
}

/// One mask per slot: pixel i belongs to mask `slots[i]` (negative: none). Also returns each mask's area.
func splitIntoMasks(slots: [Int32], width: Int, height: Int, count: Int) -> (masks: [BinaryMask], areas: [Int]) {
    let n = slots.count
    precondition(n == width * height, "\(n) slots for \(width)×\(height)")
    var flat = [UInt8](repeating: 0, count: n * count)
    var areas = [Int](repeating: 0, count: count)
    flat.withUnsafeMutableBufferPointer { f in
        slots.withUnsafeBufferPointer { s in
            for i in 0..<n {
                let k = Int(s[i])
                if k >= 0 { f[k * n + i] = 1; areas[k] += 1 }
            }
        }
    }
    let masks = (0..<count).map { k in
        BinaryMask(width: width, height: height, bits: [UInt8](unsafeUninitializedCapacity: n) { buf, c in
            flat.withUnsafeBufferPointer { f in
                if n > 0 { buf.baseAddress!.update(from: f.baseAddress! + k * n, count: n) }
            }
            c = n
        })
    }
    return (masks, areas)
}

/// Applies `transforms` to the annotation of `sample` and builds the targets: semantic → one mask per
/// class present; instances → non-crowd objects; panoptic → non-crowd segments. Masks with no pixel left
/// are dropped when `dropEmpty` (the reference's `filter_empty_instances`).
public func transformTargets(_ targets: SampleTargets, with transforms: TransformList, dropEmpty: Bool = true,
                             labelRule: NearestRule = .torch, maskRule: NearestRule = .pil)
    throws -> (classes: [Int], masks: [BinaryMask], ids: [Int])
{
    let out = transforms.outputSize
    switch targets {
    case .none:
        return ([], [], [])
    case .semantic(let labels):
        let t = semanticTargets(transforms.apply(to: labels, rule: labelRule))
        return (t.classes, t.masks, t.classes)
    case .instances(let anns):
        let map = transforms.coordinateMap
        var classes: [Int] = [], masks: [BinaryMask] = [], ids: [Int] = []
        for a in anns where !a.isCrowd {
            let m: BinaryMask
            switch a.mask {
            case .bitmap(let b): m = transforms.apply(to: b, rule: maskRule)
            case .deferred(let r):
                m = try r.rasterize(width: out.width, height: out.height, transform: map)
                guard m.width == out.width && m.height == out.height else {
                    throw DataError(file: "", record: "annotation \(a.id)",
                                    problem: "rasterizer returned \(m.width)×\(m.height), expected \(out)")
                }
            }
            if dropEmpty && !m.bits.contains(where: { $0 != 0 }) { continue }
            classes.append(a.classIndex); masks.append(m); ids.append(a.id)
        }
        return (classes, masks, ids)
    case .panoptic(let p):
        let ids = transforms.apply(toIDs: p.ids, rule: maskRule)
        let kept = p.segments.filter { !$0.isCrowd }
        var slotOf: [UInt32: Int32] = [:]
        for (i, s) in kept.enumerated() where slotOf[s.id] == nil { slotOf[s.id] = Int32(i) }
        // Slot of every pixel; ids come in runs, so the last lookup is cached.
        var slots = [Int32](repeating: -1, count: ids.count)
        var lastId: UInt32 = 0, lastSlot: Int32 = -1
        for (i, id) in ids.enumerated() where id != 0 {
            if id != lastId { lastId = id; lastSlot = slotOf[id] ?? -1 }
            slots[i] = lastSlot
        }
        let split = splitIntoMasks(slots: slots, width: out.width, height: out.height, count: kept.count)
        var classes: [Int] = [], masks: [BinaryMask] = [], segIds: [Int] = []
        for (i, s) in kept.enumerated() {
            if dropEmpty && split.areas[i] == 0 { continue }
            classes.append(s.classIndex)
            masks.append(split.masks[i])
            segIds.append(Int(s.id))
        }
        return (classes, masks, segIds)
    }
}

private func requireRGB(_ sample: Sample) throws {
    guard sample.image.channels == 3, sample.image.width > 0, sample.image.height > 0 else {
        throw DataError(file: "", record: "image \(sample.imageId)",
                        problem: "augmentation needs a non-empty RGB image, got \(sample.image.width)×\(sample.image.height)×\(sample.image.channels)")
    }
    let size = sample.image.size
    let annotated: ImageSize?
    switch sample.targets {
    case .semantic(let l): annotated = l.size
    case .panoptic(let p): annotated = ImageSize(height: p.height, width: p.width)
    case .instances(let a):
        annotated = a.lazy.compactMap { if case .bitmap(let b) = $0.mask { return b.size } else { return nil } }
            .first { $0 != size }
    case .none: annotated = nil
    }
    if let a = annotated, a != size {
        throw DataError(file: "", record: "image \(sample.imageId)",
                        problem: "annotation is \(a) but the image is \(size)")
    }
}

// MARK: - Recipes

/// The short-edge-resize + crop training augmentation of Mask2Former's `mask_former_semantic`,
/// `mask_former_instance` and `mask_former_panoptic` mappers (ADE20K semantic, the three Cityscapes tasks;
/// docs/model.md#augmentation): ResizeShortestEdge (choice of `shortEdges`, max `maxSize`) → RandomCrop absolute
/// `cropSize` (under the single-category max-area rule for semantic targets) → ColorAugSSD → horizontal flip
/// (p 0.5) → with `padToCrop`, pad to `cropSize` (image 128, label 255; ADE20K's `SIZE_DIVISIBILITY` 512; Cityscapes
/// pads nothing). Targets: semantic → one mask per class present (labels ≠ 255); instances → the non-crowd ones;
/// panoptic → the non-crowd segments. Masks left empty by the crop are kept, as the reference mappers keep them.
///
/// Draw order of one image's stream: short-edge choice, crop y0, crop x0 (up to 10 pairs under the area rule),
/// ColorAugSSD, flip.
public struct ShortEdgeCropAugmentation: SampleAugmentation {
    /// `int(x·0.1·512)` for x = 5…20.
    public static let defaultShortEdges: [Int] = shortEdgeChoices(base: 512)
    /// detectron2's `[int(x * 0.1 * base) for x in range(5, 21)]` (ADE20K 512, Cityscapes 1024).
    public static func shortEdgeChoices(base: Int) -> [Int] { (5...20).map { Int(Double($0) * 0.1 * Double(base)) } }
    public var shortEdges: [Int] = ShortEdgeCropAugmentation.defaultShortEdges
    public var maxSize: Int = 2048
    public var cropSize: ImageSize = ImageSize(height: 512, width: 512)
    /// `RandomCrop_CategoryAreaConstraint`: with semantic targets, redraw the crop (up to 10 times) until no class
    /// covers this share or more of its non-ignored pixels; 1.0 turns the rule off (a plain RandomCrop).
    public var singleCategoryMaxArea: Double = 1.0
    public var colorAugSSD: Bool = true
    public var flipProbability: Double = 0.5
    public var padToCrop: Bool = true
    public var imagePad: UInt8 = 128
    public var ignoreLabel: UInt8 = 255
    public var labelRule: NearestRule = .torch

    public init() {}

    /// Cityscapes (Mask2Former's Cityscapes configs): short edge 512…2048 in steps of 102.4, max 4096, crop
    /// 512×1024, no pad.
    public static var cityscapes: ShortEdgeCropAugmentation {
        var a = ShortEdgeCropAugmentation()
        a.shortEdges = shortEdgeChoices(base: 1024); a.maxSize = 4096
        a.cropSize = ImageSize(height: 512, width: 1024); a.padToCrop = false
        return a
    }

    public func apply(_ sample: Sample, rng: inout RNG) throws -> AugmentedSample {
        try requireRGB(sample)
        let size = sample.image.size
        var list = TransformList(inputSize: size)
        let short = shortEdges[rng.nextInt(below: shortEdges.count)]
        list.append(.resize(shortestEdgeResize(size, shortEdge: short, maxSize: maxSize)))
        if singleCategoryMaxArea < 1, case .semantic(let labels) = sample.targets {
            let resized = list.apply(to: labels, rule: labelRule)
            list.append(.crop(categoryAreaCrop(resized, height: cropSize.height, width: cropSize.width,
                                               maxArea: singleCategoryMaxArea, ignore: ignoreLabel, rng: &rng)))
        } else {
            list.append(.crop(randomAbsoluteCrop(list.outputSize, height: cropSize.height, width: cropSize.width, rng: &rng)))
        }
        if colorAugSSD { list.append(.colorAugSSD(ColorAugSSDParams.sample(rng: &rng), list.outputSize)) }
        if rng.nextDouble() < flipProbability { list.append(.hflip(list.outputSize)) }
        if padToCrop {
            let o = list.outputSize
            list.append(.pad(PadTransform(input: o, right: max(cropSize.width - o.width, 0),
                                          bottom: max(cropSize.height - o.height, 0),
                                          imageValue: imagePad, labelValue: ignoreLabel)))
        }
        let image = list.apply(to: sample.image)
        let t = try transformTargets(sample.targets, with: list, dropEmpty: false, labelRule: labelRule)
        return AugmentedSample(imageId: sample.imageId, image: image, classes: t.classes, masks: t.masks,
                               targetIds: t.ids, originalSize: size, transforms: list)
    }
}

/// The ADE20K semantic recipe is the short-edge crop recipe at its defaults.
public typealias ADE20KTrainAugmentation = ShortEdgeCropAugmentation

/// detectron2 `RandomCrop_CategoryAreaConstraint.get_transform`: with `maxArea` ≥ 1 one plain draw; else up to 10 draws of an absolute
/// crop (y0 then x0, as `randomAbsoluteCrop`), stopping at the first whose window holds more than one non-ignored
/// label and no label with `maxArea` or more of them; otherwise the last draw.
public func categoryAreaCrop(_ labels: LabelMap, height: Int, width: Int, maxArea: Double, ignore: UInt8,
                             rng: inout RNG) -> CropTransform {
    var crop = randomAbsoluteCrop(labels.size, height: height, width: width, rng: &rng)
    if maxArea >= 1 { return crop }
    for attempt in 0..<10 {
        if attempt > 0 { crop = randomAbsoluteCrop(labels.size, height: height, width: width, rng: &rng) }
        var counts = [Int](repeating: 0, count: 256)
        for y in crop.y0..<(crop.y0 + crop.height) {
            let row = y * labels.width
            for x in crop.x0..<(crop.x0 + crop.width) { counts[Int(labels.labels[row + x])] += 1 }
        }
        counts[Int(ignore)] = 0
        let present = counts.filter { $0 > 0 }
        let total = present.reduce(0, +)
        if present.count > 1, Double(present.max()!) < Double(total) * maxArea { break }
    }
    return crop
}

/// COCO large-scale-jitter training augmentation (M2F `coco_instance_lsj` / `coco_panoptic_lsj`):
/// horizontal flip (p 0.5) → ResizeScale U(`minScale`, `maxScale`) of `imageSize` → FixedSizeCrop
/// `imageSize` with image pad 128. Crowd objects are dropped. Instances that end up empty are filtered
/// (the instance mapper's `filter_empty_instances`); panoptic segments that end up empty are kept as
/// all-zero masks, as the reference panoptic mapper does, unless `dropEmptyPanopticSegments`.
///
/// Draw order of one image's stream: flip, scale, crop offset.
public struct LSJTrainAugmentation: SampleAugmentation {
    public var imageSize: Int = 1024
    public var minScale: Double = 0.1
    public var maxScale: Double = 2.0
    public var flipProbability: Double = 0.5
    public var imagePad: UInt8 = 128
    public var maskRule: NearestRule = .pil
    /// Filter panoptic segments with no pixel left (the reference keeps them).
    public var dropEmptyPanopticSegments: Bool = false

    public init() {}

    public func apply(_ sample: Sample, rng: inout RNG) throws -> AugmentedSample {
        try requireRGB(sample)
        let size = sample.image.size
        var list = TransformList(inputSize: size)
        if rng.nextDouble() < flipProbability { list.append(.hflip(size)) }
        let scale = minScale + (maxScale - minScale) * rng.nextDouble()
        list.append(.resize(resizeScaleTransform(list.outputSize, targetHeight: imageSize, targetWidth: imageSize, scale: scale)))
        for t in fixedSizeCropTransforms(list.outputSize, cropHeight: imageSize, cropWidth: imageSize,
                                         u: rng.nextDouble(), padImage: imagePad) {
            list.append(t)
        }
        let image = list.apply(to: sample.image)
        var dropEmpty = true
        if case .panoptic = sample.targets { dropEmpty = dropEmptyPanopticSegments }
        let t = try transformTargets(sample.targets, with: list, dropEmpty: dropEmpty, maskRule: maskRule)
        return AugmentedSample(imageId: sample.imageId, image: image, classes: t.classes, masks: t.masks,
                               targetIds: t.ids, originalSize: size, transforms: list)
    }
}

/// Test-time resize: detectron2 `ResizeShortestEdge(short, max)` on the image only (the evaluation
/// compares predictions at the original size). ADE20K: 512 / 2048; COCO: 800 / 1333; Cityscapes: 1024 / 2048.
/// Targets are left empty unless `keepTargets` (then resized like the image, as the layer-consistency metrics
/// need ground truth at the network's input size); `transforms` records the resize for mapping predictions back.
public struct TestTimeResize: SampleAugmentation {
    public var shortEdge: Int
    public var maxSize: Int
    public var keepTargets: Bool
    public init(shortEdge: Int, maxSize: Int, keepTargets: Bool = false) {
        self.shortEdge = shortEdge; self.maxSize = maxSize; self.keepTargets = keepTargets
    }
    public static let ade20k = TestTimeResize(shortEdge: 512, maxSize: 2048)
    public static let coco = TestTimeResize(shortEdge: 800, maxSize: 1333)
    public static let cityscapes = TestTimeResize(shortEdge: 1024, maxSize: 2048)

    public func apply(_ sample: Sample, rng: inout RNG) throws -> AugmentedSample {
        try requireRGB(sample)
        let size = sample.image.size
        var list = TransformList(inputSize: size)
        let r = shortestEdgeResize(size, shortEdge: shortEdge, maxSize: maxSize)
        if r.output != size { list.append(.resize(r)) }
        let image = list.apply(to: sample.image)
        guard keepTargets else {
            return AugmentedSample(imageId: sample.imageId, image: image, classes: [], masks: [],
                                   targetIds: [], originalSize: size, transforms: list)
        }
        let t = try transformTargets(sample.targets, with: list, dropEmpty: true)
        return AugmentedSample(imageId: sample.imageId, image: image, classes: t.classes, masks: t.masks,
                               targetIds: t.ids, originalSize: size, transforms: list)
    }
}

/// Test-time augmentation of semantic segmentation (detectron2's `DatasetMapperTTA` as Mask2Former's
/// `SemanticSegmentorWithTTA` uses it: `TEST.AUG.MIN_SIZES`, `MAX_SIZE`, `FLIP`): the image resized to every short edge
/// in `minSizes` (longest edge ≤ `maxSize`), each also mirrored when `flip`; the semantic scores of all of them,
/// mapped back to the original image, are averaged.
public struct TestTimeAugmentation: Sendable, Equatable {
    public var minSizes: [Int]
    public var maxSize: Int
    public var flip: Bool
    public init(minSizes: [Int], maxSize: Int, flip: Bool = true) { self.minSizes = minSizes; self.maxSize = maxSize; self.flip = flip }
    /// Mask2Former's ADE20K semantic recipes (test at 512): 256…896 in steps of 128, longest edge ≤ 3584, flipped.
    public static let ade20k = TestTimeAugmentation(minSizes: [256, 384, 512, 640, 768, 896], maxSize: 3584)
    /// Mask2Former's Cityscapes semantic recipes (test at 1024): 512…1792 in steps of 256, longest edge ≤ 4096, flipped.
    public static let cityscapes = TestTimeAugmentation(minSizes: [512, 768, 1024, 1280, 1536, 1792], maxSize: 4096)
    /// The passes: every size, unflipped then (with `flip`) mirrored.
    public var passes: [(resize: TestTimeResize, flipped: Bool)] {
        minSizes.flatMap { s in (flip ? [false, true] : [false]).map { (TestTimeResize(shortEdge: s, maxSize: maxSize), $0) } }
    }
}
