// Conv: NHWC 2-D convolution as im2col + sgemm (forward and backward), with a direct-loop reference twin.
// Corresponds to torch.nn.functional.conv2d / detectron2 layers.Conv2d with groups = 1, dilation = 1.

/// Geometry of a 2-D convolution over NHWC activations with OHWI weights.
///
/// Input `[B, H, W, Cin]`, weight `[Cout, kh, kw, Cin]`, output `[B, Ho, Wo, Cout]` with
/// `Ho = (H + 2·padding − kh) / stride + 1` (and the same for `Wo`). Zero padding.
public struct ConvGeometry: Sendable, Hashable, CustomStringConvertible {
    public let batch: Int, height: Int, width: Int, inChannels: Int
    public let outChannels: Int, kernelHeight: Int, kernelWidth: Int
    public let stride: Int, padding: Int
    public let outHeight: Int, outWidth: Int

    public init(batch: Int, height: Int, width: Int, inChannels: Int, outChannels: Int,
                kernelHeight: Int, kernelWidth: Int, stride: Int = 1, padding: Int = 0) {
        precondition(batch >= 0 && height > 0 && width > 0 && inChannels > 0 && outChannels > 0
                     && kernelHeight > 0 && kernelWidth > 0 && stride > 0 && padding >= 0,
                     "invalid conv geometry: B \(batch) H \(height) W \(width) Cin \(inChannels) Cout \(outChannels) k \(kernelHeight)×\(kernelWidth) s \(stride) p \(padding)")
        precondition(height + 2 * padding >= kernelHeight && width + 2 * padding >= kernelWidth,
                     "conv kernel \(kernelHeight)×\(kernelWidth) larger than padded input \(height)×\(width) (p \(padding))")
        self.batch = batch; self.height = height; self.width = width; self.inChannels = inChannels
        self.outChannels = outChannels; self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth
        self.stride = stride; self.padding = padding
        self.outHeight = (height + 2 * padding - kernelHeight) / stride + 1
        self.outWidth = (width + 2 * padding - kernelWidth) / stride + 1
    }

    /// Columns of the im2col matrix: `kh·kw·Cin`, in `(ky, kx, c)` order (the OHWI weight row).
    public var patchSize: Int { kernelHeight * kernelWidth * inChannels }
    /// Output pixels over the whole batch (rows of the im2col matrix).
    public var outPixels: Int { batch * outHeight * outWidth }
    public var inputCount: Int { batch * height * width * inChannels }
    public var outputCount: Int { outPixels * outChannels }
    public var weightCount: Int { outChannels * patchSize }
    /// A 1×1, stride-1, unpadded conv: the input already is the `[B·H·W, Cin]` matrix (no im2col).
    public var isPointwise: Bool { kernelHeight == 1 && kernelWidth == 1 && stride == 1 && padding == 0 }

    /// Floats of im2col workspace for chunks of at most `maxBytes` (at least one output line, i.e.
    /// `Wo` pixels), balanced so chunks have equal sizes. 0 for pointwise convs. The 8 MB default keeps a
    /// chunk in L3 between im2col and its sgemm (measured 0–30% faster than 32–64 MB chunks).
    public func workspaceCount(maxBytes: Int = 8 << 20) -> Int {
        if isPointwise { return 0 }
        let lineFloats = outWidth * patchSize
        let lines = batch * outHeight
        if lines == 0 { return lineFloats }
        let maxLines = Swift.max(1, maxBytes / (4 * lineFloats))
        let chunks = (lines + maxLines - 1) / maxLines
        return ((lines + chunks - 1) / chunks) * lineFloats
    }

    /// Output lines (one `(b, oy)` pair, `Wo` pixels) per chunk for a workspace of `count` floats.
    func linesPerChunk(workspaceCount count: Int) -> Int {
        let lines = batch * outHeight
        let maxLines = Swift.min(lines, count / (outWidth * patchSize))
        precondition(maxLines >= 1 || lines == 0,
                     "conv workspace of \(count) floats is smaller than one output line (\(outWidth * patchSize)) for \(self)")
        if lines == 0 { return 1 }
        let chunks = (lines + maxLines - 1) / maxLines
        return (lines + chunks - 1) / chunks
    }

