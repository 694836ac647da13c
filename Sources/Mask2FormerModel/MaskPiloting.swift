// MP-Former's mask piloting: noised label queries, GT-mask attention for the MP part, the self-attention mask.
// Corresponds to MP-Former MultiScaleMaskedTransformerDecoderMaskDN (prepare_for_dn_v5 "points", gen_mask_dn) — docs/model.md#mask-piloting.
import TensorCore

/// Every MP knob of docs/model.md#mp-configuration (defaults: the released "no noise, all layers" scripts).
public struct MaskPilotingConfig: Sendable, Equatable, Codable {
    /// `MODEL.MASK_FORMER.DN_MODE`. Only `points` (the paper's MP, docs/model.md#point-noise) is
    /// implemented; the reference's other variants (`shift`, `scale`, `patch`, `points_MAE`,
    /// docs/model.md#mp-variants) are ablations, and its default `base` crashes
    /// (docs/model.md#mp-configuration), so a config naming them is rejected when it is read.
    public enum Mode: String, Sendable, Codable { case points }

    /// `mask_piloting.enabled`: build the MP part during training (never at inference).
    public var enabled = false
    public var mode: Mode = .points
    /// `MODEL.DN.NUM_DN`: MP groups G; ≥ 100 means a total budget of G·M slots (G = NUM_DN / M).
    public var numGroups = 1
    /// `MODEL.DN.NOISE_SCALE` λ: point-noise strength (0 = released scripts, 0.2 = paper).
    public var pointNoise: Double = 0
    /// `LB_NOISE_RATIO`: probability of replacing a GT label by a uniform random class (≤ 0: off).
    public var labelNoise: Double = 0.2
    /// `ALL_LY_DN`: GT masks in every cross-attention layer (else only the first `firstLayers`).
    public var allLayers = true
    /// Layers fed GT masks when `allLayers` is false (the reference's "i < 3" after layer 0: 4 layers).
    public var firstLayers = 4
    /// `HEAD_DN`: independent point noise per attention head.
    public var perHeadNoise = false
    /// `DN_NO_LB`: drop the MP class loss.
    public var noLabelLoss = false
    /// A factor on all MP losses (ours; the reference weighs them as the matching losses, i.e. 1). For ablations of how
    /// much of the clipped step the MP objective takes.
    public var lossWeight: Double = 1

    public init() {}

    /// The number of groups for a batch whose largest image has `maxTargets` GT segments.
    public func groups(maxTargets m: Int) -> Int {
        guard m > 0 else { return 0 }
        return numGroups >= 100 ? max(numGroups / m, 1) : numGroups
    }
}

/// Per-image ground truth and random streams the MP part consumes.
public struct MaskPilotingTargets {
    /// GT class indices per image (`N_b` each).
    public var labels: [[Int]]
    /// GT masks per image, `[N_b, H, W]` at the padded input size, values 0/1.
    public var masks: [Tensor]
    /// One random stream per image (keyed by seed, epoch and image id by the caller), for label flips
    /// and point noise: results do not depend on which rank saw the image.
    public var rngs: [RNG]

    public init(labels: [[Int]], masks: [Tensor], rngs: [RNG]) {
        precondition(labels.count == masks.count && masks.count == rngs.count, "MP targets: one entry per image")
        self.labels = labels; self.masks = masks; self.rngs = rngs
    }
}

/// The layout of one MP forward: G groups of M slots per image, before the Q matching queries.
public struct MaskPilotingLayout: Sendable, Equatable {
    public var groups: Int
    /// M = max_b N_b.
    public var slotsPerGroup: Int
    public var targetCounts: [Int]
    public var padSize: Int { groups * slotsPerGroup }

    public init(groups: Int, slotsPerGroup: Int, targetCounts: [Int]) {
        self.groups = groups; self.slotsPerGroup = slotsPerGroup; self.targetCounts = targetCounts
    }
}

/// Replaces each label, with probability `ratio`, by a uniform class in `0..<numClasses` (docs/model.md#mp-queries).
public func flipLabels(_ labels: [Int], ratio: Double, numClasses: Int, rng: inout RNG) -> [Int] {
    guard ratio > 0 else { return labels }
    return labels.map { l in rng.nextDouble() < ratio ? rng.nextInt(below: numClasses) : l }
}

/// Self-attention mask `[T, T]` (true = blocked), T = G·M + Q (docs/model.md#self-attention-isolation):
/// an MP group sees itself and the matching queries; matching queries never see MP slots; groups are
/// isolated.
public func maskPilotingSelfAttentionMask(groups g: Int, slotsPerGroup m: Int, queries q: Int) -> [Bool] {
    let pad = g * m, t = pad + q
    var mask = [Bool](repeating: false, count: t * t)
    for r in 0..<t {
        for c in 0..<pad {
            if r >= pad { mask[r * t + c] = true; continue }        // matching row → MP column
            if r / m != c / m { mask[r * t + c] = true }              // other group
        }
    }
    return mask
}

