// HDF5Error: the error every HDF5 wrapper call throws, naming the call, the file/object and HDF5's message.
// No reference counterpart (h5py raises similar errors).

/// A failed HDF5 call: which call, on which file or object, and the library's own message.
public struct HDF5Error: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var path: String
    public var message: String

    public init(call: String, path: String, message: String) {
        self.call = call; self.path = path; self.message = message
    }

    public var description: String { "\(path): \(call) failed: \(message)" }
}
