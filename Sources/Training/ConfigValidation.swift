// Checks a whole MaskPilotConfig before anything is allocated: ranges, divisibility, consistency between sections,
// and a lower bound of the activation memory a rank needs. Every violation is reported at once, naming its key.
// Corresponds to the asserts detectron2 and Mask2Former scatter through their builders, gathered in one place.
import Mask2FormerModel
import TensorCore

/// One configuration key with a value that cannot work, and why.
public struct ConfigViolation: Sendable, Equatable, CustomStringConvertible {
    /// The dotted key path, e.g. `model.decoder.heads`.
    public var key: String
    public var problem: String
    public var description: String { "\(key): \(problem)" }
}

extension MaskPilotConfig {
    /// Every key whose value cannot work, in schema order; empty when the configuration is usable. Ranges and
    /// divisibility only: what needs the data (class counts) or the world size (per-rank batch, memory) is
    /// checked by `violations(worldSize:datasetClasses:memoryBytes:)`.
    public func violations() -> [ConfigViolation] {
        var out: [ConfigViolation] = []
        func require(_ ok: Bool, _ key: String, _ problem: @autoclosure () -> String) {
            if !ok { out.append(ConfigViolation(key: key, problem: problem())) }
        }
        // Every number has an upper bound too, far above any real model or run, so that no product of sizes,
        // count of steps or conversion to Int downstream can overflow (`Limit`).
        func positive(_ value: Int, _ key: String, max limit: Int = Limit.count) {
            require((1...limit).contains(value), key, value < 1 ? "must be at least 1, got \(value)" : "must be at most \(limit), got \(value)")
        }
        func nonNegative(_ value: Int, _ key: String, max limit: Int = Limit.count) {
            require((0...limit).contains(value), key, value < 0 ? "must be 0 or more, got \(value)" : "must be at most \(limit), got \(value)")
        }
        func positive(_ value: Double, _ key: String, max limit: Double = Limit.scale) {
            require(value.isFinite && value > 0 && value <= limit, key, "must be a finite number above 0 and at most \(limit), got \(value)")
        }
        func nonNegative(_ value: Double, _ key: String, max limit: Double = Limit.scale) {
            require(value.isFinite && value >= 0 && value <= limit, key, "must be a finite number within 0…\(limit), got \(value)")
        }
        func fraction(_ value: Double, _ key: String) { require(value.isFinite && (0...1).contains(value), key, "must be within 0…1, got \(value)") }

        let b = model.backbone
        require((0...5).contains(b.freezeAt), "model.backbone.freeze_at",
                "must be within 0…5 (0 trains everything, 1 freezes the stem, 2…5 also res2…res5), got \(b.freezeAt)")
        switch b.name {
        case .resnet:
            require(b.depths.count == 4, "model.backbone.depths", "needs 4 stages (res2…res5), got \(b.depths.count): \(b.depths)")
            require(b.widths.count == 4, "model.backbone.widths", "needs 4 stages (res2…res5), got \(b.widths.count): \(b.widths)")
            require(b.depths.allSatisfy { (1...Limit.count).contains($0) }, "model.backbone.depths",
                    "every stage needs 1…\(Limit.count) blocks, got \(b.depths)")
            require(b.widths.allSatisfy { (1...Limit.width).contains($0) }, "model.backbone.widths", "every width must be within 1…\(Limit.width), got \(b.widths)")
            if b.block == .bottleneck {
                require(b.widths.allSatisfy { $0 >= 4 }, "model.backbone.widths",
                        "bottleneck blocks are width ÷ 4 wide inside, so every width must be at least 4, got \(b.widths)")
            }
            positive(b.stemChannels, "model.backbone.stem_channels", max: Limit.width)
        case .swin:
            let w = b.swin
            positive(w.embedDim, "model.backbone.swin.embed_dim", max: Limit.width)
            require(w.depths.count == 4, "model.backbone.swin.depths", "needs 4 stages (res2…res5), got \(w.depths.count): \(w.depths)")
            require(w.depths.allSatisfy { (1...Limit.count).contains($0) }, "model.backbone.swin.depths",
                    "every stage needs 1…\(Limit.count) blocks, got \(w.depths)")
            require(w.numHeads.count == 4, "model.backbone.swin.num_heads", "needs one head count per stage (4), got \(w.numHeads.count): \(w.numHeads)")
            if w.numHeads.count == 4, w.embedDim >= 1 {
                for (s, heads) in w.numHeads.enumerated() {
                    require(heads >= 1 && heads <= Limit.count && (w.embedDim << s) % heads == 0, "model.backbone.swin.num_heads",
                            "stage \(s) has \(w.embedDim << s) channels (embed_dim · 2^\(s)), not divisible by \(heads) heads")
                }
            }
            // The relative-position index has window_size⁴ entries (Swin-L's 12: 20736; 64: 16.8 M).
            positive(w.windowSize, "model.backbone.swin.window_size", max: 64)
            positive(w.mlpRatio, "model.backbone.swin.mlp_ratio", max: 1024)
            require(w.dropPathRate.isFinite && (0..<1).contains(w.dropPathRate), "model.backbone.swin.drop_path_rate",
                    "must be within 0 ≤ rate < 1, got \(w.dropPathRate)")
            require(w.patchSize == 4, "model.backbone.swin.patch_size",
                    "res2 must be at stride 4 for the pixel decoder, so the patch size must be 4, got \(w.patchSize)")
        }

        require(model.pixelMean.count == 3 && model.pixelMean.allSatisfy { $0.isFinite && abs($0) <= 1e6 }, "model.pixel_mean",
                "needs 3 finite numbers (R, G, B on the 0–255 scale), got \(model.pixelMean)")
        require(model.pixelStd.count == 3 && model.pixelStd.allSatisfy { $0.isFinite && $0 >= 1e-3 && $0 <= 1e6 }, "model.pixel_std",
                "needs 3 numbers within 0.001…1e6 (R, G, B on the 0–255 scale), got \(model.pixelStd)")
        let p = model.pixelDecoder, d = model.decoder
        positive(p.convDim, "model.pixel_decoder.conv_dim", max: Limit.width)
        positive(p.maskDim, "model.pixel_decoder.mask_dim", max: Limit.width)
        nonNegative(p.encoderLayers, "model.pixel_decoder.encoder_layers")
        positive(p.encoderHeads, "model.pixel_decoder.encoder_heads")
        positive(p.encoderPoints, "model.pixel_decoder.encoder_points")
        positive(p.encoderFeedforwardDim, "model.pixel_decoder.encoder_feedforward_dim", max: Limit.width)
        positive(p.groups, "model.pixel_decoder.groups")
        if p.convDim >= 1 && p.encoderHeads >= 1 {
            require(p.convDim % p.encoderHeads == 0, "model.pixel_decoder.encoder_heads",
                    "must divide model.pixel_decoder.conv_dim \(p.convDim), got \(p.encoderHeads)")
        }
        if p.groups >= 1 {
            require(p.convDim % p.groups == 0, "model.pixel_decoder.groups", "must divide model.pixel_decoder.conv_dim \(p.convDim) (GroupNorm), got \(p.groups)")
        }
        positive(d.hiddenDim, "model.decoder.hidden_dim", max: Limit.width)
        positive(d.numQueries, "model.decoder.num_queries")
        positive(d.heads, "model.decoder.heads")
        positive(d.feedforwardDim, "model.decoder.feedforward_dim", max: Limit.width)
        positive(d.decLayers, "model.decoder.dec_layers")
        positive(d.maskDim, "model.decoder.mask_dim", max: Limit.width)
        positive(d.numClasses, "model.decoder.num_classes")
        require(d.featureLevels == 3, "model.decoder.feature_levels", "must be 3 (the pixel decoder's strides 32, 16, 8), got \(d.featureLevels)")
        if d.hiddenDim >= 1 && d.heads >= 1 {
            require(d.hiddenDim % d.heads == 0, "model.decoder.heads", "must divide model.decoder.hidden_dim \(d.hiddenDim), got \(d.heads)")
        }
        require(p.convDim == d.hiddenDim, "model.pixel_decoder.conv_dim",
                "must equal model.decoder.hidden_dim (\(d.hiddenDim)): the decoder attends to the pixel decoder's features, got \(p.convDim)")
        require(p.maskDim == d.maskDim, "model.pixel_decoder.mask_dim", "must equal model.decoder.mask_dim (\(d.maskDim)), got \(p.maskDim)")
        let mp = model.maskPiloting
        positive(mp.numGroups, "model.mask_piloting.num_groups")
        fraction(mp.pointNoise, "model.mask_piloting.point_noise")
        require(mp.labelNoise.isFinite && mp.labelNoise <= 1, "model.mask_piloting.label_noise", "must be at most 1 (≤ 0 is off), got \(mp.labelNoise)")
        positive(mp.firstLayers, "model.mask_piloting.first_layers")

        nonNegative(loss.classWeight, "loss.class_weight")
        nonNegative(loss.maskWeight, "loss.mask_weight")
        nonNegative(loss.diceWeight, "loss.dice_weight")
        nonNegative(loss.noObjectWeight, "loss.no_object_weight")
        positive(loss.numPoints, "loss.num_points")
        require(loss.oversampleRatio.isFinite && (1...1024).contains(loss.oversampleRatio), "loss.oversample_ratio",
                "must be within 1…1024, got \(loss.oversampleRatio)")
        fraction(loss.importanceSampleRatio, "loss.importance_sample_ratio")

        let s = solver
        positive(s.imsPerBatch, "solver.ims_per_batch")
        positive(s.accumulate, "solver.accumulate")
        positive(s.baseLearningRate, "solver.base_learning_rate")
        nonNegative(s.weightDecay, "solver.weight_decay")
        nonNegative(s.weightDecayNorm, "solver.weight_decay_norm")
        nonNegative(s.weightDecayEmbed, "solver.weight_decay_embed")
        nonNegative(s.backboneMultiplier, "solver.backbone_multiplier")
        positive(s.clipGradNorm, "solver.clip_grad_norm")
        positive(s.maxIter, "solver.max_iter", max: Limit.iterations)
        nonNegative(s.polyPower, "solver.poly_power")
        positive(s.gamma, "solver.gamma")
        nonNegative(s.warmupIters, "solver.warmup_iters", max: Limit.iterations)
        require(s.warmupFactor.isFinite && s.warmupFactor > 0 && s.warmupFactor <= 1, "solver.warmup_factor", "must be within (0, 1], got \(s.warmupFactor)")
        require(s.steps.allSatisfy { (1...Limit.iterations).contains($0) } && zip(s.steps, s.steps.dropFirst()).allSatisfy { $0 < $1 }, "solver.steps",
                "must be increasing iterations ≥ 1, got \(s.steps)")
        if s.imsPerBatch >= 1 && s.accumulate >= 1 {
            require(s.imsPerBatch % s.accumulate == 0, "solver.accumulate", "must divide solver.ims_per_batch \(s.imsPerBatch), got \(s.accumulate)")
        }

        require(min(input.cropSize.height, input.cropSize.width) >= 32, "input.crop_size",
                "must be at least 32 (the backbone's largest stride), got \(input.cropSize.description)")
        require(max(input.cropSize.height, input.cropSize.width) <= Limit.pixels, "input.crop_size",
                "must be at most \(Limit.pixels), got \(input.cropSize.description)")
        if !data.format.isShortEdgeCrop {
            require(input.cropSize.isSquare, "input.crop_size", "must be one number for \(data.format.rawValue) (large-scale jitter crops a square), "
                    + "got \(input.cropSize.description)")
        }
        require(input.minScale.isFinite && input.maxScale.isFinite && input.minScale > 0 && input.minScale <= input.maxScale,
                "input.min_scale", "must satisfy 0 < input.min_scale ≤ input.max_scale, got \(input.minScale) and \(input.maxScale)")
        require(!(input.maxScale > 64), "input.max_scale", "must be at most 64, got \(input.maxScale)")
        require(model.maskPiloting.lossWeight.isFinite && model.maskPiloting.lossWeight >= 0, "model.mask_piloting.loss_weight",
                "must be a finite number ≥ 0, got \(model.maskPiloting.lossWeight)")
        require(input.minSizeTrain.allSatisfy { (1...Limit.pixels).contains($0) }, "input.min_size_train",
                "must be short-edge lengths within 1…\(Limit.pixels), got \(input.minSizeTrain)")
        nonNegative(input.maxSizeTrain, "input.max_size_train", max: Limit.pixels)
        require(input.singleCategoryMaxArea.isFinite && input.singleCategoryMaxArea > 0 && input.singleCategoryMaxArea <= 1,
                "input.single_category_max_area", "must be within (0, 1], got \(input.singleCategoryMaxArea)")
        if input.singleCategoryMaxArea < 1, data.format.descriptor.task != .semantic {
            out.append(ConfigViolation(key: "input.single_category_max_area",
                                       problem: "applies to semantic formats only (\(data.format.rawValue) crops without it); leave it at 1.0"))
        }
        nonNegative(input.minSizeTest, "input.min_size_test", max: Limit.pixels)
        nonNegative(input.maxSizeTest, "input.max_size_test", max: Limit.pixels)
        require(!data.root.isEmpty, "data.root", "is empty")
        let splits = data.trainSplit.names
        require(!splits.isEmpty && !splits.contains(where: \.isEmpty), "data.train_split", "must name a split or a list of splits, none empty")
        require(splits.count <= TrainingData.maxSplits, "data.train_split", "lists \(splits.count) splits; at most \(TrainingData.maxSplits)")
        let defaults = DataConfig()
        let layoutKeys = [("data.annotation_file", data.annotationFile, [DataConfig.Format.cocoInstance, .cocoPanoptic]),
                          ("data.image_folder", data.imageFolder, [.cocoInstance, .cocoPanoptic, .semSeg]),
                          ("data.label_folder", data.labelFolder, [.cocoPanoptic, .semSeg])]
        for (key, value, formats) in layoutKeys where !value.isEmpty && !formats.contains(data.format) {
            out.append(ConfigViolation(key: key, problem: "applies to data.format " + formats.map(\.rawValue).joined(separator: ", ")
                                         + " only (\(data.format.rawValue) does not use it); leave it out"))
        }
        if !data.filterEmptyAnnotations, data.format != .cocoInstance, data.format != .cityscapesInstance {
            out.append(ConfigViolation(key: "data.filter_empty_annotations",
                                       problem: "applies to data.format coco-instance and cityscapes-instance only (\(data.format.rawValue) trains on every image); leave it out"))
        }
        if data.format == .semSeg {
            require((0...255).contains(data.ignoreLabel), "data.ignore_label", "must be an 8-bit label value within 0…255, got \(data.ignoreLabel)")
            require(data.classes.isEmpty || data.classes.count == model.decoder.numClasses, "data.classes",
                    "names \(data.classes.count) classes but model.decoder.num_classes is \(model.decoder.numClasses)")
            if (0...255).contains(data.ignoreLabel), model.decoder.numClasses >= 1, let problem = data.labelEncoding(numClasses: model.decoder.numClasses).problem {
                out.append(ConfigViolation(key: "model.decoder.num_classes", problem: "does not fit sem-seg label PNGs: \(problem)"))
            }
        } else {
            for (key, isDefault) in [("data.classes", data.classes == defaults.classes), ("data.ignore_label", data.ignoreLabel == defaults.ignoreLabel),
                                     ("data.reduce_zero_label", data.reduceZeroLabel == defaults.reduceZeroLabel)] where !isDefault {
                out.append(ConfigViolation(key: key, problem: "applies to data.format sem-seg only (\(data.format.rawValue) has its own label space); leave it out"))
            }
        }
        positive(data.workers, "data.workers", max: Limit.threads)
        positive(data.prefetch, "data.prefetch", max: Limit.threads)
        positive(distributed.bucketMb, "distributed.bucket_mb", max: 1_048_576)
        nonNegative(distributed.checkPeriod, "distributed.check_period", max: Limit.iterations)
        nonNegative(checkpoint.period, "checkpoint.period", max: Limit.iterations)
        nonNegative(checkpoint.keep, "checkpoint.keep")
        positive(train.logPeriod, "train.log_period", max: Limit.iterations)
        nonNegative(train.threads, "train.threads", max: Limit.threads)
        nonNegative(train.gradientSplitPeriod, "train.gradient_split_period", max: Limit.iterations)
        nonNegative(eval.period, "eval.period", max: Limit.iterations)
        nonNegative(eval.maxImages, "eval.max_images", max: Limit.iterations)
        if eval.tta {
            if data.format.descriptor.testAugmentation == nil {
                out.append(ConfigViolation(key: "eval.tta", problem: "applies to semantic formats only (Mask2Former averages semantic scores; "
                                             + "\(data.format.rawValue) is scored as \(data.format.descriptor.task.rawValue))"))
            }
            require(eval.ttaMinSizes.allSatisfy { (1...Limit.pixels).contains($0) }, "eval.tta_min_sizes",
                    "must be short-edge lengths within 1…\(Limit.pixels), got \(eval.ttaMinSizes)")
        }
        nonNegative(eval.ttaMaxSize, "eval.tta_max_size", max: Limit.pixels)
        fraction(eval.objectMaskThreshold, "eval.object_mask_threshold")
        fraction(eval.overlapThreshold, "eval.overlap_threshold")
        return out
    }

