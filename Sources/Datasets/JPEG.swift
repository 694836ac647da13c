// JPEG decoding and encoding through libjpeg-turbo (CImageCodecs), and the read modes shared with PNG.
// Corresponds to PIL's JpegImagePlugin + Image.convert(mode), as detectron2's read_image uses them.
import CImageCodecs
import Foundation

/// How a decoder lays out the pixels it returns. Each mode matches PIL's `Image.open(f).convert(mode)`
/// (`.natural`: no convert), which is what detectron2's `read_image(f, format)` gives.
public enum ImageReadMode: Sendable, Equatable, CustomStringConvertible {
    /// 3 channels (PIL "RGB"): gray replicated, palette looked up, alpha dropped (not composited),
    /// CMYK converted as Pillow does. The mode for network inputs.
    case rgb
    /// 4 channels (PIL "RGBA"): alpha 255 where the file has none, 0 where a tRNS colour / palette entry says so.
    case rgba
    /// 1 channel (PIL "L"): gray files as stored; colour files reduced by Pillow's ITU-R 601-2
    /// fixed-point luma `(19595·R + 38470·G + 7471·B + 32768) >> 16`.
    case gray
    /// The file's own channels (detectron2 `format=None`): gray 1, gray+alpha 2, palette 1 (the indices),
    /// RGB 3, RGBA 4; JPEG: gray 1, otherwise 3 (CMYK converted to RGB).
    case natural
    /// 1 channel holding the stored values of a gray or palette PNG (palette *indices*, never colours):
    /// label maps such as ADE20K annotations. Any other file (RGB PNG, JPEG) is a `DataError`.
    case indices

    public var description: String {
        switch self {
        case .rgb: "rgb"
        case .rgba: "rgba"
        case .gray: "gray"
        case .natural: "natural"
        case .indices: "indices"
        }
    }
}

/// Refuses images above PIL's decompression-bomb error threshold (2 × `Image.MAX_IMAGE_PIXELS` = 178,956,970
/// pixels) before any pixel memory is allocated.
let maxDecodedPixels = 2 * 89_478_485

func checkPixelBudget(width: Int, height: Int, file: String) throws {
    guard width > 0, height > 0 else {
        throw DataError(file: file, problem: "image has no pixels (\(width)×\(height))")
    }
    guard width.multipliedReportingOverflow(by: height).partialValue <= maxDecodedPixels,
          width <= maxDecodedPixels, height <= maxDecodedPixels else {
        throw DataError(file: file, problem: "image of \(width)×\(height) pixels exceeds the \(maxDecodedPixels)-pixel limit (PIL's decompression-bomb error)")
    }
}

/// Allocates `count` bytes and lets `fill` write them (no zero-fill, no copy); `fill` returns the bytes used.
func makePixelBuffer(count: Int, _ fill: (UnsafeMutablePointer<UInt8>) throws -> Int) rethrows -> [UInt8] {
    try [UInt8](unsafeUninitializedCapacity: max(count, 1)) { buffer, initialized in
        initialized = try fill(buffer.baseAddress!)
    }
}

/// In-place pixel layout conversions used by the codecs (each one pass, no temporary image).
enum CodecPixels {
    /// `n` RGB pixels at the start of `p` → `n` luma bytes at the start of `p` (Pillow's L24).
    static func rgbToLumaInPlace(_ p: UnsafeMutablePointer<UInt8>, pixels n: Int, stride: Int = 3) {
        var s = p
        for i in 0..<n {
            let r = UInt32(s[0]), g = UInt32(s[1]), b = UInt32(s[2])
            p[i] = UInt8(truncatingIfNeeded: (r &* 19595 &+ g &* 38470 &+ b &* 7471 &+ 0x8000) >> 16)
            s += stride
        }
    }

    /// `n` 2-channel (gray, alpha) pixels → `n` gray bytes, in place.
    static func dropSecondChannelInPlace(_ p: UnsafeMutablePointer<UInt8>, pixels n: Int) {
        for i in 0..<n { p[i] = p[2 * i] }
    }

    /// `n` RGB pixels at the start of a `4n`-byte buffer → `n` RGBA pixels (alpha 255), in place (back to front).
    static func rgbToRGBAInPlace(_ p: UnsafeMutablePointer<UInt8>, pixels n: Int) {
        var i = n - 1
        while i >= 0 {
            let r = p[3 * i], g = p[3 * i + 1], b = p[3 * i + 2]
            p[4 * i] = r; p[4 * i + 1] = g; p[4 * i + 2] = b; p[4 * i + 3] = 255
            i -= 1
        }
    }
}

// MARK: - Decoding

/// A libjpeg decompressor (`jpeg_decompress_struct` + error manager); destroyed in `deinit`.
final class JPEGDecompressor {
    private let handle: UnsafeMutablePointer<mp_jpeg_decoder>
    let file: String

