// Tests of masked softmax / log-softmax, weighted cross-entropy and BCE with logits.
// Reference semantics: torch.softmax after masked_fill(-inf), F.cross_entropy(weight=), F.binary_cross_entropy_with_logits.
import Foundation
import Kernels
import Testing
import TensorCore
import _TestSupport

@Suite struct SoftmaxLossTests {
    @Test func softmaxHandValues() {
        let x = Tensor([0, Foundation.log(3)], shape: [1, 2])
        #expect(allClose(x.softmax().values, [0.25, 0.75]).passed)
        // Masked: the blocked entry gets 0, the rest renormalize.
        let y = Tensor([1, 2, 3], shape: [1, 3]).softmax(mask: [false, true, false])
        let e = Foundation.exp(Float(2))
        #expect(allClose(y.values, [1 / (1 + e), 0, e / (1 + e)]).passed)
    }

    @Test func fullyMaskedRowNeverNaN() {
        let x = testTensor([2, 4], seed: 5)
        let mask = [true, true, true, true, false, true, false, false]
        let z = withGrad { x.softmax(mask: mask) }
        #expect(Array(z.values[0..<4]) == [0, 0, 0, 0])
        #expect(z.isFinite)
        let u = x.softmax(mask: mask, fullyMasked: .unmasked)
        #expect(allClose(Array(u.values[0..<4]), Array(x.detached().softmax().values[0..<4])).passed)
        let l = withGrad { x.logSoftmax(mask: mask) }
        #expect(l.values[0] == -.infinity && !l.values.contains { $0.isNaN })
        z.sum().backward()
        #expect(x.grad.map { $0.isFinite } == true)
    }

    @Test func softmaxMatchesReference() {
        let x = testTensor([5, 7], seed: 6, low: -3, high: 3, requiresGrad: false)
        var mask = (0..<35).map { $0 % 3 == 0 }
        for j in 0..<7 { mask[14 + j] = true }  // row 2 fully masked
        for mode in [FullyMaskedRow.zeros, .unmasked] {
            for log in [false, true] {
                let ours = log ? x.logSoftmax(mask: mask, fullyMasked: mode) : x.softmax(mask: mask, fullyMasked: mode)
                let ref = softmaxReference(x.values, rows: 5, n: 7, mask: mask, fullyMasked: mode, logOutput: log)
                #expect(allClose(ours.values, ref).passed, "mode \(mode) log \(log)")
            }
        }
    }

    @Test func softmaxGradients() {
        let mask = (0..<24).map { $0 % 5 == 1 }
        for axis in [0, 1, 2] {
            let x = testTensor([2, 3, 4], seed: 7)
            #expect(gradCheck([x]) { $0[0].softmax(axis: axis) }.passed, "softmax axis \(axis)")
            #expect(gradCheck([x]) { $0[0].logSoftmax(axis: axis) }.passed, "log_softmax axis \(axis)")
        }
        let x = testTensor([2, 3, 4], seed: 8)
        #expect(gradCheck([x]) { $0[0].softmax(axis: -1, mask: mask) }.passed)
        // Log-softmax with −∞ entries: check through a where() that zeroes the blocked entries.
        let rep = gradCheck([x]) { t in
            let l = t[0].logSoftmax(axis: -1, mask: mask)
            return Tensor.select(mask, Tensor.zeros(l.shape), l)
        }
        #expect(rep.passed, "\(rep)")
    }

    @Test func crossEntropyHandValue() {
        // Two rows, uniform logits over 3 classes: each row's loss is log 3 whatever the weights.
        let logits = Tensor.zeros([2, 3])
        let l = Tensor.crossEntropy(logits, targets: [0, 2], classWeights: [1, 1, 0.1])
        #expect(Swift.abs(l.item - Foundation.log(3)) < 1e-6)
        // Weighted mean: row losses a, b with weights 1 and 0.1 → (a + 0.1 b) / 1.1.
        let x = Tensor([2, 0, 0, 0, 0, 1], shape: [2, 3])
        let a = -Foundation.log(Foundation.exp(2.0) / (Foundation.exp(2.0) + 2))
        let b = -Foundation.log(Foundation.exp(1.0) / (Foundation.exp(1.0) + 2))
        let ce = Tensor.crossEntropy(x, targets: [0, 2], classWeights: [1, 1, 0.1])
        #expect(Swift.abs(Double(ce.item) - (a + 0.1 * b) / 1.1) < 1e-6)
        let ig = Tensor.crossEntropy(x, targets: [0, 255], ignoreIndex: 255)
        #expect(Swift.abs(Double(ig.item) - a) < 1e-6)
    }

