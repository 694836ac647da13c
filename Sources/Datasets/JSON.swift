// A byte-level JSON scanner for large files of known schema: readers pull typed values straight from the bytes,
// no intermediate object tree. Stands in for Python's json.load in pycocotools' COCO() (see COCOInstances.swift).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A JSON syntax error at a byte offset of the scanned buffer (or, with `schema`, well-formed JSON of the wrong
/// shape, such as a string where an array must be).
struct JSONSyntaxError: Error {
    var offset: Int
    var message: String
    var schema = false
}

/// A raw object key: the byte range between the quotes (escape sequences not decoded).
struct JSONKey {
    var start: Int
    var count: Int
    var hasEscapes: Bool
}

/// Reads JSON values one at a time from a byte buffer (RFC 8259 grammar; whitespace between tokens is
/// skipped by every reader). Numbers are converted with correct rounding, as Python's `float()` does.
struct JSONByteScanner {
    let base: UnsafePointer<UInt8>
    let end: Int
    var pos: Int = 0

    /// The buffer must outlive the scanner.
    init(_ buffer: UnsafeBufferPointer<UInt8>) {
        // an empty buffer still needs a valid pointer; it is never read (every read checks `end`)
        base = buffer.baseAddress.map { UnsafePointer($0) } ?? UnsafePointer(bitPattern: 1)!
        end = buffer.count
    }

    // MARK: low level

