// HDF5File: an HDF5 file opened read-only / read-write or created (truncate / exclusive); closed by close() or deinit.
// Corresponds to h5py.File (modes "r", "r+", "w", "w-").
import CHDF5
import TensorCore

/// An open HDF5 file.
///
/// Threading: HDF5 keeps process-global state and is not thread-safe in every build; keep a file and
/// every group, dataset and attribute of it on one thread (docs/architecture.md#habits: "MPI and HDF5
/// calls stay on one thread"). Every call is additionally serialized behind one process-wide lock, so
/// independent files used from different threads (e.g. parallel test suites) cannot corrupt HDF5's state.
///
/// Groups and datasets keep their file object alive. `close()` flushes and releases the file id; HDF5
/// itself closes the file once the last group or dataset opened from it is released too.
public final class HDF5File: HDF5Object {
    /// How an existing file is opened.
    public enum OpenMode: Sendable { case readOnly, readWrite }
    /// What `create` does when the file exists: replace it, or fail.
    public enum CreateMode: Sendable { case truncate, exclusive }

    /// The file's path as given.
    public let path: String
    /// Whether the file was opened for writing.
    public let isWritable: Bool
    private var id: hid_t

    /// Opens an existing file (H5Fopen).
    public init(open path: String, mode: OpenMode = .readOnly) throws {
        _ = hdf5AtexitDisabled
        self.path = path
        self.isWritable = mode == .readWrite
        self.id = try H5.fopen(path, flags: mode == .readWrite ? mp_h5f_acc_rdwr() : mp_h5f_acc_rdonly(), at: path)
    }

    /// Creates a file (H5Fcreate): `.truncate` replaces an existing file, `.exclusive` fails if it exists.
    public init(create path: String, mode: CreateMode = .truncate) throws {
        _ = hdf5AtexitDisabled
        self.path = path
        self.isWritable = true
        self.id = try H5.fcreate(path, flags: mode == .truncate ? mp_h5f_acc_trunc() : mp_h5f_acc_excl(), at: path)
    }

    deinit {
        if id >= 0 { try? H5.fclose(id, at: path) }
    }

    /// Whether `close()` has not been called yet.
    public var isOpen: Bool { id >= 0 }

    /// The file id (attributes set on the file go to its root group), or -1 once closed.
    public var rawID: hid_t { id }

    /// `path:/` — where errors about the file itself point.
    public var location: String { path + ":/" }

    /// Writes every buffered change of the file to disk (H5Fflush, global scope).
    public func flush() throws {
        try H5.fflush(try openID("H5Fflush"), at: path)
    }

    /// Flushes (if writable) and closes the file id (H5Fclose). Calling it twice is harmless.
    public func close() throws {
        guard id >= 0 else { return }
        let closing = id
        id = -1
        var flushError: Error? = nil
        if isWritable {
            do { try H5.fflush(closing, at: path) } catch { flushError = error }
        }
        try H5.fclose(closing, at: path)   // always release the id, even when the flush failed
        if let flushError { throw flushError }
    }

    func openID(_ call: String) throws -> hid_t {
        guard id >= 0 else { throw hdf5Refuse(call, path, "the file has been closed") }
        return id
    }

    // MARK: the root group and shortcuts to it

    /// The root group "/" (a new handle each time).
    public var root: HDF5Group {
        get throws { try HDF5Group(file: self, path: "/", id: H5.gopen(try openID("H5Gopen2"), "/", at: location)) }
    }

    /// Opens the existing group at `path` (e.g. "loss/prediction0").
    public func group(_ path: String) throws -> HDF5Group { try root.group(path) }
    /// Creates the group at `path` and any missing intermediate groups; fails if it exists.
    public func createGroup(_ path: String) throws -> HDF5Group { try root.createGroup(path) }
    /// Opens the group at `path`, creating it and its missing parents when absent.
    public func requireGroup(_ path: String) throws -> HDF5Group { try root.requireGroup(path) }
    /// Whether an object exists at `path`.
    public func contains(_ path: String) throws -> Bool { try root.contains(path) }
    /// Opens the dataset at `path`.
    public func dataset(_ path: String) throws -> HDF5Dataset { try root.dataset(path) }
    /// Shape, element type and storage of the dataset at `path`.
    public func datasetInfo(_ path: String) throws -> HDF5DatasetInfo { try root.datasetInfo(path) }
    /// The dataset at `path` as a float32 tensor (float64 data is converted).
    public func readTensor(_ path: String) throws -> Tensor { try root.readTensor(path) }
    /// The integer dataset at `path` (int8…int64, uint8…uint64) as `[Int]`, row-major.
    public func readInts(_ path: String) throws -> [Int] { try root.readInts(path) }
    /// Writes `tensor` as a new float32 dataset at `path`, creating missing groups.
    @discardableResult
    public func write(_ tensor: Tensor, to path: String, options: HDF5WriteOptions = .contiguous) throws -> HDF5Dataset {
        try root.write(tensor, to: path, options: options)
    }
    /// Writes `ints` as a new int64 dataset of `shape` (default `[ints.count]`) at `path`.
    @discardableResult
    public func write(ints: [Int], shape: [Int]? = nil, to path: String,
                      options: HDF5WriteOptions = .contiguous) throws -> HDF5Dataset {
        try root.write(ints: ints, shape: shape, to: path, options: options)
    }
    /// The root's members, in name order.
    public func members() throws -> [HDF5Member] { try root.members() }
    /// Every dataset path in the file, e.g. "input/pixel_values", depth first in name order.
    public func datasetPaths() throws -> [String] { try root.datasetPaths() }
}
