// Tests of COCORLE against the official COCO API: polygons, RLE codecs, merge, area and box, bit for bit.
// Corresponds to pycocotools' mask.frPyObjects / merge / decode / encode / area / toBbox.
//
// How the check was made: tools/make_coco_mask_fixture.py ran pycocotools 2.0.11 (pip) on hand-crafted and random
// polygons (concave, self-intersecting, multi-part, touching and crossing the borders, sub-pixel, degenerate,
// coordinates on rounding ties, 1×1 / 1×N images, COCO-size objects) and on random masks, and stored its outputs
// in Fixtures/coco_masks.json: compressed strings, areas, boxes and the decoded masks themselves (packed bits).
// The fixture is committed; these tests need neither Python nor pycocotools.
import Datasets
import Foundation
import Testing

private struct MaskFixture {
    let root: [String: Any]

    init() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/coco_masks.json")
        root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    func cases(_ key: String) throws -> [[String: Any]] { try #require(root[key] as? [[String: Any]]) }
}

/// Unpacks numpy.packbits output (row-major, MSB first) into 0/1 bytes.
private func unpackBits(_ base64: String, count: Int) throws -> [UInt8] {
    let packed = try #require(Data(base64Encoded: base64))
    var out = [UInt8](repeating: 0, count: count)
    for i in 0..<count { out[i] = (packed[i / 8] >> (7 - UInt8(i % 8))) & 1 }
    return out
}

@Suite("COCO masks")
struct COCOMaskTests {
    @Test("polygons rasterize exactly as pycocotools (strings, area, box, pixels)")
    func polygonsMatchPycocotools() throws {
        let cases = try MaskFixture().cases("polygons")
        #expect(cases.count > 300)
        var checkedPixels = 0
        for c in cases {
            let name = c["name"] as? String ?? "?"
            let h = try #require(c["h"] as? Int), w = try #require(c["w"] as? Int)
            let parts = try #require(c["parts"] as? [[String]]).map { try $0.map { try #require(Double($0)) } }
            let rle = COCORLE.polygons(parts, height: h, width: w)
            #expect(rle.compressedCounts == c["rle"] as? String, "\(name)")
            #expect(rle.area == c["area"] as? Int, "\(name)")
            #expect(rle.boundingBox == c["bbox"] as? [Double], "\(name)")
            #expect(throws: Never.self) { try rle.validate() }
            if let packed = c["bits"] as? String {
                let expected = try unpackBits(packed, count: h * w)
                #expect(rle.decode().bits == expected, "\(name)")
                checkedPixels += h * w
            }
        }
        #expect(checkedPixels > 100_000)
    }

    /// A size no image has is refused before h·w is formed (2^32 × 2^32 used to overflow).
    @Test func hugeRLESizeIsRefused() {
        #expect(throws: COCOMaskError.self) { try COCORLE(height: 1 << 32, width: 1 << 32, counts: [0]).validate() }
        #expect(throws: COCOMaskError.self) { try COCORLE(height: -1, width: 4, counts: [0]).validate() }
        #expect(throws: Never.self) { try COCORLE(height: 3, width: 4, counts: [5, 7]).validate() }
    }

    @Test("RLEs: list and string forms, decode and encode agree with pycocotools")
    func rlesMatchPycocotools() throws {
        for c in try MaskFixture().cases("rles") {
            let name = c["name"] as? String ?? "?"
            let h = try #require(c["h"] as? Int), w = try #require(c["w"] as? Int)
            let counts = try #require(c["counts"] as? [Int]).map { UInt32($0) }
            let string = try #require(c["string"] as? String)
            let fromList = COCORLE(height: h, width: w, counts: counts)
            #expect(throws: Never.self) { try fromList.validate() }
            #expect(fromList.compressedCounts == string, "\(name)")
            let fromString = try COCORLE(compressedCounts: string, height: h, width: w)
            #expect(fromString.counts == counts, "\(name)")
            #expect(fromList.area == c["area"] as? Int, "\(name)")
            #expect(fromList.boundingBox == c["bbox"] as? [Double], "\(name)")
            let mask = fromString.decode()
            #expect(mask.width == w && mask.height == h)
            if let packed = c["bits"] as? String {
                #expect(mask.bits == (try unpackBits(packed, count: h * w)), "\(name)")
            }
            #expect(COCORLE(mask: mask) == fromList, "\(name): encode(decode(x)) == x")
        }
    }

