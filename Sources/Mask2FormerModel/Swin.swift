// Swin Transformer backbone: patch embedding, windowed multi-head self-attention with a relative position bias,
// shifted windows with their attention mask, padding to window multiples, patch merging, stochastic depth and the
// per-stage output norms, returning res2–res5 at strides 4–32.
// Corresponds to Mask2Former's modeling/backbone/swin.py (D2SwinTransformer, from Swin-Transformer-Object-Detection)
// — docs/model.md#swin.
import NN
import TensorCore

/// Hyper-parameters of a Swin backbone (`model.backbone.swin.*`, Mask2Former's `MODEL.SWIN.*`).
public struct SwinConfig: Sendable, Equatable, Codable {
    /// Channels of the first stage (res2); stage i has `embedDim · 2^i`.
    public var embedDim = 96
    /// Blocks per stage.
    public var depths = [2, 2, 6, 2]
    /// Attention heads per stage.
    public var numHeads = [3, 6, 12, 24]
    public var windowSize = 7
    /// MLP hidden width ÷ channels.
    public var mlpRatio = 4.0
    public var qkvBias = true
    /// The last block's drop-path rate; block j of n (all stages) has `rate · j/(n−1)` (timm's linspace).
    public var dropPathRate = 0.3
    public var patchSize = 4
    /// A LayerNorm after the patch embedding (`patch_embed.norm`).
    public var patchNorm = true

    public init() {}

    public init(embedDim: Int, depths: [Int], numHeads: [Int], windowSize: Int, dropPathRate: Double = 0.3) {
        self.embedDim = embedDim; self.depths = depths; self.numHeads = numHeads
        self.windowSize = windowSize; self.dropPathRate = dropPathRate
    }

    /// The four sizes of Mask2Former's Swin configs (ImageNet-1k T/S at 224, ImageNet-22k B/L at 384).
    public static let tiny = SwinConfig(embedDim: 96, depths: [2, 2, 6, 2], numHeads: [3, 6, 12, 24], windowSize: 7)
    public static let small = SwinConfig(embedDim: 96, depths: [2, 2, 18, 2], numHeads: [3, 6, 12, 24], windowSize: 7)
    public static let base = SwinConfig(embedDim: 128, depths: [2, 2, 18, 2], numHeads: [4, 8, 16, 32], windowSize: 12)
    public static let large = SwinConfig(embedDim: 192, depths: [2, 2, 18, 2], numHeads: [6, 12, 24, 48], windowSize: 12)

    /// Channels of res2…res5.
    public var outputChannels: [Int] { (0..<4).map { embedDim << $0 } }

    /// The drop-path rate of every block in stage order: `linspace(0, dropPathRate, Σ depths)`.
    public var blockDropPathRates: [Double] {
        let n = depths.reduce(0, +)
        return (0..<n).map { n == 1 ? 0 : dropPathRate * Double($0) / Double(n - 1) }
    }
}

/// Which images keep which residual branches in one training step (stochastic depth), drawn from seeded
/// per-image streams keyed like the criterion's points, so a replayed or resumed step draws the same.
public struct StochasticDepthDraws: Sendable {
    public let seed: UInt64
    /// One key per batch image (`KeyedPointSource.imageKey`).
    public let imageKeys: [UInt64]
    public let iteration: Int

    public init(seed: UInt64, imageKeys: [UInt64], iteration: Int) {
        self.seed = seed; self.imageKeys = imageKeys; self.iteration = iteration
    }

    /// The per-image factor of branch `branch` (0 attention, 1 MLP) of block `block` (counted over all stages):
    /// 0 (dropped, probability `rate`) or 1/(1 − rate) (kept), as timm's `drop_path`.
    public func scales(block: Int, branch: Int, rate: Double) -> [Float] {
        imageKeys.map { key in
            let stream = RandomStreams.streamKey(salt: 0x5344_5031,   // "SDP1"
                                                 [key, UInt64(truncatingIfNeeded: iteration), UInt64(truncatingIfNeeded: block), UInt64(branch)])
            var rng = RNG(seed: seed, stream: stream)
            let keep = 1 - rate
            return Double(rng.nextFloat()) < keep ? Float(1 / keep) : 0
        }
    }
}

