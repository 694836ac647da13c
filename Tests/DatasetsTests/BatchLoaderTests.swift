// Tests of batches (normalization, padding, packed masks), epoch plans and sharding, and the prefetching loader.
// Reference behaviour: Mask2Former ImageList padding, detectron2 TrainingSampler / InferenceSampler, torch DataLoader ordering.
import Datasets
import Foundation
import Testing
import TensorCore

/// A small thread-safe counter / log for closures run on loader threads.
final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int] = []
    func add(_ v: Int) { lock.lock(); values.append(v); lock.unlock() }
    var all: [Int] { lock.lock(); defer { lock.unlock() }; return values }
}

/// Synthetic dataset: image `i` is 40–56 × 30–38 with a square of class `i mod 5` on class 9.
/// `jitter` sleeps a little per index so threads finish out of order.
func syntheticLoad(bad: Set<Int> = [], jitter: Bool = true, recorder: Recorder? = nil) -> @Sendable (Int) throws -> Sample {
    { index in
        recorder?.add(index)
        if jitter { usleep(UInt32((index * 7919) % 7) * 300) }
        if bad.contains(index) { throw DataError(file: "img\(index).jpg", record: "image \(index)", problem: "truncated JPEG") }
        let w = 40 + (index % 3) * 8, h = 30 + (index % 2) * 8
        var img = Image8(width: w, height: h, channels: 3, fill: UInt8(20 + index % 50))
        var labels = [UInt8](repeating: 9, count: w * h)
        for y in 5..<20 { for x in 8..<24 {
            labels[y * w + x] = UInt8(index % 5)
            for c in 0..<3 { img.pixels[(y * w + x) * 3 + c] = UInt8(200 + c * 20) }
        } }
        return Sample(imageId: 1000 + index, image: img, targets: .semantic(LabelMap(width: w, height: h, labels: labels)))
    }
}

func smallADE() -> ADE20KTrainAugmentation {
    var a = ADE20KTrainAugmentation()
    a.shortEdges = [32, 40, 48]
    a.cropSize = ImageSize(height: 40, width: 40)
    return a
}

/// Everything observable about a batch, for equality checks.
struct BatchFingerprint: Equatable {
    var images: [Float], shape: [Int], labels: [[Int]], words: [[UInt64]], ids: [Int], refs: [SampleRef], skipped: [SampleRef]
    init(_ b: Batch) {
        images = b.images.values; shape = b.images.shape; labels = b.targets.map(\.labels)
        words = b.targets.map(\.masks.words); ids = b.imageIds; refs = b.refs; skipped = b.skipped.map(\.ref)
    }
}

func drain(_ loader: Loader, max: Int = 1000) throws -> [Batch] {
    var out: [Batch] = []
    while out.count < max, let b = try loader.next() { out.append(b) }
    return out
}

func liveThreadNames() -> [String] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    return tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
        .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
}

@Suite struct BatchTests {
    @Test func normalizationAndPadding() {
        let a = AugmentedSample(imageId: 1, image: Image8(width: 33, height: 20, channels: 3, pixels: (0..<(33 * 20 * 3)).map { UInt8($0 % 256) }),
                                classes: [4], masks: [BinaryMask(width: 33, height: 20, bits: [UInt8](repeating: 1, count: 660))],
                                targetIds: [4], originalSize: ImageSize(height: 10, width: 10), transforms: TransformList(inputSize: ImageSize(height: 20, width: 33)))
        let b = Batch.collate([a, a], sizeDivisibility: 32)
        #expect(b.images.shape == [2, 32, 64, 3] && b.paddedSize == ImageSize(height: 32, width: 64))
        let mean: [Float] = [123.675, 116.280, 103.530], std: [Float] = [58.395, 57.120, 57.375]
        for (y, x, c) in [(0, 0, 0), (0, 1, 2), (19, 32, 1), (7, 13, 0)] {
            let v = Float(a.image.pixels[(y * 33 + x) * 3 + c])
            #expect(b.images[1, y, x, c] == (v - mean[c]) / std[c])
        }
        #expect(b.images[0, 20, 0, 0] == 0 && b.images[0, 0, 33, 2] == 0 && b.images[1, 31, 63, 1] == 0)
        // Masks at the padded size, zero in the padding.
        let m = b.maskTensor(0)
        #expect(m.shape == [1, 32, 64])
        #expect(m[0, 19, 32] == 1 && m[0, 20, 0] == 0 && m[0, 0, 33] == 0)
        #expect(m.values.reduce(0, +) == 660)
        #expect(b.targets[0].masks.area(0) == 660 && b.imageSizes[0] == ImageSize(height: 20, width: 33))
        #expect(b.originalSizes[1] == ImageSize(height: 10, width: 10) && b.imageIds == [1, 1])
    }

