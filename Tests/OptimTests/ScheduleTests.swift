// Tests of the learning-rate schedules against closed-form values, warmup included.
// Reference semantics: detectron2 WarmupMultiStepLR / _get_warmup_factor_at_iter and DeepLab WarmupPolyLR.
import Foundation
import Testing
import Optim

private func close(_ a: Double, _ b: Double) -> Bool { Swift.abs(a - b) <= 1e-15 + 1e-12 * Swift.abs(b) }

@Suite struct ScheduleTests {
    @Test func warmupFactors() {
        #expect(warmupFactor(at: 0, method: .linear, warmupIters: 10, factor: 0.001) == 0.001)
        #expect(close(warmupFactor(at: 4, method: .linear, warmupIters: 10, factor: 0.001), 0.001 * 0.6 + 0.4))
        #expect(warmupFactor(at: 10, method: .linear, warmupIters: 10, factor: 0.001) == 1)
        #expect(warmupFactor(at: 3, method: .constant, warmupIters: 10, factor: 0.25) == 0.25)
        #expect(warmupFactor(at: 0, method: .linear, warmupIters: 0, factor: 0.001) == 1)
        // Mask2Former COCO: 10 warmup iterations with factor 1.0 are no warmup at all.
        #expect(warmupFactor(at: 3, method: .linear, warmupIters: 10, factor: 1) == 1)
    }

    @Test func poly() {
        // Mask2Former ADE20K: no warmup, power 0.9.
        let s = WarmupPolyLR(baseLR: 1e-4, maxIters: 160_000, power: 0.9, warmupIters: 0)
        #expect(s.learningRate(at: 0) == 1e-4)
        #expect(close(s.learningRate(at: 80_000), 1e-4 * Foundation.pow(0.5, 0.9)))
        #expect(close(s.learningRate(at: 159_999), 1e-4 * Foundation.pow(1 - 159_999.0 / 160_000, 0.9)))
        #expect(s.learningRate(at: 160_000) == 0)

        let w = WarmupPolyLR(baseLR: 0.01, maxIters: 100, power: 0.9, warmupIters: 10, warmupFactor: 0.1)
        #expect(close(w.learningRate(at: 0), 0.01 * 0.1))
        #expect(close(w.learningRate(at: 5), 0.01 * (0.1 * 0.5 + 0.5) * Foundation.pow(0.95, 0.9)))
        #expect(close(w.learningRate(at: 10), 0.01 * Foundation.pow(0.9, 0.9)))
        #expect(close(w.learningRate(at: 60), 0.01 * Foundation.pow(0.4, 0.9)))

        let ending = WarmupPolyLR(baseLR: 1, maxIters: 100, power: 1, warmupIters: 0, constantEnding: 0.2)
        #expect(close(ending.learningRate(at: 50), 0.5))
        #expect(close(ending.learningRate(at: 90), 0.2))
    }

    @Test func multiStep() {
        let s = WarmupMultiStepLR(baseLR: 0.02, milestones: [30, 60], gamma: 0.1, warmupIters: 10, warmupFactor: 0.001)
        #expect(close(s.learningRate(at: 0), 0.02 * 0.001))
        #expect(close(s.learningRate(at: 5), 0.02 * (0.001 * 0.5 + 0.5)))
        #expect(close(s.learningRate(at: 9), 0.02 * (0.001 * 0.1 + 0.9)))
        #expect(s.learningRate(at: 10) == 0.02)
        #expect(s.learningRate(at: 29) == 0.02)
        #expect(close(s.learningRate(at: 30), 0.002))
        #expect(close(s.learningRate(at: 59), 0.002))
        #expect(close(s.learningRate(at: 60), 0.0002))
        #expect(close(s.learningRate(at: 1000), 0.0002))

        // Mask2Former COCO 50 ep.
        let coco = WarmupMultiStepLR(baseLR: 1e-4, milestones: [327_778, 355_092], warmupIters: 10, warmupFactor: 1)
        #expect(coco.learningRate(at: 0) == 1e-4)
        #expect(coco.learningRate(at: 327_777) == 1e-4)
        #expect(close(coco.learningRate(at: 327_778), 1e-5))
        #expect(close(coco.learningRate(at: 368_749), 1e-6))

        let constantWarmup = WarmupMultiStepLR(baseLR: 1, milestones: [], warmupIters: 4, warmupFactor: 0.5, warmupMethod: .constant)
        #expect(constantWarmup.learningRate(at: 3) == 0.5 && constantWarmup.learningRate(at: 4) == 1)
        #expect(ConstantLR(3e-4).learningRate(at: 12345) == 3e-4)
    }
}
