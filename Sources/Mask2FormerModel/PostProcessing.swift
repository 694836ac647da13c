// Inference post-processing: configuration, image sizes, result types and the per-image pipeline.
// Corresponds to Mask2Former maskformer_model.py MaskFormer.forward (eval branch) and its flags (docs/model.md#inference).
import TensorCore

/// The `MODEL.MASK_FORMER.TEST.*` switches and thresholds of inference.
public struct PostProcessingConfig: Sendable, Equatable {
    /// `SEMANTIC_ON`: per-class scores and a label map.
    public var semanticOn: Bool
    /// `INSTANCE_ON`: the top-k (query, class) pairs with binary masks.
    public var instanceOn: Bool
    /// `PANOPTIC_ON`: a segment-id map with stuff merged per class.
    public var panopticOn: Bool
    /// `OBJECT_MASK_THRESHOLD` (0.8): panoptic keeps a query when its best probability exceeds this.
    /// Compared in float32 (the reference compares a float32 tensor with a Python scalar).
    public var objectMaskThreshold: Double
    /// `OVERLAP_THRESHOLD` (0.8): panoptic drops a query whose visible area / own area is below this.
    /// Compared in Double (the reference divides two Python ints).
    public var overlapThreshold: Double
    /// `TEST.DETECTIONS_PER_IMAGE` (100): k of the instance top-k over queries × classes.
    public var testTopKPerImage: Int
    /// `SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE`. Instance or panoptic inference force it on.
    public var semSegPostprocessingBeforeInference: Bool
    /// Contiguous ids of the thing classes (`metadata.thing_dataset_id_to_contiguous_id.values()`).
    /// Panoptic marks these as things; with panoptic on, instance inference keeps only these.
    public var thingClasses: Set<Int>

    public init(semanticOn: Bool = true, instanceOn: Bool = false, panopticOn: Bool = false,
                objectMaskThreshold: Double = 0.8, overlapThreshold: Double = 0.8, testTopKPerImage: Int = 100,
                semSegPostprocessingBeforeInference: Bool = false, thingClasses: Set<Int> = []) {
        precondition(testTopKPerImage >= 0, "testTopKPerImage \(testTopKPerImage) is negative")
        self.semanticOn = semanticOn; self.instanceOn = instanceOn; self.panopticOn = panopticOn
        self.objectMaskThreshold = objectMaskThreshold; self.overlapThreshold = overlapThreshold
        self.testTopKPerImage = testTopKPerImage
        self.semSegPostprocessingBeforeInference = semSegPostprocessingBeforeInference
        self.thingClasses = thingClasses
    }

    /// ADE20K / Cityscapes semantic configs: semantic only, resized after inference.
    public static var semantic: PostProcessingConfig { PostProcessingConfig() }

    /// COCO instance configs: instance only (every class is kept).
    public static var instance: PostProcessingConfig {
        PostProcessingConfig(semanticOn: false, instanceOn: true, panopticOn: false)
    }

    /// COCO / ADE panoptic configs: semantic, instance and panoptic on; `thingClasses` from the metadata.
    public static func panoptic(thingClasses: Set<Int>) -> PostProcessingConfig {
        PostProcessingConfig(semanticOn: true, instanceOn: true, panopticOn: true, thingClasses: thingClasses)
    }

    /// Whether mask logits are cropped and resized to the output size before inference (the
    /// reference's `sem_seg_postprocess_before_inference`): the flag, or instance or panoptic on.
    public var postprocessBeforeInference: Bool {
        semSegPostprocessingBeforeInference || instanceOn || panopticOn
    }
}

/// The three sizes of one image during inference (detectron2's padded tensor, `image_sizes` and
/// the requested `height`/`width`).
public struct InferenceImageSize: Sendable, Equatable {
    /// Size of the padded network input (a multiple of 32); mask logits are upsampled to it.
    public var paddedHeight: Int, paddedWidth: Int
    /// Valid (un-padded) region of the network input: the image after the test-time resize.
    public var imageHeight: Int, imageWidth: Int
    /// Size the results are reported at: the original image's.
    public var outputHeight: Int, outputWidth: Int

