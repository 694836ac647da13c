// The summation orders Reductions.swift promises, checked against the orders written out by hand: a change of order
// (and so of every number the model gives) cannot slip in unnoticed.
import Kernels
import Testing

@Suite struct ReductionsTests {
    /// Floats of very different magnitudes, so that any change of order changes the rounded sum.
    static func values(_ n: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<n).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let mantissa = Float(state >> 40) / Float(1 << 24) - 0.5
            return mantissa * Float(1 << Int((state >> 20) % 24))
        }
    }

    @Test func laneOrderSumIsWhatSIMDSumDoes() {
        for seed in 0..<2000 {
            let v = Self.values(8, seed: UInt64(seed))
            let s = SIMD8<Float>(v)
            var sequential: Float = -0
            for x in v { sequential += x }
            #expect(laneOrderSum(s).bitPattern == sequential.bitPattern)
            #expect(laneOrderSum(s).bitPattern == s.sum().bitPattern)
        }
    }

    @Test func sumFloatsAddsEightLanesPairwiseThenTheTail() {
        for n in [0, 1, 7, 8, 9, 23, 64, 101] {
            let v = Self.values(n, seed: UInt64(n))
            var lanes = [Float](repeating: 0, count: 8)
            for i in 0..<(n / 8 * 8) { lanes[i % 8] += v[i] }
            var expected = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
            for i in (n / 8 * 8)..<n { expected += v[i] }
            let got = v.withUnsafeBufferPointer { sumFloats($0.baseAddress!, n) }
            #expect(got.bitPattern == expected.bitPattern, "n = \(n)")
            if n > 0 { #expect(v.withUnsafeBufferPointer { maxFloats($0.baseAddress!, n) } == v.max()!) }
        }
    }

    @Test func rowSumAndColumnSumsAddInOrderInDouble() {
        let v = Self.values(60, seed: 3)
        var serial = 0.0
        for i in stride(from: 1, to: 60, by: 3) { serial += Double(v[i]) }
        #expect(v.withUnsafeBufferPointer { rowSum($0.baseAddress! + 1, 20, stride: 3) } == serial)
        var acc = [Double](repeating: 0, count: 6)
        v.withUnsafeBufferPointer { p in
            acc.withUnsafeMutableBufferPointer { a in for r in 0..<10 { addColumns(p.baseAddress! + 6 * r, into: a.baseAddress!, 6) } }
        }
        for j in 0..<6 {
            var s = 0.0
            for r in 0..<10 { s += Double(v[6 * r + j]) }
            #expect(acc[j] == s)
        }
    }
}
