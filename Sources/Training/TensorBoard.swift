// TensorBoard event files: TFRecord framing with masked CRC32C, hand-encoded `Event`/`Summary` protobufs, and a reader.
// Corresponds to TensorFlow's EventsWriter / RecordWriter (core/util/events_writer.cc, core/lib/io/record_writer.cc)
// with tensorflow/core/util/event.proto and tensorflow/core/framework/summary.proto.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

// MARK: CRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven; `checksum("123456789") == 0xE3069283`.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { (n: Int) -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The CRC of `bytes`.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        let t = table
        for b in bytes { crc = t[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return ~crc
    }

    /// TFRecord's masked CRC: `((crc >> 15) | (crc << 17)) &+ 0xa282ead8`.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

// MARK: TFRecord framing

/// Errors of reading TFRecord files and the protobufs inside.
public enum TFRecordError: Error, Equatable, CustomStringConvertible {
    case truncated(offset: Int)
    case lengthChecksumMismatch(offset: Int)
    case dataChecksumMismatch(offset: Int)
    case malformedProtobuf(String)

    public var description: String {
        switch self {
        case .truncated(let o): return "TFRecord: truncated record at byte \(o)"
        case .lengthChecksumMismatch(let o): return "TFRecord: length CRC mismatch in the record at byte \(o)"
        case .dataChecksumMismatch(let o): return "TFRecord: data CRC mismatch in the record at byte \(o)"
        case .malformedProtobuf(let why): return "TFRecord: malformed protobuf: \(why)"
        }
    }
}

/// TFRecord framing: `uint64 length (LE) · uint32 masked_crc32c(length bytes) (LE) · data · uint32 masked_crc32c(data) (LE)`.
public enum TFRecord {
    /// One framed record.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        appendLittleEndian(UInt64(data.count), to: &out)
        let lengthCRC = CRC32C.masked(CRC32C.checksum(out[0..<8]))
        appendLittleEndian(lengthCRC, to: &out)
        out += data
        appendLittleEndian(CRC32C.masked(CRC32C.checksum(data)), to: &out)
        return out
    }

    /// Every record's data, in order, after verifying both CRCs of each.
    public static func records(in bytes: [UInt8]) throws -> [[UInt8]] {
        var records: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            let start = offset
            guard bytes.count - offset >= 12 else { throw TFRecordError.truncated(offset: start) }
            let lengthBytes = bytes[offset..<offset + 8]
            let length = readLittleEndian(UInt64.self, bytes, at: offset)
            guard CRC32C.masked(CRC32C.checksum(lengthBytes)) == readLittleEndian(UInt32.self, bytes, at: offset + 8) else {
                throw TFRecordError.lengthChecksumMismatch(offset: start)
            }
            offset += 12
            guard length <= UInt64(bytes.count - offset), bytes.count - offset - Int(length) >= 4 else {
                throw TFRecordError.truncated(offset: start)
            }
            let data = Array(bytes[offset..<offset + Int(length)])
            offset += Int(length)
            guard CRC32C.masked(CRC32C.checksum(data)) == readLittleEndian(UInt32.self, bytes, at: offset) else {
                throw TFRecordError.dataChecksumMismatch(offset: start)
            }
            offset += 4
            records.append(data)
        }
        return records
    }

    static func appendLittleEndian<T: FixedWidthInteger>(_ x: T, to out: inout [UInt8]) {
        var v = x.littleEndian
        withUnsafeBytes(of: &v) { out += $0 }
    }

    static func readLittleEndian<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], at offset: Int) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v |= T(bytes[offset + i]) << (8 * i) }
        return v
    }
}

// MARK: protobuf wire format (the few fields events use)

/// Protobuf wire-format encoder: varint, fixed64 (double), fixed32 (float), length-delimited.
struct ProtobufWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func key(_ field: Int, wireType: Int) { varint(UInt64(field << 3 | wireType)) }
    mutating func int64(_ field: Int, _ value: Int64) { key(field, wireType: 0); varint(UInt64(bitPattern: value)) }
    mutating func double(_ field: Int, _ value: Double) { key(field, wireType: 1); TFRecord.appendLittleEndian(value.bitPattern, to: &bytes) }
    mutating func float(_ field: Int, _ value: Float) { key(field, wireType: 5); TFRecord.appendLittleEndian(value.bitPattern, to: &bytes) }
    mutating func bytes(_ field: Int, _ value: [UInt8]) { key(field, wireType: 2); varint(UInt64(value.count)); bytes += value }
    mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }
}

