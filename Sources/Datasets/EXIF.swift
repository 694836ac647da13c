// EXIF orientation (read from JPEG APP1, written as a minimal APP1, applied as flips/rotations), format sniffing
// and file I/O: `loadImage` is detectron2's `read_image` (`_apply_exif_orientation` + `convert_PIL_to_numpy`).
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - EXIF orientation

/// The EXIF orientation tag (274) of a JPEG: the value in IFD0 of the first APP1 segment starting with
/// "Exif\0\0", as PIL's `getexif()` reads it. `nil` when the file has no EXIF, no orientation tag, or EXIF
/// that cannot be parsed (detectron2 then leaves the image as is). The value is returned as stored
/// (normally 1…8; only 2…8 change the image).
public func exifOrientation(ofJPEG data: [UInt8]) -> Int? {
    let d = data, count = d.count
    guard count >= 4, d[0] == 0xFF, d[1] == 0xD8 else { return nil }
    var i = 2
    while i + 1 < count {
        guard d[i] == 0xFF else { return nil }
        let marker = d[i + 1]
        if marker == 0xFF { i += 1; continue }                                          // fill byte
        if marker == 0x01 || (0xD0...0xD8).contains(marker) { i += 2; continue }        // no length
        if marker == 0xDA || marker == 0xD9 { return nil }                              // SOS / EOI: no EXIF before image data
        guard i + 3 < count else { return nil }
        let length = Int(d[i + 2]) << 8 | Int(d[i + 3])
        let start = i + 4, end = i + 2 + length
        guard length >= 2, end <= count else { return nil }
        if marker == 0xE1, end - start >= 6,
           d[start] == 0x45, d[start + 1] == 0x78, d[start + 2] == 0x69, d[start + 3] == 0x66,   // "Exif"
           d[start + 4] == 0, d[start + 5] == 0 {
            return exifOrientation(tiff: d, from: start + 6, to: end)
        }
        i = end
    }
    return nil
}

/// Tag 274 in IFD0 of the TIFF structure `d[from..<to]` (byte order "II" or "MM"), if it is one BYTE, SHORT
/// or LONG value.
func exifOrientation(tiff d: [UInt8], from s: Int, to e: Int) -> Int? {
    guard e - s >= 8 else { return nil }
    let little: Bool
    if d[s] == 0x49 && d[s + 1] == 0x49 { little = true } else if d[s] == 0x4D && d[s + 1] == 0x4D { little = false } else { return nil }
    func u16(_ at: Int) -> Int? {
        guard at >= s, at + 2 <= e else { return nil }
        return little ? Int(d[at]) | Int(d[at + 1]) << 8 : Int(d[at]) << 8 | Int(d[at + 1])
    }
    func u32(_ at: Int) -> Int? {
        guard let a = u16(at), let b = u16(at + 2) else { return nil }
        return little ? a | b << 16 : a << 16 | b
    }
    guard u16(s + 2) == 42, let ifdOffset = u32(s + 4), let entries = u16(s + ifdOffset) else { return nil }
    let ifd = s + ifdOffset
    for k in 0..<entries {
        let entry = ifd + 2 + 12 * k
        guard let tag = u16(entry), let type = u16(entry + 2), let n = u32(entry + 4) else { return nil }
        guard tag == 274 else { continue }
        guard n == 1 else { return nil }
        switch type {
        case 1: return entry + 9 <= e ? Int(d[entry + 8]) : nil     // BYTE
        case 3: return u16(entry + 8)                                // SHORT
        case 4: return u32(entry + 8)                                // LONG
        default: return nil
        }
    }
    return nil
}

