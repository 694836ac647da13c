// Autograd: the per-thread tape, no-grad scope and reverse-mode backward with one un-broadcast point.
// Corresponds to torch.autograd (backward, no_grad, detach) for first-order gradients.
import Foundation

/// One recorded op: its inputs, its output (weak) and the rule mapping the output's gradient to
/// gradients of its inputs (returned in input order; `nil` where an input needs none).
final class TapeNode {
    let op: String
    let inputs: [Tensor]
    weak var output: Tensor?
    let backward: (Tensor) -> [Tensor?]

    init(op: String, inputs: [Tensor], output: Tensor, backward: @escaping (Tensor) -> [Tensor?]) {
        self.op = op
        self.inputs = inputs
        self.output = output
        self.backward = backward
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
        context.tape.append(TapeNode(op: op, inputs: inputs, output: output, backward: backward))
        return output
    }

    /// Runs backward from `root`, seeded with `seed` (default ones; a scalar root is the usual case),
    /// accumulating into `grad` of every leaf that requires one. Clears the tape.
    public static func backward(_ root: Tensor, seed: Tensor? = nil) {
        let ctx = context
        let tape = ctx.tape
        ctx.tape.removeAll(keepingCapacity: true)
        guard root.requiresGrad else { return }
        let seedGrad = seed ?? Tensor.ones(root.shape)
        precondition(seedGrad.shape == root.shape, "seed shape \(seedGrad.shape) for root \(root.shape)")
        let wasEnabled = ctx.gradEnabled
        ctx.gradEnabled = false
        defer { ctx.gradEnabled = wasEnabled }
        accumulate(seedGrad, into: root)
        for node in tape.reversed() {
            guard let out = node.output, let g = out.grad else { continue }
            let grads = node.backward(g)
            precondition(grads.count == node.inputs.count, "\(node.op): \(grads.count) grads for \(node.inputs.count) inputs")
            if !out.isLeaf { out.grad = nil; out.gradIsOwned = false }
            for (input, gi) in zip(node.inputs, grads) {
                guard input.requiresGrad, let gi else { continue }
                accumulate(gi, into: input)
            }
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
                for i in 0..<g.count { d[i] += s[i] }
            } else {
                let sum = existing.copy()
                let d = sum.data, s = g.data
                for i in 0..<g.count { d[i] += s[i] }
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
