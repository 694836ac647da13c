// Resampling for augmentations: PIL's antialiased BILINEAR resize of 8-bit images and the two nearest rules.
// Corresponds to detectron2 ResizeTransform: PIL Image.resize (uint8 images and masks) and F.interpolate "nearest" (float label maps).

/// Which nearest-neighbour rule maps an output pixel to its source pixel when a label map or mask is resized.
///
/// detectron2's `ResizeTransform.apply_segmentation` calls PIL for uint8 arrays and `F.interpolate` for
/// everything else, and the two disagree on which source pixel is taken:
/// - `.pil` (uint8 masks: COCO panoptic PNGs, COCO RLE masks): PIL's `ImagingScaleAffine`, source
///   `floor(a/2 + x·a)` accumulated in double as PIL does (`a = in/out`).
/// - `.torch` (the ADE20K mapper reads the label PNG as float64): PyTorch's legacy `"nearest"`,
///   source `min(floor(x·s), in−1)` with `s = Float(in)/Float(out)` computed in float32.
public enum NearestRule: Sendable, Hashable {
    case pil
    case torch

    /// Source index of every output index along one axis (all in `0..<inSize`).
    public func sourceIndices(inSize: Int, outSize: Int) -> [Int] {
        precondition(inSize > 0 && outSize >= 0, "nearest resize \(inSize) → \(outSize)")
        if inSize == outSize { return Array(0..<outSize) }
        switch self {
        case .pil:
            let a = Double(inSize) / Double(outSize)
            var xo = a * 0.5
            var out = [Int](repeating: 0, count: outSize)
            for x in 0..<outSize {
                // PIL's COORD: negative → -1 (never happens for a positive scale), else truncation.
                out[x] = min(max(xo < 0 ? -1 : Int(xo), 0), inSize - 1)
                xo += a
            }
            return out
        case .torch:
            if outSize == 2 * inSize { return (0..<outSize).map { $0 >> 1 } }
            let s = Float(inSize) / Float(outSize)
            return (0..<outSize).map { min(Int((Float($0) * s).rounded(.down)), inSize - 1) }
        }
    }
}

/// PIL's fixed-point coefficients of its separable BILINEAR ("triangle") filter along one axis.
///
/// Pillow `Resample.c` `precompute_coeffs` + `normalize_coeffs_8bpc`: the filter support is
/// `max(in/out, 1)` source pixels, so downscaling averages over the whole footprint (antialiasing);
/// weights are normalized to sum 1 and rounded to 22 fractional bits.
struct PILFilterAxis {
    static let precisionBits = 22
    /// First source index of each output index.
    var first: [Int] = []
    /// Number of source pixels of each output index.
    var taps: [Int] = []
    /// `ksize` weights per output index (unused tail zero).
    var weights: [Int] = []
    var ksize = 0

    /// Coefficients for output indices `outRange` of a resize of `inSize` to `outSize` samples.
    init(inSize: Int, outSize: Int, outRange: Range<Int>) {
        let scale = Double(Float(inSize) - Float(0)) / Double(outSize)   // PIL: (double)(in1 - in0) / outSize, box in float
        let filterScale = max(scale, 1.0)
        let support = 1.0 * filterScale
        ksize = Int(support.rounded(.up)) * 2 + 1
        let n = outRange.count
        first = [Int](repeating: 0, count: n)
        taps = [Int](repeating: 0, count: n)
        weights = [Int](repeating: 0, count: n * ksize)
        var k = [Double](repeating: 0, count: ksize)
        let ss = 1.0 / filterScale
        for (i, xx) in outRange.enumerated() {
            let center = (Double(xx) + 0.5) * scale
            var xmin = Int(center - support + 0.5)    // C (int) cast: truncation toward zero
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            var ww = 0.0
            for x in 0..<xmax {
                var t = (Double(x + xmin) - center + 0.5) * ss
                if t < 0 { t = -t }
                let w = t < 1 ? 1 - t : 0
                k[x] = w
                ww += w
            }
            for x in 0..<ksize {
                var w = x < xmax ? k[x] : 0
                if x < xmax && ww != 0 { w /= ww }
                let scaled = w * Double(1 << PILFilterAxis.precisionBits)
                weights[i * ksize + x] = w < 0 ? Int(-0.5 + scaled) : Int(0.5 + scaled)
            }
            first[i] = xmin
            taps[i] = xmax
        }
    }
}

