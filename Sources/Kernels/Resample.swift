// Resample: NHWC bilinear resize and zero-padded bilinear point sampling kernels, forward and backward.
// Corresponds to F.interpolate(mode="bilinear", align_corners=False) and detectron2 point_sample (F.grid_sample).

/// Source taps of one output index of a bilinear resize (PyTorch's `area_pixel_compute_source_index`):
/// `src = max((dst + 0.5)·(in/out) − 0.5, 0)`, `i0 = floor(src)`, `i1 = min(i0 + 1, in − 1)`,
/// `λ1 = src − i0`, `λ0 = 1 − λ1`. Computed in Float, as the reference does.
@inline(__always)
public func bilinearSourceTaps(_ dst: Int, inSize: Int, outSize: Int) -> (i0: Int, i1: Int, l0: Float, l1: Float) {
    let scale = Float(inSize) / Float(outSize)
    let src = Swift.max(scale * (Float(dst) + 0.5) - 0.5, 0)
    let i0 = Swift.min(Int(src), inSize - 1)
    let i1 = Swift.min(i0 + 1, inSize - 1)
    let l1 = src - Float(i0)
    return (i0, i1, 1 - l1, l1)
}

/// Bilinear resize forward: `x` `[B, Hin, Win, C]` → `y` `[B, Hout, Wout, C]` (align_corners=False,
/// no antialias, up or down).
public func resizeBilinearForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int,
                                  inHeight: Int, inWidth: Int, channels: Int, outHeight: Int, outWidth: Int) {
    precondition(batch >= 0 && inHeight > 0 && inWidth > 0 && channels > 0 && outHeight > 0 && outWidth > 0,
                 "resizeBilinear: B \(batch) \(inHeight)×\(inWidth)×\(channels) → \(outHeight)×\(outWidth)")
    let c = channels
    let xi0 = UnsafeMutablePointer<Int>.allocate(capacity: 2 * outWidth)
    let xl = UnsafeMutablePointer<Float>.allocate(capacity: 2 * outWidth)
    defer { xi0.deallocate(); xl.deallocate() }
    for ox in 0..<outWidth {
        let t = bilinearSourceTaps(ox, inSize: inWidth, outSize: outWidth)
        xi0[2 * ox] = t.i0 * c; xi0[2 * ox + 1] = t.i1 * c
        xl[2 * ox] = t.l0; xl[2 * ox + 1] = t.l1
    }
    if c >= 8 {
        // Many channels: the per-pixel loop over channels vectorizes; read the four taps directly. Output lines
        // (image, row) in parallel chunks.
        parallelFor(batch * outHeight, grain: rowGrain(outWidth * c)) { lines in for line in lines {
            let b = line / outHeight, oy = line % outHeight
            let img = x + b * inHeight * inWidth * c
            do {
                let ty = bilinearSourceTaps(oy, inSize: inHeight, outSize: outHeight)
                let r0 = img + ty.i0 * inWidth * c, r1 = img + ty.i1 * inWidth * c
                let h0 = ty.l0, h1 = ty.l1
                let outRow = y + (b * outHeight + oy) * outWidth * c
                for ox in 0..<outWidth {
                    let a = xi0[2 * ox], e = xi0[2 * ox + 1]
                    let w0 = xl[2 * ox], w1 = xl[2 * ox + 1]
                    let o = outRow + ox * c
                    let p00 = r0 + a, p01 = r0 + e, p10 = r1 + a, p11 = r1 + e
                    for j in 0..<c { o[j] = h0 * (w0 * p00[j] + w1 * p01[j]) + h1 * (w0 * p10[j] + w1 * p11[j]) }
                }
            }
        } }
        return
    }
    // Few channels (masks): separable. Each needed source row is interpolated horizontally once into
    // a row buffer (`w0·x[i0] + w1·x[i1]`), then output rows blend two buffers vertically
    // (`h0·A + h1·B`); the operation order is the same `h0·(w0·a + w1·b) + h1·(w0·c + w1·d)`.
    // Output lines (image, row) in parallel chunks, each chunk with its own row buffers (recomputing a buffered
    // row gives the same values, so the cut does not change the result).
    let rowCount = outWidth * c
    parallelFor(batch * outHeight, grain: rowGrain(2 * rowCount)) { lines in
        let rows = UnsafeMutablePointer<Float>.allocate(capacity: 2 * rowCount)
        defer { rows.deallocate() }
        var lo = rows, hi = rows + rowCount
        var loTag = -1, hiTag = -1, image = -1
        for line in lines {
            let b = line / outHeight, oy = line % outHeight
            if b != image { image = b; loTag = -1; hiTag = -1 }
            let img = x + b * inHeight * inWidth * c
            let ty = bilinearSourceTaps(oy, inSize: inHeight, outSize: outHeight)
            if ty.i0 == hiTag && ty.i0 != loTag { swap(&lo, &hi); swap(&loTag, &hiTag) }
            if loTag != ty.i0 {
                resizeRowHorizontal(img + ty.i0 * inWidth * c, lo, xi0, xl, outWidth, c); loTag = ty.i0
            }
            if hiTag != ty.i1 {
                resizeRowHorizontal(img + ty.i1 * inWidth * c, hi, xi0, xl, outWidth, c); hiTag = ty.i1
            }
            let h0 = ty.l0, h1 = ty.l1
            let outRow = y + (b * outHeight + oy) * rowCount
            let pa = lo, pb = hi
            for k in 0..<rowCount { outRow[k] = h0 * pa[k] + h1 * pb[k] }
        }
    }
}

