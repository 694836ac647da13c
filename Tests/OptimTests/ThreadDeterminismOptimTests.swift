// Clipping (the chunked gradient norm) and AdamW give bitwise the same parameters at 1, 2 and 8 threads.
// Reference semantics: none (a property of MaskPilot's parallel layer).
import Optim
import TensorCore
import Testing
import _TestSupport

@Suite struct ThreadDeterminismOptimTests {
    @Test func clipAndAdamW() {
        let n = 300_001
        var rng = RNG(seed: 41)
        let p0 = Tensor.uniform([n], low: -1, high: 1, rng: &rng).values
        let g0 = Tensor.uniform([n], low: -1e-2, high: 1e-2, rng: &rng).values
        let results = atThreadCounts { () -> [Float] in
            let flat = FlatParameters([("w", Tensor(p0, shape: [n], requiresGrad: true))])
            let opt = AdamW(flat, weightDecay: 0.05)
            var norms: [Float] = []
            for step in 0..<3 {
                flat.grads.buffer.baseAddress!.update(from: g0.map { $0 * Float(step + 1) }, count: n)
                norms.append(Float(clipGradNorm(flat.grads, maxNorm: 0.5)))
                opt.step(lr: 1e-3)
            }
            return norms + Array(flat.values.buffer)
        }
        #expect(bitwiseEqual(results))
    }
}
