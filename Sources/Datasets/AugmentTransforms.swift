// Deterministic transforms that record their parameters and apply identically to image, label map, masks and coordinates.
// Corresponds to detectron2/fvcore Transform objects: ResizeTransform, HFlipTransform, CropTransform, PadTransform, TransformList.

/// A size in pixels, height first (as detectron2's `image.shape[:2]`).
public struct ImageSize: Sendable, Hashable, CustomStringConvertible {
    public var height: Int
    public var width: Int

    public init(height: Int, width: Int) {
        precondition(height >= 0 && width >= 0, "negative size \(height)×\(width)")
        self.height = height; self.width = width
    }

    public var description: String { "\(width)×\(height)" }
}

extension Image8 { public var size: ImageSize { ImageSize(height: height, width: width) } }
extension LabelMap { public var size: ImageSize { ImageSize(height: height, width: width) } }
extension BinaryMask { public var size: ImageSize { ImageSize(height: height, width: width) } }

/// Resize from `input` to `output` (PIL BILINEAR for images, a `NearestRule` for labels and masks).
public struct ResizeTransform: Sendable, Hashable {
    public var input: ImageSize
    public var output: ImageSize
    public init(input: ImageSize, output: ImageSize) {
        precondition(input.width > 0 && input.height > 0 && output.width > 0 && output.height > 0,
                     "resize \(input) → \(output)")
        self.input = input; self.output = output
    }
}

/// Crop of the rectangle at (`x0`, `y0`) of `width × height`, clipped at the input's border as numpy
/// slicing `img[y0:y0+h, x0:x0+w]` clips (FixedSizeCrop asks for 1024² of a smaller image).
public struct CropTransform: Sendable, Hashable {
    public var input: ImageSize
    public var x0: Int, y0: Int, width: Int, height: Int
    public init(input: ImageSize, x0: Int, y0: Int, width: Int, height: Int) {
        precondition(x0 >= 0 && y0 >= 0 && width >= 0 && height >= 0 && x0 <= input.width && y0 <= input.height,
                     "crop (\(x0), \(y0), \(width)×\(height)) of \(input)")
        self.input = input; self.x0 = x0; self.y0 = y0; self.width = width; self.height = height
    }
    public var output: ImageSize {
        ImageSize(height: min(y0 + height, input.height) - y0, width: min(x0 + width, input.width) - x0)
    }
}

/// Padding at the right and bottom. The image gets `imageValue` in every channel, label maps get
/// `labelValue`; binary masks and segment-id maps always get 0 (outside every mask / void).
public struct PadTransform: Sendable, Hashable {
    public var input: ImageSize
    public var right: Int, bottom: Int
    public var imageValue: UInt8
    public var labelValue: UInt8
    public init(input: ImageSize, right: Int, bottom: Int, imageValue: UInt8 = 128, labelValue: UInt8 = 255) {
        precondition(right >= 0 && bottom >= 0, "negative padding \(right), \(bottom)")
        self.input = input; self.right = right; self.bottom = bottom
        self.imageValue = imageValue; self.labelValue = labelValue
    }
    public var output: ImageSize { ImageSize(height: input.height + bottom, width: input.width + right) }
}

/// One recorded transform. Geometric ones move image, labels, masks and coordinates together;
/// `colorAugSSD` changes only the image.
public enum Transform: Sendable, Hashable {
    case resize(ResizeTransform)
    /// Horizontal flip of an image of the given size.
    case hflip(ImageSize)
    case crop(CropTransform)
    case pad(PadTransform)
    case colorAugSSD(ColorAugSSDParams, ImageSize)

    public var input: ImageSize {
        switch self {
        case .resize(let r): return r.input
        case .hflip(let s): return s
        case .crop(let c): return c.input
        case .pad(let p): return p.input
        case .colorAugSSD(_, let s): return s
        }
    }

    public var output: ImageSize {
        switch self {
        case .resize(let r): return r.output
        case .hflip(let s): return s
        case .crop(let c): return c.output
        case .pad(let p): return p.output
        case .colorAugSSD(_, let s): return s
        }
    }

    /// How continuous pixel coordinates move (detectron2 `apply_coords`; a pixel covers [i, i+1)).
    public var coordinateMap: AxisAlignedAffine {
        switch self {
        case .resize(let r):
            return AxisAlignedAffine(scaleX: Double(r.output.width) / Double(r.input.width), offsetX: 0,
                                     scaleY: Double(r.output.height) / Double(r.input.height), offsetY: 0)
        case .hflip(let s): return AxisAlignedAffine(scaleX: -1, offsetX: Double(s.width), scaleY: 1, offsetY: 0)
        case .crop(let c): return AxisAlignedAffine(scaleX: 1, offsetX: -Double(c.x0), scaleY: 1, offsetY: -Double(c.y0))
        case .pad, .colorAugSSD: return .identity
        }
    }
}

