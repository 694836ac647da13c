// Tests of the tape: accumulation, broadcast reduction, no-grad scope, detached(), and that gradCheck can fail.
// Reference semantics: torch.autograd first-order behaviour.
import Testing
import TensorCore
import _TestSupport

@Suite struct AutogradTests {
    @Test func gradCheckDetectsAWrongBackward() {
        let x = testTensor([4], seed: 1)
        let rep = gradCheck([x]) { t in
            let y = t[0].detached().square()
            // Deliberately wrong rule: d(x²)/dx reported as x instead of 2x.
            return Autograd.record("wrong_square", y, [t[0]]) { g in [g * t[0].detached()] }
        }
        #expect(!rep.passed)
    }

    @Test func reusedInputAccumulates() {
        let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let y = withGrad { (x * x + x * 3).sum() }
        y.backward()
        #expect(x.grad!.values == [5, 7, 9])
        // A second backward accumulates into the leaf's gradient.
        withGrad { x.sum() }.backward()
        #expect(x.grad!.values == [6, 8, 10])
        x.zeroGrad()
        #expect(x.grad == nil)
    }

    @Test func broadcastGradientIsReduced() {
        let a = Tensor.ones([2, 3, 4], requiresGrad: true)
        let b = Tensor.ones([3, 1], requiresGrad: true)
        let c = Tensor.ones([1], requiresGrad: true)
        withGrad { (a * b + c).sum() }.backward()
        #expect(b.grad!.shape == [3, 1] && b.grad!.values == [8, 8, 8])
        #expect(c.grad!.shape == [1] && c.grad!.values == [24])
        #expect(a.grad!.values.allSatisfy { $0 == 1 })
    }

    @Test func noGradAndDetached() {
        let x = Tensor([1, 2], shape: [2], requiresGrad: true)
        let before = Autograd.tapeLength
        let y = withNoGrad { x * 2 }
        #expect(!y.requiresGrad && Autograd.tapeLength == before)
        let d = x.detached()
        #expect(!d.requiresGrad && d.values == x.values)
        let z = withGrad { (x * d).sum() }
        z.backward()
        #expect(x.grad!.values == [1, 2])   // d is a constant
        #expect(Autograd.tapeLength == 0)
    }

    @Test func boundGradAccumulatesInPlace() {
        let flat = Storage(zeroedCount: 5)
        let w = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        w.bindGrad(to: Storage(viewOf: flat, offset: 2, count: 3))
        withGrad { (w * w).sum() }.backward()
        #expect(Array(flat.buffer) == [0, 0, 2, 4, 6])
        w.zeroGrad()
        #expect(Array(flat.buffer) == [0, 0, 0, 0, 0])
    }

    /// The tape keeps gradient slots, not tensors: an intermediate that no backward rule captured (pad and slice
    /// capture only shapes) is freed when the forward drops it, and the gradient still flows through its slot.
    @Test func uncapturedIntermediatesAreFreedBeforeBackward() {
        let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        weak var padded: Tensor?
        weak var sliced: Tensor?
        let loss: Tensor = withGrad {
            let p = x.padded(axis: 0, before: 2, after: 1)      // [0, 0, 1, 2, 3, 0]
            padded = p
            let s = p.slice(axis: 0, 1..<5)                     // [0, 1, 2, 3]
            sliced = s
            return (s * s).sum()                                // mul captures s: it stays
        }
        #expect(padded == nil, "the padded tensor is still alive")
        #expect(sliced != nil)
        loss.backward()
        #expect(x.grad!.values == [2, 4, 6])
        #expect(sliced == nil || sliced!.grad == nil)
    }
}

