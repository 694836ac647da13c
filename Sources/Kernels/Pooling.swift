// Pooling: NHWC max pooling (with argmax for the backward) and adaptive average ("area") pooling.
// Corresponds to torch.nn.functional.max_pool2d (ceil_mode=False) and F.adaptive_avg_pool2d / interpolate(mode="area").

/// Geometry of a square-window max pool over NHWC `[B, H, W, C]` → `[B, Ho, Wo, C]`,
/// `Ho = (H + 2·padding − kernel) / stride + 1`; padding acts as −∞.
public struct PoolGeometry: Sendable, Hashable, CustomStringConvertible {
    public let batch: Int, height: Int, width: Int, channels: Int
    public let kernel: Int, stride: Int, padding: Int
    public let outHeight: Int, outWidth: Int

    public init(batch: Int, height: Int, width: Int, channels: Int, kernel: Int, stride: Int, padding: Int) {
        precondition(batch >= 0 && height > 0 && width > 0 && channels > 0 && kernel > 0 && stride > 0,
                     "invalid pool geometry: B \(batch) H \(height) W \(width) C \(channels) k \(kernel) s \(stride)")
        precondition(padding >= 0 && 2 * padding <= kernel, "pool padding \(padding) must be in 0...\(kernel / 2)")
        precondition(height + 2 * padding >= kernel && width + 2 * padding >= kernel,
                     "pool kernel \(kernel) larger than padded input \(height)×\(width) (p \(padding))")
        self.batch = batch; self.height = height; self.width = width; self.channels = channels
        self.kernel = kernel; self.stride = stride; self.padding = padding
        self.outHeight = (height + 2 * padding - kernel) / stride + 1
        self.outWidth = (width + 2 * padding - kernel) / stride + 1
    }

    public var inputCount: Int { batch * height * width * channels }
    public var outputCount: Int { batch * outHeight * outWidth * channels }

    public var description: String {
        "pool[B \(batch), \(height)×\(width)×\(channels) → \(outHeight)×\(outWidth), k \(kernel), s \(stride), p \(padding)]"
    }
}

/// Max-pool forward. `x`: `[B, H, W, C]`, `y`: `[B, Ho, Wo, C]`. When `argmax` is given it receives,
/// per output element, the spatial index `iy·W + ix` of the first (row-major window order) maximum.
/// NaN propagates (the first NaN wins).
public func maxPool2dForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                             argmax: UnsafeMutablePointer<Int32>?, geometry g: PoolGeometry) {
    precondition(g.height * g.width <= Int(Int32.max), "maxPool2d: \(g.height)×\(g.width) exceeds Int32 indices")
    let h = g.height, w = g.width, c = g.channels, k = g.kernel, s = g.stride, p = g.padding
    let ho = g.outHeight, wo = g.outWidth
    for b in 0..<g.batch {
        let img = x + b * h * w * c
        for oy in 0..<ho {
            let y0 = Swift.max(0, oy * s - p), y1 = Swift.min(h, oy * s - p + k)
            for ox in 0..<wo {
                let x0 = Swift.max(0, ox * s - p), x1 = Swift.min(w, ox * s - p + k)
                let o = (b * ho * wo + oy * wo + ox) * c
                let out = y + o
                let start = Int32(y0 * w + x0)
                let first = img + (y0 * w + x0) * c
                // Blocks of 8 channels in SIMD registers (selects, no branches), then the tail.
                // Start from the first valid tap, then scan the rest of the window.
                var j0 = 0
                while j0 + 8 <= c {
                    var best = load8(first + j0)
                    var arg = SIMD8<Int32>(repeating: start)
                    for iy in y0..<y1 {
                        for ix in x0..<x1 where iy != y0 || ix != x0 {
                            let v = load8(img + (iy * w + ix) * c + j0)
                            // Take v if larger, or if it is the first NaN.
                            let take = (v .> best) .| ((v .!= v) .& (best .== best))
                            best.replace(with: v, where: take)
                            if argmax != nil { arg.replace(with: Int32(iy * w + ix), where: take) }
                        }
                    }
                    store8(best, out + j0)
                    if let argmax { UnsafeMutableRawPointer(argmax + o + j0).storeBytes(of: arg, as: SIMD8<Int32>.self) }
                    j0 += 8
                }
                for j in j0..<c {
                    var best = first[j], arg = start
                    for iy in y0..<y1 {
                        for ix in x0..<x1 where iy != y0 || ix != x0 {
                            let v = img[(iy * w + ix) * c + j]
                            if v > best || (v != v && best == best) { best = v; arg = Int32(iy * w + ix) }
                        }
                    }
                    out[j] = best
                    argmax?[o + j] = arg
                }
            }
        }
    }
}

