// Damage and failure paths of the HDF5 wrapper: Fletcher32 catches flipped bytes, truncated or foreign files and
// missing objects fail with errors naming them, and files we write are readable by the standard h5dump tool.
import Checkpoint
import Testing
import TensorCore

@Suite struct HDF5IntegrityTests {
    /// 64×16 values 1000, 1001, … (distinctive bytes to find in the file).
    static let pattern = Tensor((0..<1024).map { Float(1000 + $0) }, shape: [64, 16])

    @Test func fletcher32DetectsAFlippedByteAndNamesTheDataset() throws {
        let scratch = ScratchFile("fletcher")
        defer { scratch.remove() }
        do {
            let file = try HDF5File(create: scratch.path)
            try file.write(Self.pattern, to: "params/w", options: HDF5WriteOptions(checksum: true, chunkShape: [16, 16]))
            try file.write(Tensor([5, 6, 7], shape: [3]), to: "params/other", options: .checksummed)
            let info = try file.datasetInfo("params/w")
            #expect(info.hasFletcher32 && info.chunkShape == [16, 16])
            #expect(try file.dataset("params/w").storageOffset == nil)   // chunked: no single offset
        }
        // The intact file reads back exactly, checksums verified.
        #expect(try HDF5File(open: scratch.path).readTensor("params/w").values == Self.pattern.values)

        // Find the second chunk (elements 256…) by its bytes and flip one bit inside it.
        var bytes = try scratch.bytes
        let needle = littleEndianBytes(Array(Self.pattern.values[256..<260]))
        let offset = try #require(firstIndex(of: needle, in: bytes), "chunk data not found in the file")
        #expect(firstIndex(of: needle, in: Array(bytes[(offset + 1)...])) == nil)
        bytes[offset + 5] ^= 0x10
        try scratch.write(bytes, to: scratch.path)

        let file = try HDF5File(open: scratch.path)
        let error = #expect(throws: HDF5Error.self) { try file.readTensor("params/w") }
        #expect(error?.call == "H5Dread")
        #expect(error?.path == scratch.path + ":/params/w")
        #expect(error?.description.contains("params/w") == true)
        #expect(error?.message.isEmpty == false)
        print("flipped byte →", error.map(String.init(describing:)) ?? "no error")
        // Undamaged datasets of the same file still read.
        #expect(try file.readTensor("params/other").values == [5, 6, 7])
    }

