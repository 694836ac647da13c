// Tests of the fused multi-head attention: against its naive twin, its composed version, and finite differences.
// Reference semantics: nn.MultiheadAttention core with a boolean attn_mask (True = blocked) and M2F's full-row rule.
import Kernels
import Testing
import TensorCore
import _TestSupport

@Suite struct AttentionTests {
    /// A mask with a random pattern and one fully blocked row per batch item.
    func makeMask(_ count: Int, rows: Int, keys: Int) -> [Bool] {
        var rng = RNG(seed: 3)
        var m = (0..<count).map { _ in rng.nextFloat() < 0.4 }
        for r in stride(from: 0, to: count / keys, by: rows) { for j in 0..<keys { m[r * keys + j] = true } }
        return m
    }

    @Test func fusedMatchesNaiveTwin() {
        let b = 2, h = 3, tq = 4, tk = 6, d = 5
        let q = testTensor([b, tq, h * d], seed: 1, requiresGrad: false)
        let k = testTensor([b, tk, h * d], seed: 2, requiresGrad: false)
        let v = testTensor([b, tk, h * d], seed: 3, requiresGrad: false)
        for perHead in [false, true] {
            let mask = makeMask((perHead ? b * h : b) * tq * tk, rows: tq, keys: tk)
            let ours = Tensor.attention(q: q, k: k, v: v, heads: h, mask: mask)
            let ref = attentionReference(q: q.values, k: k.values, v: v.values,
                                         shape: AttentionShape(batch: b, heads: h, queries: tq, keys: tk, headDim: d),
                                         scale: 1 / Float(d).squareRoot(), mask: mask, maskPerHead: perHead)
            #expect(allClose(ours.values, ref, rtol: 1e-5, atol: 1e-6).passed, "perHead \(perHead)")
        }
    }

    @Test func fusedEqualsComposedForwardAndBackward() {
        let b = 2, h = 2, tq = 5, tk = 7, d = 4
        for perHead in [false, true] {
            let mask = makeMask((perHead ? b * h : b) * tq * tk, rows: tq, keys: tk)
            var grads: [[[Float]]] = []
            var outs: [[Float]] = []
            for fused in [true, false] {
                let q = testTensor([b, tq, h * d], seed: 11), k = testTensor([b, tk, h * d], seed: 12)
                let v = testTensor([b, tk, h * d], seed: 13)
                let out = withGrad {
                    fused ? Tensor.attention(q: q, k: k, v: v, heads: h, mask: mask)
                          : Tensor.attentionComposed(q: q, k: k, v: v, heads: h, mask: mask)
                }
                let r = testTensor(out.shape, seed: 14, requiresGrad: false)
                withGrad { (out * r).sum() }.backward()
                outs.append(out.values)
                grads.append([q.grad!.values, k.grad!.values, v.grad!.values])
            }
            #expect(allClose(outs[0], outs[1], rtol: 1e-4, atol: 1e-6).passed)
            for i in 0..<3 { #expect(allClose(grads[0][i], grads[1][i], rtol: 1e-4, atol: 1e-5).passed, "grad \(i)") }
        }
    }

    @Test func gradientCheck() {
        let b = 1, h = 2, tq = 3, tk = 5, d = 3
        let mask = makeMask(b * tq * tk, rows: tq, keys: tk)
        let q = testTensor([b, tq, h * d], seed: 21), k = testTensor([b, tk, h * d], seed: 22)
        let v = testTensor([b, tk, h * d], seed: 23)
        let rep = gradCheck([q, k, v]) { Tensor.attention(q: $0[0], k: $0[1], v: $0[2], heads: h, mask: mask) }
        #expect(rep.passed, "\(rep)")
    }

    @Test func fullyBlockedRowAttendsEverywhere() {
        let q = testTensor([1, 2, 4], seed: 31, requiresGrad: false)
        let k = testTensor([1, 3, 4], seed: 32, requiresGrad: false)
        let v = testTensor([1, 3, 4], seed: 33, requiresGrad: false)
        let blocked = Tensor.attention(q: q, k: k, v: v, heads: 1, mask: [Bool](repeating: true, count: 6))
        let open = Tensor.attention(q: q, k: k, v: v, heads: 1)
        #expect(blocked.values == open.values)
    }

    /// Window attention (Swin): the fused op equals its composed statement, forward and every gradient (the bias's too),
    /// with and without the shifted-window mask; finite differences on the fused op; the same bits at 1, 2 and 8
    /// threads (the bias gradient is summed over the windows in a fixed order).
    @Test func windowAttentionFusedEqualsComposedAndIsThreadIndependent() {
        let images = 2, nW = 3, h = 2, t = 4, d = 3
        let mask = Tensor((0..<(nW * t * t)).map { $0 % 5 == 1 ? -100 : 0 }, shape: [nW, t, t])
        for windowMask in [nil, mask] {
            var outs: [[Float]] = [], grads: [[[Float]]] = []
            for fused in [true, false] {
                let q = testTensor([images * nW, t, h * d], seed: 31), k = testTensor([images * nW, t, h * d], seed: 32)
                let v = testTensor([images * nW, t, h * d], seed: 33), bias = testTensor([h, t, t], seed: 34)
                let out = withGrad {
                    fused ? Tensor.windowAttention(q: q, k: k, v: v, heads: h, bias: bias, windowMask: windowMask)
                          : Tensor.windowAttentionComposed(q: q, k: k, v: v, heads: h, bias: bias, windowMask: windowMask)
                }
                withGrad { (out * testTensor(out.shape, seed: 35, requiresGrad: false)).sum() }.backward()
                outs.append(out.values)
                grads.append([q, k, v, bias].map { $0.grad!.values })
            }
            #expect(allClose(outs[0], outs[1], rtol: 1e-4, atol: 1e-6).passed, "mask \(windowMask != nil)")
            for i in 0..<4 { #expect(allClose(grads[0][i], grads[1][i], rtol: 1e-4, atol: 1e-5).passed, "grad \(i), mask \(windowMask != nil)") }
        }
        let q = testTensor([nW, t, h * d], seed: 41), k = testTensor([nW, t, h * d], seed: 42)
        let v = testTensor([nW, t, h * d], seed: 43), bias = testTensor([h, t, t], seed: 44)
        let rep = gradCheck([q, k, v, bias]) {
            Tensor.windowAttention(q: $0[0], k: $0[1], v: $0[2], heads: h, bias: $0[3], windowMask: mask)
        }
        #expect(rep.passed, "\(rep)")
        let runs = atThreadCounts(grainDivisor: 4096) { () -> [Float] in
            let q = testTensor([8 * nW, t, h * d], seed: 51), k = testTensor([8 * nW, t, h * d], seed: 52)
            let v = testTensor([8 * nW, t, h * d], seed: 53), bias = testTensor([h, t, t], seed: 54)
            let out = withGrad { Tensor.windowAttention(q: q, k: k, v: v, heads: h, bias: bias, windowMask: mask) }
            withGrad { (out * out).sum() }.backward()
            return out.values + bias.grad!.values + q.grad!.values
        }
        #expect(bitwiseEqual(runs))
    }
}

