// Autograd: the per-thread tape, no-grad scope and reverse-mode backward with one un-broadcast point.
// Corresponds to torch.autograd (backward, no_grad, detach) for first-order gradients.
import Kernels

/// One recorded op: its inputs, its output (weak), the rule mapping the output's gradient to
/// gradients of its inputs (returned in input order; `nil` where an input needs none), and the GEMM
/// precision its forward ran in, which its backward runs in too (as under torch.autocast: an op kept in
/// fp32, such as the criterion, stays fp32 in backward whatever precision the backward is called in).
/// Where a tensor's gradient accumulates during backward. A non-leaf's slot is separate from the tensor: the tape
/// keeps slots (a few words each) alive, not the tensors, so an intermediate result that no backward rule captured
/// is freed as soon as the forward drops it — as PyTorch's graph keeps only what its backward functions saved. A
/// leaf's slot points (weakly) at the leaf, whose `grad` receives the gradient; it is made once per leaf.
final class GradSlot {
    let shape: [Int]
    /// The leaf this slot accumulates into (leaf slots only).
    weak var leaf: Tensor?
    let isLeafSlot: Bool
    /// A non-leaf's gradient while backward runs.
    var grad: Tensor?
    var gradIsOwned = false

    init(nonLeaf shape: [Int]) { self.shape = shape; isLeafSlot = false }
    init(leaf: Tensor) { shape = leaf.shape; self.leaf = leaf; isLeafSlot = true }
}

final class TapeNode {
    let op: String
    /// One slot per input; nil for an input that did not require a gradient.
    let inputs: [GradSlot?]
    let output: GradSlot
    let backward: (Tensor) -> [Tensor?]
    let precision: GEMMPrecision

    init(op: String, inputs: [GradSlot?], output: GradSlot, backward: @escaping (Tensor) -> [Tensor?]) {
        self.op = op
        self.inputs = inputs
        self.output = output
        self.backward = backward
        self.precision = GEMMPrecision.current
    }

    /// The input gradients for `g`, computed in the precision the forward ran in.
    func gradients(_ g: Tensor) -> [Tensor?] { withGEMMPrecision(precision) { backward(g) } }
}

extension Tensor {
    /// This tensor's slot on the tape: a leaf's (made on first use), or the one `record` gave a non-leaf.
    var tapeSlot: GradSlot {
        if let gradSlot { return gradSlot }
        precondition(isLeaf, "a non-leaf tensor without a gradient slot")
        let slot = GradSlot(leaf: self)
        gradSlot = slot
        return slot
    }
}

/// The autodiff state of one thread: whether ops record, and the tape of recorded nodes.
final class AutogradContext {
    var gradEnabled = true
    var tape: [TapeNode] = []
}

private let autogradContext = ThreadLocal { AutogradContext() }

/// Reverse-mode automatic differentiation over a per-thread tape.
public enum Autograd {
    @inline(__always) static var context: AutogradContext { autogradContext.value }

    /// Whether ops on this thread currently record onto the tape.
    public static var isGradEnabled: Bool { context.gradEnabled }

    /// Number of nodes on this thread's tape.
    public static var tapeLength: Int { context.tape.count }

    /// Drops every recorded node (e.g. after a forward whose loss will not be differentiated).
    public static func clearTape() { context.tape.removeAll(keepingCapacity: true) }

    /// Whether an op with these inputs must record a node.
    @inline(__always) public static func needsRecord(_ inputs: [Tensor]) -> Bool {
        guard context.gradEnabled else { return false }
        for t in inputs where t.requiresGrad { return true }
        return false
    }

    @inline(__always) public static func needsRecord(_ a: Tensor) -> Bool {
        a.requiresGrad && context.gradEnabled
    }

    /// Records `output = op(inputs)` with its backward rule when any input requires a gradient,
    /// and returns `output`. The rule receives d(loss)/d(output) and returns d(loss)/d(input_i)
    /// for each input (any broadcastable shape; it is reduced to the input's shape here).
    @discardableResult
    public static func record(_ op: String, _ output: Tensor, _ inputs: [Tensor],
                              backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        guard needsRecord(inputs) else { return output }
        output.requiresGrad = true
        output.isLeaf = false
        let slot = GradSlot(nonLeaf: output.shape)
        output.gradSlot = slot
        context.tape.append(TapeNode(op: op, inputs: inputs.map { $0.requiresGrad ? $0.tapeSlot : nil }, output: slot,
                                     backward: backward))
        return output
    }

