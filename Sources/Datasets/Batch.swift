// A training / inference batch: normalized NHWC images zero-padded to a multiple of 32, per-image labels and bit-packed masks.
// Corresponds to Mask2Former's ImageList.from_tensors((x − mean) / std, 32) and prepare_targets (GT masks padded with zeros).
import TensorCore

/// `count` binary masks of `height × width`, one bit per pixel. Mask `n`, pixel (x, y) is bit
/// `(y·width + x) mod 64` of word `n·wordsPerMask + (y·width + x) / 64`.
public struct PackedMasks: Sendable, Equatable {
    public let count: Int
    public let height: Int
    public let width: Int
    public let words: [UInt64]

    public var wordsPerMask: Int { (height * width + 63) / 64 }

    public init(count: Int, height: Int, width: Int, words: [UInt64]) {
        precondition(words.count == count * ((height * width + 63) / 64), "packed masks: \(words.count) words for \(count)×\(height)×\(width)")
        self.count = count; self.height = height; self.width = width; self.words = words
    }

    /// Packs `masks` (each at most `height × width`) into the top-left corner of a zero
    /// `height × width` canvas.
    public init(_ masks: [BinaryMask], height: Int, width: Int) {
        let per = (height * width + 63) / 64
        var words = [UInt64](repeating: 0, count: masks.count * per)
        words.withUnsafeMutableBufferPointer { w in
            for (n, m) in masks.enumerated() {
                precondition(m.width <= width && m.height <= height, "mask \(m.width)×\(m.height) exceeds \(width)×\(height)")
                let base = n * per
                m.bits.withUnsafeBufferPointer { b in
                    if m.width == width {
                        // Rows are contiguous on the canvas: pack 64 pixels per word.
                        let total = m.width * m.height
                        var i = 0, wi = base
                        let raw = UnsafeRawPointer(b.baseAddress!)
                        while i + 64 <= total {
                            var word: UInt64 = 0
                            for j in 0..<8 {
                                // 8 bytes → 8 bits: nonzero bytes become 0x01, then a multiply gathers byte j's
                                // bit into bit 56 + j (no carries: every product term has its own position).
                                let x = raw.loadUnaligned(fromByteOffset: i + 8 * j, as: UInt64.self)
                                let ones = ((((x & 0x7F7F_7F7F_7F7F_7F7F) &+ 0x7F7F_7F7F_7F7F_7F7F) | x) >> 7) & 0x0101_0101_0101_0101
                                word |= ((ones &* 0x0102_0408_1020_4080) >> 56) << UInt64(8 * j)
                            }
                            w[wi] = word
                            i += 64; wi += 1
                        }
                        var word: UInt64 = 0
                        for j in 0..<(total - i) { word |= UInt64(b[i + j] != 0 ? 1 : 0) << UInt64(j) }
                        if total > i { w[wi] = word }
                        return
                    }
                    for y in 0..<m.height {
                        let row = y * m.width
                        var bit = y * width
                        for x in 0..<m.width {
                            if b[row + x] != 0 { w[base + bit >> 6] |= 1 << UInt64(bit & 63) }
                            bit += 1
                        }
                    }
                }
            }
        }
        self.init(count: masks.count, height: height, width: width, words: words)
    }

    /// Whether pixel (x, y) of mask `n` is set.
    public subscript(n: Int, y: Int, x: Int) -> Bool {
        precondition(n >= 0 && n < count && y >= 0 && y < height && x >= 0 && x < width, "(\(n), \(y), \(x)) outside \(count)×\(height)×\(width)")
        let bit = y * width + x
        return words[n * wordsPerMask + bit >> 6] >> UInt64(bit & 63) & 1 == 1
    }

    /// Number of set pixels of mask `n`.
    public func area(_ n: Int) -> Int {
        let per = wordsPerMask
        return words[(n * per)..<((n + 1) * per)].reduce(0) { $0 + $1.nonzeroBitCount }
    }

    /// Mask `n` as a `BinaryMask`.
    public func mask(_ n: Int) -> BinaryMask {
        let per = wordsPerMask, base = n * per
        var bits = [UInt8](repeating: 0, count: height * width)
        for i in 0..<(height * width) where words[base + i >> 6] >> UInt64(i & 63) & 1 == 1 { bits[i] = 1 }
        return BinaryMask(width: width, height: height, bits: bits)
    }

    /// All masks as 0/1 floats, `[count, height, width]` (the criterion's GT masks).
    public func materialize() -> Tensor {
        let t = Tensor.zeros([count, height, width])
        let hw = height * width, per = wordsPerMask
        let p = t.data
        words.withUnsafeBufferPointer { w in
            for n in 0..<count {
                let dst = p + n * hw
                for wi in 0..<per {
                    var word = w[n * per + wi]
                    while word != 0 {
                        let b = word.trailingZeroBitCount
                        dst[wi * 64 + b] = 1
                        word &= word - 1
                    }
                }
            }
        }
        return t
    }
}

