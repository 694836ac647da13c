// Tests of the multi-scale deformable attention kernels (and grid sampling's points gradient) against their naive Double twins.
// Reference semantics: ms_deform_attn_core_pytorch, i.e. F.grid_sample(bilinear, zeros, align_corners=False) per level.
import Kernels
import Testing
import _TestSupport

@Suite struct MSDeformAttnKernelTests {
    /// (B, Tq, heads, d, P, level shapes): a 1×1 level, non-square and single-row/column levels,
    /// d below 8 (scalar tail only), a multiple of 8 (SIMD only) and in between (both), L and P > 1.
    static let cases: [(Int, Int, Int, Int, Int, [(height: Int, width: Int)])] = [
        (1, 3, 1, 1, 1, [(1, 1)]),
        (2, 5, 2, 3, 2, [(3, 5), (1, 1)]),
        (2, 4, 2, 8, 3, [(4, 4), (2, 3), (5, 1)]),
        (1, 6, 3, 11, 4, [(6, 2), (1, 7), (3, 3)]),
        (2, 3, 4, 32, 4, [(2, 2), (4, 4), (8, 8)]),
    ]

    /// Locations uniform in `[−0.3, 1.3]²` (about a third of the taps fall outside their map), plus, on
    /// power-of-two levels, some exact pixel centres (integer pixel coordinates, where the location
    /// derivative takes the floor-based side), exact corners and a far point.
    static func locations(_ s: MSDeformAttnShape, seed: UInt64) -> [Float] {
        var loc = randomFloats(2 * s.sampleCount, seed: seed, low: -0.3, high: 1.3)
        let lp = s.levels * s.points
        for k in 0..<s.sampleCount {
            let l = (k % lp) / s.points
            let h = s.levelHeights[l], w = s.levelWidths[l]
            switch k % 11 {
            case 3 where h & (h - 1) == 0 && w & (w - 1) == 0:
                loc[2 * k] = (Float(k % w) + 0.5) / Float(w); loc[2 * k + 1] = (Float(k % h) + 0.5) / Float(h)
            case 5: loc[2 * k] = 0; loc[2 * k + 1] = 1
            case 7: loc[2 * k] = 1; loc[2 * k + 1] = 0
            case 9: loc[2 * k] = 40; loc[2 * k + 1] = -3
            default: break
            }
        }
        return loc
    }

    @Test(arguments: 0..<cases.count)
    func matchesReference(_ index: Int) {
        let (b, tq, heads, d, np, levels) = Self.cases[index]
        let s = MSDeformAttnShape(batch: b, queries: tq, heads: heads, headDim: d, points: np, levelShapes: levels)
        let value = randomFloats(s.valueCount, seed: 70 + UInt64(index))
        let loc = Self.locations(s, seed: 80 + UInt64(index))
        let wts = randomFloats(s.sampleCount, seed: 90 + UInt64(index), low: 0, high: 1)
        var out = [Float](repeating: .nan, count: s.outputCount)
        msDeformAttnForward(value: value, locations: loc, weights: wts, out: &out, shape: s)
        let ref = msDeformAttnForwardReference(value: value, locations: loc, weights: wts, shape: s)
        let rep = allClose(out, ref)
        #expect(rep.passed, "forward case \(index): \(rep)")

        let dOut = randomFloats(s.outputCount, seed: 100 + UInt64(index))
        var dv = [Float](repeating: .nan, count: s.valueCount)
        var dl = [Float](repeating: .nan, count: 2 * s.sampleCount), dw = [Float](repeating: .nan, count: s.sampleCount)
        msDeformAttnBackward(value: value, locations: loc, weights: wts, dOut: dOut, dValue: &dv, dLocations: &dl,
                             dWeights: &dw, shape: s)
        let r = msDeformAttnBackwardReference(value: value, locations: loc, weights: wts, dOut: dOut, shape: s)
        let repV = allClose(dv, r.dValue), repW = allClose(dw, r.dWeights), repL = allClose(dl, r.dLocations)
        #expect(repV.passed, "dValue case \(index): \(repV)")
        #expect(repW.passed, "dWeights case \(index): \(repW)")
        #expect(repL.passed, "dLocations case \(index): \(repL)")

        // Each gradient alone equals the same gradient computed together with the others.
        var dv1 = [Float](repeating: .nan, count: s.valueCount)
        msDeformAttnBackward(value: value, locations: loc, weights: wts, dOut: dOut, dValue: &dv1, dLocations: nil,
                             dWeights: nil, shape: s)
        var dl1 = [Float](repeating: .nan, count: 2 * s.sampleCount)
        msDeformAttnBackward(value: value, locations: loc, weights: wts, dOut: dOut, dValue: nil, dLocations: &dl1,
                             dWeights: nil, shape: s)
        #expect(dv1 == dv && dl1 == dl)
    }

