// Tests of shape ops, reductions and matrix products: forward values and finite-difference gradients.
// Reference semantics: torch reshape/permute/narrow/cat/stack/pad/index_select/gather, sum/mean/max/topk, matmul, F.linear.
import Kernels
import Testing
import TensorCore
import _TestSupport

@Suite struct ShapeReduceMatmulTests {
    @Test func shapeForwardValues() {
        let x = Tensor((0..<6).map(Float.init), shape: [2, 3])
        #expect(x.transposed().values == [0, 3, 1, 4, 2, 5])
        #expect(x.slice(axis: 1, 1..<3).values == [1, 2, 4, 5])
        #expect(x.padded(axis: 1, before: 1, after: 0, value: 9).values == [9, 0, 1, 2, 9, 3, 4, 5])
        #expect(Tensor.concat([x, x.slice(axis: 0, 0..<1)], axis: 0).values == [0, 1, 2, 3, 4, 5, 0, 1, 2])
        #expect(Tensor.stack([x, x], axis: 1).shape == [2, 2, 3])
        #expect(x.indexSelect(axis: 1, [2, 0, 2]).values == [2, 0, 2, 5, 3, 5])
        #expect(x.gather(axis: 1, [2, 2, 0, 1], indexShape: [2, 2]).values == [2, 2, 3, 4])
        #expect(x.reshaped([3, -1]).shape == [3, 2])
        let y = Tensor((0..<24).map(Float.init), shape: [2, 3, 4]).permuted(2, 0, 1)
        #expect(y.shape == [4, 2, 3] && y[1, 1, 2] == 21)
        #expect(Tensor([1, 2], shape: [2, 1]).expanded(to: [2, 3]).values == [1, 1, 1, 2, 2, 2])
        let table = Tensor((0..<6).map(Float.init), shape: [3, 2])
        #expect(table.embedding([2, 0]).values == [4, 5, 0, 1])
    }

    @Test func shapeGradients() {
        let checks: [(String, (Tensor) -> Tensor)] = [
            ("reshape", { $0.reshaped([4, 6]) }), ("permute", { $0.permuted(2, 0, 1) }),
            ("transpose", { $0.transposed(0, 2) }), ("slice", { $0.slice(axis: 2, 1..<3) }),
            ("pad", { $0.padded(axis: 1, before: 2, after: 1) }), ("pad-all", { $0.padded([(1, 0), (0, 1), (2, 2)]) }),
            ("index_select", { $0.indexSelect(axis: 1, [2, 0, 2, 1]) }),
            ("gather", { $0.gather(axis: 2, [0, 3, 3, 1, 2, 2, 0, 0, 1, 1, 3, 3], indexShape: [2, 3, 2]) }),
            ("concat", { Tensor.concat([$0, $0.slice(axis: 1, 0..<2)], axis: 1) }),
            ("stack", { Tensor.stack([$0, $0 * 2], axis: 3) }), ("expand", { $0.slice(axis: 0, 0..<1).expanded(to: [3, 2, 3, 4]) }),
            ("select", { Tensor.select((0..<24).map { $0 % 3 == 0 }, $0, $0 * $0) }),
        ]
        for (name, f) in checks {
            let x = testTensor([2, 3, 4], seed: 3)
            #expect(gradCheck([x]) { f($0[0]) }.passed, "\(name)")
        }
    }

    @Test func reductions() {
        let x = Tensor([1, 5, 3, 4, 2, 6], shape: [2, 3])
        #expect(x.sum().item == 21)
        #expect(x.sum(axis: 0).values == [5, 7, 9])
        #expect(x.sum(axis: 1, keepDims: true).shape == [2, 1])
        #expect(x.mean(axis: 1).values == [3, 4])
        #expect(x.max(axis: 1).values.values == [5, 6] && x.argmax(axis: 1) == [1, 2])
        #expect(x.argmax(axis: 0) == [1, 0, 1])
        let (v, i) = Tensor([3, 1, 3, 7, 0], shape: [5]).topk(3)
        #expect(v.values == [7, 3, 3] && i == [3, 0, 2])
        for axes in [[0], [1], [2], [0, 2], [1, 2], [0, 1, 2]] {
            let t = testTensor([2, 3, 4], seed: 4)
            #expect(gradCheck([t]) { $0[0].sum(axes: axes) }.passed, "sum \(axes)")
            #expect(gradCheck([t]) { $0[0].mean(axes: axes, keepDims: true) }.passed, "mean \(axes)")
        }
    }

