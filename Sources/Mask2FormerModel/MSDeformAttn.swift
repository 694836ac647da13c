// Multi-scale deformable attention module of the pixel decoder's encoder layers, with its reference initialization.
// Corresponds to Mask2Former's pixel_decoder/ops/modules/ms_deform_attn.py MSDeformAttn (docs/model.md#msdeformattn).
import Foundation
import NN
import TensorCore

/// `MSDeformAttn(d_model, n_levels, n_heads, n_points)`: each query attends to `L·P` bilinearly
/// sampled points per head around its reference point.
///
/// Keys, in `named_parameters()` order: `sampling_offsets.{weight,bias}` (`C → heads·L·P·2`),
/// `attention_weights.{weight,bias}` (`C → heads·L·P`), `value_proj.{weight,bias}` (`C → C`),
/// `output_proj.{weight,bias}` (`C → C`).
///
/// Init (`_reset_parameters`): sampling-offset weight 0 and bias the direction pattern
/// `(cos θ_h, sin θ_h)/max(|cos θ_h|, |sin θ_h|)·(p + 1)` with `θ_h = 2πh/heads`, the same for every
/// level; attention-weight weight and bias 0 (uniform weights `1/(L·P)`); value and output projections
/// Xavier-uniform with zero bias.
public final class MSDeformAttn: Module {
    @Child(key: "sampling_offsets") public var samplingOffsets: Linear
    @Child(key: "attention_weights") public var attentionWeights: Linear
    @Child(key: "value_proj") public var valueProj: Linear
    @Child(key: "output_proj") public var outputProj: Linear
    public let dModel: Int, levels: Int, heads: Int, points: Int

    public init(dModel: Int = 256, levels: Int = 4, heads: Int = 8, points: Int = 4, rng: inout RNG) {
        precondition(dModel > 0 && levels > 0 && heads > 0 && points > 0 && dModel % heads == 0,
                     "MSDeformAttn: d_model \(dModel) must be divisible by \(heads) heads (levels \(levels), points \(points))")
        self.dModel = dModel; self.levels = levels; self.heads = heads; self.points = points
        // Constructed in the reference's order (each draws nn.Linear's default), then re-initialized.
        let offsets = Linear(dModel, heads * levels * points * 2, rng: &rng)
        let weights = Linear(dModel, heads * levels * points, rng: &rng)
        let value = Linear(dModel, dModel, rng: &rng)
        let output = Linear(dModel, dModel, rng: &rng)
        super.init()
        samplingOffsets = offsets
        attentionWeights = weights
        valueProj = value
        outputProj = output
        resetParameters(rng: &rng)
    }

    /// Same, drawing from `RNG(seed: seed)`.
    public convenience init(dModel: Int = 256, levels: Int = 4, heads: Int = 8, points: Int = 4, seed: UInt64 = 0) {
        var rng = RNG(seed: seed)
        self.init(dModel: dModel, levels: levels, heads: heads, points: points, rng: &rng)
    }

    /// The reference `_reset_parameters` (docs/model.md#msdeformattn).
    public func resetParameters(rng: inout RNG) {
        Init.zeros(samplingOffsets.weight)
        Self.gridInit(heads: heads, levels: levels, points: points).withUnsafeBufferPointer { src in
            samplingOffsets.bias!.data.update(from: src.baseAddress!, count: src.count)
        }
        Init.zeros(attentionWeights.weight)
        Init.zeros(attentionWeights.bias!)
        Init.xavierUniform(valueProj.weight, rng: &rng)
        Init.zeros(valueProj.bias!)
        Init.xavierUniform(outputProj.weight, rng: &rng)
        Init.zeros(outputProj.bias!)
    }

    /// The sampling-offset bias `[heads, L, P, 2]` flattened: for head h, `θ = h·(2π/heads)`,
    /// `(cos θ, sin θ) / max(|cos θ|, |sin θ|)·(p + 1)` at every level. Float arithmetic as the reference
    /// (float32 `arange·(2π/heads)`, float32 cos/sin, division, multiplication).
    public static func gridInit(heads: Int, levels: Int, points: Int) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(heads * levels * points * 2)
        let step = Float(2.0 * Double.pi / Double(heads))
        for h in 0..<heads {
            let theta = Float(h) * step
            let c = Foundation.cos(theta), s = Foundation.sin(theta)
            let m = Swift.max(Swift.abs(c), Swift.abs(s))
            let dx = c / m, dy = s / m
            for _ in 0..<levels {
                for p in 0..<points { out += [dx * Float(p + 1), dy * Float(p + 1)] }
            }
        }
        return out
    }

    /// Deformable attention of `query` over the multi-scale `value` input.
    ///
    /// - `query`: `[B, Tq, C]`;
    /// - `referencePoints`: `[B, Tq, L, 2]` (one point per level) or `[B, Tq, 2]` (the same for every
    ///   level), `(x, y)` normalized to `[0, 1]`;
    /// - `value`: `[B, S, C]`, the flattened levels concatenated in level order (`S = Σ H_l·W_l`);
    /// - `levelShapes`: `(H_l, W_l)` per level;
    /// - returns `[B, Tq, C]`: `output_proj(MSDA(value_proj(value), ref + offset/(W_l, H_l),
    ///   softmax_{L·P}(attention_weights(query))))` with `offset = sampling_offsets(query)`.
    public func callAsFunction(query: Tensor, referencePoints: Tensor, value input: Tensor,
                               levelShapes: [(height: Int, width: Int)]) -> Tensor {
        precondition(query.rank == 3 && query.shape[2] == dModel && input.rank == 3 && input.shape[2] == dModel
                     && input.shape[0] == query.shape[0],
                     "MSDeformAttn: query \(query.shape) and value \(input.shape) must be [B, T, \(dModel)]")
        precondition(levelShapes.count == levels, "MSDeformAttn: \(levelShapes.count) level shapes for \(levels) levels")
        let b = query.shape[0], tq = query.shape[1]
        let ref: Tensor
        if referencePoints.rank == 3 {
            precondition(referencePoints.shape == [b, tq, 2], "MSDeformAttn: reference points \(referencePoints.shape)")
            ref = referencePoints.reshaped([b, tq, 1, 1, 1, 2])
        } else {
            precondition(referencePoints.shape == [b, tq, levels, 2], "MSDeformAttn: reference points \(referencePoints.shape)")
            ref = referencePoints.reshaped([b, tq, 1, levels, 1, 2])
        }
        let v = valueProj(input)
        let offsets = samplingOffsets(query).reshaped([b, tq, heads, levels, points, 2])
        let weights = attentionWeights(query).reshaped([b, tq, heads, levels * points]).softmax(axis: -1)
            .reshaped([b, tq, heads, levels, points])
        // offset_normalizer = (W_l, H_l) per level.
        let normalizer = Tensor(levelShapes.flatMap { [Float($0.width), Float($0.height)] }, shape: [levels, 1, 2])
        let locations = ref + offsets / normalizer
        let out = Tensor.msDeformAttn(value: v, levelShapes: levelShapes, samplingLocations: locations,
                                      attentionWeights: weights, heads: heads)
        return outputProj(out)
    }
}
