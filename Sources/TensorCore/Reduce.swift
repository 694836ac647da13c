// Reductions: sum/mean over axes (with backward), and max/argmax/top-k (no gradient).
// Corresponds to torch.sum / mean / max / argmax / topk.
import Kernels

extension Tensor {
    /// Sum over one axis, accumulating in Double (`rowSum` / `addColumns`, Kernels' Reductions.swift).
    private func sumAxisKernel(_ ax: Int) -> Tensor {
        let outer = shape[..<ax].product, n = shape[ax], inner = shape[(ax + 1)...].product
        var outShape = shape; outShape[ax] = 1
        let out = Tensor(uninitialized: outShape)
        let x = data, o = out.data
        // Each output row is its own sum (in the order it always had), so rows go to threads in chunks.
        if inner == 1 {
            parallelFor(outer, grain: rowGrain(n)) { rows in for i in rows { o[i] = Float(rowSum(x + i * n, n)) } }
        } else if outer == 1 {
            // One output row (e.g. a bias gradient summed over all positions): the n input rows in chunks, each
            // chunk's column sums combined in chunk order.
            let acc = UnsafeMutablePointer<Double>.allocate(capacity: inner)
            defer { acc.deallocate() }
            parallelColumnSums(rows: n, columns: inner, grain: rowGrain(inner), into: acc) { rows, partial in
                for j in rows { addColumns(x + j * inner, into: partial, inner) }
            }
            for k in 0..<inner { o[k] = Float(acc[k]) }
        } else {
            parallelFor(outer, grain: rowGrain(n * inner)) { rows in
                let acc = UnsafeMutablePointer<Double>.allocate(capacity: inner)
                defer { acc.deallocate() }
                for i in rows {
                    acc.update(repeating: 0, count: inner)
                    for j in 0..<n {
                        addColumns(x + (i * n + j) * inner, into: acc, inner)
                    }
                    for k in 0..<inner { o[i * inner + k] = Float(acc[k]) }
                }
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
    /// Ties keep the lower index first; −0 and +0 compare equal.
    ///
    /// Each value becomes one UInt64 key (an order-preserving bit pattern of the float above the
    /// complemented index), so comparisons are integer compares; a quickselect moves the k largest
    /// keys to the front and only those are sorted. For the criterion's 37,632 candidates per mask
    /// this is several times faster than sorting the whole row.
    public func topk(_ k: Int) -> (values: Tensor, indices: [Int]) {
        let n = shape.last ?? 1
        precondition(k >= 0 && k <= n, "topk \(k) of \(n)")
        let rows = n == 0 ? 0 : count / n
        var outShape = shape; if !outShape.isEmpty { outShape[outShape.count - 1] = k }
        let out = Tensor(uninitialized: outShape)
        var idx = [Int](repeating: 0, count: rows * k)
        if k == 0 || rows == 0 { return (out, idx) }
        // Rows are independent: chunks of rows go to threads, each with its own key buffer.
        let o = out.data, x = data
        idx.withUnsafeMutableBufferPointer { ix in
            parallelFor(rows, grain: rowGrain(4 * n)) { chunk in
                let keys = UnsafeMutablePointer<UInt64>.allocate(capacity: n)
                defer { keys.deallocate() }
                for r in chunk {
                    let row = x + r * n
                    for i in 0..<n {
                        let bits = (row[i] + 0).bitPattern   // + 0 turns −0 into +0
                        let ordered = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
                        keys[i] = UInt64(ordered) << 32 | UInt64(UInt32.max - UInt32(i))
                    }
                    selectLargestKeys(keys, n, k)
                    var head = UnsafeMutableBufferPointer(start: keys, count: k)
                    head.sort(by: >)
                    for j in 0..<k {
                        let i = Int(UInt32.max - UInt32(truncatingIfNeeded: head[j]))
                        ix[r * k + j] = i
                        o[r * k + j] = row[i]
                    }
                }
            }
        }
        return (out, idx)
    }
}

/// Reorders `a[0..<n]` so that its `k` largest (distinct) keys come first, in no particular order
/// (quickselect with a median-of-three pivot).
private func selectLargestKeys(_ a: UnsafeMutablePointer<UInt64>, _ n: Int, _ k: Int) {
    if k <= 0 || k >= n { return }
    var lo = 0, hi = n - 1
    let target = k - 1
    while lo < hi {
        var x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi]
        if x < y { swap(&x, &y) }
        if y < z { swap(&y, &z) }
        if x < y { swap(&x, &y) }
        let pivot = y
        var i = lo, j = hi
        while i <= j {
            while a[i] > pivot { i += 1 }
            while a[j] < pivot { j -= 1 }
            if i <= j {
                let t = a[i]; a[i] = a[j]; a[j] = t
                i += 1; j -= 1
            }
        }
        // Now a[lo...j] ≥ pivot ≥ a[i...hi] and every element between j and i equals the pivot.
        if target <= j { hi = j } else if target >= i { lo = i } else { return }
    }
}