/// The targets of one image of a batch.
public struct ImageTargets: Sendable {
    /// Class index of each mask.
    public var labels: [Int]
    /// `[labels.count, Hpad, Wpad]` bits; padding is 0 in every mask.
    public var masks: PackedMasks
    /// Annotation / segment id per mask (the class for semantic targets).
    public var ids: [Int]
}

/// Where a sample sits in the sampling stream: the epoch whose plan it came from, its position in that
/// plan, and the dataset index the plan maps it to.
public struct SampleRef: Sendable, Hashable, CustomStringConvertible {
    public var epoch: Int
    public var position: Int
    public var index: Int
    public init(epoch: Int, position: Int, index: Int) { self.epoch = epoch; self.position = position; self.index = index }
    public var description: String { "epoch \(epoch) position \(position) (index \(index))" }
}

/// A sample that failed and was replaced or dropped under `BadSamplePolicy.skip`.
public struct SkippedSample: Sendable, CustomStringConvertible {
    public var ref: SampleRef
    public var error: DataError
    public var description: String { "\(ref): \(error)" }
}

/// A batch ready for the model: images `[B, Hpad, Wpad, 3]` normalized then zero-padded (bottom / right)
/// to multiples of `sizeDivisibility`, and per image its targets at the padded size.
public struct Batch: Sendable {
    /// `[B, Hpad, Wpad, 3]`, float32; padding is 0 (= the mean colour).
    public let images: Tensor
    public let targets: [ImageTargets]
    /// Size of each augmented image before batch padding (the valid region, top-left).
    public let imageSizes: [ImageSize]
    /// Size of each decoded image before augmentation.
    public let originalSizes: [ImageSize]
    public let imageIds: [Int]
    /// Where each image came from in the sampling stream (after any `.skip` replacement).
    public let refs: [SampleRef]
    /// The transforms applied to each image (for mapping predictions back at test time).
    public let transforms: [TransformList]
    /// Samples that failed while assembling this batch and were replaced or dropped (policy `.skip`).
    public let skipped: [SkippedSample]

    public var count: Int { imageIds.count }
    /// `(Hpad, Wpad)`.
    public var paddedSize: ImageSize { ImageSize(height: images.shape[1], width: images.shape[2]) }

    /// GT masks of image `b` as `[N_b, Hpad, Wpad]` 0/1 floats.
    public func maskTensor(_ b: Int) -> Tensor { targets[b].masks.materialize() }

    /// Collates augmented samples: normalization, padding to a multiple of `sizeDivisibility` of the
    /// largest height / width, masks packed at the padded size.
    public static func collate(_ samples: [AugmentedSample], refs: [SampleRef]? = nil, skipped: [SkippedSample] = [],
                               sizeDivisibility: Int = 32, normalization: PixelNormalization = .mask2former) -> Batch {
        precondition(sizeDivisibility > 0, "sizeDivisibility \(sizeDivisibility)")
        let maxH = samples.map(\.image.height).max() ?? 0, maxW = samples.map(\.image.width).max() ?? 0
        let hp = (maxH + sizeDivisibility - 1) / sizeDivisibility * sizeDivisibility
        let wp = (maxW + sizeDivisibility - 1) / sizeDivisibility * sizeDivisibility
        let images = Tensor.zeros([samples.count, hp, wp, 3])
        let base = images.data
        var lut = [[Float]](repeating: [], count: 3)
        for c in 0..<3 {
            let m = Float(normalization.mean[c]), s = Float(normalization.std[c])
            lut[c] = (0..<256).map { (Float($0) - m) / s }
        }
        for (b, sample) in samples.enumerated() {
            let img = sample.image
            precondition(img.channels == 3, "batch images must be RGB, image \(sample.imageId) has \(img.channels) channels")
            let dst = base + b * hp * wp * 3
            lut[0].withUnsafeBufferPointer { l0 in
                lut[1].withUnsafeBufferPointer { l1 in
                    lut[2].withUnsafeBufferPointer { l2 in
                        img.pixels.withUnsafeBufferPointer { px in
                            for y in 0..<img.height {
                                var s = y * img.width * 3
                                var d = y * wp * 3
                                for _ in 0..<img.width {
                                    dst[d] = l0[Int(px[s])]; dst[d + 1] = l1[Int(px[s + 1])]; dst[d + 2] = l2[Int(px[s + 2])]
                                    s += 3; d += 3
                                }
                            }
                        }
                    }
                }
            }
        }
        let targets = samples.map {
            ImageTargets(labels: $0.classes, masks: PackedMasks($0.masks, height: hp, width: wp), ids: $0.targetIds)
        }
        let r = refs ?? samples.enumerated().map { SampleRef(epoch: 0, position: $0.offset, index: $0.offset) }
        precondition(r.count == samples.count, "\(r.count) refs for \(samples.count) samples")
        return Batch(images: images, targets: targets, imageSizes: samples.map(\.image.size),
                     originalSizes: samples.map(\.originalSize), imageIds: samples.map(\.imageId),
                     refs: r, transforms: samples.map(\.transforms), skipped: skipped)
    }
}
