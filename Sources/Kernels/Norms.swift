// Norms: channel affine (frozen BN), group norm and layer norm kernels, fused fwd/bwd, Double statistics.
// Corresponds to detectron2 FrozenBatchNorm2d, torch.nn.functional.group_norm and F.layer_norm.

// MARK: - Channel affine (frozen batch norm)

/// `y[r, c] = x[r, c]·scale[c] + shift[c]` over `rows × channels` (`x`, `y`: `[rows, C]`).
public func channelAffineForward(x: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                                 y: UnsafeMutablePointer<Float>, rows: Int, channels: Int) {
    precondition(rows >= 0 && channels > 0, "channelAffine: \(rows) rows × \(channels) channels")
    let c = channels
    parallelFor(rows, grain: rowGrain(c)) { chunk in for r in chunk {
        let xr = x + r * c, yr = y + r * c
        for j in 0..<c { yr[j] = xr[j] * scale[j] + shift[j] }
    } }
}

/// Backward of `channelAffineForward`; each requested gradient is overwritten:
/// `dx = dy·scale`, `dScale[c] = Σ_r dy·x`, `dShift[c] = Σ_r dy` (sums in Double).
public func channelAffineBackward(x: UnsafePointer<Float>, scale: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                  dx: UnsafeMutablePointer<Float>?, dScale: UnsafeMutablePointer<Float>?,
                                  dShift: UnsafeMutablePointer<Float>?, rows: Int, channels: Int) {
    precondition(rows >= 0 && channels > 0, "channelAffine backward: \(rows) rows × \(channels) channels")
    let c = channels
    if let dx {
        parallelFor(rows, grain: rowGrain(c)) { chunk in for r in chunk {
            let gr = dy + r * c, dr = dx + r * c
            for j in 0..<c { dr[j] = gr[j] * scale[j] }
        } }
    }
    if dScale == nil && dShift == nil { return }
    let acc = UnsafeMutablePointer<Double>.allocate(capacity: 2 * c)
    defer { acc.deallocate() }
    // Rows in chunks fixed by the row count, each chunk's sums combined in chunk order.
    parallelColumnSums(rows: rows, columns: 2 * c, grain: rowGrain(4 * c), into: acc) { chunk, partial in
        let sxy = partial, sy = partial + c
        for r in chunk {
            let gr = dy + r * c, xr = x + r * c
            for j in 0..<c {
                let gv = Double(gr[j])
                sxy[j] += gv * Double(xr[j]); sy[j] += gv
            }
        }
    }
    if let dScale { for j in 0..<c { dScale[j] = Float(acc[j]) } }
    if let dShift { for j in 0..<c { dShift[j] = Float(acc[c + j]) } }
}

// MARK: - Group norm

/// Group norm forward over `x` `[B, S, C]` (S = all spatial positions, channels last).
///
/// Statistics per (batch, group) over the `S · C/G` values of the group's channels, biased variance,
/// in Double: `y = (x − μ)·rstd·weight[c] + bias[c]`, `rstd = 1/sqrt(var + eps)`. `mean` and `rstd`
/// (`[B, G]`, Double) are written when given, for the backward.
public func groupNormForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                             y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Double>?,
                             rstd: UnsafeMutablePointer<Double>?, batch: Int, spatial: Int, channels: Int,
                             groups: Int, eps: Float) {
    precondition(batch >= 0 && spatial > 0 && channels > 0 && groups > 0 && channels % groups == 0,
                 "groupNorm: B \(batch), S \(spatial), C \(channels), G \(groups) (C must divide by G)")
    let c = channels, cg = channels / groups, s = spatial
    let n = Double(s * cg)
    // Per-channel Double sums (independent lanes, so the loop over c vectorizes), then per-channel
    // coefficients a[c] = rstd·w[c], d[c] = b[c] − μ·rstd·w[c].
    let buf = UnsafeMutablePointer<Double>.allocate(capacity: 2 * c)
    let coef = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
    defer { buf.deallocate(); coef.deallocate() }
    let sum = buf, sq = buf + c, a = coef, d = coef + c
    for b in 0..<batch {
        let xb = x + b * s * c, yb = y + b * s * c
        // Positions in chunks fixed by S, each chunk's channel sums combined in chunk order.
        parallelColumnSums(rows: s, columns: 2 * c, grain: rowGrain(2 * c), into: buf) { rows, partial in
            let ps = partial, pq = partial + c
            for i in rows {
                let xr = xb + i * c
                for j in 0..<c { let v = Double(xr[j]); ps[j] += v; pq[j] += v * v }
            }
        }
        for gi in 0..<groups {
            var gs = 0.0, gq = 0.0
            for j in (gi * cg)..<((gi + 1) * cg) { gs += sum[j]; gq += sq[j] }
            let mu = gs / n
            let variance = Swift.max(gq / n - mu * mu, 0)
            let r = 1 / (variance + Double(eps)).squareRoot()
            mean?[b * groups + gi] = mu
            rstd?[b * groups + gi] = r
            for j in (gi * cg)..<((gi + 1) * cg) {
                let aw = r * Double(weight[j])
                a[j] = Float(aw); d[j] = Float(Double(bias[j]) - mu * aw)
            }
        }
        parallelFor(s, grain: rowGrain(c)) { rows in
            for i in rows {
                let xr = xb + i * c, yr = yb + i * c
                for j in 0..<c { yr[j] = xr[j] * a[j] + d[j] }
            }
        }
    }
}

