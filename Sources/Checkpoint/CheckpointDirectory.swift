// CheckpointDirectory: a run's checkpoint folder: model_0001234.h5 … model_final.h5, the `last_checkpoint`
// pointer (replaced atomically), retention of the newest `keep` files, and choosing the checkpoint to resume
// from (the pointed one, or the newest intact one when it is damaged).
// Corresponds to detectron2's PeriodicCheckpointer (max_to_keep) and Checkpointer's `last_checkpoint` file.
import Foundation

/// One checkpoint file in a folder.
public struct CheckpointEntry: Equatable, Sendable {
    /// File name, e.g. "model_0001234.h5".
    public var name: String
    /// Full path.
    public var path: String
    /// The iteration in the name; nil for "model_final.h5" (which sorts newest).
    public var iteration: Int?
}

/// The checkpoint chosen for resuming, with the warnings to log.
public struct CheckpointResume: @unchecked Sendable {
    public var path: String
    public var warnings: [String]
    /// The checkpoint's contents (already read and verified while choosing it).
    public var contents: CheckpointContents
}

/// A folder of checkpoints.
public struct CheckpointDirectory: Sendable {
    public static let pointerName = "last_checkpoint"
    public static let finalName = "model_final.h5"

    public let path: String

    public init(_ path: String) { self.path = path }

    /// "model_0001234.h5": the name of the checkpoint after `iteration` iterations (7 digits, more if needed).
    public static func fileName(iteration: Int) -> String {
        let digits = String(iteration)
        return "model_" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits + ".h5"
    }

    /// What a checkpoint file name says: the checkpoint after an iteration, or the final one.
    public enum Name: Equatable, Sendable {
        case iteration(Int)
        case final
        /// The iteration, nil for the final checkpoint.
        public var iteration: Int? { if case .iteration(let n) = self { n } else { nil } }
    }

    /// What `name` is as a checkpoint file name, nil when it is not one (`.tmp` files and everything else).
    public static func parse(name: String) -> Name? {
        if name == finalName { return .final }
        guard name.hasPrefix("model_"), name.hasSuffix(".h5") else { return nil }
        let digits = name.dropFirst("model_".count).dropLast(".h5".count)
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let n = Int(digits) else { return nil }
        return .iteration(n)
    }

    public var pointerPath: String { (path as NSString).appendingPathComponent(Self.pointerName) }

