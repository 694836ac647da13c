// Tests of the augmentations: PIL / torch / OpenCV-exact resampling and colour, transform geometry, image–mask alignment, determinism.
// Golden values came from Pillow 13.0, torch 2.15 F.interpolate and opencv-python 5.0 run on the same formula images (numbers inline).
import Datasets
import Testing
import TensorCore

/// `(x·37 + y·91 + c·53 + ((x·y) mod 17)·7) mod 256`, the formula image the golden values were made from.
func formulaImage(width: Int, height: Int, channels: Int = 3) -> Image8 {
    var px = [UInt8](repeating: 0, count: width * height * channels)
    for y in 0..<height {
        for x in 0..<width {
            for c in 0..<channels {
                px[(y * width + x) * channels + c] = UInt8((x * 37 + y * 91 + c * 53 + ((x * y) % 17) * 7) % 256)
            }
        }
    }
    return Image8(width: width, height: height, channels: channels, pixels: px)
}

/// `Σ v_i · (i mod 1000 + 1)`, the checksum the golden generator printed.
func weightedSum<S: Sequence>(_ values: S) -> Int where S.Element: BinaryInteger {
    var s = 0
    for (i, v) in values.enumerated() { s += Int(v) * (i % 1000 + 1) }
    return s
}

/// A white `square` (x0, y0, x1, y1, exclusive) on black.
func squareImage(width: Int, height: Int, square: (Int, Int, Int, Int)) -> Image8 {
    var img = Image8(width: width, height: height, channels: 3, fill: 0)
    for y in square.1..<square.3 { for x in square.0..<square.2 { for c in 0..<3 { img.pixels[(y * width + x) * 3 + c] = 255 } } }
    return img
}

func squareMask(width: Int, height: Int, square: (Int, Int, Int, Int)) -> BinaryMask {
    var m = BinaryMask(width: width, height: height, bits: [UInt8](repeating: 0, count: width * height))
    for y in square.1..<square.3 { for x in square.0..<square.2 { m.bits[y * width + x] = 1 } }
    return m
}

/// Rasterizes an axis-aligned source rectangle after the transform: a pixel is set when its centre is inside.
struct RectangleRasterizer: MaskRasterizer {
    var x0: Double, y0: Double, x1: Double, y1: Double
    func rasterize(width: Int, height: Int, transform: AxisAlignedAffine) throws -> BinaryMask {
        let a = transform.apply(x: x0, y: y0), b = transform.apply(x: x1, y: y1)
        let lx = min(a.x, b.x), hx = max(a.x, b.x), ly = min(a.y, b.y), hy = max(a.y, b.y)
        var bits = [UInt8](repeating: 0, count: width * height)
        for y in 0..<height {
            let cy = Double(y) + 0.5
            guard cy > ly && cy < hy else { continue }
            for x in 0..<width {
                let cx = Double(x) + 0.5
                if cx > lx && cx < hx { bits[y * width + x] = 1 }
            }
        }
        return BinaryMask(width: width, height: height, bits: bits)
    }
}

/// Pixels of `mask` whose whole 5×5 neighbourhood is in the mask (away from resampling blur at edges).
func interiorPixels(_ mask: BinaryMask) -> [(Int, Int)] {
    var out: [(Int, Int)] = []
    for y in 2..<max(mask.height - 2, 2) {
        for x in 2..<max(mask.width - 2, 2) {
            var all = true
            for dy in -2...2 { for dx in -2...2 where mask.bits[(y + dy) * mask.width + x + dx] == 0 { all = false } }
            if all { out.append((x, y)) }
        }
    }
    return out
}

func meanValue(_ img: Image8, _ x: Int, _ y: Int) -> Int {
    (0..<3).reduce(0) { $0 + Int(img.pixels[(y * img.width + x) * 3 + $1]) } / 3
}

