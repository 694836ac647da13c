import Datasets
import Foundation
import Testing
import Visualization

@Suite struct TickTests {
    @Test func unitRange() {
        #expect(NiceTicks.ticks(min: 0, max: 1, maxCount: 6) == [0, 0.2, 0.4, 0.6, 0.8, 1])
        #expect(NiceTicks.ticks(min: 0, max: 1, maxCount: 11) == [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1])
    }

    @Test func assortedRanges() {
        #expect(NiceTicks.ticks(min: 0, max: 97, maxCount: 6) == [0, 20, 40, 60, 80])
        #expect(NiceTicks.ticks(min: -3.2, max: -0.4, maxCount: 6) == [-3, -2.5, -2, -1.5, -1, -0.5])
        #expect(NiceTicks.ticks(min: -1, max: 1, maxCount: 5) == [-1, -0.5, 0, 0.5, 1])
        #expect(NiceTicks.ticks(min: 1, max: 0, maxCount: 3) == [0, 0.5, 1])
        #expect(NiceTicks.ticks(min: 0.001, max: 0.0042, maxCount: 5) == [0.001, 0.002, 0.003, 0.004])
        #expect(NiceTicks.ticks(min: 0, max: 3.3, maxCount: 20, minimumStep: 1) == [0, 1, 2, 3])
        #expect(NiceTicks.ticks(min: .nan, max: 1).isEmpty)
    }

    @Test func degenerateRange() {
        #expect(NiceTicks.ticks(min: 0, max: 0, maxCount: 5) == [-1, -0.5, 0, 0.5, 1])
        let t = NiceTicks.ticks(min: 5, max: 5, maxCount: 5)
        #expect(t.count >= 2 && t.contains(5))
    }

    @Test func ticksAreDecimallyClean() {
        for (lo, hi) in [(0.0, 0.7), (0.1, 0.9), (-0.35, 0.35), (1e-4, 9e-4), (12.3, 45.6)] {
            let t = NiceTicks.ticks(min: lo, max: hi, maxCount: 8)
            let step = t[1] - t[0]
            for v in t { #expect(Double(NiceTicks.label(v, step: step)) == v, "\(v) labelled \(NiceTicks.label(v, step: step))") }
        }
    }

    /// A range a few subnormal doubles wide (losses of 0 and 5e-324 in a hand-made log) gets a positive step and
    /// ticks, not log10(0).
    @Test func subnormalRangeHasASmallPositiveStep() {
        let step = NiceTicks.step(min: 0, max: .leastNonzeroMagnitude)
        #expect(step > 0 && step.isFinite)
        #expect(NiceTicks.ticks(min: 0, max: .leastNonzeroMagnitude).count <= 2)
    }

    @Test func labels() {
        #expect(NiceTicks.label(0.30000000000000004, step: 0.1) == "0.3")
        #expect(NiceTicks.label(0.25, step: 0.25) == "0.25")
        #expect(NiceTicks.label(40, step: 20) == "40")
        #expect(NiceTicks.label(-1.5, step: 0.5) == "-1.5")
        #expect(NiceTicks.label(-1e-17, step: 0.2) == "0")
        #expect(NiceTicks.label(200_000, step: 50_000) == "2e5")
        #expect(NiceTicks.label(150_000, step: 50_000) == "1.5e5")
        #expect(NiceTicks.label(1e-4, step: 1e-4) == "1e-4")
        #expect(NiceTicks.label(0.001, step: 0.001) == "0.001")
    }

    @Test func logTicks() {
        #expect(NiceTicks.logTicks(min: 0.001, max: 10) == [0.001, 0.01, 0.1, 1, 10])
        #expect(NiceTicks.logTicks(min: 1, max: 50) == [1, 2, 5, 10, 20, 50])
        #expect(NiceTicks.logTicks(min: 0, max: 10).isEmpty)
    }
}

/// Number of pixels of exactly `color`.
private func count(_ color: RGB, in image: Image8) -> Int {
    var n = 0
    for i in stride(from: 0, to: image.pixels.count, by: 3)
    where image.pixels[i] == color.r && image.pixels[i + 1] == color.g && image.pixels[i + 2] == color.b { n += 1 }
    return n
}

@Suite struct PlotTests {
    @Test func twoSeriesRoundTripThroughPNG() throws {
        let xs = (0..<50).map(Double.init)
        let plot = LinePlot(title: "Loss", xLabel: "step", yLabel: "loss", series: [
            .init(name: "train", points: xs.map { ($0, 2 * exp(-$0 / 20)) }, band: xs.map { ($0, 2 * exp(-$0 / 20) - 0.1, 2 * exp(-$0 / 20) + 0.1) }),
            .init(name: "val", points: xs.map { ($0, 1.5 * exp(-$0 / 30)) }, dashed: true),
        ])
        let canvas = plot.render(width: 400, height: 300)
        let decoded = try decodePNG(try encodePNG(canvas.image), file: "plot.png")
        #expect(decoded.width == 400 && decoded.height == 300 && decoded.channels == 3)
        #expect(count(Palette.series[0], in: decoded) > 100)
        #expect(count(Palette.series[1], in: decoded) > 50)
        #expect(decoded.pixels[0] == 255)   // white background in the corner
    }

