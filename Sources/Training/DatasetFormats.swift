// Everything that depends on the dataset format, one type per format: how a training split is read and augmented,
// which task a split is scored on, its classes, test-time resize, post-processing and evaluator. The trainer, the
// evaluation and `maskpilot predict` ask `config.data.format.descriptor` instead of switching on the format, so a new
// format (Cityscapes, say) is one new conforming type and one case.
// Corresponds to detectron2's dataset registration (DatasetCatalog/MetadataCatalog) with Mask2Former's mappers and
// evaluators chosen per dataset.
import Datasets
import Evaluation
import Foundation
import Kernels
import Mask2FormerModel
import TensorCore

/// One dataset format.
public protocol DatasetFormatDescriptor: Sendable {
    /// The task its annotations are scored on.
    var task: EvaluationTask { get }
    /// The reference's test-time resize (`INPUT.MIN_SIZE_TEST` / `MAX_SIZE_TEST`) for this format.
    var testResize: TestTimeResize { get }
    /// The reference's test-time augmentation (`TEST.AUG.*`), nil where it has none (instance and panoptic formats).
    var testAugmentation: TestTimeAugmentation? { get }
    /// The training split `split` with its augmentation.
    func trainingData(config: MaskPilotConfig, split: String) throws -> TrainingData
    /// The split `split` for evaluation; its class count must equal `model.decoder.num_classes`.
    func evaluationData(config: MaskPilotConfig, split: String) throws -> EvaluationData
    /// The class names and (panoptic) thing classes when the format fixes them, so `predict` needs no dataset; nil
    /// where they come from the dataset's files.
    var fixedClasses: (names: [String], thingClasses: Set<Int>)? { get }
}

extension DatasetFormatDescriptor {
    public var fixedClasses: (names: [String], thingClasses: Set<Int>)? { nil }
}

extension DataConfig.Format {
    /// The format's descriptor.
    public var descriptor: any DatasetFormatDescriptor {
        switch self {
        case .ade20k: ADE20KFormat()
        case .cocoInstance: COCOInstanceFormat()
        case .cocoPanoptic: COCOPanopticFormat()
        case .cityscapesSemantic: CityscapesFramesFormat(task: .semantic)
        case .cityscapesInstance: CityscapesFramesFormat(task: .instance)
        case .cityscapesPanoptic: CityscapesPanopticFormat()
        case .semSeg: SemanticFoldersFormat()
        }
    }

    /// Whether the format trains with the short-edge resize + crop recipe (ADE20K, Cityscapes; `input.crop_size` may
    /// be `[height, width]`) rather than COCO's large-scale jitter.
    public var isShortEdgeCrop: Bool {
        switch self {
        case .cocoInstance, .cocoPanoptic: false
        case .ade20k, .cityscapesSemantic, .cityscapesInstance, .cityscapesPanoptic, .semSeg: true
        }
    }
}

extension DataConfig {
    /// Where the format's files are: its standard layout with `data.annotation_file`, `data.image_folder` and
    /// `data.label_folder` replacing the parts they set.
    public var layout: DatasetLayout {
        var l: DatasetLayout = format == .cocoPanoptic ? .cocoPanoptic : format == .semSeg ? .semanticFolders : .cocoInstances
        if !annotationFile.isEmpty { l.annotationFile = annotationFile }
        if !imageFolder.isEmpty { l.imageFolder = imageFolder }
        if !labelFolder.isEmpty { l.labelFolder = labelFolder }
        return l
    }

    /// `data.classes` when it names exactly `numClasses` classes, else nil (the caller's default names).
    public func classNames(numClasses: Int) -> [String]? { classes.count == numClasses ? classes : nil }

    /// The `sem-seg` label encoding for `numClasses` classes (`data.ignore_label`, `data.reduce_zero_label`); the
    /// ignore value must be a byte (`violations()` checks it first).
    public func labelEncoding(numClasses: Int) -> LabelEncoding {
        LabelEncoding(numClasses: numClasses, ignoreLabel: UInt8(clamping: ignoreLabel), reduceZeroLabel: reduceZeroLabel)
    }
}

/// ADE20K (ADEChallengeData2016): semantic segmentation, 150 classes, the semantic crop augmentation.
struct ADE20KFormat: DatasetFormatDescriptor {
    var task: EvaluationTask { .semantic }
    var testResize: TestTimeResize { .ade20k }
    var testAugmentation: TestTimeAugmentation? { .ade20k }

