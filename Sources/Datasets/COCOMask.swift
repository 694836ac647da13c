// COCO run-length masks: column-major RLE, the compressed counts string, polygon rasterization, union and decode.
// Corresponds to the COCO API's common/maskApi.c (rleEncode/Decode/Merge/Area/ToBbox, rleFrPoly, rleTo/FrString)
// and pycocotools' frPyObjects / annToRLE; written from their documented behaviour, pixel-exact to them.

/// A problem with one mask encoding (a bad compressed string, counts that do not cover the image, …).
/// Dataset readers wrap it in a `DataError` that names the file and the annotation.
public struct COCOMaskError: Error, CustomStringConvertible, Sendable {
    public var problem: String
    public init(_ problem: String) { self.problem = problem }
    public var description: String { problem }
}

/// A COCO run-length encoding of a `height × width` binary mask.
///
/// Pixels are read in column-major (Fortran) order — down the first column, then the second, … — and
/// `counts` holds the lengths of alternating runs of 0s and 1s, always starting with a run of 0s (which may be
/// empty). A valid RLE's counts sum to `height · width`.
public struct COCORLE: Sendable, Equatable {
    public var height: Int
    public var width: Int
    public var counts: [UInt32]

    /// Wraps `counts` as they are; call `validate()` before decoding counts from an untrusted source.
    public init(height: Int, width: Int, counts: [UInt32]) {
        self.height = height; self.width = width; self.counts = counts
    }

    /// An all-zero mask.
    public static func empty(height: Int, width: Int) -> COCORLE {
        COCORLE(height: height, width: width, counts: [UInt32(truncatingIfNeeded: height * width)])
    }

    /// Sum of all run lengths (must equal `height · width`).
    public var countsSum: Int { counts.reduce(0) { $0 + Int($1) } }

    /// Throws unless the size is within 0…2^20 per side and the counts sum to `height · width`.
    public func validate() throws(COCOMaskError) {
        guard height >= 0, width >= 0 else { throw COCOMaskError("RLE size [\(height), \(width)] is negative") }
        guard height <= 1 << 20, width <= 1 << 20 else { throw COCOMaskError("RLE size [\(height), \(width)] is above 2^20 per side") }
        let sum = countsSum
        guard sum == height * width else {
            throw COCOMaskError("RLE counts sum to \(sum), not h·w = \(height)·\(width) = \(height * width)")
        }
    }

    // MARK: mask ↔ RLE

    /// Encodes a (row-major) binary mask; any non-zero byte counts as 1.
    public init(mask: BinaryMask) {
        let h = mask.height, w = mask.width
        var runs: [UInt32] = []
        var current: UInt8 = 0
        var length: UInt32 = 0
        mask.bits.withUnsafeBufferPointer { bits in
            for x in 0..<w {
                var index = x
                for _ in 0..<h {
                    let bit: UInt8 = bits[index] != 0 ? 1 : 0
                    if bit != current { runs.append(length); length = 0; current = bit }
                    length += 1
                    index += w
                }
            }
        }
        runs.append(length)
        self.init(height: h, width: w, counts: runs)
    }

    /// Decodes to a row-major `BinaryMask` (0/1). The counts must be valid (`validate()`); extra counts past
    /// `height · width` are ignored and missing ones leave zeros.
    public func decode() -> BinaryMask {
        let h = height, w = width, total = h * w
        var bits = [UInt8](repeating: 0, count: total)
        guard total > 0 else { return BinaryMask(width: w, height: h, bits: bits) }
        bits.withUnsafeMutableBufferPointer { out in
            var position = 0   // column-major pixel index where the current run starts
            var isOne = false
            for run in counts {
                let length = Int(run)
                if isOne {
                    var start = position
                    let end = min(position + length, total)
                    while start < end {
                        // one column segment: rows y0 ..< y0 + n of column x
                        let x = start / h, y0 = start - x * h
                        let n = min(h - y0, end - start)
                        var index = y0 * w + x
                        for _ in 0..<n { out[index] = 1; index += w }
                        start += n
                    }
                }
                position += length
                if position >= total { break }
                isOne.toggle()
            }
        }
        return BinaryMask(width: w, height: h, bits: bits)
    }

    // MARK: measures

