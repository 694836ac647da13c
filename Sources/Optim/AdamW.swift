// AdamW over the flat parameter buffer, with per-parameter lr multipliers and weight decays chosen by name rules.
// Corresponds to torch.optim.AdamW (single-tensor path) and Mask2Former's train_net.build_optimizer param groups.
import Foundation
import Kernels
import TensorCore

/// The learning-rate multiplier and weight decay resolved for one parameter.
public struct ParamHyper: Sendable, Equatable {
    public var lrMultiplier: Double
    public var weightDecay: Double

    public init(lrMultiplier: Double, weightDecay: Double) {
        self.lrMultiplier = lrMultiplier; self.weightDecay = weightDecay
    }
}

/// A parameter-group rule: a predicate on the parameter's dotted name, and what it changes.
///
/// Rules apply in order and every matching rule applies: `lrMultiplier`s multiply together,
/// a `weightDecay` replaces the value set so far (so a later rule wins). This mirrors the
/// sequence of `if`s in detectron2/Mask2Former's `build_optimizer`.
public struct ParamRule: Sendable, CustomStringConvertible {
    public var label: String
    public var matches: @Sendable (String) -> Bool
    public var lrMultiplier: Double?
    public var weightDecay: Double?

    public init(_ label: String, lrMultiplier: Double? = nil, weightDecay: Double? = nil,
                matches: @escaping @Sendable (String) -> Bool) {
        self.label = label; self.matches = matches
        self.lrMultiplier = lrMultiplier; self.weightDecay = weightDecay
    }

    /// Matches names containing `fragment`.
    public static func nameContains(_ fragment: String, lrMultiplier: Double? = nil, weightDecay: Double? = nil) -> ParamRule {
        ParamRule("name contains \"\(fragment)\"", lrMultiplier: lrMultiplier, weightDecay: weightDecay) { $0.contains(fragment) }
    }

    /// Matches exactly the names in `names` (e.g. computed from module types on the model side).
    public static func names(_ names: Set<String>, label: String, lrMultiplier: Double? = nil, weightDecay: Double? = nil) -> ParamRule {
        ParamRule("\(label) (\(names.count) names)", lrMultiplier: lrMultiplier, weightDecay: weightDecay) { names.contains($0) }
    }

    public var description: String {
        var parts: [String] = []
        if let lrMultiplier { parts.append("lr ×\(lrMultiplier)") }
        if let weightDecay { parts.append("weight decay \(weightDecay)") }
        return "\(label) → \(parts.joined(separator: ", "))"
    }
}

/// Applies `rules` (see `ParamRule`) to each name, starting from multiplier 1 and `weightDecay`.
public func resolveHyperparameters(names: [String], rules: [ParamRule], weightDecay: Double) -> [ParamHyper] {
    names.map { name in
        var h = ParamHyper(lrMultiplier: 1, weightDecay: weightDecay)
        for rule in rules where rule.matches(name) {
            if let m = rule.lrMultiplier { h.lrMultiplier *= m }
            if let wd = rule.weightDecay { h.weightDecay = wd }
        }
        return h
    }
}

/// Mask2Former's parameter groups (`train_net.build_optimizer`), in its order:
/// 1. names containing "backbone": lr × `backboneMultiplier` (`SOLVER.BACKBONE_MULTIPLIER` 0.1);
/// 2. names containing "relative_position_bias_table" or "absolute_pos_embed" (Swin): weight decay 0;
/// 3. parameters of norm modules: `weightDecayNorm` (`SOLVER.WEIGHT_DECAY_NORM` 0.0);
/// 4. parameters of nn.Embedding modules: `weightDecayEmbed` (`SOLVER.WEIGHT_DECAY_EMBED` 0.0).
///
/// The reference picks 3 and 4 by module *type* (e.g. the pixel decoder's `input_proj.0.1` is a
/// GroupNorm that no name pattern reveals, and its raw-Parameter `level_embed` keeps the decay), so
/// the caller passes those names, computed on the model side, e.g.
/// `model.parameterNames(inModulesWhere: { $0 is NormLayer })` and `{ $0 is Embedding }`.
public func mask2FormerRecipe(normParameters: [String], embeddingParameters: [String],
                              backboneMultiplier: Double = 0.1, weightDecayNorm: Double = 0,
                              weightDecayEmbed: Double = 0) -> [ParamRule] {
    [
        .nameContains("backbone", lrMultiplier: backboneMultiplier),
        ParamRule("Swin position tables", weightDecay: 0) {
            $0.contains("relative_position_bias_table") || $0.contains("absolute_pos_embed")
        },
        .names(Set(normParameters), label: "norm layers", weightDecay: weightDecayNorm),
        .names(Set(embeddingParameters), label: "embeddings", weightDecay: weightDecayEmbed),
    ]
}

/// Optimizer state that did not match on restore, every problem listed at once.
public struct OptimizerStateError: Error, Sendable, CustomStringConvertible {
    public var missing: [String] = []
    public var unused: [String] = []
    public var misshaped: [String] = []

    public var description: String {
        var lines = ["optimizer state does not match (\(missing.count) missing, \(unused.count) unused, \(misshaped.count) mis-shaped):"]
        lines += missing.map { "  missing:    \($0)" }
        lines += unused.map { "  unused:     \($0)" }
        lines += misshaped.map { "  mis-shaped: \($0)" }
        return lines.joined(separator: "\n")
    }
}

