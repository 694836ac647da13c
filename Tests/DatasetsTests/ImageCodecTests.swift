// Tests for the JPEG/PNG codecs, EXIF orientation and image-loading errors (Sources/Datasets/JPEG.swift, PNG.swift, EXIF.swift).
// Expected values follow PIL as detectron2's read_image uses it; CMYK, palette and 16-bit files are built here with libjpeg / libpng.
import CImageCodecs
import Datasets
import Foundation
import Testing

// MARK: - Helpers

/// A fresh directory under the system temporary directory.
private func makeTempDir(_ name: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("mp-codec-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// A smooth, asymmetric test image (JPEG-friendly: gradients plus a soft blob off-centre).
private func smoothImage(width: Int, height: Int, channels: Int) -> Image8 {
    var pixels = [UInt8](repeating: 0, count: width * height * channels)
    for y in 0..<height {
        for x in 0..<width {
            let fx = Double(x) / Double(max(width - 1, 1)), fy = Double(y) / Double(max(height - 1, 1))
            let blob = exp(-((fx - 0.3) * (fx - 0.3) + (fy - 0.7) * (fy - 0.7)) * 12)
            let values = [200 * fx + 40 * blob, 220 * fy * (1 - fx / 2), 60 + 150 * blob, 255 - 100 * fx * fy]
            for c in 0..<channels {
                pixels[(y * width + x) * channels + c] = UInt8(max(0, min(255, values[c].rounded())))
            }
        }
    }
    return Image8(width: width, height: height, channels: channels, pixels: pixels)
}

/// Pseudo-random bytes (for exact lossless round trips), seeded.
private func noiseImage(width: Int, height: Int, channels: Int, seed: UInt64) -> Image8 {
    var state = seed &* 6364136223846793005 &+ 1442695040888963407
    var pixels = [UInt8](repeating: 0, count: width * height * channels)
    for i in pixels.indices {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        pixels[i] = UInt8(truncatingIfNeeded: state >> 56)
    }
    return Image8(width: width, height: height, channels: channels, pixels: pixels)
}

private func meanAbsError(_ a: Image8, _ b: Image8) -> Double {
    precondition(a.pixels.count == b.pixels.count)
    var sum = 0
    for i in a.pixels.indices { sum += abs(Int(a.pixels[i]) - Int(b.pixels[i])) }
    return Double(sum) / Double(max(a.pixels.count, 1))
}

/// Pixel (x, y) of `im` as an array of its channels.
private func pixel(_ im: Image8, _ x: Int, _ y: Int) -> [UInt8] {
    Array(im.pixels[(y * im.width + x) * im.channels ..< (y * im.width + x + 1) * im.channels])
}

/// Builds an image from a per-pixel function.
private func build(_ w: Int, _ h: Int, _ c: Int, _ f: (Int, Int) -> [UInt8]) -> Image8 {
    var pixels: [UInt8] = []
    pixels.reserveCapacity(w * h * c)
    for y in 0..<h { for x in 0..<w { pixels += f(x, y) } }
    return Image8(width: w, height: h, channels: c, pixels: pixels)
}

// Reference orientation ops, written from PIL's definitions as compositions of three primitives.
private func flipLR(_ im: Image8) -> Image8 { build(im.width, im.height, im.channels) { x, y in pixel(im, im.width - 1 - x, y) } }
private func flipTB(_ im: Image8) -> Image8 { build(im.width, im.height, im.channels) { x, y in pixel(im, x, im.height - 1 - y) } }
private func transpose(_ im: Image8) -> Image8 { build(im.height, im.width, im.channels) { x, y in pixel(im, y, x) } }

private func referenceOrientation(_ im: Image8, _ orientation: Int) -> Image8 {
    switch orientation {
    case 2: flipLR(im)                      // FLIP_LEFT_RIGHT
    case 3: flipTB(flipLR(im))              // ROTATE_180
    case 4: flipTB(im)                      // FLIP_TOP_BOTTOM
    case 5: transpose(im)                   // TRANSPOSE
    case 6: flipLR(transpose(im))           // ROTATE_270 = 90° clockwise
    case 7: flipLR(flipTB(transpose(im)))   // TRANSVERSE
    case 8: flipTB(transpose(im))           // ROTATE_90 = 90° counter-clockwise
    default: im
    }
}

/// A JPEG holding 4-component data written with libjpeg's JCS_CMYK input (Adobe marker; stored as YCCK when
/// `ycck`). `stored` are the component values as written, i.e. Adobe-inverted CMYK.
private func cmykJPEG(_ stored: Image8, ycck: Bool) throws -> [UInt8] {
    let e = try #require(mp_jpeg_encoder_create())
    defer { mp_jpeg_encoder_destroy(e) }
    let status = stored.pixels.withUnsafeBufferPointer { px in
        mp_jpeg_encoder_encode(e, px.baseAddress, UInt32(stored.width), UInt32(stored.height), 4, mp_jcs_cmyk(),
                               ycck ? mp_jcs_ycck() : -1, 95, nil, 0)
    }
    #expect(status == 0, "\(String(cString: mp_jpeg_encoder_message(e)))")
    return [UInt8](UnsafeBufferPointer(start: mp_jpeg_encoder_bytes(e), count: Int(mp_jpeg_encoder_size(e))))
}

/// Writes PNGs with libpng's simplified API in formats the library's encoder does not produce.
private func simplifiedPNG(width: Int, height: Int, format: UInt32, pixels: UnsafeRawPointer,
                           colormap: [UInt8]? = nil, entries: Int = 0) throws -> [UInt8] {
    var png = png_image()
    png.version = UInt32(mp_png_image_version())
    png.width = UInt32(width)
    png.height = UInt32(height)
    png.format = format
    png.colormap_entries = UInt32(entries)
    return try (colormap ?? []).withUnsafeBytes { map in
        let cmap = colormap == nil ? nil : map.baseAddress
        var size = 0
        let probe = png_image_write_to_memory(&png, nil, &size, 0, pixels, 0, cmap)
        try #require(probe != 0 && size > 0)
        var out = [UInt8](repeating: 0, count: size)
        let ok = out.withUnsafeMutableBytes { png_image_write_to_memory(&png, $0.baseAddress, &size, 0, pixels, 0, cmap) }
        try #require(ok != 0)
        return Array(out.prefix(size))
    }
}

private func expectDataError(_ expectedFile: String, mentioning words: [String] = [],
                             _ body: () throws -> Image8) {
    do {
        let image = try body()
        Issue.record("expected a DataError for \(expectedFile), decoded \(image.width)×\(image.height)")
    } catch let error as DataError {
        #expect(error.file == expectedFile)
        #expect(error.description.contains(expectedFile))
        for word in words {
            #expect(error.description.localizedCaseInsensitiveContains(word), "\(error.description) lacks “\(word)”")
        }
    } catch {
        Issue.record("expected a DataError, got \(error)")
    }
}

// MARK: - Tests

@Suite struct ImageCodecTests {
    @Test func pngRoundTripsAreExact() throws {
        for channels in 1...4 {
            let image = noiseImage(width: 37, height: 23, channels: channels, seed: UInt64(channels))
            let bytes = try encodePNG(image)
            #expect(ImageFileFormat(sniffing: bytes) == .png)
            #expect(try decodePNG(bytes, file: "x.png", mode: .natural) == image)
        }
        let rgb = noiseImage(width: 16, height: 9, channels: 3, seed: 7)
        #expect(try decodePNG(try encodePNG(rgb), file: "rgb.png") == rgb)
        let rgba = noiseImage(width: 16, height: 9, channels: 4, seed: 8)
        #expect(try decodePNG(try encodePNG(rgba), file: "rgba.png", mode: .rgba) == rgba)
        let gray = noiseImage(width: 16, height: 9, channels: 1, seed: 9)
        #expect(try decodePNG(try encodePNG(gray), file: "gray.png", mode: .gray) == gray)
        #expect(try decodePNG(try encodePNG(gray), file: "gray.png", mode: .indices) == gray)
    }

    @Test func pngModeConversionsFollowPIL() throws {
        let rgba = noiseImage(width: 11, height: 5, channels: 4, seed: 3)
        let bytes = try encodePNG(rgba)
        // RGB drops alpha (PIL convert("RGB")), it does not composite.
        let rgb = try decodePNG(bytes, file: "a.png", mode: .rgb)
        #expect(rgb.channels == 3)
        for i in 0..<(11 * 5) { #expect(Array(rgb.pixels[3 * i ..< 3 * i + 3]) == Array(rgba.pixels[4 * i ..< 4 * i + 3])) }
        // L = (19595 R + 38470 G + 7471 B + 32768) >> 16.
        let gray = try decodePNG(bytes, file: "a.png", mode: .gray)
        for i in 0..<(11 * 5) {
            let r = Int(rgba.pixels[4 * i]), g = Int(rgba.pixels[4 * i + 1]), b = Int(rgba.pixels[4 * i + 2])
            #expect(Int(gray.pixels[i]) == (r * 19595 + g * 38470 + b * 7471 + 32768) >> 16)
        }
        // Gray → RGB replicates, → RGBA adds opaque alpha; gray+alpha → gray drops alpha.
        let g1 = noiseImage(width: 6, height: 4, channels: 1, seed: 4)
        let asRGB = try decodePNG(try encodePNG(g1), file: "g.png", mode: .rgb)
        let asRGBA = try decodePNG(try encodePNG(g1), file: "g.png", mode: .rgba)
        for i in 0..<24 {
            #expect(Array(asRGB.pixels[3 * i ..< 3 * i + 3]) == [UInt8](repeating: g1.pixels[i], count: 3))
            #expect(Array(asRGBA.pixels[4 * i ..< 4 * i + 4]) == [g1.pixels[i], g1.pixels[i], g1.pixels[i], 255])
        }
        let ga = noiseImage(width: 6, height: 4, channels: 2, seed: 5)
        let gaGray = try decodePNG(try encodePNG(ga), file: "ga.png", mode: .gray)
        #expect(gaGray.pixels == stride(from: 0, to: 48, by: 2).map { ga.pixels[$0] })
        // An RGB file is not a label map.
        expectDataError("rgb-label.png", mentioning: ["palette", "RGB"]) {
            try decodePNG(try encodePNG(noiseImage(width: 4, height: 4, channels: 3, seed: 1)), file: "rgb-label.png", mode: .indices)
        }
    }

    @Test func palettePNGGivesIndicesOrColours() throws {
        // 12 entries → libpng writes a 4-bit palette; entry 5 is half transparent.
        let entries = 12
        var colormap: [UInt8] = []
        for k in 0..<entries { colormap += [UInt8(20 * k), UInt8(255 - 20 * k), UInt8((k * 97) % 256), k == 5 ? 128 : 255] }
        let w = 13, h = 7
        let indices = (0..<(w * h)).map { UInt8(($0 * 7 + $0 / w) % entries) }
        let bytes = try indices.withUnsafeBytes {
            try simplifiedPNG(width: w, height: h, format: mp_png_format_rgba_colormap(), pixels: $0.baseAddress!,
                              colormap: colormap, entries: entries)
        }
        let asIndices = try decodePNG(bytes, file: "p.png", mode: .indices)
        #expect(asIndices.channels == 1 && asIndices.pixels == indices)
        #expect(try decodePNG(bytes, file: "p.png", mode: .natural) == asIndices)
        let rgb = try decodePNG(bytes, file: "p.png", mode: .rgb)
        let rgba = try decodePNG(bytes, file: "p.png", mode: .rgba)
        let gray = try decodePNG(bytes, file: "p.png", mode: .gray)
        for i in 0..<(w * h) {
            let k = Int(indices[i])
            #expect(Array(rgb.pixels[3 * i ..< 3 * i + 3]) == Array(colormap[4 * k ..< 4 * k + 3]))
            #expect(Array(rgba.pixels[4 * i ..< 4 * i + 4]) == Array(colormap[4 * k ..< 4 * k + 4]))
            let l = (Int(colormap[4 * k]) * 19595 + Int(colormap[4 * k + 1]) * 38470 + Int(colormap[4 * k + 2]) * 7471 + 32768) >> 16
            #expect(Int(gray.pixels[i]) == l)
        }
        // The image loader uses the same decoder, picked by magic bytes.
        #expect(try decodeImage(bytes, file: "p.png", mode: .indices) == asIndices)
    }

    @Test func sixteenBitPNGReducesAsPIL() throws {
        // Gray 16-bit (PIL "I;16"): values clamp to 255, so small label values survive.
        let w = 5, h = 3
        let gray16: [UInt16] = (0..<(w * h)).map { [0, 1, 149, 255, 256, 1000, 65535][$0 % 7] }
        let grayBytes = try gray16.withUnsafeBytes {
            try simplifiedPNG(width: w, height: h, format: mp_png_format_linear_y(), pixels: $0.baseAddress!)
        }
        let clamped = gray16.map { UInt8(min($0, 255)) }
        #expect(try decodePNG(grayBytes, file: "g16.png", mode: .indices).pixels == clamped)
        #expect(try decodePNG(grayBytes, file: "g16.png", mode: .rgb).pixels == clamped.flatMap { [$0, $0, $0] })
        // RGB 16-bit ("RGB;16B"): the high byte.
        let rgb16: [UInt16] = (0..<(w * h * 3)).map { UInt16(truncatingIfNeeded: $0 * 4099 + 17) }
        let rgbBytes = try rgb16.withUnsafeBytes {
            try simplifiedPNG(width: w, height: h, format: mp_png_format_linear_rgb(), pixels: $0.baseAddress!)
        }
        #expect(try decodePNG(rgbBytes, file: "c16.png").pixels == rgb16.map { UInt8($0 >> 8) })
    }

    @Test func jpegRoundTripIsClose() throws {
        let image = smoothImage(width: 96, height: 64, channels: 3)
        let bytes = try encodeJPEG(image, quality: 95)
        #expect(ImageFileFormat(sniffing: bytes) == .jpeg)
        let decoded = try decodeJPEG(bytes, file: "a.jpg")
        #expect(decoded.width == 96 && decoded.height == 64 && decoded.channels == 3)
        #expect(meanAbsError(decoded, image) < 1.5)
        #expect(exifOrientation(ofJPEG: bytes) == nil)
        // .gray is Pillow's L of the decoded RGB; .rgba adds opaque alpha.
        let gray = try decodeJPEG(bytes, file: "a.jpg", mode: .gray)
        let rgba = try decodeJPEG(bytes, file: "a.jpg", mode: .rgba)
        for i in 0..<(96 * 64) {
            let r = Int(decoded.pixels[3 * i]), g = Int(decoded.pixels[3 * i + 1]), b = Int(decoded.pixels[3 * i + 2])
            #expect(Int(gray.pixels[i]) == (r * 19595 + g * 38470 + b * 7471 + 32768) >> 16)
            #expect(Array(rgba.pixels[4 * i ..< 4 * i + 4]) == Array(decoded.pixels[3 * i ..< 3 * i + 3]) + [255])
        }
        expectDataError("a.jpg", mentioning: ["PNG"]) { try decodeJPEG(bytes, file: "a.jpg", mode: .indices) }
    }

    @Test func grayJPEGDecodesToEqualChannels() throws {
        let gray = smoothImage(width: 40, height: 30, channels: 1)
        let bytes = try encodeJPEG(gray)
        let rgb = try decodeJPEG(bytes, file: "g.jpg")
        let asGray = try decodeJPEG(bytes, file: "g.jpg", mode: .gray)
        #expect(rgb.channels == 3 && asGray.channels == 1)
        #expect(try decodeJPEG(bytes, file: "g.jpg", mode: .natural) == asGray)
        for i in 0..<(40 * 30) {
            #expect(rgb.pixels[3 * i] == asGray.pixels[i] && rgb.pixels[3 * i + 1] == asGray.pixels[i]
                    && rgb.pixels[3 * i + 2] == asGray.pixels[i])
        }
        #expect(meanAbsError(asGray, gray) < 1.5)
    }

    @Test(arguments: [false, true]) func cmykJPEGDecodesAsPillow(ycck: Bool) throws {
        // Pick CMYK per pixel; store it Adobe-inverted; expect Pillow's R = (255 − C)(255 − K) / 255.
        let w = 48, h = 32
        let cmyk = build(w, h, 4) { x, y in
            [UInt8(x * 5), UInt8(y * 7), UInt8((x + y) * 3), UInt8(min(255, x * y / 6))]
        }
        let stored = Image8(width: w, height: h, channels: 4, pixels: cmyk.pixels.map { 255 - $0 })
        let bytes = try cmykJPEG(stored, ycck: ycck)
        let decoded = try decodeJPEG(bytes, file: "cmyk.jpg")
        let expected = build(w, h, 3) { x, y in
            let p = pixel(cmyk, x, y)
            let k = 255 - Double(p[3])
            return (0..<3).map { UInt8(((255 - Double(p[$0])) * k / 255).rounded()) }
        }
        #expect(decoded.channels == 3)
        #expect(meanAbsError(decoded, expected) < 2.0, "ycck=\(ycck): \(meanAbsError(decoded, expected))")
    }

    @Test func applyEXIFOrientationByHand() {
        // [a b c / d e f]: 6 = 90° clockwise → [d a / e b / f c]; 8 = counter-clockwise → [c f / b e / a d].
        let im = Image8(width: 3, height: 2, channels: 1, pixels: [1, 2, 3, 4, 5, 6])
        let expected: [Int: (Int, Int, [UInt8])] = [
            1: (3, 2, [1, 2, 3, 4, 5, 6]), 2: (3, 2, [3, 2, 1, 6, 5, 4]), 3: (3, 2, [6, 5, 4, 3, 2, 1]),
            4: (3, 2, [4, 5, 6, 1, 2, 3]), 5: (2, 3, [1, 4, 2, 5, 3, 6]), 6: (2, 3, [4, 1, 5, 2, 6, 3]),
            7: (2, 3, [6, 3, 5, 2, 4, 1]), 8: (2, 3, [3, 6, 2, 5, 1, 4]), 9: (3, 2, [1, 2, 3, 4, 5, 6]),
        ]
        for (orientation, (w, h, pixels)) in expected {
            let out = applyEXIFOrientation(im, orientation: orientation)
            #expect(out == Image8(width: w, height: h, channels: 1, pixels: pixels), "orientation \(orientation)")
            #expect(referenceOrientation(im, orientation) == out, "reference, orientation \(orientation)")
        }
    }

    @Test func exifOrientationIsAppliedOnLoad() throws {
        let dir = try makeTempDir("exif")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = smoothImage(width: 24, height: 16, channels: 3)
        let plainPath = dir + "/plain.jpg"
        try writeJPEG(image, to: plainPath)
        let plain = try loadImage(path: plainPath)
        for orientation in 1...8 {
            let path = dir + "/o\(orientation).jpg"
            try writeJPEG(image, to: path, exifOrientation: orientation)
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(exifOrientation(ofJPEG: bytes) == orientation)
            // Same entropy-coded data, so the stored pixels equal `plain`'s exactly.
            #expect(try decodeJPEG(bytes, file: path) == plain)
            let loaded = try loadImage(path: path)
            #expect(loaded == referenceOrientation(plain, orientation), "orientation \(orientation)")
            #expect(loaded == applyEXIFOrientation(plain, orientation: orientation))
            let swapped = orientation >= 5
            #expect(loaded.width == (swapped ? 16 : 24) && loaded.height == (swapped ? 24 : 16))
        }
        // Little-endian EXIF as cameras write it ("II"), after a JFIF APP0, parsed the same way.
        var bytes = try encodeJPEG(image)
        let tiff: [UInt8] = [0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0, 2, 0,
                             0x0F, 0x01, 2, 0, 4, 0, 0, 0, 38, 0, 0, 0,   // Make, ASCII, 4 bytes at 38
                             0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0,    // Orientation = 6
                             0, 0, 0, 0, 0x41, 0x42, 0x43, 0]
        let payload: [UInt8] = Array("Exif".utf8) + [0, 0] + tiff
        let segment: [UInt8] = [0xFF, 0xE1, UInt8((payload.count + 2) >> 8), UInt8((payload.count + 2) & 0xFF)] + payload
        bytes.insert(contentsOf: segment, at: 2)
        #expect(exifOrientation(ofJPEG: bytes) == 6)
        #expect(try decodeImage(bytes, file: "le.jpg") == referenceOrientation(plain, 6))
    }

    @Test func writersReplaceFilesAtomically() throws {
        let dir = try makeTempDir("write")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rgb = noiseImage(width: 20, height: 10, channels: 3, seed: 11)
        try writePNG(rgb, to: dir + "/a.png")
        try writePNG(rgb, to: dir + "/a.png")   // overwrite
        try writeJPEG(smoothImage(width: 20, height: 10, channels: 3), to: dir + "/b.jpg", quality: 90)
        #expect(try loadImage(path: dir + "/a.png") == rgb)
        #expect(try loadImage(path: dir + "/b.jpg").width == 20)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["a.png", "b.jpg"])
        do {
            try writePNG(rgb, to: dir + "/no-such-dir/c.png")
            Issue.record("writing into a missing directory should fail")
        } catch let error as DataError {
            #expect(error.description.contains("no-such-dir/c.png"))
        }
        #expect(throws: DataError.self) { try encodeJPEG(noiseImage(width: 4, height: 4, channels: 4, seed: 1)) }
        #expect(throws: DataError.self) { try encodeJPEG(rgb, quality: 0) }
    }

    @Test func badFilesThrowDataErrorsNamingTheFile() throws {
        let dir = try makeTempDir("bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func put(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = dir + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        let jpeg = try encodeJPEG(smoothImage(width: 64, height: 48, channels: 3))
        let png = try encodePNG(noiseImage(width: 64, height: 48, channels: 3, seed: 2))

        let bigJPEG = try encodeJPEG(noiseImage(width: 160, height: 120, channels: 3, seed: 3))   // mostly scan data
        let truncatedJPEG = try put("truncated.jpg", Array(bigJPEG.prefix(bigJPEG.count / 2)))
        expectDataError(truncatedJPEG, mentioning: ["jpeg_read_scanlines", "Premature end"]) { try loadImage(path: truncatedJPEG) }
        let truncatedPNG = try put("truncated.png", Array(png.prefix(png.count / 2)))
        expectDataError(truncatedPNG, mentioning: ["png_read_image", "truncated"]) { try loadImage(path: truncatedPNG) }
        let headerOnlyPNG = try put("header.png", Array(png.prefix(20)))
        expectDataError(headerOnlyPNG, mentioning: ["png_read_info"]) { try loadImage(path: headerOnlyPNG) }
        let headerOnlyJPEG = try put("header.jpg", Array(jpeg.prefix(100)))
        expectDataError(headerOnlyJPEG, mentioning: ["jpeg_read_header", "Premature end"]) { try loadImage(path: headerOnlyJPEG) }

        var badCRC = png
        badCRC[30] ^= 0x01   // the IHDR chunk's CRC (bytes 29…32)
        let crcPNG = try put("crc.png", badCRC)
        expectDataError(crcPNG, mentioning: ["png_read_info", "IHDR", "CRC"]) { try loadImage(path: crcPNG) }
        var flipped = png
        flipped[png.count / 2] ^= 0x5A   // inside IDAT: zlib or the CRC check fails, depending on the byte
        let corruptPNG = try put("corrupt.png", flipped)
        expectDataError(corruptPNG, mentioning: ["png_read_image", "IDAT"]) { try loadImage(path: corruptPNG) }
        let corruptJPEG = try put("corrupt.jpg", [0xFF, 0xD8, 0xFF, 0xE0] + [UInt8](repeating: 0x33, count: 64))
        expectDataError(corruptJPEG, mentioning: ["jpeg_read_header"]) { try loadImage(path: corruptJPEG) }

        let garbage = try put("garbage.jpg", noiseImage(width: 100, height: 1, channels: 1, seed: 5).pixels.map { $0 | 1 })
        expectDataError(garbage, mentioning: ["unsupported image format"]) { try loadImage(path: garbage) }
        let gif = try put("image.gif", Array("GIF89a".utf8) + [1, 0, 1, 0, 0, 0, 0])
        expectDataError(gif, mentioning: ["GIF"]) { try loadImage(path: gif) }
        let empty = try put("empty.png", [])
        expectDataError(empty, mentioning: ["empty"]) { try loadImage(path: empty) }
        let missing = dir + "/missing.jpg"
        expectDataError(missing, mentioning: ["No such file"]) { try loadImage(path: missing) }
        expectDataError(dir, mentioning: ["not a regular file"]) { try loadImage(path: dir) }

        // The codecs on bytes: empty input and wrong magic carry libjpeg's / libpng's own message.
        expectDataError("e.jpg", mentioning: ["Empty input"]) { try decodeJPEG([], file: "e.jpg") }
        expectDataError("p.jpg", mentioning: ["Not a JPEG"]) { try decodeJPEG(png, file: "p.jpg") }
        expectDataError("j.png", mentioning: ["signature"]) { try decodePNG(jpeg, file: "j.png") }
    }

    @Test func jpegMissingOnlyItsEndMarkerStillDecodes() throws {
        let jpeg = try encodeJPEG(smoothImage(width: 32, height: 24, channels: 3))
        #expect(Array(jpeg.suffix(2)) == [0xFF, 0xD9])
        let full = try decodeJPEG(jpeg, file: "full.jpg")
        #expect(try decodeJPEG(Array(jpeg.dropLast(2)), file: "noeoi.jpg") == full)
        expectDataError("cut.jpg", mentioning: ["Premature end"]) { try decodeJPEG(Array(jpeg.dropLast(40)), file: "cut.jpg") }
    }
}
