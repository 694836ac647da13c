// Shape ops: reshape, expand, permute/transpose, slice, concat, stack, pad, index-select, gather, embedding.
// Corresponds to torch's view/reshape/expand/permute/narrow/cat/stack/F.pad/index_select/gather.
import Kernels

extension Tensor {
    /// Same elements under a new shape (one dimension may be -1). Shares storage.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let rest = s.enumerated().filter { $0.offset != i }.map(\.element).product
            precondition(rest > 0 && count % rest == 0, "cannot reshape \(shape) to \(newShape)")
            s[i] = count / rest
        }
        precondition(s.product == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        if s == shape { return self }
        let out = Tensor(shape: s, storage: storage)
        let inShape = shape
        return Autograd.record("reshape", out, [self]) { g in [g.reshaped(inShape)] }
    }

    public func reshaped(_ dims: Int...) -> Tensor { reshaped(dims) }

    /// Inserts a unit dimension at `axis`.
    public func unsqueezed(_ axis: Int) -> Tensor {
        var s = shape; s.insert(1, at: normalizeAxis(axis, rank + 1)); return reshaped(s)
    }

    /// Broadcast copy to `target` (numpy rules); the backward sums over the broadcast axes.
    public func expanded(to target: [Int]) -> Tensor {
        precondition(broadcastShape(shape, target) == target, "cannot expand \(shape) to \(target)")
        if target == shape { return self }
        let out = broadcastBinary(.add, Tensor.zeros(target), detached())
        return Autograd.record("expand", out, [self]) { g in [g] }
    }

    /// Copy with dimensions reordered: output dim i is input dim `dims[i]`.
    public func permuted(_ dims: [Int]) -> Tensor {
        precondition(dims.sorted() == Array(0..<rank), "permutation \(dims) for rank \(rank)")
        if dims == Array(0..<rank) { return self }
        let outShape = dims.map { shape[$0] }
        let out = Tensor(uninitialized: outShape)
        permuteCopy(src: data, srcShape: shape, dims: dims, dst: out.data)
        var inverse = [Int](repeating: 0, count: rank)
        for (i, d) in dims.enumerated() { inverse[d] = i }
        return Autograd.record("permute", out, [self]) { g in [g.permuted(inverse)] }
    }

    public func permuted(_ dims: Int...) -> Tensor { permuted(dims) }

    /// Swaps two dimensions (a copy).
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var d = Array(0..<rank)
        d.swapAt(normalizeAxis(a, rank), normalizeAxis(b, rank))
        return permuted(d)
    }

    /// Elements `range` along `axis` (a copy).
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let ax = normalizeAxis(axis, rank)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[ax], "slice \(range) of axis \(ax) with size \(shape[ax])")
        var outShape = shape; outShape[ax] = range.count
        let out = Tensor(uninitialized: outShape)
        let outer = shape[..<ax].product, inner = shape[(ax + 1)...].product
        let n = shape[ax]
        for o in 0..<outer {
            (out.data + o * range.count * inner).update(from: data + (o * n + range.lowerBound) * inner, count: range.count * inner)
        }
        let inShape = shape
        return Autograd.record("slice", out, [self]) { g in
            [g.padded(axis: ax, before: range.lowerBound, after: inShape[ax] - range.upperBound)]
        }
    }

    /// Zero (or `value`) padding of `before`/`after` elements along `axis`.
    public func padded(axis: Int, before: Int, after: Int, value: Float = 0) -> Tensor {
        let ax = normalizeAxis(axis, rank)
        precondition(before >= 0 && after >= 0, "negative padding")
        if before == 0 && after == 0 { return self }
        var outShape = shape; outShape[ax] += before + after
        let out = Tensor.full(outShape, value)
        let outer = shape[..<ax].product, inner = shape[(ax + 1)...].product
        let n = shape[ax], m = outShape[ax]
        for o in 0..<outer {
            (out.data + (o * m + before) * inner).update(from: data + o * n * inner, count: n * inner)
        }
        return Autograd.record("pad", out, [self]) { g in [g.slice(axis: ax, before..<(before + n))] }
    }

    /// Padding of several axes at once: `pads[i] = (before, after)` for dimension i.
    public func padded(_ pads: [(Int, Int)], value: Float = 0) -> Tensor {
        precondition(pads.count == rank, "\(pads.count) pads for rank \(rank)")
        var t = self
        for (i, p) in pads.enumerated() { t = t.padded(axis: i, before: p.0, after: p.1, value: value) }
        return t
    }

    /// Rolled by `shift` along `axis` (torch.roll): `out[i] = self[(i − shift) mod n]`.
    public func rolled(_ shift: Int, axis: Int) -> Tensor {
        let ax = normalizeAxis(axis, rank), n = shape[ax]
        let s = n == 0 ? 0 : ((shift % n) + n) % n
        if s == 0 { return self }
        return Tensor.concat([slice(axis: ax, (n - s)..<n), slice(axis: ax, 0..<(n - s))], axis: ax)
    }

    /// Rows `indices` along `axis` (torch.index_select); the backward scatter-adds.
    public func indexSelect(axis: Int, _ indices: [Int]) -> Tensor {
        let ax = normalizeAxis(axis, rank)
        let n = shape[ax]
        var outShape = shape; outShape[ax] = indices.count
        let out = Tensor(uninitialized: outShape)
        let outer = shape[..<ax].product, inner = shape[(ax + 1)...].product
        for o in 0..<outer {
            for (j, i) in indices.enumerated() {
                precondition(i >= 0 && i < n, "index \(i) out of range 0..<\(n)")
                (out.data + (o * indices.count + j) * inner).update(from: data + (o * n + i) * inner, count: inner)
            }
        }
        let inShape = shape
        return Autograd.record("index_select", out, [self]) { g in
            let gi = Tensor.zeros(inShape)
            for o in 0..<outer {
                for (j, i) in indices.enumerated() {
                    let dst = gi.data + (o * n + i) * inner, src = g.data + (o * indices.count + j) * inner
                    for k in 0..<inner { dst[k] += src[k] }
                }
            }
            return [gi]
        }
    }

    /// torch.gather: `out[..., j, ...] = self[..., index[..., j, ...], ...]` along `axis`, where
    /// `index` has the output's shape (`indexShape`), equal to `shape` except along `axis`.
    public func gather(axis: Int, _ index: [Int], indexShape: [Int]) -> Tensor {
        let ax = normalizeAxis(axis, rank)
        precondition(indexShape.count == rank && index.count == indexShape.product, "gather index shape \(indexShape)")
        for d in 0..<rank where d != ax { precondition(indexShape[d] == shape[d], "gather index shape \(indexShape) for \(shape)") }
        let out = Tensor(uninitialized: indexShape)
        let outer = shape[..<ax].product, inner = shape[(ax + 1)...].product
        let n = shape[ax], m = indexShape[ax]
        for o in 0..<outer {
            for j in 0..<m {
                for k in 0..<inner {
                    let i = index[(o * m + j) * inner + k]
                    precondition(i >= 0 && i < n, "gather index \(i) out of range 0..<\(n)")
                    out.data[(o * m + j) * inner + k] = data[(o * n + i) * inner + k]
                }
            }
        }
        let inShape = shape
        return Autograd.record("gather", out, [self]) { g in
            let gi = Tensor.zeros(inShape)
            for o in 0..<outer {
                for j in 0..<m {
                    for k in 0..<inner {
                        gi.data[(o * n + index[(o * m + j) * inner + k]) * inner + k] += g.data[(o * m + j) * inner + k]
                    }
                }
            }
            return [gi]
        }
    }

    /// Concatenation along `axis`.
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat of no tensors")
        let first = tensors[0]
        let ax = normalizeAxis(axis, first.rank)
        for t in tensors {
            precondition(t.rank == first.rank, "concat of ranks \(first.rank) and \(t.rank)")
            for d in 0..<t.rank where d != ax { precondition(t.shape[d] == first.shape[d], "concat of \(first.shape) and \(t.shape) along \(ax)") }
        }
        let sizes = tensors.map { $0.shape[ax] }
        var outShape = first.shape; outShape[ax] = sizes.reduce(0, +)
        let out = Tensor(uninitialized: outShape)
        let outer = first.shape[..<ax].product, inner = first.shape[(ax + 1)...].product
        let total = outShape[ax]
        var start = 0
        for (t, n) in zip(tensors, sizes) {
            for o in 0..<outer {
                (out.data + (o * total + start) * inner).update(from: t.data + o * n * inner, count: n * inner)
            }
            start += n
        }
        return Autograd.record("concat", out, tensors) { g in
            var offset = 0
            return sizes.enumerated().map { i, n in
                defer { offset += n }
                return tensors[i].requiresGrad ? g.slice(axis: ax, offset..<(offset + n)) : nil
            }
        }
    }

    /// Stacks equal-shaped tensors along a new `axis`.
    public static func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
        precondition(!tensors.isEmpty, "stack of no tensors")
        let ax = normalizeAxis(axis, tensors[0].rank + 1)
        return concat(tensors.map { $0.unsqueezed(ax) }, axis: ax)
    }

    /// Rows of a `[N, D]` table (nn.Embedding lookup): output `[indices.count, D]`.
    public func embedding(_ indices: [Int]) -> Tensor {
        precondition(rank == 2, "embedding table must be [N, D], got \(shape)")
        return indexSelect(axis: 0, indices)
    }
}

