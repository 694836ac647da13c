// Rank 0's progress line: step/total, main loss terms, lr, smoothed images/s and ETA; redrawn in place on a terminal.
// Corresponds to detectron2's CommonMetricPrinter (eta, losses, lr, time) printed every `period` iterations.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Everything one progress line shows.
public struct ProgressSnapshot: Sendable, Equatable {
    /// Steps completed (1 … totalSteps).
    public var step: Int
    public var totalSteps: Int
    /// The weighted total loss.
    public var total: Double
    /// Loss terms by name; the line shows those listed in `ProgressLine.shownTerms`.
    public var losses: [String: Double]
    public var learningRate: Double
    /// Smoothed throughput, nil before the first measured step.
    public var imagesPerSecond: Double?
    /// Estimated seconds to the end, nil when unknown.
    public var etaSeconds: Double?

    public init(step: Int, totalSteps: Int, total: Double, losses: [String: Double], learningRate: Double,
                imagesPerSecond: Double? = nil, etaSeconds: Double? = nil) {
        self.step = step; self.totalSteps = totalSteps; self.total = total; self.losses = losses
        self.learningRate = learningRate; self.imagesPerSecond = imagesPerSecond; self.etaSeconds = etaSeconds
    }
}

/// The progress printer of rank 0. On a terminal it redraws one line in place (`\r`, the line, then
/// clear-to-end `ESC[K`); otherwise it prints a plain line at step 1, every `period` steps and at the last
/// step (or at `finish()` if the run stops early).
///
/// `update` and `finish` return the exact text to write (nil: nothing this time) so the logic is testable
/// without a terminal; `emit` writes it to standard output.
public struct ProgressLine {
    public enum Style: Sendable, Equatable {
        /// Redraw in place; lines longer than `width` columns (when known) are cut to `width − 1`.
        case terminal(width: Int?)
        /// A plain line every `period` steps.
        case plain(period: Int)
    }

    /// Loss terms shown after the total, as (label, key): the final prediction's class, mask and dice
    /// losses, and with mask piloting the final prediction's `_dn` terms; a key missing from the losses is
    /// skipped.
    public static let shownTerms: [(label: String, key: String)] = [
        ("ce", "loss_cross_entropy"), ("mask", "loss_mask"), ("dice", "loss_dice"),
        ("ce_dn", "loss_cross_entropy_dn"), ("mask_dn", "loss_mask_dn"), ("dice_dn", "loss_dice_dn"),
    ]

    public let totalSteps: Int
    public let style: Style
    /// Weight of the past in the exponential moving average of seconds per step.
    public let smoothing: Double
    /// Smoothed seconds per step and images per step (nil before the first update).
    public private(set) var secondsPerStep: Double?
    public private(set) var imagesPerStep: Double?
    private var lastSnapshot: ProgressSnapshot?
    private var lastPrintedStep: Int?
    private var lineDrawn = false

    public init(totalSteps: Int, style: Style, smoothing: Double = 0.9) {
        precondition(totalSteps >= 0 && (0...1).contains(smoothing), "ProgressLine: bad totalSteps or smoothing")
        if case .plain(let period) = style { precondition(period >= 1, "ProgressLine: period must be ≥ 1") }
        self.totalSteps = totalSteps; self.style = style; self.smoothing = smoothing
    }

