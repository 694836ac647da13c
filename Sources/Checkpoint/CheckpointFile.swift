// CheckpointFile: one training checkpoint as one HDF5 file (model, optimizer, trainer state, meta), written
// crash-safely (NAME.tmp, fsync, rename, fsync of the folder) and read back with every dataset verified.
// Corresponds to detectron2's Checkpointer.save/load (a pickled dict with "model", "optimizer", "scheduler",
// "iteration"); here the file is HDF5 and the model part uses the reference state_dict names and layouts.
// Layout: docs/checkpoint-format.md.
import Foundation
import TensorCore

/// A number or a string kept as a `/trainer` attribute (schedule state and similar small values).
public enum CheckpointValue: Equatable, Sendable, CustomStringConvertible {
    case int(Int64)
    case double(Double)
    case string(String)

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return String(v)
        case .string(let v): return v
        }
    }
}

/// `/trainer`: where training stands, enough to continue exactly.
public struct CheckpointTrainerState: Equatable, Sendable {
    /// Completed iterations (optimizer steps).
    public var iteration: Int
    public var epoch: Int
    /// Position within the epoch (samples or batches consumed, as the trainer defines it).
    public var position: Int
    /// Schedule state (e.g. "base_lr", "last_lr", "name"), stored as attributes `schedule.<key>`.
    public var schedule: [String: CheckpointValue]
    /// RNG states as `RNGState.words`, by stream: "global", "rank0/data", "rank1/noise", …
    /// Stored as attributes `rng.<stream>` (uint64 arrays).
    public var rng: [String: [UInt64]]

    public init(iteration: Int, epoch: Int = 0, position: Int = 0,
                schedule: [String: CheckpointValue] = [:], rng: [String: [UInt64]] = [:]) {
        self.iteration = iteration; self.epoch = epoch; self.position = position
        self.schedule = schedule; self.rng = rng
    }
}

/// `/meta`: what the checkpoint is and where it came from.
public struct CheckpointMeta: Equatable, Sendable {
    /// The format this code writes and the only one it reads.
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// The full resolved configuration (`MaskPilotConfig.yaml()`).
    public var configYAML: String
    public var worldSize: Int
    /// Hash of the parameter names and shapes (stored as 16 hex digits, attribute `parameter_signature`).
    public var parameterSignature: UInt64
    /// ISO-8601 creation time (UTC).
    public var createdAt: String
    public var maskpilotVersion: String

    public init(configYAML: String, worldSize: Int, parameterSignature: UInt64, maskpilotVersion: String,
                createdAt: String = CheckpointMeta.now(), formatVersion: Int = CheckpointMeta.currentFormatVersion) {
        self.formatVersion = formatVersion; self.configYAML = configYAML; self.worldSize = worldSize
        self.parameterSignature = parameterSignature; self.createdAt = createdAt; self.maskpilotVersion = maskpilotVersion
    }

    /// The current time as ISO-8601 UTC, e.g. "2025-01-31T12:00:00Z".
    public static func now() -> String { ISO8601DateFormatter().string(from: Date()) }
}

/// Everything one checkpoint file holds.
public struct CheckpointContents: @unchecked Sendable {
    /// `/model/<name>`: parameters and buffers under the reference state_dict names, PyTorch layout.
    public var model: [(String, Tensor)]
    /// `/optimizer/<name>`: AdamW moments named "exp_avg/<param>" and "exp_avg_sq/<param>" (without "step").
    public var optimizer: [(String, Tensor)]
    /// `/optimizer` attribute `step`: the optimizer's step count.
    public var optimizerStep: Int
    public var trainer: CheckpointTrainerState
    public var meta: CheckpointMeta

    public init(model: [(String, Tensor)], optimizer: [(String, Tensor)], optimizerStep: Int,
                trainer: CheckpointTrainerState, meta: CheckpointMeta) {
        self.model = model; self.optimizer = optimizer; self.optimizerStep = optimizerStep
        self.trainer = trainer; self.meta = meta
    }

    /// `weightsDigest(model)` (`checkpoint inspect` prints it).
    public var modelDigest: UInt64 { weightsDigest(model) }
}