    func filePath(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    // MARK: the pointer

    /// The file name in `last_checkpoint`, or nil when there is no pointer file (or it is empty).
    public func pointer() throws -> String? {
        guard FileManager.default.fileExists(atPath: pointerPath) else { return nil }
        let text: String
        do { text = try String(contentsOfFile: pointerPath, encoding: .utf8) } catch {
            throw CheckpointError(file: pointerPath, problem: "cannot read the pointer file: \(error.localizedDescription)")
        }
        let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return name.isEmpty ? nil : name
    }

    /// The path the pointer names (a bare name is inside this folder), or nil without a pointer.
    public func pointedPath() throws -> String? {
        try pointer().map { $0.hasPrefix("/") ? $0 : filePath($0) }
    }

    /// Replaces `last_checkpoint` atomically by one naming `fileName`: last_checkpoint.tmp, fsync, rename, fsync of the folder.
    public func setPointer(_ fileName: String) throws {
        try writeAtomically(to: pointerPath) { tmp in
            do { try Data((fileName + "\n").utf8).write(to: URL(fileURLWithPath: tmp)) } catch {
                throw CheckpointError(file: tmp, problem: "cannot write the pointer file: \(error.localizedDescription)")
            }
        }
    }

    // MARK: listing, saving, retention

    /// The checkpoint files (model_NNNNNNN.h5, model_final.h5; never .tmp files), newest first:
    /// model_final.h5, then by iteration descending.
    public func checkpoints() throws -> [CheckpointEntry] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
            throw CheckpointError(file: path, problem: "cannot list the checkpoint folder: \(error.localizedDescription)")
        }
        let entries = names.compactMap { name -> CheckpointEntry? in
            guard let parsed = Self.parse(name: name) else { return nil }
            return CheckpointEntry(name: name, path: filePath(name), iteration: parsed.iteration)
        }
        return entries.sorted { a, b in
            switch (a.iteration, b.iteration) {
            case (nil, nil): return a.name < b.name
            case (nil, _): return true
            case (_, nil): return false
            case let (x?, y?): return x != y ? x > y : a.name < b.name
            }
        }
    }

    /// Writes `contents` as `name` (crash-safe, see `writeCheckpoint`), then points `last_checkpoint` at it,
    /// then deletes checkpoints beyond the newest `keep`. Returns the paths deleted.
    @discardableResult
    public func save(_ contents: CheckpointContents, name: String, keep: Int) throws -> [String] {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try writeCheckpoint(contents, to: filePath(name))
        try setPointer(name)
        return try prune(keep: keep)
    }

    /// Deletes the checkpoint files beyond the newest `keep`; `keep` 0 keeps every file (detectron2's
    /// `max_to_keep=None`). The file `last_checkpoint` names is never deleted. Returns the paths deleted.
    @discardableResult
    public func prune(keep: Int) throws -> [String] {
        guard keep > 0 else { return [] }
        let pointed = try pointer()
        var deleted: [String] = []
        for entry in try checkpoints().dropFirst(keep) where entry.name != pointed && entry.path != pointed {
            guard unlink(entry.path) == 0 else {
                throw CheckpointError(file: entry.path, problem: "cannot delete an old checkpoint: \(String(cString: strerror(errno)))")
            }
            deleted.append(entry.path)
        }
        return deleted
    }

    // MARK: resuming

    /// True when the folder holds nothing to resume from: no `last_checkpoint` and no checkpoint file (a missing
    /// folder counts as empty). A folder with only damaged checkpoints is not empty: resuming from it is an error.
    public func hasNoCheckpoint() throws -> Bool {
        guard FileManager.default.fileExists(atPath: path) else { return true }
        return try pointer() == nil && checkpoints().isEmpty
    }

    /// The checkpoint to resume from: the newest complete one. That is the one `last_checkpoint` names,
    /// unless a job was killed between renaming a newer checkpoint into place and updating the pointer
    /// (files under a final name are always complete): then the newer intact file wins, with a warning.
    /// When the pointed file is damaged or missing, the newest intact checkpoint is used, saying why.
    /// Throws when none is usable, listing every file tried and its problem.
    public func resolveResume() throws -> CheckpointResume {
        var warnings: [String] = []
        var failures: [String] = []
        var tried = Set<String>()
        if let pointed = try pointedPath() {
            // Newer complete checkpoints than the pointed one (the pointer update did not happen).
            let all = try checkpoints()
            if let index = all.firstIndex(where: { $0.path == pointed }) {
                for entry in all[..<index] {
                    tried.insert(entry.path)
                    if let contents = try? readCheckpoint(path: entry.path) {
                        warnings.append("\(pointerPath) names \(URL(fileURLWithPath: pointed).lastPathComponent) but the newer "
                                        + "\(entry.name) is complete (the pointer update was interrupted); resuming from it")
                        return CheckpointResume(path: entry.path, warnings: warnings, contents: contents)
                    }
                    warnings.append("skipping damaged newer checkpoint \(entry.path)")
                }
            }
            tried.insert(pointed)
            do {
                return CheckpointResume(path: pointed, warnings: [], contents: try readCheckpoint(path: pointed))
            } catch {
                failures.append(String(describing: error))
                warnings.append("\(pointerPath) names a damaged or missing checkpoint (\(error)); "
                                + "falling back to the newest intact checkpoint")
            }
        } else {
            warnings.append("\(pointerPath) does not exist; resuming from the newest intact checkpoint")
        }
        for entry in try checkpoints() where !tried.contains(entry.path) {
            do {
                let contents = try readCheckpoint(path: entry.path)
                warnings.append("resuming from \(entry.path)")
                return CheckpointResume(path: entry.path, warnings: warnings, contents: contents)
            } catch {
                failures.append(String(describing: error))
                warnings.append("skipping damaged checkpoint: \(error)")
            }
        }
        throw CheckpointError(file: path, problem: failures.isEmpty ? "no checkpoint to resume from"
                              : "no intact checkpoint to resume from:\n  " + failures.joined(separator: "\n  "))
    }
}

/// The checkpoint to resume from in `directory` (see `CheckpointDirectory.resolveResume`).
public func resolveResume(directory: String) throws -> CheckpointResume {
    try CheckpointDirectory(directory).resolveResume()
}
