// Tests of the run logs: metrics.jsonl lines, the progress line, TensorBoard event files (CRC32C, framing, round trip).
// Reference behaviour: TensorFlow's RecordWriter/EventsWriter file format and detectron2's metrics.json / progress printer.
import Foundation
import Testing
import Training

private func temporaryDirectory(_ name: String) -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("maskpilot-\(name)-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

@Suite struct MetricsLogTests {
    private func record(step: Int, total: Float) -> MetricsRecord {
        MetricsRecord(step: step, epoch: 0, time: 1_700_000_000.25,
                      losses: ["loss_mask": 0.5, "loss_cross_entropy": 1.25, "loss_dice_dn": 0.1],
                      total: total, learningRate: 1e-4, gradNorm: 0.75,
                      timing: StepTiming(dataWait: 0.01, forward: 0.5, criterion: 0.25, backward: 1, allReduceWait: 0.125,
                                         optimizer: 0.0625),
                      imagesPerSecond: 4.5, extra: ["memory_gb": 1.5, "step": 99])
    }

    @Test func linesParseKeepOrderAndSurviveReopening() throws {
        let dir = temporaryDirectory("metrics")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let log = try MetricsLog(directory: dir)
            for s in 1...3 { try log.append(record(step: s, total: Float(s) * 2)) }
        }
        do {   // a second writer (e.g. a resumed run) appends, never rewrites
            let log = try MetricsLog(directory: dir)
            try log.append(record(step: 4, total: 8))
        }
        let text = try String(contentsOfFile: (dir as NSString).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 5 && lines.last == "")   // four lines, each ending in a newline
        for (i, line) in lines.dropLast().enumerated() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["step"] as? Int == i + 1)
            #expect((object["total"] as? Double) == Double(2 * (i + 1)))
            #expect(object["lr"] as? Double == 1e-4 && object["grad_norm"] as? Double == 0.75)
            #expect(object["images_per_s"] as? Double == 4.5 && object["time"] as? Double == 1_700_000_000.25)
            let losses = try #require(object["losses"] as? [String: Double])
            #expect(losses == ["loss_mask": 0.5, "loss_cross_entropy": 1.25, "loss_dice_dn": 0.1])
            let timing = try #require(object["timing"] as? [String: Double])
            #expect(timing == ["data_wait": 0.01, "forward": 0.5, "criterion": 0.25, "backward": 1,
                               "allreduce_wait": 0.125, "optimizer": 0.0625])
            #expect(object["memory_gb"] as? Double == 1.5 && object["extra.step"] as? Double == 99)
        }
    }

    @Test func keysAreSortedAndNonFiniteNumbersStayValidJSON() throws {
        var r = record(step: 7, total: .nan)
        r.losses = ["loss_mask": .infinity, "loss_dice": -.infinity]
        r.extra = [:]
        let line = r.jsonLine
        #expect(line.hasPrefix("{\"epoch\":0,\"grad_norm\":0.75,\"images_per_s\":4.5,\"losses\":{\"loss_dice\":\"-inf\",\"loss_mask\":\"inf\"},\"lr\":0.0001,\"step\":7,"))
        #expect(line.hasSuffix("\"total\":\"nan\"}"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["total"] as? String == "nan")
        #expect(!line.contains("\n"))
        // The same scalars for TensorBoard.
        let scalars = record(step: 1, total: 3).scalars
        #expect(scalars["loss/total"] == 3 && scalars["loss/mask"] == 0.5 && scalars["loss/dice_dn"] == Double(Float(0.1)))
        #expect(scalars["time/allreduce_wait"] == 0.125 && scalars["lr"] == 1e-4 && scalars["memory_gb"] == 1.5)
    }
}

@Suite struct ProgressLineTests {
    private let fullSnapshot = ProgressSnapshot(
        step: 120, totalSteps: 5000, total: 12.3456,
        losses: ["loss_cross_entropy": 0.81234, "loss_mask": 0.5, "loss_dice": 1.2,
                 "loss_mask_3": 9, "loss_cross_entropy_dn": 0.7, "loss_mask_dn": 0.4, "loss_dice_dn": 1.1],
        learningRate: 1e-4, imagesPerSecond: 4.2, etaSeconds: 3725, iterationSeconds: 0.952, dataSeconds: 0.00312,
        peakMemoryBytes: 812 * 1_048_576)

