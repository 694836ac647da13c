// Every parallel kernel gives bitwise the same result at 1, 2 and 8 threads: the chunks are cut by the data size and
// every reduction over chunks is combined in chunk order.
// Reference semantics: none (a property of MaskPilot's parallel layer, `Kernels/Parallel.swift`).
import Foundation
import Kernels
import Testing
import _TestSupport

@Suite struct ThreadDeterminismTests {
    @Test func parallelLoopsCoverEveryIndexOnceAndSumInChunkOrder() {
        let n = 100_003, grain = 1_000
        let counts = atThreadCounts { () -> [Float] in
            var hits = [Float](repeating: 0, count: n)
            hits.withUnsafeMutableBufferPointer { h in parallelFor(n, grain: grain) { r in for i in r { h[i] += 1 } } }
            return hits
        }
        #expect(counts.allSatisfy { $0.allSatisfy { $0 == 1 } })
        // Terms of very different magnitudes with full 53-bit significands, so that any other grouping of the sum
        // (a cut that followed the thread count) would change its last bits.
        let values = (0..<n).map { i in Foundation.sin(Double(i) * 0.7) * Foundation.pow(10, Double(i % 13) - 6) }
        let sums = atThreadCounts { () -> [UInt64] in
            let s = values.withUnsafeBufferPointer { v in
                parallelSum(n, grain: grain) { r in r.reduce(0.0) { $0 + v[$1] } }
            }
            return [s.bitPattern]
        }
        #expect(Set(sums).count == 1, "\(sums)")
        // Nested loops run serially inside a chunk and still cover everything.
        let nested = atThreadCounts { () -> [Float] in
            var out = [Float](repeating: 0, count: 64 * 64)
            out.withUnsafeMutableBufferPointer { o in
                parallelFor(64, grain: 1) { rows in for r in rows { parallelFor(64, grain: 1) { cs in for c in cs { o[r * 64 + c] = Float(r * 64 + c) } } } }
            }
            return out
        }
        #expect(bitwiseEqual(nested) && nested[0] == (0..<4096).map(Float.init))
    }

    @Test(arguments: [false, true])
    func softmax(_ logOutput: Bool) {
        for (outer, n, inner) in [(700, 300, 1), (40, 30, 50)] {
            let count = outer * n * inner
            let x = randomFloats(count, seed: 5, low: -4, high: 4), dy = randomFloats(count, seed: 6)
            let mask = (0..<count).map { $0 % 7 == 3 || ($0 / n) % 50 == 1 }
            let results = atThreadCounts { () -> [Float] in
                var y = [Float](repeating: 0, count: count), dx = y
                mask.withUnsafeBufferPointer { m in
                    softmaxForward(x, &y, outer: outer, n: n, inner: inner, mask: m.baseAddress, fullyMasked: .zeros,
                                   logOutput: logOutput)
                }
                softmaxBackward(y, dy, &dx, outer: outer, n: n, inner: inner, logOutput: logOutput)
                return y + dx
            }
            #expect(bitwiseEqual(results), "outer \(outer) n \(n) inner \(inner) log \(logOutput)")
        }
    }

    /// `withGEMMShapeLog` counts the products and convolutions made on every thread of the loops it runs (attention's
    /// per-head products run on the loop's threads), not only the calling thread's.
    @Test func shapeLogCountsEveryThread() {
        let a = randomFloats(4 * 8, seed: 51), b = randomFloats(8 * 5, seed: 52)
        let g = ConvGeometry(batch: 1, height: 6, width: 6, inChannels: 3, outChannels: 4, kernelHeight: 3, kernelWidth: 3, padding: 1)
        let x = randomFloats(g.inputCount, seed: 53), w = randomFloats(g.weightCount, seed: 54)
        let chunks = 64
        for threads in [1, 2, 4] {
            let (_, shapes, convolutions) = withIntraOpThreads(threads) {
                withGEMMShapeLog {
                    parallelChunks(chunks) { _ in
                        var c = [Float](repeating: 0, count: 4 * 5)
                        sgemm(transA: false, transB: false, m: 4, n: 5, k: 8, a: a, lda: 8, b: b, ldb: 5, c: &c, ldc: 5)
                        var ws = [Float](repeating: 0, count: g.workspaceCount()), y = [Float](repeating: 0, count: g.outputCount)
                        conv2dForward(x: x, weight: w, bias: nil, y: &y, geometry: g, workspace: &ws, workspaceCount: ws.count)
                    }
                }
            }
            // (Where the convolution runs as im2col its own products are counted too.)
            #expect(shapes[GEMMShape(transA: false, transB: false, m: 4, n: 5, k: 8)] == chunks, "\(threads) threads: \(shapes)")
            #expect(convolutions == [g: chunks], "\(threads) threads: \(convolutions)")
        }
        // Outside the log nothing is counted, and an inner log counts its own body only.
        let (_, outer, _) = withGEMMShapeLog {
            var c = [Float](repeating: 0, count: 8 * 5)
            let (_, inner, _) = withGEMMShapeLog {
                sgemm(transA: false, transB: false, m: 4, n: 5, k: 8, a: a, lda: 8, b: b, ldb: 5, c: &c, ldc: 5)
            }
            #expect(inner.values.reduce(0, +) == 1)
            sgemm(transA: true, transB: false, m: 8, n: 5, k: 4, a: a, lda: 8, b: b, ldb: 5, c: &c, ldc: 5)
        }
        #expect(outer == [GEMMShape(transA: true, transB: false, m: 8, n: 5, k: 4): 1])
    }

