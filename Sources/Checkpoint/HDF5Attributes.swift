// HDF5Attributes: string (variable/fixed-length), Int64, Double and [UInt64] attributes on files, groups and datasets.
// Corresponds to h5py's `obj.attrs[name]` (h5py writes `str` as a scalar variable-length UTF-8 string).
import CHDF5

/// An open HDF5 object that can carry attributes: `HDF5File` (its root group), `HDF5Group`, `HDF5Dataset`.
public protocol HDF5Object: AnyObject {
    /// The HDF5 id of the open object.
    var rawID: hid_t { get }
    /// `file:objectPath`, used in error messages.
    var location: String { get }
}

extension HDF5Object {
    /// `file:objectPath (attribute "name")`, where errors about an attribute point.
    func attributeLocation(_ name: String) -> String { "\(location) (attribute \"\(name)\")" }

    /// Names of this object's attributes, in name order.
    public func attributeNames() throws -> [String] {
        let count = try H5.ogetInfoByName(rawID, ".", at: location).attributes
        return try (0..<count).map { try H5.agetNameByIdx(rawID, $0, at: location) }
    }

    /// Whether the attribute `name` exists (H5Aexists).
    public func hasAttribute(_ name: String) throws -> Bool {
        try H5.aexists(rawID, name, at: attributeLocation(name))
    }

    /// Deletes the attribute `name` (H5Adelete).
    public func removeAttribute(_ name: String) throws {
        try H5.adelete(rawID, name, at: attributeLocation(name))
    }

    /// The stored element type of the attribute `name`.
    public func attributeType(_ name: String) throws -> HDF5ElementType {
        try withAttribute(name) { _, type, _, at in try HDF5ElementType.of(type, at: at) }
    }

    // MARK: writing (an existing attribute of the same name is replaced, as h5py does)

    /// Sets a string attribute: a scalar variable-length UTF-8 string (what h5py writes for `str`), or
    /// with `fixedLength` a scalar fixed-length NUL-padded UTF-8 string of exactly the text's bytes.
    public func setAttribute(_ name: String, string value: String, fixedLength: Bool = false) throws {
        let at = attributeLocation(name)
        let type = try H5.tcopy(mp_h5t_c_s1(), at: at)
        defer { try? H5.tclose(type, at: at) }
        let bytes = Array(value.utf8)
        try H5.tsetSize(type, fixedLength ? max(bytes.count, 1) : mp_h5t_variable(), at: at)
        try H5.tsetCset(type, H5T_CSET_UTF8, at: at)
        if fixedLength { try H5.tsetStrpad(type, H5T_STR_NULLPAD, at: at) }
        try createAttribute(name, type: type, dims: nil) { attribute in
            if fixedLength {
                let padded = bytes.isEmpty ? [UInt8(0)] : bytes
                try padded.withUnsafeBytes { try H5.awrite(attribute, memType: type, $0.baseAddress!, at: at) }
            } else {
                try value.withCString { text in
                    let pointer: UnsafePointer<CChar>? = text
                    try withUnsafePointer(to: pointer) { try H5.awrite(attribute, memType: type, UnsafeRawPointer($0), at: at) }
                }
            }
        }
    }

    /// Sets a scalar int64 attribute.
    public func setAttribute(_ name: String, int64 value: Int64) throws {
        let at = attributeLocation(name)
        try createAttribute(name, type: mp_h5t_std_i64le(), dims: nil) { attribute in
            try withUnsafePointer(to: value) { try H5.awrite(attribute, memType: mp_h5t_native_int64(), $0, at: at) }
        }
    }

    /// Sets a scalar float64 attribute.
    public func setAttribute(_ name: String, double value: Double) throws {
        let at = attributeLocation(name)
        try createAttribute(name, type: mp_h5t_ieee_f64le(), dims: nil) { attribute in
            try withUnsafePointer(to: value) { try H5.awrite(attribute, memType: mp_h5t_native_double(), $0, at: at) }
        }
    }

    /// Sets a one-dimensional uint64 array attribute (may be empty), e.g. RNG state or shapes.
    public func setAttribute(_ name: String, uint64s values: [UInt64]) throws {
        let at = attributeLocation(name)
        try createAttribute(name, type: mp_h5t_std_u64le(), dims: [values.count]) { attribute in
            let storage = values.isEmpty ? [UInt64(0)] : values   // HDF5 wants a buffer even for 0 elements
            try storage.withUnsafeBytes { try H5.awrite(attribute, memType: mp_h5t_native_uint64(), $0.baseAddress!, at: at) }
        }
    }

    // MARK: reading

