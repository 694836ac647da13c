// `maskpilot bench allreduce`: MPI all-reduce bandwidth per message size (run under mpirun with ≥ 2 ranks).
// Corresponds to nccl-tests' all_reduce_perf columns: algorithm bandwidth and bus bandwidth = 2(n−1)/n · bytes / time.
import ArgumentParser
import Distributed
import Foundation

struct BenchAllreduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Float sum all-reduce bandwidth, 4 KB – 64 MB (run under mpirun -np 2).")

    @Option(parsing: .unconditional, help: "Smallest message in KB.") var minKB: Int = 4
    @Option(parsing: .unconditional, help: "Largest message in MB.") var maxMB: Int = 64
    @Option(parsing: .unconditional, help: "Minimum timed iterations per size (best is reported).") var iterations: Int = 10
    @Option(parsing: .unconditional, help: "Minimum seconds to time each size.") var seconds: Double = 0.25

    func validate() throws {
        try requireOption("--min-kb", minKB, atLeast: 1)
        try requireOption("--max-mb", maxMB, atLeast: 1, atMost: 1 << 14)
        try requireOption("--iterations", iterations, atLeast: 1)
        try requireOption("--seconds", seconds, in: 0...3600)
        if minKB > maxMB << 10 { throw ValidationError("--min-kb \(minKB) is above --max-mb \(maxMB) (\(maxMB << 10) KB)") }
    }

    func run() throws {
        guard MPICommunicator.launchedUnderMPI() else {
            throw ValidationError("run under mpirun, e.g. `mpirun -np 2 maskpilot bench allreduce`")
        }
        let comm = try MPICommunicator.shared()
        let n = comm.size
        if comm.rank == 0 {
            print("maskpilot bench allreduce — \(n) ranks, MPI_Allreduce / MPI_Iallreduce+MPI_Wait in place, float sum, best of ≥ \(iterations) iterations and \(seconds) s")
            print("busbw = 2(n−1)/n × bytes / time; time is the slowest rank's best")
            print(pad("size", 10) + pad("time µs", 12, left: true) + pad("algbw GB/s", 13, left: true) + pad("busbw GB/s", 13, left: true)
                  + pad("i-time µs", 12, left: true) + pad("i-busbw GB/s", 14, left: true))
        }
        let maxBytes = maxMB << 20
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: maxBytes / 4)
        defer { buffer.deallocate() }
        for i in buffer.indices { buffer[i] = Float(i % 101) * 1e-3 }
        var bytes = minKB << 10
        while bytes <= maxBytes {
            let slice = UnsafeMutableBufferPointer(rebasing: buffer[0 ..< bytes / 4])
            let blocking = try bestTime(comm) { try comm.allReduceSum(slice) }
            let nonBlocking = try bestTime(comm) { try comm.startAllReduceSum(slice).wait() }
            if comm.rank == 0 {
                let factor = 2 * Double(n - 1) / Double(n)
                let alg = Double(bytes) / blocking / 1e9
                print(pad(sizeLabel(bytes), 10) + pad(String(format: "%.1f", blocking * 1e6), 12, left: true)
                      + pad(String(format: "%.2f", alg), 13, left: true) + pad(String(format: "%.2f", alg * factor), 13, left: true)
                      + pad(String(format: "%.1f", nonBlocking * 1e6), 12, left: true)
                      + pad(String(format: "%.2f", Double(bytes) / nonBlocking / 1e9 * factor), 14, left: true))
                fflush(nil)
            }
            bytes *= 2
        }
        try comm.finalize()
    }

    /// Best per-rank time of `body` over the iterations, then the maximum over ranks. Every rank runs
    /// the same number of iterations (decided by rank 0) so the collectives match.
    private func bestTime(_ comm: MPICommunicator, _ body: () throws -> Void) throws -> Double {
        try comm.barrier()
        try body()   // warm-up
        var best = Double.infinity
        var done = 0
        let start = DispatchTime.now().uptimeNanoseconds
        while true {
            try comm.barrier()
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            let t1 = DispatchTime.now().uptimeNanoseconds
            best = min(best, Double(t1 - t0) / 1e9)
            done += 1
            let elapsed = Double(t1 - start) / 1e9
            let more: UInt64 = (done < iterations || elapsed < seconds) && done < 10_000 ? 1 : 0
            if try comm.broadcast(more, root: 0) == 0 { break }
        }
        let all = try comm.allGather(best.bitPattern)
        return all.map { Double(bitPattern: $0) }.max() ?? best
    }

    private func sizeLabel(_ bytes: Int) -> String {
        bytes >= 1 << 20 ? "\(bytes >> 20) MB" : "\(bytes >> 10) KB"
    }

    private func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - s.count))
        return left ? fill + s : s + fill
    }
}