@Suite struct ResamplingTests {
    @Test func pilBilinearMatchesPillow() {
        // (w, h, newW, newH, checksum, first values) from PIL Image.resize(BILINEAR).
        let cases: [(Int, Int, Int, Int, Int, [UInt8])] = [
            (7, 5, 3, 4, 88953, [56, 109, 149, 120, 147, 174, 158, 143, 113, 147, 154, 137, 125, 110, 122, 114, 129, 136,
                                 110, 117, 133, 142, 154, 139, 173, 103, 110, 140, 152, 122, 130, 123, 139, 111, 127, 180]),
            (5, 3, 11, 7, 3_519_146, [0, 53, 106, 7, 60, 113, 24, 77, 130, 40, 93, 146]),
            (37, 23, 13, 9, 7_876_494, [112, 131, 142, 124, 133, 141, 118, 123, 136, 102, 120, 133]),
            (640, 480, 683, 512, 66_965_176_705, [0, 53, 106, 34, 87, 140, 68, 121, 174, 103, 156, 209]),
            (500, 375, 1024, 768, 150_583_716_585, [0, 53, 106, 9, 62, 115, 27, 80, 133, 45, 98, 151]),
            (333, 500, 120, 181, 4_150_323_858, [112, 131, 141, 125, 133, 140, 121, 123, 136, 102, 116, 131]),
            (64, 48, 64, 20, 236_883_073, [79, 132, 128, 122, 119, 172, 109, 162, 108, 153, 98, 146]),
        ]
        for (w, h, nw, nh, sum, first) in cases {
            let out = formulaImage(width: w, height: h).resizedPILBilinear(width: nw, height: nh)
            #expect(out.width == nw && out.height == nh)
            #expect(Array(out.pixels.prefix(first.count)) == first, "\(w)×\(h) → \(nw)×\(nh)")
            #expect(weightedSum(out.pixels) == sum, "\(w)×\(h) → \(nw)×\(nh)")
        }
    }

    @Test func resizeRegionEqualsResizeThenCrop() {
        let img = formulaImage(width: 57, height: 41)
        for (nw, nh) in [(131, 97), (20, 15), (57, 90), (101, 41)] {
            let full = img.resizedPILBilinear(width: nw, height: nh)
            let region = img.resizedPILBilinear(width: nw, height: nh, columns: 3..<(nw - 2), rows: 1..<(nh - 4))
            #expect(region == full.cropped(x0: 3, y0: 1, width: nw - 5, height: nh - 5), "\(nw)×\(nh)")
        }
    }

    @Test func nearestRulesMatchPillowAndTorch() {
        // (in, out, checksum of source indices, first indices).
        let pil: [(Int, Int, Int, [Int])] = [
            (7, 3, 22, [1, 3, 5]), (5, 11, 178, [0, 0, 1, 1, 2, 2, 2, 3, 3, 4]),
            (640, 683, 99_509_693, [0, 1, 2, 3, 4, 5, 6, 7, 7, 8]), (1000, 333, 37_023_065, [1, 4, 7, 10, 13, 16, 19, 22, 25, 28]),
            (480, 1024, 156_260_256, [0, 0, 1, 1, 2, 2, 3, 3, 3, 4]), (3, 3, 8, [0, 1, 2]),
            (100, 37, 46180, [1, 4, 6, 9, 12, 14, 17, 20, 22, 25]), (427, 1003, 141_765_846, [0, 0, 1, 1, 1, 2, 2, 3, 3, 4]),
        ]
        let torch: [(Int, Int, Int, [Int])] = [
            (7, 3, 16, [0, 2, 4]), (5, 11, 170, [0, 0, 0, 1, 1, 2, 2, 3, 3, 4]),
            (640, 683, 99_401_710, [0, 0, 1, 2, 3, 4, 5, 6, 7, 8]), (1000, 333, 36_925_704, [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]),
            (480, 1024, 156_149_984, [0, 0, 0, 1, 1, 2, 2, 3, 3, 4]), (3, 6, 29, [0, 0, 1, 1, 2, 2]),
            (100, 37, 45246, [0, 2, 5, 8, 10, 13, 16, 18, 21, 24]), (427, 1003, 141_660_315, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]),
        ]
        for (rule, table) in [(NearestRule.pil, pil), (NearestRule.torch, torch)] {
            for (i, o, sum, first) in table {
                let idx = rule.sourceIndices(inSize: i, outSize: o)
                #expect(Array(idx.prefix(first.count)) == first, "\(rule) \(i) → \(o)")
                #expect(weightedSum(idx) == sum, "\(rule) \(i) → \(o)")
            }
        }
    }
}

