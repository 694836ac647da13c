// GradientBucketer: the flat gradient buffer cut into buckets whose all-reduces start while backward is still running.
// Corresponds to PyTorch DDP's Reducer (bucket_cap_mb = 25, buckets in reverse parameter order, average by world size).
import Foundation
import TensorCore

/// Averages a flat gradient buffer over the ranks of a communicator, bucket by bucket, overlapping the
/// communication with backward.
///
/// Buckets group consecutive parameters in *reverse* parameter order (bucket 0 holds the last
/// parameters, whose gradients backward produces first), each a contiguous slice of the flat buffer
/// of at most `bucketBytes` bytes (a single larger parameter gets a bucket of its own).
///
/// Per step: `beginStep()`, then `markReady(i)` for each parameter as its gradient becomes final
/// (e.g. from `Autograd.backward(leafReady:)`) and `poll()` now and then (e.g. from `afterNode`) to
/// drive the in-flight reductions, then `finish()`, after which every bucket holds the mean over ranks.
///
/// Determinism: every rank starts the collectives in the same order, bucket 0, 1, 2, … — a bucket
/// whose parameters are all ready starts only once every earlier bucket has started — so readiness
/// order may differ between ranks without deadlock, and `finish()` starts whatever is left (parameters
/// that got no gradient) in that same order. Each bucket is always the same slice reduced by the same
/// collective, then divided by the world size, so every rank gets bitwise the same result every step.
public final class GradientBucketer {
    /// One bucket: parameter indices (ascending) and the slice of the flat buffer they cover.
    public struct Bucket: Equatable, Sendable {
        public let parameters: Range<Int>
        public let elements: Range<Int>
        public var byteCount: Int { elements.count * MemoryLayout<Float>.stride }
    }

    /// Timing of the last step's reduction.
    public struct StepTiming: Sendable {
        /// Wall time from the first bucket's start to the observed completion of the last one.
        public var allReduceSeconds: Double = 0
        /// Time spent inside `finish()` (the part not hidden behind backward).
        public var waitSeconds: Double = 0
        /// Buckets started before `finish()` was called.
        public var bucketsStartedEarly: Int = 0
        /// Buckets already complete when `finish()` was called.
        public var bucketsCompletedEarly: Int = 0

        /// Share of the all-reduce time that did not show up as waiting in `finish()` (0…1).
        public var hiddenFraction: Double {
            allReduceSeconds > 0 ? max(0, min(1, 1 - waitSeconds / allReduceSeconds)) : 1
        }
    }

    public let buckets: [Bucket]
    /// The bucket holding each parameter.
    public let bucketOfParameter: [Int]
    public let flat: Storage
    public let communicator: any Communicator
    public private(set) var lastStep = StepTiming()

    private var readyParameter: [Bool]
    private var pendingCount: [Int]
    private var requests: [(any PendingReduction)?]
    private var completed: [Bool]
    private var nextToStart = 0
    private var inStep = false
    private var firstStart: UInt64 = 0
    private var lastCompletion: UInt64 = 0

    /// - Parameters:
    ///   - parameterRanges: each parameter's element range in `flat`, in parameter order, ascending
    ///     and non-overlapping (`FlatParameters.range(i)`; gaps, if any, are reduced along).
    ///   - bucketBytes: the bucket size cap (PyTorch's 25 MB default).
    public init(parameterRanges: [Range<Int>], flat: Storage, bucketBytes: Int = 25 << 20,
                communicator: any Communicator) {
        precondition(bucketBytes > 0, "bucketBytes must be positive")
        for i in parameterRanges.indices {
            precondition(parameterRanges[i].upperBound <= flat.count, "parameter \(i)'s range \(parameterRanges[i]) is outside the flat buffer (\(flat.count))")
            if i > 0 {
                precondition(parameterRanges[i].lowerBound >= parameterRanges[i - 1].upperBound,
                             "parameter ranges must be ascending and non-overlapping (\(i - 1), \(i))")
            }
        }
        let capElements = max(1, bucketBytes / MemoryLayout<Float>.stride)
        var made: [Bucket] = []
        var owner = [Int](repeating: 0, count: parameterRanges.count)
        var hi = parameterRanges.count   // the current bucket covers parameters lo ..< hi
        var lo = hi
        func close() {
            guard lo < hi else { return }
            let elements = parameterRanges[lo].lowerBound ..< parameterRanges[hi - 1].upperBound
            for p in lo..<hi { owner[p] = made.count }
            made.append(Bucket(parameters: lo ..< hi, elements: elements))
            hi = lo
        }
        while lo > 0 {
            let candidate = lo - 1
            let extent = parameterRanges[hi - 1].upperBound - parameterRanges[candidate].lowerBound
            if lo < hi && extent > capElements { close(); continue }
            lo = candidate
        }
        close()
        buckets = made
        bucketOfParameter = owner
        self.flat = flat
        self.communicator = communicator
        readyParameter = [Bool](repeating: false, count: parameterRanges.count)
        pendingCount = made.map(\.parameters.count)
        requests = [(any PendingReduction)?](repeating: nil, count: made.count)
        completed = [Bool](repeating: false, count: made.count)
    }

