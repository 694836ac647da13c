// Tests of multi-scale deformable attention: hand-checked values, fused versus composed, gradient checks, the module.
// Reference semantics: Mask2Former MSDeformAttn (ms_deform_attn_core_pytorch, _reset_parameters), docs/model.md#msdeformattn.
import Foundation
import Mask2FormerModel
import NN
import Testing
import TensorCore
import _TestSupport

/// Random MSDA operands: value `[B, S, heads·d]`, locations `[B, Tq, heads, L, P, 2]`, weights `[B, Tq, heads, L, P]`.
private struct MSDAOperands {
    let value: Tensor, locations: Tensor, weights: Tensor
    let levels: [(height: Int, width: Int)]
    let heads: Int

    /// Locations uniform in `[low, high]²`, or (`offGrid`) with pixel coordinates `i + f`, `i` in
    /// `−1 … size − 1` (cells partly outside included) and `f ∈ [0.2, 0.8]`, away from the grid lines
    /// where the bilinear derivative jumps. Weights uniform in `[0, 1)`.
    init(batch b: Int, queries tq: Int, heads: Int, headDim d: Int, points np: Int,
         levels: [(height: Int, width: Int)], seed: UInt64, offGrid: Bool = false,
         low: Float = -0.2, high: Float = 1.2) {
        self.levels = levels; self.heads = heads
        let s = levels.reduce(0) { $0 + $1.height * $1.width }, nl = levels.count
        value = testTensor([b, s, heads * d], seed: seed)
        var rng = RNG(seed: seed, stream: 3)
        var loc = [Float]()
        for _ in 0..<(b * tq * heads) {
            for (h, w) in levels {
                for _ in 0..<np {
                    if offGrid {
                        for size in [w, h] {
                            let cell = rng.nextInt(below: size + 1) - 1
                            let u = Float(cell) + 0.2 + 0.6 * rng.nextFloat()
                            loc.append((u + 0.5) / Float(size))
                        }
                    } else {
                        loc += [low + (high - low) * rng.nextFloat(), low + (high - low) * rng.nextFloat()]
                    }
                }
            }
        }
        locations = Tensor(loc, shape: [b, tq, heads, nl, np, 2], requiresGrad: true)
        weights = testTensor([b, tq, heads, nl, np], seed: seed + 1, low: 0, high: 1)
    }

    var tensors: [Tensor] { [value, locations, weights] }

    func fused(_ t: [Tensor]) -> Tensor {
        Tensor.msDeformAttn(value: t[0], levelShapes: levels, samplingLocations: t[1], attentionWeights: t[2], heads: heads)
    }

    func composed(_ t: [Tensor]) -> Tensor {
        Tensor.msDeformAttnComposed(value: t[0], levelShapes: levels, samplingLocations: t[1], attentionWeights: t[2],
                                    heads: heads)
    }
}

@Suite struct MSDeformAttnOpTests {
    @Test func handCheckedOneLevelOneHead() {
        // Level H = 2, W = 4 (centres (i + 0.5)/4 and (j + 0.5)/2 are exact); pixel (y, x) holds
        // [10y + x + 1, 100 + 10y + x].
        var v: [Float] = []
        for y in 0..<2 { for x in 0..<4 { v += [Float(10 * y + x + 1), Float(100 + 10 * y + x)] } }
        let value = Tensor(v, shape: [1, 8, 2])
        // Query 0: centre of pixel (1, 2), weight 1 → [13, 112].
        // Query 1: (1.5, 0.5), fully outside the map → 0.
        // Query 2: (0, 0), i.e. u = v = −0.5: a quarter of pixel (0, 0) (the other taps read 0), weight 1 → [0.25, 25].
        // Query 3: halfway between the centres of (0, 1) and (0, 2), weight 0.5 → 0.5·[2.5, 101.5].
        let loc = Tensor([0.625, 0.75, 1.5, 0.5, 0, 0, 0.5, 0.25], shape: [1, 4, 1, 1, 1, 2])
        let wts = Tensor([1, 1, 1, 0.5], shape: [1, 4, 1, 1, 1])
        let out = Tensor.msDeformAttn(value: value, levelShapes: [(2, 4)], samplingLocations: loc,
                                      attentionWeights: wts, heads: 1)
        #expect(out.shape == [1, 4, 2])
        #expect(out.values == [13, 112, 0, 0, 0.25, 25, 1.25, 50.75])
        // Two points: 0.25·pixel (1, 2) + 0.75·pixel (0, 0) = [4, 103].
        let loc2 = Tensor([0.625, 0.75, 0.125, 0.25], shape: [1, 1, 1, 1, 2, 2])
        let out2 = Tensor.msDeformAttn(value: value, levelShapes: [(2, 4)], samplingLocations: loc2,
                                       attentionWeights: Tensor([0.25, 0.75], shape: [1, 1, 1, 1, 2]), heads: 1)
        #expect(out2.values == [4, 103])
    }

