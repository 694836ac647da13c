// Module: the base class of layers and models; parameters, buffers and children are found by reflection.
// Corresponds to torch.nn.Module (named_parameters, named_buffers, named_modules, train/eval).
import TensorCore

/// Base class of every layer and model.
///
/// Parameters, buffers and child modules are discovered by reflection over the stored properties
/// (`Mirror`, superclass properties first, then declaration order), once per instance:
///
/// | stored property | becomes |
/// |---|---|
/// | `Tensor` | a parameter named like the property |
/// | `[Tensor]` | parameters `name.0`, `name.1`, … |
/// | `M` (a `Module`) | a child; its entries get the prefix `name.` |
/// | `[M]` (any `Module` subclass) | children `name.0`, `name.1`, … |
/// | `Optional` of the above | skipped when nil |
/// | `@Param(key:layout:)` / `@Buffer(key:)` / `@Child(key:)` | parameter / buffer / child under `key` |
/// | `@Ignored`, `lazy var`, anything else | skipped |
///
/// Names therefore equal the reference `state_dict` keys when properties (or keys) carry the
/// reference attribute names. The module tree is treated as fixed after construction: the
/// reflection result (which holds the tensors and children themselves) is cached on first use;
/// call `invalidateReflectionCache()` after replacing a property. The first query is not
/// thread-safe (it fills the cache); a module holding a strong reference to an ancestor must mark
/// it `@Ignored`.
///
/// Orders follow PyTorch: `namedParameters()` visits modules in pre-order and lists each module's
/// own parameters before its children's (`named_parameters()` order); `stateDict()` lists each
/// module's parameters, then its buffers, then its children (`state_dict()` order).
open class Module {
    /// Training mode (true after init); see `train(_:)` and `eval()`.
    public private(set) var isTraining: Bool = true

    private var cachedEntries: [ModuleEntry]?

    public init() {}

    // MARK: Reflection

    /// The direct entries of this module, reflected once.
    final var entries: [ModuleEntry] {
        if let cachedEntries { return cachedEntries }
        let e = reflectEntries(of: self)
        cachedEntries = e
        return e
    }

    /// Forgets the cached reflection of this module (not its children); the next query reflects again.
    public final func invalidateReflectionCache() { cachedEntries = nil }

    /// The direct children with their keys, in declaration order.
    public final func children() -> [(String, Module)] {
        entries.compactMap { e in e.module.map { (e.key, $0) } }
    }

    /// This module's own parameters (not its children's), in declaration order.
    public final func directParameters() -> [(String, Tensor)] {
        entries.compactMap { e in e.kind == .parameter ? (e.key, e.tensor!) : nil }
    }

    // MARK: Recursive queries

    /// Every module of the tree in pre-order with its dotted name, the root first with name "".
    /// A module reachable under two names is listed once (the first), like `named_modules()`.
    public final func namedModules() -> [(String, Module)] {
        var out: [(String, Module)] = []
        var seen = Set<ObjectIdentifier>()
        func visit(_ m: Module, _ name: String) {
            guard seen.insert(ObjectIdentifier(m)).inserted else { return }
            out.append((name, m))
            for (key, child) in m.children() { visit(child, join(name, key)) }
        }
        visit(self, "")
        return out
    }

    /// Every trainable tensor with its dotted name (`backbone.res2.0.conv1.weight`), in
    /// `named_parameters()` order. A tensor reachable under two names is listed once (the first).
    public final func namedParameters() -> [(String, Tensor)] {
        namedTensors(.parameter)
    }

    /// Every buffer with its dotted name, in `named_buffers()` order, shared tensors once.
    public final func namedBuffers() -> [(String, Tensor)] {
        namedTensors(.buffer)
    }

    /// The parameters of `namedParameters()` without names.
    public final func parameters() -> [Tensor] { namedParameters().map(\.1) }

    /// Total number of parameter elements.
    public final var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    /// Names (as in `namedParameters()`) of the parameters owned directly by modules satisfying
    /// `predicate`, e.g. `{ $0 is NormLayer }` for the optimizer's no-decay rule.
    public final func parameterNames(inModulesWhere predicate: (Module) -> Bool) -> [String] {
        var owned = Set<ObjectIdentifier>()
        for (_, m) in namedModules() where predicate(m) {
            for (_, t) in m.directParameters() { owned.insert(ObjectIdentifier(t)) }
        }
        return namedParameters().compactMap { owned.contains(ObjectIdentifier($0.1)) ? $0.0 : nil }
    }