    @Test func logYSkipsNonFiniteAndNonPositivePoints() {
        // Every finite point is isolated by a skipped one, so only markers are drawn: the same picture as the
        // clean points drawn as markers without a line, with the same axes (no legend: names are empty).
        let noisy = LinePlot(series: [
            .init(name: "", points: [(0, 1e-4), (1, .nan), (2, 1e-3), (3, -1), (4, 1e-2), (.infinity, 5), (6, 1e-1)], markers: true),
        ], logY: true, integerXTicks: true)
        let clean = LinePlot(series: [
            .init(name: "", points: [(0, 1e-4), (2, 1e-3), (4, 1e-2), (6, 1e-1)], markers: true, lineWidth: 0),
        ], logY: true, integerXTicks: true)
        let image = noisy.render(width: 300, height: 200).image
        let same = image == clean.render(width: 300, height: 200).image
        #expect(same)
        #expect(count(Palette.series[0], in: image) >= 4 * 25)
        let empty = LinePlot(series: [.init(name: "a", points: [(0, .nan), (1, .infinity)])]).render(width: 200, height: 100)
        #expect(empty.width == 200 && empty.height == 100)
    }

    @Test func explicitRangeClipsData() {
        let plot = LinePlot(series: [.init(name: "", points: [(0, -100), (1, 0.5), (2, 100)], color: RGB(255, 0, 0))],
                            yRange: 0...1)
        let canvas = plot.render(width: 200, height: 150)
        #expect(count(RGB(255, 0, 0), in: canvas.image) > 0)
        #expect(canvas.color(x: 199, y: 0) == .white && canvas.color(x: 0, y: 149) == .white)
    }

    /// The demo images (text, a mask overlay, three plots), checked pixel by pixel where the drawing rules fix
    /// the result; with VIS_DEMO set they are also written to /tmp/vis-demo-*.png to be looked at by eye.
    @Test func demoImages() throws {
        let writeFiles = ProcessInfo.processInfo.environment["VIS_DEMO"] != nil
        var ascii = ""
        for v in UInt32(32)...126 { ascii.unicodeScalars.append(Unicode.Scalar(v)!); if (v - 31) % 32 == 0 { ascii += "\n" } }
        let sample = ascii + "\nThe quick brown fox jumps over the lazy dog. 0.25 +/- 1e-4: ±3×2 5° µm −1\n[mIoU] = 47.3% (iter 90000); loss_mask_dice: 0.612"
        var text = Canvas(width: 760, height: 330)
        text.drawText(sample, x: 10, y: 10, color: .black)
        text.drawText(sample, x: 10, y: 80, color: .black, scale: 2)
        text.drawText("Unknown: \u{263A} \u{E9}", x: 10, y: 300, color: RGB(200, 0, 0))

        // Text: nothing is drawn outside the `textSize` box, and scale 2 is scale 1 magnified pixel for pixel.
        let size1 = Canvas.textSize(sample), size2 = Canvas.textSize(sample, scale: 2)
        #expect(size2.width == 2 * size1.width && size2.height == 2 * size1.height)
        var small = Canvas(width: size1.width + 20, height: size1.height + 20)
        small.drawText(sample, x: 10, y: 10, color: .black)
        var big = Canvas(width: size2.width + 20, height: size2.height + 20)
        big.drawText(sample, x: 10, y: 10, color: .black, scale: 2)
        var ink = 0, inkOutside = 0, notMagnified = 0
        for y in 0..<small.height {
            for x in 0..<small.width where small.color(x: x, y: y) == .black {
                ink += 1
                if x < 10 || y < 10 || x >= 10 + size1.width || y >= 10 + size1.height { inkOutside += 1 }
            }
        }
        for y in 0..<size1.height {
            for x in 0..<size1.width {
                let c = small.color(x: 10 + x, y: 10 + y)
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] where big.color(x: 10 + 2 * x + dx, y: 10 + 2 * y + dy) != c {
                    notMagnified += 1
                }
            }
        }
        #expect(ink > 1000, "\(ink) ink pixels")
        #expect(inkOutside == 0 && notMagnified == 0, "\(inkOutside) ink pixels outside the text box, \(notMagnified) not magnified")
        // Characters without a glyph all draw the same box.
        func drawn(_ s: String) -> Image8 {
            var c = Canvas(width: 8, height: 11)
            c.drawText(s, x: 1, y: 1, color: .black)
            return c.image
        }
        #expect(drawn("\u{263A}") == drawn("\u{E9}") && drawn("\u{E9}") != drawn("e"))

