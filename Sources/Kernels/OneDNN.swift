// OneDNN: a thin typed wrapper over oneDNN's C API (one Swift function per C call, errors naming the call and
// oneDNN's status), the process's CPU engine, a stream per thread, and matmul primitives created once per shape
// and cached per thread with their memory objects and a reused scratchpad.
// Corresponds to what torch's mkldnn matmul path does under `torch.autocast("cpu", dtype=torch.bfloat16)`.
import CDNNL
import Synchronization

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
func check(_ status: dnnl_status_t, _ call: String) throws {
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

    /// Matmuls with fewer output elements than this many per thread run on one thread (see `dnnlGemm`): oneDNN
    /// splits the reduction of a product whose output gives its threads too few blocks (measured: 256×8192ᵀ·8192×64
    /// at 2 threads, 512×4096ᵀ·4096×128 at 4), which a per-thread bound follows.
    static let minimumParallelOutput = 1 << 15

    /// The blocks a packed product is cut into (1: not cut), by its shape alone: 2 for a product whose output is below
    /// 2 threads' `minimumParallelOutput` (so oneDNN's threads ran it at no thread count) with at least two blocks'
    /// work. More blocks measured no faster at 2 threads and slower at 1 (smaller blocks, and an operand copied once per
    /// block; docs/perf.md).
    public static func blocks(m: Int, n: Int, k: Int) -> Int {
        m * n < minimumParallelOutput * 2 && 2 * m * n * k >= minimumBlockWork * 2 && Swift.max(m, n) >= 32 ? 2 : 1
    }

    /// FLOPs of a block of a cut product: ≈ 20 µs of one thread's work, several times a oneDNN call's and a thread
    /// hand-off's overhead.
    static let minimumBlockWork = 1 << 21
}

/// The CPU engine (one per process), one stream per thread, and the lock primitive descriptors are made under.
enum DNNLContext {
    /// Held while a primitive descriptor is made (`primitiveDescriptor`, `reorderDescriptor`): oneDNN 2.6.3 makes
    /// wrong convolutions when an fp32 and a bf16 one's descriptors are made at the same time on two threads (about one
    /// in a thousand, wrong on every call; `OneDNNConvTests.convolutionsMadeConcurrentlyInTwoPrecisions`). Descriptors
    /// are made when a thread first meets a shape (in a precision and thread count; again after its cache is emptied),
    /// so the lock costs nothing measurable; making primitives from descriptors (`dnnl_primitive_create`) and executing
    /// them stay concurrent (measured: no wrong result in 36,000 fresh convolutions made and run on two threads with
    /// only descriptor creation serialized).
    static let creation = Mutex<Void>(())

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
    /// oneDNN's thread count when the primitive is made: it fixes the primitive's split, and must be the count it
    /// runs with.
    var threads: Int
}

/// `dnnl_memory_desc_init_by_tag` with `dnnl_format_tag_any`: the primitive chooses the layout (e.g. blocked
/// convolution weights).
func anyLayoutDescriptor(_ shape: [Int], type: DNNLType) throws -> dnnl_memory_desc_t {
    var md = dnnl_memory_desc_t()
    let d = shape.map(Int64.init)
    try check(dnnl_memory_desc_init_by_tag(&md, Int32(shape.count), d, type.raw, dnnl_format_tag_any),
              "dnnl_memory_desc_init_by_tag")
    return md
}

/// Primitive attributes: a user scratchpad, and `dst = alpha·op + beta·dst` as an output scale and a sum post-op
/// (each only when it is not 1 or 0). The caller destroys the result.
func makeAttributes(alpha: Float = 1, beta: Float = 0) throws -> dnnl_primitive_attr_t {
    var attr: dnnl_primitive_attr_t?
    try check(dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create")
    var complete = false
    defer { if !complete { dnnl_primitive_attr_destroy(attr) } }
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
    complete = true
    return attr!
}

/// A primitive descriptor from an operation descriptor (`dnnl_primitive_desc_create`; `hint` is the forward
/// descriptor a backward one needs). The caller destroys it.
func primitiveDescriptor(_ name: String, desc: UnsafeRawPointer, attributes: dnnl_primitive_attr_t,
                         hint: dnnl_primitive_desc_t? = nil) throws -> dnnl_primitive_desc_t {
    let engine = try DNNLContext.requireEngine()
    var pd: dnnl_primitive_desc_t?
    let status = DNNLContext.creation.withLock { _ in dnnl_primitive_desc_create(&pd, desc, attributes, engine, hint) }
    try check(status, "dnnl_primitive_desc_create(\(name))")
    return pd!
}

/// A reorder's primitive descriptor (`dnnl_reorder_primitive_desc_create`), e.g. OHWI weights to a blocked layout
/// or fp32 to bf16. The caller destroys it.
func reorderDescriptor(from source: dnnl_memory_desc_t, to destination: dnnl_memory_desc_t,
                       attributes: dnnl_primitive_attr_t) throws -> dnnl_primitive_desc_t {
    var src = source, dst = destination
    let engine = try DNNLContext.requireEngine()
    var pd: dnnl_primitive_desc_t?
    let status = DNNLContext.creation.withLock { _ in dnnl_reorder_primitive_desc_create(&pd, &src, engine, &dst, engine, attributes) }
    try check(status, "dnnl_reorder_primitive_desc_create")
    return pd!
}

/// The implementation oneDNN chose (`dnnl_query_impl_info_str`), e.g. "brgconv:avx512_core_bf16" or "ref:any".
func implementation(_ pd: dnnl_primitive_desc_t) -> String {
    var str: UnsafePointer<CChar>?
    guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &str) == dnnl_success, let str else { return "?" }
    return String(cString: str)
}

