// Learning-rate schedules as pure functions of the iteration: warmup + poly, warmup + multi-step.
// Corresponds to detectron2's WarmupMultiStepLR (solver/lr_scheduler.py) and DeepLab's WarmupPolyLR (projects/DeepLab).
import Foundation

/// How the warmup factor grows over the first `warmupIters` iterations.
public enum WarmupMethod: String, Sendable, Codable {
    /// `factor·(1 − α) + α` with α = iter / warmupIters.
    case linear
    /// `factor` throughout the warmup.
    case constant
}

/// detectron2's `_get_warmup_factor_at_iter`: 1 from `warmupIters` on; before that `factor` (constant)
/// or `factor·(1 − α) + α`, α = iter / warmupIters (linear).
public func warmupFactor(at iter: Int, method: WarmupMethod, warmupIters: Int, factor: Double) -> Double {
    if iter >= warmupIters { return 1 }
    switch method {
    case .constant: return factor
    case .linear:
        let alpha = Double(iter) / Double(warmupIters)
        return factor * (1 - alpha) + alpha
    }
}

/// A learning rate as a pure function of the 0-based iteration (the value used by that iteration's
/// optimizer step, i.e. the scheduler's `last_epoch` equals `iter`).
public protocol LearningRateSchedule: Sendable {
    /// Learning rate for iteration `iter`.
    func learningRate(at iter: Int) -> Double
}

/// `base·w(it)·(1 − it/maxIters)^power`, w the warmup factor; with `constantEnding > 0`, once warmup
/// is over the poly factor never drops below `constantEnding` (DeepLab's `WarmupPolyLR`).
/// Mask2Former ADE20K: base 1e-4, 160k iterations, power 0.9, no warmup.
public struct WarmupPolyLR: LearningRateSchedule {
    public var baseLR: Double
    public var maxIters: Int
    public var power: Double
    public var warmupIters: Int
    public var warmupFactor: Double
    public var warmupMethod: WarmupMethod
    public var constantEnding: Double

    public init(baseLR: Double, maxIters: Int, power: Double = 0.9, warmupIters: Int = 0,
                warmupFactor: Double = 0.001, warmupMethod: WarmupMethod = .linear, constantEnding: Double = 0) {
        self.baseLR = baseLR; self.maxIters = maxIters; self.power = power
        self.warmupIters = warmupIters; self.warmupFactor = warmupFactor; self.warmupMethod = warmupMethod
        self.constantEnding = constantEnding
    }

    public func learningRate(at iter: Int) -> Double {
        let w = Optim.warmupFactor(at: iter, method: warmupMethod, warmupIters: warmupIters, factor: warmupFactor)
        let poly = Foundation.pow(1 - Double(iter) / Double(maxIters), power)
        if constantEnding > 0 && w == 1 && poly < constantEnding { return baseLR * constantEnding }
        return baseLR * w * poly
    }
}

/// `base·w(it)·gamma^k`, k the number of milestones ≤ it (bisect_right), w the warmup factor
/// (detectron2's `WarmupMultiStepLR`). Mask2Former COCO: ×0.1 at 327,778 and 355,092.
public struct WarmupMultiStepLR: LearningRateSchedule {
    public var baseLR: Double
    /// Increasing iteration numbers at which the rate is multiplied by `gamma`.
    public var milestones: [Int]
    public var gamma: Double
    public var warmupIters: Int
    public var warmupFactor: Double
    public var warmupMethod: WarmupMethod

    public init(baseLR: Double, milestones: [Int], gamma: Double = 0.1, warmupIters: Int = 1000,
                warmupFactor: Double = 0.001, warmupMethod: WarmupMethod = .linear) {
        precondition(milestones == milestones.sorted(), "milestones must be increasing, got \(milestones)")
        self.baseLR = baseLR; self.milestones = milestones; self.gamma = gamma
        self.warmupIters = warmupIters; self.warmupFactor = warmupFactor; self.warmupMethod = warmupMethod
    }

    public func learningRate(at iter: Int) -> Double {
        let w = Optim.warmupFactor(at: iter, method: warmupMethod, warmupIters: warmupIters, factor: warmupFactor)
        let passed = milestones.reduce(0) { $0 + ($1 <= iter ? 1 : 0) }
        return baseLR * w * Foundation.pow(gamma, Double(passed))
    }
}

/// A fixed learning rate.
public struct ConstantLR: LearningRateSchedule {
    public var lr: Double
    public init(_ lr: Double) { self.lr = lr }
    public func learningRate(at iter: Int) -> Double { lr }
}
