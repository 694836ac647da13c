// Communicator: the collective operations MaskPilot's data parallelism needs, over MPI or a single process.
// Corresponds to torch.distributed's process group (broadcast, all_reduce, all_gather, barrier) as DDP uses it.
import Foundation
import TensorCore

/// A non-blocking all-reduce in flight; `test()` drives it, `wait()` completes it.
public protocol PendingReduction: AnyObject {
    /// Progresses the operation; true once it has completed.
    func test() throws -> Bool
    /// Blocks until completion.
    func wait() throws
}

/// The collectives of one group of ranks. Every call is collective (all ranks call it, in the same order)
/// unless documented otherwise, and stays on the thread that created the communicator.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    func barrier() throws
    /// Rank `root`'s bytes to every rank (`bytes` is overwritten on the others; same count everywhere).
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws
    /// In-place element-wise sum over ranks.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws
    /// Starts an in-place sum over ranks of `values` (which must stay valid until completion).
    func startAllReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws -> any PendingReduction
    /// Every rank's `value`, in rank order.
    func allGather(_ value: UInt64) throws -> [UInt64]
    /// Every rank's string (variable length), in rank order.
    func allGather(_ text: String) throws -> [String]
    /// Every rank's string, in rank order, on `root` only (nil on the other ranks): what only one rank needs,
    /// without a copy of everything on every rank.
    func gather(_ text: String, root: Int) throws -> [String]?
    /// Ends every rank of the job with `code` (not collective; does not return).
    func abort(code: Int32, message: String) -> Never
}

extension Communicator {
    public var isCoordinator: Bool { rank == 0 }

    /// The default rooted gather: an all-gather whose result only `root` keeps (MPICommunicator gathers to the root
    /// alone).
    public func gather(_ text: String, root: Int) throws -> [String]? {
        let all = try allGather(text)
        return rank == root ? all : nil
    }

    /// Broadcasts `value` from `root`.
    public func broadcast(_ value: UInt64, root: Int = 0) throws -> UInt64 {
        var v = value
        try withUnsafeMutableBytes(of: &v) { try broadcast($0, root: root) }
        return v
    }

    /// Broadcasts a tensor's values from `root` (same shape on every rank).
    public func broadcast(_ tensor: Tensor, root: Int = 0) throws {
        try broadcast(UnsafeMutableRawBufferPointer(start: tensor.data, count: tensor.count * 4), root: root)
    }

    /// Broadcasts `[Int]` from `root` (the count is broadcast first).
    public func broadcast(_ values: [Int], root: Int = 0) throws -> [Int] {
        let n = Int(try broadcast(UInt64(values.count), root: root))
        var out = rank == root ? values.map { Int64($0) } : [Int64](repeating: 0, count: n)
        try out.withUnsafeMutableBytes { try broadcast($0, root: root) }
        return out.map { Int($0) }
    }

    /// The sum over ranks of one number.
    public func allReduceSum(_ value: Double) throws -> Double {
        var v = [value]
        try v.withUnsafeMutableBufferPointer { try allReduceSum($0) }
        return v[0]
    }
}

/// World size 1: every collective is the identity.
public final class LocalCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func barrier() throws {}
    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {}
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {}
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {}
    public func startAllReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws -> any PendingReduction { Done() }
    public func allGather(_ value: UInt64) throws -> [UInt64] { [value] }
    public func allGather(_ text: String) throws -> [String] { [text] }
    public func abort(code: Int32, message: String) -> Never {
        writeStandardError("rank 0: \(message)\n")
        exit(code)
    }

    final class Done: PendingReduction {
        func test() throws -> Bool { true }
        func wait() throws {}
    }
}

/// Writes to standard error without buffering.
func writeStandardError(_ text: String) {
    var t = text
    t.withUTF8 { p in _ = write(2, p.baseAddress, p.count) }
}