/// `x' = scaleX·x + offsetX`, `y' = scaleY·y + offsetY`: every transform here keeps axes aligned, so a
/// whole chain is one such map. Polygon rasterizers use it to move vertices into the output frame.
public struct AxisAlignedAffine: Sendable, Hashable {
    public var scaleX: Double, offsetX: Double, scaleY: Double, offsetY: Double
    public init(scaleX: Double, offsetX: Double, scaleY: Double, offsetY: Double) {
        self.scaleX = scaleX; self.offsetX = offsetX; self.scaleY = scaleY; self.offsetY = offsetY
    }
    public static let identity = AxisAlignedAffine(scaleX: 1, offsetX: 0, scaleY: 1, offsetY: 0)

    /// Applies `self`, then `next`.
    public func then(_ next: AxisAlignedAffine) -> AxisAlignedAffine {
        AxisAlignedAffine(scaleX: next.scaleX * scaleX, offsetX: next.scaleX * offsetX + next.offsetX,
                          scaleY: next.scaleY * scaleY, offsetY: next.scaleY * offsetY + next.offsetY)
    }

    public func apply(x: Double, y: Double) -> (x: Double, y: Double) {
        (scaleX * x + offsetX, scaleY * y + offsetY)
    }
}

/// A chain of transforms applied in order (detectron2 `TransformList`), from an input of `inputSize`.
public struct TransformList: Sendable, Hashable {
    public private(set) var inputSize: ImageSize
    public private(set) var transforms: [Transform] = []

    public init(inputSize: ImageSize) { self.inputSize = inputSize }

    public init(inputSize: ImageSize, transforms: [Transform]) {
        self.inputSize = inputSize
        for t in transforms { append(t) }
    }

    /// Size after the last transform.
    public var outputSize: ImageSize { transforms.last?.output ?? inputSize }

    /// Appends `t`, which must take the current output size.
    public mutating func append(_ t: Transform) {
        precondition(t.input == outputSize, "transform \(t) expects \(t.input), chain gives \(outputSize)")
        transforms.append(t)
    }

    /// The composed coordinate map (for polygons and points).
    public var coordinateMap: AxisAlignedAffine {
        transforms.reduce(AxisAlignedAffine.identity) { $0.then($1.coordinateMap) }
    }

    // MARK: image

    /// Applies every transform to an 8-bit image of `inputSize` (any channel count; ColorAugSSD needs 3).
    /// A resize directly followed by a crop computes only the cropped pixels (identical values).
    public func apply(to image: Image8) -> Image8 {
        precondition(image.size == inputSize, "image \(image.size) for a transform chain from \(inputSize)")
        var img = image
        var i = 0
        while i < transforms.count {
            switch transforms[i] {
            case .resize(let r):
                if i + 1 < transforms.count, case .crop(let c) = transforms[i + 1] {
                    let o = c.output
                    img = img.resizedPILBilinear(width: r.output.width, height: r.output.height,
                                                 columns: c.x0..<(c.x0 + o.width), rows: c.y0..<(c.y0 + o.height))
                    i += 2
                    continue
                }
                img = img.resizedPILBilinear(width: r.output.width, height: r.output.height)
            case .hflip:
                img = img.flippedHorizontally()
            case .crop(let c):
                let o = c.output
                img = img.cropped(x0: c.x0, y0: c.y0, width: o.width, height: o.height)
            case .pad(let p):
                img = img.padded(right: p.right, bottom: p.bottom, value: p.imageValue)
            case .colorAugSSD(let params, _):
                img = params.apply(to: img)
            }
            i += 1
        }
        return img
    }

    // MARK: labels, masks, id maps (pure index gathers)

    /// For each output column / row, the source column / row in the input (-1: padding).
    /// Every geometric step of a label or mask is a re-indexing, so the chain composes into two tables.
    public func sourceIndexTables(rule: NearestRule) -> (columns: [Int], rows: [Int]) {
        var cols = Array(0..<inputSize.width)
        var rows = Array(0..<inputSize.height)
        for t in transforms {
            switch t {
            case .resize(let r):
                let sx = rule.sourceIndices(inSize: r.input.width, outSize: r.output.width)
                let sy = rule.sourceIndices(inSize: r.input.height, outSize: r.output.height)
                cols = sx.map { cols[$0] }
                rows = sy.map { rows[$0] }
            case .hflip:
                cols.reverse()
            case .crop(let c):
                let o = c.output
                cols = Array(cols[c.x0..<(c.x0 + o.width)])
                rows = Array(rows[c.y0..<(c.y0 + o.height)])
            case .pad(let p):
                cols += [Int](repeating: -1, count: p.right)
                rows += [Int](repeating: -1, count: p.bottom)
            case .colorAugSSD:
                break
            }
        }
        return (cols, rows)
    }