/// The memory descriptor a primitive descriptor chose for `what` (e.g. `dnnl_query_weights_md`).
func queryDescriptor(_ pd: dnnl_primitive_desc_t, _ what: dnnl_query_t) throws -> dnnl_memory_desc_t {
    guard let md = dnnl_primitive_desc_query_md(pd, what, 0) else {
        throw DNNLError(call: "dnnl_primitive_desc_query_md", status: dnnl_invalid_arguments)
    }
    return md.pointee
}

/// `dnnl_memory_desc_get_size`: bytes of a memory descriptor's data.
func byteCount(_ md: dnnl_memory_desc_t) -> Int {
    var md = md
    return dnnl_memory_desc_get_size(&md)
}

/// `dnnl_memory_desc_equal`.
func sameLayout(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
    var a = a, b = b
    return dnnl_memory_desc_equal(&a, &b) != 0
}

/// A oneDNN primitive with its memory arguments (data handles set per call, in `arguments`' order), a user
/// scratchpad and the process's engine: a matmul, a convolution pass or a reorder.
final class DNNLPrimitive {
    let name: String
    let primitive: dnnl_primitive_t
    let arguments: [Int32]
    let memories: [dnnl_memory_t]
    let scratch: dnnl_memory_t?
    let scratchBytes: Int

    /// From a primitive descriptor (which the caller still owns); `arguments` pairs oneDNN's argument ids with
    /// their memory descriptors.
    init(name: String, descriptor pd: dnnl_primitive_desc_t, arguments args: [(Int32, dnnl_memory_desc_t)]) throws {
        self.name = name
        // Everything created so far is destroyed again if a later call fails (deinit does not run then).
        var p: dnnl_primitive_t?, made: [dnnl_memory_t] = [], complete = false
        defer {
            if !complete {
                if let p { dnnl_primitive_destroy(p) }
                for m in made { dnnl_memory_destroy(m) }
            }
        }
        try check(dnnl_primitive_create(&p, pd), "dnnl_primitive_create(\(name))")
        for (_, md) in args { made.append(try memory(md)) }
        var scratchpadBytes = 0
        // The scratchpad the primitive oneDNN returned books (from its global cache it may come from another thread's
        // descriptor), not what ours asked for: a smaller buffer would be overrun.
        var created: const_dnnl_primitive_desc_t?
        try check(dnnl_primitive_get_primitive_desc(p, &created), "dnnl_primitive_get_primitive_desc(\(name))")
        if let smd = dnnl_primitive_desc_query_md(created, dnnl_query_scratchpad_md, 0), dnnl_memory_desc_get_size(smd) > 0 {
            scratchpadBytes = dnnl_memory_desc_get_size(smd)
            made.append(try memory(smd.pointee))
        }
        primitive = p!
        arguments = args.map(\.0)
        memories = Array(made.prefix(args.count))
        scratch = made.count > args.count ? made[args.count] : nil
        scratchBytes = scratchpadBytes
        complete = true
    }

    /// A primitive of the operation descriptor `desc` (e.g. `dnnl_matmul_desc_t`) with `attributes`.
    convenience init(name: String, desc: UnsafeRawPointer, attributes: dnnl_primitive_attr_t,
                     arguments: [(Int32, dnnl_memory_desc_t)]) throws {
        let pd = try primitiveDescriptor(name, desc: desc, attributes: attributes)
        defer { dnnl_primitive_desc_destroy(pd) }
        try self.init(name: name, descriptor: pd, arguments: arguments)
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        for m in memories { dnnl_memory_destroy(m) }
        if let scratch { dnnl_memory_destroy(scratch) }
    }

