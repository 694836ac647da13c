// The evaluation engine on its own (no configuration file, no dataset on disk): a tiny model over in-memory images,
// one of them unreadable, evaluated with the layer-consistency metrics into an output folder.
import _TestSupport
import Datasets
import Distributed
import Evaluation
import Foundation
import Mask2FormerModel
import Testing
import TensorCore

@Suite struct ModelEvaluationTests {
    static let classes = 3

    static func tinyModel() -> Mask2Former {
        var rng = RNG(seed: 5)
        return Mask2Former(.testTiny(numClasses: classes), rng: &rng)
    }

    /// Five 40×48 images with three-class label maps; image index 2 cannot be read.
    static func data() -> EvaluationData {
        let names = (0..<5).map { "img\($0).png" }
        return EvaluationData(
            count: 5,
            load: { i in
                if i == 2 { throw DataError(file: "img2.jpg", problem: "not a JPEG file") }
                var rng = RNG(seed: 9, stream: UInt64(i))
                let pixels = (0..<(40 * 48 * 3)).map { _ in UInt8(rng.nextInt(below: 256)) }
                let labels = (0..<(40 * 48)).map { UInt8(($0 % 48) * classes / 48) }
                return Sample(imageId: i + 1, image: Image8(width: 48, height: 40, channels: 3, pixels: pixels),
                              targets: .semantic(LabelMap(width: 48, height: 40, labels: labels)))
            },
            classNames: ["a", "b", "c"], categoryIDs: nil, postProcessor: Mask2FormerPostProcessor(.semantic),
            imageID: { $0 + 1 }, makeEvaluator: { _ in SemanticTaskEvaluator(numClasses: classes, fileNames: names) })
    }

    static func evaluation(skipBadImages: Bool) throws -> ModelEvaluation {
        let split = try EvaluationSplit(data: data(), task: .semantic, root: "memory", split: "val",
                                        resize: TestTimeResize(shortEdge: 64, maxSize: 128, keepTargets: true), maxImages: 0)
        let options = EvaluationOptions(layerConsistency: true, decoderLayers: 2,
                                        matcher: HungarianMatcher(classWeight: 2, maskWeight: 5, diceWeight: 5),
                                        numPoints: 64, seed: 3, skipBadImages: skipBadImages)
        return ModelEvaluation(split: split, options: options)
    }

