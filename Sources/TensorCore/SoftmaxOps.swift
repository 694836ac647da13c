// Softmax-family ops and losses: masked softmax/log-softmax, weighted cross-entropy, BCE with logits.
// Corresponds to torch.softmax, log_softmax, F.cross_entropy(weight=…), F.binary_cross_entropy_with_logits.
import Foundation
import Kernels

extension Tensor {
    private func softmaxCommon(axis: Int, mask: [Bool]?, fullyMasked: FullyMaskedRow, log: Bool) -> Tensor {
        let ax = normalizeAxis(axis, rank)
        let outer = shape[..<ax].product, n = shape[ax], inner = shape[(ax + 1)...].product
        if let mask { precondition(mask.count == count, "softmax mask of \(mask.count) for \(shape)") }
        let out = Tensor(uninitialized: shape)
        if let mask {
            mask.withUnsafeBufferPointer { m in
                softmaxForward(data, out.data, outer: outer, n: n, inner: inner, mask: m.baseAddress,
                               fullyMasked: fullyMasked, logOutput: log)
            }
        } else {
            softmaxForward(data, out.data, outer: outer, n: n, inner: inner, mask: nil,
                           fullyMasked: fullyMasked, logOutput: log)
        }
        return Autograd.record(log ? "log_softmax" : "softmax", out, [self]) { g in
            let gi = Tensor(uninitialized: out.shape)
            softmaxBackward(out.data, g.data, gi.data, outer: outer, n: n, inner: inner, logOutput: log)
            return [gi]
        }
    }

    /// Softmax along `axis`. `mask` (same element count, row-major) blocks positions where `true`;
    /// blocked positions get probability 0 and no gradient. A row with every position blocked gives
    /// zeros (`.zeros`, never NaN) or ignores the mask (`.unmasked`).
    public func softmax(axis: Int = -1, mask: [Bool]? = nil, fullyMasked: FullyMaskedRow = .zeros) -> Tensor {
        softmaxCommon(axis: axis, mask: mask, fullyMasked: fullyMasked, log: false)
    }

    /// Log-softmax along `axis`; blocked positions give −∞ with zero gradient (see `softmax`).
    public func logSoftmax(axis: Int = -1, mask: [Bool]? = nil, fullyMasked: FullyMaskedRow = .zeros) -> Tensor {
        softmaxCommon(axis: axis, mask: mask, fullyMasked: fullyMasked, log: true)
    }

    /// Class-weighted cross-entropy with weighted-mean reduction (F.cross_entropy with `weight`):
    /// `Σ_i w[t_i]·(−log softmax(x_i)[t_i]) / Σ_i w[t_i]` over rows whose target is not `ignoreIndex`.
    ///
    /// `logits`: `[N, K]`, `targets`: N class indices, `classWeights`: K weights (nil = all 1).
    /// Returns a scalar; 0 when no row counts. Fused forward and backward.
    public static func crossEntropy(_ logits: Tensor, targets: [Int], classWeights: [Float]? = nil,
                                    ignoreIndex: Int? = nil) -> Tensor {
        precondition(logits.rank == 2 && logits.shape[0] == targets.count,
                     "cross-entropy logits \(logits.shape) for \(targets.count) targets")
        let n = logits.shape[0], k = logits.shape[1]
        if let classWeights { precondition(classWeights.count == k, "\(classWeights.count) class weights for \(k) classes") }
        let logp = Tensor(uninitialized: logits.shape)
        softmaxForward(logits.data, logp.data, outer: n, n: k, inner: 1, mask: nil, fullyMasked: .zeros, logOutput: true)
        var rowWeight = [Float](repeating: 0, count: n)
        var num = 0.0, den = 0.0
        for i in 0..<n {
            let t = targets[i]
            if let ignoreIndex, t == ignoreIndex { continue }
            precondition(t >= 0 && t < k, "cross-entropy target \(t) outside 0..<\(k)")
            let w = classWeights?[t] ?? 1
            rowWeight[i] = w
            num -= Double(w) * Double(logp.data[i * k + t])
            den += Double(w)
        }
        let out = Tensor(scalar: den > 0 ? Float(num / den) : 0)
        return Autograd.record("cross_entropy", out, [logits]) { g in
            let gi = Tensor.zeros(logits.shape)
            guard den > 0 else { return [gi] }
            let scale = g.item / Float(den)
            for i in 0..<n where rowWeight[i] != 0 {
                let f = rowWeight[i] * scale
                let row = gi.data + i * k, lp = logp.data + i * k
                for j in 0..<k { row[j] = f * expf(lp[j]) }
                row[targets[i]] -= f
            }
            return [gi]
        }
    }

    /// Elementwise binary cross-entropy with logits (no reduction):
    /// `max(x, 0) − x·t + log(1 + exp(−|x|))`. `targets` has `logits`' shape and gets no gradient.
    public static func binaryCrossEntropyWithLogits(_ logits: Tensor, targets: Tensor) -> Tensor {
        precondition(logits.shape == targets.shape, "BCE logits \(logits.shape) vs targets \(targets.shape)")
        let out = Tensor(uninitialized: logits.shape)
        let x = logits.data, t = targets.data, o = out.data
        for i in 0..<logits.count {
            let v = x[i]
            o[i] = Swift.max(v, 0) - v * t[i] + log1pf(expf(-Swift.abs(v)))
        }
        return Autograd.record("bce_with_logits", out, [logits, targets]) { g in
            let gi = Tensor(uninitialized: logits.shape)
            let gp = g.data, d = gi.data
            for i in 0..<logits.count { d[i] = gp[i] * (1 / (1 + expf(-x[i])) - t[i]) }
            return [gi, nil]
        }
    }
}