    /// Runs backward from `root`, seeded with `seed` (default ones; a scalar root is the usual case),
    /// accumulating into `grad` of every leaf that requires one. Clears the tape.
    ///
    /// Optional hooks (for overlapping gradient communication with the rest of backward):
    /// - `leafReady(leaf)` is called exactly once per leaf that requires grad and received a gradient
    ///   in this backward, right after the last tape node contributing to it has been processed, so
    ///   `leaf.grad` then holds its final value. Leaves are reported in reverse order of their first
    ///   use on the tape (a root that is itself a leaf is reported first).
    /// - `afterNode()` is called after every tape node (processed or skipped), e.g. to drive MPI progress.
    ///
    /// Without hooks the walk is exactly the plain one (no per-leaf bookkeeping).
    public static func backward(_ root: Tensor, seed: Tensor? = nil,
                                leafReady: ((Tensor) -> Void)? = nil, afterNode: (() -> Void)? = nil) {
        let ctx = context
        let tape = ctx.tape
        ctx.tape.removeAll(keepingCapacity: true)
        guard root.requiresGrad else { return }
        let seedGrad = seed ?? Tensor.ones(root.shape)
        precondition(seedGrad.shape == root.shape, "seed shape \(seedGrad.shape) for root \(root.shape)")
        let wasEnabled = ctx.gradEnabled
        ctx.gradEnabled = false
        defer { ctx.gradEnabled = wasEnabled }
        if leafReady != nil || afterNode != nil {
            backwardWithHooks(root, seedGrad: seedGrad, tape: tape, leafReady: leafReady, afterNode: afterNode)
            return
        }
        accumulate(seedGrad, into: root.tapeSlot)
        for node in tape.reversed() {
            guard let g = node.output.grad else { continue }
            let grads = node.gradients(g)
            precondition(grads.count == node.inputs.count, "\(node.op): \(grads.count) grads for \(node.inputs.count) inputs")
            node.output.grad = nil; node.output.gradIsOwned = false
            for (input, gi) in zip(node.inputs, grads) {
                guard let input, let gi else { continue }
                accumulate(gi, into: input)
            }
        }
    }

    /// The backward walk of `backward` with per-leaf readiness tracking: each leaf's number of pending
    /// tape uses is counted first, decremented as nodes are walked, and the leaf is reported when it
    /// reaches zero having received a gradient.
    private static func backwardWithHooks(_ root: Tensor, seedGrad: Tensor, tape: [TapeNode],
                                          leafReady: ((Tensor) -> Void)?, afterNode: (() -> Void)?) {
        // Per leaf (that requires grad): pending uses on the tape, whether it received a gradient.
        var slot: [ObjectIdentifier: Int] = [:]
        var pending: [Int] = []
        var received: [Bool] = []
        var leaves: [Tensor] = []
        if leafReady != nil {
            for node in tape {
                for case let input? in node.inputs where input.isLeafSlot {
                    guard let leaf = input.leaf else { continue }
                    let id = ObjectIdentifier(input)
                    if let k = slot[id] { pending[k] += 1 } else {
                        slot[id] = leaves.count
                        leaves.append(leaf); pending.append(1); received.append(false)
                    }
                }
            }
        }
        let rootSlot = root.tapeSlot
        accumulate(seedGrad, into: rootSlot)
        if let leafReady, root.isLeaf {
            if let k = slot[ObjectIdentifier(rootSlot)] { received[k] = true } else { leafReady(root) }
        }
        for node in tape.reversed() {
            if let g = node.output.grad {
                let grads = node.gradients(g)
                precondition(grads.count == node.inputs.count, "\(node.op): \(grads.count) grads for \(node.inputs.count) inputs")
                node.output.grad = nil; node.output.gradIsOwned = false
                for (input, gi) in zip(node.inputs, grads) {
                    guard let input, let gi else { continue }
                    accumulate(gi, into: input)
                    if leafReady != nil, input.isLeafSlot, let k = slot[ObjectIdentifier(input)] { received[k] = true }
                }
            }
            if let leafReady {
                for case let input? in node.inputs where input.isLeafSlot {
                    guard let k = slot[ObjectIdentifier(input)] else { continue }
                    pending[k] -= 1
                }
                // Report after every use in this node has been decremented (an input may repeat).
                for case let input? in node.inputs where input.isLeafSlot {
                    guard let k = slot[ObjectIdentifier(input)], pending[k] == 0, received[k] else { continue }
                    received[k] = false   // reported: never again
                    leafReady(leaves[k])
                }
            }
            afterNode?()
        }
    }

