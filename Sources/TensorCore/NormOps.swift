// NormOps: frozen batch norm / per-channel affine, group norm and layer norm ops, fused forward and backward.
// Corresponds to detectron2 FrozenBatchNorm2d, torch.nn.functional.group_norm and F.layer_norm.
import Kernels

extension Tensor {
    /// Per-channel affine over the last dimension: `y[..., c] = x[..., c]·scale[c] + shift[c]`.
    ///
    /// `x`: `[..., C]`, `scale`, `shift`: `[C]`. Gradients flow to all three.
    public static func channelAffine(_ x: Tensor, scale: Tensor, shift: Tensor) -> Tensor {
        let c = x.shape.last ?? 0
        precondition(x.rank >= 1 && c > 0 && scale.shape == [c] && shift.shape == [c],
                     "channelAffine: input \(x.shape) with scale \(scale.shape) and shift \(shift.shape)")
        let rows = x.count / c
        let out = Tensor(uninitialized: x.shape)
        channelAffineForward(x: x.data, scale: scale.data, shift: shift.data, y: out.data, rows: rows, channels: c)
        return Autograd.record("channelAffine", out, [x, scale, shift]) { g in
            let gx = x.requiresGrad ? Tensor(uninitialized: x.shape) : nil
            let gs = scale.requiresGrad ? Tensor(uninitialized: [c]) : nil
            let gt = shift.requiresGrad ? Tensor(uninitialized: [c]) : nil
            channelAffineBackward(x: x.data, scale: scale.data, dy: g.data, dx: gx?.data, dScale: gs?.data,
                                  dShift: gt?.data, rows: rows, channels: c)
            return [gx, gs, gt]
        }
    }

    /// Frozen batch norm (detectron2 `FrozenBatchNorm2d`) over the last dimension:
    /// `y = x·scale + shift`, `scale = weight / sqrt(runningVar + eps)`, `shift = bias − runningMean·scale`.
    ///
    /// `x`: `[..., C]` (NHWC), the four buffers `[C]`. They are fixed: only `x` receives a gradient.
    public static func frozenBatchNorm(_ x: Tensor, weight: Tensor, bias: Tensor, runningMean: Tensor,
                                       runningVar: Tensor, eps: Float = 1e-5) -> Tensor {
        let c = x.shape.last ?? 0
        precondition(x.rank >= 1 && c > 0 && weight.shape == [c] && bias.shape == [c]
                     && runningMean.shape == [c] && runningVar.shape == [c],
                     "frozenBatchNorm: input \(x.shape) with weight \(weight.shape), bias \(bias.shape), mean \(runningMean.shape), var \(runningVar.shape)")
        let scale = Tensor(uninitialized: [c]), shift = Tensor(uninitialized: [c])
        for j in 0..<c {
            let s = weight.data[j] * (1 / (runningVar.data[j] + eps).squareRoot())
            scale.data[j] = s
            shift.data[j] = bias.data[j] - runningMean.data[j] * s
        }
        let rows = x.count / c
        let out = Tensor(uninitialized: x.shape)
        channelAffineForward(x: x.data, scale: scale.data, shift: shift.data, y: out.data, rows: rows, channels: c)
        return Autograd.record("frozenBatchNorm", out, [x]) { g in
            let gx = Tensor(uninitialized: x.shape)
            channelAffineBackward(x: x.data, scale: scale.data, dy: g.data, dx: gx.data, dScale: nil, dShift: nil,
                                  rows: rows, channels: c)
            return [gx]
        }
    }

