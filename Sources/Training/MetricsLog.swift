// The per-step metrics log: one JSON object per line in `OUTPUT/metrics.jsonl`, appended and flushed per line.
// Corresponds to detectron2's JSONWriter (`metrics.json`, one line per logged iteration) in its EventStorage.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Seconds spent in each phase of one step (wall clock, this rank).
public struct StepTiming: Sendable, Equatable {
    public var dataWait = 0.0, forward = 0.0, criterion = 0.0, backward = 0.0, allReduceWait = 0.0, optimizer = 0.0
    public init(dataWait: Double = 0, forward: Double = 0, criterion: Double = 0, backward: Double = 0,
                allReduceWait: Double = 0, optimizer: Double = 0) {
        self.dataWait = dataWait; self.forward = forward; self.criterion = criterion
        self.backward = backward; self.allReduceWait = allReduceWait; self.optimizer = optimizer
    }
    /// The sum of all phases.
    public var total: Double { dataWait + forward + criterion + backward + allReduceWait + optimizer }
}

/// What one line of `metrics.jsonl` holds.
///
/// The line's keys (sorted, nested objects too):
/// `epoch`, `grad_norm`, `images_per_s`, `losses` {term: value}, `lr`, `step`, `time` (Unix seconds),
/// `timing` {`allreduce_wait`, `backward`, `criterion`, `data_wait`, `forward`, `optimizer`} (seconds),
/// `total`, and every extra scalar at top level (an extra whose key equals a built-in key is written as
/// `extra.<key>`).
public struct MetricsRecord: Sendable, Equatable {
    public var step: Int
    public var epoch: Int
    /// Wall-clock time, seconds since 1970.
    public var time: Double
    /// Loss terms by name (`loss_cross_entropy`, `loss_mask_3`, `loss_dice_dn`, …), unweighted.
    public var losses: [String: Float]
    /// The weighted total the step minimised.
    public var total: Float
    public var learningRate: Double
    public var gradNorm: Double
    public var timing: StepTiming
    public var imagesPerSecond: Double
    /// Any further scalars (evaluation results, memory, …).
    public var extra: [String: Double]

    public init(step: Int, epoch: Int, time: Double = Date().timeIntervalSince1970, losses: [String: Float], total: Float,
                learningRate: Double, gradNorm: Double, timing: StepTiming = StepTiming(), imagesPerSecond: Double = 0,
                extra: [String: Double] = [:]) {
        self.step = step; self.epoch = epoch; self.time = time; self.losses = losses; self.total = total
        self.learningRate = learningRate; self.gradNorm = gradNorm; self.timing = timing
        self.imagesPerSecond = imagesPerSecond; self.extra = extra
    }

    /// A record from a step's report plus what the trainer measured around it (data wait, all-reduce wait,
    /// throughput).
    public init(report: StepReport, step: Int, epoch: Int, dataWait: Double, allReduceWait: Double,
                imagesPerSecond: Double, time: Double = Date().timeIntervalSince1970, extra: [String: Double] = [:]) {
        self.init(step: step, epoch: epoch, time: time, losses: report.losses, total: report.total,
                  learningRate: report.learningRate, gradNorm: report.gradNorm,
                  timing: StepTiming(dataWait: dataWait, forward: report.forward, criterion: report.criterion,
                                     backward: report.backward, allReduceWait: allReduceWait, optimizer: report.optimizer),
                  imagesPerSecond: imagesPerSecond, extra: extra)
    }

    /// The same scalars as TensorBoard tags: `loss/total`, `loss/<term without "loss_">`, `lr`, `grad_norm`,
    /// `images_per_s`, `time/<phase>`, and the extras under their own names.
    public var scalars: [String: Double] {
        var s: [String: Double] = ["loss/total": Double(total), "lr": learningRate, "grad_norm": gradNorm,
                                   "images_per_s": imagesPerSecond]
        for (name, value) in losses {
            s["loss/" + (name.hasPrefix("loss_") ? String(name.dropFirst(5)) : name)] = Double(value)
        }
        for (key, value) in timingFields { s["time/" + key] = value }
        for (key, value) in extra where s[key] == nil { s[key] = value }
        return s
    }

    var timingFields: [(String, Double)] {
        [("allreduce_wait", timing.allReduceWait), ("backward", timing.backward), ("criterion", timing.criterion),
         ("data_wait", timing.dataWait), ("forward", timing.forward), ("optimizer", timing.optimizer)]
    }

    /// The record as one line of JSON (no trailing newline), keys sorted.
    ///
    /// Non-finite numbers are written as the JSON strings `"nan"`, `"inf"` and `"-inf"` (JSON has no
    /// literal for them; a string keeps which one it was, which `null` would lose).
    public var jsonLine: String {
        var fields: [(String, String)] = [
            ("epoch", String(epoch)), ("grad_norm", JSONText.number(gradNorm)),
            ("images_per_s", JSONText.number(imagesPerSecond)),
            ("losses", JSONText.object(losses.map { ($0.key, JSONText.number($0.value)) })),
            ("lr", JSONText.number(learningRate)), ("step", String(step)), ("time", JSONText.number(time)),
            ("timing", JSONText.object(timingFields.map { ($0.0, JSONText.number($0.1)) })),
            ("total", JSONText.number(total)),
        ]
        let builtIn = Set(fields.map(\.0))
        for (key, value) in extra {
            fields.append((builtIn.contains(key) ? "extra." + key : key, JSONText.number(value)))
        }
        return JSONText.object(fields)
    }
}

