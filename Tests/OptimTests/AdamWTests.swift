// Tests of AdamW: against an independent Double closed form, the first-step magnitude, parameter groups, state round trip.
// Reference semantics: torch.optim.AdamW and Mask2Former's build_optimizer parameter groups.
import Foundation
import Testing
import TensorCore
import NN
import Optim
import _TestSupport

/// Textbook AdamW (Loshchilov & Hutter, as torch implements it) on one scalar, in Double.
private struct ReferenceAdamW {
    var p: Double
    var m = 0.0, v = 0.0, t = 0
    let beta1 = 0.9, beta2 = 0.999
    let eps: Double

    mutating func step(g: Double, lr: Double, wd: Double) {
        t += 1
        p *= 1 - lr * wd
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        let mHat = m / (1 - Foundation.pow(beta1, Double(t)))
        let vHat = v / (1 - Foundation.pow(beta2, Double(t)))
        p -= lr * mHat / (vHat.squareRoot() + eps)
    }
}

private func makeParameters(_ named: [(String, [Float])]) -> FlatParameters {
    FlatParameters(named.map { ($0.0, Tensor($0.1, shape: [$0.1.count], requiresGrad: true)) })
}

private func setGrads(_ flat: FlatParameters, _ g: [Float]) {
    for (i, x) in g.enumerated() { flat.grads.base[i] = x }
}

@Suite struct AdamWTests {
    @Test func matchesClosedFormOverSeveralSteps() {
        let p0: [Float] = [1, -2, 0.5, 3]
        let flat = makeParameters([("w", p0)])
        let opt = AdamW(flat, weightDecay: 0.05)
        var refs = p0.map { ReferenceAdamW(p: Double($0), eps: 1e-8) }
        let grads: [[Float]] = [[0.3, -0.1, 2, 1e-4], [-0.2, -0.1, 1.5, 3e-4], [0.05, 0.4, -1, -2e-4], [1, 1, 1, 1]]
        let lrs = [1e-3, 2e-3, 5e-4, 1e-2]
        for (g, lr) in zip(grads, lrs) {
            setGrads(flat, g)
            opt.step(lr: lr)
            for i in 0..<refs.count { refs[i].step(g: Double(g[i]), lr: lr, wd: 0.05) }
        }
        #expect(opt.stepCount == 4)
        let got = Array(flat.values.buffer)
        let want = refs.map { Float($0.p) }
        #expect(allClose(got, want, rtol: 1e-6, atol: 1e-7).passed, "\(got) vs \(want)")
        let tensor = flat.tensors[0]
        #expect(tensor.values == got)
    }

    @Test func firstStepIsLrTimesSignPlusDecay() {
        // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + ε) ≈ lr·sign(g) after the decay p·(1 − lr·wd).
        let p0: [Float] = [0.7, -1.3, 2.0, -0.4]
        let g: [Float] = [5, -0.02, 1e-3, 300]
        let lr = 0.01, wd = 0.1
        let flat = makeParameters([("w", p0)])
        let opt = AdamW(flat, weightDecay: wd, eps: 1e-12)
        setGrads(flat, g)
        opt.step(lr: lr)
        let want = zip(p0, g).map { p, gi in Float(Double(p) * (1 - lr * wd) - lr * (gi > 0 ? 1 : -1)) }
        #expect(allClose(Array(flat.values.buffer), want, rtol: 1e-6, atol: 1e-7).passed)
    }

    @Test func groupsApplyToTheRightSlices() {
        let names = ["backbone.conv.weight", "backbone.norm.weight", "head.norm.weight",
                     "head.query_feat.weight", "head.linear.weight", "head.level_embed"]
        let flat = makeParameters(names.map { ($0, [1, -1]) })
        let rules = mask2FormerRecipe(normParameters: ["backbone.norm.weight", "head.norm.weight"],
                                      embeddingParameters: ["head.query_feat.weight"])
        let opt = AdamW(flat, weightDecay: 0.05, rules: rules)
        let expected: [(Double, Double)] = [(0.1, 0.05), (0.1, 0), (1, 0), (1, 0), (1, 0.05), (1, 0.05)]
        #expect(opt.hyper == expected.map { ParamHyper(lrMultiplier: $0.0, weightDecay: $0.1) })

        let g: [Float] = [0.5, -2]
        for i in 0..<names.count { flat.grads.base[2 * i] = g[0]; flat.grads.base[2 * i + 1] = g[1] }
        let lr = 1e-3
        opt.step(lr: lr)
        for (i, (mult, wd)) in expected.enumerated() {
            var r0 = ReferenceAdamW(p: 1, eps: 1e-8), r1 = ReferenceAdamW(p: -1, eps: 1e-8)
            r0.step(g: Double(g[0]), lr: lr * mult, wd: wd)
            r1.step(g: Double(g[1]), lr: lr * mult, wd: wd)
            let got = flat.tensors[i].values
            #expect(allClose(got, [Float(r0.p), Float(r1.p)], rtol: 1e-6, atol: 1e-8).passed, "\(names[i]): \(got)")
            #expect(opt.learningRate(ofParameter: i, baseLR: lr) == lr * mult)
        }
    }

