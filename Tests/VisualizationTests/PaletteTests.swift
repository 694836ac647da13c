import Testing
import Visualization

@Suite struct PaletteTests {
    @Test func consecutiveColorsDiffer() {
        for i in 0..<200 {
            let a = Palette.color(i), b = Palette.color(i + 1)
            let d = abs(Int(a.r) - Int(b.r)) + abs(Int(a.g) - Int(b.g)) + abs(Int(a.b) - Int(b.b))
            #expect(d > 60, "colours \(i) and \(i + 1) are too close: \(a) \(b)")
        }
        #expect(Palette.color(7) == Palette.color(7))
    }
}