/// Group norm backward from the saved `mean`/`rstd` `[B, G]`; each requested gradient is overwritten.
///
/// With x̂ = (x − μ)·rstd and N = S·C/G: `dBias[c] = Σ dy`, `dWeight[c] = Σ dy·x̂` (over batch and
/// positions), `dx = rstd·(w·dy − Σ_g(w·dy)/N − x̂·Σ_g(w·dy·x̂)/N)`, written as `dy·A[c] + x·B + D` per group.
public func groupNormBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                              mean: UnsafePointer<Double>, rstd: UnsafePointer<Double>,
                              dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                              dBias: UnsafeMutablePointer<Float>?, batch: Int, spatial: Int, channels: Int,
                              groups: Int) {
    precondition(batch >= 0 && spatial > 0 && channels > 0 && groups > 0 && channels % groups == 0,
                 "groupNorm backward: B \(batch), S \(spatial), C \(channels), G \(groups)")
    let c = channels, cg = channels / groups, s = spatial
    let n = Double(s * cg)
    let buf = UnsafeMutablePointer<Double>.allocate(capacity: 4 * c)
    let coef = UnsafeMutablePointer<Float>.allocate(capacity: 3 * c)
    defer { buf.deallocate(); coef.deallocate() }
    let sdy = buf, sdyx = buf + c, accW = buf + 2 * c, accB = buf + 3 * c
    let ca = coef, cb = coef + c, cd = coef + 2 * c
    (buf + 2 * c).update(repeating: 0, count: 2 * c)
    for b in 0..<batch {
        let xb = x + b * s * c, gb = dy + b * s * c
        parallelColumnSums(rows: s, columns: 2 * c, grain: rowGrain(2 * c), into: buf) { rows, partial in
            let pdy = partial, pdyx = partial + c
            for i in rows {
                let xr = xb + i * c, gr = gb + i * c
                for j in 0..<c { let gv = Double(gr[j]); pdy[j] += gv; pdyx[j] += gv * Double(xr[j]) }
            }
        }
        for gi in 0..<groups {
            let mu = mean[b * groups + gi], r = rstd[b * groups + gi]
            var s1 = 0.0, s2 = 0.0
            for j in (gi * cg)..<((gi + 1) * cg) {
                let w = Double(weight[j])
                let t = r * (sdyx[j] - mu * sdy[j])  // Σ dy·x̂ of channel j
                accW[j] += t; accB[j] += sdy[j]
                s1 += w * sdy[j]; s2 += w * t
            }
            let bg = -r * r * s2 / n
            let dg = -r * s1 / n - mu * bg
            for j in (gi * cg)..<((gi + 1) * cg) {
                ca[j] = Float(r * Double(weight[j])); cb[j] = Float(bg); cd[j] = Float(dg)
            }
        }
        if let dx {
            let db = dx + b * s * c
            parallelFor(s, grain: rowGrain(c)) { rows in
                for i in rows {
                    let xr = xb + i * c, gr = gb + i * c, dr = db + i * c
                    for j in 0..<c { dr[j] = gr[j] * ca[j] + xr[j] * cb[j] + cd[j] }
                }
            }
        }
    }
    if let dWeight { for j in 0..<c { dWeight[j] = Float(accW[j]) } }
    if let dBias { for j in 0..<c { dBias[j] = Float(accB[j]) } }
}

// MARK: - Layer norm

