// MPICommunicator: the Communicator protocol over MPI_COMM_WORLD (Open MPI), errors returned and thrown.
// Corresponds to torch.distributed's MPI process group (init_process_group("mpi"), broadcast, all_reduce, all_gather).
import CMPI
import Foundation
import TensorCore

/// A failed MPI call: the call's name, its error code and MPI's own message for it.
public struct DistributedError: Error, Sendable, CustomStringConvertible {
    public var call: String
    public var code: Int32
    public var message: String

    public init(call: String, code: Int32, message: String) {
        self.call = call; self.code = code; self.message = message
    }

    public var description: String { "\(call) failed (error \(code)): \(message)" }
}

/// MPI's text for an error code (`MPI_Error_string`).
func mpiErrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(mp_mpi_max_error_string()) + 1)
    var length: Int32 = 0
    guard MPI_Error_string(code, &buffer, &length) == mp_mpi_success() else { return "unknown MPI error" }
    let bytes = buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Throws a `DistributedError` naming `call` unless `code` is MPI_SUCCESS.
@inline(__always) func mpiCheck(_ code: Int32, _ call: @autoclosure () -> String) throws {
    if code != mp_mpi_success() {
        throw DistributedError(call: call(), code: code, message: mpiErrorString(code))
    }
}

/// `call` (an MPI call made once MPI is initialised, given as the code it returns) on the thread that initialised MPI,
/// its error thrown as a `DistributedError` naming it. `MPI_THREAD_FUNNELED` allows MPI calls from that thread only;
/// from any other `call` is not made and the error says so (it would be undefined behaviour: a collective could match
/// another rank's different call).
@inline(__always) func mpiFunneled(_ code: @autoclosure () -> Int32, _ call: @autoclosure () -> String) throws {
    var isMain: Int32 = 0
    try mpiCheck(MPI_Is_thread_main(&isMain), "MPI_Is_thread_main")
    guard isMain != 0 else {
        throw DistributedError(call: call(), code: -1,
                               message: "called from a thread other than the one that initialised MPI (MPI_THREAD_FUNNELED: only that thread makes MPI calls)")
    }
    try mpiCheck(code(), call())
}

