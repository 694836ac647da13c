// HDF5Group: open/create (sub)groups, list members and all dataset paths, create and read datasets by path.
// Corresponds to h5py.Group (`require_group`, `keys()`, `visit`, `create_dataset`, `group[name][()]`).
import CHDF5
import TensorCore

/// An open HDF5 group. Names passed to its methods may be paths ("exp_avg/backbone.res2.0.conv1.weight")
/// relative to this group, or absolute ("/weights/…"). Dots in names are ordinary characters.
public final class HDF5Group: HDF5Object {
    /// The file this group belongs to (kept alive by the group).
    public let file: HDF5File
    /// Absolute object path, e.g. "/" or "/loss/prediction0".
    public let path: String
    /// The group id.
    public let rawID: hid_t

    init(file: HDF5File, path: String, id: hid_t) {
        self.file = file; self.path = path; self.rawID = id
    }

    deinit { try? H5.gclose(rawID, at: location) }

    /// `file:path`, where errors about this group point.
    public var location: String { file.path + ":" + path }

    /// `file:path/name`, where errors about a child point.
    func location(of name: String) -> String { file.path + ":" + hdf5Join(path, name) }

    // MARK: groups

    /// Opens the existing group at `name` (H5Gopen2).
    public func group(_ name: String) throws -> HDF5Group {
        HDF5Group(file: file, path: hdf5Join(path, name), id: try H5.gopen(rawID, name, at: location(of: name)))
    }

    /// Creates the group at `name`, with any missing intermediate groups (H5Gcreate2); fails if it exists.
    public func createGroup(_ name: String) throws -> HDF5Group {
        let at = location(of: name)
        let lcpl = try intermediateGroupsLinkList(at: at)
        defer { try? H5.pclose(lcpl, at: at) }
        return HDF5Group(file: file, path: hdf5Join(path, name), id: try H5.gcreate(rawID, name, lcpl: lcpl, at: at))
    }

    /// Opens the group at `name`, creating it and any missing parents when absent
    /// (e.g. "optimizer/exp_avg/<parameter name>" in a fresh file).
    public func requireGroup(_ name: String) throws -> HDF5Group {
        try contains(name) ? group(name) : createGroup(name)
    }

    /// Whether an object exists at the path `name` (each component is checked with H5Lexists, so a
    /// missing parent answers false instead of failing).
    public func contains(_ name: String) throws -> Bool {
        let components = name.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var prefix = name.hasPrefix("/") ? "/" : ""
        for (i, component) in components.enumerated() {
            prefix += (prefix.isEmpty || prefix == "/" ? "" : "/") + component
            guard try H5.lexists(rawID, prefix, at: location(of: prefix)) else { return false }
            if i + 1 < components.count {
                let info = try H5.ogetInfoByName(rawID, prefix, at: location(of: prefix))
                if info.type != H5O_TYPE_GROUP { return false }
            }
        }
        return true
    }

    /// Removes the link `name` (H5Ldelete). HDF5 does not reclaim the space inside the file.
    public func remove(_ name: String) throws {
        try H5.ldelete(rawID, name, at: location(of: name))
    }

    /// The kind of object at the path `name` (H5Oget_info_by_name).
    public func kind(of name: String) throws -> HDF5ObjectKind {
        switch try H5.ogetInfoByName(rawID, name, at: location(of: name)).type {
        case H5O_TYPE_GROUP: return .group
        case H5O_TYPE_DATASET: return .dataset
        case H5O_TYPE_NAMED_DATATYPE: return .namedDatatype
        default: return .other
        }
    }

    /// Opens the group or dataset at `name`, whichever it is (e.g. to read its attributes).
    public func object(_ name: String) throws -> any HDF5Object {
        switch try kind(of: name) {
        case .group: return try group(name)
        case .dataset: return try dataset(name)
        case let other:
            throw hdf5Refuse("H5Oopen", location(of: name), "the object is a \(other), not a group or dataset")
        }
    }

    /// The members of this group in name order, with the kind of object each one is.
    public func members() throws -> [HDF5Member] {
        let count = try H5.ggetInfoLinkCount(rawID, at: location)
        var result: [HDF5Member] = []
        result.reserveCapacity(count)
        for index in 0..<count {
            let name = try H5.lgetNameByIdx(rawID, index, at: location)
            result.append(HDF5Member(name: name, kind: try kind(of: name)))
        }
        return result
    }