/// Layer norm forward over the last dimension: `x`, `y` `[rows, D]`,
/// `y = (x − μ)·rstd·weight + bias`. Row statistics are two passes over the (L1-resident) row, the
/// second over deviations from the first mean; each pass sums 16 Float lanes of D/16 terms, the lanes
/// added in Double (SIMD speed, no cancellation).
/// `mean`/`rstd` `[rows]` (Double) are written when given, for the backward.
public func layerNormForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                             y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Double>?,
                             rstd: UnsafeMutablePointer<Double>?, rows: Int, dim: Int, eps: Float) {
    precondition(rows >= 0 && dim > 0, "layerNorm: \(rows) rows × \(dim)")
    let d = dim
    let invD = 1 / Double(dim)
    parallelFor(rows, grain: rowGrain(d)) { chunk in for r in chunk {
        let xr = x + r * d, yr = y + r * d
        // Shifted two-pass statistics: a first mean m, then deviations from it give the exact
        // mean μ = m + Σ(x − m)/D and variance Σ(x − m)²/D − (μ − m)² (no cancellation).
        let m0 = Float(laneSum(xr, d) * invD)
        let (dev, dev2) = laneDeviations(xr, d, m0)
        let shift = dev * invD
        let mu = Double(m0) + shift
        let variance = Swift.max(dev2 * invD - shift * shift, 0)
        let rs = 1 / (variance + Double(eps)).squareRoot()
        let m = Float(mu)
        mean?[r] = mu
        rstd?[r] = rs
        let a = Float(rs)
        for k in 0..<d { yr[k] = (xr[k] - m) * a * weight[k] + bias[k] }
    } }
}

/// Layer norm backward from the saved `mean`/`rstd` `[rows]`; each requested gradient is overwritten.
///
/// Per row, with x̂ = (x − μ)·rstd: `dx = rstd·(w·dy − mean(w·dy) − x̂·mean(w·dy·x̂))`;
/// `dWeight = Σ_rows dy·x̂`, `dBias = Σ_rows dy` (Double accumulators).
public func layerNormBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                              mean: UnsafePointer<Double>, rstd: UnsafePointer<Double>,
                              dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                              dBias: UnsafeMutablePointer<Float>?, rows: Int, dim: Int) {
    precondition(rows >= 0 && dim > 0, "layerNorm backward: \(rows) rows × \(dim)")
    let d = dim
    let invD = 1 / Double(dim)
    let needParams = dWeight != nil || dBias != nil
    let acc = UnsafeMutablePointer<Double>.allocate(capacity: 2 * d)
    defer { acc.deallocate() }
    // Rows in chunks (fixed by the row count); each chunk adds dy·x̂ and dy into its own accumulators, combined in
    // chunk order, so the parameter gradients do not depend on the thread count.
    parallelColumnSums(rows: rows, columns: 2 * d, grain: rowGrain(4 * d), into: acc) { chunk, partial in
        let xhat = UnsafeMutablePointer<Float>.allocate(capacity: d)
        let gw = UnsafeMutablePointer<Float>.allocate(capacity: d)
        defer { xhat.deallocate(); gw.deallocate() }
        let accW = partial, accB = partial + d
        for r in chunk {
            let xr = x + r * d, gr = dy + r * d
            let rs = Float(rstd[r]), m = Float(mean[r])
            for k in 0..<d { xhat[k] = (xr[k] - m) * rs; gw[k] = gr[k] * weight[k] }
            if needParams {
                for k in 0..<d { let gv = Double(gr[k]); accW[k] += gv * Double(xhat[k]); accB[k] += gv }
            }
            if let dx {
                // Row sums of w·dy and w·dy·x̂.
                let (sa, sb) = laneDot(gw, xhat, d)
                let c1 = Float(sa * invD), c2 = Float(sb * invD)
                let dr = dx + r * d
                for k in 0..<d { dr[k] = rs * (gw[k] - c1 - xhat[k] * c2) }
            }
        }
    }
    if let dWeight { for k in 0..<d { dWeight[k] = Float(acc[k]) } }
    if let dBias { for k in 0..<d { dBias[k] = Float(acc[d + k]) } }
}

// MARK: - Reference twins (tests only)