/// Minimal JSON text builders (numbers, strings, objects with sorted keys).
enum JSONText {
    static func number(_ x: Double) -> String {
        if x.isNaN { return "\"nan\"" }
        if x.isInfinite { return x > 0 ? "\"inf\"" : "\"-inf\"" }
        return "\(x)"   // shortest round-trip form, e.g. 0.0001, 1e-05, 12.5: all valid JSON numbers
    }

    static func number(_ x: Float) -> String {
        if x.isNaN { return "\"nan\"" }
        if x.isInfinite { return x > 0 ? "\"inf\"" : "\"-inf\"" }
        return "\(x)"   // Float's own shortest form, so 0.1 stays 0.1 rather than 0.10000000149011612
    }

    static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// `{"a":…,"b":…}` with keys in sorted order; values are already JSON text.
    static func object(_ fields: [(String, String)]) -> String {
        "{" + fields.sorted { $0.0 < $1.0 }.map { string($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }
}

/// A failed system call on a log file, with the call's name, the path and the system's message.
public struct LogFileError: Error, CustomStringConvertible {
    public var call: String
    public var path: String
    public var message: String
    public var description: String { "\(call)(\(path)): \(message)" }
    public init(call: String, path: String, message: String) { self.call = call; self.path = path; self.message = message }
    init(call: String, path: String, code: Int32) { self.init(call: call, path: path, message: String(cString: strerror(code))) }
}

/// An append-only file descriptor: `open(O_APPEND)`, whole buffers per `write(2)` call, closed in `deinit`.
final class AppendOnlyFile {
    let path: String
    private let fd: Int32

    /// Opens `path` for appending, creating it (mode 0644) if missing; `exclusive` fails if it exists.
    init(path: String, exclusive: Bool = false) throws {
        self.path = path
        var flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC
        if exclusive { flags |= O_EXCL }
        let fd = open(path, flags, 0o644)
        if fd < 0 { throw LogFileError(call: "open", path: path, code: errno) }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Writes every byte (retrying short writes and EINTR). The bytes are in the kernel when this returns. When
    /// a write fails part-way (a full disk), the file is cut back to its length before this call, so it never
    /// ends in a partial record.
    func write(_ bytes: [UInt8]) throws {
        let before = lseek(fd, 0, SEEK_END)
        try bytes.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < buffer.count {
                #if canImport(Glibc)
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                #else
                let n = Darwin.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                #endif
                if n < 0 {
                    if errno == EINTR { continue }
                    let failure = LogFileError(call: "write", path: path, code: errno)
                    if offset > 0, before >= 0, ftruncate(fd, before) != 0 {
                        throw LogFileError(call: "write", path: path,
                                           message: "\(failure.message); cutting the partial line off failed too (ftruncate: \(String(cString: strerror(errno))))")
                    }
                    throw failure
                }
                offset += n
            }
        }
    }

    /// Forces the file's data to the storage device.
    func sync() throws {
        if fsync(fd) != 0 { throw LogFileError(call: "fsync", path: path, code: errno) }
    }
}

/// Creates a directory and its parents if missing.
func makeDirectory(_ path: String) throws {
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        throw LogFileError(call: "mkdir", path: path, message: "\(error)")
    }
}

/// `OUTPUT/metrics.jsonl`: one JSON object per line, each line one `write(2)` on an `O_APPEND` descriptor,
/// so a crash never loses or truncates an earlier line and an existing file is continued, not rewritten.
/// Only rank 0 writes it.
public final class MetricsLog {
    /// The file's path.
    public var path: String { file.path }
    private let file: AppendOnlyFile
    /// Calls `fsync` after every line as well (off by default: the kernel already holds each line, which
    /// survives a crash of the process; `fsync` also survives a crash of the machine).
    public var syncEachLine = false

    /// Opens (or creates) `directory/fileName`, creating `directory` if needed.
    public init(directory: String, fileName: String = "metrics.jsonl") throws {
        try makeDirectory(directory)
        file = try AppendOnlyFile(path: (directory as NSString).appendingPathComponent(fileName))
    }

    /// Whether `directory`'s log has an evaluation line (`{"eval": …, "step": step, …}`) for `step`. A missing or
    /// unreadable log has none.
    public static func hasEvaluation(directory: String, step: Int, fileName: String = "metrics.jsonl") -> Bool {
        let path = (directory as NSString).appendingPathComponent(fileName)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return false }
        for line in text.split(separator: "\n") where line.hasPrefix("{\"eval\":") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            if (object["step"] as? NSNumber)?.intValue == step { return true }
        }
        return false
    }

    /// Appends one record as one line.
    public func append(_ record: MetricsRecord) throws {
        try appendLine(record.jsonLine)
    }

    /// Appends one line of already-encoded JSON (a newline is added).
    public func appendLine(_ json: String) throws {
        try file.write(Array((json + "\n").utf8))
        if syncEachLine { try file.sync() }
    }
}