    @Test func layerNorm() {
        let rows = 5_000, d = 64
        let x = randomFloats(rows * d, seed: 7, low: -3, high: 3), w = randomFloats(d, seed: 8), b = randomFloats(d, seed: 9)
        let dy = randomFloats(rows * d, seed: 10)
        let results = atThreadCounts { () -> [Float] in
            var y = [Float](repeating: 0, count: rows * d), dx = y
            var mean = [Double](repeating: 0, count: rows), rstd = mean
            var dw = [Float](repeating: 0, count: d), db = dw
            layerNormForward(x: x, weight: w, bias: b, y: &y, mean: &mean, rstd: &rstd, rows: rows, dim: d, eps: 1e-5)
            layerNormBackward(x: x, weight: w, dy: dy, mean: mean, rstd: rstd, dx: &dx, dWeight: &dw, dBias: &db,
                              rows: rows, dim: d)
            return y + dx + dw + db + mean.map(Float.init) + rstd.map(Float.init)
        }
        #expect(bitwiseEqual(results))
    }

    @Test func msDeformAttn() {
        let s = MSDeformAttnShape(batch: 2, queries: 300, heads: 4, headDim: 8, points: 2,
                                  levelShapes: [(6, 7), (3, 4)])
        let value = randomFloats(s.valueCount, seed: 11)
        let locations = randomFloats(2 * s.sampleCount, seed: 12, low: -0.1, high: 1.1)
        let weights = randomFloats(s.sampleCount, seed: 13, low: 0, high: 1)
        let dOut = randomFloats(s.outputCount, seed: 14)
        let results = atThreadCounts { () -> [Float] in
            var out = [Float](repeating: 0, count: s.outputCount)
            var dv = [Float](repeating: 0, count: s.valueCount), dl = [Float](repeating: 0, count: 2 * s.sampleCount)
            var dw = [Float](repeating: 0, count: s.sampleCount)
            msDeformAttnForward(value: value, locations: locations, weights: weights, out: &out, shape: s)
            msDeformAttnBackward(value: value, locations: locations, weights: weights, dOut: dOut, dValue: &dv,
                                 dLocations: &dl, dWeights: &dw, shape: s)
            return out + dv + dl + dw
        }
        #expect(bitwiseEqual(results))
    }

    @Test func gridSample() {
        let (n, h, w, c, points) = (2, 13, 17, 24, 3_000)
        let x = randomFloats(n * h * w * c, seed: 15), pts = randomFloats(n * points * 2, seed: 16, low: -0.05, high: 1.05)
        let dy = randomFloats(n * points * c, seed: 17)
        let results = atThreadCounts { () -> [Float] in
            var y = [Float](repeating: 0, count: n * points * c), dx = [Float](repeating: 0, count: n * h * w * c)
            var dp = [Float](repeating: 0, count: n * points * 2)
            gridSampleForward(x: x, points: pts, y: &y, batch: n, height: h, width: w, channels: c, pointCount: points)
            gridSampleBackward(dy: dy, points: pts, dx: &dx, batch: n, height: h, width: w, channels: c, pointCount: points,
                               x: x, dPoints: &dp)
            return y + dx + dp
        }
        #expect(bitwiseEqual(results))
    }

