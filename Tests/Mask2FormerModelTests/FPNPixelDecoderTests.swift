// Tests of the FPN pixel decoder: names, init, shapes, nearest upsampling, the top-down path, gradients, the protocol.
// Reference: Mask2Former pixel_decoder/fpn.py BasePixelDecoder.forward_features (docs/model.md#fpn-pixel-decoder, #resampling).
import Mask2FormerModel
import NN
import Testing
import TensorCore
import _TestSupport

@Suite struct FPNPixelDecoderTests {
    /// convDim 8, maskDim 6, 2 groups; res2…res5 with 3, 4, 5, 6 channels.
    func tiny(seed: UInt64, maskKernel: Int = 3) -> FPNPixelDecoder {
        var rng = RNG(seed: seed)
        var cfg = FPNPixelDecoderConfig()
        cfg.convDim = 8; cfg.maskDim = 6; cfg.groups = 2; cfg.maskFeaturesKernel = maskKernel
        return FPNPixelDecoder(cfg, inChannels: [3, 4, 5, 6], rng: &rng)
    }

    /// Backbone features of a `height`×`width` image (strides 4…32), channels 3, 4, 5, 6.
    func features(batch: Int, height: Int, width: Int, seed: UInt64, requiresGrad: Bool = false) -> BackboneFeatures {
        func f(_ s: Int, _ c: Int, _ k: UInt64) -> Tensor {
            testTensor([batch, height / s, width / s, c], seed: seed + k, requiresGrad: requiresGrad)
        }
        return backbone(f(4, 3, 0), f(8, 4, 1), f(16, 5, 2), f(32, 6, 3))
    }

    /// `BackboneFeatures` holding these tensors. The struct has no public memberwise init, so take one
    /// from a 1-channel ResNet and replace its (public, mutable) tensors.
    func backbone(_ res2: Tensor, _ res3: Tensor, _ res4: Tensor, _ res5: Tensor) -> BackboneFeatures {
        var rng = RNG(seed: 0)
        let net = ResNet(BackboneConfig(block: .basic, depths: [1, 1, 1, 1], widths: [1, 1, 1, 1], stemChannels: 1), rng: &rng)
        var f = withNoGrad { net(Tensor.zeros([1, 32, 32, 3])) }
        f.res2 = res2; f.res3 = res3; f.res4 = res4; f.res5 = res5
        return f
    }

    @Test func namesShapesAndOrder() {
        let pd = tiny(seed: 1)
        let params = pd.namedParameters()
        var expected: [String] = []
        for i in 1...3 {
            expected += ["adapter_\(i).weight", "adapter_\(i).norm.weight", "adapter_\(i).norm.bias",
                         "layer_\(i).weight", "layer_\(i).norm.weight", "layer_\(i).norm.bias"]
        }
        expected += ["layer_4.weight", "layer_4.norm.weight", "layer_4.norm.bias", "mask_features.weight", "mask_features.bias"]
        // The reference registers adapter_1, layer_1, …, layer_4, mask_features in this order.
        #expect(params.map(\.0) == expected)
        let shapes = Dictionary(uniqueKeysWithValues: params.map { ($0.0, $0.1.shape) })
        // Ours `[Cout, kh, kw, Cin]` (PyTorch `[Cout, Cin, kh, kw]`).
        #expect(shapes["adapter_1.weight"] == [8, 1, 1, 3])
        #expect(shapes["adapter_2.weight"] == [8, 1, 1, 4])
        #expect(shapes["adapter_3.weight"] == [8, 1, 1, 5])
        #expect(shapes["layer_1.weight"] == [8, 3, 3, 8])
        #expect(shapes["layer_4.weight"] == [8, 3, 3, 6])
        #expect(shapes["layer_4.norm.bias"] == [8])
        #expect(shapes["mask_features.weight"] == [6, 3, 3, 8])
        #expect(shapes["mask_features.bias"] == [6])
        // NORM "GN": no conv bias except mask_features.
        #expect(!params.contains { $0.0 == "adapter_1.bias" || $0.0 == "layer_1.bias" || $0.0 == "layer_4.bias" })
        #expect(pd.stateDict().count == params.count)
    }

