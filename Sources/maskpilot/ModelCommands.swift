// `maskpilot model summary`: the module tree of a configured model with parameter counts.
// Corresponds to printing a detectron2 model and counting `p.numel()` over `model.parameters()`.
import ArgumentParser
import Foundation
import Mask2FormerModel
import NN
import TensorCore
import Training

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "model", abstract: "Inspect model configurations.",
                                                    subcommands: [ModelSummary.self])
}

struct ModelSummary: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary", abstract: "Print the module tree with trainable parameter counts and the total.")

    @OptionGroup var configOptions: ConfigOptions

    @Option(help: "Deepest module level to list (0 = only the total).")
    var depth: Int = 3

    func run() throws {
        let cfg = try configOptions.load()
        var rng = RNG(seed: cfg.seed)
        let model = Mask2Former(cfg.model, rng: &rng)
        print(summary(of: model, depth: depth))
    }
}

/// Lines `name  count` for every module down to `depth` levels, then the trainable total and the
/// buffer count (frozen BN statistics and affines are buffers, not trainable).
func summary(of model: Module, depth: Int) -> String {
    let params = model.namedParameters()
    func count(under prefix: String) -> Int {
        params.filter { $0.0 == prefix || $0.0.hasPrefix(prefix + ".") }.reduce(0) { $0 + $1.1.count }
    }
    var lines: [String] = []
    var seen = Set<String>()
    for (name, _) in params {
        let parts = name.split(separator: ".").map(String.init).dropLast()
        for level in 1...max(1, min(depth, parts.count)) where level <= parts.count {
            let prefix = parts.prefix(level).joined(separator: ".")
            guard !seen.contains(prefix) else { continue }
            seen.insert(prefix)
            let indent = String(repeating: "  ", count: level - 1)
            let label = indent + parts[level - 1]
            lines.append(label.padding(toLength: max(label.count, 56), withPad: " ", startingAt: 0)
                         + String(format: "%14@", count(under: prefix).formatted() as NSString))
        }
    }
    let total = params.reduce(0) { $0 + $1.1.count }
    let buffers = model.namedBuffers().reduce(0) { $0 + $1.1.count }
    if depth > 0 { lines.append(String(repeating: "-", count: 70)) }
    lines.append("trainable parameters: \(total.formatted()) (\(total))")
    lines.append("buffers (frozen BN): \(buffers.formatted())")
    return lines.joined(separator: "\n")
}
