// OneDNN: a thin typed wrapper over oneDNN's C API (one Swift function per C call, errors naming the call and
// oneDNN's status), the process's CPU engine, a stream per thread, and matmul primitives created once per shape
// and cached per thread with their memory objects and a reused scratchpad.
// Corresponds to what torch's mkldnn matmul path does under `torch.autocast("cpu", dtype=torch.bfloat16)`.
import CDNNL

/// A oneDNN call that failed: the call's name and oneDNN's status.
public struct DNNLError: Error, CustomStringConvertible {
    public var call: String
    public var status: dnnl_status_t

    public var description: String {
        let name: String
        switch status {
        case dnnl_out_of_memory: name = "out of memory"
        case dnnl_invalid_arguments: name = "invalid arguments"
        case dnnl_unimplemented: name = "unimplemented (no implementation for these data types on this CPU)"
        case dnnl_runtime_error: name = "runtime error"
        default: name = "status \(status.rawValue)"
        }
        return "oneDNN \(call) failed: \(name)"
    }
}

@inline(__always)
private func check(_ status: dnnl_status_t, _ call: String) throws {
    if status != dnnl_success { throw DNNLError(call: call, status: status) }
}

/// oneDNN's data types as MaskPilot uses them.
public enum DNNLType: Sendable, Hashable {
    case f32, bf16
    var raw: dnnl_data_type_t { self == .f32 ? dnnl_f32 : dnnl_bf16 }
}

/// Thread count of oneDNN (its OpenMP runtime).
public enum DNNLThreads {
    /// Sets the OpenMP thread count of this thread's oneDNN calls (ignored if libgomp cannot be found).
    public static func set(_ n: Int) { _ = mp_dnnl_set_threads(Int32(max(1, n))) }
    public static var current: Int { Int(mp_dnnl_get_threads()) }
}

/// The CPU engine (one per process) and one stream per thread.
enum DNNLContext {
    /// The engine, or the status creating it failed with.
    nonisolated(unsafe) static let created: (engine: dnnl_engine_t?, status: dnnl_status_t) = {
        var e: dnnl_engine_t?
        let status = dnnl_engine_create(&e, dnnl_cpu, 0)
        return (status == dnnl_success ? e : nil, status)
    }()
    static var engine: dnnl_engine_t? { created.engine }

    /// The engine, or the error creating it named with oneDNN's status.
    static func requireEngine() throws -> dnnl_engine_t {
        guard let engine else { throw DNNLError(call: "dnnl_engine_create", status: created.status) }
        return engine
    }

    final class Stream {
        let stream: dnnl_stream_t?
        init() {
            var s: dnnl_stream_t?
            if let engine = DNNLContext.engine, dnnl_stream_create(&s, engine, UInt32(dnnl_stream_default_flags.rawValue)) == dnnl_success {
                stream = s
            } else {
                stream = nil
            }
        }
        deinit { if let stream { dnnl_stream_destroy(stream) } }
    }
    static let streams = ThreadLocal { Stream() }

    static func stream() throws -> dnnl_stream_t {
        guard let s = streams.value.stream else { throw DNNLError(call: "dnnl_stream_create", status: dnnl_runtime_error) }
        return s
    }
}

/// `dnnl_memory_desc_init_by_strides` (the dims and strides go as C arrays of Int64).
func memoryDescriptor(_ shape: [Int], strides: [Int], type: DNNLType) throws -> dnnl_memory_desc_t {
    var md = dnnl_memory_desc_t()
    let d = shape.map(Int64.init), s = strides.map(Int64.init)
    try check(dnnl_memory_desc_init_by_strides(&md, Int32(shape.count), d, type.raw, s), "dnnl_memory_desc_init_by_strides")
    return md
}

/// `dnnl_memory_create` without a data handle (set before each execution).
func memory(_ md: dnnl_memory_desc_t) throws -> dnnl_memory_t {
    var md = md
    var m: dnnl_memory_t?
    try check(dnnl_memory_create(&m, &md, try DNNLContext.requireEngine(), nil), "dnnl_memory_create")
    return m!
}

/// `dnnl_memory_set_data_handle`.
@inline(__always)
func setHandle(_ m: dnnl_memory_t, _ p: UnsafeRawPointer) throws {
    try check(dnnl_memory_set_data_handle(m, UnsafeMutableRawPointer(mutating: p)), "dnnl_memory_set_data_handle")
}

/// Everything that fixes a matmul primitive.
struct MatmulKey: Hashable {
    var m, n, k: Int
    var transA, transB: Bool
    var lda, ldb, ldc: Int
    var alpha, beta: UInt32   // bit patterns
    var input: DNNLType
}

