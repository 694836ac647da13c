// OneDNNConv: oneDNN's direct convolution (forward, backward data, backward weights) on MaskPilot's NHWC activations
// and OHWI weights, in fp32 or bf16 (operands bf16, accumulation and outputs fp32), with the weights reordered to the
// layout oneDNN's kernels want (once per step for parameters, through the parameter cache).
// Corresponds to torch's mkldnn convolution path (torch.nn.functional.conv2d on CPU, channels-last), also under
// `torch.autocast("cpu", dtype=torch.bfloat16)`.
import CDNNL
import Synchronization

/// One convolution geometry's oneDNN primitives in one operand type: the forward (with or without bias), the
/// backward data and the backward weights, each made when first needed, with the reorders between MaskPilot's OHWI
/// fp32 weights and the layouts they chose.
///
/// Activations are NHWC (`[B, H, W, C]` given to oneDNN as dims `{B, C, H, W}` with strides), weights OHWI
/// (`[Cout, kh, kw, Cin]` as dims `{Cout, Cin, kh, kw}`). Padding `p` on both sides, as torch's (the right
/// padding beyond the last window is simply not read).
final class DNNLConvolution {
    let geometry: ConvGeometry
    let input: DNNLType

    /// A pass: its primitive, the weights layout it reads or writes, and the reorder to (forward, backward data) or
    /// from (backward weights) the OHWI fp32 weights (nil when the layouts are the same).
    final class Pass {
        let primitive: DNNLPrimitive
        let weights: dnnl_memory_desc_t
        let reorder: DNNLPrimitive?
        /// oneDNN's implementation, e.g. "brgconv:avx512_core_bf16".
        let implementation: String

        init(primitive: DNNLPrimitive, weights: dnnl_memory_desc_t, reorder: DNNLPrimitive?, implementation: String) {
            self.primitive = primitive; self.weights = weights; self.reorder = reorder; self.implementation = implementation
        }
    }

    /// The three passes (the forward with and without bias); nil where oneDNN could not make one, which then runs
    /// as im2col.
    enum PassKind: Hashable { case forward(bias: Bool), backwardData, backwardWeights }
    private var passes: [PassKind: Pass?] = [:]

    init(geometry: ConvGeometry, input: DNNLType) {
        self.geometry = geometry
        self.input = input
    }

    // MARK: descriptors

    private var strides: [Int64] { [Int64(geometry.stride), Int64(geometry.stride)] }
    private var padding: [Int64] { [Int64(geometry.padding), Int64(geometry.padding)] }

    /// NHWC activations `[B, H, W, C]` as oneDNN's `{B, C, H, W}`.
    private func activations(height: Int, width: Int, channels: Int, type: DNNLType) throws -> dnnl_memory_desc_t {
        let g = geometry
        return try memoryDescriptor([g.batch, channels, height, width],
                                    strides: [height * width * channels, 1, width * channels, channels], type: type)
    }
    private func source(_ type: DNNLType) throws -> dnnl_memory_desc_t {
        try activations(height: geometry.height, width: geometry.width, channels: geometry.inChannels, type: type)
    }
    private func destination(_ type: DNNLType) throws -> dnnl_memory_desc_t {
        try activations(height: geometry.outHeight, width: geometry.outWidth, channels: geometry.outChannels, type: type)
    }
    /// OHWI fp32 weights as oneDNN's `{O, I, kh, kw}`.
    private func userWeights() throws -> dnnl_memory_desc_t {
        let g = geometry
        return try memoryDescriptor([g.outChannels, g.inChannels, g.kernelHeight, g.kernelWidth],
                                    strides: [g.patchSize, 1, g.kernelWidth * g.inChannels, g.inChannels], type: .f32)
    }
    private func anyWeights(_ type: DNNLType) throws -> dnnl_memory_desc_t {
        let g = geometry
        return try anyLayoutDescriptor([g.outChannels, g.inChannels, g.kernelHeight, g.kernelWidth], type: type)
    }

