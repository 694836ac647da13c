// Multi-scale deformable attention (MSDA) core: bilinear sampling of per-head value maps at learned points, weighted sum.
// Corresponds to Mask2Former's pixel_decoder/ops ms_deform_attn_core_pytorch (F.grid_sample per level) and its CUDA op.

/// Dimensions of one MSDA call. Layouts (row-major, channels last, heads interleaved like `attention`):
///
/// | tensor | shape | meaning |
/// |---|---|---|
/// | value | `[B, S, heads·d]` | tokens of every level concatenated in level order, row-major `(y, x)` inside a level; `S = Σ_l H_l·W_l` |
/// | locations | `[B, Tq, heads, L, P, 2]` | sampling points `(x, y)` normalized to `[0, 1]` per level (`ref + offset/(W_l, H_l)`, computed by the caller) |
/// | weights | `[B, Tq, heads, L, P]` | attention weights (already softmaxed over `L·P` by the caller) |
/// | output | `[B, Tq, heads·d]` | `out[b,q,h,:] = Σ_{l,p} A[b,q,h,l,p] · bilinear(V_h^(l), loc[b,q,h,l,p])` |
///
/// Level `l` occupies tokens `levelStarts[l] ..< levelStarts[l] + H_l·W_l` of `value`.
public struct MSDeformAttnShape: Sendable, Equatable {
    public let batch: Int, queries: Int, heads: Int, headDim: Int, points: Int
    /// `H_l` and `W_l` per level, in level order.
    public let levelHeights: [Int], levelWidths: [Int]
    /// First token of each level in `value` (cumulative sums of `H_l·W_l`).
    public let levelStarts: [Int]
    /// `S`, the number of value tokens.
    public let tokens: Int

    public init(batch: Int, queries: Int, heads: Int, headDim: Int, points: Int,
                levelShapes: [(height: Int, width: Int)]) {
        self.batch = batch; self.queries = queries; self.heads = heads; self.headDim = headDim; self.points = points
        levelHeights = levelShapes.map(\.height)
        levelWidths = levelShapes.map(\.width)
        var starts: [Int] = [], s = 0
        for (h, w) in levelShapes { starts.append(s); s += h * w }
        levelStarts = starts
        tokens = s
    }

    public var levels: Int { levelHeights.count }
    /// `heads·d`, the width of a value or output token.
    public var width: Int { heads * headDim }
    public var valueCount: Int { batch * tokens * width }
    public var outputCount: Int { batch * queries * width }
    /// Number of sampling points `B·Tq·heads·L·P` (locations hold twice as many floats).
    public var sampleCount: Int { batch * queries * heads * levels * points }
}

/// Where one sampling point reads a level: element offsets (relative to the level's first token, head
/// offset excluded) of the taps `(x0, y0)`, `(x0+1, y0)`, `(x0, y0+1)`, `(x0+1, y0+1)`, −1 for a tap
/// outside the map, and the fractions `ax`, `ay` of `u = x·W − 0.5`, `v = y·H − 0.5`.
struct MSDATaps {
    var o00: Int, o01: Int, o10: Int, o11: Int
    var ax: Float, ay: Float
}

/// Taps of the point `(px, py)` on an `h × w` level whose tokens are `stride` floats apart.
/// The coordinates are computed in Float exactly as grid_sample does for `grid = 2·loc − 1`
/// (`u = (g + 1)·(W/2) − 0.5`, see `pointSampleCoordinates`).
@inline(__always)
func msdaTaps(_ px: Float, _ py: Float, height h: Int, width w: Int, stride: Int) -> MSDATaps {
    let gx: Float = 2 * px - 1, gy: Float = 2 * py - 1
    let u: Float = (gx + 1) * (Float(w) / 2) - 0.5, v: Float = (gy + 1) * (Float(h) / 2) - 0.5
    if u >= 0 && u < Float(w - 1) && v >= 0 && v < Float(h - 1) {
        // All four taps inside (the common case): floor is truncation.
        let x0 = Int(u), y0 = Int(v)
        let o = (y0 * w + x0) * stride
        return MSDATaps(o00: o, o01: o + stride, o10: o + w * stride, o11: o + (w + 1) * stride,
                        ax: u - Float(x0), ay: v - Float(y0))
    }
    let (x0, y0, ax, ay) = pointSampleCoordinates(px, py, height: h, width: w)
    let x0In = x0 >= 0 && x0 < w, x1In = x0 + 1 >= 0 && x0 + 1 < w
    let y0In = y0 >= 0 && y0 < h, y1In = y0 + 1 >= 0 && y0 + 1 < h
    let o = (y0 * w + x0) * stride
    return MSDATaps(o00: x0In && y0In ? o : -1, o01: x1In && y0In ? o + stride : -1,
                    o10: x0In && y1In ? o + w * stride : -1, o11: x1In && y1In ? o + (w + 1) * stride : -1,
                    ax: ax, ay: ay)
}