    @Test func handCheckedLevelsAndHeads() {
        // Two levels (1×2 then 2×2, tokens 0–1 and 2–5) and two heads of d = 1: token t holds
        // [t, 10 + t] (head 0, head 1). Head 0 samples the centre of level-1 pixel (1, 0) = token 4;
        // head 1 samples level-0 pixel (0, 1) = token 1. Each head's other level has weight 0.
        let value = Tensor((0..<6).flatMap { [Float($0), Float(10 + $0)] }, shape: [1, 6, 2])
        let loc = Tensor([0.5, 0.5, 0.25, 0.75,      // head 0: level 0 (unused), level 1 pixel (1, 0)
                          0.75, 0.5, 0.5, 0.5],      // head 1: level 0 pixel (0, 1), level 1 (unused)
                         shape: [1, 1, 2, 2, 1, 2])
        let wts = Tensor([0, 1, 1, 0], shape: [1, 1, 2, 2, 1])
        let out = Tensor.msDeformAttn(value: value, levelShapes: [(1, 2), (2, 2)], samplingLocations: loc,
                                      attentionWeights: wts, heads: 2)
        #expect(out.values == [4, 11])
    }

    /// (B, Tq, heads, d, P, levels).
    static let cases: [(Int, Int, Int, Int, Int, [(height: Int, width: Int)])] = [
        (1, 4, 1, 2, 1, [(3, 3)]),
        (2, 5, 2, 3, 2, [(4, 5), (1, 1)]),
        (2, 6, 2, 8, 3, [(2, 4), (3, 2), (5, 1)]),
        (1, 7, 4, 9, 4, [(4, 4), (2, 2), (8, 8)]),
    ]

    @Test(arguments: 0..<cases.count)
    func fusedEqualsComposed(_ index: Int) {
        let (b, tq, heads, d, np, levels) = Self.cases[index]
        // Uniform locations (some outside) and, second, off-grid ones.
        for offGrid in [false, true] {
            let ops = MSDAOperands(batch: b, queries: tq, heads: heads, headDim: d, points: np, levels: levels,
                                   seed: 10 + UInt64(index), offGrid: offGrid)
            expectFusedEqualsComposed(ops, "case \(index) offGrid \(offGrid)")
        }
    }

    @Test func fusedEqualsComposedAtPixelCentres() {
        // Integer pixel coordinates on power-of-two levels: both take grid_sample's floor-based side.
        let ops = MSDAOperands(batch: 1, queries: 6, heads: 2, headDim: 3, points: 2, levels: [(4, 4), (2, 8)], seed: 20)
        let loc = ops.locations.data
        let n = ops.locations.count / 2
        for k in 0..<n {
            let w: Float = (k / 2) % 2 == 0 ? 4 : 8, h: Float = (k / 2) % 2 == 0 ? 4 : 2
            loc[2 * k] = (Float(k % Int(w)) + 0.5) / w
            loc[2 * k + 1] = (Float(k % Int(h)) + 0.5) / h
        }
        expectFusedEqualsComposed(ops, "pixel centres")
    }

    private func expectFusedEqualsComposed(_ ops: MSDAOperands, _ label: String,
                                           sourceLocation: SourceLocation = #_sourceLocation) {
        let inputs = ops.tensors
        for t in inputs { t.zeroGrad() }
        let yf = withGrad { ops.fused(inputs) }
        var rng = RNG(seed: 5, stream: 1)
        let seed = Tensor.uniform(yf.shape, low: -1, high: 1, rng: &rng)
        yf.backward(seed: seed)
        let gf = inputs.map { $0.grad!.copy() }
        for t in inputs { t.zeroGrad() }
        let yc = withGrad { ops.composed(inputs) }
        yc.backward(seed: seed)
        let gc = inputs.map { $0.grad! }
        let rep = allClose(yf, yc, rtol: 1e-4)
        #expect(rep.passed, "\(label) forward: \(rep)", sourceLocation: sourceLocation)
        for (i, name) in ["value", "locations", "weights"].enumerated() {
            let r = allClose(gf[i], gc[i], rtol: 1e-4)
            #expect(r.passed, "\(label) d\(name): \(r)", sourceLocation: sourceLocation)
        }
        for t in inputs { t.zeroGrad() }
    }

