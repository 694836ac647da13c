// PNG decoding (libpng low-level reader, values exactly as stored) and encoding (libpng simplified writer).
// Corresponds to PIL's PngImagePlugin + Image.convert(mode), as detectron2's read_image uses them.
import CImageCodecs
import Foundation

// MARK: - Decoding

/// A libpng read struct + info struct reading from memory; destroyed in `deinit`.
final class PNGReader {
    let handle: UnsafeMutablePointer<mp_png_decoder>
    let file: String

    init(file: String) throws {
        guard let h = mp_png_decoder_create() else {
            throw DataError(file: file, problem: "png_create_read_struct: out of memory")
        }
        guard h.pointee.png != nil, h.pointee.info != nil else {
            let message = String(cString: mp_png_decoder_message(h))
            mp_png_decoder_destroy(h)
            throw DataError(file: file, problem: "\(String(cString: mp_png_decoder_call(h))): \(message)")
        }
        handle = h
        self.file = file
    }

    deinit { mp_png_decoder_destroy(handle) }

    /// The failed call's name (recorded by the shim) and libpng's message.
    func failure() -> DataError {
        DataError(file: file, problem: "\(String(cString: mp_png_decoder_call(handle))): \(String(cString: mp_png_decoder_message(handle)))")
    }

    /// Signature check + `png_read_info`. `bytes` must stay valid until `decode` returns.
    func readInfo(_ bytes: UnsafeBufferPointer<UInt8>) throws {
        guard mp_png_decoder_read_info(handle, bytes.baseAddress, bytes.count) == 0 else { throw failure() }
    }

    var width: Int { Int(mp_png_decoder_width(handle)) }
    var height: Int { Int(mp_png_decoder_height(handle)) }
    var bitDepth: Int { Int(mp_png_decoder_bit_depth(handle)) }
    var colorType: Int32 { mp_png_decoder_color_type(handle) }
    var hasTransparency: Bool { mp_png_decoder_has_trns(handle) != 0 }

    /// `png_get_PLTE` + `png_get_tRNS`: 256 RGB triples (unused entries black) and 256 alphas (255 unless tRNS
    /// says otherwise), as libpng pads a short palette.
    func palette() throws -> (rgb: [UInt8], alpha: [UInt8]) {
        var rgb = [UInt8](repeating: 0, count: 768), alpha = [UInt8](repeating: 255, count: 256)
        let n = mp_png_decoder_palette(handle, &rgb, &alpha)
        guard n >= 0 else { throw failure() }
        return (rgb, alpha)
    }

    /// Transforms + `png_read_image` into `out` (`width·height·channels` bytes); `target` is
    /// MP_PNG_NATURAL / MP_PNG_RGB / MP_PNG_RGBA (see shim.h).
    func decode(into out: UnsafeMutablePointer<UInt8>, target: Int32, channels: Int) throws {
        let size = width * height * channels
        guard mp_png_decoder_decode(handle, out, size, target, Int32(channels)) == 0 else { throw failure() }
    }

    var colorTypeName: String {
        switch colorType {
        case mp_png_color_type_gray(): "gray"
        case mp_png_color_type_gray_alpha(): "gray+alpha"
        case mp_png_color_type_palette(): "palette"
        case mp_png_color_type_rgb(): "RGB"
        case mp_png_color_type_rgba(): "RGBA"
        default: "color type \(colorType)"
        }
    }
}

extension CodecPixels {
    /// `n` palette indices at the start of `p` (a `channels·n`-byte buffer) → `n` RGB (3) or RGBA (4) pixels,
    /// in place, back to front.
    static func expandPaletteInPlace(_ p: UnsafeMutablePointer<UInt8>, pixels n: Int, channels: Int,
                                     rgb: [UInt8], alpha: [UInt8]) {
        rgb.withUnsafeBufferPointer { rgb in
            alpha.withUnsafeBufferPointer { alpha in
                var i = n - 1
                while i >= 0 {
                    let k = Int(p[i])
                    let o = p + channels * i
                    o[0] = rgb[3 * k]; o[1] = rgb[3 * k + 1]; o[2] = rgb[3 * k + 2]
                    if channels == 4 { o[3] = alpha[k] }
                    i -= 1
                }
            }
        }
    }
}