    /// Number of 1-pixels (the sum of the odd-indexed runs).
    public var area: Int {
        var a = 0
        var i = 1
        while i < counts.count { a += Int(counts[i]); i += 2 }
        return a
    }

    /// The tight box `[x, y, width, height]` around the 1-pixels in pixel units, `[0, 0, 0, 0]` when empty
    /// (pycocotools' `toBbox`). A run of 1s that wraps from one column into the next spans every row.
    public var boundingBox: [Double] {
        let h = height
        guard h > 0 else { return [0, 0, 0, 0] }
        var x0 = Int.max, x1 = -1, y0 = Int.max, y1 = -1
        var position = 0
        for (i, run) in counts.enumerated() {
            let length = Int(run)
            if i % 2 == 1 && length > 0 {
                let first = position, last = position + length - 1
                let xa = first / h, xb = last / h
                x0 = min(x0, xa); x1 = max(x1, xb)
                if xa != xb { y0 = 0; y1 = h - 1 } else { y0 = min(y0, first - xa * h); y1 = max(y1, last - xb * h) }
            }
            position += length
        }
        guard x1 >= 0 else { return [0, 0, 0, 0] }
        return [Double(x0), Double(y0), Double(x1 - x0 + 1), Double(y1 - y0 + 1)]
    }

    // MARK: compressed counts string