    @Test(arguments: 0..<cases.count)
    func fusedGradientCheck(_ index: Int) {
        let (b, tq, heads, d, np, levels) = Self.cases[index]
        let ops = MSDAOperands(batch: b, queries: tq, heads: heads, headDim: d, points: np, levels: levels,
                               seed: 30 + UInt64(index), offGrid: true)
        let rep = gradCheck(ops.tensors) { ops.fused($0) }
        #expect(rep.passed, "case \(index): \(rep)")
    }

    @Test func gridSamplePointsGradientCheck() {
        for c in [1, 3] {
            let x = testTensor([2, 3, 4, c], seed: 40)
            // Off-grid points, including cells partly outside the map.
            var rng = RNG(seed: 41)
            var pts: [Float] = []
            for _ in 0..<(2 * 7) {
                for size in [4, 3] {
                    let u = Float(rng.nextInt(below: size + 1) - 1) + 0.2 + 0.6 * rng.nextFloat()
                    pts.append((u + 0.5) / Float(size))
                }
            }
            let p = Tensor(pts, shape: [2, 7, 2], requiresGrad: true)
            let rep = gradCheck([x, p]) { Tensor.gridSample($0[0], points: $0[1], pointsGradient: true) }
            #expect(rep.passed, "C \(c): \(rep)")
        }
    }
}

