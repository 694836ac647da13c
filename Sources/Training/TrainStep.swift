// One optimisation step of Mask2Former / MP-Former: forward, criterion (+ MP losses), backward, clip, AdamW.
// Corresponds to detectron2's SimpleTrainer.run_step with Mask2Former's build_optimizer (docs/model.md#criterion, #optimizer).
import Dispatch
import Distributed
import Kernels
import Mask2FormerModel
import NN
import Optim
import TensorCore

/// One training batch: normalized images and per-image targets (plus the per-image random streams MP uses).
public struct TrainBatch {
    /// `[B, H, W, 3]`, normalized, H and W multiples of 32.
    public var images: Tensor
    public var targets: [MaskTargets]
    /// One stream per image, keyed by (seed, epoch, image id) by the loader.
    public var rngs: [RNG]
    /// One key per image (`KeyedPointSource.imageKey(epoch:imageId:)`) for the criterion's random points, so
    /// an image draws the same points whichever rank or batch position it has.
    public var imageKeys: [UInt64]

    /// `imageKeys` nil: the batch positions 0..<B (fine for one process; data-parallel callers pass real keys).
    public init(images: Tensor, targets: [MaskTargets], rngs: [RNG], imageKeys: [UInt64]? = nil) {
        precondition(targets.count == images.shape[0] && rngs.count == targets.count, "one target and stream per image")
        let keys = imageKeys ?? (0..<targets.count).map { UInt64($0) }
        precondition(keys.count == targets.count, "one image key per image")
        self.images = images; self.targets = targets; self.rngs = rngs; self.imageKeys = keys
    }
}

/// What one step measured.
public struct StepReport {
    public var losses: [String: Float]
    public var total: Float
    public var gradNorm: Double
    public var learningRate: Double
    /// Seconds spent in each phase.
    public var forward = 0.0, criterion = 0.0, backward = 0.0, optimizer = 0.0
    /// Seconds waited for the gradient all-reduce after backward (the part not hidden behind it).
    public var allReduceWait = 0.0
    /// On the steps `train.gradient_split_period` picks (mask piloting on): the gradient's two parts.
    public var gradientSplit: GradientSplit?
}

/// The two parts of one step's gradient before clipping, g = g_m + g_p: g_m from the matching losses, g_p from the
/// MP losses (with `model.mask_piloting.loss_weight` applied), both averaged over ranks as the step's gradient is.
public struct GradientSplit: Sendable, Equatable {
    /// ‖g_m‖ and ‖g_p‖.
    public var matchingNorm: Double
    public var pilotingNorm: Double
    /// g_m·g_p / (‖g_m‖ ‖g_p‖); 0 when either is zero.
    public var cosine: Double
    /// Seconds of the extra forward and backward that measured g_m.
    public var seconds = 0.0

    /// From g_m and the whole gradient g (g_p = g − g_m), summed in Double in index order.
    public init(matching: UnsafeBufferPointer<Float>, total: UnsafeBufferPointer<Float>) {
        precondition(matching.count == total.count, "the two gradients have one length")
        var mm = 0.0, pp = 0.0, mp = 0.0
        for k in 0..<total.count {
            let m = Double(matching[k]), p = Double(total[k]) - m
            mm += m * m; pp += p * p; mp += m * p
        }
        matchingNorm = mm.squareRoot(); pilotingNorm = pp.squareRoot()
        cosine = mm > 0 && pp > 0 ? mp / (matchingNorm * pilotingNorm) : 0
    }
}

/// The model, its flat parameters, the optimizer (Mask2Former's parameter groups), the schedule, the criterion and
/// the gradient synchronizer, built from a `MaskPilotConfig`. Owns the run's one iteration counter.
public final class TrainingStep {
    public let config: MaskPilotConfig
    public let model: Mask2Former
    public let parameters: FlatParameters
    public let optimizer: AdamW
    public let schedule: any LearningRateSchedule
    public let criterion: SetCriterion
    /// Random points of the criterion, keyed per image by the batch's `imageKeys` and the iteration.
    public let points: KeyedPointSource
    /// Makes the gradients and the loss normaliser the same on every rank (`LocalGradients` on one process).
    public let synchronizer: any GradientSynchronizer
    /// Optimizer steps taken (= global batches consumed); a resume sets it from the checkpoint.
    public internal(set) var iteration = 0