    /// The COCO compressed `counts` string: each count (from the fourth on, minus the count two places back) is
    /// written as a little-endian sequence of 5-bit groups, one character per group (`48 + group`, plus 32 when
    /// more groups follow); the last group's bit 4 is the sign.
    public var compressedCounts: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(counts.count * 2)
        for i in counts.indices {
            var value = Int64(counts[i])
            if i > 2 { value -= Int64(counts[i - 2]) }
            while true {
                let group = UInt8(truncatingIfNeeded: value & 0x1f)
                value >>= 5
                // done once the remaining bits are pure sign extension of this group's bit 4
                let done = (group & 0x10) != 0 ? value == -1 : value == 0
                bytes.append(48 + group + (done ? 0 : 0x20))
                if done { break }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Parses a compressed `counts` string (see `compressedCounts`). Does not check the counts' sum.
    public init(compressedCounts string: String, height: Int, width: Int) throws(COCOMaskError) {
        var s = string
        let parsed = s.withUTF8 { bytes in
            Result { () throws(COCOMaskError) -> [UInt32] in try COCORLE.parseCompressedCounts(bytes) }
        }
        self.init(height: height, width: width, counts: try parsed.get())
    }

    /// Parses the bytes of a compressed `counts` string.
    public static func parseCompressedCounts(_ bytes: UnsafeBufferPointer<UInt8>) throws(COCOMaskError) -> [UInt32] {
        var counts: [UInt32] = []
        counts.reserveCapacity(bytes.count / 2 + 1)
        var i = 0
        while i < bytes.count {
            var value: Int64 = 0
            var shift: Int64 = 0
            while true {
                guard i < bytes.count else {
                    throw COCOMaskError("compressed RLE string ends inside a count (at character \(i))")
                }
                let c = bytes[i]
                guard c >= 48 && c < 48 + 64 else {
                    throw COCOMaskError("compressed RLE string has invalid character \(c) at position \(i)")
                }
                guard shift < 40 else { throw COCOMaskError("compressed RLE count too long at position \(i)") }
                let group = Int64(c - 48)
                value |= (group & 0x1f) << shift
                shift += 5
                i += 1
                if group & 0x20 == 0 {
                    if group & 0x10 != 0 { value |= -1 << shift }   // negative: sign-extend
                    break
                }
            }
            if counts.count > 2 { value += Int64(counts[counts.count - 2]) }
            guard value >= 0 && value <= Int64(UInt32.max) else {
                throw COCOMaskError("compressed RLE count \(counts.count) decodes to \(value), outside 0…2³²−1")
            }
            counts.append(UInt32(value))
        }
        return counts
    }

    // MARK: set operations

    /// Union (or intersection) of same-size RLEs, in canonical form (no empty runs except possibly the first).
    /// pycocotools' `merge`. A single input is returned unchanged; no input gives an empty 0×0 RLE.
    public static func merge(_ rles: [COCORLE], intersect: Bool = false) throws(COCOMaskError) -> COCORLE {
        guard var result = rles.first else { return COCORLE(height: 0, width: 0, counts: []) }
        for other in rles.dropFirst() {
            guard other.height == result.height && other.width == result.width else {
                throw COCOMaskError("cannot merge RLEs of sizes [\(result.height), \(result.width)] and [\(other.height), \(other.width)]")
            }
            result = COCORLE(height: result.height, width: result.width,
                             counts: mergeRuns(result.counts, other.counts, intersect: intersect))
        }
        return result
    }

    /// Walks two run lists at once and emits the runs of `a ∪ b` (or `a ∩ b`).
    static func mergeRuns(_ a: [UInt32], _ b: [UInt32], intersect: Bool) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(a.count + b.count)
        var ia = 0, ib = 0
        var leftA: UInt32 = a.first ?? 0, leftB: UInt32 = b.first ?? 0   // what remains of the current runs
        var bitA = false, bitB = false
        var outBit = false
        var outLength: UInt32 = 0
        if !a.isEmpty { ia = 1 }
        if !b.isEmpty { ib = 1 }
        while true {
            // skip exhausted (or empty) runs, flipping the bit each time
            while leftA == 0 && ia < a.count { leftA = a[ia]; ia += 1; bitA.toggle() }
            while leftB == 0 && ib < b.count { leftB = b[ib]; ib += 1; bitB.toggle() }
            if leftA == 0 && leftB == 0 { break }
            let step: UInt32
            if leftA == 0 { step = leftB } else if leftB == 0 { step = leftA } else { step = min(leftA, leftB) }
            let bit = intersect ? (bitA && bitB) : (bitA || bitB)
            if bit != outBit { out.append(outLength); outLength = 0; outBit = bit }
            outLength += step
            if leftA > 0 { leftA -= step }
            if leftB > 0 { leftB -= step }
        }
        out.append(outLength)
        return out
    }

    // MARK: polygons

    /// Rasterizes one polygon `[x0, y0, x1, y1, …]` (COCO pixel coordinates: pixel (x, y) covers [x, x+1)×[y, y+1))
    /// into a `height × width` RLE exactly as the COCO API's `rleFrPoly` does:
    ///
    /// 1. each vertex is scaled by 5 and rounded as C's `(int)(5·v + 0.5)` (truncation toward zero);
    /// 2. every edge (the last closes the ring) is traced on that 5× grid, one point per step along its longer
    ///    axis, the other coordinate rounded the same way from the edge's lower end;
    /// 3. wherever consecutive boundary points change column, the crossing is kept if it lies on the sample line
    ///    of a real pixel column (5·x + 2 on the fine grid) inside the image; its row is the lower of the two
    ///    points' rows brought back to pixel units, clamped to [0, h] and rounded up;
    /// 4. the column-major pixel positions of the kept crossings toggle the mask (a position hit an even number
    ///    of times does not toggle) — so coordinates outside the image are clipped.
    public static func polygon(_ xy: [Double], height: Int, width: Int) -> COCORLE {
        xy.withUnsafeBufferPointer { polygon($0, height: height, width: width) }
    }

    /// `polygon(_:height:width:)` on a buffer of interleaved coordinates (an odd trailing value is ignored).
    /// Time is proportional to the perimeter in fifths of a pixel. Non-finite coordinates are read as 0 and
    /// magnitudes are capped at 10⁸ (where C's conversion is undefined) so that nothing traps.
    public static func polygon(_ xy: UnsafeBufferPointer<Double>, height h: Int, width w: Int) -> COCORLE {
        let vertexCount = xy.count / 2
        guard vertexCount > 0 else { return .empty(height: h, width: w) }
        var crossings = PolygonCrossings(height: h, width: w)
        crossings.reserve(vertexCount * 4)
        @inline(__always) func fine(_ v: Double) -> Int {
            let s = 5 * v + 0.5
            guard s.isFinite else { return 0 }
            return Int(max(-5e8, min(5e8, s)))
        }
        for j in 0..<vertexCount {
            let next = j + 1 == vertexCount ? 0 : j + 1
            crossings.traceEdge(x0: fine(xy[2 * j]), y0: fine(xy[2 * j + 1]),
                                x1: fine(xy[2 * next]), y1: fine(xy[2 * next + 1]))
        }
        return COCORLE(height: h, width: w, counts: crossings.runs())
    }

    /// A list of polygons (the parts of one object) rasterized part by part and united — what
    /// `annToRLE` does with `frPyObjects(parts, h, w)` followed by `merge`.
    public static func polygons(_ parts: [[Double]], height: Int, width: Int) -> COCORLE {
        guard !parts.isEmpty else { return .empty(height: height, width: width) }
        var result = polygon(parts[0], height: height, width: width)
        for part in parts.dropFirst() {
            let next = polygon(part, height: height, width: width)
            result.counts = mergeRuns(result.counts, next.counts, intersect: false)
        }
        return result
    }
}

/// Collects the column crossings of a polygon's boundary traced on the 5× grid (see `COCORLE.polygon`).
private struct PolygonCrossings {
    let h: Int
    let w: Int
    var positions: [UInt32] = []   // column-major pixel index of each kept crossing
    var hasPrevious = false
    var previousU = 0
    var previousV = 0