/// Level table `[H_l, W_l, start_l·width]` per level in one small buffer (no Array access in loops).
private func levelTable(_ s: MSDeformAttnShape) -> UnsafeMutablePointer<Int> {
    let t = UnsafeMutablePointer<Int>.allocate(capacity: 3 * Swift.max(s.levels, 1))
    for l in 0..<s.levels {
        t[3 * l] = s.levelHeights[l]; t[3 * l + 1] = s.levelWidths[l]; t[3 * l + 2] = s.levelStarts[l] * s.width
    }
    return t
}

private func checkShape(_ s: MSDeformAttnShape, _ name: String) {
    precondition(s.batch >= 0 && s.queries >= 0 && s.heads > 0 && s.headDim > 0 && s.points > 0 && s.levels > 0
                 && s.levelHeights.allSatisfy { $0 > 0 } && s.levelWidths.allSatisfy { $0 > 0 },
                 "\(name): B \(s.batch), Tq \(s.queries), heads \(s.heads), d \(s.headDim), P \(s.points), "
                 + "levels \(Array(zip(s.levelHeights, s.levelWidths)))")
}

/// MSDA forward (see `MSDeformAttnShape` for the layouts): `out` is overwritten.
///
/// Per sampled point the bilinear value is `((v00·w00 + v01·w01) + v10·w10) + v11·w11` with
/// `w00 = (1 − ay)(1 − ax)`, `w01 = (1 − ay)·ax`, `w10 = ay·(1 − ax)`, `w11 = ay·ax` (grid_sample's
/// order; taps outside the map read 0), and `out += A·value`, over levels then points.
public func msDeformAttnForward(value: UnsafePointer<Float>, locations: UnsafePointer<Float>,
                                weights: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                shape s: MSDeformAttnShape) {
    checkShape(s, "msDeformAttn")
    let nq = s.queries, nh = s.heads, d = s.headDim, nl = s.levels, np = s.points
    let width = s.width, tokenFloats = s.tokens * width
    let table = levelTable(s)
    let zeros = UnsafeMutablePointer<Float>.allocate(capacity: d)
    zeros.initialize(repeating: 0, count: d)
    defer { table.deallocate(); zeros.deallocate() }
    let zp = UnsafePointer(zeros)
    // Queries in chunks (each writes its own output rows).
    parallelFor(s.batch * nq, grain: Swift.max(1, 16_384 / Swift.max(1, nh * nl * np * d))) { chunk in for bq in chunk {
        let b = bq / nq, q = bq % nq
        let vb = value + b * tokenFloats
        do {
            for h in 0..<nh {
                let row = (b * nq + q) * nh + h
                let o = out + row * d
                o.update(repeating: 0, count: d)
                let locRow = locations + row * nl * np * 2, wRow = weights + row * nl * np
                let vh = vb + h * d
                for l in 0..<nl {
                    let hl = table[3 * l], wl = table[3 * l + 1], base = vh + table[3 * l + 2]
                    for p in 0..<np {
                        let k = l * np + p
                        let t = msdaTaps(locRow[2 * k], locRow[2 * k + 1], height: hl, width: wl, stride: width)
                        let p00 = t.o00 >= 0 ? base + t.o00 : zp, p01 = t.o01 >= 0 ? base + t.o01 : zp
                        let p10 = t.o10 >= 0 ? base + t.o10 : zp, p11 = t.o11 >= 0 ? base + t.o11 : zp
                        let ax = t.ax, ay = t.ay
                        let w00 = (1 - ay) * (1 - ax), w01 = (1 - ay) * ax, w10 = ay * (1 - ax), w11 = ay * ax
                        let a = wRow[k]
                        var j = 0
                        if d >= 8 {
                            let a8 = SIMD8<Float>(repeating: a)
                            let c00 = SIMD8<Float>(repeating: w00), c01 = SIMD8<Float>(repeating: w01)
                            let c10 = SIMD8<Float>(repeating: w10), c11 = SIMD8<Float>(repeating: w11)
                            while j + 8 <= d {
                                let sv = ((load8(p00 + j) * c00 + load8(p01 + j) * c01) + load8(p10 + j) * c10)
                                    + load8(p11 + j) * c11
                                store8(load8(o + j) + a8 * sv, o + j)
                                j += 8
                            }
                        }
                        while j < d {
                            let sv = ((p00[j] * w00 + p01[j] * w01) + p10[j] * w10) + p11[j] * w11
                            o[j] += a * sv
                            j += 1
                        }
                    }
                }
            }
        }
    } }
}