    @Test func formattingAndETA() {
        #expect(ProgressLine.format(fullSnapshot) == "step  120/5000  loss 12.35  ce 0.8123  mask 0.5  dice 1.2  ce_dn 0.7  mask_dn 0.4  dice_dn 1.1  lr 1.00e-04  time 0.952  data 0.00312  4.2 img/s  mem 812M  ETA 1h02m")
        let noMP = ProgressSnapshot(step: 1, totalSteps: 10, total: .nan, losses: ["loss_mask": 0.5],
                                    learningRate: 0.5, imagesPerSecond: nil, etaSeconds: nil)
        #expect(ProgressLine.format(noMP) == "step  1/10  loss nan  mask 0.5  lr 5.00e-01  - img/s  ETA -")
        #expect(ProgressLine.memory(20 * 1024 * 1_048_576) == "20.0G")
        #expect(ProgressLine.duration(42) == "42s" && ProgressLine.duration(725) == "12m05s")
        #expect(ProgressLine.duration(3 * 3600 + 7 * 60 + 40) == "3h07m" && ProgressLine.duration(2 * 86400 + 3 * 3600) == "2d03h")
        #expect(ProgressLine.duration(-1) == "?" && ProgressLine.duration(.infinity) == "?")
        #expect(ProgressLine.eta(remainingSteps: 4880, secondsPerStep: 0.5) == 2440)
        #expect(ProgressLine.eta(remainingSteps: -3, secondsPerStep: 0.5) == 0)
    }

    /// A terminal line keeps step, loss, lr, img/s and ETA and drops the less important fields until it fits.
    @Test func fitsTheTerminalWidthKeepingRateAndETA() {
        for width in [40, 61, 79, 100, 110, 200] {
            let line = ProgressLine.format(fullSnapshot, width: width)
            #expect(line.count <= width, "width \(width): \(line)")
            if width >= 61 {   // the five kept fields take 61 columns
                for field in ["step  120/5000", "loss 12.35", "lr 1.00e-04", "4.2 img/s", "ETA 1h02m"] {
                    #expect(line.contains(field), "width \(width) lost \(field): \(line)")
                }
            }
        }
        #expect(ProgressLine.format(fullSnapshot, width: 79) == "step  120/5000  loss 12.35  ce 0.8123  lr 1.00e-04  4.2 img/s  ETA 1h02m")
        #expect(ProgressLine.format(fullSnapshot, width: 100) == "step  120/5000  loss 12.35  ce 0.8123  mask 0.5  dice 1.2  lr 1.00e-04  4.2 img/s  ETA 1h02m")
        #expect(ProgressLine.format(fullSnapshot, width: 110) == "step  120/5000  loss 12.35  ce 0.8123  mask 0.5  dice 1.2  lr 1.00e-04  time 0.952  4.2 img/s  ETA 1h02m")
        #expect(ProgressLine.format(fullSnapshot, width: 1000) == ProgressLine.format(fullSnapshot))
        // Narrower than the kept fields alone: cut.
        #expect(ProgressLine.format(fullSnapshot, width: 20) == "step  120/5000  loss")
    }

    /// Losses and step time are medians over the last `window` steps; the rate and ETA a moving average.
    @Test func mediansOverTheWindow() throws {
        var p = ProgressLine(totalSteps: 100, style: .plain(period: 1), window: 4)
        let totals: [Double] = [100, 1, 2, 3, 50, 4]
        var last = ""
        for (i, t) in totals.enumerated() {
            let text = p.update(step: i + 1, total: t, losses: ["loss_mask": t / 10, "loss_mask_3": 7], learningRate: 1,
                                images: 2, stepSeconds: Double(i + 1), dataSeconds: 0.5)
            last = try #require(text)
        }
        // The last 4 totals are 2, 3, 50, 4: median 3.5; the losses likewise; step times 3, 4, 5, 6: median 4.5.
        #expect(last.hasPrefix("step   6/100  loss 3.5  mask 0.35  lr 1.00e+00  time 4.5  data 0.5  "))
        #expect(ProgressLine.median([3, 1, 2]) == 2 && ProgressLine.median([4, 1, 3, 2]) == 2.5 && ProgressLine.median([]) == nil)
    }