    /// oneDNN's convolutions and matmuls, made and run at 1, 2 and 8 OpenMP threads (primitives made again for each
    /// count, since oneDNN fixes a primitive's split when it makes it), give bitwise the same results: the weight
    /// gradient is computed image by image on one thread each, and small matmuls run on one thread.
    @Test(arguments: GEMMPrecision.allCases)
    func oneDNNAcrossThreadCounts(_ precision: GEMMPrecision) {
        let g = ConvGeometry(batch: 3, height: 20, width: 18, inChannels: 32, outChannels: 48, kernelHeight: 3, kernelWidth: 3,
                             stride: 1, padding: 1)
        let x = randomFloats(g.inputCount, seed: 18), wt = randomFloats(g.weightCount, seed: 19, low: -0.1, high: 0.1)
        let dy = randomFloats(g.outputCount, seed: 20)
        let (m, n, k) = (96, 40, 700)
        let a = randomFloats(k * m, seed: 21), b = randomFloats(k * n, seed: 22)
        // A packed product with a large output and a long reduction: it runs on oneDNN's threads.
        let (bm, bn, bk) = (384, 320, 2_048)
        let ba = randomFloats(bm * bk, seed: 41), bb = randomFloats(bk * bn, seed: 42)
        let results = determinismThreadCounts.map { threads -> [Float] in
            let saved = DNNLThreads.current
            DNNLThreads.set(threads)
            dnnlDropPrimitives()
            defer { DNNLThreads.set(saved); dnnlDropPrimitives() }
            return withIntraOpThreads(threads) { withGEMMPrecision(precision) {
                var ws = [Float](repeating: 0, count: g.workspaceCount())
                var y = [Float](repeating: 0, count: g.outputCount), dx = [Float](repeating: 0, count: g.inputCount)
                var dw = [Float](repeating: 0, count: g.weightCount), c = [Float](repeating: 0, count: m * n)
                conv2dForward(x: x, weight: wt, bias: nil, y: &y, geometry: g, workspace: &ws, workspaceCount: ws.count)
                conv2dBackward(x: x, weight: wt, dy: dy, dx: &dx, dWeight: &dw, dBias: nil, geometry: g, workspace: &ws,
                               workspaceCount: ws.count)
                sgemm(transA: true, transB: false, m: m, n: n, k: k, a: a, lda: m, b: b, ldb: n, c: &c, ldc: n)
                var big = [Float](repeating: 0, count: bm * bn)
                sgemm(transA: false, transB: false, m: bm, n: bn, k: bk, a: ba, lda: bk, b: bb, ldb: bn, c: &big, ldc: bn)
                return y + dx + dw + c + big
            } }
        }
        #expect(bitwiseEqual(results), "\(precision)")
    }

