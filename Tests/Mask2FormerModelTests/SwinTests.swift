// Tests of the Swin backbone: D2SwinTransformer's names and the official parameter counts, window partition,
// cyclic shift and its mask, the relative position index, padding at sizes that are not window multiples,
// finite-difference gradients, and stochastic depth from seeded streams.
// Reference: Mask2Former modeling/backbone/swin.py; the counts are the (official code, printed by detectron2).
import Mask2FormerModel
import NN
import Testing
import TensorCore
import _TestSupport

@Suite struct SwinTests {
    /// A Swin small enough for finite differences: 8 channels, one or two blocks per stage, window 3 (shift 1).
    static func tinyConfig(dropPath: Double = 0) -> SwinConfig {
        var c = SwinConfig(embedDim: 8, depths: [2, 1, 2, 1], numHeads: [1, 2, 2, 4], windowSize: 3, dropPathRate: dropPath)
        c.mlpRatio = 2
        return c
    }

    @Test func namesFollowD2SwinTransformer() {
        var rng = RNG(seed: 1)
        let swin = SwinTransformer(SwinTests.tinyConfig(), rng: &rng)
        let names = swin.namedParameters().map(\.0)
        #expect(names.first == "patch_embed.proj.weight")
        for key in ["patch_embed.norm.weight", "layers.0.blocks.0.norm1.weight", "layers.0.blocks.0.attn.relative_position_bias_table",
                    "layers.0.blocks.0.attn.qkv.weight", "layers.0.blocks.0.attn.qkv.bias", "layers.0.blocks.1.attn.proj.bias",
                    "layers.0.blocks.1.mlp.fc1.weight", "layers.0.blocks.1.mlp.fc2.bias", "layers.0.blocks.1.norm2.bias",
                    "layers.0.downsample.reduction.weight", "layers.0.downsample.norm.weight", "layers.2.blocks.1.attn.proj.weight",
                    "norm0.weight", "norm3.bias"] {
            #expect(names.contains(key), "\(key)")
        }
        #expect(!names.contains("layers.3.downsample.reduction.weight") && !names.contains("layers.0.downsample.reduction.bias"))
        let table = swin.namedParameters().first { $0.0 == "layers.1.blocks.0.attn.relative_position_bias_table" }!.1
        #expect(table.shape == [25, 2])
        #expect(swin.namedParameters().first { $0.0 == "layers.1.downsample.reduction.weight" }!.1.shape == [32, 64])
        #expect(swin.namedBuffers().isEmpty)
    }

    /// The counts the official code prints for Mask2Former's two reference configurations.
    @Test func officialParameterCounts() {
        func count(_ backbone: SwinConfig, classes: Int, queries: Int) -> (total: Int, backbone: Int, predictor: Int) {
            var cfg = Mask2FormerConfig.r50(numClasses: classes)
            cfg.backbone = .swin(backbone)
            cfg.decoder.numQueries = queries
            var rng = RNG(seed: 0)
            let model = Mask2Former(cfg, rng: &rng)
            let params = model.namedParameters()
            func under(_ prefix: String) -> Int { params.filter { $0.0.hasPrefix(prefix) }.reduce(0) { $0 + $1.1.count } }
            return (under(""), under("backbone."), under("sem_seg_head.predictor."))
        }
        let large = count(.large, classes: 133, queries: 200)
        #expect(large.total == 215_535_610 && large.backbone == 195_201_204 && large.predictor == 14_509_824 + 34_438)
        #expect(count(.tiny, classes: 150, queries: 100).total == 47_439_633)
    }