/// Protobuf wire-format decoder: yields (field, value) pairs of one message.
struct ProtobufReader {
    enum Value { case varint(UInt64), fixed64(UInt64), fixed32(UInt32), bytes([UInt8]) }
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func next() throws -> (field: Int, value: Value)? {
        guard offset < bytes.count else { return nil }
        let key = try varint()
        let field = Int(key >> 3)
        guard field > 0 else { throw TFRecordError.malformedProtobuf("field number 0") }
        switch key & 7 {
        case 0: return (field, .varint(try varint()))
        case 1: return (field, .fixed64(try fixed(UInt64.self)))
        case 5: return (field, .fixed32(try fixed(UInt32.self)))
        case 2:
            let n = try varint()
            guard n <= UInt64(bytes.count - offset) else { throw TFRecordError.malformedProtobuf("length \(n) past the end") }
            defer { offset += Int(n) }
            return (field, .bytes(Array(bytes[offset..<offset + Int(n)])))
        default: throw TFRecordError.malformedProtobuf("wire type \(key & 7)")
        }
    }

    private mutating func varint() throws -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard offset < bytes.count, shift < 64 else { throw TFRecordError.malformedProtobuf("bad varint") }
            let b = bytes[offset]; offset += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }

    private mutating func fixed<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let n = MemoryLayout<T>.size
        guard bytes.count - offset >= n else { throw TFRecordError.malformedProtobuf("fixed field past the end") }
        defer { offset += n }
        return TFRecord.readLittleEndian(T.self, bytes, at: offset)
    }
}

// MARK: Event encoding

/// The `Event` messages MaskPilot writes (field numbers from event.proto and summary.proto):
/// `Event { double wall_time = 1; int64 step = 2; oneof what { string file_version = 3; Summary summary = 5; } }`,
/// `Summary { repeated Value value = 1; }`, `Summary.Value { string tag = 1; oneof value { float simple_value = 2; } }`.
public enum TensorBoardEvent {
    /// The file's first event: `file_version = "brain.Event:2"`.
    public static func fileVersion(wallTime: Double) -> [UInt8] {
        var w = ProtobufWriter()
        w.double(1, wallTime)
        w.string(3, "brain.Event:2")
        return w.bytes
    }

    /// One event holding scalar summaries, values in tag order.
    public static func scalars(_ scalars: [String: Double], step: Int, wallTime: Double) -> [UInt8] {
        var summary = ProtobufWriter()
        for (tag, value) in scalars.sorted(by: { $0.key < $1.key }) {
            var v = ProtobufWriter()
            v.string(1, tag)
            v.float(2, Float(value))
            summary.bytes(1, v.bytes)
        }
        var w = ProtobufWriter()
        w.double(1, wallTime)
        w.int64(2, Int64(step))
        w.bytes(5, summary.bytes)
        return w.bytes
    }
}

// MARK: writer

/// Writes `DIR/events.out.tfevents.<unix time>.<hostname>` for `tensorboard --logdir DIR`: one `Event` with
/// the file version, then one `Event` per `add` with every scalar of that step. Events are buffered and
/// written (one `write(2)`) by `flush()`, which `add` also calls when `flushInterval` seconds have passed
/// since the last flush; `deinit` flushes and closes. Only rank 0 writes.
public final class TensorBoardWriter {
    public let path: String
    private let file: AppendOnlyFile
    private var pending: [UInt8] = []
    private var lastFlush: Double
    /// Seconds between automatic flushes from `add` (0: flush on every add).
    public var flushInterval: Double = 10
    /// Calls `fsync` at every flush as well.
    public var syncOnFlush = false

