// A fast writer of synthetic COCO instances JSON (random polygons, some crowd/compressed RLE) at any size up to and
// beyond COCO train2017 (118,287 images, 860,001 instances); used for scale tests and `data synth --annotations-only`.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `writeSyntheticCOCOInstancesJSON` writes. Defaults match COCO train2017's counts and file size (≈ 0.45 GB).
public struct COCOSyntheticInstancesOptions: Sendable {
    public var images: Int
    public var annotations: Int
    public var seed: UInt64
    /// Image widths and heights are drawn from these ranges.
    public var widths: ClosedRange<Int> = 480...640
    public var heights: ClosedRange<Int> = 360...640
    /// Vertices per polygon part.
    public var vertices: ClosedRange<Int> = 6...42
    /// Fraction of objects made of 2–3 polygon parts.
    public var multiPartFraction: Double = 0.1
    /// Fraction of objects that are crowd regions written as uncompressed RLE (as COCO's crowd annotations are).
    public var crowdFraction: Double = 0.01
    /// Fraction of objects written as compressed RLE strings.
    public var compressedRLEFraction: Double = 0.005

    public init(images: Int = 118_287, annotations: Int = 860_001, seed: UInt64 = 0) {
        self.images = images; self.annotations = annotations; self.seed = seed
    }
}

/// COCO's 80 thing category ids (1…90 with gaps), in the official order.
public let cocoThingCategoryIDs: [Int] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
    35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
]

/// Writes a synthetic `instances_*.json` in the official layout (info, licenses, images, annotations,
/// categories): images `id = 7·i + 1` named `<12-digit id>.jpg`, annotations with ids 1…N on random images and
/// categories, star-shaped random polygons (2 decimals, inside the image), and some crowd (uncompressed RLE) and
/// compressed-RLE objects. Deterministic in `options.seed`. No image files are written.
/// Returns the number of bytes written.
@discardableResult
public func writeSyntheticCOCOInstancesJSON(to path: String, options: COCOSyntheticInstancesOptions) throws(DataError) -> Int {
    guard let file = fopen(path, "wb") else {
        throw DataError(file: path, problem: "cannot create: \(String(cString: strerror(errno)))")
    }
    var out = SynthJSONWriter(file: file)
    var rng = SynthRNG(seed: options.seed)
    var sizes: [(w: Int, h: Int)] = []
    sizes.reserveCapacity(options.images)

    out.raw("{\"info\":{\"description\":\"MaskPilot synthetic COCO instances\",\"version\":\"1.0\",\"year\":2017},")
    out.raw("\"licenses\":[{\"url\":\"http://creativecommons.org/licenses/by/2.0/\",\"id\":1,\"name\":\"Attribution License\"}],\n")
    out.raw("\"images\":[")
    for i in 0..<options.images {
        let w = rng.int(in: options.widths), h = rng.int(in: options.heights)
        sizes.append((w, h))
        let id = 7 * i + 1
        if i > 0 { out.raw(",") }
        out.raw("\n{\"license\":1,\"file_name\":\""); out.padded(id, 12)
        out.raw(".jpg\",\"coco_url\":\"http://images.cocodataset.org/train2017/"); out.padded(id, 12)
        out.raw(".jpg\",\"height\":"); out.int(h); out.raw(",\"width\":"); out.int(w)
        out.raw(",\"date_captured\":\"2013-11-14 11:18:45\",\"flickr_url\":\"http://farm9.staticflickr.com/8186/8119368305_4e622c8349_z.jpg\",\"id\":")
        out.int(id); out.raw("}")
    }
    out.raw("],\n\"annotations\":[")
    var parts: [[Double]] = []
    for a in 0..<options.annotations {
        let i = options.images > 0 ? rng.int(in: 0...(options.images - 1)) : 0
        let (w, h) = options.images > 0 ? sizes[i] : (640, 480)
        let category = cocoThingCategoryIDs[rng.int(in: 0...(cocoThingCategoryIDs.count - 1))]
        let u = rng.unit()
        let crowd = u < options.crowdFraction
        let compressed = !crowd && u < options.crowdFraction + options.compressedRLEFraction
        let partCount = crowd || compressed ? 1 : (rng.unit() < options.multiPartFraction ? rng.int(in: 2...3) : 1)
        parts.removeAll(keepingCapacity: true)
        for _ in 0..<partCount {
            parts.append(synthPolygon(&rng, width: w, height: h, vertices: options.vertices, big: crowd))
        }
        var minX = Double.infinity, minY = Double.infinity, maxX = -Double.infinity, maxY = -Double.infinity
        var area = 0.0
        for p in parts {
            var s = 0.0
            for j in 0..<(p.count / 2) {
                let k = (j + 1) % (p.count / 2)
                s += p[2 * j] * p[2 * k + 1] - p[2 * k] * p[2 * j + 1]
                minX = min(minX, p[2 * j]); maxX = max(maxX, p[2 * j])
                minY = min(minY, p[2 * j + 1]); maxY = max(maxY, p[2 * j + 1])
            }
            area += abs(s) / 2
        }
        if a > 0 { out.raw(",") }
        out.raw("\n{\"segmentation\":")
        if crowd || compressed {
            let rle = COCORLE.polygons(parts, height: h, width: w)
            area = Double(rle.area)
            out.raw("{\"counts\":")
            if crowd {
                out.raw("[")
                for (k, c) in rle.counts.enumerated() { if k > 0 { out.raw(",") }; out.int(Int(c)) }
                out.raw("]")
            } else {
                out.raw("\"")
                for byte in rle.compressedCounts.utf8 {
                    if byte == UInt8(ascii: "\\") { out.byte(byte) }
                    out.byte(byte)
                }
                out.raw("\"")
            }
            out.raw(",\"size\":["); out.int(h); out.raw(","); out.int(w); out.raw("]}")
        } else {
            out.raw("[")
            for (k, p) in parts.enumerated() {
                if k > 0 { out.raw(",") }
                out.raw("[")
                for (j, v) in p.enumerated() { if j > 0 { out.raw(",") }; out.fixed2(v) }
                out.raw("]")
            }
            out.raw("]")
        }
        out.raw(",\"area\":"); out.fixed2(area)
        out.raw(",\"iscrowd\":"); out.int(crowd ? 1 : 0)
        out.raw(",\"image_id\":"); out.int(7 * i + 1)
        out.raw(",\"bbox\":["); out.fixed2(minX); out.raw(","); out.fixed2(minY); out.raw(",")
        out.fixed2(maxX - minX); out.raw(","); out.fixed2(maxY - minY)
        out.raw("],\"category_id\":"); out.int(category)
        out.raw(",\"id\":"); out.int(a + 1); out.raw("}")
    }
    out.raw("],\n\"categories\":[")
    for (k, id) in cocoThingCategoryIDs.enumerated() {
        if k > 0 { out.raw(",") }
        out.raw("\n{\"supercategory\":\"thing\",\"id\":"); out.int(id); out.raw(",\"name\":\"class_"); out.int(id); out.raw("\"}")
    }
    out.raw("]}\n")
    let ok = out.flush()
    let bytes = out.written
    if fclose(file) != 0 || !ok {
        throw DataError(file: path, problem: "write failed: \(String(cString: strerror(errno)))")
    }
    return bytes
}

