// Tests of Autograd.backward's readiness hooks (leafReady, afterNode) used to overlap gradient all-reduce with backward.
// Reference semantics: PyTorch DDP's per-parameter autograd hooks firing once a parameter's gradient is final.
import Testing
import TensorCore

@Suite struct AutogradHookTests {
    /// a, b, c, d used at tape positions 0/2, 0, 1 and 4; e only in a branch that does not reach the loss;
    /// f does not require grad. Returns the leaves and the loss.
    func graph() -> (leaves: [Tensor], unused: Tensor, constant: Tensor, keepAlive: Tensor, loss: Tensor) {
        var rng = RNG(seed: 11)
        let a = Tensor.normal([3, 4], rng: &rng, requiresGrad: true)
        let b = Tensor.normal([3, 4], rng: &rng, requiresGrad: true)
        let c = Tensor.normal([3, 4], rng: &rng, requiresGrad: true)
        let d = Tensor.normal([3, 4], rng: &rng, requiresGrad: true)
        let e = Tensor.normal([3, 4], rng: &rng, requiresGrad: true)
        let f = Tensor.normal([3, 4], rng: &rng)
        let (side, loss) = withGrad { () -> (Tensor, Tensor) in
            let t1 = a * b            // node 0
            let t2 = t1 + c           // node 1
            let t3 = t2 * a           // node 2
            let side = e * f          // node 3: never reaches the loss
            let t4 = (t3 * 0.1).exp() // nodes 4, 5
            let t5 = t4 * d * f       // nodes 6, 7
            return (side, t5.sum())
        }
        return ([a, b, c, d], e, f, side, loss)
    }

    @Test func everyLeafReportedOnceWithItsFinalGradient() {
        let (leaves, unused, constant, keepAlive, loss) = graph()
        let nodes = Autograd.tapeLength
        var reported: [ObjectIdentifier] = []
        var valuesAtReport: [ObjectIdentifier: [Float]] = [:]
        var afterNodeCalls = 0
        loss.backward(leafReady: { t in
            reported.append(ObjectIdentifier(t))
            valuesAtReport[ObjectIdentifier(t)] = t.grad!.values
        }, afterNode: { afterNodeCalls += 1 })
        #expect(afterNodeCalls == nodes)
        #expect(Autograd.tapeLength == 0)
        #expect(reported.count == 4 && Set(reported).count == 4)
        #expect(!reported.contains(ObjectIdentifier(unused)) && !reported.contains(ObjectIdentifier(constant)))
        #expect(unused.grad == nil)
        for t in leaves { #expect(valuesAtReport[ObjectIdentifier(t)] == t.grad!.values) }
        // Reverse order of first use: d (node 6), c (node 1), then a and b (node 0).
        let ids = leaves.map(ObjectIdentifier.init)
        #expect(reported[0] == ids[3] && reported[1] == ids[2])
        #expect(Set(reported[2...]) == Set([ids[0], ids[1]]))
        _ = keepAlive
    }

    @Test func hooksDoNotChangeGradients() {
        let (leaves1, _, _, _, loss1) = graph()
        loss1.backward()
        let (leaves2, _, _, _, loss2) = graph()
        loss2.backward(leafReady: { _ in }, afterNode: {})
        for (x, y) in zip(leaves1, leaves2) { #expect(x.grad!.values == y.grad!.values) }
        // afterNode alone works too.
        let (leaves3, _, _, _, loss3) = graph()
        var n = 0
        loss3.backward(leafReady: nil, afterNode: { n += 1 })
        #expect(n > 0)
        for (x, y) in zip(leaves1, leaves3) { #expect(x.grad!.values == y.grad!.values) }
    }

    @Test func repeatedInputsAndBoundGradients() {
        // x used twice in one node and again later; grads bound to a flat buffer as FlatParameters does.
        let flat = Storage(zeroedCount: 5)
        let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let w = Tensor([0.5, -1], shape: [2], requiresGrad: true)
        x.bindGrad(to: Storage(viewOf: flat, offset: 0, count: 3))
        w.bindGrad(to: Storage(viewOf: flat, offset: 3, count: 2))
        let loss = withGrad { (x * x).sum() * 2 + x.sum() + (w * w).sum() }
        var order: [String] = []
        var atReport: [String: [Float]] = [:]
        loss.backward(leafReady: { t in
            let name = t === x ? "x" : "w"
            order.append(name)
            atReport[name] = t.grad!.values
        })
        #expect(order.count == 2 && Set(order) == ["x", "w"])
        #expect(x.grad!.values == [5, 9, 13])
        #expect(atReport["x"] == [5, 9, 13] && atReport["w"] == [1, -2])
        #expect(Array(flat.buffer) == [5, 9, 13, 1, -2])
        // w is first used after x's last use, so it is reported first.
        #expect(order == ["w", "x"])
    }

    @Test func leafRootIsReported() {
        let x = Tensor([2], shape: [1], requiresGrad: true)
        var got: [Tensor] = []
        x.backward(leafReady: { got.append($0) })
        #expect(got.count == 1 && got[0] === x && x.grad!.values == [1])
    }
}
