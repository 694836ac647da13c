// Tests of MP-Former's mask piloting in the decoder: masks, GT piloting of every layer, padding, noise rates, inference.
// Reference: docs/model.md#mask-piloting (MP-Former MultiScaleMaskedTransformerDecoderMaskDN, "points" mode).
import Mask2FormerModel
import NN
import Testing
import TensorCore
import _TestSupport

@Suite struct MaskPilotingTests {
    @Test func selfAttentionMaskStructure() {
        let g = 2, m = 3, q = 4, t = g * m + q
        let mask = maskPilotingSelfAttentionMask(groups: g, slotsPerGroup: m, queries: q)
        for r in 0..<t {
            for c in 0..<t {
                let rowGroup = r < g * m ? r / m : -1, colGroup = c < g * m ? c / m : -1
                let expected: Bool
                if rowGroup >= 0 { expected = colGroup >= 0 && colGroup != rowGroup }   // MP row: other group blocked
                else { expected = colGroup >= 0 }                                         // matching row: every MP column blocked
                #expect(mask[r * t + c] == expected, "row \(r) col \(c)")
            }
        }
    }

    @Test func labelFlipRate() {
        var rng = RNG(seed: 11)
        let k = 10, n = 200_000
        let flipped = flipLabels([Int](repeating: 3, count: n), ratio: 0.2, numClasses: k, rng: &rng)
        let changed = Double(flipped.filter { $0 != 3 }.count) / Double(n)
        // A replacement is uniform over K classes, so it keeps the label with probability 1/K.
        #expect(abs(changed - 0.2 * 0.9) < 0.005, "changed \(changed)")
        #expect(flipped.allSatisfy { $0 >= 0 && $0 < k })
        var r2 = RNG(seed: 1)
        #expect(flipLabels([1, 2], ratio: 0, numClasses: k, rng: &r2) == [1, 2])
    }

    @Test func pointNoiseRate() {
        var rng = RNG(seed: 12)
        let cells = 400, open = 40, lambda = 0.2
        var total = 0
        let trials = 5000
        for _ in 0..<trials {
            let original = (0..<cells).map { $0 >= open }      // 40 attendable cells
            var noisy = original[...]
            applyPointNoise(&noisy, lambda: lambda, rng: &rng)
            total += zip(original, noisy).filter { $0 != $1 }.count
        }
        // Expected flips per mask: λ·A = 8.
        #expect(abs(Double(total) / Double(trials) - lambda * Double(open)) < 0.15)
    }

    @Test func gtMaskAreaDownsamplingAnyCoverage() {
        var m = [Float](repeating: 0, count: 16)
        m[5] = 1                                                 // one pixel at (1, 1) of a 4×4 mask
        let blocked = gtAttentionMask(Tensor(m, shape: [1, 4, 4]), height: 2, width: 2)
        #expect(blocked == [false, true, true, true])            // the cell containing it is attendable
    }

    func tinyDecoder(mp: Bool, seed: UInt64 = 3, allLayers: Bool = true, lambda: Double = 0) -> MultiScaleMaskedTransformerDecoder {
        var rng = RNG(seed: seed)
        var cfg = TransformerDecoderConfig()
        cfg.hiddenDim = 8; cfg.numQueries = 3; cfg.heads = 2; cfg.feedforwardDim = 12
        cfg.decLayers = 5; cfg.maskDim = 8; cfg.numClasses = 4
        var mpc = MaskPilotingConfig()
        mpc.enabled = mp; mpc.allLayers = allLayers; mpc.pointNoise = lambda; mpc.firstLayers = 2
        return MultiScaleMaskedTransformerDecoder(cfg, maskPiloting: mpc, rng: &rng)
    }

    let feats = [[2, 1, 2, 8], [2, 2, 2, 8], [2, 2, 4, 8]].enumerated().map { testTensor($0.element, seed: 30 + UInt64($0.offset), requiresGrad: false) }
    let maskFeatures = testTensor([2, 4, 8, 8], seed: 40, requiresGrad: false)

    func targets() -> MaskPilotingTargets {
        // Image 0: two GT masks (left half, one pixel block); image 1: one GT mask (bottom row).
        var a = [Float](repeating: 0, count: 2 * 16 * 32)
        for y in 0..<16 { for x in 0..<16 { a[y * 32 + x] = 1 } }
        for y in 0..<4 { for x in 24..<28 { a[512 + y * 32 + x] = 1 } }
        var c = [Float](repeating: 0, count: 16 * 32)
        for x in 0..<32 { c[15 * 32 + x] = 1 }
        return MaskPilotingTargets(labels: [[1, 3], [2]], masks: [Tensor(a, shape: [2, 16, 32]), Tensor(c, shape: [1, 16, 32])],
                                   rngs: [RNG(seed: 5, stream: 0), RNG(seed: 5, stream: 1)])
    }