/// Decodes a PNG file's bytes; `file` names the source in errors.
///
/// Values come back exactly as stored — no gamma (gAMA/iCCP/sRGB are ignored, as PIL does), no alpha
/// compositing — then laid out per `mode` (see `ImageReadMode`): `.indices` / `.natural` give palette PNGs'
/// *indices*, `.rgb` / `.rgba` / `.gray` their colours. Bit depths 1/2/4: gray is scaled to 0…255 (PIL's
/// "L;1/2/4"), palette indices are kept. 16 bits reduce to 8 as PIL does when detectron2 reads them:
/// RGB(A) and gray+alpha keep the high byte of each sample (PIL opens them as "RGB;16B" / "LA;16B");
/// single-channel gray (PIL "I;16") is clamped to 255 (Pillow's I;16 → L), so label values below 256 come
/// back unchanged. Interlaced files are supported. EXIF in PNGs is not applied.
///
/// Errors (`DataError` naming `file` with libpng's message): not a PNG, truncated data, CRC / zlib errors,
/// `.indices` on a file that is not gray or palette.
public func decodePNG(_ data: [UInt8], file: String, mode: ImageReadMode = .rgb) throws -> Image8 {
    try data.withUnsafeBufferPointer { bytes in
        let reader = try PNGReader(file: file)
        try reader.readInfo(bytes)
        let w = reader.width, h = reader.height, n = w * h
        try checkPixelBudget(width: w, height: h, file: file)
        let type = reader.colorType
        let isPalette = type == mp_png_color_type_palette(), isGray = type == mp_png_color_type_gray()
        let isGrayAlpha = type == mp_png_color_type_gray_alpha()
        let natural = isPalette || isGray ? 1 : isGrayAlpha ? 2 : type == mp_png_color_type_rgb() ? 3 : 4
        let naturalTarget = Int32(MP_PNG_NATURAL), rgbTarget = Int32(MP_PNG_RGB), rgbaTarget = Int32(MP_PNG_RGBA)

        func image(_ channels: Int, _ pixels: [UInt8]) -> Image8 {
            Image8(width: w, height: h, channels: channels, pixels: pixels)
        }
        switch mode {
        case .natural:
            return image(natural, try makePixelBuffer(count: natural * n) { p in
                try reader.decode(into: p, target: naturalTarget, channels: natural); return natural * n
            })
        case .indices:
            guard isPalette || isGray else {
                throw DataError(file: file, problem: "expected a gray or palette PNG holding label indices, found a PNG of color type \(reader.colorTypeName), \(reader.bitDepth)-bit")
            }
            return image(1, try makePixelBuffer(count: n) { p in
                try reader.decode(into: p, target: naturalTarget, channels: 1); return n
            })
        case .rgb, .rgba:
            let c = mode == .rgb ? 3 : 4
            if isPalette {
                let (rgb, alpha) = try reader.palette()
                return image(c, try makePixelBuffer(count: c * n) { p in
                    try reader.decode(into: p, target: naturalTarget, channels: 1)
                    CodecPixels.expandPaletteInPlace(p, pixels: n, channels: c, rgb: rgb, alpha: alpha)
                    return c * n
                })
            }
            return image(c, try makePixelBuffer(count: c * n) { p in
                try reader.decode(into: p, target: c == 3 ? rgbTarget : rgbaTarget, channels: c); return c * n
            })
        case .gray:
            if isGray || isGrayAlpha {
                return image(1, try makePixelBuffer(count: natural * n) { p in
                    try reader.decode(into: p, target: naturalTarget, channels: natural)
                    if natural == 2 { CodecPixels.dropSecondChannelInPlace(p, pixels: n) }
                    return n
                })
            }
            let palette = isPalette ? try reader.palette() : nil
            return image(1, try makePixelBuffer(count: 3 * n) { p in
                if let (rgb, alpha) = palette {
                    try reader.decode(into: p, target: naturalTarget, channels: 1)
                    CodecPixels.expandPaletteInPlace(p, pixels: n, channels: 3, rgb: rgb, alpha: alpha)
                } else {
                    try reader.decode(into: p, target: rgbTarget, channels: 3)
                }
                CodecPixels.rgbToLumaInPlace(p, pixels: n)
                return n
            })
        }
    }
}

// MARK: - Encoding

/// The message libpng's simplified API left in `image.message`.
func pngImageMessage(_ image: png_image) -> String {
    withUnsafeBytes(of: image.message) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
}

/// Encodes an 8-bit image as PNG with libpng's simplified writer (`png_image_write_to_memory`): 1 channel →
/// gray, 2 → gray+alpha, 3 → RGB, 4 → RGBA (non-premultiplied), values written as given, so a decode with
/// `.natural` gives back the same image. Label maps: encode a 1-channel image (ADE20K's 8-bit gray layout).
/// - Returns: the PNG file's bytes.
public func encodePNG(_ image: Image8) throws -> [UInt8] {
    try encodePNG(image, file: "<PNG in memory>")
}