    /// `.terminal` (with its width) when standard output is a terminal, else `.plain(period:)`.
    public static func standardOutputStyle(period: Int) -> Style {
        guard isatty(1) != 0 else { return .plain(period: period) }
        var size = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return .terminal(width: Int(size.ws_col)) }
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), columns > 0 {
            return .terminal(width: columns)
        }
        return .terminal(width: nil)
    }

    /// Records step `step` (1-based count of completed steps) that processed `images` images (globally)
    /// in `stepSeconds` of wall time, and returns the text to write, if any.
    public mutating func update(step: Int, total: Double, losses: [String: Double], learningRate: Double,
                                images: Int, stepSeconds: Double) -> String? {
        if stepSeconds.isFinite && stepSeconds > 0 {
            secondsPerStep = secondsPerStep.map { smoothing * $0 + (1 - smoothing) * stepSeconds } ?? stepSeconds
            imagesPerStep = imagesPerStep.map { smoothing * $0 + (1 - smoothing) * Double(images) } ?? Double(images)
        }
        let snapshot = ProgressSnapshot(
            step: step, totalSteps: totalSteps, total: total, losses: losses, learningRate: learningRate,
            imagesPerSecond: secondsPerStep.flatMap { s in imagesPerStep.map { $0 / s } },
            etaSeconds: secondsPerStep.map { ProgressLine.eta(remainingSteps: totalSteps - step, secondsPerStep: $0) })
        lastSnapshot = snapshot
        switch style {
        case .terminal(let width):
            lineDrawn = true
            lastPrintedStep = step
            return "\r" + ProgressLine.fit(ProgressLine.format(snapshot), width: width) + "\u{1B}[K"
        case .plain(let period):
            guard step == 1 || step % period == 0 || step == totalSteps else { return nil }
            lastPrintedStep = step
            return ProgressLine.format(snapshot) + "\n"
        }
    }

    /// Records a step from its report (total, losses and learning rate).
    public mutating func update(step: Int, report: StepReport, images: Int, stepSeconds: Double) -> String? {
        update(step: step, total: Double(report.total), losses: report.losses.mapValues(Double.init),
               learningRate: report.learningRate, images: images, stepSeconds: stepSeconds)
    }

    /// The text that ends the progress output: on a terminal a newline after the drawn line; in plain mode
    /// the last line if it was not printed yet.
    public mutating func finish() -> String? {
        switch style {
        case .terminal:
            return lineBreak()
        case .plain:
            guard let last = lastSnapshot, lastPrintedStep != last.step else { return nil }
            lastPrintedStep = last.step
            return ProgressLine.format(last) + "\n"
        }
    }

    /// On a terminal, a newline that leaves the drawn line in place so another message can be printed
    /// below it (the next update draws a new line); nil when nothing is drawn or in plain mode.
    public mutating func lineBreak() -> String? {
        guard case .terminal = style, lineDrawn else { return nil }
        lineDrawn = false
        return "\n"
    }

    /// Writes `text` to standard output (through the same buffer as `print`) and flushes it.
    public static func emit(_ text: String?) {
        guard let text else { return }
        print(text, terminator: "")
        fflush(nil)
    }

    // MARK: pure formatting

    /// One progress line, without control characters, e.g.
    /// `step  120/5000  loss 12.35  ce 0.8123  mask 0.5123  dice 1.203  lr 1.00e-04  4.20 img/s  ETA 1h02m`.
    public static func format(_ s: ProgressSnapshot) -> String {
        let width = String(s.totalSteps).count
        let step = String(s.step)
        var parts = ["step " + String(repeating: " ", count: max(0, width - step.count)) + step + "/" + String(s.totalSteps),
                     "loss " + loss(s.total)]
        for (label, key) in shownTerms {
            if let value = s.losses[key] { parts.append(label + " " + loss(value)) }
        }
        parts.append("lr " + String(format: "%.2e", s.learningRate))
        parts.append((s.imagesPerSecond.map(rate) ?? "-") + " img/s")
        parts.append("ETA " + (s.etaSeconds.map(duration) ?? "-"))
        return parts.joined(separator: "  ")
    }

    /// Seconds left: remaining steps × seconds per step (never negative).
    public static func eta(remainingSteps: Int, secondsPerStep: Double) -> Double {
        Double(max(0, remainingSteps)) * secondsPerStep
    }

    /// `42s`, `12m05s`, `3h07m`, `2d03h`; `?` for a negative or non-finite duration.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let t = Int(seconds.rounded())
        func two(_ x: Int) -> String { x < 10 ? "0\(x)" : "\(x)" }
        if t < 60 { return "\(t)s" }
        if t < 3600 { return "\(t / 60)m\(two(t % 60))s" }
        if t < 86400 { return "\(t / 3600)h\(two(t % 3600 / 60))m" }
        return "\(t / 86400)d\(two(t % 86400 / 3600))h"
    }

    /// Four significant digits (`nan`, `inf` as such).
    static func loss(_ x: Double) -> String { String(format: "%.4g", x) }

    static func rate(_ x: Double) -> String { x >= 100 ? String(format: "%.0f", x) : String(format: "%.3g", x) }

    /// Cuts `text` to `width − 1` characters when it would not fit on one terminal line.
    static func fit(_ text: String, width: Int?) -> String {
        guard let width, width > 1, text.count >= width else { return text }
        return String(text.prefix(width - 1))
    }
}