    @Test func plainLinesEveryPeriodAndAtTheEnd() {
        var p = ProgressLine(totalSteps: 7, style: .plain(period: 3), smoothing: 0.5)
        var printed: [Int] = []
        for step in 1...7 {
            if let text = p.update(step: step, total: 1, losses: [:], learningRate: 1e-3, images: 4, stepSeconds: 2) {
                #expect(text.hasSuffix("\n") && !text.contains("\r") && !text.contains("\u{1B}"))
                #expect(text.hasPrefix("step \(step)/7"))
                printed.append(step)
            }
        }
        #expect(printed == [1, 3, 6, 7])
        let end = p.finish()
        #expect(end == nil)   // the last step was printed already
        // Stopped early: finish prints the last step once.
        var q = ProgressLine(totalSteps: 100, style: .plain(period: 10))
        for step in 1...12 { _ = q.update(step: step, total: 1, losses: [:], learningRate: 1e-3, images: 2, stepSeconds: 1) }
        let qEnds = (q.finish(), q.finish())
        #expect(qEnds.0?.hasPrefix("step  12/100") == true && qEnds.1 == nil)
    }

    @Test func terminalRedrawsInPlaceWithSmoothedRateAndETA() throws {
        var p = ProgressLine(totalSteps: 10, style: .terminal(width: nil), smoothing: 0.5)
        let firstText = p.update(step: 1, total: 2, losses: [:], learningRate: 1e-4, images: 4, stepSeconds: 4)
        let first = try #require(firstText)
        #expect(first.hasPrefix("\r") && first.hasSuffix("\u{1B}[K") && !first.contains("\n"))
        #expect(first.contains("1 img/s") && first.contains("ETA 36s"))         // 4 images / 4 s; 9 steps × 4 s
        let secondText = p.update(step: 2, total: 2, losses: [:], learningRate: 1e-4, images: 4, stepSeconds: 2)
        let second = try #require(secondText)
        #expect(p.secondsPerStep == 3)                                             // 0.5·4 + 0.5·2
        #expect(second.contains("1.33 img/s") && second.contains("ETA 24s"))     // 4 / 3; 8 × 3
        #expect(p.finish() == nil)   // a drawn line is ended by the next message (Console)
        // An 80-column terminal: the line is fitted to 79 columns so it never wraps.
        var narrow = ProgressLine(totalSteps: 10, style: .terminal(width: 80))
        let drawnText = narrow.update(step: 1, total: 2, losses: ["loss_cross_entropy": 1, "loss_mask": 1, "loss_dice": 1,
                                                                  "loss_cross_entropy_dn": 1, "loss_mask_dn": 1, "loss_dice_dn": 1],
                                      learningRate: 1e-4, images: 4, stepSeconds: 1, dataSeconds: 0.25, peakMemoryBytes: 1 << 30)
        let drawn = try #require(drawnText)
        let visible = drawn.dropFirst().dropLast(3)
        #expect(visible.count <= 79 && visible.contains("lr 1.00e-04") && visible.contains("img/s") && visible.contains("ETA 9s"))
    }

    @Test func styleFromTheLauncher() {
        #expect(ProgressLine.standardOutputStyle(period: 5, environment: ["MASKPILOT_PROGRESS": "plain", "COLUMNS": "80"]) == .plain(period: 5))
        #expect(ProgressLine.standardOutputStyle(period: 5, environment: ["MASKPILOT_PROGRESS": "terminal", "COLUMNS": "72"]) == .terminal(width: 72))
    }

    /// Messages never share a line with a progress line drawn in place.
    @Test func consoleMessagesEndADrawnLine() {
        var out: [String] = []
        let console = Console { out.append($0) }
        console.message("start")
        console.progress("\rstep 1/3\u{1B}[K")
        console.progress("\rstep 2/3\u{1B}[K")
        console.message("checkpoint: model_0000002.h5")
        console.progress("\rstep 3/3\u{1B}[K")
        console.progress(nil)
        console.message("done")
        console.progress("eval 1/1\n")
        console.message("after a plain line")
        #expect(out.joined() == "start\n\rstep 1/3\u{1B}[K\rstep 2/3\u{1B}[K\ncheckpoint: model_0000002.h5\n\rstep 3/3\u{1B}[K\ndone\neval 1/1\nafter a plain line\n")
    }
}

