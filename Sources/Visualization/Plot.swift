// Line plots rendered to a Canvas: series with optional mean ± std bands, dashes and markers, nice ticks, legend.
// Replaces the matplotlib figures of the reference's experiment reports (loss curves, per-layer metrics).
import Foundation

/// A line chart: one or more series over a shared x/y axis pair, rendered with `render(width:height:)`.
///
/// Layout: the title (double size) on top, the y-axis label written horizontally above the y axis, tick labels
/// left of and below the axes box, the x-axis label centred under them, and a legend in whichever inner corner
/// covers the fewest drawn data pixels (top-right on ties). Points whose x or y is NaN/±inf (or y ≤ 0 with
/// `logY`) are skipped and break their line.
public struct LinePlot: Sendable {
    /// One curve.
    public struct Series: Sendable {
        /// Legend text; an empty name leaves the series out of the legend.
        public var name: String
        /// Line colour; nil takes `Palette.series[index % 10]` by the series' position in the plot.
        public var color: RGB?
        public var points: [(x: Double, y: Double)]
        /// A translucent area between `low` and `high` (e.g. mean ± std), drawn beneath the lines.
        public var band: [(x: Double, low: Double, high: Double)]
        public var dashed: Bool
        /// Small filled squares at the points (for short series such as per-decoder-layer values).
        public var markers: Bool
        /// Line width in pixels.
        public var lineWidth: Double

        public init(name: String, points: [(x: Double, y: Double)], color: RGB? = nil,
                    band: [(x: Double, low: Double, high: Double)] = [], dashed: Bool = false,
                    markers: Bool = false, lineWidth: Double = 2) {
            self.name = name; self.points = points; self.color = color; self.band = band
            self.dashed = dashed; self.markers = markers; self.lineWidth = lineWidth
        }

        /// A series of `values` at x = 0, 1, 2, ….
        public init(name: String, values: [Double], color: RGB? = nil, dashed: Bool = false, markers: Bool = false) {
            self.init(name: name, points: values.enumerated().map { (Double($0.offset), $0.element) }, color: color,
                      dashed: dashed, markers: markers)
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Fixed y range; nil fits the data (and bands) with 5% padding. Ignored with `logY` unless positive.
    public var yRange: ClosedRange<Double>?
    /// Fixed x range; nil fits the data with 3% padding.
    public var xRange: ClosedRange<Double>?
    /// Logarithmic y axis (non-positive values are skipped).
    public var logY: Bool
    /// Only integer x ticks (step ≥ 1), e.g. for epochs or layer indices.
    public var integerXTicks: Bool
    public var showLegend: Bool

    public init(title: String = "", xLabel: String = "", yLabel: String = "", series: [Series] = [],
                yRange: ClosedRange<Double>? = nil, xRange: ClosedRange<Double>? = nil, logY: Bool = false,
                integerXTicks: Bool = false, showLegend: Bool = true) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series
        self.yRange = yRange; self.xRange = xRange; self.logY = logY
        self.integerXTicks = integerXTicks; self.showLegend = showLegend
    }

    /// The colour series `i` is drawn in.
    public func color(ofSeries i: Int) -> RGB { series[i].color ?? Palette.series[i % Palette.series.count] }

