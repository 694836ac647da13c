// Test data for the kernel tests: seeded uniform floats (SplitMix64), no TensorCore needed.
// Corresponds to no reference file; replaces torch.rand in the kernel-versus-twin comparisons.

/// `n` floats uniform in `[low, high)` from a SplitMix64 stream seeded by `seed`.
func randomFloats(_ n: Int, seed: UInt64, low: Float = -1, high: Float = 1) -> [Float] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
    var out = [Float](repeating: 0, count: n)
    for i in 0..<n {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        out[i] = low + (high - low) * Float(z >> 40) * (1.0 / 16_777_216.0)
    }
    return out
}
