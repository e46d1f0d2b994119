import Foundation

/// The stylesheet and script every page links to (`/static/portal.css`, `/static/portal.js`),
/// shipped as package resources: SwiftPM lays `portal_Assets.resources` beside the `portal`
/// binary, so a build in any directory, or a copy installed elsewhere with that folder, serves them.
public enum Assets {
    /// Every bundled file, by name.
    public static func bundled() -> [String: Data] {
        guard let base = Bundle.module.resourceURL else { return [:] }
        return files(in: base.appendingPathComponent("Public").path)
    }

    /// The regular files directly in `directory`, by name (hidden files left out).
    public static func files(in directory: String) -> [String: Data] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [:] }
        var out: [String: Data] = [:]
        for name in names where !name.hasPrefix(".") {
            var isDirectory: ObjCBool = false
            let path = (directory as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  let data = FileManager.default.contents(atPath: path) else { continue }
            out[name] = data
        }
        return out
    }
}
