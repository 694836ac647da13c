// Axis tick positions at "nice" values (1, 2 or 5 × 10^k) and their labels without floating-point noise.
// Plays the part of matplotlib's MaxNLocator / ScalarFormatter in the reference's plots.
import Foundation

/// Tick positions and labels for plot axes.
public enum NiceTicks {
    /// The tick spacing for `min…max` (normalised as in `ticks`): the smallest 1, 2 or 5 × 10^k, at least
    /// `minimumStep`, that gives at most `maxCount` ticks inside the range (at least 2 when `maxCount` ≥ 5).
    /// Returns 1 for non-finite bounds.
    public static func step(min lo: Double, max hi: Double, maxCount: Int = 6, minimumStep: Double = 0) -> Double {
        guard let (a, b) = normalised(lo, hi) else { return Swift.max(1, minimumStep) }
        // At least the smallest normal double: a range of a few subnormals would otherwise give log10(0).
        let raw = Swift.max((b - a) / Double(Swift.max(1, maxCount - 1)), minimumStep, Double.leastNormalMagnitude)
        var exponent = Int(log10(raw).rounded(.down))
        while true {
            for m in [1.0, 2, 5] {
                let s = m * pow(10, Double(exponent))
                if s >= minimumStep && count(a, b, s) <= Swift.max(2, maxCount) { return s }
            }
            exponent += 1
        }
    }

    /// Ticks at multiples of `step(min:max:maxCount:minimumStep:)` inside `min…max` (ends included), each the
    /// double nearest its decimal value (0.3, not 0.30000000000000004). A degenerate range `v…v` is widened to
    /// v ± max(|v|/20, 1e-9) (v ± 1 for v = 0) first; `min > max` is swapped; non-finite bounds give no ticks.
    public static func ticks(min lo: Double, max hi: Double, maxCount: Int = 6, minimumStep: Double = 0) -> [Double] {
        guard let (a, b) = normalised(lo, hi) else { return [] }
        let s = step(min: a, max: b, maxCount: maxCount, minimumStep: minimumStep)
        let (mantissa, exponent) = decompose(s)
        let first = (a / s - 1e-9).rounded(.up), last = (b / s + 1e-9).rounded(.down)
        guard first <= last else { return [] }
        return stride(from: first, through: last, by: 1).map { k in
            // k·m·10^e computed as an exact integer scaled once by a power of ten: correctly rounded.
            let units = k * mantissa
            return exponent >= 0 ? units * pow(10, Double(exponent)) : units / pow(10, Double(-exponent))
        }
    }

    /// Ticks for a logarithmic axis over `min…max` (both > 0): powers of ten, with 2× and 5× multiples added
    /// when the range spans less than two decades and 2×…9× when it spans less than one. Powers are thinned to
    /// at most `maxCount`. Empty for non-positive or non-finite bounds.
    public static func logTicks(min lo: Double, max hi: Double, maxCount: Int = 8) -> [Double] {
        guard lo.isFinite, hi.isFinite, lo > 0, hi > 0 else { return [] }
        let (a, b) = (Swift.min(lo, hi), Swift.max(lo, hi))
        let e0 = Int(log10(a).rounded(.down)), e1 = Int(log10(b).rounded(.up))
        let decades = log10(b) - log10(a)
        let multiples: [Double] = decades < 1 ? [1, 2, 3, 4, 5, 6, 7, 8, 9] : decades < 2 ? [1, 2, 5] : [1]
        let every = Swift.max(1, Int((Double(e1 - e0) / Double(Swift.max(1, maxCount))).rounded(.up)))
        var out: [Double] = []
        for e in e0...e1 where (e - e0) % every == 0 || multiples.count > 1 {
            for m in multiples {
                let v = e >= 0 ? m * pow(10, Double(e)) : m / pow(10, Double(-e))
                if v >= a * (1 - 1e-9) && v <= b * (1 + 1e-9) { out.append(v) }
            }
        }
        return out
    }

    /// A tick label for `value` on an axis whose ticks are `step` apart: as many decimals as the step needs
    /// ("0.25", "10", "-1.5"), no "-0"; scientific ("1e-4", "2.5e6") when |value| ≥ 1e5 or 0 < |value| < 1e-3.
    public static func label(_ value: Double, step: Double) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
        if step > 0 && abs(value) < step * 1e-9 { return "0" }  // rounding noise around zero
        let magnitude = abs(value)
        if magnitude >= 1e5 || (magnitude > 0 && magnitude < 1e-3) {
            var e = Int(log10(magnitude).rounded(.down))
            var m = value / pow(10, Double(e))
            if (abs(m) * 1000).rounded() >= 10_000 { e += 1; m /= 10 }  // 9.9996 would print as "10.000"
            return trimmed(String(format: "%.3f", m)) + "e\(e)"
        }
        let decimals = step > 0 && step.isFinite ? Swift.min(12, Swift.max(0, -decompose(step).exponent)) : 6
        var text = String(format: "%.\(decimals)f", value)
        if !(step > 0 && step.isFinite) { text = trimmed(text) }
        if Double(text) == 0 { text = String(text.drop { $0 == "-" }) }
        return text
    }

    /// `s` = mantissa × 10^exponent, the mantissa an integer of at most three digits without trailing zeros
    /// (0.25 → (25, −2), 500 → (5, 2)).
    static func decompose(_ s: Double) -> (mantissa: Double, exponent: Int) {
        var e = Int(log10(s).rounded(.down)) - 2
        var m = (s / pow(10, Double(e))).rounded()
        while m >= 10, m.truncatingRemainder(dividingBy: 10) == 0 { m /= 10; e += 1 }
        return (m, e)
    }

    /// `lo…hi` ordered and, when empty, widened (see `ticks`); nil for non-finite bounds.
    private static func normalised(_ lo: Double, _ hi: Double) -> (Double, Double)? {
        guard lo.isFinite, hi.isFinite else { return nil }
        let (a, b) = (Swift.min(lo, hi), Swift.max(lo, hi))
        guard a == b else { return (a, b) }
        let d = a == 0 ? 1 : Swift.max(abs(a) / 20, 1e-9)
        return (a - d, b + d)
    }

    /// Number of multiples of `s` inside `lo…hi`.
    private static func count(_ lo: Double, _ hi: Double, _ s: Double) -> Int {
        Int((hi / s + 1e-9).rounded(.down) - (lo / s - 1e-9).rounded(.up)) + 1
    }

    /// "2.500" → "2.5", "3.000" → "3".
    private static func trimmed(_ s: String) -> String {
        guard s.contains(".") else { return s }
        var t = Substring(s)
        while t.hasSuffix("0") { t = t.dropLast() }
        if t.hasSuffix(".") { t = t.dropLast() }
        return String(t)
    }
}