    /// Adds `g` to a slot's gradient: a leaf's `grad` (`accumulate(_:into: Tensor)`), or a non-leaf's running sum.
    static func accumulate(_ gIn: Tensor, into slot: GradSlot) {
        if slot.isLeafSlot {
            if let leaf = slot.leaf { accumulate(gIn, into: leaf) }
            return
        }
        let g = gIn.shape == slot.shape ? gIn : reduceToShape(gIn, slot.shape)
        if let existing = slot.grad {
            let sum = slot.gradIsOwned ? existing : existing.copy()
            let d = sum.data, s = g.data
            parallelFor(g.count, grain: elementwiseGrain) { r in for i in r { d[i] += s[i] } }
            slot.grad = sum
            slot.gradIsOwned = true
        } else {
            slot.grad = g
            slot.gradIsOwned = false
        }
    }

    /// Adds `g` to `t.grad`, first reducing a broadcast gradient to `t`'s shape (the one place
    /// where broadcasting is undone).
    static func accumulate(_ gIn: Tensor, into t: Tensor) {
        let g = gIn.shape == t.shape ? gIn : reduceToShape(gIn, t.shape)
        if let existing = t.grad {
            if t.gradIsOwned {
                precondition(existing.count == g.count, "grad of \(existing.shape) accumulating \(g.shape)")
                let d = existing.data, s = g.data
                parallelFor(g.count, grain: elementwiseGrain) { r in for i in r { d[i] += s[i] } }
            } else {
                let sum = existing.copy()
                let d = sum.data, s = g.data
                parallelFor(g.count, grain: elementwiseGrain) { r in for i in r { d[i] += s[i] } }
                t.grad = sum
                t.gradIsOwned = true
            }
        } else if t.isLeaf {
            t.grad = g.copy()
            t.gradIsOwned = true
        } else {
            t.grad = g
            t.gradIsOwned = false
        }
    }

    /// Sums `g` over the axes along which `shape` was broadcast (numpy rules, aligned at the right).
    public static func reduceToShape(_ g: Tensor, _ shape: [Int]) -> Tensor {
        if g.shape == shape { return g }
        let r = g.rank
        precondition(shape.count <= r, "cannot reduce gradient \(g.shape) to \(shape)")
        let padded = Array(repeating: 1, count: r - shape.count) + shape
        var axes: [Int] = []
        for i in 0..<r where padded[i] == 1 && g.shape[i] != 1 { axes.append(i) }
        for i in 0..<r where padded[i] != 1 {
            precondition(padded[i] == g.shape[i], "cannot reduce gradient \(g.shape) to \(shape)")
        }
        let summed = axes.isEmpty ? g : withNoGrad { g.sum(axes: axes, keepDims: true) }
        return summed.reshaped(shape)
    }
}

/// Runs `body` with tape recording disabled on this thread (inference, matcher, attention masks).
public func withNoGrad<T>(_ body: () throws -> T) rethrows -> T {
    let ctx = Autograd.context
    let was = ctx.gradEnabled
    ctx.gradEnabled = false
    defer { ctx.gradEnabled = was }
    return try body()
}

/// Runs `body` with tape recording enabled on this thread.
public func withGrad<T>(_ body: () throws -> T) rethrows -> T {
    let ctx = Autograd.context
    let was = ctx.gradEnabled
    ctx.gradEnabled = true
    defer { ctx.gradEnabled = was }
    return try body()
}

extension Tensor {
    /// Reverse-mode backward from this tensor (see `Autograd.backward`).
    public func backward(seed: Tensor? = nil) { Autograd.backward(self, seed: seed) }

    /// Reverse-mode backward from this tensor with readiness hooks (see `Autograd.backward`).
    public func backward(seed: Tensor? = nil, leafReady: ((Tensor) -> Void)?, afterNode: (() -> Void)? = nil) {
        Autograd.backward(self, seed: seed, leafReady: leafReady, afterNode: afterNode)
    }

    /// Sets `grad` to nil (or zero when bound to a caller-owned buffer).
    public func zeroGrad() {
        if let g = grad, gradIsBound { g.zero() } else { grad = nil; gradIsOwned = false }
    }
}

/// The shape two shapes broadcast to (numpy rules), or a precondition failure naming both.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
    let r = max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        precondition(da == db || da == 1 || db == 1, "shapes \(a) and \(b) do not broadcast")
        out[i] = da == 1 ? db : da
    }
    return out
}