/// A oneDNN primitive with one source, one weights and one destination memory (handles set per call), a user
/// scratchpad and the process's engine (the matmul today; a convolution would be another descriptor). The
/// attributes give `dst = alpha·op(src, weights) + beta·dst` (output scale and sum post-op only when they are not 1
/// and 0).
final class DNNLPrimitive {
    let name: String
    let primitive: dnnl_primitive_t
    let src, weights, dst: dnnl_memory_t
    let scratch: dnnl_memory_t?
    let scratchBytes: Int

    /// `desc` is the operation descriptor (e.g. `dnnl_matmul_desc_t`) built on the three memory descriptors.
    init(name: String, desc: UnsafeRawPointer, src srcMD: dnnl_memory_desc_t, weights weightsMD: dnnl_memory_desc_t,
         dst dstMD: dnnl_memory_desc_t, alpha: Float = 1, beta: Float = 0) throws {
        let engine = try DNNLContext.requireEngine()
        self.name = name
        var attr: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(attr) }
        try check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "dnnl_primitive_attr_set_scratchpad_mode")
        var alpha = alpha
        if alpha != 1 {
            try check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha), "dnnl_primitive_attr_set_output_scales")
        }
        if beta != 0 {
            var ops: dnnl_post_ops_t?
            try check(dnnl_post_ops_create(&ops), "dnnl_post_ops_create")
            defer { dnnl_post_ops_destroy(ops) }
            try check(dnnl_post_ops_append_sum(ops, beta), "dnnl_post_ops_append_sum")
            try check(dnnl_primitive_attr_set_post_ops(attr, ops), "dnnl_primitive_attr_set_post_ops")
        }
        var pd: dnnl_primitive_desc_t?
        try check(dnnl_primitive_desc_create(&pd, desc, attr, engine, nil), "dnnl_primitive_desc_create(\(name))")
        defer { dnnl_primitive_desc_destroy(pd) }
        // Everything created so far is destroyed again if a later call fails (deinit does not run then).
        var p: dnnl_primitive_t?, made: [dnnl_memory_t] = [], complete = false
        defer {
            if !complete {
                if let p { dnnl_primitive_destroy(p) }
                for m in made { dnnl_memory_destroy(m) }
            }
        }
        try check(dnnl_primitive_create(&p, pd), "dnnl_primitive_create(\(name))")
        for md in [srcMD, weightsMD, dstMD] { made.append(try memory(md)) }
        var scratchpadBytes = 0
        if let smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), dnnl_memory_desc_get_size(smd) > 0 {
            scratchpadBytes = dnnl_memory_desc_get_size(smd)
            made.append(try memory(smd.pointee))
        }
        primitive = p!
        src = made[0]; weights = made[1]; dst = made[2]
        scratch = made.count > 3 ? made[3] : nil
        scratchBytes = scratchpadBytes
        complete = true
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_memory_destroy(src); dnnl_memory_destroy(weights); dnnl_memory_destroy(dst)
        if let scratch { dnnl_memory_destroy(scratch) }
    }

    /// `dnnl_primitive_execute` + `dnnl_stream_wait` on this thread's stream, with `workspace`'s scratchpad.
    func execute(src ps: UnsafeRawPointer, weights pw: UnsafeRawPointer, dst pd: UnsafeMutableRawPointer,
                 workspace: DNNLWorkspace) throws {
        try setHandle(src, ps); try setHandle(weights, pw); try setHandle(dst, pd)
        var args = [dnnl_exec_arg_t(arg: mp_dnnl_arg_src(), memory: src), dnnl_exec_arg_t(arg: mp_dnnl_arg_weights(), memory: weights),
                    dnnl_exec_arg_t(arg: mp_dnnl_arg_dst(), memory: dst)]
        if let scratch {
            try setHandle(scratch, workspace.reserve(scratch: scratchBytes))
            args.append(dnnl_exec_arg_t(arg: mp_dnnl_arg_scratchpad(), memory: scratch))
        }
        let stream = try DNNLContext.stream()
        try check(dnnl_primitive_execute(primitive, stream, Int32(args.count), &args), "dnnl_primitive_execute(\(name))")
        try check(dnnl_stream_wait(stream), "dnnl_stream_wait")
    }
}

/// The matmul `C[M, N] = alpha·op(A)[M, K]·op(B)[K, N] + beta·C`, row-major with the given row strides (a
/// transposed operand is described by swapped strides, never copied).
func makeMatmul(_ key: MatmulKey) throws -> DNNLPrimitive {
    var aMD = try memoryDescriptor([key.m, key.k], strides: key.transA ? [1, key.lda] : [key.lda, 1], type: key.input)
    var bMD = try memoryDescriptor([key.k, key.n], strides: key.transB ? [1, key.ldb] : [key.ldb, 1], type: key.input)
    var cMD = try memoryDescriptor([key.m, key.n], strides: [key.ldc, 1], type: .f32)
    var desc = dnnl_matmul_desc_t()
    try check(dnnl_matmul_desc_init(&desc, &aMD, &bMD, nil, &cMD), "dnnl_matmul_desc_init")
    return try DNNLPrimitive(name: "matmul", desc: &desc, src: aMD, weights: bMD, dst: cMD,
                             alpha: Float(bitPattern: key.alpha), beta: Float(bitPattern: key.beta))
}