func encodePNG(_ image: Image8, file: String) throws -> [UInt8] {
    guard (1...4).contains(image.channels) else {
        throw DataError(file: file, problem: "PNG encoding needs 1…4 channels, got \(image.channels)")
    }
    let formats = [mp_png_format_gray(), mp_png_format_ga(), mp_png_format_rgb(), mp_png_format_rgba()]
    return try image.pixels.withUnsafeBytes {
        try writePNGToMemory(width: image.width, height: image.height, format: formats[image.channels - 1], samples: $0.baseAddress, file: file)
    }
}

/// `png_image_write_to_memory` of `width × height` samples in libpng's simplified `format` (rows packed).
private func writePNGToMemory(width: Int, height: Int, format: UInt32, samples: UnsafeRawPointer?, file: String) throws -> [UInt8] {
    guard width > 0, height > 0, width < 1 << 24, height < 1 << 24 else {
        throw DataError(file: file, problem: "cannot encode a \(width)×\(height) PNG")
    }
    var png = png_image()
    png.version = UInt32(mp_png_image_version())
    png.width = UInt32(width)
    png.height = UInt32(height)
    png.format = format
    let bound = mp_png_image_png_size_max(&png)
    defer { png_image_free(&png) }
    return try makePixelBuffer(count: bound) { out in
        var size = bound
        guard png_image_write_to_memory(&png, out, &size, 0, samples, 0, nil) != 0, size <= bound else {
            throw DataError(file: file, problem: "png_image_write_to_memory: \(pngImageMessage(png))")
        }
        return size
    }
}

/// Encodes `image` as PNG (see `encodePNG`) and writes it to `path` atomically (temporary file in the same
/// directory, then rename).
public func writePNG(_ image: Image8, to path: String) throws {
    let bytes = try encodePNG(image, file: path)
    try ImageFileIO.writeAtomically(bytes, to: path)
}

// MARK: - 16-bit gray (Cityscapes instance ids)

/// A row-major map of 16-bit values, as a 16-bit gray PNG stores them (Cityscapes `*_gtFine_instanceIds.png`:
/// class·1000 + index for instances, the label id elsewhere).
public struct Gray16Map: Sendable, Equatable {
    public var width: Int, height: Int
    public var values: [UInt16]
    public init(width: Int, height: Int, values: [UInt16]) {
        precondition(values.count == width * height, "Gray16Map: \(values.count) values for \(width)×\(height)")
        self.width = width; self.height = height; self.values = values
    }
}

/// Decodes a single-channel gray PNG of any bit depth to its stored sample values (PIL's "I;16"/"L" as numbers,
/// what `np.array(Image.open(f))` gives). Any other colour type is an error naming `file`.
public func decodeGray16PNG(_ data: [UInt8], file: String) throws -> Gray16Map {
    try data.withUnsafeBufferPointer { bytes in
        let reader = try PNGReader(file: file)
        try reader.readInfo(bytes)
        let w = reader.width, h = reader.height
        try checkPixelBudget(width: w, height: h, file: file)
        guard reader.colorType == mp_png_color_type_gray() else {
            throw DataError(file: file, problem: "expected a single-channel gray PNG of ids, found a PNG of color type \(reader.colorTypeName), \(reader.bitDepth)-bit")
        }
        var values = [UInt16](repeating: 0, count: w * h)
        try reader.decodeGray16(into: &values)
        return Gray16Map(width: w, height: h, values: values)
    }
}

/// Reads a gray PNG file as 16-bit values (see `decodeGray16PNG`).
public func loadGray16PNG(path: String) throws -> Gray16Map {
    try decodeGray16PNG(try ImageFileIO.readAll(path: path), file: path)
}

extension PNGReader {
    /// `mp_png_decoder_decode_gray16`: every sample as stored.
    func decodeGray16(into out: inout [UInt16]) throws {
        let ok = out.withUnsafeMutableBufferPointer { mp_png_decoder_decode_gray16(handle, $0.baseAddress, $0.count) }
        guard ok == 0 else { throw failure() }
    }
}

/// Encodes a 16-bit gray PNG (libpng's simplified writer, `PNG_FORMAT_LINEAR_Y`: samples written as given).
public func encodeGray16PNG(_ map: Gray16Map, file: String = "<PNG in memory>") throws -> [UInt8] {
    try map.values.withUnsafeBytes {
        try writePNGToMemory(width: map.width, height: map.height, format: mp_png_format_linear_y(), samples: $0.baseAddress, file: file)
    }
}

/// Writes a 16-bit gray PNG atomically (see `encodeGray16PNG`).
public func writeGray16PNG(_ map: Gray16Map, to path: String) throws {
    try ImageFileIO.writeAtomically(try encodeGray16PNG(map, file: path), to: path)
}
