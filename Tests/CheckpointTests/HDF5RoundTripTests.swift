// Round trips through the HDF5 wrapper: float32 tensors (scalar, empty, chunked), int64, attributes, groups, listing.
// Mirrors what h5py does with `create_dataset`, `attrs`, `require_group` and `visit`.
import CHDF5
import Checkpoint
import Foundation
import Testing
import TensorCore

@Suite struct HDF5RoundTripTests {
    @Test func float32TensorsKeepValuesAndShapes() throws {
        let scratch = ScratchFile("tensors")
        defer { scratch.remove() }
        let matrix = Tensor((0..<24).map { Float($0) * 0.25 - 3 }, shape: [2, 3, 4])
        let scalar = Tensor(scalar: -7.5)
        let empty = Tensor([], shape: [0, 3])
        let vector = Tensor([1, .infinity, -.infinity, .nan, -0.0, Float.leastNonzeroMagnitude], shape: [6])
        do {
            let file = try HDF5File(create: scratch.path)
            try file.write(matrix, to: "a/matrix")
            try file.write(scalar, to: "scalar")
            try file.write(empty, to: "empty")
            try file.write(vector, to: "vector", options: .checksummed)
            try file.write(scalar, to: "scalar_checksummed", options: .checksummed)
            try file.write(empty, to: "empty_checksummed", options: .checksummed)
            try file.close()
        }
        let file = try HDF5File(open: scratch.path)
        let m = try file.readTensor("a/matrix")
        #expect(m.shape == [2, 3, 4] && m.values == matrix.values)
        let s = try file.readTensor("scalar")
        #expect(s.shape == [] && s.values == [-7.5])
        #expect(try file.readTensor("scalar_checksummed").values == [-7.5])
        for name in ["empty", "empty_checksummed"] {
            let e = try file.readTensor(name)
            #expect(e.shape == [0, 3] && e.count == 0)
        }
        let v = try file.readTensor("vector").values
        #expect(v[0] == 1 && v[1] == .infinity && v[2] == -.infinity && v[3].isNaN)
        #expect(v[4] == 0 && v[4].sign == .minus && v[5] == .leastNonzeroMagnitude)

        let info = try file.datasetInfo("a/matrix")
        #expect(info.shape == [2, 3, 4] && info.elementType == .float32 && info.chunkShape == nil && !info.hasFletcher32)
        #expect(try file.datasetInfo("scalar") == HDF5DatasetInfo(shape: [], elementType: .float32, chunkShape: nil,
                                                                  hasFletcher32: false))
        // Scalars cannot be chunked in HDF5, so they carry no checksum (documented on HDF5WriteOptions).
        #expect(try file.datasetInfo("scalar_checksummed").hasFletcher32 == false)
        #expect(try file.datasetInfo("vector").hasFletcher32)
        #expect(try file.datasetInfo("empty_checksummed").shape == [0, 3])
    }

    @Test func overwritingADatasetNeedsTheSameShape() throws {
        let scratch = ScratchFile("overwrite")
        defer { scratch.remove() }
        let file = try HDF5File(create: scratch.path)
        let dataset = try file.write(Tensor([1, 2, 3, 4], shape: [2, 2]), to: "w", options: .checksummed)
        try dataset.write(Tensor([5, 6, 7, 8], shape: [2, 2]))
        #expect(try dataset.readTensor().values == [5, 6, 7, 8])
        #expect(throws: HDF5Error.self) { try dataset.write(Tensor([1, 2, 3, 4], shape: [4])) }
        // Creating an existing name fails with HDF5's own message.
        let error = #expect(throws: HDF5Error.self) { try file.write(Tensor([1], shape: [1]), to: "w") }
        #expect(error?.call == "H5Dcreate2" && error?.path == scratch.path + ":/w")
        try file.root.remove("w")
        #expect(try file.contains("w") == false)
    }

    @Test func checksummedTensorsAreChunkedAsAsked() throws {
        let scratch = ScratchFile("chunks")
        defer { scratch.remove() }
        let file = try HDF5File(create: scratch.path)
        let big = Tensor.zeros([1024, 2048])   // 8 MiB: split along the leading dimension to ≤ 4 MiB chunks
        try file.write(big, to: "big", options: .checksummed)
        #expect(try file.datasetInfo("big").chunkShape == [512, 2048])
        let small = Tensor((0..<60).map { Float($0) }, shape: [3, 4, 5])
        try file.write(small, to: "small", options: .checksummed)
        #expect(try file.datasetInfo("small").chunkShape == [3, 4, 5])
        try file.write(small, to: "tiled", options: HDF5WriteOptions(checksum: true, chunkShape: [1, 2, 5]))
        let info = try file.datasetInfo("tiled")
        #expect(info.chunkShape == [1, 2, 5] && info.hasFletcher32)
        #expect(try file.readTensor("tiled").values == small.values)
        #expect(throws: HDF5Error.self) {
            try file.write(small, to: "bad", options: HDF5WriteOptions(checksum: true, chunkShape: [1, 2]))
        }
    }

    @Test func int64DatasetsRoundTrip() throws {
        let scratch = ScratchFile("ints")
        defer { scratch.remove() }
        let values = [0, -1, 42, Int.max, Int.min, 7]
        do {
            let file = try HDF5File(create: scratch.path)
            try file.write(ints: values, to: "target/classes")
            try file.write(ints: values, shape: [2, 3], to: "target/grid", options: .checksummed)
            try file.write(ints: [], to: "target/none")
            #expect(throws: HDF5Error.self) { try file.write(ints: [1, 2, 3], shape: [2, 2], to: "bad") }
        }
        let file = try HDF5File(open: scratch.path)
        #expect(try file.readInts("target/classes") == values)
        #expect(try file.readInts("target/grid") == values)
        #expect(try file.datasetInfo("target/grid").shape == [2, 3])
        #expect(try file.datasetInfo("target/grid").elementType == .int64)
        #expect(try file.readInts("target/none") == [])
        // Types are not silently reinterpreted.
        #expect(throws: HDF5Error.self) { try file.readTensor("target/classes") }
    }

    @Test func float64AndInt32DatasetsAreConverted() throws {
        let scratch = ScratchFile("convert")
        defer { scratch.remove() }
        // Write float64 and int32 datasets with the C API directly (the wrapper only writes float32/int64).
        do {
            let file = try HDF5File(create: scratch.path)
            var dims: [hsize_t] = [2, 2]
            let space = H5Screate_simple(2, &dims, nil)
            defer { H5Sclose(space) }
            let d64 = H5Dcreate2(file.rawID, "f64", mp_h5t_ieee_f64le(), space, mp_h5p_default(), mp_h5p_default(), mp_h5p_default())
            let doubles: [Double] = [0.1, -2.5, 1e30, 3]
            #expect(H5Dwrite(d64, mp_h5t_native_double(), mp_h5s_all(), mp_h5s_all(), mp_h5p_default(), doubles) >= 0)
            H5Dclose(d64)
            let d32 = H5Dcreate2(file.rawID, "i32", mp_h5t_std_i32le(), space, mp_h5p_default(), mp_h5p_default(), mp_h5p_default())
            let ints: [Int32] = [1, -2, Int32.max, Int32.min]
            #expect(H5Dwrite(d32, mp_h5t_native_int32(), mp_h5s_all(), mp_h5s_all(), mp_h5p_default(), ints) >= 0)
            H5Dclose(d32)
        }
        let file = try HDF5File(open: scratch.path)
        #expect(try file.datasetInfo("f64").elementType == .float64)
        let t = try file.readTensor("f64")
        #expect(t.shape == [2, 2] && t.values == [Float(0.1), -2.5, Float(1e30), 3])
        #expect(try file.datasetInfo("i32").elementType == .int32)
        #expect(try file.readInts("i32") == [1, -2, Int(Int32.max), Int(Int32.min)])
    }

    @Test func attributesOfEveryKindOnFilesGroupsAndDatasets() throws {
        let scratch = ScratchFile("attrs")
        defer { scratch.remove() }
        let text = "{\"loss\": 1.5, \"name\": \"Mask2Former — ünïcode\"}"
        do {
            let file = try HDF5File(create: scratch.path)
            let group = try file.createGroup("meta")
            let dataset = try group.write(Tensor([1, 2], shape: [2]), to: "x")
            let owners: [any HDF5Object] = [file, group, dataset]
            for owner in owners {
                try owner.setAttribute("json", string: text)
                try owner.setAttribute("fixed", string: "fixed-length é", fixedLength: true)
                try owner.setAttribute("empty", string: "")
                try owner.setAttribute("emptyFixed", string: "", fixedLength: true)
                try owner.setAttribute("step", int64: Int64.min)
                try owner.setAttribute("lr", double: 1e-4)
                try owner.setAttribute("rng", uint64s: [0, 1, UInt64.max, 0x9E37_79B9_7F4A_7C15])
                try owner.setAttribute("none", uint64s: [])
                try owner.setAttribute("replaced", int64: 1)
                try owner.setAttribute("replaced", string: "now a string")
            }
        }
        let file = try HDF5File(open: scratch.path)
        let owners: [any HDF5Object] = [file, try file.group("meta"), try file.dataset("meta/x")]
        for owner in owners {
            #expect(try owner.stringAttribute("json") == text)
            #expect(try owner.stringAttribute("fixed") == "fixed-length é")
            #expect(try owner.stringAttribute("empty") == "")
            #expect(try owner.stringAttribute("emptyFixed") == "")
            #expect(try owner.int64Attribute("step") == Int64.min)
            #expect(try owner.doubleAttribute("lr") == 1e-4)
            #expect(try owner.doubleAttribute("step") == Double(Int64.min))
            #expect(try owner.uint64ArrayAttribute("rng") == [0, 1, UInt64.max, 0x9E37_79B9_7F4A_7C15])
            #expect(try owner.uint64ArrayAttribute("none") == [])
            #expect(try owner.stringAttribute("replaced") == "now a string")
            #expect(try owner.attributeType("json") == .string(variableLength: true))
            #expect(try owner.attributeType("fixed") == .string(variableLength: false))
            #expect(try owner.attributeType("lr") == .float64)
            #expect(try owner.attributeType("rng") == .uint64)
            #expect(try owner.attributeNames() == ["empty", "emptyFixed", "fixed", "json", "lr", "none", "replaced", "rng", "step"])
            #expect(try owner.hasAttribute("lr") && !(try owner.hasAttribute("missing")))
            // Wrong kinds and missing attributes fail with the attribute's name in the error.
            let wrong = #expect(throws: HDF5Error.self) { try owner.stringAttribute("lr") }
            #expect(wrong?.path.contains("attribute \"lr\"") == true)
            #expect(throws: HDF5Error.self) { try owner.int64Attribute("lr") }
            #expect(throws: HDF5Error.self) { try owner.doubleAttribute("json") }
            let missing = #expect(throws: HDF5Error.self) { try owner.doubleAttribute("missing") }
            #expect(missing?.call == "H5Aopen" && missing?.path.contains("\"missing\"") == true)
        }
    }

    @Test func nestedGroupsAndRecursiveListing() throws {
        let scratch = ScratchFile("groups")
        defer { scratch.remove() }
        do {
            let file = try HDF5File(create: scratch.path)
            let expAvg = try file.requireGroup("optimizer/exp_avg")
            #expect(expAvg.path == "/optimizer/exp_avg")
            try expAvg.write(Tensor([1], shape: [1]), to: "backbone.res2.0.conv1.weight")
            // Intermediate groups are created by a dataset write as well.
            try file.write(Tensor([2], shape: [1]), to: "optimizer/exp_avg_sq/backbone.res2.0.conv1.weight")
            try file.write(ints: [3], to: "optimizer/step")
            try file.write(Tensor([4], shape: [1]), to: "model/sem_seg_head.predictor.query_feat.weight")
            #expect(try file.requireGroup("optimizer/exp_avg").path == "/optimizer/exp_avg")   // opens, not recreates
            _ = try file.createGroup("empty/deeper")
            #expect(throws: HDF5Error.self) { try file.createGroup("optimizer") }
        }
        let file = try HDF5File(open: scratch.path)
        #expect(try file.members() == [HDF5Member(name: "empty", kind: .group),
                                       HDF5Member(name: "model", kind: .group),
                                       HDF5Member(name: "optimizer", kind: .group)])
        #expect(try file.group("optimizer").members().map(\.kind) == [.group, .group, .dataset])
        #expect(try file.datasetPaths() == [
            "model/sem_seg_head.predictor.query_feat.weight",
            "optimizer/exp_avg/backbone.res2.0.conv1.weight",
            "optimizer/exp_avg_sq/backbone.res2.0.conv1.weight",
            "optimizer/step",
        ])
        #expect(try file.group("optimizer").datasetPaths().count == 3)
        #expect(try file.group("empty").datasetPaths() == [])
        #expect(try file.contains("optimizer/exp_avg/backbone.res2.0.conv1.weight"))
        #expect(try file.contains("/optimizer/exp_avg"))
        #expect(try file.contains("optimizer/nothing/here") == false)
        #expect(try file.contains("optimizer/step/child") == false)   // a dataset has no children
        #expect(try file.root.kind(of: "optimizer/step") == .dataset)
        #expect(try file.group("optimizer/exp_avg").readTensor("backbone.res2.0.conv1.weight").values == [1])
        #expect(try file.readTensor("/optimizer/exp_avg_sq/backbone.res2.0.conv1.weight").values == [2])
    }

    /// MaskPilot opens files without HDF5's flock-based locking (see CHDF5/shim.h): another process (here h5dump,
    /// which locks by default) can read a file this process holds open for writing, and file systems without flock
    /// work.
    @Test func filesAreOpenedWithoutHDF5FileLocking() throws {
        let scratch = ScratchFile("nolock")
        defer { scratch.remove() }
        let file = try HDF5File(create: scratch.path)
        try file.write(Tensor([1, 2], shape: [2]), to: "x")
        try file.flush()
        let dump = try #require(try runH5dump(["-H", scratch.path]))
        #expect(dump.status == 0, "h5dump could not open a file held open for writing: \(dump.output)")
        #expect(dump.output.contains("DATASET \"x\""))
        try file.close()
    }

    @Test func filesCloseExplicitlyAndCreateExclusively() throws {
        let scratch = ScratchFile("modes")
        defer { scratch.remove() }
        let file = try HDF5File(create: scratch.path)
        try file.write(Tensor([1, 2], shape: [2]), to: "x")
        try file.flush()
        try file.close()
        try file.close()   // harmless
        #expect(!file.isOpen)
        let closed = #expect(throws: HDF5Error.self) { _ = try file.root }
        #expect(closed?.message.contains("closed") == true)

        let exclusive = #expect(throws: HDF5Error.self) { _ = try HDF5File(create: scratch.path, mode: .exclusive) }
        #expect(exclusive?.call == "H5Fcreate" && exclusive?.path == scratch.path)

        // Read-only files refuse writes with HDF5's message; read-write files accept them.
        let readOnly = try HDF5File(open: scratch.path)
        #expect(throws: HDF5Error.self) { try readOnly.write(Tensor([3], shape: [1]), to: "y") }
        try readOnly.close()
        do {
            let readWrite = try HDF5File(open: scratch.path, mode: .readWrite)
            try readWrite.write(Tensor([3], shape: [1]), to: "y")
            try readWrite.setAttribute("step", int64: 12)
        }
        do {
            let reopened = try HDF5File(open: scratch.path)
            #expect(try reopened.datasetPaths() == ["x", "y"])
            #expect(try reopened.int64Attribute("step") == 12)
        }

        // Truncation replaces the contents.
        _ = try HDF5File(create: scratch.path, mode: .truncate)
        #expect(try HDF5File(open: scratch.path).datasetPaths() == [])
    }
}