@Suite struct ColorAugSSDTests {
    @Test func hsvConversionsMatchOpenCV() {
        // BGR (10, 20, 30), (255, 0, 0), gray 200 → HSV (15, 170, 30), (120, 255, 255), (0, 0, 200).
        let rgb: [UInt8] = [30, 20, 10, 0, 0, 255, 200, 200, 200]
        let hsv = rgbToHSV(rgb)
        #expect(hsv == [15, 170, 30, 120, 255, 255, 0, 0, 200])
        // A 3-pixel row takes OpenCV's scalar (rounding) path and round-trips exactly.
        #expect(hsvToRGB(hsv, width: 3) == rgb)
        // HSV (100, 150, 200) → BGR: OpenCV gives (200, 160, 82) inside a 32-pixel SIMD block (truncation) and
        // (200, 161, 82) on the scalar tail (rounding).
        let pixel: [UInt8] = [100, 150, 200]
        let simdRow: [UInt8] = (0..<32).flatMap { _ in pixel }
        #expect(Array(hsvToRGB(simdRow, width: 32).prefix(3)) == [82, 160, 200])
        #expect(Array(hsvToRGB(Array(simdRow.prefix(9)), width: 3).prefix(3)) == [82, 161, 200])
        #expect(Array(hsvToRGB(simdRow + pixel, width: 33).suffix(3)) == [82, 161, 200])
    }

    @Test func fixedDrawsMatchReference() {
        // (brightness, contrastFirst, contrast, saturation, hue, checksum, first 9 values, pixel (33, 2)) from the
        // reference ColorAugSSDTransform steps run with cv2 on formulaImage(40, 6) (32 SIMD + 8 scalar pixels a row).
        let cases: [(ColorAugSSDParams, Int, [UInt8], [UInt8])] = [
            (ColorAugSSDParams(brightness: 12.75, contrastFirst: true, contrast: 1.3125, saturation: 0.625, hue: -17),
             52_224_108, [67, 154, 148, 116, 203, 197, 165, 252, 246], [255, 126, 242]),
            (ColorAugSSDParams(brightness: -20.5, contrastFirst: false, contrast: 0.75, saturation: 1.4375, hue: 18),
             15_282_748, [14, 0, 63, 9, 0, 91, 15, 4, 119], [155, 51, 0]),
            (ColorAugSSDParams(contrastFirst: true, hue: 5), 31_346_413, [0, 35, 106, 37, 72, 143, 74, 109, 180], [228, 25, 45]),
            (ColorAugSSDParams(contrastFirst: false, saturation: 1.25), 30_138_141, [0, 52, 106, 10, 76, 143, 47, 113, 180], [228, 0, 61]),
        ]
        let img = formulaImage(width: 40, height: 6)
        for (p, sum, first, px) in cases {
            let out = p.apply(to: img)
            #expect(Array(out.pixels.prefix(9)) == first, "\(p)")
            let i = (2 * 40 + 33) * 3
            #expect(Array(out.pixels[i..<(i + 3)]) == px, "\(p)")
            #expect(weightedSum(out.pixels) == sum, "\(p)")
        }
    }