/// A backbone: normalized images `[B, H, W, 3]` (H, W multiples of 32) → res2…res5. `ResNet` and
/// `SwinTransformer` conform, so the model holds `any Backbone` under the key `backbone`.
public protocol Backbone: Module {
    /// `stochasticDepth`: this step's drop-path draws (training); nil runs every branch.
    func callAsFunction(_ x: Tensor, stochasticDepth: StochasticDepthDraws?) -> BackboneFeatures
}

extension Backbone {
    public func callAsFunction(_ x: Tensor) -> BackboneFeatures { self(x, stochasticDepth: nil) }
}

extension ResNet: Backbone {
    public func callAsFunction(_ x: Tensor, stochasticDepth: StochasticDepthDraws?) -> BackboneFeatures { self(x) }
}

/// Linear layers as Swin initializes them: weight truncated N(0, 0.02²), bias 0.
private func swinLinear(_ cin: Int, _ cout: Int, bias: Bool = true, rng: inout RNG) -> Linear {
    let l = Linear(cin, cout, bias: bias, rng: &rng)
    Init.truncatedNormal(l.weight, std: 0.02, rng: &rng)
    if let b = l.bias { Init.zeros(b) }
    return l
}

/// `[B, H, W, C]` (H, W multiples of `ws`) → `[B·nW, ws², C]`, windows in row-major order per image.
public func windowPartition(_ x: Tensor, _ ws: Int) -> Tensor {
    let b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
    return x.reshaped([b, h / ws, ws, w / ws, ws, c]).permuted(0, 1, 3, 2, 4, 5).reshaped([b * (h / ws) * (w / ws), ws * ws, c])
}

/// The inverse of `windowPartition` for images of `h × w`.
public func windowReverse(_ windows: Tensor, _ ws: Int, batch b: Int, height h: Int, width w: Int) -> Tensor {
    let c = windows.shape[2]
    return windows.reshaped([b, h / ws, w / ws, ws, ws, c]).permuted(0, 1, 3, 2, 4, 5).reshaped([b, h, w, c])
}

/// The additive attention mask of shifted windows `[nW, ws², ws²]` on an `h × w` padded map: tokens that the
/// cyclic shift brought from different regions get −100 (the reference's value, not −∞), others 0.
public func shiftedWindowMask(height h: Int, width w: Int, window ws: Int, shift s: Int) -> Tensor {
    func region(_ i: Int, _ n: Int) -> Int { i < n - ws ? 0 : (i < n - s ? 1 : 2) }
    let nh = h / ws, nw = w / ws, t = ws * ws
    let out = Tensor.zeros([nh * nw, t, t])
    var labels = [Int](repeating: 0, count: t)
    for wy in 0..<nh {
        for wx in 0..<nw {
            for i in 0..<t { labels[i] = 3 * region(wy * ws + i / ws, h) + region(wx * ws + i % ws, w) }
            let m = out.data + (wy * nw + wx) * t * t
            for i in 0..<t { for j in 0..<t where labels[i] != labels[j] { m[i * t + j] = -100 } }
        }
    }
    return out
}

/// Window multi-head self-attention with a learned relative position bias (keys `relative_position_bias_table`
/// `[(2ws−1)², heads]`, `qkv`, `proj`). The reference's `relative_position_index` buffer is derived here
/// (`relativePositionIndex`), not stored.
public final class SwinWindowAttention: Module {
    @Param(key: "relative_position_bias_table") public var relativePositionBiasTable: Tensor
    public let qkv: Linear
    public let proj: Linear
    public let heads: Int
    public let windowSize: Int
    /// Row of the bias table for every (query, key) pair of a window, `ws⁴` entries.
    public let relativePositionIndex: [Int]

