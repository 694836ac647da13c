// Property wrappers that mark a module's stored properties as parameters, buffers or children, with a key override.
// Corresponds to nn.Parameter / register_buffer / submodule attributes, and the attribute names that become state_dict keys.

/// How a parameter is laid out in memory relative to the reference (PyTorch) `state_dict`.
public enum ParameterLayout: Sendable, Equatable {
    /// Same shape and element order as PyTorch.
    case standard
    /// A convolution weight stored `[Cout, kh, kw, Cin]` (ours, channels-last); PyTorch stores
    /// `[Cout, Cin, kh, kw]`.
    case convOHWI
}

/// What reflection found in one stored property.
enum SlotKind {
    case parameter, buffer, child, ignored
}

/// Implemented by the wrappers so that reflection can read their kind, key and value.
protocol ModuleSlot {
    var slotKind: SlotKind { get }
    var slotKey: String? { get }
    var slotLayout: ParameterLayout { get }
    /// The wrapped value, or nil when the wrapper was never assigned.
    var slotValue: Any? { get }
}

/// Lets an unset wrapper of optional type read as `nil` instead of trapping.
protocol NilDefault { static var nilDefault: Self { get } }
extension Optional: NilDefault { static var nilDefault: Optional { nil } }

@inline(__always)
func unsetValue<Value>(_ kind: String, _ key: String?) -> Value {
    if let n = (Value.self as? NilDefault.Type)?.nilDefault as? Value { return n }
    fatalError("@\(kind)\(key.map { "(key: \"\($0)\")" } ?? "") property of type \(Value.self) read before it was set")
}

/// A trainable tensor (`Tensor`, `Tensor?` or `[Tensor]`) whose `state_dict` key differs from the
/// property name, or which is stored in a non-PyTorch layout.
///
///     @Param(key: "in_proj_weight") var inProjWeight: Tensor
///
/// A wrapper with arguments and no initial value starts unset: assign it after `super.init()`
/// (or write `_inProjWeight = Param(wrappedValue: t, key: "in_proj_weight")` before it).
/// A plain stored `Tensor` property needs no wrapper: it is a parameter named like the property.
@propertyWrapper
public struct Param<Value>: ModuleSlot {
    private var stored: Value?
    /// The `state_dict` key (nil: the property name).
    public let key: String?
    public let layout: ParameterLayout

    public init(wrappedValue: Value, key: String? = nil, layout: ParameterLayout = .standard) {
        self.stored = wrappedValue; self.key = key; self.layout = layout
    }

    public init(key: String? = nil, layout: ParameterLayout = .standard) {
        self.stored = nil; self.key = key; self.layout = layout
    }

    public var wrappedValue: Value {
        get { if let stored { return stored }; return unsetValue("Param", key) }
        set { stored = newValue }
    }

    var slotKind: SlotKind { .parameter }
    var slotKey: String? { key }
    var slotLayout: ParameterLayout { layout }
    var slotValue: Any? { stored.map { $0 as Any } }
}

/// A saved, non-trainable tensor (`Tensor`, `Tensor?` or `[Tensor]`), e.g. FrozenBatchNorm's
/// `running_mean`. It appears in `stateDict()` and `namedBuffers()`, never in `namedParameters()`.
@propertyWrapper
public struct Buffer<Value>: ModuleSlot {
    private var stored: Value?
    /// The `state_dict` key (nil: the property name).
    public let key: String?

    public init(wrappedValue: Value, key: String? = nil) {
        self.stored = wrappedValue; self.key = key
    }

    public init(key: String? = nil) {
        self.stored = nil; self.key = key
    }

    public var wrappedValue: Value {
        get { if let stored { return stored }; return unsetValue("Buffer", key) }
        set { stored = newValue }
    }

    var slotKind: SlotKind { .buffer }
    var slotKey: String? { key }
    var slotLayout: ParameterLayout { .standard }
    var slotValue: Any? { stored.map { $0 as Any } }
}

/// A child module (`M`, `M?` or `[M]` for any `Module` subclass `M`) whose key differs from the
/// property name, e.g. `@Child(key: "0") var conv: Conv2d` inside a module mirroring nn.Sequential.
@propertyWrapper
public struct Child<Value>: ModuleSlot {
    private var stored: Value?
    /// The key prefix of the child's entries (nil: the property name).
    public let key: String?

    public init(wrappedValue: Value, key: String? = nil) {
        self.stored = wrappedValue; self.key = key
    }

    public init(key: String? = nil) {
        self.stored = nil; self.key = key
    }

    public var wrappedValue: Value {
        get { if let stored { return stored }; return unsetValue("Child", key) }
        set { stored = newValue }
    }

    var slotKind: SlotKind { .child }
    var slotKey: String? { key }
    var slotLayout: ParameterLayout { .standard }
    var slotValue: Any? { stored.map { $0 as Any } }
}

/// A stored `Tensor` or `Module` that reflection must skip (caches, constants, shared references).
@propertyWrapper
public struct Ignored<Value>: ModuleSlot {
    public var wrappedValue: Value

    public init(wrappedValue: Value) { self.wrappedValue = wrappedValue }

    var slotKind: SlotKind { .ignored }
    var slotKey: String? { nil }
    var slotLayout: ParameterLayout { .standard }
    var slotValue: Any? { nil }
}