    @Test func r50ParameterCount() {
        var rng = RNG(seed: 2)
        let pd = FPNPixelDecoder(FPNPixelDecoderConfig(PixelDecoderConfig()), inChannels: [256, 512, 1024, 2048], rng: &rng)
        // adapters 256·(256 + 512 + 1024) + 3·512 (GN), layer_1…3 3·(9·256² + 512),
        // layer_4 9·2048·256 + 512, mask_features 9·256² + 256.
        let expected = 256 * (256 + 512 + 1024) + 3 * 512 + 3 * (9 * 256 * 256 + 512) + (9 * 2048 * 256 + 512) + (9 * 256 * 256 + 256)
        #expect(pd.parameterCount == expected)
        #expect(expected == 7_540_480)
    }

    @Test func c2XavierInit() {
        let pd = tiny(seed: 3)
        for (name, t) in pd.namedParameters() {
            if name.hasSuffix("norm.weight") { #expect(t.values.allSatisfy { $0 == 1 }, "\(name)"); continue }
            if name.hasSuffix("bias") { #expect(t.values.allSatisfy { $0 == 0 }, "\(name)"); continue }
            // Kaiming-uniform a = 1: U(±√(3/fan_in)).
            let bound = Float((3.0 / Double(Init.fans(t.shape).fanIn)).squareRoot())
            let m = t.values.map { abs($0) }.max()!
            #expect(m <= bound && m > 0.5 * bound, "\(name): max |w| \(m), bound \(bound)")
        }
    }

    @Test func outputShapes() {
        let pd = tiny(seed: 4)
        let out = withNoGrad { pd(features(batch: 2, height: 64, width: 32, seed: 10)) }
        #expect(out.multiScaleFeatures.map(\.shape) == [[2, 2, 1, 8], [2, 4, 2, 8], [2, 8, 4, 8]])
        #expect(out.maskFeatures.shape == [2, 16, 8, 6])
        // A 1×1 mask_features head keeps the shape.
        let one = tiny(seed: 4, maskKernel: 1)
        #expect(one.maskFeaturesConv.weight.shape == [6, 1, 1, 8])
        #expect(withNoGrad { one(features(batch: 1, height: 32, width: 64, seed: 11)) }.maskFeatures.shape == [1, 8, 16, 6])
    }

    @Test func nearestUpsampleValues() {
        // [1, 2, 2, 1] → [1, 4, 4, 1]: every input pixel becomes a 2×2 block.
        let x = Tensor([1, 2, 3, 4], shape: [1, 2, 2, 1])
        let y = FPNPixelDecoder.upsampleNearest(x, height: 4, width: 4)
        #expect(y.values == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        // Non-integer ratio 3 → 5 rows: src = ⌊i·0.6⌋ = 0, 0, 1, 1, 2; 2 → 3 columns: ⌊j·(2/3)⌋ = 0, 0, 1.
        // Two channels move together.
        let z = Tensor([0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15], shape: [1, 3, 2, 2])
        let u = FPNPixelDecoder.upsampleNearest(z, height: 5, width: 3)
        #expect(u.shape == [1, 5, 3, 2])
        let rows = [0, 0, 1, 1, 2], cols = [0, 0, 1]
        for i in 0..<5 {
            for j in 0..<3 {
                #expect(u[0, i, j, 0] == Float(rows[i] * 2 + cols[j]) && u[0, i, j, 1] == Float(rows[i] * 2 + cols[j] + 10))
            }
        }
        // Same size: unchanged.
        #expect(FPNPixelDecoder.upsampleNearest(z, height: 3, width: 2).values == z.values)
    }

    @Test func nearestUpsampleBackward() {
        // The gradient of a sum counts each input pixel's copies: rows 0, 1 twice, row 2 once; columns 0 twice, 1 once.
        let z = testTensor([1, 3, 2, 2], seed: 5)
        Autograd.clearTape()
        let s = withGrad { FPNPixelDecoder.upsampleNearest(z, height: 5, width: 3).sum() }
        s.backward()
        let copies: [Float] = [2 * 2, 2 * 1, 2 * 2, 2 * 1, 1 * 2, 1 * 1]
        #expect(z.grad!.values == copies.flatMap { [$0, $0] })
        let x = testTensor([2, 2, 3, 3], seed: 6)
        let rep = gradCheck([x]) { t in FPNPixelDecoder.upsampleNearest(t[0], height: 4, width: 6) }
        #expect(rep.passed, "\(rep)")
    }

    @Test func topDownPathByHand() {
        let pd = tiny(seed: 7)
        let f = features(batch: 2, height: 64, width: 64, seed: 20)
        let out = withNoGrad { pd(f) }
        // Rebuild each level from the submodules, with the factor-2 nearest upsampling written out.
        func plusUp(_ lateral: Tensor, _ coarse: Tensor) -> Tensor {
            let s = lateral.shape
            let sum = lateral.copy()
            for b in 0..<s[0] { for i in 0..<s[1] { for j in 0..<s[2] { for c in 0..<s[3] {
                sum[b, i, j, c] += coarse[b, i / 2, j / 2, c]
            } } } }
            return sum
        }
        withNoGrad {
            let y4 = pd.layer4(f.res5)
            let y3 = pd.layer3(plusUp(pd.adapter3(f.res4), y4))
            let y2 = pd.layer2(plusUp(pd.adapter2(f.res3), y3))
            let y1 = pd.layer1(plusUp(pd.adapter1(f.res2), y2))
            let mf = pd.maskFeaturesConv(y1)
            for (got, want) in zip(out.multiScaleFeatures, [y4, y3, y2]) {
                let r = allClose(got, want); #expect(r.passed, "\(r)")
            }
            let r = allClose(out.maskFeatures, mf); #expect(r.passed, "\(r)")
            // The levels are post-ReLU.
            #expect(out.multiScaleFeatures.allSatisfy { $0.values.allSatisfy { $0 >= 0 } })
        }
    }

    @Test func topDownDependencies() {
        // res2 reaches only the mask features; res3 also the stride-8 level; res5 everything.
        let pd = tiny(seed: 8)
        let base = features(batch: 1, height: 64, width: 64, seed: 30)
        let out = withNoGrad { pd(base) }
        func changed(_ a: Tensor, _ b: Tensor) -> Bool { a.values != b.values }
        func perturbed(_ edit: (inout BackboneFeatures) -> Void) -> PixelDecoderOutput {
            var f = base
            edit(&f)
            return withNoGrad { pd(f) }
        }
        let p2 = perturbed { $0.res2 = $0.res2 * 2 + 0.5 }
        #expect(!changed(p2.multiScaleFeatures[0], out.multiScaleFeatures[0]) && !changed(p2.multiScaleFeatures[1], out.multiScaleFeatures[1]))
        #expect(!changed(p2.multiScaleFeatures[2], out.multiScaleFeatures[2]) && changed(p2.maskFeatures, out.maskFeatures))
        let p3 = perturbed { $0.res3 = $0.res3 * 2 + 0.5 }
        #expect(!changed(p3.multiScaleFeatures[1], out.multiScaleFeatures[1]) && changed(p3.multiScaleFeatures[2], out.multiScaleFeatures[2]))
        #expect(changed(p3.maskFeatures, out.maskFeatures))
        let p5 = perturbed { $0.res5 = $0.res5 * 2 + 0.5 }
        #expect(p5.multiScaleFeatures.indices.allSatisfy { changed(p5.multiScaleFeatures[$0], out.multiScaleFeatures[$0]) })
        #expect(changed(p5.maskFeatures, out.maskFeatures))
    }

    @Test func gradientsThroughTheDecoder() {
        var rng = RNG(seed: 9)
        var cfg = FPNPixelDecoderConfig()
        cfg.convDim = 4; cfg.maskDim = 3; cfg.groups = 2
        let pd = FPNPixelDecoder(cfg, inChannels: [3, 4, 5, 6], rng: &rng)
        // Keep the ReLU inputs away from 0 (GN output 0.5·z + 3, z rarely beyond ±6).
        for conv in pd.outputConvs {
            let gn = conv.norm as! GroupNorm
            Init.constant(gn.weight, 0.5); Init.constant(gn.bias, 3)
        }
        // A 64×64 image: res2 16×16×3 (fixed), res3 8×8×4, res4 4×4×5, res5 2×2×6.
        let res2 = testTensor([1, 16, 16, 3], seed: 40, requiresGrad: false)
        let res3 = testTensor([1, 8, 8, 4], seed: 41), res4 = testTensor([1, 4, 4, 5], seed: 42)
        let res5 = testTensor([1, 2, 2, 6], seed: 43)
        let inputs = [res5, res4, res3, pd.layer4.weight, pd.adapter3.weight, (pd.layer2.norm as! GroupNorm).weight,
                      pd.maskFeaturesConv.bias!]
        let template = backbone(res2, res3, res4, res5)
        // ε = 1e-2: the ~1100 outputs are O(3), so ε = 1e-3 leaves ~1e-2 of float32 noise in the numeric
        // derivative; with no ReLU kink in reach the O(ε²) truncation error stays below 1e-3.
        let rep = gradCheck(inputs, eps: 1e-2, rtol: 2e-2, atol: 5e-3) { t in
            var f = template
            f.res5 = t[0]; f.res4 = t[1]; f.res3 = t[2]
            let o = pd(f)
            return Tensor.concat(o.multiScaleFeatures.map { $0.reshaped([-1]) } + [o.maskFeatures.reshaped([-1])], axis: 0)
        }
        #expect(rep.passed, "\(rep)")
    }

    /// A module holding `any PixelDecoder` under `pixel_decoder`, as `MaskFormerHead` would.
    final class Holder: Module {
        @Child(key: "pixel_decoder") var pixelDecoder: any PixelDecoder
        init(_ pd: any PixelDecoder) { super.init(); pixelDecoder = pd }
    }

    @Test func bothDecodersBehindTheProtocol() {
        var rng = RNG(seed: 10)
        var msda = PixelDecoderConfig()
        msda.convDim = 8; msda.maskDim = 6; msda.groups = 2
        msda.encoderLayers = 1; msda.encoderHeads = 2; msda.encoderPoints = 1; msda.encoderFeedforwardDim = 16
        let decoders: [any PixelDecoder] = [
            MSDeformAttnPixelDecoder(msda, inChannels: [3, 4, 5, 6], rng: &rng),
            FPNPixelDecoder(FPNPixelDecoderConfig(msda), inChannels: [3, 4, 5, 6], rng: &rng),
        ]
        let f = features(batch: 1, height: 64, width: 32, seed: 50)
        for pd in decoders {
            let out = withNoGrad { pd(f) }
            #expect(out.multiScaleFeatures.map(\.shape) == [[1, 2, 1, 8], [1, 4, 2, 8], [1, 8, 4, 8]])
            #expect(out.maskFeatures.shape == [1, 16, 8, 6])
        }
        let names = Holder(decoders[1]).namedParameters().map(\.0)
        #expect(names.first == "pixel_decoder.adapter_1.weight" && names.last == "pixel_decoder.mask_features.bias")
        #expect(Holder(decoders[0]).namedParameters().contains { $0.0 == "pixel_decoder.input_proj.0.0.weight" })
    }
}