    @Test func drawStatistics() {
        var rng = RNG(seed: 77)
        let n = 4000
        var bright = 0, contrastFirst = 0, contrast = 0, sat = 0, hue = 0
        var hues = Set<Int>()
        for _ in 0..<n {
            let p = ColorAugSSDParams.sample(rng: &rng)
            if let b = p.brightness { bright += 1; #expect(b >= -32 && b <= 32) }
            if p.contrastFirst { contrastFirst += 1 }
            if let c = p.contrast { contrast += 1; #expect(c >= 0.5 && c <= 1.5) }
            if let s = p.saturation { sat += 1; #expect(s >= 0.5 && s <= 1.5) }
            if let h = p.hue { hue += 1; hues.insert(h) }
        }
        for (name, count) in [("brightness", bright), ("order", contrastFirst), ("contrast", contrast), ("saturation", sat), ("hue", hue)] {
            #expect(abs(Double(count) / Double(n) - 0.5) < 0.04, "\(name): \(count) of \(n)")
        }
        #expect(hues == Set(-18...18))
    }
}

@Suite struct TransformGeometryTests {
    @Test func horizontalFlip() {
        let img = Image8(width: 3, height: 2, channels: 2, pixels: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        #expect(img.flippedHorizontally().pixels == [5, 6, 3, 4, 1, 2, 11, 12, 9, 10, 7, 8])
        let list = TransformList(inputSize: ImageSize(height: 2, width: 3), transforms: [.hflip(ImageSize(height: 2, width: 3))])
        let labels = LabelMap(width: 3, height: 2, labels: [0, 1, 2, 3, 4, 5])
        #expect(list.apply(to: labels).labels == [2, 1, 0, 5, 4, 3])
        let p = list.coordinateMap.apply(x: 0.5, y: 1)
        #expect(p.x == 2.5 && p.y == 1)
    }

    @Test func padValues() {
        let s = ImageSize(height: 2, width: 2)
        let list = TransformList(inputSize: s, transforms: [.pad(PadTransform(input: s, right: 1, bottom: 1, imageValue: 128, labelValue: 255))])
        let img = Image8(width: 2, height: 2, channels: 1, pixels: [1, 2, 3, 4])
        #expect(list.apply(to: img).pixels == [1, 2, 128, 3, 4, 128, 128, 128, 128])
        #expect(list.apply(to: LabelMap(width: 2, height: 2, labels: [5, 6, 7, 8])).labels == [5, 6, 255, 7, 8, 255, 255, 255, 255])
        #expect(list.apply(to: BinaryMask(width: 2, height: 2, bits: [1, 1, 1, 1])).bits == [1, 1, 0, 1, 1, 0, 0, 0, 0])
        #expect(list.apply(toIDs: [9, 9, 9, 9]) == [9, 9, 0, 9, 9, 0, 0, 0, 0])
    }

    @Test func shortestEdgeSizes() {
        // (h, w, short, max) → (h', w'), from detectron2's ResizeShortestEdge arithmetic.
        let cases: [(Int, Int, Int, Int, Int, Int)] = [
            (480, 640, 512, 2048, 512, 683), (640, 480, 256, 2048, 341, 256), (512, 4000, 1024, 2048, 262, 2048),
            (375, 500, 800, 1333, 800, 1067), (427, 640, 800, 1333, 800, 1199), (300, 1200, 800, 1333, 333, 1333),
            (683, 1024, 563, 2048, 563, 844), (333, 333, 307, 2048, 307, 307),
            // A side that rounds to 0 is 1: a 1-pixel-high strip, and a small max_size_test.
            (1, 4097, 512, 2048, 1, 2048), (1, 2667, 800, 1333, 1, 1333), (100, 300, 800, 1, 1, 1),
        ]
        for (h, w, s, m, eh, ew) in cases {
            #expect(shortestEdgeResize(ImageSize(height: h, width: w), shortEdge: s, maxSize: m).output == ImageSize(height: eh, width: ew),
                    "\(h)×\(w) short \(s) max \(m)")
        }
        #expect(ADE20KTrainAugmentation.defaultShortEdges ==
                [256, 307, 358, 409, 460, 512, 563, 614, 665, 716, 768, 819, 870, 921, 972, 1024])
    }

    @Test func resizeScaleAndFixedSizeCrop() {
        let scales: [(Int, Int, Double, Int, Int)] = [
            (480, 640, 0.1, 77, 102), (480, 640, 2.0, 1536, 2048), (427, 640, 1.2345, 843, 1264),
            (500, 375, 0.73, 748, 561), (640, 640, 1.0, 1024, 1024), (200, 1000, 0.5, 102, 512),
        ]
        for (h, w, s, eh, ew) in scales {
            #expect(resizeScaleTransform(ImageSize(height: h, width: w), targetHeight: 1024, targetWidth: 1024, scale: s).output
                    == ImageSize(height: eh, width: ew), "\(h)×\(w) scale \(s)")
        }
        // Offsets round(max(0, size − 1024)·u) with numpy's half-to-even rounding.
        let crops: [(Int, Int, Double, Int, Int)] = [
            (2048, 1536, 0.5, 512, 256), (1100, 1000, 0.25, 19, 0), (1025, 2049, 0.5, 0, 512),
            (1537, 1027, 0.5, 256, 2), (800, 600, 0.9, 0, 0),
        ]
        for (h, w, u, ey, ex) in crops {
            let t = fixedSizeCropTransforms(ImageSize(height: h, width: w), cropHeight: 1024, cropWidth: 1024, u: u)
            guard case .crop(let c) = t[0], case .pad(let p) = t[1] else { Issue.record("expected crop, pad"); continue }
            #expect(c.y0 == ey && c.x0 == ex, "\(h)×\(w) u \(u)")
            #expect(p.output == ImageSize(height: 1024, width: 1024))
            #expect(p.right == max(1024 - w, 0) && p.bottom == max(1024 - h, 0))
        }
        // A small image is kept whole (the crop clips) and padded with 128 to 1024².
        let t = fixedSizeCropTransforms(ImageSize(height: 800, width: 600), cropHeight: 1024, cropWidth: 1024, u: 0.3)
        let list = TransformList(inputSize: ImageSize(height: 800, width: 600), transforms: t)
        let out = list.apply(to: Image8(width: 600, height: 800, channels: 3, fill: 7))
        #expect(out.size == ImageSize(height: 1024, width: 1024))
        #expect(out.pixels[(799 * 1024 + 599) * 3] == 7 && out.pixels[(799 * 1024 + 600) * 3] == 128 && out.pixels[(800 * 1024) * 3] == 128)
    }

    @Test func randomCropKeepsShortSide() {
        var rng = RNG(seed: 1)
        var xs: [Int] = []
        for _ in 0..<400 {
            let c = randomAbsoluteCrop(ImageSize(height: 300, width: 700), height: 512, width: 512, rng: &rng)
            #expect(c.output == ImageSize(height: 300, width: 512))
            #expect(c.y0 == 0 && c.x0 >= 0 && c.x0 <= 188)
            xs.append(c.x0)
        }
        #expect(xs.min()! < 10 && xs.max()! > 178)
    }

    @Test func coordinateMapComposes() {
        var list = TransformList(inputSize: ImageSize(height: 10, width: 10))
        list.append(.hflip(ImageSize(height: 10, width: 10)))
        list.append(.resize(ResizeTransform(input: ImageSize(height: 10, width: 10), output: ImageSize(height: 5, width: 20))))
        list.append(.crop(CropTransform(input: ImageSize(height: 5, width: 20), x0: 3, y0: 1, width: 10, height: 4)))
        let p = list.coordinateMap.apply(x: 2, y: 4)
        #expect(p.x == 13 && p.y == 1)   // x: 10 − 2 = 8 → 16 → 13; y: 4 → 2 → 1
        #expect(list.outputSize == ImageSize(height: 4, width: 10))
    }

    @Test func testTimeResize() throws {
        var rng = RNG(seed: 0)
        let ade = try TestTimeResize.ade20k.apply(Sample(imageId: 1, image: formulaImage(width: 640, height: 480), targets: .none), rng: &rng)
        #expect(ade.image.size == ImageSize(height: 512, width: 683) && ade.originalSize == ImageSize(height: 480, width: 640))
        let coco = try TestTimeResize.coco.apply(Sample(imageId: 2, image: formulaImage(width: 500, height: 375), targets: .none), rng: &rng)
        #expect(coco.image.size == ImageSize(height: 800, width: 1067) && coco.masks.isEmpty)
        #expect(coco.image == formulaImage(width: 500, height: 375).resizedPILBilinear(width: 1067, height: 800))
    }
}

@Suite struct PipelineTests {
    let square = (24, 16, 72, 48)   // x0, y0, x1, y1 in a 96×64 image