/// A fingerprint of model weights: FNV-1a 64 over every tensor in name order (its name, shape and float bit patterns),
/// so two files with bitwise-equal weights have the same digest whatever their file layout, timestamps or optimizer
/// state.
public func weightsDigest(_ model: [(String, Tensor)]) -> UInt64 {
    var h = FNV1a.offsetBasis
    for (name, tensor) in model.sorted(by: { $0.0 < $1.0 }) {
        h = Array((name + "\u{0}").utf8).withUnsafeBytes { FNV1a.hash($0, from: h) }
        h = tensor.shape.map { Int64($0) }.withUnsafeBytes { FNV1a.hash($0, from: h) }
        h = tensor.values.withUnsafeBytes { FNV1a.hash($0, from: h) }
    }
    return h
}

/// A checkpoint that cannot be written or read: the file, the object in it (if any) and the problem.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public var file: String
    /// The object inside the file, e.g. "/model/backbone.stem.conv1.weight", or nil for the file itself.
    public var object: String?
    public var problem: String

    public init(file: String, object: String? = nil, problem: String) {
        self.file = file; self.object = object; self.problem = problem
    }

    public var description: String { "\(file)" + (object.map { ":\($0)" } ?? "") + ": " + problem }
}

// MARK: layout names

/// Group and attribute names of the checkpoint layout (docs/checkpoint-format.md).
public enum CheckpointLayout {
    public static let model = "/model"
    public static let optimizer = "/optimizer"
    public static let trainer = "/trainer"
    public static let meta = "/meta"
    /// Attribute on /model and /optimizer: the dataset names, newline-separated, in the order written.
    public static let namesAttribute = "names"
    public static let schedulePrefix = "schedule."
    public static let rngPrefix = "rng."
}

// MARK: writing

/// Writes `contents` crash-safely to `finalPath`: everything goes to `finalPath.tmp` (every non-scalar
/// dataset chunked with a Fletcher32 checksum), the file is closed and fsynced, renamed to `finalPath`,
/// and the folder is fsynced. A failure removes the .tmp file and leaves any existing `finalPath` untouched.
public func writeCheckpoint(_ contents: CheckpointContents, to finalPath: String) throws {
    try writeAtomically(to: finalPath) { try writeCheckpointFile(contents, path: $0) }
}

/// The crash-safe write protocol shared by every file MaskPilot's checkpoint folder holds: `write` fills
/// `finalPath.tmp` (a stale one from a crashed write is removed first), which is fsynced, renamed to
/// `finalPath` (atomic within a file system), and the folder is fsynced. On failure the .tmp is removed and
/// an existing `finalPath` is left untouched, so no file under its final name is ever partial.
public func writeAtomically(to finalPath: String, _ write: (String) throws -> Void) throws {
    let tmp = finalPath + ".tmp"
    unlink(tmp)
    do {
        try write(tmp)
        try fsyncPath(tmp, directory: false)
    } catch {
        unlink(tmp)
        throw error
    }
    guard rename(tmp, finalPath) == 0 else {
        let problem = "rename from \(tmp) failed: \(String(cString: strerror(errno)))"
        unlink(tmp)
        throw CheckpointError(file: finalPath, problem: problem)
    }
    try fsyncPath(directoryOf(finalPath), directory: true)
}

/// Refuses tensor names HDF5 would misread or that repeat: empty, with a leading, trailing or doubled `/`, or (unless
/// `nested`) any `/` at all — the model's names are flat, the optimizer's are `exp_avg/<name>`.
private func checkTensorNames(_ tensors: [(String, Tensor)], group: String, nested: Bool, path: String) throws {
    var seen = Set<String>()
    for (name, _) in tensors {
        guard !name.isEmpty, !name.hasPrefix("/"), !name.hasSuffix("/"), !name.contains("//"), nested || !name.contains("/") else {
            throw CheckpointError(file: path, object: "/\(group)/\(name)", problem: "invalid tensor name \"\(name)\"")
        }
        guard seen.insert(name).inserted else {
            throw CheckpointError(file: path, object: "/\(group)/\(name)", problem: "tensor name given twice")
        }
    }
}

/// Runs one HDF5 read of `path`, turning an `HDF5Error` into a `CheckpointError` naming the file, `object` and `what`
/// could not be done.
private func checkpointRead<R>(_ path: String, _ object: String?, _ what: String, _ body: () throws -> R) throws -> R {
    do { return try body() } catch let e as CheckpointError { throw e } catch let e as HDF5Error {
        throw CheckpointError(file: path, object: object, problem: "\(what): \(e.call) failed: \(e.message)")
    }
}

