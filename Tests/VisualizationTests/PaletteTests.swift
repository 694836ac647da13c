import Testing
import Visualization

/// Sum of absolute channel differences.
private func distance(_ a: RGB, _ b: RGB) -> Int {
    abs(Int(a.r) - Int(b.r)) + abs(Int(a.g) - Int(b.g)) + abs(Int(a.b) - Int(b.b))
}

@Suite struct PaletteTests {
    @Test func consecutiveColorsDiffer() {
        for i in 0..<200 {
            let a = Palette.color(i), b = Palette.color(i + 1)
            #expect(distance(a, b) > 60, "colours \(i) and \(i + 1) are too close: \(a) \(b)")
        }
    }

    /// Values worked out from the definition (hue n·0.618… mod 1, S = [0.75, 0.55, 0.9][n % 3],
    /// V = [0.95, 0.8, 0.7][(n / 3) % 3], HSV → RGB, ×255 rounded half away from zero), so a change of the
    /// palette, which would recolour every overlay, shows here.
    @Test func knownColours() {
        #expect(Palette.color(0) == RGB(242, 61, 61))
        #expect(Palette.color(1) == RGB(109, 148, 242))
        #expect(Palette.color(2) == RGB(151, 242, 24))
        #expect(Palette.color(3) == RGB(204, 51, 185))
        #expect(Palette.color(7) == RGB(85, 179, 80))
        #expect(Palette.color(8) == RGB(179, 18, 72))
        #expect(Palette.color(100) == RGB(218, 109, 242))
        // Negative indices (e.g. "no class") take colour 0 instead of trapping.
        #expect(Palette.color(-1) == RGB(242, 61, 61) && Palette.color(-5) == Palette.color(0))
    }

    /// Saturation and value cycle through three levels each: the brightest channel is V·255 and the darkest
    /// V·(1 − S)·255 for every index, so no colour is washed out or too dark for a label.
    @Test func valueAndSaturationLevels() {
        let brightest: [UInt8] = [242, 204, 179]                              // V = 0.95, 0.8, 0.7
        let darkest: [[UInt8]] = [[61, 109, 24], [51, 92, 20], [45, 80, 18]]   // [V][S = 0.75, 0.55, 0.9]
        for i in 0..<300 {
            let c = Palette.color(i)
            #expect(max(c.r, c.g, c.b) == brightest[(i / 3) % 3], "colour \(i): \(c)")
            #expect(min(c.r, c.g, c.b) == darkest[(i / 3) % 3][i % 3], "colour \(i): \(c)")
        }
    }

    /// The first dozen colours (the classes of a small dataset) are pairwise well apart, not only consecutive ones.
    @Test func firstColoursArePairwiseDistinct() {
        let first = (0..<12).map(Palette.color)
        for i in first.indices {
            for j in first.indices where j > i {
                #expect(distance(first[i], first[j]) >= 70, "colours \(i) and \(j): \(first[i]) \(first[j])")
            }
        }
    }

    /// Plot series take the ten `Palette.series` colours in order and wrap around after ten.
    @Test func seriesColoursWrapAfterTen() {
        #expect(Set(Palette.series).count == 10)
        let plot = LinePlot(series: (0..<12).map { LinePlot.Series(name: "s\($0)", values: [0, 1]) })
        #expect((0..<12).map(plot.color(ofSeries:)) == (0..<12).map { Palette.series[$0 % 10] })
        var custom = plot
        custom.series[10].color = RGB(1, 2, 3)
        #expect(custom.color(ofSeries: 10) == RGB(1, 2, 3) && custom.color(ofSeries: 11) == Palette.series[1])
    }
}
