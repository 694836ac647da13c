// COCOMaskAP: COCO instance-segmentation mask AP/AR, reproducing pycocotools' COCOeval(iouType="segm")
// (evaluateImg + accumulate + summarize) with its default parameters.
// Reference: pycocotools/cocoeval.py (COCOeval.computeIoU, evaluateImg, accumulate, summarize) and
// maskApi.c (rleIou). Written from their documented behaviour; checked against the COCO API by
// tools/make_coco_ap_fixture.py and Tests/EvaluationTests/COCOMaskAPTests.swift.

import Datasets

/// One ground-truth object for mask AP.
public struct COCOMaskAPGroundTruth: Sendable {
    public var imageID: Int
    public var categoryID: Int
    public var isCrowd: Bool
    /// The annotation's `area` field (COCO uses it, not the mask area, for the small/medium/large ranges).
    public var area: Double
    public var rle: COCORLE
    public init(imageID: Int, categoryID: Int, isCrowd: Bool, area: Double, rle: COCORLE) {
        self.imageID = imageID; self.categoryID = categoryID; self.isCrowd = isCrowd; self.area = area; self.rle = rle
    }
}

/// One detection (a results-JSON entry): its mask, score and category.
public struct COCOMaskAPDetection: Sendable {
    public var imageID: Int
    public var categoryID: Int
    public var score: Double
    public var rle: COCORLE
    public init(imageID: Int, categoryID: Int, score: Double, rle: COCORLE) {
        self.imageID = imageID; self.categoryID = categoryID; self.score = score; self.rle = rle
    }
}

/// The 12 numbers COCOeval.summarize prints (as fractions in [0, 1]; −1 where there is no data).
public struct COCOMaskAPResult: Sendable, Equatable {
    /// `[AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl]`, in COCOeval.stats order.
    public var stats: [Double]
    public var ap: Double { stats[0] }
    public var ap50: Double { stats[1] }
    public var ap75: Double { stats[2] }
    public var apSmall: Double { stats[3] }
    public var apMedium: Double { stats[4] }
    public var apLarge: Double { stats[5] }
    public var ar1: Double { stats[6] }
    public var ar10: Double { stats[7] }
    public var ar100: Double { stats[8] }
    public var arSmall: Double { stats[9] }
    public var arMedium: Double { stats[10] }
    public var arLarge: Double { stats[11] }
    /// Each category's AP (IoU .50:.95, all areas, 100 detections; fractions in the `categoryIDs` order), NaN for a
    /// category without ground truth: detectron2's per-category table (`_derive_coco_results`: the mean of
    /// `precision[:, :, k, 0, -1]` over its entries above −1).
    public var perCategoryAP: [Double] = []
    public init(stats: [Double], perCategoryAP: [Double] = []) { self.stats = stats; self.perCategoryAP = perCategoryAP }
    public static let names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
}

public enum COCOMaskAP {
    /// IoU thresholds .50:.05:.95, computed as numpy.linspace does (so threshold comparisons match bit for bit).
    public static let iouThresholds: [Double] = linspace(0.5, 0.95, 10)
    /// Recall thresholds 0:.01:1 (numpy.linspace).
    public static let recallThresholds: [Double] = linspace(0.0, 1.0, 101)
    public static let maxDetections = [1, 10, 100]
    /// all, small, medium, large (inclusive bounds, as COCOeval compares `area < lo || area > hi`).
    public static let areaRanges: [(Double, Double)] = [(0, 1e10), (0, 1024), (1024, 9216), (9216, 1e10)]

    static func linspace(_ a: Double, _ b: Double, _ n: Int) -> [Double] {
        let step = (b - a) / Double(n - 1)
        var v = (0..<n).map { Double($0) * step + a }
        v[n - 1] = b
        return v
    }