    /// `dnnl_primitive_execute` + `dnnl_stream_wait` on this thread's stream with the data at `handles` (one per
    /// argument, in order) and `workspace`'s scratchpad.
    func execute(_ handles: [UnsafeRawPointer], workspace: DNNLWorkspace) throws {
        var args: [dnnl_exec_arg_t] = []
        args.reserveCapacity(handles.count + 1)
        for (i, h) in handles.enumerated() {
            try setHandle(memories[i], h)
            args.append(dnnl_exec_arg_t(arg: arguments[i], memory: memories[i]))
        }
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
    let attributes = try makeAttributes(alpha: Float(bitPattern: key.alpha), beta: Float(bitPattern: key.beta))
    defer { dnnl_primitive_attr_destroy(attributes) }
    return try DNNLPrimitive(name: "matmul", desc: &desc, attributes: attributes,
                             arguments: [(mp_dnnl_arg_src(), aMD), (mp_dnnl_arg_weights(), bMD), (mp_dnnl_arg_dst(), cMD)])
}

/// This thread's matmul primitives and buffers: the bf16 copies of the operands, reordered convolution weights and
/// oneDNN's scratchpad.
final class DNNLWorkspace {
    var matmuls: [MatmulKey: DNNLPrimitive] = [:]
    private let a = GrowingBuffer<UInt16>(), b = GrowingBuffer<UInt16>()
    private let scratch = GrowingBuffer<UInt8>(), weights = GrowingBuffer<UInt8>()

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

    func reserve(a count: Int) -> UnsafeMutablePointer<UInt16> { a.reserve(count) }
    func reserve(b count: Int) -> UnsafeMutablePointer<UInt16> { b.reserve(count) }
    func reserve(scratch bytes: Int) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(scratch.reserve(bytes)) }

    /// Room for one convolution's reordered weights (or its blocked weight gradient).
    func reserve(weights bytes: Int) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(weights.reserve(bytes)) }
}

/// `C = alpha · op(A) · op(B) + beta · C` through oneDNN: fp32 operands as given (`input: .f32`), or converted to
/// bf16 first (`input: .bf16`: `op(A)` and `op(B)` rounded to nearest even and packed, products accumulated in
/// fp32, `C` fp32). Shapes and strides as `sgemm`'s. Throws the failing call (e.g. no bf16 matmul on this CPU).
public func dnnlGemm(input: DNNLType, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
                     c: UnsafeMutablePointer<Float>, ldc: Int) throws {
    // Products with small outputs (per thread) or strided operands do not run on oneDNN's threads: oneDNN splits the
    // reduction of some of them over its threads (a 1×1 convolution's weight gradient over many pixels; the attention
    // scores, whose operands are head slices), which would make results depend on the thread count. The small packed
    // products with enough work (a decoder's 200×256 projections, the matcher's costs) are cut in two by their shape
    // alone, each half a one-thread matmul on one of the rank's threads (in turn on one thread): a half's primitive
    // may sum in another order than the whole product's, so the cut must not follow the thread count. The others
    // were measured bitwise equal at 1, 2 and 4 threads (`bench step --gemm-shapes` re-makes each primitive per thread
    // count and compares), and run on the rank's threads.
    let threads = DNNLThreads.current
    let packed = lda == (transA ? m : k) && ldb == (transB ? k : n) && ldc == n
    let blocks = packed ? DNNLThreads.blocks(m: m, n: n, k: k) : 1
    let serial = threads > 1 && (m * n < DNNLThreads.minimumParallelOutput * threads || !packed)
    let ws = DNNLWorkspace.perThread.value
    var operands = DNNLOperands(input: input, transA: transA, transB: transB, a: UnsafeRawPointer(a), lda: lda,
                                b: UnsafeRawPointer(b), ldb: ldb)
    if input == .bf16 {
        // Stored A is [M, K] (or [K, M] transposed), B is [K, N] (or [N, K]); packed with their row length as stride.
        // A parameter's packed copy comes from the parameter cache (made once per step), anything else is converted.
        let (aRows, aCols) = transA ? (k, m) : (m, k)
        let (bRows, bCols) = transB ? (n, k) : (k, n)
        operands.a = packedBF16(a, rows: aRows, cols: aCols, ld: lda) { ws.reserve(a: $0) }
        operands.b = packedBF16(b, rows: bRows, cols: bCols, ld: ldb) { ws.reserve(b: $0) }
        operands.lda = aCols; operands.ldb = bCols
    }
    if blocks > 1 {
        try splitMatmul(operands, m: m, n: n, k: k, alpha: alpha, beta: beta, c: c, ldc: ldc, blocks: blocks)
        return
    }
    if serial { DNNLThreads.set(1) }
    defer { if serial { DNNLThreads.set(threads) } }
    try operands.matmul(m: m, n: n, k: k, alpha: alpha, beta: beta, c: c, ldc: ldc, workspace: ws)
}

