// The task evaluators behind `maskpilot eval`: states gathered from several ranks merge to what one evaluator of all
// images gives, and the semantic label PNG eval writes decodes to class + 1 (what eval-results reads back).
import Datasets
import Evaluation
import Foundation
import Mask2FormerModel
import Testing
import TensorCore

@Suite struct TaskEvaluatorTests {
    /// Image i: a 4×3 label map; the prediction agrees with the ground truth except on image-dependent pixels.
    func semanticImage(_ i: Int) -> EvaluatedImage {
        let gt = (0..<12).map { UInt8(($0 + i) % 3) }
        let predicted = gt.enumerated().map { j, l in Int32(j % (i + 2) == 0 ? (Int(l) + 1) % 3 : Int(l)) }
        let result = InferenceResult(semantic: SemanticResult(scores: Tensor.zeros([3, 3, 4]), labels: predicted, height: 3, width: 4))
        return EvaluatedImage(index: i, imageID: i + 1, targets: .semantic(LabelMap(width: 4, height: 3, labels: gt)),
                              result: result, context: "image \(i)")
    }

    @Test func semanticStatesMergeToTheWholeAndFilesDecodeToClassPlusOne() throws {
        let names = (0..<4).map { "ADE_val_\($0).png" }
        var whole = SemanticTaskEvaluator(numClasses: 3, fileNames: names)
        var ranks = [SemanticTaskEvaluator(numClasses: 3, fileNames: names), SemanticTaskEvaluator(numClasses: 3, fileNames: names)]
        var files: [PredictionFile]? = []
        var none: [PredictionFile]? = nil
        for i in 0..<4 {
            try whole.update(semanticImage(i), files: &none)
            try ranks[i % 2].update(semanticImage(i), files: &files)
        }
        var merged = SemanticTaskEvaluator(numClasses: 3, fileNames: names)
        for r in ranks { try merged.merge(encodedState: try r.encodedState()) }
        let a = try merged.report(outputDirectory: nil, skippedImageIDs: []), b = try whole.report(outputDirectory: nil, skippedImageIDs: [])
        #expect(a.scalars.map(\.name) == merged.metricNames)
        #expect(a.scalars.map(\.value) == b.scalars.map(\.value) && a.lines == b.lines)
        #expect(a.scalars[2].value < 100 && a.scalars[2].value > 0)   // pACC: some pixels wrong, some right
        #expect(none == nil && files?.map(\.path) == ["semantic/ADE_val_0.png", "semantic/ADE_val_1.png",
                                                        "semantic/ADE_val_2.png", "semantic/ADE_val_3.png"])
        // The PNG holds the predicted class + 1.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("maskpilot-sem-\(UUID().uuidString).png")
        defer { try? FileManager.default.removeItem(at: url) }
        try Foundation.Data(files![1].png).write(to: url)
        let decoded = try loadImage(path: url.path)
        let expected = semanticImage(1).result.semantic!.labels.map { UInt8($0 + 1) }
        #expect(decoded.width == 4 && decoded.height == 3 && decoded.pixels.enumerated().allSatisfy { $0.element == expected[$0.offset / decoded.channels] })
    }
}
