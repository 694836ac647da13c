// Sources of the random points the matcher and the point-sampled mask losses draw (random or replayed).
// Corresponds to the torch.rand calls of Mask2Former's matcher and PointRend's uncertainty sampling (docs/model.md#point-sampling).
import TensorCore

/// Where the criterion's random points come from. Every point is `(x, y)` in `[0, 1]²`.
///
/// Per prediction `k` (0 = first, last = final) the criterion asks, in this order:
/// 1. `matcherPoints(prediction: k, image: b, count: P)` for every image b that has targets;
/// 2. when some pair was matched, `oversamplePoints(prediction: k, pairImages: images, count: ⌊ratio·P⌋)` for
///    the n = `images.count` matched pairs in batch order (image, then query); `images[j]` is the batch
///    image index of pair j (non-decreasing), so a source can key each image's points by the image;
/// 3. then `randomPoints(prediction: k, pairImages: images, count: P − ⌊importance·P⌋)`, appended after the
///    most uncertain candidates of each pair.
/// The MP losses (MP-Former) then ask 2–3 again for the same k with their own pairs.
/// This mirrors what the reference records (`matcher_points{b}`, `oversample_points`, `random_points`).
public protocol PointSource: AnyObject {
    /// Uniform points `[count, 2]` shared by all queries and targets of one image in the matcher.
    func matcherPoints(prediction: Int, image: Int, count: Int) -> Tensor
    /// Uniform candidate points `[pairImages.count, count, 2]`, one set per matched pair; `pairImages[j]`
    /// is the batch image index of pair j.
    func oversamplePoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor
    /// The points `[pairImages.count, count, 2]` appended after the most uncertain candidates of each pair.
    func randomPoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor
}

/// Fresh uniform points from a Philox `RNG` (the default in training).
///
/// The appended "random" points are fresh uniform draws, as in the reference (detectron2
/// `get_uncertain_point_coords_with_randomness` and the HF port both append `torch.rand` points).
/// Drawing uniform candidates and picking random ones among them has the same distribution.
/// Save and restore `rng.state` to resume a run exactly.
public final class RandomPointSource: PointSource {
    public var rng: RNG

    public init(rng: RNG) { self.rng = rng }

    public convenience init(seed: UInt64, stream: UInt64 = 0) { self.init(rng: RNG(seed: seed, stream: stream)) }

    public func matcherPoints(prediction: Int, image: Int, count: Int) -> Tensor {
        Tensor.uniform([count, 2], rng: &rng)
    }

    public func oversamplePoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor {
        Tensor.uniform([pairImages.count, count, 2], rng: &rng)
    }

    public func randomPoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor {
        Tensor.uniform([pairImages.count, count, 2], rng: &rng)
    }
}

/// Replays recorded points (e.g. the fixture's `loss/prediction{k}/…`), the same on every call, so a
/// loss evaluated twice (or under finite differences) sees identical points.
public final class RecordedPointSource: PointSource {
    /// `[prediction][image]` → `[P, 2]`. Images without targets may hold any placeholder.
    public var matcher: [[Tensor]]
    /// `[prediction]` → `[n_matched, ⌊ratio·P⌋, 2]`.
    public var oversample: [Tensor]
    /// `[prediction]` → `[n_matched, P − ⌊importance·P⌋, 2]`.
    public var random: [Tensor]

    public init(matcherPoints: [[Tensor]], oversamplePoints: [Tensor], randomPoints: [Tensor]) {
        self.matcher = matcherPoints
        self.oversample = oversamplePoints
        self.random = randomPoints
    }

    public func matcherPoints(prediction: Int, image: Int, count: Int) -> Tensor {
        precondition(prediction < matcher.count && image < matcher[prediction].count,
                     "recorded matcher points: none for prediction \(prediction), image \(image)")
        let t = matcher[prediction][image]
        precondition(t.shape == [count, 2], "recorded matcher points \(t.shape), expected [\(count), 2]")
        return t
    }

    public func oversamplePoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor {
        let pairs = pairImages.count
        precondition(prediction < oversample.count, "recorded oversample points: none for prediction \(prediction)")
        let t = oversample[prediction]
        precondition(t.shape == [pairs, count, 2], "recorded oversample points \(t.shape), expected [\(pairs), \(count), 2]")
        return t
    }

    public func randomPoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor {
        let pairs = pairImages.count
        precondition(prediction < random.count, "recorded random points: none for prediction \(prediction)")
        let t = random[prediction]
        precondition(t.shape == [pairs, count, 2], "recorded random points \(t.shape), expected [\(pairs), \(count), 2]")
        return t
    }
}
