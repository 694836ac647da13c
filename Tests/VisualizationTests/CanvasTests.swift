import Datasets
import Testing
import Visualization

/// The set of (x, y) pixels of `canvas` that are not `background`.
private func inked(_ canvas: Canvas, background: RGB = .white) -> Set<[Int]> {
    var out = Set<[Int]>()
    for y in 0..<canvas.height { for x in 0..<canvas.width where canvas.color(x: x, y: y) != background { out.insert([x, y]) } }
    return out
}

@Suite struct FontTests {
    @Test func everyPrintableASCIIHasAGlyph() {
        for v in UInt32(32)...126 { #expect(BitmapFont.hasGlyph(Unicode.Scalar(v)!), "no glyph for \(v)") }
        #expect(!BitmapFont.hasGlyph("\u{263A}"))
        #expect(BitmapFont.rows("\u{263A}") == BitmapFont.rows("\u{25A1}"))  // unknown → box
        #expect(BitmapFont.rows("\u{263A}").contains { $0 != 0 })
    }

    @Test func glyphsAreDistinctAndFitTheirBitmap() {
        var seen: [[UInt8]: UInt32] = [:]
        for v in UInt32(32)...126 {
            let rows = Array(BitmapFont.rows(Unicode.Scalar(v)!))
            #expect(rows.count == BitmapFont.glyphHeight)
            #expect(rows.allSatisfy { $0 < 1 << BitmapFont.glyphWidth })
            if let other = seen[rows] { Issue.record("glyphs \(v) and \(other) are identical") }
            seen[rows] = v
            if v != 32 { #expect(rows.contains { $0 != 0 }, "glyph \(v) is empty") }
        }
        #expect(BitmapFont.rows(" ").allSatisfy { $0 == 0 })
    }

    @Test func descendersOnlyWhereExpected() {
        for v in UInt32(32)...126 {
            let s = Unicode.Scalar(v)!
            let descends = BitmapFont.rows(s).suffix(2).contains { $0 != 0 }
            #expect(descends == "gjpqy,;_|".unicodeScalars.contains(s), "descender of \(s)")
        }
    }
}

@Suite struct CanvasTests {
    @Test func textSizeArithmetic() {
        #expect(Canvas.textSize("") == (0, 0))
        #expect(Canvas.textSize("A") == (5, 9))
        #expect(Canvas.textSize("abc") == (17, 9))
        #expect(Canvas.textSize("abc", scale: 2) == (34, 18))
        #expect(Canvas.textSize("ab\nlonger") == (35, 19))
        #expect(Canvas.textSize("a\r\n") == (5, 19))
    }

    @Test func drawTextSetsExactlyTheGlyphPixels() {
        var c = Canvas(width: 20, height: 20)
        c.drawText("-", x: 3, y: 4, color: .black)
        #expect(inked(c) == [[4, 7], [5, 7], [6, 7]])
        // "I": bars on rows 0 and 6 (columns 1…3), stem in column 2; scale 2 doubles every pixel.
        var d = Canvas(width: 30, height: 30)
        d.drawText("I", x: 0, y: 0, color: .black, scale: 2)
        var expected = Set<[Int]>()
        for (x, y) in [(1, 0), (2, 0), (3, 0), (1, 6), (2, 6), (3, 6)] + (1...5).map({ (2, $0) }) {
            for dy in 0..<2 { for dx in 0..<2 { expected.insert([2 * x + dx, 2 * y + dy]) } }
        }
        #expect(inked(d) == expected)
        #expect(d.color(x: 2, y: 0) == .black)
    }

    @Test func textBackgroundNewlineAndLabel() {
        var c = Canvas(width: 40, height: 40)
        c.drawText("a\nb", x: 1, y: 1, color: .black, background: RGB(200, 0, 0))
        #expect(c.color(x: 1, y: 1) == RGB(200, 0, 0))       // box corner
        #expect(c.color(x: 5, y: 19) == RGB(200, 0, 0))      // bottom row of the second line's box
        #expect(c.color(x: 6, y: 1) == .white)
        #expect(c.color(x: 1, y: 11) == .black)              // "b" stem starts the second line
        var d = Canvas(width: 40, height: 20)
        let box = d.drawLabel("Hi", x: 2, y: 3, background: RGB(20, 20, 120))
        #expect(box == (15, 13))
        #expect(d.color(x: 2, y: 3) == RGB(20, 20, 120))
        #expect(d.color(x: 4, y: 5) == .white)               // dark box → white text ("H" top-left)
        d.drawLabel("Hi", x: 20, y: 3, background: RGB(250, 230, 100))
        #expect(d.color(x: 22, y: 5) == .black)
    }

    @Test func drawingFarOutsideClipsWithoutTrapping() {
        var c = Canvas(width: 10, height: 8)
        c.setPixel(x: -1, y: 3, .black); c.setPixel(x: 10, y: 0, .black); c.blendPixel(x: 3, y: 99, .black, alpha: 0.5)
        c.fillRect(x: -1000, y: -1000, width: 5, height: 5, color: .black)
        c.fillRect(x: Int.max - 2, y: 0, width: 10, height: 10, color: .black)
        c.strokeRect(x: 50, y: 50, width: 10, height: 10, color: .black)
        c.drawLine(from: (-1e9, -1e9), to: (-1e9 + 5, -1e9), color: .black, width: 3)
        c.drawLine(from: (.nan, 2), to: (.infinity, 3), color: .black)
        c.drawText("far away", x: -10_000, y: 1_000_000, color: .black, scale: 3)
        c.blit(Canvas(width: 4, height: 4, background: .black), x: 100, y: -100)
        #expect(inked(c).isEmpty)
        c.drawLine(from: (-1e6, 4), to: (1e6, 4), color: .black)   // crosses the canvas: row 4 only
        #expect(inked(c) == Set((0..<10).map { [$0, 4] }))
        c.drawText("XYZ", x: 8, y: -4, color: .black)               // partly visible
        #expect(inked(c).count > 10)
    }

    @Test func lineEndpointsAreColoured() {
        var c = Canvas(width: 30, height: 30)
        c.drawLine(from: (3, 4), to: (25, 19), color: RGB(0, 0, 255), width: 2)
        #expect(c.color(x: 3, y: 4) == RGB(0, 0, 255))
        #expect(c.color(x: 25, y: 19) == RGB(0, 0, 255))
        #expect(c.color(x: 14, y: 11)!.b == 255)
        #expect(c.color(x: 3, y: 20) == .white)
        var h = Canvas(width: 20, height: 5)
        h.drawLine(from: (2, 2), to: (12, 2), color: .black)
        #expect(inked(h) == Set((2...12).map { [$0, 2] }))
        var d = Canvas(width: 40, height: 5)
        d.drawLine(from: (0, 2), to: (39, 2), color: .black, dash: (on: 4, off: 4))
        let n = inked(d).count
        #expect(n > 15 && n < 30, "dashed line inked \(n) of 40 pixels")
    }

    @Test func polylineBreaksAtNaN() {
        var c = Canvas(width: 30, height: 10)
        c.drawPolyline([(0, 2), (10, 2), (.nan, .nan), (20, 7), (29, 7)], color: .black)
        #expect(c.color(x: 15, y: 4) == .white)
        #expect(c.color(x: 5, y: 2) == .black && c.color(x: 25, y: 7) == .black)
    }

    @Test func maskFillAndOutlineCounts() {
        var mask = [UInt8](repeating: 0, count: 12 * 10)
        for y in 2..<7 { for x in 3..<8 { mask[y * 12 + x] = 1 } }   // 5×5 square
        var c = Canvas(width: 12, height: 10)
        c.fillMask(mask, color: .black, alpha: 1)
        #expect(inked(c).count == 25)
        var o = Canvas(width: 12, height: 10)
        o.outlineMask(BinaryMask(width: 12, height: 10, bits: mask), color: .black)
        #expect(inked(o).count == 16)
        #expect(o.color(x: 5, y: 4) == .white && o.color(x: 3, y: 2) == .black)
        var t = Canvas(width: 12, height: 10)
        t.outlineMask(mask, color: .black, thickness: 2)
        #expect(inked(t).count == 24)   // all but the centre pixel
        var half = Canvas(width: 12, height: 10)
        half.fillMask(mask, color: .black, alpha: 0.5)
        #expect(half.color(x: 4, y: 4) == RGB(128, 128, 128))
        var edge = Canvas(width: 4, height: 4)                         // the canvas edge counts as outside
        edge.outlineMask([UInt8](repeating: 1, count: 16), color: .black)
        #expect(inked(edge).count == 12)
    }

    @Test func imageConversionsAndBlit() throws {
        let gray = Image8(width: 2, height: 1, channels: 1, pixels: [10, 200])
        #expect(Canvas(image: gray).image.pixels == [10, 10, 10, 200, 200, 200])
        let rgba = Image8(width: 1, height: 1, channels: 4, pixels: [1, 2, 3, 0])
        #expect(Canvas(image: rgba).image.pixels == [1, 2, 3])
        var wide = Canvas(width: 6, height: 3)
        wide.blit(Canvas(width: 3, height: 3, background: .black), x: 4, y: 1)
        #expect(inked(wide) == [[4, 1], [5, 1], [4, 2], [5, 2]])
        let png = try encodePNG(wide.image)
        #expect(try decodePNG(png, file: "wide.png") == wide.image)
    }
}
