// Elementwise ops: broadcasting add/sub/mul/div, scalar forms, and unary math, each with its backward.
// Corresponds to torch's pointwise ops (+, -, *, /, relu, sigmoid, softplus, exp, log, sqrt, abs, neg).
import Foundation
import Kernels

enum BinaryOp { case add, sub, mul, div }

/// Applies `op` over `n` elements with input strides 0 or 1 (a broadcast row or a full row).
@inline(__always)
private func binaryRow(_ op: BinaryOp, _ a: UnsafePointer<Float>, _ sa: Int, _ b: UnsafePointer<Float>, _ sb: Int,
                       _ o: UnsafeMutablePointer<Float>, _ n: Int) {
    switch (op, sa, sb) {
    case (.add, 1, 1): for i in 0..<n { o[i] = a[i] + b[i] }
    case (.add, 1, 0): let v = b[0]; for i in 0..<n { o[i] = a[i] + v }
    case (.add, 0, 1): let v = a[0]; for i in 0..<n { o[i] = v + b[i] }
    case (.sub, 1, 1): for i in 0..<n { o[i] = a[i] - b[i] }
    case (.sub, 1, 0): let v = b[0]; for i in 0..<n { o[i] = a[i] - v }
    case (.sub, 0, 1): let v = a[0]; for i in 0..<n { o[i] = v - b[i] }
    case (.mul, 1, 1): for i in 0..<n { o[i] = a[i] * b[i] }
    case (.mul, 1, 0): let v = b[0]; for i in 0..<n { o[i] = a[i] * v }
    case (.mul, 0, 1): let v = a[0]; for i in 0..<n { o[i] = v * b[i] }
    case (.div, 1, 1): for i in 0..<n { o[i] = a[i] / b[i] }
    case (.div, 1, 0): let v = b[0]; for i in 0..<n { o[i] = a[i] / v }
    case (.div, 0, 1): let v = a[0]; for i in 0..<n { o[i] = v / b[i] }
    default:
        let v: Float
        switch op {
        case .add: v = a[0] + b[0]
        case .sub: v = a[0] - b[0]
        case .mul: v = a[0] * b[0]
        case .div: v = a[0] / b[0]
        }
        for i in 0..<n { o[i] = v }
    }
}

/// Broadcasting binary kernel: output shape is `broadcastShape(a.shape, b.shape)`.
func broadcastBinary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
    let outShape = a.shape == b.shape ? a.shape : broadcastShape(a.shape, b.shape)
    let out = Tensor(uninitialized: outShape)
    let n = out.count
    if n == 0 { return out }
    if a.count == n && b.count == n {
        let pa = a.data, pb = b.data, po = out.data
        parallelFor(n, grain: elementwiseGrain) { r in
            binaryRow(op, pa + r.lowerBound, 1, pb + r.lowerBound, 1, po + r.lowerBound, r.count)
        }
        return out
    }
    // Collapse to rows over the last output dimension with per-input strides over the outer index.
    let r = outShape.count
    let ash = Array(repeating: 1, count: r - a.rank) + a.shape
    let bsh = Array(repeating: 1, count: r - b.rank) + b.shape
    var aStr = [Int](repeating: 0, count: r), bStr = [Int](repeating: 0, count: r)
    var sa = 1, sb = 1
    for i in stride(from: r - 1, through: 0, by: -1) {
        aStr[i] = ash[i] == 1 ? 0 : sa; sa *= ash[i]
        bStr[i] = bsh[i] == 1 ? 0 : sb; sb *= bsh[i]
    }
    let inner = outShape[r - 1]
    let ia = aStr[r - 1], ib = bStr[r - 1]
    let rows = n / inner
    let pa = a.data, pb = b.data, po = out.data
    // Rows in chunks of about `elementwiseGrain` elements; each chunk starts its odometer at its first row.
    parallelFor(rows, grain: Swift.max(1, elementwiseGrain / Swift.max(inner, 1))) { chunk in
        var idx = [Int](repeating: 0, count: max(r - 1, 0))
        var offA = 0, offB = 0
        var rest = chunk.lowerBound
        for d in stride(from: r - 2, through: 0, by: -1) {
            idx[d] = rest % outShape[d]; rest /= outShape[d]
            offA += idx[d] * aStr[d]; offB += idx[d] * bStr[d]
        }
        for row in chunk {
            binaryRow(op, pa + offA, ia, pb + offB, ib, po + row * inner, inner)
            // Odometer increment over the outer dimensions.
            var d = r - 2
            while d >= 0 {
                idx[d] += 1; offA += aStr[d]; offB += bStr[d]
                if idx[d] < outShape[d] { break }
                offA -= aStr[d] * idx[d]; offB -= bStr[d] * idx[d]; idx[d] = 0
                d -= 1
            }
        }
    }
    return out
}

extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        Autograd.record("add", broadcastBinary(.add, a, b), [a, b]) { g in [g, g] }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        Autograd.record("sub", broadcastBinary(.sub, a, b), [a, b]) { g in
            [g, b.requiresGrad ? -g : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        Autograd.record("mul", broadcastBinary(.mul, a, b), [a, b]) { g in
            [a.requiresGrad ? g * b : nil, b.requiresGrad ? g * a : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcastBinary(.div, a, b)
        return Autograd.record("div", out, [a, b]) { g in
            [a.requiresGrad ? g / b : nil, b.requiresGrad ? -(g * out / b) : nil]
        }
    }

    public static func + (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1, shift: s) }
    public static func + (s: Float, a: Tensor) -> Tensor { a.affine(scale: 1, shift: s) }
    public static func - (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1, shift: -s) }
    public static func - (s: Float, a: Tensor) -> Tensor { a.affine(scale: -1, shift: s) }
    public static func * (a: Tensor, s: Float) -> Tensor { a.affine(scale: s, shift: 0) }
    public static func * (s: Float, a: Tensor) -> Tensor { a.affine(scale: s, shift: 0) }
    public static func / (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1 / s, shift: 0) }
    public static func / (s: Float, a: Tensor) -> Tensor {
        let out = Tensor(uninitialized: a.shape)
        let x = a.data, o = out.data
        parallelFor(a.count, grain: elementwiseGrain) { r in for i in r { o[i] = s / x[i] } }
        return Autograd.record("rdiv", out, [a]) { g in [-(g * out / a)] }
    }
    public static prefix func - (a: Tensor) -> Tensor { a.affine(scale: -1, shift: 0) }

    /// `scale · self + shift`, elementwise.
    public func affine(scale: Float, shift: Float) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, o = out.data
        parallelFor(count, grain: elementwiseGrain) { r in
            if shift == 0 { for i in r { o[i] = x[i] * scale } } else { for i in r { o[i] = x[i] * scale + shift } }
        }
        return Autograd.record("affine", out, [self]) { g in [scale == 1 ? g : g.affine(scale: scale, shift: 0)] }
    }

    /// Elementwise map with a derivative expressed through the input `x` and output `y`. Generic over the function's
    /// type (not a closure) so that each map is specialized and vectorized inside the parallel chunks.
    @inline(__always)
    private func unary<F: PointwiseFunction>(_ name: String, _ fn: F) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, o = out.data
        parallelFor(count, grain: elementwiseGrain) { r in for i in r { o[i] = fn.value(x[i]) } }
        let input = self
        return Autograd.record(name, out, [self]) { g in
            let gi = Tensor(uninitialized: input.shape)
            let gp = g.data, xp = input.data, yp = out.data, d = gi.data
            parallelFor(input.count, grain: elementwiseGrain) { r in
                for i in r { d[i] = gp[i] * fn.derivative(xp[i], yp[i]) }
            }
            return [gi]
        }
    }

    public func relu() -> Tensor { unary("relu", Pointwise.ReLU()) }
    /// Exact GELU, `x·Φ(x)` with the normal CDF through erf (nn.GELU(), approximate="none").
    public func gelu() -> Tensor { unary("gelu", Pointwise.GELU()) }
    public func sigmoid() -> Tensor { unary("sigmoid", Pointwise.Sigmoid()) }
    /// log(1 + exp(x)), computed stably.
    public func softplus() -> Tensor { unary("softplus", Pointwise.Softplus()) }
    public func exp() -> Tensor { unary("exp", Pointwise.Exp()) }
    public func log() -> Tensor { unary("log", Pointwise.Log()) }
    public func sqrt() -> Tensor { unary("sqrt", Pointwise.Sqrt()) }
    /// |x|; the derivative at 0 is taken as 0 (as torch.sign).
    public func abs() -> Tensor { unary("abs", Pointwise.Abs()) }
    public func neg() -> Tensor { -self }
    public func square() -> Tensor { unary("square", Pointwise.Square()) }
    /// Clamps to `[low, high]`; the gradient passes where the input is inside the range.
    public func clamped(min low: Float = -.infinity, max high: Float = .infinity) -> Tensor {
        unary("clamp", Pointwise.Clamp(low: low, high: high))
    }

    /// Elementwise `cond ? a : b`; `cond` has `a`'s element count, `b` broadcasts to `a`.
    public static func select(_ cond: [Bool], _ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(cond.count == a.count, "select: \(cond.count) conditions for \(a.shape)")
        let bb = b.shape == a.shape ? b : withNoGrad { b.expanded(to: a.shape) }
        let out = Tensor(uninitialized: a.shape)
        let pa = a.data, pb = bb.data, o = out.data
        cond.withUnsafeBufferPointer { c in
            for i in 0..<a.count { o[i] = c[i] ? pa[i] : pb[i] }
        }
        return Autograd.record("select", out, [a, b]) { g in
            let ga = Tensor(uninitialized: a.shape), gb = Tensor(uninitialized: a.shape)
            let gp = g.data
            cond.withUnsafeBufferPointer { c in
                for i in 0..<a.count { ga.data[i] = c[i] ? gp[i] : 0; gb.data[i] = c[i] ? 0 : gp[i] }
            }
            return [ga, gb]
        }
    }

    /// Elementwise comparison masks (no gradient).
    public func greater(than v: Float) -> [Bool] { values.map { $0 > v } }
    public func less(than v: Float) -> [Bool] { values.map { $0 < v } }

    /// Whether every element is finite.
    public var isFinite: Bool {
        for i in 0..<count where !data[i].isFinite { return false }
        return true
    }
}