/// Refuses a `format_version` this code does not read.
private func checkFormatVersion(_ version: Int64, path: String) throws {
    guard version == Int64(CheckpointMeta.currentFormatVersion) else {
        throw CheckpointError(file: path, object: "/meta (attribute \"format_version\")",
                              problem: "unknown checkpoint format version \(version); this MaskPilot reads version "
                                + "\(CheckpointMeta.currentFormatVersion)")
    }
}

private func writeCheckpointFile(_ c: CheckpointContents, path: String) throws {
    try checkTensorNames(c.model, group: "model", nested: false, path: path)
    try checkTensorNames(c.optimizer, group: "optimizer", nested: true, path: path)
    try writeHDF5File(path) { file in
        let model = try file.createGroup(CheckpointLayout.model)
        for (name, tensor) in c.model { try model.write(tensor, to: name, options: .checksummed) }
        try model.setAttribute(CheckpointLayout.namesAttribute, string: c.model.map(\.0).joined(separator: "\n"))

        let optimizer = try file.createGroup(CheckpointLayout.optimizer)
        for (name, tensor) in c.optimizer { try optimizer.write(tensor, to: name, options: .checksummed) }
        try optimizer.setAttribute(CheckpointLayout.namesAttribute, string: c.optimizer.map(\.0).joined(separator: "\n"))
        try optimizer.setAttribute("step", int64: Int64(c.optimizerStep))

        let trainer = try file.createGroup(CheckpointLayout.trainer)
        try trainer.setAttribute("iteration", int64: Int64(c.trainer.iteration))
        try trainer.setAttribute("epoch", int64: Int64(c.trainer.epoch))
        try trainer.setAttribute("position", int64: Int64(c.trainer.position))
        for (key, value) in c.trainer.schedule.sorted(by: { $0.key < $1.key }) {
            let name = CheckpointLayout.schedulePrefix + key
            switch value {
            case .int(let v): try trainer.setAttribute(name, int64: v)
            case .double(let v): try trainer.setAttribute(name, double: v)
            case .string(let v): try trainer.setAttribute(name, string: v)
            }
        }
        for (stream, words) in c.trainer.rng.sorted(by: { $0.key < $1.key }) {
            try trainer.setAttribute(CheckpointLayout.rngPrefix + stream, uint64s: words)
        }

        let meta = try file.createGroup(CheckpointLayout.meta)
        try meta.setAttribute("format_version", int64: Int64(c.meta.formatVersion))
        try meta.setAttribute("config", string: c.meta.configYAML)
        try meta.setAttribute("world_size", int64: Int64(c.meta.worldSize))
        try meta.setAttribute("parameter_signature", string: hex16(c.meta.parameterSignature))
        try meta.setAttribute("created", string: c.meta.createdAt)
        try meta.setAttribute("maskpilot_version", string: c.meta.maskpilotVersion)
    }
}

/// Creates `path`, lets `fill` write it, and closes it. Every group and dataset `fill` opens is released when it
/// returns, before the file is closed: after a failed write (a full disk) HDF5 cannot close the file cleanly, and
/// a group still open then crashed the process at exit (SIGSEGV in HDF5's clean-up) after the error was printed.
public func writeHDF5File(_ path: String, _ fill: (HDF5File) throws -> Void) throws {
    let file = try HDF5File(create: path, mode: .truncate)
    do {
        try fill(file)
    } catch {
        try? file.close()
        throw error
    }
    try file.close()
}

/// fsyncs a file or a folder, failing with an error naming it.
func fsyncPath(_ path: String, directory: Bool) throws {
    let fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY)
    guard fd >= 0 else {
        throw CheckpointError(file: path, problem: "open for fsync failed: \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    guard fsync(fd) == 0 else {
        throw CheckpointError(file: path, problem: "fsync failed: \(String(cString: strerror(errno)))")
    }
}

/// The folder holding `path` ("." for a bare name).
func directoryOf(_ path: String) -> String {
    let dir = (path as NSString).deletingLastPathComponent
    return dir.isEmpty ? "." : dir
}

/// `value` as 16 hex digits.
public func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
}

// MARK: reading