    @Test func pixelCentresReadThePixelAndFarPointsReadZero() {
        // One level 4×8, two heads of d = 9 (SIMD + tail); every query samples one pixel centre per
        // head with weight 1 and one far / non-finite point with weight 5.
        let (h, w, heads, d) = (4, 8, 2, 9)
        let s = MSDeformAttnShape(batch: 1, queries: h * w, heads: heads, headDim: d, points: 2, levelShapes: [(h, w)])
        let value = randomFloats(s.valueCount, seed: 111)
        var loc: [Float] = [], wts: [Float] = []
        let far: [(Float, Float)] = [(.nan, 0.5), (0.5, .infinity), (-1e30, 0.5), (2, 2)]
        for q in 0..<(h * w) {
            for head in 0..<heads {
                // Head 1 reads the pixel mirrored in x.
                let x = head == 0 ? q % w : w - 1 - q % w, y = q / w
                loc += [(Float(x) + 0.5) / Float(w), (Float(y) + 0.5) / Float(h)]
                let f = far[(q + head) % far.count]
                loc += [f.0, f.1]
                wts += [1, 5]
            }
        }
        var out = [Float](repeating: .nan, count: s.outputCount)
        msDeformAttnForward(value: value, locations: loc, weights: wts, out: &out, shape: s)
        var expected: [Float] = []
        for q in 0..<(h * w) {
            let y: Int = q / w, x: Int = q % w
            let t0: Int = y * w + x, t1: Int = y * w + (w - 1 - x)
            let s0: Int = t0 * heads * d, s1: Int = (t1 * heads + 1) * d
            expected += value[s0..<(s0 + d)]
            expected += value[s1..<(s1 + d)]
        }
        #expect(out == expected)
    }

    /// (N, H, W, C, P) for the points gradient of grid sampling.
    static let sampleCases: [(Int, Int, Int, Int, Int)] = [(2, 5, 7, 3, 40), (1, 4, 4, 1, 60), (3, 1, 6, 2, 20), (1, 1, 1, 4, 10)]

    @Test(arguments: 0..<sampleCases.count)
    func gridSamplePointsGradientMatchesReference(_ index: Int) {
        let (n, h, w, c, p) = Self.sampleCases[index]
        let x = randomFloats(n * h * w * c, seed: 120)
        var pts = randomFloats(n * p * 2, seed: 121, low: -0.3, high: 1.3)
        // Exact corners, and the centre of pixel (0, 0) along each axis whose size is a power of two:
        // there (2p − 1 + 1)·(size/2) − 0.5 is exactly 0 in Float as in Double, so both take the
        // floor-based side of the jump. (For other sizes the Float coordinate lands within an ulp of
        // 0 on either side and the one-sided derivatives legitimately differ.)
        pts[0] = 0; pts[1] = 0; pts[2] = 1; pts[3] = 1
        if w & (w - 1) == 0 { pts[4] = 0.5 / Float(w) }
        if h & (h - 1) == 0 { pts[5] = 0.5 / Float(h) }
        let dy = randomFloats(n * p * c, seed: 122)
        var dp = [Float](repeating: .nan, count: n * p * 2), rdp = dp
        gridSampleBackward(dy: dy, points: pts, dx: nil, batch: n, height: h, width: w, channels: c, pointCount: p,
                           x: x, dPoints: &dp)
        gridSamplePointsBackwardReference(x: x, dy: dy, points: pts, dPoints: &rdp, batch: n, height: h, width: w,
                                          channels: c, pointCount: p)
        let rep = allClose(dp, rdp)
        #expect(rep.passed, "points gradient \(Self.sampleCases[index]): \(rep)")
        // Asking for both gradients gives the same map gradient as before.
        var dx = [Float](repeating: .nan, count: x.count), dx0 = dx
        gridSampleBackward(dy: dy, points: pts, dx: &dx, batch: n, height: h, width: w, channels: c, pointCount: p,
                           x: x, dPoints: &dp)
        gridSampleBackward(dy: dy, points: pts, dx: &dx0, batch: n, height: h, width: w, channels: c, pointCount: p)
        #expect(dx == dx0)
    }

    @Test func gridSamplePointsGradientIsOneSidedAtIntegerCoordinates() {
        // Map 1×4 row [0, 1, 4, 9]; a point at the centre of pixel 1 (u = 1 exactly) takes the slope
        // towards pixel 2 (floor-based formula): W·(4 − 1) = 12. At pixel 3's centre the right tap is
        // outside (reads 0): 4·(0 − 9) = −36.
        let x: [Float] = [0, 1, 4, 9]
        let pts: [Float] = [1.5 / 4, 0.5, 3.5 / 4, 0.5]
        var dp = [Float](repeating: .nan, count: 4)
        gridSampleBackward(dy: [1, 1], points: pts, dx: nil, batch: 1, height: 1, width: 4, channels: 1, pointCount: 2,
                           x: x, dPoints: &dp)
        // y: v = 0 on a one-row map, so the lower taps are outside: ∂/∂y = H·(0 − value).
        #expect(dp == [12, -1, -36, -9])
    }
}
