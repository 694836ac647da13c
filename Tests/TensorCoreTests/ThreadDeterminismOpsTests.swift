// The parallel tensor ops (elementwise maps and their backward, broadcasting, permutes, axis sums) give bitwise the
// same results at 1, 2 and 8 threads.
// Reference semantics: none (a property of MaskPilot's parallel layer).
import Kernels
import TensorCore
import Testing
import _TestSupport

@Suite struct ThreadDeterminismOpsTests {
    @Test func elementwiseBroadcastPermuteAndSums() {
        var rng = RNG(seed: 31)
        let a = Tensor.uniform([3, 70, 500], low: -3, high: 3, rng: &rng, requiresGrad: true)
        let row = Tensor.uniform([1, 70, 1], low: 0.5, high: 2, rng: &rng, requiresGrad: true)
        let results = atThreadCounts { () -> [Float] in
            a.grad = nil; row.grad = nil
            let y = withGrad {
                let z = (a * row + a.sigmoid() - a.softplus() / row).relu().square() + a.abs().sqrt().exp().log()
                return z.clamped(min: -1, max: 5).permuted([2, 0, 1]) * 0.5 + 1
            }
            y.backward(seed: Tensor.ones(y.shape))
            let sums = withNoGrad { y.sum(axis: 0).values + y.sum(axis: 2).values + y.sum(axis: 1).values }
            let top = withNoGrad { y.reshaped([y.count / 300, 300]).topk(37) }
            return y.values + sums + a.grad!.values + row.grad!.values + top.values.values + top.indices.map(Float.init)
        }
        #expect(bitwiseEqual(results))
    }
}
