import Data
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

    /// Writes the demo images looked at by eye (run with VIS_DEMO=1).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["VIS_DEMO"] != nil)) func writeDemoImages() throws {
        var ascii = ""
        for v in UInt32(32)...126 { ascii.unicodeScalars.append(Unicode.Scalar(v)!); if (v - 31) % 32 == 0 { ascii += "\n" } }
        let sample = ascii + "\nThe quick brown fox jumps over the lazy dog. 0.25 +/- 1e-4: ±3×2 5° µm −1\n[mIoU] = 47.3% (iter 90000); loss_mask_dice: 0.612"
        var text = Canvas(width: 760, height: 330)
        text.drawText(sample, x: 10, y: 10, color: .black)
        text.drawText(sample, x: 10, y: 80, color: .black, scale: 2)
        text.drawText("Unknown: \u{263A} é", x: 10, y: 300, color: RGB(200, 0, 0))
        try text.writePNG(to: "/tmp/vis-demo-text.png")

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
        var sheet = Canvas(width: 1120, height: 740, background: RGB(240, 240, 240))
        sheet.blit(overlay, x: 0, y: 0)
        sheet.blit(plot.render(width: 800, height: 500), x: 320, y: 0)
        sheet.blit(layers.render(width: 560, height: 240), x: 0, y: 500)
        sheet.blit(log.render(width: 560, height: 240), x: 560, y: 500)
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
