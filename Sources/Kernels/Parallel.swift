// Parallel: the intra-op thread layer. A kernel's work is cut into chunks whose boundaries depend on the data size
// only, and the chunks are spread over this rank's compute threads; results never depend on the thread count.
// Corresponds to ATen's at::parallel_for (grain size, OpenMP threads = torch.set_num_threads), made deterministic.
import CDNNL
import Dispatch
import Synchronization

/// The threads a rank's kernels use (the caller's thread included): `ComputeThreads.set` sets it together with the
/// GEMM libraries' counts.
public enum IntraOpThreads {
    fileprivate static let count = Atomic<Int>(1)

    /// Threads used by `parallelFor` on this thread (1 until set; `withIntraOpThreads` overrides it per thread).
    public static var current: Int {
        let override = flag.value.override
        return override > 0 ? override : count.load(ordering: .relaxed)
    }

    public static func set(_ n: Int) { count.store(Swift.max(1, n), ordering: .relaxed) }

    /// Per thread: whether it is running a chunk of a parallel loop (nested loops then run serially on it), and a
    /// thread count overriding the process's (0: none).
    fileprivate final class Flag { var inside = false, override = 0, grainDivisor = 1 }

    /// `grain` as this thread's loops use it (divided by `withIntraOpThreads`' `grainDivisor`, at least 1).
    @inline(__always)
    static func effective(_ grain: Int) -> Int { Swift.max(1, grain / flag.value.grainDivisor) }
    fileprivate static let flag = ThreadLocal { Flag() }
}

/// Runs `body` with this thread's parallel loops on `threads` threads (whatever the process's count), then restores
/// the previous setting. For tests that compare thread counts while other tests run; `grainDivisor` > 1 cuts every
/// loop into that many times more chunks, so that a small model exercises the parallel paths (the cut, and so the
/// result of a chunked sum, then differs from the default's, equally at every thread count).
public func withIntraOpThreads<T>(_ threads: Int, grainDivisor: Int = 1, _ body: () throws -> T) rethrows -> T {
    let flag = IntraOpThreads.flag.value
    let saved = (flag.override, flag.grainDivisor)
    flag.override = Swift.max(1, threads)
    flag.grainDivisor = Swift.max(1, grainDivisor)
    defer { (flag.override, flag.grainDivisor) = saved }
    return try body()
}

/// Runs `body(chunk)` once for every chunk in `0..<chunks`, on up to `IntraOpThreads.current` threads (the caller's
/// among them), and returns when all have run. Which thread runs which chunk varies from call to call, so what a
/// chunk computes must depend on its index only. Inside a chunk, nested calls run serially.
public func parallelChunks(_ chunks: Int, _ body: (Int) -> Void) {
    let threads = Swift.min(IntraOpThreads.current, chunks)
    if threads <= 1 || IntraOpThreads.flag.value.inside {
        for c in 0..<chunks { body(c) }
        return
    }
    withoutActuallyEscaping(body) { body in
        let team = ChunkTeam(chunks: chunks, body: body)
        // On libgomp's threads (those oneDNN's primitives run on, hot after its calls); GCD's otherwise.
        let opaque = Unmanaged.passUnretained(team).toOpaque()
        let ran = mp_omp_parallel({ Unmanaged<ChunkTeam>.fromOpaque($0!).takeUnretainedValue().work() }, opaque, UInt32(threads))
        if ran != 0 {
            let shared = UnsafeSendable(team)
            DispatchQueue.concurrentPerform(iterations: threads) { _ in shared.value.work() }
        }
    }
}

/// The chunks of one parallel loop, handed out one at a time to the threads that run it.
private final class ChunkTeam {
    let chunks: Int
    let body: (Int) -> Void
    let next = Atomic<Int>(0)
    /// The calling thread's GEMM settings, for GEMMs inside chunks that other threads run.
    let settings = GEMMSettings.current
    /// The calling thread's grain divisor (`withIntraOpThreads`), so nested loops cut the same way on every thread.
    let grainDivisor = IntraOpThreads.flag.value.grainDivisor

    init(chunks: Int, body: @escaping (Int) -> Void) {
        self.chunks = chunks
        self.body = body
    }