    func error(_ message: String, at offset: Int? = nil) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset ?? pos, message: message)
    }

    /// A printable description of the byte at the current position (for messages).
    func found() -> String {
        guard pos < end else { return "end of file" }
        let c = base[pos]
        if c >= 0x20 && c < 0x7f { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x\(String(c, radix: 16))"
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while pos < end {
            let c = base[pos]
            if c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 { pos += 1 } else { return }
        }
    }

    /// The next non-whitespace byte (0 at the end), not consumed.
    @inline(__always)
    mutating func peek() -> UInt8 {
        skipWhitespace()
        return pos < end ? base[pos] : 0
    }

    @inline(__always)
    mutating func expect(_ c: UInt8, _ what: String) throws(JSONSyntaxError) {
        skipWhitespace()
        guard pos < end && base[pos] == c else { throw error("expected \(what), found \(found())") }
        pos += 1
    }

    /// Requires that only whitespace remains.
    mutating func expectEnd() throws(JSONSyntaxError) {
        skipWhitespace()
        guard pos == end else { throw error("unexpected \(found()) after the top-level value") }
    }

    // MARK: containers

    /// Consumes `{`; returns false (and consumes `}`) if the object is empty.
    mutating func beginObject() throws(JSONSyntaxError) -> Bool {
        try expect(UInt8(ascii: "{"), "'{'")
        if peek() == UInt8(ascii: "}") { pos += 1; return false }
        return true
    }

    /// Reads `"key" :`.
    mutating func readKey() throws(JSONSyntaxError) -> JSONKey {
        skipWhitespace()
        guard pos < end && base[pos] == UInt8(ascii: "\"") else {
            throw error("expected an object key (a string), found \(found())")
        }
        let (start, count, escapes) = try scanString()
        try expect(UInt8(ascii: ":"), "':' after an object key")
        return JSONKey(start: start, count: count, hasEscapes: escapes)
    }

    /// After a member's value: true if `,` follows (another member), false after `}`.
    @inline(__always)
    mutating func nextMember() throws(JSONSyntaxError) -> Bool {
        let c = peek()
        if c == UInt8(ascii: ",") { pos += 1; return true }
        if c == UInt8(ascii: "}") { pos += 1; return false }
        throw error("expected ',' or '}' in an object, found \(found())")
    }

    /// Consumes `[`; returns false (and consumes `]`) if the array is empty.
    mutating func beginArray() throws(JSONSyntaxError) -> Bool {
        try expect(UInt8(ascii: "["), "'['")
        if peek() == UInt8(ascii: "]") { pos += 1; return false }
        return true
    }

    /// After an element: true if `,` follows, false after `]`.
    @inline(__always)
    mutating func nextElement() throws(JSONSyntaxError) -> Bool {
        let c = peek()
        if c == UInt8(ascii: ",") { pos += 1; return true }
        if c == UInt8(ascii: "]") { pos += 1; return false }
        throw error("expected ',' or ']' in an array, found \(found())")
    }

    /// True if `key` is exactly `name` (ASCII).
    func key(_ key: JSONKey, is name: StaticString) -> Bool {
        if key.hasEscapes { return decodeString(start: key.start, count: key.count) == name.description }
        guard key.count == name.utf8CodeUnitCount else { return false }
        let p = name.utf8Start
        for i in 0..<key.count where base[key.start + i] != p[i] { return false }
        return true
    }

    // MARK: strings

    /// Scans a string starting at `"`; returns the raw content range and whether it has escapes.
    mutating func scanString() throws(JSONSyntaxError) -> (start: Int, count: Int, hasEscapes: Bool) {
        let open = pos
        pos += 1
        let start = pos
        var escapes = false
        while pos < end {
            let c = base[pos]
            if c == UInt8(ascii: "\"") {
                pos += 1
                return (start, pos - 1 - start, escapes)
            }
            if c == UInt8(ascii: "\\") {
                escapes = true
                guard pos + 1 < end else { break }
                let e = base[pos + 1]
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    pos += 2
                case UInt8(ascii: "u"):
                    guard pos + 5 < end else { pos = end; break }
                    for k in 2...5 where hexValue(base[pos + k]) == nil {
                        throw error("invalid \\u escape in a string", at: pos)
                    }
                    pos += 6
                default:
                    throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))' in a string", at: pos)
                }
                continue
            }
            if c < 0x20 { throw error("unescaped control character 0x\(String(c, radix: 16)) in a string") }
            pos += 1
        }
        throw error("unterminated string", at: open)
    }

    /// Reads a string value.
    mutating func readString() throws(JSONSyntaxError) -> String {
        skipWhitespace()
        guard pos < end && base[pos] == UInt8(ascii: "\"") else { throw error("expected a string, found \(found())") }
        let (start, count, escapes) = try scanString()
        if !escapes { return String(decoding: UnsafeBufferPointer(start: base + start, count: count), as: UTF8.self) }
        return decodeString(start: start, count: count)
    }

    /// Decodes the escapes of an already scanned string's content.
    func decodeString(start: Int, count: Int) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        var i = start
        let stop = start + count
        var pendingHigh: UInt32? = nil
        func appendScalar(_ v: UInt32) {
            let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
            bytes.append(contentsOf: Array(String(Character(scalar)).utf8))
        }
        while i < stop {
            let c = base[i]
            guard c == UInt8(ascii: "\\") else {
                if let h = pendingHigh { appendScalar(h); pendingHigh = nil }
                bytes.append(c); i += 1; continue
            }
            let e = base[i + 1]
            if e == UInt8(ascii: "u") {
                var v: UInt32 = 0
                for k in 2...5 { v = v * 16 + UInt32(hexValue(base[i + k]) ?? 0) }
                i += 6
                if let h = pendingHigh {
                    pendingHigh = nil
                    if v >= 0xDC00 && v <= 0xDFFF { appendScalar(0x10000 + ((h - 0xD800) << 10) + (v - 0xDC00)); continue }
                    appendScalar(h)
                }
                if v >= 0xD800 && v <= 0xDBFF { pendingHigh = v } else { appendScalar(v) }
                continue
            }
            if let h = pendingHigh { appendScalar(h); pendingHigh = nil }
            switch e {
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0c)
            case UInt8(ascii: "n"): bytes.append(0x0a)
            case UInt8(ascii: "r"): bytes.append(0x0d)
            case UInt8(ascii: "t"): bytes.append(0x09)
            default: bytes.append(e)   // \" \\ \/
            }
            i += 2
        }
        if let h = pendingHigh { appendScalar(h) }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: numbers

    /// Reads a number with correct rounding to the nearest Double.
    @inline(__always)
    mutating func readDouble() throws(JSONSyntaxError) -> Double {
        skipWhitespace()
        let start = pos
        var negative = false
        if pos < end && base[pos] == UInt8(ascii: "-") { negative = true; pos += 1 }
        var mantissa: UInt64 = 0
        var digits = 0            // significant digits kept in `mantissa`
        var dropped = false       // a non-zero digit did not fit in `mantissa`
        var exponent = 0          // decimal exponent applied to `mantissa`
        // integer part
        guard pos < end, base[pos] &- 48 < 10 else { pos = start; throw error("expected a number, found \(found())") }
        if base[pos] == UInt8(ascii: "0") {
            pos += 1
        } else {
            while pos < end {
                let d = base[pos] &- 48
                if d >= 10 { break }
                if digits < 19 { mantissa = mantissa &* 10 &+ UInt64(d); digits += 1 } else { exponent += 1; if d != 0 { dropped = true } }
                pos += 1
            }
        }
        if pos < end && base[pos] == UInt8(ascii: ".") {
            pos += 1
            guard pos < end, base[pos] &- 48 < 10 else { throw error("expected a digit after '.' in a number") }
            while pos < end {
                let d = base[pos] &- 48
                if d >= 10 { break }
                if digits < 19 {
                    if mantissa != 0 || d != 0 { mantissa = mantissa &* 10 &+ UInt64(d); digits += 1 }
                    exponent -= 1
                } else if d != 0 { dropped = true }
                pos += 1
            }
        }
        if pos < end && (base[pos] | 0x20) == UInt8(ascii: "e") {
            pos += 1
            var expNegative = false
            if pos < end && (base[pos] == UInt8(ascii: "+") || base[pos] == UInt8(ascii: "-")) {
                expNegative = base[pos] == UInt8(ascii: "-"); pos += 1
            }
            guard pos < end, base[pos] &- 48 < 10 else { throw error("expected a digit in a number's exponent") }
            var e = 0
            while pos < end {
                let d = base[pos] &- 48
                if d >= 10 { break }
                if e < 100_000 { e = e * 10 + Int(d) }
                pos += 1
            }
            exponent += expNegative ? -e : e
        }
        if mantissa == 0 && !dropped { return negative ? -0.0 : 0.0 }
        // Clinger's fast path: both operands exact, so one IEEE operation rounds correctly.
        if !dropped && mantissa <= (1 << 53) && exponent >= -22 && exponent <= 22 {
            let m = Double(mantissa)
            let v = exponent < 0 ? m / JSONByteScanner.powersOfTen[-exponent] : m * JSONByteScanner.powersOfTen[exponent]
            return negative ? -v : v
        }
        let text = String(decoding: UnsafeBufferPointer(start: base + start, count: pos - start), as: UTF8.self)
        guard let v = Double(text) else { throw error("invalid number '\(text)'", at: start) }
        return v
    }

    static let powersOfTen: [Double] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
                                        1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]

    /// Reads a number and returns it if it is an integer (`3.0` and `1e3` count), nil otherwise (the number is
    /// consumed either way).
    @inline(__always)
    mutating func readInteger() throws(JSONSyntaxError) -> Int? {
        skipWhitespace()
        let start = pos
        var negative = false
        var p = pos
        if p < end && base[p] == UInt8(ascii: "-") { negative = true; p += 1 }
        var value = 0
        var n = 0
        while p < end {
            let d = base[p] &- 48
            if d >= 10 { break }
            value = value &* 10 &+ Int(d)
            n += 1
            p += 1
        }
        let plain = n > 0 && n <= 18 && !(n > 1 && base[negative ? start + 1 : start] == UInt8(ascii: "0"))
        if plain && (p >= end || (base[p] != UInt8(ascii: ".") && (base[p] | 0x20) != UInt8(ascii: "e"))) {
            pos = p
            return negative ? -value : value
        }
        let v = try readDouble()
        guard v.rounded() == v, abs(v) < 9.0e18 else { return nil }
        return Int(v)
    }

    // MARK: skipping

    /// Skips one value of any type, checking its syntax.
    mutating func skipValue(depth: Int = 0) throws(JSONSyntaxError) {
        guard depth < 512 else { throw error("nesting deeper than 512 levels") }
        let c = peek()
        switch c {
        case UInt8(ascii: "{"):
            if try beginObject() {
                repeat { _ = try readKey(); try skipValue(depth: depth + 1) } while try nextMember()
            }
        case UInt8(ascii: "["):
            if try beginArray() {
                repeat { try skipValue(depth: depth + 1) } while try nextElement()
            }
        case UInt8(ascii: "\""):
            _ = try scanString()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default:
            _ = try readDouble()
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        let p = word.utf8Start
        guard pos + n <= end, (0..<n).allSatisfy({ base[pos + $0] == p[$0] }) else {
            throw error("invalid literal, expected '\(word)'")
        }
        pos += n
    }

    /// True if the next value is a number.
    @inline(__always)
    mutating func atNumber() -> Bool {
        let c = peek()
        return c == UInt8(ascii: "-") || c &- 48 < 10
    }

    /// Reads `true`/`false`, or a number (non-zero is true).
    mutating func readBoolOrNumber() throws(JSONSyntaxError) -> Double {
        let c = peek()
        if c == UInt8(ascii: "t") { try literal("true"); return 1 }
        if c == UInt8(ascii: "f") { try literal("false"); return 0 }
        return try readDouble()
    }

    // MARK: positions

    /// 1-based line and column (in bytes) of a byte offset.
    func lineAndColumn(of offset: Int) -> (line: Int, column: Int) {
        var line = 1
        var lineStart = 0
        let stop = min(offset, end)
        for i in 0..<stop where base[i] == 0x0a { line += 1; lineStart = i + 1 }
        return (line, stop - lineStart + 1)
    }
}

