// GrowingBuffer: a grow-only, 64-byte aligned buffer, the one shape of the kernels' reusable per-thread scratch (oneDNN's
// operand copies, scratchpads and reordered weights, attention's per-head scratch, the emulated bf16 operands).
// No reference counterpart.

/// A buffer of `T` that only grows: `reserve(n)` returns room for at least `n` elements (contents undefined), the same
/// memory while `n` fits, so a per-thread owner allocates only when a larger request comes.
final class GrowingBuffer<T> {
    private var storage = UnsafeMutableRawPointer.allocate(byteCount: 0, alignment: 64), capacity = 0

    func reserve(_ count: Int) -> UnsafeMutablePointer<T> {
        if count > capacity {
            storage.deallocate()
            storage = .allocate(byteCount: count * MemoryLayout<T>.stride, alignment: 64)
            capacity = count
        }
        return storage.bindMemory(to: T.self, capacity: capacity)
    }

    deinit { storage.deallocate() }
}