    /// Reads a string attribute holding one string, variable- or fixed-length, any character set.
    public func stringAttribute(_ name: String) throws -> String {
        try withAttribute(name) { attribute, fileType, count, at in
            let type = try HDF5ElementType.of(fileType, at: at)
            guard case .string(let variable) = type else {
                throw hdf5Refuse("H5Aread", at, "the attribute holds \(type), not a string")
            }
            guard count == 1 else { throw hdf5Refuse("H5Aread", at, "the attribute holds \(count) strings, not one") }
            if variable {
                let memType = try H5.tcopy(mp_h5t_c_s1(), at: at)
                defer { try? H5.tclose(memType, at: at) }
                try H5.tsetSize(memType, mp_h5t_variable(), at: at)
                try H5.tsetCset(memType, try H5.tgetCset(fileType, at: at), at: at)
                var pointer: UnsafeMutablePointer<CChar>? = nil
                try withUnsafeMutablePointer(to: &pointer) {
                    try H5.aread(attribute, memType: memType, UnsafeMutableRawPointer($0), at: at)
                }
                defer { try? H5.freeMemory(pointer, at: at) }
                return pointer.map { String(cString: $0) } ?? ""
            } else {
                let size = try H5.tgetSize(fileType, at: at)
                let memType = try H5.tcopy(fileType, at: at)
                defer { try? H5.tclose(memType, at: at) }
                var buffer = [CChar](repeating: 0, count: size + 1)
                try buffer.withUnsafeMutableBytes { try H5.aread(attribute, memType: memType, $0.baseAddress!, at: at) }
                var text = decodeCString(buffer)
                if try H5.tgetStrpad(fileType, at: at) == H5T_STR_SPACEPAD {
                    while text.hasSuffix(" ") { text.removeLast() }
                }
                return text
            }
        }
    }

    /// Reads a scalar integer attribute (any width) as Int64.
    public func int64Attribute(_ name: String) throws -> Int64 {
        try withAttribute(name) { attribute, fileType, count, at in
            let type = try HDF5ElementType.of(fileType, at: at)
            guard case .integer = type else { throw hdf5Refuse("H5Aread", at, "the attribute holds \(type), not an integer") }
            guard count == 1 else { throw hdf5Refuse("H5Aread", at, "the attribute holds \(count) values, not one") }
            var value: Int64 = 0
            try withUnsafeMutablePointer(to: &value) { try H5.aread(attribute, memType: mp_h5t_native_int64(), $0, at: at) }
            return value
        }
    }

    /// Reads a scalar floating-point (or integer) attribute as Double.
    public func doubleAttribute(_ name: String) throws -> Double {
        try withAttribute(name) { attribute, fileType, count, at in
            let type = try HDF5ElementType.of(fileType, at: at)
            switch type {
            case .float, .integer: break
            default: throw hdf5Refuse("H5Aread", at, "the attribute holds \(type), not a number")
            }
            guard count == 1 else { throw hdf5Refuse("H5Aread", at, "the attribute holds \(count) values, not one") }
            var value: Double = 0
            try withUnsafeMutablePointer(to: &value) { try H5.aread(attribute, memType: mp_h5t_native_double(), $0, at: at) }
            return value
        }
    }

    /// Reads an integer array attribute (any rank, read row-major) as [UInt64].
    public func uint64ArrayAttribute(_ name: String) throws -> [UInt64] {
        try withAttribute(name) { attribute, fileType, count, at in
            let type = try HDF5ElementType.of(fileType, at: at)
            guard case .integer = type else { throw hdf5Refuse("H5Aread", at, "the attribute holds \(type), not integers") }
            guard count > 0 else { return [] }
            var values = [UInt64](repeating: 0, count: count)
            try values.withUnsafeMutableBytes { try H5.aread(attribute, memType: mp_h5t_native_uint64(), $0.baseAddress!, at: at) }
            return values
        }
    }

    // MARK: helpers

    /// Opens attribute `name` and passes its id, its file type id and its element count to `body`.
    private func withAttribute<R>(_ name: String, _ body: (hid_t, hid_t, Int, String) throws -> R) throws -> R {
        let at = attributeLocation(name)
        let attribute = try H5.aopen(rawID, name, at: at)
        defer { try? H5.aclose(attribute, at: at) }
        let type = try H5.agetType(attribute, at: at)
        defer { try? H5.tclose(type, at: at) }
        let space = try H5.agetSpace(attribute, at: at)
        defer { try? H5.sclose(space, at: at) }
        let count = try HDF5Extent.of(space, at: at).count
        return try body(attribute, type, count, at)
    }

    /// Replaces attribute `name` by a new one of `type`, scalar (`dims` nil) or simple, and lets `body` write it.
    private func createAttribute(_ name: String, type: hid_t, dims: [Int]?, _ body: (hid_t) throws -> Void) throws {
        let at = attributeLocation(name)
        if try H5.aexists(rawID, name, at: at) { try H5.adelete(rawID, name, at: at) }
        let space = try dims.map { try H5.screateSimple($0, at: at) } ?? H5.screateScalar(at: at)
        defer { try? H5.sclose(space, at: at) }
        let attribute = try H5.acreate(rawID, name, type: type, space: space, at: at)
        defer { try? H5.aclose(attribute, at: at) }
        try body(attribute)
    }
}