    init(file: String) throws {
        guard let h = mp_jpeg_decoder_create() else {
            throw DataError(file: file, problem: "jpeg_create_decompress: out of memory")
        }
        guard h.pointee.created != 0 else {
            let message = String(cString: mp_jpeg_decoder_message(h))
            mp_jpeg_decoder_destroy(h)
            throw DataError(file: file, problem: "jpeg_create_decompress: \(message)")
        }
        handle = h
        self.file = file
    }

    deinit { mp_jpeg_decoder_destroy(handle) }

    /// The failed call's name (recorded by the shim) and libjpeg's message.
    private func failure() -> DataError {
        DataError(file: file, problem: "\(String(cString: mp_jpeg_decoder_call(handle))): \(String(cString: mp_jpeg_decoder_message(handle)))")
    }

    /// `jpeg_mem_src` + `jpeg_read_header`. `bytes` must stay valid until `decode` returns.
    func readHeader(_ bytes: UnsafeBufferPointer<UInt8>) throws {
        guard mp_jpeg_decoder_read_header(handle, bytes.baseAddress, UInt(bytes.count)) == 0 else {
            throw failure()
        }
    }

    var width: Int { Int(mp_jpeg_decoder_width(handle)) }
    var height: Int { Int(mp_jpeg_decoder_height(handle)) }
    var isGray: Bool { mp_jpeg_decoder_is_gray(handle) != 0 }
    var isCMYK: Bool { mp_jpeg_decoder_is_cmyk(handle) != 0 }
    var components: Int { Int(mp_jpeg_decoder_components(handle)) }
    /// Non-fatal libjpeg warnings seen so far (e.g. "Corrupt JPEG data: N extraneous bytes before marker").
    var warnings: Int { Int(mp_jpeg_decoder_warnings(handle)) }

    /// `jpeg_start_decompress` … `jpeg_finish_decompress` into `out` (`width·height·channels` bytes);
    /// channels 3 = RGB, 1 = gray (gray files only).
    func decode(into out: UnsafeMutablePointer<UInt8>, channels: Int) throws {
        let size = width * height * channels
        guard mp_jpeg_decoder_decode(handle, out, size, Int32(channels)) == 0 else {
            throw failure()
        }
    }
}

/// Decodes a JPEG file's bytes. `file` names the source in errors. No EXIF orientation is applied here
/// (see `decodeImage` / `loadImage`).
///
/// Colour: YCbCr and RGB JPEGs come out as libjpeg's RGB (ISLOW IDCT, fancy upsampling — PIL's defaults, so
/// pixels equal PIL's with the same libjpeg); gray JPEGs are replicated to RGB (or returned as 1 channel for
/// `.gray` / `.natural`); CMYK and YCCK JPEGs are read as Adobe-inverted CMYK and converted as Pillow does
/// (`R = (255−C)(255−K)/255`, rounded).
///
/// Errors (`DataError` naming `file` and libjpeg's message): empty input, not a JPEG, corrupt headers or
/// data libjpeg cannot decode, and truncation. libjpeg itself only *warns* on a truncated file ("Premature
/// end of JPEG file") and fills the rest with gray; that warning is an error here while rows are still
/// missing, as PIL raises "image file is truncated" (unless LOAD_TRUNCATED_IMAGES). A file missing only the
/// final EOI marker decodes. Other warnings (extraneous bytes, …) are ignored, as in PIL.
/// - Returns: `[H, W, 3]` for `.rgb` (default), `[H, W, 4]` for `.rgba`, `[H, W, 1]` for `.gray`.
public func decodeJPEG(_ data: [UInt8], file: String, mode: ImageReadMode = .rgb) throws -> Image8 {
    if mode == .indices {
        throw DataError(file: file, problem: "a JPEG cannot hold label indices (expected a gray or palette PNG)")
    }
    return try data.withUnsafeBufferPointer { bytes in
        let decoder = try JPEGDecompressor(file: file)
        try decoder.readHeader(bytes)
        let w = decoder.width, h = decoder.height, n = w * h
        try checkPixelBudget(width: w, height: h, file: file)
        let gray = decoder.isGray
        switch mode {
        case .gray where gray, .natural where gray:
            let pixels = try makePixelBuffer(count: n) { p in try decoder.decode(into: p, channels: 1); return n }
            return Image8(width: w, height: h, channels: 1, pixels: pixels)
        case .gray:
            let pixels = try makePixelBuffer(count: 3 * n) { p in
                try decoder.decode(into: p, channels: 3)
                CodecPixels.rgbToLumaInPlace(p, pixels: n)
                return n
            }
            return Image8(width: w, height: h, channels: 1, pixels: pixels)
        case .rgba:
            let pixels = try makePixelBuffer(count: 4 * n) { p in
                try decoder.decode(into: p, channels: 3)
                CodecPixels.rgbToRGBAInPlace(p, pixels: n)
                return 4 * n
            }
            return Image8(width: w, height: h, channels: 4, pixels: pixels)
        case .rgb, .natural, .indices:
            let pixels = try makePixelBuffer(count: 3 * n) { p in try decoder.decode(into: p, channels: 3); return 3 * n }
            return Image8(width: w, height: h, channels: 3, pixels: pixels)
        }
    }
}

