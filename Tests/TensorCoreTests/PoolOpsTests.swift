// Tests of the max-pool and adaptive-average-pool ops: hand-checked values and gradient checks.
// Reference semantics: torch.nn.functional.max_pool2d and F.adaptive_avg_pool2d (NHWC here).
import Testing
import TensorCore
import _TestSupport

@Suite struct PoolOpsTests {
    @Test func maxPoolHandChecked() {
        // 4×4 image 0…15, kernel 3, stride 2, padding 1: windows end at (1,1), (1,3), (3,1), (3,3).
        let x = Tensor((0..<16).map { Float($0) }, shape: [1, 4, 4, 1], requiresGrad: true)
        let y = withGrad { Tensor.maxPool2d(x) }
        #expect(y.shape == [1, 2, 2, 1])
        #expect(y.values == [5, 7, 13, 15])
        y.sum().backward()
        var expected = [Float](repeating: 0, count: 16)
        for i in [5, 7, 13, 15] { expected[i] = 1 }
        #expect(x.grad?.values == expected)
    }

    @Test func maxPoolTiesGoToTheFirstMaximum() {
        // All equal: each window's gradient goes to its first valid tap; two channels stay separate.
        let x = Tensor.full([1, 3, 3, 2], 1, requiresGrad: true)
        let y = withGrad { Tensor.maxPool2d(x, kernel: 2, stride: 1, padding: 0) }
        #expect(y.values == [Float](repeating: 1, count: 8))
        y.backward(seed: Tensor((1...8).map { Float($0) }, shape: [1, 2, 2, 2]))
        // Window (oy, ox) starts at pixel (oy, ox): pixel 0 ← 1,2; pixel 1 ← 3,4; pixel 3 ← 5,6; pixel 4 ← 7,8.
        #expect(x.grad?.values == [1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func maxPoolGradientCheck() {
        // Distinct values 0.07 apart (a shuffled ramp) so a 1e-3 step never changes an argmax.
        var rng = RNG(seed: 5)
        let perm = rng.permutation(2 * 5 * 6 * 3)
        let x = Tensor(perm.map { Float($0) * 0.07 - 6 }, shape: [2, 5, 6, 3], requiresGrad: true)
        for (k, s, p) in [(3, 2, 1), (2, 2, 0), (3, 1, 1)] {
            let rep = gradCheck([x]) { Tensor.maxPool2d($0[0], kernel: k, stride: s, padding: p) }
            #expect(rep.passed, "k\(k) s\(s) p\(p): \(rep)")
        }
    }

    @Test func adaptiveAvgPoolHandChecked() {
        // Width 5 → 3: columns {0,1}, {1,2,3}, {3,4}.
        let x = Tensor([0, 1, 2, 3, 4], shape: [1, 1, 5, 1], requiresGrad: true)
        let y = withGrad { Tensor.adaptiveAvgPool(x, height: 1, width: 3) }
        #expect(y.values == [0.5, 2, 3.5])
        y.sum().backward()
        // Column 1 and 3 are in two windows: 1/2 + 1/3.
        let g = x.grad!.values
        let expected: [Float] = [0.5, 0.5 + 1.0 / 3, 1.0 / 3, 1.0 / 3 + 0.5, 0.5]
        #expect(allClose(g, expected, rtol: 1e-6, atol: 1e-7).passed, "\(g)")
        // 4×4 → 2×2 on two channels: block means, e.g. channel 0 of the first block is
        // mean(0, 2, 8, 10) = 5 (value = 2·(4·iy + ix) + c).
        let x2 = Tensor((0..<32).map { Float($0) }, shape: [1, 4, 4, 2])
        let y2 = Tensor.adaptiveAvgPool(x2, height: 2, width: 2)
        #expect(y2.values == [5, 6, 9, 10, 21, 22, 25, 26])
    }

    @Test func adaptiveAvgPoolGradientCheck() {
        for (ho, wo) in [(3, 2), (2, 2), (7, 4), (1, 1)] {
            let x = testTensor([2, 5, 4, 2], seed: 7)
            let rep = gradCheck([x]) { Tensor.adaptiveAvgPool($0[0], height: ho, width: wo) }
            #expect(rep.passed, "\(ho)×\(wo): \(rep)")
        }
    }
}