/// Max-pool backward: `dx` `[B, H, W, C]` is overwritten with each `dy` routed to its `argmax` input.
public func maxPool2dBackward(dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>,
                              dx: UnsafeMutablePointer<Float>, geometry g: PoolGeometry) {
    let c = g.channels, hw = g.height * g.width, owo = g.outHeight * g.outWidth
    if g.inputCount > 0 { dx.update(repeating: 0, count: g.inputCount) }
    for b in 0..<g.batch {
        let img = dx + b * hw * c
        for q in 0..<owo {
            let o = (b * owo + q) * c
            let ai = argmax + o, gi = dy + o
            for j in 0..<c { img[Int(ai[j]) * c + j] += gi[j] }
        }
    }
}

/// Rows `start ..< end` of input averaged by adaptive-average output cell `i` (PyTorch's
/// `start = floor(i·in/out)`, `end = ceil((i+1)·in/out)`).
@inline(__always)
public func adaptivePoolRange(_ i: Int, inSize: Int, outSize: Int) -> (start: Int, end: Int) {
    ((i * inSize) / outSize, ((i + 1) * inSize + outSize - 1) / outSize)
}

/// Adaptive average pooling forward. `x`: `[B, Hin, Win, C]`, `y`: `[B, Hout, Wout, C]`; output cell
/// `(i, j)` is the mean of its input window (see `adaptivePoolRange`), summed in Double (one channel:
/// Float sums of each window row, added in Double).
public func adaptiveAvgPool2dForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                     batch: Int, inHeight: Int, inWidth: Int, channels: Int,
                                     outHeight: Int, outWidth: Int) {
    precondition(batch >= 0 && inHeight > 0 && inWidth > 0 && channels > 0 && outHeight > 0 && outWidth > 0,
                 "adaptiveAvgPool2d: B \(batch) \(inHeight)×\(inWidth)×\(channels) → \(outHeight)×\(outWidth)")
    let c = channels
    let acc = UnsafeMutablePointer<Double>.allocate(capacity: c)
    defer { acc.deallocate() }
    for b in 0..<batch {
        let img = x + b * inHeight * inWidth * c
        for oy in 0..<outHeight {
            let (ys, ye) = adaptivePoolRange(oy, inSize: inHeight, outSize: outHeight)
            for ox in 0..<outWidth {
                let (xs, xe) = adaptivePoolRange(ox, inSize: inWidth, outSize: outWidth)
                let inv = 1 / Double((ye - ys) * (xe - xs))
                let out = y + ((b * outHeight + oy) * outWidth + ox) * c
                if c == 1 {
                    // One channel (masks): a window row is contiguous; Float row sums, Double total.
                    var total = 0.0
                    for iy in ys..<ye {
                        let row = img + iy * inWidth
                        var rs: Float = 0
                        for ix in xs..<xe { rs += row[ix] }
                        total += Double(rs)
                    }
                    out[0] = Float(total * inv)
                    continue
                }
                acc.update(repeating: 0, count: c)
                for iy in ys..<ye {
                    for ix in xs..<xe {
                        let src = img + (iy * inWidth + ix) * c
                        addColumns(src, into: acc, c)
                    }
                }
                for j in 0..<c { out[j] = Float(acc[j] * inv) }
            }
        }
    }
}

/// Adaptive average pooling backward: `dx` `[B, Hin, Win, C]` is overwritten; each `dy` is spread
/// evenly over its window (windows may overlap when the sizes do not divide).
public func adaptiveAvgPool2dBackward(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                      batch: Int, inHeight: Int, inWidth: Int, channels: Int,
                                      outHeight: Int, outWidth: Int) {
    precondition(batch >= 0 && inHeight > 0 && inWidth > 0 && channels > 0 && outHeight > 0 && outWidth > 0,
                 "adaptiveAvgPool2d backward: B \(batch) \(inHeight)×\(inWidth)×\(channels) → \(outHeight)×\(outWidth)")
    let c = channels
    let n = batch * inHeight * inWidth * c
    if n > 0 { dx.update(repeating: 0, count: n) }
    for b in 0..<batch {
        let img = dx + b * inHeight * inWidth * c
        for oy in 0..<outHeight {
            let (ys, ye) = adaptivePoolRange(oy, inSize: inHeight, outSize: outHeight)
            for ox in 0..<outWidth {
                let (xs, xe) = adaptivePoolRange(ox, inSize: inWidth, outSize: outWidth)
                let inv = 1 / Float((ye - ys) * (xe - xs))
                let gi = dy + ((b * outHeight + oy) * outWidth + ox) * c
                for iy in ys..<ye {
                    for ix in xs..<xe {
                        let d = img + (iy * inWidth + ix) * c
                        for j in 0..<c { d[j] += gi[j] * inv }
                    }
                }
            }
        }
    }
}

