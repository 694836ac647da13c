// Flat parameter set: every trainable tensor re-bound to a slice of one value buffer, its gradient to one gradient buffer.
// Corresponds to the flat buffers of DDP gradient buckets / apex's flat master params (here the single source of truth).
import Foundation
import TensorCore

/// Ordered named parameters living in one flat value buffer, with gradients in one flat gradient
/// buffer of the same layout (parameter i occupies `offsets[i] ..< offsets[i] + tensors[i].count`
/// in both, packed without gaps in the given order).
///
/// After init each tensor's `storage` is a view into `values` (its current values copied in) and its
/// `grad` is a view into `grads` (zeroed), so `backward()` accumulates straight into `grads`, the
/// all-reduce works on slices of `grads`, and AdamW / clipping are loops over the two buffers.
/// Do not re-assign `grad` or `storage` of these tensors afterwards (see `brokenBindings()`).
public final class FlatParameters {
    /// Parameter names, in buffer order.
    public let names: [String]
    /// The parameter tensors, in buffer order.
    public let tensors: [Tensor]
    /// Start of each parameter in the flat buffers.
    public let offsets: [Int]
    /// Total element count.
    public let count: Int
    /// Flat parameter values.
    public let values: Storage
    /// Flat gradients (same layout as `values`).
    public let grads: Storage
    private let indexByName: [String: Int]

    /// Re-binds `named` (unique tensors and names, all requiring grad: leave frozen ones out, since
    /// AdamW would still decay them) into fresh flat buffers.
    public init(_ named: [(String, Tensor)]) {
        var offs: [Int] = []
        var total = 0
        var byName: [String: Int] = [:]
        var seen = Set<ObjectIdentifier>()
        for (i, (name, t)) in named.enumerated() {
            precondition(byName.updateValue(i, forKey: name) == nil, "parameter name \"\(name)\" appears twice")
            precondition(seen.insert(ObjectIdentifier(t)).inserted, "parameter \"\(name)\" is the same tensor as an earlier one")
            precondition(t.requiresGrad, "parameter \"\(name)\" does not require grad; leave frozen parameters out")
            offs.append(total)
            total += t.count
        }
        names = named.map(\.0)
        tensors = named.map(\.1)
        offsets = offs
        count = total
        indexByName = byName
        values = Storage(uninitializedCount: total)
        grads = Storage(zeroedCount: total)
        for (i, t) in tensors.enumerated() {
            t.rebind(to: Storage(viewOf: values, offset: offs[i], count: t.count))
            t.bindGrad(to: Storage(viewOf: grads, offset: offs[i], count: t.count))
        }
    }

    /// Position of `name` in `names`.
    public func index(of name: String) -> Int? { indexByName[name] }

    /// Element range of parameter `i` in the flat buffers.
    public func range(_ i: Int) -> Range<Int> { offsets[i] ..< offsets[i] + tensors[i].count }

    /// Element range of the parameter called `name`.
    public func range(of name: String) -> Range<Int>? { index(of: name).map { range($0) } }

    /// Sets the whole gradient buffer to zero.
    public func zeroGrad() {
        if count > 0 { memset(grads.base, 0, count * MemoryLayout<Float>.stride) }
    }

    /// Names of parameters whose values or gradient no longer live in the flat buffers (empty when
    /// every binding holds); a cheap check for tests and debug builds.
    public func brokenBindings() -> [String] {
        var out: [String] = []
        for (i, t) in tensors.enumerated() {
            let valueOK = t.storage.base == values.base + offsets[i]
            let gradOK = t.grad.map { $0.storage.base == grads.base + offsets[i] } ?? false
            if !(valueOK && gradOK) { out.append(names[i]) }
        }
        return out
    }

    /// A tensor of shape `tensors[i].shape` viewing `storage` at parameter i's slice (for moment
    /// buffers and other per-parameter state laid out like `values`).
    public func view(_ storage: Storage, parameter i: Int) -> Tensor {
        precondition(storage.count == count, "flat view of a buffer of \(storage.count) elements, expected \(count)")
        return Tensor(shape: tensors[i].shape, storage: Storage(viewOf: storage, offset: offsets[i], count: tensors[i].count))
    }
}