/// One source row interpolated horizontally to `outWidth` pixels: `dst[ox] = w0·src[i0] + w1·src[i1]`.
@inline(__always)
private func resizeRowHorizontal(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                                 _ xi0: UnsafePointer<Int>, _ xl: UnsafePointer<Float>, _ outWidth: Int, _ c: Int) {
    if c == 1 {
        for ox in 0..<outWidth {
            dst[ox] = xl[2 * ox] * src[xi0[2 * ox]] + xl[2 * ox + 1] * src[xi0[2 * ox + 1]]
        }
        return
    }
    for ox in 0..<outWidth {
        let pa = src + xi0[2 * ox], pe = src + xi0[2 * ox + 1]
        let w0 = xl[2 * ox], w1 = xl[2 * ox + 1]
        let o = dst + ox * c
        for j in 0..<c { o[j] = w0 * pa[j] + w1 * pe[j] }
    }
}

/// Bilinear resize backward: `dx` `[B, Hin, Win, C]` is overwritten with `dy` `[B, Hout, Wout, C]`
/// scattered back through the four taps of each output pixel.
public func resizeBilinearBackward(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, batch: Int,
                                   inHeight: Int, inWidth: Int, channels: Int, outHeight: Int, outWidth: Int) {
    precondition(batch >= 0 && inHeight > 0 && inWidth > 0 && channels > 0 && outHeight > 0 && outWidth > 0,
                 "resizeBilinear backward: B \(batch) \(inHeight)×\(inWidth)×\(channels) → \(outHeight)×\(outWidth)")
    let c = channels
    let n = batch * inHeight * inWidth * c
    if n > 0 { dx.update(repeating: 0, count: n) }
    let xi0 = UnsafeMutablePointer<Int>.allocate(capacity: 2 * outWidth)
    let xl = UnsafeMutablePointer<Float>.allocate(capacity: 2 * outWidth)
    defer { xi0.deallocate(); xl.deallocate() }
    for ox in 0..<outWidth {
        let t = bilinearSourceTaps(ox, inSize: inWidth, outSize: outWidth)
        xi0[2 * ox] = t.i0 * c; xi0[2 * ox + 1] = t.i1 * c
        xl[2 * ox] = t.l0; xl[2 * ox + 1] = t.l1
    }
    // One chunk per (image, block of channels): chunks write disjoint elements, each element receiving its
    // contributions in the serial order.
    let block = c < 16 ? c : Swift.max(8, c / 8), blocks = (c + block - 1) / block
    parallelChunks(batch * blocks) { task in
        let b = task / blocks, c0 = (task % blocks) * block, cn = Swift.min(block, c - c0)
        let img = dx + b * inHeight * inWidth * c + c0
        for oy in 0..<outHeight {
            let ty = bilinearSourceTaps(oy, inSize: inHeight, outSize: outHeight)
            let r0 = img + ty.i0 * inWidth * c, r1 = img + ty.i1 * inWidth * c
            let h0 = ty.l0, h1 = ty.l1
            let gRow = dy + (b * outHeight + oy) * outWidth * c + c0
            for ox in 0..<outWidth {
                let a = xi0[2 * ox], e = xi0[2 * ox + 1]
                let w0 = xl[2 * ox], w1 = xl[2 * ox + 1]
                let gp = gRow + ox * c
                let p00 = r0 + a, p01 = r0 + e, p10 = r1 + a, p11 = r1 + e
                // Sequential updates: the taps may coincide at the borders.
                for j in 0..<cn { p00[j] += h0 * w0 * gp[j] }
                for j in 0..<cn { p01[j] += h0 * w1 * gp[j] }
                for j in 0..<cn { p10[j] += h1 * w0 * gp[j] }
                for j in 0..<cn { p11[j] += h1 * w1 * gp[j] }
            }
        }
    }
}

