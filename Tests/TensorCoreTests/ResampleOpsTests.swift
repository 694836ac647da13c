// Tests of the bilinear resize and point-sampling ops: hand-checked values and gradient checks.
// Reference semantics: F.interpolate(mode="bilinear", align_corners=False), detectron2 point_sample.
import Testing
import TensorCore
import _TestSupport

@Suite struct ResampleOpsTests {
    @Test func bilinearUpsampleHandChecked() {
        // 2×2 → 4×4: per axis src = 0 (clamped), 0.25, 0.75, 1.25 → weights on [a, b]:
        // a, 0.75a + 0.25b, 0.25a + 0.75b, b (the last edge-clamped).
        let x = Tensor([1, 2, 3, 4], shape: [1, 2, 2, 1])
        let y = Tensor.resizeBilinear(x, height: 4, width: 4)
        #expect(y.shape == [1, 4, 4, 1])
        #expect(y.values == [1, 1.25, 1.75, 2,
                             1.5, 1.75, 2.25, 2.5,
                             2.5, 2.75, 3.25, 3.5,
                             3, 3.25, 3.75, 4])
    }

    @Test func bilinearDownsampleHandChecked() {
        // 4 → 2: src = 0.5 and 2.5, i.e. means of neighbouring pairs (no antialias); two channels.
        let x = Tensor((0..<8).map { Float($0) }, shape: [1, 1, 4, 2])
        let y = Tensor.resizeBilinear(x, height: 1, width: 2)
        #expect(y.values == [1, 2, 5, 6])
        // Identity size is exact.
        let z = testTensor([1, 3, 5, 2], seed: 1, requiresGrad: false)
        #expect(Tensor.resizeBilinear(z, height: 3, width: 5).values == z.values)
    }

    @Test func resizeGradientCheck() {
        for (h, w, ho, wo, c) in [(3, 3, 5, 4, 2), (6, 5, 3, 2, 1), (2, 2, 4, 4, 1), (4, 3, 4, 7, 2)] {
            let x = testTensor([2, h, w, c], seed: 2)
            let rep = gradCheck([x]) { Tensor.resizeBilinear($0[0], height: ho, width: wo) }
            #expect(rep.passed, "\(h)×\(w) → \(ho)×\(wo), C \(c): \(rep)")
        }
    }

    @Test func gridSampleHandChecked() {
        // Map H = 2, W = 3 with values 1…6, one channel.
        let x = Tensor([1, 2, 3, 4, 5, 6], shape: [1, 2, 3, 1])
        // Centre of pixel (row 1, col 1): p = ((1 + 0.5)/3, (1 + 0.5)/2) → exactly that pixel.
        // p = (0, 0.25): u = −0.5, v = 0 → half of pixel (0, 0), the other half reads the zero padding.
        // p = (0, 0): u = v = −0.5 → a quarter of pixel (0, 0). p = (1.5, 0.5): entirely outside → 0.
        let pts = Tensor([0.5, 0.75, 0, 0.25, 0, 0, 1.5, 0.5], shape: [1, 4, 2])
        let y = Tensor.gridSample(x, points: pts)
        #expect(y.shape == [1, 4, 1])
        #expect(y.values == [5, 0.5, 0.25, 0])
        // Midway between the centres of (0, 1) and (0, 2) on two channels.
        let x2 = Tensor([1, 10, 2, 20, 3, 30, 4, 40], shape: [1, 2, 2, 2])
        let y2 = Tensor.gridSample(x2, points: Tensor([0.5, 0.25], shape: [1, 1, 2]))
        #expect(y2.values == [1.5, 15])
    }

    @Test func gridSampleGradientCheck() {
        for c in [1, 3] {
            let x = testTensor([2, 3, 4, c], seed: 3)
            // Points inside and partly outside the map (fixed, no gradient).
            let pts = testTensor([2, 6, 2], seed: 4, low: -0.2, high: 1.2, requiresGrad: false)
            let rep = gradCheck([x]) { Tensor.gridSample($0[0], points: pts) }
            #expect(rep.passed, "C \(c): \(rep)")
        }
    }

    @Test func gridSamplePointsGetNoGradient() {
        let x = testTensor([1, 3, 3, 1], seed: 5)
        let pts = testTensor([1, 4, 2], seed: 6, low: 0, high: 1)
        let y = withGrad { Tensor.gridSample(x, points: pts) }
        y.sum().backward()
        #expect(x.grad != nil)
        #expect(pts.grad == nil)
    }
}