/// MSDA backward. Each requested gradient is overwritten (pass nil to skip one):
///
/// - `dValue` `[B, S, heads·d]`: `dOut·A` scattered through the in-map taps with the bilinear weights;
/// - `dLocations` `[B, Tq, heads, L, P, 2]`: `W_l·Σ_c t_c·((v01 − v00)(1 − ay) + (v11 − v10)·ay)` for x and
///   `H_l·Σ_c t_c·((v10 − v00)(1 − ax) + (v11 − v01)·ax)` for y, with `t = A·dOut` and taps outside
///   reading 0 — grid_sample's floor-based derivative (at an integer coordinate it is the one-sided
///   derivative towards the next pixel), times `W/2` for the unnormalization and 2 for `grid = 2·loc − 1`;
/// - `dWeights` `[B, Tq, heads, L, P]`: the sampled value dotted with `dOut`.
///
/// Channel sums use 8 Float lanes added in lane order, then the tail (`laneOrderSum`, Reductions.swift).
public func msDeformAttnBackward(value: UnsafePointer<Float>, locations: UnsafePointer<Float>,
                                 weights: UnsafePointer<Float>, dOut: UnsafePointer<Float>,
                                 dValue: UnsafeMutablePointer<Float>?, dLocations: UnsafeMutablePointer<Float>?,
                                 dWeights: UnsafeMutablePointer<Float>?, shape s: MSDeformAttnShape) {
    checkShape(s, "msDeformAttn backward")
    let nq = s.queries, nh = s.heads, d = s.headDim, nl = s.levels, np = s.points
    let width = s.width, tokenFloats = s.tokens * width
    if let dValue, s.valueCount > 0 { dValue.update(repeating: 0, count: s.valueCount) }
    let needReductions = dLocations != nil || dWeights != nil
    let table = levelTable(s)
    // Taps outside the map read `zeros` and scatter into a chunk's `sink` (whose contents are never read).
    let zeros = UnsafeMutablePointer<Float>.allocate(capacity: d)
    zeros.initialize(repeating: 0, count: d)
    defer { table.deallocate(); zeros.deallocate() }
    let zp = UnsafePointer(zeros)
    // One chunk per (image, head): a head's value gradient is its own channel slice, so chunks never write the same
    // element, and within a chunk the queries scatter in the order they always did (q, then level, then point).
    parallelChunks(s.batch * nh) { bh in
        let b = bh / nh, h = bh % nh
        let sink = UnsafeMutablePointer<Float>.allocate(capacity: d)
        sink.initialize(repeating: 0, count: d)
        defer { sink.deallocate() }
        let vb = value + b * tokenFloats
        let gb = dValue.map { $0 + b * tokenFloats }
        for q in 0..<nq {
            do {
                let row = (b * nq + q) * nh + h
                let g = dOut + row * d
                let locRow = locations + row * nl * np * 2, wRow = weights + row * nl * np
                let vh = vb + h * d
                let gh = gb.map { $0 + h * d }
                for l in 0..<nl {
                    let hl = table[3 * l], wl = table[3 * l + 1], start = table[3 * l + 2]
                    let base = vh + start
                    for p in 0..<np {
                        let k = l * np + p
                        let t = msdaTaps(locRow[2 * k], locRow[2 * k + 1], height: hl, width: wl, stride: width)
                        let ax = t.ax, ay = t.ay
                        let w00 = (1 - ay) * (1 - ax), w01 = (1 - ay) * ax, w10 = ay * (1 - ax), w11 = ay * ax
                        let a = wRow[k]
                        if needReductions {
                            let p00 = t.o00 >= 0 ? base + t.o00 : zp, p01 = t.o01 >= 0 ? base + t.o01 : zp
                            let p10 = t.o10 >= 0 ? base + t.o10 : zp, p11 = t.o11 >= 0 ? base + t.o11 : zp
                            let ay0 = 1 - ay, ax0 = 1 - ax
                            var sumA: Float = 0, sumX: Float = 0, sumY: Float = 0
                            var j = 0
                            if d >= 8 {
                                let a8 = SIMD8<Float>(repeating: a)
                                let c00 = SIMD8<Float>(repeating: w00), c01 = SIMD8<Float>(repeating: w01)
                                let c10 = SIMD8<Float>(repeating: w10), c11 = SIMD8<Float>(repeating: w11)
                                let sx0 = SIMD8<Float>(repeating: ax0), sx1 = SIMD8<Float>(repeating: ax)
                                let sy0 = SIMD8<Float>(repeating: ay0), sy1 = SIMD8<Float>(repeating: ay)
                                var accA = SIMD8<Float>(repeating: 0), accX = accA, accY = accA
                                while j + 8 <= d {
                                    let g8 = load8(g + j), t8 = g8 * a8
                                    let v00 = load8(p00 + j), v01 = load8(p01 + j)
                                    let v10 = load8(p10 + j), v11 = load8(p11 + j)
                                    let sv = ((v00 * c00 + v01 * c01) + v10 * c10) + v11 * c11
                                    accA += sv * g8
                                    accX += ((v01 - v00) * sy0 + (v11 - v10) * sy1) * t8
                                    accY += ((v10 - v00) * sx0 + (v11 - v01) * sx1) * t8
                                    j += 8
                                }
                                sumA = laneOrderSum(accA); sumX = laneOrderSum(accX); sumY = laneOrderSum(accY)
                            }
                            while j < d {
                                let gj = g[j], tj = gj * a
                                let v00 = p00[j], v01 = p01[j], v10 = p10[j], v11 = p11[j]
                                let sv = ((v00 * w00 + v01 * w01) + v10 * w10) + v11 * w11
                                sumA += sv * gj
                                sumX += ((v01 - v00) * ay0 + (v11 - v10) * ay) * tj
                                sumY += ((v10 - v00) * ax0 + (v11 - v01) * ax) * tj
                                j += 1
                            }
                            if let dWeights { dWeights[row * nl * np + k] = sumA }
                            if let dLocations {
                                let dl = dLocations + (row * nl * np + k) * 2
                                dl[0] = sumX * (Float(wl) / 2) * 2
                                dl[1] = sumY * (Float(hl) / 2) * 2
                            }
                        }
                        if let gh {
                            let gbase = gh + start
                            let q00 = t.o00 >= 0 ? gbase + t.o00 : sink, q01 = t.o01 >= 0 ? gbase + t.o01 : sink
                            let q10 = t.o10 >= 0 ? gbase + t.o10 : sink, q11 = t.o11 >= 0 ? gbase + t.o11 : sink
                            var j = 0
                            if d >= 8 {
                                let a8 = SIMD8<Float>(repeating: a)
                                let c00 = SIMD8<Float>(repeating: w00), c01 = SIMD8<Float>(repeating: w01)
                                let c10 = SIMD8<Float>(repeating: w10), c11 = SIMD8<Float>(repeating: w11)
                                while j + 8 <= d {
                                    let t8 = load8(g + j) * a8
                                    // Sequential read-modify-writes: outside taps share `sink`.
                                    store8(load8(q00 + j) + c00 * t8, q00 + j)
                                    store8(load8(q01 + j) + c01 * t8, q01 + j)
                                    store8(load8(q10 + j) + c10 * t8, q10 + j)
                                    store8(load8(q11 + j) + c11 * t8, q11 + j)
                                    j += 8
                                }
                            }
                            while j < d {
                                let tj = g[j] * a
                                q00[j] += w00 * tj; q01[j] += w01 * tj; q10[j] += w10 * tj; q11[j] += w11 * tj
                                j += 1
                            }
                        }
                    }
                }
            }
        }
    }
}