    public var description: String {
        "conv[B \(batch), \(height)×\(width)×\(inChannels) → \(outHeight)×\(outWidth)×\(outChannels), k \(kernelHeight)×\(kernelWidth), s \(stride), p \(padding)]"
    }
}

/// Copies `n` floats (a loop for short runs, memmove for long ones).
@inline(__always)
private func copyFloats(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    if n < 32 { for i in 0..<n { dst[i] = src[i] } } else { dst.update(from: src, count: n) }
}

@inline(__always)
private func zeroFloats(_ dst: UnsafeMutablePointer<Float>, _ n: Int) {
    if n > 0 { dst.update(repeating: 0, count: n) }
}

/// im2col of output lines `firstLine ..< firstLine + lineCount` (line = `b·Ho + oy`).
///
/// `x`: `[B, H, W, Cin]`. `cols`: `[lineCount·Wo, kh·kw·Cin]`, row = output pixel, column `(ky, kx, c)`;
/// taps in the padding are 0. Within a window row the valid taps are contiguous in NHWC, so each
/// `(pixel, ky)` is one copy.
public func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, firstLine: Int, lineCount: Int,
                   cols: UnsafeMutablePointer<Float>) {
    precondition(firstLine >= 0 && lineCount >= 0 && firstLine + lineCount <= g.batch * g.outHeight,
                 "im2col lines \(firstLine)..<\(firstLine + lineCount) for \(g)")
    let h = g.height, w = g.width, c = g.inChannels, kh = g.kernelHeight, kw = g.kernelWidth
    let s = g.stride, p = g.padding, ho = g.outHeight, wo = g.outWidth
    let k = kh * kw * c, run = kw * c
    var dst = cols
    for line in firstLine..<(firstLine + lineCount) {
        let b = line / ho, oy = line - b * ho
        let img = x + b * h * w * c
        let iy0 = oy * s - p
        for ox in 0..<wo {
            let ix0 = ox * s - p
            let kxLo = Swift.max(0, -ix0), kxHi = Swift.min(kw, w - ix0)
            for ky in 0..<kh {
                let iy = iy0 + ky
                let seg = dst + ky * run
                if iy < 0 || iy >= h || kxHi <= kxLo { zeroFloats(seg, run); continue }
                zeroFloats(seg, kxLo * c)
                copyFloats(seg + kxLo * c, img + (iy * w + ix0 + kxLo) * c, (kxHi - kxLo) * c)
                zeroFloats(seg + kxHi * c, (kw - kxHi) * c)
            }
            dst += k
        }
    }
}

/// col2im: scatter-adds `cols` (layout of `im2col`) of output lines `firstLine ..< firstLine + lineCount`
/// into `dx` `[B, H, W, Cin]` (which must be initialized; padding taps are dropped).
public func col2im(_ cols: UnsafePointer<Float>, _ g: ConvGeometry, firstLine: Int, lineCount: Int,
                   dx: UnsafeMutablePointer<Float>) {
    precondition(firstLine >= 0 && lineCount >= 0 && firstLine + lineCount <= g.batch * g.outHeight,
                 "col2im lines \(firstLine)..<\(firstLine + lineCount) for \(g)")
    let h = g.height, w = g.width, c = g.inChannels, kh = g.kernelHeight, kw = g.kernelWidth
    let s = g.stride, p = g.padding, ho = g.outHeight, wo = g.outWidth
    let k = kh * kw * c, run = kw * c
    var src = cols
    for line in firstLine..<(firstLine + lineCount) {
        let b = line / ho, oy = line - b * ho
        let img = dx + b * h * w * c
        let iy0 = oy * s - p
        for ox in 0..<wo {
            let ix0 = ox * s - p
            let kxLo = Swift.max(0, -ix0), kxHi = Swift.min(kw, w - ix0)
            if kxHi > kxLo {
                let n = (kxHi - kxLo) * c
                for ky in 0..<kh {
                    let iy = iy0 + ky
                    if iy < 0 || iy >= h { continue }
                    let seg = src + ky * run + kxLo * c
                    let d = img + (iy * w + ix0 + kxLo) * c
                    for i in 0..<n { d[i] += seg[i] }
                }
            }
            src += k
        }
    }
}

