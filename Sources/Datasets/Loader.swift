// A prefetching loader: worker threads decode and augment samples, batches are assembled by position, a bounded number ahead.
// Corresponds to torch DataLoader(num_workers, prefetch) over detectron2's MapDataset + sampler, with its bad-sample fallback.
import Foundation
import TensorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// `BadSamplePolicy` (`.error` / `.skip`, the `data.on_bad_sample` setting) is declared with the COCO reader.
// In the loader: `.error` makes `next()` throw the error for the batch that contains the sample; `.skip`
// replaces the sample by the schedule's deterministic replacement (the next positions of the epoch's plan
// in training; dropped in evaluation) and records it in `Batch.skipped`.

/// Loads batches of a `BatchSchedule` on background threads.
///
/// - Determinism: batch `k` holds the samples of `schedule.batch(k)` in that order (after any
///   deterministic `.skip` replacement), each augmented with `augmentationRNG(seed:epoch:imageId:)`;
///   workers take single samples in (batch, slot) order and the batch is assembled by position, so
///   the result does not depend on the number of workers or on timing.
/// - Bounded prefetch: at most `prefetchBatches` batches are being loaded or waiting to be taken.
/// - Errors: under `.error` `next()` throws the first failing sample's error (by position) for that
///   batch; the next call continues with the following batch. Under `.skip` a sample whose `load` or
///   `augment` throws a `DataError` is replaced by `schedule.replacement(for:attempt:)` (training: the
///   next positions of the same epoch's plan, so that image appears twice in the epoch, with the same
///   augmentation since its RNG is keyed by (seed, epoch, image id)); after `maxReplacementAttempts`
///   failures, or when the schedule has no replacement (evaluation), the sample is dropped and the
///   batch is one smaller. Every failure is listed in `Batch.skipped` and counted per epoch
///   (`skippedCount(epoch:)`, `skipReport(epoch:)`) over the batches taken. Errors that are not
///   `DataError` are always thrown, never skipped.
/// - Shutdown: `stop()` (also run by `deinit`) wakes and joins every worker thread.
public final class Loader: @unchecked Sendable {
    public let workers: Int
    public let prefetchBatches: Int
    public let onBadSample: BadSamplePolicy
    private let core: LoaderCore
    private var threads: [pthread_t] = []
    private let joinLock = NSLock()

    /// - Parameters:
    ///   - schedule: which samples make batch `k` (`TrainingSchedule`, `InferenceSchedule`, …).
    ///   - seed: the augmentation seed (with the epoch and image id it keys each image's RNG).
    ///   - load: decodes dataset index `i` (called concurrently from worker threads).
    ///   - augment: augments one sample with its own RNG (called concurrently).
    public init(schedule: any BatchSchedule, seed: UInt64, workers: Int = 2, prefetchBatches: Int = 2,
                onBadSample: BadSamplePolicy = .error, maxReplacementAttempts: Int = 16,
                sizeDivisibility: Int = 32, normalization: PixelNormalization = .mask2former,
                load: @escaping @Sendable (Int) throws -> Sample,
                augment: @escaping @Sendable (Sample, inout RNG) throws -> AugmentedSample) throws {
        precondition(workers >= 1, "a loader needs at least one worker, got \(workers)")
        precondition(prefetchBatches >= 1, "prefetchBatches must be at least 1, got \(prefetchBatches)")
        precondition(maxReplacementAttempts >= 0, "maxReplacementAttempts \(maxReplacementAttempts)")
        self.workers = workers; self.prefetchBatches = prefetchBatches; self.onBadSample = onBadSample
        core = LoaderCore(schedule: schedule, seed: seed, prefetch: prefetchBatches, policy: onBadSample,
                          maxAttempts: maxReplacementAttempts, sizeDivisibility: sizeDivisibility,
                          normalization: normalization, load: load, augment: augment)
        threadName = "mpload\(Loader.nextLoaderID())"
        let c = core, name = threadName
        for k in 0..<workers {
            do {
                threads.append(try spawnThread {
                    setCurrentThreadName(name)
                    c.workerLoop()
                })
            } catch {
                stop()   // the workers already started
                throw LoaderError("cannot start data loader worker \(k + 1) of \(workers): pthread_create failed (error \(error.code): "
                                  + "\(String(cString: strerror(error.code)))); "
                                  + "the process may not make more threads (ulimit -u, a container's pids limit): lower data.workers")
            }
        }
    }

    /// The name of this loader's worker threads as the OS shows it (`/proc/self/task/*/comm`, `top -H`).
    public let threadName: String

    private static let idLock = NSLock()
    nonisolated(unsafe) private static var loaderCount = 0
    private static func nextLoaderID() -> Int {
        idLock.lock(); defer { idLock.unlock() }
        loaderCount += 1
        return loaderCount
    }