/// Where a point sample at normalized `(px, py)` reads a `height × width` map: the upper-left tap
/// `(x0, y0)` (taps are `x0, x0 + 1` × `y0, y0 + 1`) and the fractions `ax`, `ay`, with
/// `u = px·W − 0.5`, `v = py·H − 0.5`. Non-finite points give `x0 = y0 = −2` (every tap outside).
///
/// For bit parity the coordinate is computed in Float exactly as point_sample → grid_sample do
/// (`g = 2p − 1`, `u = (g + 1)·(W/2) − 0.5`); the weights are then `(1 − ay)·(1 − ax)`, `(1 − ay)·ax`,
/// `ay·(1 − ax)`, `ay·ax` and the sum `((v00·w00 + v01·w01) + v10·w10) + v11·w11`, taps outside
/// reading 0.
@inline(__always)
func pointSampleCoordinates(_ px: Float, _ py: Float, height: Int, width: Int) -> (x0: Int, y0: Int, ax: Float, ay: Float) {
    guard px.isFinite && py.isFinite else { return (-2, -2, 0, 0) }
    let gx: Float = 2 * px - 1, gy: Float = 2 * py - 1
    let uu: Float = (gx + 1) * (Float(width) / 2) - 0.5
    let vv: Float = (gy + 1) * (Float(height) / 2) - 0.5
    // Clamping to [−1.5, size + 0.5] keeps Int conversion safe and changes nothing: beyond −1 or
    // size both taps of that axis are already outside.
    let u = Swift.min(Swift.max(uu, -1.5), Float(width) + 0.5)
    let v = Swift.min(Swift.max(vv, -1.5), Float(height) + 0.5)
    // Exact floor without a libm call: truncate, then step down for negative non-integers.
    let tx = Int(u), ty = Int(v)
    let x0 = Float(tx) > u ? tx - 1 : tx, y0 = Float(ty) > v ? ty - 1 : ty
    return (x0, y0, u - Float(x0), v - Float(y0))
}