/// Convolution forward: `y = conv(x, weight) + bias`.
///
/// `x`: `[B, H, W, Cin]`, `weight`: `[Cout, kh, kw, Cin]` viewed as `[Cout, kh·kw·Cin]`, `bias`: `[Cout]`
/// or nil, `y`: `[B, Ho, Wo, Cout]`. Non-pointwise convs gather patches of chunks of output lines
/// into `workspace` (`workspaceCount` floats, at least `geometry.workspaceCount(maxBytes: 0)`) and run
/// one `sgemm` (transB) per chunk; pointwise convs are one `sgemm` on `x` directly. Non-pointwise convs run as
/// oneDNN's direct convolution instead where `DNNLConvolution.chosen` says so (`KernelLibrary.openBLAS` turns it off).
public func conv2dForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          y: UnsafeMutablePointer<Float>, geometry g: ConvGeometry,
                          workspace: UnsafeMutablePointer<Float>?, workspaceCount: Int) {
    let k = g.patchSize, cout = g.outChannels, wo = g.outWidth
    let lines = g.batch * g.outHeight
    precondition(g.isPointwise || (workspace != nil && workspaceCount >= wo * k),
                 "conv2dForward needs a workspace of at least \(wo * k) floats for \(g)")
    if lines == 0 { return }
    logConvolution(g)
    if let conv = DNNLConvolution.chosen(for: g) {
        do {
            if try conv.forward(x: x, weight: weight, bias: bias, y: y) { return }
        } catch {
            fatalError("conv2d forward through oneDNN (\(g)): \(error)")
        }
    }
    if let bias {
        for r in 0..<g.outPixels { (y + r * cout).update(from: bias, count: cout) }
    }
    let beta: Float = bias == nil ? 0 : 1
    if g.isPointwise {
        sgemm(transA: false, transB: true, m: g.outPixels, n: cout, k: k, a: x, lda: k,
              b: weight, ldb: k, beta: beta, c: y, ldc: cout)
        return
    }
    let cols = workspace!
    let per = g.linesPerChunk(workspaceCount: workspaceCount)
    var l0 = 0
    while l0 < lines {
        let n = Swift.min(per, lines - l0)
        im2col(x, g, firstLine: l0, lineCount: n, cols: cols)
        sgemm(transA: false, transB: true, m: n * wo, n: cout, k: k, a: cols, lda: k,
              b: weight, ldb: k, beta: beta, c: y + l0 * wo * cout, ldc: cout)
        l0 += n
    }
}

/// Convolution backward. Each requested gradient is overwritten (not accumulated):
/// `dWeight = dyᵀ · cols` `[Cout, kh·kw·Cin]` (summed over chunks), `dBias` = column sums of `dy`
/// (Double), `dx` = col2im(`dy · weight`). Patches are recomputed chunk by chunk in `workspace`
/// (same requirement as `conv2dForward`), which then holds `dcols` of the same chunk. As in the forward, oneDNN's
/// direct convolution computes `dx` and `dWeight` instead where it is chosen (`dx` only from
/// `DNNLConvolution.minimumBackwardDataChannels` input channels on).
public func conv2dBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                           dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                           dBias: UnsafeMutablePointer<Float>?, geometry g: ConvGeometry,
                           workspace: UnsafeMutablePointer<Float>?, workspaceCount: Int) {
    var dx = dx, dWeight = dWeight
    let k = g.patchSize, cout = g.outChannels, wo = g.outWidth
    let lines = g.batch * g.outHeight, rows = g.outPixels
    precondition(g.isPointwise || (workspace != nil && workspaceCount >= wo * k),
                 "conv2dBackward needs a workspace of at least \(wo * k) floats for \(g)")
    if let dBias {
        let acc = UnsafeMutablePointer<Double>.allocate(capacity: cout)
        defer { acc.deallocate() }
        parallelColumnSums(rows: rows, columns: cout, grain: rowGrain(cout), into: acc) { chunk, partial in
            for r in chunk { addColumns(dy + r * cout, into: partial, cout) }
        }
        for j in 0..<cout { dBias[j] = Float(acc[j]) }
    }
    if dx == nil && dWeight == nil { return }
    if lines > 0, let conv = DNNLConvolution.chosen(for: g) {
        let wantDx = g.inChannels >= DNNLConvolution.minimumBackwardDataChannels ? dx : nil
        do {
            let done = try conv.backward(x: x, weight: weight, dy: dy, dx: wantDx, dWeight: dWeight)
            if done.dx { dx = nil }
            if done.dWeight { dWeight = nil }
        } catch {
            fatalError("conv2d backward through oneDNN (\(g)): \(error)")
        }
        if dx == nil && dWeight == nil { return }
    }
    if lines == 0 {
        if let dWeight { zeroFloats(dWeight, g.weightCount) }
        return
    }
    if g.isPointwise {
        if let dWeight {
            sgemm(transA: true, transB: false, m: cout, n: k, k: rows, a: dy, lda: cout,
                  b: x, ldb: k, c: dWeight, ldc: k)
        }
        if let dx {
            sgemm(transA: false, transB: false, m: rows, n: k, k: cout, a: dy, lda: cout,
                  b: weight, ldb: k, c: dx, ldc: k)
        }
        return
    }
    let cols = workspace!
    if let dx { zeroFloats(dx, g.inputCount) }
    let per = g.linesPerChunk(workspaceCount: workspaceCount)
    var l0 = 0
    while l0 < lines {
        let n = Swift.min(per, lines - l0)
        let m = n * wo
        let dyChunk = dy + l0 * wo * cout
        if let dWeight {
            im2col(x, g, firstLine: l0, lineCount: n, cols: cols)
            sgemm(transA: true, transB: false, m: cout, n: k, k: m, a: dyChunk, lda: cout,
                  b: cols, ldb: k, beta: l0 == 0 ? 0 : 1, c: dWeight, ldc: k)
        }
        if let dx {
            sgemm(transA: false, transB: false, m: m, n: k, k: cout, a: dyChunk, lda: cout,
                  b: weight, ldb: k, c: cols, ldc: k)
            col2im(cols, g, firstLine: l0, lineCount: n, dx: dx)
        }
        l0 += n
    }
}

