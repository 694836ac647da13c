// HDF5Dataset: an open dataset; its shape, type and storage, whole reads (float32 tensor / [Int]) and whole writes.
// Corresponds to h5py.Dataset (`shape`, `dtype`, `chunks`, `fletcher32`, `ds[()]`, `ds[...] = x`).
import CHDF5
import TensorCore

/// An open HDF5 dataset. Reads and writes always cover the whole dataset.
public final class HDF5Dataset: HDF5Object {
    /// The file this dataset belongs to (kept alive by the dataset).
    public let file: HDF5File
    /// Absolute object path, e.g. "/weights/class_predictor.weight".
    public let path: String
    /// The dataset id.
    public let rawID: hid_t

    init(file: HDF5File, path: String, id: hid_t) {
        self.file = file; self.path = path; self.rawID = id
    }

    deinit { try? H5.dclose(rawID, at: location) }

    /// `file:path`, where errors about this dataset point.
    public var location: String { file.path + ":" + path }

    /// Dimensions, outermost first; `[]` for a scalar dataset.
    public var shape: [Int] {
        get throws {
            switch try extent() {
            case .scalar: return []
            case .simple(let dims): return dims
            case .null: throw hdf5Refuse("H5Dget_space", location, "the dataset has a null dataspace (no data)")
            }
        }
    }

    /// The stored element type (H5Dget_type).
    public var elementType: HDF5ElementType {
        get throws {
            let type = try H5.dgetType(rawID, at: location)
            defer { try? H5.tclose(type, at: location) }
            return try HDF5ElementType.of(type, at: location)
        }
    }

    /// Shape, element type, chunking and whether Fletcher32 checksums protect the data.
    public var info: HDF5DatasetInfo {
        get throws {
            let shape = try self.shape
            let type = try elementType
            let dcpl = try H5.dgetCreatePlist(rawID, at: location)
            defer { try? H5.pclose(dcpl, at: location) }
            var chunk: [Int]? = nil
            if try H5.pgetLayout(dcpl, at: location) == H5D_CHUNKED {
                chunk = try H5.pgetChunk(dcpl, maxRank: max(shape.count, 1), at: location)
            }
            var fletcher = false
            for index in 0..<(try H5.pgetNfilters(dcpl, at: location)) {
                if try H5.pgetFilter(dcpl, index, at: location) == Int32(mp_h5z_filter_fletcher32()) { fletcher = true }
            }
            return HDF5DatasetInfo(shape: shape, elementType: type, chunkShape: chunk, hasFletcher32: fletcher)
        }
    }

    /// Byte offset of the raw data in the file for contiguous storage; nil when chunked or not yet written.
    public var storageOffset: UInt64? {
        get throws { try H5.dgetOffset(rawID, at: location) }
    }

    /// Refuses to read a dataset whose declared size exceeds the machine's memory (a damaged or hostile file can
    /// declare any shape in a few bytes) before anything is allocated.
    private func checkFitsInMemory(_ count: Int, bytesPerElement: Int) throws {
        let memory = physicalMemoryBytes()
        guard memory == 0 || count <= memory / bytesPerElement else {
            func gb(_ bytes: Double) -> Double { (bytes / 1e8).rounded() / 10 }
            throw hdf5Refuse("H5Dread", location, "the dataset declares \(count) elements (\(gb(Double(count) * Double(bytesPerElement))) GB), "
                             + "more than this machine's \(gb(Double(memory))) GB of memory")
        }
    }

    private func extent() throws -> HDF5Extent {
        let space = try H5.dgetSpace(rawID, at: location)
        defer { try? H5.sclose(space, at: location) }
        return try HDF5Extent.of(space, at: location)
    }

    // MARK: reading

    /// The whole dataset as a float32 tensor in stored (row-major) layout. Any floating-point type is
    /// accepted (float64 is converted by HDF5); integer or string data is refused.
    public func readTensor() throws -> Tensor {
        let type = try elementType
        guard case .float = type else {
            throw hdf5Refuse("H5Dread", location, "the dataset holds \(type), not floating-point data (read it with readInts)")
        }
        let shape = try self.shape
        try checkFitsInMemory(shape.reduce(1, *), bytesPerElement: 4)
        let tensor = Tensor(uninitialized: shape)
        if tensor.count > 0 {
            try H5.dread(rawID, memType: mp_h5t_native_float(), UnsafeMutableRawPointer(tensor.data), at: location)
        }
        return tensor
    }

    /// The whole integer dataset (any width, signed or unsigned) as `[Int]`, row-major.
    public func readInts() throws -> [Int] {
        let type = try elementType
        guard case .integer = type else {
            throw hdf5Refuse("H5Dread", location, "the dataset holds \(type), not integer data (read it with readTensor)")
        }
        let count = try shape.reduce(1, *)
        try checkFitsInMemory(count, bytesPerElement: 8)
        var values = [Int](repeating: 0, count: count)
        if !values.isEmpty {
            try values.withUnsafeMutableBytes { raw in
                try H5.dread(rawID, memType: mp_h5t_native_int64(), raw.baseAddress!, at: location)
            }
        }
        return values
    }

    // MARK: writing

    /// Overwrites the whole dataset with `tensor`, whose shape must equal the dataset's (H5Dwrite).
    public func write(_ tensor: Tensor) throws {
        let stored = try shape
        guard stored == tensor.shape else {
            throw hdf5Refuse("H5Dwrite", location, "tensor shape \(tensor.shape) differs from the dataset's \(stored)")
        }
        guard tensor.count > 0 else { return }
        try H5.dwrite(rawID, memType: mp_h5t_native_float(), UnsafeRawPointer(tensor.data), at: location)
    }

    /// Overwrites the whole dataset with `ints` (row-major, as many as the dataset has elements).
    public func write(ints: [Int]) throws {
        let count = try shape.reduce(1, *)
        guard count == ints.count else {
            throw hdf5Refuse("H5Dwrite", location, "\(ints.count) values for a dataset of \(count) elements")
        }
        guard count > 0 else { return }
        try ints.withUnsafeBytes { raw in
            try H5.dwrite(rawID, memType: mp_h5t_native_int64(), raw.baseAddress!, at: location)
        }
    }
}