/// Point sampling forward: `x` `[N, H, W, C]`, `points` `[N, P, 2]` holding `(x, y)` in `[0, 1]²`,
/// `y` `[N, P, C]`. Bilinear, align_corners=False, zero padding (taps outside the map read 0).
/// Points whose four taps are inside (almost all) take a check-free path.
public func gridSampleForward(x: UnsafePointer<Float>, points: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                              batch: Int, height: Int, width: Int, channels: Int, pointCount: Int) {
    precondition(batch >= 0 && height > 0 && width > 0 && channels > 0 && pointCount >= 0,
                 "gridSample: N \(batch) \(height)×\(width)×\(channels), P \(pointCount)")
    let c = channels, rowStride = width * c
    let fw = Float(width), fh = Float(height), uMax = Float(width - 1), vMax = Float(height - 1)
    // Points in chunks (each writes its own output rows).
    parallelFor(batch * pointCount, grain: rowGrain(4 * c)) { chunk in for bp in chunk {
        let b = bp / pointCount, p = bp % pointCount
        do {
            let img = x + b * height * width * c
            let pt = points + (b * pointCount + p) * 2
            let o = y + (b * pointCount + p) * c
            // Float coordinates as the reference computes them (see `pointSampleCoordinates`).
            let gx: Float = 2 * pt[0] - 1, gy: Float = 2 * pt[1] - 1
            let u: Float = (gx + 1) * (fw / 2) - 0.5, v: Float = (gy + 1) * (fh / 2) - 0.5
            if u >= 0 && u < uMax && v >= 0 && v < vMax {
                // All four taps inside (almost every point): floor is truncation, no checks.
                let x0 = Int(u), y0 = Int(v)
                let ax = u - Float(x0), ay = v - Float(y0)
                let w00 = (1 - ay) * (1 - ax), w01 = (1 - ay) * ax, w10 = ay * (1 - ax), w11 = ay * ax
                let r0 = img + (y0 * width + x0) * c, r1 = r0 + rowStride
                if c == 1 {
                    o[0] = r0[0] * w00 + r0[1] * w01 + r1[0] * w10 + r1[1] * w11
                } else {
                    let r01 = r0 + c, r11 = r1 + c
                    for j in 0..<c { o[j] = r0[j] * w00 + r01[j] * w01 + r1[j] * w10 + r11[j] * w11 }
                }
                continue
            }
            // At or beyond the border (or non-finite): add the taps that are inside, in the same order.
            let (x0, y0, ax, ay) = pointSampleCoordinates(pt[0], pt[1], height: height, width: width)
            let w00 = (1 - ay) * (1 - ax), w01 = (1 - ay) * ax, w10 = ay * (1 - ax), w11 = ay * ax
            for j in 0..<c { o[j] = 0 }
            addTap(img, x0, y0, w00, o, height, width, c)
            addTap(img, x0 + 1, y0, w01, o, height, width, c)
            addTap(img, x0, y0 + 1, w10, o, height, width, c)
            addTap(img, x0 + 1, y0 + 1, w11, o, height, width, c)
        }
    } }
}

/// `o += map[iy, ix, :]·w` when `(iy, ix)` is inside the map.
@inline(__always)
private func addTap(_ img: UnsafePointer<Float>, _ ix: Int, _ iy: Int, _ w: Float, _ o: UnsafeMutablePointer<Float>,
                    _ height: Int, _ width: Int, _ c: Int) {
    guard ix >= 0 && ix < width && iy >= 0 && iy < height else { return }
    let s = img + (iy * width + ix) * c
    for j in 0..<c { o[j] += s[j] * w }
}

/// `map[iy, ix, 0..<count] += g·w` (pixels `c` floats apart) when `(iy, ix)` is inside the map.
@inline(__always)
private func scatterTap(_ img: UnsafeMutablePointer<Float>, _ ix: Int, _ iy: Int, _ w: Float, _ g: UnsafePointer<Float>,
                        _ height: Int, _ width: Int, _ c: Int, count: Int) {
    guard ix >= 0 && ix < width && iy >= 0 && iy < height else { return }
    let d = img + (iy * width + ix) * c
    for j in 0..<count { d[j] += w * g[j] }
}

