// PixelNormalization: how 0–255 RGB pixels become the network's input, `(x − mean) / std` per channel.
// Corresponds to detectron2's MODEL.PIXEL_MEAN / PIXEL_STD (the model's `pixel_mean` / `pixel_std` buffers).
// It lives here, below both, because the model's configuration (`model.pixel_mean`) and the batch collation
// (`Datasets/Batch.swift`) share it.

/// Per-channel pixel normalization `(x − mean) / std` on the 0–255 scale, RGB order (applied in float32).
public struct PixelNormalization: Sendable, Hashable {
    public var mean: [Double]
    public var std: [Double]
    public init(mean: [Double], std: [Double]) {
        precondition(mean.count == 3 && std.count == 3 && std.allSatisfy { $0 > 0 }, "mean/std need 3 channels, std > 0")
        self.mean = mean; self.std = std
    }
    /// Mask2Former's `MODEL.PIXEL_MEAN / PIXEL_STD` (ImageNet's statistics; docs/model.md#input), the default of
    /// `model.pixel_mean` / `model.pixel_std`.
    public static let mask2former = PixelNormalization(mean: [123.675, 116.280, 103.530], std: [58.395, 57.120, 57.375])

    /// Whether `other` is the same to within `tolerance` per value (statistics written with fewer digits elsewhere).
    public func isClose(to other: PixelNormalization, tolerance: Double = 0.01) -> Bool {
        zip(mean + std, other.mean + other.std).allSatisfy { abs($0 - $1) <= tolerance }
    }
}
