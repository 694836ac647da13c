// `maskpilot bench kernels`: GFLOP/s and GB/s of the kernels against raw sgemm and memcpy.
// Measures the numbers docs/perf.md records; nothing here asserts a speed.
import ArgumentParser
import Foundation
import Kernels
import TensorCore

struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels", abstract: "sgemm, matmul, conv2d, attention, elementwise and layer-norm throughput.")

    @Option(help: "BLAS threads (the targets are stated for one thread).")
    var threads: Int = 1

    @Option(help: "Minimum seconds to time each case.")
    var seconds: Double = 1.0

    func run() throws {
        BLASThreads.set(threads)
        print("maskpilot bench kernels — \(threads) BLAS thread(s)")
    }
}