    /// Draws the plot on a white `width×height` canvas.
    public func render(width: Int = 800, height: Int = 500) -> Canvas {
        var canvas = Canvas(width: width, height: height, background: .white)
        let axisColor = RGB(60, 60, 60), gridColor = RGB(225, 225, 225)
        let margin = 10, tickLength = 4, textHeight = BitmapFont.glyphHeight

        // Vertical layout first: it fixes the plot height, which sets the y ticks, which set the left margin.
        var top = margin
        if !title.isEmpty { top += 2 * textHeight + 8 }
        top += yLabel.isEmpty ? 6 : textHeight + 8
        let bottomMargin = tickLength + 3 + textHeight + (xLabel.isEmpty ? 0 : 8 + textHeight) + margin
        let plotHeight = max(2, height - top - bottomMargin)

        let (ys, xs) = (yAxis(), xAxis())
        let yCount = max(5, plotHeight / 45)  // at least 5 allowed guarantees at least 2 linear ticks
        let yStep = NiceTicks.step(min: ys.lowerBound, max: ys.upperBound, maxCount: yCount)
        let yTicks = logY ? NiceTicks.logTicks(min: pow10(ys.lowerBound), max: pow10(ys.upperBound), maxCount: yCount)
                          : NiceTicks.ticks(min: ys.lowerBound, max: ys.upperBound, maxCount: yCount)
        let yLabels = yTicks.map { NiceTicks.label($0, step: logY ? $0 : yStep) }
        let yLabelWidth = yLabels.map { Canvas.textSize($0).width }.max() ?? 0
        let left = margin + yLabelWidth + tickLength + 4
        let plotWidth = max(2, width - left - margin - 12)

        var xTicks: [Double] = [], xLabels: [String] = []
        for count in stride(from: max(2, plotWidth / 80), through: 2, by: -1) {  // fewer ticks until labels fit
            let minimumStep: Double = integerXTicks ? 1 : 0
            xTicks = NiceTicks.ticks(min: xs.lowerBound, max: xs.upperBound, maxCount: count, minimumStep: minimumStep)
            let step = NiceTicks.step(min: xs.lowerBound, max: xs.upperBound, maxCount: count, minimumStep: minimumStep)
            xLabels = xTicks.map { NiceTicks.label($0, step: step) }
            let widest = xLabels.map { Canvas.textSize($0).width }.max() ?? 0
            if (widest + 12) * xTicks.count <= plotWidth { break }
        }

        // Data in plot-area pixels (inner canvas, origin at the plot area's top-left).
        let px: (Double) -> Double = { (($0 - xs.lowerBound) / (xs.upperBound - xs.lowerBound)) * Double(plotWidth - 1) }
        let py: (Double) -> Double = { v in
            let t = logY ? (v > 0 ? log10(v) : -Double.infinity) : v
            return (1 - (t - ys.lowerBound) / (ys.upperBound - ys.lowerBound)) * Double(plotHeight - 1)
        }
        var inner = Canvas(width: plotWidth, height: plotHeight, background: .white)
        for t in yTicks { inner.fillRect(x: 0, y: Int(py(t).rounded()), width: plotWidth, height: 1, color: gridColor) }
        for t in xTicks { inner.fillRect(x: Int(px(t).rounded()), y: 0, width: 1, height: plotHeight, color: gridColor) }
        var dataOnly = Canvas(width: plotWidth, height: plotHeight, background: .white)
        drawData(on: &inner, px: px, py: py)
        if showLegend { drawData(on: &dataOnly, px: px, py: py) }
        if showLegend { drawLegend(on: &inner, avoiding: dataOnly) }
        canvas.blit(inner, x: left, y: top)

        // Axes box, ticks, labels.
        canvas.strokeRect(x: left - 1, y: top - 1, width: plotWidth + 2, height: plotHeight + 2, color: axisColor)
        for (t, label) in zip(yTicks, yLabels) {
            let y = top + Int(py(t).rounded())
            canvas.fillRect(x: left - 1 - tickLength, y: y, width: tickLength, height: 1, color: axisColor)
            let w = Canvas.textSize(label).width
            canvas.drawText(label, x: left - 1 - tickLength - 3 - w, y: y - 3, color: .black)  // digits centred on the tick
        }
        let xLabelTop = top + plotHeight + 1 + tickLength + 3
        for (t, label) in zip(xTicks, xLabels) {
            let x = left + Int(px(t).rounded())
            canvas.fillRect(x: x, y: top + plotHeight + 1, width: 1, height: tickLength, color: axisColor)
            canvas.drawText(label, x: x - Canvas.textSize(label).width / 2, y: xLabelTop, color: .black)
        }
        if !xLabel.isEmpty {
            let w = Canvas.textSize(xLabel).width
            canvas.drawText(xLabel, x: left + (plotWidth - w) / 2, y: xLabelTop + textHeight + 8, color: .black)
        }
        if !yLabel.isEmpty { canvas.drawText(yLabel, x: margin, y: top - textHeight - 6, color: .black) }
        if !title.isEmpty {
            let w = Canvas.textSize(title, scale: 2).width
            canvas.drawText(title, x: max(margin, left + (plotWidth - w) / 2), y: margin, color: .black, scale: 2)
        }
        return canvas
    }

    // MARK: Ranges

    /// The y range in axis units (log10 of the data with `logY`).
    private func yAxis() -> ClosedRange<Double> {
        if let r = yRange, !logY || r.lowerBound > 0, r.upperBound > r.lowerBound {
            return logY ? log10(r.lowerBound)...log10(r.upperBound) : r
        }
        var values: [Double] = []
        for s in series {
            values += s.points.filter { $0.x.isFinite }.map(\.y)
            values += s.band.filter { $0.x.isFinite }.flatMap { [$0.low, $0.high] }
        }
        values = values.filter { $0.isFinite && (!logY || $0 > 0) }.map { logY ? log10($0) : $0 }
        return padded(values, fraction: 0.05)
    }

    private func xAxis() -> ClosedRange<Double> {
        if let r = xRange, r.upperBound > r.lowerBound { return r }
        var values: [Double] = []
        for s in series {
            values += s.points.filter { $0.y.isFinite && (!logY || $0.y > 0) }.map(\.x)
            values += s.band.map(\.x)
        }
        return padded(values.filter(\.isFinite), fraction: 0.03)
    }

    /// min…max of `values` widened by `fraction` of the span on each side; 0…1 without values; v ± |v|/10
    /// (v ± 1 for 0) when all values are equal.
    private func padded(_ values: [Double], fraction: Double) -> ClosedRange<Double> {
        guard let lo = values.min(), let hi = values.max() else { return 0...1 }
        if hi == lo {
            let d = lo == 0 ? 1 : abs(lo) / 10
            return (lo - d)...(hi + d)
        }
        let pad = (hi - lo) * fraction
        return (lo - pad)...(hi + pad)
    }