    /// Every dataset below this group, as paths relative to it ("prediction0/assign_query0"), depth
    /// first in name order. (Hard-link cycles between groups are not detected; checkpoints have none.)
    public func datasetPaths() throws -> [String] {
        var result: [String] = []
        for member in try members() {
            switch member.kind {
            case .dataset: result.append(member.name)
            case .group: result += try group(member.name).datasetPaths().map { member.name + "/" + $0 }
            default: break
            }
        }
        return result
    }

    // MARK: datasets

    /// Opens the existing dataset at `name` (H5Dopen2). A missing dataset fails with an error naming it.
    public func dataset(_ name: String) throws -> HDF5Dataset {
        HDF5Dataset(file: file, path: hdf5Join(path, name), id: try H5.dopen(rawID, name, at: location(of: name)))
    }

    /// Shape, element type and storage of the dataset at `name`.
    public func datasetInfo(_ name: String) throws -> HDF5DatasetInfo { try dataset(name).info }

    /// The dataset at `name` as a float32 tensor in the stored (row-major) layout; float64 is converted.
    public func readTensor(_ name: String) throws -> Tensor { try dataset(name).readTensor() }

    /// The integer dataset at `name` as `[Int]`, row-major.
    public func readInts(_ name: String) throws -> [Int] { try dataset(name).readInts() }

    /// Writes `tensor` (shape preserved; rank 0 and zero-size dimensions allowed) as a new float32
    /// dataset at `name`, creating missing intermediate groups. Fails if `name` exists.
    @discardableResult
    public func write(_ tensor: Tensor, to name: String, options: HDF5WriteOptions = .contiguous) throws -> HDF5Dataset {
        let dataset = try createDataset(name, shape: tensor.shape, fileType: mp_h5t_ieee_f32le(), elementBytes: 4,
                                        options: options)
        try dataset.write(tensor)
        return dataset
    }

    /// Writes `ints` as a new int64 dataset of `shape` (default `[ints.count]`) at `name`.
    @discardableResult
    public func write(ints: [Int], shape: [Int]? = nil, to name: String,
                      options: HDF5WriteOptions = .contiguous) throws -> HDF5Dataset {
        let shape = shape ?? [ints.count]
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == ints.count else {
            throw hdf5Refuse("H5Dcreate2", location(of: name), "\(ints.count) values for shape \(shape)")
        }
        let dataset = try createDataset(name, shape: shape, fileType: mp_h5t_std_i64le(), elementBytes: 8,
                                        options: options)
        try dataset.write(ints: ints)
        return dataset
    }

    /// Creates a dataset (H5Dcreate2) with intermediate groups, chunked with Fletcher32 when asked.
    private func createDataset(_ name: String, shape: [Int], fileType: hid_t, elementBytes: Int,
                               options: HDF5WriteOptions) throws -> HDF5Dataset {
        let at = location(of: name)
        let space = shape.isEmpty ? try H5.screateScalar(at: at) : try H5.screateSimple(shape, at: at)
        defer { try? H5.sclose(space, at: at) }
        let lcpl = try intermediateGroupsLinkList(at: at)
        defer { try? H5.pclose(lcpl, at: at) }
        let dcpl = try H5.pcreate(mp_h5p_dataset_create(), at: at)
        defer { try? H5.pclose(dcpl, at: at) }
        if options.checksum && !shape.isEmpty {
            let chunk = options.chunk(for: shape, elementBytes: elementBytes)
            guard chunk.count == shape.count, chunk.allSatisfy({ $0 >= 1 }) else {
                throw hdf5Refuse("H5Pset_chunk", at, "chunk shape \(chunk) does not fit dataset shape \(shape)")
            }
            try H5.psetChunk(dcpl, chunk, at: at)
            try H5.psetFletcher32(dcpl, at: at)
        }
        let id = try H5.dcreate(rawID, name, type: fileType, space: space, lcpl: lcpl, dcpl: dcpl, at: at)
        return HDF5Dataset(file: file, path: hdf5Join(path, name), id: id)
    }

    /// A link-creation property list that creates missing intermediate groups.
    private func intermediateGroupsLinkList(at: String) throws -> hid_t {
        let lcpl = try H5.pcreate(mp_h5p_link_create(), at: at)
        do {
            try H5.psetCreateIntermediateGroup(lcpl, true, at: at)
        } catch {
            try? H5.pclose(lcpl, at: at)
            throw error
        }
        return lcpl
    }
}
