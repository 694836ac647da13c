// maskpilot-mpi-tests: multi-rank checks of CMPI, MPICommunicator and the gradient bucketer, run by `make test` under `mpirun -np 2`.
// Covers what data-parallel training relies on: collectives, non-blocking all-reduce, bucketed averaging, bitwise-identical ranks.
import CMPI
import Distributed
import Foundation
import Mask2FormerModel
import NN
import Optim
import TensorCore
import Training

var failures: [String] = []
var passes = 0
@MainActor func check(_ ok: Bool, _ what: @autoclosure () -> String) { if ok { passes += 1 } else { failures.append(what()) } }

let comm: MPICommunicator
do { comm = try MPICommunicator.shared() } catch {
    FileHandle.standardError.write("MPICommunicator.shared() failed: \(error)\n".data(using: .utf8)!)
    exit(1)
}
let rank = comm.rank, size = comm.size
check(size >= 2, "world size \(size) ≥ 2 (run under mpirun -np 2)")
check(MPICommunicator.launchedUnderMPI(), "launchedUnderMPI() under mpirun")
check((try? MPICommunicator.shared()) === comm, "shared() returns one instance")

/// Runs one named group of checks; a thrown error counts as a failure.
@MainActor func section(_ name: String, _ body: () throws -> Void) {
    do { try body() } catch { failures.append("\(name): threw \(error)") }
}

/// FNV-1a over the bit patterns of `count` floats.
func fnv1a(_ p: UnsafePointer<Float>, _ count: Int) -> UInt64 { FNV1a.hash(p, count: count) }

/// True when every rank passes the same hash.
func sameOnAllRanks(_ hash: UInt64) throws -> Bool { Set(try comm.allGather(hash)).count == 1 }

// `--abort-demo`: rank 1 aborts while the others wait in a collective; the job must end promptly with
// a non-zero exit and "rank 1: …" on stderr (checked by hand or a script, not by `make test`).
if CommandLine.arguments.contains("--abort-demo") {
    if rank == 1 { comm.abort(code: 3, message: "abort demo: deliberate failure") }
    try? comm.barrier()
    print("rank \(rank): barrier returned after an abort (unexpected)")
    exit(0)
}

// MARK: raw CMPI (what the communicator is built on)

section("raw MPI") {
    let world = mp_mpi_comm_world()
    var send: [Float] = [1, 2, 3].map { $0 * Float(rank + 1) }
    var recv = [Float](repeating: 0, count: 3)
    MPI_Allreduce(&send, &recv, 3, mp_mpi_float(), mp_mpi_sum(), world)
    let total = Float(size * (size + 1) / 2)
    check(recv == [total, 2 * total, 3 * total], "MPI_Allreduce sum: got \(recv)")
    var seed: UInt64 = rank == 0 ? 0xDEAD_BEEF : 0
    MPI_Bcast(&seed, 1, mp_mpi_uint64(), 0, world)
    check(seed == 0xDEAD_BEEF, "MPI_Bcast: got \(seed)")
}

// MARK: communicator collectives

section("broadcast") {
    try comm.barrier()
    check(try comm.broadcast(rank == 0 ? 0xDEAD_BEEF : 7) == 0xDEAD_BEEF, "broadcast UInt64 from 0")
    let last = size - 1
    check(try comm.broadcast(UInt64(rank * 10 + 1), root: last) == UInt64(last * 10 + 1), "broadcast UInt64 from last rank")
    let ints = try comm.broadcast(rank == 0 ? [3, 1, 4, 1, 5, 9, 2, 6] : [], root: 0)
    check(ints == [3, 1, 4, 1, 5, 9, 2, 6], "broadcast [Int]: got \(ints)")
    let t = Tensor((0..<1000).map { Float($0) * Float(rank + 1) }, shape: [10, 100])
    try comm.broadcast(t, root: 0)
    check(t.values == (0..<1000).map { Float($0) }, "broadcast tensor")
    var raw = [UInt8](repeating: UInt8(rank), count: 3)
    try raw.withUnsafeMutableBytes { try comm.broadcast($0, root: last) }
    check(raw == [UInt8](repeating: UInt8(last), count: 3), "broadcast raw bytes from last rank")
}

