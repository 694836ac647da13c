// bfloat16 conversions: fp32 → bf16 with round-to-nearest-even (what PyTorch's `.to(torch.bfloat16)` does; the
// AVX512-BF16 `vcvtneps2bf16` instruction rounds the same way but flushes denormals, which we keep) and bf16 → fp32
// (exact), vectorized over 16 lanes.
// Corresponds to torch's float → bfloat16 casts under `torch.autocast("cpu", dtype=torch.bfloat16)`.

/// fp32 → bf16, round to nearest even; NaN stays a (quiet) NaN, ±∞ stay ±∞, values beyond bf16's largest finite
/// value round to ±∞ as in IEEE.
@inlinable @inline(__always)
public func bfloat16(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if bits & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
    return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
}

/// bf16 → fp32 (exact).
@inlinable @inline(__always)
public func float(bfloat16 h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

/// `dst[i] = bfloat16(src[i])` for i < count (in parallel chunks of `elementwiseGrain`).
public func convertToBF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int) {
    parallelFor(count, grain: elementwiseGrain) { r in convertSpanToBF16(src + r.lowerBound, dst + r.lowerBound, count: r.count) }
}

/// `convertToBF16` of one span, 16 lanes at a time.
private func convertSpanToBF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int) {
    var i = 0
    let magnitude = SIMD16<UInt32>(repeating: 0x7FFF_FFFF), infinity = SIMD16<UInt32>(repeating: 0x7F80_0000)
    let half = SIMD16<UInt32>(repeating: 0x7FFF), one = SIMD16<UInt32>(repeating: 1), quiet = SIMD16<UInt32>(repeating: 0x0040_0000)
    while i + 16 <= count {
        let bits = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<UInt32>.self)
        let rounded = (bits &+ half &+ ((bits &>> 16) & one))
        let nan = (bits & magnitude) .> infinity
        let out = rounded.replacing(with: bits | quiet, where: nan) &>> 16
        UnsafeMutableRawPointer(dst + i).storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: out), as: SIMD16<UInt16>.self)
        i += 16
    }
    while i < count { dst[i] = bfloat16(src[i]); i += 1 }
}

/// The `rows × cols` matrix at `src` (row stride `ld`) converted to bf16 and packed at `dst` (row stride `cols`).
public func convertToBF16(rows: Int, cols: Int, _ src: UnsafePointer<Float>, ld: Int, _ dst: UnsafeMutablePointer<UInt16>) {
    if ld == cols { convertToBF16(src, dst, count: rows * cols); return }
    parallelFor(rows, grain: rowGrain(cols)) { chunk in
        for r in chunk { convertSpanToBF16(src + r * ld, dst + r * cols, count: cols) }
    }
}

/// `dst[i] = float(bfloat16: src[i])` for i < count.
public func convertFromBF16(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { dst[i] = float(bfloat16: src[i]) }
}