/// torch.optim.AdamW (amsgrad off, not maximizing) over a `FlatParameters`, one pass over the buffers.
///
/// Per element, with group learning rate `lr·multiplier`, weight decay `wd` and step t (from 1):
///
///     p ← p·(1 − lr·wd)
///     m ← m + (1 − β1)·(g − m)                  (torch's lerp)
///     v ← β2·v + (1 − β2)·g²
///     p ← p − (lr / (1 − β1ᵗ))·m / (√v / √(1 − β2ᵗ) + ε)
///
/// Scalars are formed in Double and applied in Float, in torch's order. Moments live in two flat
/// buffers laid out like the parameters. Unlike torch, which skips parameters whose `grad` is None,
/// every parameter is stepped (an unused parameter still decays; its zero gradient decays the moments).
public final class AdamW {
    public let parameters: FlatParameters
    public let beta1: Double
    public let beta2: Double
    public let eps: Double
    /// The default weight decay (before rules).
    public let weightDecay: Double
    public let rules: [ParamRule]
    /// Resolved hyperparameters, one per parameter (in `parameters.names` order).
    public let hyper: [ParamHyper]
    /// Number of steps taken (torch's `state["step"]`); the next `step` uses `stepCount + 1`.
    public var stepCount: Int = 0
    /// First moments (`exp_avg`), laid out like `parameters.values`.
    public let expAvg: Storage
    /// Second moments (`exp_avg_sq`), laid out like `parameters.values`.
    public let expAvgSq: Storage

    /// Maximal runs of consecutive parameters sharing hyperparameters.
    private struct Run { var start: Int; var end: Int; var hyper: ParamHyper }
    private let runs: [Run]

    /// Defaults are torch's (weight decay 0.01, β 0.9/0.999, ε 1e-8); Mask2Former uses weight decay 0.05.
    public init(_ parameters: FlatParameters, weightDecay: Double = 0.01, beta1: Double = 0.9, beta2: Double = 0.999,
                eps: Double = 1e-8, rules: [ParamRule] = []) {
        self.parameters = parameters
        self.weightDecay = weightDecay
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        self.rules = rules
        let hyper = resolveHyperparameters(names: parameters.names, rules: rules, weightDecay: weightDecay)
        self.hyper = hyper
        expAvg = Storage(zeroedCount: parameters.count)
        expAvgSq = Storage(zeroedCount: parameters.count)
        var runs: [Run] = []
        for i in 0..<hyper.count {
            let r = parameters.range(i)
            if let last = runs.last, last.hyper == hyper[i], last.end == r.lowerBound {
                runs[runs.count - 1].end = r.upperBound
            } else {
                runs.append(Run(start: r.lowerBound, end: r.upperBound, hyper: hyper[i]))
            }
        }
        self.runs = runs
    }

    /// The learning rate parameter `i` gets when the schedule gives `lr`.
    public func learningRate(ofParameter i: Int, baseLR lr: Double) -> Double { lr * hyper[i].lrMultiplier }

    /// One update with base learning rate `lr` (the schedule's value; group multipliers applied
    /// here) from the gradients in `parameters.grads`.
    public func step(lr: Double) {
        stepCount += 1
        let t = Double(stepCount)
        let bc1 = 1 - Foundation.pow(beta1, t)
        let bc2 = 1 - Foundation.pow(beta2, t)
        let bc2Sqrt = Float(bc2.squareRoot())
        let w1 = Float(1 - beta1), b2 = Float(beta2), w2 = Float(1 - beta2), epsF = Float(eps)
        let p = parameters.values.base, g = parameters.grads.base
        let m = expAvg.base, v = expAvgSq.base
        for run in runs {
            let groupLR = lr * run.hyper.lrMultiplier
            let decay = Float(1 - groupLR * run.hyper.weightDecay)
            let applyDecay = run.hyper.weightDecay != 0
            let negStep = Float(-(groupLR / bc1))
            parallelFor(run.end - run.start, grain: elementwiseGrain / 4) { chunk in for i in (run.start + chunk.lowerBound) ..< (run.start + chunk.upperBound) {
                let gi = g[i]
                var pi = p[i]
                if applyDecay { pi = pi * decay }
                let mi = m[i] + w1 * (gi - m[i])
                let vi = v[i] * b2 + w2 * gi * gi
                m[i] = mi
                v[i] = vi
                let denom = vi.squareRoot() / bc2Sqrt + epsF
                p[i] = pi + negStep * mi / denom
            } }
        }
    }

    /// The state as named tensors: `exp_avg/<name>` and `exp_avg_sq/<name>` (views into the moment
    /// buffers, parameter shapes, in parameter order) and `step` (a float32 scalar, as torch stores it).
    public func namedState() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        for (i, name) in parameters.names.enumerated() {
            out.append(("exp_avg/" + name, parameters.view(expAvg, parameter: i)))
        }
        for (i, name) in parameters.names.enumerated() {
            out.append(("exp_avg_sq/" + name, parameters.view(expAvgSq, parameter: i)))
        }
        out.append(("step", Tensor(scalar: Float(stepCount))))
        return out
    }

    /// Restores the state saved by `namedState()`. Nothing changes unless every key is present with
    /// the right shape and no key is left over; otherwise the error lists every problem.
    public func loadState(_ dict: [String: Tensor]) throws {
        var err = OptimizerStateError()
        var used = Set<String>()
        let expected = namedState()
        for (key, t) in expected {
            guard let src = dict[key] else { err.missing.append(key); continue }
            used.insert(key)
            if src.count != t.count || (key != "step" && src.shape != t.shape) {
                err.misshaped.append("\(key): expected \(t.shape), found \(src.shape)")
            }
        }
        err.unused = dict.keys.filter { !used.contains($0) }.sorted()
        if !(err.missing.isEmpty && err.unused.isEmpty && err.misshaped.isEmpty) { throw err }
        for (key, t) in expected where key != "step" { t.assign(dict[key]!) }
        stepCount = Int(dict["step"]!.data[0].rounded())
    }
}
