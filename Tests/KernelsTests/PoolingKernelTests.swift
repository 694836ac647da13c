// Tests of the max-pool and adaptive-average-pool kernels against their naive reference twins.
// Reference semantics: torch.nn.functional.max_pool2d and F.adaptive_avg_pool2d on NHWC data.
import Kernels
import Testing
import _TestSupport

@Suite struct PoolingKernelTests {
    /// (B, H, W, C, kernel, stride, padding); C ≥ 8 takes the SIMD path (11 = one block + a tail).
    static let maxCases: [(Int, Int, Int, Int, Int, Int, Int)] = [
        (2, 7, 6, 3, 3, 2, 1), (1, 8, 8, 2, 3, 2, 1), (1, 5, 7, 1, 2, 2, 0), (2, 4, 5, 4, 3, 1, 1),
        (1, 9, 9, 2, 5, 3, 2), (1, 1, 1, 3, 1, 1, 0), (1, 7, 7, 11, 3, 2, 1), (2, 6, 5, 16, 3, 2, 1),
    ]

    @Test(arguments: 0..<maxCases.count)
    func maxPoolMatchesReference(_ index: Int) {
        let c = Self.maxCases[index]
        let g = PoolGeometry(batch: c.0, height: c.1, width: c.2, channels: c.3, kernel: c.4, stride: c.5, padding: c.6)
        var x = randomFloats(g.inputCount, seed: 10)
        // Some ties: the first maximum in window order must win in both.
        for i in stride(from: 0, to: x.count, by: 5) { x[i] = 0.5 }
        var y = [Float](repeating: .nan, count: g.outputCount), ry = y
        var am = [Int32](repeating: -7, count: g.outputCount), ram = am
        maxPool2dForward(x: x, y: &y, argmax: &am, geometry: g)
        maxPool2dForwardReference(x: x, y: &ry, argmax: &ram, geometry: g)
        #expect(y == ry, "\(g)")
        #expect(am == ram, "\(g)")
        var y2 = [Float](repeating: .nan, count: g.outputCount)
        maxPool2dForward(x: x, y: &y2, argmax: nil, geometry: g)
        #expect(y2 == ry, "\(g) without argmax")
        let dy = randomFloats(g.outputCount, seed: 11)
        var dx = [Float](repeating: .nan, count: g.inputCount), rdx = dx
        maxPool2dBackward(dy: dy, argmax: am, dx: &dx, geometry: g)
        maxPool2dBackwardReference(x: x, dy: dy, dx: &rdx, geometry: g)
        let rep = allClose(dx, rdx)
        #expect(rep.passed, "\(g): \(rep)")
    }

    @Test func maxPoolPropagatesNaN() {
        let g = PoolGeometry(batch: 1, height: 2, width: 2, channels: 1, kernel: 2, stride: 2, padding: 0)
        var y: [Float] = [0]
        var am: [Int32] = [0]
        maxPool2dForward(x: [1, .nan, 3, 2], y: &y, argmax: &am, geometry: g)
        #expect(y[0].isNaN && am[0] == 1)
        // The SIMD path (8 channels): a NaN in channel 3 at tap 2, a second NaN later is not taken.
        let g8 = PoolGeometry(batch: 1, height: 2, width: 2, channels: 8, kernel: 2, stride: 2, padding: 0)
        var x8 = randomFloats(32, seed: 14)
        x8[2 * 8 + 3] = .nan; x8[3 * 8 + 3] = .nan
        var y8 = [Float](repeating: 0, count: 8), am8 = [Int32](repeating: 0, count: 8)
        var ry8 = y8, ram8 = am8
        maxPool2dForward(x: x8, y: &y8, argmax: &am8, geometry: g8)
        maxPool2dForwardReference(x: x8, y: &ry8, argmax: &ram8, geometry: g8)
        #expect(y8[3].isNaN && am8[3] == 2 && am8 == ram8)
    }

    /// (B, Hin, Win, C, Hout, Wout): divisible, non-divisible, upsampling, global, C = 1.
    static let avgCases: [(Int, Int, Int, Int, Int, Int)] = [
        (2, 8, 8, 3, 4, 4), (1, 7, 5, 2, 3, 2), (1, 3, 4, 1, 7, 9), (2, 6, 5, 2, 1, 1), (1, 5, 5, 1, 5, 5),
    ]

    @Test(arguments: 0..<avgCases.count)
    func adaptiveAvgPoolMatchesReference(_ index: Int) {
        let (b, h, w, c, ho, wo) = Self.avgCases[index]
        let x = randomFloats(b * h * w * c, seed: 12)
        var y = [Float](repeating: .nan, count: b * ho * wo * c), ry = y
        adaptiveAvgPool2dForward(x: x, y: &y, batch: b, inHeight: h, inWidth: w, channels: c, outHeight: ho, outWidth: wo)
        adaptiveAvgPool2dForwardReference(x: x, y: &ry, batch: b, inHeight: h, inWidth: w, channels: c,
                                          outHeight: ho, outWidth: wo)
        let rep = allClose(y, ry)
        #expect(rep.passed, "forward \(Self.avgCases[index]): \(rep)")
        let dy = randomFloats(y.count, seed: 13)
        var dx = [Float](repeating: .nan, count: x.count), rdx = dx
        adaptiveAvgPool2dBackward(dy: dy, dx: &dx, batch: b, inHeight: h, inWidth: w, channels: c, outHeight: ho, outWidth: wo)
        adaptiveAvgPool2dBackwardReference(dy: dy, dx: &rdx, batch: b, inHeight: h, inWidth: w, channels: c,
                                           outHeight: ho, outWidth: wo)
        let rep2 = allClose(dx, rdx)
        #expect(rep2.passed, "backward \(Self.avgCases[index]): \(rep2)")
    }

    @Test func adaptiveRanges() {
        // 5 → 3: rows {0,1}, {1,2,3}, {3,4} (PyTorch's floor/ceil windows).
        #expect(adaptivePoolRange(0, inSize: 5, outSize: 3) == (0, 2))
        #expect(adaptivePoolRange(1, inSize: 5, outSize: 3) == (1, 4))
        #expect(adaptivePoolRange(2, inSize: 5, outSize: 3) == (3, 5))
        #expect(adaptivePoolRange(1, inSize: 3, outSize: 6) == (0, 1))
    }
}
