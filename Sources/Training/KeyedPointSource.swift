// The criterion's random points keyed by (seed, image key, iteration, prediction, draw kind, call, pair),
// so an image gets the same points whichever rank or batch position it has (per-sample randomness, MP noise
// included, is keyed by (seed, epoch, image id): docs/architecture.md#habits, docs/model.md#point-sampling). Replaces one per-process stream
// (`RandomPointSource`), whose draws depended on which images the process saw before.
import Mask2FormerModel
import TensorCore

/// Which criterion pass draws points: the matching (Hungarian) losses or mask piloting's losses.
public enum CriterionPass: Int, Sendable {
    case matching = 0, maskPiloting = 1
}

/// Points from per-image Philox streams. Before each step the trainer calls `begin(imageKeys:iteration:)`
/// with one key per batch image (`imageKey(epoch:imageId:)`); each criterion pass draws through
/// `points(for:)` (the source itself draws as the matching pass).
///
/// Each request draws from `RNG(seed: seed, stream: hash(imageKey, iteration, prediction, kind, call, pair))`
/// with kind 0 = matcher, 1 = oversampled candidates, 2 = appended random points, and pair = the index of
/// the pair within its image (0 for the matcher), so pair j of an image never depends on other images'
/// pairs. The source holds no running state: replaying a step needs only its keys and iteration.
public final class KeyedPointSource: PointSource {
    public let seed: UInt64
    /// One key per batch image (batch index → key). Empty: the batch index is the key.
    public private(set) var imageKeys: [UInt64] = []
    public private(set) var iteration = 0

    public init(seed: UInt64) { self.seed = seed }

    /// The key of image `imageId` in `epoch` (the same folding as the trainer's MP noise streams).
    public static func imageKey(epoch: Int, imageId: Int) -> UInt64 {
        UInt64(truncatingIfNeeded: epoch) << 40 ^ UInt64(truncatingIfNeeded: imageId)
    }

    /// Starts a step: the batch's image keys and the optimizer iteration.
    public func begin(imageKeys: [UInt64], iteration: Int) {
        self.imageKeys = imageKeys
        self.iteration = iteration
    }

    /// The points of criterion pass `pass` (its draws never coincide with another pass's).
    public func points(for pass: CriterionPass) -> PointSource { PassPoints(source: self, pass: pass) }

    /// The stream of one draw.
    public func stream(image: Int, prediction: Int, kind: Int, pair: Int, pass: CriterionPass = .matching) -> UInt64 {
        let key = image < imageKeys.count ? imageKeys[image] : UInt64(truncatingIfNeeded: image)
        precondition(imageKeys.isEmpty || image < imageKeys.count, "KeyedPointSource: image \(image) of \(imageKeys.count) keys")
        return RandomStreams.streamKey(salt: 0x4B50_5331,   // "KPS1"
                                       [key, UInt64(truncatingIfNeeded: iteration), UInt64(truncatingIfNeeded: prediction),
                                        UInt64(truncatingIfNeeded: kind), UInt64(truncatingIfNeeded: pass.rawValue),
                                        UInt64(truncatingIfNeeded: pair)])
    }

    public func matcherPoints(prediction: Int, image: Int, count: Int) -> Tensor {
        matcherPoints(prediction: prediction, image: image, count: count, pass: .matching)
    }

    public func oversamplePoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor {
        pairPoints(prediction: prediction, pairImages: pairImages, count: count, kind: 1, pass: .matching)
    }

    public func randomPoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor {
        pairPoints(prediction: prediction, pairImages: pairImages, count: count, kind: 2, pass: .matching)
    }

    func matcherPoints(prediction: Int, image: Int, count: Int, pass: CriterionPass) -> Tensor {
        var rng = RNG(seed: seed, stream: stream(image: image, prediction: prediction, kind: 0, pair: 0, pass: pass))
        return Tensor.uniform([count, 2], rng: &rng)
    }

    /// `[pairs, count, 2]`: pair j from the stream of (its image, its index among that image's pairs).
    func pairPoints(prediction: Int, pairImages: [Int], count: Int, kind: Int, pass: CriterionPass) -> Tensor {
        let out = Tensor(uninitialized: [pairImages.count, count, 2])
        var within: [Int: Int] = [:]
        for (j, image) in pairImages.enumerated() {
            let pair = within[image, default: 0]
            within[image] = pair + 1
            var rng = RNG(seed: seed, stream: stream(image: image, prediction: prediction, kind: kind, pair: pair, pass: pass))
            rng.fillUniform(out.data + j * count * 2, count: count * 2)
        }
        return out
    }
}

/// One criterion pass's view of a `KeyedPointSource`.
private final class PassPoints: PointSource {
    let source: KeyedPointSource, pass: CriterionPass
    init(source: KeyedPointSource, pass: CriterionPass) { self.source = source; self.pass = pass }

    func matcherPoints(prediction: Int, image: Int, count: Int) -> Tensor {
        source.matcherPoints(prediction: prediction, image: image, count: count, pass: pass)
    }
    func oversamplePoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor {
        source.pairPoints(prediction: prediction, pairImages: pairImages, count: count, kind: 1, pass: pass)
    }
    func randomPoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor {
        source.pairPoints(prediction: prediction, pairImages: pairImages, count: count, kind: 2, pass: pass)
    }
}
