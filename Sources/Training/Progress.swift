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
    /// The weighted total loss (the median of the recent steps, like detectron2's printer).
    public var total: Double
    /// Loss terms by name (medians of the recent steps); the line shows those listed in `ProgressLine.shownTerms`.
    public var losses: [String: Double]
    public var learningRate: Double
    /// Smoothed throughput, nil before the first measured step.
    public var imagesPerSecond: Double?
    /// Estimated seconds to the end, nil when unknown.
    public var etaSeconds: Double?
    /// Median seconds per step and waiting for data over the recent steps, nil when unknown.
    public var iterationSeconds: Double?
    public var dataSeconds: Double?
    /// Peak resident memory of the largest rank, bytes; nil when unknown.
    public var peakMemoryBytes: Int?

    public init(step: Int, totalSteps: Int, total: Double, losses: [String: Double], learningRate: Double,
                imagesPerSecond: Double? = nil, etaSeconds: Double? = nil, iterationSeconds: Double? = nil,
                dataSeconds: Double? = nil, peakMemoryBytes: Int? = nil) {
        self.step = step; self.totalSteps = totalSteps; self.total = total; self.losses = losses
        self.learningRate = learningRate; self.imagesPerSecond = imagesPerSecond; self.etaSeconds = etaSeconds
        self.iterationSeconds = iterationSeconds; self.dataSeconds = dataSeconds; self.peakMemoryBytes = peakMemoryBytes
    }
}

/// The progress printer of rank 0. On a terminal it redraws one line in place (`\r`, the line, then
/// clear-to-end `ESC[K`), fitted to the terminal's width by leaving out the less important fields; otherwise it
/// prints a plain line at step 1, every `period` steps and at the last step (or at `finish()` if the run stops
/// early). Losses, step time and data time are medians over the last `window` steps (detectron2's
/// CommonMetricPrinter shows the median of 20).
///
/// `update` and `finish` return the exact text to write (nil: nothing this time) so the logic is testable
/// without a terminal; `Console.progress` writes it.
public struct ProgressLine {
    public enum Style: Sendable, Equatable {
        /// Redraw in place, fitted to `width` columns when known.
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
    /// Weight of the past in the exponential moving average of seconds per step (throughput and ETA).
    public let smoothing: Double
    /// How many recent steps the medians cover.
    public let window: Int
    /// Smoothed seconds per step and images per step (nil before the first update).
    public private(set) var secondsPerStep: Double?
    public private(set) var imagesPerStep: Double?
    private var recent: [String: [Double]] = [:]
    private var lastSnapshot: ProgressSnapshot?
    private var lastPrintedStep: Int?

    public init(totalSteps: Int, style: Style, smoothing: Double = 0.9, window: Int = 20) {
        precondition(totalSteps >= 0 && (0...1).contains(smoothing) && window >= 1, "ProgressLine: bad totalSteps, smoothing or window")
        if case .plain(let period) = style { precondition(period >= 1, "ProgressLine: period must be ≥ 1") }
        self.totalSteps = totalSteps; self.style = style; self.smoothing = smoothing; self.window = window
    }

    /// `.terminal` (with its width) when standard output is a terminal, else `.plain(period:)`. Under mpirun
    /// (whose ranks write to a pipe or pseudo-terminal of its own) `cluster/launch.sh` says what the user's
    /// output is: `MASKPILOT_PROGRESS=terminal|plain`, with the width in `COLUMNS`.
    public static func standardOutputStyle(period: Int, environment: [String: String] = ProcessInfo.processInfo.environment) -> Style {
        let columns = environment["COLUMNS"].flatMap(Int.init).flatMap { $0 > 0 ? $0 : nil }
        switch environment["MASKPILOT_PROGRESS"] {
        case "plain": return .plain(period: period)
        case "terminal": return .terminal(width: columns ?? terminalWidth())
        default:
            guard isatty(1) != 0 else { return .plain(period: period) }
            return .terminal(width: terminalWidth() ?? columns)
        }
    }

