// State dicts: the named parameters and buffers of a module tree, export in our or PyTorch layout, and checked loading.
// Corresponds to nn.Module.state_dict / load_state_dict(strict=True) with every mismatch reported at once.
import TensorCore

/// The layout of tensors in a state dict.
public enum StateDictLayout: Sendable, Equatable {
    /// Our layouts (conv weights `[Cout, kh, kw, Cin]`); exported tensors share storage with the module.
    case native
    /// PyTorch layouts (conv weights `[Cout, Cin, kh, kw]`), as in a reference checkpoint; converted
    /// tensors are copies, the others share storage.
    case pytorch
}

/// One key whose tensor has the wrong shape.
public struct ShapeMismatch: Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var expected: [Int]
    public var found: [Int]

    public init(key: String, expected: [Int], found: [Int]) {
        self.key = key; self.expected = expected; self.found = found
    }

    public var description: String { "\(key): expected \(expected), found \(found)" }
}

/// Every way a state dict failed to match a module, found in one pass. Thrown by `Module.load`.
public struct StateDictReport: Error, Sendable, CustomStringConvertible {
    /// Keys the module has and the dict lacks, in `stateDict()` order.
    public var missing: [String] = []
    /// Keys the dict has and the module lacks, sorted.
    public var unused: [String] = []
    /// Keys present on both sides with different shapes, in `stateDict()` order.
    public var misshaped: [ShapeMismatch] = []

    public init(missing: [String] = [], unused: [String] = [], misshaped: [ShapeMismatch] = []) {
        self.missing = missing; self.unused = unused; self.misshaped = misshaped
    }

    /// True when the dict matched exactly.
    public var isEmpty: Bool { missing.isEmpty && unused.isEmpty && misshaped.isEmpty }

    public var description: String {
        if isEmpty { return "state dict matches" }
        var lines = ["state dict does not match (\(missing.count) missing, \(unused.count) unused, \(misshaped.count) mis-shaped):"]
        lines += missing.map { "  missing:    \($0)" }
        lines += unused.map { "  unused:     \($0)" }
        lines += misshaped.map { "  mis-shaped: \($0)" }
        return lines.joined(separator: "\n")
    }
}

/// The shape a parameter of shape `shape` and layout `layout` has in PyTorch.
public func pytorchShape(_ shape: [Int], layout: ParameterLayout) -> [Int] {
    switch layout {
    case .standard: return shape
    case .convOHWI:
        precondition(shape.count == 4, "convOHWI layout needs a rank-4 weight, got \(shape)")
        return [shape[0], shape[3], shape[1], shape[2]]
    }
}

/// `t` (our layout `layout`) rearranged to PyTorch's layout; `t` itself when they agree.
public func toPyTorchLayout(_ t: Tensor, layout: ParameterLayout) -> Tensor {
    switch layout {
    case .standard: return t
    case .convOHWI: return withNoGrad { t.permuted([0, 3, 1, 2]) }
    }
}

/// `t` (PyTorch layout) rearranged to our layout `layout`; `t` itself when they agree.
public func fromPyTorchLayout(_ t: Tensor, layout: ParameterLayout) -> Tensor {
    switch layout {
    case .standard: return t
    case .convOHWI:
        precondition(t.rank == 4, "convOHWI layout needs a rank-4 weight, got \(t.shape)")
        return withNoGrad { t.permuted([0, 2, 3, 1]) }
    }
}

extension Module {
    /// Parameters then buffers of each module, children after their parent (`state_dict()` order;
    /// a shared module appears under each of its names).
    public func stateDict(layout: StateDictLayout = .native) -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        forEachStateEntry { name, e in
            let t = e.tensor!
            out.append((name, layout == .native ? t : toPyTorchLayout(t, layout: e.layout)))
        }
        return out
    }

    /// The state-dict keys in order.
    public func stateDictKeys() -> [String] {
        var out: [String] = []
        forEachStateEntry { name, _ in out.append(name) }
        return out
    }

    /// Copies the values of `dict` (in `layout`) into this module's parameters and buffers.
    ///
    /// Nothing is copied unless the check passes. Mis-shaped keys always fail; missing and unused
    /// keys fail when `strict` (the default) and are otherwise returned. The thrown
    /// `StateDictReport` lists every problem at once.
    @discardableResult
    public func load(_ dict: [String: Tensor], layout: StateDictLayout = .native, strict: Bool = true) throws -> StateDictReport {
        var report = StateDictReport()
        var targets: [(Tensor, Tensor, ParameterLayout)] = []
        var used = Set<String>()
        forEachStateEntry { name, e in
            let t = e.tensor!
            guard let src = dict[name] else { report.missing.append(name); return }
            used.insert(name)
            let expected = layout == .native ? t.shape : pytorchShape(t.shape, layout: e.layout)
            if src.shape != expected {
                report.misshaped.append(ShapeMismatch(key: name, expected: expected, found: src.shape))
            } else {
                targets.append((t, src, e.layout))
            }
        }
        report.unused = dict.keys.filter { !used.contains($0) }.sorted()
        if !report.misshaped.isEmpty || (strict && !report.isEmpty) { throw report }
        for (t, src, paramLayout) in targets {
            t.assign(layout == .native ? src : fromPyTorchLayout(src, layout: paramLayout))
        }
        return report
    }

    /// `load` from an ordered list of pairs (e.g. another module's `stateDict()`); a repeated key
    /// keeps its last value.
    @discardableResult
    public func load(_ pairs: [(String, Tensor)], layout: StateDictLayout = .native, strict: Bool = true) throws -> StateDictReport {
        try load(Dictionary(pairs, uniquingKeysWith: { _, last in last }), layout: layout, strict: strict)
    }
}