    @Test func crossEntropyFusedEqualsComposed() {
        let x = testTensor([6, 5], seed: 9, low: -2, high: 2)
        let targets = [0, 4, 4, 2, 1, 4]
        let weights: [Float] = [1, 1, 1, 1, 0.1]
        let fused = withGrad { Tensor.crossEntropy(x, targets: targets, classWeights: weights) }
        fused.backward()
        let gFused = x.grad!.values
        x.grad = nil
        let composed = withGrad { () -> Tensor in
            let lp = x.logSoftmax(axis: 1).gather(axis: 1, targets, indexShape: [6, 1]).reshaped([6])
            let w = Tensor(targets.map { weights[$0] }, shape: [6])
            return -(lp * w).sum() / w.sum()
        }
        composed.backward()
        #expect(Swift.abs(fused.item - composed.item) < 1e-6)
        #expect(allClose(gFused, x.grad!.values, rtol: 1e-4, atol: 1e-6).passed)
        x.grad = nil
        #expect(gradCheck([x]) { Tensor.crossEntropy($0[0], targets: targets, classWeights: weights) }.passed)
    }

    @Test func bceWithLogits() {
        let x = Tensor([0, 2, -3, 40], shape: [4])
        let t = Tensor([1, 0, 1, 1], shape: [4])
        let l = Tensor.binaryCrossEntropyWithLogits(x, targets: t).values
        let expect: [Double] = [Foundation.log(2), 2 + Foundation.log1p(Foundation.exp(-2)), 3 + Foundation.log1p(Foundation.exp(-3)), 0]
        #expect(allClose(l, expect.map(Float.init), atol: 1e-6).passed)
        let xs = testTensor([3, 4], seed: 10, low: -3, high: 3)
        let ts = testTensor([3, 4], seed: 11, low: 0, high: 1, requiresGrad: false)
        #expect(gradCheck([xs]) { Tensor.binaryCrossEntropyWithLogits($0[0], targets: ts) }.passed)
    }
}

@Suite struct FastExpTests {
    /// The 8-lane fastExp equals the scalar one bit for bit: over [−90, 90] in steps that hit every range-reduction
    /// case, at the clamps (−87, 88), below −87 (0) and at ±∞; NaN stays NaN in both. So a kernel's result does not
    /// depend on which of its elements run in lanes and which in the scalar tail.
    @Test func eightLaneFastExpEqualsTheScalarOne() {
        let withNaN = SIMD8<Float>(1, -2, 0, .nan, 5, -90, 90, .nan), lanes = fastExp(withNaN)
        for l in 0..<8 {
            let scalar = fastExp(withNaN[l])
            #expect(withNaN[l].isNaN ? lanes[l].isNaN && scalar.isNaN : lanes[l].bitPattern == scalar.bitPattern, "lane \(l)")
        }
        var inputs: [Float] = [-.infinity, .infinity, -87.5, -87, -86.99, 87.99, 88, 88.5, 0, -0, 1e-30, -1e-30, -103, -104]
        var x: Float = -90
        while x < 90 { inputs.append(x); x += 0.00731 }
        while inputs.count % 8 != 0 { inputs.append(0.5) }
        var mismatches = 0
        for i in stride(from: 0, to: inputs.count, by: 8) {
            let v = inputs.withUnsafeBufferPointer { fastExp(load8($0.baseAddress! + i)) }
            for l in 0..<8 where v[l].bitPattern != fastExp(inputs[i + l]).bitPattern { mismatches += 1 }
        }
        #expect(mismatches == 0, "\(mismatches) of \(inputs.count) lanes differ")
    }