    func trainingData(config: MaskPilotConfig, split: String) throws -> TrainingData {
        let ds = try ADE20KDataset(root: config.data.root, split: split)
        return shortEdgeCropData(config, recipe: ShortEdgeCropAugmentation(), count: ds.count, numClasses: ADE20KDataset.numClasses,
                                 load: { try ds.sample($0) })
    }

    func evaluationData(config: MaskPilotConfig, split: String) throws -> EvaluationData {
        let ds = try ADE20KDataset(root: config.data.root, split: split)
        try requireClasses(config, ADE20KDataset.numClasses, "ADE20K", at: ds.root)
        return semanticEvaluationData(ds.folders, classNames: ds.classNames, imageID: { $0 + 1 }, load: { try ds.sample($0) })
    }
}

/// Any semantic segmentation dataset in the folder layout (`images/<split>/*`, `annotations/<split>/<stem>.png`), its
/// classes from `model.decoder.num_classes` and `data.classes`, its labels read with `data.ignore_label` and
/// `data.reduce_zero_label`; ADE20K's crop recipe and test-time resize unless the `input.*` keys say otherwise.
struct SemanticFoldersFormat: DatasetFormatDescriptor {
    var task: EvaluationTask { .semantic }
    var testResize: TestTimeResize { .ade20k }
    var testAugmentation: TestTimeAugmentation? { .ade20k }

    func open(_ config: MaskPilotConfig, split: String) throws -> SemanticFolders {
        let given = config.data.imageFolder
        return try SemanticFolders(root: config.data.root, split: split, encoding: config.data.labelEncoding(numClasses: config.model.decoder.numClasses),
                                   layout: config.data.layout,
                                   expected: given.isEmpty ? "ROOT/images/\(split)" : "data.image_folder \(given) for split \(split)")
    }

    func trainingData(config: MaskPilotConfig, split: String) throws -> TrainingData {
        let ds = try open(config, split: split)
        return shortEdgeCropData(config, recipe: ShortEdgeCropAugmentation(), count: ds.count, numClasses: ds.encoding.numClasses,
                                 load: { try ds.sample($0) })
    }

    func evaluationData(config: MaskPilotConfig, split: String) throws -> EvaluationData {
        let ds = try open(config, split: split)
        return semanticEvaluationData(ds, classNames: config.data.classNames(numClasses: ds.encoding.numClasses), imageID: { $0 },
                                      load: { try ds.sample($0) })
    }
}

/// The evaluation of a semantic folder split: class names (`class k` where `classNames` is nil), class mIoU, and
/// prediction PNGs named as the annotations and stored in their encoding.
func semanticEvaluationData(_ ds: SemanticFolders, classNames names: [String]?, imageID: @escaping @Sendable (Int) -> Int,
                            load: @escaping @Sendable (Int) throws -> Sample) -> EvaluationData {
    let numClasses = ds.encoding.numClasses
    let fileNames = (0..<ds.count).map(ds.annotationName)
    let offset = ds.encoding.storedValue(ofClass: 0)
    let classNames = (0..<numClasses).map { names != nil && $0 < names!.count ? names![$0] : "class \($0)" }
    return EvaluationData(count: ds.count, load: load, classNames: classNames,
                          categoryIDs: nil, postProcessor: Mask2FormerPostProcessor(.semantic), imageID: imageID,
                          makeEvaluator: { _ in SemanticTaskEvaluator(numClasses: numClasses, fileNames: fileNames, storedOffset: offset,
                                                                      classNames: classNames) })
}

/// COCO instances (`annotations/instances_<split>.json`): instance segmentation, large-scale jitter.
struct COCOInstanceFormat: DatasetFormatDescriptor {
    var task: EvaluationTask { .instance }
    var testResize: TestTimeResize { .coco }
    var testAugmentation: TestTimeAugmentation? { nil }

    func open(_ config: MaskPilotConfig, split: String) throws -> (COCOInstances, [String]) {
        let ds = try withLayoutKeyNamed(config, split: split) {
            try COCOInstances(root: config.data.root, split: split, layout: config.data.layout,
                              onBadSample: config.data.onBadSample == .skip ? .skip : .error)
        }
        return (ds, ds.skippedCount > 0 ? [droppedRecordsNote(ds)] : [])
    }

