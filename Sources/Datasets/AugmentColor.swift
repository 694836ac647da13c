// ColorAugSSD: SSD's photometric distortion in BGR space with OpenCV's 8-bit HSV conversions, parameters recorded.
// Corresponds to detectron2 projects/PointRend/point_rend/color_augmentation.py (ColorAugSSDTransform) and OpenCV cvtColor.
import Foundation
import TensorCore

/// The random draws of one ColorAugSSD application (`nil` = that step was skipped, p = 0.5 each).
///
/// The reference, on an RGB image: swap to BGR; brightness `+U(-32, 32)` (p 0.5); then with p 0.5 the
/// order contrast → saturation → hue, else saturation → hue → contrast; contrast `×U(0.5, 1.5)` on all
/// channels; saturation `×U(0.5, 1.5)` on S of OpenCV's 8-bit HSV; hue `(H + randint(-18, 18)) mod 180`.
/// Each "convert" is float32 `v·alpha + beta`, clipped to [0, 255], truncated to uint8. Saturation and
/// hue each convert BGR → HSV → BGR with OpenCV's uint8 routines (see `rgbToHSV` / `hsvToRGB`).
public struct ColorAugSSDParams: Sendable, Hashable {
    public var brightness: Float?
    /// true: contrast, saturation, hue; false: saturation, hue, contrast.
    public var contrastFirst: Bool
    public var contrast: Float?
    public var saturation: Float?
    public var hue: Int?

    public init(brightness: Float? = nil, contrastFirst: Bool = true, contrast: Float? = nil,
                saturation: Float? = nil, hue: Int? = nil) {
        self.brightness = brightness; self.contrastFirst = contrastFirst
        self.contrast = contrast; self.saturation = saturation; self.hue = hue
    }

    /// Draws the parameters in the reference's order: brightness coin (+ value), order coin, then the
    /// coin (+ value) of each step in application order.
    public static func sample(rng: inout RNG, brightnessDelta: Float = 32, contrastRange: ClosedRange<Float> = 0.5...1.5,
                              saturationRange: ClosedRange<Float> = 0.5...1.5, hueDelta: Int = 18) -> ColorAugSSDParams {
        func uniform(_ lo: Double, _ hi: Double, _ rng: inout RNG) -> Float { Float(lo + (hi - lo) * rng.nextDouble()) }
        var p = ColorAugSSDParams()
        if rng.nextInt(below: 2) == 1 { p.brightness = uniform(Double(-brightnessDelta), Double(brightnessDelta), &rng) }
        p.contrastFirst = rng.nextInt(below: 2) == 1
        func drawContrast(_ rng: inout RNG) {
            if rng.nextInt(below: 2) == 1 { p.contrast = uniform(Double(contrastRange.lowerBound), Double(contrastRange.upperBound), &rng) }
        }
        func drawSatHue(_ rng: inout RNG) {
            if rng.nextInt(below: 2) == 1 { p.saturation = uniform(Double(saturationRange.lowerBound), Double(saturationRange.upperBound), &rng) }
            if rng.nextInt(below: 2) == 1 { p.hue = rng.nextInt(below: 2 * hueDelta + 1) - hueDelta }
        }
        if p.contrastFirst { drawContrast(&rng); drawSatHue(&rng) } else { drawSatHue(&rng); drawContrast(&rng) }
        return p
    }

    /// Applies the recorded steps to an RGB image.
    public func apply(to image: Image8) -> Image8 {
        precondition(image.channels == 3, "ColorAugSSD needs an RGB image, got \(image.channels) channels")
        var px = image.pixels
        let w = image.width
        if let b = brightness { convertAll(&px, alpha: 1, beta: b) }
        if contrastFirst {
            if let a = contrast { convertAll(&px, alpha: a, beta: 0) }
            applySaturation(&px, width: w)
            applyHue(&px, width: w)
        } else {
            applySaturation(&px, width: w)
            applyHue(&px, width: w)
            if let a = contrast { convertAll(&px, alpha: a, beta: 0) }
        }
        return Image8(width: w, height: image.height, channels: 3, pixels: px)
    }

    private func applySaturation(_ px: inout [UInt8], width: Int) {
        guard let a = saturation else { return }
        var hsv = rgbToHSV(px)
        var i = 1
        while i < hsv.count { hsv[i] = ssdConvert(hsv[i], alpha: a, beta: 0); i += 3 }
        px = hsvToRGB(hsv, width: width)
    }

    private func applyHue(_ px: inout [UInt8], width: Int) {
        guard let d = hue else { return }
        var hsv = rgbToHSV(px)
        var i = 0
        while i < hsv.count {
            var h = (Int(hsv[i]) + d) % 180
            if h < 0 { h += 180 }   // Python's modulo is non-negative
            hsv[i] = UInt8(h)
            i += 3
        }
        px = hsvToRGB(hsv, width: width)
    }

    private func convertAll(_ px: inout [UInt8], alpha: Float, beta: Float) {
        px.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = ssdConvert(p[i], alpha: alpha, beta: beta) }
        }
    }
}

