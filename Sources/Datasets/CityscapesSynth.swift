// A synthetic Cityscapes split in the full official layout: leftImg8bit PNGs, gtFine labelIds / instanceIds (16-bit) /
// color PNGs and polygons JSON per frame, and the panoptic JSON + PNGs exactly as cityscapesscripts' createPanopticImgs
// derives them from instanceIds. No reference counterpart: the stand-in for the Cityscapes download in tests, the
// smoke run and experiments (docs/data.md#cityscapes).
import Foundation
import TensorCore

/// The cities frames are spread over (real Cityscapes city names of the split, else `city0`, `city1`, …).
func syntheticCities(split: String) -> [String] {
    switch split {
    case "train": ["aachen", "bochum", "bremen"]
    case "val": ["frankfurt", "lindau", "munster"]
    case "test": ["berlin", "bielefeld", "bonn"]
    default: ["city0", "city1", "city2"]
    }
}

/// One drawn region: its label id, the value it writes to instanceIds, its polygon and its `polygons.json` label.
private struct CityscapesSynthObject {
    var labelID: Int
    var value: UInt16
    var polygon: [[Double]]
    var jsonLabel: String
}

/// Writes `options.images` frames of split `options.split` under `root` (`options.width × options.height`, 2:1 like
/// Cityscapes). Each frame has sky, buildings, vegetation, road and sidewalk; poles and signs; 3–9 objects of the
/// instance classes (some too small to count, some caravans and trailers, which are instances but void); sometimes a
/// group region (a crowd of one class without instance id); void regions (ego vehicle, out-of-ROI border, static and
/// dynamic blobs). Returns the number of panoptic segments written.
func writeSyntheticCityscapes(root: String, options o: SyntheticOptions) throws -> Int {
    let fm = FileManager.default
    func mkdir(_ p: String) throws {
        do { try fm.createDirectory(atPath: p, withIntermediateDirectories: true) } catch {
            throw DataError(file: p, problem: "cannot create folder: \(error.localizedDescription)")
        }
    }
    var rng = RNG(seed: o.seed, stream: 0xC17E)
    let w = o.width, h = o.height, n = w * h
    let cities = syntheticCities(split: o.split)
    let panopticFolder = "\(root)/gtFine/cityscapes_panoptic_\(o.split)"
    try mkdir(panopticFolder)
    var images: [[String: Any]] = [], annotations: [[String: Any]] = []
    var segmentCount = 0
    let things = [24, 25, 26, 27, 28, 31, 32, 33]

    for i in 0..<o.images {
        let city = cities[i % cities.count]
        let stem = "\(city)_" + String(format: "%06d_%06d", i / cities.count, 19 + i)
        var objects: [CityscapesSynthObject] = []
        func rect(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double) -> [[Double]] { [[x0, y0], [x1, y0], [x1, y1], [x0, y1]] }
        func ellipse(_ cx: Double, _ cy: Double, _ rx: Double, _ ry: Double) -> [[Double]] {
            (0..<16).map { k in let a = 2 * Double.pi * Double(k) / 16; return [cx + rx * cos(a), cy + ry * sin(a)] }
        }
        func add(_ labelID: Int, _ polygon: [[Double]], value: UInt16? = nil, jsonLabel: String? = nil) {
            objects.append(CityscapesSynthObject(labelID: labelID, value: value ?? UInt16(labelID), polygon: polygon,
                                                 jsonLabel: jsonLabel ?? Cityscapes.labels[labelID].name))
        }
        let W = Double(w), H = Double(h)
        let horizon = H * (0.35 + 0.1 * rng.nextDouble())
        // Background, back to front: sky, buildings, vegetation, road, sidewalk, terrain.
        add(23, rect(0, 0, W, horizon))
        var x = 0.0
        while x < W {
            let bw = W * (0.1 + 0.15 * rng.nextDouble()), top = horizon * (0.2 + 0.6 * rng.nextDouble())
            add(rng.nextDouble() < 0.85 ? 11 : 12, rect(x, top, min(W, x + bw), horizon + 1))
            x += bw
        }
        add(21, ellipse(W * rng.nextDouble(), horizon, W * (0.08 + 0.1 * rng.nextDouble()), H * 0.12))
        add(7, rect(0, horizon, W, H))
        let curb = horizon + (H - horizon) * (0.15 + 0.1 * rng.nextDouble())
        add(8, rect(0, horizon, W * (0.25 + 0.2 * rng.nextDouble()), curb))
        if rng.nextDouble() < 0.5 { add(22, rect(W * 0.8, horizon, W, curb)) }
        if rng.nextDouble() < 0.6 { add(13, rect(W * (0.5 + 0.3 * rng.nextDouble()), horizon - H * 0.06, W, horizon + H * 0.02)) }
        // Poles with a sign or a light.
        for _ in 0..<(1 + rng.nextInt(below: 2)) {
            let px = W * rng.nextDouble()
            add(17, rect(px, horizon * 0.5, px + max(1.5, W * 0.012), curb))
            add(rng.nextDouble() < 0.5 ? 20 : 19, rect(px - W * 0.02, horizon * 0.45, px + W * 0.025, horizon * 0.6))
        }
        // Void: static and dynamic blobs.
        if rng.nextDouble() < 0.5 { add(4, rect(W * rng.nextDouble(), horizon - H * 0.05, W * rng.nextDouble() + W * 0.05, horizon + H * 0.03)) }
        if rng.nextDouble() < 0.3 { add(5, ellipse(W * rng.nextDouble(), curb, W * 0.03, H * 0.04)) }
        // Objects of the instance classes, far (small, high) to near (large, low).
        var nextIndex = [Int: Int]()
        let count = 3 + rng.nextInt(below: 7)
        var placements: [(labelID: Int, depth: Double)] = (0..<count).map { _ in
            let roll = rng.nextDouble()
            let label = roll < 0.06 ? 29 : roll < 0.1 ? 30 : things[rng.nextInt(below: things.count)]
            return (label, rng.nextDouble())
        }
        placements.sort { $0.depth < $1.depth }
        for p in placements {
            let scale = 0.04 + 0.3 * p.depth * p.depth * (rng.nextDouble() < 0.15 ? 0.1 : 1)   // some tiny ones
            let human = p.labelID == 24 || p.labelID == 25
            let bw = W * scale * (human ? 0.35 : 1), bh = H * scale * (human ? 1.6 : 0.7)
            let cx = W * rng.nextDouble(), bottom = horizon + (H - horizon) * (0.1 + 0.8 * p.depth)
            let polygon = human ? ellipse(cx, bottom - bh / 2, bw / 2, bh / 2) : rect(cx - bw / 2, bottom - bh, cx + bw / 2, bottom)
            let index = nextIndex[p.labelID, default: 0]
            nextIndex[p.labelID] = index + 1
            add(p.labelID, polygon, value: UInt16(p.labelID * 1000 + index))
        }
        // A group region: a crowd of one class without instance id.
        if rng.nextDouble() < 0.4 {
            let label = [24, 26, 33][rng.nextInt(below: 3)]
            let gx = W * rng.nextDouble() * 0.7
            add(label, rect(gx, horizon, gx + W * 0.25, horizon + (H - horizon) * 0.2), jsonLabel: Cityscapes.labels[label].name + "group")
        }
        // Ego vehicle at the bottom and the out-of-ROI border, drawn last.
        add(1, ellipse(W / 2, H * 1.02, W * 0.45, H * 0.1))
        let b = max(1.0, W / 128)
        for r in [rect(0, 0, W, b), rect(0, H - b, W, H), rect(0, 0, b, H), rect(W - b, 0, W, H)] { add(3, r) }

        // Rasterize back to front.
        var labelIds = [UInt8](repeating: 0, count: n)
        var instanceIds = [UInt16](repeating: 0, count: n)
        var pixels = [UInt8](repeating: 0, count: 3 * n)
        for obj in objects {
            let flat = obj.polygon.flatMap { $0 }
            let mask = COCORLE.polygons([flat], height: h, width: w).decode()
            var colour = Cityscapes.labels[obj.labelID].color
            if obj.value >= 1000 { colour = colour.map { UInt8(clamping: Int($0) + rng.nextInt(below: 41) - 20) } }
            if colour == [0, 0, 0] { colour = [20, 20, 20] }
            for p in 0..<n where mask.bits[p] != 0 {
                labelIds[p] = UInt8(obj.labelID); instanceIds[p] = obj.value
                for c in 0..<3 { pixels[3 * p + c] = colour[c] }
            }
        }
        for k in 0..<pixels.count { pixels[k] = UInt8(clamping: Int(pixels[k]) + rng.nextInt(below: 13) - 6) }

        let imageDir = "\(root)/leftImg8bit/\(o.split)/\(city)", gtDir = "\(root)/gtFine/\(o.split)/\(city)"
        try mkdir(imageDir); try mkdir(gtDir)
        try writePNG(Image8(width: w, height: h, channels: 3, pixels: pixels), to: "\(imageDir)/\(stem)_leftImg8bit.png")
        try writePNG(Image8(width: w, height: h, channels: 1, pixels: labelIds), to: "\(gtDir)/\(stem)_gtFine_labelIds.png")
        try writeGray16PNG(Gray16Map(width: w, height: h, values: instanceIds), to: "\(gtDir)/\(stem)_gtFine_instanceIds.png")
        try writePNG(Image8(width: w, height: h, channels: 3, pixels: labelIds.flatMap { Cityscapes.labels[Int($0)].color }),
                     to: "\(gtDir)/\(stem)_gtFine_color.png")
        let polygons: [String: Any] = ["imgHeight": h, "imgWidth": w,
                                       "objects": objects.map { ["label": $0.jsonLabel, "polygon": $0.polygon.map { $0.map { $0.rounded() } }] }]
        try writeJSONFile(polygons, to: "\(gtDir)/\(stem)_gtFine_polygons.json")

        // createPanopticImgs: one segment per instanceIds value of an evaluated label; id = the value.
        var area: [UInt16: Int] = [:], box: [UInt16: (Int, Int, Int, Int)] = [:]
        for p in 0..<n {
            let v = instanceIds[p]
            area[v, default: 0] += 1
            let (px, py) = (p % w, p / w)
            let b = box[v] ?? (px, py, px, py)
            box[v] = (min(b.0, px), min(b.1, py), max(b.2, px), max(b.3, py))
        }
        var segments: [[String: Any]] = []
        var panoptic = [UInt8](repeating: 0, count: 3 * n)
        var keep = Set<UInt16>()
        for v in area.keys.sorted() {
            let label = Cityscapes.labels[v >= 1000 ? Int(v) / 1000 : Int(v)]
            if label.ignoreInEval { continue }
            keep.insert(v)
            let b = box[v]!
            segments.append(["id": Int(v), "category_id": label.id, "area": area[v]!, "bbox": [b.0, b.1, b.2 - b.0 + 1, b.3 - b.1 + 1],
                             "iscrowd": v < 1000 && label.hasInstances ? 1 : 0])
        }
        for p in 0..<n where keep.contains(instanceIds[p]) {
            let v = Int(instanceIds[p])
            panoptic[3 * p] = UInt8(v % 256); panoptic[3 * p + 1] = UInt8(v / 256 % 256); panoptic[3 * p + 2] = UInt8(v / 65536)
        }
        try writePNG(Image8(width: w, height: h, channels: 3, pixels: panoptic), to: "\(panopticFolder)/\(stem)_gtFine_panoptic.png")
        images.append(["id": stem, "file_name": "\(stem)_leftImg8bit.png", "width": w, "height": h])
        annotations.append(["image_id": stem, "file_name": "\(stem)_gtFine_panoptic.png", "segments_info": segments])
        segmentCount += segments.count
    }
    let categories: [[String: Any]] = Cityscapes.labels.filter { !$0.ignoreInEval }.map {
        ["id": $0.id, "name": $0.name, "color": $0.color.map(Int.init), "supercategory": $0.category, "isthing": $0.hasInstances ? 1 : 0]
    }
    try writeJSONFile(["images": images, "annotations": annotations, "categories": categories],
                      to: "\(root)/gtFine/cityscapes_panoptic_\(o.split).json")
    return segmentCount
}

/// Writes a JSON object atomically (temporary file, then rename); errors name the path.
func writeJSONFile(_ object: Any, to path: String) throws {
    do {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        try ImageFileIO.writeAtomically([UInt8](data), to: path)
    } catch let e as DataError { throw e } catch {
        throw DataError(file: path, problem: "cannot write: \(error.localizedDescription)")
    }
}
