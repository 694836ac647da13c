// How close a bf16 computation must come to its fp32 version, derived from bf16's precision.
// No reference counterpart (PyTorch's autocast tests use fixed, looser tolerances).

/// bf16 keeps 8 significant bits, so rounding to nearest has a unit roundoff u = 2⁻⁸: a rounded operand is within
/// a relative 2⁻⁸ of its fp32 value and the product of two rounded operands within 2·2⁻⁸ + 2⁻¹⁶. Accumulating k such
/// products in fp32 adds at most k·2⁻²⁴ relative to the sum of their magnitudes (the classic γ_k bound). So an entry
/// of a bf16 GEMM lies within `bf16ProductBound(magnitude:k:)` of the fp32 entry, where `magnitude` is
/// Σ_p |alpha·a_ip·b_pj| (the same sum over absolute values). The fp32 result itself carries k·2⁻²⁴·magnitude,
/// counted once more.
public func bf16ProductBound(magnitude: Double, k: Int) -> Double {
    let u = bf16UnitRoundoff, fp32 = 1.0 / 16_777_216
    return (2 * u + u * u + 2 * Double(k) * fp32) * magnitude + 1e-30
}

/// The unit roundoff of bf16 (2⁻⁸): a value rounded to bf16 is within this relative error of its fp32 value.
public let bf16UnitRoundoff = 1.0 / 256