    /// Creates `directory` if needed and a new events file in it.
    public init(directory: String, wallTime: Double = Date().timeIntervalSince1970, hostname: String = TensorBoardWriter.hostname()) throws {
        try makeDirectory(directory)
        let base = (directory as NSString).appendingPathComponent("events.out.tfevents.\(Int(wallTime)).\(hostname)")
        // A second writer in the same second (or a restart) gets a suffix instead of appending to the file.
        var candidate = base, n = 0
        while FileManager.default.fileExists(atPath: candidate) { n += 1; candidate = base + ".\(n)" }
        file = try AppendOnlyFile(path: candidate, exclusive: true)
        path = candidate
        lastFlush = Date().timeIntervalSince1970
        pending = TFRecord.frame(TensorBoardEvent.fileVersion(wallTime: wallTime))
        try flush()
    }

    deinit { try? flush() }

    /// Adds one event with `scalars` (tag → value, stored as Float) at `step`.
    public func add(scalars: [String: Double], step: Int, wallTime: Double = Date().timeIntervalSince1970) throws {
        pending += TFRecord.frame(TensorBoardEvent.scalars(scalars, step: step, wallTime: wallTime))
        if Date().timeIntervalSince1970 - lastFlush >= flushInterval { try flush() }
    }

    /// Writes the buffered events to the file.
    public func flush() throws {
        lastFlush = Date().timeIntervalSince1970
        guard !pending.isEmpty else { return }
        let bytes = pending
        pending.removeAll(keepingCapacity: true)
        try file.write(bytes)
        if syncOnFlush { try file.sync() }
    }

    /// This machine's host name (`gethostname`), "localhost" if unavailable.
    public static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }
}

// MARK: reader

/// Reads events files back (tests, tools): verifies the framing and decodes scalar summaries.
public enum TensorBoardEventReader {
    public struct Scalar: Sendable, Equatable {
        public var step: Int
        public var tag: String
        public var value: Float
        public var wallTime: Double
        public init(step: Int, tag: String, value: Float, wallTime: Double) {
            self.step = step; self.tag = tag; self.value = value; self.wallTime = wallTime
        }
    }

    /// The file version string (from the first event carrying one) and every scalar in file order.
    public static func read(path: String) throws -> (fileVersion: String?, scalars: [Scalar]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LogFileError(call: "read", path: path, message: "cannot read the file")
        }
        return try read(bytes: [UInt8](data))
    }

    /// As `read(path:)`, from the file's bytes.
    public static func read(bytes: [UInt8]) throws -> (fileVersion: String?, scalars: [Scalar]) {
        var version: String? = nil
        var scalars: [Scalar] = []
        for record in try TFRecord.records(in: bytes) {
            var event = ProtobufReader(record)
            var wallTime = 0.0, step = 0
            var summaries: [[UInt8]] = []
            while let (field, value) = try event.next() {
                switch (field, value) {
                case (1, .fixed64(let bits)): wallTime = Double(bitPattern: bits)
                case (2, .varint(let v)): step = Int(Int64(bitPattern: v))
                case (3, .bytes(let s)): version = version ?? String(decoding: s, as: UTF8.self)
                case (5, .bytes(let s)): summaries.append(s)
                case (1, _), (2, _), (3, _), (5, _): throw TFRecordError.malformedProtobuf("Event field \(field) has the wrong wire type")
                default: break
                }
            }
            for summary in summaries {
                var s = ProtobufReader(summary)
                while let (field, value) = try s.next() {
                    guard field == 1 else { continue }
                    guard case .bytes(let v) = value else { throw TFRecordError.malformedProtobuf("Summary.value is not a message") }
                    var reader = ProtobufReader(v)
                    var tag: String? = nil, simple: Float? = nil
                    while let (f, x) = try reader.next() {
                        switch (f, x) {
                        case (1, .bytes(let t)): tag = String(decoding: t, as: UTF8.self)
                        case (2, .fixed32(let bits)): simple = Float(bitPattern: bits)
                        default: break
                        }
                    }
                    if let tag, let simple { scalars.append(Scalar(step: step, tag: tag, value: simple, wallTime: wallTime)) }
                }
            }
        }
        return (version, scalars)
    }
}
