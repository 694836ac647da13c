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

    /// The per-class tables: three `name value` cells a line, "nan" for a class without ground truth; the semantic
    /// evaluator prints and records them by name when it has the names.
    @Test func perClassTablesNameEveryClass() throws {
        let lines = perClassLines(title: "t:", names: ["a", "bb", "ccc", "d"], values: [12.5, nil, .nan, 100])
        #expect(lines == ["t:", "a         12.50 | bb          nan | ccc         nan", "d        100.00"])
        var ev = SemanticTaskEvaluator(numClasses: 2, fileNames: ["x.png"], storedOffset: 0, classNames: ["road", "sky"])
        let labels: [Int32] = [0, 0, 1, 1]
        var files: [PredictionFile]? = nil
        try ev.update(EvaluatedImage(index: 0, imageID: 1, targets: .semantic(LabelMap(width: 2, height: 2, labels: [0, 0, 0, 255])),
                                     result: InferenceResult(semantic: SemanticResult(scores: Tensor.zeros([2, 2, 2]), labels: labels, height: 2, width: 2)),
                                     context: "x"),
                      files: &files)
        let report = try ev.report(outputDirectory: nil, skippedImageIDs: [])
        #expect(report.lines.contains("road      66.67 | sky         nan"))
        let perClass = try #require(report.json["per_class"] as? [[String: Any]])
        #expect(perClass.map { $0["name"] as? String } == ["road", "sky"])
    }
}