    @Test func packedMasksRoundTrip() {
        var rng = RNG(seed: 4)
        let masks = (0..<3).map { _ in BinaryMask(width: 13, height: 7, bits: (0..<91).map { _ in UInt8(rng.nextInt(below: 2)) }) }
        let p = PackedMasks(masks, height: 9, width: 15)
        #expect(p.count == 3 && p.words.count == 3 * 3)
        for n in 0..<3 {
            #expect(p.area(n) == masks[n].area)
            for y in 0..<9 { for x in 0..<15 {
                let expected = y < 7 && x < 13 && masks[n].bits[y * 13 + x] == 1
                #expect(p[n, y, x] == expected)
            } }
            let back = p.mask(n)
            #expect(back.width == 15 && back.area == masks[n].area)
        }
        let t = p.materialize()
        #expect(t.shape == [3, 9, 15] && t[2, 6, 12] == (masks[2].bits[6 * 13 + 12] == 1 ? 1 : 0))
        #expect(PackedMasks([], height: 4, width: 4).materialize().shape == [0, 4, 4])
        // Masks as wide as the canvas take the word-at-a-time path.
        let wide = (0..<2).map { _ in BinaryMask(width: 15, height: 7, bits: (0..<105).map { _ in UInt8(rng.nextInt(below: 2)) }) }
        let q = PackedMasks(wide, height: 9, width: 15)
        for n in 0..<2 {
            #expect(q.area(n) == wide[n].area)
            for y in 0..<9 { for x in 0..<15 { #expect(q[n, y, x] == (y < 7 && wide[n].bits[y * 15 + x] == 1)) } }
        }
        let big = BinaryMask(width: 64, height: 3, bits: (0..<192).map { UInt8($0 % 3 == 0 ? 1 : 0) })
        #expect(PackedMasks([big], height: 4, width: 64).mask(0).bits == big.bits + [UInt8](repeating: 0, count: 64))
    }
}

@Suite struct SamplerTests {
    @Test func epochPlansArePermutationsKeyedBySeedAndEpoch() throws {
        let a = makeEpochPlan(datasetSize: 1000, seed: 9, epoch: 3)
        #expect(a.order.sorted() == Array(0..<1000))
        #expect(a == makeEpochPlan(datasetSize: 1000, seed: 9, epoch: 3))
        #expect(a.order != makeEpochPlan(datasetSize: 1000, seed: 9, epoch: 4).order)
        #expect(a.order != makeEpochPlan(datasetSize: 1000, seed: 10, epoch: 3).order)
        #expect(try EpochPlan(epoch: 3, order: a.order) == a)   // as received from a coordinator
        #expect(throws: SamplerError.self) { try EpochPlan(epoch: 0, order: [0, 2, 2]) }
    }

    @Test func shardsAreDisjointAndCoverEachGlobalBatch() throws {
        let n = 103, b = 16, w = 4
        let samplers = try (0..<w).map { try TrainingSampler(datasetSize: n, globalBatchSize: b, worldSize: w, rank: $0) }
        #expect(samplers[0].perRankBatchSize == 4)
        for g in 0..<20 {
            let shards = samplers.map { $0.streamPositions(globalBatch: g) }
            #expect(shards.flatMap { $0 } == Array((g * b)..<((g + 1) * b)))
            #expect(shards[2] == (g * b + 8)..<(g * b + 12))
        }
        // The stream visits every index once per epoch; the epoch tail continues into the next plan.
        let schedules = samplers.map { TrainingSchedule(sampler: $0, seed: 1) }
        var byEpoch: [Int: [Int]] = [:]
        for k in 0..<13 {   // 13 · 16 = 208 = 2 epochs of 103 + 2
            for s in schedules { for r in s.batch(k)! { byEpoch[r.epoch, default: []].append(r.index) } }
        }
        #expect(byEpoch[0]!.sorted() == Array(0..<n) && byEpoch[1]!.sorted() == Array(0..<n) && byEpoch[2]!.count == 2)
        let straddling = schedules[3].batch(6)!   // global batch 6 = positions 96..<112, rank 3 takes 108..<112
        #expect(straddling.map(\.epoch) == [1, 1, 1, 1] && straddling.map(\.position) == [5, 6, 7, 8])
        #expect(schedules[0].batch(6)!.map(\.epoch) == [0, 0, 0, 0])
        #expect(schedules[1].batch(6)!.map(\.epoch) == [0, 0, 0, 1])
    }

    @Test func indivisibleGlobalBatchIsAnError() {
        #expect(throws: SamplerError.self) { try TrainingSampler(datasetSize: 10, globalBatchSize: 6, worldSize: 4, rank: 0) }
        #expect(throws: SamplerError.self) { try TrainingSampler(datasetSize: 10, globalBatchSize: 8, worldSize: 4, rank: 4) }
        #expect(throws: SamplerError.self) { try TrainingSampler(datasetSize: 0, globalBatchSize: 8, worldSize: 4, rank: 0) }
    }

    @Test func inferenceShardsCoverEveryImageOnce() throws {
        for (n, w) in [(10, 3), (5, 8), (16, 4), (0, 2), (7, 1)] {
            let shards = try (0..<w).map { try InferenceSampler(datasetSize: n, worldSize: w, rank: $0).indices() }
            #expect(shards.flatMap { Array($0) } == Array(0..<n), "n \(n) w \(w)")
            #expect(shards.map(\.count).max()! - shards.map(\.count).min()! <= 1)
        }
        let s = InferenceSchedule(sampler: try InferenceSampler(datasetSize: 10, worldSize: 3, rank: 0), batchSize: 3)
        #expect(s.batch(0)!.map(\.index) == [0, 1, 2] && s.batch(1)!.map(\.index) == [3] && s.batch(2) == nil)
    }

    @Test func installedPlanIsUsed() throws {
        let sampler = try TrainingSampler(datasetSize: 4, globalBatchSize: 2, worldSize: 1, rank: 0)
        let schedule = TrainingSchedule(sampler: sampler, seed: 0)
        schedule.install(try EpochPlan(epoch: 0, order: [3, 2, 1, 0]))
        #expect(schedule.batch(0)!.map(\.index) == [3, 2] && schedule.batch(1)!.map(\.index) == [1, 0])
        #expect(schedule.batch(2)!.map(\.index) == Array(makeEpochPlan(datasetSize: 4, seed: 0, epoch: 1).order.prefix(2)))
    }
}

@Suite struct LoaderTests {
    func trainingSchedule(n: Int = 23, batch: Int = 4, batches: Int = 9) throws -> TrainingSchedule {
        TrainingSchedule(sampler: try TrainingSampler(datasetSize: n, globalBatchSize: batch, worldSize: 1, rank: 0),
                         seed: 42, batchCount: batches)
    }

    @Test func oneAndFourThreadsGiveIdenticalBatches() throws {
        var runs: [[BatchFingerprint]] = []
        for (workers, prefetch) in [(1, 1), (4, 3), (3, 8)] {
            let loader = try Loader(schedule: try trainingSchedule(), seed: 7, augmentation: smallADE(),
                                workers: workers, prefetchBatches: prefetch, load: syntheticLoad())
            let batches = try drain(loader)
            #expect(batches.count == 9)
            runs.append(batches.map(BatchFingerprint.init))
        }
        #expect(runs[0] == runs[1] && runs[0] == runs[2])
        // Batch k is the plan's positions, in order: epoch 0 then the tail into epoch 1.
        let plan0 = makeEpochPlan(datasetSize: 23, seed: 42, epoch: 0).order
        #expect(runs[0][0].ids == plan0.prefix(4).map { 1000 + $0 })
        #expect(runs[0][5].refs.map(\.epoch) == [0, 0, 0, 1])
        #expect(runs[0][0].shape == [4, 64, 64, 3])   // 40×40 crops padded to 64
    }

    @Test func augmentationDependsOnSeedAndEpochOnly() throws {
        // The same image in two loaders with different batch layouts gets the same augmentation.
        let a = try drain(Loader(schedule: try trainingSchedule(batch: 4, batches: 2), seed: 7, augmentation: smallADE(),
                                 workers: 2, load: syntheticLoad()))
        let b = try drain(Loader(schedule: try trainingSchedule(batch: 8, batches: 1), seed: 7, augmentation: smallADE(),
                                 workers: 3, load: syntheticLoad()))
        #expect(a[0].targets.map(\.masks.words) + a[1].targets.map(\.masks.words) == b[0].targets.map(\.masks.words))
        let c = try drain(Loader(schedule: try trainingSchedule(batch: 8, batches: 1), seed: 8, augmentation: smallADE(),
                                 workers: 3, load: syntheticLoad()))
        #expect(c[0].images.values != b[0].images.values)
    }

    @Test func prefetchIsBounded() throws {
        let rec = Recorder()
        let loader = try Loader(schedule: try trainingSchedule(n: 50, batch: 2, batches: 20), seed: 1, augmentation: smallADE(),
                            workers: 4, prefetchBatches: 2, load: syntheticLoad(jitter: false, recorder: rec))
        _ = try loader.next()
        usleep(300_000)   // a slow consumer: the workers must stop at the window
        #expect(rec.all.count <= (1 + 2) * 2)
        _ = try loader.next()
        usleep(200_000)
        #expect(rec.all.count <= (2 + 2) * 2)
        let rest = try drain(loader)
        #expect(rest.count == 18 && loader.maxBatchesAhead <= 2 && loader.maxBatchesAhead >= 1)
    }

    @Test func stopJoinsEveryWorker() throws {
        let loader = try Loader(schedule: try trainingSchedule(batches: 100), seed: 1, augmentation: smallADE(),
                            workers: 3, prefetchBatches: 2, load: syntheticLoad())
        _ = try loader.next()
        let name = loader.threadName
        // Workers name themselves once running; the first batch can be ready before the last one has.
        for _ in 0..<500 where liveThreadNames().filter({ $0 == name }).count < 3 { usleep(10_000) }
        #expect(liveThreadNames().filter { $0 == name }.count == 3)
        loader.stop()
        #expect(liveThreadNames().filter { $0 == name }.isEmpty)
        #expect(try loader.next() == nil)
        loader.stop()   // idempotent
    }

    @Test func deinitStopsWorkersAndReleasesClosures() throws {
        final class Token: @unchecked Sendable {}
        weak var weakToken: Token?
        var name = ""
        do {
            let token = Token()
            weakToken = token
            let load = syntheticLoad()
            let loader = try Loader(schedule: try trainingSchedule(batches: 100), seed: 1, augmentation: smallADE(), workers: 2,
                                load: { i in _ = token; return try load(i) })
            name = loader.threadName
            _ = try loader.next()
            // Both workers are running (otherwise the check after deinit would pass vacuously).
            for _ in 0..<500 where liveThreadNames().filter({ $0 == name }).count < 2 { usleep(10_000) }
            #expect(liveThreadNames().filter { $0 == name }.count == 2)
        }
        #expect(weakToken == nil)
        #expect(liveThreadNames().filter { $0 == name }.isEmpty)
    }

    @Test func endOfScheduleAndEmptyBatches() throws {
        let s = InferenceSchedule(sampler: try InferenceSampler(datasetSize: 7, worldSize: 2, rank: 1), batchSize: 2)
        let loader = try Loader(schedule: s, seed: 0, augmentation: TestTimeResize(shortEdge: 32, maxSize: 64),
                            workers: 2, load: syntheticLoad())
        let batches = try drain(loader)
        #expect(batches.map { $0.imageIds } == [[1004, 1005], [1006]])
        #expect(batches[0].images.shape[1] % 32 == 0 && batches[0].targets.allSatisfy { $0.labels.isEmpty })
        #expect(try loader.next() == nil)
    }

    @Test func errorPolicySurfacesOnTheBatch() throws {
        let schedule = try trainingSchedule(n: 23, batch: 4, batches: 6)
        let badIndex = schedule.batch(2)![1].index
        let loader = try Loader(schedule: schedule, seed: 3, augmentation: smallADE(), workers: 3, onBadSample: .error,
                            load: syntheticLoad(bad: [badIndex]))
        _ = try loader.next(); _ = try loader.next()
        let error = #expect(throws: DataError.self) { _ = try loader.next() }
        #expect(error?.description == "img\(badIndex).jpg: image \(badIndex): truncated JPEG")
        let rest = try drain(loader)
        #expect(rest.count == 3)
    }

    @Test func skipPolicyReplacesDeterministicallyAndCounts() throws {
        let schedule = try trainingSchedule(n: 23, batch: 4, batches: 6)
        let victim = schedule.batch(1)![2]
        let nextInPlan = schedule.batch(1)![3]
        var runs: [[BatchFingerprint]] = []
        for workers in [1, 4] {
            let loader = try Loader(schedule: try trainingSchedule(n: 23, batch: 4, batches: 6), seed: 3, augmentation: smallADE(),
                                workers: workers, onBadSample: .skip, load: syntheticLoad(bad: [victim.index]))
            let batches = try drain(loader)
            #expect(batches.allSatisfy { $0.count == 4 })
            #expect(batches[1].refs[2] == nextInPlan && batches[1].skipped.map(\.ref) == [victim])
            #expect(loader.skippedCount(epoch: 0) == 1 && loader.totalSkipped == 1)
            #expect(loader.skipReport(epoch: 0).contains("truncated JPEG"))
            runs.append(batches.map(BatchFingerprint.init))
        }
        #expect(runs[0] == runs[1])
        // In evaluation a bad image is dropped, never replaced.
        let eval = try Loader(schedule: InferenceSchedule(sampler: try InferenceSampler(datasetSize: 5, worldSize: 1, rank: 0), batchSize: 5),
                          seed: 0, augmentation: TestTimeResize(shortEdge: 32, maxSize: 64), workers: 2, onBadSample: .skip,
                          load: syntheticLoad(bad: [2]))
        let e = try drain(eval)
        #expect(e.count == 1 && e[0].imageIds == [1000, 1001, 1003, 1004] && eval.skippedCount(epoch: 0) == 1)
    }

    @Test func nonDataErrorsAreNeverSkipped() throws {
        struct Boom: Error {}
        let loader = try Loader(schedule: try trainingSchedule(batches: 2), seed: 0, workers: 2, onBadSample: .skip,
                            load: syntheticLoad(), augment: { _, _ in throw Boom() })
        #expect(throws: Boom.self) { _ = try loader.next() }
    }
}