    /// Ground truth of a loaded COCO instances file (every annotation, masks via `annToRLE`).
    /// `images`: only the first N images of the dataset (default all).
    public static func groundTruth(from instances: COCOInstances, images: Int? = nil) throws(EvaluationError) -> [COCOMaskAPGroundTruth] {
        var out: [COCOMaskAPGroundTruth] = []
        for i in 0..<min(instances.imageCount, images ?? instances.imageCount) {
            let image = instances.images[i]
            for a in instances.annotations(ofImage: i) {
                let rle: COCORLE
                do { rle = try a.segmentation.rle(imageHeight: image.height, imageWidth: image.width) } catch {
                    throw EvaluationError("annotation \(a.id)", error.description)
                }
                out.append(COCOMaskAPGroundTruth(imageID: a.imageID, categoryID: a.categoryID, isCrowd: a.isCrowd,
                                                 area: a.area.isNaN ? Double(rle.area) : a.area, rle: rle))
            }
        }
        return out
    }

    /// pycocotools' rleIou for one pair: intersection over union of two RLEs of the same size, or over the
    /// detection's area when the ground truth is a crowd region; 0 when they do not intersect, −1 on a size mismatch.
    public static func iou(_ dt: COCORLE, _ gt: COCORLE, gtIsCrowd: Bool) -> Double {
        if dt.height != gt.height || dt.width != gt.width { return -1 }
        let a = dt.counts, b = gt.counts
        var ia = 0, ib = 0
        var ca = a.first.map(Int.init) ?? 0, cb = b.first.map(Int.init) ?? 0
        var va = false, vb = false
        var inter = 0, union = 0
        if a.isEmpty || b.isEmpty { return 0 }
        ia = 1; ib = 1
        while true {
            let c = min(ca, cb)
            if va || vb { union += c; if va && vb { inter += c } }
            var more = 0
            ca -= c; if ca == 0 && ia < a.count { ca = Int(a[ia]); ia += 1; va.toggle() }; more += ca
            cb -= c; if cb == 0 && ib < b.count { cb = Int(b[ib]); ib += 1; vb.toggle() }; more += cb
            if more == 0 { break }
        }
        if inter == 0 { return 0 }
        if gtIsCrowd { union = dt.area }
        return Double(inter) / Double(union)
    }

    /// Per (image, category, area range) result of evaluateImg, for maxDet = 100.
    struct ImageEval {
        var scores: [Double]           // detections sorted by score, at most 100
        var matched: [[Bool]]          // [threshold][detection]
        var dtIgnore: [[Bool]]         // [threshold][detection]
        var gtIgnore: [Bool]
    }