/// This thread's matmul primitives and buffers: the bf16 copies of the operands and oneDNN's scratchpad.
final class DNNLWorkspace {
    var matmuls: [MatmulKey: DNNLPrimitive] = [:]
    private(set) var a = UnsafeMutablePointer<UInt16>.allocate(capacity: 0), aCapacity = 0
    private(set) var b = UnsafeMutablePointer<UInt16>.allocate(capacity: 0), bCapacity = 0
    private(set) var scratch = UnsafeMutableRawPointer.allocate(byteCount: 0, alignment: 64), scratchCapacity = 0

    static let perThread = ThreadLocal { DNNLWorkspace() }

    /// Primitives kept per thread before the cache starts over (evaluation at many image sizes would otherwise
    /// keep adding shapes; oneDNN's own primitive cache, 1024 entries, makes re-creating one cheap).
    static let capacity = 1024

    func matmul(_ key: MatmulKey) throws -> DNNLPrimitive {
        if let m = matmuls[key] { return m }
        if matmuls.count >= Self.capacity { matmuls.removeAll() }
        let m = try makeMatmul(key)
        matmuls[key] = m
        return m
    }

    func reserve(a count: Int) -> UnsafeMutablePointer<UInt16> {
        if count > aCapacity { a.deallocate(); a = .allocate(capacity: count); aCapacity = count }
        return a
    }
    func reserve(b count: Int) -> UnsafeMutablePointer<UInt16> {
        if count > bCapacity { b.deallocate(); b = .allocate(capacity: count); bCapacity = count }
        return b
    }
    func reserve(scratch bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > scratchCapacity {
            scratch.deallocate(); scratch = .allocate(byteCount: bytes, alignment: 64); scratchCapacity = bytes
        }
        return scratch
    }

    deinit { a.deallocate(); b.deallocate(); scratch.deallocate() }
}

/// `C = alpha · op(A) · op(B) + beta · C` through oneDNN: fp32 operands as given (`input: .f32`), or converted to
/// bf16 first (`input: .bf16`: `op(A)` and `op(B)` rounded to nearest even and packed, products accumulated in
/// fp32, `C` fp32). Shapes and strides as `sgemm`'s. Throws the failing call (e.g. no bf16 matmul on this CPU).
public func dnnlGemm(input: DNNLType, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
                     c: UnsafeMutablePointer<Float>, ldc: Int) throws {
    let ws = DNNLWorkspace.perThread.value
    var key = MatmulKey(m: m, n: n, k: k, transA: transA, transB: transB, lda: lda, ldb: ldb, ldc: ldc,
                        alpha: alpha.bitPattern, beta: beta.bitPattern, input: input)
    let pa: UnsafeRawPointer, pb: UnsafeRawPointer
    if input == .bf16 {
        // Stored A is [M, K] (or [K, M] transposed), B is [K, N] (or [N, K]); packed with their row length as stride.
        let (aRows, aCols) = transA ? (k, m) : (m, k)
        let (bRows, bCols) = transB ? (n, k) : (k, n)
        let a16 = ws.reserve(a: aRows * aCols), b16 = ws.reserve(b: bRows * bCols)
        convertToBF16(rows: aRows, cols: aCols, a, ld: lda, a16)
        convertToBF16(rows: bRows, cols: bCols, b, ld: ldb, b16)
        key.lda = aCols; key.ldb = bCols
        pa = UnsafeRawPointer(a16); pb = UnsafeRawPointer(b16)
    } else {
        pa = UnsafeRawPointer(a); pb = UnsafeRawPointer(b)
    }
    try ws.matmul(key).execute(src: pa, weights: pb, dst: UnsafeMutableRawPointer(c), workspace: ws)
}

/// oneDNN's version and the instruction set it dispatches to, e.g. "oneDNN 2.6.3 (avx512_core_bf16)".
public func dnnlDescription() -> String {
    let v = dnnl_version().pointee
    let isa: String
    switch dnnl_get_effective_cpu_isa() {
    case dnnl_cpu_isa_avx512_core_amx: isa = "avx512_core_amx"
    case dnnl_cpu_isa_avx512_core_bf16: isa = "avx512_core_bf16"
    case dnnl_cpu_isa_avx512_core_vnni: isa = "avx512_core_vnni"
    case dnnl_cpu_isa_avx512_core: isa = "avx512_core"
    case dnnl_cpu_isa_avx2_vnni: isa = "avx2_vnni"
    case dnnl_cpu_isa_avx2: isa = "avx2"
    default: isa = "isa \(dnnl_get_effective_cpu_isa().rawValue)"
    }
    return "oneDNN \(v.major).\(v.minor).\(v.patch) (\(isa))"
}
