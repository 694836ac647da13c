// An output path must not be what the command reads: `checkpoint weights X --output X`, `model import --from hf
// --output hf/model.safetensors` or `model run --output image.jpg` replaced their own input and exited 0.
import ArgumentParser
import Foundation

/// `path` absolute, `.`/`..` removed and symbolic links resolved (for a path that does not exist yet, its folder's).
func resolvedPath(_ path: String) -> String {
    let url = URL(fileURLWithPath: path).standardizedFileURL
    if FileManager.default.fileExists(atPath: url.path) { return url.resolvingSymlinksInPath().path }
    return url.deletingLastPathComponent().resolvingSymlinksInPath().appendingPathComponent(url.lastPathComponent).path
}

/// A usage error when `output` (given as `option`) is one of `files` or lies inside one of `folders` (each named by
/// its option): writing it would replace what the command reads.
func requireOutput(_ output: String, option: String = "--output", notOver files: [(option: String, path: String)],
                   orInside folders: [(option: String, path: String)] = []) throws {
    let out = resolvedPath(output)
    for (name, path) in files where resolvedPath(path) == out {
        throw ValidationError("\(option) \(output) is the file \(name) reads (\(path)); write to another path")
    }
    for (name, path) in folders {
        let folder = resolvedPath(path)
        if out == folder || out.hasPrefix(folder + "/") {
            throw ValidationError("\(option) \(output) is inside the folder \(name) reads (\(path)); write it elsewhere")
        }
    }
}

/// A usage error when `path` exists and is not a folder (the command writes a folder there).
func requireFolder(_ path: String, option: String) throws {
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue {
        throw ValidationError("\(option) \(path) is a file; give a folder (it is created if missing)")
    }
}