    /// The model's float32 parameters alone (a lower bound, `parameterBytesLowerBound()` without gradients and AdamW
    /// state) against `memoryBytes`: what eval, predict and the model commands need before they build the model.
    public func inferenceViolations(memoryBytes: Int = physicalMemoryBytes()) -> [ConfigViolation] {
        guard memoryBytes > 0, let (key, bytes) = parameterBytesLowerBound().max(by: { $0.bytes < $1.bytes }),
              bytes / 4 > Double(memoryBytes) else { return [] }
        return [ConfigViolation(key: key, problem: String(format: "its parameters need at least %.1f GB, more than this machine's %.1f GB",
                                                          bytes / 4e9, Double(memoryBytes) / 1e9))]
    }

    /// `violations()` plus what depends on the run: the per-rank batch for `worldSize` ranks, the dataset's class
    /// count (when known; `model.decoder.num_classes` must equal it) and the activation-memory lower bound of one rank against `memoryBytes`.
    public func violations(worldSize: Int, datasetClasses: Int? = nil, memoryBytes: Int = physicalMemoryBytes()) -> [ConfigViolation] {
        var out = violations()
        let s = solver
        if s.imsPerBatch >= 1, s.accumulate >= 1, worldSize >= 1, s.imsPerBatch % (worldSize * s.accumulate) != 0 {
            out.append(ConfigViolation(key: "solver.ims_per_batch",
                                       problem: "\(s.imsPerBatch) images cannot be shared by \(worldSize) rank(s) × solver.accumulate \(s.accumulate): "
                                         + "it must be a multiple of \(worldSize * s.accumulate)"))
        }
        if let classes = datasetClasses, model.decoder.numClasses >= 1, model.decoder.numClasses != classes {
            // More would train outputs that are never a target, and evaluation and predict refuse such a model.
            out.append(ConfigViolation(key: "model.decoder.num_classes",
                                       problem: "\(model.decoder.numClasses) is \(model.decoder.numClasses < classes ? "fewer" : "more") than the "
                                         + "dataset's \(classes) classes (\(data.root)); set it to \(classes)"))
        }
        if out.isEmpty, memoryBytes > 0 {
            let perRank = s.imsPerBatch / (worldSize * s.accumulate)
            let need = activationBytesLowerBound(imagesPerRank: perRank)
            if let (key, bytes) = parameterBytesLowerBound().max(by: { $0.bytes < $1.bytes }), bytes > Double(memoryBytes) {
                out.append(ConfigViolation(key: key, problem: String(format: "its parameters with their gradients and AdamW state need at least %.1f GB, "
                                                                     + "more than this machine's %.1f GB", bytes / 1e9, Double(memoryBytes) / 1e9)))
            } else if need > Double(memoryBytes) {
                // Named by what dominates: the decoder's attention (queries²) or everything that grows with the crop.
                let attention = decoderAttentionBytesLowerBound(imagesPerRank: perRank)
                let key = attention > need / 2 ? "model.decoder.num_queries" : "input.crop_size"
                let what = key == "input.crop_size"
                    ? String(format: "%d×%d crops", input.cropSize.height, input.cropSize.width)
                    : "\(model.decoder.numQueries) queries (\(model.decoder.heads) heads, \(max(model.decoder.decLayers - 1, 0)) decoder layers)"
                out.append(ConfigViolation(key: key,
                                           problem: String(format: "%@ (%d image(s) per rank) need at least %.1f GB of activations, "
                                                           + "more than this machine's %.1f GB", what, perRank, need / 1e9, Double(memoryBytes) / 1e9)))
            }
        }
        return out
    }

