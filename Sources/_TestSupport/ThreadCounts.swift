// Runs a computation at several intra-op thread counts, for the tests that results never depend on them.
// Corresponds to no reference file (PyTorch does not promise this; MaskPilot's kernels fix every split by data size).
import Kernels

/// The thread counts the determinism tests compare: serial, this machine's two cores, and more threads than cores
/// (chunks then migrate between threads mid-loop).
public let determinismThreadCounts = [1, 2, 8]

/// `body()` run with this thread's parallel loops on each of `counts` threads, in order; `grainDivisor` as
/// `withIntraOpThreads`' (more, smaller chunks, so that small inputs take the parallel paths).
public func atThreadCounts<T>(_ counts: [Int] = determinismThreadCounts, grainDivisor: Int = 1,
                              _ body: () throws -> T) rethrows -> [T] {
    try counts.map { n in try withIntraOpThreads(n, grainDivisor: grainDivisor) { try body() } }
}

/// Whether all `results` are bitwise equal to the first (Float arrays compared by bit pattern, so −0 ≠ 0 and NaNs
/// with the same payload are equal).
public func bitwiseEqual(_ results: [[Float]]) -> Bool {
    guard let first = results.first else { return true }
    return results.allSatisfy { $0.count == first.count && zip($0, first).allSatisfy { $0.bitPattern == $1.bitPattern } }
}