        var overlay = Canvas(width: 320, height: 240, background: RGB(90, 110, 130))
        for y in 0..<240 { for x in 0..<320 { overlay.setPixel(x: x, y: y, RGB(UInt8(60 + x / 4), UInt8(80 + y / 4), 120)) } }
        var bits = [UInt8](repeating: 0, count: 320 * 240)
        for y in 0..<240 { for x in 0..<320 where hypot(Double(x - 140), Double(y - 120) * 1.3) < 80 { bits[y * 320 + x] = 1 } }
        let mask = BinaryMask(width: 320, height: 240, bits: bits)
        overlay.fillMask(mask, color: Palette.color(3), alpha: 0.45)
        overlay.outlineMask(mask, color: Palette.color(3), thickness: 2)
        overlay.drawLabel("person 0.97", x: 100, y: 30, background: Palette.color(3))
        overlay.drawLabel("sky", x: 250, y: 10, background: RGB(250, 240, 120))
        overlay.drawLine(from: (10, 230), to: (310, 150), color: .white, width: 1.5)
        overlay.drawLine(from: (10, 200), to: (310, 120), color: .black, width: 3, dash: (on: 10, off: 6))

        // Overlay, on row 120 (the ellipse spans x 61…219 there): outside untouched, a 2-pixel outline in the
        // class colour Palette.color(3) = (204, 51, 185), inside 0.45·colour + 0.55·background.
        #expect(overlay.color(x: 60, y: 120) == RGB(75, 110, 120))
        #expect(overlay.color(x: 61, y: 120) == Palette.color(3) && overlay.color(x: 62, y: 120) == Palette.color(3))
        #expect(overlay.color(x: 63, y: 120) == RGB(133, 83, 149))    // background (75, 110, 120)
        #expect(overlay.color(x: 140, y: 120) == RGB(144, 83, 149))   // background (95, 110, 120)
        // The label: a 69×13 box (text 65×9 plus 2 padding) in the class colour, white text (luma 112 < 140)
        // with exactly the glyph pixels of the string.
        #expect(overlay.color(x: 100, y: 30) == Palette.color(3) && overlay.color(x: 168, y: 42) == Palette.color(3))
        #expect(overlay.color(x: 169, y: 42) != Palette.color(3) && overlay.color(x: 168, y: 43) != Palette.color(3))
        var label = Canvas(width: 69, height: 13, background: Palette.color(3))
        label.drawText("person 0.97", x: 2, y: 2, color: .white)
        var labelMismatches = 0
        for y in 0..<13 { for x in 0..<69 where overlay.color(x: 100 + x, y: 30 + y) != label.color(x: x, y: y) { labelMismatches += 1 } }
        #expect(labelMismatches == 0)
        // Lines: the solid white one passes exactly through (160, 190); the dashed black one (10 on, 6 off)
        // covers (19, 198), 9.2 px along it, and leaves (23, 197), 13.3 px along (in a gap), at the background.
        #expect(overlay.color(x: 160, y: 190) == .white)
        #expect(overlay.color(x: 19, y: 198) == .black && overlay.color(x: 23, y: 197) == RGB(65, 129, 120))