/// Naive two-pass group norm forward in Double over `[B, S, C]`.
public func groupNormForwardReference(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                      y: UnsafeMutablePointer<Float>, batch: Int, spatial: Int, channels: Int,
                                      groups: Int, eps: Float) {
    let cg = channels / groups
    for b in 0..<batch {
        for g in 0..<groups {
            var idx: [Int] = []
            for i in 0..<spatial { for j in (g * cg)..<((g + 1) * cg) { idx.append((b * spatial + i) * channels + j) } }
            let mu = idx.reduce(0.0) { $0 + Double(x[$1]) } / Double(idx.count)
            let variance = idx.reduce(0.0) { $0 + (Double(x[$1]) - mu) * (Double(x[$1]) - mu) } / Double(idx.count)
            let r = 1 / (variance + Double(eps)).squareRoot()
            for i in idx {
                let j = i % channels
                y[i] = Float((Double(x[i]) - mu) * r * Double(weight[j]) + Double(bias[j]))
            }
        }
    }
}

/// Naive group norm backward in Double (the textbook formula per group; overwrites each gradient).
public func groupNormBackwardReference(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                       dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                                       dBias: UnsafeMutablePointer<Float>?, batch: Int, spatial: Int, channels: Int,
                                       groups: Int, eps: Float) {
    let cg = channels / groups
    var gw = [Double](repeating: 0, count: channels), gb = [Double](repeating: 0, count: channels)
    for b in 0..<batch {
        for g in 0..<groups {
            var idx: [Int] = []
            for i in 0..<spatial { for j in (g * cg)..<((g + 1) * cg) { idx.append((b * spatial + i) * channels + j) } }
            let n = Double(idx.count)
            let mu = idx.reduce(0.0) { $0 + Double(x[$1]) } / n
            let variance = idx.reduce(0.0) { $0 + (Double(x[$1]) - mu) * (Double(x[$1]) - mu) } / n
            let r = 1 / (variance + Double(eps)).squareRoot()
            var mdxh = 0.0, mdxhx = 0.0
            for i in idx {
                let xh = (Double(x[i]) - mu) * r, gv = Double(dy[i]), j = i % channels
                gw[j] += gv * xh; gb[j] += gv
                mdxh += gv * Double(weight[j]) / n
                mdxhx += gv * Double(weight[j]) * xh / n
            }
            if let dx {
                for i in idx {
                    let xh = (Double(x[i]) - mu) * r, j = i % channels
                    dx[i] = Float(r * (Double(dy[i]) * Double(weight[j]) - mdxh - xh * mdxhx))
                }
            }
        }
    }
    if let dWeight { for j in 0..<channels { dWeight[j] = Float(gw[j]) } }
    if let dBias { for j in 0..<channels { dBias[j] = Float(gb[j]) } }
}

/// Naive layer norm forward in Double: group norm of `[rows, 1, D]` with one group.
public func layerNormForwardReference(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                      y: UnsafeMutablePointer<Float>, rows: Int, dim: Int, eps: Float) {
    groupNormForwardReference(x: x, weight: weight, bias: bias, y: y, batch: rows, spatial: 1, channels: dim,
                              groups: 1, eps: eps)
}

/// Naive layer norm backward in Double: group norm of `[rows, 1, D]` with one group.
public func layerNormBackwardReference(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                       dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                                       dBias: UnsafeMutablePointer<Float>?, rows: Int, dim: Int, eps: Float) {
    groupNormBackwardReference(x: x, weight: weight, dy: dy, dx: dx, dWeight: dWeight, dBias: dBias,
                               batch: rows, spatial: 1, channels: dim, groups: 1, eps: eps)
}

/// Naive channel affine in Double.
public func channelAffineForwardReference(x: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                                          y: UnsafeMutablePointer<Float>, rows: Int, channels: Int) {
    for i in 0..<(rows * channels) {
        let j = i % channels
        y[i] = Float(Double(x[i]) * Double(scale[j]) + Double(shift[j]))
    }
}

/// Naive channel affine backward in Double (overwrites each requested gradient).
public func channelAffineBackwardReference(x: UnsafePointer<Float>, scale: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                           dx: UnsafeMutablePointer<Float>?, dScale: UnsafeMutablePointer<Float>?,
                                           dShift: UnsafeMutablePointer<Float>?, rows: Int, channels: Int) {
    var gs = [Double](repeating: 0, count: channels), gt = [Double](repeating: 0, count: channels)
    for i in 0..<(rows * channels) {
        let j = i % channels
        dx?[i] = Float(Double(dy[i]) * Double(scale[j]))
        gs[j] += Double(dy[i]) * Double(x[i])
        gt[j] += Double(dy[i])
    }
    if let dScale { for j in 0..<channels { dScale[j] = Float(gs[j]) } }
    if let dShift { for j in 0..<channels { dShift[j] = Float(gt[j]) } }
}
