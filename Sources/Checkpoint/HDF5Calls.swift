// HDF5Calls: one throwing Swift function per HDF5 C call, serialized process-wide, failures carrying HDF5's error stack.
// No reference counterpart (h5py's low-level `h5py.h5f/h5d/h5a…` modules play this role for PyTorch checkpoints).
import CHDF5
import Foundation
import Synchronization

// Threading. HDF5 keeps global state (open-object tables, the error stack, caches). Debian's serial
// libhdf5 happens to be configured thread-safe today, but other builds (macOS, many clusters) are not,
// and the design rule is "MPI and HDF5 calls stay on one thread". Callers must keep every HDF5 object
// on one thread. As a guard for test runners that run suites on several threads, every call below
// also runs under one process-wide lock together with the reading and clearing of the error stack, so
// a failure's message always belongs to that failure.

/// The process-wide HDF5 lock.
let hdf5Lock = Mutex<Void>(())

/// Marks threads on which HDF5's automatic error printing is already off. In a thread-safe HDF5
/// build the error stack and its printing setting are per thread, so each thread silences its own.
private let hdf5SilencedKey: pthread_key_t = {
    var key = pthread_key_t()
    let status = pthread_key_create(&key, nil)
    precondition(status == 0, "pthread_key_create failed with \(status)")
    return key
}()

/// HDF5 is told, before its first use, not to run its own clean-up at process exit (H5dont_atexit). That clean-up
/// closes whatever is still open; after a failed write (a full disk) the file cannot be closed and the clean-up
/// crashed with SIGSEGV inside H5_term_library after our error was printed. Every file we open is closed by our
/// own code (close() or deinit), so nothing relies on it. It must come before anything initializes the library —
/// including the shim's getters for macros such as H5F_ACC_RDONLY, which call H5open — so `HDF5File` touches it
/// first.
let hdf5AtexitDisabled: Void = { _ = H5dont_atexit() }()

/// Turns HDF5's automatic error printing off for the calling thread (once per thread). Call with the lock held.
private func silenceHDF5ErrorPrinting() {
    _ = hdf5AtexitDisabled
    guard pthread_getspecific(hdf5SilencedKey) == nil else { return }
    _ = mp_h5_silence_errors()
    _ = pthread_setspecific(hdf5SilencedKey, UnsafeRawPointer(bitPattern: 1))
}

/// Runs one HDF5 C call under the lock. If `failed(result)` the HDF5 error stack is read into an
/// `HDF5Error(call:path:message:)` and cleared.
@inline(__always)
func hdf5Call<R: Sendable>(_ call: String, _ path: @autoclosure () -> String,
                           failedIf failed: (R) -> Bool, _ body: () -> R) throws -> R {
    let outcome: Result<R, HDF5Error> = hdf5Lock.withLock { _ in
        silenceHDF5ErrorPrinting()
        let r = body()
        if failed(r) {
            let message = hdf5ErrorStackMessage()
            return .failure(HDF5Error(call: call, path: path(), message: message))
        }
        return .success(r)
    }
    return try outcome.get()
}

/// Throws an error that did not come from a C call (a type or shape the wrapper refuses).
func hdf5Refuse(_ call: String, _ path: String, _ message: String) -> HDF5Error {
    HDF5Error(call: call, path: path, message: message)
}

/// One entry of HDF5's error stack, copied out during the walk.
private struct StackEntry { var function: String; var description: String; var minor: hid_t }

private final class StackCollector { var entries: [StackEntry] = [] }

