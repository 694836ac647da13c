// ResampleOps: bilinear resize and bilinear point sampling (grid sample) of NHWC maps, with their backward.
// Corresponds to F.interpolate(mode="bilinear", align_corners=False) and detectron2 point_sample (F.grid_sample).
import Kernels

extension Tensor {
    /// Bilinear resize with align_corners=False and no antialiasing (up or down), channels last.
    ///
    /// `x`: `[B, H, W, C]` → `[B, height, width, C]`. Source coordinate `(dst + 0.5)·(in/out) − 0.5`,
    /// clamped at 0; the upper tap is edge-clamped. The backward scatters into `x`.
    public static func resizeBilinear(_ x: Tensor, height: Int, width: Int) -> Tensor {
        spatialResample("resizeBilinear", x, height: height, width: width,
                        forward: resizeBilinearForward, backward: resizeBilinearBackward)
    }

    /// A `[B, H, W, C]` → `[B, height, width, C]` op from a forward kernel and its backward (which
    /// overwrites `dx`); shared by the resampling ops.
    static func spatialResample(
        _ name: String, _ x: Tensor, height: Int, width: Int,
        forward: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int, Int, Int, Int) -> Void,
        backward: @escaping (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int, Int, Int, Int) -> Void
    ) -> Tensor {
        precondition(x.rank == 4 && height > 0 && width > 0,
                     "\(name): input \(x.shape) is not [B,H,W,C] or output \(height)×\(width) is empty")
        let b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
        let out = Tensor(uninitialized: [b, height, width, c])
        forward(x.data, out.data, b, h, w, c, height, width)
        return Autograd.record(name, out, [x]) { g in
            let gx = Tensor(uninitialized: x.shape)
            backward(g.data, gx.data, b, h, w, c, height, width)
            return [gx]
        }
    }

    /// Bilinear point sampling with zero padding (detectron2 `point_sample`, F.grid_sample).
    ///
    /// `x`: `[N, H, W, C]` (N maps, e.g. B images or B·Q masks), `points`: `[N, P, 2]` holding `(x, y)`
    /// in `[0, 1]²` → `[N, P, C]`. Channels-last maps share each point's taps across all C channels, so
    /// sampling Q masks at the same points is fastest as one `[B, H, W, Q]` map.
    /// A point maps to pixel coordinates `(x·W − 0.5, y·H − 0.5)`; each of its four taps that falls
    /// outside the map reads 0. The backward scatter-adds into `x`.
    ///
    /// `points` get a gradient only when `pointsGradient` is true (and they require grad): the loss's
    /// point sampling treats its random points as constants, MSDA's composed form differentiates them.
    /// It is grid_sample's: the floor-based bilinear derivative times `(W, H)`, in-map taps only (see
    /// `gridSamplePointsBackward`).
    public static func gridSample(_ x: Tensor, points: Tensor, pointsGradient: Bool = false) -> Tensor {
        precondition(x.rank == 4 && points.rank == 3 && points.shape[0] == x.shape[0] && points.shape[2] == 2,
                     "gridSample: map \(x.shape) [N,H,W,C] with points \(points.shape) [N,P,2]")
        let n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3], p = points.shape[1]
        let out = Tensor(uninitialized: [n, p, c])
        gridSampleForward(x: x.data, points: points.data, y: out.data, batch: n, height: h, width: w,
                          channels: c, pointCount: p)
        return Autograd.record("gridSample", out, [x, points]) { g in
            let gx = x.requiresGrad ? Tensor(uninitialized: x.shape) : nil
            let gp = pointsGradient && points.requiresGrad ? Tensor(uninitialized: points.shape) : nil
            guard gx != nil || gp != nil else { return [nil, nil] }
            gridSampleBackward(dy: g.data, points: points.data, dx: gx?.data, batch: n, height: h, width: w,
                               channels: c, pointCount: p, x: x.data, dPoints: gp?.data)
            return [gx, gp]
        }
    }
}
