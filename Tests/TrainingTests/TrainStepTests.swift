// Tests of the configured model and training step: the R50 parameter count, and a tiny model overfitting.
// Reference: docs/model.md#parameter-count (43.99 M trainable for R50 / 150 classes with query_embed), #criterion and #optimizer (the step).
import Foundation
import Mask2FormerModel
import NN
import Testing
import TensorCore
import Training
import Kernels
import _TestSupport

/// A few synthetic 64×64 images: class c is a rectangle of colour c on a grey background.
func synthesizeBatch(images: Int, seed: UInt64) -> TrainBatch {
    var rng = RNG(seed: seed)
    let s = 64
    let colours: [[Float]] = [[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [-1, 1, 1]]
    var pixels = [Float](repeating: 0, count: images * s * s * 3)
    var targets: [MaskTargets] = []
    for b in 0..<images {
        var labels: [Int] = [], masks: [Float] = []
        for _ in 0..<2 {
            let c = rng.nextInt(below: 5)
            let h = 12 + rng.nextInt(below: 20), w = 12 + rng.nextInt(below: 20)
            let y0 = rng.nextInt(below: s - h), x0 = rng.nextInt(below: s - w)
            var m = [Float](repeating: 0, count: s * s)
            for y in y0..<(y0 + h) {
                for x in x0..<(x0 + w) {
                    m[y * s + x] = 1
                    for ch in 0..<3 { pixels[((b * s + y) * s + x) * 3 + ch] = colours[c][ch] }
                }
            }
            // A later object occludes an earlier one: keep masks disjoint.
            for i in 0..<labels.count { for p in 0..<(s * s) where m[p] == 1 { masks[i * s * s + p] = 0 } }
            labels.append(c); masks += m
        }
        targets.append(MaskTargets(labels: labels, masks: Tensor(masks, shape: [labels.count, s, s])))
    }
    return TrainBatch(images: Tensor(pixels, shape: [images, s, s, 3]), targets: targets,
                      rngs: (0..<images).map { RNG(seed: seed, stream: UInt64(100 + $0)) },
                      imageKeys: (0..<images).map { KeyedPointSource.imageKey(epoch: 0, imageId: $0) })
}

/// A tiny model (basic-block ResNet 16…128, one encoder layer, hidden 32, 6 queries, 3 decoder layers, 5 classes).
func tinyStepConfig() -> MaskPilotConfig {
        var c = MaskPilotConfig()
        c.model.backbone = BackboneConfig(block: .basic, depths: [1, 1, 1, 1], widths: [16, 32, 64, 128], stemChannels: 16)
        c.model.pixelDecoder.convDim = 32; c.model.pixelDecoder.maskDim = 32; c.model.pixelDecoder.encoderLayers = 1
        c.model.pixelDecoder.encoderFeedforwardDim = 32
        c.model.decoder.hiddenDim = 32; c.model.decoder.maskDim = 32; c.model.decoder.numQueries = 6
        c.model.decoder.heads = 4; c.model.decoder.feedforwardDim = 32; c.model.decoder.decLayers = 3; c.model.decoder.numClasses = 5
        return c
}

@Suite struct TrainStepTests {
    @Test func r50AdeBaselineHasTheReferenceParameterCount() throws {
        var c = MaskPilotConfig()
        c.model = .r50(numClasses: 150)
        var rng = RNG(seed: 0)
        let model = Mask2Former(c.model, rng: &rng)
        // docs/model.md#parameter-count: 23,454,912 + 6,035,904 + 14,458,624 + (K+1)·257 for K = 150.
        #expect(model.namedParameters().reduce(0) { $0 + $1.1.count } == 43_988_247)
    }

    @Test func fpnPixelDecoderModelTrains() throws {
        var c = MaskPilotConfig()
        c.model = .r50(numClasses: 5)
        c.model.backbone = BackboneConfig(block: .basic, depths: [1, 1, 1, 1], widths: [16, 32, 64, 128], stemChannels: 16)
        c.model.pixelDecoder.name = .fpn
        c.model.pixelDecoder.convDim = 32; c.model.pixelDecoder.maskDim = 32
        c.model.decoder.hiddenDim = 32; c.model.decoder.maskDim = 32; c.model.decoder.numQueries = 4
        c.model.decoder.heads = 4; c.model.decoder.feedforwardDim = 32; c.model.decoder.decLayers = 3
        c.loss.numPoints = 32
        let step = TrainingStep(config: c)
        #expect(step.model.namedParameters().contains { $0.0 == "sem_seg_head.pixel_decoder.layer_4.weight" })
        let r = try step.train(on: synthesizeBatch(images: 2, seed: 4))
        #expect(r.total.isFinite && r.gradNorm > 0)
    }

    /// With and without mask piloting, and in bf16 (solver.precision: the matrix products through oneDNN in bf16,
    /// the rest fp32), the tiny model fits two images.
    @Test(arguments: [(false, "fp32"), (true, "fp32"), (true, "bf16")])
    func tinyModelOverfitsAFewImages(maskPiloting: Bool, precision: String) throws {
        let tiny = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("configs/tiny.yaml").path
        let config = try MaskPilotConfig.load(path: tiny, overrides: [
            "model.mask_piloting.enabled=\(maskPiloting)", "solver.base_learning_rate=0.001", "solver.max_iter=100000",
            "loss.num_points=64", "seed=3", "solver.precision=\(precision)",
        ])
        #expect(config.solver.precision.rawValue == precision)
        let step = TrainingStep(config: config)
        let batch = synthesizeBatch(images: 2, seed: 9)
        var first: Float = 0, last: [Float] = []
        for i in 0..<150 {
            let r = try step.train(on: batch)
            #expect(r.total.isFinite, "step \(i): loss \(r.total)")
            if i == 0 { first = r.total }
            if i >= 140 { last.append(r.total) }
            if maskPiloting && i == 0 { #expect(r.losses["loss_mask_dn"] != nil && r.losses["loss_dice_dn_0"] != nil) }
        }
        let end = last.reduce(0, +) / Float(last.count)
        #expect(end * 5 < first, "MP \(maskPiloting), \(precision): loss \(first) → \(end)")
    }

    /// `model.mask_piloting.loss_weight` scales the MP terms only: the same first step with 1 and 0.5 reports the
    /// same loss terms, and totals that differ by half the weighted MP terms.
    @Test func maskPilotingLossWeightScalesOnlyTheMPTerms() throws {
        let tiny = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("configs/tiny.yaml").path
        func firstStep(_ weight: Double) throws -> (report: StepReport, config: MaskPilotConfig) {
            let config = try MaskPilotConfig.load(path: tiny, overrides: [
                "model.mask_piloting.enabled=true", "model.mask_piloting.loss_weight=\(weight)", "loss.num_points=64", "seed=3"])
            return (try TrainingStep(config: config).train(on: synthesizeBatch(images: 2, seed: 9)), config)
        }
        let (one, config) = try firstStep(1), (half, _) = try firstStep(0.5)
        #expect(one.losses == half.losses)
        var mp = 0.0
        for (name, value) in one.losses where name.contains("_dn") {
            let w = name.contains("cross_entropy") ? config.loss.classWeight : name.contains("dice") ? config.loss.diceWeight : config.loss.maskWeight
            mp += w * Double(value)
        }
        #expect(mp > 0)
        #expect(abs(Double(one.total - half.total) - 0.5 * mp) < 1e-3 * Double(one.total))
    }

    /// `train.gradient_split_period` measures the two parts of the gradient without changing the steps (bitwise the
    /// same losses, gradient norms and parameters); the matching part is the gradient of the same step with the MP
    /// losses weighted 0, and the parts add up to the step's gradient norm. Only the period's steps, only with MP.
    @Test func gradientSplitMeasuresWithoutChangingTheSteps() throws {
        let tiny = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("configs/tiny.yaml").path
        let batch = synthesizeBatch(images: 2, seed: 9)
        func run(weight: Double = 1, period: Int, maskPiloting: Bool = true) throws -> (reports: [StepReport], values: [Float]) {
            let config = try MaskPilotConfig.load(path: tiny, overrides: [
                "model.mask_piloting.enabled=\(maskPiloting)", "model.mask_piloting.loss_weight=\(weight)", "loss.num_points=64",
                "seed=3", "train.gradient_split_period=\(period)"])
            let step = TrainingStep(config: config)
            let reports = try (0..<3).map { _ in try step.train(on: batch) }
            return (reports, Array(step.parameters.values.buffer))
        }
        let plain = try run(period: 0), split = try run(period: 1)
        #expect(split.values == plain.values)
        #expect(split.reports.map(\.total) == plain.reports.map(\.total))
        #expect(split.reports.map(\.gradNorm) == plain.reports.map(\.gradNorm))
        #expect(plain.reports.allSatisfy { $0.gradientSplit == nil })
        for r in split.reports {
            let s = try #require(r.gradientSplit)
            #expect(s.matchingNorm > 0 && s.pilotingNorm > 0 && abs(s.cosine) <= 1)
            let norm = (s.matchingNorm * s.matchingNorm + s.pilotingNorm * s.pilotingNorm
                        + 2 * s.cosine * s.matchingNorm * s.pilotingNorm).squareRoot()
            #expect(abs(norm - r.gradNorm) <= 1e-5 * r.gradNorm, "\(norm) vs \(r.gradNorm)")
        }
        let matchingOnly = try run(weight: 0, period: 0)
        let first = try #require(split.reports[0].gradientSplit)
        #expect(abs(first.matchingNorm - matchingOnly.reports[0].gradNorm) <= 1e-5 * first.matchingNorm)
        #expect(try run(period: 2).reports.map { $0.gradientSplit != nil } == [false, true, false])
        #expect(try run(period: 1, maskPiloting: false).reports.allSatisfy { $0.gradientSplit == nil })
    }

    /// A whole training run (mask piloting on) gives bitwise the same losses and parameters at 1, 2 and 8 threads, in
    /// both precisions: MaskPilot's kernels cut their work by data size, and oneDNN's matmul and convolutions were
    /// measured to be bitwise stable across thread counts on these shapes (docs/perf.md#threads-within-a-rank).
    /// With a Swin backbone (window 3, drop path 0.5) too: its window attention, rolls and drop-path draws.
    @Test(arguments: [("fp32", "resnet"), ("bf16", "resnet"), ("fp32", "swin")])
    func trainingIsIndependentOfTheThreadCount(precision: String, backbone: String) throws {
        let tiny = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("configs/tiny.yaml").path
        let swin = ["model.backbone.name=swin", "model.backbone.swin.embed_dim=16", "model.backbone.swin.depths=[2,2,2,2]",
                    "model.backbone.swin.num_heads=[1,2,2,4]", "model.backbone.swin.window_size=3",
                    "model.backbone.swin.drop_path_rate=0.5"]
        let config = try MaskPilotConfig.load(path: tiny, overrides: [
            "model.mask_piloting.enabled=true", "loss.num_points=64", "seed=5", "solver.precision=\(precision)",
        ] + (backbone == "swin" ? swin : []))
        let batch = synthesizeBatch(images: 2, seed: 11)
        // Chunks 256× smaller than by default, so that the tiny model's kernels run in parallel.
        let runs = try atThreadCounts(grainDivisor: 256) { () throws -> [Float] in
            let saved = DNNLThreads.current
            DNNLThreads.set(IntraOpThreads.current)
            defer { DNNLThreads.set(saved) }
            let step = TrainingStep(config: config)
            var out: [Float] = []
            for _ in 0..<3 {
                let r = try step.train(on: batch)
                out += [r.total, Float(r.gradNorm)]
            }
            return out + Array(step.parameters.values.buffer)
        }
        #expect(bitwiseEqual(runs), "\(precision), \(backbone): losses \(runs.map { Array($0.prefix(6)) })")
    }

    /// `model.backbone.freeze_at: 2` leaves the stem and res2 out of the flat parameters (their values never change,
    /// the state dict still holds them) and changes nothing else: the same forward and, for every trained parameter,
    /// the bitwise same gradient as the unfrozen model's (clipping off, so the norm over fewer parameters does not
    /// rescale them).
    @Test func freezeAtLeavesTheFirstStagesAlone() throws {
        var c = tinyStepConfig()
        c.loss.numPoints = 32
        c.solver.clipGradNorm = 1e6
        var f = c
        f.model.backbone.freezeAt = 2
        #expect(f.violations().isEmpty)
        #expect(f.model.backbone.frozenParameterPrefixes == ["backbone.stem.", "backbone.res2."])
        let full = TrainingStep(config: c), frozen = TrainingStep(config: f)
        let isFrozen = { (name: String) in name.hasPrefix("backbone.stem.") || name.hasPrefix("backbone.res2.") }
        let before = Dictionary(uniqueKeysWithValues: frozen.model.namedParameters().map { ($0.0, $0.1.values) })
        #expect(frozen.parameters.names.allSatisfy { !isFrozen($0) })
        #expect(frozen.parameters.names.count < full.parameters.names.count && frozen.parameters.names.contains("backbone.res3.0.conv1.weight"))
        #expect(frozen.model.stateDict().contains { $0.0 == "backbone.stem.conv1.weight" })

        let batch = synthesizeBatch(images: 2, seed: 5)
        let ra = try full.train(on: batch), rb = try frozen.train(on: batch)
        #expect(ra.total == rb.total && ra.losses == rb.losses)
        var compared = 0
        for name in frozen.parameters.names {
            let a = full.parameters.grads.buffer[full.parameters.range(of: name)!]
            let b = frozen.parameters.grads.buffer[frozen.parameters.range(of: name)!]
            #expect(Array(a) == Array(b), "gradient of \(name)")
            compared += 1
        }
        #expect(compared == frozen.parameters.names.count)
        for _ in 0..<2 { try frozen.train(on: batch) }
        for (name, t) in frozen.model.namedParameters() where isFrozen(name) {
            #expect(t.values == before[name]!, "\(name) changed")
            #expect(!t.requiresGrad)
        }
        #expect(frozen.model.namedParameters().first { $0.0 == "backbone.res3.0.conv1.weight" }!.1.values
                != before["backbone.res3.0.conv1.weight"]!)

        var swin = BackboneConfig.swin(SwinConfig())
        swin.freezeAt = 3
        #expect(swin.frozenParameterPrefixes == ["backbone.patch_embed.", "backbone.layers.0.", "backbone.layers.1."])
        f.model.backbone.freezeAt = 6
        #expect(f.violations().map(\.key) == ["model.backbone.freeze_at"])
    }
}

@Suite struct GradientAccumulationTests {
    /// Two micro-batches of one image each (solver.accumulate 2) give the same update as one batch of both
    /// images: each image has two objects, so the per-micro-batch class-loss means and num_masks average to
    /// the full batch's (the same condition as for ranks).
    @Test func accumulateEqualsTheFullBatch() throws {
        var c = tinyStepConfig()
        c.model.maskPiloting.enabled = true
        c.loss.numPoints = 32
        c.solver.baseLearningRate = 1e-3
        let full = synthesizeBatch(images: 2, seed: 21)
        func part(_ i: Int) -> TrainBatch {
            TrainBatch(images: full.images.slice(axis: 0, i..<(i + 1)), targets: [full.targets[i]], rngs: [full.rngs[i]],
                       imageKeys: [UInt64(i)])
        }
        let whole = TrainBatch(images: full.images, targets: full.targets, rngs: full.rngs, imageKeys: [0, 1])
        let a = TrainingStep(config: c), b = TrainingStep(config: c)
        for _ in 0..<3 {
            let ra = try a.train(on: whole)
            let rb = try b.train(on: [part(0), part(1)])
            #expect(abs(ra.total - rb.total) <= 1e-4 * abs(ra.total), "\(ra.total) vs \(rb.total)")
        }
        let pa = a.parameters.values.buffer, pb = b.parameters.values.buffer
        var diff = 0.0, norm = 0.0
        for i in 0..<pa.count { diff += Double(pa[i] - pb[i]) * Double(pa[i] - pb[i]); norm += Double(pa[i]) * Double(pa[i]) }
        // Norm-relative, as the rank-equivalence test: zero-gradient biases make element-wise checks meaningless.
        #expect((diff / norm).squareRoot() < 1e-5, "‖Δp‖/‖p‖ = \((diff / norm).squareRoot())")
    }
}