/// GT masks `[N, H, W]` area-downsampled to `h×w`; a cell is attendable when any GT pixel falls in it
/// (average > 1e-8), docs/model.md#mp-attention-masks. Returns blocked flags `[N, h·w]`.
public func gtAttentionMask(_ masks: Tensor, height h: Int, width w: Int) -> [Bool] {
    let n = masks.shape[0]
    if n == 0 { return [] }
    let pooled = withNoGrad { Tensor.adaptiveAvgPool(masks.reshaped([n, masks.shape[1], masks.shape[2], 1]), height: h, width: w) }
    return pooled.values.map { $0 <= 1e-8 }
}

/// XOR point noise (docs/model.md#point-noise): every cell of an `h·w` mask flips with probability
/// λ·A/(h·w), A the number of attendable cells; expected flips λ·A.
public func applyPointNoise(_ blocked: inout ArraySlice<Bool>, lambda: Double, rng: inout RNG) {
    guard lambda > 0 else { return }
    let cells = blocked.count
    let open = blocked.reduce(0) { $0 + ($1 ? 0 : 1) }
    let p = lambda * Double(open) / Double(max(cells, 1))
    guard p > 0 else { return }
    for i in blocked.indices where rng.nextDouble() < p { blocked[i].toggle() }
}

/// Mask piloting's share of a training forward: the predictions of the G·M MP queries (every decoder layer's) and
/// where each slot sits.
public struct PilotedPredictions {
    public var predictions: [MaskPrediction]
    public var layout: MaskPilotingLayout

    public init(predictions: [MaskPrediction], layout: MaskPilotingLayout) {
        self.predictions = predictions; self.layout = layout
    }
}

/// The predictions of a training forward.
public struct TrainingPredictions {
    /// The Q matching queries' predictions, one per decoder layer (the last is the final one): what the Hungarian
    /// losses see.
    public var matching: [MaskPrediction]
    /// Mask piloting's predictions; nil when mask piloting is off or the batch has no ground truth.
    public var piloted: PilotedPredictions?

    public init(matching: [MaskPrediction], piloted: PilotedPredictions?) {
        self.matching = matching; self.piloted = piloted
    }
}

/// Writes mask piloting's rows into each layer's cross-attention mask (docs/model.md#mp-attention-masks): slot
/// (g, j) of image b attends where GT mask j of image b is (area-downsampled to the layer's feature size, then
/// point-noised afresh for every layer), and padding slots are blocked everywhere (the decoder's full-row rule
/// re-opens them). With per-head noise every head gets its own noisy copy.
struct PilotedAttentionMasks {
    let config: MaskPilotingConfig
    let layout: MaskPilotingLayout
    /// GT masks per image `[N_b, H, W]`.
    let masks: [Tensor]
    /// One stream per image, continuing from the label flips.
    var rngs: [RNG]
    /// Attention heads and matching queries of the decoder.
    let heads: Int, queries: Int
    /// Blocked flags per image `[N_b · h·w]`, per feature size, computed once.
    private var downsampled: [String: [[Bool]]] = [:]

    init(config: MaskPilotingConfig, layout: MaskPilotingLayout, masks: [Tensor], rngs: [RNG], heads: Int, queries: Int) {
        self.config = config; self.layout = layout; self.masks = masks; self.rngs = rngs
        self.heads = heads; self.queries = queries
    }

    /// Rewrites the MP rows of `mask` (`[B(·heads), T, h·w]`, true = blocked) for decoder layer `layer`.
    mutating func apply(layer: Int, height h: Int, width w: Int, mask: inout [Bool]) {
        guard config.allLayers || layer < config.firstLayers else { return }
        let key = "\(h)x\(w)"
        if downsampled[key] == nil { downsampled[key] = masks.map { gtAttentionMask($0, height: h, width: w) } }
        let gt = downsampled[key]!
        let b = layout.targetCounts.count, hw = h * w, t = layout.padSize + queries
        if config.perHeadNoise && mask.count == b * t * hw {
            // Expand the shared mask to one copy per head so the heads can get independent noise.
            var expanded = [Bool](); expanded.reserveCapacity(b * heads * t * hw)
            for i in 0..<b { for _ in 0..<heads { expanded += mask[(i * t * hw)..<((i + 1) * t * hw)] } }
            mask = expanded
        }
        let copies = config.perHeadNoise ? heads : 1
        for i in 0..<b {
            for copy in 0..<copies { writeRows(image: i, base: (i * copies + copy) * t * hw, hw: hw, gt: gt[i], into: &mask) }
        }
    }

    /// The G·M MP rows of one image (one head's copy) starting at `base`.
    private mutating func writeRows(image i: Int, base: Int, hw: Int, gt: [Bool], into mask: inout [Bool]) {
        let m = layout.slotsPerGroup
        for slot in 0..<layout.padSize {
            let j = slot % m, row = base + slot * hw
            if j < layout.targetCounts[i] {
                var cells = gt[(j * hw)..<((j + 1) * hw)]
                applyPointNoise(&cells, lambda: config.pointNoise, rng: &rngs[i])
                mask.replaceSubrange(row..<(row + hw), with: cells)
            } else {
                for r in row..<(row + hw) { mask[r] = true }   // padding: re-opened by the full-row rule
            }
        }
    }
}
