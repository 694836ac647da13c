// Storage: the float32 buffers under every Tensor, 64-byte aligned, optionally a view into a larger one.
// Corresponds to torch.UntypedStorage; views are how parameters live inside one flat buffer.
import Foundation
import Synchronization

/// A contiguous float32 buffer. A view (`slice`) shares memory with, and keeps alive, its owner.
public final class Storage: @unchecked Sendable {
    /// First element.
    public let base: UnsafeMutablePointer<Float>
    /// Number of elements.
    public let count: Int
    private let owner: Storage?

    /// Allocates `count` uninitialized floats (64-byte aligned).
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "negative storage size \(count)")
        let raw = BufferCache.shared.allocate(bytes: max(count, 1) * MemoryLayout<Float>.stride)
        self.base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        self.owner = nil
    }

    /// Allocates `count` floats set to zero.
    public convenience init(zeroedCount count: Int) {
        self.init(uninitializedCount: count)
        if count > 0 { memset(base, 0, count * MemoryLayout<Float>.stride) }
    }

    /// A view of `count` elements of `parent` starting at `offset`.
    public init(viewOf parent: Storage, offset: Int, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset + count <= parent.count,
                     "storage view \(offset)..<\(offset + count) outside 0..<\(parent.count)")
        self.base = parent.base + offset
        self.count = count
        self.owner = parent
    }

    deinit {
        if owner == nil { BufferCache.shared.release(UnsafeMutableRawPointer(base), bytes: max(count, 1) * MemoryLayout<Float>.stride) }
    }

    /// The elements as a buffer pointer.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }
}

/// A cache of freed large buffers, bucketed by size rounded up to whole pages.
///
/// A training step allocates the same activation sizes every iteration. Without a cache each large
/// buffer is a fresh `mmap` whose pages fault on first touch, which halves the bandwidth of
/// elementwise ops; with it, the next step reuses warm memory. Buffers under 64 KiB go straight to
/// `malloc`. At most `limitBytes` are kept; `trim()` returns everything to the system.
public final class BufferCache: Sendable {
    public static let shared = BufferCache()

    private struct State {
        var free: [Int: [Int]] = [:]   // rounded size → addresses
        var cachedBytes = 0
        /// Every large buffer handed out and not yet released: a buffer released twice, or handed out while it is
        /// still out, would be shared by two tensors from then on (silently wrong numbers); it stops the process instead.
        var outstanding = Set<Int>()

        mutating func handOut(_ address: Int, size: Int) {
            guard outstanding.insert(address).inserted else {
                fatalError("BufferCache: the buffer at 0x\(String(address, radix: 16)) (\(size) bytes) was handed out while "
                           + "still in use: two tensors would share it (memory corruption)")
            }
        }
    }
    private let state = Mutex(State())
    private static let pageBytes = 4096
    private static let minCachedBytes = 64 * 1024
    /// Upper bound of bytes kept for reuse (default: a quarter of physical memory).
    public let limitBytes: Int

    init() {
        limitBytes = physicalMemoryBytes() / 4
    }

    @inline(__always) private static func rounded(_ bytes: Int) -> Int {
        bytes < minCachedBytes ? bytes : (bytes + pageBytes - 1) / pageBytes * pageBytes
    }

    /// 64-byte-aligned memory of at least `bytes` bytes.
    public func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        let size = BufferCache.rounded(bytes)
        if size >= BufferCache.minCachedBytes {
            let hit: Int? = state.withLock { s in
                guard var list = s.free[size], let address = list.popLast() else { return nil }
                s.free[size] = list.isEmpty ? nil : list
                s.cachedBytes -= size
                s.handOut(address, size: size)
                return address
            }
            if let hit, let p = UnsafeMutableRawPointer(bitPattern: hit) { return p }
        }
        var raw: UnsafeMutableRawPointer?
        let status = posix_memalign(&raw, 64, size)
        guard status == 0, let raw else { fatalError("out of memory: could not allocate \(size) bytes") }
        if size >= BufferCache.minCachedBytes { state.withLock { $0.handOut(Int(bitPattern: raw), size: size) } }
        return raw
    }

    /// Returns memory obtained from `allocate(bytes:)` with the same `bytes`.
    public func release(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        let size = BufferCache.rounded(bytes)
        if size >= BufferCache.minCachedBytes {
            let address = Int(bitPattern: pointer)
            let kept: Bool = state.withLock { s in
                guard s.outstanding.remove(address) != nil else {
                    fatalError("BufferCache: the buffer at 0x\(String(address, radix: 16)) (\(size) bytes) was released twice or "
                               + "never handed out: two tensors shared it (memory corruption)")
                }
                guard s.cachedBytes + size <= limitBytes else { return false }
                s.free[size, default: []].append(address)
                s.cachedBytes += size
                return true
            }
            if kept { return }
        }
        free(pointer)
    }

    /// Bytes currently held for reuse.
    public var cachedBytes: Int { state.withLock { $0.cachedBytes } }

    /// Frees every cached buffer.
    public func trim() {
        let addresses: [Int] = state.withLock { s in
            let all = s.free.values.flatMap { $0 }
            s.free = [:]; s.cachedBytes = 0
            return all
        }
        for a in addresses { free(UnsafeMutableRawPointer(bitPattern: a)) }
    }
}
