// Fixture: locates and reads the reference fixtures in `Tests/Fixtures/` (made by tools/make_reference_fixtures.py) for tests.
// Corresponds to opening the fixture with h5py: tensors in PyTorch layout, int64 arrays, JSON string attributes.
import Checkpoint
import Foundation
import TensorCore

/// A reference fixture file, e.g. `try Fixture(named: "mask2former-tiny.h5")`.
///
/// Tensors come back exactly as stored, i.e. in **PyTorch layout** (NCHW feature maps, Linear weight
/// `[out, in]`, Conv weight `[out, in, kh, kw]`); converting to the model's NHWC layout is the caller's job.
/// Like every HDF5 object, a `Fixture` must stay on the thread that opened it.
public final class Fixture {
    /// Where fixtures live: `$MASKPILOT_FIXTURES` when set, else `<package root>/Tests/Fixtures`
    /// with the package root derived from this source file's location.
    public static var directory: URL {
        if let override = ProcessInfo.processInfo.environment["MASKPILOT_FIXTURES"], !override.isEmpty {
            return URL(fileURLWithPath: override, isDirectory: true)
        }
        // #filePath = <root>/Sources/_TestSupport/Fixture.swift
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent("Tests/Fixtures", isDirectory: true).standardizedFileURL
    }

    /// The URL of the fixture file `name` (whether or not it exists).
    public static func url(named name: String) -> URL {
        directory.appendingPathComponent(name)
    }

    /// The fixture's path on disk.
    public let url: URL
    /// The open file (read-only).
    public let file: HDF5File

    /// Opens the fixture `name` read-only; a missing file throws an error saying where it was looked for.
    public convenience init(named name: String) throws {
        try self.init(url: Fixture.url(named: name))
    }

    /// Opens the fixture at `url` read-only.
    public init(url: URL) throws {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw FixtureError.missing(url.path)
        }
        self.url = url
        self.file = try HDF5File(open: url.path, mode: .readOnly)
    }

    /// The dataset at `path` (e.g. "input/pixel_values") as a float32 tensor in its stored PyTorch layout.
    public func tensor(_ path: String) throws -> Tensor { try file.readTensor(path) }

    /// The integer dataset at `path` (e.g. "input/target0/classes", int64) as `[Int]`.
    public func ints(_ path: String) throws -> [Int] { try file.readInts(path) }

    /// The stored shape of the dataset at `path`.
    public func shape(_ path: String) throws -> [Int] { try file.dataset(path).shape }

    /// Whether a dataset or group exists at `path`.
    public func contains(_ path: String) throws -> Bool { try file.contains(path) }

    /// Every dataset name below `group`, relative to it, in name order — e.g. under "weights" the
    /// reference's parameter names ("model.pixel_level_module.encoder.embedder.embedder.convolution.weight", …).
    public func names(under group: String) throws -> [String] { try file.group(group).datasetPaths() }

    /// The string attribute `name` of the object at `path` ("/" or "" for the file's root).
    public func stringAttribute(_ name: String, at path: String = "/") throws -> String {
        try object(at: path).stringAttribute(name)
    }

    /// The numeric attribute `name` of the object at `path`, e.g. `doubleAttribute("total", at: "loss")`.
    public func doubleAttribute(_ name: String, at path: String = "/") throws -> Double {
        try object(at: path).doubleAttribute(name)
    }

    /// The string attribute `name` at `path` parsed as JSON (objects, arrays, numbers, strings, null).
    public func jsonAttribute(_ name: String, at path: String = "/") throws -> Any {
        let text = try stringAttribute(name, at: path)
        do {
            return try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            throw FixtureError.badAttribute(name: name, path: path, reason: "not valid JSON: \(error)")
        }
    }

    /// The root attribute `mask2former_config`: the reference model's configuration (HF Mask2FormerConfig JSON).
    public var config: [String: Any] {
        get throws {
            guard let object = try jsonAttribute("mask2former_config") as? [String: Any] else {
                throw FixtureError.badAttribute(name: "mask2former_config", path: "/", reason: "not a JSON object")
            }
            return object
        }
    }

    /// The root attribute `loss_terms`: unweighted loss terms by name (`loss_cross_entropy`, `loss_mask`,
    /// `loss_dice` for the final prediction, `…_k` for prediction k).
    public var lossTerms: [String: Double] {
        get throws {
            guard let object = try jsonAttribute("loss_terms") as? [String: Any] else {
                throw FixtureError.badAttribute(name: "loss_terms", path: "/", reason: "not a JSON object")
            }
            var terms: [String: Double] = [:]
            for (key, value) in object {
                guard let number = value as? NSNumber else {
                    throw FixtureError.badAttribute(name: "loss_terms", path: "/", reason: "\(key) is not a number")
                }
                terms[key] = number.doubleValue
            }
            return terms
        }
    }

    /// The `loss` group's attribute `total` (Σ_k 2·ce + 5·mask + 5·dice).
    public var totalLoss: Double {
        get throws { try doubleAttribute("total", at: "loss") }
    }

    private func object(at path: String) throws -> any HDF5Object {
        if path.isEmpty || path == "/" { return file }
        return try file.root.object(path)
    }
}

/// Why a fixture could not be used.
public enum FixtureError: Error, CustomStringConvertible {
    case missing(String)
    case badAttribute(name: String, path: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let path):
            let fromEnvironment = ProcessInfo.processInfo.environment["MASKPILOT_FIXTURES"].map { !$0.isEmpty } ?? false
            return "fixture not found at \(path) " + (fromEnvironment
                ? "(the directory comes from MASKPILOT_FIXTURES)"
                : "(set MASKPILOT_FIXTURES to the fixtures directory to override)")
        case .badAttribute(let name, let path, let reason):
            return "fixture attribute \"\(name)\" at \(path): \(reason)"
        }
    }
}
