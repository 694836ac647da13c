// MP-Former's direct-assignment losses on the mask-piloted part of every prediction.
// Corresponds to MP-Former criterion.py (the "dn" losses: loss_ce_dn, loss_mask_dn, loss_dice_dn) — docs/model.md#mp-losses.
import TensorCore

extension SetCriterion {
    /// The MP losses: for every prediction k, MP slot g·M + j is assigned to GT j of its image (no
    /// matching); the class loss runs over all G·M slots (padding slots target "no object"); BCE and dice
    /// run on assigned pairs with normaliser `numMasks × G`.
    ///
    /// Names are the matching losses' names with `_dn` before the prediction suffix
    /// (`loss_cross_entropy_dn`, `loss_mask_dn_3`, …). When MP was skipped (`layout` nil) every term
    /// is emitted as a zero constant, as the reference does; `includeClassLoss` false (`DN_NO_LB`)
    /// drops the class terms.
    public func maskPilotingLosses(_ piloted: PilotedPredictions?, targets: [MaskTargets],
                                   numMasks: Double, includeClassLoss: Bool = true, predictionCount: Int,
                                   points: PointSource) -> (losses: [String: Tensor], names: [String], total: Tensor) {
        let predictions = piloted?.predictions, layout = piloted?.layout
        var losses: [String: Tensor] = [:]
        var names: [String] = []
        var total = Tensor(scalar: 0)
        for k in 0..<predictionCount {
            var terms: [(String, Tensor, Float)] = []
            if let predictions, let layout {
                let p = predictions[k]
                let indices = layout.targetCounts.map { n -> MatchIndices in
                    var queries: [Int] = [], assigned: [Int] = []
                    for g in 0..<layout.groups {
                        for j in 0..<n { queries.append(g * layout.slotsPerGroup + j); assigned.append(j) }
                    }
                    return MatchIndices(queries: queries, targets: assigned)
                }
                if includeClassLoss {
                    terms.append(("loss_cross_entropy", classificationLoss(p.classLogits, targets: targets, indices: indices), classWeight))
                }
                let (mask, dice) = maskLosses(p.maskLogits, targets: targets, indices: indices,
                                              numMasks: numMasks * Double(layout.groups), predictionIndex: k, points: points)
                terms += [("loss_mask", mask, maskWeight), ("loss_dice", dice, diceWeight)]
            } else {
                if includeClassLoss { terms.append(("loss_cross_entropy", Tensor(scalar: 0), classWeight)) }
                terms += [("loss_mask", Tensor(scalar: 0), maskWeight), ("loss_dice", Tensor(scalar: 0), diceWeight)]
            }
            for (base, value, weight) in terms {
                let name = SetCriterion.lossName(base + "_dn", prediction: k, of: predictionCount)
                losses[name] = value
                names.append(name)
                total = total + value * weight
            }
        }
        return (losses, names, total)
    }
}