/// A star-shaped polygon around a point inside the image, coordinates rounded to 0.01 and kept inside
/// [0, w] × [0, h], never degenerate.
private func synthPolygon(_ rng: inout SynthRNG, width w: Int, height h: Int, vertices: ClosedRange<Int>,
                          big: Bool) -> [Double] {
    let W = Double(w), H = Double(h)
    while true {
        let n = max(4, rng.int(in: vertices))
        let cx = rng.unit() * W, cy = rng.unit() * H
        let limit = min(W, H)
        let radius = big ? limit * (0.15 + 0.25 * rng.unit()) : 3 + (limit * 0.3 - 3) * rng.unit() * rng.unit()
        let step = 2 * Double.pi / Double(n)
        var p: [Double] = []
        p.reserveCapacity(2 * n)
        for k in 0..<n {
            let angle = step * (Double(k) + 0.5 * (rng.unit() - 0.5))
            let r = radius * (0.4 + 0.6 * rng.unit())
            let x = min(W, max(0, cx + r * cos(angle))), y = min(H, max(0, cy + r * sin(angle)))
            p.append((x * 100).rounded() / 100)
            p.append((y * 100).rounded() / 100)
        }
        // reject degenerate outlines (all points on one line after clamping and rounding)
        var s = 0.0
        for j in 0..<n { let k = (j + 1) % n; s += p[2 * j] * p[2 * k + 1] - p[2 * k] * p[2 * j + 1] }
        if abs(s) >= 2 { return p }
    }
}

/// SplitMix64.
private struct SynthRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
    mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
}

/// Buffered byte output with fast integer and 2-decimal formatting.
private struct SynthJSONWriter {
    let file: UnsafeMutablePointer<FILE>
    var buffer: [UInt8] = []
    var written = 0
    var failed = false

    init(file: UnsafeMutablePointer<FILE>) {
        self.file = file
        buffer.reserveCapacity(1 << 20 + 4096)
    }

    mutating func raw(_ s: StaticString) {
        buffer.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
        if buffer.count >= 1 << 20 { _ = flush() }
    }

    mutating func byte(_ b: UInt8) { buffer.append(b) }

    mutating func int(_ v: Int) {
        if v < 0 { buffer.append(UInt8(ascii: "-")); int(-v); return }
        if v >= 10 { int(v / 10) }
        buffer.append(UInt8(48 + v % 10))
    }

    mutating func padded(_ v: Int, _ width: Int) {
        var digits: [UInt8] = []
        var x = v
        repeat { digits.append(UInt8(48 + x % 10)); x /= 10 } while x > 0
        for _ in digits.count..<max(digits.count, width) { buffer.append(UInt8(ascii: "0")) }
        buffer.append(contentsOf: digits.reversed())
    }

    /// `v` with at most 2 decimals, trailing zeros dropped ("12.5", "3", "0.07").
    mutating func fixed2(_ v: Double) {
        var c = Int((v * 100).rounded())
        if c < 0 { buffer.append(UInt8(ascii: "-")); c = -c }
        int(c / 100)
        let f = c % 100
        if f != 0 {
            buffer.append(UInt8(ascii: "."))
            buffer.append(UInt8(48 + f / 10))
            if f % 10 != 0 { buffer.append(UInt8(48 + f % 10)) }
        }
    }

    mutating func flush() -> Bool {
        if !buffer.isEmpty {
            let n = buffer.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            if n != buffer.count { failed = true }
            written += buffer.count
            buffer.removeAll(keepingCapacity: true)
        }
        return !failed
    }
}
