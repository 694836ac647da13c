// Softmax kernels: masked softmax / log-softmax over one axis, forward and backward, with naive twins.
// Corresponds to torch.softmax / log_softmax after masked_fill(mask, -inf) (True = blocked).
import Foundation

/// What a row whose every position is masked produces.
public enum FullyMaskedRow: Sendable {
    /// Softmax gives all zeros (log-softmax −∞), and the gradient through the row is zero.
    case zeros
    /// The mask is ignored for that row: it attends everywhere (Mask2Former's masked attention rule).
    case unmasked
}

/// Softmax over the middle axis of a `[outer, n, inner]` view, in place-safe form (`x` may equal `y`).
///
/// `mask` (same layout, optional): `true` blocks a position. `logOutput` writes log-probabilities.
public func softmaxForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                           outer: Int, n: Int, inner: Int, mask: UnsafePointer<Bool>?,
                           fullyMasked: FullyMaskedRow, logOutput: Bool) {
    if n == 0 { return }
    for o in 0..<outer {
        for k in 0..<inner {
            let base = o * n * inner + k
            var useMask = mask != nil
            if let mask {
                var anyOpen = false
                for j in 0..<n where !mask[base + j * inner] { anyOpen = true; break }
                if !anyOpen {
                    if fullyMasked == .zeros {
                        for j in 0..<n { y[base + j * inner] = logOutput ? -.infinity : 0 }
                        continue
                    }
                    useMask = false
                }
            }
            var m = -Float.infinity
            for j in 0..<n where !(useMask && mask![base + j * inner]) { m = max(m, x[base + j * inner]) }
            var s: Float = 0
            if logOutput {
                for j in 0..<n where !(useMask && mask![base + j * inner]) { s += expf(x[base + j * inner] - m) }
                let lse = m + logf(s)
                for j in 0..<n {
                    let i = base + j * inner
                    y[i] = useMask && mask![i] ? -.infinity : x[i] - lse
                }
            } else {
                for j in 0..<n {
                    let i = base + j * inner
                    if useMask && mask![i] { y[i] = 0 } else { let e = expf(x[i] - m); y[i] = e; s += e }
                }
                let inv = 1 / s
                for j in 0..<n { y[base + j * inner] *= inv }
            }
        }
    }
}

/// Backward of `softmaxForward`: `dx = y ⊙ (dy − Σ dy⊙y)` (softmax) or `dx = dy − softmax·Σ dy`
/// (log-softmax, `y` holding log-probabilities). Blocked positions get zero gradient.
public func softmaxBackward(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                            outer: Int, n: Int, inner: Int, logOutput: Bool) {
    for o in 0..<outer {
        for k in 0..<inner {
            let base = o * n * inner + k
            var s: Double = 0
            if logOutput {
                for j in 0..<n where y[base + j * inner] != -.infinity { s += Double(dy[base + j * inner]) }
                let sf = Float(s)
                for j in 0..<n {
                    let i = base + j * inner
                    dx[i] = y[i] == -.infinity ? 0 : dy[i] - expf(y[i]) * sf
                }
            } else {
                for j in 0..<n { let i = base + j * inner; s += Double(dy[i]) * Double(y[i]) }
                let sf = Float(s)
                for j in 0..<n { let i = base + j * inner; dx[i] = y[i] * (dy[i] - sf) }
            }
        }
    }
}

/// Naive twin of `softmaxForward` for `inner == 1` (Double arithmetic), for tests.
public func softmaxReference(_ x: [Float], rows: Int, n: Int, mask: [Bool]?, fullyMasked: FullyMaskedRow,
                             logOutput: Bool) -> [Float] {
    var y = [Float](repeating: 0, count: rows * n)
    for r in 0..<rows {
        var blocked = (0..<n).map { mask?[r * n + $0] ?? false }
        if blocked.allSatisfy({ $0 }) {
            if fullyMasked == .zeros {
                for j in 0..<n { y[r * n + j] = logOutput ? -.infinity : 0 }
                continue
            }
            blocked = [Bool](repeating: false, count: n)
        }
        let open = (0..<n).filter { !blocked[$0] }
        let z = open.map { Foundation.exp(Double(x[r * n + $0])) }.reduce(0, +)
        for j in 0..<n {
            if blocked[j] { y[r * n + j] = logOutput ? -.infinity : 0; continue }
            let p = Foundation.exp(Double(x[r * n + j])) / z
            y[r * n + j] = Float(logOutput ? Foundation.log(p) : p)
        }
    }
    return y
}
