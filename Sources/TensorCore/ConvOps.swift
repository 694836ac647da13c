// ConvOps: the NHWC conv2d op (im2col + sgemm kernels) with its backward, and the per-thread im2col workspace.
// Corresponds to torch.nn.functional.conv2d (detectron2 layers.Conv2d; groups = 1, dilation = 1).
import Kernels

/// The im2col buffer of one thread: grown on demand, reused by every conv forward and backward on
/// the thread (so the step loop does not allocate and fault megabytes per conv).
final class ConvWorkspace {
    private var storage = Storage(uninitializedCount: 0)

    /// Upper bound of one im2col chunk; chunks of output lines are sized to stay below it. 8 MB keeps
    /// the chunk in L3 until its sgemm reads it: on one thread the 3×3 256→256 64×64 B=2 forward ran
    /// at 117 GFLOP/s with 8 MB chunks against 112 with 32 MB (raw sgemm of the whole product: 104–112).
    static let maxBytes = 8 << 20

    /// A buffer of at least `count` floats, valid until the next call on this thread.
    func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        if storage.count < count { storage = Storage(uninitializedCount: count) }
        return storage.base
    }

    private static let perThread = ThreadLocal { ConvWorkspace() }

    /// This thread's workspace.
    static var current: ConvWorkspace { perThread.value }
}

extension Tensor {
    /// 2-D convolution (cross-correlation) with zero padding over channels-last activations.
    ///
    /// - `x`: `[B, H, W, Cin]`.
    /// - `weight`: `[Cout, kh, kw, Cin]` (OHWI, MaskPilot's internal layout; PyTorch's OIHW weights are
    ///   permuted to it when imported, and back when exported).
    /// - `bias`: `[Cout]` or nil.
    /// - Returns `[B, Ho, Wo, Cout]` with `Ho = (H + 2·padding − kh) / stride + 1`, likewise `Wo`.
    ///
    /// Runs as im2col over chunks of output lines (≤ 8 MB of patches) and one sgemm per chunk; a
    /// 1×1 stride-1 unpadded conv is a single sgemm on `x`. The backward recomputes the patches.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4 && x.shape[3] == weight.shape[3],
                     "conv2d: input \(x.shape) [B,H,W,Cin] does not match weight \(weight.shape) [Cout,kh,kw,Cin]")
        let cout = weight.shape[0]
        if let bias { precondition(bias.shape == [cout], "conv2d: bias \(bias.shape) for \(cout) output channels") }
        let geo = ConvGeometry(batch: x.shape[0], height: x.shape[1], width: x.shape[2], inChannels: x.shape[3],
                               outChannels: cout, kernelHeight: weight.shape[1], kernelWidth: weight.shape[2],
                               stride: stride, padding: padding)
        let out = Tensor(uninitialized: [geo.batch, geo.outHeight, geo.outWidth, cout])
        let wsCount = geo.workspaceCount(maxBytes: ConvWorkspace.maxBytes)
        let ws: UnsafeMutablePointer<Float>? = geo.isPointwise ? nil : ConvWorkspace.current.buffer(wsCount)
        conv2dForward(x: x.data, weight: weight.data, bias: bias?.data, y: out.data, geometry: geo,
                      workspace: ws, workspaceCount: wsCount)
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        return Autograd.record("conv2d", out, inputs) { g in
            let gx = x.requiresGrad ? Tensor(uninitialized: x.shape) : nil
            let gw = weight.requiresGrad ? Tensor(uninitialized: weight.shape) : nil
            let gb = (bias?.requiresGrad ?? false) ? Tensor(uninitialized: [cout]) : nil
            let wsb: UnsafeMutablePointer<Float>? = geo.isPointwise ? nil : ConvWorkspace.current.buffer(wsCount)
            conv2dBackward(x: x.data, weight: weight.data, dy: g.data, dx: gx?.data, dWeight: gw?.data,
                           dBias: gb?.data, geometry: geo, workspace: wsb, workspaceCount: wsCount)
            return bias == nil ? [gx, gw] : [gx, gw, gb]
        }
    }
}
