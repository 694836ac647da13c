// Epoch plans (one seeded permutation per epoch, made by a coordinator) and per-rank sharding of global batches.
// Corresponds to detectron2 TrainingSampler (infinite shuffled stream) and InferenceSampler (each image once, contiguous shards).
import Foundation
import TensorCore

/// A sampler configuration that cannot work (e.g. a global batch not divisible by the world size).
public struct SamplerError: Error, CustomStringConvertible, Sendable {
    public var problem: String
    public init(_ problem: String) { self.problem = problem }
    public var description: String { "sampler: \(problem)" }
}

/// The order in which one epoch visits the dataset: a permutation of `0..<datasetSize`.
///
/// One coordinator (rank 0) makes it with `makeEpochPlan` and can broadcast `order` as integers; every
/// rank then shards the same plan. The plan is also reproducible anywhere from (size, seed, epoch).
public struct EpochPlan: Sendable, Equatable {
    public let epoch: Int
    public let order: [Int]

    /// Wraps a received order (must be a permutation of `0..<order.count`).
    public init(epoch: Int, order: [Int]) throws {
        var seen = [Bool](repeating: false, count: order.count)
        for i in order {
            guard i >= 0 && i < order.count && !seen[i] else {
                throw SamplerError("epoch \(epoch) plan is not a permutation of 0..<\(order.count) (bad entry \(i))")
            }
            seen[i] = true
        }
        self.epoch = epoch; self.order = order
    }

    init(unchecked epoch: Int, order: [Int]) { self.epoch = epoch; self.order = order }

    public var datasetSize: Int { order.count }
}

/// The seeded permutation of epoch `epoch`: Fisher–Yates with `RNG(seed: seed, stream: planStream(epoch))`.
public func makeEpochPlan(datasetSize: Int, seed: UInt64, epoch: Int) -> EpochPlan {
    precondition(datasetSize >= 0 && epoch >= 0, "plan of \(datasetSize) samples for epoch \(epoch)")
    var rng = RNG(seed: seed, stream: epochPlanStream(epoch: epoch))
    return EpochPlan(unchecked: epoch, order: rng.permutation(datasetSize))
}

/// The Philox stream of an epoch plan (disjoint in practice from the augmentation streams).
public func epochPlanStream(epoch: Int) -> UInt64 {
    splitMix64(UInt64(bitPattern: Int64(epoch)) ^ 0x504C_414E_0000_0000)
}

/// Training sharding as an infinite stream (detectron2 `TrainingSampler`).
///
/// Stream position `q` is position `q mod N` of epoch `q / N`'s plan. Global batch `g` is positions
/// `[g·B, (g+1)·B)`; rank `r` of `W` takes `[g·B + r·B/W, g·B + (r+1)·B/W)`. So the shards of one global
/// batch are disjoint and cover it, and **the uneven tail** of an epoch (N not divisible by B) is not a
/// partial batch: the batch simply continues into the next epoch's plan, as detectron2's infinite
/// sampler does. Every image is seen once per epoch; a batch may straddle two epochs.
public struct TrainingSampler: Sendable, Hashable {
    public let datasetSize: Int
    public let globalBatchSize: Int
    public let worldSize: Int
    public let rank: Int

    public init(datasetSize: Int, globalBatchSize: Int, worldSize: Int, rank: Int) throws {
        guard datasetSize > 0 else { throw SamplerError("the dataset is empty") }
        guard worldSize > 0, rank >= 0, rank < worldSize else { throw SamplerError("rank \(rank) of world size \(worldSize)") }
        guard globalBatchSize > 0, globalBatchSize % worldSize == 0 else {
            throw SamplerError("global batch \(globalBatchSize) is not divisible by the \(worldSize) ranks; choose a multiple of \(worldSize)")
        }
        self.datasetSize = datasetSize; self.globalBatchSize = globalBatchSize
        self.worldSize = worldSize; self.rank = rank
    }

    /// Images per rank per step (`B / W`).
    public var perRankBatchSize: Int { globalBatchSize / worldSize }

    /// The stream positions of `rank`'s shard of global batch `g`.
    public func streamPositions(globalBatch g: Int, rank r: Int? = nil) -> Range<Int> {
        let rr = r ?? rank
        precondition(g >= 0 && rr >= 0 && rr < worldSize, "global batch \(g), rank \(rr)")
        let start = g * globalBatchSize + rr * perRankBatchSize
        return start..<(start + perRankBatchSize)
    }

    /// (epoch, position in that epoch's plan) of stream position `q`.
    public func locate(_ q: Int) -> (epoch: Int, position: Int) { (q / datasetSize, q % datasetSize) }

    /// The epoch of the first image of global batch `g` (for "end of epoch" bookkeeping).
    public func epoch(ofGlobalBatch g: Int) -> Int { g * globalBatchSize / datasetSize }
}

/// Evaluation sharding (detectron2 `InferenceSampler`): every index exactly once, in order; rank `r`
/// gets a contiguous shard of `N / W` indices, the first `N mod W` ranks one more.
public struct InferenceSampler: Sendable, Hashable {
    public let datasetSize: Int
    public let worldSize: Int
    public let rank: Int