    init(height: Int, width: Int) { h = height; w = width }

    mutating func reserve(_ n: Int) { positions.reserveCapacity(n) }

    /// Feeds the boundary points of the edge from (x0, y0) to (x1, y1) (fine-grid integers), in edge order,
    /// both ends included.
    mutating func traceEdge(x0: Int, y0: Int, x1: Int, y1: Int) {
        let dx = abs(x1 - x0), dy = abs(y1 - y0)
        if dx >= dy {
            // step along x from the end with the smaller x; y interpolated from that end
            let reversed = x0 > x1
            let bx = reversed ? x1 : x0, by = reversed ? y1 : y0, ey = reversed ? y0 : y1
            guard dx > 0 else {
                // a zero-length edge: C computes the row from 0/0 = NaN, and x86's conversion of NaN to int gives
                // INT_MIN; such a point only meets a crossing left of the image, where the row is clamped anyway
                visit(u: bx, v: Int(Int32.min))
                return
            }
            let slope = Double(ey - by) / Double(dx)
            for d in 0...dx {
                let t = reversed ? dx - d : d
                visit(u: bx + t, v: Int(Double(by) + slope * Double(t) + 0.5))
            }
        } else {
            let reversed = y0 > y1
            let bx = reversed ? x1 : x0, by = reversed ? y1 : y0, ex = reversed ? x0 : x1
            let slope = Double(ex - bx) / Double(dy)
            for d in 0...dy {
                let t = reversed ? dy - d : d
                visit(u: Int(Double(bx) + slope * Double(t) + 0.5), v: by + t)
            }
        }
    }

    @inline(__always)
    mutating func visit(u: Int, v: Int) {
        defer { previousU = u; previousV = v; hasPrevious = true }
        guard hasPrevious, u != previousU else { return }
        // the fine column just left of the step, back in pixel units; only pixel sample columns count
        let fineColumn = u < previousU ? u : u - 1
        let x = (Double(fineColumn) + 0.5) / 5 - 0.5
        guard x.rounded(.down) == x, x >= 0, x <= Double(w - 1) else { return }
        var y = (Double(min(v, previousV)) + 0.5) / 5 - 0.5
        if y < 0 { y = 0 } else if y > Double(h) { y = Double(h) }
        y = y.rounded(.up)
        positions.append(UInt32(truncatingIfNeeded: Int(x) * h + Int(y)))
    }

    /// Sorts the crossings and turns them into runs: each position hit an odd number of times toggles the mask.
    mutating func runs() -> [UInt32] {
        let total = h * w
        positions.sort()
        var runs: [UInt32] = []
        runs.reserveCapacity(positions.count + 1)
        var last = 0   // position of the previous toggle
        var i = 0
        let n = positions.count
        while i < n {
            let p = positions[i]
            var j = i + 1
            while j < n && positions[j] == p { j += 1 }
            if (j - i) % 2 == 1 {
                runs.append(UInt32(truncatingIfNeeded: Int(p) - last))
                last = Int(p)
            }
            i = j
        }
        // the closing run reaches h·w unless a toggle already sits exactly there
        if runs.isEmpty || last != total { runs.append(UInt32(truncatingIfNeeded: total - last)) }
        return runs
    }
}
