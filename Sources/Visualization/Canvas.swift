// An RGB raster to draw on: pixels, rectangles, anti-aliased lines, mask overlays, bitmap text, composition.
// Stands in for the PIL ImageDraw / detectron2 Visualizer drawing the reference uses for overlays and plots.
import Datasets

/// An 8-bit RGB raster (`[H, W, 3]`, row-major) with clipped drawing.
///
/// Coordinates are pixels, x to the right and y down; pixel (x, y) is centred on the point (x, y), so a line
/// from (0, 5) to (9, 5) of width 1 colours exactly row 5, columns 0…9. Every drawing call clips to the canvas:
/// coordinates far outside (or not finite) draw nothing there and never trap.
public struct Canvas: Sendable {
    /// The pixels, always 3 channels.
    public private(set) var image: Image8
    public var width: Int { image.width }
    public var height: Int { image.height }

    /// A `width×height` canvas filled with `background`.
    public init(width: Int, height: Int, background: RGB = .white) {
        precondition(width >= 0 && height >= 0, "Canvas: negative size \(width)×\(height)")
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = background.r; pixels[3 * i + 1] = background.g; pixels[3 * i + 2] = background.b
        }
        image = Image8(width: width, height: height, channels: 3, pixels: pixels)
    }

    /// A canvas holding `image`: gray (1 channel) is replicated, gray+alpha (2) and RGBA (4) drop alpha.
    public init(image source: Image8) {
        let c = source.channels
        precondition((1...4).contains(c), "Canvas: cannot draw on a \(c)-channel image")
        if c == 3 { image = source; return }
        let n = source.width * source.height
        var pixels = [UInt8](repeating: 0, count: n * 3)
        for i in 0..<n {
            if c <= 2 {
                let v = source.pixels[i * c]
                pixels[3 * i] = v; pixels[3 * i + 1] = v; pixels[3 * i + 2] = v
            } else {
                for k in 0..<3 { pixels[3 * i + k] = source.pixels[i * c + k] }
            }
        }
        image = Image8(width: source.width, height: source.height, channels: 3, pixels: pixels)
    }

    /// Writes the canvas as an RGB PNG.
    public func writePNG(to path: String) throws { try Datasets.writePNG(image, to: path) }

    /// The colour at (x, y), or nil outside the canvas.
    public func color(x: Int, y: Int) -> RGB? {
        guard x >= 0, y >= 0, x < width, y < height else { return nil }
        let i = 3 * (y * width + x)
        return RGB(image.pixels[i], image.pixels[i + 1], image.pixels[i + 2])
    }

    // MARK: Pixels and rectangles

    /// Sets pixel (x, y) to `color`; nothing outside the canvas.
    public mutating func setPixel(x: Int, y: Int, _ color: RGB) { blendPixel(x: x, y: y, color, alpha: 1) }

    /// Mixes `color` into pixel (x, y) with opacity `alpha` (clamped to 0…1): new = alpha·color + (1 − alpha)·old.
    public mutating func blendPixel(x: Int, y: Int, _ color: RGB, alpha: Double) {
        guard x >= 0, y >= 0, x < width, y < height, alpha > 0 else { return }
        let i = 3 * (y * width + x)
        if alpha >= 1 {
            image.pixels[i] = color.r; image.pixels[i + 1] = color.g; image.pixels[i + 2] = color.b
            return
        }
        func mix(_ old: UInt8, _ new: UInt8) -> UInt8 { UInt8((alpha * Double(new) + (1 - alpha) * Double(old)).rounded()) }
        image.pixels[i] = mix(image.pixels[i], color.r)
        image.pixels[i + 1] = mix(image.pixels[i + 1], color.g)
        image.pixels[i + 2] = mix(image.pixels[i + 2], color.b)
    }

    /// Fills the `width×height` rectangle whose top-left pixel is (x, y), blending with `alpha`.
    public mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, color: RGB, alpha: Double = 1) {
        let x0 = max(0, x), y0 = max(0, y), x1 = clippedEnd(x, w, width), y1 = clippedEnd(y, h, height)
        guard x0 < x1, y0 < y1 else { return }
        for py in y0..<y1 { for px in x0..<x1 { blendPixel(x: px, y: py, color, alpha: alpha) } }
    }

    /// Draws the border of the `width×height` rectangle at (x, y), `thickness` pixels wide, inside the rectangle.
    public mutating func strokeRect(x: Int, y: Int, width w: Int, height h: Int, color: RGB, thickness: Int = 1) {
        guard w > 0, h > 0, thickness > 0 else { return }
        let t = min(thickness, (min(w, h) + 1) / 2)
        fillRect(x: x, y: y, width: w, height: t, color: color)
        fillRect(x: x, y: y + h - t, width: w, height: t, color: color)
        fillRect(x: x, y: y + t, width: t, height: h - 2 * t, color: color)
        fillRect(x: x + w - t, y: y + t, width: t, height: h - 2 * t, color: color)
    }

    /// Copies `other` onto this canvas with its top-left pixel at (x, y), clipped.
    public mutating func blit(_ other: Canvas, x: Int, y: Int) {
        let x0 = max(0, x), x1 = clippedEnd(x, other.width, width)
        let y0 = max(0, y), y1 = clippedEnd(y, other.height, height)
        guard x0 < x1, y0 < y1 else { return }
        for py in y0..<y1 {
            let src = 3 * ((py - y) * other.width + (x0 - x)), dst = 3 * (py * width + x0), n = 3 * (x1 - x0)
            image.pixels.replaceSubrange(dst..<(dst + n), with: other.image.pixels[src..<(src + n)])
        }
    }

    /// min(`limit`, `start` + `length`) without overflow (a span starting at `start`, clipped to 0..<`limit`).
    private func clippedEnd(_ start: Int, _ length: Int, _ limit: Int) -> Int {
        let (end, overflow) = start.addingReportingOverflow(max(0, length))
        return overflow ? limit : min(limit, end)
    }

    // MARK: Lines

    /// Draws a straight line of `width` pixels with round ends and anti-aliased edges; `dash` = (on, off)
    /// lengths in pixels makes it dashed.
    public mutating func drawLine(from a: (x: Double, y: Double), to b: (x: Double, y: Double), color: RGB,
                                  width lineWidth: Double = 1, dash: (on: Double, off: Double)? = nil, alpha: Double = 1) {
        drawPolyline([a, b], color: color, width: lineWidth, dash: dash, alpha: alpha)
    }

    /// Draws connected segments through `points` (see `drawLine`). A non-finite point breaks the line there.
    /// Each pixel is blended once, with its largest coverage, so joints do not darken; the dash pattern runs
    /// on across joints.
    public mutating func drawPolyline(_ points: [(x: Double, y: Double)], color: RGB, width lineWidth: Double = 1,
                                      dash: (on: Double, off: Double)? = nil, alpha: Double = 1) {
        guard lineWidth > 0, !points.isEmpty else { return }
        let r = lineWidth / 2 + 0.5  // coverage falls linearly from 1 to 0 over the last pixel before this distance
        let path = points.count == 1 ? [points[0], points[0]] : points
        func finite(_ k: Int) -> Bool { path[k].x.isFinite && path[k].y.isFinite && path[k + 1].x.isFinite && path[k + 1].y.isFinite }
        // The pixels each segment may touch, and their union.
        var boxes: [(xs: ClosedRange<Int>, ys: ClosedRange<Int>)?] = []
        var bx = (lo: Int.max, hi: Int.min), by = (lo: Int.max, hi: Int.min)
        for k in 0..<(path.count - 1) {
            guard finite(k), let xs = pixelSpan(min(path[k].x, path[k + 1].x) - r, max(path[k].x, path[k + 1].x) + r, width),
                  let ys = pixelSpan(min(path[k].y, path[k + 1].y) - r, max(path[k].y, path[k + 1].y) + r, height)
            else { boxes.append(nil); continue }
            boxes.append((xs, ys))
            bx = (min(bx.lo, xs.lowerBound), max(bx.hi, xs.upperBound)); by = (min(by.lo, ys.lowerBound), max(by.hi, ys.upperBound))
        }
        guard bx.lo <= bx.hi else { return }
        let bw = bx.hi - bx.lo + 1
        var coverage = [Float](repeating: 0, count: bw * (by.hi - by.lo + 1))
        var travelled = 0.0  // arc length at the segment's start, for the dash pattern
        for k in 0..<(path.count - 1) {
            guard finite(k) else { travelled = 0; continue }
            let p = path[k], q = path[k + 1]
            let dx = q.x - p.x, dy = q.y - p.y, len2 = dx * dx + dy * dy, len = len2.squareRoot()
            defer { travelled += len }
            guard let box = boxes[k] else { continue }
            for y in box.ys {
                for x in box.xs {
                    let ex = Double(x) - p.x, ey = Double(y) - p.y
                    let t = len2 > 0 ? min(1, max(0, (ex * dx + ey * dy) / len2)) : 0
                    if let dash, dash.on > 0, dash.off >= 0,
                       (travelled + t * len).truncatingRemainder(dividingBy: dash.on + dash.off) > dash.on { continue }
                    let fx = ex - t * dx, fy = ey - t * dy
                    let c = Float(min(1, r - (fx * fx + fy * fy).squareRoot()))
                    let i = (y - by.lo) * bw + (x - bx.lo)
                    if c > coverage[i] { coverage[i] = c }
                }
            }
        }
        for y in by.lo...by.hi {
            for x in bx.lo...bx.hi where coverage[(y - by.lo) * bw + (x - bx.lo)] > 0 {
                blendPixel(x: x, y: y, color, alpha: alpha * Double(coverage[(y - by.lo) * bw + (x - bx.lo)]))
            }
        }
    }

    /// The pixel indices in 0..<`n` between `lo` and `hi` (finite), or nil when none are.
    private func pixelSpan(_ lo: Double, _ hi: Double, _ n: Int) -> ClosedRange<Int>? {
        let a = max(0, lo.rounded(.down)), b = min(Double(n - 1), hi.rounded(.up))
        return a <= b ? Int(a)...Int(b) : nil
    }

    // MARK: Masks

    /// Blends `color` with `alpha` into every pixel where `mask` (`[H, W]`, same size as the canvas) is non-zero.
    public mutating func fillMask(_ mask: [UInt8], color: RGB, alpha: Double = 0.5) {
        precondition(mask.count == width * height, "fillMask: \(mask.count) values for a \(width)×\(height) canvas")
        for i in 0..<mask.count where mask[i] != 0 { blendPixel(x: i % width, y: i / width, color, alpha: alpha) }
    }

    /// `fillMask` for a `BinaryMask` of the canvas's size.
    public mutating func fillMask(_ mask: BinaryMask, color: RGB, alpha: Double = 0.5) {
        precondition(mask.width == width && mask.height == height, "fillMask: \(mask.width)×\(mask.height) mask on \(width)×\(height) canvas")
        fillMask(mask.bits, color: color, alpha: alpha)
    }

    /// Colours the mask's border: pixels of `mask` (`[H, W]`, canvas size, non-zero = inside) within `thickness`
    /// 4-neighbour steps of a pixel outside it; beyond the canvas edge counts as outside. A filled 5×5 square
    /// has a 16-pixel outline at thickness 1.
    public mutating func outlineMask(_ mask: [UInt8], color: RGB, thickness: Int = 1) {
        precondition(mask.count == width * height, "outlineMask: \(mask.count) values for a \(width)×\(height) canvas")
        var inner = mask.map { $0 != 0 }
        let inside = inner
        for _ in 0..<max(0, thickness) {  // erode once per ring
            let prev = inner
            for y in 0..<height {
                for x in 0..<width where prev[y * width + x] {
                    let i = y * width + x
                    if x == 0 || y == 0 || x == width - 1 || y == height - 1
                        || !prev[i - 1] || !prev[i + 1] || !prev[i - width] || !prev[i + width] { inner[i] = false }
                }
            }
        }
        for i in 0..<inside.count where inside[i] && !inner[i] { setPixel(x: i % width, y: i / width, color) }
    }

    /// `outlineMask` for a `BinaryMask` of the canvas's size.
    public mutating func outlineMask(_ mask: BinaryMask, color: RGB, thickness: Int = 1) {
        precondition(mask.width == width && mask.height == height, "outlineMask: \(mask.width)×\(mask.height) mask on \(width)×\(height) canvas")
        outlineMask(mask.bits, color: color, thickness: thickness)
    }

    // MARK: Text

    /// The size in pixels of `text` drawn with `BitmapFont` at `scale`: the widest line's `advance`·characters
    /// minus the trailing gap, and `lineHeight`·lines minus the trailing gap ("\n" separates lines, "\r" is ignored).
    /// The empty string is 0×0.
    public static func textSize(_ text: String, scale: Int = 1) -> (width: Int, height: Int) {
        let s = max(1, scale)
        var longest = 0, current = 0, lines = 1
        for ch in text.unicodeScalars {
            if ch == "\n" { lines += 1; current = 0 } else if ch != "\r" { current += 1; longest = max(longest, current) }
        }
        if text.isEmpty { return (0, 0) }
        let w = longest == 0 ? 0 : longest * BitmapFont.advance - (BitmapFont.advance - BitmapFont.glyphWidth)
        let h = lines * BitmapFont.lineHeight - (BitmapFont.lineHeight - BitmapFont.glyphHeight)
        return (w * s, h * s)
    }

    /// Draws `text` with its top-left at (x, y); each font pixel becomes a `scale×scale` block. With
    /// `background`, the `textSize` box is filled first.
    public mutating func drawText(_ text: String, x: Int, y: Int, color: RGB = .black, scale: Int = 1, background: RGB? = nil) {
        let s = max(1, scale)
        if let background {
            let size = Canvas.textSize(text, scale: s)
            fillRect(x: x, y: y, width: size.width, height: size.height, color: background)
        }
        var cx = x, cy = y
        for ch in text.unicodeScalars {
            if ch == "\n" { cx = x; cy += BitmapFont.lineHeight * s; continue }
            if ch == "\r" { continue }
            if cx < width && cy < height && cx + BitmapFont.glyphWidth * s > 0 && cy + BitmapFont.glyphHeight * s > 0 {
                for (row, bits) in BitmapFont.rows(ch).enumerated() where bits != 0 {
                    for col in 0..<BitmapFont.glyphWidth where (bits >> UInt8(BitmapFont.glyphWidth - 1 - col)) & 1 == 1 {
                        fillRect(x: cx + col * s, y: cy + row * s, width: s, height: s, color: color)
                    }
                }
            }
            cx += BitmapFont.advance * s
        }
    }

    /// Draws `text` on a filled `background` box whose top-left is (x, y), with `padding` pixels around the
    /// text; the text is black on light backgrounds (luma > 140) and white on dark ones. Returns the box size.
    @discardableResult
    public mutating func drawLabel(_ text: String, x: Int, y: Int, background: RGB, scale: Int = 1,
                                   padding: Int = 2) -> (width: Int, height: Int) {
        let size = Canvas.textSize(text, scale: scale), p = max(0, padding)
        let box = (width: size.width + 2 * p, height: size.height + 2 * p)
        fillRect(x: x, y: y, width: box.width, height: box.height, color: background)
        drawText(text, x: x + p, y: y + p, color: background.luma > 140 ? .black : .white, scale: scale)
        return box
    }
}