/// `np.clip(v.astype(float32) * alpha + beta, 0, 255).astype(uint8)`.
@inline(__always) func ssdConvert(_ v: UInt8, alpha: Float, beta: Float) -> UInt8 {
    let x: Float = Float(v) * alpha + beta
    if !(x > 0) { return 0 }
    if x >= 255 { return 255 }
    return UInt8(x)   // truncation, as astype(uint8)
}

/// OpenCV's uint8 division tables of RGB2HSV_b (hsv_shift 12).
private let hsvTables: (sdiv: [Int], hdiv180: [Int]) = {
    var s = [Int](repeating: 0, count: 256), h = [Int](repeating: 0, count: 256)
    for i in 1..<256 {
        s[i] = Int((Double(255 << 12) / Double(i)).rounded(.toNearestOrEven))
        h[i] = Int((Double(180 << 12) / (6.0 * Double(i))).rounded(.toNearestOrEven))
    }
    return (s, h)
}()

/// `cv2.cvtColor(bgr, COLOR_BGR2HSV)` of interleaved RGB pixels: H in 0..<180, S and V in 0...255.
/// OpenCV's integer algorithm (scalar and SIMD paths agree).
public func rgbToHSV(_ rgb: [UInt8]) -> [UInt8] {
    precondition(rgb.count % 3 == 0, "rgbToHSV of \(rgb.count) bytes")
    let sdiv = hsvTables.sdiv, hdiv = hsvTables.hdiv180
    var out = [UInt8](repeating: 0, count: rgb.count)
    rgb.withUnsafeBufferPointer { s in
        out.withUnsafeMutableBufferPointer { d in
            var i = 0
            while i < s.count {
                let r = Int(s[i]), g = Int(s[i + 1]), b = Int(s[i + 2])
                let v = max(b, g, r), vmin = min(b, g, r)
                let diff = v - vmin
                let sat = (diff * sdiv[v] + (1 << 11)) >> 12
                var h: Int
                if v == r { h = g - b } else if v == g { h = b - r + 2 * diff } else { h = r - g + 4 * diff }
                h = (h * hdiv[diff] + (1 << 11)) >> 12
                if h < 0 { h += 180 }
                d[i] = UInt8(clamping: h); d[i + 1] = UInt8(sat); d[i + 2] = UInt8(v)
                i += 3
            }
        }
    }
    return out
}

/// `cv2.cvtColor(hsv, COLOR_HSV2BGR)` for H on the 0–180 scale, written back as interleaved RGB.
///
/// OpenCV 4.x/5.x on x86-64 converts each image row in SIMD blocks of `simdBlock` pixels (32 with the
/// AVX2 dispatch opencv-python uses) whose float → uint8 step **truncates**; the remaining
/// `width mod simdBlock` pixels of the row take the scalar path, which **rounds** (half to even).
/// Checked bit for bit against opencv-python 5.0 on random images of widths 5, 31, 33, 64 and 70.
public func hsvToRGB(_ hsv: [UInt8], width: Int, simdBlock: Int = 32) -> [UInt8] {
    precondition(width > 0 && hsv.count % (3 * width) == 0, "hsvToRGB of \(hsv.count) bytes with width \(width)")
    let hscale: Float = 6.0 / 180.0
    let inv255: Float = 1.0 / 255.0
    let vectorized = simdBlock > 0 ? width / simdBlock * simdBlock : 0
    var out = [UInt8](repeating: 0, count: hsv.count)
    hsv.withUnsafeBufferPointer { s in
        out.withUnsafeMutableBufferPointer { d in
            var i = 0, x = 0
            while i < s.count {
                let h0 = Float(s[i]), sat = Float(s[i + 1]) * inv255, v = Float(s[i + 2]) * inv255
                var b = v, g = v, r = v
                let simd = x < vectorized
                if simd || sat != 0 {
                    var h = h0 * hscale
                    var sector = Int(h.rounded(.down))   // h ≥ 0: trunc (SIMD) = floor of fmod (scalar)
                    if !simd { h = fmodf(h, 6); sector = Int(h.rounded(.down)) }
                    h -= Float(sector)
                    sector %= 6
                    let one: Float = 1
                    let t0 = v, t1 = v * (one - sat)
                    let t2 = v * (one - sat * h), t3 = v * (one - sat * (one - h))
                    switch sector {
                    case 0: b = t1; g = t3; r = t0
                    case 1: b = t1; g = t0; r = t2
                    case 2: b = t3; g = t0; r = t1
                    case 3: b = t0; g = t2; r = t1
                    case 4: b = t0; g = t1; r = t3
                    default: b = t2; g = t1; r = t0
                    }
                }
                d[i] = toByte(r * 255, truncate: simd)
                d[i + 1] = toByte(g * 255, truncate: simd)
                d[i + 2] = toByte(b * 255, truncate: simd)
                i += 3
                x += 1
                if x == width { x = 0 }
            }
        }
    }
    return out
}

@inline(__always) private func toByte(_ f: Float, truncate: Bool) -> UInt8 {
    let r = truncate ? f.rounded(.towardZero) : f.rounded(.toNearestOrEven)
    if !(r > 0) { return 0 }
    if r >= 255 { return 255 }
    return UInt8(r)
}