// MARK: - Reference twin (tests only)

/// Direct-loop convolution forward (Double accumulation); same layouts as `conv2dForward`.
public func conv2dForwardReference(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                   y: UnsafeMutablePointer<Float>, geometry g: ConvGeometry) {
    let h = g.height, w = g.width, ci = g.inChannels, co = g.outChannels
    let kh = g.kernelHeight, kw = g.kernelWidth, s = g.stride, p = g.padding
    for b in 0..<g.batch {
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                for o in 0..<co {
                    var acc = bias.map { Double($0[o]) } ?? 0
                    for ky in 0..<kh {
                        for kx in 0..<kw {
                            let iy = oy * s - p + ky, ix = ox * s - p + kx
                            if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                            for c in 0..<ci {
                                acc += Double(x[((b * h + iy) * w + ix) * ci + c])
                                    * Double(weight[((o * kh + ky) * kw + kx) * ci + c])
                            }
                        }
                    }
                    y[((b * g.outHeight + oy) * g.outWidth + ox) * co + o] = Float(acc)
                }
            }
        }
    }
}

/// Direct-loop convolution backward (Double accumulation); overwrites each requested gradient.
public func conv2dBackwardReference(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                    dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                                    dBias: UnsafeMutablePointer<Float>?, geometry g: ConvGeometry) {
    let h = g.height, w = g.width, ci = g.inChannels, co = g.outChannels
    let kh = g.kernelHeight, kw = g.kernelWidth, s = g.stride, p = g.padding
    var gx = [Double](repeating: 0, count: g.inputCount)
    var gw = [Double](repeating: 0, count: g.weightCount)
    var gb = [Double](repeating: 0, count: co)
    for b in 0..<g.batch {
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                for o in 0..<co {
                    let d = Double(dy[((b * g.outHeight + oy) * g.outWidth + ox) * co + o])
                    gb[o] += d
                    for ky in 0..<kh {
                        for kx in 0..<kw {
                            let iy = oy * s - p + ky, ix = ox * s - p + kx
                            if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                            for c in 0..<ci {
                                let xi = ((b * h + iy) * w + ix) * ci + c
                                let wi = ((o * kh + ky) * kw + kx) * ci + c
                                gx[xi] += d * Double(weight[wi])
                                gw[wi] += d * Double(x[xi])
                            }
                        }
                    }
                }
            }
        }
    }
    if let dx { for i in 0..<gx.count { dx[i] = Float(gx[i]) } }
    if let dWeight { for i in 0..<gw.count { dWeight[i] = Float(gw[i]) } }
    if let dBias { for i in 0..<co { dBias[i] = Float(gb[i]) } }
}