    func adeSample(id: Int) -> Sample {
        var labels = [UInt8](repeating: 3, count: 96 * 64)
        for y in square.1..<square.3 { for x in square.0..<square.2 { labels[y * 96 + x] = 7 } }
        for y in 60..<64 { for x in 0..<96 { labels[y * 96 + x] = 255 } }   // an ignored strip
        return Sample(imageId: id, image: squareImage(width: 96, height: 64, square: square),
                      targets: .semantic(LabelMap(width: 96, height: 64, labels: labels)))
    }

    @Test func adeMasksStayOnTheSquare() throws {
        var aug = ADE20KTrainAugmentation()
        aug.shortEdges = [64, 96, 128, 160]
        aug.cropSize = ImageSize(height: 96, width: 96)
        var sawSquare = 0
        for seed in 0..<12 {
            var rng = augmentationRNG(seed: UInt64(seed), epoch: 0, imageId: 5)
            let out = try aug.apply(adeSample(id: 5), rng: &rng)
            #expect(out.image.size == ImageSize(height: 96, width: 96))
            #expect(Set(out.classes).isSubset(of: [3, 7]) && out.classes == out.classes.sorted())
            guard case .pad(let pad) = out.transforms.transforms.last! else { Issue.record("pad last"); continue }
            let valid = pad.input
            for (cls, mask) in zip(out.classes, out.masks) {
                for (x, y) in interiorPixels(mask) {
                    let v = meanValue(out.image, x, y)
                    if cls == 7 { #expect(v > 100, "seed \(seed) (\(x), \(y)) \(v)") } else { #expect(v < 60, "seed \(seed) (\(x), \(y)) \(v)") }
                }
                if cls == 7 && !interiorPixels(mask).isEmpty { sawSquare += 1 }
            }
            // Padding: image 128, in no mask.
            for y in 0..<96 {
                for x in 0..<96 where x >= valid.width || y >= valid.height {
                    #expect(out.image.pixels[(y * 96 + x) * 3] == 128)
                    #expect(out.masks.allSatisfy { $0.bits[y * 96 + x] == 0 })
                }
            }
        }
        #expect(sawSquare >= 6)
    }

    @Test func adeDefaultsProduce512Targets() throws {
        var rng = augmentationRNG(seed: 3, epoch: 1, imageId: 9)
        let out = try ADE20KTrainAugmentation().apply(adeSample(id: 9), rng: &rng)
        #expect(out.image.size == ImageSize(height: 512, width: 512))
        #expect(out.masks.allSatisfy { $0.size == ImageSize(height: 512, width: 512) })
        #expect(!out.classes.isEmpty && Set(out.classes).isSubset(of: [3, 7]))
    }

    @Test func lsjMasksStayOnTheSquare() throws {
        var aug = LSJTrainAugmentation()
        aug.imageSize = 128
        let anns = [
            InstanceAnnotation(id: 1, classIndex: 4, isCrowd: false, mask: .bitmap(squareMask(width: 96, height: 64, square: square))),
            InstanceAnnotation(id: 2, classIndex: 4, isCrowd: false,
                               mask: .deferred(RectangleRasterizer(x0: 24, y0: 16, x1: 72, y1: 48))),
            InstanceAnnotation(id: 3, classIndex: 8, isCrowd: true, mask: .bitmap(squareMask(width: 96, height: 64, square: (0, 0, 10, 10)))),
        ]
        let sample = Sample(imageId: 4, image: squareImage(width: 96, height: 64, square: square), targets: .instances(anns))
        var seen = 0
        for seed in 0..<12 {
            var rng = augmentationRNG(seed: UInt64(seed), epoch: 0, imageId: 4)
            let out = try aug.apply(sample, rng: &rng)
            #expect(out.image.size == ImageSize(height: 128, width: 128))
            #expect(!out.targetIds.contains(3), "crowd dropped")
            #expect(out.masks.allSatisfy { $0.area > 0 }, "empty filtered")
            for mask in out.masks {
                for (x, y) in interiorPixels(mask) { #expect(meanValue(out.image, x, y) > 200, "seed \(seed) (\(x), \(y))") }
            }
            // Outside every mask and away from its edge, inside the content: black.
            let content = out.transforms.transforms.compactMap { t -> ImageSize? in if case .pad(let p) = t { return p.input } else { return nil } }.first!
            if let m = out.masks.first {
                var outside = m
                outside.bits = m.bits.map { 1 - $0 }
                for y in 0..<content.height { for x in 0..<content.width { outside.bits[y * 128 + x] &= 1 } }
                for y in content.height..<128 { for x in 0..<128 { outside.bits[y * 128 + x] = 0 } }
                for y in 0..<content.height { for x in content.width..<128 { outside.bits[y * 128 + x] = 0 } }
                for (x, y) in interiorPixels(outside) { #expect(meanValue(out.image, x, y) < 40, "seed \(seed) (\(x), \(y))") }
            }
            // The bitmap and the rasterized polygon agree except on edge pixels.
            if out.masks.count == 2 {
                seen += 1
                let diff = zip(out.masks[0].bits, out.masks[1].bits).filter { $0 != $1 }.count
                #expect(diff <= 2 * 128 + 2 * 128, "seed \(seed): \(diff) pixels differ")
                #expect(zip(out.masks[0].bits, out.masks[1].bits).filter { $0 == 1 && $1 == 1 }.count > 0)
            }
            // Padding of the image is 128.
            if content.width < 128 { #expect(out.image.pixels[(0 * 128 + 127) * 3] == 128) }
        }
        #expect(seen >= 6)
    }

    @Test func panopticCrowdVoidAndEmptySegments() throws {
        // 8×8: segment 1 (class 2) left half, crowd segment 2 top right, segment 3 bottom-right 2×2, void elsewhere.
        var ids = [UInt32](repeating: 0, count: 64)
        for y in 0..<8 { for x in 0..<4 { ids[y * 8 + x] = 1 } }
        for y in 0..<3 { for x in 4..<8 { ids[y * 8 + x] = 2 } }
        for y in 6..<8 { for x in 6..<8 { ids[y * 8 + x] = 3 } }
        let targets = SampleTargets.panoptic(PanopticTargets(width: 8, height: 8, ids: ids, segments: [
            PanopticSegment(id: 1, classIndex: 2, isCrowd: false), PanopticSegment(id: 2, classIndex: 5, isCrowd: true),
            PanopticSegment(id: 3, classIndex: 9, isCrowd: false),
        ]))
        let s = ImageSize(height: 8, width: 8)
        let crop = CropTransform(input: s, x0: 1, y0: 0, width: 5, height: 8)
        let list = TransformList(inputSize: s, transforms: [.crop(crop), .pad(PadTransform(input: crop.output, right: 3, bottom: 0))])
        let t = try transformTargets(targets, with: list)
        #expect(t.classes == [2] && t.ids == [1])
        let m = t.masks[0]
        for y in 0..<8 { for x in 0..<8 { #expect(m.bits[y * 8 + x] == (x < 3 ? 1 : 0), "(\(x), \(y))") } }
        // The reference panoptic mapper keeps segments that became empty (all-zero masks).
        let kept = try transformTargets(targets, with: list, dropEmpty: false)
        #expect(kept.ids == [1, 3] && kept.masks[1].area == 0)
        var lsj = LSJTrainAugmentation()
        lsj.imageSize = 16
        var rng = RNG(seed: 1)
        let out = try lsj.apply(Sample(imageId: 1, image: formulaImage(width: 8, height: 8), targets: targets), rng: &rng)
        #expect(out.targetIds.contains(1) && !out.targetIds.contains(2))
    }

    @Test func instancesCrowdDroppedEmptyFiltered() throws {
        let s = ImageSize(height: 6, width: 6)
        let anns = [
            InstanceAnnotation(id: 10, classIndex: 1, isCrowd: false, mask: .bitmap(squareMask(width: 6, height: 6, square: (0, 0, 2, 2)))),
            InstanceAnnotation(id: 11, classIndex: 2, isCrowd: false, mask: .bitmap(squareMask(width: 6, height: 6, square: (5, 5, 6, 6)))),
            InstanceAnnotation(id: 12, classIndex: 3, isCrowd: true, mask: .bitmap(squareMask(width: 6, height: 6, square: (0, 0, 6, 6)))),
        ]
        // Flip, then keep columns 2..<6 of rows 0..<4: object 10 moves to x 4..<6 (crop x 2..<4), object 11 to (0, 5): gone.
        let crop = CropTransform(input: s, x0: 2, y0: 0, width: 4, height: 4)
        let list = TransformList(inputSize: s, transforms: [.hflip(s), .crop(crop)])
        let t = try transformTargets(.instances(anns), with: list)
        #expect(t.ids == [10] && t.classes == [1])
        #expect(t.masks[0] == squareMask(width: 4, height: 4, square: (2, 0, 4, 2)))
        let t2 = try transformTargets(.instances(anns), with: TransformList(inputSize: s, transforms: [.hflip(s)]))
        #expect(t2.ids == [10, 11])
        #expect(t2.masks[0] == squareMask(width: 6, height: 6, square: (4, 0, 6, 2)))
    }

    @Test func sameKeySameOutputOtherEpochDiffers() throws {
        let aug = ADE20KTrainAugmentation()
        let sample = Sample(imageId: 11, image: formulaImage(width: 80, height: 60),
                            targets: .semantic(LabelMap(width: 80, height: 60, labels: (0..<4800).map { UInt8($0 % 7) })))
        var r1 = augmentationRNG(seed: 5, epoch: 2, imageId: 11), r2 = augmentationRNG(seed: 5, epoch: 2, imageId: 11)
        let a = try aug.apply(sample, rng: &r1), b = try aug.apply(sample, rng: &r2)
        #expect(a.image == b.image && a.masks == b.masks && a.classes == b.classes && a.transforms == b.transforms)
        var differ = 0
        for id in 0..<8 {
            var s = sample
            s.imageId = id
            var e0 = augmentationRNG(seed: 5, epoch: 0, imageId: id), e1 = augmentationRNG(seed: 5, epoch: 1, imageId: id)
            let x = try aug.apply(s, rng: &e0).transforms, y = try aug.apply(s, rng: &e1).transforms
            if x != y { differ += 1 }
        }
        #expect(differ >= 7)
        #expect(augmentationStream(epoch: 0, imageId: 1) != augmentationStream(epoch: 1, imageId: 0))
    }

    @Test func mismatchedAnnotationIsADataError() {
        let sample = Sample(imageId: 3, image: formulaImage(width: 10, height: 10),
                            targets: .semantic(LabelMap(width: 9, height: 10, labels: [UInt8](repeating: 0, count: 90))))
        var rng = RNG(seed: 0)
        #expect(throws: DataError.self) { try ADE20KTrainAugmentation().apply(sample, rng: &rng) }
    }
}
