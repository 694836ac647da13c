// Reductions: sum/mean over axes (with backward), and max/argmax/top-k (no gradient).
// Corresponds to torch.sum / mean / max / argmax / topk.
import Foundation

extension Tensor {
    /// Sum over one axis, accumulating in Double.
    private func sumAxisKernel(_ ax: Int) -> Tensor {
        let outer = shape[..<ax].product, n = shape[ax], inner = shape[(ax + 1)...].product
        var outShape = shape; outShape[ax] = 1
        let out = Tensor(uninitialized: outShape)
        let x = data, o = out.data
        if inner == 1 {
            for i in 0..<outer {
                var s = 0.0
                let row = x + i * n
                for j in 0..<n { s += Double(row[j]) }
                o[i] = Float(s)
            }
        } else {
            let acc = UnsafeMutablePointer<Double>.allocate(capacity: inner)
            defer { acc.deallocate() }
            for i in 0..<outer {
                acc.update(repeating: 0, count: inner)
                for j in 0..<n {
                    let row = x + (i * n + j) * inner
                    for k in 0..<inner { acc[k] += Double(row[k]) }
                }
                for k in 0..<inner { o[i * inner + k] = Float(acc[k]) }
            }
        }
        return out
    }

    /// Sum over `axes` (all when nil); reduced dimensions are kept as 1 when `keepDims`.
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = Set((axes ?? Array(0..<rank)).map { normalizeAxis($0, rank) })
        var out = self.detached()
        for a in ax.sorted() { out = out.sumAxisKernel(a) }
        var kept = shape
        for a in ax { kept[a] = 1 }
        let finalShape = keepDims ? kept : shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element)
        let result = Tensor(shape: finalShape, storage: out.storage)
        let inShape = shape
        return Autograd.record("sum", result, [self]) { g in [g.reshaped(kept).expanded(to: inShape)] }
    }

    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { sum(axes: [axis], keepDims: keepDims) }

    /// Mean over `axes` (all when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = (axes ?? Array(0..<rank)).map { normalizeAxis($0, rank) }
        let n = Set(ax).map { shape[$0] }.product
        return sum(axes: ax, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { mean(axes: [axis], keepDims: keepDims) }

    /// Largest values and their indices along `axis` (no gradient). Ties pick the first index.
    public func max(axis: Int) -> (values: Tensor, indices: [Int]) {
        let ax = normalizeAxis(axis, rank)
        let outer = shape[..<ax].product, n = shape[ax], inner = shape[(ax + 1)...].product
        precondition(n > 0, "max over an empty axis")
        var outShape = shape; outShape.remove(at: ax)
        let out = Tensor(uninitialized: outShape)
        var idx = [Int](repeating: 0, count: outer * inner)
        for i in 0..<outer {
            for k in 0..<inner {
                var best = data[i * n * inner + k], bi = 0
                for j in 1..<n {
                    let v = data[(i * n + j) * inner + k]
                    if v > best || (best.isNaN && !v.isNaN) { best = v; bi = j }
                }
                out.data[i * inner + k] = best
                idx[i * inner + k] = bi
            }
        }
        return (out, idx)
    }

    /// Index of the largest value along `axis` (no gradient).
    public func argmax(axis: Int) -> [Int] { max(axis: axis).indices }

    /// The `k` largest values along the last axis in descending order, with their indices (no gradient).
    /// Ties keep the lower index first.
    public func topk(_ k: Int) -> (values: Tensor, indices: [Int]) {
        let n = shape.last ?? 1
        precondition(k >= 0 && k <= n, "topk \(k) of \(n)")
        let rows = count / Swift.max(n, 1)
        var outShape = shape; if !outShape.isEmpty { outShape[outShape.count - 1] = k }
        let out = Tensor(uninitialized: outShape)
        var idx = [Int](repeating: 0, count: rows * k)
        var order = Array(0..<n)
        for r in 0..<rows {
            let row = data + r * n
            for i in 0..<n { order[i] = i }
            order.sort { (a: Int, b: Int) -> Bool in
                let va: Float = row[a], vb: Float = row[b]
                if va != vb { return va > vb }
                return a < b
            }
            for j in 0..<k { out.data[r * k + j] = row[order[j]]; idx[r * k + j] = order[j] }
        }
        return (out, idx)
    }
}
