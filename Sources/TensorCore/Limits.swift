// Limit: the upper bounds of numbers read from users and files, in one place.
/// Upper bounds of the numbers MaskPilot reads from users and files: the configuration's (`MaskPilotConfig.violations()`),
/// counters in checkpoints and logs, tensor shapes in HDF5 files. Far above any real model or run, and low enough that
/// products of a few of them, step counts and conversions to Int downstream cannot overflow.
public enum Limit {
    /// Counts: blocks, layers, heads, queries, classes, points, groups, images per batch (2^20).
    public static let count = 1 << 20
    /// Channel widths and feed-forward sizes (2^16).
    public static let width = 1 << 16
    /// Image side lengths and sizes in pixels (2^16).
    public static let pixels = 1 << 16
    /// Iterations and periods counted in iterations, and every counter read from a checkpoint or log (steps, epochs,
    /// samples, ranks) (2^40).
    public static let iterations = 1 << 40
    /// Elements of one tensor declared by a file (2^40).
    public static let elements = 1 << 40

    /// The element count of a shape a file declares; nil when a dimension is negative or the dimensions multiply to
    /// more than `elements` with zeros counted as 1 (a zero must not let `[0, 2^32, 2^32]` through: slicing or
    /// concatenating it multiplies the other dimensions).
    public static func elementCount(ofDeclaredShape shape: [Int]) -> Int? {
        var bound = 1, count = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (product, overflow) = bound.multipliedReportingOverflow(by: Swift.max(d, 1))
            guard !overflow, product <= elements else { return nil }
            bound = product
            count *= d
        }
        return count
    }
    /// Threads and loader workers (4096).
    public static let threads = 4096
    /// Real-valued settings without a tighter bound: learning rates, weights, norms (10^12).
    public static let scale = 1e12
}