    /// A loader that augments with `augmentation`.
    public convenience init(schedule: any BatchSchedule, seed: UInt64, augmentation: some SampleAugmentation,
                            workers: Int = 2, prefetchBatches: Int = 2, onBadSample: BadSamplePolicy = .error,
                            maxReplacementAttempts: Int = 16, sizeDivisibility: Int = 32,
                            normalization: PixelNormalization = .mask2former,
                            load: @escaping @Sendable (Int) throws -> Sample) throws {
        try self.init(schedule: schedule, seed: seed, workers: workers, prefetchBatches: prefetchBatches,
                  onBadSample: onBadSample, maxReplacementAttempts: maxReplacementAttempts,
                  sizeDivisibility: sizeDivisibility, normalization: normalization, load: load,
                  augment: { sample, rng in try augmentation.apply(sample, rng: &rng) })
    }

    deinit { stop() }

    /// The next batch in order, waiting for it if needed; nil at the end of the schedule or after `stop()`.
    public func next() throws -> Batch? { try core.next() }

    /// Number of the batch the next `next()` returns.
    public var nextBatchNumber: Int { core.withLock { $0.consumed } }

    /// Stops the workers and waits for every thread to exit. Idempotent.
    public func stop() {
        core.requestStop()
        joinLock.lock(); defer { joinLock.unlock() }
        for t in threads { pthread_join(t, nil) }
        threads = []
    }

    /// Samples skipped (policy `.skip`) in the batches taken so far whose failed sample belongs to `epoch`.
    public func skippedSamples(epoch: Int) -> [SkippedSample] { core.withLock { $0.skippedByEpoch[epoch] ?? [] } }

    /// Number of samples skipped in `epoch` (over the batches taken so far).
    public func skippedCount(epoch: Int) -> Int { skippedSamples(epoch: epoch).count }

    /// Number of samples skipped over all batches taken so far.
    public var totalSkipped: Int { core.withLock { $0.skippedByEpoch.values.reduce(0) { $0 + $1.count } } }

    /// The largest number of batches that were in flight or ready at once (never above `prefetchBatches`).
    public var maxBatchesAhead: Int { core.withLock { $0.maxAhead } }

    /// Number of `load` calls made so far (including replacements).
    public var loadCalls: Int { core.withLock { $0.loadCalls } }

    /// A one-line summary of the skips of `epoch`, e.g. for the end-of-epoch log.
    public func skipReport(epoch: Int) -> String {
        let s = skippedSamples(epoch: epoch)
        if s.isEmpty { return "epoch \(epoch): no bad samples skipped" }
        return "epoch \(epoch): skipped \(s.count) bad sample(s): " + s.prefix(5).map(\.description).joined(separator: "; ")
            + (s.count > 5 ? "; …" : "")
    }
}

/// A loader that could not start: the reason, naming what to change.
public struct LoaderError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// MARK: - Internals

private final class ThreadBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// Names the calling thread (Foundation forwards it to pthread_setname_np; the OS keeps 15 bytes).
private func setCurrentThreadName(_ name: String) {
    Thread.current.name = String(name.prefix(15))
}

/// pthread_create's error code.
private struct ThreadStartFailure: Error { let code: Int32 }

/// A new thread running `body`; pthread_create's error code thrown when it cannot be made.
private func spawnThread(_ body: @escaping @Sendable () -> Void) throws(ThreadStartFailure) -> pthread_t {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    #if canImport(Darwin)
    var tid: pthread_t?
    let status = pthread_create(&tid, nil, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw).takeRetainedValue().run()
        return nil
    }, box)
    guard status == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        throw ThreadStartFailure(code: status)
    }
    return tid!
    #else
    var tid = pthread_t()
    let status = pthread_create(&tid, nil, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, box)
    guard status == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        throw ThreadStartFailure(code: status)
    }
    return tid
    #endif
}

private enum UnitResult {
    case ok(AugmentedSample, SampleRef, [SkippedSample])
    case dropped([SkippedSample])
    case failed(Error)
}

private struct BatchSlot {
    var results: [UnitResult?]
    var remaining: Int
}

struct LoaderState {
    var consumed = 0
    var claimBatch = 0
    var claimSlot = 0
    var claimRefs: [SampleRef]?
    var endBatch: Int?
    var stopped = false
    var maxAhead = 0
    var loadCalls = 0
    var skippedByEpoch: [Int: [SkippedSample]] = [:]
    fileprivate var slots: [Int: BatchSlot] = [:]
    var ready: [Int: Result<Batch, Error>] = [:]
}

final class LoaderCore: @unchecked Sendable {
    private let cond = NSCondition()
    private var state = LoaderState()
    private let schedule: any BatchSchedule
    private let seed: UInt64
    private let prefetch: Int
    private let policy: BadSamplePolicy
    private let maxAttempts: Int
    private let sizeDivisibility: Int
    private let normalization: PixelNormalization
    private let load: @Sendable (Int) throws -> Sample
    private let augment: @Sendable (Sample, inout RNG) throws -> AugmentedSample

