// Prediction overlays (`maskpilot predict`): the image with each predicted segment filled in a translucent colour,
// outlined, and labelled with its class name (and score), plus a legend of the classes shown. The drawing knows
// nothing of the model: callers turn semantic, instance or panoptic results into `OverlaySegment`s.
import Datasets

/// One segment to draw: a mask at the image's size, its colour, the text drawn on it and its legend entry.
public struct OverlaySegment: Sendable {
    public var mask: BinaryMask
    public var color: RGB
    /// Drawn on the segment, e.g. "red box 0.93".
    public var label: String
    /// The legend entry (usually the class name); segments with the same entry and colour share one line.
    public var legend: String
    public init(mask: BinaryMask, color: RGB, label: String, legend: String) {
        self.mask = mask; self.color = color; self.label = label; self.legend = legend
    }
}

public enum Overlay {
    /// The legend lists segments in drawing order or reversed (e.g. best instance first when the best is drawn last).
    public enum LegendOrder: Sendable { case drawing, reversed }

    /// Renders `segments` over `image` (gray or RGB). Small images are enlarged (nearest neighbour, an integer
    /// factor) so that the shorter side is at least `minimumSide` pixels and labels stay readable; the legend is
    /// a panel on the right. Segments are drawn in order (later ones on top); each label sits at the mask's
    /// "most inside" pixel (the one farthest from the mask's border), so it lands on the segment even for
    /// non-convex shapes; a label that must move past labels already placed stays on its segment when there is
    /// room, else a leader line joins it to a dot on the segment. `title` is drawn above the image.
    public static func render(image: Image8, segments: [OverlaySegment], title: String? = nil, alpha: Double = 0.45,
                              minimumSide: Int = 384, maximumSide: Int = 2048, legendOrder: LegendOrder = .drawing) -> Canvas {
        // Enlarge small images so labels stay readable, but never past `maximumSide` on the long side.
        let short = max(1, min(image.width, image.height)), long = max(1, max(image.width, image.height))
        let factor = max(1, min((minimumSide + short - 1) / short, maximumSide / long))
        let base = Canvas(image: enlarge(image, factor: factor))
        let w = base.width, h = base.height
        var picture = base
        let masks = segments.map { enlarge($0.mask, factor: factor, width: image.width, height: image.height) }
        for (s, m) in zip(segments, masks) { picture.fillMask(m, color: s.color, alpha: alpha) }
        for (s, m) in zip(segments, masks) { picture.outlineMask(m, color: darker(s.color), thickness: 2) }
        // Labels: centred on the innermost pixel, moved down (then up) past labels already placed so none covers another.
        var placed: [(x: Int, y: Int, w: Int, h: Int)] = []
        for (s, m) in zip(segments, masks) where !s.label.isEmpty {
            guard let (cx, cy) = innermostPixel(m) else { continue }
            let size = Canvas.textSize(s.label)
            let bw = size.width + 4, bh = size.height + 4
            let x = min(max(0, cx - bw / 2), max(0, w - bw))
            let y0 = min(max(0, cy - bh / 2), max(0, h - bh))
            func free(_ y: Int) -> Bool {
                !placed.contains { x < $0.x + $0.w && $0.x < x + bw && y < $0.y + $0.h && $0.y < y + bh }
            }
            let candidates = (0...(2 * max(1, h / bh))).map { k in y0 + (k % 2 == 0 ? 1 : -1) * ((k + 1) / 2) * bh }
                .filter { $0 >= 0 && $0 + bh <= max(h, bh) }
            // The nearest free place whose centre is on the segment; failing that the nearest free place, joined to
            // the segment by a leader line ending in a dot on its innermost pixel.
            func onSegment(_ y: Int) -> Bool {
                let px = min(w - 1, x + bw / 2), py = min(h - 1, y + bh / 2)
                return m.bits[py * w + px] != 0
            }
            let onMask = candidates.first { free($0) && onSegment($0) }
            let y = onMask ?? candidates.first(where: free) ?? y0
            if onMask == nil, !(x..<(x + bw)).contains(cx) || !(y..<(y + bh)).contains(cy) {
                let edge = (x: Double(min(max(cx, x), x + bw - 1)), y: Double(y > cy ? y : y + bh - 1))
                picture.drawLine(from: (Double(cx), Double(cy)), to: edge, color: darker(s.color), width: 1.5)
                picture.fillRect(x: cx - 2, y: cy - 2, width: 5, height: 5, color: darker(s.color))
            }
            placed.append((x, y, bw, bh))
            picture.drawLabel(s.label, x: x, y: y, background: s.color)
        }

        // Legend: one line per distinct (name, colour), in first-appearance order.
        var entries: [(String, RGB)] = []
        for s in (legendOrder == .drawing ? segments : segments.reversed())
        where !s.legend.isEmpty && !entries.contains(where: { $0.0 == s.legend && $0.1 == s.color }) {
            entries.append((s.legend, s.color))
        }
        let lineHeight = 16, swatch = 12, pad = 8
        let titleHeight = title == nil ? 0 : Canvas.textSize(title!, scale: 2).height + 2 * pad
        let legendHeader = "legend"
        let legendWidth = max(Canvas.textSize(legendHeader).width,
                              entries.map { Canvas.textSize($0.0).width + swatch + 6 }.max() ?? 0) + 2 * pad
        let legendHeight = pad * 2 + lineHeight * (entries.count + 1)
        var out = Canvas(width: w + legendWidth, height: max(h, legendHeight) + titleHeight, background: .white)
        if let title { out.drawText(title, x: pad, y: pad, scale: 2) }
        out.blit(picture, x: 0, y: titleHeight)
        var y = titleHeight + pad
        out.drawText(entries.isEmpty ? "(no segments)" : legendHeader, x: w + pad, y: y, color: .gray)
        for (name, color) in entries {
            y += lineHeight
            out.fillRect(x: w + pad, y: y - 1, width: swatch, height: swatch, color: color)
            out.strokeRect(x: w + pad, y: y - 1, width: swatch, height: swatch, color: darker(color))
            out.drawText(name, x: w + pad + swatch + 6, y: y)
        }
        return out
    }