section("allreduce") {
    var f = (0..<4097).map { Float($0 % 13) * Float(rank + 1) }
    try f.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }
    let factor = Float(size * (size + 1) / 2)
    check(f == (0..<4097).map { Float($0 % 13) * factor }, "allReduceSum Float")
    var d = [Double](repeating: Double(rank) + 0.5, count: 17)
    try d.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }
    let expect = Double(size * (size - 1) / 2) + 0.5 * Double(size)
    check(d.allSatisfy { $0 == expect }, "allReduceSum Double: got \(d[0]) expected \(expect)")
    check(try comm.allReduceSum(Double(rank + 1)) == Double(size * (size + 1) / 2), "allReduceSum(Double) scalar")
    var empty: [Float] = []
    try empty.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }
    check(empty.isEmpty, "allReduceSum of nothing")
}

section("allGather") {
    let u = try comm.allGather(UInt64(100 + rank))
    check(u == (0..<size).map { UInt64(100 + $0) }, "allGather UInt64: got \(u)")
    // Variable lengths, one empty string, non-ASCII text.
    let mine = rank == 0 ? "" : "rank \(rank) — ünïcødé " + String(repeating: "x", count: rank * 1000)
    let all = try comm.allGather(mine)
    let expected = (0..<size).map { r in r == 0 ? "" : "rank \(r) — ünïcødé " + String(repeating: "x", count: r * 1000) }
    check(all == expected, "allGather String: got lengths \(all.map(\.utf8.count))")
    for root in 0..<size {
        let gathered = try comm.gather(mine, root: root)
        if rank == root {
            check(gathered == expected, "gather String to rank \(root): got lengths \(gathered.map { $0.map(\.utf8.count) } ?? [])")
        } else {
            check(gathered == nil, "gather String to rank \(root): rank \(rank) got a result")
        }
    }
}

section("non-blocking allreduce") {
    let n = 1 << 16
    let a = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
    let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
    defer { a.deallocate(); b.deallocate() }
    for i in 0..<n { a[i] = Float(rank + 1); b[i] = Float(i % 7) * Float(rank) }
    let ra = try comm.startAllReduceSum(a)
    let rb = try comm.startAllReduceSum(b)
    var polls = 0
    while !(try ra.test()) { polls += 1 }
    try rb.wait()
    check(try rb.test(), "test() after wait() is true")
    let sumRanks = Float(size * (size - 1) / 2)
    check(a.allSatisfy { $0 == Float(size * (size + 1) / 2) }, "startAllReduceSum polled by test(): got \(a[0])")
    check((0..<n).allSatisfy { b[$0] == Float($0 % 7) * sumRanks }, "startAllReduceSum completed by wait()")
}

section("errors are returned") {
    do {
        _ = try comm.broadcast(UInt64(1), root: size + 3)
        check(false, "broadcast from a rank that does not exist should throw")
    } catch let e as DistributedError {
        check(e.call.hasPrefix("MPI_Bcast") && !e.message.isEmpty, "DistributedError names the call: \(e)")
    }
}

section("calls from another thread are refused") {
    // MPI is initialised MPI_THREAD_FUNNELED: a call from another thread never reaches MPI (where it could match
    // another rank's different collective); it throws, naming the call, and the main thread's calls go on working.
    final class Outcome: @unchecked Sendable { var errors: [String] = [] }
    let outcome = Outcome(), c = comm, done = DispatchSemaphore(value: 0)
    let thread = Thread {
        do { try c.barrier(); outcome.errors.append("barrier: no error") } catch { outcome.errors.append("\(error)") }
        do { _ = try c.allGather(UInt64(1)); outcome.errors.append("allGather: no error") } catch { outcome.errors.append("\(error)") }
        var x: [Float] = [1]
        do { try x.withUnsafeMutableBufferPointer { try c.allReduceSum($0) }; outcome.errors.append("allReduceSum: no error") }
        catch { outcome.errors.append("\(error)") }
        done.signal()
    }
    thread.start()
    done.wait()
    check(outcome.errors.count == 3 && outcome.errors.allSatisfy { $0.contains("thread other than the one that initialised MPI (MPI_THREAD_FUNNELED") },
          "calls from another thread throw: \(outcome.errors)")
    check(zip(outcome.errors, ["MPI_Barrier", "MPI_Allgather(UInt64)", "MPI_Allreduce(1 floats)"]).allSatisfy { $0.hasPrefix($1) },
          "the refusals name the calls: \(outcome.errors)")
    check(try comm.allGather(UInt64(rank)) == (0..<size).map(UInt64.init), "the main thread's calls work after refused ones")
}