/// Resolves a possibly negative axis against `rank`.
@inline(__always)
public func normalizeAxis(_ axis: Int, _ rank: Int) -> Int {
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < max(rank, 1), "axis \(axis) out of range for rank \(rank)")
    return a
}

/// Copies `src` (row-major `srcShape`) into `dst` with dimensions reordered by `dims`.
func permuteCopy(src: UnsafePointer<Float>, srcShape: [Int], dims: [Int], dst: UnsafeMutablePointer<Float>) {
    let r = srcShape.count
    let n = srcShape.product
    if n == 0 { return }
    var srcStrides = [Int](repeating: 1, count: r)
    for i in stride(from: r - 2, through: 0, by: -1) { srcStrides[i] = srcStrides[i + 1] * srcShape[i + 1] }
    let outShape = dims.map { srcShape[$0] }
    let st = dims.map { srcStrides[$0] }
    // Innermost output dim is copied with a strided loop; the outer dims by odometer, from each chunk's first row.
    let inner = outShape[r - 1], innerStride = st[r - 1]
    parallelFor(n / inner, grain: rowGrain(inner)) { rows in
        var idx = [Int](repeating: 0, count: r)
        var off = 0
        var rest = rows.lowerBound
        for d in stride(from: r - 2, through: 0, by: -1) {
            idx[d] = rest % outShape[d]; rest /= outShape[d]
            off += idx[d] * st[d]
        }
        for row in rows {
            let s = src + off
            let d = dst + row * inner
            if innerStride == 1 { d.update(from: s, count: inner) } else { for k in 0..<inner { d[k] = s[k * innerStride] } }
            var dd = r - 2
            while dd >= 0 {
                idx[dd] += 1; off += st[dd]
                if idx[dd] < outShape[dd] { break }
                off -= st[dd] * idx[dd]; idx[dd] = 0
                dd -= 1
            }
        }
    }
}
