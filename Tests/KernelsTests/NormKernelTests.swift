// Tests of the channel-affine, group-norm and layer-norm kernels against their naive Double twins.
// Reference semantics: detectron2 FrozenBatchNorm2d, torch.nn.functional.group_norm / layer_norm.
import Kernels
import Testing
import _TestSupport

@Suite struct NormKernelTests {
    /// (B, S, C, G): several groups, one group, one channel per group, C = 1, odd sizes.
    static let groupCases: [(Int, Int, Int, Int)] = [(2, 5, 6, 3), (1, 7, 4, 1), (2, 3, 5, 5), (3, 4, 1, 1), (2, 9, 32, 8)]

    @Test(arguments: 0..<groupCases.count)
    func groupNormMatchesReference(_ index: Int) {
        let (b, s, c, g) = Self.groupCases[index]
        let n = b * s * c
        // An offset mean checks that the one-pass Double statistics hold.
        let x = randomFloats(n, seed: 20, low: 2, high: 5), w = randomFloats(c, seed: 21, low: 0.5, high: 1.5)
        let bias = randomFloats(c, seed: 22)
        var y = [Float](repeating: .nan, count: n), ry = y
        var mean = [Double](repeating: .nan, count: b * g), rstd = mean
        groupNormForward(x: x, weight: w, bias: bias, y: &y, mean: &mean, rstd: &rstd, batch: b, spatial: s,
                         channels: c, groups: g, eps: 1e-5)
        groupNormForwardReference(x: x, weight: w, bias: bias, y: &ry, batch: b, spatial: s, channels: c, groups: g, eps: 1e-5)
        let rep = allClose(y, ry)
        #expect(rep.passed, "forward \(Self.groupCases[index]): \(rep)")
        let dy = randomFloats(n, seed: 23)
        var dx = [Float](repeating: .nan, count: n), dw = [Float](repeating: .nan, count: c), db = dw
        var rdx = dx, rdw = dw, rdb = db
        groupNormBackward(x: x, weight: w, dy: dy, mean: mean, rstd: rstd, dx: &dx, dWeight: &dw, dBias: &db,
                          batch: b, spatial: s, channels: c, groups: g)
        groupNormBackwardReference(x: x, weight: w, dy: dy, dx: &rdx, dWeight: &rdw, dBias: &rdb, batch: b,
                                   spatial: s, channels: c, groups: g, eps: 1e-5)
        // dx is a difference of O(1) terms: compare with the fused-vs-composed tolerance.
        for (name, got, want) in [("dx", dx, rdx), ("dW", dw, rdw), ("db", db, rdb)] {
            let r = allClose(got, want, rtol: 1e-4, atol: 1e-5)
            #expect(r.passed, "\(name) \(Self.groupCases[index]): \(r)")
        }
    }

    /// (rows, D): multiples of 4, odd, D = 1.
    static let layerCases: [(Int, Int)] = [(5, 8), (3, 7), (4, 1), (2, 33), (6, 256)]

    @Test(arguments: 0..<layerCases.count)
    func layerNormMatchesReference(_ index: Int) {
        let (rows, d) = Self.layerCases[index]
        let n = rows * d
        let x = randomFloats(n, seed: 30, low: -3, high: 4), w = randomFloats(d, seed: 31, low: 0.5, high: 1.5)
        let bias = randomFloats(d, seed: 32)
        var y = [Float](repeating: .nan, count: n), ry = y
        var mean = [Double](repeating: .nan, count: rows), rstd = mean
        layerNormForward(x: x, weight: w, bias: bias, y: &y, mean: &mean, rstd: &rstd, rows: rows, dim: d, eps: 1e-5)
        layerNormForwardReference(x: x, weight: w, bias: bias, y: &ry, rows: rows, dim: d, eps: 1e-5)
        let rep = allClose(y, ry)
        #expect(rep.passed, "forward \(Self.layerCases[index]): \(rep)")
        let dy = randomFloats(n, seed: 33)
        var dx = [Float](repeating: .nan, count: n), dw = [Float](repeating: .nan, count: d), db = dw
        var rdx = dx, rdw = dw, rdb = db
        layerNormBackward(x: x, weight: w, dy: dy, mean: mean, rstd: rstd, dx: &dx, dWeight: &dw, dBias: &db,
                          rows: rows, dim: d)
        layerNormBackwardReference(x: x, weight: w, dy: dy, dx: &rdx, dWeight: &rdw, dBias: &rdb, rows: rows, dim: d, eps: 1e-5)
        for (name, got, want) in [("dx", dx, rdx), ("dW", dw, rdw), ("db", db, rdb)] {
            let r = allClose(got, want, rtol: 1e-4, atol: 1e-5)
            #expect(r.passed, "\(name) \(Self.layerCases[index]): \(r)")
        }
    }

    @Test func layerNormStatisticsWithOffsetMean() {
        // Mean 11, standard deviation 0.58: the variance must come from deviations, not E[x²] − μ².
        let (rows, d) = (3, 259)
        let x = randomFloats(rows * d, seed: 34, low: 10, high: 12)
        let w = [Float](repeating: 1, count: d), bias = [Float](repeating: 0, count: d)
        var y = [Float](repeating: .nan, count: rows * d), ry = y
        var mean = [Double](repeating: .nan, count: rows), rstd = mean
        layerNormForward(x: x, weight: w, bias: bias, y: &y, mean: &mean, rstd: &rstd, rows: rows, dim: d, eps: 1e-5)
        layerNormForwardReference(x: x, weight: w, bias: bias, y: &ry, rows: rows, dim: d, eps: 1e-5)
        let rep = allClose(y, ry)
        #expect(rep.passed, "\(rep)")
        for r in 0..<rows {
            let row = x[(r * d)..<((r + 1) * d)].map(Double.init)
            let mu = row.reduce(0, +) / Double(d)
            let variance = row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(d)
            // Better than Float resolution of the mean (6.5e-7 at 11) and of rstd.
            #expect(abs(mean[r] - mu) < 1e-7, "mean \(mean[r]) vs \(mu)")
            let r0 = 1 / (variance + 1e-5).squareRoot()
            #expect(abs(rstd[r] - r0) < 1e-6 * r0, "rstd \(rstd[r]) vs \(r0)")
        }
    }

    @Test func channelAffineMatchesReference() {
        for (rows, c) in [(7, 5), (3, 1), (4, 64)] {
            let x = randomFloats(rows * c, seed: 40), s = randomFloats(c, seed: 41), t = randomFloats(c, seed: 42)
            var y = [Float](repeating: .nan, count: rows * c), ry = y
            channelAffineForward(x: x, scale: s, shift: t, y: &y, rows: rows, channels: c)
            channelAffineForwardReference(x: x, scale: s, shift: t, y: &ry, rows: rows, channels: c)
            #expect(allClose(y, ry).passed, "forward \(rows)×\(c)")
            let dy = randomFloats(rows * c, seed: 43)
            var dx = y, ds = [Float](repeating: .nan, count: c), dt = ds
            var rdx = dx, rds = ds, rdt = dt
            channelAffineBackward(x: x, scale: s, dy: dy, dx: &dx, dScale: &ds, dShift: &dt, rows: rows, channels: c)
            channelAffineBackwardReference(x: x, scale: s, dy: dy, dx: &rdx, dScale: &rds, dShift: &rdt, rows: rows, channels: c)
            for (name, got, want) in [("dx", dx, rdx), ("dScale", ds, rds), ("dShift", dt, rdt)] {
                let r = allClose(got, want)
                #expect(r.passed, "\(name) \(rows)×\(c): \(r)")
            }
        }
    }
}
