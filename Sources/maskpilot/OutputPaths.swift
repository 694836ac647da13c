// An output path must not be what the command reads: `checkpoint weights X --output X`, `model import --from hf
// --output hf/model.safetensors` or `model run --output image.jpg` replaced their own input and exited 0.
import ArgumentParser
import Foundation

/// `path` as the file system resolves it (`realpath`: absolute, symbolic links and `..` followed in that order); for a
/// path that does not exist yet, its folder's, with its own name.
func resolvedPath(_ path: String) -> String {
    func real(_ p: String) -> String? {
        guard let r = realpath(p, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }
    if let r = real(path) { return r }
    let name = (path as NSString).lastPathComponent, folder = (path as NSString).deletingLastPathComponent
    if let r = real(folder.isEmpty ? "." : folder) { return (r as NSString).appendingPathComponent(name) }
    return URL(fileURLWithPath: path).standardizedFileURL.path
}

/// A usage error when `output` (given as `option`) is one of `files` (each named by its option): writing it would
/// replace what the command reads.
func requireOutput(_ output: String, option: String = "--output", notOver files: [(option: String, path: String)]) throws {
    let out = resolvedPath(output)
    for (name, path) in files where resolvedPath(path) == out {
        throw ValidationError("\(option) \(output) is the file \(name) reads (\(path)); write to another path")
    }
}

/// A usage error when `path` exists and is not a folder (the command writes a folder there).
func requireFolder(_ path: String, option: String) throws {
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue {
        throw ValidationError("\(option) \(path) is a file; give a folder (it is created if missing)")
    }
}
