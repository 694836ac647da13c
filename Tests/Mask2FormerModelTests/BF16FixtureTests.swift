// The reference fixture's training computation in bf16 against fp32 (which matches the reference): logits within
// a stated relative error, every parameter gradient pointing the same way (cosine similarity ≥ 0.999).
import Kernels
import Mask2FormerModel
import Testing
import TensorCore
import _TestSupport

@Suite struct BF16FixtureTests {
    /// Every prediction and every parameter gradient of the fixture's forward + criterion + backward, with the
    /// model's matrix products in `precision` (the criterion in fp32, as in training).
    static func run(_ precision: GEMMPrecision) throws -> (predictions: [MaskPrediction], grads: [String: Tensor]) {
        let w = try FixtureWeights()
        let model = try FixtureParityTests.loadedModel(w)
        let fx = w.fixture
        let pixels = try fx.tensor("input/pixel_values")
        let (targets, points) = try FixtureParityTests.lossInputs(fx)
        let criterion = SetCriterion(numClasses: 5, numPoints: 196)
        let predictions: [MaskPrediction] = withGEMMPrecision(precision) {
            let out = withGrad { model(pixels.permuted(0, 2, 3, 1)) }
            let loss = withGEMMPrecision(.fp32) {
                withGrad { criterion(out.predictions, targets: targets, points: points) }
            }
            loss.total.backward()
            return out.predictions
        }
        var grads: [String: Tensor] = [:]
        for (name, p) in model.namedParameters() { if let g = p.grad { grads[name] = g } }
        return (predictions, grads)
    }

