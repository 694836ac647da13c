// Tests of LayerConsistencyEvaluator (docs/model.md#layer-consistency) on hand-built masks with IoUs worked out by hand.
import Evaluation
import TensorCore
import Testing

@Suite struct LayerConsistencyTests {
    func close(_ a: Double?, _ b: Double) -> Bool { a.map { abs($0 - b) < 1e-12 } ?? false }

    /// `[Q, 1, W]` logits from per-query binary rows: 1 → +2 (σ > 0.5), 0 → −2.
    func masks(_ rows: [[Int]]) -> Tensor {
        Tensor(rows.flatMap { $0.map { $0 == 1 ? Float(2) : Float(-2) } }, shape: [rows.count, 1, rows[0].count])
    }

    @Test func identicalLayersGiveOne() throws {
        var e = LayerConsistencyEvaluator(layers: 3)
        let m = masks([[1, 1, 0, 0], [0, 0, 1, 1]])
        let pairs: [(query: Int, target: Int)] = [(query: 0, target: 0), (query: 1, target: 1)]
        try e.update(maskLogits: [m, m, m], matches: [pairs, pairs, pairs])
        let r = e.result()
        #expect(r.count == 3)
        #expect(r[0].mIoU == 1 && r[1].mIoU == 1 && r[2].mIoU == nil)
        #expect(r.allSatisfy { $0.util == 1 })
    }

    // q0: [1,1,0,0] → [0,1,1,0]: 1/3; q1: [1,1,1,1] → [1,1,0,0]: 1/2; q2 unmatched at the last layer (ignored).
    @Test func halfOverlapping() throws {
        var e = LayerConsistencyEvaluator(layers: 2)
        let a = masks([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
        let b = masks([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]])
        try e.update(maskLogits: [a, b], matches: [[(query: 0, target: 0), (query: 2, target: 1)],
                                                   [(query: 0, target: 0), (query: 1, target: 1)]])
        let r = e.result()
        #expect(close(r[0].mIoU, (1.0 / 3 + 0.5) / 2))
        #expect(e.iouCount == [2])
        // Layer 0: q0 keeps target 0; q2 is unmatched at the last layer → 1/2.
        #expect(close(r[0].util, 0.5) && r[1].util == 1)
    }

    @Test func twoEmptyMasksHaveIoUOne() throws {
        var e = LayerConsistencyEvaluator(layers: 2)
        let m = masks([[0, 0, 0]])
        try e.update(maskLogits: [m, m], matches: [[], [(query: 0, target: 3)]])
        #expect(e.result()[0].mIoU == 1)
        #expect(e.result()[0].util == nil)  // nothing matched at layer 0
    }

    @Test func disjointMasksHaveIoUZero() throws {
        var e = LayerConsistencyEvaluator(layers: 2)
        try e.update(maskLogits: [masks([[1, 0]]), masks([[0, 1]])], matches: [[(query: 0, target: 0)], [(query: 0, target: 0)]])
        #expect(e.result()[0].mIoU == 0)
    }

    // Layer 0: q0→0, q1→1, q2→2; layer 1: q0→1, q1→0, q2→2; last: q0→0, q2→2 (q1 unmatched).
    // Util_0 = |{q0, q2}|/3 = 2/3; Util_1 = |{q2}|/3 = 1/3; Util_2 = 1.
    @Test func utilizationWithChangingTargets() throws {
        var e = LayerConsistencyEvaluator(layers: 3)
        let m = masks([[1], [1], [1]])
        try e.update(maskLogits: [m, m, m],
                     matches: [[(query: 0, target: 0), (query: 1, target: 1), (query: 2, target: 2)],
                               [(query: 0, target: 1), (query: 1, target: 0), (query: 2, target: 2)],
                               [(query: 0, target: 0), (query: 2, target: 2)]])
        let r = e.result()
        #expect(close(r[0].util, 2.0 / 3) && close(r[1].util, 1.0 / 3) && r[2].util == 1)
        #expect(e.keptCount == [2, 1, 2] && e.matchedCount == [3, 3, 2])
    }

    // Image 1: one query, IoU 1/3. Image 2: two queries, IoUs 1 and 1/2. Pooled mean = (1/3 + 1 + 1/2)/3 = 11/18.
    func image1(_ e: inout LayerConsistencyEvaluator) throws {
        try e.update(maskLogits: [masks([[1, 1, 0, 0]]), masks([[0, 1, 1, 0]])],
                     matches: [[(query: 0, target: 0)], [(query: 0, target: 0)]])
    }
    func image2(_ e: inout LayerConsistencyEvaluator) throws {
        try e.update(maskLogits: [masks([[1, 0, 1, 0], [1, 1, 1, 1]]), masks([[1, 0, 1, 0], [0, 0, 1, 1]])],
                     matches: [[(query: 0, target: 1)], [(query: 0, target: 0), (query: 1, target: 1)]])
    }

    @Test func closedFormMeanOverTwoImages() throws {
        var e = LayerConsistencyEvaluator(layers: 2)
        try image1(&e); try image2(&e)
        let r = e.result()
        #expect(close(r[0].mIoU, 11.0 / 18))
        // Layer 0: image 1 q0 kept; image 2 q0 target 1 → 0 not kept → 1/2.
        #expect(close(r[0].util, 0.5))
        #expect(e.images == 2)
    }

    @Test func mergeEqualsOneEvaluator() throws {
        var all = LayerConsistencyEvaluator(layers: 2), a = LayerConsistencyEvaluator(layers: 2), b = LayerConsistencyEvaluator(layers: 2)
        try image1(&all); try image2(&all)
        try image1(&a); try image2(&b)
        try a.merge(b)
        #expect(a == all)
        var other = LayerConsistencyEvaluator(layers: 3)
        #expect(throws: EvaluationError.self) { try other.merge(a) }
    }

    @Test func invalidInputsThrowAndLeaveStateUnchanged() throws {
        var e = LayerConsistencyEvaluator(layers: 2)
        let m = masks([[1, 0]])
        #expect(throws: EvaluationError.self) { try e.update(maskLogits: [m], matches: [[], []]) }
        #expect(throws: EvaluationError.self) { try e.update(maskLogits: [m, m], matches: [[]]) }
        #expect(throws: EvaluationError.self) { try e.update(maskLogits: [m, masks([[1, 0, 1]])], matches: [[], []]) }
        #expect(throws: EvaluationError.self) { try e.update(maskLogits: [m, m], matches: [[(query: 1, target: 0)], []]) }
        #expect(throws: EvaluationError.self) {
            try e.update(maskLogits: [m, m], matches: [[], [(query: 0, target: 0), (query: 0, target: 1)]])
        }
        #expect(e == LayerConsistencyEvaluator(layers: 2))
    }

    @Test func tableAndJSON() throws {
        var e = LayerConsistencyEvaluator(layers: 2)
        try image1(&e)
        let t = e.table()
        #expect(t.contains("33.33") && t.contains("100.00"))
        let j = e.jsonObject()
        #expect(j["images"] as? Int == 1)
        let rows = try #require(j["layers"] as? [[String: Any]])
        #expect(rows.count == 2)
        #expect(close(rows[0]["mIoU"] as? Double, 1.0 / 3))
        #expect(rows[1]["mIoU"] == nil && rows[1]["util"] as? Double == 1)
    }
}
