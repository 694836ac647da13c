// The whole Mask2Former model: ResNet or Swin backbone → MSDA pixel decoder → masked-attention decoder.
// Corresponds to Mask2Former maskformer_model.py MaskFormer + mask_former_head.py MaskFormerHead (docs/model.md).
import NN
import TensorCore

/// Everything that shapes the model (the `model.*` part of a MaskPilot config).
public struct Mask2FormerConfig: Sendable, Equatable, Codable {
    public var backbone: BackboneConfig
    public var pixelDecoder: PixelDecoderConfig
    public var decoder: TransformerDecoderConfig
    /// MP-Former's mask piloting (`model.mask_piloting.*`); off gives Mask2Former.
    public var maskPiloting: MaskPilotingConfig
    /// `model.weights`: initial weights (a MaskPilot checkpoint or a weights-only HDF5 with `/model/<name>`
    /// datasets), loaded when not resuming; "" = the seeded random initialization. Not part of the
    /// architecture: it may change between a checkpoint and its resume.
    public var weights: String = ""
    /// `model.weights_ignore`: keys of the weights file to skip. A pattern containing `*`, `?` or `[` is a
    /// shell-style glob matched against the whole key (fnmatch without flags: `*` also matches dots);
    /// any other pattern matches keys containing it as a plain substring.
    public var weightsIgnore: [String] = []
    /// `model.pixel_mean` / `model.pixel_std` (detectron2's `MODEL.PIXEL_MEAN` / `PIXEL_STD`): the input
    /// normalization `(x − mean) / std` of 0–255 RGB pixels the weights were trained with; ImageNet's by default.
    /// Part of the model: a resume refuses a change.
    public var pixelMean: [Double] = PixelNormalization.mask2former.mean
    public var pixelStd: [Double] = PixelNormalization.mask2former.std

    /// `pixelMean` / `pixelStd` as a normalization (they must hold 3 values each, `pixelStd` positive: the
    /// configuration's validation checks them).
    public var pixelNormalization: PixelNormalization { PixelNormalization(mean: pixelMean, std: pixelStd) }

    public init(backbone: BackboneConfig, pixelDecoder: PixelDecoderConfig, decoder: TransformerDecoderConfig,
                maskPiloting: MaskPilotingConfig = MaskPilotingConfig()) {
        self.backbone = backbone; self.pixelDecoder = pixelDecoder; self.decoder = decoder
        self.maskPiloting = maskPiloting
    }

    /// The R50 architecture of docs/model.md for `numClasses` classes.
    public static func r50(numClasses: Int) -> Mask2FormerConfig {
        var d = TransformerDecoderConfig()
        d.numClasses = numClasses
        return Mask2FormerConfig(backbone: .standard(depth: 50), pixelDecoder: PixelDecoderConfig(), decoder: d)
    }
}

/// Keys `pixel_decoder.*` and `predictor.*` (under `sem_seg_head.`).
public final class MaskFormerHead: Module {
    @Child(key: "pixel_decoder") public var pixelDecoder: any PixelDecoder
    public let predictor: MultiScaleMaskedTransformerDecoder

    init(_ config: Mask2FormerConfig, rng: inout RNG) {
        precondition(config.pixelDecoder.convDim == config.decoder.hiddenDim,
                     "pixel decoder conv_dim \(config.pixelDecoder.convDim) must equal the decoder hidden dim \(config.decoder.hiddenDim) (input_proj is the identity)")
        precondition(config.pixelDecoder.maskDim == config.decoder.maskDim, "mask_dim differs between pixel decoder and decoder")
        let pd: any PixelDecoder
        switch config.pixelDecoder.name {
        case .msdeformattn:
            pd = MSDeformAttnPixelDecoder(config.pixelDecoder, inChannels: config.backbone.outputChannels, rng: &rng)
        case .fpn:
            pd = FPNPixelDecoder(FPNPixelDecoderConfig(config.pixelDecoder), inChannels: config.backbone.outputChannels, rng: &rng)
        }
        predictor = MultiScaleMaskedTransformerDecoder(config.decoder, maskPiloting: config.maskPiloting, rng: &rng)
        super.init()
        pixelDecoder = pd
    }
}

