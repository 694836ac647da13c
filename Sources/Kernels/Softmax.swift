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

/// Softmax of one contiguous row (`x` may equal `y`): blocked entries are set to −∞ first, so the
/// exponentials of the open entries are the only non-zeros.
@inline(__always)
private func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                        _ mask: UnsafePointer<Bool>?, logOutput: Bool) {
    if let mask {
        for j in 0..<n { y[j] = mask[j] ? -Float.infinity : x[j] }
    }
    let src: UnsafePointer<Float> = mask == nil ? x : UnsafePointer(y)
    let m = maxFloats(src, n)
    if logOutput {
        var s: Float = 0
        for j in 0..<n { s += fastExp(src[j] - m) }
        let lse = m + logf(s)
        for j in 0..<n { y[j] = src[j] - lse }   // −∞ stays −∞
    } else {
        // 8 lanes by hand: the attention kernels run this in place (src = y), where the compiler's loop stays scalar.
        let m8 = SIMD8<Float>(repeating: m)
        var j = 0
        while j + 8 <= n { store8(fastExp(load8(src + j) - m8), y + j); j += 8 }
        while j < n { y[j] = fastExp(src[j] - m); j += 1 }
        let inv = 1 / sumFloats(y, n)
        for j in 0..<n { y[j] *= inv }   // one pointer: the compiler vectorizes this one
    }
}

/// Softmax over the middle axis of a `[outer, n, inner]` view, in place-safe form (`x` may equal `y`).
///
/// `mask` (same layout, optional): `true` blocks a position. `logOutput` writes log-probabilities.
public func softmaxForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                           outer: Int, n: Int, inner: Int, mask: UnsafePointer<Bool>?,
                           fullyMasked: FullyMaskedRow, logOutput: Bool) {
    if n == 0 { return }
    if inner == 1 {
        parallelFor(outer, grain: rowGrain(n)) { rows in for o in rows {
            let base = o * n
            var rowMask = mask.map { $0 + base }
            if let mk = rowMask {
                var anyOpen = false
                for j in 0..<n where !mk[j] { anyOpen = true; break }
                if !anyOpen {
                    if fullyMasked == .zeros {
                        for j in 0..<n { y[base + j] = logOutput ? -.infinity : 0 }
                        continue
                    }
                    rowMask = nil
                }
            }
            softmaxRow(x + base, y + base, n, rowMask, logOutput: logOutput)
        } }
        return
    }
    parallelFor(outer, grain: rowGrain(n * inner)) { rows in for o in rows {
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
    } }
}

/// Backward of `softmaxForward`: `dx = y ⊙ (dy − Σ dy⊙y)` (softmax) or `dx = dy − softmax·Σ dy`
/// (log-softmax, `y` holding log-probabilities). Blocked positions get zero gradient.
public func softmaxBackward(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                            outer: Int, n: Int, inner: Int, logOutput: Bool) {
    if inner == 1 {
        parallelFor(outer, grain: rowGrain(n)) { rows in for o in rows {
            let yr = y + o * n, gr = dy + o * n, xr = dx + o * n
            if logOutput {
                // Blocked entries hold −∞: exp gives 0 there, and their incoming gradient is ignored.
                var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
                var j = 0
                while j + 4 <= n {
                    s0 += yr[j] == -.infinity ? 0 : gr[j]; s1 += yr[j + 1] == -.infinity ? 0 : gr[j + 1]
                    s2 += yr[j + 2] == -.infinity ? 0 : gr[j + 2]; s3 += yr[j + 3] == -.infinity ? 0 : gr[j + 3]
                    j += 4
                }
                while j < n { s0 += yr[j] == -.infinity ? 0 : gr[j]; j += 1 }
                let sf = (s0 + s1) + (s2 + s3)
                for i in 0..<n { xr[i] = yr[i] == -.infinity ? 0 : gr[i] - fastExp(yr[i]) * sf }
            } else {
                var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
                var s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
                var j = 0
                while j + 8 <= n {
                    s0 += gr[j] * yr[j]; s1 += gr[j + 1] * yr[j + 1]; s2 += gr[j + 2] * yr[j + 2]
                    s3 += gr[j + 3] * yr[j + 3]; s4 += gr[j + 4] * yr[j + 4]; s5 += gr[j + 5] * yr[j + 5]
                    s6 += gr[j + 6] * yr[j + 6]; s7 += gr[j + 7] * yr[j + 7]
                    j += 8
                }
                var sf = ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))
                while j < n { sf += gr[j] * yr[j]; j += 1 }
                for i in 0..<n { xr[i] = yr[i] * (gr[i] - sf) }
            }
        } }
        return
    }
    parallelFor(outer, grain: rowGrain(n * inner)) { rows in for o in rows {
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
    } }
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