    @Test func relativePositionIndexOfWindow2() {
        // Tokens (0,0) (0,1) (1,0) (1,1); table rows (dy + 1)·3 + (dx + 1).
        #expect(SwinWindowAttention.relativeIndex(2) == [4, 3, 1, 0,
                                                         5, 4, 2, 1,
                                                         7, 6, 4, 3,
                                                         8, 7, 5, 4])
    }

    @Test func rollPartitionAndReverse() {
        let x = Tensor((0..<(2 * 6 * 4 * 3)).map(Float.init), shape: [2, 6, 4, 3])
        let rolled = x.rolled(-1, axis: 1)
        #expect(rolled.values[0..<3].elementsEqual(x.values[12..<15]))            // row 0 ← row 1
        #expect(rolled.rolled(1, axis: 1).values == x.values && x.rolled(6, axis: 1).values == x.values)
        let windows = windowPartition(x, 2)                                     // 3 × 2 windows of 4 tokens
        #expect(windows.shape == [12, 4, 3])
        // Window (1, 1) of image 0: rows 2–3, columns 2–3; its first token is x[0, 2, 2].
        #expect(windows.values[(3 * 4) * 3..<(3 * 4) * 3 + 3].elementsEqual(x.values[(2 * 4 + 2) * 3..<(2 * 4 + 2) * 3 + 3]))
        #expect(windowReverse(windows, 2, batch: 2, height: 6, width: 4).values == x.values)
    }

    /// The shifted-window mask on a 4×4 map, window 2, shift 1: the regions are rows/columns {0, 1}, {2}, {3}.
    @Test func shiftedWindowMaskRegions() {
        let m = shiftedWindowMask(height: 4, width: 4, window: 2, shift: 1)
        #expect(m.shape == [4, 4, 4])
        #expect(m.values[0..<16].allSatisfy { $0 == 0 })                       // window (0,0): one region
        // Window (0,1): columns 2 and 3 are different regions, rows 0–1 the same → tokens {0, 2} vs {1, 3}.
        let w01 = Array(m.values[16..<32])
        #expect(w01 == [0, -100, 0, -100, -100, 0, -100, 0, 0, -100, 0, -100, -100, 0, -100, 0])
        // Window (1,1): four regions → only the diagonal is open.
        let w11 = Array(m.values[48..<64])
        #expect((0..<16).allSatisfy { w11[$0] == ($0 / 4 == $0 % 4 ? 0 : -100) })
    }

    /// res2…res5 at strides 4…32 with embed · 2^s channels, for an input whose token maps (24×40, 12×20, 6×10,
    /// 3×5) are not multiples of the window (3): padding and the shifted-window masks run in every stage.
    @Test func stridesAndPaddedSizes() {
        var rng = RNG(seed: 2)
        let swin = SwinTransformer(SwinTests.tinyConfig(), rng: &rng)
        let f = withNoGrad { swin(testTensor([2, 96, 160, 3], seed: 3, requiresGrad: false)) }
        #expect(f.res2.shape == [2, 24, 40, 8] && f.res3.shape == [2, 12, 20, 16])
        #expect(f.res4.shape == [2, 6, 10, 32] && f.res5.shape == [2, 3, 5, 64])
        // Images are independent: image 1 alone gives the batch's second half.
        let alone = withNoGrad { swin(testTensor([2, 96, 160, 3], seed: 3, requiresGrad: false).slice(axis: 0, 1..<2)) }
        #expect(allClose(alone.res5, f.res5.slice(axis: 0, 1..<2), rtol: 1e-4, atol: 1e-5).passed)
    }

    @Test func gradientsThroughEveryStage() {
        var rng = RNG(seed: 4)
        let swin = SwinTransformer(SwinTests.tinyConfig(), rng: &rng)
        let params = Dictionary(uniqueKeysWithValues: swin.namedParameters())
        let x = testTensor([1, 32, 64, 3], seed: 5)
        let checked = ["layers.0.blocks.1.attn.relative_position_bias_table", "layers.0.blocks.1.attn.qkv.weight",
                       "layers.1.downsample.reduction.weight", "layers.2.blocks.1.mlp.fc1.weight", "patch_embed.proj.weight"]
        // A few hundred outputs (two rows of res2, res4, res5) and ε = 3e-3: the float32 rounding of a forward through
        // six blocks, divided by 2ε, was ~4e-3 at the default ε = 1e-3 (as large as the tolerance, with the composed
        // attention as with the fused one) and ~1e-3 here; at ε = 1e-2 the curvature of the MLPs shows (3 %).
        let rep = gradCheck([x] + checked.map { params[$0]! }, eps: 3e-3, rtol: 2e-2, atol: 5e-3) { t in
            let f = swin(t[0])
            return Tensor.concat([f.res2.slice(axis: 1, 3..<5).reshaped([-1]), f.res4.reshaped([-1]), f.res5.reshaped([-1])], axis: 0)
        }
        #expect(rep.passed, "\(rep)")
    }

    /// Drop path: eval and nil draws run every branch; training draws 0 or 1/(1 − rate) per image from streams keyed
    /// by (image key, iteration, block, branch), the same on a replay; other iterations draw differently.
    @Test func stochasticDepthFromKeyedStreams() {
        var rng = RNG(seed: 6)
        let swin = SwinTransformer(SwinTests.tinyConfig(dropPath: 0.5), rng: &rng)
        let x = testTensor([4, 32, 32, 3], seed: 7, requiresGrad: false)
        let plain = withNoGrad { swin(x).res5.values }
        let draws = StochasticDepthDraws(seed: 9, imageKeys: [10, 11, 12, 13], iteration: 3)
        let a = withNoGrad { swin(x, stochasticDepth: draws).res5.values }
        let b = withNoGrad { swin(x, stochasticDepth: draws).res5.values }
        #expect(a == b && a != plain)
        let later = withNoGrad { swin(x, stochasticDepth: StochasticDepthDraws(seed: 9, imageKeys: [10, 11, 12, 13], iteration: 4)).res5.values }
        #expect(later != a)
        swin.eval()
        #expect(withNoGrad { swin(x, stochasticDepth: draws).res5.values } == plain)
        // Rates: linspace(0, 0.5, 6) over the six blocks; block 0 never drops.
        #expect(SwinTests.tinyConfig(dropPath: 0.5).blockDropPathRates == [0, 0.1, 0.2, 0.3, 0.4, 0.5])
        let scales = (0..<2000).flatMap { StochasticDepthDraws(seed: 1, imageKeys: [UInt64($0)], iteration: 0).scales(block: 5, branch: 1, rate: 0.25) }
        #expect(Set(scales) == [0, Float(1 / 0.75)])
        let dropped = Double(scales.filter { $0 == 0 }.count) / 2000
        #expect(abs(dropped - 0.25) < 0.04)
    }
}