    init(schedule: any BatchSchedule, seed: UInt64, prefetch: Int, policy: BadSamplePolicy, maxAttempts: Int,
         sizeDivisibility: Int, normalization: PixelNormalization,
         load: @escaping @Sendable (Int) throws -> Sample,
         augment: @escaping @Sendable (Sample, inout RNG) throws -> AugmentedSample) {
        self.schedule = schedule; self.seed = seed; self.prefetch = prefetch; self.policy = policy
        self.maxAttempts = maxAttempts; self.sizeDivisibility = sizeDivisibility
        self.normalization = normalization; self.load = load; self.augment = augment
    }

    func withLock<T>(_ body: (inout LoaderState) -> T) -> T {
        cond.lock(); defer { cond.unlock() }
        return body(&state)
    }

    func requestStop() {
        cond.lock()
        state.stopped = true
        cond.broadcast()
        cond.unlock()
    }

    // Consumer side.
    func next() throws -> Batch? {
        cond.lock(); defer { cond.unlock() }
        let k = state.consumed
        while true {
            if state.stopped { return nil }
            if let r = state.ready.removeValue(forKey: k) {
                state.consumed += 1
                cond.broadcast()
                if case .success(let b) = r {
                    for s in b.skipped { state.skippedByEpoch[s.ref.epoch, default: []].append(s) }
                }
                return try r.get()
            }
            if let e = state.endBatch, k >= e { return nil }
            cond.wait()
        }
    }

    // Worker side.
    func workerLoop() {
        cond.lock()
        while !state.stopped {
            guard let unit = claimUnitLocked() else {
                cond.wait()
                continue
            }
            cond.unlock()
            let (k, slot, ref) = unit
            let result = process(ref)
            cond.lock()
            if state.stopped { break }
            guard var batch = state.slots[k] else { continue }
            batch.results[slot] = result
            batch.remaining -= 1
            if batch.remaining > 0 {
                state.slots[k] = batch
                continue
            }
            state.slots[k] = nil
            cond.unlock()
            let assembled = assemble(batch.results.map { $0! })
            cond.lock()
            state.ready[k] = assembled
            cond.broadcast()
        }
        cond.unlock()
    }

    /// Claims the next (batch, slot) in order if the batch is within the prefetch window.
    private func claimUnitLocked() -> (Int, Int, SampleRef)? {
        while true {
            if let e = state.endBatch, state.claimBatch >= e { return nil }
            if state.claimRefs == nil {
                guard state.claimBatch < state.consumed + prefetch else { return nil }
                guard let refs = schedule.batch(state.claimBatch) else {
                    state.endBatch = state.claimBatch
                    cond.broadcast()
                    return nil
                }
                state.maxAhead = max(state.maxAhead, state.claimBatch + 1 - state.consumed)
                if refs.isEmpty {
                    state.ready[state.claimBatch] = assemble([])
                    state.claimBatch += 1
                    cond.broadcast()
                    continue
                }
                state.claimRefs = refs
                state.claimSlot = 0
                state.slots[state.claimBatch] = BatchSlot(results: Array(repeating: nil, count: refs.count),
                                                          remaining: refs.count)
            }
            let refs = state.claimRefs!
            let unit = (state.claimBatch, state.claimSlot, refs[state.claimSlot])
            state.claimSlot += 1
            if state.claimSlot == refs.count {
                state.claimBatch += 1
                state.claimRefs = nil
            }
            return unit
        }
    }

    private func countLoad() { cond.lock(); state.loadCalls += 1; cond.unlock() }

    /// Loads and augments one sample, applying the bad-sample policy.
    private func process(_ ref: SampleRef) -> UnitResult {
        var skipped: [SkippedSample] = []
        var current = ref
        var attempt = 0
        while true {
            do {
                countLoad()
                let sample = try load(current.index)
                var rng = augmentationRNG(seed: seed, epoch: current.epoch, imageId: sample.imageId)
                let augmented = try augment(sample, &rng)
                return .ok(augmented, current, skipped)
            } catch let e as DataError where policy == .skip {
                skipped.append(SkippedSample(ref: current, error: e))
                attempt += 1
                guard attempt <= maxAttempts, let r = schedule.replacement(for: ref, attempt: attempt) else {
                    return .dropped(skipped)
                }
                current = r
            } catch {
                return .failed(error)
            }
        }
    }

    private func assemble(_ results: [UnitResult]) -> Result<Batch, Error> {
        var samples: [AugmentedSample] = [], refs: [SampleRef] = [], skipped: [SkippedSample] = []
        for r in results {
            switch r {
            case .failed(let e): return .failure(e)
            case .dropped(let s): skipped += s
            case .ok(let a, let ref, let s):
                samples.append(a); refs.append(ref); skipped += s
            }
        }
        return .success(Batch.collate(samples, refs: refs, skipped: skipped, sizeDivisibility: sizeDivisibility,
                                      normalization: normalization))
    }
}
