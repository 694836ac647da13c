// Multi-scale deformable attention core as one fused op with its backward, and the same computation composed of primitives.
// Corresponds to Mask2Former's MSDeformAttnFunction / ms_deform_attn_core_pytorch (pixel_decoder/ops/functions).
import Kernels

extension Tensor {
    /// Multi-scale deformable attention core (fused forward and backward).
    ///
    /// - `value`: `[B, S, heads·d]`, the tokens of every level concatenated in level order, row-major
    ///   `(y, x)` inside a level, `S = Σ_l H_l·W_l`;
    /// - `levelShapes`: `(H_l, W_l)` per level;
    /// - `samplingLocations`: `[B, Tq, heads, L, P, 2]`, points `(x, y)` normalized to `[0, 1]`;
    /// - `attentionWeights`: `[B, Tq, heads, L, P]` (already softmaxed);
    /// - returns `[B, Tq, heads·d]` with `out[b,q,h,:] = Σ_{l,p} A·bilinear(V_h^(l), loc)`, where the
    ///   bilinear sample is grid_sample's (align_corners=False, zero padding: pixel coordinate
    ///   `(x·W_l − 0.5, y·H_l − 0.5)`, taps outside the map read 0).
    ///
    /// One tape node; gradients flow to all three tensors (see `msDeformAttnBackward`).
    public static func msDeformAttn(value: Tensor, levelShapes: [(height: Int, width: Int)],
                                    samplingLocations: Tensor, attentionWeights: Tensor, heads: Int) -> Tensor {
        let s = msDeformAttnShape(value: value, levelShapes: levelShapes, samplingLocations: samplingLocations,
                                  attentionWeights: attentionWeights, heads: heads)
        let out = Tensor(uninitialized: [s.batch, s.queries, s.width])
        msDeformAttnForward(value: value.data, locations: samplingLocations.data, weights: attentionWeights.data,
                            out: out.data, shape: s)
        return Autograd.record("msDeformAttn", out, [value, samplingLocations, attentionWeights]) { g in
            let dv = value.requiresGrad ? Tensor(uninitialized: value.shape) : nil
            let dl = samplingLocations.requiresGrad ? Tensor(uninitialized: samplingLocations.shape) : nil
            let dw = attentionWeights.requiresGrad ? Tensor(uninitialized: attentionWeights.shape) : nil
            msDeformAttnBackward(value: value.data, locations: samplingLocations.data, weights: attentionWeights.data,
                                 dOut: g.data, dValue: dv?.data, dLocations: dl?.data, dWeights: dw?.data, shape: s)
            return [dv, dl, dw]
        }
    }

    /// The same computation composed of primitive ops, as ms_deform_attn_core_pytorch writes it: per
    /// level, the value slice viewed as `[B·heads, H_l, W_l, d]` maps is point-sampled (`gridSample`
    /// with the points gradient) at `[B·heads, Tq·P, 2]`; the samples of all levels are concatenated to
    /// `[B·heads, Tq, L·P, d]`, multiplied by the weights and summed over `L·P`. Used to test the fused op.
    public static func msDeformAttnComposed(value: Tensor, levelShapes: [(height: Int, width: Int)],
                                            samplingLocations: Tensor, attentionWeights: Tensor, heads: Int) -> Tensor {
        let s = msDeformAttnShape(value: value, levelShapes: levelShapes, samplingLocations: samplingLocations,
                                  attentionWeights: attentionWeights, heads: heads)
        let b = s.batch, tq = s.queries, d = s.headDim, np = s.points, nl = s.levels
        var sampled: [Tensor] = []
        for l in 0..<nl {
            let h = s.levelHeights[l], w = s.levelWidths[l], start = s.levelStarts[l]
            let maps = value.slice(axis: 1, start..<(start + h * w))     // [B, H·W, heads·d]
                .reshaped([b, h * w, heads, d]).permuted(0, 2, 1, 3)      // [B, heads, H·W, d]
                .reshaped([b * heads, h, w, d])
            let pts = samplingLocations.slice(axis: 3, l..<(l + 1))       // [B, Tq, heads, 1, P, 2]
                .reshaped([b, tq, heads, np, 2]).permuted(0, 2, 1, 3, 4)  // [B, heads, Tq, P, 2]
                .reshaped([b * heads, tq * np, 2])
            let v = gridSample(maps, points: pts, pointsGradient: true)   // [B·heads, Tq·P, d]
            sampled.append(v.reshaped([b * heads, tq, np, d]))
        }
        let all = concat(sampled, axis: 2)                                // [B·heads, Tq, L·P, d]
        let a = attentionWeights.reshaped([b, tq, heads, nl * np]).permuted(0, 2, 1, 3)
            .reshaped([b * heads, tq, nl * np, 1])
        return (all * a).sum(axis: 2)                                     // [B·heads, Tq, d]
            .reshaped([b, heads, tq, d]).permuted(0, 2, 1, 3).reshaped([b, tq, heads * d])
    }

    /// Checks the MSDA operands against each other and returns the kernel's shape.
    private static func msDeformAttnShape(value: Tensor, levelShapes: [(height: Int, width: Int)],
                                          samplingLocations: Tensor, attentionWeights: Tensor,
                                          heads: Int) -> MSDeformAttnShape {
        precondition(value.rank == 3 && heads > 0 && value.shape[2] % heads == 0 && !levelShapes.isEmpty,
                     "msDeformAttn: value \(value.shape) is not [B, S, heads·d] for \(heads) heads and \(levelShapes.count) levels")
        let b = value.shape[0], nl = levelShapes.count
        precondition(samplingLocations.rank == 6 && attentionWeights.rank == 5,
                     "msDeformAttn: locations \(samplingLocations.shape) [B,Tq,heads,L,P,2], weights \(attentionWeights.shape) [B,Tq,heads,L,P]")
        let tq = samplingLocations.shape[1], np = samplingLocations.shape[4]
        precondition(samplingLocations.shape == [b, tq, heads, nl, np, 2] && attentionWeights.shape == [b, tq, heads, nl, np],
                     "msDeformAttn: locations \(samplingLocations.shape), weights \(attentionWeights.shape) for B \(b), "
                     + "heads \(heads), \(nl) levels")
        let s = MSDeformAttnShape(batch: b, queries: tq, heads: heads, headDim: value.shape[2] / heads, points: np,
                                  levelShapes: levelShapes)
        precondition(s.tokens == value.shape[1],
                     "msDeformAttn: value has \(value.shape[1]) tokens, the levels \(levelShapes) have \(s.tokens)")
        precondition(levelShapes.allSatisfy { $0.height > 0 && $0.width > 0 } && np > 0,
                     "msDeformAttn: empty level in \(levelShapes) or no points")
        return s
    }
}