/// Reads and checks a whole checkpoint: the format version first (an unknown version is refused), then
/// every dataset (HDF5 verifies each Fletcher32 checksum on read). Every failure is a `CheckpointError`
/// naming the file and, where there is one, the group, dataset or attribute.
public func readCheckpoint(path: String) throws -> CheckpointContents {
    let file = try openCheckpointFile(path)
    defer { try? file.close() }
    for group in [CheckpointLayout.meta, CheckpointLayout.model, CheckpointLayout.optimizer, CheckpointLayout.trainer] {
        guard try checkpointRead(path, group, "cannot check for the group", { try file.contains(group) }) else {
            throw CheckpointError(file: path, object: group, problem: "missing group (not a complete MaskPilot checkpoint)")
        }
    }
    let metaGroup = try checkpointRead(path, CheckpointLayout.meta, "cannot open the group") { try file.group(CheckpointLayout.meta) }
    func attribute<R>(_ group: HDF5Group, _ name: String, _ read: (String) throws -> R) throws -> R {
        let object = "\(group.path) (attribute \"\(name)\")"
        guard try checkpointRead(path, object, "cannot check for the attribute", { try group.hasAttribute(name) }) else {
            throw CheckpointError(file: path, object: object, problem: "missing attribute")
        }
        return try checkpointRead(path, object, "cannot read the attribute") { try read(name) }
    }
    /// An integer attribute that counts something (ranks, steps, epochs, samples): 0…2^40 (`minimum`…), else the
    /// file is refused here, before the number reaches the sampler's or the trainer's arithmetic.
    func count(_ group: HDF5Group, _ name: String, minimum: Int64 = 0) throws -> Int {
        let value = try attribute(group, name) { try group.int64Attribute($0) }
        guard (minimum...Int64(Limit.iterations)).contains(value) else {
            throw CheckpointError(file: path, object: "\(group.path) (attribute \"\(name)\")", problem: "must be within \(minimum)…\(Limit.iterations), got \(value)")
        }
        return Int(value)
    }
    let version = try attribute(metaGroup, "format_version") { try metaGroup.int64Attribute($0) }
    try checkFormatVersion(version, path: path)
    let signatureText = try attribute(metaGroup, "parameter_signature") { try metaGroup.stringAttribute($0) }
    guard let signature = UInt64(signatureText, radix: 16) else {
        throw CheckpointError(file: path, object: "/meta (attribute \"parameter_signature\")",
                              problem: "\"\(signatureText)\" is not a hexadecimal hash")
    }
    let meta = CheckpointMeta(
        configYAML: try attribute(metaGroup, "config") { try metaGroup.stringAttribute($0) },
        worldSize: try count(metaGroup, "world_size", minimum: 1),
        parameterSignature: signature,
        maskpilotVersion: try attribute(metaGroup, "maskpilot_version") { try metaGroup.stringAttribute($0) },
        createdAt: try attribute(metaGroup, "created") { try metaGroup.stringAttribute($0) },
        formatVersion: Int(version))

    func tensors(_ groupPath: String) throws -> (HDF5Group, [(String, Tensor)]) {
        try readTensorGroup(file, path: path, groupPath: groupPath)
    }
    let (_, model) = try tensors(CheckpointLayout.model)
    let (optimizerGroup, optimizer) = try tensors(CheckpointLayout.optimizer)
    let step = try count(optimizerGroup, "step")

    let trainerGroup = try checkpointRead(path, CheckpointLayout.trainer, "cannot open the group") { try file.group(CheckpointLayout.trainer) }
    var trainer = CheckpointTrainerState(
        iteration: try count(trainerGroup, "iteration"),
        epoch: try count(trainerGroup, "epoch"),
        position: try count(trainerGroup, "position"))
    let names = try checkpointRead(path, CheckpointLayout.trainer, "cannot list the attributes") { try trainerGroup.attributeNames() }
    for name in names {
        if name.hasPrefix(CheckpointLayout.rngPrefix) {
            let stream = String(name.dropFirst(CheckpointLayout.rngPrefix.count))
            trainer.rng[stream] = try attribute(trainerGroup, name) { try trainerGroup.uint64ArrayAttribute($0) }
        } else if name.hasPrefix(CheckpointLayout.schedulePrefix) {
            let key = String(name.dropFirst(CheckpointLayout.schedulePrefix.count))
            let type = try attribute(trainerGroup, name) { try trainerGroup.attributeType($0) }
            switch type {
            case .integer: trainer.schedule[key] = .int(try attribute(trainerGroup, name) { try trainerGroup.int64Attribute($0) })
            case .float: trainer.schedule[key] = .double(try attribute(trainerGroup, name) { try trainerGroup.doubleAttribute($0) })
            default: trainer.schedule[key] = .string(try attribute(trainerGroup, name) { try trainerGroup.stringAttribute($0) })
            }
        }
    }
    return CheckpointContents(model: model, optimizer: optimizer, optimizerStep: step, trainer: trainer, meta: meta)
}