    private func pow10(_ e: Double) -> Double { e >= 0 ? pow(10, e) : 1 / pow(10, -e) }

    // MARK: Drawing

    /// Bands, then lines, then markers of every series, in plot-area pixels.
    private func drawData(on canvas: inout Canvas, px: (Double) -> Double, py: (Double) -> Double) {
        for (i, s) in series.enumerated() where !s.band.isEmpty {
            let band = s.band.filter { $0.x.isFinite }.sorted { $0.x < $1.x }
            for k in 0..<max(0, band.count - 1) {
                let a = band[k], b = band[k + 1]
                guard a.low.isFinite, a.high.isFinite, b.low.isFinite, b.high.isFinite else { continue }
                let xa = px(a.x), xb = px(b.x)
                guard xb > xa else { continue }
                let last = k == band.count - 2
                let c0 = max(0, xa.rounded(.up)), c1 = min(Double(canvas.width - 1), last ? xb.rounded(.down) : xb.rounded(.up) - 1)
                guard c0 <= c1 else { continue }
                for c in Int(c0)...Int(c1) {
                    let t = (Double(c) - xa) / (xb - xa)
                    let y0 = bandPixel(py(a.low) + t * (py(b.low) - py(a.low)), canvas.height)
                    let y1 = bandPixel(py(a.high) + t * (py(b.high) - py(a.high)), canvas.height)
                    canvas.fillRect(x: c, y: min(y0, y1), width: 1, height: abs(y1 - y0) + 1, color: color(ofSeries: i), alpha: 0.2)
                }
            }
        }
        for (i, s) in series.enumerated() {
            let path = s.points.map { p -> (x: Double, y: Double) in
                let (x, y) = (px(p.x), py(p.y))
                return x.isFinite && y.isFinite ? (x, y) : (.nan, .nan)
            }
            canvas.drawPolyline(path, color: color(ofSeries: i), width: s.lineWidth, dash: s.dashed ? (on: 7, off: 5) : nil)
            if s.markers {
                for p in path where p.x.isFinite {
                    canvas.fillRect(x: Int(p.x.rounded()) - 2, y: Int(p.y.rounded()) - 2, width: 5, height: 5, color: color(ofSeries: i))
                }
            }
        }
    }

    /// A band edge's pixel row clamped to just outside the plot area (−∞ from log of ≤ 0 goes to the bottom).
    private func bandPixel(_ y: Double, _ height: Int) -> Int {
        if y.isNaN { return height }
        return Int(min(max(y, -1), Double(height)).rounded())
    }

    /// Draws the legend in the inner corner where `dataOnly` (the data drawn on white) has the fewest non-white pixels.
    private func drawLegend(on canvas: inout Canvas, avoiding dataOnly: Canvas) {
        let entries = series.indices.filter { !series[$0].name.isEmpty }
        guard !entries.isEmpty else { return }
        let pad = 6, sample = 24, rowHeight = BitmapFont.lineHeight + 4, inset = 8
        let textWidth = entries.map { Canvas.textSize(series[$0].name).width }.max() ?? 0
        let w = pad + sample + 6 + textWidth + pad, h = pad + entries.count * rowHeight - 4 + pad
        let corners = [(canvas.width - inset - w, inset), (inset, inset),
                       (canvas.width - inset - w, canvas.height - inset - h), (inset, canvas.height - inset - h)]
        func covered(_ c: (Int, Int)) -> Int {
            var n = 0
            for y in max(0, c.1)..<max(max(0, c.1), min(dataOnly.height, c.1 + h)) {
                for x in max(0, c.0)..<max(max(0, c.0), min(dataOnly.width, c.0 + w)) where dataOnly.color(x: x, y: y) != .white { n += 1 }
            }
            return n
        }
        let scores = corners.map(covered)
        let (x, y) = corners[scores.firstIndex(of: scores.min()!)!]
        canvas.fillRect(x: x, y: y, width: w, height: h, color: .white, alpha: 0.9)
        canvas.strokeRect(x: x, y: y, width: w, height: h, color: RGB(160, 160, 160))
        for (row, i) in entries.enumerated() {
            let s = series[i], cy = y + pad + row * rowHeight + 3
            let ly = Double(cy), lx0 = Double(x + pad), lx1 = Double(x + pad + sample - 1)
            canvas.drawLine(from: (lx0, ly), to: (lx1, ly), color: color(ofSeries: i), width: s.lineWidth,
                            dash: s.dashed ? (on: 7, off: 5) : nil)
            if s.markers { canvas.fillRect(x: x + pad + sample / 2 - 2, y: cy - 2, width: 5, height: 5, color: color(ofSeries: i)) }
            canvas.drawText(s.name, x: x + pad + sample + 6, y: cy - 3, color: .black)
        }
    }
}