// MARK: gradient bucketer

section("bucketer averages") {
    var rng = RNG(seed: 5)   // the same parameter layout on every rank
    let counts = (0..<23).map { i in i == 11 ? 3000 : 1 + Int(rng.nextFloat() * 300) }
    var ranges: [Range<Int>] = []
    var o = 0
    for c in counts { ranges.append(o ..< o + c); o += c }
    let flat = Storage(zeroedCount: o)
    let bucketer = GradientBucketer(parameterRanges: ranges, flat: flat, bucketBytes: 2048, communicator: comm)
    check(bucketer.buckets.count > 4, "several buckets (\(bucketer.buckets.count))")
    for step in 0..<3 {
        for i in 0..<o { flat.base[i] = Float((i + step) % 97) * 0.25 * Float(rank + 1) }
        bucketer.beginStep()
        // Readiness order differs by rank (rank 0 forward, others reverse) and parameter 5 never gets marked.
        let order = rank == 0 ? Array(0..<counts.count) : Array((0..<counts.count).reversed())
        for p in order where p != 5 {
            try bucketer.markReady(p)
            try bucketer.poll()
        }
        try bucketer.finish()
        let factor = Float(size * (size + 1) / 2) / Float(size)
        var bad = 0
        for i in 0..<o where flat.base[i] != Float((i + step) % 97) * 0.25 * factor { bad += 1 }
        check(bad == 0, "bucketer mean, step \(step): \(bad) wrong elements")
        check(try sameOnAllRanks(fnv1a(flat.base, o)), "bucketer result bitwise identical across ranks, step \(step)")
    }
}

// MARK: tiny model: backward hooks + bucketer + AdamW, 10 steps