    /// Buckets whose reduction has started this step (they start in bucket order).
    public var startedCount: Int { nextToStart }

    /// Whether bucket `b` has all its parameters ready this step.
    public func isBucketReady(_ b: Int) -> Bool { pendingCount[b] == 0 }

    /// Resets readiness for a new step. The previous step must have been `finish`ed.
    public func beginStep() {
        precondition(requests.allSatisfy { $0 == nil }, "beginStep with reductions of the previous step in flight (call finish)")
        for i in readyParameter.indices { readyParameter[i] = false }
        for b in buckets.indices { pendingCount[b] = buckets[b].parameters.count; completed[b] = false }
        nextToStart = 0
        firstStart = 0
        lastCompletion = 0
        lastStep = StepTiming()
        inStep = true
    }

    /// Parameter `i`'s gradient is final for this step; starts its bucket's reduction when the
    /// bucket is complete and every earlier bucket has started. Marking twice is harmless.
    public func markReady(_ parameter: Int) throws {
        precondition(inStep, "markReady outside beginStep … finish")
        guard !readyParameter[parameter] else { return }
        readyParameter[parameter] = true
        pendingCount[bucketOfParameter[parameter]] -= 1
        while nextToStart < buckets.count && pendingCount[nextToStart] == 0 {
            try start(nextToStart)
        }
    }

    /// Drives the in-flight reductions (`MPI_Test`); a completed bucket is divided by the world size here.
    public func poll() throws {
        guard inStep else { return }
        for b in 0..<nextToStart where !completed[b] {
            if let r = requests[b], try r.test() { complete(b) }
        }
    }

    /// Starts every bucket not yet started (in bucket order), waits for all, and leaves the mean over
    /// ranks in the flat buffer. Returns the seconds spent here (see `lastStep` for the full timing).
    @discardableResult
    public func finish() throws -> Double {
        precondition(inStep, "finish without beginStep")
        let t0 = DispatchTime.now().uptimeNanoseconds
        lastStep.bucketsStartedEarly = nextToStart
        lastStep.bucketsCompletedEarly = completed.lazy.filter { $0 }.count
        while nextToStart < buckets.count { try start(nextToStart) }
        for b in buckets.indices where !completed[b] {
            try requests[b]?.wait()
            complete(b)
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        inStep = false
        lastStep.waitSeconds = Double(t1 - t0) / 1e9
        lastStep.allReduceSeconds = buckets.isEmpty ? 0 : Double(lastCompletion - firstStart) / 1e9
        return lastStep.waitSeconds
    }

    private func start(_ b: Int) throws {
        precondition(b == nextToStart)
        let e = buckets[b].elements
        if b == 0 { firstStart = DispatchTime.now().uptimeNanoseconds }
        nextToStart += 1
        if communicator.size == 1 {
            complete(b)
            return
        }
        requests[b] = try communicator.startAllReduceSum(UnsafeMutableBufferPointer(start: flat.base + e.lowerBound, count: e.count))
    }

    private func complete(_ b: Int) {
        requests[b] = nil
        completed[b] = true
        let n = communicator.size
        if n > 1 {
            let e = buckets[b].elements
            let p = flat.base + e.lowerBound
            let d = Float(n)
            for i in 0..<e.count { p[i] /= d }
        }
        lastCompletion = DispatchTime.now().uptimeNanoseconds
    }
}
