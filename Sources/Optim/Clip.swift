// Global L2-norm gradient clipping over the flat gradient buffer (Double accumulation).
// Corresponds to torch.nn.utils.clip_grad_norm_ (norm_type 2), as detectron2's "full_model" clipping calls it.
import Kernels
import TensorCore

/// The L2 norm of `count` floats at `base`, summed in Double.
public func l2Norm(_ base: UnsafePointer<Float>, count: Int) -> Double {
    // Chunks of 64 Ki floats summed in parallel, combined in chunk order: the same at any thread count.
    parallelSum(count, grain: 1 << 16) { r in squareSum(base + r.lowerBound, count: r.count) }.squareRoot()
}

/// Σ x² over `count` floats in 4 Double lanes, added as (s0 + s1) + (s2 + s3).
private func squareSum(_ base: UnsafePointer<Float>, count: Int) -> Double {
    var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    var i = 0
    while i + 4 <= count {
        let a = Double(base[i]), b = Double(base[i + 1]), c = Double(base[i + 2]), d = Double(base[i + 3])
        s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d
        i += 4
    }
    while i < count { let a = Double(base[i]); s0 += a * a; i += 1 }
    return (s0 + s1) + (s2 + s3)
}

/// Scales the gradients in `grads` so their global L2 norm is at most `maxNorm`, as
/// `clip_grad_norm_`: with `n` the norm, they are multiplied by `maxNorm / (n + 1e-6)` when that
/// is below 1. Returns `n` (before clipping). A non-finite norm leaves the gradients unchanged
/// (torch would multiply them by NaN); check the returned value.
@discardableResult
public func clipGradNorm(_ grads: Storage, maxNorm: Double) -> Double {
    let n = grads.count
    let base = grads.base
    let norm = l2Norm(base, count: n)
    let coef = maxNorm / (norm + 1e-6)
    if norm.isFinite && coef < 1 {
        let c = Float(coef)
        parallelFor(n, grain: elementwiseGrain) { r in for i in r { base[i] *= c } }
    }
    return norm
}

/// `clipGradNorm` over the flat gradient buffer of `parameters`.
@discardableResult
public func clipGradNorm(_ parameters: FlatParameters, maxNorm: Double) -> Double {
    clipGradNorm(parameters.grads, maxNorm: maxNorm)
}