// MARK: - Reference twins (tests only)

/// Taps of a point in Double for the reference twins: `[(token offset in the level, weight, dW/du, dW/dv)]`
/// for the in-map taps only.
private func referenceTaps(_ px: Float, _ py: Float, _ h: Int, _ w: Int) -> [(Int, Double, Double, Double)] {
    let u = Double(px) * Double(w) - 0.5, v = Double(py) * Double(h) - 0.5
    guard u.isFinite && v.isFinite else { return [] }
    let fx = u.rounded(.down), fy = v.rounded(.down)
    guard Swift.abs(fx) < 1e9 && Swift.abs(fy) < 1e9 else { return [] }
    let x0 = Int(fx), y0 = Int(fy)
    let ax = u - fx, ay = v - fy
    var out: [(Int, Double, Double, Double)] = []
    // (dy, dx, weight, d weight / du, d weight / dv)
    let taps: [(Int, Int, Double, Double, Double)] = [
        (0, 0, (1 - ay) * (1 - ax), -(1 - ay), -(1 - ax)),
        (0, 1, (1 - ay) * ax, 1 - ay, -ax),
        (1, 0, ay * (1 - ax), -ay, 1 - ax),
        (1, 1, ay * ax, ay, ax),
    ]
    for (dy, dx, wt, du, dv) in taps {
        let iy = y0 + dy, ix = x0 + dx
        if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
        out.append((iy * w + ix, wt, du, dv))
    }
    return out
}