/// A pointwise function and its derivative through the input `x` and the output `y`.
protocol PointwiseFunction: Sendable {
    func value(_ x: Float) -> Float
    func derivative(_ x: Float, _ y: Float) -> Float
}

/// The unary maps of `Tensor`.
enum Pointwise {
    struct ReLU: PointwiseFunction {
        @inline(__always) func value(_ x: Float) -> Float { Swift.max(x, 0) }
        @inline(__always) func derivative(_ x: Float, _ y: Float) -> Float { x > 0 ? 1 : 0 }
    }
    struct GELU: PointwiseFunction {
        /// 0.5·x·(1 + erf(x/√2)) (PyTorch's formula); derivative Φ(x) + x·φ(x). Branch-free `fastErf` / `fastExp`,
        /// so the loops vectorize (glibc's scalar erff was ≈ 4 % of a Swin-T step).
        @inline(__always) func value(_ x: Float) -> Float { 0.5 * x * (1 + fastErf(x * 0.70710678118654752)) }
        @inline(__always) func derivative(_ x: Float, _ y: Float) -> Float {
            0.5 * (1 + fastErf(x * 0.70710678118654752)) + x * fastExp(-0.5 * x * x) * 0.39894228040143268
        }
    }
    struct Sigmoid: PointwiseFunction {
        @inline(__always) func value(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }
        @inline(__always) func derivative(_ x: Float, _ y: Float) -> Float { y * (1 - y) }
    }
    struct Softplus: PointwiseFunction {
        @inline(__always) func value(_ x: Float) -> Float { Swift.max(x, 0) + Foundation.log1p(Foundation.exp(-Swift.abs(x))) }
        @inline(__always) func derivative(_ x: Float, _ y: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }
    }
    struct Exp: PointwiseFunction {
        @inline(__always) func value(_ x: Float) -> Float { Foundation.exp(x) }
        @inline(__always) func derivative(_ x: Float, _ y: Float) -> Float { y }
    }
    struct Log: PointwiseFunction {
        @inline(__always) func value(_ x: Float) -> Float { Foundation.log(x) }
        @inline(__always) func derivative(_ x: Float, _ y: Float) -> Float { 1 / x }
    }
    struct Sqrt: PointwiseFunction {
        @inline(__always) func value(_ x: Float) -> Float { x.squareRoot() }
        @inline(__always) func derivative(_ x: Float, _ y: Float) -> Float { 0.5 / y }
    }
    struct Abs: PointwiseFunction {
        @inline(__always) func value(_ x: Float) -> Float { Swift.abs(x) }
        @inline(__always) func derivative(_ x: Float, _ y: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : 0) }
    }
    struct Square: PointwiseFunction {
        @inline(__always) func value(_ x: Float) -> Float { x * x }
        @inline(__always) func derivative(_ x: Float, _ y: Float) -> Float { 2 * x }
    }
    struct Clamp: PointwiseFunction {
        let low: Float, high: Float
        @inline(__always) func value(_ x: Float) -> Float { Swift.min(Swift.max(x, low), high) }
        @inline(__always) func derivative(_ x: Float, _ y: Float) -> Float { x >= low && x <= high ? 1 : 0 }
    }
}

/// Elementwise `cond ? a : b` (torch.where).
public func `where`(_ cond: [Bool], _ a: Tensor, _ b: Tensor) -> Tensor { Tensor.select(cond, a, b) }