    public init(datasetSize: Int, worldSize: Int, rank: Int) throws {
        guard datasetSize >= 0 else { throw SamplerError("negative dataset size") }
        guard worldSize > 0, rank >= 0, rank < worldSize else { throw SamplerError("rank \(rank) of world size \(worldSize)") }
        self.datasetSize = datasetSize; self.worldSize = worldSize; self.rank = rank
    }

    /// The dataset indices of `rank`'s shard.
    public func indices(rank r: Int? = nil) -> Range<Int> {
        let rr = r ?? rank
        let base = datasetSize / worldSize, left = datasetSize % worldSize
        let begin = rr * base + min(rr, left)
        return begin..<(begin + base + (rr < left ? 1 : 0))
    }
}

// MARK: - Schedules for the loader

/// What a `Loader` loads: the refs of local batch `k` (`nil` past the end) and, under `.skip`, which
/// sample replaces a failed one.
public protocol BatchSchedule: Sendable {
    /// The samples of local batch `k` (`k` = 0, 1, …), or nil when the stream has ended.
    func batch(_ k: Int) -> [SampleRef]?
    /// The `attempt`-th replacement (1, 2, …) for `ref`, or nil to drop the sample.
    func replacement(for ref: SampleRef, attempt: Int) -> SampleRef?
}

/// Training schedule of one rank: local batch `k` is this rank's shard of global batch `startBatch + k`.
///
/// Plans come from `planProvider` (default: `makeEpochPlan(datasetSize:seed:epoch:)`, which gives every
/// rank the coordinator's permutation without communication) or from `install(_:)` (a plan received
/// from rank 0). The provider runs on loader threads, so it must not make MPI calls; install received
/// plans from the main thread instead. The most recent plans are cached.
/// A failed sample is replaced by the next positions of the same epoch's plan (wrapping around).
public final class TrainingSchedule: BatchSchedule, @unchecked Sendable {
    public let sampler: TrainingSampler
    public let seed: UInt64
    public let startBatch: Int
    /// Number of local batches, or nil for an endless stream.
    public let batchCount: Int?
    private let planProvider: @Sendable (Int) -> EpochPlan
    private let lock = NSLock()
    private var plans: [Int: EpochPlan] = [:]

    public init(sampler: TrainingSampler, seed: UInt64, startBatch: Int = 0, batchCount: Int? = nil,
                planProvider: (@Sendable (Int) -> EpochPlan)? = nil) {
        precondition(startBatch >= 0 && (batchCount ?? 0) >= 0, "startBatch \(startBatch), batchCount \(String(describing: batchCount))")
        self.sampler = sampler; self.seed = seed; self.startBatch = startBatch; self.batchCount = batchCount
        let n = sampler.datasetSize
        self.planProvider = planProvider ?? { makeEpochPlan(datasetSize: n, seed: seed, epoch: $0) }
    }

    /// The plan of `epoch` (cached: the three highest epochs requested or installed are kept).
    public func plan(_ epoch: Int) -> EpochPlan {
        lock.lock(); defer { lock.unlock() }
        if let p = plans[epoch] { return p }
        let p = planProvider(epoch)
        precondition(p.datasetSize == sampler.datasetSize, "plan of epoch \(epoch) has \(p.datasetSize) entries, dataset \(sampler.datasetSize)")
        plans[epoch] = p
        if plans.count > 3, let oldest = plans.keys.min() { plans[oldest] = nil }
        return p
    }

    /// Uses `plan` for its epoch from now on (e.g. one broadcast by the coordinator).
    public func install(_ plan: EpochPlan) {
        precondition(plan.datasetSize == sampler.datasetSize, "plan of \(plan.datasetSize) entries, dataset \(sampler.datasetSize)")
        lock.lock(); defer { lock.unlock() }
        plans[plan.epoch] = plan
    }

    public func batch(_ k: Int) -> [SampleRef]? {
        if let c = batchCount, k >= c { return nil }
        return sampler.streamPositions(globalBatch: startBatch + k).map { q in
            let (e, p) = sampler.locate(q)
            return SampleRef(epoch: e, position: p, index: plan(e).order[p])
        }
    }

    public func replacement(for ref: SampleRef, attempt: Int) -> SampleRef? {
        let n = sampler.datasetSize
        guard attempt < n else { return nil }
        let p = (ref.position + attempt) % n
        return SampleRef(epoch: ref.epoch, position: p, index: plan(ref.epoch).order[p])
    }
}

/// Evaluation schedule of one rank: its `InferenceSampler` shard in order, `batchSize` at a time; the
/// last batch may be smaller. A failed sample is dropped, never replaced (each image exactly once).
public struct InferenceSchedule: BatchSchedule {
    public let sampler: InferenceSampler
    public let batchSize: Int
    public init(sampler: InferenceSampler, batchSize: Int = 1) {
        precondition(batchSize > 0, "batch size \(batchSize)")
        self.sampler = sampler; self.batchSize = batchSize
    }
    public func batch(_ k: Int) -> [SampleRef]? {
        let r = sampler.indices()
        let start = r.lowerBound + k * batchSize
        guard k >= 0, start < r.upperBound else { return nil }
        return (start..<min(start + batchSize, r.upperBound)).map { SampleRef(epoch: 0, position: $0, index: $0) }
    }
    public func replacement(for ref: SampleRef, attempt: Int) -> SampleRef? { nil }
}
