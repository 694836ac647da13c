// Tests of GradientBucketer with single-process communicators: bucket layout, readiness tracking, start order.
// Reference semantics: PyTorch DDP's Reducer (reverse-order buckets capped by bytes, deterministic launch order).
import Testing
import Distributed
import TensorCore

/// A two-rank stand-in whose "other rank" holds the same values: a reduction doubles the slice.
/// Records the order in which reductions were started; completions happen on `test()`/`wait()`.
final class RecordingCommunicator: Communicator {
    var started: [Int] = []   // element counts, in start order
    var startedBases: [UnsafeMutablePointer<Float>] = []
    var rank: Int { 0 }
    var size: Int { 2 }
    func barrier() throws {}
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {}
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws { for i in values.indices { values[i] *= 2 } }
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws { for i in values.indices { values[i] *= 2 } }
    func startAllReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws -> any PendingReduction {
        started.append(values.count)
        startedBases.append(values.baseAddress!)
        return Pending(values)
    }
    func allGather(_ value: UInt64) throws -> [UInt64] { [value, value] }
    func allGather(_ text: String) throws -> [String] { [text, text] }
    func abort(code: Int32, message: String) -> Never { fatalError(message) }

    final class Pending: PendingReduction {
        let values: UnsafeMutableBufferPointer<Float>
        var done = false
        init(_ values: UnsafeMutableBufferPointer<Float>) { self.values = values }
        func test() throws -> Bool { try wait(); return true }
        func wait() throws {
            guard !done else { return }
            for i in values.indices { values[i] *= 2 }
            done = true
        }
    }
}

/// Packed ranges for parameters of the given element counts.
func packedRanges(_ counts: [Int]) -> [Range<Int>] {
    var out: [Range<Int>] = []
    var o = 0
    for c in counts { out.append(o ..< o + c); o += c }
    return out
}

@Suite struct GradientBucketTests {
    @Test func bucketsAreReverseOrderAndCapped() {
        // Parameters of 10, 20, 30, 40, 5 floats; cap 50 floats = 200 bytes.
        let ranges = packedRanges([10, 20, 30, 40, 5])
        let flat = Storage(zeroedCount: 105)
        let b = GradientBucketer(parameterRanges: ranges, flat: flat, bucketBytes: 200, communicator: LocalCommunicator())
        #expect(b.buckets.map(\.parameters) == [3..<5, 1..<3, 0..<1])
        #expect(b.buckets.map(\.elements) == [60..<105, 10..<60, 0..<10])
        #expect(b.bucketOfParameter == [2, 1, 1, 0, 0])
        #expect(b.buckets.allSatisfy { $0.byteCount <= 200 })
        // Buckets tile the buffer.
        #expect(b.buckets.map(\.elements.count).reduce(0, +) == 105)
    }

    @Test func singleLargeParameterGetsItsOwnBucket() {
        let ranges = packedRanges([4, 100, 4, 4])
        let flat = Storage(zeroedCount: 112)
        let b = GradientBucketer(parameterRanges: ranges, flat: flat, bucketBytes: 64, communicator: LocalCommunicator())
        #expect(b.buckets.map(\.parameters) == [2..<4, 1..<2, 0..<1])
        #expect(b.buckets[1].byteCount == 400)
        // Default cap: everything in one bucket.
        let one = GradientBucketer(parameterRanges: ranges, flat: flat, communicator: LocalCommunicator())
        #expect(one.buckets.map(\.parameters) == [0..<4])
        // No parameters: no buckets, finish is a no-op.
        let none = GradientBucketer(parameterRanges: [], flat: flat, communicator: LocalCommunicator())
        #expect(none.buckets.isEmpty)
        none.beginStep()
        #expect((try? none.finish()) != nil)
    }

    @Test func readyTrackingStartsBucketsInOrder() throws {
        let ranges = packedRanges([2, 2, 2, 2])
        let flat = Storage(zeroedCount: 8)
        for i in 0..<8 { flat.base[i] = Float(i) }
        let comm = RecordingCommunicator()
        let b = GradientBucketer(parameterRanges: ranges, flat: flat, bucketBytes: 16, communicator: comm)
        #expect(b.buckets.map(\.parameters) == [2..<4, 0..<2])
        b.beginStep()
        // Bucket 1 (parameters 0, 1) becomes ready first: it must wait for bucket 0 to start.
        try b.markReady(0)
        try b.markReady(1)
        #expect(b.isBucketReady(1) && b.startedCount == 0 && comm.started.isEmpty)
        try b.markReady(3)
        try b.markReady(3)   // twice: harmless
        #expect(!b.isBucketReady(0) && b.startedCount == 0)
        try b.markReady(2)
        // Now bucket 0 starts, then bucket 1 right after it.
        #expect(b.startedCount == 2)
        #expect(comm.startedBases == [flat.base + 4, flat.base])
        try b.poll()
        let waited = try b.finish()
        #expect(waited == b.lastStep.waitSeconds && waited >= 0)
        // Doubled by the fake reduction, halved by the mean: unchanged.
        #expect(Array(flat.buffer) == (0..<8).map { Float($0) })
        #expect(b.lastStep.bucketsStartedEarly == 2 && b.lastStep.bucketsCompletedEarly == 2)
    }

    @Test func finishStartsUnreadyBucketsInFixedOrder() throws {
        let ranges = packedRanges([3, 3, 3])
        let flat = Storage(zeroedCount: 9)
        for i in 0..<9 { flat.base[i] = 1 }
        let comm = RecordingCommunicator()
        let b = GradientBucketer(parameterRanges: ranges, flat: flat, bucketBytes: 12, communicator: comm)
        #expect(b.buckets.count == 3)
        for step in 0..<2 {
            b.beginStep()
            comm.started = []; comm.startedBases = []
            try b.markReady(1)   // middle bucket only: nothing may start before bucket 0
            #expect(b.startedCount == 0)
            try b.finish()
            #expect(comm.startedBases == [flat.base + 6, flat.base + 3, flat.base], "step \(step)")
            #expect(Array(flat.buffer) == [Float](repeating: 1, count: 9))
            #expect(b.lastStep.bucketsStartedEarly == 0)
        }
    }

    @Test func localCommunicatorLeavesGradientsUnchanged() throws {
        let ranges = packedRanges([5, 7])
        let flat = Storage(zeroedCount: 12)
        for i in 0..<12 { flat.base[i] = Float(i) * 0.5 }
        let b = GradientBucketer(parameterRanges: ranges, flat: flat, bucketBytes: 20, communicator: LocalCommunicator())
        b.beginStep()
        try b.markReady(1)
        #expect(b.startedCount == 1)
        try b.markReady(0)
        try b.finish()
        #expect(Array(flat.buffer) == (0..<12).map { Float($0) * 0.5 })
        #expect(b.lastStep.bucketsStartedEarly == 2)
    }

    @Test func launchDetectionReadsTheLauncherVariables() {
        #expect(!MPICommunicator.launchedUnderMPI(environment: [:]))
        // Open MPI settings a user exports by hand are not a launcher.
        #expect(!MPICommunicator.launchedUnderMPI(environment: ["OMPI_MCA_btl": "self,vader", "PATH": "/usr/bin"]))
        #expect(MPICommunicator.launchedUnderMPI(environment: ["OMPI_COMM_WORLD_SIZE": "2"]))   // mpirun (Open MPI)
        #expect(MPICommunicator.launchedUnderMPI(environment: ["PMI_SIZE": "4"]))               // srun with PMI-2
        #expect(MPICommunicator.launchedUnderMPI(environment: ["PMIX_RANK": "0"]))              // srun / prterun with PMIx
    }
}
