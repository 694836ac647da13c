// FNV-1a, 64-bit: the one hash MaskPilot uses to compare things across ranks and files (configurations, parameter
// signatures, parameter buffers). Not cryptographic: it detects accidental differences, not deliberate ones.
// Corresponds to the FNV-1a of Fowler, Noll and Vo (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
public enum FNV1a {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let prime: UInt64 = 0x100_0000_01b3

    /// The hash of `bytes`; with `from`, of the bytes hashed into `from` followed by `bytes` (so a sequence of buffers
    /// hashes as their concatenation).
    public static func hash(_ bytes: UnsafeRawBufferPointer, from h0: UInt64 = offsetBasis) -> UInt64 {
        var h = h0
        for b in bytes { h = (h ^ UInt64(b)) &* prime }
        return h
    }

    /// The hash of `text`'s UTF-8 bytes.
    public static func hash(_ text: String) -> UInt64 {
        var h = offsetBasis
        for b in text.utf8 { h = (h ^ UInt64(b)) &* prime }
        return h
    }

    /// The hash of `count` floats' bytes at `values` (their bit patterns).
    public static func hash(_ values: UnsafePointer<Float>, count: Int) -> UInt64 {
        hash(UnsafeRawBufferPointer(start: values, count: count * MemoryLayout<Float>.stride))
    }
}