    @Test func rulesCombine() {
        let rules: [ParamRule] = [
            .nameContains("a", lrMultiplier: 0.5),
            .nameContains("b", lrMultiplier: 0.2, weightDecay: 0.3),
            .nameContains("c", weightDecay: 0),
        ]
        let h = resolveHyperparameters(names: ["ab", "abc", "c", "x"], rules: rules, weightDecay: 0.05)
        #expect(h == [ParamHyper(lrMultiplier: 0.1, weightDecay: 0.3), ParamHyper(lrMultiplier: 0.1, weightDecay: 0),
                      ParamHyper(lrMultiplier: 1, weightDecay: 0), ParamHyper(lrMultiplier: 1, weightDecay: 0.05)])
    }

    @Test func recipeFromModuleTypes() {
        final class Tiny: Module {
            let backbone: Linear
            let query_feat: Embedding
            let class_embed: Linear
            override init() {
                backbone = Linear(2, 2, seed: 1)
                query_feat = Embedding(3, 2, seed: 2)
                class_embed = Linear(2, 3, seed: 3)
                super.init()
            }
        }
        let model = Tiny()
        let flat = FlatParameters(model.namedParameters())
        let rules = mask2FormerRecipe(normParameters: model.parameterNames(inModulesWhere: { $0 is NormLayer }),
                                      embeddingParameters: model.parameterNames(inModulesWhere: { $0 is Embedding }))
        let opt = AdamW(flat, weightDecay: 0.05, rules: rules)
        #expect(flat.names == ["backbone.weight", "backbone.bias", "query_feat.weight", "class_embed.weight", "class_embed.bias"])
        #expect(opt.hyper.map(\.lrMultiplier) == [0.1, 0.1, 1, 1, 1])
        #expect(opt.hyper.map(\.weightDecay) == [0.05, 0.05, 0, 0.05, 0.05])
    }

    @Test func stateRoundTrip() throws {
        let p0: [Float] = [0.2, -0.4, 1.1]
        let a = makeParameters([("x", [p0[0]]), ("y", [p0[1], p0[2]])])
        let b = makeParameters([("x", [p0[0]]), ("y", [p0[1], p0[2]])])
        let optA = AdamW(a, weightDecay: 0.05), optB = AdamW(b, weightDecay: 0.05)
        for k in 0..<3 {
            setGrads(a, [0.1 * Float(k + 1), -0.3, 0.7])
            optA.step(lr: 1e-2)
        }
        #expect(optA.namedState().map(\.0) == ["exp_avg/x", "exp_avg/y", "exp_avg_sq/x", "exp_avg_sq/y", "step"])
        let saved = Dictionary(uniqueKeysWithValues: optA.namedState().map { ($0.0, $0.1.copy()) })
        #expect(saved["step"]!.item == 3)
        #expect(saved["exp_avg/y"]!.shape == [2])
        b.values.base.update(from: a.values.base, count: a.count)
        try optB.loadState(saved)
        #expect(optB.stepCount == 3)
        setGrads(a, [0.5, 0.5, -0.5]); setGrads(b, [0.5, 0.5, -0.5])
        optA.step(lr: 1e-2); optB.step(lr: 1e-2)
        #expect(Array(a.values.buffer) == Array(b.values.buffer))
        #expect(Array(optA.expAvgSq.buffer) == Array(optB.expAvgSq.buffer))

        var bad = saved
        bad["exp_avg/x"] = nil
        bad["exp_avg_sq/y"] = Tensor.zeros([3])
        bad["exp_avg/z"] = Tensor.zeros([1])
        do {
            try optB.loadState(bad)
            Issue.record("loadState should have thrown")
        } catch let e as OptimizerStateError {
            #expect(e.missing == ["exp_avg/x"])
            #expect(e.unused == ["exp_avg/z"])
            #expect(e.misshaped.count == 1 && e.misshaped[0].hasPrefix("exp_avg_sq/y"))
        }
        #expect(optB.stepCount == 4)
    }
}
