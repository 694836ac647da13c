// Reductions: every sum the kernels take is one of the functions below, so the order of its additions (which fixes
// the rounding, and with it every number the model produces) is written down once.
//
// - Row sums of contiguous floats run in 8 Float lanes (`SIMD8`; lane l takes the elements ≡ l mod 8), then the
//   lanes are combined and the tail (n mod 8 elements) added. How the lanes are combined depends on what the sum
//   feeds:
//   - `sumFloats`: pairwise ((0+4)+(1+5))+((2+6)+(3+7)) in Float, tail in Float (the softmax normalizer);
//   - `laneSum`, `laneDeviations`, `laneDot`: lanes added in Double in lane order, tail in Double (norm statistics,
//     where the row is long and the mean must not cancel); `laneSum`/`laneDeviations` use two SIMD8 (16 lanes);
//   - `laneOrderSum`: lanes added in Float in lane order (per-channel dot products of MSDeformAttn's backward).
// - Row sums of strided or short rows, and the naive twins: one Double accumulator, elements in order (`rowSum`).
// - Column sums (per channel over rows: norm parameter gradients, pooling windows, `Tensor.sum` over an outer axis):
//   one Double accumulator per column, rows in order (`addColumns`).
// None of these depends on anything but the data's size, so a kernel gives the same bits wherever it runs.
// No reference counterpart (PyTorch's reductions are vectorized with its own orders).

/// Eight floats at `p` (unaligned).
@inlinable @inline(__always)
public func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Stores eight floats at `p` (unaligned).
@inlinable @inline(__always)
public func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// The lanes of `v` added pairwise: ((v0 + v4) + (v1 + v5)) + ((v2 + v6) + (v3 + v7)).
@inlinable @inline(__always)
public func pairwiseSum(_ v: SIMD8<Float>) -> Float {
    ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]))
}

/// The lanes of `v` added in lane order in Float (from −0, so the first addition is exact): what `SIMD.sum()` does
/// today, written out so that it cannot change under us.
@inlinable @inline(__always)
public func laneOrderSum(_ v: SIMD8<Float>) -> Float {
    var s: Float = -0
    for l in 0..<8 { s += v[l] }
    return s
}

/// Sum of `n` floats in 8 Float lanes, combined by `pairwiseSum`, then the tail in Float (vectorizes; rounding
/// differs from a serial sum only in the last bits).
@inlinable @inline(__always)
public func sumFloats(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= n {
        acc += load8(p + i)
        i += 8
    }
    var s = pairwiseSum(acc)
    while i < n { s += p[i]; i += 1 }
    return s
}

/// Largest of `n ≥ 1` floats with eight partial maxima (vectorizes; NaN inputs are not expected).
@inlinable @inline(__always)
public func maxFloats(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var m0 = -Float.infinity, m1 = m0, m2 = m0, m3 = m0, m4 = m0, m5 = m0, m6 = m0, m7 = m0
    var i = 0
    while i + 8 <= n {
        m0 = p[i] > m0 ? p[i] : m0; m1 = p[i + 1] > m1 ? p[i + 1] : m1
        m2 = p[i + 2] > m2 ? p[i + 2] : m2; m3 = p[i + 3] > m3 ? p[i + 3] : m3
        m4 = p[i + 4] > m4 ? p[i + 4] : m4; m5 = p[i + 5] > m5 ? p[i + 5] : m5
        m6 = p[i + 6] > m6 ? p[i + 6] : m6; m7 = p[i + 7] > m7 ? p[i + 7] : m7
        i += 8
    }
    var m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    while i < n { m = p[i] > m ? p[i] : m; i += 1 }
    return m
}

/// `Σ p[k]` over `n` floats: 16 Float lanes (two SIMD8 accumulators), lanes and tail summed in Double.
@inline(__always)
func laneSum(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    var a0 = SIMD8<Float>(repeating: 0), a1 = SIMD8<Float>(repeating: 0)
    var k = 0
    while k + 16 <= n {
        a0 += load8(p + k)
        a1 += load8(p + k + 8)
        k += 16
    }
    var total = 0.0
    for l in 0..<8 { total += Double(a0[l]) + Double(a1[l]) }
    while k < n { total += Double(p[k]); k += 1 }
    return total
}

/// `(Σ (p[k] − center), Σ (p[k] − center)²)` over `n` floats, lanes as in `laneSum`.
@inline(__always)
func laneDeviations(_ p: UnsafePointer<Float>, _ n: Int, _ center: Float) -> (Double, Double) {
    var s0 = SIMD8<Float>(repeating: 0), s1 = SIMD8<Float>(repeating: 0)
    var q0 = SIMD8<Float>(repeating: 0), q1 = SIMD8<Float>(repeating: 0)
    let c8 = SIMD8<Float>(repeating: center)
    var k = 0
    while k + 16 <= n {
        let v0 = load8(p + k) - c8
        let v1 = load8(p + k + 8) - c8
        s0 += v0; s1 += v1; q0 += v0 * v0; q1 += v1 * v1
        k += 16
    }
    var ts = 0.0, tq = 0.0
    for l in 0..<8 { ts += Double(s0[l]) + Double(s1[l]); tq += Double(q0[l]) + Double(q1[l]) }
    while k < n { let v = p[k] - center; ts += Double(v); tq += Double(v * v); k += 1 }
    return (ts, tq)
}

/// `(Σ a[k], Σ a[k]·b[k])` over `n` floats: 8 Float lanes each, lanes and tail summed in Double.
@inline(__always)
func laneDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> (Double, Double) {
    var sa = SIMD8<Float>(repeating: 0), sab = SIMD8<Float>(repeating: 0)
    var k = 0
    while k + 8 <= n {
        let va = load8(a + k)
        let vb = load8(b + k)
        sa += va; sab += va * vb
        k += 8
    }
    var ta = 0.0, tab = 0.0
    for l in 0..<8 { ta += Double(sa[l]); tab += Double(sab[l]) }
    while k < n { ta += Double(a[k]); tab += Double(a[k] * b[k]); k += 1 }
    return (ta, tab)
}

/// `Σ p[k·stride]` for k < n, in Double, in order.
@inlinable @inline(__always)
public func rowSum(_ p: UnsafePointer<Float>, _ n: Int, stride: Int = 1) -> Double {
    var s = 0.0
    for k in 0..<n { s += Double(p[k * stride]) }
    return s
}

/// `acc[j] += row[j]` for j < n, in Double: one step of column sums.
@inlinable @inline(__always)
public func addColumns(_ row: UnsafePointer<Float>, into acc: UnsafeMutablePointer<Double>, _ n: Int) {
    for j in 0..<n { acc[j] += Double(row[j]) }
}