/// Point sampling backward. Each requested gradient is overwritten:
///
/// - `dx` `[N, H, W, C]`: `dy` `[N, P, C]` scattered through each point's in-map taps;
/// - `dPoints` `[N, P, 2]` (needs the map `x`): see `gridSamplePointsBackward`.
public func gridSampleBackward(dy: UnsafePointer<Float>, points: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                               batch: Int, height: Int, width: Int, channels: Int, pointCount: Int,
                               x: UnsafePointer<Float>? = nil, dPoints: UnsafeMutablePointer<Float>? = nil) {
    precondition(batch >= 0 && height > 0 && width > 0 && channels > 0 && pointCount >= 0,
                 "gridSample backward: N \(batch) \(height)×\(width)×\(channels), P \(pointCount)")
    if let dPoints {
        guard let x else { preconditionFailure("gridSample backward: the points gradient needs the map x") }
        gridSamplePointsBackward(x: x, dy: dy, points: points, dPoints: dPoints, batch: batch, height: height,
                                 width: width, channels: channels, pointCount: pointCount)
    }
    guard let dx else { return }
    let c = channels, rowStride = width * c
    let n = batch * height * width * c
    if n > 0 { dx.update(repeating: 0, count: n) }
    let fw = Float(width), fh = Float(height), uMax = Float(width - 1), vMax = Float(height - 1)
    // One chunk per (map, block of channels): chunks write disjoint elements, and each element receives its points'
    // contributions in point order, as serially.
    let block = c == 1 ? 1 : Swift.max(8, c / 8), blocks = (c + block - 1) / block
    parallelChunks(batch * blocks) { task in
        let b = task / blocks, c0 = (task % blocks) * block, cn = Swift.min(block, c - c0)
        let img = dx + b * height * width * c + c0
        for p in 0..<pointCount {
            let pt = points + (b * pointCount + p) * 2
            let g = dy + (b * pointCount + p) * c + c0
            let gx: Float = 2 * pt[0] - 1, gy: Float = 2 * pt[1] - 1
            let u: Float = (gx + 1) * (fw / 2) - 0.5, v: Float = (gy + 1) * (fh / 2) - 0.5
            if u >= 0 && u < uMax && v >= 0 && v < vMax {
                // Four distinct taps inside the map.
                let x0 = Int(u), y0 = Int(v)
                let ax = u - Float(x0), ay = v - Float(y0)
                let w00 = (1 - ay) * (1 - ax), w01 = (1 - ay) * ax, w10 = ay * (1 - ax), w11 = ay * ax
                let r0 = img + (y0 * width + x0) * c, r1 = r0 + rowStride
                if c == 1 {
                    let gv = g[0]
                    r0[0] += w00 * gv; r0[1] += w01 * gv; r1[0] += w10 * gv; r1[1] += w11 * gv
                } else {
                    let r01 = r0 + c, r11 = r1 + c
                    for j in 0..<cn {
                        let gv = g[j]
                        r0[j] += w00 * gv; r01[j] += w01 * gv; r1[j] += w10 * gv; r11[j] += w11 * gv
                    }
                }
                continue
            }
            let (x0, y0, ax, ay) = pointSampleCoordinates(pt[0], pt[1], height: height, width: width)
            let w00 = (1 - ay) * (1 - ax), w01 = (1 - ay) * ax, w10 = ay * (1 - ax), w11 = ay * ax
            scatterTap(img, x0, y0, w00, g, height, width, c, count: cn)
            scatterTap(img, x0 + 1, y0, w01, g, height, width, c, count: cn)
            scatterTap(img, x0, y0 + 1, w10, g, height, width, c, count: cn)
            scatterTap(img, x0 + 1, y0 + 1, w11, g, height, width, c, count: cn)
        }
    }
}

/// Point sampling backward to the points: `dPoints` `[N, P, 2]` is overwritten with the derivative of
/// `Σ_c dy[n, p, c]·sample(x, point)[c]` with respect to the normalized point `(px, py)`:
///
///     ∂/∂px = W·Σ_c dy_c·((v01 − v00)(1 − ay) + (v11 − v10)·ay)
///     ∂/∂py = H·Σ_c dy_c·((v10 − v00)(1 − ax) + (v11 − v01)·ax)
///
/// with taps outside the map reading 0. As in grid_sample this is the derivative of the floor-based
/// formula, so at an exactly integer pixel coordinate it is the one-sided derivative towards the next
/// pixel. The channel sum is sequential and the factor is applied as grid_sample does for
/// `grid = 2p − 1`: `(Σ·(W/2))·2`.
public func gridSamplePointsBackward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, points: UnsafePointer<Float>,
                                     dPoints: UnsafeMutablePointer<Float>, batch: Int, height: Int, width: Int,
                                     channels: Int, pointCount: Int) {
    precondition(batch >= 0 && height > 0 && width > 0 && channels > 0 && pointCount >= 0,
                 "gridSample points backward: N \(batch) \(height)×\(width)×\(channels), P \(pointCount)")
    let c = channels
    let fw = Float(width), fh = Float(height)
    // Taps outside the map read this zero row.
    let zeros = UnsafeMutablePointer<Float>.allocate(capacity: c)
    zeros.initialize(repeating: 0, count: c)
    defer { zeros.deallocate() }
    let zp = UnsafePointer(zeros)
    parallelFor(batch * pointCount, grain: rowGrain(8 * c)) { chunk in for bp in chunk {
        let b = bp / pointCount, p = bp % pointCount
        do {
            let img = x + b * height * width * c
            let pt = points + (b * pointCount + p) * 2
            let g = dy + (b * pointCount + p) * c
            let (x0, y0, ax, ay) = pointSampleCoordinates(pt[0], pt[1], height: height, width: width)
            let x0In = x0 >= 0 && x0 < width, x1In = x0 + 1 >= 0 && x0 + 1 < width
            let y0In = y0 >= 0 && y0 < height, y1In = y0 + 1 >= 0 && y0 + 1 < height
            let v00 = x0In && y0In ? img + (y0 * width + x0) * c : zp
            let v01 = x1In && y0In ? img + (y0 * width + x0 + 1) * c : zp
            let v10 = x0In && y1In ? img + ((y0 + 1) * width + x0) * c : zp
            let v11 = x1In && y1In ? img + ((y0 + 1) * width + x0 + 1) * c : zp
            let ax0 = 1 - ax, ay0 = 1 - ay
            var gx: Float = 0, gy: Float = 0
            for j in 0..<c {
                let gj = g[j]
                gx += ((v01[j] - v00[j]) * ay0 + (v11[j] - v10[j]) * ay) * gj
                gy += ((v10[j] - v00[j]) * ax0 + (v11[j] - v01[j]) * ax) * gj
            }
            let d = dPoints + (b * pointCount + p) * 2
            d[0] = gx * (fw / 2) * 2
            d[1] = gy * (fh / 2) * 2
        }
    } }
}

