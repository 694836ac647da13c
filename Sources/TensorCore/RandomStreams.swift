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

/// The splitmix64 finalizer (Steele et al.): a bijective mix of 64 bits, used to fold keys into stream numbers.
@inline(__always) public func splitMix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

extension RandomStreams {
    /// A stream number from `values` (image key, iteration, …) folded in order into `salt` with `splitMix64`:
    /// the keyed draws' streams (`KeyedPointSource`, `StochasticDepthDraws`).
    public static func streamKey(salt: UInt64, _ values: [UInt64]) -> UInt64 {
        values.reduce(salt) { splitMix64($0 ^ $1) }
    }
}
