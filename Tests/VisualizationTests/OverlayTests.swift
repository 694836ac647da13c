// Prediction overlays: label placement on the innermost pixel, enlargement, fill and outline colours, the legend.
import Datasets
import Testing
import Visualization

@Suite struct OverlayTests {
    static func rectMask(width: Int, height: Int, x0: Int, y0: Int, x1: Int, y1: Int) -> BinaryMask {
        var bits = [UInt8](repeating: 0, count: width * height)
        for y in y0..<y1 { for x in x0..<x1 { bits[y * width + x] = 1 } }
        return BinaryMask(width: width, height: height, bits: bits)
    }

    @Test func innermostPixelIsTheCentreOfARectangle() throws {
        // 9 × 7 at (2, 1): the pixels 4 steps from the outside are row 4, columns 5…7 (ties are allowed).
        let m = Self.rectMask(width: 20, height: 10, x0: 2, y0: 1, x1: 11, y1: 8)
        let p = try #require(Overlay.innermostPixel(m))
        #expect((5...7).contains(p.x) && p.y == 4)
        #expect(Overlay.innermostPixel(BinaryMask(width: 3, height: 3, bits: [UInt8](repeating: 0, count: 9))) == nil)
    }

    @Test func innermostPixelOfAnLShapeLiesInsideIt() throws {
        // An L: a thick vertical bar and a thin foot; the centroid (outside the L's thick part) must not be chosen.
        var bits = [UInt8](repeating: 0, count: 30 * 30)
        for y in 0..<30 { for x in 0..<10 { bits[y * 30 + x] = 1 } }
        for y in 26..<30 { for x in 10..<30 { bits[y * 30 + x] = 1 } }
        let p = try #require(Overlay.innermostPixel(BinaryMask(width: 30, height: 30, bits: bits)))
        #expect(bits[p.y * 30 + p.x] == 1 && p.x < 10)
    }

    @Test func renderEnlargesFillsOutlinesAndAddsALegend() throws {
        let image = Image8(width: 32, height: 24, channels: 3, fill: 200)
        let mask = Self.rectMask(width: 32, height: 24, x0: 4, y0: 4, x1: 20, y1: 20)
        let red = RGB(220, 20, 20)
        let canvas = Overlay.render(image: image, segments: [OverlaySegment(mask: mask, color: red, label: "", legend: "thing")],
                                    alpha: 0.5, minimumSide: 96)
        // 24 → 96 is a factor of 4; the legend panel is to the right.
        #expect(canvas.height == 96 && canvas.width > 128)
        // Inside the mask (away from the outline): half image grey, half red.
        let inside = try #require(canvas.color(x: 12 * 4, y: 12 * 4))
        #expect(abs(Int(inside.r) - 210) <= 1 && abs(Int(inside.g) - 110) <= 1 && abs(Int(inside.b) - 110) <= 1)
        // The mask's border pixel is the darker outline colour; outside the mask the image is untouched.
        #expect(canvas.color(x: 4 * 4, y: 12 * 4) == Overlay.darker(red))
        #expect(canvas.color(x: 26 * 4, y: 4) == RGB(200, 200, 200))
        // The legend swatch carries the segment's colour.
        var found = false
        for y in 0..<canvas.height { for x in 128..<canvas.width where canvas.color(x: x, y: y) == red { found = true } }
        #expect(found)
    }

    @Test func labelsDoNotCoverEachOther() {
        let image = Image8(width: 64, height: 64, channels: 3, fill: 255)
        let mask = Self.rectMask(width: 64, height: 64, x0: 10, y0: 10, x1: 50, y1: 50)
        let a = OverlaySegment(mask: mask, color: RGB(255, 0, 0), label: "AAAA", legend: "a")
        let b = OverlaySegment(mask: mask, color: RGB(0, 0, 255), label: "BBBB", legend: "b")
        let canvas = Overlay.render(image: image, segments: [a, b], alpha: 0, minimumSide: 64)
        // Both label boxes (their fully saturated background colours) are visible.
        var sawRed = false, sawBlue = false
        for y in 0..<64 { for x in 0..<64 {
            if canvas.color(x: x, y: y) == RGB(255, 0, 0) { sawRed = true }
            if canvas.color(x: x, y: y) == RGB(0, 0, 255) { sawBlue = true }
        } }
        #expect(sawRed && sawBlue)
        // The 40 × 40 segment has room for both: neither label needs a leader line (no dot of either outline colour
        // inside the segment away from its outline).
        var dots = 0
        for y in 14..<46 { for x in 14..<46 where [Overlay.darker(a.color), Overlay.darker(b.color)].contains(canvas.color(x: x, y: y)) { dots += 1 } }
        #expect(dots == 0)
    }

    /// A label that cannot sit on its (small) segment is joined to it by a leader line ending in a dot on the segment.
    @Test func aDisplacedLabelGetsALeaderLine() throws {
        let image = Image8(width: 64, height: 64, channels: 3, fill: 255)
        let mask = Self.rectMask(width: 64, height: 64, x0: 27, y0: 27, x1: 35, y1: 35)   // 8 × 8, smaller than a label
        let red = RGB(255, 0, 0), blue = RGB(0, 0, 255)
        let canvas = Overlay.render(image: image, segments: [OverlaySegment(mask: mask, color: red, label: "FIRST", legend: "a"),
                                                             OverlaySegment(mask: mask, color: blue, label: "SECOND", legend: "b")],
                                    alpha: 0, minimumSide: 64)
        let anchor = try #require(Overlay.innermostPixel(mask))
        // The first label covers the anchor; the second is moved off the segment, so its dot is drawn on the anchor.
        #expect(canvas.color(x: anchor.x, y: anchor.y) == Overlay.darker(blue))
        // The leader line leaves the segment: dark-blue pixels outside the 8 × 8 square (and its 2-pixel outline).
        var outside = 0
        for y in 0..<64 { for x in 0..<64 where !(25..<37).contains(x) || !(25..<37).contains(y) {
            if let c = canvas.color(x: x, y: y), c.b > 60, c.r < 60, c.g < 60, c != blue { outside += 1 }
        } }
        #expect(outside > 0)
    }
}