/// The payload of an APP1 segment holding EXIF with only the orientation tag: "Exif\0\0", a big-endian TIFF
/// header, IFD0 with one SHORT entry (274 = `orientation`), no next IFD.
func exifOrientationSegment(_ orientation: Int) -> [UInt8] {
    let value = UInt8(truncatingIfNeeded: orientation)
    return [0x45, 0x78, 0x69, 0x66, 0, 0,          // "Exif\0\0"
            0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8,    // "MM", 42, IFD0 at offset 8
            0x00, 0x01,                            // one entry
            0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1,    // tag 274, SHORT, count 1
            0x00, value, 0x00, 0x00,               // value (left-justified)
            0, 0, 0, 0]                            // no next IFD
}

/// Applies an EXIF orientation the way detectron2's `_apply_exif_orientation` does with PIL's `transpose`:
/// 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270 (90° clockwise),
/// 7 TRANSVERSE, 8 ROTATE_90 (90° counter-clockwise). Other values return `image` unchanged.
/// Orientations 5–8 swap width and height. Works for any channel count.
public func applyEXIFOrientation(_ image: Image8, orientation: Int) -> Image8 {
    let w = image.width, h = image.height, c = image.channels
    guard (2...8).contains(orientation), w > 0, h > 0 else { return image }
    let outW = orientation >= 5 ? h : w, outH = orientation >= 5 ? w : h
    // Output pixel (x, y) reads source pixel index base + x·dx + y·dy (source index = sy·w + sx).
    let base: Int, dx: Int, dy: Int
    switch orientation {
    case 2: (base, dx, dy) = (w - 1, -1, w)                  // (w−1−x, y)
    case 3: (base, dx, dy) = ((h - 1) * w + w - 1, -1, -w)   // (w−1−x, h−1−y)
    case 4: (base, dx, dy) = ((h - 1) * w, 1, -w)            // (x, h−1−y)
    case 5: (base, dx, dy) = (0, w, 1)                       // (y, x)
    case 6: (base, dx, dy) = ((h - 1) * w, -w, 1)            // (y, h−1−x)
    case 7: (base, dx, dy) = ((h - 1) * w + w - 1, -w, -1)   // (w−1−y, h−1−x)
    default: (base, dx, dy) = (w - 1, w, -1)                 // 8: (w−1−y, x)
    }
    // Rotations and transposes read the source column-wise: walk the output in tiles to stay in cache.
    let tile = orientation >= 5 ? 64 : max(outW, 1)
    let pixels = image.pixels.withUnsafeBufferPointer { src in
        makePixelBuffer(count: w * h * c) { out in
            let s = src.baseAddress!
            for y0 in stride(from: 0, to: outH, by: tile) {
                for x0 in stride(from: 0, to: outW, by: tile) {
                    let x1 = min(x0 + tile, outW)
                    for y in y0..<min(y0 + tile, outH) {
                        var k = base + x0 * dx + y * dy
                        var o = out + (y * outW + x0) * c
                        if c == 3 {
                            for _ in x0..<x1 { let p = s + 3 * k; o[0] = p[0]; o[1] = p[1]; o[2] = p[2]; o += 3; k += dx }
                        } else {
                            for _ in x0..<x1 { o.update(from: s + c * k, count: c); o += c; k += dx }
                        }
                    }
                }
            }
            return w * h * c
        }
    }
    return Image8(width: outW, height: outH, channels: c, pixels: pixels)
}

// MARK: - Format sniffing, reading and writing files

/// An image container recognised by its magic bytes.
public enum ImageFileFormat: String, Sendable {
    case jpeg, png

    /// JPEG: FF D8 FF; PNG: the 8-byte signature 89 'P' 'N' 'G' 0D 0A 1A 0A.
    public init?(sniffing data: [UInt8]) {
        if data.count >= 3, data[0] == 0xFF, data[1] == 0xD8, data[2] == 0xFF {
            self = .jpeg
        } else if data.count >= 8, data[0] == 0x89, data[1] == 0x50, data[2] == 0x4E, data[3] == 0x47,
                  data[4] == 0x0D, data[5] == 0x0A, data[6] == 0x1A, data[7] == 0x0A {
            self = .png
        } else {
            return nil
        }
    }
}