    public init(paddedHeight: Int, paddedWidth: Int, imageHeight: Int, imageWidth: Int,
                outputHeight: Int, outputWidth: Int) {
        precondition(imageHeight > 0 && imageWidth > 0 && imageHeight <= paddedHeight && imageWidth <= paddedWidth,
                     "image \(imageHeight)×\(imageWidth) must be non-empty and inside the padded \(paddedHeight)×\(paddedWidth)")
        precondition(outputHeight > 0 && outputWidth > 0, "output size \(outputHeight)×\(outputWidth) is empty")
        self.paddedHeight = paddedHeight; self.paddedWidth = paddedWidth
        self.imageHeight = imageHeight; self.imageWidth = imageWidth
        self.outputHeight = outputHeight; self.outputWidth = outputWidth
    }

    /// An image fed at its original size: output = image size.
    public init(paddedHeight: Int, paddedWidth: Int, imageHeight: Int, imageWidth: Int) {
        self.init(paddedHeight: paddedHeight, paddedWidth: paddedWidth, imageHeight: imageHeight,
                  imageWidth: imageWidth, outputHeight: imageHeight, outputWidth: imageWidth)
    }
}

/// Semantic inference of one image.
public struct SemanticResult: Sendable {
    /// `[K, H, W]` per-class scores `Σ_q softmax(class_q)[c]·σ(mask_q)` (the reference's `sem_seg`).
    public var scores: Tensor
    /// `H·W` row-major label map: argmax over the K classes (first maximum on ties).
    public var labels: [Int32]
    public var height: Int
    public var width: Int

    public init(scores: Tensor, labels: [Int32], height: Int, width: Int) {
        self.scores = scores; self.labels = labels; self.height = height; self.width = width
    }
}

/// One instance prediction: a (query, class) pair of the top-k.
public struct InstanceResult: Sendable {
    /// Final score: `classScore · maskScore`.
    public var score: Float
    /// Class in `0..<K`.
    public var label: Int
    /// The query the mask comes from.
    public var queryIndex: Int
    /// `softmax(class logits of the query)[label]`.
    public var classScore: Float
    /// Mean sigmoid inside the binary mask: `Σ σ·bin / (Σ bin + 1e-6)`.
    public var maskScore: Float
    /// `H·W` row-major binary mask (1 where the mask logit > 0). Entries of the same query share storage.
    public var mask: [UInt8]
    public var height: Int
    public var width: Int
}

/// One panoptic segment (the reference's `segments_info` entry; it records no score).
public struct PanopticSegment: Sendable, Equatable {
    /// Segment id in the id map, 1, 2, … in creation order.
    public var id: Int
    /// Class in `0..<K`.
    public var categoryId: Int
    public var isThing: Bool

    public init(id: Int, categoryId: Int, isThing: Bool) {
        self.id = id; self.categoryId = categoryId; self.isThing = isThing
    }
}

/// Panoptic inference of one image.
public struct PanopticResult: Sendable {
    /// `H·W` row-major segment ids; 0 is void.
    public var ids: [Int32]
    public var height: Int
    public var width: Int
    /// Segments in id order.
    public var segments: [PanopticSegment]
}

/// Everything inference produced for one image (nil where that task is off).
public struct InferenceResult: Sendable {
    public var semantic: SemanticResult?
    public var instances: [InstanceResult]?
    public var panoptic: PanopticResult?

    public init(semantic: SemanticResult? = nil, instances: [InstanceResult]? = nil, panoptic: PanopticResult? = nil) {
        self.semantic = semantic; self.instances = instances; self.panoptic = panoptic
    }
}

/// Mask2Former's inference post-processing (docs/model.md#inference), run under no-grad.
///
/// Per image: mask logits are upsampled bilinearly (align_corners=False) from stride 4 to the
/// padded input size. Then either they are cropped to the valid size and resized to the output size
/// before inference (instance / panoptic on, or the flag), or semantic inference runs at the padded
/// size and its scores are cropped and resized (`sem_seg_postprocess`). Rows and columns outside the
/// crop are never computed: bilinear values are per pixel, so the crop of the full map is exact.
public struct Mask2FormerPostProcessor: Sendable {
    public var config: PostProcessingConfig

    public init(_ config: PostProcessingConfig) { self.config = config }

