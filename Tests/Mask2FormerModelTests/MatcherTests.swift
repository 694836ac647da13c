// Tests of the Hungarian matcher: an obvious hand-built assignment and the cost formulas against per-pair loops.
// Reference semantics: Mask2Former HungarianMatcher (docs/model.md#matcher), detectron2 point_sample (#resampling).
import Foundation
import Testing
import TensorCore
import _TestSupport
import Mask2FormerModel

/// Double references and builders shared by the matcher and criterion tests.
enum MatcherRef {
    /// Bilinear point sample of one row-major `h×w` map at `(x, y) ∈ [0,1]²`, align_corners=False, zero
    /// padding, in Double (reads pixel `(x·W − 0.5, y·H − 0.5)`).
    static func referencePointSample(_ map: UnsafePointer<Float>, h: Int, w: Int, x: Float, y: Float) -> Double {
        let u = Double(x) * Double(w) - 0.5, v = Double(y) * Double(h) - 0.5
        let x0 = Int(Foundation.floor(u)), y0 = Int(Foundation.floor(v))
        let ax = u - Double(x0), ay = v - Double(y0)
        var s = 0.0
        for (dy, wy) in [(0, 1 - ay), (1, ay)] {
            for (dx, wx) in [(0, 1 - ax), (1, ax)] {
                let yy = y0 + dy, xx = x0 + dx
                if yy >= 0 && yy < h && xx >= 0 && xx < w { s += wy * wx * Double(map[yy * w + xx]) }
            }
        }
        return s
    }

    /// Stable log(1 + eˣ) in Double.
    static func referenceSoftplus(_ x: Double) -> Double { Swift.max(x, 0) + Foundation.log1p(Foundation.exp(-Swift.abs(x))) }

    static func referenceSigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }

    /// `[N, H, W]` GT masks of 0/1 from a predicate on the pixel centre `(x, y) ∈ [0,1]²`.
    static func maskStack(_ predicates: [(Double, Double) -> Bool], height: Int, width: Int) -> Tensor {
        var v: [Float] = []
        for f in predicates {
            for i in 0..<height {
                for j in 0..<width { v.append(f((Double(j) + 0.5) / Double(width), (Double(i) + 0.5) / Double(height)) ? 1 : 0) }
            }
        }
        return Tensor(v, shape: [predicates.count, height, width])
    }

    /// Mask logits `[Q, H, W]`: `+a` where the predicate holds at the pixel centre, `−a` elsewhere.
    static func logitStack(_ predicates: [(Double, Double) -> Bool], height: Int, width: Int, amplitude: Float = 6) -> Tensor {
        let m = maskStack(predicates, height: height, width: width)
        return Tensor(m.values.map { $0 > 0.5 ? amplitude : -amplitude }, shape: m.shape)
    }
}

@Suite struct MatcherTests {
    @Test func handBuiltObviousAssignment() {
        // Targets: 0 = left half (class 2), 1 = right half (class 0); GT at 16×16, predictions 4×4.
        let left: (Double, Double) -> Bool = { x, _ in x < 0.5 }
        let right: (Double, Double) -> Bool = { x, _ in x >= 0.5 }
        let none: (Double, Double) -> Bool = { _, _ in false }
        let masks = MatcherRef.maskStack([left, right], height: 16, width: 16)
        let labels = [2, 0]
        // Query 0 predicts the right half as class 0, query 1 nothing (no-object), query 2 the left half as class 2.
        let maskLogits = MatcherRef.logitStack([right, none, left], height: 4, width: 4)
        let classLogits = Tensor([4, 0, 0, 0,
                                  0, 0, 0, 4,
                                  0, 0, 4, 0], shape: [3, 4])
        var rng = RNG(seed: 3, stream: 1)
        let points = Tensor.uniform([64, 2], rng: &rng)
        let matcher = HungarianMatcher()
        let m = matcher.match(classLogits: classLogits, maskLogits: maskLogits, labels: labels, masks: masks, points: points)
        #expect(m == MatchIndices(queries: [0, 2], targets: [1, 0]))

        // Masks alone decide when the classes are uninformative.
        let flat = Tensor.zeros([3, 4])
        let m2 = matcher.match(classLogits: flat, maskLogits: maskLogits, labels: labels, masks: masks, points: points)
        #expect(m2 == MatchIndices(queries: [0, 2], targets: [1, 0]))

        // Fewer queries than targets: min(Q, N) pairs, sorted by query.
        let top: (Double, Double) -> Bool = { _, y in y < 0.5 }
        let masks3 = MatcherRef.maskStack([left, top, right], height: 16, width: 16)
        let logits2 = MatcherRef.logitStack([right, top], height: 4, width: 4)
        let m3 = matcher.match(classLogits: Tensor.zeros([2, 4]), maskLogits: logits2, labels: [1, 1, 1],
                               masks: masks3, points: points)
        #expect(m3 == MatchIndices(queries: [0, 1], targets: [2, 1]))

        // No targets: no pairs.
        let m4 = matcher.match(classLogits: classLogits, maskLogits: maskLogits, labels: [],
                               masks: Tensor.zeros([0, 16, 16]), points: points)
        #expect(m4 == .empty)
    }