    func trainingData(config: MaskPilotConfig, split: String) throws -> TrainingData {
        let (ds, opened) = try open(config, split: split)
        // detectron2's FILTER_EMPTY_ANNOTATIONS: only images with a non-crowd annotation train.
        let kept = config.data.filterEmptyAnnotations ? (0..<ds.imageCount).filter(ds.hasNonCrowdAnnotation) : Array(0..<ds.imageCount)
        let removed = ds.imageCount - kept.count
        let notes = opened + (removed == 0 ? [] : ["data: \(ds.annotationFile): removed \(removed) image(s) with no usable annotations "
                                                   + "(none, or only crowd regions; data.filter_empty_annotations), \(kept.count) left"])
        var data = largeScaleJitterData(config, count: kept.count, numClasses: ds.categories.count, notes: notes, load: { try ds.sample(kept[$0]) })
        data.imagesWithoutAnnotations = removed
        data.categories = ds.categories.map { "\($0.id) \($0.name)" }
        data.categoriesFile = ds.annotationFile
        return data
    }

    func evaluationData(config: MaskPilotConfig, split: String) throws -> EvaluationData {
        let (ds, notes) = try open(config, split: split)
        let numClasses = config.model.decoder.numClasses
        guard ds.categories.count == numClasses else {
            throw EvaluationError(ds.annotationFile, "the dataset has \(ds.categories.count) categories but model.decoder.num_classes is \(numClasses)")
        }
        return EvaluationData(count: ds.imageCount, load: { try ds.sample($0) }, classNames: ds.categories.map(\.name),
                              categoryIDs: ds.categories.map(\.id), postProcessor: Mask2FormerPostProcessor(.instance),
                              imageID: { ds.images[$0].id }, makeEvaluator: { InstanceTaskEvaluator(dataset: ds, count: $0) },
                              notes: notes)
    }
}

/// COCO panoptic (`annotations/panoptic_<split>.json` + PNGs): panoptic segmentation, large-scale jitter.
struct COCOPanopticFormat: DatasetFormatDescriptor {
    var task: EvaluationTask { .panoptic }
    var testResize: TestTimeResize { .coco }
    var testAugmentation: TestTimeAugmentation? { nil }

    func trainingData(config: MaskPilotConfig, split: String) throws -> TrainingData {
        let ds = try withLayoutKeyNamed(config, split: split) { try COCOPanopticDataset(root: config.data.root, split: split, layout: config.data.layout) }
        var data = largeScaleJitterData(config, count: ds.count, numClasses: ds.numClasses, load: { try ds.sample($0) })
        data.categories = ds.categories.map { "\($0.id) \($0.name) (\($0.isThing ? "thing" : "stuff"))" }
        data.categoriesFile = ds.jsonPath
        return data
    }

    func evaluationData(config: MaskPilotConfig, split: String) throws -> EvaluationData {
        let ds = try withLayoutKeyNamed(config, split: split) { try COCOPanopticDataset(root: config.data.root, split: split, layout: config.data.layout) }
        let numClasses = config.model.decoder.numClasses
        guard ds.numClasses == numClasses else {
            throw EvaluationError(ds.jsonPath, "the dataset has \(ds.numClasses) categories but model.decoder.num_classes is \(numClasses)")
        }
        let post = panopticPostProcessor(config, thingClasses: ds.thingClasses)
        let names = ds.categories.map(\.name), isThing = ds.categories.map(\.isThing), ids = ds.categories.map(\.id)
        return EvaluationData(count: ds.count, load: { try ds.sample($0) }, classNames: names, categoryIDs: ids,
                              postProcessor: post, imageID: { ds.records[$0].imageId },
                              makeEvaluator: { _ in PanopticTaskEvaluator(isThing: isThing, categoryIDs: ids, classNames: names) })
    }
}

/// Panoptic post-processing for `thingClasses` with `eval.object_mask_threshold` / `eval.overlap_threshold`.
public func panopticPostProcessor(_ config: MaskPilotConfig, thingClasses: Set<Int>) -> Mask2FormerPostProcessor {
    var post = PostProcessingConfig.panoptic(thingClasses: thingClasses)
    post.objectMaskThreshold = config.eval.objectMaskThreshold
    post.overlapThreshold = config.eval.overlapThreshold
    return Mask2FormerPostProcessor(post)
}

