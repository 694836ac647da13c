// `maskpilot bench step`: time one training step of a configured model on synthetic data, by phase.
// Measures the numbers docs/perf.md records against the floor (step GEMM FLOPs ÷ sgemm rate).
import ArgumentParser
import Dispatch
import Distributed
import Foundation
import Kernels
import Mask2FormerModel
import TensorCore
import Training

struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step", abstract: "Forward, criterion, backward and optimizer time per training step.")

    @OptionGroup var configOptions: ConfigOptions

    @Option(parsing: .unconditional, help: "Timed steps (after one warm-up step).")
    var steps: Int = 3

    @Option(parsing: .unconditional, help: "BLAS and oneDNN threads.")
    var threads: Int = 1

    @OptionGroup var precisionOption: PrecisionOption

    @Flag(help: "Run fp32 GEMMs on OpenBLAS and convolutions as im2col + GEMM instead of on oneDNN (for comparison).")
    var openblas = false

    @Flag(help: "Swin: run the window attention composed from primitive ops instead of fused (for comparison).")
    var composedWindowAttention = false

    @Flag(help: "Time only the inference forward (no gradients), --steps times after a warm-up, and skip training.")
    var inferenceOnly = false

    @Option(parsing: .unconditional, help: "After the steps, time the N GEMM shapes of a step with the most work in OpenBLAS and oneDNN (fp32, bf16).")
    var gemmShapes: Int = 0

    func validate() throws {
        try requireOption("--steps", steps, atLeast: 1)
        try requireOption("--threads", threads, atLeast: 1, atMost: Limit.threads)
        try requireOption("--gemm-shapes", gemmShapes, atLeast: 0)
        if inferenceOnly && gemmShapes > 0 { throw ValidationError("--gemm-shapes times a training step's shapes: leave out --inference-only") }
    }

    func run() throws {
        var cfg = try configOptions.load()
        ComputeThreads.set(threads)
        if openblas { KernelLibrary.current = .openBLAS }
        SwinWindowAttention.useComposed = composedWindowAttention
        try precisionOption.apply(to: &cfg)
        // Under mpirun: data parallelism as `maskpilot train` runs it — solver.ims_per_batch is the global
        // batch, each rank steps its share (its own synthetic images) with the overlapped bucketed all-reduce.
        let comm = try makeCommunicator()
        let ranks = comm.size
        // What depends on the ranks and the machine, as training checks it: the per-rank batch, the memory bounds.
        let problems = cfg.violations(worldSize: ranks)
        guard problems.isEmpty else {
            throw RuntimeError("the configuration cannot be benchmarked on \(ranks) rank(s):\n  " + problems.map(\.description).joined(separator: "\n  "))
        }
        guard cfg.input.cropSize.isSquare else {
            throw ValidationError("bench step synthesizes square images: set input.crop_size to one number (got \(cfg.input.cropSize.description))")
        }
        let b = cfg.solver.imsPerBatch / ranks, s = cfg.input.cropSize.height
        func say(_ line: String) { if comm.isCoordinator { print(line) } }
        if ranks > 1 {
            say("data parallel: \(ranks) ranks, global batch \(cfg.solver.imsPerBatch), per-rank batch \(b), "
                + "buckets of \(cfg.distributed.bucketMb) MB")
        }
        if comm.isCoordinator { print("maskpilot bench step — \(configOptions.config): batch \(b), \(s)×\(s), \(cfg.model.decoder.numQueries) queries, "
              + "\(cfg.model.pixelDecoder.encoderLayers) encoder layers, \(cfg.model.decoder.decLayers) predictions, "
              + "\(cfg.loss.numPoints) points, \(cfg.model.decoder.numClasses) classes, MP \(cfg.model.maskPiloting.enabled ? "on" : "off"), "
              + "\(threads) thread(s), \(cfg.solver.precision.rawValue)\(openblas ? ", OpenBLAS + im2col" : "")\(composedWindowAttention ? ", composed window attention" : "")") }
        let trainer = TrainingStep(config: cfg, communicator: comm)
        let bucketer = (trainer.synchronizer as? BucketedAllReduce)?.bucketer
        if ranks > 1 {
            let values = trainer.parameters.values
            try comm.broadcast(UnsafeMutableRawBufferPointer(start: values.base, count: values.count * 4), root: 0)
        }
        let batch = syntheticBatch(images: b, size: s, classes: cfg.model.decoder.numClasses, seed: cfg.seed &+ UInt64(comm.rank))
        // Inference forward alone, then the training step.
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        let p = cfg.solver.precision
        func inferenceForward() { _ = withGEMMPrecision(p) { withNoGrad { trainer.model(batch.images) } } }
        inferenceForward()
        GEMMCounter.reset()
        var t0 = now()
        inferenceForward()
        let inference = now() - t0, inferenceFlops = GEMMCounter.value
        if inferenceOnly {
            var times = [inference]
            for _ in 1..<steps {
                t0 = now()
                inferenceForward()
                times.append(now() - t0)
            }
            guard comm.isCoordinator else { return }
            let median = median(times), rate = gemmRate(p)
            print(String(repeating: "-", count: 60))
            print("inference forwards".padding(toLength: 28, withPad: " ", startingAt: 0) + times.map { String(format: "%.3f", $0) }.joined(separator: " ") + " s")
            print(String(format: "inference (median)          %9.3f s; %.1f GFLOP of GEMM/conv work; %@ rate (n=512) %.1f GFLOP/s → %.2f× the floor",
                         median, Double(inferenceFlops) / 1e9, p.rawValue, rate, median / (Double(inferenceFlops) / 1e9 / rate)))
            return
        }
        try trainer.train(on: batch)  // warm-up
        var reports: [StepReport] = []
        var timings: [GradientBucketer.StepTiming] = []
        var walls: [Double] = []
        var stepFlops = 0
        for _ in 0..<steps {
            try comm.barrier()
            GEMMCounter.reset()
            t0 = now()
            reports.append(try trainer.train(on: batch))
            stepFlops = GEMMCounter.value
            if let bucketer { timings.append(bucketer.lastStep) }
            walls.append(now() - t0)
        }
        guard comm.isCoordinator else { return }
        let fwd = median(reports.map(\.forward)), crit = median(reports.map(\.criterion))
        let bwd = median(reports.map(\.backward)), opt = median(reports.map(\.optimizer))
        let total = median(reports.map { $0.forward + $0.criterion + $0.backward + $0.optimizer })
        let rate = gemmRate(.fp32), bf16Rate = p == .bf16 ? gemmRate(.bf16) : nil
        func row(_ name: String, _ v: Double) { print(name.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%9.3f s", v)) }
        print(String(repeating: "-", count: 60))
        row("forward", fwd); row("criterion", crit); row("backward", bwd); row("optimizer", opt); row("step (median)", total)
        print("steps".padding(toLength: 28, withPad: " ", startingAt: 0)
              + reports.map { String(format: "%.3f", $0.forward + $0.criterion + $0.backward + $0.optimizer) }.joined(separator: " ")
              + " s")
        if ranks > 1 {
            let ar = median(timings.map(\.allReduceSeconds)), wait = median(timings.map(\.waitSeconds))
            let arSum = timings.map(\.allReduceSeconds).reduce(0, +), waitSum = timings.map(\.waitSeconds).reduce(0, +)
            let wall = median(walls)
            row("all-reduce (span)", ar); row("all-reduce wait", wait)
            row("step wall (median)", wall)
            print(String(format: "hidden behind backward      %9.1f %% (1 − wait ÷ all-reduce, summed over %d steps; per-step median %.1f %%)",
                         100 * (arSum > 0 ? max(0, 1 - waitSum / arSum) : 1), timings.count,
                         100 * median(timings.map(\.hiddenFraction))))
            print(String(format: "buckets %d; started before backward ended %d, complete by then %d (last step)",
                         bucketer!.buckets.count, timings.last!.bucketsStartedEarly, timings.last!.bucketsCompletedEarly))
            print(String(format: "images/s (global batch %d)  %9.2f  (= %d ÷ step wall); scaling efficiency = this ÷ (%d × 1-rank images/s)",
                         b * ranks, Double(b * ranks) / wall, b * ranks, ranks))
        } else {
            print(String(format: "images/s                    %9.2f", Double(b) / total))
        }
        row("inference forward", inference)
        print(String(format: "step GEMM/conv work         %9.1f GFLOP (inference %.1f)", Double(stepFlops) / 1e9, Double(inferenceFlops) / 1e9))
        print(String(format: "sgemm rate (n=512)          %9.1f GFLOP/s", rate))
        print(String(format: "floor (work ÷ sgemm)        %9.3f s → step is %.2f× the floor; inference %.2f×",
                     Double(stepFlops) / 1e9 / rate, total / (Double(stepFlops) / 1e9 / rate),
                     inference / (Double(inferenceFlops) / 1e9 / rate)))
        if let bf16Rate {
            print(String(format: "bf16 rate (n=512)           %9.1f GFLOP/s (%@)", bf16Rate,
                         BF16Support.native ? dnnlDescription() : "emulated: no oneDNN bf16 kernels for this CPU"))
            print(String(format: "bf16 floor (work ÷ bf16)    %9.3f s → step is %.2f× the bf16 floor; inference %.2f×",
                         Double(stepFlops) / 1e9 / bf16Rate, total / (Double(stepFlops) / 1e9 / bf16Rate),
                         inference / (Double(inferenceFlops) / 1e9 / bf16Rate)))
        }
        print(String(format: "final loss %.4f (%d terms)", reports.last!.total, reports.last!.losses.count))
        if gemmShapes > 0 {
            let (_, shapes, convolutions) = try withGEMMShapeLog { try trainer.train(on: batch) }
            try printGEMMShapes(shapes, top: gemmShapes)
            printConvolutionStability(convolutions)
        }
    }

    /// The `top` shapes of `shapes` by work (calls × FLOPs), each timed once per backend (best of ≥ 0.2 s), and the
    /// GEMM time of the step they would take with each backend and with the faster fp32 backend per shape.
    func printGEMMShapes(_ shapes: [GEMMShape: Int], top: Int) throws {
        let total = shapes.reduce(0) { $0 + $1.key.flops * $1.value }
        let chosen = shapes.sorted { $0.key.flops * $0.value > $1.key.flops * $1.value }.prefix(top)
        let covered = chosen.reduce(0) { $0 + $1.key.flops * $1.value }
        print(String(repeating: "-", count: 100))
        print("GEMM shapes of one step: \(shapes.count) shapes, \(shapes.values.reduce(0, +)) calls, "
              + String(format: "%.1f GFLOP; the top %d hold %.1f %%", Double(total) / 1e9, chosen.count, 100 * Double(covered) / Double(total)))
        print("shape".padding(toLength: 30, withPad: " ", startingAt: 0) + "calls   share   OpenBLAS   oneDNN fp32   oneDNN bf16   (GFLOP/s)")
        var rng = RNG(seed: 9)
        var seconds = (blas: 0.0, dnnl: 0.0, best: 0.0, bf16: 0.0)
        for (shape, calls) in chosen {
            let (m, n, k) = (shape.m, shape.n, shape.k)
            let lda = shape.lda, ldb = shape.ldb, ldc = shape.ldc
            let a = Tensor.uniform([(shape.transA ? k : m) * lda], rng: &rng), b = Tensor.uniform([(shape.transB ? n : k) * ldb], rng: &rng)
            let c = Tensor.uniform([m * ldc], rng: &rng), c0 = c.values
            var failure: Error?
            func time(_ body: () throws -> Void) -> Double {
                var best = Double.infinity, spent = 0.0, runs = 0
                while spent < 0.2 || runs < 3 {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    do { try body() } catch { failure = error }
                    let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    best = min(best, dt); spent += dt; runs += 1
                }
                return best
            }
            let blas = time { withKernelLibrary(.openBLAS) {
                sgemm(transA: shape.transA, transB: shape.transB, m: m, n: n, k: k, alpha: shape.alpha, a: a.data, lda: lda, b: b.data,
                      ldb: ldb, beta: shape.beta, c: c.data, ldc: ldc)
            } }
            func dnnl(_ input: DNNLType) -> Double {
                time { try dnnlGemm(input: input, transA: shape.transA, transB: shape.transB, m: m, n: n, k: k, alpha: shape.alpha,
                                    a: a.data, lda: lda, b: b.data, ldb: ldb, beta: shape.beta, c: c.data, ldc: ldc) }
            }
            // Without oneDNN bf16 kernels for this CPU (BF16Support) the bf16 column is nan.
            let f32 = dnnl(.f32), b16 = BF16Support.native ? dnnl(.bf16) : .nan
            if let failure { throw RuntimeError("bench step --gemm-shapes: \(failure)") }
            // Bitwise the same at 1 and 2 oneDNN threads?
            func product(_ t: Int, _ input: DNNLType) -> [UInt32] {
                let saved = DNNLThreads.current
                DNNLThreads.set(t)
                dnnlDropPrimitives()
                defer { DNNLThreads.set(saved); dnnlDropPrimitives() }
                c.storage.buffer.baseAddress!.update(from: c0, count: c0.count)
                try? dnnlGemm(input: input, transA: shape.transA, transB: shape.transB, m: m, n: n, k: k, alpha: shape.alpha,
                              a: a.data, lda: lda, b: b.data, ldb: ldb, beta: shape.beta, c: c.data, ldc: ldc)
                return c.values.map(\.bitPattern)
            }
            let stable = (BF16Support.native ? [DNNLType.f32, .bf16] : [.f32]).allSatisfy { t in let one = product(1, t); return product(2, t) == one && product(4, t) == one }
            let times = Double(calls)
            seconds.blas += times * blas; seconds.dnnl += times * f32; seconds.best += times * min(blas, f32)
            seconds.bf16 += times * b16
            let rate = { (t: Double) in String(format: "%.1f", Double(shape.flops) / t / 1e9) }
            print(shape.description.padding(toLength: 30, withPad: " ", startingAt: 0)
                  + String(format: "%5d  %5.1f %%  ", calls, 100 * Double(shape.flops * calls) / Double(total))
                  + rate(blas).leftPadded(9) + rate(f32).leftPadded(14) + rate(b16).leftPadded(14)
                  + (stable ? "   1 = 2 = 4 threads" : "   DIFFERS at 2 or 4 threads"))
        }
        print(String(format: "these shapes' time per step: OpenBLAS %.3f s, oneDNN fp32 %.3f s, the faster of the two per shape %.3f s, "
                     + "oneDNN bf16 %.3f s", seconds.blas, seconds.dnnl, seconds.best, seconds.bf16))
    }

    /// Single-thread-or-configured GEMM GFLOP/s at n = 512 in `precision` (best of 5).
    func gemmRate(_ precision: GEMMPrecision) -> Double {
        let n = 512
        var rng = RNG(seed: 5)
        let a = Tensor.uniform([n, n], rng: &rng), bm = Tensor.uniform([n, n], rng: &rng), c = Tensor(uninitialized: [n, n])
        var best = Double.infinity
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            withGEMMPrecision(precision) {
                sgemm(transA: false, transB: false, m: n, n: n, k: n, a: a.data, lda: n, b: bm.data, ldb: n, c: c.data, ldc: n)
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return 2 * Double(n * n * n) / best / 1e9
    }
}

/// Whether each convolution of a step gives bitwise the same forward, backward data and backward weights at 1 and
/// 2 oneDNN threads, in fp32 and bf16.
func printConvolutionStability(_ convolutions: [ConvGeometry: Int]) {
    print("convolutions of one step (1 = 2 = 4 oneDNN threads, bitwise; fp32 and bf16; forward / backward data / backward weights):")
    var rng = RNG(seed: 10)
    for g in convolutions.keys.sorted(by: { $0.description < $1.description }) {
        let x = Tensor.uniform([g.inputCount], low: -1, high: 1, rng: &rng)
        let w = Tensor.uniform([g.weightCount], low: -0.05, high: 0.05, rng: &rng)
        let bias = Tensor.uniform([g.outChannels], low: -1, high: 1, rng: &rng)
        let dy = Tensor.uniform([g.outputCount], low: -1, high: 1, rng: &rng)
        let wsCount = g.workspaceCount(), ws = Tensor(uninitialized: [max(1, wsCount)])
        func passes(_ threads: Int, _ precision: GEMMPrecision) -> [[UInt32]] {
            let saved = DNNLThreads.current
            DNNLThreads.set(threads)
            dnnlDropPrimitives()
            defer { DNNLThreads.set(saved); dnnlDropPrimitives() }
            return withGEMMPrecision(precision) {
                let y = Tensor(uninitialized: [g.outputCount]), dx = Tensor(uninitialized: [g.inputCount])
                let dw = Tensor(uninitialized: [g.weightCount])
                conv2dForward(x: x.data, weight: w.data, bias: bias.data, y: y.data, geometry: g, workspace: ws.data,
                              workspaceCount: wsCount)
                conv2dBackward(x: x.data, weight: w.data, dy: dy.data, dx: dx.data, dWeight: dw.data, dBias: nil, geometry: g,
                               workspace: ws.data, workspaceCount: wsCount)
                return [y, dx, dw].map { $0.values.map(\.bitPattern) }
            }
        }
        let cells = GEMMPrecision.allCases.map { p in
            let one = passes(1, p), two = passes(2, p), four = passes(4, p)
            return (0..<3).map { one[$0] == two[$0] && one[$0] == four[$0] ? "=" : "DIFFERS" }.joined(separator: "/")
        }
        print("  \(g): " + cells.joined(separator: "  "))
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}

/// Random images with 3 rectangles per image (random classes) as targets, for benchmarks.
func syntheticBatch(images: Int, size s: Int, classes: Int, seed: UInt64) -> TrainBatch {
    var rng = RNG(seed: seed, stream: 42)
    let pixels = Tensor.uniform([images, s, s, 3], low: -2, high: 2, rng: &rng)
    var targets: [MaskTargets] = []
    for _ in 0..<images {
        var labels: [Int] = []
        let masks = Tensor.zeros([3, s, s])
        for j in 0..<3 {
            labels.append(rng.nextInt(below: classes))
            let h = s / 8 + rng.nextInt(below: s / 2), w = s / 8 + rng.nextInt(below: s / 2)
            let y0 = rng.nextInt(below: s - h), x0 = rng.nextInt(below: s - w)
            for y in y0..<(y0 + h) { for x in x0..<(x0 + w) { masks.data[(j * s + y) * s + x] = 1 } }
        }
        targets.append(MaskTargets(labels: labels, masks: masks))
    }
    return TrainBatch(images: pixels, targets: targets, rngs: (0..<images).map { RNG(seed: seed, stream: UInt64(1000 + $0)) })
}
