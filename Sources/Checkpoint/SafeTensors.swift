// SafeTensors: reads a `.safetensors` file (HF transformers' and timm's weights format) into named float32 tensors.
// Corresponds to the safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {…}}, then the raw little-endian data.
import Foundation
import TensorCore

/// The tensors of a `.safetensors` file in file-header order (sorted by data offset), converted to float32 in their
/// stored (PyTorch) layout. F32, F16, BF16 and F64 are read; integer and boolean tensors (e.g. BatchNorm's
/// `num_batches_tracked`) are not weights and are returned in `skipped`. Every problem is an error naming the file.
public func readSafeTensors(path: String) throws -> (tensors: [(String, Tensor)], skipped: [String]) {
    func fail(_ problem: String) -> CheckpointError { CheckpointError(file: path, problem: problem) }
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
        throw fail("cannot read the file: \(error.localizedDescription)")
    }
    guard data.count >= 8 else { throw fail("not a safetensors file: \(data.count) bytes, shorter than the 8-byte header length") }
    let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    guard headerLength <= UInt64(data.count - 8) else {
        throw fail("not a safetensors file: the header length \(headerLength) exceeds the file size \(data.count)")
    }
    let dataStart = 8 + Int(headerLength)
    let header: [String: Any]
    do {
        guard let object = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<dataStart)) as? [String: Any] else {
            throw fail("the header is not a JSON object")
        }
        header = object
    } catch let e as CheckpointError { throw e } catch {
        throw fail("the header is not valid JSON (\(error.localizedDescription))")
    }
    let byteCount = data.count - dataStart
    var entries: [(name: String, begin: Int, end: Int, dtype: String, shape: [Int])] = []
    for (name, value) in header where name != "__metadata__" {
        guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
              let shape = (info["shape"] as? [Any])?.map(exactInt),
              let offsets = (info["data_offsets"] as? [Any])?.map(exactInt), offsets.count == 2
        else { throw fail("tensor \"\(name)\": the header entry needs dtype, shape and data_offsets [begin, end]") }
        // Element counts are bounded: a hostile header must give an error, not a trap.
        guard let elements = Limit.elementCount(ofDeclaredShape: shape), elements <= byteCount, offsets[0] >= 0, offsets[0] <= offsets[1],
              offsets[1] <= byteCount else {
            throw fail("tensor \"\(name)\": shape \(shape) or data_offsets \(offsets) out of range (\(byteCount) data bytes)")
        }
        entries.append((name, offsets[0], offsets[1], dtype, shape))
    }
    entries.sort { ($0.begin, $0.name) < ($1.begin, $1.name) }
    var tensors: [(String, Tensor)] = [], skipped: [String] = []
    for e in entries {
        let count = e.shape.reduce(1, *)
        let width: Int
        switch e.dtype {
        case "F32": width = 4
        case "F16", "BF16": width = 2
        case "F64": width = 8
        case "I8", "U8", "BOOL", "I16", "U16", "I32", "U32", "I64", "U64", "F8_E4M3", "F8_E5M2":
            skipped.append(e.name); continue
        default: throw fail("tensor \"\(e.name)\": unknown dtype \(e.dtype)")
        }
        guard e.end - e.begin == count * width else {
            throw fail("tensor \"\(e.name)\": \(e.dtype) \(e.shape) needs \(count * width) bytes, data_offsets give \(e.end - e.begin)")
        }
        var values = [Float](repeating: 0, count: count)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let base = raw.baseAddress! + dataStart + e.begin
            for i in 0..<count {
                switch e.dtype {
                case "F32": values[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                case "F64": values[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                case "BF16": values[i] = Float(bitPattern: UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
                default: values[i] = Float(float16Bits: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            }
        }
        tensors.append((e.name, Tensor(values, shape: e.shape)))
    }
    return (tensors, skipped)
}

/// A JSON number that is a whole number within `Int`'s range, else -1 (which the range checks refuse).
private func exactInt(_ value: Any) -> Int {
    guard let n = value as? NSNumber else { return -1 }
    let d = n.doubleValue
    return d.rounded() == d && abs(d) < 9e18 ? n.intValue : -1
}

extension Float {
    /// The IEEE half-precision value with bit pattern `bits` (subnormals, infinities and NaN included).
    public init(float16Bits bits: UInt16) {
        let sign = UInt32(bits & 0x8000) << 16, exponent = Int(bits >> 10) & 0x1F, fraction = UInt32(bits & 0x3FF)
        switch exponent {
        case 0:  // zero or subnormal: fraction · 2^-24
            self = Float(bitPattern: sign) + (sign != 0 ? -1 : 1) * Float(fraction) * 0x1p-24
        case 31: self = Float(bitPattern: sign | 0x7F80_0000 | fraction << 13)
        default: self = Float(bitPattern: sign | UInt32(exponent + 112) << 23 | fraction << 13)
        }
    }
}

/// Writes `tensors` (float32, names unique, in their stored layout) and `int64Scalars` (0-dimensional I64 tensors, such
/// as BatchNorm's `num_batches_tracked`) as a `.safetensors` file at `path`, atomically (a temporary file renamed into
/// place): the header lists them with `__metadata__` `metadata` (HF's `save_pretrained` writes `{"format": "pt"}`),
/// padded with spaces to a multiple of 8 bytes as the reference writer does, then the little-endian data back to back.
public func writeSafeTensors(_ tensors: [(String, Tensor)], int64Scalars: [(String, Int64)] = [], metadata: [String: String] = ["format": "pt"],
                             to path: String) throws {
    var header: [String: Any] = ["__metadata__": metadata]
    var offset = 0
    for (name, t) in tensors {
        guard header[name] == nil else { throw CheckpointError(file: path, problem: "tensor \"\(name)\" given twice") }
        header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]] as [String: Any]
        offset += 4 * t.count
    }
    for (name, _) in int64Scalars {
        guard header[name] == nil else { throw CheckpointError(file: path, problem: "tensor \"\(name)\" given twice") }
        header[name] = ["dtype": "I64", "shape": [Int](), "data_offsets": [offset, offset + 8]] as [String: Any]
        offset += 8
    }
    var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
    var bytes = Data(capacity: 8 + json.count + offset)
    withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes.append(contentsOf: $0) }
    bytes.append(json)
    for (_, t) in tensors {
        bytes.append(UnsafeBufferPointer(start: t.data, count: t.count))
    }
    for (_, v) in int64Scalars { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    try writeAtomically(to: path) { tmp in
        do { try bytes.write(to: URL(fileURLWithPath: tmp)) } catch {
            throw CheckpointError(file: tmp, problem: "cannot write: \(error.localizedDescription)")
        }
    }
}