    static func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        let d = zip(a.values, b.values).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
        return d / max(a.values.map { Double($0) * Double($0) }.reduce(0, +).squareRoot(), 1e-30)
    }

    /// PyTorch's own bf16 on this fixture (`tools/make_reference_fixtures.py --bf16-deviation`, torch 2.15, HF
    /// transformers 5.23, `torch.autocast("cpu", bfloat16)` against float32): norm-wise relative error of each
    /// prediction's class and mask logits, and the median gradient cosine (min 0.578; 4 % of the gradients reach
    /// 0.999; 12 of 16 assignments unchanged). The tiny random-init model has its mask logits near 0, so masked
    /// attention's σ > 0.5 decisions flip under any rounding change and amplify it layer by layer: the whole
    /// model cannot reach cosine 0.999 in bf16, in PyTorch or here. We hold ours to PyTorch's figures (×1.25).
    static let torchClassLogitsError = [0.0034, 0.0264, 0.0469, 0.0773]
    static let torchMaskLogitsError = [0.0168, 0.0365, 0.0420, 0.0586]
    static let torchMedianGradientCosine = 0.9445

    @Test func logitsAndGradientsStayWithinPyTorchsOwnBF16Deviation() throws {
        let fp32 = try Self.run(.fp32), bf16 = try Self.run(.bf16)
        var worstLogits = 0.0
        for (k, (a, b)) in zip(fp32.predictions, bf16.predictions).enumerated() {
            let c = Self.relativeError(a.classLogits, b.classLogits), m = Self.relativeError(a.maskLogits, b.maskLogits)
            worstLogits = max(worstLogits, c, m)
            #expect(c <= 1.25 * Self.torchClassLogitsError[k], "prediction \(k): class logits relative error \(c)")
            #expect(m <= 1.25 * Self.torchMaskLogitsError[k], "prediction \(k): mask logits relative error \(m)")
        }
        #expect(worstLogits > 1e-4, "bf16 was not used (relative error \(worstLogits))")
        let globalMax = fp32.grads.values.flatMap { $0.values.map { abs(Double($0)) } }.max() ?? 0
        var cosines: [Double] = []
        for (name, g) in fp32.grads {
            let h = try #require(bf16.grads[name], "no bf16 gradient for \(name)")
            if let c = Self.cosine(g, h, floor: 1e-6 * globalMax) { cosines.append(c) }
        }
        cosines.sort()
        #expect(cosines.count > fp32.grads.count * 9 / 10)
        let median = cosines[cosines.count / 2]
        #expect(median >= Self.torchMedianGradientCosine - 0.01, "median gradient cosine \(median)")
        #expect(cosines[0] > 0.5, "worst gradient cosine \(cosines[0])")
    }

    /// Cosine similarity of two gradients, nil when the first is below `floor` in norm (rounding noise only).
    static func cosine(_ g: Tensor, _ h: Tensor, floor: Double) -> Double? {
        let gn = g.values.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
        guard gn > floor else { return nil }
        let hn = h.values.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
        return zip(g.values, h.values).map { Double($0) * Double($1) }.reduce(0, +) / (gn * max(hn, 1e-30))
    }

    /// The bf16 path computes exactly "operands rounded to bf16, products accumulated in fp32": the backbone and
    /// pixel decoder forward and backward (with a fixed output gradient) through oneDNN agree with the same model run
    /// through the emulated twin (`withEmulatedBF16`: rounded operands multiplied by OpenBLAS) to within fp32
    /// accumulation-order noise (outputs 1e-4 norm-wise, every gradient cosine ≥ 0.9999), while both are 0.01–2 %
    /// from fp32. So the deviation from fp32 is bf16's rounding, not the oneDNN wiring.
    @Test func oneDNNBF16EqualsRoundedOperandsWithFP32Accumulation() throws {
        let w = try FixtureWeights()
        let pixels = try w.fixture.tensor("input/pixel_values").permuted(0, 2, 3, 1)
        func run(_ precision: GEMMPrecision, emulated: Bool = false) throws -> (outputs: [Tensor], grads: [String: Tensor]) {
            let model = try FixtureParityTests.loadedModel(w)
            func body() -> (outputs: [Tensor], grads: [String: Tensor]) {
                withGEMMPrecision(precision) {
                    let out = withGrad { model.head.pixelDecoder(model.backbone(pixels)) }
                    let outputs = out.multiScaleFeatures + [out.maskFeatures]
                    var rng = RNG(seed: 3)
                    let loss = withGrad {
                        outputs.map { ($0 * Tensor.uniform($0.shape, low: -1, high: 1, rng: &rng)).sum() }.reduce(Tensor.zeros([]), +)
                    }
                    loss.backward()
                    var grads: [String: Tensor] = [:]
                    for (name, p) in model.namedParameters() { if let g = p.grad { grads[name] = g } }
                    return (outputs.map { $0.detached() }, grads)
                }
            }
            return emulated ? withEmulatedBF16(body) : body()
        }
        let fp32 = try run(.fp32), bf16 = try run(.bf16), twin = try run(.bf16, emulated: true)
        for ((a, b), c) in zip(zip(fp32.outputs, bf16.outputs), twin.outputs) {
            let fromFP32 = Self.relativeError(a, b), fromTwin = Self.relativeError(c, b)
            #expect(fromFP32 > 1e-4 && fromFP32 < 0.02, "output: \(fromFP32) from fp32")
            #expect(fromTwin <= 1e-4, "output: \(fromTwin) from the emulated twin")
        }
        let globalMax = fp32.grads.values.flatMap { $0.values.map { abs(Double($0)) } }.max() ?? 0
        var compared = 0, worst = 1.0, worstFP32 = 1.0
        for (name, g) in twin.grads.sorted(by: { $0.key < $1.key }) {
            let h = try #require(bf16.grads[name])
            guard let c = Self.cosine(g, h, floor: 1e-6 * globalMax) else { continue }
            worst = min(worst, c)
            if let f = Self.cosine(try #require(fp32.grads[name]), h, floor: 0) { worstFP32 = min(worstFP32, f) }
            #expect(c >= 0.9999, "gradient of \(name): cosine \(c) between oneDNN bf16 and its emulated twin")
            compared += 1
        }
        #expect(compared > 50, "compared \(compared) gradients")
        print("bf16 backbone + pixel decoder: worst gradient cosine to the emulated twin \(worst), to fp32 \(worstFP32)")
    }
}