    @Test func contiguousDataSitsAtItsStorageOffsetAndIsUnprotected() throws {
        let scratch = ScratchFile("offset")
        defer { scratch.remove() }
        let values = (0..<32).map { Float(-500 - $0) }
        do {
            let file = try HDF5File(create: scratch.path)
            let dataset = try file.write(Tensor(values, shape: [4, 8]), to: "plain")
            try file.flush()
            let offset = try #require(try dataset.storageOffset)
            let bytes = try scratch.bytes
            #expect(Array(bytes[Int(offset)..<Int(offset) + 128]) == littleEndianBytes(values))
        }
        // Without a checksum, a flipped byte silently changes a value: why checkpoints use `.checksummed`.
        let file0 = try HDF5File(open: scratch.path)
        let offset = Int(try #require(try file0.dataset("plain").storageOffset))
        try file0.close()
        var bytes = try scratch.bytes
        bytes[offset + 1] ^= 0x01
        try scratch.write(bytes, to: scratch.path)
        let damaged = try HDF5File(open: scratch.path).readTensor("plain").values
        #expect(damaged[0] != values[0] && Array(damaged[1...]) == Array(values[1...]))
    }

    @Test func truncatedFileFailsNamingTheFile() throws {
        let scratch = ScratchFile("truncate")
        defer { scratch.remove(".truncated", ".empty", ".garbage") }
        do {
            let file = try HDF5File(create: scratch.path)
            try file.write(Tensor.zeros([256, 256]), to: "weights/big", options: .checksummed)
            try file.setAttribute("note", string: "complete")
        }
        let bytes = try scratch.bytes
        #expect(bytes.count > 256 * 256 * 4)
        let truncated = scratch.sibling(".truncated")
        try scratch.write(Array(bytes.prefix(bytes.count / 2)), to: truncated)
        let error = #expect(throws: HDF5Error.self) { _ = try HDF5File(open: truncated) }
        #expect(error?.call == "H5Fopen")
        #expect(error?.path == truncated)
        #expect(error?.description.contains(truncated) == true)
        #expect(error?.message.lowercased().contains("truncated") == true)
        print("truncated file →", error.map(String.init(describing:)) ?? "no error")

        let empty = scratch.sibling(".empty")
        try scratch.write([], to: empty)
        let emptyError = #expect(throws: HDF5Error.self) { _ = try HDF5File(open: empty) }
        #expect(emptyError?.path == empty)

        let garbage = scratch.sibling(".garbage")
        try scratch.write([UInt8](repeating: 0x5A, count: 4096), to: garbage)
        let garbageError = #expect(throws: HDF5Error.self) { _ = try HDF5File(open: garbage) }
        #expect(garbageError?.path == garbage && garbageError?.message.isEmpty == false)
        print("not an HDF5 file →", garbageError.map(String.init(describing:)) ?? "no error")

        let nowhere = scratch.sibling(".does-not-exist")
        let missingError = #expect(throws: HDF5Error.self) { _ = try HDF5File(open: nowhere) }
        #expect(missingError?.path == nowhere)
    }

    @Test func missingObjectsFailNamingThem() throws {
        let scratch = ScratchFile("missing")
        defer { scratch.remove() }
        let file = try HDF5File(create: scratch.path)
        try file.write(Tensor([1], shape: [1]), to: "weights/present")

        let missing = #expect(throws: HDF5Error.self) { try file.readTensor("weights/absent.weight") }
        #expect(missing?.call == "H5Dopen2")
        #expect(missing?.path == scratch.path + ":/weights/absent.weight")
        #expect(missing?.message.isEmpty == false)
        print("missing dataset →", missing.map(String.init(describing:)) ?? "no error")

        let viaGroup = #expect(throws: HDF5Error.self) { try file.group("weights").readInts("absent") }
        #expect(viaGroup?.path == scratch.path + ":/weights/absent")

        let noGroup = #expect(throws: HDF5Error.self) { try file.group("optimizer/exp_avg") }
        #expect(noGroup?.call == "H5Gopen2" && noGroup?.path == scratch.path + ":/optimizer/exp_avg")

        // A group is not a dataset.
        #expect(throws: HDF5Error.self) { try file.dataset("weights") }
    }

    @Test func h5dumpReadsFilesWeWrite() throws {
        let scratch = ScratchFile("h5dump")
        defer { scratch.remove() }
        do {
            let file = try HDF5File(create: scratch.path)
            try file.setAttribute("mask2former_config", string: "{\"hidden_dim\": 32}")
            try file.setAttribute("step", int64: 1200)
            try file.setAttribute("rng", uint64s: [1, 2, 3])
            try file.write(Self.pattern, to: "model/backbone.res2.0.conv1.weight", options: .checksummed)
            try file.write(Tensor(scalar: 0.5), to: "model/logit_scale")
            try file.write(ints: [3, 1, 4], to: "optimizer/step")
            try file.dataset("optimizer/step").setAttribute("lr", double: 1e-4)
        }
        guard let header = try runH5dump(["-H", scratch.path]) else { return }
        #expect(header.status == 0, "h5dump -H failed: \(header.output)")
        for expected in ["DATASET \"backbone.res2.0.conv1.weight\"", "H5T_IEEE_F32LE", "H5T_STD_I64LE",
                         "ATTRIBUTE \"mask2former_config\"", "ATTRIBUTE \"rng\"", "GROUP \"optimizer\""] {
            #expect(header.output.contains(expected), "h5dump -H output lacks \(expected)")
        }
        // A full dump decodes every value, verifying the Fletcher32 checksums with the standard library.
        guard let full = try runH5dump([scratch.path]) else { return }
        #expect(full.status == 0, "h5dump failed: \(full.output.suffix(2000))")
        #expect(full.output.contains("2023") && full.output.contains("{\"hidden_dim\": 32}"))
    }

}