        let xs = (0...60).map { Double($0) * 500 }
        let plot = LinePlot(title: "Training loss", xLabel: "iteration", yLabel: "loss (mean ± std over 3 seeds)", series: [
            .init(name: "MP-Former", points: xs.map { ($0, 3 * exp(-$0 / 8000) + 0.6) },
                  band: xs.map { ($0, 3 * exp(-$0 / 8000) + 0.45, 3 * exp(-$0 / 8000) + 0.75) }),
            .init(name: "Mask2Former", points: xs.map { ($0, 3.2 * exp(-$0 / 10000) + 0.75) },
                  band: xs.map { ($0, 3.2 * exp(-$0 / 10000) + 0.6, 3.2 * exp(-$0 / 10000) + 0.9) }, dashed: true),
        ])
        let layers = LinePlot(title: "Layer consistency", xLabel: "decoder layer", yLabel: "mIoU vs last layer",
                              series: [.init(name: "MP-Former", values: [0.31, 0.52, 0.66, 0.74, 0.8, 0.84, 0.88, 0.9, 0.93], markers: true),
                                       .init(name: "Mask2Former", values: [0.12, 0.3, 0.41, 0.55, 0.62, 0.7, 0.77, 0.84, 0.9], markers: true)],
                              integerXTicks: true)
        let log = LinePlot(title: "Learning rate", xLabel: "iteration", yLabel: "lr", series: [
            .init(name: "poly", points: (0...100).map { (Double($0) * 900, 1e-4 * pow(1 - Double($0) / 101, 0.9) + 1e-7) }),
        ], logY: true)

        // Plots: data only inside the frame, and a legend that hides no data.
        let lossPlot = try checkedRender(plot, width: 800, height: 500, minimumDataPixels: 2000)
        let layersCanvas = try checkedRender(layers, width: 560, height: 240, minimumDataPixels: 400).canvas
        let logCanvas = try checkedRender(log, width: 560, height: 240, minimumDataPixels: 400).canvas
        // The loss curves fall from the top left to the bottom right, so the legend goes to the free top-right corner.
        let (frame, legend) = (lossPlot.frame, lossPlot.legend)
        #expect(legend.x0 > (frame.x0 + frame.x1) / 2 && legend.y1 < (frame.y0 + frame.y1) / 2, "legend at \(legend) in \(frame)")
        // A point of the first series is drawn where the axis ranges put it: x spans the data ± 3 %, y the data
        // and bands ± 5 %, and pixel (x, y) of the plot area shows the point (x, y). The line is 2 px wide, so
        // a pixel of that column within 0.5 px of the line has exactly the series colour.
        let ys = plot.series.flatMap { s in s.points.map(\.y) + s.band.flatMap { [$0.low, $0.high] } }
        let (yMin, yMax) = (ys.min()!, ys.max()!)
        let yLow = yMin - 0.05 * (yMax - yMin), yHigh = yMax + 0.05 * (yMax - yMin)
        let xLow = -0.03 * 30_000.0, xHigh = 1.03 * 30_000.0
        let plotWidth = frame.x1 - frame.x0 - 1, plotHeight = frame.y1 - frame.y0 - 1
        let point = plot.series[0].points[30]   // x = 15000
        let column = frame.x0 + 1 + Int(((point.x - xLow) / (xHigh - xLow) * Double(plotWidth - 1)).rounded())
        let row = frame.y0 + 1 + Int(((1 - (point.y - yLow) / (yHigh - yLow)) * Double(plotHeight - 1)).rounded())
        let onTheLine = (row - 2...row + 2).contains { lossPlot.canvas.color(x: column, y: $0) == Palette.series[0] }
        #expect(onTheLine, "no pixel of colour \(Palette.series[0]) near (\(column), \(row))")

        guard writeFiles else { return }
        try text.writePNG(to: "/tmp/vis-demo-text.png")
        var sheet = Canvas(width: 1120, height: 740, background: RGB(240, 240, 240))
        sheet.blit(overlay, x: 0, y: 0)
        sheet.blit(lossPlot.canvas, x: 320, y: 0)
        sheet.blit(layersCanvas, x: 0, y: 500)
        sheet.blit(logCanvas, x: 560, y: 500)
        try sheet.writePNG(to: "/tmp/vis-demo-sheet.png")

        // Scale-1 text and a corner of the overlay, magnified ×4 (nearest neighbour) to judge single pixels.
        var zoom = Canvas(width: 1040, height: 440)
        for (source, sx, sy, dx, dy) in [(text, 8, 8, 0, 0), (overlay, 90, 20, 0, 240), (sheet, 560, 530, 520, 240)] {
            for y in 0..<50 {
                for x in 0..<(source.width == 760 ? 260 : 130) {
                    if let c = source.color(x: sx + x, y: sy + y) { zoom.fillRect(x: dx + 4 * x, y: dy + 4 * y, width: 4, height: 4, color: c) }
                }
            }
        }
        try zoom.writePNG(to: "/tmp/vis-demo-zoom.png")
    }
}

