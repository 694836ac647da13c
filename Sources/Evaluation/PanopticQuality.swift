// PanopticEvaluator: panoptic quality (PQ, SQ, RQ) overall, for things, for stuff and per category,
// with the COCO panoptic protocol.
// Reference: cocodataset/panopticapi panopticapi/evaluation.py (pq_compute_single_core, PQStat.pq_average):
// per image, a GT and a predicted segment of the same category match when IoU > 0.5, where
// union = pred_area + gt_area − intersection − (pred ∩ GT void); GT crowd segments are never matched nor counted
// as false negatives; an unmatched prediction is not a false positive when more than half of it lies on GT void
// plus the GT crowd region of its own category. Averages run over categories with tp + fp + fn > 0.
// Differences: segment areas are counted from the id maps (panopticapi takes GT areas from the JSON), so a GT
// segment with no pixel is skipped; several crowd segments of one category are all used (panopticapi keeps the last).
import Datasets

/// A predicted panoptic segmentation: a row-major id map (0 = no segment) and its segments.
public struct PanopticPrediction: Sendable {
    public struct Segment: Sendable, Hashable {
        /// Segment id as it appears in `ids`; never 0.
        public var id: UInt32
        public var classIndex: Int
        public init(id: UInt32, classIndex: Int) { self.id = id; self.classIndex = classIndex }
    }
    public var width: Int, height: Int
    public var ids: [UInt32]
    public var segments: [Segment]
    public init(width: Int, height: Int, ids: [UInt32], segments: [Segment]) {
        precondition(ids.count == width * height, "panoptic prediction id map of \(ids.count) for \(width)×\(height)")
        self.width = width; self.height = height; self.ids = ids; self.segments = segments
    }
}

/// Per-category counts (panopticapi's PQStatCat).
public struct PanopticCategoryStat: Sendable, Equatable {
    public var iouSum: Double = 0
    public var truePositives: Int = 0
    public var falsePositives: Int = 0
    public var falseNegatives: Int = 0
    public init() {}
    public init(iouSum: Double, truePositives: Int, falsePositives: Int, falseNegatives: Int) {
        self.iouSum = iouSum; self.truePositives = truePositives
        self.falsePositives = falsePositives; self.falseNegatives = falseNegatives
    }
    /// Whether the category took part (tp + fp + fn > 0).
    public var isCounted: Bool { truePositives + falsePositives + falseNegatives > 0 }
    public var pq: Double {
        let d = Double(truePositives) + 0.5 * Double(falsePositives) + 0.5 * Double(falseNegatives)
        return d > 0 ? iouSum / d : 0
    }
    public var sq: Double { truePositives > 0 ? iouSum / Double(truePositives) : 0 }
    public var rq: Double {
        let d = Double(truePositives) + 0.5 * Double(falsePositives) + 0.5 * Double(falseNegatives)
        return d > 0 ? Double(truePositives) / d : 0
    }
}

/// PQ / SQ / RQ averaged over `count` categories (all zero when `count` is 0).
public struct PanopticSummary: Sendable, Equatable {
    public var pq: Double, sq: Double, rq: Double
    public var count: Int
    public init(pq: Double, sq: Double, rq: Double, count: Int) { self.pq = pq; self.sq = sq; self.rq = rq; self.count = count }
}

/// The metrics of a `PanopticEvaluator`. Values are in [0, 1] (panopticapi prints them ×100).
public struct PanopticResult: Sendable, Equatable {
    public var all: PanopticSummary
    public var things: PanopticSummary
    public var stuff: PanopticSummary
    /// Per category (index = class index); a category with tp + fp + fn = 0 has pq = sq = rq = 0 and `isCounted` false.
    public var perClass: [PanopticCategoryStat]
}

/// Accumulates panopticapi's per-category tp / fp / fn / IoU sums over images.
public struct PanopticEvaluator: Sendable, Equatable {
    /// `isThing[c]` for each category c (class index).
    public let isThing: [Bool]
    public private(set) var stats: [PanopticCategoryStat]

    public init(isThing: [Bool]) {
        self.isThing = isThing
        stats = [PanopticCategoryStat](repeating: PanopticCategoryStat(), count: isThing.count)
    }

    /// Rebuilds an evaluator from gathered per-category counts.
    public init(isThing: [Bool], stats: [PanopticCategoryStat]) throws {
        guard stats.count == isThing.count else {
            throw EvaluationError("panoptic stats", "\(stats.count) categories of counts for \(isThing.count) categories")
        }
        self.isThing = isThing; self.stats = stats
    }

    public var numClasses: Int { isThing.count }