    private func namedTensors(_ kind: SlotKind) -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        var seenTensors = Set<ObjectIdentifier>()
        for (prefix, m) in namedModules() {
            for e in m.entries where e.kind == kind {
                let t = e.tensor!
                if seenTensors.insert(ObjectIdentifier(t)).inserted { out.append((join(prefix, e.key), t)) }
            }
        }
        return out
    }

    /// Calls `body` for every parameter and buffer entry in `state_dict()` order (no de-duplication).
    final func forEachStateEntry(_ body: (String, ModuleEntry) -> Void) {
        var path = Set<ObjectIdentifier>()
        forEachStateEntry("", &path, body)
    }

    private func forEachStateEntry(_ prefix: String, _ path: inout Set<ObjectIdentifier>,
                                   _ body: (String, ModuleEntry) -> Void) {
        precondition(path.insert(ObjectIdentifier(self)).inserted,
                     "module \"\(prefix)\" (\(type(of: self))) contains itself; mark the back-reference @Ignored")
        defer { path.remove(ObjectIdentifier(self)) }
        for e in entries where e.kind == .parameter { body(join(prefix, e.key), e) }
        for e in entries where e.kind == .buffer { body(join(prefix, e.key), e) }
        for e in entries {
            if let m = e.module { m.forEachStateEntry(join(prefix, e.key), &path, body) }
        }
    }

    // MARK: Modes

    /// Sets training mode on this module and every descendant.
    public final func train(_ on: Bool = true) {
        for (_, m) in namedModules() { m.isTraining = on }
    }

    /// Sets evaluation mode (`train(false)`).
    public final func eval() { train(false) }

    /// Sets `requiresGrad = false` on every parameter (detectron2's `freeze()`); frozen parameters
    /// should be left out of the optimizer's parameter set.
    public final func freeze() { for t in parameters() { t.requiresGrad = false } }
}

/// One reflected entry: a parameter or buffer tensor, or a child module.
struct ModuleEntry {
    let key: String
    let kind: SlotKind
    let tensor: Tensor?
    let module: Module?
    let layout: ParameterLayout
}

@inline(__always)
func join(_ prefix: String, _ key: String) -> String {
    prefix.isEmpty ? key : key.isEmpty ? prefix : prefix + "." + key
}

/// `value` with every level of `Optional` removed, or nil when it holds nil.
func unwrapOptional(_ value: Any) -> Any? {
    let m = Mirror(reflecting: value)
    guard m.displayStyle == .optional else { return value }
    guard let inner = m.children.first else { return nil }
    return unwrapOptional(inner.value)
}

/// Reflects the stored properties of `module` (superclasses first) into entries.
func reflectEntries(of module: Module) -> [ModuleEntry] {
    var mirrors: [Mirror] = []
    var cursor: Mirror? = Mirror(reflecting: module)
    while let m = cursor, m.subjectType != Module.self {
        mirrors.append(m)
        cursor = m.superclassMirror
    }
    let ownerType = type(of: module)
    var out: [ModuleEntry] = []
    var keys = Set<String>()
    func add(_ key: String, _ kind: SlotKind, tensor: Tensor? = nil, module: Module? = nil,
             layout: ParameterLayout = .standard) {
        precondition(keys.insert(key).inserted, "\(ownerType): two properties map to the key \"\(key)\"")
        out.append(ModuleEntry(key: key, kind: kind, tensor: tensor, module: module, layout: layout))
    }
    for mirror in mirrors.reversed() {
        for child in mirror.children {
            guard let label = child.label, !label.hasPrefix("$") else { continue }
            if let slot = child.value as? ModuleSlot {
                guard slot.slotKind != .ignored, let raw = slot.slotValue, let value = unwrapOptional(raw) else { continue }
                let key = slot.slotKey ?? (label.hasPrefix("_") ? String(label.dropFirst()) : label)
                switch slot.slotKind {
                case .parameter, .buffer:
                    if let t = value as? Tensor {
                        add(key, slot.slotKind, tensor: t, layout: slot.slotLayout)
                    } else if let ts = value as? [Tensor] {
                        for (i, t) in ts.enumerated() { add(join(key, String(i)), slot.slotKind, tensor: t, layout: slot.slotLayout) }
                    } else {
                        preconditionFailure("\(mirror.subjectType).\(label): @Param/@Buffer needs Tensor, Tensor? or [Tensor], got \(type(of: value))")
                    }
                case .child:
                    if let m = value as? Module {
                        add(key, .child, module: m)
                    } else if let ms = value as? [Module] {
                        for (i, m) in ms.enumerated() { add(join(key, String(i)), .child, module: m) }
                    } else {
                        preconditionFailure("\(mirror.subjectType).\(label): @Child needs a Module, an optional one or an array, got \(type(of: value))")
                    }
                case .ignored:
                    continue
                }
                continue
            }
            guard let value = unwrapOptional(child.value) else { continue }
            if let t = value as? Tensor {
                add(label, .parameter, tensor: t)
            } else if let m = value as? Module {
                add(label, .child, module: m)
            } else if let ts = value as? [Tensor] {
                for (i, t) in ts.enumerated() { add(join(label, String(i)), .parameter, tensor: t) }
            } else if let ms = value as? [Module] {
                for (i, m) in ms.enumerated() { add(join(label, String(i)), .child, module: m) }
            }
        }
    }
    return out
}
