// Inference resampling of mask logits and score maps: stride-4 → padded upsample, crop, resize to the output.
// Corresponds to maskformer_model.py's F.interpolate to the padded size and detectron2 sem_seg_postprocess (docs/model.md#inference, #resampling).
import Kernels
import TensorCore

/// Namespace of the inference post-processing steps (each one usable on its own).
public enum MaskPostProcessing {
    /// The reference's first step, literally: bilinear (align_corners=False) upsample of every map.
    ///
    /// `maps`: `[C, h, w]` → `[C, paddedHeight, paddedWidth]`.
    public static func upsampleToPadded(_ maps: Tensor, paddedHeight: Int, paddedWidth: Int) -> Tensor {
        resize(maps, height: paddedHeight, width: paddedWidth)
    }

    /// detectron2 `sem_seg_postprocess`: crop `[:, :imageHeight, :imageWidth]`, then bilinear
    /// (align_corners=False) resize to `outputHeight × outputWidth`.
    ///
    /// `maps`: `[C, H, W]` → `[C, outputHeight, outputWidth]`.
    public static func semSegPostprocess(_ maps: Tensor, imageHeight: Int, imageWidth: Int,
                                         outputHeight: Int, outputWidth: Int) -> Tensor {
        precondition(maps.rank == 3 && imageHeight > 0 && imageWidth > 0 && imageHeight <= maps.shape[1] && imageWidth <= maps.shape[2],
                     "semSegPostprocess: crop \(imageHeight)×\(imageWidth) of maps \(maps.shape) [C,H,W]")
        let c = maps.shape[0], h = maps.shape[1], w = maps.shape[2]
        let cropped = Tensor(uninitialized: [c, imageHeight, imageWidth])
        for i in 0..<c {
            for y in 0..<imageHeight {
                (cropped.data + (i * imageHeight + y) * imageWidth).update(from: maps.data + (i * h + y) * w, count: imageWidth)
            }
        }
        return resize(cropped, height: outputHeight, width: outputWidth)
    }

    /// Bilinear (align_corners=False) resize of every map: `[C, H, W]` → `[C, height, width]`.
    /// Same size returns a copy (bilinear at scale 1 is the identity).
    public static func resize(_ maps: Tensor, height: Int, width: Int) -> Tensor {
        precondition(maps.rank == 3 && height > 0 && width > 0, "resize: maps \(maps.shape) [C,H,W] to \(height)×\(width)")
        let c = maps.shape[0], h = maps.shape[1], w = maps.shape[2]
        if h == height && w == width { return maps.copy() }
        let out = Tensor(uninitialized: [c, height, width])
        if c > 0 {
            resizeBilinearForward(x: maps.data, y: out.data, batch: c, inHeight: h, inWidth: w, channels: 1,
                                  outHeight: height, outWidth: width)
        }
        return out
    }

    /// Fused upsample + crop: `upsampleToPadded` followed by the crop to the valid region, computing
    /// only the valid rows and columns (same values and operation order as the full map).
    ///
    /// `maskLogits`: `[Q, h, w]` → `[Q, imageHeight, imageWidth]`.
    public static func upsampleCrop(_ maskLogits: Tensor, size: InferenceImageSize) -> Tensor {
        checkMasks(maskLogits)
        let q = maskLogits.shape[0], h = maskLogits.shape[1], w = maskLogits.shape[2]
        let ih = size.imageHeight, iw = size.imageWidth
        let out = Tensor(uninitialized: [q, ih, iw])
        let taps = CroppedUpsampleTaps(h: h, w: w, size: size)
        for i in 0..<q { taps.apply(maskLogits.data + i * h * w, out.data + i * ih * iw) }
        return out
    }