    @Test func topkEqualsFullSortWithTies() {
        var rng = RNG(seed: 51)
        for trial in 0..<200 {
            let rows = 1 + rng.nextInt(below: 4), n = 1 + rng.nextInt(below: trial < 100 ? 12 : 600)
            let k = rng.nextInt(below: n + 1)
            // Half the trials with many ties (a few distinct values, including ±0), half continuous.
            let v: [Float] = (0..<(rows * n)).map { _ in
                trial % 2 == 0 ? [Float(-1), -0.0, 0, 2, -3][rng.nextInt(below: 5)] : rng.nextFloat() * 8 - 4
            }
            let (values, indices) = Tensor(v, shape: [rows, n]).topk(k)
            // Reference: a stable sort by descending value (ties keep the lower index first).
            var expectIdx: [Int] = []
            for r in 0..<rows {
                let order = (0..<n).sorted { a, b in
                    let va = v[r * n + a], vb = v[r * n + b]
                    return va != vb ? va > vb : a < b
                }
                expectIdx += order.prefix(k)
            }
            #expect(indices == expectIdx, "trial \(trial): \(rows)×\(n), k \(k)")
            #expect(values.values == (0..<(rows * k)).map { v[($0 / max(k, 1)) * n + expectIdx[$0]] })
        }
    }

    @Test func matmulMatchesReferenceAndGradients() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let m = 3, k = 4, n = 5
            let a = testTensor(ta ? [2, k, m] : [2, m, k], seed: 5)
            let b = testTensor(tb ? [2, n, k] : [2, k, n], seed: 6)
            let c = Tensor.matmul(a, b, transA: ta, transB: tb)
            #expect(c.shape == [2, m, n])
            var ref = [Float](repeating: 0, count: m * n)
            for bi in 0..<2 {
                sgemmReference(transA: ta, transB: tb, m: m, n: n, k: k, a: a.data + bi * m * k, lda: ta ? m : k,
                               b: b.data + bi * k * n, ldb: tb ? k : n, c: &ref, ldc: n)
                #expect(allClose(Array(c.values[(bi * m * n)..<((bi + 1) * m * n)]), ref).passed)
            }
            #expect(gradCheck([a, b]) { Tensor.matmul($0[0], $0[1], transA: ta, transB: tb) }.passed, "ta \(ta) tb \(tb)")
            // A shared 2-D right operand (folded into one GEMM) and a shared 2-D left operand.
            let b2 = testTensor(tb ? [n, k] : [k, n], seed: 7)
            #expect(gradCheck([a, b2]) { Tensor.matmul($0[0], $0[1], transA: ta, transB: tb) }.passed, "shared B")
            let a2 = testTensor(ta ? [k, m] : [m, k], seed: 8)
            #expect(gradCheck([a2, b]) { Tensor.matmul($0[0], $0[1], transA: ta, transB: tb) }.passed, "shared A")
        }
    }

    @Test func linearEqualsComposedAndGradients() {
        let x = testTensor([2, 3, 4], seed: 9), w = testTensor([5, 4], seed: 10), b = testTensor([5], seed: 11)
        let fused = Tensor.linear(x, weight: w, bias: b)
        let composed = Tensor.matmul(x, w, transB: true) + b
        #expect(allClose(fused, composed, rtol: 1e-5, atol: 1e-6).passed)
        #expect(gradCheck([x, w, b]) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }.passed)
        #expect(gradCheck([x, w]) { Tensor.linear($0[0], weight: $0[1], bias: nil) }.passed)
    }
}
