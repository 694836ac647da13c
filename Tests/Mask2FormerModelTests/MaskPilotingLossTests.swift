// Tests of the MP losses and of the whole training criterion (matching + MP) through a tiny MP decoder.
// Reference: docs/model.md#mp-losses (direct assignment, padding → no-object, normaliser num_masks × G) and #criterion.
import Mask2FormerModel
import NN
import Testing
import TensorCore
import _TestSupport

/// Points that depend only on (prediction, image/pairs, count), so repeated evaluations agree.
final class KeyedPointSource: PointSource {
    func draw(_ key: UInt64, _ shape: [Int]) -> Tensor {
        var rng = RNG(seed: 77, stream: key)
        return Tensor.uniform(shape, rng: &rng)
    }
    func matcherPoints(prediction: Int, image: Int, count: Int) -> Tensor { draw(UInt64(prediction * 100 + image), [count, 2]) }
    func oversamplePoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor { draw(UInt64(10_000 + prediction), [pairImages.count, count, 2]) }
    func randomPoints(prediction: Int, pairImages: [Int], count: Int) -> Tensor { draw(UInt64(20_000 + prediction), [pairImages.count, count, 2]) }
}

@Suite struct MaskPilotingLossTests {
    let setup = MaskPilotingTests()

    @Test func directAssignmentAndPadding() {
        let criterion = SetCriterion(numClasses: 4, numPoints: 12)
        let layout = MaskPilotingLayout(groups: 2, slotsPerGroup: 2, targetCounts: [2, 1])
        let targets = [MaskTargets(labels: [1, 3], masks: Tensor.ones([2, 8, 8])), MaskTargets(labels: [2], masks: Tensor.ones([1, 8, 8]))]
        // Class logits strongly favouring the right class on assigned slots and no-object on padding give ≈ 0 CE.
        var logits = [Float](repeating: -20, count: 2 * 4 * 5)
        let wanted = [[1, 3, 1, 3], [2, 4, 2, 4]]                  // image 1 slot 1 of each group is padding → class 4
        for i in 0..<2 { for s in 0..<4 { logits[(i * 4 + s) * 5 + wanted[i][s]] = 20 } }
        let pred = MaskPrediction(classLogits: Tensor(logits, shape: [2, 4, 5]), maskLogits: Tensor.full([2, 4, 4, 4], 30))
        let out = criterion.maskPilotingLosses(PilotedPredictions(predictions: [pred], layout: layout), targets: targets, numMasks: 3, predictionCount: 1,
                                               points: KeyedPointSource())
        #expect(out.names == ["loss_cross_entropy_dn", "loss_mask_dn", "loss_dice_dn"])
        #expect(out.losses["loss_cross_entropy_dn"]!.item < 1e-6)
        // The mask terms equal the matching criterion's on the direct assignment, normalised by num_masks × G.
        let direct = [MatchIndices(queries: [0, 1, 2, 3], targets: [0, 1, 0, 1]), MatchIndices(queries: [0, 2], targets: [0, 0])]
        let (m, d) = criterion.maskLosses(pred.maskLogits, targets: targets, indices: direct, numMasks: 3 * 2,
                                          predictionIndex: 0, points: KeyedPointSource())
        #expect(out.losses["loss_mask_dn"]!.item == m.item && out.losses["loss_dice_dn"]!.item == d.item)
        let skipped = criterion.maskPilotingLosses(nil, targets: targets, numMasks: 3, predictionCount: 2,
                                                   points: KeyedPointSource())
        #expect(skipped.names.count == 6 && skipped.total.item == 0 && skipped.names.contains("loss_dice_dn_0"))
        let noLabel = criterion.maskPilotingLosses(PilotedPredictions(predictions: [pred], layout: layout), targets: targets, numMasks: 3, includeClassLoss: false,
                                                   predictionCount: 1, points: KeyedPointSource())
        #expect(noLabel.names == ["loss_mask_dn", "loss_dice_dn"])
    }

    @Test func normaliserIsNumMasksTimesGroups() {
        let criterion = SetCriterion(numClasses: 4, numPoints: 12)
        let targets = [MaskTargets(labels: [1], masks: testTensor([1, 8, 8], seed: 1, low: 0, high: 1, requiresGrad: false).greater(than: 0.5).map { $0 ? 1 : 0 }.withShape([1, 8, 8]))]
        let pred = MaskPrediction(classLogits: testTensor([1, 2, 5], seed: 2), maskLogits: testTensor([1, 2, 4, 4], seed: 3))
        let one = criterion.maskPilotingLosses(PilotedPredictions(predictions: [pred], layout: MaskPilotingLayout(groups: 1, slotsPerGroup: 1, targetCounts: [1])),
                                               targets: targets, numMasks: 1, predictionCount: 1, points: KeyedPointSource())
        let two = criterion.maskPilotingLosses(PilotedPredictions(predictions: [pred], layout: MaskPilotingLayout(groups: 2, slotsPerGroup: 1, targetCounts: [1])),
                                               targets: targets, numMasks: 1, predictionCount: 1, points: KeyedPointSource())
        // Two groups: two identical... (slot 1 differs from slot 0), each pair's loss divided by 2 instead of 1.
        let pairLoss = one.losses["loss_mask_dn"]!.item
        let sliceTwo = criterion.maskLosses(pred.maskLogits, targets: targets, indices: [MatchIndices(queries: [0, 1], targets: [0, 0])],
                                            numMasks: 2, predictionIndex: 0, points: KeyedPointSource()).mask.item
        #expect(abs(two.losses["loss_mask_dn"]!.item - sliceTwo) < 1e-6 && pairLoss > 0)
    }

    @Test func wholeCriterionGradientThroughTinyMPDecoder() {
        let dec = setup.tinyDecoder(mp: true, lambda: 0.2)
        let tg = setup.targets()
        let targets = zip(tg.labels, tg.masks).map { MaskTargets(labels: $0, masks: $1) }
        // Importance ratio 0: every point is random, so the loss is a smooth function of the logits
        // (a top-k choice of uncertain points would jump under the ±ε perturbations).
        let criterion = SetCriterion(numClasses: 4, numPoints: 16, importanceSampleRatio: 0)
        let points = KeyedPointSource()
        let mf = setup.maskFeatures.detached(); mf.requiresGrad = true
        let w = dec.labelEnc!.weight
        let q = dec.selfAttentionLayers[2].attention.inProjWeight
        let rep = gradCheck([mf, w, q], rtol: 2e-2, atol: 2e-3) { t in
            let out = dec(features: setup.feats, maskFeatures: t[0], maskPiloting: tg)
            let matching = criterion(out.matching, targets: targets, points: points)
            let mp = criterion.maskPilotingLosses(out.piloted, targets: targets,
                                                  numMasks: matching.numMasks, predictionCount: out.matching.count, points: points)
            return (matching.total + mp.total).reshaped([1])
        }
        #expect(rep.passed, "\(rep)")
    }
}

extension Array where Element == Float {
    func withShape(_ shape: [Int]) -> Tensor { Tensor(self, shape: shape) }
}
