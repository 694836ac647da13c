// PoolOps: NHWC max pooling and adaptive average ("area") pooling ops with their backward.
// Corresponds to torch.nn.functional.max_pool2d (ResNet stem) and F.adaptive_avg_pool2d / interpolate(mode="area").
import Kernels

extension Tensor {
    /// Max pooling over square windows, channels last; padding acts as −∞ (ceil_mode=False).
    ///
    /// `x`: `[B, H, W, C]` → `[B, Ho, Wo, C]`, `Ho = (H + 2·padding − kernel) / stride + 1`
    /// (`padding ≤ kernel / 2`). The backward routes each output gradient to the first maximum of its window.
    public static func maxPool2d(_ x: Tensor, kernel: Int = 3, stride: Int = 2, padding: Int = 1) -> Tensor {
        precondition(x.rank == 4, "maxPool2d: input \(x.shape) is not [B,H,W,C]")
        let geo = PoolGeometry(batch: x.shape[0], height: x.shape[1], width: x.shape[2], channels: x.shape[3],
                               kernel: kernel, stride: stride, padding: padding)
        let out = Tensor(uninitialized: [geo.batch, geo.outHeight, geo.outWidth, geo.channels])
        guard Autograd.needsRecord(x) else {
            maxPool2dForward(x: x.data, y: out.data, argmax: nil, geometry: geo)
            return out
        }
        let argmax = [Int32](unsafeUninitializedCapacity: out.count) { buf, n in
            maxPool2dForward(x: x.data, y: out.data, argmax: buf.baseAddress, geometry: geo)
            n = out.count
        }
        return Autograd.record("maxPool2d", out, [x]) { g in
            let gx = Tensor(uninitialized: x.shape)
            argmax.withUnsafeBufferPointer { a in
                maxPool2dBackward(dy: g.data, argmax: a.baseAddress!, dx: gx.data, geometry: geo)
            }
            return [gx]
        }
    }

    /// Adaptive average pooling ("area" interpolation), channels last.
    ///
    /// `x`: `[B, Hin, Win, C]` → `[B, height, width, C]`; output cell `i` averages input rows
    /// `floor(i·Hin/height) … ceil((i+1)·Hin/height) − 1`, and likewise the columns.
    /// The backward spreads each output gradient evenly over its window.
    public static func adaptiveAvgPool(_ x: Tensor, height: Int, width: Int) -> Tensor {
        spatialResample("adaptiveAvgPool", x, height: height, width: width,
                        forward: adaptiveAvgPool2dForward, backward: adaptiveAvgPool2dBackward)
    }
}
