// Tests of SemanticEvaluator against confusion matrices worked out by hand.
// Reference: detectron2 SemSegEvaluator (IoU over classes present in the ground truth, ignore pixels dropped).
import Datasets
import Evaluation
import Testing

@Suite struct SemanticMetricsTests {
    func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) < 1e-12 }

    // gt = [0,0,0,1,1,2], pred = [0,0,1,1,2,2]: tp = [2,1,1], posGT = [3,2,1], posPred = [2,2,2]
    // IoU = [2/3, 1/3, 1/2], mIoU = 1/2, fwIoU = 2/3·3/6 + 1/3·2/6 + 1/2·1/6 = 19/36, pACC = 4/6, mACC = (2/3+1/2+1)/3 = 13/18.
    let gt: [UInt8] = [0, 0, 0, 1, 1, 2]
    let pred: [Int] = [0, 0, 1, 1, 2, 2]

    @Test func perfectPrediction() throws {
        var e = SemanticEvaluator(numClasses: 3)
        let labels = LabelMap(width: 2, height: 2, labels: [0, 1, 2, 2])
        try e.update(prediction: labels, groundTruth: labels)
        let r = e.result()
        #expect(r.meanIoU == 1 && r.frequencyWeightedIoU == 1 && r.pixelAccuracy == 1 && r.meanClassAccuracy == 1)
        #expect(r.perClassIoU == [1, 1, 1])
        #expect(r.scoredPixels == 4)
    }

    /// 4×4, GT: columns 0–1 class 0, columns 2–3 class 1; the prediction's boundary is one column to the right.
    /// Class 0: 8 TP, 4 FP → IoU ⅔; class 1: 4 TP, 4 FN → IoU ½; mIoU 7/12, pixel accuracy ¾.
    @Test func onePixelShiftOfABoundary() throws {
        let truth: [UInt8] = (0..<16).map { $0 % 4 < 2 ? 0 : 1 }
        let shifted: [Int] = (0..<16).map { $0 % 4 < 3 ? 0 : 1 }
        var e = SemanticEvaluator(numClasses: 2)
        try e.update(prediction: shifted, groundTruth: truth)
        let r = e.result()
        #expect(close(r.perClassIoU[0]!, 2.0 / 3) && close(r.perClassIoU[1]!, 0.5))
        #expect(close(r.meanIoU, 7.0 / 12) && close(r.pixelAccuracy, 0.75) && close(r.meanClassAccuracy, 0.75))
    }

    @Test func knownConfusion() throws {
        var e = SemanticEvaluator(numClasses: 3)
        try e.update(prediction: pred, groundTruth: gt)
        #expect(e.confusion == [2, 1, 0,
                                0, 1, 1,
                                0, 0, 1])
        let r = e.result()
        #expect(close(r.perClassIoU[0]!, 2.0 / 3) && close(r.perClassIoU[1]!, 1.0 / 3) && close(r.perClassIoU[2]!, 0.5))
        #expect(close(r.meanIoU, 0.5))
        #expect(close(r.frequencyWeightedIoU, 19.0 / 36))
        #expect(close(r.pixelAccuracy, 4.0 / 6))
        #expect(close(r.meanClassAccuracy, 13.0 / 18))
        #expect(close(r.perClassAccuracy[0]!, 2.0 / 3) && close(r.perClassAccuracy[1]!, 0.5) && r.perClassAccuracy[2] == 1)
    }

    @Test func ignorePixelsExcluded() throws {
        var plain = SemanticEvaluator(numClasses: 3)
        try plain.update(prediction: pred, groundTruth: gt)
        var withIgnore = SemanticEvaluator(numClasses: 3, ignoreLabel: 255)
        // Whatever is predicted on an ignore pixel (even an out-of-range class) does not count.
        try withIgnore.update(prediction: pred + [0, 1, 2, 7], groundTruth: gt + [255, 255, 255, 255])
        #expect(withIgnore.confusion == plain.confusion)
        #expect(withIgnore.result() == plain.result())
        #expect(withIgnore.result().scoredPixels == 6)
    }

    @Test func absentClassesExcludedFromMean() throws {
        // Class 3 appears nowhere: nil IoU and the mean is unchanged.
        var e = SemanticEvaluator(numClasses: 4)
        try e.update(prediction: pred, groundTruth: gt)
        let r = e.result()
        #expect(r.perClassIoU[3] == nil && r.perClassAccuracy[3] == nil)
        #expect(close(r.meanIoU, 0.5) && close(r.meanClassAccuracy, 13.0 / 18))
        // A class only predicted (absent from GT) is excluded too, as detectron2's iou_valid = pos_gt > 0 ∧ union > 0;
        // its pixels still cost the GT class: IoU_0 = 1/2.
        var f = SemanticEvaluator(numClasses: 2)
        try f.update(prediction: [0, 1], groundTruth: [UInt8]([0, 0]))
        let s = f.result()
        #expect(s.perClassIoU == [0.5, nil])
        #expect(s.meanIoU == 0.5 && s.pixelAccuracy == 0.5 && s.frequencyWeightedIoU == 0.5)
    }

    @Test func emptyEvaluatorIsNaN() {
        let r = SemanticEvaluator(numClasses: 2).result()
        #expect(r.meanIoU.isNaN && r.pixelAccuracy.isNaN && r.scoredPixels == 0)
    }

    @Test func mergeEqualsOneEvaluator() throws {
        let images: [([Int], [UInt8])] = [
            (pred, gt),
            ([2, 2, 0, 1], [2, 0, 0, 255]),
            ([1, 1, 1, 0, 0], [1, 2, 1, 0, 255]),
        ]
        var all = SemanticEvaluator(numClasses: 3)
        var a = SemanticEvaluator(numClasses: 3), b = SemanticEvaluator(numClasses: 3)
        for (i, (p, g)) in images.enumerated() {
            try all.update(prediction: p, groundTruth: g)
            if i % 2 == 0 { try a.update(prediction: p, groundTruth: g) } else { try b.update(prediction: p, groundTruth: g) }
        }
        try a.merge(b)
        #expect(a == all)
        #expect(a.result() == all.result())
        let rebuilt = try SemanticEvaluator(numClasses: 3, confusion: all.confusion)
        #expect(rebuilt.result() == all.result())
        #expect(throws: EvaluationError.self) { try a.merge(SemanticEvaluator(numClasses: 4)) }
    }

    @Test func badInputsThrow() {
        var e = SemanticEvaluator(numClasses: 3)
        #expect(throws: EvaluationError.self) { try e.update(prediction: [0, 1], groundTruth: [UInt8]([0])) }
        #expect(throws: EvaluationError.self) { try e.update(prediction: [3], groundTruth: [UInt8]([0])) }
        #expect(throws: EvaluationError.self) { try e.update(prediction: [0], groundTruth: [UInt8]([5])) }
        #expect(e.result().scoredPixels == 0)
    }
}