    /// The forward's descriptor (`dnnl_convolution_forward_desc_init`); `destination` fp32 for the forward itself,
    /// the operand type for the hint of the backward passes (whose gradient of the output comes in that type).
    private func forwardDescriptor(bias: Bool, destinationType: DNNLType) throws -> dnnl_primitive_desc_t {
        var src = try source(input), weights = try anyWeights(input), dst = try destination(destinationType)
        var biasMD = try memoryDescriptor([geometry.outChannels], strides: [1], type: .f32)
        var desc = dnnl_convolution_desc_t()
        let s = strides, p = padding
        let status = bias
            ? dnnl_convolution_forward_desc_init(&desc, dnnl_forward_training, dnnl_convolution_direct, &src, &weights, &biasMD,
                                                 &dst, s, p, p)
            : dnnl_convolution_forward_desc_init(&desc, dnnl_forward_training, dnnl_convolution_direct, &src, &weights, nil,
                                                 &dst, s, p, p)
        try check(status, "dnnl_convolution_forward_desc_init")
        let attributes = try makeAttributes()
        defer { dnnl_primitive_attr_destroy(attributes) }
        return try primitiveDescriptor("convolution forward", desc: &desc, attributes: attributes)
    }

    /// Throws when oneDNN offers only its reference implementation for `pd` (minutes per call on our shapes).
    private func requireOptimized(_ pd: dnnl_primitive_desc_t, _ name: String) throws {
        if implementation(pd).hasPrefix("ref") {
            throw DNNLError(call: "dnnl_primitive_desc_create(\(name): reference implementation only)", status: dnnl_unimplemented)
        }
    }

    /// A reorder between two weight layouts, or nil when they are the same.
    private func reorder(from: dnnl_memory_desc_t, to: dnnl_memory_desc_t) throws -> DNNLPrimitive? {
        if sameLayout(from, to) { return nil }
        let attributes = try makeAttributes()
        defer { dnnl_primitive_attr_destroy(attributes) }
        let pd = try reorderDescriptor(from: from, to: to, attributes: attributes)
        defer { dnnl_primitive_desc_destroy(pd) }
        return try DNNLPrimitive(name: "reorder", descriptor: pd,
                                 arguments: [(mp_dnnl_arg_from(), from), (mp_dnnl_arg_to(), to)])
    }

    /// The pass of `kind`, made when first asked for; nil when oneDNN cannot make it (or offers only its reference
    /// kernel).
    func pass(_ kind: PassKind) -> Pass? {
        if let known = passes[kind] { return known }
        let made: Pass?
        switch kind {
        case .forward(let bias): made = try? makeForwardPass(bias: bias)
        case .backwardData: made = try? makeBackwardDataPass()
        case .backwardWeights: made = try? makeBackwardWeightsPass()
        }
        passes[kind] = .some(made)
        return made
    }

    private func makeForwardPass(bias: Bool) throws -> Pass {
        let pd = try forwardDescriptor(bias: bias, destinationType: .f32)
        defer { dnnl_primitive_desc_destroy(pd) }
        try requireOptimized(pd, "convolution forward")
        let weights = try queryDescriptor(pd, dnnl_query_weights_md)
        var args = [(mp_dnnl_arg_src(), try source(input)), (mp_dnnl_arg_weights(), weights)]
        if bias { args.append((mp_dnnl_arg_bias(), try memoryDescriptor([geometry.outChannels], strides: [1], type: .f32))) }
        args.append((mp_dnnl_arg_dst(), try destination(.f32)))
        return Pass(primitive: try DNNLPrimitive(name: "convolution forward", descriptor: pd, arguments: args),
                    weights: weights, reorder: try reorder(from: try userWeights(), to: weights), implementation: implementation(pd))
    }

