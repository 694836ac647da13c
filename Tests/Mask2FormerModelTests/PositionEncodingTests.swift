// Tests of the sine positional encoding against its closed form (docs/model.md#position-encoding).
// Reference: Mask2Former PositionEmbeddingSine(num_pos_feats, normalize=True, scale=2π, temperature=10000).
import Foundation
import Mask2FormerModel
import Testing
import TensorCore

@Suite struct PositionEncodingTests {
    @Test func matchesClosedForm() {
        let h = 3, w = 5, f = 8
        let pe = sinePositionEncoding(height: h, width: w, numPosFeats: f)
        #expect(pe.shape == [h * w, 2 * f])
        var worst = 0.0
        for i in 0..<h {
            for j in 0..<w {
                for k in 0..<(2 * f) {
                    let isY = k < f, kk = k % f
                    let a = Double(isY ? i + 1 : j + 1) / (Double(isY ? h : w) + 1e-6) * 2 * Double.pi
                    let v = a / Foundation.pow(10000, Double(2 * (kk / 2)) / Double(f))
                    let expect = kk % 2 == 0 ? Foundation.sin(v) : Foundation.cos(v)
                    worst = max(worst, abs(Double(pe[i * w + j, k]) - expect))
                }
            }
        }
        #expect(worst < 2e-6, "max abs error \(worst)")
        // The last row/column is at 2π: sin ≈ 0, cos ≈ 1 in the first channel pair.
        #expect(abs(pe[h * w - 1, 0]) < 1e-5 && abs(pe[h * w - 1, 1] - 1) < 1e-5)
    }
}