/// A rectangle of pixels, corners inclusive.
private struct PixelRect: CustomStringConvertible {
    var x0: Int, y0: Int, x1: Int, y1: Int
    var description: String { "(\(x0), \(y0))…(\(x1), \(y1))" }
}

/// The frame `LinePlot.render` draws around the plot area in the axis colour (60, 60, 60): the only two rows
/// and two columns where that colour fills more than half the canvas (tick marks are 4 px long); nil otherwise.
private func plotFrame(_ canvas: Canvas) -> PixelRect? {
    let axis = RGB(60, 60, 60)
    var rows: [Int] = [], columns: [Int] = []
    for y in 0..<canvas.height {
        var n = 0
        for x in 0..<canvas.width where canvas.color(x: x, y: y) == axis { n += 1 }
        if n > canvas.width / 2 { rows.append(y) }
    }
    for x in 0..<canvas.width {
        var n = 0
        for y in 0..<canvas.height where canvas.color(x: x, y: y) == axis { n += 1 }
        if n > canvas.height / 2 { columns.append(x) }
    }
    guard rows.count == 2, columns.count == 2 else { return nil }
    return PixelRect(x0: columns[0], y0: rows[0], x1: columns[1], y1: rows[1])
}

/// The pixels that are not a shade of gray. In a plot only data is coloured (lines, bands, markers and the
/// legend's line samples); text, axes, grid, background and the legend's box are gray.
private func colouredPixels(_ canvas: Canvas) -> [(x: Int, y: Int)] {
    var out: [(x: Int, y: Int)] = []
    for y in 0..<canvas.height {
        for x in 0..<canvas.width {
            if let c = canvas.color(x: x, y: y), c.r != c.g || c.g != c.b { out.append((x, y)) }
        }
    }
    return out
}

/// The bounding box of the legend's frame (160, 160, 160), a colour nothing else in a plot has; nil without one.
private func legendBox(_ canvas: Canvas) -> PixelRect? {
    var box: PixelRect? = nil
    for y in 0..<canvas.height {
        for x in 0..<canvas.width where canvas.color(x: x, y: y) == RGB(160, 160, 160) {
            if let b = box {
                box = PixelRect(x0: min(b.x0, x), y0: min(b.y0, y), x1: max(b.x1, x), y1: max(b.y1, y))
            } else {
                box = PixelRect(x0: x, y0: y, x1: x, y1: y)
            }
        }
    }
    return box
}

/// Renders `plot` and checks what every plot with named series must satisfy: a frame, at least
/// `minimumDataPixels` coloured pixels and all of them strictly inside the frame, and a legend inside the
/// frame over a part of the plot area that holds no data (the same plot without a legend shows only
/// background and grid lines there).
private func checkedRender(_ plot: LinePlot, width: Int, height: Int, minimumDataPixels: Int,
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> (canvas: Canvas, frame: PixelRect, legend: PixelRect) {
    let canvas = plot.render(width: width, height: height)
    let frame = try #require(plotFrame(canvas), "no plot frame found", sourceLocation: sourceLocation)
    let data = colouredPixels(canvas)
    #expect(data.count >= minimumDataPixels, "\(data.count) data pixels", sourceLocation: sourceLocation)
    let outside = data.filter { !($0.x > frame.x0 && $0.x < frame.x1 && $0.y > frame.y0 && $0.y < frame.y1) }
    #expect(outside.isEmpty, "\(outside.count) data pixels outside the frame \(frame), e.g. \(outside.prefix(3))",
            sourceLocation: sourceLocation)
    let legend = try #require(legendBox(canvas), "no legend found", sourceLocation: sourceLocation)
    #expect(legend.x0 > frame.x0 && legend.x1 < frame.x1 && legend.y0 > frame.y0 && legend.y1 < frame.y1,
            "legend \(legend) outside the frame \(frame)", sourceLocation: sourceLocation)
    var bare = plot
    bare.showLegend = false
    let under = bare.render(width: width, height: height)
    var hidden = 0
    for y in legend.y0...legend.y1 {
        for x in legend.x0...legend.x1 {
            let c = under.color(x: x, y: y)
            if c != .white && c != RGB(225, 225, 225) { hidden += 1 }
        }
    }
    #expect(hidden == 0, "the legend \(legend) hides \(hidden) data pixels", sourceLocation: sourceLocation)
    return (canvas, frame, legend)
}
