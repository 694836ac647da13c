// Weight initializers that fill tensors in place from a seeded RNG (no tape): xavier, kaiming, normal, constants.
// Corresponds to torch.nn.init (PyTorch fan convention), detectron2's c2_xavier_fill / c2_msra_fill and nn.Linear's default.
import TensorCore

/// In-place initializers. Fans follow `torch.nn.init._calculate_fan_in_and_fan_out`, translated to
/// our layouts: a 2-D weight `[out, in]` has fan_in = in, fan_out = out; a conv weight
/// `[Cout, kh, kw, Cin]` (any rank ≥ 3 is read as `[out, spatial…, in]`) has
/// fan_in = Cin·kh·kw and fan_out = Cout·kh·kw. Values are drawn in row-major order of our layout.
public enum Init {
    /// Which fan a Kaiming initializer normalizes by.
    public enum FanMode: Sendable { case fanIn, fanOut }

    /// `(fanIn, fanOut)` of a weight with this shape (rank ≥ 2).
    public static func fans(_ shape: [Int]) -> (fanIn: Int, fanOut: Int) {
        precondition(shape.count >= 2, "fan in/out need a weight of rank ≥ 2, got \(shape)")
        if shape.count == 2 { return (shape[1], shape[0]) }
        let receptive = shape[1..<(shape.count - 1)].product
        return (shape[shape.count - 1] * receptive, shape[0] * receptive)
    }

    /// Every element drawn from U(low, high).
    public static func uniform(_ t: Tensor, low: Double, high: Double, rng: inout RNG) {
        let d = t.data
        let lo = Float(low), width = Float(high - low)
        for i in 0..<t.count { d[i] = lo + width * rng.nextFloat() }
    }

    /// Every element drawn from N(mean, std²).
    public static func normal(_ t: Tensor, mean: Double = 0, std: Double = 1, rng: inout RNG) {
        let d = t.data
        let m = Float(mean), s = Float(std)
        for i in 0..<t.count { d[i] = m + s * rng.nextNormal() }
    }

    /// Every element drawn from N(mean, std²) restricted to [low, high] (timm's `trunc_normal_`; redrawn until
    /// inside). Swin's `trunc_normal_(std=.02)` keeps timm's absolute bounds ±2, i.e. ±100 σ.
    public static func truncatedNormal(_ t: Tensor, mean: Double = 0, std: Double, low: Double = -2, high: Double = 2,
                                       rng: inout RNG) {
        let d = t.data
        for i in 0..<t.count {
            var v: Double
            repeat { v = mean + std * Double(rng.nextNormal()) } while v < low || v > high
            d[i] = Float(v)
        }
    }

    /// Every element set to `value`.
    public static func constant(_ t: Tensor, _ value: Float) {
        t.data.update(repeating: value, count: t.count)
    }

    public static func zeros(_ t: Tensor) { constant(t, 0) }
    public static func ones(_ t: Tensor) { constant(t, 1) }

    /// Xavier/Glorot uniform: U(±gain·√(6 / (fan_in + fan_out))).
    public static func xavierUniform(_ t: Tensor, gain: Double = 1, rng: inout RNG) {
        let (fi, fo) = fans(t.shape)
        let bound = gain * (6.0 / Double(fi + fo)).squareRoot()
        uniform(t, low: -bound, high: bound, rng: &rng)
    }

    /// The leaky-ReLU gain √(2 / (1 + a²)) used by the Kaiming initializers (a = 0: ReLU).
    public static func leakyReluGain(_ a: Double) -> Double { (2.0 / (1 + a * a)).squareRoot() }

    /// Kaiming/He uniform: U(±gain·√(3 / fan)), gain = √(2 / (1 + a²)) (leaky-ReLU, PyTorch's default
    /// nonlinearity). `a = 1` is detectron2's `c2_xavier_fill` (bound √(3/fan_in)); `a = √5` is the
    /// default of nn.Linear and nn.Conv2d (bound 1/√fan_in).
    public static func kaimingUniform(_ t: Tensor, a: Double = 0, mode: FanMode = .fanIn, rng: inout RNG) {
        let (fi, fo) = fans(t.shape)
        let fan = Double(mode == .fanIn ? fi : fo)
        let bound = leakyReluGain(a) * (3.0 / fan).squareRoot()
        uniform(t, low: -bound, high: bound, rng: &rng)
    }

    /// Kaiming/He normal: N(0, (gain/√fan)²). detectron2's `c2_msra_fill` is `a = 0, mode: .fanOut`.
    public static func kaimingNormal(_ t: Tensor, a: Double = 0, mode: FanMode = .fanIn, rng: inout RNG) {
        let (fi, fo) = fans(t.shape)
        let fan = Double(mode == .fanIn ? fi : fo)
        normal(t, mean: 0, std: leakyReluGain(a) / fan.squareRoot(), rng: &rng)
    }

    /// PyTorch's default for nn.Linear / nn.Conv2d: weight Kaiming-uniform with a = √5, i.e.
    /// U(±1/√fan_in), then bias U(±1/√fan_in) (fan_in of the weight).
    public static func pytorchDefault(weight: Tensor, bias: Tensor?, rng: inout RNG) {
        kaimingUniform(weight, a: Double(5).squareRoot(), rng: &rng)
        if let bias {
            let fanIn = fans(weight.shape).fanIn
            let bound = fanIn > 0 ? 1 / Double(fanIn).squareRoot() : 0
            uniform(bias, low: -bound, high: bound, rng: &rng)
        }
    }

    /// detectron2's `c2_xavier_fill`: weight Kaiming-uniform with a = 1 (U(±√(3/fan_in))), bias 0.
    public static func c2XavierFill(weight: Tensor, bias: Tensor?, rng: inout RNG) {
        kaimingUniform(weight, a: 1, rng: &rng)
        if let bias { zeros(bias) }
    }

    /// detectron2's `c2_msra_fill`: weight Kaiming-normal, fan_out, ReLU gain; bias 0.
    public static func c2MSRAFill(weight: Tensor, bias: Tensor?, rng: inout RNG) {
        kaimingNormal(weight, a: 0, mode: .fanOut, rng: &rng)
        if let bias { zeros(bias) }
    }
}
