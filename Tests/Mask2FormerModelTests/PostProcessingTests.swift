// Tests of inference post-processing: resampling order, semantic / instance / panoptic inference on hand-built predictions.
// Reference semantics: maskformer_model.py inference + detectron2 sem_seg_postprocess (docs/model.md#inference, bilinear per #resampling).
import Foundation
import Testing
import TensorCore
import _TestSupport
import Mask2FormerModel

/// Builders and Double references for the post-processing tests.
fileprivate enum PostRef {
    /// `[Q, K+1]` class logits whose softmax is `probabilities` (rows summing to 1): `log p`.
    static func classLogits(_ probabilities: [[Double]]) -> Tensor {
        let k1 = probabilities[0].count
        return Tensor(probabilities.flatMap { row in row.map { Float(Foundation.log($0)) } }, shape: [probabilities.count, k1])
    }

    /// `[Q, H, W]` mask logits: `inside` where `predicate(q, y, x)`, else `outside`.
    static func masks(_ q: Int, _ h: Int, _ w: Int, inside: Float = 6, outside: Float = -6,
                      _ predicate: (Int, Int, Int) -> Bool) -> Tensor {
        var v: [Float] = []
        for i in 0..<q { for y in 0..<h { for x in 0..<w { v.append(predicate(i, y, x) ? inside : outside) } } }
        return Tensor(v, shape: [q, h, w])
    }

    static func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }

    static func softmax(_ row: [Float]) -> [Double] {
        let m = Double(row.max()!)
        let e = row.map { Foundation.exp(Double($0) - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    /// Bilinear resize of row-major `[h, w]` maps in Double, straight from docs/model.md#resampling:
    /// `src = max((dst + 0.5)·in/out − 0.5, 0)`, `i0 = ⌊src⌋`, `i1 = min(i0 + 1, in − 1)`.
    static func resize(_ map: [Double], h: Int, w: Int, outH: Int, outW: Int) -> [Double] {
        func taps(_ d: Int, _ n: Int, _ o: Int) -> (Int, Int, Double) {
            let s = Swift.max((Double(d) + 0.5) * Double(n) / Double(o) - 0.5, 0)
            let i0 = Swift.min(Int(s), n - 1)
            return (i0, Swift.min(i0 + 1, n - 1), s - Double(i0))
        }
        var out: [Double] = []
        for y in 0..<outH {
            let (y0, y1, ly) = taps(y, h, outH)
            for x in 0..<outW {
                let (x0, x1, lx) = taps(x, w, outW)
                let top = (1 - lx) * map[y0 * w + x0] + lx * map[y0 * w + x1]
                let bottom = (1 - lx) * map[y1 * w + x0] + lx * map[y1 * w + x1]
                out.append((1 - ly) * top + ly * bottom)
            }
        }
        return out
    }

    /// Upsample to the padded size, crop, resize to the output size, per map, in Double.
    static func upsampleCropResize(_ m: Tensor, _ s: InferenceImageSize) -> [[Double]] {
        let q = m.shape[0], h = m.shape[1], w = m.shape[2]
        return (0..<q).map { i in
            let map = (0..<(h * w)).map { Double(m.data[i * h * w + $0]) }
            let up = resize(map, h: h, w: w, outH: s.paddedHeight, outW: s.paddedWidth)
            var crop: [Double] = []
            for y in 0..<s.imageHeight { for x in 0..<s.imageWidth { crop.append(up[y * s.paddedWidth + x]) } }
            return resize(crop, h: s.imageHeight, w: s.imageWidth, outH: s.outputHeight, outW: s.outputWidth)
        }
    }

    /// `Σ_q p_q[c]·σ(m_q)` for c < K in Double: `[K][H·W]`.
    static func semantic(_ cls: Tensor, _ maskLogits: [[Double]]) -> [[Double]] {
        let q = cls.shape[0], k1 = cls.shape[1], n = maskLogits[0].count
        let probs = (0..<q).map { softmax(Array(cls.values[($0 * k1)..<(($0 + 1) * k1)])) }
        return (0..<(k1 - 1)).map { c in
            (0..<n).map { p in (0..<q).reduce(0.0) { $0 + probs[$1][c] * sigmoid(maskLogits[$1][p]) } }
        }
    }

    /// Crop rows/columns of a `[C, H, W]` tensor with Tensor ops.
    static func crop(_ t: Tensor, _ h: Int, _ w: Int) -> Tensor {
        withNoGrad { t.slice(axis: 1, 0..<h).slice(axis: 2, 0..<w) }
    }
}

@Suite struct PostProcessingTests {
    // MARK: resampling

    @Test func upsampleCropResizeFollowsTheReferenceOrder() {
        var rng = RNG(seed: 41, stream: 3)
        let m = Tensor.uniform([3, 4, 5], low: -4, high: 4, rng: &rng)
        let size = InferenceImageSize(paddedHeight: 16, paddedWidth: 20, imageHeight: 13, imageWidth: 18,
                                      outputHeight: 7, outputWidth: 11)
        // Direct composition with Tensor.resizeBilinear (NHWC with C = 1): padded → crop → output.
        let direct: Tensor = withNoGrad {
            let up = Tensor.resizeBilinear(m.reshaped([3, 4, 5, 1]), height: 16, width: 20).reshaped([3, 16, 20])
            let cropped = PostRef.crop(up, 13, 18)
            return Tensor.resizeBilinear(cropped.reshaped([3, 13, 18, 1]), height: 7, width: 11).reshaped([3, 7, 11])
        }
        let fused = MaskPostProcessing.upsampleCropResize(m, size: size)
        let literal = MaskPostProcessing.semSegPostprocess(
            MaskPostProcessing.upsampleToPadded(m, paddedHeight: 16, paddedWidth: 20),
            imageHeight: 13, imageWidth: 18, outputHeight: 7, outputWidth: 11)
        #expect(fused.shape == [3, 7, 11] && literal.shape == [3, 7, 11])
        // Same kernel and operation order: equal up to float rounding of contractions.
        let r1 = allClose(fused, direct, rtol: 0, atol: 1e-6), r2 = allClose(literal, direct, rtol: 0, atol: 1e-6)
        #expect(r1.passed, "\(r1)")
        #expect(r2.passed, "\(r2)")
        // Independent Double reference of docs/model.md#resampling.
        let ref = PostRef.upsampleCropResize(m, size).flatMap { $0.map { Float($0) } }
        let r3 = allClose(fused.values, ref, rtol: 1e-5, atol: 1e-5)
        #expect(r3.passed, "\(r3)")
        // The fused crop equals the crop of the full upsample.
        let crop = MaskPostProcessing.upsampleCrop(m, size: size)
        let fullCrop = PostRef.crop(MaskPostProcessing.upsampleToPadded(m, paddedHeight: 16, paddedWidth: 20), 13, 18)
        let r4 = allClose(crop, fullCrop, rtol: 0, atol: 1e-6)
        #expect(r4.passed, "\(r4)")
        // Resizing straight from stride 4 to the output size is a different (wrong) answer here.
        let shortcut = MaskPostProcessing.resize(m, height: 7, width: 11)
        #expect(!allClose(shortcut, direct, rtol: 1e-3, atol: 1e-3).passed)
    }

    @Test func sameSizeResizeIsIdentity() {
        var rng = RNG(seed: 5, stream: 1)
        let m = Tensor.uniform([2, 8, 12], low: -3, high: 3, rng: &rng)
        let size = InferenceImageSize(paddedHeight: 32, paddedWidth: 48, imageHeight: 30, imageWidth: 41)
        let a = MaskPostProcessing.upsampleCropResize(m, size: size)
        let b = MaskPostProcessing.upsampleCrop(m, size: size)
        #expect(a.shape == [2, 30, 41] && a.values == b.values)
        let direct: Tensor = withNoGrad {
            PostRef.crop(Tensor.resizeBilinear(m.reshaped([2, 8, 12, 1]), height: 32, width: 48).reshaped([2, 32, 48]), 30, 41)
        }
        let r = allClose(a, direct, rtol: 0, atol: 1e-6)
        #expect(r.passed, "\(r)")
    }

    // MARK: semantic

    @Test func semanticTwoDisjointQueries() throws {
        // Query 0: class 0 on the top half, query 1: class 2 on the bottom half (stride-4 map 2×2).
        let cls = PostRef.classLogits([[0.9, 0.04, 0.03, 0.03], [0.02, 0.05, 0.9, 0.03]])
        let masks = Tensor([8, 8, -8, -8, -8, -8, 8, 8], shape: [2, 2, 2])
        let size = InferenceImageSize(paddedHeight: 8, paddedWidth: 8, imageHeight: 8, imageWidth: 8)
        let out = Mask2FormerPostProcessor(.semantic).process(classLogits: cls, maskLogits: masks, size: size)
        let sem = try #require(out.semantic)
        #expect(out.instances == nil && out.panoptic == nil)
        #expect(sem.scores.shape == [3, 8, 8] && sem.height == 8 && sem.width == 8)
        let expected = (0..<64).map { Int32($0 / 8 < 4 ? 0 : 2) }
        #expect(sem.labels == expected)
        // Scores against the Double einsum of the upsampled logits.
        let up = PostRef.upsampleCropResize(masks, size)
        let ref = PostRef.semantic(cls, up).flatMap { $0.map { Float($0) } }
        let r = allClose(sem.scores.values, ref, rtol: 1e-5, atol: 1e-5)
        #expect(r.passed, "\(r)")
    }

    @Test func semanticOrderDependsOnPostprocessFlag() throws {
        var rng = RNG(seed: 9, stream: 2)
        let cls = Tensor.normal([4, 4], std: 2, rng: &rng)
        let masks = Tensor.normal([4, 4, 6], std: 3, rng: &rng)
        let size = InferenceImageSize(paddedHeight: 16, paddedWidth: 24, imageHeight: 14, imageWidth: 21,
                                      outputHeight: 9, outputWidth: 13)
        let padded = MaskPostProcessing.upsampleToPadded(masks, paddedHeight: 16, paddedWidth: 24)
        // Semantic-only: inference at the padded size, then sem_seg_postprocess of the scores.
        let after = MaskPostProcessing.semSegPostprocess(
            MaskPostProcessing.semanticScores(classLogits: cls, maskLogits: padded),
            imageHeight: 14, imageWidth: 21, outputHeight: 9, outputWidth: 13)
        // Flag on: sem_seg_postprocess of the logits, then inference.
        let before = MaskPostProcessing.semanticScores(
            classLogits: cls, maskLogits: MaskPostProcessing.semSegPostprocess(
                padded, imageHeight: 14, imageWidth: 21, outputHeight: 9, outputWidth: 13))
        let gotAfter = try #require(Mask2FormerPostProcessor(.semantic).process(classLogits: cls, maskLogits: masks, size: size).semantic)
        var flagged = PostProcessingConfig.semantic
        flagged.semSegPostprocessingBeforeInference = true
        let gotBefore = try #require(Mask2FormerPostProcessor(flagged).process(classLogits: cls, maskLogits: masks, size: size).semantic)
        let r1 = allClose(gotAfter.scores, after, rtol: 1e-5, atol: 1e-6)
        let r2 = allClose(gotBefore.scores, before, rtol: 1e-5, atol: 1e-6)
        #expect(r1.passed, "\(r1)")
        #expect(r2.passed, "\(r2)")
        // The two orders differ (σ is not linear), so the flag matters.
        #expect(!allClose(after, before, rtol: 1e-4, atol: 1e-4).passed)
        // Scores against the Double einsum; labels are their argmax.
        let refBefore = PostRef.semantic(cls, PostRef.upsampleCropResize(masks, size)).flatMap { $0.map { Float($0) } }
        let r3 = allClose(gotBefore.scores.values, refBefore, rtol: 1e-5, atol: 1e-5)
        #expect(r3.passed, "\(r3)")
        let n = 9 * 13
        for p in 0..<n {
            let column = (0..<3).map { gotAfter.scores.data[$0 * n + p] }
            #expect(Int(gotAfter.labels[p]) == column.firstIndex(of: column.max()!)!)
        }
    }

    // MARK: instance

    @Test func instanceTopKOverQueriesTimesClasses() {
        // Q = 3, K = 3. Flattened class probabilities (q·K + c):
        // q0: .5 .4 .05 | q1: .1 .1 .7 | q2: .02 .03 .04 — q0 wins two classes; q1c0 and q1c1 tie.
        let cls = PostRef.classLogits([[0.5, 0.4, 0.05, 0.05], [0.1, 0.1, 0.7, 0.1], [0.02, 0.03, 0.04, 0.91]])
        let masks = Tensor([2, -1, 0.5, -3, 0, 1,
                            -1, -2, -3, -4, -5, -6,
                            1, 1, 1, 1, 1, 1], shape: [3, 2, 3])
        let list = MaskPostProcessing.instanceInference(classLogits: cls, maskLogits: masks, topK: 4)
        #expect(list.map { $0.queryIndex } == [1, 0, 0, 1])
        #expect(list.map { $0.label } == [2, 0, 1, 0])
        let classScores = [0.7, 0.5, 0.4, 0.1]
        // q0: logits > 0 at 2, 0.5 and 1 (0 is not > 0); q1: empty mask → score 0.
        let s = PostRef.self
        let q0Score = (s.sigmoid(2) + s.sigmoid(0.5) + s.sigmoid(1)) / (3 + 1e-6)
        let maskScores = [0.0, q0Score, q0Score, 0.0]
        for (i, r) in list.enumerated() {
            #expect(abs(Double(r.classScore) - classScores[i]) < 1e-6)
            #expect(abs(Double(r.maskScore) - maskScores[i]) < 1e-6)
            #expect(abs(Double(r.score) - classScores[i] * maskScores[i]) < 1e-6)
            #expect(r.height == 2 && r.width == 3)
        }
        #expect(list[1].mask == [1, 0, 1, 0, 0, 1] && list[2].mask == list[1].mask)
        #expect(list[0].mask == [0, 0, 0, 0, 0, 0])

        // k larger than Q·K takes every pair; the order is by class probability, ties by q·K + c.
        let all = MaskPostProcessing.instanceInference(classLogits: cls, maskLogits: masks, topK: 100)
        #expect(all.count == 9)
        #expect(all.map { $0.queryIndex * 3 + $0.label } == [5, 0, 1, 3, 4, 2, 8, 7, 6])
        let q2Score = s.sigmoid(1) * 6 / (6 + 1e-6)
        #expect(abs(Double(all[6].maskScore) - q2Score) < 1e-6)

        // Panoptic configs keep thing classes only (after the top-k).
        let things = MaskPostProcessing.instanceInference(classLogits: cls, maskLogits: masks, topK: 4, keepClasses: [0, 2])
        #expect(things.map { $0.queryIndex } == [1, 0, 1] && things.map { $0.label } == [2, 0, 0])
    }

    // MARK: panoptic

    /// H = 5, W = 12. Kept in query order: q0 thing 0 (cols 0–1), q1 stuff 1 (cols 2–3), q2 stuff 1
    /// (cols 4–5, merges with q1), q5 thing 0 (cols 5–7, visible 10/15 → dropped), q6 thing 0 (col 10,
    /// visible 4/5 = 0.8 → kept), q7 stuff 2 (pixel (0, 10)). Dropped before: q3 (class 2 at 0.7 ≤ 0.8,
    /// cols 8–9) and q4 (no-object, everywhere).
    fileprivate static func panopticProblem() -> (cls: Tensor, masks: Tensor) {
        let cls = PostRef.classLogits([
            [0.95, 0.02, 0.01, 0.02],
            [0.03, 0.90, 0.04, 0.03],
            [0.02, 0.92, 0.03, 0.03],
            [0.10, 0.10, 0.70, 0.10],
            [0.01, 0.02, 0.02, 0.95],
            [0.85, 0.05, 0.05, 0.05],
            [0.88, 0.04, 0.04, 0.04],
            [0.001, 0.003, 0.99, 0.006],
        ])
        let cols: [[Int]] = [[0, 1], [2, 3], [4, 5], [8, 9], Array(0..<12), [5, 6, 7], [10], []]
        let masks = PostRef.masks(8, 5, 12) { q, y, x in cols[q].contains(x) || (q == 7 && y == 0 && x == 10) }
        return (cls, masks)
    }

    @Test func panopticMergesStuffAndAppliesThresholds() {
        let (cls, masks) = PostProcessingTests.panopticProblem()
        let r = MaskPostProcessing.panopticInference(classLogits: cls, maskLogits: masks, objectMaskThreshold: 0.8,
                                                     overlapThreshold: 0.8, thingClasses: [0])
        #expect(r.height == 5 && r.width == 12)
        #expect(r.segments == [PanopticSegment(id: 1, categoryId: 0, isThing: true),
                               PanopticSegment(id: 2, categoryId: 1, isThing: false),
                               PanopticSegment(id: 3, categoryId: 0, isThing: true),
                               PanopticSegment(id: 4, categoryId: 2, isThing: false)])
        let columnIds: [Int32] = [1, 1, 2, 2, 2, 2, 0, 0, 0, 0, 3, 0]
        var expected: [Int32] = []
        for y in 0..<5 { for x in 0..<12 { expected.append(y == 0 && x == 10 ? 4 : columnIds[x]) } }
        #expect(r.ids == expected)
    }

    @Test func panopticThresholdEdges() {
        let (cls, masks) = PostProcessingTests.panopticProblem()
        // A stricter overlap threshold also drops q6 (visible 4/5); ids of later segments shift.
        let strict = MaskPostProcessing.panopticInference(classLogits: cls, maskLogits: masks, objectMaskThreshold: 0.8,
                                                          overlapThreshold: 0.81, thingClasses: [0])
        #expect(strict.segments.map { $0.categoryId } == [0, 1, 2])
        #expect(strict.ids[10] == 3 && strict.ids[12 + 10] == 0)
        // A lower object threshold admits q3 (class 2 at 0.7) and q5 is still dropped; class 2 is
        // stuff, so q7 merges into q3's segment.
        let loose = MaskPostProcessing.panopticInference(classLogits: cls, maskLogits: masks, objectMaskThreshold: 0.6,
                                                         overlapThreshold: 0.8, thingClasses: [0])
        #expect(loose.segments == [PanopticSegment(id: 1, categoryId: 0, isThing: true),
                                   PanopticSegment(id: 2, categoryId: 1, isThing: false),
                                   PanopticSegment(id: 3, categoryId: 2, isThing: false),
                                   PanopticSegment(id: 4, categoryId: 0, isThing: true)])
        #expect(loose.ids[8] == 3 && loose.ids[10] == 3 && loose.ids[12 + 10] == 4)
        // With class 0 as stuff, q0 and q6 merge into one segment.
        let allStuff = MaskPostProcessing.panopticInference(classLogits: cls, maskLogits: masks, objectMaskThreshold: 0.8,
                                                            overlapThreshold: 0.8, thingClasses: [])
        #expect(allStuff.segments.map { $0.id } == [1, 2, 3] && allStuff.segments.allSatisfy { !$0.isThing })
        #expect(allStuff.ids[12 + 10] == 1 && allStuff.ids[0] == 1)
        // Nothing above the object threshold: all void.
        let none = MaskPostProcessing.panopticInference(classLogits: cls, maskLogits: masks, objectMaskThreshold: 0.995,
                                                        overlapThreshold: 0.8, thingClasses: [0])
        #expect(none.segments.isEmpty && none.ids.allSatisfy { $0 == 0 } && none.ids.count == 60)
    }

    @Test func panopticArgmaxIsOverScoreTimesSigmoid() {
        // Two thing queries overlap everywhere: the higher score·σ owns each pixel.
        let cls = PostRef.classLogits([[0.9, 0.05, 0.05], [0.95, 0.03, 0.02]])
        // q0 logits 3 on the left half, 1 on the right; q1 logits 1 everywhere.
        // Left: 0.9·σ(3) = 0.857 > 0.95·σ(1) = 0.695 → q0; right: 0.9·σ(1) < 0.95·σ(1) → q1.
        let masks = PostRef.masks(2, 2, 4, inside: 3, outside: 1) { q, _, x in q == 0 && x < 2 }
        let r = MaskPostProcessing.panopticInference(classLogits: cls, maskLogits: masks, objectMaskThreshold: 0.8,
                                                     overlapThreshold: 0.5, thingClasses: [0, 1])
        // q0: visible 4 of 8 (0.5 ≥ 0.5) → id 1; q1: visible 4 of 8 → id 2.
        #expect(r.segments.map { $0.id } == [1, 2])
        #expect(r.ids == [1, 1, 2, 2, 1, 1, 2, 2])
    }

    // MARK: the whole per-image pipeline

    @Test func processorBatchMatchesPerImageSteps() throws {
        var rng = RNG(seed: 77, stream: 4)
        let b = 2, q = 5, k1 = 4, h = 4, w = 6
        let cls = Tensor.normal([b, q, k1], std: 3, rng: &rng)
        let masks = Tensor.normal([b, q, h, w], std: 4, rng: &rng)
        let sizes = [InferenceImageSize(paddedHeight: 16, paddedWidth: 24, imageHeight: 16, imageWidth: 20,
                                        outputHeight: 10, outputWidth: 12),
                     InferenceImageSize(paddedHeight: 16, paddedWidth: 24, imageHeight: 12, imageWidth: 24,
                                        outputHeight: 18, outputWidth: 36)]
        let config = PostProcessingConfig(semanticOn: true, instanceOn: true, panopticOn: true,
                                          objectMaskThreshold: 0.5, testTopKPerImage: 6, thingClasses: [0, 1])
        let out = Mask2FormerPostProcessor(config)(MaskPrediction(classLogits: cls, maskLogits: masks), sizes: sizes)
        #expect(out.count == 2)
        for i in 0..<b {
            let c = cls.slice(axis: 0, i..<(i + 1)).reshaped([q, k1])
            let m = masks.slice(axis: 0, i..<(i + 1)).reshaped([q, h, w])
            let s = sizes[i]
            let resized = MaskPostProcessing.semSegPostprocess(
                MaskPostProcessing.upsampleToPadded(m, paddedHeight: s.paddedHeight, paddedWidth: s.paddedWidth),
                imageHeight: s.imageHeight, imageWidth: s.imageWidth, outputHeight: s.outputHeight, outputWidth: s.outputWidth)
            let sem = try #require(out[i].semantic)
            let scores = MaskPostProcessing.semanticScores(classLogits: c, maskLogits: resized)
            let r = allClose(sem.scores, scores, rtol: 1e-5, atol: 1e-6)
            #expect(r.passed, "\(r)")
            #expect(sem.height == s.outputHeight && sem.width == s.outputWidth)
            let inst = try #require(out[i].instances)
            let refInst = MaskPostProcessing.instanceInference(classLogits: c, maskLogits: resized, topK: 6, keepClasses: [0, 1])
            #expect(inst.map { $0.label } == refInst.map { $0.label })
            #expect(inst.allSatisfy { $0.label < 2 && $0.mask.count == s.outputHeight * s.outputWidth })
            let pan = try #require(out[i].panoptic)
            let refPan = MaskPostProcessing.panopticInference(classLogits: c, maskLogits: resized, objectMaskThreshold: 0.5,
                                                              overlapThreshold: 0.8, thingClasses: [0, 1])
            #expect(pan.ids.count == s.outputHeight * s.outputWidth && pan.segments == refPan.segments)
        }
    }

    @Test func processorRecordsNothingOnTheTape() {
        let cls = Tensor([1, 2, 0.5, 0.1, -1, 2], shape: [2, 3], requiresGrad: true)
        let masks = Tensor((0..<32).map { Float($0 % 5) - 2 }, shape: [2, 4, 4], requiresGrad: true)
        Autograd.clearTape()
        let size = InferenceImageSize(paddedHeight: 16, paddedWidth: 16, imageHeight: 15, imageWidth: 13,
                                      outputHeight: 20, outputWidth: 17)
        let out = withGrad {
            Mask2FormerPostProcessor(.panoptic(thingClasses: [0])).process(classLogits: cls, maskLogits: masks, size: size)
        }
        #expect(Autograd.tapeLength == 0)
        #expect(out.semantic?.labels.count == 20 * 17 && out.panoptic?.ids.count == 20 * 17)
    }
}