section("tiny model training") {
    // Parameters initialised differently per rank, then rank 0's broadcast (as the trainer does).
    let model = MLP(inputDim: 16, hiddenDim: 48, outputDim: 4, layerCount: 4, seed: UInt64(1 + rank))
    let flat = FlatParameters(model.namedParameters())
    try comm.broadcast(UnsafeMutableRawBufferPointer(start: flat.values.base, count: flat.count * 4), root: 0)
    check(try sameOnAllRanks(fnv1a(flat.values.base, flat.count)), "initial parameters identical after broadcast")
    let optimizer = AdamW(flat, weightDecay: 0.05)
    let bucketer = GradientBucketer(parameterRanges: (0..<flat.tensors.count).map { flat.range($0) },
                                    flat: flat.grads, bucketBytes: 4096, communicator: comm)
    check(bucketer.buckets.count >= 3, "tiny model has several buckets (\(bucketer.buckets.count))")
    var indexOf: [ObjectIdentifier: Int] = [:]
    for (i, t) in flat.tensors.enumerated() { indexOf[ObjectIdentifier(t)] = i }
    var rng = RNG(seed: 1000 + UInt64(rank))   // rank-dependent data
    var losses: [Double] = []
    var identical = true, early = 0
    for step in 0..<10 {
        let x = Tensor.normal([8, 16], rng: &rng)
        let target = Tensor.normal([8, 4], rng: &rng)
        flat.zeroGrad()
        bucketer.beginStep()
        let loss = withGrad { (model(x) - target).square().mean() }
        losses.append(Double(loss.values[0]))
        var hookError: Error?
        loss.backward(leafReady: { t in
            do { if let i = indexOf[ObjectIdentifier(t)] { try bucketer.markReady(i) } } catch { hookError = error }
        }, afterNode: {
            do { try bucketer.poll() } catch { hookError = error }
        })
        if let hookError { throw hookError }
        try bucketer.finish()
        early += bucketer.lastStep.bucketsStartedEarly
        check(try sameOnAllRanks(fnv1a(flat.grads.base, flat.count)), "averaged gradients identical, step \(step)")
        optimizer.step(lr: 1e-2)
        if try !sameOnAllRanks(fnv1a(flat.values.base, flat.count)) { identical = false }
        check(flat.brokenBindings().isEmpty, "parameter bindings intact, step \(step)")
    }
    check(identical, "parameters bitwise identical across ranks after every step")
    check(early == 10 * bucketer.buckets.count, "every bucket started during backward (\(early) of \(10 * bucketer.buckets.count))")
    // The averaged gradient is the mean of the ranks' local gradients: check the last step by hand.
    let x = Tensor.normal([8, 16], rng: &rng)
    let target = Tensor.normal([8, 4], rng: &rng)
    flat.zeroGrad()
    withGrad { (model(x) - target).square().mean() }.backward()
    var local = Array(flat.grads.buffer)
    try local.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }
    let manual = local.map { $0 / Float(size) }
    flat.zeroGrad()
    bucketer.beginStep()
    withGrad { (model(x) - target).square().mean() }.backward(leafReady: { t in try? bucketer.markReady(indexOf[ObjectIdentifier(t)]!) })
    try bucketer.finish()
    // Two ranks: a + b in any order, so exact; more ranks may sum in another order (per bucket vs whole buffer).
    let got = Array(flat.grads.buffer)
    let close = zip(got, manual).allSatisfy { abs($0 - $1) <= (size == 2 ? 0 : 1e-6 * max(1, abs($1))) }
    check(close, "bucketed mean equals blocking all-reduce / size")
    _ = losses
}

// MARK: data-parallel equivalence: 2 ranks equal one process with the global batch, and stay bitwise identical

/// configs/tiny.yaml's model in code (so the test does not depend on the working directory), with few
/// points and small buckets (several buckets, started during backward).
func tinyTrainingConfig(maskPiloting: Bool) throws -> MaskPilotConfig {
    try MaskPilotConfig.parse(yaml: """
        model:
          backbone: {block: basic, depths: [1, 1, 1, 1], widths: [16, 32, 64, 128], stem_channels: 16}
          pixel_decoder: {conv_dim: 32, mask_dim: 32, encoder_layers: 2, encoder_heads: 4, encoder_points: 4,
                          encoder_feedforward_dim: 64, groups: 32}
          decoder: {hidden_dim: 32, num_queries: 8, heads: 4, feedforward_dim: 64, dec_layers: 4, mask_dim: 32,
                    num_classes: 5, query_positional_embedding: true}
          mask_piloting: {enabled: \(maskPiloting)}
        loss: {num_points: 64}
        solver: {ims_per_batch: 4, base_learning_rate: 0.001, max_iter: 100}
        input: {crop_size: 64}
        distributed: {bucket_mb: 0.25}
        seed: 7
        """)
}