// MARK: - Reference twins (tests only)

/// Naive max pool: every output element scans its window with explicit bounds tests; padding is −∞.
/// Writes `y` and (if given) the first-argmax spatial indices.
public func maxPool2dForwardReference(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                      argmax: UnsafeMutablePointer<Int32>?, geometry g: PoolGeometry) {
    for b in 0..<g.batch {
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                for c in 0..<g.channels {
                    var best = -Float.infinity, bi = -1
                    for ky in 0..<g.kernel {
                        for kx in 0..<g.kernel {
                            let iy = oy * g.stride - g.padding + ky, ix = ox * g.stride - g.padding + kx
                            if iy < 0 || iy >= g.height || ix < 0 || ix >= g.width { continue }
                            let v = x[((b * g.height + iy) * g.width + ix) * g.channels + c]
                            if bi < 0 || v > best || (v.isNaN && !best.isNaN) { best = v; bi = iy * g.width + ix }
                        }
                    }
                    let o = ((b * g.outHeight + oy) * g.outWidth + ox) * g.channels + c
                    y[o] = best
                    argmax?[o] = Int32(bi)
                }
            }
        }
    }
}

/// Naive max-pool backward: recomputes each argmax from `x` and adds `dy` there (overwrites `dx`).
public func maxPool2dBackwardReference(x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                       dx: UnsafeMutablePointer<Float>, geometry g: PoolGeometry) {
    let y = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(1, g.outputCount))
    let am = UnsafeMutablePointer<Int32>.allocate(capacity: Swift.max(1, g.outputCount))
    defer { y.deallocate(); am.deallocate() }
    maxPool2dForwardReference(x: x, y: y, argmax: am, geometry: g)
    for i in 0..<g.inputCount { dx[i] = 0 }
    for b in 0..<g.batch {
        for q in 0..<(g.outHeight * g.outWidth) {
            for c in 0..<g.channels {
                let o = (b * g.outHeight * g.outWidth + q) * g.channels + c
                dx[(b * g.height * g.width + Int(am[o])) * g.channels + c] += dy[o]
            }
        }
    }
}

/// Naive adaptive average pool: each output element sums its window in Double.
public func adaptiveAvgPool2dForwardReference(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                              batch: Int, inHeight: Int, inWidth: Int, channels: Int,
                                              outHeight: Int, outWidth: Int) {
    for b in 0..<batch {
        for oy in 0..<outHeight {
            for ox in 0..<outWidth {
                let ys = oy * inHeight / outHeight, ye = ((oy + 1) * inHeight + outHeight - 1) / outHeight
                let xs = ox * inWidth / outWidth, xe = ((ox + 1) * inWidth + outWidth - 1) / outWidth
                for c in 0..<channels {
                    var s = 0.0
                    for iy in ys..<ye { for ix in xs..<xe { s += Double(x[((b * inHeight + iy) * inWidth + ix) * channels + c]) } }
                    y[((b * outHeight + oy) * outWidth + ox) * channels + c] = Float(s / Double((ye - ys) * (xe - xs)))
                }
            }
        }
    }
}

/// Naive adaptive average pool backward in Double (overwrites `dx`).
public func adaptiveAvgPool2dBackwardReference(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                               batch: Int, inHeight: Int, inWidth: Int, channels: Int,
                                               outHeight: Int, outWidth: Int) {
    var acc = [Double](repeating: 0, count: batch * inHeight * inWidth * channels)
    for b in 0..<batch {
        for oy in 0..<outHeight {
            for ox in 0..<outWidth {
                let ys = oy * inHeight / outHeight, ye = ((oy + 1) * inHeight + outHeight - 1) / outHeight
                let xs = ox * inWidth / outWidth, xe = ((ox + 1) * inWidth + outWidth - 1) / outWidth
                let n = Double((ye - ys) * (xe - xs))
                for c in 0..<channels {
                    let d = Double(dy[((b * outHeight + oy) * outWidth + ox) * channels + c]) / n
                    for iy in ys..<ye { for ix in xs..<xe { acc[((b * inHeight + iy) * inWidth + ix) * channels + c] += d } }
                }
            }
        }
    }
    for i in 0..<acc.count { dx[i] = Float(acc[i]) }
}