// MARK: - Reference twins (tests only)

/// Naive bilinear resize: every output element computes its source coordinates from the formula
/// in Double and reads its four (edge-clamped) taps.
public func resizeBilinearForwardReference(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int,
                                           inHeight: Int, inWidth: Int, channels: Int, outHeight: Int, outWidth: Int) {
    func taps(_ d: Int, _ inSize: Int, _ outSize: Int) -> (Int, Int, Double) {
        var src = (Double(d) + 0.5) * Double(inSize) / Double(outSize) - 0.5
        if src < 0 { src = 0 }
        let i0 = Swift.min(Int(src.rounded(.down)), inSize - 1)
        return (i0, Swift.min(i0 + 1, inSize - 1), src - Double(i0))
    }
    for b in 0..<batch {
        for oy in 0..<outHeight {
            let (y0, y1, ly) = taps(oy, inHeight, outHeight)
            for ox in 0..<outWidth {
                let (x0, x1, lx) = taps(ox, inWidth, outWidth)
                for c in 0..<channels {
                    func at(_ iy: Int, _ ix: Int) -> Double { Double(x[((b * inHeight + iy) * inWidth + ix) * channels + c]) }
                    let v = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1))
                    y[((b * outHeight + oy) * outWidth + ox) * channels + c] = Float(v)
                }
            }
        }
    }
}

/// Naive point sample in Double: taps outside the map contribute 0 (zero padding).
public func gridSampleForwardReference(x: UnsafePointer<Float>, points: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                       batch: Int, height: Int, width: Int, channels: Int, pointCount: Int) {
    for b in 0..<batch {
        for p in 0..<pointCount {
            let u = Double(points[(b * pointCount + p) * 2]) * Double(width) - 0.5
            let v = Double(points[(b * pointCount + p) * 2 + 1]) * Double(height) - 0.5
            let x0 = Int(u.rounded(.down)), y0 = Int(v.rounded(.down))
            let ax = u - Double(x0), ay = v - Double(y0)
            for c in 0..<channels {
                var s = 0.0
                for (iy, wy) in [(y0, 1 - ay), (y0 + 1, ay)] {
                    for (ix, wx) in [(x0, 1 - ax), (x0 + 1, ax)] {
                        if iy < 0 || iy >= height || ix < 0 || ix >= width { continue }
                        s += wy * wx * Double(x[((b * height + iy) * width + ix) * channels + c])
                    }
                }
                y[(b * pointCount + p) * channels + c] = Float(s)
            }
        }
    }
}