/// Reads the current thread's HDF5 error stack (outermost call first) and clears it. Call with the lock held.
private func hdf5ErrorStackMessage() -> String {
    let collector = StackCollector()
    let status = withExtendedLifetime(collector) {
        H5Ewalk2(mp_h5e_default(), H5E_WALK_DOWNWARD, { _, desc, client in
            guard let desc, let client else { return 0 }
            let box = Unmanaged<StackCollector>.fromOpaque(client).takeUnretainedValue()
            let e = desc.pointee
            box.entries.append(StackEntry(function: e.func_name.map { String(cString: $0) } ?? "?",
                                          description: e.desc.map { String(cString: $0) } ?? "",
                                          minor: e.min_num))
            return 0
        }, Unmanaged.passUnretained(collector).toOpaque())
    }
    var parts: [String] = [], seen = Set<String>()
    var systemError: String? = nil
    for entry in collector.entries {
        // The file driver's description holds the system's message: "…errno = 28, error message = 'No space…', …".
        var description = entry.description
        if let range = description.range(of: ", error message = '"),
           let end = description[range.upperBound...].firstIndex(of: "'") {
            let errno = description.range(of: "errno = ").map { description[$0.upperBound...].prefix { $0.isNumber } } ?? ""
            systemError = systemError ?? "\(description[range.upperBound..<end])" + (errno.isEmpty ? "" : " (errno \(errno))")
            description = description.components(separatedBy: ": time = ").first ?? description
        }
        var text = "\(entry.function)(): \(description)"
        if let minor = hdf5MessageText(entry.minor), !minor.isEmpty,
           minor.lowercased() != description.lowercased() {
            text += " [\(minor)]"
        }
        if seen.insert(text).inserted { parts.append(text) }   // a failed flush repeats whole chains
    }
    _ = H5Eclear2(mp_h5e_default())
    if status < 0 && parts.isEmpty { return "(the HDF5 error stack could not be read)" }
    if parts.isEmpty { return "(HDF5 reported failure without an error message)" }
    let stack = parts.joined(separator: " → ")
    return systemError.map { "\($0); HDF5: \(stack)" } ?? stack
}

/// The text of an HDF5 error message id (H5Eget_msg). Call with the lock held.
private func hdf5MessageText(_ id: hid_t) -> String? {
    var buffer = [CChar](repeating: 0, count: 256)
    let n = H5Eget_msg(id, nil, &buffer, buffer.count)
    guard n > 0 else { return nil }
    return String(decoding: buffer.prefix(min(Int(n), buffer.count - 1)).map { UInt8(bitPattern: $0) },
                  as: UTF8.self)
}

/// Thin typed wrappers: one function per HDF5 C call, named after it, throwing `HDF5Error` with the
/// call's name, `at` (file path plus object path) and HDF5's own message. Ids returned here are
/// owned by the caller, who closes them with the matching close call.
enum H5 {
    // MARK: files (H5F)

    static func fcreate(_ name: String, flags: UInt32, at: String) throws -> hid_t {
        let fapl = try faplWithoutLocking(at: at)
        defer { try? pclose(fapl, at: at) }
        return try hdf5Call("H5Fcreate", at, failedIf: { $0 < 0 }) { H5Fcreate(name, flags, mp_h5p_default(), fapl) }
    }

    static func fopen(_ name: String, flags: UInt32, at: String) throws -> hid_t {
        let fapl = try faplWithoutLocking(at: at)
        defer { try? pclose(fapl, at: at) }
        return try hdf5Call("H5Fopen", at, failedIf: { $0 < 0 }) { H5Fopen(name, flags, fapl) }
    }

    /// The file-access list every file is created or opened with: HDF5's file locking off (see the shim).
    static func faplWithoutLocking(at: String) throws -> hid_t {
        try hdf5Call("H5Pcreate(H5P_FILE_ACCESS) + H5Pset_file_locking", at, failedIf: { $0 < 0 }) { mp_h5p_fapl_without_locking() }
    }

    static func fflush(_ id: hid_t, at: String) throws {
        _ = try hdf5Call("H5Fflush", at, failedIf: { $0 < 0 }) { H5Fflush(id, H5F_SCOPE_GLOBAL) }
    }

    static func fclose(_ id: hid_t, at: String) throws {
        _ = try hdf5Call("H5Fclose", at, failedIf: { $0 < 0 }) { H5Fclose(id) }
    }

    // MARK: groups (H5G), links (H5L), objects (H5O)

    static func gcreate(_ loc: hid_t, _ name: String, lcpl: hid_t, at: String) throws -> hid_t {
        try hdf5Call("H5Gcreate2", at, failedIf: { $0 < 0 }) {
            H5Gcreate2(loc, name, lcpl, mp_h5p_default(), mp_h5p_default())
        }
    }

