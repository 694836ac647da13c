// Branch-free float32 exp, log1p and erf that vectorize inside loops (softmax, matcher costs, losses, GELU).
// exp and log1p correspond to expf / log1pf (glibc) to within ~1e-7 relative (the Cephes polynomial schemes);
// erf to erff within 2 ulp (our own fit, tools/fit_erf.py).

/// exp(x) in float32 by range reduction and a degree-6 polynomial (the Cephes expf scheme), written
/// branch-free so loops over it vectorize. Max relative error ≈ 1e-7 (as glibc's expf) for
/// x ∈ [−87, 88]; returns 0 below −87 (so −∞ gives 0) and saturates above 88.
@inlinable @inline(__always)
public func fastExp(_ x0: Float) -> Float {
    let (shifted, e) = expReduced(min(max(x0, -87.0), 88.0))
    let bits = (shifted.bitPattern &- 0x4B40_0000 &+ 127) << 23   // 2^n
    let v = e * Float(bitPattern: bits)
    return x0 < -87.0 ? 0 : v
}

/// `fastExp` of 8 lanes: the same operations in the same order, so every lane equals the scalar `fastExp` of its input
/// bit for bit. For loops the compiler leaves scalar: an in-place loop (`y[j] = exp(y[j] − m)`) fails its run-time
/// alias check and falls back to the scalar loop.
@_transparent
public func fastExp(_ x0: SIMD8<Float>) -> SIMD8<Float> {
    // Swift's max(x0, −87) and min(·, 88) as lane selects (the generic pointwiseMin/Max are not inlined).
    let low = x0.replacing(with: -87.0, where: x0 .<= -87.0)
    let (shifted, e) = expReduced(low.replacing(with: 88.0, where: low .> 88.0))
    let bits = (unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &- 0x4B40_0000 &+ 127) &<< 23   // 2^n
    let v = e * unsafeBitCast(bits, to: SIMD8<Float>.self)
    return v.replacing(with: 0, where: x0 .< -87.0)
}

/// One float or 8 lanes, for `expReduced`.
@usableFromInline protocol FastExpLanes {
    init(_ value: Float)
    static func + (a: Self, b: Self) -> Self
    static func - (a: Self, b: Self) -> Self
    static func * (a: Self, b: Self) -> Self
}
extension Float: FastExpLanes {}
extension SIMD8: FastExpLanes where Scalar == Float {
    @inlinable init(_ value: Float) { self.init(repeating: value) }
}

/// `fastExp`'s range reduction and polynomial for a clamped x: `shifted` holds round(x·log2 e) in its low mantissa
/// bits, and exp(x) = e · 2^round(x·log2 e).
@_transparent @usableFromInline
func expReduced<V: FastExpLanes>(_ x: V) -> (shifted: V, e: V) {
    let shifted = x * V(1.442_695_04) + V(12_582_912.0)
    let n = shifted - V(12_582_912.0)
    let r = x - n * V(0.693_359_375) + n * V(2.121_944_40e-4)
    var p = V(1.987_569_150_0e-4)
    p = p * r + V(1.398_199_950_7e-3)
    p = p * r + V(8.333_451_907_3e-3)
    p = p * r + V(4.166_579_589_4e-2)
    p = p * r + V(1.666_666_545_9e-1)
    p = p * r + V(5.000_000_120_1e-1)
    return (shifted, p * r * r + r + V(1))
}

/// log(1 + x) for x ∈ [0, 1] (the softplus tail `log1p(exp(−|v|))`), branch-free. Max relative error
/// ≈ 2e-7 against Double `log1p`, including tiny x (Kahan's correction `log(u)·x/(u − 1)`, u = 1 + x, keeps
/// the bits that `1 + x` rounds away). Outside [0, 1] use `log1p`.
@inlinable @inline(__always)
public func fastLog1p(_ x: Float) -> Float {
    let u = 1 + x
    // u ∈ [1, 2]: reduce to m − 1 with m ∈ [√½, √2): above √2 halve u and add ln 2.
    let big = u >= 1.414_213_56
    let f: Float = big ? u * 0.5 - 1 : u - 1
    let e: Float = big ? 1 : 0
    let z = f * f
    var p: Float = 7.037_683_629_2e-2
    p = p * f - 1.151_461_031_0e-1
    p = p * f + 1.167_699_874_0e-1
    p = p * f - 1.242_014_084_6e-1
    p = p * f + 1.424_932_278_7e-1
    p = p * f - 1.666_805_766_5e-1
    p = p * f + 2.000_071_476_5e-1
    p = p * f - 2.499_999_399_3e-1
    p = p * f + 3.333_333_117_4e-1
    var y = p * f * z
    y += e * -2.121_944_40e-4
    y += -0.5 * z
    let logU = f + y + e * 0.693_359_375
    let d = u - 1
    return d == 0 ? x : logU * (x / d)
}

/// erf(x) in float32, branch-free: x·P(x²) for |x| < 1, and ±(1 − exp(−x²)·Q(1/|x|)) for 1 ≤ |x| ≤ 4 with Q fitting
/// erfcx = exp(x²)·erfc(x); above 4 erf rounds to ±1. Both pieces are computed and one is selected, so loops over it
/// vectorize. Coefficients from `tools/fit_erf.py` (relative minimax fits against mpmath), which also checks the
/// float32 evaluation: within 2 ulp of the correctly rounded erf over [−6, 6] (glibc's scalar erff: 1 ulp).
@inlinable @inline(__always)
public func fastErf(_ x: Float) -> Float {
    let s = x * x
    var p: Float = -5.631_756_503e-4
    p = p * s + 4.917_643_964e-3
    p = p * s - 2.671_140_432e-2
    p = p * s + 1.128_018_424e-1
    p = p * s - 3.761_232_793e-1
    p = p * s + 1.128_379_107
    let small = x * p
    let a = min(Swift.abs(x), 4)
    let u = 1 / a
    var q: Float = 3.071_604_855e-2
    q = q * u - 1.797_242_463e-1
    q = q * u + 4.382_676_184e-1
    q = q * u - 5.369_859_338e-1
    q = q * u + 2.383_657_694e-1
    q = q * u + 2.303_774_655e-1
    q = q * u - 3.758_567_274e-1
    q = q * u + 2.053_441_107e-2
    q = q * u + 5.617_681_742e-1
    q = q * u + 1.210_682_312e-4
    let large = 1 - fastExp(-a * a) * q
    return Swift.abs(x) < 1 ? small : (x < 0 ? -large : large)
}
