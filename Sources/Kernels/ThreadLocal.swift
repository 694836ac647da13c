// ThreadLocal: one lazily created object per thread, released when the thread exits (pthread keys).
// Used for the autodiff context (the tape), the conv im2col workspace and the GEMM precision and workspaces; no
// reference counterpart.
import Foundation

/// One instance of `Value` per thread, made by `make` on the thread's first access.
public final class ThreadLocal<Value: AnyObject>: @unchecked Sendable {
    private let key: pthread_key_t
    private let make: @Sendable () -> Value

    public init(_ make: @escaping @Sendable () -> Value) {
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { raw in
            guard let raw else { return }
            Unmanaged<AnyObject>.fromOpaque(raw).release()
        }
        precondition(status == 0, "pthread_key_create failed with \(status)")
        self.key = key
        self.make = make
    }

    /// This thread's instance.
    @inline(__always) public var value: Value {
        if let raw = pthread_getspecific(key) {
            return unsafeDowncast(Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue(), to: Value.self)
        }
        let v = make()
        pthread_setspecific(key, Unmanaged.passRetained(v as AnyObject).toOpaque())
        return v
    }
}