    public init(dim: Int, heads: Int, windowSize ws: Int, qkvBias: Bool, rng: inout RNG) {
        precondition(dim % heads == 0, "Swin attention: \(dim) channels not divisible by \(heads) heads")
        self.heads = heads; windowSize = ws
        relativePositionIndex = SwinWindowAttention.relativeIndex(ws)
        qkv = swinLinear(dim, 3 * dim, bias: qkvBias, rng: &rng)
        proj = swinLinear(dim, dim, rng: &rng)
        super.init()
        relativePositionBiasTable = Tensor.zeros([(2 * ws - 1) * (2 * ws - 1), heads], requiresGrad: true)
        Init.truncatedNormal(relativePositionBiasTable, std: 0.02, rng: &rng)
    }

    /// For tokens i = (yi, xi), j = (yj, xj) of a window: `(yi − yj + ws − 1)·(2ws − 1) + (xi − xj + ws − 1)`.
    public static func relativeIndex(_ ws: Int) -> [Int] {
        let t = ws * ws
        var index = [Int](repeating: 0, count: t * t)
        for i in 0..<t {
            for j in 0..<t {
                index[i * t + j] = (i / ws - j / ws + ws - 1) * (2 * ws - 1) + (i % ws - j % ws + ws - 1)
            }
        }
        return index
    }

    /// `x`: `[B·nW, ws², C]` windows; `mask`: `[nW, ws², ws²]` additive (shifted windows) → same shape as `x`.
    /// The attention itself is the fused `Tensor.windowAttention` (`composed` runs `windowAttentionComposed`, its
    /// primitive-op statement, for tests and measurements: docs/perf.md#swin).
    public func callAsFunction(_ x: Tensor, mask: Tensor?, composed: Bool = false) -> Tensor {
        let t = x.shape[1], c = x.shape[2]
        let packed = qkv(x)                                                          // [B·nW, T, 3C]: q, k, v
        let q = packed.slice(axis: 2, 0..<c), k = packed.slice(axis: 2, c..<(2 * c)), v = packed.slice(axis: 2, (2 * c)..<(3 * c))
        let bias = relativePositionBiasTable.indexSelect(axis: 0, relativePositionIndex)
            .reshaped([t, t, heads]).permuted(2, 0, 1)                                 // [heads, T, T]
        let attend = composed || SwinWindowAttention.useComposed ? Tensor.windowAttentionComposed : Tensor.windowAttention
        return proj(attend(q, k, v, heads, bias, mask, nil))
    }

    /// Runs every window attention composed (for measuring fused against composed in a whole step).
    nonisolated(unsafe) public static var useComposed = false
}

/// Swin's MLP: `fc1` (C → r·C), exact GELU, `fc2` (r·C → C).
public final class SwinMlp: Module {
    public let fc1: Linear
    public let fc2: Linear

    public init(dim: Int, hidden: Int, rng: inout RNG) {
        fc1 = swinLinear(dim, hidden, rng: &rng)
        fc2 = swinLinear(hidden, dim, rng: &rng)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { fc2(fc1(x).gelu()) }
}

/// One Swin block (keys `norm1`, `attn`, `norm2`, `mlp`): (shifted) window attention and an MLP, each a
/// pre-norm residual branch with drop path.
public final class SwinBlock: Module {
    public let norm1: LayerNorm
    public let attn: SwinWindowAttention
    public let norm2: LayerNorm
    public let mlp: SwinMlp
    /// 0 for even blocks, ws/2 for odd ones.
    public let shift: Int
    public let dropPathRate: Double
    /// The block's index over all stages (its drop-path streams).
    public let index: Int

    init(dim: Int, heads: Int, config: SwinConfig, shift: Int, dropPathRate: Double, index: Int, rng: inout RNG) {
        norm1 = LayerNorm(dim)
        attn = SwinWindowAttention(dim: dim, heads: heads, windowSize: config.windowSize, qkvBias: config.qkvBias, rng: &rng)
        norm2 = LayerNorm(dim)
        mlp = SwinMlp(dim: dim, hidden: Int(Double(dim) * config.mlpRatio), rng: &rng)
        self.shift = shift; self.dropPathRate = dropPathRate; self.index = index
        super.init()
    }