/// Reads every dataset of `groupPath` in the order of its `names` attribute (if any; unlisted datasets
/// follow in name order). A name listed but absent is `missing dataset`; each read verifies the checksum.
private func readTensorGroup(_ file: HDF5File, path: String, groupPath: String) throws -> (HDF5Group, [(String, Tensor)]) {
    let group = try checkpointRead(path, groupPath, "cannot open the group") { try file.group(groupPath) }
    let present = try checkpointRead(path, groupPath, "cannot list the datasets") { try group.datasetPaths() }
    var order = present
    if try checkpointRead(path, groupPath, "cannot check for the names attribute", { try group.hasAttribute(CheckpointLayout.namesAttribute) }) {
        let object = "\(groupPath) (attribute \"\(CheckpointLayout.namesAttribute)\")"
        let text = try checkpointRead(path, object, "cannot read the attribute") { try group.stringAttribute(CheckpointLayout.namesAttribute) }
        let listed = text.isEmpty ? [] : text.components(separatedBy: "\n")
        let presentSet = Set(present)
        if let missing = listed.first(where: { !presentSet.contains($0) }) {
            let count = listed.filter { !presentSet.contains($0) }.count
            throw CheckpointError(file: path, object: groupPath + "/" + missing,
                                  problem: "missing dataset" + (count > 1 ? " (and \(count - 1) more)" : ""))
        }
        let listedSet = Set(listed)
        order = listed + present.filter { !listedSet.contains($0) }
    }
    var result: [(String, Tensor)] = []
    result.reserveCapacity(order.count)
    for name in order {
        let object = groupPath + "/" + name
        result.append((name, try checkpointRead(path, object, "cannot read the dataset (checksum failure or damaged file)") {
            try group.readTensor(name)
        }))
    }
    return (group, result)
}

// MARK: weights only (`model.weights`, tools/convert_pkl_to_h5.py)

/// Reads only the `/model` group of a MaskPilot checkpoint or of a weights-only HDF5 file (as written by
/// `tools/convert_pkl_to_h5.py` or `writeModelWeights`): `/optimizer`, `/trainer` and `/meta` may be absent.
/// When `/meta` has a `format_version` it must be one this code reads. Tensors are in PyTorch layout under the
/// reference names, in the order of `/model`'s `names` attribute when present. Errors name the file.
public func readModelWeights(path: String) throws -> [(String, Tensor)] {
    let file = try openCheckpointFile(path)
    defer { try? file.close() }
    guard try checkpointRead(path, CheckpointLayout.model, "cannot check for the group", { try file.contains(CheckpointLayout.model) }) else {
        throw CheckpointError(file: path, object: CheckpointLayout.model,
                              problem: "missing group (not a MaskPilot checkpoint or weights file: expected /model/<name> datasets)")
    }
    if try checkpointRead(path, CheckpointLayout.meta, "cannot check for the group", { try file.contains(CheckpointLayout.meta) }) {
        let meta = try checkpointRead(path, CheckpointLayout.meta, "cannot open the group") { try file.group(CheckpointLayout.meta) }
        let object = "/meta (attribute \"format_version\")"
        if try checkpointRead(path, object, "cannot check for the attribute", { try meta.hasAttribute("format_version") }) {
            try checkFormatVersion(try checkpointRead(path, object, "cannot read the attribute") { try meta.int64Attribute("format_version") },
                                   path: path)
        }
    }
    let (_, model) = try readTensorGroup(file, path: path, groupPath: CheckpointLayout.model)
    if model.isEmpty {
        throw CheckpointError(file: path, object: CheckpointLayout.model, problem: "the group holds no datasets")
    }
    return model
}