    /// `communicator`: the ranks this step trains with (their gradients are averaged); one process by default.
    public init(config: MaskPilotConfig, communicator: any Communicator = LocalCommunicator()) {
        self.config = config
        var rng = RNG(seed: config.seed, stream: 0)
        model = Mask2Former(config.model, rng: &rng)
        // `model.backbone.freeze_at`: frozen parameters get no gradient (so no backward through the frozen stages) and
        // stay out of the flat buffers, the optimizer and the all-reduce; checkpoints still hold them (the state dict).
        let frozen = config.model.backbone.frozenParameterPrefixes
        var named = model.namedParameters()
        if !frozen.isEmpty {
            for (name, t) in named where frozen.contains(where: { name.hasPrefix($0) }) { t.requiresGrad = false }
            named = named.filter { $0.1.requiresGrad }
        }
        parameters = FlatParameters(named)
        let rules = mask2FormerRecipe(
            normParameters: model.parameterNames(inModulesWhere: { $0 is NormLayer }),
            embeddingParameters: model.parameterNames(inModulesWhere: { $0 is Embedding }),
            backboneMultiplier: config.solver.backboneMultiplier,
            weightDecayNorm: config.solver.weightDecayNorm, weightDecayEmbed: config.solver.weightDecayEmbed)
        optimizer = AdamW(parameters, weightDecay: config.solver.weightDecay, rules: rules)
        let s = config.solver
        switch s.schedule {
        case .poly:
            schedule = WarmupPolyLR(baseLR: s.baseLearningRate, maxIters: s.maxIter, power: s.polyPower,
                                    warmupIters: s.warmupIters, warmupFactor: s.warmupFactor)
        case .multistep:
            schedule = WarmupMultiStepLR(baseLR: s.baseLearningRate, milestones: s.steps, gamma: s.gamma,
                                         warmupIters: s.warmupIters, warmupFactor: s.warmupFactor)
        }
        let l = config.loss
        criterion = SetCriterion(numClasses: config.model.decoder.numClasses, classWeight: Float(l.classWeight),
                                 maskWeight: Float(l.maskWeight), diceWeight: Float(l.diceWeight),
                                 noObjectWeight: Float(l.noObjectWeight), numPoints: l.numPoints,
                                 oversampleRatio: l.oversampleRatio, importanceSampleRatio: l.importanceSampleRatio)
        points = KeyedPointSource(seed: config.seed &+ RandomStreams.criterionPoints)
        synchronizer = makeGradientSynchronizer(parameters: parameters, config: config, communicator: communicator)
    }

    /// One optimizer step on one batch (`train(on: [batch])`).
    @discardableResult
    public func train(on batch: TrainBatch) throws -> StepReport { try train(on: [batch]) }