    @Test("merge (union and intersection) agrees with pycocotools")
    func mergesMatchPycocotools() throws {
        for c in try MaskFixture().cases("merges") {
            let h = try #require(c["h"] as? Int), w = try #require(c["w"] as? Int)
            let inputs = try #require(c["inputs"] as? [String]).map { try COCORLE(compressedCounts: $0, height: h, width: w) }
            let intersect = (c["intersect"] as? Int ?? 0) != 0
            let merged = try COCORLE.merge(inputs, intersect: intersect)
            #expect(merged.compressedCounts == c["result"] as? String)
            // and pixel for pixel against a direct boolean combination of the decoded inputs
            let masks = inputs.map { $0.decode().bits }
            let direct = (0..<(h * w)).map { i -> UInt8 in
                intersect ? (masks.allSatisfy { $0[i] != 0 } ? 1 : 0) : (masks.contains { $0[i] != 0 } ? 1 : 0)
            }
            #expect(merged.decode().bits == direct)
        }
    }

    @Test("compressed counts strings round-trip, including long runs and negative deltas")
    func compressedRoundTrip() throws {
        var state: UInt64 = 12345
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        let fixed: [[UInt32]] = [[], [0], [7], [0, 1, 0], [3, 5, 1_000_000, 2, 4, 1 << 28],
                                 [1 << 29, 1, 1, 1 << 29], [16, 15, 31, 32, 33, 1023, 1024, 1025]]
        var lists = fixed
        for _ in 0..<300 {
            let n = Int(next() % 40)
            let scale = [UInt64(4), 64, 5000, 1 << 20, 1 << 28][Int(next() % 5)]
            lists.append((0..<n).map { _ in UInt32(next() % scale) })
        }
        for counts in lists {
            let rle = COCORLE(height: 1, width: counts.reduce(0) { $0 + Int($1) }, counts: counts)
            let s = rle.compressedCounts
            #expect(s.utf8.allSatisfy { $0 >= 48 && $0 < 112 })
            let back = try COCORLE(compressedCounts: s, height: rle.height, width: rle.width)
            #expect(back.counts == counts)
        }
        // a known string: pycocotools encodes a 8×8 mask with the 4×4 square at (1, 1) as "94400000g0"
        let square = COCORLE.polygon([1, 1, 5, 1, 5, 5, 1, 5], height: 8, width: 8)
        #expect(square.compressedCounts == "94400000g0")
        #expect(try COCORLE(compressedCounts: "94400000g0", height: 8, width: 8) == square)
    }

    @Test("bad compressed strings and counts that do not cover h·w are errors")
    func badRLEs() throws {
        #expect(throws: COCOMaskError.self) { try COCORLE(compressedCounts: "94 4", height: 8, width: 8) }
        #expect(throws: COCOMaskError.self) { try COCORLE(compressedCounts: "9p", height: 8, width: 8) }   // 'p' = 112
        #expect(throws: COCOMaskError.self) { try COCORLE(compressedCounts: "94P", height: 8, width: 8) }  // ends mid-count
        do {
            try COCORLE(height: 4, width: 5, counts: [3, 4, 5]).validate()
            Issue.record("expected an error")
        } catch {
            #expect(error.problem.contains("12") && error.problem.contains("20"), "\(error)")
        }
        #expect(throws: Never.self) { try COCORLE(height: 4, width: 5, counts: [3, 4, 13]).validate() }
    }

    @Test("coordinates outside the image are clipped, as pycocotools does")
    func clipping() {
        let inside = COCORLE.polygon([0, 0, 6, 0, 6, 4, 0, 4], height: 4, width: 6)
        let beyond = COCORLE.polygon([-10, -7, 30, -5, 25, 40, -8, 33], height: 4, width: 6)
        #expect(inside.decode().bits.allSatisfy { $0 == 1 })
        #expect(beyond == inside)
        let outside = COCORLE.polygon([10, 10, 20, 10, 15, 20], height: 4, width: 6)
        #expect(outside.area == 0 && outside.counts == [24])
    }

    @Test("encode/decode are column-major RLE of a row-major BinaryMask")
    func layout() {
        // 2×3 mask, row-major: row 0 = 0 1 1, row 1 = 0 0 1 → column-major 0 0 | 1 0 | 1 1
        let mask = BinaryMask(width: 3, height: 2, bits: [0, 1, 1, 0, 0, 1])
        let rle = COCORLE(mask: mask)
        #expect(rle.counts == [2, 1, 1, 2])
        #expect(rle.decode() == mask)
        #expect(rle.area == 3)
        #expect(rle.boundingBox == [1, 0, 2, 2])
        #expect(COCORLE.empty(height: 2, width: 3).decode().area == 0)
    }
}