/// Intermediate results of one forward pass (for tests and the criterion).
public struct Mask2FormerOutput {
    public var backbone: BackboneFeatures
    public var pixelDecoder: PixelDecoderOutput
    /// `decLayers` predictions; the last is the final output, the others are auxiliary.
    public var predictions: [MaskPrediction]
}

/// Mask2Former with keys `backbone.*` and `sem_seg_head.*` (the reference's `state_dict` names).
public final class Mask2Former: Module {
    public let config: Mask2FormerConfig
    @Child(key: "backbone") public var backbone: any Backbone
    @Child(key: "sem_seg_head") public var head: MaskFormerHead

    public init(_ config: Mask2FormerConfig, rng: inout RNG) {
        self.config = config
        let b: any Backbone
        switch config.backbone.name {
        case .resnet: b = ResNet(config.backbone, rng: &rng)
        case .swin: b = SwinTransformer(config.backbone.swin, rng: &rng)
        }
        let h = MaskFormerHead(config, rng: &rng)
        super.init()
        backbone = b
        head = h
    }

    /// Inference (and tests): every intermediate and the `decLayers` predictions of the Q queries.
    /// `images`: normalized `[B, H, W, 3]`, H and W multiples of 32.
    public func callAsFunction(_ images: Tensor) -> Mask2FormerOutput {
        let (f, p) = encode(images)
        let preds = head.predictor(features: p.multiScaleFeatures, maskFeatures: p.maskFeatures)
        return Mask2FormerOutput(backbone: f, pixelDecoder: p, predictions: preds)
    }

    /// The training forward: the matching queries' predictions and, when mask piloting is on and `maskPiloting`
    /// gives the batch's ground truth, the piloted queries' predictions (docs/model.md#mp-forward).
    /// `stochasticDepth`: the step's drop-path draws (Swin; nil runs every branch).
    public func trainingForward(_ images: Tensor, maskPiloting targets: MaskPilotingTargets?,
                                stochasticDepth: StochasticDepthDraws? = nil) -> TrainingPredictions {
        let (_, p) = encode(images, stochasticDepth: stochasticDepth)
        if let targets, config.maskPiloting.enabled {
            return head.predictor(features: p.multiScaleFeatures, maskFeatures: p.maskFeatures, maskPiloting: targets)
        }
        return TrainingPredictions(matching: head.predictor(features: p.multiScaleFeatures, maskFeatures: p.maskFeatures), piloted: nil)
    }

    /// Backbone and pixel decoder, after checking the input's shape.
    private func encode(_ images: Tensor, stochasticDepth: StochasticDepthDraws? = nil) -> (BackboneFeatures, PixelDecoderOutput) {
        precondition(images.rank == 4 && images.shape[3] == 3, "images must be [B, H, W, 3], got \(images.shape)")
        precondition(images.shape[1] % 32 == 0 && images.shape[2] % 32 == 0, "image size \(images.shape[1])×\(images.shape[2]) is not a multiple of 32")
        let f = backbone(images, stochasticDepth: stochasticDepth)
        return (f, head.pixelDecoder(f))
    }
}

extension Mask2FormerConfig {
    /// A lower bound of the bytes a forward pass without gradients holds for `batch` images padded to
    /// `paddedHeight × paddedWidth`: the input and every prediction's mask logits at stride 4 (the backbone's and the
    /// pixel decoder's activations come on top). `infer` and `model run` check it against memory before running.
    public func inferenceBytesLowerBound(batch: Int, paddedHeight: Int, paddedWidth: Int) -> Double {
        let pixels = Double(paddedHeight) * Double(paddedWidth)
        return 4 * Double(batch) * (3 * pixels + Double(decoder.decLayers) * Double(decoder.numQueries) * pixels / 16)
    }
}