    /// One optimizer step over `microBatches` (`solver.accumulate` of them): forward, losses and backward
    /// for each, gradients summed, then averaged over the micro-batches; the gradient all-reduce runs
    /// with the last backward only. Then clipping and one AdamW update. The reported losses and times are
    /// sums/means over the micro-batches.
    @discardableResult
    public func train(on microBatches: [TrainBatch]) throws -> StepReport {
        precondition(!microBatches.isEmpty, "a step needs at least one batch")
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        var report = StepReport(losses: [:], total: 0, gradNorm: 0, learningRate: 0)
        let a = microBatches.count
        // Forward and backward run their matrix products in `solver.precision` (the backward's too, as under
        // torch.autocast); the criterion and everything after the backward stay fp32. The parameters' converted copies
        // (bf16 operands, oneDNN's blocked convolution weights) are made once here and reused until the optimizer step.
        // `matchingOnly` leaves the MP losses out of the total (the gradient split's extra pass); the report is `into`.
        func forwardAndBackward(matchingOnly: Bool, into report: inout StepReport) throws {
            parameters.zeroGrad()
            try withParameterCache(parameters.values.base, count: parameters.count) { try withGEMMPrecision(config.solver.precision) {
                for (m, batch) in microBatches.enumerated() {
                    var t0 = now()
                    let criterionBefore = report.criterion
                    // Each micro-batch's loss is weighted 1/A, so the summed gradients are their average.
                    let total = try forwardAndLoss(batch, into: &report, weight: 1 / Float(a), matchingOnly: matchingOnly)
                    report.forward += now() - t0 - (report.criterion - criterionBefore)
                    t0 = now()
                    if m == a - 1 { try synchronizer.backward(total) } else { total.backward() }
                    report.backward += now() - t0
                }
            } }
            report.allReduceWait = try synchronizer.finish()
        }
        // The gradient split: first the same forward and backward without the MP losses (every random draw is keyed
        // by image and iteration, so it sees what the step sees), its gradient g_m kept; then the step as always.
        let splitPeriod = config.train.gradientSplitPeriod
        var matchingGradient: [Float]?, splitSeconds = 0.0
        if config.model.maskPiloting.enabled && splitPeriod > 0 && (iteration + 1) % splitPeriod == 0 {
            let t0 = now()
            var scratch = StepReport(losses: [:], total: 0, gradNorm: 0, learningRate: 0)
            try forwardAndBackward(matchingOnly: true, into: &scratch)
            matchingGradient = Array(UnsafeBufferPointer(start: parameters.grads.base, count: parameters.count))
            splitSeconds = now() - t0
        }
        try forwardAndBackward(matchingOnly: false, into: &report)
        if let matchingGradient {
            report.gradientSplit = matchingGradient.withUnsafeBufferPointer {
                GradientSplit(matching: $0, total: UnsafeBufferPointer(start: parameters.grads.base, count: parameters.count))
            }
            report.gradientSplit?.seconds = splitSeconds
        }
        let t0 = now()
        report.gradNorm = clipGradNorm(parameters, maxNorm: config.solver.clipGradNorm)
        report.learningRate = schedule.learningRate(at: iteration)
        optimizer.step(lr: report.learningRate)
        iteration += 1
        report.optimizer = now() - t0
        return report
    }

    /// Forward and criterion (+ MP losses) of one batch; adds `weight ×` each loss to `report`
    /// (`forward` is timed by the caller, `criterion` here) and returns the total loss (with grad).
    func forwardAndLoss(_ batch: TrainBatch, into report: inout StepReport, weight: Float, matchingOnly: Bool = false) throws -> Tensor {
        let mp = config.model.maskPiloting
        let pilotTargets = mp.enabled
            ? MaskPilotingTargets(labels: batch.targets.map(\.labels), masks: batch.targets.map(\.masks), rngs: batch.rngs) : nil
        let drops = StochasticDepthDraws(seed: config.seed &+ RandomStreams.dropPath, imageKeys: batch.imageKeys, iteration: iteration)
        let predictions = withGrad { model.trainingForward(batch.images, maskPiloting: pilotTargets, stochasticDepth: drops) }
        let t0 = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
        let numMasks = try synchronizer.averageOverRanks(SetCriterion.targetCount(batch.targets))
        points.begin(imageKeys: batch.imageKeys, iteration: iteration)
        var losses: [String: Float] = [:]
        let total: Tensor = withGEMMPrecision(.fp32) { withGrad {
            let matching = criterion(predictions.matching, targets: batch.targets, points: points.points(for: .matching),
                                     numMasks: numMasks)
            var total = matching.total
            for (name, value) in matching.losses { losses[name] = value.item }
            if mp.enabled && !matchingOnly {
                let extra = criterion.maskPilotingLosses(predictions.piloted, targets: batch.targets, numMasks: matching.numMasks,
                                                         includeClassLoss: !mp.noLabelLoss, predictionCount: predictions.matching.count,
                                                         points: points.points(for: .maskPiloting))
                for (name, value) in extra.losses { losses[name] = value.item }
                total = total + (mp.lossWeight == 1 ? extra.total : extra.total * Float(mp.lossWeight))
            }
            return total
        } }
        for (name, v) in losses { report.losses[name, default: 0] += weight * v }
        report.total += weight * total.item
        report.criterion += Double(DispatchTime.now().uptimeNanoseconds) / 1e9 - t0
        return weight == 1 ? total : withGrad { total * weight }
    }
}