@Suite struct TensorBoardTests {
    @Test func crc32cCheckValues() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)     // RFC 3720 B.4
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.masked(0) == 0xA282_EAD8)
        #expect(CRC32C.masked(0x8000_0000) == 0x0001_0000 &+ 0xA282_EAD8)
    }

    @Test func roundTripOfScalarsOverSeveralSteps() throws {
        let dir = temporaryDirectory("tb")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tbDir = (dir as NSString).appendingPathComponent("tb")
        var expected: [TensorBoardEventReader.Scalar] = []
        let path: String
        do {
            let writer = try TensorBoardWriter(directory: tbDir, wallTime: 1_700_000_000, hostname: "testhost")
            path = writer.path
            #expect((path as NSString).lastPathComponent == "events.out.tfevents.1700000000.testhost")
            for step in [1, 2, 3, 1000, 123_456_789] {
                let scalars = ["loss/total": 10 / Double(step), "lr": 1e-4 * Double(step), "loss/mask_dn_3": -0.5,
                               "grad_norm": step == 3 ? .nan : 0.25]
                try writer.add(scalars: scalars, step: step, wallTime: 1_700_000_000 + Double(step))
                for (tag, value) in scalars.sorted(by: { $0.key < $1.key }) {
                    expected.append(.init(step: step, tag: tag, value: Float(value), wallTime: 1_700_000_000 + Double(step)))
                }
            }
            try writer.flush()
            // A second writer in the same second gets its own file.
            let other = try TensorBoardWriter(directory: tbDir, wallTime: 1_700_000_000, hostname: "testhost")
            #expect(other.path == path + ".1")
        }   // deinit flushes and closes
        let (version, scalars) = try TensorBoardEventReader.read(path: path)
        #expect(version == "brain.Event:2")
        #expect(scalars.count == expected.count)
        for (a, b) in zip(scalars, expected) {
            #expect(a.step == b.step && a.tag == b.tag && a.wallTime == b.wallTime)
            #expect(a.value == b.value || (a.value.isNaN && b.value.isNaN))
        }
    }

    @Test func everySingleByteCorruptionIsDetected() throws {
        var bytes = TFRecord.frame(TensorBoardEvent.fileVersion(wallTime: 1.5))
        bytes += TFRecord.frame(TensorBoardEvent.scalars(["a": 1, "bb": 2.5], step: 300, wallTime: 2.5))
        let clean = try TensorBoardEventReader.read(bytes: bytes)
        #expect(clean.fileVersion == "brain.Event:2" && clean.scalars.map(\.tag) == ["a", "bb"])
        #expect(clean.scalars.map(\.step) == [300, 300] && clean.scalars.map(\.value) == [1, 2.5])
        for i in bytes.indices {
            for flip: UInt8 in [0x01, 0x80] {
                var bad = bytes
                bad[i] ^= flip
                #expect(throws: TFRecordError.self) { _ = try TFRecord.records(in: bad) }
            }
        }
        // Which check fires: a length byte → the length CRC; a data byte → the data CRC; cut short → truncated.
        var bad = bytes; bad[0] ^= 1
        #expect(throws: TFRecordError.lengthChecksumMismatch(offset: 0)) { _ = try TFRecord.records(in: bad) }
        bad = bytes; bad[14] ^= 1
        #expect(throws: TFRecordError.dataChecksumMismatch(offset: 0)) { _ = try TFRecord.records(in: bad) }
        let second = TFRecord.frame(TensorBoardEvent.fileVersion(wallTime: 1.5)).count
        #expect(throws: TFRecordError.truncated(offset: second)) { _ = try TFRecord.records(in: Array(bytes.dropLast(20))) }
    }

    @Test func eventEncodingMatchesTheProtoFieldNumbers() {
        // Event{wall_time=1.0 (field 1, fixed64), file_version="brain.Event:2" (field 3, bytes)}
        #expect(TensorBoardEvent.fileVersion(wallTime: 1) ==
                [0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x1A, 13] + Array("brain.Event:2".utf8))
        // Event{wall_time=0 (1), step=300 (2, varint AC 02), summary (5){ value (1){ tag "a" (1), simple_value 1.0 (2, fixed32) } }}
        #expect(TensorBoardEvent.scalars(["a": 1], step: 300, wallTime: 0) ==
                [0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0xAC, 0x02, 0x2A, 10, 0x0A, 8, 0x0A, 1, 0x61, 0x15, 0, 0, 0x80, 0x3F])
    }

    /// The events file of a short run (the `MetricsRecord.scalars` of five steps), byte for byte: the first
    /// record framed as TensorFlow's RecordWriter frames it, with CRCs worked out independently of `CRC32C`
    /// (Python, RFC 3720 check value 0xE3069283), then exactly one framed event per `add`, in order.
    /// With MASKPILOT_TB_SAMPLE naming a directory the file is written (and kept) there for the optional check
    /// with TensorBoard itself: `python3 tools/check_tensorboard.py "$MASKPILOT_TB_SAMPLE"`.
    @Test func sampleRunFileIsFramedExactly() throws {
        let keep = ProcessInfo.processInfo.environment["MASKPILOT_TB_SAMPLE"]
        let dir = keep ?? temporaryDirectory("tb-sample")
        defer { if keep == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let start = 1_700_000_000.0
        var expected = TFRecord.frame(TensorBoardEvent.fileVersion(wallTime: start))
        let path: String
        do {
            let writer = try TensorBoardWriter(directory: dir, wallTime: start, hostname: "sample")
            path = writer.path
            for step in 1...5 {
                let record = MetricsRecord(step: step, epoch: 0, time: start + Double(step),
                                           losses: ["loss_mask": 1 / Float(step), "loss_dice_dn": 0.5],
                                           total: 10 / Float(step), learningRate: 1e-4, gradNorm: 0.01 * Double(step),
                                           timing: StepTiming(forward: 0.5, backward: 1), imagesPerSecond: 2)
                try writer.add(scalars: record.scalars, step: step, wallTime: record.time)
                expected += TFRecord.frame(TensorBoardEvent.scalars(record.scalars, step: step, wallTime: record.time))
            }
            try writer.flush()
        }
        let data = try #require(FileManager.default.contents(atPath: path))
        let bytes = [UInt8](data)
        // uint64 length 24 · masked CRC32C of those 8 bytes · Event{wall_time 1.7e9 (field 1, fixed64),
        // file_version "brain.Event:2" (field 3)} · masked CRC32C of the 24 bytes; all little-endian.
        var firstRecord: [UInt8] = [0x18, 0, 0, 0, 0, 0, 0, 0, 0xA3, 0x7F, 0x4B, 0x22]
        firstRecord += [0x09, 0, 0, 0, 0x40, 0xFC, 0x54, 0xD9, 0x41, 0x1A, 0x0D]
        firstRecord += Array("brain.Event:2".utf8)
        firstRecord += [0xEC, 0xED, 0x8F, 0x9D]
        #expect(firstRecord.count == 40)
        #expect(Array(bytes.prefix(40)) == firstRecord)
        #expect(bytes.count == expected.count && bytes == expected)
        // What TensorBoard will show: 12 tags per step, every step, the values as float32.
        let (version, scalars) = try TensorBoardEventReader.read(path: path)
        #expect(version == "brain.Event:2")
        let tags = ["grad_norm", "images_per_s", "loss/dice_dn", "loss/mask", "loss/total", "lr", "time/allreduce_wait",
                    "time/backward", "time/criterion", "time/data_wait", "time/forward", "time/optimizer"]
        #expect(scalars.map(\.tag) == Array((1...5).map { _ in tags }.joined()))
        #expect(scalars.map(\.step) == (1...5).flatMap { Array(repeating: $0, count: 12) })
        #expect(scalars.filter { $0.tag == "loss/mask" }.map(\.value) == (1...5).map { 1 / Float($0) })
        #expect(scalars.filter { $0.tag == "grad_norm" }.map(\.value) == (1...5).map { Float(0.01 * Double($0)) })
        #expect(scalars.filter { $0.tag == "time/backward" }.allSatisfy { $0.value == 1 })
        #expect(scalars.filter { $0.tag == "lr" }.map(\.wallTime) == (1...5).map { start + Double($0) })
    }
}