/// Naive bilinear resize backward in Double (same taps as the reference forward; overwrites `dx`).
public func resizeBilinearBackwardReference(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, batch: Int,
                                            inHeight: Int, inWidth: Int, channels: Int, outHeight: Int, outWidth: Int) {
    func taps(_ d: Int, _ inSize: Int, _ outSize: Int) -> (Int, Int, Double) {
        var src = (Double(d) + 0.5) * Double(inSize) / Double(outSize) - 0.5
        if src < 0 { src = 0 }
        let i0 = Swift.min(Int(src.rounded(.down)), inSize - 1)
        return (i0, Swift.min(i0 + 1, inSize - 1), src - Double(i0))
    }
    var acc = [Double](repeating: 0, count: batch * inHeight * inWidth * channels)
    for b in 0..<batch {
        for oy in 0..<outHeight {
            let (y0, y1, ly) = taps(oy, inHeight, outHeight)
            for ox in 0..<outWidth {
                let (x0, x1, lx) = taps(ox, inWidth, outWidth)
                for c in 0..<channels {
                    let g = Double(dy[((b * outHeight + oy) * outWidth + ox) * channels + c])
                    for (iy, wy) in [(y0, 1 - ly), (y1, ly)] {
                        for (ix, wx) in [(x0, 1 - lx), (x1, lx)] {
                            acc[((b * inHeight + iy) * inWidth + ix) * channels + c] += wy * wx * g
                        }
                    }
                }
            }
        }
    }
    for i in 0..<acc.count { dx[i] = Float(acc[i]) }
}

/// Naive point-sample backward in Double (overwrites `dx`).
public func gridSampleBackwardReference(dy: UnsafePointer<Float>, points: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                        batch: Int, height: Int, width: Int, channels: Int, pointCount: Int) {
    var acc = [Double](repeating: 0, count: batch * height * width * channels)
    for b in 0..<batch {
        for p in 0..<pointCount {
            let u = Double(points[(b * pointCount + p) * 2]) * Double(width) - 0.5
            let v = Double(points[(b * pointCount + p) * 2 + 1]) * Double(height) - 0.5
            let x0 = Int(u.rounded(.down)), y0 = Int(v.rounded(.down))
            let ax = u - Double(x0), ay = v - Double(y0)
            for c in 0..<channels {
                let g = Double(dy[(b * pointCount + p) * channels + c])
                for (iy, wy) in [(y0, 1 - ay), (y0 + 1, ay)] {
                    for (ix, wx) in [(x0, 1 - ax), (x0 + 1, ax)] {
                        if iy < 0 || iy >= height || ix < 0 || ix >= width { continue }
                        acc[((b * height + iy) * width + ix) * channels + c] += wy * wx * g
                    }
                }
            }
        }
    }
    for i in 0..<acc.count { dx[i] = Float(acc[i]) }
}

/// Naive point-sample backward to the points in Double (`u = x·W − 0.5` directly, `floor`, in-map taps
/// only; overwrites `dPoints`).
public func gridSamplePointsBackwardReference(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, points: UnsafePointer<Float>,
                                              dPoints: UnsafeMutablePointer<Float>, batch: Int, height: Int,
                                              width: Int, channels: Int, pointCount: Int) {
    for b in 0..<batch {
        for p in 0..<pointCount {
            let u = Double(points[(b * pointCount + p) * 2]) * Double(width) - 0.5
            let v = Double(points[(b * pointCount + p) * 2 + 1]) * Double(height) - 0.5
            let x0 = Int(u.rounded(.down)), y0 = Int(v.rounded(.down))
            let ax = u - Double(x0), ay = v - Double(y0)
            var gu = 0.0, gv = 0.0
            for c in 0..<channels {
                let g = Double(dy[(b * pointCount + p) * channels + c])
                // (row, col, ∂w/∂u, ∂w/∂v) of the four taps.
                for (iy, ix, du, dv) in [(y0, x0, -(1 - ay), -(1 - ax)), (y0, x0 + 1, 1 - ay, -ax),
                                         (y0 + 1, x0, -ay, 1 - ax), (y0 + 1, x0 + 1, ay, ax)] {
                    if iy < 0 || iy >= height || ix < 0 || ix >= width { continue }
                    let val = Double(x[((b * height + iy) * width + ix) * channels + c])
                    gu += du * val * g
                    gv += dv * val * g
                }
            }
            dPoints[(b * pointCount + p) * 2] = Float(gu * Double(width))
            dPoints[(b * pointCount + p) * 2 + 1] = Float(gv * Double(height))
        }
    }
}