/// The processes of `MPI_COMM_WORLD`. MPI is initialised once per process (`MPI_Init_thread` with
/// `MPI_THREAD_FUNNELED`: only the thread that created the communicator makes MPI calls) by `shared()`,
/// and finalised at process exit (or earlier by `finalize()`). Errors are returned, not fatal
/// (`MPI_ERRORS_RETURN`), and thrown as `DistributedError`; so is a call from another thread, which is refused before
/// it reaches MPI (`abort` alone may be called from any thread).
///
/// Buffers larger than `Int32.max` elements are sent in chunks by the blocking calls; a non-blocking
/// all-reduce takes at most `Int32.max` elements.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    let comm: MPI_Comm

    nonisolated(unsafe) private static var instance: MPICommunicator?
    private static let instanceLock = NSLock()

    /// The process's communicator over `MPI_COMM_WORLD`, initialising MPI on first use.
    public static func shared() throws -> MPICommunicator {
        instanceLock.lock()
        defer { instanceLock.unlock() }
        if let instance { return instance }
        let made = try MPICommunicator()
        instance = made
        return made
    }

    /// True when this process was started by an MPI launcher (mpirun / srun), judged from the launcher's
    /// variables in `environment` (`OMPI_COMM_WORLD_SIZE`, `PMI_SIZE` or `PMIX_RANK`; the process's own by
    /// default), without initialising MPI: lets a CLI run alone with a `LocalCommunicator`.
    public static func launchedUnderMPI(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].contains { environment[$0] != nil }
    }

    /// The MPI library's own version line (`MPI_Get_library_version`, callable before `MPI_Init`), e.g.
    /// "Open MPI v4.1.4, package: Debian OpenMPI, …": its first line.
    public static func libraryVersion() throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(mp_mpi_max_library_version_string()) + 1)
        var length: Int32 = 0
        try mpiCheck(MPI_Get_library_version(&buffer, &length), "MPI_Get_library_version")
        // Up to the first NUL (the reported length may count it).
        let text = String(decoding: buffer.prefix(max(0, min(Int(length), buffer.count - 1))).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                          as: UTF8.self)
        return text.split(separator: "\n").first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? text
    }

    private init() throws {
        var initialized: Int32 = 0
        try mpiCheck(MPI_Initialized(&initialized), "MPI_Initialized")
        if initialized == 0 {
            // Open MPI's non-blocking all-reduce (libnbc) picks recursive doubling for large messages, about
            // half the blocking call's bandwidth; the ring runs at the blocking call's speed (measured by
            // `maskpilot bench allreduce`) and gives every rank the same sums. An explicit setting wins.
            setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0)
            var provided: Int32 = 0
            let code = MPI_Init_thread(nil, nil, mp_mpi_thread_funneled(), &provided)
            try mpiCheck(code, "MPI_Init_thread")
            if provided < mp_mpi_thread_funneled() {
                throw DistributedError(call: "MPI_Init_thread", code: 0,
                                       message: "thread level \(provided) provided, MPI_THREAD_FUNNELED needed")
            }
            atexit { MPICommunicator.finalizeIfNeeded() }
        }
        comm = mp_mpi_comm_world()
        try mpiCheck(MPI_Comm_set_errhandler(comm, mp_mpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try mpiCheck(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try mpiCheck(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
    }

    /// Ends MPI for this process (`MPI_Finalize`; collective). Idempotent; also runs at exit.
    /// No communicator call may follow.
    public func finalize() throws {
        var finalized: Int32 = 0
        try mpiCheck(MPI_Finalized(&finalized), "MPI_Finalized")
        if finalized == 0 { try mpiFunneled(MPI_Finalize(), "MPI_Finalize") }
    }

    static func finalizeIfNeeded() {
        var initialized: Int32 = 0, finalized: Int32 = 0
        MPI_Initialized(&initialized)
        MPI_Finalized(&finalized)
        if initialized != 0 && finalized == 0 { MPI_Finalize() }
    }

    /// The largest element count one MPI call takes.
    static let maxChunk = Int(Int32.max)

    public func barrier() throws {
        try mpiFunneled(MPI_Barrier(comm), "MPI_Barrier")
    }

    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var offset = 0
        while offset < bytes.count {
            let n = min(Self.maxChunk, bytes.count - offset)
            try mpiFunneled(MPI_Bcast(base + offset, Int32(n), mp_mpi_byte(), Int32(root), comm),
                         "MPI_Bcast(\(n) bytes from rank \(root))")
            offset += n
        }
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = values.baseAddress, values.count > 0 else { return }
        var offset = 0
        while offset < values.count {
            let n = min(Self.maxChunk, values.count - offset)
            try mpiFunneled(MPI_Allreduce(mp_mpi_in_place(), base + offset, Int32(n), mp_mpi_float(), mp_mpi_sum(), comm),
                         "MPI_Allreduce(\(n) floats)")
            offset += n
        }
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {
        guard let base = values.baseAddress, values.count > 0 else { return }
        var offset = 0
        while offset < values.count {
            let n = min(Self.maxChunk, values.count - offset)
            try mpiFunneled(MPI_Allreduce(mp_mpi_in_place(), base + offset, Int32(n), mp_mpi_double(), mp_mpi_sum(), comm),
                         "MPI_Allreduce(\(n) doubles)")
            offset += n
        }
    }

    public func startAllReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws -> any PendingReduction {
        precondition(values.count <= Self.maxChunk, "non-blocking all-reduce of \(values.count) elements (limit Int32.max)")
        let pending = Request(count: values.count)
        try mpiFunneled(MPI_Iallreduce(mp_mpi_in_place(), values.baseAddress, Int32(values.count), mp_mpi_float(),
                                    mp_mpi_sum(), comm, &pending.request),
                     "MPI_Iallreduce(\(values.count) floats)")
        pending.active = true
        return pending
    }

    public func allGather(_ value: UInt64) throws -> [UInt64] {
        var send = value
        var out = [UInt64](repeating: 0, count: size)
        try out.withUnsafeMutableBufferPointer { buf in
            try mpiFunneled(MPI_Allgather(&send, 1, mp_mpi_uint64(), buf.baseAddress, 1, mp_mpi_uint64(), comm),
                         "MPI_Allgather(UInt64)")
        }
        return out
    }

    public func allGather(_ text: String) throws -> [String] {
        try gatherStrings(text, call: "MPI_Allgatherv(strings)", receives: true) { send, count, receive, counts, displacements in
            MPI_Allgatherv(send, count, mp_mpi_byte(), receive, counts, displacements, mp_mpi_byte(), comm)
        }!
    }

    public func gather(_ text: String, root: Int) throws -> [String]? {
        try gatherStrings(text, call: "MPI_Gatherv(strings)", receives: rank == root) { send, count, receive, counts, displacements in
            MPI_Gatherv(send, count, mp_mpi_byte(), receive, counts, displacements, mp_mpi_byte(), Int32(root), comm)
        }
    }

    /// The variable-length string gathers: every rank learns every length first (one small all-gather), so all of
    /// them refuse an oversized gather together (MPI counts are Int32) instead of some ranks waiting in the
    /// collective; then `exchange` moves the bytes (send buffer, send count, receive buffer, counts, displacements).
    /// Returns the strings in rank order where `receives`, else nil.
    private func gatherStrings(_ text: String, call: String, receives: Bool,
                               _ exchange: (UnsafeRawPointer, Int32, UnsafeMutableRawPointer, UnsafePointer<Int32>,
                                            UnsafePointer<Int32>) -> Int32) throws -> [String]? {
        var bytes = Array(text.utf8)
        let lengths64 = try allGather(UInt64(bytes.count))
        let total = Int(lengths64.reduce(0, +))
        guard total <= Self.maxChunk else {
            throw DistributedError(call: call, code: -1,
                                   message: "the ranks' strings total \(total) bytes, more than MPI's Int32 counts allow (\(lengths64.map(String.init).joined(separator: ", ")) per rank)")
        }
        let lengths = lengths64.map { Int32($0) }
        var displacements = [Int32](repeating: 0, count: size)
        for r in 1..<max(size, 1) { displacements[r] = displacements[r - 1] + lengths[r - 1] }
        var all = [UInt8](repeating: 0, count: receives ? max(total, 1) : 1)
        let count = Int32(bytes.count)
        if bytes.isEmpty { bytes = [0] }   // a valid pointer; zero bytes are sent
        try mpiFunneled(exchange(&bytes, count, &all, lengths, displacements), call)
        guard receives else { return nil }
        return (0..<size).map { r in
            let start = Int(displacements[r])
            return String(decoding: all[start ..< start + Int(lengths[r])], as: UTF8.self)
        }
    }

    public func abort(code: Int32, message: String) -> Never {
        writeStandardError("rank \(rank): \(message)\n")
        MPI_Abort(comm, code)
        exit(code)
    }

    /// A non-blocking all-reduce: `MPI_Test` / `MPI_Wait` on its request.
    final class Request: PendingReduction {
        var request: MPI_Request? = mp_mpi_request_null()
        var active = false
        let count: Int

        init(count: Int) { self.count = count }

        func test() throws -> Bool {
            guard active else { return true }
            var done: Int32 = 0
            try mpiFunneled(MPI_Test(&request, &done, mp_mpi_status_ignore()), "MPI_Test(all-reduce of \(count) floats)")
            if done != 0 { active = false }
            return done != 0
        }

        func wait() throws {
            guard active else { return }
            try mpiFunneled(MPI_Wait(&request, mp_mpi_status_ignore()), "MPI_Wait(all-reduce of \(count) floats)")
            active = false
        }

        /// An abandoned reduction is completed before its request goes away (its buffer must still be valid).
        deinit {
            if active { MPI_Wait(&request, mp_mpi_status_ignore()) }
        }
    }
}
