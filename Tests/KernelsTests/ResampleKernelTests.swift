// Tests of the bilinear-resize and point-sampling kernels against their naive Double twins.
// Reference semantics: F.interpolate(mode="bilinear", align_corners=False) and F.grid_sample(zeros padding).
import Kernels
import Testing
import _TestSupport

@Suite struct ResampleKernelTests {
    /// (B, Hin, Win, C, Hout, Wout): up, down, identity, mixed, C = 1, non-integer factors; C < 8 takes
    /// the separable row-buffer path, C ≥ 8 the direct one.
    static let resizeCases: [(Int, Int, Int, Int, Int, Int)] = [
        (1, 2, 2, 1, 4, 4), (2, 5, 7, 3, 3, 4), (1, 3, 3, 2, 8, 5), (1, 4, 6, 1, 4, 6), (2, 16, 12, 2, 4, 3),
        (1, 1, 1, 2, 3, 3), (1, 7, 3, 1, 2, 9), (1, 5, 6, 9, 7, 4), (2, 6, 4, 16, 3, 8),
    ]

    @Test(arguments: 0..<resizeCases.count)
    func resizeMatchesReference(_ index: Int) {
        let (b, h, w, c, ho, wo) = Self.resizeCases[index]
        let x = randomFloats(b * h * w * c, seed: 50)
        var y = [Float](repeating: .nan, count: b * ho * wo * c), ry = y
        resizeBilinearForward(x: x, y: &y, batch: b, inHeight: h, inWidth: w, channels: c, outHeight: ho, outWidth: wo)
        resizeBilinearForwardReference(x: x, y: &ry, batch: b, inHeight: h, inWidth: w, channels: c, outHeight: ho, outWidth: wo)
        let rep = allClose(y, ry)
        #expect(rep.passed, "forward \(Self.resizeCases[index]): \(rep)")
        let dy = randomFloats(y.count, seed: 51)
        var dx = [Float](repeating: .nan, count: x.count), rdx = dx
        resizeBilinearBackward(dy: dy, dx: &dx, batch: b, inHeight: h, inWidth: w, channels: c, outHeight: ho, outWidth: wo)
        resizeBilinearBackwardReference(dy: dy, dx: &rdx, batch: b, inHeight: h, inWidth: w, channels: c,
                                        outHeight: ho, outWidth: wo)
        let rep2 = allClose(dx, rdx)
        #expect(rep2.passed, "backward \(Self.resizeCases[index]): \(rep2)")
    }

    @Test func resizeTaps() {
        // 2 → 4: src = −0.25 (clamped to 0), 0.25, 0.75, 1.25 (upper tap edge-clamped).
        let t0 = bilinearSourceTaps(0, inSize: 2, outSize: 4), t3 = bilinearSourceTaps(3, inSize: 2, outSize: 4)
        #expect(t0.i0 == 0 && t0.i1 == 1 && t0.l1 == 0)
        #expect(t3.i0 == 1 && t3.i1 == 1 && t3.l1 == 0.25)
        // 4 → 2: src = 0.5 and 2.5.
        let d1 = bilinearSourceTaps(1, inSize: 4, outSize: 2)
        #expect(d1.i0 == 2 && d1.i1 == 3 && d1.l1 == 0.5)
    }

    /// (N, H, W, C, P).
    static let sampleCases: [(Int, Int, Int, Int, Int)] = [(2, 5, 7, 3, 40), (1, 4, 4, 1, 60), (3, 1, 6, 2, 20), (1, 9, 3, 1, 30)]

    @Test(arguments: 0..<sampleCases.count)
    func gridSampleMatchesReference(_ index: Int) {
        let (n, h, w, c, p) = Self.sampleCases[index]
        let x = randomFloats(n * h * w * c, seed: 60)
        // Points inside and up to 0.3 outside the unit square, plus exact corners and centres.
        var pts = randomFloats(n * p * 2, seed: 61, low: -0.3, high: 1.3)
        pts[0] = 0; pts[1] = 0; pts[2] = 1; pts[3] = 1; pts[4] = 0.5 / Float(w); pts[5] = 0.5 / Float(h)
        var y = [Float](repeating: .nan, count: n * p * c), ry = y
        gridSampleForward(x: x, points: pts, y: &y, batch: n, height: h, width: w, channels: c, pointCount: p)
        gridSampleForwardReference(x: x, points: pts, y: &ry, batch: n, height: h, width: w, channels: c, pointCount: p)
        let rep = allClose(y, ry)
        #expect(rep.passed, "forward \(Self.sampleCases[index]): \(rep)")
        let dy = randomFloats(y.count, seed: 62)
        var dx = [Float](repeating: .nan, count: x.count), rdx = dx
        gridSampleBackward(dy: dy, points: pts, dx: &dx, batch: n, height: h, width: w, channels: c, pointCount: p)
        gridSampleBackwardReference(dy: dy, points: pts, dx: &rdx, batch: n, height: h, width: w, channels: c, pointCount: p)
        let rep2 = allClose(dx, rdx)
        #expect(rep2.passed, "backward \(Self.sampleCases[index]): \(rep2)")
    }

    @Test func gridSampleAtEveryPixelCentreReadsThePixel() {
        // Interior centres take the fast path, the last row and column the border path.
        // Powers of two keep the centres (i + 0.5)/size exact in Float.
        let (h, w, c) = (4, 8, 2)
        let x = randomFloats(h * w * c, seed: 63)
        var pts: [Float] = []
        for iy in 0..<h { for ix in 0..<w { pts += [(Float(ix) + 0.5) / Float(w), (Float(iy) + 0.5) / Float(h)] } }
        var y = [Float](repeating: .nan, count: h * w * c)
        gridSampleForward(x: x, points: pts, y: &y, batch: 1, height: h, width: w, channels: c, pointCount: h * w)
        #expect(y == x)
        var y1 = [Float](repeating: .nan, count: h * w)
        let x1 = randomFloats(h * w, seed: 64)
        gridSampleForward(x: x1, points: pts, y: &y1, batch: 1, height: h, width: w, channels: 1, pointCount: h * w)
        #expect(y1 == x1)
    }

    @Test func gridSampleNonFiniteAndFarPointsReadZero() {
        let x: [Float] = [1, 2, 3, 4]
        var y = [Float](repeating: .nan, count: 4)
        gridSampleForward(x: x, points: [.nan, 0.5, 0.5, .infinity, 5, 0.5, -1e30, 0.5], y: &y,
                          batch: 1, height: 2, width: 2, channels: 1, pointCount: 4)
        #expect(y == [0, 0, 0, 0])
    }
}
