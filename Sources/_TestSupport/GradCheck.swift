// Test support: finite-difference gradient checks and closeness comparisons with documented tolerances.
// Corresponds to torch.autograd.gradcheck (central differences, here with Double accumulation).
import TensorCore

/// Outcome of a comparison: `passed`, and a human-readable report of the worst element.
public struct CheckReport: CustomStringConvertible, Sendable {
    public var passed: Bool
    public var worst: String
    public var description: String { (passed ? "ok: " : "FAILED: ") + worst }
}

/// Elementwise closeness `|a − b| ≤ atol + rtol·|b|` (numpy.allclose convention, `b` the reference).
///
/// Tolerances used across the suite: forward values of float32 kernels against Double references
/// `rtol 1e-5, atol 1e-5`; fused versus composed ops `rtol 1e-4, atol 1e-5`; finite-difference
/// gradient checks see `gradCheck`.
public func allClose(_ a: [Float], _ b: [Float], rtol: Double = 1e-5, atol: Double = 1e-5) -> CheckReport {
    guard a.count == b.count else { return CheckReport(passed: false, worst: "count \(a.count) vs \(b.count)") }
    var worstExcess = -Double.infinity, worstIndex = -1
    for i in 0..<a.count {
        let x = Double(a[i]), y = Double(b[i])
        if x.isNaN || y.isNaN {
            if x.isNaN && y.isNaN { continue }
            return CheckReport(passed: false, worst: "NaN at \(i): \(x) vs \(y)")
        }
        if x == y { continue }
        let excess = Swift.abs(x - y) - (atol + rtol * Swift.abs(y))
        if excess > worstExcess { worstExcess = excess; worstIndex = i }
    }
    if worstIndex < 0 { return CheckReport(passed: true, worst: "all \(a.count) equal") }
    return CheckReport(passed: worstExcess <= 0,
                       worst: "worst at \(worstIndex): \(a[worstIndex]) vs \(b[worstIndex]) (rtol \(rtol), atol \(atol))")
}

public func allClose(_ a: Tensor, _ b: Tensor, rtol: Double = 1e-5, atol: Double = 1e-5) -> CheckReport {
    guard a.shape == b.shape else { return CheckReport(passed: false, worst: "shape \(a.shape) vs \(b.shape)") }
    return allClose(a.values, b.values, rtol: rtol, atol: atol)
}

/// Finite-difference gradient check of `f` with respect to every input that `requiresGrad`.
///
/// The scalar checked is `L = Σ f(x) ⊙ R` with a fixed random `R ∈ [−1, 1)` (so every output element
/// matters). Analytic gradients come from `backward()`; numeric ones from central differences
/// `(L(x+ε) − L(x−ε)) / 2ε` with `L` accumulated in Double. Inputs are float32, so the numeric
/// derivative carries about `1e-7·|L|/ε` of rounding noise: the defaults `ε = 1e-3`,
/// `rtol = 1e-2`, `atol = 2e-3` hold for O(1) inputs and outputs of a few hundred elements.
/// Keep inputs away from kinks (relu at 0, max-pool ties, |x| at 0).
public func gradCheck(_ inputs: [Tensor], eps: Float = 1e-3, rtol: Double = 1e-2, atol: Double = 2e-3,
                      seed: UInt64 = 1234, _ f: ([Tensor]) -> Tensor) -> CheckReport {
    Autograd.clearTape()
    for t in inputs { t.zeroGrad() }
    let y0 = withGrad { f(inputs) }
    var rng = RNG(seed: seed, stream: 99)
    let r = Tensor.uniform(y0.shape, low: -1, high: 1, rng: &rng)
    let loss = withGrad { (y0 * r).sum() }
    guard loss.requiresGrad else {
        Autograd.clearTape()
        return CheckReport(passed: false, worst: "output does not require grad: no op recorded")
    }
    loss.backward()
    let rv = r.values
    func evaluate() -> Double {
        let y = withNoGrad { f(inputs) }
        precondition(y.count == rv.count, "f changed its output shape")
        var s = 0.0
        for i in 0..<y.count { s += Double(y.data[i]) * Double(rv[i]) }
        return s
    }
    var reports: [String] = []
    var passed = true
    for (ti, t) in inputs.enumerated() where t.requiresGrad {
        guard let g = t.grad else {
            passed = false; reports.append("input \(ti): no gradient accumulated"); continue
        }
        var numeric = [Float](repeating: 0, count: t.count)
        for i in 0..<t.count {
            let orig = t.data[i]
            t.data[i] = orig + eps
            let plus = evaluate()
            t.data[i] = orig - eps
            let minus = evaluate()
            t.data[i] = orig
            numeric[i] = Float((plus - minus) / (2 * Double(eps)))
        }
        let rep = allClose(g.values, numeric, rtol: rtol, atol: atol)
        if !rep.passed { passed = false }
        reports.append("input \(ti) \(t.shape): \(rep.worst)")
    }
    return CheckReport(passed: passed, worst: reports.joined(separator: "; "))
}

/// A seeded tensor with uniform values in `[low, high)`, requiring grad when asked (for tests).
public func testTensor(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1,
                       requiresGrad: Bool = true) -> Tensor {
    var rng = RNG(seed: seed, stream: 7)
    return Tensor.uniform(shape, low: low, high: high, rng: &rng, requiresGrad: requiresGrad)
}