    /// `x`: `[B, H, W, C]`; `mask`: the stage's shifted-window mask for the padded size (used when `shift > 0`).
    func callAsFunction(_ x: Tensor, mask: Tensor, stochasticDepth: StochasticDepthDraws?) -> Tensor {
        let b = x.shape[0], h = x.shape[1], w = x.shape[2]
        let ws = attn.windowSize
        let hp = (h + ws - 1) / ws * ws, wp = (w + ws - 1) / ws * ws
        var y = norm1(x)
        if hp != h || wp != w { y = y.padded([(0, 0), (0, hp - h), (0, wp - w), (0, 0)]) }
        if shift > 0 { y = y.rolled(-shift, axis: 1).rolled(-shift, axis: 2) }
        y = windowReverse(attn(windowPartition(y, ws), mask: shift > 0 ? mask : nil), ws, batch: b, height: hp, width: wp)
        if shift > 0 { y = y.rolled(shift, axis: 1).rolled(shift, axis: 2) }
        if hp != h || wp != w { y = y.slice(axis: 1, 0..<h).slice(axis: 2, 0..<w) }
        let mid = x + dropPath(y, branch: 0, stochasticDepth)
        return mid + dropPath(mlp(norm2(mid)), branch: 1, stochasticDepth)
    }

    private func dropPath(_ x: Tensor, branch: Int, _ draws: StochasticDepthDraws?) -> Tensor {
        guard isTraining, dropPathRate > 0, let draws else { return x }
        precondition(draws.imageKeys.count == x.shape[0], "drop path: \(draws.imageKeys.count) image keys for a batch of \(x.shape[0])")
        let scales = draws.scales(block: index, branch: branch, rate: dropPathRate)
        return x * Tensor(scales, shape: [x.shape[0], 1, 1, 1])
    }
}

/// Patch merging (keys `norm` over 4C, `reduction` 4C → 2C without bias): each 2×2 neighbourhood (an odd
/// size padded by one zero row/column first) becomes one token, channels in the reference's order
/// (y even x even, y odd x even, y even x odd, y odd x odd).
public final class SwinPatchMerging: Module {
    public let reduction: Linear
    public let norm: LayerNorm

    init(dim: Int, rng: inout RNG) {
        reduction = swinLinear(4 * dim, 2 * dim, bias: false, rng: &rng)
        norm = LayerNorm(4 * dim)
        super.init()
    }

    /// `[B, H, W, C]` → `[B, ⌈H/2⌉, ⌈W/2⌉, 2C]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var y = x
        let b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
        if h % 2 == 1 || w % 2 == 1 { y = y.padded([(0, 0), (0, h % 2), (0, w % 2), (0, 0)]) }
        let h2 = (h + 1) / 2, w2 = (w + 1) / 2
        // [B, h2, yParity, w2, xParity, C] → [B, h2, w2, xParity, yParity, C]: channel block 2·xParity + yParity.
        y = y.reshaped([b, h2, 2, w2, 2, c]).permuted(0, 1, 3, 4, 2, 5).reshaped([b, h2, w2, 4 * c])
        return reduction(norm(y))
    }
}

/// One stage (keys `blocks.<i>`, `downsample` for the first three).
public final class SwinStage: Module {
    public let blocks: [SwinBlock]
    public let downsample: SwinPatchMerging?
    public let windowSize: Int
    /// The shifted-window mask of the last padded size (one entry: evaluation sees many sizes).
    private var maskCache: (height: Int, width: Int, mask: Tensor)?

    init(dim: Int, depth: Int, heads: Int, config: SwinConfig, firstBlock: Int, downsample: Bool, rng: inout RNG) {
        let rates = config.blockDropPathRates
        var b: [SwinBlock] = []
        for i in 0..<depth {
            b.append(SwinBlock(dim: dim, heads: heads, config: config, shift: i % 2 == 0 ? 0 : config.windowSize / 2,
                               dropPathRate: rates[firstBlock + i], index: firstBlock + i, rng: &rng))
        }
        blocks = b
        self.downsample = downsample ? SwinPatchMerging(dim: dim, rng: &rng) : nil
        windowSize = config.windowSize
        super.init()
    }

