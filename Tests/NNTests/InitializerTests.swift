// Tests of the initializers: fans in our layouts, bounds respected, sample mean/variance close to theory.
// Reference semantics: torch.nn.init (xavier_uniform_, kaiming_uniform_/normal_, normal_) and nn.Linear's reset_parameters.
import Testing
import TensorCore
import NN

/// Sample statistics of a tensor, in Double.
private struct Stats {
    var mean = 0.0, variance = 0.0, minimum = Double.infinity, maximum = -Double.infinity
    init(_ t: Tensor) {
        let n = Double(t.count)
        var s = 0.0, s2 = 0.0
        for i in 0..<t.count {
            let x = Double(t.data[i])
            s += x; s2 += x * x
            minimum = Swift.min(minimum, x); maximum = Swift.max(maximum, x)
        }
        mean = s / n
        variance = s2 / n - mean * mean
    }
}

/// Checks a symmetric uniform sample: inside [−b, b), reaching close to both ends, mean within
/// 5 standard errors of 0, variance within 1% of b²/3 (its relative standard error is ≈ 0.9/√n,
/// 0.13% at the sizes used).
private func expectUniform(_ t: Tensor, bound b: Double, sourceLocation: SourceLocation = #_sourceLocation) {
    let s = Stats(t)
    let n = Double(t.count)
    #expect(s.minimum >= -b && s.maximum < b, "range [\(s.minimum), \(s.maximum)] vs ±\(b)", sourceLocation: sourceLocation)
    #expect(s.minimum < -0.999 * b && s.maximum > 0.999 * b, "range [\(s.minimum), \(s.maximum)] vs ±\(b)", sourceLocation: sourceLocation)
    #expect(Swift.abs(s.mean) < 5 * b / (3 * n).squareRoot(), "mean \(s.mean)", sourceLocation: sourceLocation)
    #expect(Swift.abs(s.variance / (b * b / 3) - 1) < 0.01, "variance \(s.variance) vs \(b * b / 3)", sourceLocation: sourceLocation)
}

/// Checks a normal sample: mean within 5 standard errors, variance within 1% (relative standard
/// error √(2/n) ≈ 0.2%).
private func expectNormal(_ t: Tensor, mean: Double, std: Double, sourceLocation: SourceLocation = #_sourceLocation) {
    let s = Stats(t)
    let n = Double(t.count)
    #expect(Swift.abs(s.mean - mean) < 5 * std / n.squareRoot(), "mean \(s.mean) vs \(mean)", sourceLocation: sourceLocation)
    #expect(Swift.abs(s.variance / (std * std) - 1) < 0.01, "variance \(s.variance) vs \(std * std)", sourceLocation: sourceLocation)
}

@Suite struct InitializerTests {
    @Test func fans() {
        #expect(Init.fans([7, 5]) == (fanIn: 5, fanOut: 7))
        // Conv weight [Cout, kh, kw, Cin]: fan_in = Cin·kh·kw, fan_out = Cout·kh·kw.
        #expect(Init.fans([64, 3, 3, 32]) == (fanIn: 288, fanOut: 576))
        #expect(Init.fans([256, 1, 1, 512]) == (fanIn: 512, fanOut: 256))
    }

    @Test func xavierUniform() {
        var rng = RNG(seed: 11)
        let t = Tensor.zeros([512, 1024])
        Init.xavierUniform(t, gain: 2, rng: &rng)
        expectUniform(t, bound: 2 * (6.0 / 1536).squareRoot())
        let c = Tensor.zeros([64, 3, 3, 96])
        Init.xavierUniform(c, rng: &rng)
        expectUniform(c, bound: (6.0 / Double(96 * 9 + 64 * 9)).squareRoot())
    }

    @Test func kaimingUniform() {
        var rng = RNG(seed: 12)
        // c2_xavier_fill: a = 1 → bound √(3 / fan_in).
        let conv = Tensor.zeros([256, 3, 3, 128])
        Init.c2XavierFill(weight: conv, bias: nil, rng: &rng)
        expectUniform(conv, bound: (3.0 / Double(128 * 9)).squareRoot())
        // a = 0, fan_out: bound √2·√(3 / fan_out).
        let w = Tensor.zeros([300, 2000])
        Init.kaimingUniform(w, a: 0, mode: .fanOut, rng: &rng)
        expectUniform(w, bound: (6.0 / 300).squareRoot())
    }

    @Test func pytorchDefaultAndLinear() {
        var rng = RNG(seed: 13)
        let w = Tensor.zeros([1000, 400]), b = Tensor.zeros([300_000])
        Init.pytorchDefault(weight: w, bias: b, rng: &rng)
        expectUniform(w, bound: 1 / Double(400).squareRoot())
        expectUniform(b, bound: 1 / Double(400).squareRoot())
        let lin = Linear(256, 2048, rng: &rng)
        expectUniform(lin.weight, bound: 1 / 16)
        let bb = 1 / 16.0
        #expect(lin.bias!.values.allSatisfy { Double($0) >= -bb && Double($0) < bb })
        #expect(lin.weight.requiresGrad && lin.bias!.requiresGrad)
    }

    @Test func normalAndKaimingNormal() {
        var rng = RNG(seed: 14)
        let t = Tensor.zeros([600_000])
        Init.normal(t, mean: 0.5, std: 2, rng: &rng)
        expectNormal(t, mean: 0.5, std: 2)
        // c2_msra_fill: N(0, 2 / fan_out).
        let c = Tensor.zeros([128, 3, 3, 64])
        Init.c2MSRAFill(weight: c, bias: nil, rng: &rng)
        expectNormal(c, mean: 0, std: (2.0 / Double(128 * 9)).squareRoot())
        let e = Embedding(1000, 256, rng: &rng)
        expectNormal(e.weight, mean: 0, std: 1)
    }

    @Test func constants() {
        let t = Tensor.zeros([5])
        Init.constant(t, 3)
        #expect(t.values == [3, 3, 3, 3, 3])
        Init.zeros(t)
        #expect(t.values == [0, 0, 0, 0, 0])
        Init.ones(t)
        #expect(t.values == [1, 1, 1, 1, 1])
    }

    @Test func seededInitIsReproducible() {
        #expect(Linear(8, 4, seed: 3).weight.values == Linear(8, 4, seed: 3).weight.values)
        #expect(Linear(8, 4, seed: 3).weight.values != Linear(8, 4, seed: 4).weight.values)
    }
}