    /// Runs chunks until none is left, with nested loops serial on this thread and the caller's GEMM settings.
    func work() {
        let flag = IntraOpThreads.flag.value
        let saved = (flag.inside, flag.grainDivisor)
        (flag.inside, flag.grainDivisor) = (true, grainDivisor)
        // oneDNN calls inside a chunk run on one thread (OpenMP does not nest); its primitives are made with that
        // count too, so that they are made and run alike.
        let dnnlThreads = DNNLThreads.current
        if dnnlThreads != 1 { DNNLThreads.set(1) }
        defer {
            (flag.inside, flag.grainDivisor) = saved
            if dnnlThreads != 1 { DNNLThreads.set(dnnlThreads) }
        }
        settings.apply {
            while true {
                let c = next.add(1, ordering: .relaxed).oldValue
                if c >= chunks { break }
                body(c)
            }
        }
    }
}

/// Runs `body(range)` over `0..<count` cut into chunks of `grain` elements (the last one shorter): the cut depends on
/// `count` and `grain` only, never on the thread count. Serial (one call with `0..<count`) when `count ≤ grain`.
/// `grain` is the smallest amount of work worth a thread hand-off (tens of microseconds).
public func parallelFor(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
    if count <= 0 { return }
    runChunks(count, grain: IntraOpThreads.effective(grain), body)
}

/// `parallelFor` with `grain` taken as given.
private func runChunks(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
    if count <= grain || IntraOpThreads.current <= 1 {
        // The same cut as in parallel, so that results do not depend on the thread count even where a chunk's
        // result depends on its range (e.g. partial sums).
        var start = 0
        while start < count { body(start ..< Swift.min(start + grain, count)); start += grain }
        return
    }
    parallelChunks((count + grain - 1) / grain) { c in
        body(c * grain ..< Swift.min((c + 1) * grain, count))
    }
}

/// Elements per chunk of an elementwise loop: 32 Ki floats (128 KiB, ≈ 5–15 µs of memory traffic), several times a
/// thread hand-off.
public let elementwiseGrain = 1 << 15

/// Rows per chunk for row-wise kernels whose rows hold `rowLength` elements (about `elementwiseGrain` elements a chunk).
@inline(__always)
public func rowGrain(_ rowLength: Int) -> Int { Swift.max(1, elementwiseGrain / Swift.max(1, rowLength)) }

/// Column sums over rows, in parallel and independent of the thread count: `rows` are cut into chunks of `grain`,
/// `accumulate(range, partial)` adds its rows into its chunk's zeroed `columns` Doubles, and the chunks' partials are
/// added into `total` (`columns` Doubles, zeroed here) in chunk order.
public func parallelColumnSums(rows: Int, columns: Int, grain: Int, into total: UnsafeMutablePointer<Double>,
                               _ accumulate: (Range<Int>, UnsafeMutablePointer<Double>) -> Void) {
    total.update(repeating: 0, count: columns)
    if rows <= 0 { return }
    let grain = IntraOpThreads.effective(grain)
    let chunks = (rows + grain - 1) / grain
    if chunks == 1 { accumulate(0 ..< rows, total); return }
    let partials = UnsafeMutablePointer<Double>.allocate(capacity: chunks * columns)
    defer { partials.deallocate() }
    partials.update(repeating: 0, count: chunks * columns)
    runChunks(rows, grain: grain) { r in accumulate(r, partials + (r.lowerBound / grain) * columns) }
    for c in 0..<chunks {
        let p = partials + c * columns
        for j in 0..<columns { total[j] += p[j] }
    }
}

/// Sums `part(range)` over the chunks of `parallelFor(count, grain:)`, combining the chunks' partial sums in chunk
/// order (so the result is the same at any thread count).
public func parallelSum(_ count: Int, grain: Int, _ part: (Range<Int>) -> Double) -> Double {
    if count <= 0 { return 0 }
    let grain = IntraOpThreads.effective(grain)
    let chunks = (count + grain - 1) / grain
    let partials = UnsafeMutableBufferPointer<Double>.allocate(capacity: chunks)
    defer { partials.deallocate() }
    runChunks(count, grain: grain) { r in partials[r.lowerBound / grain] = part(r) }
    var total = 0.0
    for p in partials { total += p }
    return total
}

/// A value handed to the chunks of one parallel loop, which all finish before the loop returns.
private struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
