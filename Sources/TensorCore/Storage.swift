// Storage: the float32 buffers under every Tensor, 64-byte aligned, optionally a view into a larger one.
// Corresponds to torch.UntypedStorage; views are how parameters live inside one flat buffer.
import Foundation

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
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let status = posix_memalign(&raw, 64, bytes)
        guard status == 0, let raw else { fatalError("out of memory: could not allocate \(bytes) bytes") }
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

    deinit { if owner == nil { free(base) } }

    /// The elements as a buffer pointer.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }
}
