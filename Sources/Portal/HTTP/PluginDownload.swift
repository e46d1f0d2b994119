import Crypto
import Foundation

/// The kubectl-portal binary built with this portal (found beside the `portal` executable), served
/// at /downloads with its SHA-256, for the platform both were built for.
struct PluginDownload: Sendable {
    let path: String
    let sha256: String

    /// Read per download (tens of megabytes are not kept in memory for the rare request).
    var data: [UInt8] { FileManager.default.contents(atPath: path).map(Array.init) ?? [] }

    static let fileName: String = {
        #if os(Linux)
        let os = "linux"
        #else
        let os = "darwin"
        #endif
        #if arch(x86_64)
        return "kubectl-portal-\(os)-amd64"
        #else
        return "kubectl-portal-\(os)-arm64"
        #endif
    }()

    /// Loaded once; nil when no plugin sits beside the portal (`PORTAL_PLUGIN_PATH` names another file).
    static let shared: PluginDownload? = {
        let path = ProcessInfo.processInfo.environment["PORTAL_PLUGIN_PATH"]
            ?? (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).resolvingSymlinksInPath()
                .deletingLastPathComponent().appendingPathComponent("kubectl-portal").path
        guard let d = FileManager.default.contents(atPath: path), d.count > 0 else { return nil }
        return PluginDownload(path: path, sha256: SHA256.hash(data: d).map { String(format: "%02x", $0) }.joined())
    }()

    /// Download, check, install: one line for bash.
    func installLine(issuer: String) -> String {
        "curl -fsSLo kubectl-portal \(issuer)/downloads/\(Self.fileName) && echo \"\(sha256)  kubectl-portal\" | sha256sum -c - "
            + "&& install -D -m 0755 kubectl-portal ~/.local/bin/kubectl-portal && rm kubectl-portal"
    }
}