    /// A lower bound of the bytes of each model section's parameters with their gradients and AdamW's two moments
    /// (16 bytes per parameter), counting only the largest matrices: the backbone's 3×3 or attention and MLP weights,
    /// the pixel decoder's encoder layers, the transformer decoder's attention and FFN weights, query embeddings and
    /// class head. Keyed by section, for the error message.
    public func parameterBytesLowerBound() -> [(key: String, bytes: Double)] {
        let b = model.backbone, p = model.pixelDecoder, d = model.decoder
        var backbone = 0.0
        switch b.name {
        case .resnet:
            for (width, depth) in zip(b.widths, b.depths) { backbone += Double(depth) * Double(width) * Double(width) }
        case .swin:
            for (s, depth) in b.swin.depths.prefix(4).enumerated() {
                let c = Double(b.swin.embedDim) * Double(1 << s)
                backbone += Double(depth) * (4 + 2 * b.swin.mlpRatio) * c * c
            }
        }
        let conv = Double(p.convDim), hidden = Double(d.hiddenDim)
        // Each encoder layer: value and output projections, the FFN, and MSDeformAttn's sampling offsets (x, y) and
        // attention weights for every head × level (3) × point.
        // (The FPN pixel decoder has no encoder.)
        let samples = Double(p.encoderHeads) * 3 * Double(p.encoderPoints)
        let pixel = p.name == .fpn ? 0
            : Double(p.encoderLayers) * (2 * conv * conv + 2 * conv * Double(p.encoderFeedforwardDim) + 3 * conv * samples)
        // dec_layers − 1 decoder layers (the first prediction comes before them); the class head and, with mask
        // piloting, the label embedding: hidden × classes each.
        let decoder = Double(max(d.decLayers - 1, 0)) * (8 * hidden * hidden + 2 * hidden * Double(d.feedforwardDim))
            + 2 * Double(d.numQueries) * hidden + (model.maskPiloting.enabled ? 2 : 1) * hidden * Double(d.numClasses + 1)
        return [("model.backbone", 16 * backbone), ("model.pixel_decoder", 16 * pixel), ("model.decoder", 16 * decoder)]
    }

