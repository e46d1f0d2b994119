import Assets
import Foundation
import Logging

/// The CSS and script served at `/static/NAME`, read once at start and served from memory: the
/// files bundled with the binary (the Assets target), or those of `ui.public_dir` /
/// `PORTAL_PUBLIC_DIR` when an operator supplies their own.
struct StaticAssets: Sendable {
    struct Asset: Sendable { let data: [UInt8]; let type: String }
    let files: [String: Asset]

    static func load(configured: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                     logger: Logger) -> StaticAssets {
        // The environment overrides the file, as for every other key.
        if let dir = environment["PORTAL_PUBLIC_DIR"].flatMap({ $0.isEmpty ? nil : $0 }) ?? configured {
            let files = Assets.files(in: dir)
            if files["portal.css"] != nil { return StaticAssets(files) }
            logger.warning("no portal.css in the configured static directory; serving the built-in files", metadata: ["directory": .string(dir)])
        }
        let files = Assets.bundled()
        if files["portal.css"] == nil {
            logger.warning("static assets not found (portal_Assets.resources beside the binary); pages will be unstyled")
        }
        return StaticAssets(files)
    }

    init(_ files: [String: Data]) {
        self.files = files.reduce(into: [:]) { $0[$1.key] = Asset(data: [UInt8]($1.value), type: Self.contentType($1.key)) }
    }

    static func contentType(_ name: String) -> String {
        if name.hasSuffix(".css") { return "text/css; charset=utf-8" }
        if name.hasSuffix(".js") { return "text/javascript; charset=utf-8" }
        if name.hasSuffix(".svg") { return "image/svg+xml" }
        if name.hasSuffix(".png") { return "image/png" }
        if name.hasSuffix(".ico") { return "image/x-icon" }
        return "application/octet-stream"
    }
}