    /// Scores `detections` against `groundTruth` as COCOeval(iouType="segm") does with default parameters.
    /// `imageIDs` and `categoryIDs` are the evaluated sets (COCO: every image and category of the ground-truth
    /// file); detections of other images are an error, of other categories are left out.
    public static func evaluate(imageIDs: [Int], categoryIDs: [Int], groundTruth: [COCOMaskAPGroundTruth],
                                detections: [COCOMaskAPDetection]) throws(EvaluationError) -> COCOMaskAPResult {
        let images = Array(Set(imageIDs)).sorted()
        let categories = Array(Set(categoryIDs)).sorted()
        let imageIndex = Dictionary(uniqueKeysWithValues: images.enumerated().map { ($1, $0) })
        let categoryIndex = Dictionary(uniqueKeysWithValues: categories.enumerated().map { ($1, $0) })
        let I = images.count, K = categories.count
        var gts = [[Int]](repeating: [], count: I * K)
        var dts = [[Int]](repeating: [], count: I * K)
        for (n, g) in groundTruth.enumerated() {
            guard let i = imageIndex[g.imageID], let k = categoryIndex[g.categoryID] else { continue }
            gts[k * I + i].append(n)
        }
        for (n, d) in detections.enumerated() {
            guard let i = imageIndex[d.imageID] else {
                throw EvaluationError("detection \(n)", "image id \(d.imageID) is not in the ground truth")
            }
            guard d.score.isFinite else { throw EvaluationError("detection \(n)", "score is not finite") }
            guard let k = categoryIndex[d.categoryID] else { continue }
            dts[k * I + i].append(n)
        }
        let T = iouThresholds.count, A = areaRanges.count
        let maxDet = maxDetections.last!
        // evalImgs[k][a][i]
        var evals = [[[ImageEval?]]](repeating: [[ImageEval?]](repeating: [ImageEval?](repeating: nil, count: I), count: A),
                                     count: K)
        for k in 0..<K {
            for i in 0..<I {
                let g = gts[k * I + i]
                var d = dts[k * I + i]
                if g.isEmpty && d.isEmpty { continue }
                // Stable sort by descending score (numpy mergesort on -score), keep the top maxDet.
                d = d.enumerated().sorted { l, r in
                    let sl = detections[l.element].score, sr = detections[r.element].score
                    return sl != sr ? sl > sr : l.offset < r.offset
                }.map(\.element)
                if d.count > maxDet { d = Array(d[0..<maxDet]) }
                // ious[d][g] in ground-truth file order
                var ious = [[Double]](repeating: [Double](repeating: 0, count: g.count), count: d.count)
                for (di, dn) in d.enumerated() {
                    for (gi, gn) in g.enumerated() {
                        ious[di][gi] = iou(detections[dn].rle, groundTruth[gn].rle, gtIsCrowd: groundTruth[gn].isCrowd)
                    }
                }
                let dtAreas = d.map { Double(detections[$0].rle.area) }
                for a in 0..<A {
                    let (lo, hi) = areaRanges[a]
                    let ignore0 = g.map { groundTruth[$0].isCrowd || groundTruth[$0].area < lo || groundTruth[$0].area > hi }
                    // Stable sort: non-ignored first.
                    let order = Array(g.indices.filter { !ignore0[$0] }) + Array(g.indices.filter { ignore0[$0] })
                    let gtIg = order.map { ignore0[$0] }
                    let crowd = order.map { groundTruth[g[$0]].isCrowd }
                    var matched = [[Bool]](repeating: [Bool](repeating: false, count: d.count), count: T)
                    var dtIg = matched
                    if !d.isEmpty && !g.isEmpty {
                        for t in 0..<T {
                            var gtMatched = [Bool](repeating: false, count: order.count)
                            for di in 0..<d.count {
                                var best = min(iouThresholds[t], 1 - 1e-10)
                                var m = -1
                                for gi in 0..<order.count {
                                    if gtMatched[gi] && !crowd[gi] { continue }
                                    if m > -1 && !gtIg[m] && gtIg[gi] { break }
                                    let v = ious[di][order[gi]]
                                    if v < best { continue }
                                    best = v; m = gi
                                }
                                if m == -1 { continue }
                                dtIg[t][di] = gtIg[m]
                                matched[t][di] = true
                                gtMatched[m] = true
                            }
                        }
                    }
                    for t in 0..<T {
                        for di in 0..<d.count where !matched[t][di] && (dtAreas[di] < lo || dtAreas[di] > hi) {
                            dtIg[t][di] = true
                        }
                    }
                    evals[k][a][i] = ImageEval(scores: d.map { detections[$0].score }, matched: matched,
                                               dtIgnore: dtIg, gtIgnore: gtIg)
                }
            }
        }
        // accumulate: precision[t][r][k][a][m], recall[t][k][a][m]
        let R = recallThresholds.count, M = maxDetections.count
        var precision = [Double](repeating: -1, count: T * R * K * A * M)
        var recall = [Double](repeating: -1, count: T * K * A * M)
        func pIndex(_ t: Int, _ r: Int, _ k: Int, _ a: Int, _ m: Int) -> Int { (((t * R + r) * K + k) * A + a) * M + m }
        func rIndex(_ t: Int, _ k: Int, _ a: Int, _ m: Int) -> Int { ((t * K + k) * A + a) * M + m }
        let eps = Double.ulpOfOne
        for k in 0..<K {
            for a in 0..<A {
                for (mi, md) in maxDetections.enumerated() {
                    let E = evals[k][a].compactMap { $0 }
                    if E.isEmpty { continue }
                    var scores: [Double] = []
                    var owner: [(Int, Int)] = []   // (eval, detection)
                    for (e, ev) in E.enumerated() {
                        for di in 0..<min(md, ev.scores.count) { scores.append(ev.scores[di]); owner.append((e, di)) }
                    }
                    let inds = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
                    let npig = E.reduce(0) { $0 + $1.gtIgnore.filter { !$0 }.count }
                    if npig == 0 { continue }
                    for t in 0..<T {
                        var tp = 0.0, fp = 0.0
                        var rc: [Double] = [], pr: [Double] = []
                        rc.reserveCapacity(inds.count); pr.reserveCapacity(inds.count)
                        for j in inds {
                            let (e, di) = owner[j]
                            let ig = E[e].dtIgnore[t][di], mt = E[e].matched[t][di]
                            if mt && !ig { tp += 1 } else if !mt && !ig { fp += 1 }
                            rc.append(tp / Double(npig))
                            pr.append(tp / (fp + tp + eps))
                        }
                        let nd = rc.count
                        recall[rIndex(t, k, a, mi)] = nd > 0 ? rc[nd - 1] : 0
                        if nd > 1 { for j in stride(from: nd - 1, to: 0, by: -1) where pr[j] > pr[j - 1] { pr[j - 1] = pr[j] } }
                        var j = 0
                        for (r, thr) in recallThresholds.enumerated() {
                            while j < nd && rc[j] < thr { j += 1 }   // searchsorted(rc, thr, side="left")
                            precision[pIndex(t, r, k, a, mi)] = j < nd ? pr[j] : 0
                        }
                    }
                }
            }
        }
        // summarize
        func summarize(ap: Bool, iouThr: Double? = nil, area: Int = 0, maxDets: Int = 100) -> Double {
            let mi = maxDetections.firstIndex(of: maxDets)!
            let ts = iouThr.map { thr in (0..<T).filter { abs(iouThresholds[$0] - thr) < 1e-12 } } ?? Array(0..<T)
            var sum = 0.0, n = 0
            for t in ts {
                for k in 0..<K {
                    if ap {
                        for r in 0..<R { let v = precision[pIndex(t, r, k, area, mi)]; if v > -1 { sum += v; n += 1 } }
                    } else {
                        let v = recall[rIndex(t, k, area, mi)]; if v > -1 { sum += v; n += 1 }
                    }
                }
            }
            return n == 0 ? -1 : sum / Double(n)
        }
        let stats = [
            summarize(ap: true), summarize(ap: true, iouThr: 0.5), summarize(ap: true, iouThr: 0.75),
            summarize(ap: true, area: 1), summarize(ap: true, area: 2), summarize(ap: true, area: 3),
            summarize(ap: false, maxDets: 1), summarize(ap: false, maxDets: 10), summarize(ap: false),
            summarize(ap: false, area: 1), summarize(ap: false, area: 2), summarize(ap: false, area: 3),
        ]
        let all = maxDetections.firstIndex(of: 100)!
        let perCategory = (0..<K).map { k -> Double in
            var sum = 0.0, n = 0
            for t in 0..<T { for r in 0..<R { let v = precision[pIndex(t, r, k, 0, all)]; if v > -1 { sum += v; n += 1 } } }
            return n == 0 ? .nan : sum / Double(n)
        }
        // In the caller's `categoryIDs` order (a JSON may list its categories in any order; `perCategory` is by sorted id).
        return COCOMaskAPResult(stats: stats, perCategoryAP: categoryIDs.map { perCategory[categoryIndex[$0]!] })
    }
}