    /// Scores one image. Throws (naming `context`) on a size mismatch, duplicate or zero segment ids, a class
    /// outside 0..<numClasses, a predicted id in the map without a segment, or a predicted segment with no pixel
    /// (panopticapi's KeyErrors).
    public mutating func update(groundTruth gt: PanopticTargets, prediction pred: PanopticPrediction, context: String = "") throws {
        guard gt.width == pred.width && gt.height == pred.height else {
            throw EvaluationError(context, "prediction is \(pred.width)×\(pred.height), ground truth \(gt.width)×\(gt.height)")
        }
        let k = numClasses
        var gtSegs: [UInt32: PanopticSegment] = [:]
        for s in gt.segments {
            guard s.id != 0 else { throw EvaluationError(context, "ground-truth segment with id 0 (void)") }
            guard s.classIndex >= 0 && s.classIndex < k else {
                throw EvaluationError(context, "ground-truth segment \(s.id) has class \(s.classIndex) outside 0..<\(k)")
            }
            guard gtSegs.updateValue(s, forKey: s.id) == nil else {
                throw EvaluationError(context, "ground-truth segment id \(s.id) appears twice")
            }
        }
        var predSegs: [UInt32: Int] = [:]
        for s in pred.segments {
            guard s.id != 0 else { throw EvaluationError(context, "predicted segment with id 0 (void)") }
            guard s.classIndex >= 0 && s.classIndex < k else {
                throw EvaluationError(context, "predicted segment \(s.id) has class \(s.classIndex) outside 0..<\(k)")
            }
            guard predSegs.updateValue(s.classIndex, forKey: s.id) == nil else {
                throw EvaluationError(context, "predicted segment id \(s.id) appears twice")
            }
        }

        // Areas and the GT × prediction intersection table.
        var gtArea: [UInt32: Int] = [:], predArea: [UInt32: Int] = [:]
        var inter: [UInt64: Int] = [:]
        for i in 0..<gt.ids.count {
            let g = gt.ids[i], p = pred.ids[i]
            gtArea[g, default: 0] += 1
            predArea[p, default: 0] += 1
            inter[UInt64(g) << 32 | UInt64(p), default: 0] += 1
        }
        for (p, _) in predArea where p != 0 && predSegs[p] == nil {
            throw EvaluationError(context, "predicted segment id \(p) is in the id map but has no segment")
        }
        for s in pred.segments where predArea[s.id] == nil {
            throw EvaluationError(context, "predicted segment id \(s.id) has no pixel in the id map")
        }
        func overlap(_ g: UInt32, _ p: UInt32) -> Int { inter[UInt64(g) << 32 | UInt64(p)] ?? 0 }

        // Matching: a pair matches when IoU > 0.5 (at most one match per segment follows from IoU > 0.5).
        var gtMatched = Set<UInt32>(), predMatched = Set<UInt32>()
        // Visited in segment order (not dictionary order) so the IoU sums are reproducible.
        for gs in gt.segments where !gs.isCrowd && gtArea[gs.id] != nil {
            for ps in pred.segments where ps.classIndex == gs.classIndex {
                let n = overlap(gs.id, ps.id)
                guard n > 0 else { continue }
                let union = predArea[ps.id]! + gtArea[gs.id]! - n - overlap(0, ps.id)
                let iou = Double(n) / Double(union)
                if iou > 0.5 {
                    stats[gs.classIndex].truePositives += 1
                    stats[gs.classIndex].iouSum += iou
                    gtMatched.insert(gs.id); predMatched.insert(ps.id)
                }
            }
        }
        // False negatives; crowd regions per category.
        var crowdByClass: [Int: [UInt32]] = [:]
        for s in gt.segments where !gtMatched.contains(s.id) && gtArea[s.id] != nil {
            if s.isCrowd { crowdByClass[s.classIndex, default: []].append(s.id); continue }
            stats[s.classIndex].falseNegatives += 1
        }
        // False positives, unless more than half of the prediction is on void or its category's crowd region.
        for s in pred.segments where !predMatched.contains(s.id) {
            var ignored = overlap(0, s.id)
            for c in crowdByClass[s.classIndex] ?? [] { ignored += overlap(c, s.id) }
            if Double(ignored) / Double(predArea[s.id]!) > 0.5 { continue }
            stats[s.classIndex].falsePositives += 1
        }
    }

    /// Scores one image whose prediction is given as `PanopticTargets` (its crowd flags are ignored).
    public mutating func update(groundTruth: PanopticTargets, prediction: PanopticTargets, context: String = "") throws {
        let p = PanopticPrediction(width: prediction.width, height: prediction.height, ids: prediction.ids,
                                   segments: prediction.segments.map { .init(id: $0.id, classIndex: $0.classIndex) })
        try update(groundTruth: groundTruth, prediction: p, context: context)
    }

    /// Adds another evaluator's counts (another rank's shard). Categories must agree.
    public mutating func merge(_ other: PanopticEvaluator) throws {
        guard other.isThing == isThing else {
            throw EvaluationError("panoptic merge", "category lists differ (\(other.isThing.count) vs \(isThing.count) categories or thing/stuff flags)")
        }
        for c in 0..<stats.count {
            stats[c].iouSum += other.stats[c].iouSum
            stats[c].truePositives += other.stats[c].truePositives
            stats[c].falsePositives += other.stats[c].falsePositives
            stats[c].falseNegatives += other.stats[c].falseNegatives
        }
    }

    /// PQ / SQ / RQ over the categories selected by `isThing` (nil = all), as panopticapi's `pq_average`.
    public func summary(isThing selected: Bool? = nil) -> PanopticSummary {
        var pq = 0.0, sq = 0.0, rq = 0.0, n = 0
        for c in 0..<stats.count where selected == nil || isThing[c] == selected! {
            let s = stats[c]
            guard s.isCounted else { continue }
            n += 1; pq += s.pq; sq += s.sq; rq += s.rq
        }
        guard n > 0 else { return PanopticSummary(pq: 0, sq: 0, rq: 0, count: 0) }
        return PanopticSummary(pq: pq / Double(n), sq: sq / Double(n), rq: rq / Double(n), count: n)
    }

    public func result() -> PanopticResult {
        PanopticResult(all: summary(), things: summary(isThing: true), stuff: summary(isThing: false), perClass: stats)
    }
}