    private func makeBackwardDataPass() throws -> Pass {
        let hint = try forwardDescriptor(bias: false, destinationType: input)
        defer { dnnl_primitive_desc_destroy(hint) }
        var diffSrc = try source(.f32), weights = try anyWeights(input), diffDst = try destination(input)
        var desc = dnnl_convolution_desc_t()
        let s = strides, p = padding
        try check(dnnl_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &diffSrc, &weights, &diffDst, s, p, p),
                  "dnnl_convolution_backward_data_desc_init")
        let attributes = try makeAttributes()
        defer { dnnl_primitive_attr_destroy(attributes) }
        let pd = try primitiveDescriptor("convolution backward data", desc: &desc, attributes: attributes, hint: hint)
        defer { dnnl_primitive_desc_destroy(pd) }
        try requireOptimized(pd, "convolution backward data")
        let chosen = try queryDescriptor(pd, dnnl_query_weights_md)
        let args = [(mp_dnnl_arg_diff_dst(), diffDst), (mp_dnnl_arg_weights(), chosen), (mp_dnnl_arg_diff_src(), diffSrc)]
        return Pass(primitive: try DNNLPrimitive(name: "convolution backward data", descriptor: pd, arguments: args),
                    weights: chosen, reorder: try reorder(from: try userWeights(), to: chosen), implementation: implementation(pd))
    }

    private func makeBackwardWeightsPass() throws -> Pass {
        let hint = try forwardDescriptor(bias: false, destinationType: input)
        defer { dnnl_primitive_desc_destroy(hint) }
        var src = try source(input), diffWeights = try anyWeights(.f32), diffDst = try destination(input)
        var desc = dnnl_convolution_desc_t()
        let s = strides, p = padding
        try check(dnnl_convolution_backward_weights_desc_init(&desc, dnnl_convolution_direct, &src, &diffWeights, nil, &diffDst,
                                                              s, p, p),
                  "dnnl_convolution_backward_weights_desc_init")
        let attributes = try makeAttributes()
        defer { dnnl_primitive_attr_destroy(attributes) }
        let pd = try primitiveDescriptor("convolution backward weights", desc: &desc, attributes: attributes, hint: hint)
        defer { dnnl_primitive_desc_destroy(pd) }
        try requireOptimized(pd, "convolution backward weights")
        let chosen = try queryDescriptor(pd, dnnl_query_diff_weights_md)
        let args = [(mp_dnnl_arg_src(), src), (mp_dnnl_arg_diff_dst(), diffDst), (mp_dnnl_arg_diff_weights(), chosen)]
        return Pass(primitive: try DNNLPrimitive(name: "convolution backward weights", descriptor: pd, arguments: args),
                    weights: chosen, reorder: try reorder(from: chosen, to: try userWeights()), implementation: implementation(pd))
    }

    // MARK: execution

    /// The weights in `pass`'s layout: `weight` itself, or reordered. In bf16 a parameter's reordered copy comes from
    /// the parameter cache (made once per step); otherwise the reorder runs per call into the thread's workspace
    /// (a fraction of a percent of the convolution's time; caching fp32 copies would hold two more copies of every
    /// convolution weight for no measurable gain).
    private func weights(_ weight: UnsafePointer<Float>, for pass: Pass, kind: UInt8, workspace: DNNLWorkspace) throws -> UnsafeRawPointer {
        guard let reorder = pass.reorder else { return UnsafeRawPointer(weight) }
        let g = geometry, bytes = byteCount(pass.weights)
        let fill = { (buffer: UnsafeMutableRawPointer) throws in
            try reorder.execute([UnsafeRawPointer(weight), UnsafeRawPointer(buffer)], workspace: workspace)
        }
        if input == .bf16 {
            let key = ParameterCache.Key(address: UInt(bitPattern: weight), kind: kind, a: g.batch, b: g.height << 32 | g.width,
                                         c: g.stride << 32 | g.padding)
            if let cached = try ParameterCache.perThread.value.copy(key, sourceBytes: g.weightCount * MemoryLayout<Float>.stride,
                                                                     bytes: bytes, fill: fill) {
                return cached
            }
        }
        let buffer = workspace.reserve(weights: bytes)
        try fill(buffer)
        return UnsafeRawPointer(buffer)
    }

    /// `count` floats as the operand type: `values` in fp32, a bf16 copy in `scratch` in bf16.
    private func operand(_ values: UnsafePointer<Float>, count: Int,
                         scratch: (Int) -> UnsafeMutablePointer<UInt16>) -> UnsafeRawPointer {
        if input == .f32 { return UnsafeRawPointer(values) }
        let packed = scratch(count)
        convertToBF16(values, packed, count: count)
        return UnsafeRawPointer(packed)
    }

    /// `y = conv(x, weight) + bias` (shapes as `conv2dForward`'s); false (nothing done) when oneDNN has no forward
    /// for it. Throws a failed execution.
    func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 y: UnsafeMutablePointer<Float>) throws -> Bool {
        guard let pass = pass(.forward(bias: bias != nil)) else { return false }
        let ws = DNNLWorkspace.perThread.value
        GEMMCounter.flops.add(2 * geometry.outputCount * geometry.patchSize, ordering: .relaxed)
        var handles = [operand(x, count: geometry.inputCount) { ws.reserve(a: $0) },
                       try weights(weight, for: pass, kind: 1, workspace: ws)]
        if let bias { handles.append(UnsafeRawPointer(bias)) }
        handles.append(UnsafeRawPointer(y))
        try pass.primitive.execute(handles, workspace: ws)
        return true
    }

    /// Whichever of `dx = convᵀ(dy, weight)` and `dWeight = dyᵀ ⋆ x` is asked for and oneDNN can run, overwriting
    /// it (shapes as `conv2dBackward`'s). Returns which of the two it computed.
    ///
    /// oneDNN's backward weights splits its reduction over the threads it runs on, so its result depends on their
    /// number (`bench step --gemm-shapes` shows which geometries); to keep results independent of the thread count,
    /// the weight gradient is computed image by image, each on one thread by a batch-1 primitive, the images in
    /// parallel, and summed in image order.
    func backward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                  dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?) throws -> (dx: Bool, dWeight: Bool) {
        let dataPass = dx == nil ? nil : pass(.backwardData)
        let image = dWeight == nil ? nil : DNNLConvolution.perImage(geometry, input: input)
        if dataPass == nil && image == nil { return (false, false) }
        let flops = 2 * geometry.outputCount * geometry.patchSize
        if let dx, let pass = dataPass {
            let ws = DNNLWorkspace.perThread.value
            GEMMCounter.flops.add(flops, ordering: .relaxed)
            let diffDst = operand(dy, count: geometry.outputCount) { ws.reserve(b: $0) }
            try pass.primitive.execute([diffDst, try weights(weight, for: pass, kind: 2, workspace: ws), UnsafeRawPointer(dx)],
                                       workspace: ws)
        }
        if let dWeight, image != nil {
            GEMMCounter.flops.add(flops, ordering: .relaxed)
            try weightGradientByImage(x: x, dy: dy, dWeight: dWeight)
        }
        return (dataPass != nil, image != nil)
    }

    /// `dWeight = Σ_b dWeight_b` over the images in order, each image's on one thread (see `backward`).
    private func weightGradientByImage(x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                       dWeight: UnsafeMutablePointer<Float>) throws {
        let g = geometry, batch = g.batch, count = g.weightCount
        let inputStride = g.inputCount / batch, outputStride = g.outputCount / batch
        let single = batch == 1
        let partials = single ? dWeight : UnsafeMutablePointer<Float>.allocate(capacity: batch * count)
        defer { if !single { partials.deallocate() } }
        let failure = FirstError()
        let input = self.input
        parallelChunks(batch) { b in
            do {
                // On this thread, with one OpenMP thread (made and run so), whichever thread the chunk landed on.
                let threads = DNNLThreads.current
                DNNLThreads.set(1)
                defer { DNNLThreads.set(threads) }
                guard let conv = DNNLConvolution.perImage(g, input: input) else {
                    throw DNNLError(call: "convolution backward weights (per image)", status: dnnl_unimplemented)
                }
                try conv.weightGradient(x: x + b * inputStride, dy: dy + b * outputStride, into: partials + b * count)
            } catch {
                failure.record(error)
            }
        }
        if let error = failure.error { throw error }
        if single { return }
        parallelFor(count, grain: elementwiseGrain) { r in
            for i in r {
                var sum = partials[i]
                for b in 1..<batch { sum += partials[b * count + i] }
                dWeight[i] = sum
            }
        }
    }

    /// This batch-1 convolution's weight gradient from one image, overwriting `dWeight`.
    private func weightGradient(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, into dWeight: UnsafeMutablePointer<Float>) throws {
        guard let pass = pass(.backwardWeights) else {
            throw DNNLError(call: "convolution backward weights (per image)", status: dnnl_unimplemented)
        }
        let ws = DNNLWorkspace.perThread.value
        let src = operand(x, count: geometry.inputCount) { ws.reserve(a: $0) }
        let diffDst = operand(dy, count: geometry.outputCount) { ws.reserve(b: $0) }
        if let reorder = pass.reorder {
            let blocked = ws.reserve(weights: byteCount(pass.weights))
            try pass.primitive.execute([src, diffDst, UnsafeRawPointer(blocked)], workspace: ws)
            try reorder.execute([UnsafeRawPointer(blocked), UnsafeRawPointer(dWeight)], workspace: ws)
        } else {
            try pass.primitive.execute([src, diffDst, UnsafeRawPointer(dWeight)], workspace: ws)
        }
    }

    /// This thread's batch-1 convolution of `geometry`'s shape in `input`, or nil when oneDNN has no optimized backward
    /// weights for it (the weight gradient then runs as im2col). Made with the thread's current OpenMP count.
    static func perImage(_ geometry: ConvGeometry, input: DNNLType) -> DNNLConvolution? {
        let g = geometry
        let single = ConvGeometry(batch: 1, height: g.height, width: g.width, inChannels: g.inChannels, outChannels: g.outChannels,
                                  kernelHeight: g.kernelHeight, kernelWidth: g.kernelWidth, stride: g.stride, padding: g.padding)
        // Made and run with one OpenMP thread, whichever thread asks.
        let threads = DNNLThreads.current
        if threads != 1 { DNNLThreads.set(1) }
        defer { if threads != 1 { DNNLThreads.set(threads) } }
        let conv = cached(single, input: input)
        return conv.pass(.backwardWeights) == nil ? nil : conv
    }

    // MARK: choice

    /// Backward data with fewer input channels than this runs as im2col: measured 3.7× slower in oneDNN for the stem
    /// (3 channels, 7×7, stride 2), faster from 64 channels on (docs/perf.md).
    static let minimumBackwardDataChannels = 16

    /// This thread's convolutions by geometry and operand type.
    fileprivate static let perThread = ThreadLocal { Cache() }
    fileprivate final class Cache {
        var convolutions: [Key: DNNLConvolution] = [:]
    }
    /// The thread count is part of the key: oneDNN fixes a primitive's split when it makes it (see `MatmulKey`).
    fileprivate struct Key: Hashable { var geometry: ConvGeometry; var input: DNNLType; var threads: Int }

    /// The oneDNN convolution for `geometry` in this thread's precision, or nil when im2col + `sgemm` runs it:
    /// pointwise convolutions (one GEMM already), empty batches, `KernelLibrary.openBLAS`, the emulated bf16 twin.
    /// (Passes oneDNN offers only its reference kernel for fall back to im2col one by one: see `pass`.)
    static func chosen(for geometry: ConvGeometry) -> DNNLConvolution? {
        if geometry.isPointwise || geometry.batch == 0 || KernelLibrary.current == .openBLAS { return nil }
        guard let input = GEMMPrecision.dnnlConvolutionInput else { return nil }
        return cached(geometry, input: input)
    }

    /// This thread's convolution of `geometry` in `input` (made on first use).
    static func cached(_ geometry: ConvGeometry, input: DNNLType) -> DNNLConvolution {
        let cache = perThread.value
        let key = Key(geometry: geometry, input: input, threads: DNNLThreads.current)
        if let known = cache.convolutions[key] { return known }
        if cache.convolutions.count >= DNNLWorkspace.capacity { cache.convolutions.removeAll() }
        let conv = DNNLConvolution(geometry: geometry, input: input)
        cache.convolutions[key] = conv
        return conv
    }
}

