// Every op whose matrix products switch to bf16 under `withGEMMPrecision(.bf16)` (matmul, linear, 1×1 and 3×3
// conv, fused attention), forward and backward, against its fp32 version.
//
// For the single-GEMM ops each output and each gradient entry is held to `bf16ProductBound`: the magnitude it needs
// (Σ|a·b| over the reduction) is the same op run on absolute values — forward on |x|, |W|, and backward seeded with
// |dy| — so the bound is exact per entry. Fused attention chains two products around a softmax; it is held to a
// norm-wise relative error of 2u per product (u = 2⁻⁸: one product's two rounded operands), 4u in all. Measured:
// 0.0021–0.0031 (≈ 0.8u) on these inputs, so the bound has a 5× margin and still fails if a product lost more.
import _TestSupport
import Kernels
import Testing
import TensorCore

@Suite struct BF16OpsTests {
    /// Output and input gradients of `op` on `inputs` with `seed` as the output gradient, in `precision`.
    static func run(_ precision: GEMMPrecision, _ inputs: [Tensor], seed: Tensor, _ op: ([Tensor]) -> Tensor) -> [Tensor] {
        withGEMMPrecision(precision) {
            let xs = inputs.map { t -> Tensor in let c = t.detached(); c.requiresGrad = true; return c }
            let y = withGrad { op(xs) }
            y.backward(seed: seed)
            return [y.detached()] + xs.map { $0.grad! }
        }
    }

    /// Checks bf16 against fp32 entry by entry for a single-GEMM op (`k`: its reduction lengths, forward then one per
    /// input gradient).
    static func checkSingleProduct(_ name: String, _ inputs: [Tensor], outputShape: [Int], k: [Int],
                                   _ op: @escaping ([Tensor]) -> Tensor) {
        let seed = testTensor(outputShape, seed: 99, requiresGrad: false)
        let fp32 = run(.fp32, inputs, seed: seed, op), bf16 = run(.bf16, inputs, seed: seed, op)
        let magnitude = run(.fp32, inputs.map { t in withNoGrad { t.abs() } }, seed: withNoGrad { seed.abs() }, op)
        for (i, (a, b)) in zip(fp32, bf16).enumerated() {
            let what = i == 0 ? "\(name) output" : "\(name) gradient \(i - 1)"
            var worst = 0.0
            for e in 0..<a.count {
                let bound = bf16ProductBound(magnitude: Double(magnitude[i].data[e]), k: k[i])
                let err = abs(Double(a.data[e]) - Double(b.data[e]))
                worst = max(worst, err / bound)
                if err > bound { Issue.record("\(what)[\(e)]: bf16 \(b.data[e]) vs fp32 \(a.data[e]), bound \(bound)"); break }
            }
            // bf16 really was used: the error is a visible part of the bound, not fp32 noise.
            #expect(worst > 0.01, "\(what): worst error \(worst) of the bound — was the product computed in bf16?")
        }
    }

    @Test func matmulAndLinear() {
        let a = testTensor([3, 17, 40], seed: 1), b = testTensor([3, 40, 23], seed: 2)
        Self.checkSingleProduct("matmul", [a, b], outputShape: [3, 17, 23], k: [40, 23, 17]) { Tensor.matmul($0[0], $0[1]) }
        let x = testTensor([2, 19, 48], seed: 3), w = testTensor([36, 48], seed: 4), bias = testTensor([36], seed: 5)
        Self.checkSingleProduct("linear", [x, w], outputShape: [2, 19, 36], k: [48, 36, 38]) {
            Tensor.linear($0[0], weight: $0[1], bias: withNoGrad { bias * 0 })
        }
    }

    @Test(arguments: [1, 3])
    func conv(kernel: Int) {
        let x = testTensor([2, 9, 11, 16], seed: 6), w = testTensor([24, kernel, kernel, 16], seed: 7)
        let pad = kernel / 2
        Self.checkSingleProduct("conv \(kernel)×\(kernel)", [x, w], outputShape: [2, 9, 11, 24],
                                k: [kernel * kernel * 16, kernel * kernel * 24, 2 * 9 * 11]) {
            Tensor.conv2d($0[0], weight: $0[1], bias: nil, stride: 1, padding: pad)
        }
    }

    @Test func fusedAttention() {
        let q = testTensor([2, 12, 32], seed: 8), k = testTensor([2, 50, 32], seed: 9), v = testTensor([2, 50, 32], seed: 10)
        let mask = (0..<(2 * 12 * 50)).map { $0 % 7 == 0 }
        let seed = testTensor([2, 12, 32], seed: 11, requiresGrad: false)
        let op: ([Tensor]) -> Tensor = { Tensor.attention(q: $0[0], k: $0[1], v: $0[2], heads: 4, mask: mask) }
        let fp32 = Self.run(.fp32, [q, k, v], seed: seed, op), bf16 = Self.run(.bf16, [q, k, v], seed: seed, op)
        for (i, (a, b)) in zip(fp32, bf16).enumerated() {
            let diff = zip(a.values, b.values).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
            let norm = a.values.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
            let relative = diff / norm
            #expect(relative <= 2 * 2 * bf16UnitRoundoff, "attention tensor \(i): relative error \(relative)")
            #expect(relative > 1e-5, "attention tensor \(i): bf16 not used (relative error \(relative))")
        }
    }

    /// An op's backward runs in the precision its forward ran in, whatever scope `backward()` is called from (the
    /// criterion is recorded in fp32 inside a bf16 step; the model's ops in bf16 are differentiated in bf16).
    @Test func backwardRunsInTheForwardsPrecision() {
        let a = testTensor([9, 33], seed: 12), b = testTensor([33, 7], seed: 13)
        func grads(forward: GEMMPrecision, backward: GEMMPrecision) -> [[Float]] {
            let x = a.detached(), y = b.detached()
            x.requiresGrad = true; y.requiresGrad = true
            let out = withGEMMPrecision(forward) { withGrad { Tensor.matmul(x, y) } }
            withGEMMPrecision(backward) { out.backward(seed: testTensor([9, 7], seed: 14, requiresGrad: false)) }
            return [x.grad!.values, y.grad!.values]
        }
        let fp32 = grads(forward: .fp32, backward: .fp32), bf16 = grads(forward: .bf16, backward: .bf16)
        #expect(grads(forward: .fp32, backward: .bf16) == fp32)
        #expect(grads(forward: .bf16, backward: .fp32) == bf16)
        #expect(fp32 != bf16)
    }
}