    /// A lower bound of the bytes one rank holds for backward: the float32 activations the backbone saves alone
    /// (stem at stride 2, then about three tensors per block at each stage's stride), the transformer decoder's
    /// mask logits (every query at stride 4, for each of its predictions) and its attention probabilities
    /// (`decoderAttentionBytesLowerBound`). The pixel decoder, the decoder's other tensors, mask piloting's extra
    /// queries and the losses come on top, so a run can still need more.
    public func activationBytesLowerBound(imagesPerRank: Int) -> Double {
        backboneAndMaskBytesLowerBound(imagesPerRank: imagesPerRank) + decoderAttentionBytesLowerBound(imagesPerRank: imagesPerRank)
    }

    /// The transformer decoder's attention probabilities kept for backward, per decoder layer: heads × queries ×
    /// queries (self-attention) and heads × queries × the pixels of its feature level (masked cross-attention; counted
    /// at stride 32, the smallest level), in float32.
    public func decoderAttentionBytesLowerBound(imagesPerRank: Int) -> Double {
        let d = model.decoder
        let pixels = Double(input.cropSize.height) * Double(input.cropSize.width)
        let queries = Double(d.numQueries), layers = Double(max(d.decLayers - 1, 0))
        return Double(max(0, imagesPerRank)) * layers * Double(d.heads) * queries * (queries + pixels / 1024) * 4
    }