    @Test func costFormulasMatchPerPairLoops() {
        let q = 5, k = 3, h = 6, w = 7, n = 3, hg = 12, wg = 14, p = 50
        let classLogits = testTensor([q, k + 1], seed: 21, low: -2, high: 2, requiresGrad: false)
        let maskLogits = testTensor([q, h, w], seed: 22, low: -4, high: 4, requiresGrad: false)
        var rng = RNG(seed: 23, stream: 1)
        let masks = Tensor((0..<(n * hg * wg)).map { _ in rng.nextInt(below: 2) == 0 ? 0 : 1 }, shape: [n, hg, wg])
        // Points including the borders (partly reading the zero padding).
        var pv = Tensor.uniform([p, 2], rng: &rng).values
        pv[0] = 0; pv[1] = 0; pv[2] = 1; pv[3] = 0.999; pv[4] = 0.01; pv[5] = 0.5
        let points = Tensor(pv, shape: [p, 2])
        let labels = [2, 0, 2]
        let weights = (cls: Float(2), mask: Float(5), dice: Float(5))
        let matcher = HungarianMatcher(classWeight: weights.cls, maskWeight: weights.mask, diceWeight: weights.dice)
        let c = matcher.costs(classLogits: classLogits, maskLogits: maskLogits, labels: labels, masks: masks, points: points)
        #expect(c.classCost.shape == [q, n] && c.maskCost.shape == [q, n] && c.diceCost.shape == [q, n])

        var refClass = [Float](), refMask = [Float](), refDice = [Float](), refTotal = [Float]()
        for i in 0..<q {
            let row = (0...k).map { Double(classLogits[i, $0]) }
            let mx = row.max()!
            let z = row.reduce(0) { $0 + Foundation.exp($1 - mx) }
            let xs = (0..<p).map { MatcherRef.referencePointSample(maskLogits.data + i * h * w, h: h, w: w,
                                                        x: pv[2 * $0], y: pv[2 * $0 + 1]) }
            for j in 0..<n {
                let cc = -Foundation.exp(row[labels[j]] - mx) / z
                let ts = (0..<p).map { MatcherRef.referencePointSample(masks.data + j * hg * wg, h: hg, w: wg,
                                                            x: pv[2 * $0], y: pv[2 * $0 + 1]) }
                var bce = 0.0, inter = 0.0, sumS = 0.0, sumT = 0.0
                for e in 0..<p {
                    let x = xs[e], t = ts[e]
                    bce += t * MatcherRef.referenceSoftplus(-x) + (1 - t) * MatcherRef.referenceSoftplus(x)
                    let s = MatcherRef.referenceSigmoid(x)
                    inter += s * t; sumS += s; sumT += t
                }
                let cm = bce / Double(p)
                let cd = 1 - (2 * inter + 1) / (sumS + sumT + 1)
                refClass.append(Float(cc)); refMask.append(Float(cm)); refDice.append(Float(cd))
                refTotal.append(Float(Double(weights.mask) * cm + Double(weights.cls) * cc + Double(weights.dice) * cd))
            }
        }
        #expect(allClose(c.classCost.values, refClass).passed)
        let maskReport = allClose(c.maskCost.values, refMask)
        #expect(maskReport.passed, "\(maskReport)")
        let diceReport = allClose(c.diceCost.values, refDice)
        #expect(diceReport.passed, "\(diceReport)")
        let totalReport = allClose(c.total.values, refTotal)
        #expect(totalReport.passed, "\(totalReport)")

        // The assignment is the LSAP optimum of the total cost.
        let m = matcher.match(classLogits: classLogits, maskLogits: maskLogits, labels: labels, masks: masks, points: points)
        let cost = c.total.values.map { Double($0) }
        let best = LSAPRef.bruteForceAssignmentTotal(cost, rows: q, cols: n)!
        let got = zip(m.queries, m.targets).reduce(0.0) { $0 + cost[$1.0 * n + $1.1] }
        #expect(m.count == n && abs(got - best) <= 1e-9 * max(1, abs(best)))
    }

    @Test func matcherRunsWithoutRecording() {
        // Inputs that require grad: the matcher records nothing on the tape.
        let classLogits = testTensor([3, 4], seed: 31)
        let maskLogits = testTensor([3, 4, 4], seed: 32)
        let masks = MatcherRef.maskStack([{ x, _ in x < 0.3 }], height: 8, width: 8)
        var rng = RNG(seed: 33)
        let points = Tensor.uniform([20, 2], rng: &rng)
        Autograd.clearTape()
        let m = withGrad {
            HungarianMatcher().match(classLogits: classLogits, maskLogits: maskLogits, labels: [1], masks: masks, points: points)
        }
        #expect(m.count == 1)
        #expect(Autograd.tapeLength == 0)
    }
}

@Suite struct SharedPointSamplingTests {
    @Test func channelsLastSharedSamplingEqualsPerMapSampling() {
        var rng = RNG(seed: 8)
        let maps = Tensor.uniform([7, 9, 13], low: -3, high: 3, rng: &rng)
        // Points inside, on the border and outside the map.
        var pts = Tensor.uniform([50, 2], low: -0.1, high: 1.1, rng: &rng).values
        pts += [0, 0, 1, 1, 0.5, 0, 1, 0.5]
        let points = Tensor(pts, shape: [54, 2])
        let shared = withNoGrad { MaskPointSampling.shared(maps, points: points) }
        let repeated = Tensor(Array((0..<7).map { _ in pts }.joined()), shape: [7, 54, 2])
        let perMap = withNoGrad { MaskPointSampling.perMap(maps, points: repeated) }
        #expect(shared.shape == [7, 54] && shared.values == perMap.values)
    }
}