/// Naive MSDA forward in Double (`u = x·W − 0.5` directly, `floor`, in-map taps only). Returns the output.
public func msDeformAttnForwardReference(value: [Float], locations: [Float], weights: [Float],
                                         shape s: MSDeformAttnShape) -> [Float] {
    let nq = s.queries, nh = s.heads, d = s.headDim, nl = s.levels, np = s.points, width = s.width
    var out = [Float](repeating: 0, count: s.outputCount)
    for b in 0..<s.batch {
        for q in 0..<nq {
            for h in 0..<nh {
                let row = (b * nq + q) * nh + h
                var acc = [Double](repeating: 0, count: d)
                for l in 0..<nl {
                    for p in 0..<np {
                        let k = row * nl * np + l * np + p
                        let a = Double(weights[k])
                        for (tok, wt, _, _) in referenceTaps(locations[2 * k], locations[2 * k + 1],
                                                              s.levelHeights[l], s.levelWidths[l]) {
                            let base = (b * s.tokens + s.levelStarts[l] + tok) * width + h * d
                            for c in 0..<d { acc[c] += a * wt * Double(value[base + c]) }
                        }
                    }
                }
                for c in 0..<d { out[row * d + c] = Float(acc[c]) }
            }
        }
    }
    return out
}

/// Naive MSDA backward in Double: gradients to value, locations (`∂/∂x = W·∂/∂u`, `∂/∂y = H·∂/∂v` of the
/// floor-based bilinear formula) and weights.
public func msDeformAttnBackwardReference(value: [Float], locations: [Float], weights: [Float], dOut: [Float],
                                          shape s: MSDeformAttnShape)
    -> (dValue: [Float], dLocations: [Float], dWeights: [Float]) {
    let nq = s.queries, nh = s.heads, d = s.headDim, nl = s.levels, np = s.points, width = s.width
    var dv = [Double](repeating: 0, count: s.valueCount)
    var dloc = [Float](repeating: 0, count: 2 * s.sampleCount), dw = [Float](repeating: 0, count: s.sampleCount)
    for b in 0..<s.batch {
        for q in 0..<nq {
            for h in 0..<nh {
                let row = (b * nq + q) * nh + h
                for l in 0..<nl {
                    for p in 0..<np {
                        let k = row * nl * np + l * np + p
                        let a = Double(weights[k])
                        var ga = 0.0, gu = 0.0, gv = 0.0
                        let hl = s.levelHeights[l], wl = s.levelWidths[l]
                        for (tok, wt, du, dvv) in referenceTaps(locations[2 * k], locations[2 * k + 1], hl, wl) {
                            let base = (b * s.tokens + s.levelStarts[l] + tok) * width + h * d
                            for c in 0..<d {
                                let g = Double(dOut[row * d + c]), x = Double(value[base + c])
                                ga += wt * x * g
                                gu += du * x * a * g
                                gv += dvv * x * a * g
                                dv[base + c] += wt * a * g
                            }
                        }
                        dw[k] = Float(ga)
                        dloc[2 * k] = Float(gu * Double(wl))
                        dloc[2 * k + 1] = Float(gv * Double(hl))
                    }
                }
            }
        }
    }
    return (dv.map { Float($0) }, dloc, dw)
}
