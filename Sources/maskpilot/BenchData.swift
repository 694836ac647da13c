// `maskpilot bench data`: decode + augment throughput on one core for the ADE20K and COCO LSJ recipes.
// Measures the numbers docs/perf.md records; uses synthetic datasets written to a temporary folder.
import ArgumentParser
import Datasets
import Foundation

struct BenchData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Images/s of decode + augment (ADE20K 512 crops, COCO 1024 LSJ), one thread.")

    @Option(parsing: .unconditional, help: "Images per dataset.") var images: Int = 24
    @Option(parsing: .unconditional, help: "Passes over the images (timing uses all of them after one warm-up pass).") var passes: Int = 2

    func validate() throws {
        try requireOption("--images", images, atLeast: 1)
        try requireOption("--passes", passes, atLeast: 1)
    }

    func run() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("maskpilot-bench-data-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        print("maskpilot bench data — \(images) synthetic images per dataset, one thread")
        try writeSyntheticDataset(root: "\(root)/ade", options: SyntheticOptions(format: .ade20k, images: images, width: 683, height: 512, seed: 1))
        try writeSyntheticDataset(root: "\(root)/coco", options: SyntheticOptions(format: .cocoInstance, images: images, width: 640, height: 480, seed: 2))
        try writeSyntheticDataset(root: "\(root)/pan", options: SyntheticOptions(format: .cocoPanoptic, images: images, width: 640, height: 480, seed: 3))
        let ade = try ADE20KDataset(root: "\(root)/ade", split: "training")
        let coco = try COCOInstances(root: "\(root)/coco", split: "train2017")
        let pan = try COCOPanopticDataset(root: "\(root)/pan", split: "train2017")
        func measure(_ name: String, _ count: Int, load: (Int) throws -> Sample, augment: any SampleAugmentation) throws {
            var decode = 0.0, aug = 0.0, n = 0
            for pass in 0...passes {
                for i in 0..<count {
                    let t0 = Date()
                    let s = try load(i)
                    let t1 = Date()
                    var rng = augmentationRNG(seed: 7, epoch: pass, imageId: s.imageId)
                    _ = try augment.apply(s, rng: &rng)
                    let t2 = Date()
                    if pass > 0 { decode += t1.timeIntervalSince(t0); aug += t2.timeIntervalSince(t1); n += 1 }
                }
            }
            print(name.padding(toLength: 40, withPad: " ", startingAt: 0)
                  + String(format: "%7.1f images/s   (decode %.1f ms, augment %.1f ms per image)",
                           Double(n) / (decode + aug), 1000 * decode / Double(n), 1000 * aug / Double(n)))
        }
        try measure("ADE20K 683×512 → 512 crop (semantic)", ade.count, load: { try ade.sample($0) }, augment: ADE20KTrainAugmentation())
        try measure("COCO instances 640×480 → 1024 LSJ", coco.imageCount, load: { try coco.sample($0) }, augment: LSJTrainAugmentation())
        try measure("COCO panoptic 640×480 → 1024 LSJ", pan.count, load: { try pan.sample($0) }, augment: LSJTrainAugmentation())
    }
}
