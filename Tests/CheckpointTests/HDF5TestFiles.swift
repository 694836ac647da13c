// HDF5TestFiles: scratch file paths for the HDF5 wrapper tests, removed when the test ends.
// No reference counterpart.
import Foundation

/// A unique scratch path in the temporary directory; `remove()` deletes it and any siblings made from it.
struct ScratchFile {
    let path: String

    init(_ tag: String) {
        let name = "maskpilot-\(tag)-\(getpid())-\(UUID().uuidString.prefix(8)).h5"
        path = FileManager.default.temporaryDirectory.appendingPathComponent(name).path
    }

    /// A sibling path with `suffix` appended (e.g. a truncated copy).
    func sibling(_ suffix: String) -> String { path + suffix }

    func remove(_ suffixes: String...) {
        unlink(path)
        for suffix in suffixes { unlink(sibling(suffix)) }
    }

    var bytes: [UInt8] { get throws { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) } }

    func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

/// Index of the first occurrence of `needle` in `haystack`, or nil.
func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
    outer: for start in 0...(haystack.count - needle.count) {
        for k in 0..<needle.count where haystack[start + k] != needle[k] { continue outer }
        return start
    }
    return nil
}

/// The little-endian bytes of `values`.
func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v -> [UInt8] in
        let bits = v.bitPattern.littleEndian
        return [UInt8(bits & 0xff), UInt8((bits >> 8) & 0xff), UInt8((bits >> 16) & 0xff), UInt8(bits >> 24)]
    }
}