    /// `[B, H, W, C]` → (the stage's output `[B, H, W, C]`, the next stage's input after patch merging).
    func callAsFunction(_ x: Tensor, stochasticDepth: StochasticDepthDraws?) -> (Tensor, Tensor?) {
        let ws = windowSize, h = x.shape[1], w = x.shape[2]
        let hp = (h + ws - 1) / ws * ws, wp = (w + ws - 1) / ws * ws
        let mask: Tensor
        if let c = maskCache, c.height == hp, c.width == wp { mask = c.mask } else {
            mask = shiftedWindowMask(height: hp, width: wp, window: ws, shift: ws / 2)
            maskCache = (hp, wp, mask)
        }
        let out = blocks.reduce(x) { $1($0, mask: mask, stochasticDepth: stochasticDepth) }
        return (out, downsample.map { $0(out) })
    }
}

/// Patch embedding (keys `proj`, a patch×patch conv with stride patch, and `norm`): `[B, H, W, 3]` →
/// `[B, ⌈H/p⌉, ⌈W/p⌉, C]`, the image padded with zeros at the bottom and right to patch multiples.
public final class SwinPatchEmbed: Module {
    public let proj: Conv2d
    public let norm: LayerNorm?
    public let patchSize: Int

    init(patchSize p: Int, inChannels: Int, embedDim: Int, patchNorm: Bool, rng: inout RNG) {
        patchSize = p
        proj = Conv2d(inChannels, embedDim, kernel: p, stride: p, rng: &rng)
        norm = patchNorm ? LayerNorm(embedDim) : nil
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let p = patchSize, h = x.shape[1], w = x.shape[2]
        let padB = (p - h % p) % p, padR = (p - w % p) % p
        let y = proj(padB + padR > 0 ? x.padded([(0, 0), (0, padB), (0, padR), (0, 0)]) : x)
        return norm.map { $0(y) } ?? y
    }
}

/// Swin Transformer with keys `patch_embed.*`, `layers.<s>.*` and the output norms `norm0`…`norm3`
/// (D2SwinTransformer's names, under `backbone.`).
public final class SwinTransformer: Module {
    public let config: SwinConfig
    @Child(key: "patch_embed") public var patchEmbed: SwinPatchEmbed
    public let layers: [SwinStage]
    public let norm0: LayerNorm
    public let norm1: LayerNorm
    public let norm2: LayerNorm
    public let norm3: LayerNorm

    public init(_ config: SwinConfig, inChannels: Int = 3, rng: inout RNG) {
        precondition(config.depths.count == 4 && config.numHeads.count == 4, "Swin needs 4 stages, got \(config)")
        self.config = config
        let embed = SwinPatchEmbed(patchSize: config.patchSize, inChannels: inChannels, embedDim: config.embedDim,
                                   patchNorm: config.patchNorm, rng: &rng)
        var stages: [SwinStage] = []
        var first = 0
        for s in 0..<4 {
            stages.append(SwinStage(dim: config.embedDim << s, depth: config.depths[s], heads: config.numHeads[s],
                                    config: config, firstBlock: first, downsample: s < 3, rng: &rng))
            first += config.depths[s]
        }
        layers = stages
        let c = config.outputChannels
        norm0 = LayerNorm(c[0]); norm1 = LayerNorm(c[1]); norm2 = LayerNorm(c[2]); norm3 = LayerNorm(c[3])
        super.init()
        patchEmbed = embed
    }

    public func callAsFunction(_ x: Tensor, stochasticDepth: StochasticDepthDraws?) -> BackboneFeatures {
        var y: Tensor? = patchEmbed(x)
        var outs: [Tensor] = []
        for (stage, norm) in zip(layers, [norm0, norm1, norm2, norm3]) {
            let (out, next) = stage(y!, stochasticDepth: stochasticDepth)
            outs.append(norm(out))
            y = next
        }
        return BackboneFeatures(res2: outs[0], res3: outs[1], res4: outs[2], res5: outs[3])
    }
}

extension SwinTransformer: Backbone {}
