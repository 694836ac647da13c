// HDF5TestFiles: scratch file paths for the HDF5 wrapper tests, removed when the test ends.
// No reference counterpart.
import Foundation
import Testing

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

/// Runs `/usr/bin/h5dump` with `arguments` and returns its exit status and combined output, or nil after
/// recording an issue when the tool is missing (`make deps` installs hdf5-tools).
func runH5dump(_ arguments: [String]) throws -> (status: Int32, output: String)? {
    let tool = "/usr/bin/h5dump"
    guard FileManager.default.isExecutableFile(atPath: tool) else {
        Issue.record("\(tool) not found: install hdf5-tools (`make deps` does)")
        return nil
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