    /// The colour's outline shade: 60 % of each channel.
    public static func darker(_ c: RGB) -> RGB { RGB(UInt8(Double(c.r) * 0.6), UInt8(Double(c.g) * 0.6), UInt8(Double(c.b) * 0.6)) }

    /// Nearest-neighbour enlargement by an integer factor (gray and RGB alike).
    static func enlarge(_ image: Image8, factor: Int) -> Image8 {
        guard factor > 1 else { return image }
        let c = image.channels, w = image.width * factor, h = image.height * factor
        var pixels = [UInt8](repeating: 0, count: w * h * c)
        for y in 0..<h {
            let sy = y / factor
            for x in 0..<w {
                let s = (sy * image.width + x / factor) * c, d = (y * w + x) * c
                for k in 0..<c { pixels[d + k] = image.pixels[s + k] }
            }
        }
        return Image8(width: w, height: h, channels: c, pixels: pixels)
    }

    static func enlarge(_ mask: BinaryMask, factor: Int, width: Int, height: Int) -> BinaryMask {
        precondition(mask.width == width && mask.height == height,
                     "overlay mask is \(mask.width)×\(mask.height), the image \(width)×\(height)")
        let scaled = enlarge(Image8(width: width, height: height, channels: 1, pixels: mask.bits), factor: factor)
        return BinaryMask(width: scaled.width, height: scaled.height, bits: scaled.pixels)
    }

    /// The mask pixel farthest (in 4-connected steps) from any pixel outside the mask or the image border; nil
    /// for an empty mask. Two passes of the city-block distance transform.
    public static func innermostPixel(_ mask: BinaryMask) -> (x: Int, y: Int)? {
        let w = mask.width, h = mask.height
        guard w > 0, h > 0 else { return nil }
        var d = [Int](repeating: 0, count: w * h)
        let far = w + h
        for y in 0..<h {
            for x in 0..<w where mask.bits[y * w + x] != 0 {
                let up = y > 0 ? d[(y - 1) * w + x] : 0, left = x > 0 ? d[y * w + x - 1] : 0
                d[y * w + x] = min(far, min(up, left) + 1)
            }
        }
        var best = -1, bestAt = 0
        for y in stride(from: h - 1, through: 0, by: -1) {
            for x in stride(from: w - 1, through: 0, by: -1) where mask.bits[y * w + x] != 0 {
                let down = y < h - 1 ? d[(y + 1) * w + x] : 0, right = x < w - 1 ? d[y * w + x + 1] : 0
                d[y * w + x] = min(d[y * w + x], min(down, right) + 1)
                if d[y * w + x] >= best { best = d[y * w + x]; bestAt = y * w + x }
            }
        }
        return best < 0 ? nil : (bestAt % w, bestAt / w)
    }
}