    /// The padding value of label maps: the last pad transform's `labelValue` (255 without one).
    public var labelPadValue: UInt8 {
        for t in transforms.reversed() { if case .pad(let p) = t { return p.labelValue } }
        return 255
    }

    /// Applies the geometric transforms to a label map (nearest; default `.torch`, as the ADE20K mapper
    /// resizes its float64 label map with `F.interpolate`), padding with `labelPadValue`.
    public func apply(to labels: LabelMap, rule: NearestRule = .torch) -> LabelMap {
        precondition(labels.size == inputSize, "label map \(labels.size) for a transform chain from \(inputSize)")
        let (cols, rows) = sourceIndexTables(rule: rule)
        let out = gather(labels.labels, width: labels.width, columns: cols, rows: rows, pad: labelPadValue)
        return LabelMap(width: cols.count, height: rows.count, labels: out)
    }

    /// Applies the geometric transforms to a binary mask (nearest; default `.pil`, as uint8 masks go
    /// through PIL), padding with 0.
    public func apply(to mask: BinaryMask, rule: NearestRule = .pil) -> BinaryMask {
        precondition(mask.size == inputSize, "mask \(mask.size) for a transform chain from \(inputSize)")
        let (cols, rows) = sourceIndexTables(rule: rule)
        return BinaryMask(width: cols.count, height: rows.count,
                          bits: gather(mask.bits, width: mask.width, columns: cols, rows: rows, pad: 0))
    }

    /// Applies the geometric transforms to a row-major map of segment ids (nearest), padding with 0.
    public func apply(toIDs ids: [UInt32], rule: NearestRule = .pil) -> [UInt32] {
        precondition(ids.count == inputSize.width * inputSize.height, "id map of \(ids.count) for \(inputSize)")
        let (cols, rows) = sourceIndexTables(rule: rule)
        return gather(ids, width: inputSize.width, columns: cols, rows: rows, pad: 0)
    }
}

/// `out[y][x] = src[rows[y]][columns[x]]`, or `pad` where either index is -1.
func gather<T: FixedWidthInteger>(_ src: [T], width: Int, columns: [Int], rows: [Int], pad: T) -> [T] {
    let ow = columns.count, oh = rows.count
    return [T](unsafeUninitializedCapacity: ow * oh) { buf, n in
        src.withUnsafeBufferPointer { s in
            columns.withUnsafeBufferPointer { cols in
                for y in 0..<oh {
                    let r = rows[y]
                    let d = y * ow
                    if r < 0 {
                        for x in 0..<ow { buf[d + x] = pad }
                        continue
                    }
                    let base = r * width
                    for x in 0..<ow {
                        let c = cols[x]
                        buf[d + x] = c < 0 ? pad : s[base + c]
                    }
                }
            }
        }
        n = ow * oh
    }
}

extension Image8 {
    /// Mirror image left–right.
    public func flippedHorizontally() -> Image8 {
        let c = channels, w = width
        var out = pixels
        pixels.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                for y in 0..<height {
                    let row = y * w * c
                    for x in 0..<w {
                        let si = row + (w - 1 - x) * c, di = row + x * c
                        for ch in 0..<c { d[di + ch] = s[si + ch] }
                    }
                }
            }
        }
        return Image8(width: w, height: height, channels: c, pixels: out)
    }

    /// The `width × height` rectangle at (`x0`, `y0`) (must lie inside the image).
    public func cropped(x0: Int, y0: Int, width cw: Int, height ch: Int) -> Image8 {
        precondition(x0 >= 0 && y0 >= 0 && x0 + cw <= width && y0 + ch <= height,
                     "crop (\(x0), \(y0), \(cw)×\(ch)) of \(width)×\(height)")
        let c = channels
        var out = [UInt8]()
        out.reserveCapacity(cw * ch * c)
        for y in y0..<(y0 + ch) {
            let s = (y * width + x0) * c
            out.append(contentsOf: pixels[s..<(s + cw * c)])
        }
        return Image8(width: cw, height: ch, channels: c, pixels: out)
    }

    /// Pads at the right and bottom with `value` in every channel.
    public func padded(right: Int, bottom: Int, value: UInt8) -> Image8 {
        if right == 0 && bottom == 0 { return self }
        let c = channels, ow = width + right, oh = height + bottom
        var out = [UInt8](repeating: value, count: ow * oh * c)
        out.withUnsafeMutableBufferPointer { d in
            pixels.withUnsafeBufferPointer { s in
                for y in 0..<height {
                    let si = y * width * c, di = y * ow * c
                    for i in 0..<(width * c) { d[di + i] = s[si + i] }
                }
            }
        }
        return Image8(width: ow, height: oh, channels: c, pixels: out)
    }
}
