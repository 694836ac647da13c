// Tests of PanopticEvaluator on tiny 1-row id maps whose PQ / SQ / RQ are worked out by hand.
// Reference: panopticapi evaluation.py (IoU > 0.5 matching, void removed from the union, crowd and void ignored for FP).
import Datasets
import Evaluation
import Testing

@Suite struct PanopticQualityTests {
    func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) < 1e-12 }

    /// A 1-row GT from per-pixel ids and (id, class, crowd) segments.
    func gt(_ ids: [UInt32], _ segs: [(UInt32, Int, Bool)]) -> PanopticTargets {
        PanopticTargets(width: ids.count, height: 1, ids: ids,
                        segments: segs.map { PanopticSegment(id: $0.0, classIndex: $0.1, isCrowd: $0.2) })
    }
    func pred(_ ids: [UInt32], _ segs: [(UInt32, Int)]) -> PanopticPrediction {
        PanopticPrediction(width: ids.count, height: 1, ids: ids, segments: segs.map { .init(id: $0.0, classIndex: $0.1) })
    }
    func ids(_ runs: (UInt32, Int)...) -> [UInt32] { runs.flatMap { [UInt32](repeating: $0.0, count: $0.1) } }

    @Test func perfectPrediction() throws {
        var e = PanopticEvaluator(isThing: [true, false, true])
        let m = ids((1, 3), (2, 4), (3, 2))
        try e.update(groundTruth: gt(m, [(1, 0, false), (2, 1, false), (3, 2, false)]),
                     prediction: pred(m, [(1, 0), (2, 1), (3, 2)]))
        let r = e.result()
        #expect(r.all == PanopticSummary(pq: 1, sq: 1, rq: 1, count: 3))
        #expect(r.things == PanopticSummary(pq: 1, sq: 1, rq: 1, count: 2))
        #expect(r.stuff == PanopticSummary(pq: 1, sq: 1, rq: 1, count: 1))
        #expect(r.perClass.allSatisfy { $0.truePositives == 1 && $0.falsePositives == 0 && $0.falseNegatives == 0 })
    }

    /// An empty prediction (every pixel void): every ground-truth segment is a false negative, PQ = SQ = RQ = 0
    /// for both categories, which still count (tp + fp + fn > 0).
    @Test func emptyPrediction() throws {
        var e = PanopticEvaluator(isThing: [true, false])
        try e.update(groundTruth: gt(ids((1, 30), (2, 70)), [(1, 0, false), (2, 1, false)]), prediction: pred(ids((0, 100)), []))
        let r = e.result()
        #expect(r.all == PanopticSummary(pq: 0, sq: 0, rq: 0, count: 2))
        #expect(r.perClass.allSatisfy { $0.falseNegatives == 1 && $0.truePositives == 0 && $0.falsePositives == 0 })
    }

    /// GT: thing 1 (class 0) on 100 pixels, stuff 2 (class 1) on 100. Prediction 1 covers the first `k` of
    /// thing 1, prediction 2 the remaining 200 − k pixels: IoU_thing = k/100, IoU_stuff = 100/(200 − k).
    @Test(arguments: [50, 51]) func matchThreshold(k: Int) throws {
        var e = PanopticEvaluator(isThing: [true, false])
        try e.update(groundTruth: gt(ids((1, 100), (2, 100)), [(1, 0, false), (2, 1, false)]),
                     prediction: pred(ids((1, k), (2, 200 - k)), [(1, 0), (2, 1)]))
        let r = e.result()
        let stuffIoU = 100.0 / Double(200 - k)
        #expect(r.perClass[1] == PanopticCategoryStat(iouSum: stuffIoU, truePositives: 1, falsePositives: 0, falseNegatives: 0))
        if k == 50 {
            // IoU exactly 0.5 is not a match: one FP and one FN, PQ 0 (SQ 0 by panopticapi's convention).
            #expect(r.perClass[0] == PanopticCategoryStat(iouSum: 0, truePositives: 0, falsePositives: 1, falseNegatives: 1))
            #expect(r.things == PanopticSummary(pq: 0, sq: 0, rq: 0, count: 1))
        } else {
            #expect(r.perClass[0].truePositives == 1 && close(r.perClass[0].iouSum, 0.51))
            #expect(close(r.things.pq, 0.51) && close(r.things.sq, 0.51) && r.things.rq == 1)
        }
        #expect(close(r.stuff.pq, stuffIoU))
        #expect(close(r.all.pq, (r.things.pq + r.stuff.pq) / 2) && r.all.count == 2)
    }

    @Test func voidRemovedFromUnion() throws {
        // GT thing on 4 pixels, 2 void pixels; prediction covers all 6: union = 6 + 4 − 4 − 2 = 4, IoU 1.
        var e = PanopticEvaluator(isThing: [true])
        try e.update(groundTruth: gt(ids((1, 4), (0, 2)), [(1, 0, false)]), prediction: pred(ids((1, 6)), [(1, 0)]))
        #expect(e.result().all == PanopticSummary(pq: 1, sq: 1, rq: 1, count: 1))
    }

    @Test func unmatchedPredictionOnVoid() throws {
        let g = gt(ids((1, 6), (0, 4)), [(1, 0, false)])
        // Prediction 2 (class 1) lies 4/5 on void: not a false positive, class 1 does not count.
        var e = PanopticEvaluator(isThing: [true, false])
        try e.update(groundTruth: g, prediction: pred(ids((1, 5), (2, 5)), [(1, 0), (2, 1)]))
        var r = e.result()
        #expect(r.perClass[0] == PanopticCategoryStat(iouSum: 5.0 / 6, truePositives: 1, falsePositives: 0, falseNegatives: 0))
        #expect(!r.perClass[1].isCounted)
        #expect(close(r.all.pq, 5.0 / 6) && r.all.count == 1 && r.stuff.count == 0)
        // Exactly half on void (4 of 8) is a false positive; prediction 1 (2 pixels, IoU 1/3) is unmatched too.
        e = PanopticEvaluator(isThing: [true, false])
        try e.update(groundTruth: g, prediction: pred(ids((1, 2), (2, 8)), [(1, 0), (2, 1)]))
        r = e.result()
        #expect(r.perClass[0] == PanopticCategoryStat(iouSum: 0, truePositives: 0, falsePositives: 1, falseNegatives: 1))
        #expect(r.perClass[1] == PanopticCategoryStat(iouSum: 0, truePositives: 0, falsePositives: 1, falseNegatives: 0))
        #expect(r.all == PanopticSummary(pq: 0, sq: 0, rq: 0, count: 2))
    }

    @Test func crowdRegions() throws {
        // GT: crowd of class 0 on pixels 0..<6, stuff class 1 on 6..<10. Classes 0 and 2 are things.
        let g = gt(ids((1, 6), (2, 4)), [(1, 0, true), (2, 1, false)])
        // A class-0 prediction on the crowd region is neither matched nor a FP, and the crowd is no FN.
        var e = PanopticEvaluator(isThing: [true, false, true])
        try e.update(groundTruth: g, prediction: pred(ids((1, 6), (2, 4)), [(1, 0), (2, 1)]))
        var r = e.result()
        #expect(!r.perClass[0].isCounted)
        #expect(r.all == PanopticSummary(pq: 1, sq: 1, rq: 1, count: 1))
        #expect(r.things == PanopticSummary(pq: 0, sq: 0, rq: 0, count: 0))
        // A prediction of another class (2) on that crowd region is a false positive.
        e = PanopticEvaluator(isThing: [true, false, true])
        try e.update(groundTruth: g, prediction: pred(ids((1, 6), (2, 4)), [(1, 2), (2, 1)]))
        r = e.result()
        #expect(r.perClass[2] == PanopticCategoryStat(iouSum: 0, truePositives: 0, falsePositives: 1, falseNegatives: 0))
        #expect(r.all == PanopticSummary(pq: 0.5, sq: 0.5, rq: 0.5, count: 2))
        #expect(r.things == PanopticSummary(pq: 0, sq: 0, rq: 0, count: 1))
        #expect(r.stuff == PanopticSummary(pq: 1, sq: 1, rq: 1, count: 1))
        // Crowd + void together: 2 crowd + 2 void of 5 pixels > 1/2 → ignored.
        e = PanopticEvaluator(isThing: [true, false, true])
        try e.update(groundTruth: gt(ids((1, 2), (0, 2), (2, 6)), [(1, 0, true), (2, 1, false)]),
                     prediction: pred(ids((1, 5), (2, 5)), [(1, 0), (2, 1)]))
        r = e.result()
        #expect(!r.perClass[0].isCounted)
        #expect(close(r.perClass[1].iouSum, 5.0 / 6) && r.perClass[1].truePositives == 1)
    }

    @Test func thingsAndStuffSplit() throws {
        // Thing class 0: IoU 3/4 and a missed second instance (FN): PQ = 0.75 / 1.5 = 1/2, SQ 3/4, RQ 2/3.
        // Stuff class 1: IoU 4/5: PQ = SQ = 4/5, RQ 1.
        var e = PanopticEvaluator(isThing: [true, false])
        try e.update(groundTruth: gt(ids((1, 4), (2, 4), (3, 2)), [(1, 0, false), (2, 1, false), (3, 0, false)]),
                     prediction: pred(ids((1, 3), (2, 5), (0, 2)), [(1, 0), (2, 1)]))
        let r = e.result()
        #expect(r.perClass[0] == PanopticCategoryStat(iouSum: 0.75, truePositives: 1, falsePositives: 0, falseNegatives: 1))
        #expect(close(r.things.pq, 0.5) && close(r.things.sq, 0.75) && close(r.things.rq, 2.0 / 3) && r.things.count == 1)
        #expect(close(r.stuff.pq, 0.8) && close(r.stuff.sq, 0.8) && r.stuff.rq == 1 && r.stuff.count == 1)
        #expect(close(r.all.pq, 0.65) && close(r.all.sq, 0.775) && close(r.all.rq, 5.0 / 6))
    }

    @Test func mergeEqualsOneEvaluator() throws {
        let images: [(PanopticTargets, PanopticPrediction)] = [
            (gt(ids((1, 100), (2, 100)), [(1, 0, false), (2, 1, false)]), pred(ids((1, 51), (2, 149)), [(1, 0), (2, 1)])),
            (gt(ids((1, 6), (0, 4)), [(1, 0, false)]), pred(ids((1, 2), (2, 8)), [(1, 0), (2, 1)])),
            (gt(ids((1, 6), (2, 4)), [(1, 0, true), (2, 1, false)]), pred(ids((1, 6), (2, 4)), [(1, 0), (2, 1)])),
        ]
        var all = PanopticEvaluator(isThing: [true, false])
        var a = PanopticEvaluator(isThing: [true, false]), b = PanopticEvaluator(isThing: [true, false])
        for (i, (g, p)) in images.enumerated() {
            try all.update(groundTruth: g, prediction: p)
            if i == 1 { try b.update(groundTruth: g, prediction: p) } else { try a.update(groundTruth: g, prediction: p) }
        }
        try b.merge(a)  // different accumulation order: compare with a tolerance
        for c in 0..<2 {
            #expect(close(b.stats[c].iouSum, all.stats[c].iouSum))
            #expect(b.stats[c].truePositives == all.stats[c].truePositives)
            #expect(b.stats[c].falsePositives == all.stats[c].falsePositives)
            #expect(b.stats[c].falseNegatives == all.stats[c].falseNegatives)
        }
        #expect(close(b.result().all.pq, all.result().all.pq))
        let rebuilt = try PanopticEvaluator(isThing: [true, false], stats: all.stats)
        #expect(rebuilt.result() == all.result())
        #expect(throws: EvaluationError.self) { try a.merge(PanopticEvaluator(isThing: [true])) }
    }

    @Test func badInputsThrow() {
        var e = PanopticEvaluator(isThing: [true, false])
        let g = gt(ids((1, 4)), [(1, 0, false)])
        // An id in the map with no segment, a segment with no pixel, a class out of range, a size mismatch.
        #expect(throws: EvaluationError.self) { try e.update(groundTruth: g, prediction: pred(ids((1, 2), (5, 2)), [(1, 0)])) }
        #expect(throws: EvaluationError.self) { try e.update(groundTruth: g, prediction: pred(ids((1, 4)), [(1, 0), (2, 1)])) }
        #expect(throws: EvaluationError.self) { try e.update(groundTruth: g, prediction: pred(ids((1, 4)), [(1, 7)])) }
        #expect(throws: EvaluationError.self) { try e.update(groundTruth: g, prediction: pred(ids((1, 3)), [(1, 0)])) }
        #expect(e.result().all.count == 0)
    }
}