/// What runs each pass of a convolution of `geometry` on this thread (in its precision and `KernelLibrary`):
/// oneDNN's implementation name (e.g. "brgconv:avx512_core"), or "im2col" where im2col + `sgemm` runs it.
public func convolutionImplementations(for geometry: ConvGeometry)
    -> (forward: String, backwardData: String, backwardWeights: String) {
    guard let conv = DNNLConvolution.chosen(for: geometry) else { return ("im2col", "im2col", "im2col") }
    let data = geometry.inChannels >= DNNLConvolution.minimumBackwardDataChannels ? conv.pass(.backwardData) : nil
    let weights = DNNLConvolution.perImage(geometry, input: conv.input)?.pass(.backwardWeights)
    return (conv.pass(.forward(bias: false))?.implementation ?? "im2col", data?.implementation ?? "im2col",
            weights?.implementation ?? "im2col")
}

/// Drops this thread's oneDNN matmul and convolution primitives, so that the next calls make them again (with the
/// thread count then in effect: oneDNN fixes a primitive's parallel split when it is made). For benchmarks that
/// compare thread counts.
public func dnnlDropPrimitives() {
    DNNLConvolution.perThread.value.convolutions.removeAll()
    DNNLWorkspace.perThread.value.matmuls.removeAll()
}

/// The first error thrown by the chunks of a parallel loop.
final class FirstError: @unchecked Sendable {
    private let lock = Mutex<Error?>(nil)
    func record(_ error: Error) { lock.withLock { if $0 == nil { $0 = error } } }
    var error: Error? { lock.withLock { $0 } }
}
