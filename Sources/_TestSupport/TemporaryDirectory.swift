// Temporary folders for tests, all under one folder per test process that is removed when the process exits, so
// test runs do not leave thousands of folders in /tmp.
import Foundation

/// The folder of this process's test files: `$TMPDIR/maskpilot-tests-<pid>`, removed at exit.
private let processTestRoot: URL = {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("maskpilot-tests-\(getpid())")
    atexit { try? FileManager.default.removeItem(at: processTestRoot) }
    return root
}()

/// A new, empty folder named `<prefix>-<UUID>` under this process's test folder.
public func makeTestDirectory(_ prefix: String) throws -> URL {
    let url = processTestRoot.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
