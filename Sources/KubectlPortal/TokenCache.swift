import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the plugin keeps between kubectl runs, per issuer and client: one JSON file, mode 0600,
/// replaced atomically (a temporary file renamed over it), read and written under an exclusive
/// lock so that any number of kubectl processes refresh once.
struct CachedTokens: Codable {
    var issuer: String
    var clientID: String
    var idToken: String
    var refreshToken: String
    /// When the id_token expires (seconds since 1970).
    var expiry: Double
    /// When the refresh token dies if unused (seconds since 1970; 0 when unknown).
    var refreshExpiry: Double

    enum CodingKeys: String, CodingKey {
        case issuer, clientID = "client_id", idToken = "id_token", refreshToken = "refresh_token", expiry, refreshExpiry = "refresh_expiry"
    }
}

struct TokenCache {
    let file: String
    let lockFile: String

    init(issuer: String, clientID: String) throws {
        let env = ProcessInfo.processInfo.environment
        let home = env["HOME"] ?? NSHomeDirectory()
        let dir = env["KUBECTL_PORTAL_CACHE_DIR"] ?? home + "/.kube/cache/kubectl-portal"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let key = SHA256.hash(data: Data((issuer + "\n" + clientID).utf8)).map { String(format: "%02x", $0) }.joined().prefix(32)
        file = dir + "/" + key + ".json"
        lockFile = dir + "/" + key + ".lock"
    }

    /// Runs `body` holding the exclusive lock (flock: released by the kernel if the process dies).
    func locked<T>(_ body: () async throws -> T) async throws -> T {
        let fd = open(lockFile, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PluginError("cannot open \(lockFile): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw PluginError("cannot lock \(lockFile): \(String(cString: strerror(errno)))") }
        }
        defer { flock(fd, LOCK_UN) }
        return try await body()
    }

    func read() -> CachedTokens? {
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        return try? JSONDecoder().decode(CachedTokens.self, from: data)
    }

    /// Writes a temporary file (0600) beside the cache and renames it over the cache: a reader sees the
    /// old file or the new one, never half of one.
    func write(_ t: CachedTokens) throws {
        let data = try JSONEncoder().encode(t)
        let tmp = file + ".\(getpid()).tmp"
        let fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PluginError("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == data.count, synced == 0, rename(tmp, file) == 0 else {
            unlink(tmp)
            throw PluginError("cannot write the token cache \(file): \(String(cString: strerror(errno)))")
        }
    }

    func remove() { unlink(file) }
}

struct PluginError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