    static func gopen(_ loc: hid_t, _ name: String, at: String) throws -> hid_t {
        try hdf5Call("H5Gopen2", at, failedIf: { $0 < 0 }) { H5Gopen2(loc, name, mp_h5p_default()) }
    }

    static func gclose(_ id: hid_t, at: String) throws {
        _ = try hdf5Call("H5Gclose", at, failedIf: { $0 < 0 }) { H5Gclose(id) }
    }

    /// Number of links in a group (H5Gget_info).
    static func ggetInfoLinkCount(_ id: hid_t, at: String) throws -> Int {
        var info = H5G_info_t()
        _ = try hdf5Call("H5Gget_info", at, failedIf: { $0 < 0 }) { H5Gget_info(id, &info) }
        return Int(info.nlinks)
    }

    static func lexists(_ loc: hid_t, _ name: String, at: String) throws -> Bool {
        try hdf5Call("H5Lexists", at, failedIf: { $0 < 0 }) { H5Lexists(loc, name, mp_h5p_default()) } > 0
    }

    /// Name of the `index`-th link of group `loc`, in name order (H5Lget_name_by_idx).
    static func lgetNameByIdx(_ loc: hid_t, _ index: Int, at: String) throws -> String {
        let n = try hdf5Call("H5Lget_name_by_idx", at, failedIf: { $0 < 0 }) {
            H5Lget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(index), nil, 0, mp_h5p_default())
        }
        var buffer = [CChar](repeating: 0, count: n + 1)
        _ = try hdf5Call("H5Lget_name_by_idx", at, failedIf: { $0 < 0 }) {
            H5Lget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(index), &buffer, n + 1, mp_h5p_default())
        }
        return decodeCString(buffer)
    }

    static func ldelete(_ loc: hid_t, _ name: String, at: String) throws {
        _ = try hdf5Call("H5Ldelete", at, failedIf: { $0 < 0 }) { H5Ldelete(loc, name, mp_h5p_default()) }
    }

    /// Type and attribute count of the object `name` relative to `loc` (H5Oget_info_by_name, via the shim).
    static func ogetInfoByName(_ loc: hid_t, _ name: String, at: String) throws -> (type: H5O_type_t, attributes: Int) {
        var type = H5O_TYPE_UNKNOWN
        var count: hsize_t = 0
        _ = try hdf5Call("H5Oget_info_by_name", at, failedIf: { $0 < 0 }) {
            mp_h5o_get_info_by_name(loc, name, &type, &count)
        }
        return (type, Int(count))
    }

    // MARK: datasets (H5D)

    static func dcreate(_ loc: hid_t, _ name: String, type: hid_t, space: hid_t, lcpl: hid_t, dcpl: hid_t,
                        at: String) throws -> hid_t {
        try hdf5Call("H5Dcreate2", at, failedIf: { $0 < 0 }) {
            H5Dcreate2(loc, name, type, space, lcpl, dcpl, mp_h5p_default())
        }
    }

    static func dopen(_ loc: hid_t, _ name: String, at: String) throws -> hid_t {
        try hdf5Call("H5Dopen2", at, failedIf: { $0 < 0 }) { H5Dopen2(loc, name, mp_h5p_default()) }
    }

    static func dclose(_ id: hid_t, at: String) throws {
        _ = try hdf5Call("H5Dclose", at, failedIf: { $0 < 0 }) { H5Dclose(id) }
    }

    /// Writes the whole dataset from `buffer` laid out as `memType`.
    static func dwrite(_ id: hid_t, memType: hid_t, _ buffer: UnsafeRawPointer, at: String) throws {
        _ = try hdf5Call("H5Dwrite", at, failedIf: { $0 < 0 }) {
            H5Dwrite(id, memType, mp_h5s_all(), mp_h5s_all(), mp_h5p_default(), buffer)
        }
    }

    /// Reads the whole dataset into `buffer` as `memType` (HDF5 converts, e.g. float64 → float32).
    static func dread(_ id: hid_t, memType: hid_t, _ buffer: UnsafeMutableRawPointer, at: String) throws {
        _ = try hdf5Call("H5Dread", at, failedIf: { $0 < 0 }) {
            H5Dread(id, memType, mp_h5s_all(), mp_h5s_all(), mp_h5p_default(), buffer)
        }
    }

    static func dgetSpace(_ id: hid_t, at: String) throws -> hid_t {
        try hdf5Call("H5Dget_space", at, failedIf: { $0 < 0 }) { H5Dget_space(id) }
    }

    static func dgetType(_ id: hid_t, at: String) throws -> hid_t {
        try hdf5Call("H5Dget_type", at, failedIf: { $0 < 0 }) { H5Dget_type(id) }
    }

    static func dgetCreatePlist(_ id: hid_t, at: String) throws -> hid_t {
        try hdf5Call("H5Dget_create_plist", at, failedIf: { $0 < 0 }) { H5Dget_create_plist(id) }
    }

    /// File offset of a contiguous dataset's raw data; nil for chunked or not yet allocated data (H5Dget_offset).
    static func dgetOffset(_ id: hid_t, at: String) throws -> UInt64? {
        let undefined = mp_haddr_undef()
        let offset: haddr_t = hdf5Lock.withLock { _ in
            silenceHDF5ErrorPrinting()
            let r = H5Dget_offset(id)
            if r == undefined { _ = H5Eclear2(mp_h5e_default()) }   // "undefined" is an answer here, not a failure
            return r
        }
        return offset == undefined ? nil : UInt64(offset)
    }

    // MARK: dataspaces (H5S)

    static func screateScalar(at: String) throws -> hid_t {
        try hdf5Call("H5Screate", at, failedIf: { $0 < 0 }) { H5Screate(H5S_SCALAR) }
    }

    static func screateSimple(_ dims: [Int], at: String) throws -> hid_t {
        var d = dims.map { hsize_t($0) }
        return try hdf5Call("H5Screate_simple", at, failedIf: { $0 < 0 }) {
            H5Screate_simple(Int32(d.count), &d, nil)
        }
    }

    static func sclose(_ id: hid_t, at: String) throws {
        _ = try hdf5Call("H5Sclose", at, failedIf: { $0 < 0 }) { H5Sclose(id) }
    }

    static func sgetSimpleExtentType(_ id: hid_t, at: String) throws -> H5S_class_t {
        try hdf5Call("H5Sget_simple_extent_type", at, failedIf: { $0 == H5S_NO_CLASS }) { H5Sget_simple_extent_type(id) }
    }

    static func sgetSimpleExtentNdims(_ id: hid_t, at: String) throws -> Int {
        Int(try hdf5Call("H5Sget_simple_extent_ndims", at, failedIf: { $0 < 0 }) { H5Sget_simple_extent_ndims(id) })
    }

    static func sgetSimpleExtentDims(_ id: hid_t, rank: Int, at: String) throws -> [Int] {
        var dims = [hsize_t](repeating: 0, count: max(rank, 1))
        _ = try hdf5Call("H5Sget_simple_extent_dims", at, failedIf: { $0 < 0 }) {
            H5Sget_simple_extent_dims(id, &dims, nil)
        }
        return dims.prefix(rank).map { Int($0) }
    }

    static func sgetSimpleExtentNpoints(_ id: hid_t, at: String) throws -> Int {
        Int(try hdf5Call("H5Sget_simple_extent_npoints", at, failedIf: { $0 < 0 }) { H5Sget_simple_extent_npoints(id) })
    }

    // MARK: datatypes (H5T)

    static func tcopy(_ id: hid_t, at: String) throws -> hid_t {
        try hdf5Call("H5Tcopy", at, failedIf: { $0 < 0 }) { H5Tcopy(id) }
    }

    static func tclose(_ id: hid_t, at: String) throws {
        _ = try hdf5Call("H5Tclose", at, failedIf: { $0 < 0 }) { H5Tclose(id) }
    }

    static func tsetSize(_ id: hid_t, _ size: Int, at: String) throws {
        _ = try hdf5Call("H5Tset_size", at, failedIf: { $0 < 0 }) { H5Tset_size(id, size) }
    }

    static func tsetCset(_ id: hid_t, _ cset: H5T_cset_t, at: String) throws {
        _ = try hdf5Call("H5Tset_cset", at, failedIf: { $0 < 0 }) { H5Tset_cset(id, cset) }
    }

    static func tsetStrpad(_ id: hid_t, _ pad: H5T_str_t, at: String) throws {
        _ = try hdf5Call("H5Tset_strpad", at, failedIf: { $0 < 0 }) { H5Tset_strpad(id, pad) }
    }

    static func tgetClass(_ id: hid_t, at: String) throws -> H5T_class_t {
        try hdf5Call("H5Tget_class", at, failedIf: { $0 == H5T_NO_CLASS }) { H5Tget_class(id) }
    }

    static func tgetSize(_ id: hid_t, at: String) throws -> Int {
        try hdf5Call("H5Tget_size", at, failedIf: { $0 == 0 }) { H5Tget_size(id) }
    }

    static func tgetSign(_ id: hid_t, at: String) throws -> H5T_sign_t {
        try hdf5Call("H5Tget_sign", at, failedIf: { $0 == H5T_SGN_ERROR }) { H5Tget_sign(id) }
    }

    static func tisVariableStr(_ id: hid_t, at: String) throws -> Bool {
        try hdf5Call("H5Tis_variable_str", at, failedIf: { $0 < 0 }) { H5Tis_variable_str(id) } > 0
    }

    static func tgetCset(_ id: hid_t, at: String) throws -> H5T_cset_t {
        try hdf5Call("H5Tget_cset", at, failedIf: { $0 == H5T_CSET_ERROR }) { H5Tget_cset(id) }
    }

    static func tgetStrpad(_ id: hid_t, at: String) throws -> H5T_str_t {
        try hdf5Call("H5Tget_strpad", at, failedIf: { $0 == H5T_STR_ERROR }) { H5Tget_strpad(id) }
    }

    // MARK: property lists (H5P)

    static func pcreate(_ cls: hid_t, at: String) throws -> hid_t {
        try hdf5Call("H5Pcreate", at, failedIf: { $0 < 0 }) { H5Pcreate(cls) }
    }

    static func pclose(_ id: hid_t, at: String) throws {
        _ = try hdf5Call("H5Pclose", at, failedIf: { $0 < 0 }) { H5Pclose(id) }
    }

    static func psetChunk(_ id: hid_t, _ dims: [Int], at: String) throws {
        var d = dims.map { hsize_t($0) }
        _ = try hdf5Call("H5Pset_chunk", at, failedIf: { $0 < 0 }) { H5Pset_chunk(id, Int32(d.count), &d) }
    }

    static func psetFletcher32(_ id: hid_t, at: String) throws {
        _ = try hdf5Call("H5Pset_fletcher32", at, failedIf: { $0 < 0 }) { H5Pset_fletcher32(id) }
    }

    static func psetCreateIntermediateGroup(_ id: hid_t, _ on: Bool, at: String) throws {
        _ = try hdf5Call("H5Pset_create_intermediate_group", at, failedIf: { $0 < 0 }) {
            H5Pset_create_intermediate_group(id, on ? 1 : 0)
        }
    }

    static func pgetLayout(_ id: hid_t, at: String) throws -> H5D_layout_t {
        try hdf5Call("H5Pget_layout", at, failedIf: { $0.rawValue < 0 }) { H5Pget_layout(id) }
    }

    static func pgetChunk(_ id: hid_t, maxRank: Int, at: String) throws -> [Int] {
        var d = [hsize_t](repeating: 0, count: max(maxRank, 1))
        let rank = try hdf5Call("H5Pget_chunk", at, failedIf: { $0 < 0 }) { H5Pget_chunk(id, Int32(d.count), &d) }
        return d.prefix(Int(rank)).map { Int($0) }
    }

    static func pgetNfilters(_ id: hid_t, at: String) throws -> Int {
        Int(try hdf5Call("H5Pget_nfilters", at, failedIf: { $0 < 0 }) { H5Pget_nfilters(id) })
    }

    /// The filter id of the `index`-th filter in a creation property list (H5Pget_filter2).
    static func pgetFilter(_ id: hid_t, _ index: Int, at: String) throws -> Int32 {
        var flags: UInt32 = 0, count: Int = 0, config: UInt32 = 0
        return try hdf5Call("H5Pget_filter2", at, failedIf: { $0 < 0 }) {
            H5Pget_filter2(id, UInt32(index), &flags, &count, nil, 0, nil, &config)
        }
    }

    // MARK: attributes (H5A)

    static func acreate(_ loc: hid_t, _ name: String, type: hid_t, space: hid_t, at: String) throws -> hid_t {
        try hdf5Call("H5Acreate2", at, failedIf: { $0 < 0 }) {
            H5Acreate2(loc, name, type, space, mp_h5p_default(), mp_h5p_default())
        }
    }

    static func aopen(_ loc: hid_t, _ name: String, at: String) throws -> hid_t {
        try hdf5Call("H5Aopen", at, failedIf: { $0 < 0 }) { H5Aopen(loc, name, mp_h5p_default()) }
    }

    static func aclose(_ id: hid_t, at: String) throws {
        _ = try hdf5Call("H5Aclose", at, failedIf: { $0 < 0 }) { H5Aclose(id) }
    }

    static func awrite(_ id: hid_t, memType: hid_t, _ buffer: UnsafeRawPointer, at: String) throws {
        _ = try hdf5Call("H5Awrite", at, failedIf: { $0 < 0 }) { H5Awrite(id, memType, buffer) }
    }

    static func aread(_ id: hid_t, memType: hid_t, _ buffer: UnsafeMutableRawPointer, at: String) throws {
        _ = try hdf5Call("H5Aread", at, failedIf: { $0 < 0 }) { H5Aread(id, memType, buffer) }
    }

    static func aexists(_ loc: hid_t, _ name: String, at: String) throws -> Bool {
        try hdf5Call("H5Aexists", at, failedIf: { $0 < 0 }) { H5Aexists(loc, name) } > 0
    }

    static func adelete(_ loc: hid_t, _ name: String, at: String) throws {
        _ = try hdf5Call("H5Adelete", at, failedIf: { $0 < 0 }) { H5Adelete(loc, name) }
    }

    static func agetSpace(_ id: hid_t, at: String) throws -> hid_t {
        try hdf5Call("H5Aget_space", at, failedIf: { $0 < 0 }) { H5Aget_space(id) }
    }

    static func agetType(_ id: hid_t, at: String) throws -> hid_t {
        try hdf5Call("H5Aget_type", at, failedIf: { $0 < 0 }) { H5Aget_type(id) }
    }

    /// Name of the `index`-th attribute of `loc`, in name order (H5Aget_name_by_idx).
    static func agetNameByIdx(_ loc: hid_t, _ index: Int, at: String) throws -> String {
        let n = try hdf5Call("H5Aget_name_by_idx", at, failedIf: { $0 < 0 }) {
            H5Aget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(index), nil, 0, mp_h5p_default())
        }
        var buffer = [CChar](repeating: 0, count: n + 1)
        _ = try hdf5Call("H5Aget_name_by_idx", at, failedIf: { $0 < 0 }) {
            H5Aget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(index), &buffer, n + 1, mp_h5p_default())
        }
        return decodeCString(buffer)
    }

    // MARK: memory

    /// Frees memory HDF5 allocated for the caller, e.g. a variable-length string read (H5free_memory).
    static func freeMemory(_ pointer: UnsafeMutableRawPointer?, at: String) throws {
        guard let pointer else { return }
        _ = try hdf5Call("H5free_memory", at, failedIf: { $0 < 0 }) { H5free_memory(pointer) }
    }
}

/// The HDF5 library's version (`H5get_libversion`), e.g. "HDF5 1.10.8".
public func hdf5LibraryVersion() throws -> String {
    var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
    _ = try hdf5Call("H5get_libversion", "", failedIf: { $0 < 0 }) { H5get_libversion(&major, &minor, &release) }
    return "HDF5 \(major).\(minor).\(release)"
}

/// UTF-8 text of a NUL-terminated (or NUL-padded) C character buffer.
func decodeCString(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
