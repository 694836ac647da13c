// FixtureLoaderTests: the reference fixture opens and its inputs, weights and loss attributes read as documented.
// Checks Tests/Fixtures/mask2former-tiny.h5 against Tests/Fixtures/README.md (counts taken with h5dump -n).
import Checkpoint
import Foundation
import Testing
import TensorCore
import _TestSupport

@Suite struct FixtureLoaderTests {
    static let name = "mask2former-tiny.h5"

    @Test func fixtureIsFound() {
        let url = Fixture.url(named: Self.name)
        #expect(url.lastPathComponent == Self.name)
        #expect(FileManager.default.fileExists(atPath: url.path), "fixture not at \(url.path); set MASKPILOT_FIXTURES")
    }

    @Test func inputsHaveTheDocumentedShapes() throws {
        let fixture = try Fixture(named: Self.name)
        let pixels = try fixture.tensor("input/pixel_values")
        #expect(pixels.shape == [2, 3, 64, 64])
        #expect(pixels.values.allSatisfy { $0.isFinite })
        let classes0 = try fixture.ints("input/target0/classes")
        #expect(classes0.count == 3 && classes0.allSatisfy { (0..<5).contains($0) })
        #expect(try fixture.ints("input/target1/classes").count == 2)
        #expect(try fixture.shape("input/target0/masks") == [3, 64, 64])
        #expect(try fixture.tensor("pixel_decoder/mask_features").shape == [2, 32, 16, 16])
        #expect(try fixture.tensor("predictions/prediction3/class_logits").shape == [2, 8, 6])
        #expect(try fixture.tensor("loss/prediction0/oversample_points").shape == [5, 588, 2])
    }

    @Test func weightsGradsAndBuffersAreListedByReferenceName() throws {
        let fixture = try Fixture(named: Self.name)
        let weights = try fixture.names(under: "weights")
        #expect(weights.count == 168)
        #expect(weights.contains("model.pixel_level_module.encoder.embedder.embedder.convolution.weight"))
        #expect(weights.contains("class_predictor.weight"))
        #expect(try fixture.names(under: "grads") == weights)
        #expect(try fixture.names(under: "buffers").count == 25)
        // PyTorch layout: Linear weight [out, in], Conv weight [out, in, kh, kw].
        #expect(try fixture.tensor("weights/class_predictor.weight").shape == [6, 32])
        #expect(try fixture.tensor("weights/model.pixel_level_module.encoder.embedder.embedder.convolution.weight").shape
                == [16, 3, 7, 7])
        #expect(try fixture.names(under: "loss").count == 32)
        #expect(try fixture.names(under: "loss").first == "prediction0/assign_query0")
    }

    @Test func lossAttributesParse() throws {
        let fixture = try Fixture(named: Self.name)
        let total = try fixture.totalLoss
        #expect(abs(total - 43.3670) < 1e-3)   // the generator prints it (seed 1)
        #expect(try fixture.doubleAttribute("total", at: "loss") == total)
        let terms = try fixture.lossTerms
        #expect(terms.count == 12)
        let ce = try #require(terms["loss_cross_entropy"])
        #expect(ce > 0 && ce.isFinite)
        // total = Σ_k 2·ce_k + 5·mask_k + 5·dice_k over the 4 predictions (unsuffixed = final).
        var sum = 0.0
        for suffix in ["_0", "_1", "_2", ""] {
            sum += 2 * terms["loss_cross_entropy" + suffix, default: .nan]
                + 5 * terms["loss_mask" + suffix, default: .nan] + 5 * terms["loss_dice" + suffix, default: .nan]
        }
        #expect(abs(sum - total) < 1e-3)
        #expect(try fixture.stringAttribute("note", at: "loss").contains("align_corners=False"))
        #expect(try fixture.stringAttribute("order", at: "predictions").hasPrefix("prediction{k}"))
    }

    @Test func configParses() throws {
        let fixture = try Fixture(named: Self.name)
        let config = try fixture.config
        let backbone = try #require(config["backbone_config"] as? [String: Any])
        #expect((backbone["hidden_sizes"] as? [Int]) == [16, 32, 64, 128])
        #expect((backbone["depths"] as? [Int]) == [1, 1, 1, 1])
        #expect(try fixture.stringAttribute("torch_version").isEmpty == false)
    }

    @Test func missingFixtureAndDatasetErrorsSayWhat() throws {
        let absent = #expect(throws: FixtureError.self) { _ = try Fixture(named: "no-such-fixture.h5") }
        #expect(absent.map(String.init(describing:))?.contains("no-such-fixture.h5") == true)
        let fixture = try Fixture(named: Self.name)
        let missing = #expect(throws: HDF5Error.self) { try fixture.tensor("weights/not.a.weight") }
        #expect(missing?.path.hasSuffix(":/weights/not.a.weight") == true)
    }
}