/// Image `id` of a synthetic set: 64×64, exactly `objects` disjoint coloured rectangles (class c = colour c)
/// on grey; (pixels [64·64·3], labels, masks [objects·64·64]). The same on every rank.
func syntheticImage(_ id: Int, objects: Int) -> (pixels: [Float], labels: [Int], masks: [Float]) {
    var rng = RNG(seed: 2024, stream: UInt64(id))
    let s = 64
    let colours: [[Float]] = [[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [-1, 1, 1]]
    var pixels = [Float](repeating: 0, count: s * s * 3), labels: [Int] = [], masks: [Float] = []
    for _ in 0..<objects {
        let c = rng.nextInt(below: 5)
        let h = 12 + rng.nextInt(below: 20), w = 12 + rng.nextInt(below: 20)
        let y0 = rng.nextInt(below: s - h), x0 = rng.nextInt(below: s - w)
        var m = [Float](repeating: 0, count: s * s)
        for y in y0..<(y0 + h) {
            for x in x0..<(x0 + w) {
                m[y * s + x] = 1
                for ch in 0..<3 { pixels[(y * s + x) * 3 + ch] = colours[c][ch] }
            }
        }
        // A later object occludes an earlier one; every object keeps some pixels (≥ 12×12, offset).
        for i in 0..<labels.count { for p in 0..<(s * s) where m[p] == 1 { masks[i * s * s + p] = 0 } }
        labels.append(c); masks += m
    }
    return (pixels, labels, masks)
}

/// The batch of images `ids` (epoch 0): MP noise streams and criterion point keys keyed by image id only,
/// as the trainer keys them, so they do not depend on the rank or batch position.
func syntheticBatch(_ ids: [Int], objects: Int) -> TrainBatch {
    var pixels: [Float] = [], targets: [MaskTargets] = []
    for id in ids {
        let im = syntheticImage(id, objects: objects)
        pixels += im.pixels
        targets.append(MaskTargets(labels: im.labels, masks: Tensor(im.masks, shape: [objects, 64, 64])))
    }
    return TrainBatch(images: Tensor(pixels, shape: [ids.count, 64, 64, 3]), targets: targets,
                      rngs: ids.map { RNG(seed: 7 &+ RandomStreams.maskPiloting, stream: UInt64($0)) },
                      imageKeys: ids.map { KeyedPointSource.imageKey(epoch: 0, imageId: $0) })
}

/// A TrainingStep wired for `communicator` as the trainer wires it (rank 0's initial parameters broadcast,
/// num_masks averaged over ranks, bucketed overlapped all-reduce).
func dataParallelStep(_ config: MaskPilotConfig, _ communicator: any Communicator) throws -> TrainingStep {
    let step = TrainingStep(config: config, communicator: communicator)
    let v = step.parameters.values
    try communicator.broadcast(UnsafeMutableRawBufferPointer(start: v.base, count: v.count * 4), root: 0)
    return step
}

// Equivalence. Rank r trains on images [2r, 2r+2) (per-rank batch 2); rank 0 also trains a one-process step on all
// 2·size images (batch 2·size). Both start from the same parameters. Checked on rank 0:
//  • every step, the averaged, clipped gradients: max_i |g_dp[i] − g_1[i]| / max_i |g_1[i]| ≤ 1e-5;
//  • after 3 steps, the parameters: ‖p_dp − p_1‖₂ / ‖p_1‖₂ ≤ 1e-5.
// Why a norm and not an elementwise relative difference: some parameters have a gradient that is exactly zero
// in exact arithmetic (e.g. the conv bias before a GroupNorm with one channel per group,
// `pixel_decoder.input_proj.*.bias`), so in float32 their gradient is rounding noise (~1e-12, 1e-9 of the
// largest), which differs with the summation order (batch of 4 vs 2 + all-reduce); AdamW divides by √v and
// turns that noise into ±lr-sized steps. Measured: those elements differ by ~5e-6 absolute (elementwise
// max |Δ|/max(|p|,1e-3) ≈ 5e-3) while the whole vector agrees to ~2e-7 and the gradients to ~4e-7 of their
// max. PyTorch DDP vs one process behaves the same way. Both numbers are printed.
//
// Condition: every image has the SAME number of objects (2), so every rank matches the same number of queries.
// The class loss is a class-weighted mean over the rank's B·Q queries (no-object weight 0.1); the average of
// the ranks' weighted means equals the global weighted mean only when the ranks' weight sums are equal. With
// unequal counts the reference's DDP average differs from its one-process weighted mean too (that is the
// reference's semantics, not a bug here). The mask losses are exact in any case: each rank divides its sum
// by num_masks averaged over ranks, and the gradients are averaged.
// The criterion's random points (KeyedPointSource) and the MP noise are keyed by image id, so the same
// image gets the same points and noise whichever rank or batch position it has.
for maskPiloting in [false, true] {
    section("data parallel = one process, MP \(maskPiloting)") {
        let config = try tinyTrainingConfig(maskPiloting: maskPiloting)
        let objects = 2, perRank = 2, steps = 3
        let dp = try dataParallelStep(config, comm)
        let local = syntheticBatch(Array(rank * perRank ..< (rank + 1) * perRank), objects: objects)
        let single = rank == 0 ? try dataParallelStep(config, LocalCommunicator()) : nil
        let global = rank == 0 ? syntheticBatch(Array(0 ..< size * perRank), objects: objects) : nil
        var maxGradDiff = 0.0
        for s in 0..<steps {
            let r = try dp.train(on: local)
            check(r.total.isFinite, "MP \(maskPiloting) step \(s): loss \(r.total)")
            if maskPiloting && s == 0 { check(r.losses["loss_mask_dn"] != nil, "MP losses present") }
            let g = Array(dp.parameters.grads.buffer)
            if let single, let global {
                _ = try single.train(on: global)
                let g1 = Array(single.parameters.grads.buffer)
                let scale = Double(g1.map { abs($0) }.max() ?? 0)
                let diff = zip(g, g1).map { Double(abs($0 - $1)) }.max() ?? 0
                maxGradDiff = max(maxGradDiff, diff / max(scale, 1e-30))
            }
            check(try sameOnAllRanks(fnv1a(dp.parameters.values.base, dp.parameters.count)),
                  "MP \(maskPiloting): parameters identical across ranks after step \(s)")
        }
        if let single {
            let p = Array(dp.parameters.values.buffer), p1 = Array(single.parameters.values.buffer)
            let p0 = TrainingStep(config: config).parameters.values.buffer   // the initial parameters
            var maxRel = 0.0, maxUpdate = 0.0, maxAbs = 0.0
            for i in p.indices {
                let d = Double(abs(p[i] - p1[i]))
                maxAbs = max(maxAbs, d)
                maxRel = max(maxRel, d / max(Double(abs(p1[i])), 1e-3))
                maxUpdate = max(maxUpdate, Double(abs(p1[i] - p0[i])))
            }
            var num = 0.0, den = 0.0
            for i in p.indices { num += Double(p[i] - p1[i]) * Double(p[i] - p1[i]); den += Double(p1[i]) * Double(p1[i]) }
            let l2 = (num / den).squareRoot()
            print(String(format: "data parallel (%d ranks × %d) vs one process (× %d), MP %@, %d steps: parameters ‖Δ‖/‖p‖ %.3g (elementwise max |Δ|/max(|p|,1e-3) %.3g, max |Δ| %.3g, largest update %.3g); averaged gradients max|Δg|/max|g| %.3g",
                         size, perRank, size * perRank, maskPiloting ? "on" : "off", steps, l2, maxRel, maxAbs, maxUpdate, maxGradDiff))
            check(maxUpdate > 1e-4, "MP \(maskPiloting): parameters moved (largest update \(maxUpdate))")
            check(l2 <= 1e-5, "MP \(maskPiloting): data parallel vs one process: ‖Δp‖/‖p‖ = \(l2) > 1e-5")
            check(maxGradDiff <= 1e-5, "MP \(maskPiloting): averaged gradients differ by \(maxGradDiff) of their max")
        }
        try comm.barrier()
    }
}

// The gradient split (train.gradient_split_period) on several ranks: its extra forward and backward all-reduce like
// the step's, so the steps stay bitwise those of a run without it, and every rank measures the same split.
section("gradient split across ranks") {
    var config = try tinyTrainingConfig(maskPiloting: true)
    let batch = syntheticBatch([2 * rank, 2 * rank + 1], objects: 2)
    let plain = try dataParallelStep(config, comm)
    config.train.gradientSplitPeriod = 1
    let split = try dataParallelStep(config, comm)
    for s in 0..<2 {
        let a = try plain.train(on: batch), b = try split.train(on: batch)
        check(a.gradNorm == b.gradNorm && a.total == b.total, "step \(s): the split leaves the step unchanged")
        guard let g = b.gradientSplit else { check(false, "step \(s): no split measured"); continue }
        let norms = try comm.allGather(g.matchingNorm.bitPattern) + comm.allGather(g.pilotingNorm.bitPattern)
        check(Set(norms[0..<size]).count == 1 && Set(norms[size...]).count == 1, "step \(s): every rank measures the same split")
        check(g.matchingNorm > 0 && g.pilotingNorm > 0, "step \(s): both parts non-zero: \(g)")
    }
    check(Array(plain.parameters.values.buffer) == Array(split.parameters.values.buffer), "parameters bitwise unchanged by the split")
    try comm.barrier()
}

// Logged losses are the mean over ranks (detectron2 reduces its metrics across workers): with every rank holding
// the same number of masks, the rank mean of the per-rank totals and terms equals the one-process step on the
// global batch; data wait and peak memory are the maxima over ranks; every rank gets the same numbers.
section("logged losses are averaged over ranks") {
    let config = try tinyTrainingConfig(maskPiloting: true)
    let dp = try dataParallelStep(config, comm)
    let report = try dp.train(on: syntheticBatch([2 * rank, 2 * rank + 1], objects: 2))
    let logged = try LoggedStep.reduce(report, iteration: 1, epoch: 0, dataWait: Double(rank + 1),
                                       peakMemoryBytes: (rank + 1) << 20, communicator: comm)
    check(logged.dataWait == Double(size) && logged.peakMemoryBytes == size << 20,
          "data wait / memory are the maxima over ranks: \(logged.dataWait), \(logged.peakMemoryBytes)")
    let totals = try comm.allGather(UInt64(logged.report.total.bitPattern))
    check(Set(totals).count == 1, "every rank logs the same total: \(totals)")
    let own = try comm.allGather(UInt64(report.total.bitPattern)).map { Float(bitPattern: UInt32($0)) }
    check(Set(own).count > 1, "the ranks' own totals differ (else this test shows nothing): \(own)")
    check(abs(Double(logged.report.total) - own.map(Double.init).reduce(0, +) / Double(size)) <= 1e-5 * Double(abs(logged.report.total)),
          "logged total \(logged.report.total) is the mean of \(own)")
    if rank == 0 {
        let single = try dataParallelStep(config, LocalCommunicator())
        let one = try single.train(on: syntheticBatch(Array(0 ..< 2 * size), objects: 2))
        let rel = abs(Double(logged.report.total - one.total)) / Double(abs(one.total))
        print(String(format: "logged loss: rank mean %.5f, one process on the global batch %.5f, rank 0's own %.5f", logged.report.total, one.total, report.total))
        check(rel <= 1e-4, "rank-mean total \(logged.report.total) vs one process \(one.total) (rel \(rel))")
        for (key, value) in one.losses {
            let mean = logged.report.losses[key] ?? .nan
            check(abs(mean - value) <= 1e-4 * max(1, abs(value)), "loss term \(key): rank mean \(mean) vs one process \(value)")
        }
    }
    try comm.barrier()
}

// Lockstep. 10 data-parallel steps (MP on, each rank its own images): the parameter hash after every step is the
// same on every rank.
section("parameters bitwise identical across ranks for 10 steps") {
    let config = try tinyTrainingConfig(maskPiloting: true)
    let dp = try dataParallelStep(config, comm)
    let batch = syntheticBatch([2 * rank, 2 * rank + 1], objects: 2)
    var identical = 0
    for s in 0..<10 {
        let r = try dp.train(on: batch)
        check(r.total.isFinite, "step \(s): loss \(r.total)")
        let hashes = try comm.allGather(fnv1a(dp.parameters.values.base, dp.parameters.count))
        if Set(hashes).count == 1 { identical += 1 } else { failures.append("parameter hashes differ after step \(s): \(hashes)") }
    }
    check(identical == 10, "parameters bitwise identical after every one of 10 steps (\(identical))")
}

// MARK: report

section("report") {
    let failed = try comm.allGather(UInt64(failures.count))
    for f in failures { print("rank \(rank): FAILED \(f)") }
    fflush(nil)
    try comm.barrier()
    let anyFailed = failed.reduce(0, +)
    if rank == 0 { print("mpi: \(passes) passed, \(anyFailed) failed") }
    fflush(nil)
    try comm.finalize()
    exit(anyFailed == 0 ? 0 : 1)
}
exit(1)