    /// The width of the terminal on standard output, nil when it is not one or does not say.
    static func terminalWidth() -> Int? {
        var size = winsize()
        return ioctl(1, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : nil
    }

    /// Records step `step` (1-based count of completed steps) that processed `images` images (globally)
    /// in `stepSeconds` of wall time (of which `dataSeconds` waiting for data), and returns the text to write, if any.
    public mutating func update(step: Int, total: Double, losses: [String: Double], learningRate: Double,
                                images: Int, stepSeconds: Double, dataSeconds: Double? = nil,
                                peakMemoryBytes: Int? = nil) -> String? {
        if stepSeconds.isFinite && stepSeconds > 0 {
            secondsPerStep = secondsPerStep.map { smoothing * $0 + (1 - smoothing) * stepSeconds } ?? stepSeconds
            imagesPerStep = imagesPerStep.map { smoothing * $0 + (1 - smoothing) * Double(images) } ?? Double(images)
        }
        remember("total", total)
        for (_, key) in ProgressLine.shownTerms { if let v = losses[key] { remember(key, v) } }
        remember("time", stepSeconds)
        if let dataSeconds { remember("data", dataSeconds) }
        let snapshot = ProgressSnapshot(
            step: step, totalSteps: totalSteps, total: median("total") ?? total,
            losses: Dictionary(uniqueKeysWithValues: ProgressLine.shownTerms.compactMap { term in
                losses[term.key] == nil ? nil : median(term.key).map { (term.key, $0) } }),
            learningRate: learningRate,
            imagesPerSecond: secondsPerStep.flatMap { s in imagesPerStep.map { $0 / s } },
            etaSeconds: secondsPerStep.map { ProgressLine.eta(remainingSteps: totalSteps - step, secondsPerStep: $0) },
            iterationSeconds: median("time"), dataSeconds: dataSeconds == nil ? nil : median("data"),
            peakMemoryBytes: peakMemoryBytes)
        lastSnapshot = snapshot
        switch style {
        case .terminal(let width):
            lastPrintedStep = step
            return "\r" + ProgressLine.format(snapshot, width: width.map { $0 - 1 }) + "\u{1B}[K"
        case .plain(let period):
            guard step == 1 || step % period == 0 || step == totalSteps else { return nil }
            lastPrintedStep = step
            return ProgressLine.format(snapshot) + "\n"
        }
    }

    /// Records a step from its report (total, losses and learning rate).
    public mutating func update(step: Int, report: StepReport, images: Int, stepSeconds: Double, dataSeconds: Double? = nil,
                                peakMemoryBytes: Int? = nil) -> String? {
        update(step: step, total: Double(report.total), losses: report.losses.mapValues(Double.init),
               learningRate: report.learningRate, images: images, stepSeconds: stepSeconds, dataSeconds: dataSeconds,
               peakMemoryBytes: peakMemoryBytes)
    }

    /// The text that ends the progress output: in plain mode the last line if it was not printed yet (a
    /// drawn terminal line is ended by the next `Console.message`).
    public mutating func finish() -> String? {
        guard case .plain = style, let last = lastSnapshot, lastPrintedStep != last.step else { return nil }
        lastPrintedStep = last.step
        return ProgressLine.format(last) + "\n"
    }

    private mutating func remember(_ key: String, _ value: Double) {
        recent[key, default: []].append(value)
        if recent[key]!.count > window { recent[key]!.removeFirst(recent[key]!.count - window) }
    }

    private func median(_ key: String) -> Double? { recent[key].flatMap(ProgressLine.median) }

    /// The median (the mean of the two middle values for an even count; NaN sorts last), nil for no values.
    public static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted { a, b in a.isNaN ? false : (b.isNaN ? true : a < b) }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    // MARK: pure formatting

    /// One progress line, without control characters, e.g.
    /// `step  120/5000  loss 12.35  ce 0.8123  mask 0.5123  dice 1.203  lr 1.00e-04  time 0.952  data 0.003  4.20 img/s  mem 812M  ETA 1h02m`.
    ///
    /// With a `width`, fields are left out until the line fits: step, loss, lr, img/s and ETA always stay; then
    /// in order of importance the final class, mask and dice losses, step time, data time, memory and the
    /// mask-piloting terms. A line whose kept fields alone are too wide is cut to `width` characters.
    public static func format(_ s: ProgressSnapshot, width: Int? = nil) -> String {
        let stepWidth = String(s.totalSteps).count
        let step = String(s.step)
        // (priority, text): 0 = always shown; a smaller number is kept first.
        var fields: [(priority: Int, text: String)] = [
            (0, "step " + String(repeating: " ", count: max(0, stepWidth - step.count)) + step + "/" + String(s.totalSteps)),
            (0, "loss " + loss(s.total)),
        ]
        for (i, (label, key)) in shownTerms.enumerated() {
            if let value = s.losses[key] { fields.append((i < 3 ? 1 + i : 7 + i, label + " " + loss(value))) }
        }
        fields.append((0, "lr " + String(format: "%.2e", s.learningRate)))
        if let t = s.iterationSeconds { fields.append((4, "time " + seconds(t))) }
        if let d = s.dataSeconds { fields.append((5, "data " + seconds(d))) }
        fields.append((0, (s.imagesPerSecond.map(rate) ?? "-") + " img/s"))
        if let m = s.peakMemoryBytes { fields.append((6, "mem " + memory(m))) }
        fields.append((0, "ETA " + (s.etaSeconds.map(duration) ?? "-")))
        func joined(_ keep: (Int) -> Bool) -> String {
            fields.filter { keep($0.priority) }.map(\.text).joined(separator: "  ")
        }
        guard let width else { return joined { _ in true } }
        var kept: Set<Int> = [0]
        guard joined({ kept.contains($0) }).count <= width else { return String(joined { $0 == 0 }.prefix(max(0, width))) }
        for priority in Set(fields.map(\.priority)).sorted() where priority > 0 {
            if joined({ kept.contains($0) || $0 == priority }).count <= width { kept.insert(priority) }
        }
        return joined { kept.contains($0) }
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

    /// Seconds with three significant digits: `0.952`, `12.3`, `0.00312`.
    public static func seconds(_ x: Double) -> String { String(format: "%.3g", x) }

    /// Bytes as `812M` or `12.3G` (binary units).
    public static func memory(_ bytes: Int) -> String {
        let mib = Double(bytes) / 1_048_576
        return mib < 10_240 ? String(format: "%.0fM", mib) : String(format: "%.1fG", mib / 1024)
    }
}

/// Rank 0's standard output, shared by the progress line and every other message, so that a message never lands
/// on a progress line drawn in place: `message` first ends such a line. `Console.standard` writes to standard
/// output; a test makes its own with another `write`.
public final class Console: @unchecked Sendable {
    /// The process's standard output (through the same buffer as `print`, flushed after each write).
    public static let standard = Console { text in
        print(text, terminator: "")
        fflush(nil)
    }

    private let write: (String) -> Void
    private let lock = NSLock()
    /// Whether a progress line is drawn without its newline.
    private var lineOpen = false
    /// Where messages are copied (rank 0's `log.txt`), if anywhere.
    private var mirror: ((String) -> Void)?

    /// Copies every later `message` (and `logOnly` text) to `write` as well; nil stops copying.
    public func setMirror(_ write: ((String) -> Void)?) { lock.withLock { mirror = write } }

    /// Text for the mirror alone (the log file's own plain step lines, a final error); nil writes nothing.
    public func logOnly(_ text: String?) {
        guard let text else { return }
        lock.withLock { mirror?(text) }
    }

    public init(write: @escaping (String) -> Void) { self.write = write }

    /// Writes progress text (from `ProgressLine` or `EvalProgress`); nil writes nothing.
    public func progress(_ text: String?) {
        guard let text else { return }
        lock.withLock {
            write(text)
            lineOpen = !text.hasSuffix("\n")
        }
    }

    /// Writes `text` and a newline on a line of its own.
    public func message(_ text: String) {
        lock.withLock {
            if lineOpen { write("\n"); lineOpen = false }
            write(text + "\n")
            mirror?(text + "\n")
        }
    }

    /// `Console.standard.progress(text)`.
    public static func progress(_ text: String?) { standard.progress(text) }
    /// `Console.standard.message(text)`.
    public static func message(_ text: String) { standard.message(text) }
}