    /// Group norm over channels-last input: statistics per (batch, group) over every position and the
    /// `C / groups` channels of the group (biased variance, Double), then a per-channel affine.
    ///
    /// `x`: `[B, ..., C]` (e.g. `[B, H, W, C]` or `[B, T, C]`), `weight`, `bias`: `[C]`. Output as `x`.
    /// Gradients flow to `x`, `weight` and `bias`.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float = 1e-5) -> Tensor {
        precondition(x.rank >= 2, "groupNorm: input \(x.shape) needs [B, ..., C]")
        let b = x.shape[0], c = x.shape[x.rank - 1]
        precondition(groups > 0 && c % groups == 0 && weight.shape == [c] && bias.shape == [c],
                     "groupNorm: \(c) channels in \(groups) groups with weight \(weight.shape), bias \(bias.shape)")
        let spatial = b * c == 0 ? 0 : x.count / (b * c)
        precondition(spatial > 0, "groupNorm: input \(x.shape) has no positions")
        let out = Tensor(uninitialized: x.shape)
        guard Autograd.needsRecord([x, weight, bias]) else {
            groupNormForward(x: x.data, weight: weight.data, bias: bias.data, y: out.data, mean: nil, rstd: nil,
                             batch: b, spatial: spatial, channels: c, groups: groups, eps: eps)
            return out
        }
        var mean = [Double](repeating: 0, count: b * groups), rstd = [Double](repeating: 0, count: b * groups)
        mean.withUnsafeMutableBufferPointer { m in
            rstd.withUnsafeMutableBufferPointer { r in
                groupNormForward(x: x.data, weight: weight.data, bias: bias.data, y: out.data, mean: m.baseAddress,
                                 rstd: r.baseAddress, batch: b, spatial: spatial, channels: c, groups: groups, eps: eps)
            }
        }
        let savedMean = mean, savedRstd = rstd
        return Autograd.record("groupNorm", out, [x, weight, bias]) { g in
            let gx = x.requiresGrad ? Tensor(uninitialized: x.shape) : nil
            let gw = weight.requiresGrad ? Tensor(uninitialized: [c]) : nil
            let gb = bias.requiresGrad ? Tensor(uninitialized: [c]) : nil
            savedMean.withUnsafeBufferPointer { m in
                savedRstd.withUnsafeBufferPointer { r in
                    groupNormBackward(x: x.data, weight: weight.data, dy: g.data, mean: m.baseAddress!, rstd: r.baseAddress!,
                                      dx: gx?.data, dWeight: gw?.data, dBias: gb?.data, batch: b, spatial: spatial,
                                      channels: c, groups: groups)
                }
            }
            return [gx, gw, gb]
        }
    }

    /// Layer norm over the last dimension (row statistics in Double, biased variance).
    ///
    /// `x`: `[..., D]`, `weight`, `bias`: `[D]`. Output as `x`. Gradients flow to all three.
    public static func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-5) -> Tensor {
        let d = x.shape.last ?? 0
        precondition(x.rank >= 1 && d > 0 && weight.shape == [d] && bias.shape == [d],
                     "layerNorm: input \(x.shape) with weight \(weight.shape), bias \(bias.shape)")
        let rows = x.count / d
        let out = Tensor(uninitialized: x.shape)
        guard Autograd.needsRecord([x, weight, bias]) else {
            layerNormForward(x: x.data, weight: weight.data, bias: bias.data, y: out.data, mean: nil, rstd: nil,
                             rows: rows, dim: d, eps: eps)
            return out
        }
        var mean = [Double](repeating: 0, count: rows), rstd = [Double](repeating: 0, count: rows)
        mean.withUnsafeMutableBufferPointer { m in
            rstd.withUnsafeMutableBufferPointer { r in
                layerNormForward(x: x.data, weight: weight.data, bias: bias.data, y: out.data, mean: m.baseAddress,
                                 rstd: r.baseAddress, rows: rows, dim: d, eps: eps)
            }
        }
        let savedMean = mean, savedRstd = rstd
        return Autograd.record("layerNorm", out, [x, weight, bias]) { g in
            let gx = x.requiresGrad ? Tensor(uninitialized: x.shape) : nil
            let gw = weight.requiresGrad ? Tensor(uninitialized: [d]) : nil
            let gb = bias.requiresGrad ? Tensor(uninitialized: [d]) : nil
            savedMean.withUnsafeBufferPointer { m in
                savedRstd.withUnsafeBufferPointer { r in
                    layerNormBackward(x: x.data, weight: weight.data, dy: g.data, mean: m.baseAddress!, rstd: r.baseAddress!,
                                      dx: gx?.data, dWeight: gw?.data, dBias: gb?.data, rows: rows, dim: d)
                }
            }
            return [gx, gw, gb]
        }
    }
}