    /// Fused upsample + `sem_seg_postprocess`: `[Q, h, w]` → `[Q, outputHeight, outputWidth]`, one
    /// query at a time so only one valid-size intermediate map is alive.
    public static func upsampleCropResize(_ maskLogits: Tensor, size: InferenceImageSize) -> Tensor {
        checkMasks(maskLogits)
        let q = maskLogits.shape[0], h = maskLogits.shape[1], w = maskLogits.shape[2]
        let ih = size.imageHeight, iw = size.imageWidth, oh = size.outputHeight, ow = size.outputWidth
        if ih == oh && iw == ow { return upsampleCrop(maskLogits, size: size) }
        let out = Tensor(uninitialized: [q, oh, ow])
        let taps = CroppedUpsampleTaps(h: h, w: w, size: size)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: ih * iw)
        defer { scratch.deallocate() }
        for i in 0..<q {
            taps.apply(maskLogits.data + i * h * w, scratch)
            resizeBilinearForward(x: scratch, y: out.data + i * oh * ow, batch: 1, inHeight: ih, inWidth: iw,
                                  channels: 1, outHeight: oh, outWidth: ow)
        }
        return out
    }

    static func checkMasks(_ m: Tensor) {
        precondition(m.rank == 3 && m.shape[1] > 0 && m.shape[2] > 0, "mask logits \(m.shape) are not [Q, h, w]")
    }
}

/// Bilinear taps of the `h × w → paddedHeight × paddedWidth` upsample for the valid rows and
/// columns only. `apply` evaluates one map as `h0·(w0·a + w1·b) + h1·(w0·c + w1·d)`, the order of
/// the single-channel `resizeBilinearForward` (horizontal pass per source row, then vertical blend).
private struct CroppedUpsampleTaps {
    let srcWidth: Int, outHeight: Int, outWidth: Int
    var col0: [Int] = [], col1: [Int] = [], cw0: [Float] = [], cw1: [Float] = []
    var row0: [Int] = [], row1: [Int] = [], rw0: [Float] = [], rw1: [Float] = []

    init(h: Int, w: Int, size: InferenceImageSize) {
        srcWidth = w; outHeight = size.imageHeight; outWidth = size.imageWidth
        for x in 0..<outWidth {
            let t = bilinearSourceTaps(x, inSize: w, outSize: size.paddedWidth)
            col0.append(t.i0); col1.append(t.i1); cw0.append(t.l0); cw1.append(t.l1)
        }
        for y in 0..<outHeight {
            let t = bilinearSourceTaps(y, inSize: h, outSize: size.paddedHeight)
            row0.append(t.i0); row1.append(t.i1); rw0.append(t.l0); rw1.append(t.l1)
        }
    }

    /// `src`: one `[h, w]` map → `dst`: `[outHeight, outWidth]`.
    func apply(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
        let ow = outWidth, sw = srcWidth
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: 2 * ow)
        defer { buffer.deallocate() }
        var lo = buffer, hi = buffer + ow
        col0.withUnsafeBufferPointer { c0 in col1.withUnsafeBufferPointer { c1 in
        cw0.withUnsafeBufferPointer { w0 in cw1.withUnsafeBufferPointer { w1 in
            var loTag = -1, hiTag = -1
            for y in 0..<outHeight {
                let r0 = row0[y], r1 = row1[y]
                if r0 == hiTag && r0 != loTag { swap(&lo, &hi); swap(&loTag, &hiTag) }
                if loTag != r0 {
                    let s = src + r0 * sw
                    for x in 0..<ow { lo[x] = w0[x] * s[c0[x]] + w1[x] * s[c1[x]] }
                    loTag = r0
                }
                if hiTag != r1 {
                    let s = src + r1 * sw
                    for x in 0..<ow { hi[x] = w0[x] * s[c0[x]] + w1[x] * s[c1[x]] }
                    hiTag = r1
                }
                let h0 = rw0[y], h1 = rw1[y]
                let o = dst + y * ow
                for x in 0..<ow { o[x] = h0 * lo[x] + h1 * hi[x] }
            }
        } } } }
    }
}
