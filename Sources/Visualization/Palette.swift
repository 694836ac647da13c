// Colours for drawing: RGB triples and a deterministic palette of well-separated colours for class or
// instance indices (used by `maskpilot predict` overlays and the experiment report's plots).

/// An 8-bit sRGB colour.
public struct RGB: Sendable, Hashable {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }

    public static let black = RGB(0, 0, 0)
    public static let white = RGB(255, 255, 255)
    public static let gray = RGB(128, 128, 128)
    public static let lightGray = RGB(220, 220, 220)

    /// Perceived brightness in 0...255 (Rec. 601 weights); text on a colour uses black above 140, white below.
    public var luma: Double { 0.299 * Double(r) + 0.587 * Double(g) + 0.114 * Double(b) }
}

public enum Palette {
    /// Ten distinct colours for plot series (blue, orange, green, red, purple, brown, pink, gray, olive, cyan).
    public static let series: [RGB] = [
        RGB(31, 119, 180), RGB(255, 127, 14), RGB(44, 160, 44), RGB(214, 39, 40), RGB(148, 103, 189),
        RGB(140, 86, 75), RGB(227, 119, 194), RGB(127, 127, 127), RGB(188, 189, 34), RGB(23, 190, 207),
    ]

    /// The colour of index `i` (class or instance): hues spaced by the golden angle, so consecutive indices
    /// differ strongly and any index has a colour; saturation and value alternate over three levels.
    public static func color(_ i: Int) -> RGB {
        let n = max(0, i)
        var h = (Double(n) * 0.618_033_988_749_895).truncatingRemainder(dividingBy: 1) * 6
        let s = [0.75, 0.55, 0.9][n % 3], v = [0.95, 0.8, 0.7][(n / 3) % 3]
        let sector = Int(h); h -= Double(sector)
        let p = v * (1 - s), q = v * (1 - s * h), t = v * (1 - s * (1 - h))
        let (r, g, b): (Double, Double, Double)
        switch sector % 6 {
        case 0: (r, g, b) = (v, t, p)
        case 1: (r, g, b) = (q, v, p)
        case 2: (r, g, b) = (p, v, t)
        case 3: (r, g, b) = (p, q, v)
        case 4: (r, g, b) = (t, p, v)
        default: (r, g, b) = (v, p, q)
        }
        return RGB(UInt8((r * 255).rounded()), UInt8((g * 255).rounded()), UInt8((b * 255).rounded()))
    }
}