/// Names a few formats we do not read, for the error message.
private func describeUnsupported(_ d: [UInt8]) -> String {
    func starts(_ s: [UInt8]) -> Bool { d.count >= s.count && Array(d.prefix(s.count)) == s }
    let hex = d.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
    let name: String
    if starts([0x47, 0x49, 0x46, 0x38]) { name = "GIF" }
    else if starts([0x42, 0x4D]) { name = "BMP" }
    else if starts([0x52, 0x49, 0x46, 0x46]) && d.count >= 12 && Array(d[8..<12]) == [0x57, 0x45, 0x42, 0x50] { name = "WebP" }
    else if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { name = "TIFF" }
    else if starts([0xFF, 0xD8]) { name = "a damaged JPEG" }
    else if starts([0x89, 0x50, 0x4E, 0x47]) { name = "a damaged PNG" }
    else { name = "not JPEG or PNG" }
    return "unsupported image format (\(name); first bytes \(hex))"
}

/// Decodes JPEG or PNG bytes, chosen by magic bytes (not by file name), and applies a JPEG's EXIF orientation:
/// detectron2's `read_image(file, format)` on bytes. See `decodeJPEG` / `decodePNG` for colour handling.
/// - Throws: `DataError` naming `file`: empty data, unknown format, or the codec's error.
public func decodeImage(_ data: [UInt8], file: String, mode: ImageReadMode = .rgb) throws -> Image8 {
    guard !data.isEmpty else { throw DataError(file: file, problem: "empty file (0 bytes)") }
    switch ImageFileFormat(sniffing: data) {
    case .jpeg:
        let image = try decodeJPEG(data, file: file, mode: mode)
        guard let orientation = exifOrientation(ofJPEG: data) else { return image }
        return applyEXIFOrientation(image, orientation: orientation)
    case .png:
        return try decodePNG(data, file: file, mode: mode)
    case nil:
        throw DataError(file: file, problem: describeUnsupported(data))
    }
}

/// Reads and decodes the image at `path` (see `decodeImage`); errors name `path`.
/// - Returns: `[H, W, 3]` for `.rgb` (the default, as images are fed to the network).
public func loadImage(path: String, mode: ImageReadMode = .rgb) throws -> Image8 {
    try decodeImage(try ImageFileIO.readAll(path: path), file: path, mode: mode)
}

/// POSIX file reading and atomic writing with errors that name the path, the call and `strerror`.
enum ImageFileIO {
    static func posixError(_ path: String, _ call: String) -> DataError {
        DataError(file: path, problem: "\(call): \(String(cString: strerror(errno)))")
    }

    /// The whole file, read straight into the returned array.
    static func readAll(path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw posixError(path, "open") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw posixError(path, "fstat") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw DataError(file: path, problem: "not a regular file") }
        let size = Int(info.st_size)
        return try makePixelBuffer(count: size) { p in
            var done = 0
            while done < size {
                let got = read(fd, p + done, size - done)
                if got < 0 { if errno == EINTR { continue }; throw posixError(path, "read") }
                if got == 0 { break }
                done += got
            }
            return done
        }
    }

    /// Writes `bytes` to a hidden temporary file in `path`'s directory, then renames it over `path`, so readers
    /// never see a partial file.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let temp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw posixError(path, "open(\(temp))") }
        var ok = false
        defer { if !ok { unlink(temp) } }
        let failure: DataError? = bytes.withUnsafeBufferPointer { buffer in
            var done = 0
            while done < buffer.count {
                let put = write(fd, buffer.baseAddress! + done, buffer.count - done)
                if put < 0 { if errno == EINTR { continue }; return posixError(path, "write") }
                done += put
            }
            return nil
        }
        if let failure { close(fd); throw failure }
        guard close(fd) == 0 else { throw posixError(path, "close") }
        guard rename(temp, path) == 0 else { throw posixError(path, "rename") }
        ok = true
    }
}
