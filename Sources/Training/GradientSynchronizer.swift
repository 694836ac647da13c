// How a training step's gradients (and its loss normaliser) become the same on every rank: nothing to do on one
// process, an overlapped bucketed all-reduce under MPI.
// Corresponds to PyTorch DistributedDataParallel's Reducer (buckets all-reduced while backward runs) and
// Mask2Former's all-reduced `num_masks`.
import Distributed
import Optim
import TensorCore

/// What a `TrainingStep` calls, visibly and in this order, to make a data-parallel step equal to one process
/// running the global batch.
public protocol GradientSynchronizer: AnyObject {
    /// The mean over ranks of `value` (the criterion's number of target masks).
    func averageOverRanks(_ value: Double) throws -> Double
    /// Runs backward from the last micro-batch's `total` loss, starting the gradients' all-reduce as they become final.
    func backward(_ total: Tensor) throws
    /// Waits until every gradient is averaged over ranks; returns the seconds spent waiting (the part of the
    /// all-reduce backward did not hide).
    func finish() throws -> Double
}

/// One process: gradients are already complete.
public final class LocalGradients: GradientSynchronizer {
    public init() {}
    public func averageOverRanks(_ value: Double) throws -> Double { value }
    public func backward(_ total: Tensor) throws { total.backward() }
    public func finish() throws -> Double { 0 }
}

/// Several ranks: backward reports each parameter as soon as its gradient is final, a bucket's non-blocking
/// all-reduce starts when all of its parameters are in, and MPI progress is driven between tape nodes
/// (PyTorch DDP's scheme); `finish` waits for the rest and averages.
public final class BucketedAllReduce: GradientSynchronizer {
    public let communicator: any Communicator
    /// The buckets over the flat gradient buffer; `lastStep` says how much of the all-reduce was hidden.
    public let bucketer: GradientBucketer
    /// Parameter tensor → its index in the flat buffer.
    private let index: [ObjectIdentifier: Int]

    public init(parameters: FlatParameters, bucketBytes: Int, communicator: any Communicator) {
        self.communicator = communicator
        bucketer = GradientBucketer(parameterRanges: (0..<parameters.names.count).map { parameters.range($0) },
                                    flat: parameters.grads, bucketBytes: bucketBytes, communicator: communicator)
        var index: [ObjectIdentifier: Int] = [:]
        for (i, t) in parameters.tensors.enumerated() { index[ObjectIdentifier(t)] = i }
        self.index = index
    }

    public func averageOverRanks(_ value: Double) throws -> Double {
        try communicator.allReduceSum(value) / Double(communicator.size)
    }

    public func backward(_ total: Tensor) throws {
        bucketer.beginStep()
        // The tape's hooks cannot throw: the first failure is kept, the remaining hooks do nothing, and it is
        // thrown here once backward has returned.
        var failure: Error?
        total.backward(seed: nil, leafReady: { [bucketer, index] t in
            guard failure == nil, let i = index[ObjectIdentifier(t)] else { return }
            do { try bucketer.markReady(i) } catch { failure = error }
        }, afterNode: { [bucketer] in
            guard failure == nil else { return }
            do { try bucketer.poll() } catch { failure = error }
        })
        if let failure { throw failure }
    }

    public func finish() throws -> Double { try bucketer.finish() }
}

/// The synchronizer for `communicator`: local for one rank, the bucketed all-reduce (`distributed.bucket_mb`) for more.
public func makeGradientSynchronizer(parameters: FlatParameters, config: MaskPilotConfig,
                                     communicator: any Communicator) -> any GradientSynchronizer {
    guard communicator.size > 1 else { return LocalGradients() }
    return BucketedAllReduce(parameters: parameters, bucketBytes: max(1, Int(config.distributed.bucketMb * 1_048_576)),
                             communicator: communicator)
}