@inline(__always) private func pilClip8(_ v: Int) -> UInt8 {
    if v >= (1 << PILFilterAxis.precisionBits) << 8 { return 255 }
    if v <= 0 { return 0 }
    return UInt8(truncatingIfNeeded: v >> PILFilterAxis.precisionBits)
}

extension Image8 {
    /// PIL `Image.resize((width, height), BILINEAR)` of this 8-bit image, bit for bit, restricted to
    /// output columns `columns` and rows `rows` (the whole output by default).
    ///
    /// Pillow's algorithm: a horizontal pass over the source rows that the requested output rows need,
    /// rounded to 8 bits, then a vertical pass; each pass is skipped when its size does not change.
    /// Taking a sub-rectangle gives exactly the same pixels as resizing the whole image and cropping,
    /// so a resize followed by a crop never materializes the full resized image.
    /// - Returns: an image of `columns.count × rows.count` pixels with the same channel count.
    public func resizedPILBilinear(width outW: Int, height outH: Int,
                                   columns: Range<Int>? = nil, rows: Range<Int>? = nil) -> Image8 {
        precondition(outW > 0 && outH > 0 && width > 0 && height > 0,
                     "resize of a \(width)×\(height) image to \(outW)×\(outH)")
        let cols = columns ?? 0..<outW
        let rowRange = rows ?? 0..<outH
        precondition(cols.lowerBound >= 0 && cols.upperBound <= outW && rowRange.lowerBound >= 0 && rowRange.upperBound <= outH,
                     "region \(cols)×\(rowRange) outside \(outW)×\(outH)")
        let c = channels
        let inW = width, inH = height
        let needH = outW != inW, needV = outH != inH

        // Source rows needed by the requested output rows.
        let vAxis: PILFilterAxis? = needV ? PILFilterAxis(inSize: inH, outSize: outH, outRange: rowRange) : nil
        var srcRow0 = rowRange.lowerBound, srcRow1 = rowRange.upperBound
        if let v = vAxis, !rowRange.isEmpty {
            srcRow0 = v.first.min()!
            srcRow1 = zip(v.first, v.taps).map { $0 + $1 }.max()!
        }
        let tempRows = max(srcRow1 - srcRow0, 0)
        let tempW = cols.count

        // Horizontal pass (or column copy) into `temp`: tempRows × tempW × c.
        var temp = [UInt8](repeating: 0, count: tempRows * tempW * c)
        pixels.withUnsafeBufferPointer { src in
            temp.withUnsafeMutableBufferPointer { dst in
                if needH {
                    let h = PILFilterAxis(inSize: inW, outSize: outW, outRange: cols)
                    let ksize = h.ksize
                    h.weights.withUnsafeBufferPointer { kk in
                        for ty in 0..<tempRows {
                            let srow = (srcRow0 + ty) * inW * c
                            let drow = ty * tempW * c
                            for x in 0..<tempW {
                                let xmin = h.first[x], taps = h.taps[x]
                                let kb = x * ksize
                                for ch in 0..<c {
                                    var ss = 1 << (PILFilterAxis.precisionBits - 1)
                                    var p = srow + xmin * c + ch
                                    for t in 0..<taps {
                                        ss += Int(src[p]) * kk[kb + t]
                                        p += c
                                    }
                                    dst[drow + x * c + ch] = pilClip8(ss)
                                }
                            }
                        }
                    }
                } else {
                    for ty in 0..<tempRows {
                        let s = ((srcRow0 + ty) * inW + cols.lowerBound) * c
                        let d = ty * tempW * c
                        for i in 0..<(tempW * c) { dst[d + i] = src[s + i] }
                    }
                }
            }
        }
        guard let v = vAxis else {
            return Image8(width: tempW, height: tempRows, channels: c, pixels: temp)
        }
        // Vertical pass.
        let outRows = rowRange.count
        let rowStride = tempW * c
        var out = [UInt8](repeating: 0, count: outRows * rowStride)
        temp.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                v.weights.withUnsafeBufferPointer { kk in
                    let ksize = v.ksize
                    for y in 0..<outRows {
                        let ymin = v.first[y] - srcRow0, taps = v.taps[y]
                        let kb = y * ksize
                        let drow = y * rowStride
                        for i in 0..<rowStride {
                            var ss = 1 << (PILFilterAxis.precisionBits - 1)
                            var p = ymin * rowStride + i
                            for t in 0..<taps {
                                ss += Int(src[p]) * kk[kb + t]
                                p += rowStride
                            }
                            dst[drow + i] = pilClip8(ss)
                        }
                    }
                }
            }
        }
        return Image8(width: tempW, height: outRows, channels: c, pixels: out)
    }
}
