// Tests of the elementwise ops: hand-checked forward values, broadcasting and gradient checks.
// Reference semantics: torch pointwise ops with numpy broadcasting.
import Testing
import TensorCore
import _TestSupport

@Suite struct ElementwiseTests {
    @Test func broadcastForward() {
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let b = Tensor([10, 20, 30], shape: [3])
        #expect((a + b).values == [11, 22, 33, 14, 25, 36])
        let c = Tensor([100, 200], shape: [2, 1])
        #expect((a * c).values == [100, 200, 300, 800, 1000, 1200])
        #expect((a - 1).values == [0, 1, 2, 3, 4, 5])
        #expect((2 / Tensor([1, 4], shape: [2])).values == [2, 0.5])
    }

    @Test func binaryGradients() {
        let ops: [(Tensor, Tensor) -> Tensor] = [{ $0 + $1 }, { $0 - $1 }, { $0 * $1 }, { $0 / $1 }]
        for (i, op) in ops.enumerated() {
            let a = testTensor([2, 3, 4], seed: 1)
            let b = testTensor([3, 1], seed: 2, low: 0.5, high: 2)
            let rep = gradCheck([a, b]) { op($0[0], $0[1]) }
            #expect(rep.passed, "op \(i): \(rep)")
        }
    }

    @Test func unaryGradients() {
        let fs: [(String, (Tensor) -> Tensor)] = [
            ("relu", { $0.relu() }), ("sigmoid", { $0.sigmoid() }), ("softplus", { $0.softplus() }),
            ("exp", { $0.exp() }), ("log", { ($0 * $0 + 0.5).log() }), ("sqrt", { ($0 * $0 + 0.5).sqrt() }),
            ("abs", { $0.abs() }), ("neg", { $0.neg() }), ("affine", { 3 * $0 - 2 }), ("rdiv", { 1 / ($0 * $0 + 1) }),
            ("square", { $0.square() }), ("clamp", { $0.clamped(min: -0.5, max: 0.5) }), ("gelu", { (3 * $0).gelu() }),
        ]
        for (name, f) in fs {
            let x = testTensor([3, 5], seed: 3)
            // Keep away from the kinks of relu and abs.
            for i in 0..<x.count where Swift.abs(x.data[i]) < 0.05 || Swift.abs(Swift.abs(x.data[i]) - 0.5) < 0.05 {
                x.data[i] = 0.3
            }
            let rep = gradCheck([x]) { f($0[0]) }
            #expect(rep.passed, "\(name): \(rep)")
        }
    }

    /// Exact GELU x·Φ(x) at points where Φ is known to many digits (torch.nn.functional.gelu gives the same).
    @Test func geluValues() {
        let x = Tensor([-3, -1, -0.5, 0, 0.5, 1, 3], shape: [7])
        let expected: [Float] = [-0.0040496, -0.15865525, -0.15426877, 0, 0.34573123, 0.84134475, 2.9959502]
        #expect(allClose(x.gelu().values, expected, rtol: 1e-6, atol: 1e-7).passed)
    }
}