// MARK: - Encoding

/// A libjpeg compressor writing to memory (`jpeg_compress_struct` + `jpeg_mem_dest` buffer); destroyed in `deinit`.
final class JPEGCompressor {
    private let handle: UnsafeMutablePointer<mp_jpeg_encoder>
    let file: String

    init(file: String) throws {
        guard let h = mp_jpeg_encoder_create() else {
            throw DataError(file: file, problem: "jpeg_create_compress: out of memory")
        }
        guard h.pointee.created != 0 else {
            let message = String(cString: mp_jpeg_encoder_message(h))
            mp_jpeg_encoder_destroy(h)
            throw DataError(file: file, problem: "jpeg_create_compress: \(message)")
        }
        handle = h
        self.file = file
    }

    deinit { mp_jpeg_encoder_destroy(handle) }

    /// `jpeg_set_defaults` … `jpeg_finish_compress` on `pixels` (`height` rows of `width·components` bytes).
    /// `colorSpace` is libjpeg's input space (JCS_GRAYSCALE / JCS_RGB / JCS_CMYK); `jpegColorSpace` < 0 keeps
    /// libjpeg's default stored space. `app1` is written as one APP1 marker (EXIF).
    func encode(_ pixels: UnsafePointer<UInt8>, width: Int, height: Int, components: Int, colorSpace: Int32,
                jpegColorSpace: Int32 = -1, quality: Int, app1: [UInt8] = []) throws -> [UInt8] {
        let status = app1.withUnsafeBufferPointer { marker in
            mp_jpeg_encoder_encode(handle, pixels, UInt32(width), UInt32(height), Int32(components), colorSpace,
                                   jpegColorSpace, Int32(quality), marker.isEmpty ? nil : marker.baseAddress,
                                   UInt32(marker.count))
        }
        guard status == 0 else {
            throw DataError(file: file, problem: "\(String(cString: mp_jpeg_encoder_call(handle))): \(String(cString: mp_jpeg_encoder_message(handle)))")
        }
        let size = Int(mp_jpeg_encoder_size(handle))
        guard let bytes = mp_jpeg_encoder_bytes(handle), size > 0 else {
            throw DataError(file: file, problem: "jpeg_finish_compress: no output")
        }
        return [UInt8](UnsafeBufferPointer(start: bytes, count: size))
    }
}

/// Encodes a gray (1 channel) or RGB (3 channels) image as a baseline JPEG: libjpeg defaults (JFIF header,
/// 4:2:0 chroma subsampling for RGB — PIL's defaults too), ISLOW DCT, `quality` 1…100.
/// `exifOrientation` (1…8) adds a minimal EXIF APP1 segment holding only the orientation tag (274), so
/// readers that honour EXIF (detectron2, `loadImage`) rotate/flip the stored pixels on load.
/// - Returns: the JPEG file's bytes.
public func encodeJPEG(_ image: Image8, quality: Int = 95, exifOrientation: Int? = nil) throws -> [UInt8] {
    try encodeJPEG(image, quality: quality, exifOrientation: exifOrientation, file: "<JPEG in memory>")
}

func encodeJPEG(_ image: Image8, quality: Int, exifOrientation: Int?, file: String) throws -> [UInt8] {
    guard image.channels == 1 || image.channels == 3 else {
        throw DataError(file: file, problem: "JPEG encoding needs 1 (gray) or 3 (RGB) channels, got \(image.channels)")
    }
    guard (1...100).contains(quality) else {
        throw DataError(file: file, problem: "JPEG quality \(quality) is outside 1…100")
    }
    guard image.width > 0, image.height > 0, image.width <= 65_500, image.height <= 65_500 else {
        throw DataError(file: file, problem: "JPEG size \(image.width)×\(image.height) is outside 1…65500")
    }
    var app1: [UInt8] = []
    if let orientation = exifOrientation {
        guard (1...8).contains(orientation) else {
            throw DataError(file: file, problem: "EXIF orientation \(orientation) is outside 1…8")
        }
        app1 = exifOrientationSegment(orientation)
    }
    let encoder = try JPEGCompressor(file: file)
    let space = image.channels == 1 ? mp_jcs_grayscale() : mp_jcs_rgb()
    return try image.pixels.withUnsafeBufferPointer { px in
        try encoder.encode(px.baseAddress!, width: image.width, height: image.height, components: image.channels,
                           colorSpace: space, quality: quality, app1: app1)
    }
}

/// Encodes `image` as JPEG (see `encodeJPEG`) and writes it to `path` atomically (temporary file in the same
/// directory, then rename).
public func writeJPEG(_ image: Image8, to path: String, quality: Int = 95, exifOrientation: Int? = nil) throws {
    let bytes = try encodeJPEG(image, quality: quality, exifOrientation: exifOrientation, file: path)
    try ImageFileIO.writeAtomically(bytes, to: path)
}