    /// Small products with enough work are cut in two (rows or columns) by their shape, each half a one-thread oneDNN
    /// matmul: bitwise the same at 1, 2, 3 and 8 threads, for both transpositions of each operand, odd sizes, alpha
    /// and beta, in fp32 and bf16.
    @Test(arguments: GEMMPrecision.allCases)
    func smallMatmulsCutPerThread(_ precision: GEMMPrecision) {
        // (m, n, k, transA, transB, alpha, beta): decoder projections and FFN (200 rows), weight-gradient-like
        // (transposed A, long reduction), wide products cut by columns, odd sizes.
        let shapes: [(Int, Int, Int, Bool, Bool, Float, Float)] = [
            (200, 256, 256, false, false, 1, 0), (200, 256, 2_048, false, true, 1, 0), (256, 128, 800, true, false, 1, 1),
            (64, 256, 5_000, false, true, 0.5, 0), (16, 300, 1_000, false, false, 1, 0), (31, 517, 700, true, true, 0.5, 1),
        ]
        #expect(shapes.allSatisfy { DNNLThreads.blocks(m: $0.0, n: $0.1, k: $0.2) == 2 }, "every shape here is cut in two")
        let results = [1, 2, 3, 8].map { threads -> [Float] in
            let saved = DNNLThreads.current
            DNNLThreads.set(threads)
            defer { DNNLThreads.set(saved) }
            return withIntraOpThreads(threads) { withGEMMPrecision(precision) {
                shapes.enumerated().flatMap { index, shape -> [Float] in
                    let (m, n, k, transA, transB, alpha, beta) = shape
                    let a = randomFloats(m * k, seed: 60 + UInt64(index)), b = randomFloats(k * n, seed: 70 + UInt64(index))
                    var c = randomFloats(m * n, seed: 80 + UInt64(index))
                    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: transA ? m : k, b: b,
                          ldb: transB ? k : n, beta: beta, c: &c, ldc: n)
                    return c
                }
            } }
        }
        #expect(bitwiseEqual(results), "\(precision)")
    }

    @Test(arguments: GEMMPrecision.allCases)
    func attentionAndChannelAffine(_ precision: GEMMPrecision) {
        let s = AttentionShape(batch: 2, heads: 4, queries: 30, keys: 70, headDim: 8)
        let q = randomFloats(s.batch * s.queries * s.width, seed: 23), k = randomFloats(s.batch * s.keys * s.width, seed: 24)
        let v = randomFloats(s.batch * s.keys * s.width, seed: 25), dOut = randomFloats(s.batch * s.queries * s.width, seed: 26)
        let mask = (0..<(s.batch * s.queries * s.keys)).map { $0 % 5 == 2 }
        let (rows, c) = (3_000, 40)
        let x = randomFloats(rows * c, seed: 27), scale = randomFloats(c, seed: 28), shift = randomFloats(c, seed: 29)
        let dy = randomFloats(rows * c, seed: 30)
        let results = atThreadCounts { () -> [Float] in withGEMMPrecision(precision) {
            var out = [Float](repeating: 0, count: q.count), probs = [Float](repeating: 0, count: s.batch * s.heads * s.queries * s.keys)
            var dq = q, dk = k, dv = v, scratch = [Float](repeating: 0, count: s.queries * s.keys)
            mask.withUnsafeBufferPointer { m in
                attentionForward(q: q, k: k, v: v, out: &out, probs: &probs, shape: s, scale: 0.3, mask: m.baseAddress,
                                 maskPerHead: false)
            }
            attentionBackward(q: q, k: k, v: v, probs: probs, dOut: dOut, dq: &dq, dk: &dk, dv: &dv, scratch: &scratch,
                              shape: s, scale: 0.3)
            var y = [Float](repeating: 0, count: rows * c), dx = y
            var ds = [Float](repeating: 0, count: c), dsh = ds
            channelAffineForward(x: x, scale: scale, shift: shift, y: &y, rows: rows, channels: c)
            channelAffineBackward(x: x, scale: scale, dy: dy, dx: &dx, dScale: &ds, dShift: &dsh, rows: rows, channels: c)
            return out + probs + dq + dk + dv + y + dx + ds + dsh
        } }
        #expect(bitwiseEqual(results), "\(precision)")
    }

    @Test func groupNormAndConvBias() {
        let (b, sp, c, g) = (2, 1_500, 32, 8)
        let x = randomFloats(b * sp * c, seed: 31, low: -2, high: 2), w = randomFloats(c, seed: 32), bias = randomFloats(c, seed: 33)
        let dy = randomFloats(b * sp * c, seed: 34)
        let geo = ConvGeometry(batch: 2, height: 40, width: 30, inChannels: 8, outChannels: 16, kernelHeight: 1, kernelWidth: 1)
        let cx = randomFloats(geo.inputCount, seed: 35), cw = randomFloats(geo.weightCount, seed: 36)
        let cdy = randomFloats(geo.outputCount, seed: 37)
        let results = atThreadCounts { () -> [Float] in
            var y = [Float](repeating: 0, count: b * sp * c), dx = y
            var mean = [Double](repeating: 0, count: b * g), rstd = mean
            var dw = [Float](repeating: 0, count: c), db = dw
            groupNormForward(x: x, weight: w, bias: bias, y: &y, mean: &mean, rstd: &rstd, batch: b, spatial: sp, channels: c,
                             groups: g, eps: 1e-5)
            groupNormBackward(x: x, weight: w, dy: dy, mean: mean, rstd: rstd, dx: &dx, dWeight: &dw, dBias: &db, batch: b,
                              spatial: sp, channels: c, groups: g)
            var cdb = [Float](repeating: 0, count: geo.outChannels)
            conv2dBackward(x: cx, weight: cw, dy: cdy, dx: nil, dWeight: nil, dBias: &cdb, geometry: geo, workspace: nil,
                           workspaceCount: 0)
            return y + dx + dw + db + mean.map(Float.init) + rstd.map(Float.init) + cdb
        }
        #expect(bitwiseEqual(results))
    }

    @Test func resizeAndBF16Conversion() {
        var results: [[Float]] = []
        for (c, b, ih, iw, oh, ow) in [(1, 3, 33, 47, 130, 190), (24, 2, 20, 30, 64, 96), (24, 2, 64, 96, 20, 30)] {
            let x = randomFloats(b * ih * iw * c, seed: 38), dy = randomFloats(b * oh * ow * c, seed: 39)
            results = atThreadCounts { () -> [Float] in
                var y = [Float](repeating: 0, count: dy.count), dx = [Float](repeating: 0, count: x.count)
                resizeBilinearForward(x: x, y: &y, batch: b, inHeight: ih, inWidth: iw, channels: c, outHeight: oh, outWidth: ow)
                resizeBilinearBackward(dy: dy, dx: &dx, batch: b, inHeight: ih, inWidth: iw, channels: c, outHeight: oh,
                                       outWidth: ow)
                return y + dx
            }
            #expect(bitwiseEqual(results), "C \(c) \(ih)×\(iw) → \(oh)×\(ow)")
        }
        let v = randomFloats(200_003, seed: 40, low: -1e3, high: 1e3)
        let converted = atThreadCounts { () -> [Float] in
            var a = [UInt16](repeating: 0, count: v.count), b = [UInt16](repeating: 0, count: 1_000 * 150)
            convertToBF16(v, &a, count: v.count)
            convertToBF16(rows: 1_000, cols: 150, v, ld: 199, &b)
            return (a + b).map { float(bfloat16: $0) }
        }
        #expect(bitwiseEqual(converted) && converted[0][5] == float(bfloat16: bfloat16(v[5])))
    }
}