    /// An image whose post-processing at its original size cannot fit in memory is refused by name before the
    /// forward pass (a 12000² JPEG under the decoders' pixel budget would need 58 GB for 100 queries' masks).
    @Test func anImageTooLargeToPostProcessIsNamed() throws {
        let model = Self.tinyModel()
        model.eval()
        let sample = try Self.data().load(0)
        let post = Mask2FormerPostProcessor(.semantic)
        let resize = TestTimeResize(shortEdge: 64, maxSize: 128)
        // Semantic: the class scores at 48 × 40; instance (masks resized before inference): every query's mask.
        let need = post.bytesLowerBound(queries: 100, classes: Self.classes, outputHeight: 40, outputWidth: 48)
        #expect(need == 4 * 48 * 40 * Double(Self.classes))
        let instance = Mask2FormerPostProcessor(PostProcessingConfig(semanticOn: false, instanceOn: true))
        #expect(instance.bytesLowerBound(queries: 100, classes: Self.classes, outputHeight: 40, outputWidth: 48) == 4 * 48 * 40 * 100)
        // A memory below the need is refused, one that holds it runs.
        #expect {
            _ = try infer(model, sample: sample, resize: resize, postProcessor: post, context: "big.jpg", memoryBytes: Int(need) - 1)
        } throws: { error in "\(error)".hasPrefix("big.jpg: the 48×40 image's post-processing at its original size needs") }
        // The model's input, 48×40 resized to 77×64 and padded to 96×64: 3 floats per pixel, every prediction's Q mask
        // logits at stride 4, and the semantic path's Q masks cropped at 77×64.
        let q = Double(model.config.decoder.numQueries), predictions = Double(model.config.decoder.decLayers)
        let inputNeed = 4 * (3 * 96 * 64 + predictions * q * 24 * 16 + q * 77 * 64)
        #expect {
            _ = try infer(model, sample: sample, resize: resize, postProcessor: post, context: "big.jpg", memoryBytes: Int(inputNeed) - 1)
        } throws: { error in "\(error)".hasPrefix("big.jpg: the 48×40 image resized for the model to 96×64") }
        let out = try infer(model, sample: sample, resize: resize, postProcessor: post, context: "big.jpg", memoryBytes: Int(max(need, inputNeed)))
        #expect(out.result.semantic?.labels.count == 48 * 40)
        // The model's input: a test-time resize far beyond the image (65536, as `input.min_size_test` may say) is refused
        // by its resized size before anything runs; so is the largest pass of a test-time augmentation.
        let huge = TestTimeResize(shortEdge: 65536, maxSize: 1 << 20)
        #expect {
            _ = try infer(model, sample: sample, resize: huge, postProcessor: post, context: "big.jpg", memoryBytes: 1 << 34)
        } throws: { error in "\(error)".hasPrefix("big.jpg: the 48×40 image resized for the model to 78656×65536") }
        let tta = TestTimeAugmentation(minSizes: [64, 65536], maxSize: 1 << 20, flip: false)
        #expect {
            _ = try infer(model, sample: sample, resize: resize, postProcessor: post, augmentation: tta, context: "big.jpg", memoryBytes: 1 << 34)
        } throws: { error in "\(error)".contains("resized for the model to 78656×65536") }
    }

    /// Logits holding a NaN or an infinity (weights of huge magnitude) stop the image's inference with its name.
    @Test func nonFiniteLogitsAreNamed() throws {
        let model = Self.tinyModel()
        model.eval()
        let sample = try Self.data().load(0)
        let classWeight = try #require(model.stateDict().first { $0.0 == "sem_seg_head.predictor.class_embed.weight" }?.1)
        for i in 0..<classWeight.count { classWeight.data[i] = 3e38 }
        #expect {
            _ = try infer(model, sample: sample, resize: TestTimeResize(shortEdge: 64, maxSize: 128), postProcessor: Mask2FormerPostProcessor(.semantic),
                          context: "x.jpg")
        } throws: { error in "\(error)".hasPrefix("x.jpg: the model's class logits hold") && "\(error)".contains("diverged run") }
    }

    /// The model's `pixelMean` / `pixelStd` (`model.pixel_mean`) normalize the image infer() feeds it.
    @Test func inferNormalizesWithTheModelsStatistics() throws {
        var config = Mask2FormerConfig.testTiny(numClasses: Self.classes)
        config.pixelMean = [127.5, 100, 20]; config.pixelStd = [127.5, 50, 10]   // per channel, to catch an order mix-up
        var rng = RNG(seed: 5)
        let model = Mask2Former(config, rng: &rng)
        model.eval()
        let sample = try Self.data().load(0)
        let resize = TestTimeResize(shortEdge: 64, maxSize: 128)
        let out = try infer(model, sample: sample, resize: resize, postProcessor: Mask2FormerPostProcessor(.semantic), context: "x")
        var noRNG = RNG(seed: 0)
        let resized = try resize.apply(sample, rng: &noRNG)
        let ours = Batch.collate([resized], normalization: config.pixelNormalization).images
        let imagenet = Batch.collate([resized]).images
        #expect(out.batch.images.values == ours.values)
        #expect(out.batch.images.values != imagenet.values)
        let rgb = Array(resized.image.pixels.prefix(3))
        let firstPixel: [Float] = [(Float(rgb[0]) - 127.5) / 127.5, (Float(rgb[1]) - 100) / 50, (Float(rgb[2]) - 20) / 10]
        #expect(Array(out.batch.images.values.prefix(3)) == firstPixel)
    }

    final class Calls { var done: [Int] = [], totals: Set<Int> = [], finished = 0 }
    struct Recorder: EvaluationObserver {
        let calls: Calls
        mutating func imageEvaluated(done: Int, total: Int, seconds: Double) { calls.done.append(done); calls.totals.insert(total) }
        mutating func finished() { calls.finished += 1 }
    }

    @Test func evaluatesSkipsTheUnreadableImageAndWritesTheResults() throws {
        let evaluation = try Self.evaluation(skipBadImages: true)
        let model = Self.tinyModel()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("maskpilot-modeleval-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let calls = Calls()
        let outcome = try #require(try evaluation.run(model: model, communicator: LocalCommunicator(), outputDirectory: out,
                                                      observer: Recorder(calls: calls)))
        #expect(model.isTraining)   // restored after the evaluation
        #expect(outcome.scalars.map(\.name) == evaluation.metricNames)
        #expect(evaluation.metricNames.contains("mIoU") && evaluation.metricNames.contains("mIoU-L_0")
                && evaluation.metricNames.contains("Util_1"))
        #expect(outcome.json["images"] as? Int == 4)
        let skipped = try #require(outcome.json["skipped_images"] as? [[String: Any]])
        #expect(skipped.count == 1 && skipped[0]["image_id"] as? Int == 3)
        #expect(outcome.text.contains("img2.jpg: not a JPEG file"))
        #expect(calls.done == [1, 2, 4, 5] && calls.totals == [5] && calls.finished == 1)
        let written = try FileManager.default.contentsOfDirectory(atPath: out + "/semantic").sorted()
        #expect(written == ["img0.png", "img1.png", "img3.png", "img4.png"])
        let results = try JSONSerialization.jsonObject(with: Foundation.Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
        let mIoU = try #require((results as? [String: Any])?["mIoU"] as? Double)
        #expect(mIoU == outcome.scalars.first { $0.name == "mIoU" }?.value)

        // The same model gives the same numbers again (the layer-consistency points are keyed by image id).
        let again = try #require(try evaluation.run(model: model, communicator: LocalCommunicator()))
        #expect(again.scalars.map(\.value) == outcome.scalars.map(\.value))
    }

    @Test func anUnreadableImageIsAnErrorUnlessSkipped() throws {
        let evaluation = try Self.evaluation(skipBadImages: false)
        #expect(throws: DataError.self) { _ = try evaluation.run(model: Self.tinyModel(), communicator: LocalCommunicator()) }
    }

    @Test func anEmptySelectionIsRefused() {
        var data = Self.data()
        data.count = 0
        #expect(throws: EvaluationError.self) {
            _ = try EvaluationSplit(data: data, task: .semantic, root: "memory", split: "val",
                                    resize: TestTimeResize(shortEdge: 64, maxSize: 128, keepTargets: false), maxImages: 0)
        }
    }
    /// Test-time augmentation against its composition by hand, on the scores (this random model's labels are all one
    /// class): one unflipped pass at the standard resize gives the standard scores bitwise; size 64 with flip gives the
    /// mean of the two passes' scores, the mirrored one computed on the mirrored image and mirrored back; two sizes give
    /// other scores; `infer` with augmentation takes the arg-max of those scores.
    @Test func testTimeAugmentationAveragesMirroredPasses() throws {
        let model = Self.tinyModel()
        model.eval()
        let sample = try Self.data().load(0)
        let post = Mask2FormerPostProcessor(.semantic)
        let resize = TestTimeResize(shortEdge: 64, maxSize: 128)
        var noRNG = RNG(seed: 0)
        func scores(_ image: Image8) throws -> [Float] {
            let r = try resize.apply(Sample(imageId: 0, image: image, targets: .none), rng: &noRNG)
            let b = Batch.collate([r], normalization: model.config.pixelNormalization)
            let last = withNoGrad { model(b.images).predictions.last! }
            let q = last.classLogits.shape[1]
            return post.semanticScores(classLogits: last.classLogits.reshaped([q, last.classLogits.shape[2]]),
                                       maskLogits: last.maskLogits.reshaped([q, last.maskLogits.shape[2], last.maskLogits.shape[3]]),
                                       size: InferenceImageSize(paddedHeight: b.paddedSize.height, paddedWidth: b.paddedSize.width,
                                                                imageHeight: r.image.height, imageWidth: r.image.width,
                                                                outputHeight: 40, outputWidth: 48)).values
        }
        func augmented(_ sizes: [Int], flip: Bool) throws -> [Float] {
            try augmentedSemanticScores(model, sample: sample, augmentation: TestTimeAugmentation(minSizes: sizes, maxSize: 128, flip: flip),
                                        postProcessor: post, precision: .fp32).values
        }
        let plain = try scores(sample.image), mirrored = try scores(sample.image.flippedHorizontally())
        #expect(try augmented([64], flip: false) == plain)
        var mean = [Float](repeating: 0, count: plain.count)
        for c in 0..<Self.classes { for y in 0..<40 { for x in 0..<48 {
            let row = (c * 40 + y) * 48
            mean[row + x] = (plain[row + x] + mirrored[row + 47 - x]) / 2
        } } }
        let flipped = try augmented([64], flip: true)
        #expect(zip(flipped, mean).map { abs($0 - $1) }.max()! <= 1e-6)
        #expect(zip(flipped, plain).map { abs($0 - $1) }.max()! > 1e-4)   // mirroring matters for this image
        let multi = try augmented([48, 96], flip: true)
        #expect(zip(multi, flipped).map { abs($0 - $1) }.max()! > 1e-4)
        let out = try infer(model, sample: sample, resize: resize, postProcessor: post,
                            augmentation: TestTimeAugmentation(minSizes: [48, 96], maxSize: 128, flip: true), context: "img0")
        #expect(out.result.semantic!.labels == MaskPostProcessing.semanticResult(scores: Tensor(multi, shape: [Self.classes, 40, 48])).labels)
        #expect(TestTimeAugmentation(minSizes: [48, 96], maxSize: 128, flip: true).passes.map { ($0.resize.shortEdge, $0.flipped) }
                    .elementsEqual([(48, false), (48, true), (96, false), (96, true)], by: ==))
    }
}
