// Range checks for numeric command-line options. Numeric options take their value unconditionally
// (`--iterations -5` is the value -5, as argparse reads it), so each command's `validate()` states its
// ranges here: out of range is a usage error (exit 64) naming the option, before anything runs.
import ArgumentParser

/// Throws a usage error unless `value` (when given) is at least `minimum` (and at most `maximum`).
func requireOption(_ option: String, _ value: Int?, atLeast minimum: Int, atMost maximum: Int = .max) throws {
    guard let value else { return }
    if value < minimum { throw ValidationError("\(option) must be at least \(minimum), got \(value)") }
    if value > maximum { throw ValidationError("\(option) must be at most \(maximum), got \(value)") }
}

/// Throws a usage error unless `value` is finite and within `range`.
func requireOption(_ option: String, _ value: Double, in range: ClosedRange<Double>) throws {
    guard value.isFinite, range.contains(value) else {
        throw ValidationError("\(option) must be within \(range.lowerBound)…\(range.upperBound), got \(value)")
    }
}
