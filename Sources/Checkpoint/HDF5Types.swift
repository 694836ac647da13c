// HDF5Types: the small value types of the HDF5 wrapper (element types, object kinds, dataset info, write options).
// Corresponds to h5py's dtype/shape/chunks/fletcher32 properties of a Dataset and the kinds of Group members.
import CHDF5
import TensorCore

/// The element type of a dataset or attribute, as stored in the file.
public enum HDF5ElementType: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// IEEE floating point of `bits` bits (32 = float32, 64 = float64).
    case float(bits: Int)
    /// Two's-complement integer of `bits` bits.
    case integer(bits: Int, signed: Bool)
    /// A string, variable-length (as h5py writes `str`) or fixed-length.
    case string(variableLength: Bool)
    /// Any other HDF5 class (compound, enum, reference, …), by its class name.
    case other(String)

    public static let float32 = HDF5ElementType.float(bits: 32)
    public static let float64 = HDF5ElementType.float(bits: 64)
    public static let int32 = HDF5ElementType.integer(bits: 32, signed: true)
    public static let int64 = HDF5ElementType.integer(bits: 64, signed: true)
    public static let uint64 = HDF5ElementType.integer(bits: 64, signed: false)

    public var description: String {
        switch self {
        case .float(let bits): return "float\(bits)"
        case .integer(let bits, let signed): return (signed ? "int" : "uint") + "\(bits)"
        case .string(let variable): return variable ? "string (variable-length)" : "string (fixed-length)"
        case .other(let name): return name
        }
    }

    /// Reads the element type of an open datatype id.
    static func of(_ type: hid_t, at: String) throws -> HDF5ElementType {
        let cls = try H5.tgetClass(type, at: at)
        switch cls {
        case H5T_FLOAT:
            return .float(bits: try H5.tgetSize(type, at: at) * 8)
        case H5T_INTEGER:
            let bits = try H5.tgetSize(type, at: at) * 8
            return .integer(bits: bits, signed: try H5.tgetSign(type, at: at) == H5T_SGN_2)
        case H5T_STRING:
            return .string(variableLength: try H5.tisVariableStr(type, at: at))
        case H5T_COMPOUND: return .other("compound")
        case H5T_ENUM: return .other("enum")
        case H5T_ARRAY: return .other("array")
        case H5T_VLEN: return .other("vlen")
        case H5T_OPAQUE: return .other("opaque")
        case H5T_REFERENCE: return .other("reference")
        case H5T_BITFIELD: return .other("bitfield")
        case H5T_TIME: return .other("time")
        default: return .other("class \(cls.rawValue)")
        }
    }
}

/// The extent of a dataspace: a rank-0 scalar, a simple array (dimensions may be 0), or null (no data).
enum HDF5Extent: Equatable {
    case scalar
    case simple([Int])
    case null

    /// Element count (0 for null).
    var count: Int {
        switch self {
        case .scalar: return 1
        case .simple(let dims): return dims.reduce(1, *)
        case .null: return 0
        }
    }

    /// Reads the extent of an open dataspace id.
    static func of(_ space: hid_t, at: String) throws -> HDF5Extent {
        let cls = try H5.sgetSimpleExtentType(space, at: at)
        if cls == H5S_SCALAR { return .scalar }
        if cls == H5S_NULL { return .null }
        let rank = try H5.sgetSimpleExtentNdims(space, at: at)
        let dims = try H5.sgetSimpleExtentDims(space, rank: rank, at: at)
        // Every element count computed from a file's shape stays far from overflow: at most 2^40 elements.
        guard Limit.elementCount(ofDeclaredShape: dims) != nil else {
            throw hdf5Refuse("H5Sget_simple_extent_dims", at, "the declared shape \(dims) has more than 2^40 elements (a zero dimension aside)")
        }
        return .simple(dims)
    }
}

/// What a group member is.
public enum HDF5ObjectKind: Equatable, Sendable {
    case group, dataset, namedDatatype, other
}

/// One link in a group: its name (no slashes) and the kind of object it points to.
public struct HDF5Member: Equatable, Sendable, CustomStringConvertible {
    public var name: String
    public var kind: HDF5ObjectKind
    public init(name: String, kind: HDF5ObjectKind) { self.name = name; self.kind = kind }
    public var description: String { "\(name) (\(kind))" }
}

/// Shape, type and storage of a dataset.
public struct HDF5DatasetInfo: Equatable, Sendable {
    /// Dimensions, outermost first; `[]` for a rank-0 (scalar) dataset. Dimensions may be 0.
    public var shape: [Int]
    public var elementType: HDF5ElementType
    /// Chunk dimensions, or nil for contiguous/compact storage.
    public var chunkShape: [Int]?
    /// Whether the Fletcher32 checksum filter is applied (verified on every read).
    public var hasFletcher32: Bool
    /// Element count (product of `shape`; 1 for a scalar).
    public var count: Int { shape.reduce(1, *) }

    public init(shape: [Int], elementType: HDF5ElementType, chunkShape: [Int]? = nil, hasFletcher32: Bool = false) {
        self.shape = shape; self.elementType = elementType; self.chunkShape = chunkShape; self.hasFletcher32 = hasFletcher32
    }
}

/// How a tensor dataset is stored.
public struct HDF5WriteOptions: Equatable, Sendable {
    /// Store with chunking and the Fletcher32 checksum filter, so a read of damaged data fails instead
    /// of returning wrong numbers. Rank-0 (scalar) datasets cannot be chunked in HDF5: they are stored
    /// contiguously without a checksum even when this is set (see `HDF5DatasetInfo.hasFletcher32`).
    public var checksum: Bool
    /// Chunk dimensions (same rank as the tensor, each ≥ 1). nil: the whole tensor, halved along its
    /// leading dimensions until a chunk is at most `maxChunkBytes`. Only used when `checksum` is set.
    public var chunkShape: [Int]?
    /// Upper bound for automatically chosen chunks (HDF5's own limit is 4 GiB).
    public var maxChunkBytes: Int

    public init(checksum: Bool = false, chunkShape: [Int]? = nil, maxChunkBytes: Int = 4 << 20) {
        self.checksum = checksum; self.chunkShape = chunkShape; self.maxChunkBytes = maxChunkBytes
    }

    /// Plain contiguous storage, as h5py writes by default.
    public static let contiguous = HDF5WriteOptions()
    /// Chunked storage with Fletcher32 checksums: what checkpoints use.
    public static let checksummed = HDF5WriteOptions(checksum: true)

    /// The chunk dimensions for a tensor of `shape` with elements of `elementBytes` bytes.
    func chunk(for shape: [Int], elementBytes: Int) -> [Int] {
        if let chunkShape { return chunkShape }
        var chunk = shape.map { max($0, 1) }
        var axis = 0
        while axis < chunk.count && chunk.reduce(elementBytes, *) > maxChunkBytes {
            if chunk[axis] > 1 { chunk[axis] = (chunk[axis] + 1) / 2 } else { axis += 1 }
        }
        return chunk
    }
}

/// Joins an object path and a child name (absolute names are returned unchanged).
func hdf5Join(_ parent: String, _ name: String) -> String {
    if name.hasPrefix("/") { return name }
    if name.isEmpty || name == "." { return parent }
    return parent == "/" ? "/" + name : parent + "/" + name
}