/// Training data augmented with the short-edge resize + crop recipe `recipe` (the format's defaults), with
/// `input.crop_size`, `input.min_size_train`, `input.max_size_train` and `input.single_category_max_area` applied.
func shortEdgeCropData(_ config: MaskPilotConfig, recipe: ShortEdgeCropAugmentation, count: Int, numClasses: Int,
                       load: @escaping @Sendable (Int) throws -> Sample) -> TrainingData {
    var aug = recipe
    let input = config.input
    aug.cropSize = ImageSize(height: input.cropSize.height, width: input.cropSize.width)
    if !input.minSizeTrain.isEmpty { aug.shortEdges = input.minSizeTrain }
    if input.maxSizeTrain > 0 { aug.maxSize = input.maxSizeTrain }
    aug.singleCategoryMaxArea = input.singleCategoryMaxArea
    let a = aug
    return TrainingData(count: count, numClasses: numClasses, load: load, augment: { try a.apply($0, rng: &$1) })
}

/// The class-count check of every evaluation split.
func requireClasses(_ config: MaskPilotConfig, _ count: Int, _ what: String, at file: String) throws {
    guard config.model.decoder.numClasses == count else {
        throw EvaluationError(file, "\(what) has \(count) classes but model.decoder.num_classes is \(config.model.decoder.numClasses)")
    }
}

/// Cityscapes semantic (`gtFine` labelIds → 19 training ids, class mIoU) and instance (`gtFine` instanceIds, 8 classes,
/// AP / AP50): the frames of one split read two ways, with the short-edge crop recipe at 1024.
struct CityscapesFramesFormat: DatasetFormatDescriptor {
    /// `.semantic` or `.instance`.
    let task: EvaluationTask
    var testResize: TestTimeResize { .cityscapes }
    var testAugmentation: TestTimeAugmentation? { task == .semantic ? .cityscapes : nil }
    var classes: [CityscapesLabel] { task == .semantic ? Cityscapes.classes : Cityscapes.thingClasses }
    var fixedClasses: (names: [String], thingClasses: Set<Int>)? { (classes.map(\.name), []) }

    /// The split, checked for the ground truth this reading needs, and its sample reader.
    func open(_ config: MaskPilotConfig, split: String) throws -> (CityscapesDataset, @Sendable (Int) throws -> Sample) {
        let semantic = task == .semantic
        let ds = try CityscapesDataset(root: config.data.root, split: split, requireLabelIds: semantic, requireInstanceIds: !semantic)
        return (ds, { semantic ? try ds.semanticSample($0) : try ds.instanceSample($0) })
    }

    func trainingData(config: MaskPilotConfig, split: String) throws -> TrainingData {
        let (ds, load) = try open(config, split: split)
        guard task == .instance, config.data.filterEmptyAnnotations else {
            return shortEdgeCropData(config, recipe: .cityscapes, count: ds.count, numClasses: classes.count, load: load)
        }
        // detectron2's FILTER_EMPTY_ANNOTATIONS: only frames with a non-crowd instance train.
        let kept = try framesWithInstances(ds, skipUnreadable: config.data.onBadSample == .skip)
        let removed = ds.count - kept.count
        var data = shortEdgeCropData(config, recipe: .cityscapes, count: kept.count, numClasses: classes.count, load: { try load(kept[$0]) })
        data.imagesWithoutAnnotations = removed
        if removed > 0 {
            data.notes.append("data: \(ds.root)/gtFine/\(split): removed \(removed) frame(s) with no usable instances (none, or only "
                              + "group regions; data.filter_empty_annotations), \(kept.count) left")
        }
        return data
    }

    /// The frames of `ds` whose `instanceIds` map holds a non-crowd instance, read on the rank's threads. A map that
    /// cannot be read is an error naming it, or kept when `skipUnreadable` (`data.on_bad_sample: skip`: the loader then
    /// skips the frame as it skips any bad sample).
    func framesWithInstances(_ ds: CityscapesDataset, skipUnreadable: Bool) throws -> [Int] {
        var keep = [Bool](repeating: false, count: ds.count)
        var errors = [(any Error)?](repeating: nil, count: ds.count)
        keep.withUnsafeMutableBufferPointer { keepOut in
            errors.withUnsafeMutableBufferPointer { errorOut in
                parallelFor(ds.count, grain: 1) { range in
                    for i in range {
                        do { keepOut[i] = CityscapesDataset.hasNonCrowdInstance(try ds.instanceIds(i)) }
                        catch { errorOut[i] = error; keepOut[i] = skipUnreadable }
                    }
                }
            }
        }
        if !skipUnreadable, let error = errors.lazy.compactMap({ $0 }).first { throw error }
        return keep.indices.filter { keep[$0] }
    }

