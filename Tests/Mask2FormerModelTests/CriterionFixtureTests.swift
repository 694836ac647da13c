// The criterion alone on the reference fixture: its stored predictions, targets and recorded points give its loss terms.
// Checks Tests/Fixtures/mask2former-tiny.h5 (loss/…, predictions/…, root attribute loss_terms) per Tests/Fixtures/README.md.
import Testing
import TensorCore
import _TestSupport
import Mask2FormerModel

@Suite struct CriterionFixtureTests {
    @Test func reproducesTheFixtureLossTermsAndAssignments() throws {
        let fixture = try Fixture(named: "mask2former-tiny.h5")
        let count = 4, images = 2
        var predictions: [MaskPrediction] = []
        var matcherPoints: [[Tensor]] = [], over: [Tensor] = [], random: [Tensor] = []
        for k in 0..<count {
            predictions.append(MaskPrediction(
                classLogits: try fixture.tensor("predictions/prediction\(k)/class_logits"),
                maskLogits: try fixture.tensor("predictions/prediction\(k)/mask_logits")))
            matcherPoints.append(try (0..<images).map { try fixture.tensor("loss/prediction\(k)/matcher_points\($0)") })
            over.append(try fixture.tensor("loss/prediction\(k)/oversample_points"))
            random.append(try fixture.tensor("loss/prediction\(k)/random_points"))
        }
        let targets = try (0..<images).map {
            MaskTargets(labels: try fixture.ints("input/target\($0)/classes"), masks: try fixture.tensor("input/target\($0)/masks"))
        }
        let source = RecordedPointSource(matcherPoints: matcherPoints, oversamplePoints: over, randomPoints: random)
        let criterion = SetCriterion(numClasses: 5, numPoints: 196)
        let out = criterion(predictions, targets: targets, points: source)
        #expect(out.numMasks == 5)

        for k in 0..<count {
            for b in 0..<images {
                let expected = MatchIndices(queries: try fixture.ints("loss/prediction\(k)/assign_query\(b)"),
                                            targets: try fixture.ints("loss/prediction\(k)/assign_target\(b)"))
                #expect(out.indices[k][b] == expected, "prediction \(k), image \(b)")
            }
        }
        let terms = try fixture.lossTerms
        #expect(Set(terms.keys) == Set(out.lossNames))
        for name in out.lossNames {
            let got = Double(out.losses[name]!.item), want = try #require(terms[name], "\(name) missing in fixture")
            #expect(abs(got - want) <= 1e-4 * abs(want), "\(name): \(got) vs \(want)")
        }
        let total = Double(out.total.item), wantTotal = try fixture.totalLoss
        #expect(abs(total - wantTotal) <= 1e-4 * abs(wantTotal), "total \(total) vs \(wantTotal)")
    }
}