    /// The backbone's saved activations and the decoder's mask logits (see `activationBytesLowerBound`).
    func backboneAndMaskBytesLowerBound(imagesPerRank: Int) -> Double {
        let b = model.backbone
        let pixels = Double(input.cropSize.height) * Double(input.cropSize.width)
        var floatsPerPixel: Double
        switch b.name {
        case .resnet:
            floatsPerPixel = Double(b.stemChannels) / 4 * 2          // stem conv + norm output at stride 2
            for (s, (width, depth)) in zip(b.widths, b.depths).enumerated() {
                floatsPerPixel += 3 * Double(width) * Double(depth) / Double(1 << (2 * (s + 2)))   // stride 4, 8, 16, 32
            }
        case .swin:
            // Per block about ten tensors of the stage's width (norms, qkv ×3, attention output, MLP 4× twice)
            // and the window attention's scores and probabilities (heads × window² per token), at strides 4…32.
            let w = b.swin
            floatsPerPixel = 0
            for s in 0..<min(4, w.depths.count, w.numHeads.count) {
                let perToken = 10 * Double(w.embedDim << s) + 2 * Double(w.numHeads[s]) * Double(w.windowSize) * Double(w.windowSize)
                floatsPerPixel += perToken * Double(w.depths[s]) / Double(1 << (2 * (s + 2)))
            }
        }
        floatsPerPixel += Double(model.decoder.numQueries) * Double(model.decoder.decLayers + 1) / 16   // mask logits at stride 4
        return Double(max(0, imagesPerRank)) * pixels * floatsPerPixel * 4
    }
}
