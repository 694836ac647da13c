// Checkpoint files and folders: exact round trip, the .tmp/rename protocol, every bad-checkpoint case failing
// with an error naming the file and object, retention, resume fallback to the newest intact checkpoint, h5dump.
import Checkpoint
import Foundation
import Testing
import TensorCore

/// A fresh scratch folder, removed by `remove()`.
private struct ScratchFolder {
    let path: String
    init(_ tag: String) {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("maskpilot-ckpt-\(tag)-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
    func names() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
}

/// Distinctive sample contents; `seed` changes every value (so files of different iterations differ).
private func sampleContents(iteration: Int = 1234, seed: Float = 0) -> CheckpointContents {
    func ramp(_ shape: [Int], _ start: Float) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor((0..<n).map { start + seed + Float($0) * 0.37 - Float.pi }, shape: shape)
    }
    let model: [(String, Tensor)] = [
        ("backbone.stem.conv1.weight", ramp([4, 3, 3, 3], 1000)),          // [Cout, Cin, kh, kw]
        ("backbone.stem.conv1.norm.weight", ramp([4], 2000)),
        ("sem_seg_head.predictor.query_feat.weight", ramp([5, 6], 3000)),
        ("sem_seg_head.predictor.class_embed.bias", Tensor([.nan, .infinity, -0.0, 1e-42], shape: [4])),
        ("empty", Tensor(uninitialized: [0, 3])),
    ]
    var optimizer: [(String, Tensor)] = []
    for (name, t) in model where name != "empty" {
        optimizer.append(("exp_avg/" + name, ramp(t.shape, 4000)))
        optimizer.append(("exp_avg_sq/" + name, ramp(t.shape, 5000)))
    }
    let trainer = CheckpointTrainerState(
        iteration: iteration, epoch: 3, position: 17,
        schedule: ["base_lr": .double(1e-4), "last_lr": .double(3.25e-5), "name": .string("poly"), "warmup_iters": .int(10)],
        rng: ["global": [42, 0, 99, 3], "rank0/data": [42, 1, 7, 0], "rank1/noise": [UInt64.max, 2, 1 << 40, 2]])
    let meta = CheckpointMeta(configYAML: "model:\n  decoder:\n    hidden_dim: 32\nseed: 42\n", worldSize: 2,
                              parameterSignature: 0xdead_beef_0123_4567, maskpilotVersion: "0.1.0",
                              createdAt: "2025-01-31T12:00:00Z")
    return CheckpointContents(model: model, optimizer: optimizer, optimizerStep: iteration, trainer: trainer, meta: meta)
}

private func bits(_ t: Tensor) -> [UInt32] { t.values.map(\.bitPattern) }

private func expectSame(_ a: CheckpointContents, _ b: CheckpointContents) {
    #expect(a.model.map(\.0) == b.model.map(\.0))
    for ((_, x), (_, y)) in zip(a.model, b.model) { #expect(x.shape == y.shape && bits(x) == bits(y)) }
    #expect(a.optimizer.map(\.0) == b.optimizer.map(\.0))
    for ((_, x), (_, y)) in zip(a.optimizer, b.optimizer) { #expect(x.shape == y.shape && bits(x) == bits(y)) }
    #expect(a.optimizerStep == b.optimizerStep)
    #expect(a.trainer == b.trainer)
    #expect(a.meta == b.meta)
}

/// The error `body` throws as a CheckpointError (recording an issue if it throws something else or nothing).
private func checkpointError(_ body: () throws -> Void) -> CheckpointError? {
    do { try body() } catch let e as CheckpointError { return e } catch {
        Issue.record("expected a CheckpointError, got \(type(of: error)): \(error)")
        return nil
    }
    Issue.record("expected a CheckpointError, nothing was thrown")
    return nil
}


@Suite struct CheckpointFileTests {
    @Test func roundTripIsBitwiseWithEveryAttribute() throws {
        let folder = ScratchFolder("roundtrip")
        defer { folder.remove() }
        let path = folder.file("model_0001234.h5")
        let contents = sampleContents()
        try writeCheckpoint(contents, to: path)
        #expect(folder.names() == ["model_0001234.h5"])   // no .tmp left behind
        let back = try readCheckpoint(path: path)
        expectSame(contents, back)
        #expect(back.trainer.rng["rank0/data"] == [42, 1, 7, 0])
        #expect(back.meta.formatVersion == 1)
        // Every non-scalar dataset carries a Fletcher32 checksum; layout as documented.
        let file = try HDF5File(open: path)
        let datasets = try file.datasetPaths()
        #expect(datasets.count == contents.model.count + contents.optimizer.count)
        for d in datasets { #expect(try file.datasetInfo(d).hasFletcher32, "\(d) has no checksum") }
        #expect(datasets.contains("model/backbone.stem.conv1.weight"))
        #expect(datasets.contains("optimizer/exp_avg_sq/backbone.stem.conv1.weight"))
        #expect(try file.datasetInfo("model/backbone.stem.conv1.weight").shape == [4, 3, 3, 3])
        #expect(try file.group("optimizer").int64Attribute("step") == 1234)
        #expect(try file.group("trainer").int64Attribute("iteration") == 1234)
        #expect(try file.group("meta").stringAttribute("parameter_signature") == "deadbeef01234567")
    }

    /// The digest follows the weights only: the same after a write and read (other timestamps, any order), blind to
    /// the optimizer and trainer state, changed by one flipped bit, a renamed tensor or a reshaped one.
    @Test func modelDigestFingerprintsTheWeightsOnly() throws {
        let folder = ScratchFolder("digest")
        defer { folder.remove() }
        let contents = sampleContents()
        let path = folder.file("model.h5")
        try writeCheckpoint(contents, to: path)
        let digest = contents.modelDigest
        #expect(try readCheckpoint(path: path).modelDigest == digest)
        var other = sampleContents(iteration: 99)
        other.model.reverse()
        other.optimizer = []
        other.meta.createdAt = "2030-01-01T00:00:00Z"
        #expect(other.modelDigest == digest)

        var flipped = contents
        var values = flipped.model[1].1.values
        values[0] = Float(bitPattern: values[0].bitPattern ^ 1)
        flipped.model[1].1 = Tensor(values, shape: flipped.model[1].1.shape)
        var renamed = contents
        renamed.model[1].0 += "x"
        var reshaped = contents
        reshaped.model[2].1 = Tensor(reshaped.model[2].1.values, shape: [6, 5])
        let digests = [digest, flipped.modelDigest, renamed.modelDigest, reshaped.modelDigest, sampleContents(seed: 1).modelDigest]
        #expect(Set(digests).count == digests.count)
    }

    @Test func aFailedWriteLeavesNoFinalFileAndThePreviousOneIntact() throws {
        let folder = ScratchFolder("atomic")
        defer { folder.remove() }
        let path = folder.file("model_0000010.h5")
        // A write that fails midway (the second tensor repeats a name) leaves neither the final file nor a .tmp.
        var bad = sampleContents(iteration: 10)
        bad.optimizer.append(bad.optimizer[0])
        let error = checkpointError { try writeCheckpoint(bad, to: path) }
        #expect(error?.problem.contains("twice") == true)
        #expect(folder.names().isEmpty)
        // An HDF5-level failure in the middle of the file (a name that is a group and a dataset) too.
        var clash = sampleContents(iteration: 10)
        clash.optimizer.append(("exp_avg", Tensor([1], shape: [1])))
        #expect(throws: (any Error).self) { try writeCheckpoint(clash, to: path) }
        #expect(folder.names().isEmpty)

        // With a previous complete file under the final name, a failing rewrite leaves it untouched.
        let good = sampleContents(iteration: 10, seed: 1)
        try writeCheckpoint(good, to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(throws: (any Error).self) { try writeCheckpoint(clash, to: path) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(folder.names() == ["model_0000010.h5"])
        expectSame(good, try readCheckpoint(path: path))

        // A stale .tmp of a crashed write is neither listed nor in the way of the next write.
        try Data("half a checkpoint".utf8).write(to: URL(fileURLWithPath: folder.file("model_0000020.h5.tmp")))
        #expect(try CheckpointDirectory(folder.path).checkpoints().map(\.name) == ["model_0000010.h5"])
        try writeCheckpoint(sampleContents(iteration: 20), to: folder.file("model_0000020.h5"))
        #expect(folder.names() == ["model_0000010.h5", "model_0000020.h5"])
    }

    @Test func truncatedFileFailsNamingIt() throws {
        let folder = ScratchFolder("truncated")
        defer { folder.remove() }
        let path = folder.file("model_0000005.h5")
        try writeCheckpoint(sampleContents(), to: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        for keep in [bytes.count / 2, bytes.count - 100, 0] {
            try bytes.prefix(keep).write(to: URL(fileURLWithPath: path))
            let error = checkpointError { _ = try readCheckpoint(path: path) }
            #expect(error?.file == path)
            #expect(error?.description.hasPrefix(path) == true)
            print("truncated to \(keep) bytes →", error.map(String.init(describing:)) ?? "-")
        }
        let missing = checkpointError { _ = try readCheckpoint(path: folder.file("nothing.h5")) }
        #expect(missing?.problem == "no such file")
    }

    @Test func flippedByteFailsTheChecksumNamingTheDataset() throws {
        let folder = ScratchFolder("flip")
        defer { folder.remove() }
        let path = folder.file("model_0000005.h5")
        let contents = sampleContents()
        try writeCheckpoint(contents, to: path)
        let target = contents.model[2]   // sem_seg_head.predictor.query_feat.weight
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let needle = target.1.values.prefix(4).flatMap { v -> [UInt8] in
            withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) }
        }
        let offset = try #require(firstIndex(of: needle, in: bytes), "dataset bytes not found")
        bytes[offset + 6] ^= 0x04
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let error = checkpointError { _ = try readCheckpoint(path: path) }
        #expect(error?.file == path)
        #expect(error?.object == "/model/" + target.0)
        #expect(error?.description.contains("checksum") == true)
        print("flipped byte →", error.map(String.init(describing:)) ?? "-")
        // The scan used by `checkpoint inspect` reports exactly that dataset and verifies the others.
        let reports = try scanCheckpoint(path: path)
        #expect(reports.count == contents.model.count + contents.optimizer.count)
        #expect(reports.filter { $0.failure != nil }.map(\.path) == ["/model/" + target.0])
    }

    @Test func missingDatasetOrGroupFailsNamingIt() throws {
        let folder = ScratchFolder("missing")
        defer { folder.remove() }
        let path = folder.file("model_0000005.h5")
        try writeCheckpoint(sampleContents(), to: path)
        do {
            let file = try HDF5File(open: path, mode: .readWrite)
            try file.group("optimizer").remove("exp_avg_sq/sem_seg_head.predictor.query_feat.weight")
        }
        let error = checkpointError { _ = try readCheckpoint(path: path) }
        #expect(error?.file == path)
        #expect(error?.object == "/optimizer/exp_avg_sq/sem_seg_head.predictor.query_feat.weight")
        #expect(error?.problem.hasPrefix("missing dataset") == true)

        try writeCheckpoint(sampleContents(), to: path)
        do {
            let file = try HDF5File(open: path, mode: .readWrite)
            try file.root.remove("trainer")
        }
        let groupError = checkpointError { _ = try readCheckpoint(path: path) }
        #expect(groupError?.file == path && groupError?.object == "/trainer")
        #expect(groupError?.problem.hasPrefix("missing group") == true)

        try writeCheckpoint(sampleContents(), to: path)
        do {
            let file = try HDF5File(open: path, mode: .readWrite)
            try file.group("trainer").removeAttribute("epoch")
        }
        let attributeError = checkpointError { _ = try readCheckpoint(path: path) }
        #expect(attributeError?.object == "/trainer (attribute \"epoch\")" && attributeError?.problem == "missing attribute")
    }

    @Test func unknownFormatVersionIsRefused() throws {
        let folder = ScratchFolder("version")
        defer { folder.remove() }
        let path = folder.file("model_0000005.h5")
        var future = sampleContents()
        future.meta.formatVersion = 7
        try writeCheckpoint(future, to: path)
        let error = checkpointError { _ = try readCheckpoint(path: path) }
        #expect(error?.file == path)
        #expect(error?.problem.contains("unknown checkpoint format version 7") == true)
        // A plain HDF5 file (no /meta) is not taken for a checkpoint.
        let plain = folder.file("weights.h5")
        do { try HDF5File(create: plain).write(Tensor([1, 2], shape: [2]), to: "model/w") }
        let plainError = checkpointError { _ = try readCheckpoint(path: plain) }
        #expect(plainError?.file == plain && plainError?.object == "/meta")
    }

    @Test func retentionKeepsTheNewestAndNeverThePointedFile() throws {
        let folder = ScratchFolder("keep")
        defer { folder.remove() }
        let dir = CheckpointDirectory(folder.path)
        for iteration in [100, 200, 300, 400, 500] {
            try dir.save(sampleContents(iteration: iteration), name: CheckpointDirectory.fileName(iteration: iteration), keep: 3)
            #expect(try dir.pointer() == CheckpointDirectory.fileName(iteration: iteration))
        }
        #expect(folder.names() == ["last_checkpoint", "model_0000300.h5", "model_0000400.h5", "model_0000500.h5"])
        try dir.save(sampleContents(iteration: 600), name: CheckpointDirectory.finalName, keep: 3)
        #expect(try dir.checkpoints().map(\.name) == ["model_final.h5", "model_0000500.h5", "model_0000400.h5"])
        #expect(try String(contentsOfFile: dir.pointerPath, encoding: .utf8) == "model_final.h5\n")

        // The pointed file survives even when it is not among the newest (e.g. set back by hand).
        try dir.setPointer("model_0000400.h5")
        let deleted = try dir.prune(keep: 1)
        #expect(deleted.map { ($0 as NSString).lastPathComponent } == ["model_0000500.h5"])
        #expect(try dir.checkpoints().map(\.name) == ["model_final.h5", "model_0000400.h5"])
        // keep 0 keeps every file (detectron2's max_to_keep=None).
        try dir.save(sampleContents(iteration: 700), name: CheckpointDirectory.fileName(iteration: 700), keep: 0)
        try dir.save(sampleContents(iteration: 800), name: CheckpointDirectory.fileName(iteration: 800), keep: 0)
        #expect(try dir.checkpoints().map(\.name) == ["model_final.h5", "model_0000800.h5", "model_0000700.h5", "model_0000400.h5"])
        #expect(CheckpointDirectory.parse(name: "model_0001234.h5") == .iteration(1234))
        #expect(CheckpointDirectory.parse(name: "model_final.h5") == .final)
        #expect(CheckpointDirectory.parse(name: "model_0001234.h5.tmp") == nil)
    }

    @Test func resumeFallsBackToTheNewestIntactCheckpoint() throws {
        let folder = ScratchFolder("resume")
        defer { folder.remove() }
        let dir = CheckpointDirectory(folder.path)
        for iteration in [10, 20, 30] {
            try dir.save(sampleContents(iteration: iteration), name: CheckpointDirectory.fileName(iteration: iteration), keep: 5)
        }
        let normal = try resolveResume(directory: folder.path)
        #expect(normal.path == folder.file("model_0000030.h5") && normal.warnings.isEmpty)
        #expect(normal.contents.trainer.iteration == 30)

        // Damage the pointed file: resume uses model_0000020.h5 and says so.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: folder.file("model_0000030.h5")))
        try bytes.prefix(bytes.count / 3).write(to: URL(fileURLWithPath: folder.file("model_0000030.h5")))
        let fallback = try resolveResume(directory: folder.path)
        #expect(fallback.path == folder.file("model_0000020.h5"))
        #expect(fallback.contents.trainer.iteration == 20)
        #expect(fallback.warnings.contains { $0.contains("model_0000030.h5") && $0.contains("falling back") })
        print("fallback warnings:", fallback.warnings)

        // A pointer naming a deleted file, or no pointer at all, also falls back with a warning.
        try dir.setPointer("model_0000099.h5")
        #expect(try resolveResume(directory: folder.path).path == folder.file("model_0000020.h5"))
        unlink(dir.pointerPath)
        let noPointer = try resolveResume(directory: folder.path)
        #expect(noPointer.path == folder.file("model_0000020.h5") && !noPointer.warnings.isEmpty)

        // Nothing intact: an error listing every file tried.
        for name in ["model_0000010.h5", "model_0000020.h5"] {
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: folder.file(name)))
        }
        let error = checkpointError { _ = try resolveResume(directory: folder.path) }
        #expect(error?.file == folder.path)
        #expect(error?.problem.contains("model_0000010.h5") == true && error?.problem.contains("model_0000030.h5") == true)
    }

    @Test func h5dumpReadsACheckpoint() throws {
        let folder = ScratchFolder("h5dump")
        defer { folder.remove() }
        let path = folder.file("model_0001234.h5")
        try writeCheckpoint(sampleContents(), to: path)
        guard let header = try runH5dump(["-H", path]) else { return }
        #expect(header.status == 0, "h5dump -H failed: \(header.output)")
        for expected in ["GROUP \"model\"", "DATASET \"backbone.stem.conv1.weight\"", "DATASPACE  SIMPLE { ( 4, 3, 3, 3 )",
                         "GROUP \"exp_avg_sq\"", "ATTRIBUTE \"step\"", "ATTRIBUTE \"rng.rank0/data\"",
                         "ATTRIBUTE \"format_version\"", "ATTRIBUTE \"config\""] {
            #expect(header.output.contains(expected), "h5dump -H output lacks \(expected)")
        }
        guard let full = try runH5dump([path]) else { return }   // decodes every value, verifying the Fletcher32 checksums
        #expect(full.status == 0, "h5dump failed: \(full.output.suffix(2000))")
    }
}

@Suite struct CheckpointPointerLagTests {
    /// A kill after the rename of a new checkpoint but before the pointer update leaves the pointer one
    /// checkpoint behind; resuming must still pick the newest complete file (found by cluster/crash-test.sh).
    @Test func aNewerCompleteCheckpointBeatsAStalePointer() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-lag-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let folder = CheckpointDirectory(dir)
        func contents(_ it: Int) -> CheckpointContents {
            CheckpointContents(model: [("w", Tensor([Float(it)], shape: [1]))], optimizer: [], optimizerStep: it,
                               trainer: CheckpointTrainerState(iteration: it),
                               meta: CheckpointMeta(configYAML: "seed: 0\n", worldSize: 2, parameterSignature: 1, maskpilotVersion: "test"))
        }
        _ = try folder.save(contents(5), name: CheckpointDirectory.fileName(iteration: 5), keep: 3)
        // The next save's file is renamed into place, but the pointer is never updated (killed there).
        try writeCheckpoint(contents(10), to: "\(dir)/\(CheckpointDirectory.fileName(iteration: 10))")
        #expect(try folder.pointedPath()?.hasSuffix("model_0000005.h5") == true)
        let r = try folder.resolveResume()
        #expect(r.contents.trainer.iteration == 10 && r.path.hasSuffix("model_0000010.h5"))
        #expect(r.warnings.contains { $0.contains("pointer update was interrupted") })
    }
}
