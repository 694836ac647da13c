// FNV-1a 64 against the published test vectors (Fowler, Noll, Vo: "", "a", "foobar").
import Testing
import TensorCore

@Suite struct FNV1aTests {
    @Test func publishedVectors() {
        #expect(FNV1a.hash("") == 0xcbf2_9ce4_8422_2325)
        #expect(FNV1a.hash("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(FNV1a.hash("foobar") == 0x8594_4171_f739_67e8)
        let floats: [Float] = [1, -2.5]
        let viaFloats = floats.withUnsafeBufferPointer { FNV1a.hash($0.baseAddress!, count: 2) }
        let viaBytes = floats.withUnsafeBytes { FNV1a.hash($0) }
        #expect(viaFloats == viaBytes && viaFloats != FNV1a.offsetBasis)
    }
}
