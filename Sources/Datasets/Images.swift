// The Data target's core value types: 8-bit images, label maps and binary masks, and the error every reader throws.
// Corresponds to detectron2's numpy HWC uint8 images, sem_seg label maps and BitMasks.

/// An 8-bit image, row-major, channels interleaved (`[height, width, channels]`): RGB has 3 channels,
/// gray 1. Pixel (x, y), channel c is `pixels[(y·width + x)·channels + c]`.
public struct Image8: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && channels > 0 && pixels.count == width * height * channels,
                     "Image8: \(pixels.count) bytes for \(width)×\(height)×\(channels)")
        self.width = width; self.height = height; self.channels = channels; self.pixels = pixels
    }

    /// A `width×height×channels` image filled with `value`.
    public init(width: Int, height: Int, channels: Int, fill value: UInt8 = 0) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: value, count: width * height * channels))
    }
}

/// A per-pixel class map (`[height, width]`, row-major); 255 is "ignore" by convention.
public struct LabelMap: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var labels: [UInt8]

    public init(width: Int, height: Int, labels: [UInt8]) {
        precondition(labels.count == width * height, "LabelMap: \(labels.count) labels for \(width)×\(height)")
        self.width = width; self.height = height; self.labels = labels
    }
}

/// One binary mask (`[height, width]`, row-major, 0 or 1).
public struct BinaryMask: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var bits: [UInt8]

    public init(width: Int, height: Int, bits: [UInt8]) {
        precondition(bits.count == width * height, "BinaryMask: \(bits.count) values for \(width)×\(height)")
        self.width = width; self.height = height; self.bits = bits
    }

    /// Number of set pixels.
    public var area: Int { bits.reduce(0) { $0 + Int($1 != 0 ? 1 : 0) } }
}

/// A problem with input data, naming the file, the record (image / annotation / segment id) and what is wrong.
public struct DataError: Error, CustomStringConvertible, Sendable {
    public var file: String
    /// e.g. "image 42", "annotation 1001", "segment 7"; empty when the whole file is at fault.
    public var record: String
    public var problem: String

    public init(file: String, record: String = "", problem: String) {
        self.file = file; self.record = record; self.problem = problem
    }

    public var description: String { record.isEmpty ? "\(file): \(problem)" : "\(file): \(record): \(problem)" }
}