    /// Post-processes a batch: `prediction.classLogits` `[B, Q, K+1]`, `prediction.maskLogits`
    /// `[B, Q, h, w]` (the decoder's last prediction), one size per image.
    public func callAsFunction(_ prediction: MaskPrediction, sizes: [InferenceImageSize]) -> [InferenceResult] {
        let cls = prediction.classLogits, masks = prediction.maskLogits
        precondition(cls.rank == 3 && masks.rank == 4 && cls.shape[0] == masks.shape[0] && cls.shape[1] == masks.shape[1],
                     "post-processing: class logits \(cls.shape) [B,Q,K+1] and mask logits \(masks.shape) [B,Q,h,w] disagree")
        precondition(sizes.count == cls.shape[0], "post-processing: \(sizes.count) sizes for a batch of \(cls.shape[0])")
        let q = cls.shape[1], k1 = cls.shape[2], h = masks.shape[2], w = masks.shape[3]
        return sizes.enumerated().map { b, size in
            let c = Tensor(shape: [q, k1], storage: Storage(viewOf: cls.storage, offset: b * q * k1, count: q * k1))
            let m = Tensor(shape: [q, h, w], storage: Storage(viewOf: masks.storage, offset: b * q * h * w, count: q * h * w))
            return process(classLogits: c, maskLogits: m, size: size)
        }
    }

    /// A lower bound of the bytes `process` allocates for one image reported at `outputHeight × outputWidth` with
    /// `queries` queries and `classes` classes: the mask logits at that size (before-inference path) and the
    /// semantic scores.
    public func bytesLowerBound(queries: Int, classes: Int, outputHeight: Int, outputWidth: Int) -> Double {
        let pixels = Double(outputHeight) * Double(outputWidth)
        var floats = 0.0
        if config.postprocessBeforeInference { floats += Double(queries) * pixels }
        if config.semanticOn { floats += Double(classes) * pixels }
        return 4 * floats
    }

    /// A lower bound of the bytes `process` allocates at the resized image's size `imageHeight × imageWidth` (before
    /// the output size): every query's mask cropped there on the semantic path, one scratch map on the
    /// before-inference path.
    public func resizedBytesLowerBound(queries: Int, imageHeight: Int, imageWidth: Int) -> Double {
        let pixels = Double(imageHeight) * Double(imageWidth)
        return 4 * (config.postprocessBeforeInference ? pixels : config.semanticOn ? Double(queries) * pixels : 0)
    }

    /// Post-processes one image: `classLogits` `[Q, K+1]`, `maskLogits` `[Q, h, w]` at stride 4.
    public func process(classLogits: Tensor, maskLogits: Tensor, size: InferenceImageSize) -> InferenceResult {
        withNoGrad {
            var result = InferenceResult()
            if config.postprocessBeforeInference {
                let resized = MaskPostProcessing.upsampleCropResize(maskLogits, size: size)
                if config.semanticOn {
                    let s = MaskPostProcessing.semanticScores(classLogits: classLogits, maskLogits: resized)
                    result.semantic = MaskPostProcessing.semanticResult(scores: s)
                }
                if config.panopticOn {
                    result.panoptic = MaskPostProcessing.panopticInference(
                        classLogits: classLogits, maskLogits: resized, objectMaskThreshold: config.objectMaskThreshold,
                        overlapThreshold: config.overlapThreshold, thingClasses: config.thingClasses)
                }
                if config.instanceOn {
                    result.instances = MaskPostProcessing.instanceInference(
                        classLogits: classLogits, maskLogits: resized, topK: config.testTopKPerImage,
                        keepClasses: config.panopticOn ? config.thingClasses : nil)
                }
            } else if config.semanticOn {
                result.semantic = MaskPostProcessing.semanticResult(scores: semanticScores(classLogits: classLogits, maskLogits: maskLogits, size: size))
            }
            return result
        }
    }

    /// The semantic scores `[K, outputHeight, outputWidth]` of one image (what `process` takes the arg-max of, and what
    /// test-time augmentation averages): at the padded size, then sem_seg_postprocess on the scores, computed on the
    /// valid region only (the einsum is per pixel); or, with `postprocessBeforeInference`, from the resized masks.
    public func semanticScores(classLogits: Tensor, maskLogits: Tensor, size: InferenceImageSize) -> Tensor {
        withNoGrad {
            if config.postprocessBeforeInference {
                return MaskPostProcessing.semanticScores(classLogits: classLogits, maskLogits: MaskPostProcessing.upsampleCropResize(maskLogits, size: size))
            }
            let cropped = MaskPostProcessing.upsampleCrop(maskLogits, size: size)
            let s = MaskPostProcessing.semanticScores(classLogits: classLogits, maskLogits: cropped)
            return MaskPostProcessing.resize(s, height: size.outputHeight, width: size.outputWidth)
        }
    }
}
