import CGSSAPI
import Foundation

/// The GSSAPI acceptor over MIT libgssapi_krb5: one acceptor credential for the configured
/// service principal, used for every token. All methods block: call them from a `BlockingThreadPool`.
/// The replay cache stays on (MIT's default), so a captured token cannot be presented twice.
public final class GSSAcceptor: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    public enum Accepted: Sendable, Equatable {
        /// The initiator's principal and the token that proves the server to it (mutual authentication).
        case principal(String, mutualToken: [UInt8])
        /// The token negotiated another mechanism (NTLM inside SPNEGO): only Kerberos is accepted.
        case notKerberos
        /// Forged, tampered, replayed, expired, for another service, or needs another round trip.
        case rejected(String)
    }

    private let credential: gss_cred_id_t?
    public let servicePrincipal: String

    /// Points the process's acceptor at `keytab` and acquires the credential for `servicePrincipal`
    /// (`HTTP/host`). Throws a message naming the principal when the keytab has no key for it.
    public init(keytab: String, servicePrincipal: String) throws {
        self.servicePrincipal = servicePrincipal
        let path = keytab.hasPrefix("FILE:") || keytab.hasPrefix("WRFILE:") ? keytab : "FILE:" + keytab
        if let problem = Self.keytabProblem(keytab: keytab, servicePrincipal: servicePrincipal) { throw Failure(problem) }
        // Set explicitly, so neither KRB5_KTNAME nor the working directory nor /etc/krb5.keytab is consulted.
        guard cgss_register_acceptor_identity(path) == cgss_s_complete() else {
            throw Failure("cannot use the keytab '\(keytab)'")
        }
        var cfg = KerberosConfiguration()
        cfg.servicePrincipal = servicePrincipal
        var cred: gss_cred_id_t?
        var minor: OM_uint32 = 0
        let major = cgss_acquire_acceptor(cfg.hostBasedService, &cred, &minor)
        guard !(cgss_error(major) != 0) else {
            throw Failure("the keytab '\(keytab)' cannot accept tickets for \(servicePrincipal): \(Self.statusText(major, minor))")
        }
        credential = cred
    }

    deinit { cgss_release_cred(credential) }

    /// Accepts one initiator token (SPNEGO or raw Kerberos). Blocks.
    public func accept(_ token: [UInt8]) -> Accepted {
        var r = token.withUnsafeBytes { cgss_accept(credential, $0.baseAddress, $0.count) }
        defer { cgss_accept_result_free(&r) }
        if r.major == cgss_s_continue_needed() { return .rejected("the token needs another round trip (not a one-leg Kerberos token)") }
        guard r.major == cgss_s_complete() else { return .rejected(Self.statusText(r.major, r.minor)) }
        guard r.krb5_mech != 0 else { return .notKerberos }
        guard let p = r.principal, let principal = String(validatingCString: p), !principal.isEmpty else {
            return .rejected("no initiator name")
        }
        let out = r.output.map { Array(UnsafeBufferPointer(start: $0, count: r.output_length)) } ?? []
        return .principal(principal, mutualToken: out)
    }

    /// The principals in a keytab, e.g. `HTTP/portal.example.org@EXAMPLE.ORG`.
    public static func keytabPrincipals(_ keytab: String) throws -> [String] {
        let path = keytab.hasPrefix("FILE:") ? keytab : "FILE:" + keytab
        let file = path.hasPrefix("FILE:") ? String(path.dropFirst(5)) : path
        guard FileManager.default.isReadableFile(atPath: file) else { throw Failure("cannot read '\(file)'") }
        var out: UnsafeMutablePointer<CChar>?
        let rc = cgss_keytab_principals(path, &out)
        defer { free(out) }
        guard rc == 0 else {
            var buf = [CChar](repeating: 0, count: 512)
            cgss_krb5_error_text(rc, &buf, buf.count)
            throw Failure("'\(file)' is not a readable keytab: \(Self.text(buf))")
        }
        let text = out.map { String(cString: $0) } ?? ""
        var seen = Set<String>()
        return text.split(separator: "\n").map(String.init).filter { seen.insert($0).inserted }
    }

    /// Why the keytab cannot serve `servicePrincipal`, or nil when it has a key for it (any realm).
    public static func keytabProblem(keytab: String, servicePrincipal: String) -> String? {
        let principals: [String]
        do { principals = try keytabPrincipals(keytab) } catch { return "\(error)" }
        let wanted = servicePrincipal
        let has = principals.contains { p in
            guard let at = PrincipalMapper.realmSeparator(p) else { return false }
            return Self.sameService(String(p[..<at]), wanted)
        }
        if has { return nil }
        let held = principals.isEmpty ? "no keys at all" : "keys for " + principals.joined(separator: ", ")
        return "the keytab '\(keytab)' has no key for the expected service principal \(wanted) (browsers ask for HTTP/<host of the issuer URL>); it holds \(held). Add one with: kadmin -q \"ktadd -k \(keytab) \(wanted)\""
    }

    /// `HTTP/Host.Example.org` and `HTTP/host.example.org` name the same service: host names are case-insensitive.
    static func sameService(_ a: String, _ b: String) -> Bool {
        let pa = a.split(separator: "/", maxSplits: 1), pb = b.split(separator: "/", maxSplits: 1)
        guard pa.count == 2, pb.count == 2 else { return a == b }
        return pa[0] == pb[0] && pa[1].lowercased() == pb[1].lowercased()
    }

    static func statusText(_ major: OM_uint32, _ minor: OM_uint32) -> String {
        var buf = [CChar](repeating: 0, count: 1024)
        cgss_status_text(major, minor, &buf, buf.count)
        return text(buf)
    }

    static func text(_ buf: [CChar]) -> String {
        String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