    func evaluationData(config: MaskPilotConfig, split: String) throws -> EvaluationData {
        let (ds, load) = try open(config, split: split)
        try requireClasses(config, classes.count, "Cityscapes \(task.rawValue)", at: ds.root)
        let semantic = task == .semantic
        return EvaluationData(count: ds.count, load: load, classNames: classes.map(\.name), categoryIDs: classes.map(\.id),
                              postProcessor: Mask2FormerPostProcessor(semantic ? .semantic : .instance), imageID: { $0 },
                              makeEvaluator: { _ in semantic ? CityscapesSemanticTaskEvaluator(frames: ds.frames) as any TaskEvaluator
                                                            : CityscapesInstanceTaskEvaluator(dataset: ds) })
    }
}

/// Cityscapes panoptic (createPanopticImgs' JSON + PNGs, 19 classes, 8 things): the short-edge crop recipe at 1024, PQ.
struct CityscapesPanopticFormat: DatasetFormatDescriptor {
    var task: EvaluationTask { .panoptic }
    var fixedClasses: (names: [String], thingClasses: Set<Int>)? {
        (Cityscapes.classes.map(\.name), CityscapesPanopticDataset.thingClasses)
    }
    var testResize: TestTimeResize { .cityscapes }
    var testAugmentation: TestTimeAugmentation? { nil }

    func trainingData(config: MaskPilotConfig, split: String) throws -> TrainingData {
        let ds = try CityscapesPanopticDataset(root: config.data.root, split: split)
        return shortEdgeCropData(config, recipe: .cityscapes, count: ds.count, numClasses: Cityscapes.numClasses,
                                 load: { try ds.sample($0) })
    }

    func evaluationData(config: MaskPilotConfig, split: String) throws -> EvaluationData {
        let ds = try CityscapesPanopticDataset(root: config.data.root, split: split)
        try requireClasses(config, Cityscapes.numClasses, "Cityscapes panoptic", at: ds.jsonPath)
        let post = panopticPostProcessor(config, thingClasses: CityscapesPanopticDataset.thingClasses)
        let names = Cityscapes.classes.map(\.name), ids = Cityscapes.classes.map(\.id), isThing = Cityscapes.classes.map(\.hasInstances)
        let stems = ds.records.map(\.stem)
        return EvaluationData(count: ds.count, load: { try ds.sample($0) }, classNames: names, categoryIDs: ids,
                              postProcessor: post, imageID: { $0 },
                              makeEvaluator: { _ in PanopticTaskEvaluator(isThing: isThing, categoryIDs: ids, classNames: names, imageNames: stems,
                                                                          outputName: "cityscapes_panoptic_predictions") })
    }
}

/// Training data augmented with COCO's large-scale jitter (`LSJTrainAugmentation` at `input.crop_size`).
func largeScaleJitterData(_ config: MaskPilotConfig, count: Int, numClasses: Int, notes: [String] = [],
                          load: @escaping @Sendable (Int) throws -> Sample) -> TrainingData {
    var aug = LSJTrainAugmentation()
    aug.imageSize = config.input.cropSize.height   // square: ConfigValidation refuses [h, w] for COCO
    aug.minScale = config.input.minScale
    aug.maxScale = config.input.maxScale
    let a = aug
    return TrainingData(count: count, numClasses: numClasses, notes: notes, load: load, augment: { try a.apply($0, rng: &$1) })
}

/// "data: …: dropped N bad record(s) …" for a COCO index read under `data.on_bad_sample: skip`.
func droppedRecordsNote(_ ds: COCOInstances) -> String {
    "data: \(ds.annotationFile): dropped \(ds.skippedCount) bad record(s) while indexing (data.on_bad_sample: skip): "
        + ds.skippedRecords.prefix(3).map(\.description).joined(separator: "; ") + (ds.skippedCount > 3 ? "; …" : "")
}

/// `open()`, with a whole-file error (a missing or unreadable annotation file) naming `data.annotation_file` when the
/// user set it, so a wrong pattern is found where it was written.
func withLayoutKeyNamed<T>(_ config: MaskPilotConfig, split: String, _ open: () throws -> T) throws -> T {
    do { return try open() } catch let e as DataError {
        guard !config.data.annotationFile.isEmpty, e.record.isEmpty else { throw e }
        throw DataError(file: e.file, problem: e.problem + " (data.annotation_file \(config.data.annotationFile), split \(split))")
    }
}
