// Sine positional encoding of a feature map's shape (normalized, scale 2π, temperature 10000).
// Corresponds to Mask2Former's transformer_decoder/position_encoding.py PositionEmbeddingSine (docs/model.md#position-encoding).
import Foundation
import TensorCore

/// `PositionEmbeddingSine(numPosFeats, normalize: true)` for an `H×W` map, channels-last.
///
/// Returns `[H·W, 2·numPosFeats]` (tokens row-major over `(y, x)`): the first `numPosFeats` channels
/// encode y, the last `numPosFeats` encode x. With `a` the 1-based coordinate normalized to
/// `a/(size + 1e-6)·2π`, channel k is `sin(a / T^(2⌊k/2⌋/F))` for even k and `cos(…)` for odd k.
/// The encoding depends only on the shape, so it is a constant (no gradient).
public func sinePositionEncoding(height: Int, width: Int, numPosFeats: Int = 128,
                                 temperature: Double = 10000) -> Tensor {
    let f = numPosFeats
    let out = Tensor(uninitialized: [height * width, 2 * f])
    // Reference arithmetic is float32: cumsum of ones, divide by (last + eps), times scale, then
    // divide by dim_t computed in float32 from temperature ** (2·(k//2)/F).
    let scale = Float(2 * Double.pi), eps: Float = 1e-6
    var dimT = [Float](repeating: 0, count: f)
    for k in 0..<f { dimT[k] = Float(Foundation.pow(temperature, Double(2 * (k / 2)) / Double(f))) }
    func encode(_ a: Float, into dst: UnsafeMutablePointer<Float>) {
        for k in 0..<f {
            let v = a / dimT[k]
            dst[k] = k % 2 == 0 ? Foundation.sin(v) : Foundation.cos(v)
        }
    }
    var yRow = [Float](repeating: 0, count: f), xRow = [Float](repeating: 0, count: f)
    for i in 0..<height {
        let ay = Float(i + 1) / (Float(height) + eps) * scale
        yRow.withUnsafeMutableBufferPointer { encode(ay, into: $0.baseAddress!) }
        for j in 0..<width {
            let ax = Float(j + 1) / (Float(width) + eps) * scale
            xRow.withUnsafeMutableBufferPointer { encode(ax, into: $0.baseAddress!) }
            let dst = out.data + (i * width + j) * 2 * f
            for k in 0..<f { dst[k] = yRow[k]; dst[f + k] = xRow[k] }
        }
    }
    return out
}