@Suite struct MSDeformAttnModuleTests {
    @Test func parameterNamesAndShapes() {
        let m = MSDeformAttn(dModel: 256, levels: 3, heads: 8, points: 4, seed: 1)
        let named = m.namedParameters()
        #expect(named.map(\.0) == ["sampling_offsets.weight", "sampling_offsets.bias",
                                   "attention_weights.weight", "attention_weights.bias",
                                   "value_proj.weight", "value_proj.bias", "output_proj.weight", "output_proj.bias"])
        #expect(named.map(\.1.shape) == [[192, 256], [192], [96, 256], [96], [256, 256], [256], [256, 256], [256]])
        // docs/model.md#parameter-count: 205,600 parameters per MSDA.
        #expect(m.parameterCount == 205_600)
    }

    @Test func initialization() {
        let (heads, levels, points, c) = (8, 3, 4, 256)
        let m = MSDeformAttn(dModel: c, levels: levels, heads: heads, points: points, seed: 2)
        #expect(m.samplingOffsets.weight.values.allSatisfy { $0 == 0 })
        // Bias [heads, L, P, 2]: (cos θ_h, sin θ_h)/max(|cos θ_h|, |sin θ_h|)·(p + 1), θ_h = 2πh/heads.
        // The reference computes it in float32 (θ = float(h)·float(2π/heads), cosf, sinf): θ is off by at
        // most h·|δ step| + ulp(θ)/2 ≤ 8·2.2e-8 + 2.4e-7 ≈ 4.2e-7, the normalized direction (slope
        // ≤ 2 per radian) by ≤ 8.4e-7 plus a few ulps of rounding, so each value is within
        // 1.5e-6·(p + 1) of the exact formula.
        let bias = m.samplingOffsets.bias!
        #expect(bias.count == heads * levels * points * 2)
        var worst = 0.0
        for h in 0..<heads {
            let theta = 2 * Double.pi * Double(h) / Double(heads)
            let norm = Swift.max(Swift.abs(cos(theta)), Swift.abs(sin(theta)))
            for l in 0..<levels {
                for p in 0..<points {
                    let i = ((h * levels + l) * points + p) * 2
                    let scale = Double(p + 1)
                    worst = Swift.max(worst, Swift.abs(Double(bias.data[i]) - cos(theta) / norm * scale) / scale,
                                      Swift.abs(Double(bias.data[i + 1]) - sin(theta) / norm * scale) / scale)
                }
            }
        }
        #expect(worst < 1.5e-6, "largest deviation from the formula, per unit of (p + 1): \(worst)")
        // Head 0 points along +x at distances 1…4 on every level.
        #expect(Array(bias.values[0..<8]) == [1, 0, 2, 0, 3, 0, 4, 0])
        #expect(Array(bias.values[8..<16]) == [1, 0, 2, 0, 3, 0, 4, 0])
        #expect(m.attentionWeights.weight.values.allSatisfy { $0 == 0 })
        #expect(m.attentionWeights.bias!.values.allSatisfy { $0 == 0 })
        for lin in [m.valueProj, m.outputProj] {
            #expect(lin.bias!.values.allSatisfy { $0 == 0 })
            // Xavier-uniform bound √(6/(256 + 256)); a sample reaching close to it.
            let bound = Float((6.0 / Double(2 * c)).squareRoot())
            let w = lin.weight.values
            #expect(w.allSatisfy { Swift.abs($0) <= bound })
            #expect(w.map { Swift.abs($0) }.max()! > 0.99 * bound)
        }
    }

    @Test func initialOutputIsUniformAverageAroundTheReference() {
        // At init the offsets are the bias pattern for every query and the weights uniform 1/(L·P), so
        // the module equals output_proj(mean of the value projection at those fixed locations).
        let (heads, levels, points, c) = (2, 2, 2, 8)
        let shapes: [(height: Int, width: Int)] = [(3, 4), (2, 2)]
        let m = MSDeformAttn(dModel: c, levels: levels, heads: heads, points: points, seed: 3)
        let query = testTensor([1, 3, c], seed: 4, requiresGrad: false)
        let input = testTensor([1, 16, c], seed: 5, requiresGrad: false)
        let ref = testTensor([1, 3, 2], seed: 6, low: 0, high: 1, requiresGrad: false)
        let out = withNoGrad { m(query: query, referencePoints: ref, value: input, levelShapes: shapes) }
        // Expected locations: ref + bias/(W_l, H_l); head 0 along +x, head 1 along −x (θ = π).
        let bias = MSDeformAttn.gridInit(heads: heads, levels: levels, points: points)
        var loc: [Float] = []
        for q in 0..<3 {
            for h in 0..<heads {
                for (l, s) in shapes.enumerated() {
                    for p in 0..<points {
                        let i = ((h * levels + l) * points + p) * 2
                        loc += [ref[0, q, 0] + bias[i] / Float(s.width), ref[0, q, 1] + bias[i + 1] / Float(s.height)]
                    }
                }
            }
        }
        let expected = withNoGrad {
            m.outputProj(Tensor.msDeformAttnComposed(
                value: m.valueProj(input), levelShapes: shapes,
                samplingLocations: Tensor(loc, shape: [1, 3, heads, levels, points, 2]),
                attentionWeights: Tensor.full([1, 3, heads, levels, points], 1 / Float(levels * points)), heads: heads))
        }
        let rep = allClose(out, expected, rtol: 1e-4)
        #expect(rep.passed, "\(rep)")
        // Per-level reference points [B, Tq, L, 2] equal to the shared ones give the same output.
        let perLevel = Tensor.concat([ref.reshaped([1, 3, 1, 2]), ref.reshaped([1, 3, 1, 2])], axis: 2)
        let out2 = withNoGrad { m(query: query, referencePoints: perLevel, value: input, levelShapes: shapes) }
        #expect(out2.values == out.values)
    }

    @Test func moduleGradientCheck() {
        let (heads, levels, points, c) = (2, 2, 2, 8)
        let shapes: [(height: Int, width: Int)] = [(3, 4), (2, 3)]
        let m = MSDeformAttn(dModel: c, levels: levels, heads: heads, points: points, seed: 7)
        // Random offsets and attention logits (the init's zero weights would hide their gradients
        // paths through the query and put every point on a pixel-grid line).
        var rng = RNG(seed: 8)
        Init.uniform(m.samplingOffsets.weight, low: -0.3, high: 0.3, rng: &rng)
        Init.uniform(m.samplingOffsets.bias!, low: -1, high: 1, rng: &rng)
        Init.uniform(m.attentionWeights.weight, low: -0.5, high: 0.5, rng: &rng)
        Init.uniform(m.attentionWeights.bias!, low: -0.5, high: 0.5, rng: &rng)
        Init.uniform(m.valueProj.bias!, low: -0.5, high: 0.5, rng: &rng)
        Init.uniform(m.outputProj.bias!, low: -0.5, high: 0.5, rng: &rng)
        let query = testTensor([1, 3, c], seed: 9)
        let input = testTensor([1, 18, c], seed: 10)
        let ref = testTensor([1, 3, levels, 2], seed: 11, low: 0.1, high: 0.9)
        let rep = gradCheck([query, ref, input] + m.parameters()) {
            m(query: $0[0], referencePoints: $0[1], value: $0[2], levelShapes: shapes)
        }
        #expect(rep.passed, "\(rep)")
    }
}
