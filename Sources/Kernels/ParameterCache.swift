// ParameterCache: converted copies of the parameters (bf16 GEMM operands, oneDNN's blocked convolution weights) made
// once per step and reused by the forward and the backward, instead of once per use.
// Corresponds to autocast's weight cast cache (`torch.autocast(cache_enabled=True)`), which lives for one forward;
// here it lives for one step's forward and backward, and the copies are made again after each optimizer step.

/// This thread's converted parameter copies. Active only inside `withParameterCache`, for addresses in the range it
/// names; the buffers stay allocated between steps (so a step does not fault them in again) and their contents are
/// valid for one scope.
final class ParameterCache {
    /// A converted copy: its buffer, the layout it holds and the scope it was filled in.
    final class Entry {
        var buffer = UnsafeMutableRawPointer.allocate(byteCount: 0, alignment: 64), capacity = 0
        var epoch = -1
        deinit { buffer.deallocate() }

        /// The buffer with room for `bytes` (its contents invalid when it grows).
        func reserve(_ bytes: Int) -> UnsafeMutableRawPointer {
            if bytes > capacity {
                buffer.deallocate()
                buffer = .allocate(byteCount: bytes, alignment: 64)
                capacity = bytes
                epoch = -1
            }
            return buffer
        }
    }

    /// What a copy is of: the parameter's address and the conversion (`kind`, and three numbers fixing its layout:
    /// rows, columns and row stride of a GEMM operand; a convolution's batch, height·width and stride·padding for its
    /// reordered weights, whose layout oneDNN picks from the geometry and the thread count, which is fixed for the
    /// thread that owns a scope).
    struct Key: Hashable {
        var address: UInt, kind: UInt8, a: Int, b: Int, c: Int
    }

    private var range: Range<UInt>?
    private var epoch = 0
    private var entries: [Key: Entry] = [:]

    static let perThread = ThreadLocal { ParameterCache() }

    /// Entries kept before the cache starts over, at the next scope (evaluation at many image sizes would otherwise keep
    /// adding layouts).
    static let capacity = 4096

    /// Runs `body` with `[base, base + count)` (the flat parameter values) cached; an enclosing scope stays in charge.
    func scope<T>(base: UnsafePointer<Float>, count: Int, _ body: () throws -> T) rethrows -> T {
        if range != nil { return try body() }
        let start = UInt(bitPattern: base)
        range = start ..< start + UInt(count * MemoryLayout<Float>.stride)
        epoch += 1
        // Emptied only here, where no copy is in use: emptying inside `copy` could free the copy of one operand of a
        // product while the other's was being made.
        if entries.count >= Self.capacity { entries.removeAll() }
        defer { range = nil }
        return try body()
    }

    /// Whether `bytes` bytes at `pointer` lie in the cached parameters.
    func covers(_ pointer: UnsafeRawPointer, bytes: Int) -> Bool {
        guard let range else { return false }
        let p = UInt(bitPattern: pointer)
        return p >= range.lowerBound && p + UInt(bytes) <= range.upperBound
    }

    /// The copy of `key` (of `bytes` bytes), filled by `fill` the first time it is asked for in this scope; nil
    /// outside a scope or when `key.address` is not a parameter.
    func copy(_ key: Key, sourceBytes: Int, bytes: Int,
              fill: (UnsafeMutableRawPointer) throws -> Void) rethrows -> UnsafeRawPointer? {
        guard let p = UnsafeRawPointer(bitPattern: key.address), covers(p, bytes: sourceBytes) else { return nil }
        let entry: Entry
        if let e = entries[key] {
            entry = e
        } else {
            entry = Entry()
            entries[key] = entry
        }
        let buffer = entry.reserve(bytes)
        if entry.epoch != epoch {
            try fill(buffer)
            entry.epoch = epoch
        }
        return UnsafeRawPointer(buffer)
    }
}

/// Runs `body` (a step's forward and backward, during which the parameters do not change) with the converted copies
/// of the parameters in `[values, values + count)` made once and reused: the bf16 operands of GEMMs on them and the
/// blocked weights of oneDNN's convolutions. The copies are made again in the next scope, i.e. after each optimizer
/// step. Parameters changed inside `body` would leave stale copies: do not.
public func withParameterCache<T>(_ values: UnsafePointer<Float>, count: Int, _ body: () throws -> T) rethrows -> T {
    try ParameterCache.perThread.value.scope(base: values, count: count, body)
}