@inline(__always)
private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 48...57: return c - 48
    case 65...70: return c - 55
    case 97...102: return c - 87
    default: return nil
    }
}

/// A whole file mapped read-only for scanning, unmapped when the value goes away. Scanned pages can be given back
/// to the kernel (`release(below:)`), so a large file never needs to be resident all at once.
struct MappedFile: ~Copyable {
    let bytes: UnsafeBufferPointer<UInt8>
    private var released = 0

    /// Maps `path`; the error is the system's reason (strerror) the file cannot be opened, sized or mapped.
    init(path: String) throws(MappedFileError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw MappedFileError(reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw MappedFileError(reason: String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw MappedFileError(reason: "not a regular file") }
        let size = Int(info.st_size)
        guard size > 0 else { bytes = UnsafeBufferPointer(start: nil, count: 0); return }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw MappedFileError(reason: String(cString: strerror(errno)))
        }
        _ = madvise(p, size, MADV_SEQUENTIAL)
        bytes = UnsafeBufferPointer(start: p.assumingMemoryBound(to: UInt8.self), count: size)
    }

    /// Drops the resident pages before `offset` (whole 16 MB blocks); they fault back in if read again.
    mutating func release(below offset: Int) {
        guard let base = bytes.baseAddress else { return }
        released = releaseMappedPages(base, released: released, below: offset)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// Lets the kernel drop the pages of a read-only mapping at `base` from `released` up to `offset`, in whole 16 MB
/// blocks, so a scan's peak resident memory holds little more than what it builds; pages read again fault back
/// in. Returns the new `released` mark.
func releaseMappedPages(_ base: UnsafePointer<UInt8>, released: Int, below offset: Int) -> Int {
    let upTo = offset & ~((1 << 24) - 1)
    guard upTo > released else { return released }
    _ = madvise(UnsafeMutableRawPointer(mutating: base) + released, upTo - released, MADV_DONTNEED)
    return upTo
}

struct MappedFileError: Error {
    var reason: String
}
