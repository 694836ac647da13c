// The seed offsets of the run's random streams, in one place.
// No reference counterpart (the reference draws from torch's global generator).
/// The run's random streams besides the parameters' initialization: each is `RNG(seed: config.seed &+ offset, …)`
/// with its own offset, so no two uses ever share a stream.
public enum RandomStreams {
    /// Mask piloting's label flips and point noise, one stream per image: `stream: imageKey(epoch, image id)`.
    public static let maskPiloting: UInt64 = 0x4D50        // "MP"
    /// The criterion's random points (`KeyedPointSource`).
    public static let criterionPoints: UInt64 = 0x5054     // "PT"
    /// Swin's stochastic depth: per (image key, iteration, block, branch) (`StochasticDepthDraws`).
    public static let dropPath: UInt64 = 0x4450           // "DP"
    /// The layer-consistency matcher's points during evaluation, one stream per image id.
    public static let layerConsistency: UInt64 = 0x4C43    // "LC"
}