    @Test func gtMasksReachTheMPRowsOfEveryLayerAndPaddingIsBlocked() {
        let dec = tinyDecoder(mp: true)
        var seen: [Int: [Bool]] = [:]
        dec.crossAttentionMaskObserver = { layer, mask in seen[layer] = mask }
        let tg = targets()
        let out = withNoGrad { dec(features: feats, maskFeatures: maskFeatures, maskPiloting: tg) }
        #expect(out.piloted?.layout == MaskPilotingLayout(groups: 1, slotsPerGroup: 2, targetCounts: [2, 1]))
        #expect(out.matching.count == 5 && out.piloted?.predictions.count == 5)
        #expect(out.matching[0].classLogits.shape == [2, 3, 5] && out.piloted!.predictions[0].maskLogits.shape == [2, 2, 4, 8])
        let sizes = [(1, 2), (2, 2), (2, 4), (1, 2)]
        let t = 2 + 3
        for layer in 0..<4 {
            let (h, w) = sizes[layer]
            let hw = h * w
            guard let mask = seen[layer] else { Issue.record("layer \(layer) saw no mask"); continue }
            #expect(mask.count == 2 * t * hw)
            for (img, m) in tg.masks.enumerated() {
                let gt = gtAttentionMask(m, height: h, width: w)
                for j in 0..<2 {
                    let row = Array(mask[((img * t + j) * hw)..<((img * t + j + 1) * hw)])
                    if j < m.shape[0] { #expect(row == Array(gt[(j * hw)..<((j + 1) * hw)]), "layer \(layer) image \(img) slot \(j)") }
                    else { #expect(row.allSatisfy { $0 }, "padding slot must be all-blocked") }
                }
            }
        }
    }

    @Test func perHeadNoiseGivesEachHeadItsOwnMask() {
        var rng = RNG(seed: 3)
        var cfg = TransformerDecoderConfig()
        cfg.hiddenDim = 8; cfg.numQueries = 3; cfg.heads = 2; cfg.feedforwardDim = 12
        cfg.decLayers = 5; cfg.maskDim = 8; cfg.numClasses = 4
        var mpc = MaskPilotingConfig()
        mpc.enabled = true; mpc.pointNoise = 1.0; mpc.perHeadNoise = true
        let dec = MultiScaleMaskedTransformerDecoder(cfg, maskPiloting: mpc, rng: &rng)
        var seen: [Int: [Bool]] = [:]
        dec.crossAttentionMaskObserver = { layer, mask in seen[layer] = mask }
        _ = withNoGrad { dec(features: feats, maskFeatures: maskFeatures, maskPiloting: targets()) }
        // Layer 2 attends the 2×4 level: a mask per (image, head), T = 5 rows of 8 cells.
        let mask = seen[2]!, t = 5, hw = 8
        #expect(mask.count == 2 * 2 * t * hw)
        let head0 = Array(mask[0..<(2 * hw)]), head1 = Array(mask[(t * hw)..<(t * hw + 2 * hw)])
        #expect(head0 != head1, "independent noise per head (image 0, MP rows)")
        // Matching rows are the same prediction-derived mask for both heads.
        #expect(Array(mask[(2 * hw)..<(t * hw)]) == Array(mask[(t * hw + 2 * hw)..<(2 * t * hw)]))
    }

    @Test func firstLayersOnlyWhenNotAllLayers() {
        let dec = tinyDecoder(mp: true, allLayers: false)
        var seen: [Int: [Bool]] = [:]
        dec.crossAttentionMaskObserver = { layer, mask in seen[layer] = mask }
        let tg = targets()
        _ = withNoGrad { dec(features: feats, maskFeatures: maskFeatures, maskPiloting: tg) }
        // firstLayers = 2: layers 0 and 1 get the padding slot blocked; layers ≥ 2 use predictions.
        let padRow = { (layer: Int, hw: Int) in Array(seen[layer]![((1 * 5 + 1) * hw)..<((1 * 5 + 2) * hw)]) }
        #expect(padRow(0, 2).allSatisfy { $0 } && padRow(1, 4).allSatisfy { $0 })
        #expect(seen[2] != nil)
    }

    @Test func inferenceIsBitIdenticalWithMPOnOrOff() {
        let off = tinyDecoder(mp: false), on = tinyDecoder(mp: true)
        let offParams = Dictionary(uniqueKeysWithValues: off.namedParameters())
        for (name, p) in on.namedParameters() where name != "label_enc.weight" { #expect(offParams[name]!.values == p.values, "\(name)") }
        let a = withNoGrad { off(features: feats, maskFeatures: maskFeatures) }
        let b = withNoGrad { on(features: feats, maskFeatures: maskFeatures) }
        for (x, y) in zip(a, b) {
            #expect(x.classLogits.values == y.classLogits.values && x.maskLogits.values == y.maskLogits.values)
        }
        #expect(on.namedParameters().contains { $0.0 == "label_enc.weight" } && !off.namedParameters().contains { $0.0 == "label_enc.weight" })
    }

    @Test func noTargetsSkipsMP() {
        let dec = tinyDecoder(mp: true)
        let empty = MaskPilotingTargets(labels: [[], []], masks: [Tensor.zeros([0, 16, 32]), Tensor.zeros([0, 16, 32])],
                                        rngs: [RNG(seed: 1), RNG(seed: 2)])
        let out = withNoGrad { dec(features: feats, maskFeatures: maskFeatures, maskPiloting: empty) }
        #expect(out.piloted == nil && out.matching.count == 5)
    }

    @Test func gradientsReachLabelEmbeddingsOnlyThroughMPRows() {
        let dec = tinyDecoder(mp: true)
        let tg = targets()
        let out = withGrad { dec(features: feats, maskFeatures: maskFeatures, maskPiloting: tg) }
        // A loss on the matching part alone must not reach label_enc (matching rows never see MP rows).
        withGrad { out.matching.map { $0.classLogits.sum() + $0.maskLogits.sum() }.reduce(Tensor(scalar: 0), +) }.backward()
        let g = dec.labelEnc!.weight.grad
        #expect(g == nil || g!.values.allSatisfy { $0 == 0 })
        for p in dec.parameters() { p.zeroGrad() }
        let out2 = withGrad { dec(features: feats, maskFeatures: maskFeatures, maskPiloting: tg) }
        withGrad { out2.piloted!.predictions[3].classLogits.sum() }.backward()
        #expect(dec.labelEnc!.weight.grad!.values.contains { $0 != 0 })
    }
}
