// The smallest Mask2Former the tests build when they need a whole model but not the reference fixture's:
// ResNet basic [1, 1, 1, 1] with widths 16–128, one MSDA encoder layer, hidden 32, 4 queries, 2 decoder layers.
import Mask2FormerModel

extension Mask2FormerConfig {
    /// A tiny R50-style configuration with `numClasses` classes (a few milliseconds per forward at 64×64).
    public static func testTiny(numClasses: Int) -> Mask2FormerConfig {
        var c = Mask2FormerConfig.r50(numClasses: numClasses)
        c.backbone = BackboneConfig(block: .basic, depths: [1, 1, 1, 1], widths: [16, 32, 64, 128], stemChannels: 16)
        c.pixelDecoder.convDim = 32; c.pixelDecoder.maskDim = 32; c.pixelDecoder.encoderLayers = 1
        c.pixelDecoder.encoderFeedforwardDim = 32
        c.decoder.hiddenDim = 32; c.decoder.maskDim = 32; c.decoder.numQueries = 4
        c.decoder.heads = 4; c.decoder.feedforwardDim = 32; c.decoder.decLayers = 2
        return c
    }
}