/// A matmul's `A` and `B` as oneDNN reads them (fp32 as given, or packed bf16), with their row strides.
struct DNNLOperands {
    let input: DNNLType
    let transA, transB: Bool
    var a: UnsafeRawPointer, lda: Int
    var b: UnsafeRawPointer, ldb: Int

    /// `C[M, N] = alpha·op(A)·op(B) + beta·C` by this thread's primitive for the shape.
    func matmul(m: Int, n: Int, k: Int, alpha: Float, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                workspace ws: DNNLWorkspace) throws {
        let key = MatmulKey(m: m, n: n, k: k, transA: transA, transB: transB, lda: lda, ldb: ldb, ldc: ldc,
                            alpha: alpha.bitPattern, beta: beta.bitPattern, input: input, threads: DNNLThreads.current)
        try ws.matmul(key).execute([a, b, UnsafeRawPointer(c)], workspace: ws)
    }

    /// Rows `rows` of `op(A)` (and of the product).
    func rows(_ rows: Range<Int>) -> DNNLOperands {
        var o = self
        o.a = a + rows.lowerBound * (transA ? 1 : lda) * elementBytes
        return o
    }

    /// Columns `columns` of `op(B)` (and of the product).
    func columns(_ columns: Range<Int>) -> DNNLOperands {
        var o = self
        o.b = b + columns.lowerBound * (transB ? ldb : 1) * elementBytes
        return o
    }

    var elementBytes: Int { input == .bf16 ? 2 : 4 }
}

/// The product cut into `blocks` blocks of rows (or columns) of `C`, each a one-thread matmul, spread over this rank's
/// threads; the first error any block meets is thrown.
func splitMatmul(_ operands: DNNLOperands, m: Int, n: Int, k: Int, alpha: Float, beta: Float,
                 c: UnsafeMutablePointer<Float>, ldc: Int, blocks: Int) throws {
    // oneDNN copies a transposed A, and a transposed or bf16 B, into its blocked layout on every call: cut the product
    // so that the larger copied operand is cut too, not copied whole by every block; a side shorter than 16 (a
    // matcher cost's 3 targets) is never cut.
    let copiedA = operands.transA ? m : 0, copiedB = operands.transB || operands.input == .bf16 ? n : 0
    let byRows = Swift.min(m, n) < 16 || copiedA == copiedB ? m >= n : copiedA > copiedB
    let length = byRows ? m : n
    let errors = UnsafeMutableBufferPointer<Error?>.allocate(capacity: blocks)
    errors.initialize(repeating: nil)
    defer { errors.deinitialize(); errors.deallocate() }
    parallelChunks(blocks) { block in
        let range = block * length / blocks ..< (block + 1) * length / blocks
        let ws = DNNLWorkspace.perThread.value
        let threads = DNNLThreads.current   // 1 on the loop's threads; the caller's count when the loop runs serially
        if threads != 1 { DNNLThreads.set(1) }
        defer { if threads != 1 { DNNLThreads.set(threads) } }
        do {
            if byRows {
                try operands.rows(range).matmul(m: range.count, n: n, k: k, alpha: alpha, beta: beta,
                                                c: c + range.lowerBound * ldc, ldc: ldc, workspace: ws)
            } else {
                try operands.columns(range).matmul(m: m, n: range.count, k: k, alpha: alpha, beta: beta,
                                                   c: c + range.lowerBound, ldc: ldc, workspace: ws)
            }
        } catch {
            errors[block] = error
        }
    }
    if let error = errors.lazy.compactMap({ $0 }).first { throw error }
}

/// `rows × cols` floats at `source` (row stride `ld`) as packed bf16: the parameter cache's copy when `source` is a
/// parameter inside `withParameterCache`, otherwise converted into `scratch(count)`.
func packedBF16(_ source: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int,
                scratch: (Int) -> UnsafeMutablePointer<UInt16>) -> UnsafeRawPointer {
    let key = ParameterCache.Key(address: UInt(bitPattern: source), kind: 0, a: rows, b: cols, c: ld)
    let sourceBytes = ((rows - 1) * ld + cols) * MemoryLayout<Float>.stride
    if let cached = ParameterCache.perThread.value.copy(key, sourceBytes: sourceBytes, bytes: rows * cols * 2, fill: {
        convertToBF16(rows: rows, cols: cols, source, ld: ld, $0.assumingMemoryBound(to: UInt16.self))
    }) {
        return cached
    }
    let packed = scratch(rows * cols)
    convertToBF16(rows: rows, cols: cols, source, ld: ld, packed)
    return UnsafeRawPointer(packed)
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