    /// Softmax in place (as the attention kernels run it) equals softmax into another buffer and the scalar
    /// definition (exp(x − max) by the scalar fastExp, divided by their sum in `sumFloats`' order), bit for bit, for row
    /// lengths around the 8-lane blocks.
    @Test func softmaxInPlaceEqualsOutOfPlace() {
        var rng = RNG(seed: 3)
        for n in [1, 7, 8, 9, 16, 143, 144, 145] {
            let x = (0..<(3 * n)).map { _ in rng.nextFloat() * 20 - 10 }
            var out = [Float](repeating: 0, count: x.count), inPlace = x
            x.withUnsafeBufferPointer { xs in out.withUnsafeMutableBufferPointer { o in
                softmaxForward(xs.baseAddress!, o.baseAddress!, outer: 3, n: n, inner: 1, mask: nil, fullyMasked: .unmasked, logOutput: false)
            } }
            inPlace.withUnsafeMutableBufferPointer { p in
                softmaxForward(p.baseAddress!, p.baseAddress!, outer: 3, n: n, inner: 1, mask: nil, fullyMasked: .unmasked, logOutput: false)
            }
            #expect(out.map(\.bitPattern) == inPlace.map(\.bitPattern), "n = \(n)")
            var scalar = [Float](repeating: 0, count: x.count)
            for r in 0..<3 {
                let row = Array(x[(r * n)..<((r + 1) * n)]), m = row.max()!
                let e = row.map { fastExp($0 - m) }
                let inv = 1 / e.withUnsafeBufferPointer { sumFloats($0.baseAddress!, n) }
                for j in 0..<n { scalar[r * n + j] = e[j] * inv }
            }
            #expect(out.map(\.bitPattern) == scalar.map(\.bitPattern), "n = \(n): 8 lanes against the scalar definition")
            for r in 0..<3 { #expect(Swift.abs(out[(r * n)..<((r + 1) * n)].reduce(0, +) - 1) < 1e-5) }
        }
    }

    @Test func fastExpMatchesExp() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            let e = Foundation.exp(Double(x))
            worst = Swift.max(worst, Swift.abs(Double(fastExp(x)) - e) / e)
            x += 0.0137
        }
        #expect(worst < 2e-7, "max relative error \(worst)")
        #expect(fastExp(-.infinity) == 0 && fastExp(-100) == 0 && fastExp(0) == 1)
        var worstLog = 0.0
        for x in stride(from: Float(0), through: 1, by: 1.0 / 4096) + [1e-30, 1e-12, 3e-8, 6e-8, 1e-7, 0.4142135, 0.4142136] {
            let e = Foundation.log1p(Double(x))
            if e > 0 { worstLog = Swift.max(worstLog, Swift.abs(Double(fastLog1p(x)) - e) / e) }
        }
        #expect(worstLog < 3e-7, "fastLog1p max relative error \(worstLog)")
        #expect(fastLog1p(0) == 0)
        let v: [Float] = (0..<37).map { Float($0) * 0.25 }
        #expect(Swift.abs(v.withUnsafeBufferPointer { sumFloats($0.baseAddress!, 37) } - 166.5) < 1e-4)
    }

    /// fastErf against the correctly rounded erf (Double erf rounded to Float): within 2 ulp as tools/fit_erf.py
    /// measured, plus 1 for fastExp, over [−6, 6], near 0 and at both sides of the pieces' seam at |x| = 1.
    @Test func fastErfMatchesErf() {
        var worst: UInt32 = 0, worstAt: Float = 0
        var xs: [Float] = stride(from: Float(-6), through: 6, by: 1.0 / 1024).map { $0 }
        xs += [1e-30, 1e-12, 1e-6, 3e-4, 0.9999999, 1.0000001, 3.9999998, 4.0000005].flatMap { [$0, -$0] }
        for x in xs {
            let exact = Float(Foundation.erf(Double(x)))
            let got = fastErf(x)
            let d = got.sign == exact.sign ? (got.bitPattern > exact.bitPattern ? got.bitPattern - exact.bitPattern
                                                                               : exact.bitPattern - got.bitPattern) : .max
            if d > worst { worst = d; worstAt = x }
        }
        #expect(worst <= 3, "fastErf: \(worst) ulp at \(worstAt)")
        #expect(fastErf(0) == 0 && fastErf(.infinity) == 1 && fastErf(-.infinity) == -1 && fastErf(.nan).isNaN)
        #expect(fastExp(.nan).isNaN)
    }
}