/// Writes a weights-only file: `/model/<name>` (Fletcher32-checksummed, `names` attribute in order) and a
/// `/meta` attribute `source` (and `config`, the MaskPilot configuration the weights were trained with, when known),
/// crash-safely (`path.tmp`, fsync, rename, fsync of the folder).
public func writeModelWeights(_ model: [(String, Tensor)], to path: String, source: String = "maskpilot",
                              configYAML: String? = nil) throws {
    try checkTensorNames(model, group: "model", nested: false, path: path)
    try writeAtomically(to: path) { tmp in
        try writeHDF5File(tmp) { file in
            let group = try file.createGroup(CheckpointLayout.model)
            for (name, tensor) in model { try group.write(tensor, to: name, options: .checksummed) }
            try group.setAttribute(CheckpointLayout.namesAttribute, string: model.map(\.0).joined(separator: "\n"))
            let meta = try file.createGroup(CheckpointLayout.meta)
            try meta.setAttribute("source", string: source)
            if let configYAML { try meta.setAttribute("config", string: configYAML) }
        }
    }
}

/// The MaskPilot configuration (YAML) stored in a checkpoint's or weights file's `/meta` `config` attribute, nil
/// when the file has none (a converted or imported weights file). Errors name the file.
public func readStoredConfiguration(path: String) throws -> String? {
    let file = try openCheckpointFile(path)
    defer { try? file.close() }
    guard try checkpointRead(path, CheckpointLayout.meta, "cannot check for the group", { try file.contains(CheckpointLayout.meta) }) else {
        return nil
    }
    let meta = try checkpointRead(path, CheckpointLayout.meta, "cannot open the group") { try file.group(CheckpointLayout.meta) }
    let object = "/meta (attribute \"config\")"
    guard try checkpointRead(path, object, "cannot check for the attribute", { try meta.hasAttribute("config") }) else { return nil }
    return try checkpointRead(path, object, "cannot read the attribute") { try meta.stringAttribute("config") }
}

/// Opens a checkpoint file read-only; a missing, truncated or non-HDF5 file is a `CheckpointError` naming it.
func openCheckpointFile(_ path: String) throws -> HDF5File {
    guard FileManager.default.fileExists(atPath: path) else {
        throw CheckpointError(file: path, problem: "no such file")
    }
    do { return try HDF5File(open: path) } catch let e as HDF5Error {
        throw CheckpointError(file: path, problem: "cannot open as HDF5 (truncated or not an HDF5 file): \(e.message)")
    }
}

// MARK: verification (for `maskpilot checkpoint inspect`)

/// One dataset of a checkpoint as found by `scanCheckpoint`.
public struct CheckpointDatasetReport: Sendable {
    /// Absolute path in the file, e.g. "/model/backbone.stem.conv1.weight".
    public var path: String
    public var shape: [Int]
    /// Stored bytes of the data (element count × element size).
    public var bytes: Int
    /// Whether a Fletcher32 checksum protects the data (rank-0 datasets cannot carry one).
    public var checksummed: Bool
    /// nil when the whole dataset read back (checksum verified); else what went wrong.
    public var failure: String?
}

/// Reads every dataset of the file one by one, recording instead of throwing per-dataset failures
/// (checksum mismatches, unreadable chunks). Only a file that cannot be opened or listed throws.
public func scanCheckpoint(path: String) throws -> [CheckpointDatasetReport] {
    let file = try openCheckpointFile(path)
    defer { try? file.close() }
    let paths: [String]
    do { paths = try file.datasetPaths() } catch let e as HDF5Error {
        throw CheckpointError(file: path, problem: "cannot list the datasets: \(e.message)")
    }
    return paths.map { relative in
        let object = "/" + relative
        var report = CheckpointDatasetReport(path: object, shape: [], bytes: 0, checksummed: false, failure: nil)
        do {
            let info = try file.datasetInfo(relative)
            report.shape = info.shape
            report.checksummed = info.hasFletcher32
            let elementBytes: Int
            switch info.elementType {
            case .float(let bits), .integer(let bits, _): elementBytes = bits / 8
            default: elementBytes = 0
            }
            report.bytes = info.count * elementBytes
            if case .float = info.elementType { _ = try file.readTensor(relative) } else { _ = try file.readInts(relative) }
        } catch let e as HDF5Error {
            report.failure = "\(e.call) failed: \(e.message)"
        } catch {
            report.failure = String(describing: error)
        }
        return report
    }
}
