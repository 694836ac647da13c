// Tensor: float32, contiguous row-major, with autodiff bookkeeping (requiresGrad, grad, leaf flag).
// Corresponds to torch.Tensor restricted to dense float32; permutes are explicit copies.
import Foundation

/// A dense float32 tensor with contiguous row-major storage.
///
/// Tensors are reference types: ops return new tensors and record themselves on the thread's tape
/// when an input requires a gradient (see `Autograd`). Only leaves (tensors not produced by a
/// recorded op, e.g. parameters) keep their `grad` after `backward()`.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// Element count (product of `shape`).
    public let count: Int
    /// Underlying buffer; parameters may be re-bound to a view into a flat buffer.
    public internal(set) var storage: Storage
    /// Whether gradients flow to this tensor.
    public var requiresGrad: Bool
    /// Accumulated gradient (same shape), set by `backward()`.
    public var grad: Tensor?
    /// True unless produced by a recorded op.
    public internal(set) var isLeaf: Bool = true
    /// Whether `grad` is a buffer this tensor owns (so accumulation may happen in place).
    var gradIsOwned: Bool = false
    /// Whether `grad` is bound to a caller-owned buffer (see `bindGrad(to:)`).
    public private(set) var gradIsBound: Bool = false
    /// Where the tape accumulates this tensor's gradient (`Autograd`; a leaf's is made on first use).
    var gradSlot: GradSlot?

    /// Wraps an existing storage (must hold exactly `shape.product` elements).
    public init(shape: [Int], storage: Storage, requiresGrad: Bool = false) {
        let n = shape.reduce(1, *)
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(storage.count == n, "storage of \(storage.count) elements for shape \(shape)")
        self.shape = shape
        self.count = n
        self.storage = storage
        self.requiresGrad = requiresGrad
    }

    /// Uninitialized tensor; kernels must write every element.
    public convenience init(uninitialized shape: [Int]) {
        self.init(shape: shape, storage: Storage(uninitializedCount: shape.reduce(1, *)))
    }

    /// Tensor from values in row-major order.
    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        let n = shape.reduce(1, *)
        precondition(values.count == n, "\(values.count) values for shape \(shape)")
        self.init(shape: shape, storage: Storage(uninitializedCount: n), requiresGrad: requiresGrad)
        values.withUnsafeBufferPointer { src in
            if n > 0 { data.update(from: src.baseAddress!, count: n) }
        }
    }

    /// A scalar (rank-0) tensor.
    public convenience init(scalar: Float, requiresGrad: Bool = false) {
        self.init([scalar], shape: [], requiresGrad: requiresGrad)
    }

    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, storage: Storage(zeroedCount: shape.reduce(1, *)), requiresGrad: requiresGrad)
    }

    public static func full(_ shape: [Int], _ value: Float, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(repeating: value, count: t.count)
        t.requiresGrad = requiresGrad
        return t
    }

    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 1, requiresGrad: requiresGrad)
    }

    /// `[0, 1, …, n-1]` as floats.
    public static func arange(_ n: Int) -> Tensor {
        Tensor((0..<n).map { Float($0) }, shape: [n])
    }

    /// Uniform samples in `[low, high)` from `rng`.
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, rng: inout RNG,
                               requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        rng.fillUniform(t.data, count: t.count, low: low, high: high)
        t.requiresGrad = requiresGrad
        return t
    }

    /// Normal samples with the given mean and standard deviation from `rng`.
    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, rng: inout RNG,
                              requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        for i in 0..<t.count { t.data[i] = mean + std * rng.nextNormal() }
        t.requiresGrad = requiresGrad
        return t
    }

    /// First element of the storage.
    @inline(__always) public var data: UnsafeMutablePointer<Float> { storage.base }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// The values in row-major order.
    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item of a tensor with shape \(shape)")
        return data[0]
    }

    /// Element at a multi-index (slow; for tests and small tensors).
    public subscript(_ index: Int...) -> Float {
        get { data[flatIndex(index)] }
        set { data[flatIndex(index)] = newValue }
    }

    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) for shape \(shape)")
        var flat = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "index \(index) out of range for shape \(shape)")
            flat = flat * d + i
        }
        return flat
    }

    /// A copy with its own storage, not attached to the tape.
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        if count > 0 { t.data.update(from: data, count: count) }
        return t
    }

    /// The same values without gradient tracking (shares storage).
    public func detached() -> Tensor {
        Tensor(shape: shape, storage: storage, requiresGrad: false)
    }

    /// Overwrites the values from `other` (same element count); not recorded on the tape.
    public func assign(_ other: Tensor) {
        precondition(other.count == count, "assign \(other.shape) to \(shape)")
        if count > 0 { data.update(from: other.data, count: count) }
    }

    /// Sets every element to zero; not recorded on the tape.
    public func zero() { if count > 0 { memset(data, 0, count * MemoryLayout<Float>.stride) } }

    /// Re-binds this tensor to `storage` (same element count), copying the current values into it.
    /// Used to place parameters inside one flat buffer.
    public func rebind(to newStorage: Storage, copyValues: Bool = true) {
        precondition(newStorage.count == count, "rebind \(count) elements to storage of \(newStorage.count)")
        if copyValues && count > 0 { newStorage.base.update(from: data, count: count) }
        storage = newStorage
    }

    /// Binds `grad` to a caller-owned buffer (e.g. a slice of the flat gradient buffer).
    /// `backward()` then accumulates into it in place.
    public func bindGrad(to gradStorage: Storage) {
        precondition(gradStorage.count == count, "grad storage of \(gradStorage.count) for \(count) elements")
        grad = Tensor(shape: shape, storage: gradStorage)
        gradIsOwned = true
        gradIsBound = true
    }

    public var description: String {
        let shown = values.prefix(8).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", …" : "")])"
    }
}

extension Sequence where Element == Int {
    /// Product of the elements (1 for an empty sequence).
    @inlinable public var product: Int { reduce(1, *) }
}
