// RNG: a seeded counter-based generator (Philox4x32-10) whose whole state is four integers.
// Corresponds to the random streams of the reference (torch.Generator); saving/restoring is exact.
import Foundation
import Kernels

/// The complete state of an `RNG`: restoring it replays the same stream exactly.
public struct RNGState: Hashable, Codable, Sendable {
    public var seed: UInt64
    public var stream: UInt64
    /// Index of the next 128-bit Philox block.
    public var counter: UInt64
    /// Next 32-bit lane (0–3) within the current block.
    public var lane: UInt32

    public init(seed: UInt64, stream: UInt64, counter: UInt64, lane: UInt32) {
        self.seed = seed; self.stream = stream; self.counter = counter; self.lane = lane
    }

    /// The state as four unsigned integers (for checkpoint attributes).
    public var words: [UInt64] { [seed, stream, counter, UInt64(lane)] }

    public init(words: [UInt64]) {
        precondition(words.count == 4 && words[3] < 4, "RNG state needs 4 words with lane < 4, got \(words)")
        self.init(seed: words[0], stream: words[1], counter: words[2], lane: UInt32(words[3]))
    }
}

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
///
/// The key is the seed; the 128-bit counter is (block index, stream). Independent streams with the
/// same seed (per rank, per image) never overlap. The generator is a value type: copy it to fork.
public struct RNG: Sendable {
    public private(set) var state: RNGState
    private var block: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)

    public init(seed: UInt64, stream: UInt64 = 0) {
        self.init(state: RNGState(seed: seed, stream: stream, counter: 0, lane: 0))
    }

    public init(state: RNGState) {
        self.state = state
        self.block = RNG.philox(counter: state.counter, stream: state.stream, seed: state.seed)
    }

    /// Restores a saved state.
    public mutating func restore(_ saved: RNGState) { self = RNG(state: saved) }

    @inline(__always)
    static func mulhilo(_ a: UInt32, _ b: UInt32) -> (hi: UInt32, lo: UInt32) {
        let p = UInt64(a) &* UInt64(b)
        return (UInt32(truncatingIfNeeded: p >> 32), UInt32(truncatingIfNeeded: p))
    }

    /// One Philox4x32-10 block for the 128-bit counter (counter, stream) and 64-bit key seed.
    static func philox(counter: UInt64, stream: UInt64, seed: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: counter), c1 = UInt32(truncatingIfNeeded: counter >> 32)
        var c2 = UInt32(truncatingIfNeeded: stream), c3 = UInt32(truncatingIfNeeded: stream >> 32)
        var k0 = UInt32(truncatingIfNeeded: seed), k1 = UInt32(truncatingIfNeeded: seed >> 32)
        for round in 0..<10 {
            if round > 0 { k0 = k0 &+ 0x9E37_79B9; k1 = k1 &+ 0xBB67_AE85 }
            let (hi0, lo0) = mulhilo(0xD251_1F53, c0)
            let (hi1, lo1) = mulhilo(0xCD9E_8D57, c2)
            c0 = hi1 ^ c1 ^ k0
            c1 = lo1
            c2 = hi0 ^ c3 ^ k1
            c3 = lo0
        }
        return (c0, c1, c2, c3)
    }

    /// Next 32 random bits.
    @inline(__always)
    public mutating func nextUInt32() -> UInt32 {
        let v: UInt32
        switch state.lane {
        case 0: v = block.0
        case 1: v = block.1
        case 2: v = block.2
        default: v = block.3
        }
        if state.lane == 3 {
            state.lane = 0
            state.counter &+= 1
            block = RNG.philox(counter: state.counter, stream: state.stream, seed: state.seed)
        } else {
            state.lane += 1
        }
        return v
    }

    /// Next 64 random bits.
    public mutating func nextUInt64() -> UInt64 {
        UInt64(nextUInt32()) << 32 | UInt64(nextUInt32())
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always)
    public mutating func nextFloat() -> Float { RNG.uniform(nextUInt32(), 0, 1) }

    /// Writes the next `count` values `low + (high - low) · nextFloat()` to `out` and advances the stream past
    /// them. Philox is counter-based, so value i is lane (lane + i) mod 4 of block counter + (lane + i) / 4:
    /// the fill runs in chunks of whole blocks (cut by `count`, not by the thread count) and gives bitwise what
    /// `count` calls of `nextFloat()` give.
    public mutating func fillUniform(_ out: UnsafeMutablePointer<Float>, count: Int, low: Float = 0, high: Float = 1) {
        guard count > 0 else { return }
        let start = Int(state.lane), first = state.counter
        let seed = state.seed, stream = state.stream, span = high - low
        let blocks = (start + count + 3) / 4
        parallelFor(blocks, grain: elementwiseGrain / 4) { range in
            for b in range {
                let v = RNG.philox(counter: first &+ UInt64(b), stream: stream, seed: seed)
                let base = 4 * b - start
                if base >= 0 && base + 4 <= count {
                    out[base] = RNG.uniform(v.0, low, span); out[base + 1] = RNG.uniform(v.1, low, span)
                    out[base + 2] = RNG.uniform(v.2, low, span); out[base + 3] = RNG.uniform(v.3, low, span)
                } else {
                    for (lane, word) in [v.0, v.1, v.2, v.3].enumerated() where (0..<count).contains(base + lane) {
                        out[base + lane] = RNG.uniform(word, low, span)
                    }
                }
            }
        }
        let end = start + count
        self = RNG(state: RNGState(seed: seed, stream: stream, counter: first &+ UInt64(end / 4), lane: UInt32(end % 4)))
    }

    /// `low + span · u` for the 24-bit uniform u of `word` (what `nextFloat()` returns).
    @inline(__always) static func uniform(_ word: UInt32, _ low: Float, _ span: Float) -> Float {
        low + span * (Float(word >> 8) * (1.0 / 16_777_216.0))
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextDouble() -> Double { Double(nextUInt64() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Standard normal sample (Box–Muller on two 32-bit draws; the second variate is not cached so the
    /// state stays four integers).
    public mutating func nextNormal() -> Float {
        let u1 = (Double(nextUInt32()) + 1) / 4_294_967_297.0  // (0, 1)
        let u2 = Double(nextUInt32()) / 4_294_967_296.0
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }

    /// Uniform integer in `0..<bound` without modulo bias (Lemire's method).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "nextInt(below: \(bound))")
        let b = UInt64(bound)
        while true {
            let x = nextUInt64()
            let (hi, lo) = x.multipliedFullWidth(by: b)
            if lo >= (0 &- b) % b { return Int(hi) }
        }
    }

    /// A uniformly random permutation of `0..<n` (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            p.swapAt(i, nextInt(below: i + 1))
        }
        return p
    }
}

@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
