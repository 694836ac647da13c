// Tests of the dataset-format descriptors' training recipes: the configuration's input keys reach the augmentation
// (LSJ scale range; the short-edge crop's sizes for Cityscapes), and every format opens its synthetic split.
import Datasets
import Foundation
import Testing
import TensorCore
import Training
import _TestSupport

@Suite struct DatasetFormatsTests {
    /// `input.min_scale = max_scale = 0.5` on 64×64 COCO images with a 64 crop: every image is resized to 32×32 and
    /// padded (128) to 64×64; a range of 1…1 leaves no pad.
    @Test func lsjScaleRangeComesFromTheConfig() throws {
        let root = try makeTestDirectory("lsj").path
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cocoInstance, images: 3, width: 64, height: 64, seed: 2))
        for (scale, padded) in [(0.5, true), (1.0, false)] {
            var config = MaskPilotConfig()
            config.data.format = .cocoInstance; config.data.root = root
            config.input.cropSize = 64; config.input.minScale = scale; config.input.maxScale = scale
            let data = try config.data.format.descriptor.trainingData(config: config, split: "train2017")
            for i in 0..<data.count {
                var rng = RNG(seed: 1, stream: UInt64(i))
                let out = try data.augment(try data.load(i), &rng)
                #expect(out.image.width == 64 && out.image.height == 64)
                let corner = out.image.pixels[(63 * 64 + 63) * 3]
                #expect((corner == 128) == padded)
                #expect(out.masks.allSatisfy { m in (0..<64).allSatisfy { m.bits[63 * 64 + $0] == 0 } } || !padded)
            }
        }
    }

    /// Cityscapes: `input.crop_size [h, w]`, `min_size_train`, `max_size_train` reach the recipe (no pad).
    @Test func cityscapesCropComesFromTheConfig() throws {
        let root = try makeTestDirectory("cs-formats").path
        try writeSyntheticDataset(root: root, options: SyntheticOptions(format: .cityscapes, images: 2, width: 128, height: 64, seed: 2))
        for format in [DataConfig.Format.cityscapesSemantic, .cityscapesInstance, .cityscapesPanoptic] {
            var config = MaskPilotConfig()
            config.data.format = format; config.data.root = root
            config.input.cropSize = CropSize(height: 32, width: 48); config.input.minSizeTrain = [40]; config.input.maxSizeTrain = 1000
            let data = try format.descriptor.trainingData(config: config, split: "train")
            #expect(data.count == 2 && data.numClasses == (format == .cityscapesInstance ? 8 : 19))
            var rng = RNG(seed: 1, stream: 3)
            let out = try data.augment(try data.load(0), &rng)
            #expect(out.image.width == 48 && out.image.height == 32, "\(format): \(out.image.width)×\(out.image.height)")
            #expect(out.masks.allSatisfy { $0.width == 48 && $0.height == 32 })
        }
    }
}
