import CLDAP
import Foundation

/// A libldap result code with the server's message, when there is one.
struct LDAPError: Error, CustomStringConvertible {
    let code: Int32
    let context: String
    let message: String

    static let invalidCredentials: Int32 = 49
    static let noSuchObject: Int32 = 32
    static let sizeLimitExceeded: Int32 = 4

    /// The server could not be reached or did not answer in time: try the next one.
    var isServerFailure: Bool {
        code < 0 || [3 /* timeLimitExceeded */, 51 /* busy */, 52 /* unavailable */, 80 /* other */].contains(code)
    }

    var description: String {
        let text = String(cString: ldap_err2string(code))
        return "\(context): \(text) (\(code))" + (message.isEmpty ? "" : ": \(message)")
    }
}

/// One entry of a search result: its DN and the requested attributes (keys lower-cased).
struct LDAPEntry: Sendable {
    var dn: String
    var attributes: [String: [[UInt8]]]

    func values(_ name: String) -> [[UInt8]] { attributes[name.lowercased()] ?? [] }
    func strings(_ name: String) -> [String] { values(name).compactMap { String(validatingUTF8Bytes: $0) } }
    func first(_ name: String) -> String? { strings(name).first }
}

extension String {
    init?(validatingUTF8Bytes bytes: [UInt8]) {
        guard let s = String(validating: bytes, as: UTF8.self) else { return nil }
        self = s
    }
}

/// How to open a connection to one server.
struct LDAPConnectionSettings: Sendable {
    var startTLS: Bool
    var caFile: String?
    var insecureSkipVerify: Bool
    var connectTimeout: TimeInterval
    var operationTimeout: TimeInterval
}

/// One libldap handle. Not thread-safe: a connection is used by one pool thread at a time,
/// handed over through `LDAPServerPool`'s lock.
final class LDAPConnection: @unchecked Sendable {
    let url: String
    private var ld: OpaquePointer?
    private let timeoutMillis: Int

    /// Opens a handle and, with StartTLS, negotiates TLS (which connects). Plain and ldaps:// handles
    /// connect on their first operation.
    init(url: String, settings: LDAPConnectionSettings) throws {
        self.url = url
        self.timeoutMillis = max(1, Int(settings.operationTimeout * 1000))
        var handle: OpaquePointer?
        var rc = ldap_initialize(&handle, url)
        guard rc == LDAP_SUCCESS, let handle else { throw LDAPError(code: rc, context: "initialize \(url)", message: "") }
        ld = handle
        _ = cldap_set_int(handle, LDAP_OPT_PROTOCOL_VERSION, LDAP_VERSION3)
        _ = ldap_set_option(handle, LDAP_OPT_REFERRALS, cldap_opt_off())
        _ = ldap_set_option(handle, LDAP_OPT_RESTART, cldap_opt_on())
        // Connect (LDAP_OPT_NETWORK_TIMEOUT) and every synchronous wait that has no timeout of its own (LDAP_OPT_TIMEOUT).
        _ = cldap_set_timeval(handle, LDAP_OPT_NETWORK_TIMEOUT, max(1, Int(settings.connectTimeout * 1000)))
        _ = cldap_set_timeval(handle, LDAP_OPT_TIMEOUT, timeoutMillis)

        if settings.startTLS || url.lowercased().hasPrefix("ldaps://") {
            let demand = settings.insecureSkipVerify ? LDAP_OPT_X_TLS_NEVER : LDAP_OPT_X_TLS_DEMAND
            _ = cldap_set_int(handle, LDAP_OPT_X_TLS_REQUIRE_CERT, demand)
            if let ca = settings.caFile, !settings.insecureSkipVerify {
                rc = ldap_set_option(handle, LDAP_OPT_X_TLS_CACERTFILE, ca)
                guard rc == LDAP_SUCCESS else { close(); throw LDAPError(code: rc, context: "CA file \(ca)", message: "") }
            }
            // A TLS context of this handle's own, so the options above apply to it alone.
            rc = cldap_set_int(handle, LDAP_OPT_X_TLS_NEWCTX, 0)
            guard rc == LDAP_SUCCESS else { close(); throw LDAPError(code: rc, context: "TLS context for \(url)", message: "") }
        }
        if settings.startTLS {
            rc = ldap_start_tls_s(handle, nil, nil)
            guard rc == LDAP_SUCCESS else {
                let e = error(rc, "StartTLS with \(url)")
                close()
                // Any StartTLS failure (refused certificate included) means this server cannot be used.
                throw LDAPError(code: e.code > 0 ? cldap_connect_error() : e.code, context: e.context, message: e.message)
            }
        }
    }

    deinit { close() }

    func close() {
        if let ld { ldap_unbind_ext_s(ld, nil, nil) }
        ld = nil
    }

    /// A simple bind; returns the LDAP result code (0 success, 49 invalid credentials) and throws
    /// only when the server failed.
    func bind(dn: String, password: String) throws -> Int32 {
        guard let ld else { throw LDAPError(code: cldap_server_down(), context: "bind", message: "connection closed") }
        // The password's bytes exactly as typed (a NUL inside must not shorten it).
        let bytes = Array(password.utf8)
        let rc = bytes.withUnsafeBufferPointer { buf in
            buf.withMemoryRebound(to: CChar.self) { c in
                cldap_simple_bind(ld, dn, c.baseAddress, c.count, timeoutMillis)
            }
        }
        let e = error(rc, "bind to \(url)")
        if e.isServerFailure { throw e }
        return rc
    }

    /// A SASL/GSSAPI bind with the Kerberos ticket cache (KRB5CCNAME), e.g. one a kinit sidecar
    /// keeps fresh; returns the LDAP result code and throws only when the server failed.
    func bindGSSAPI() throws -> Int32 {
        guard let ld else { throw LDAPError(code: cldap_server_down(), context: "bind", message: "connection closed") }
        let rc = cldap_sasl_gssapi_bind(ld)
        let e = error(rc, "SASL/GSSAPI bind to \(url)")
        if e.isServerFailure { throw e }
        return rc
    }

    /// A search with its own time limit (client side and server side). With `sizeLimit`, a result
    /// with more entries throws `sizeLimitExceeded`.
    func search(base: String, scope: LDAPConfiguration.Scope, filter: String, attributes: [String], sizeLimit: Int = 0) throws -> [LDAPEntry] {
        guard let ld else { throw LDAPError(code: cldap_server_down(), context: "search", message: "connection closed") }
        let scopeValue: Int32 = switch scope {
        case .base: cldap_scope_base()
        case .one: cldap_scope_one()
        case .sub: cldap_scope_sub()
        }
        var cAttrs: [UnsafeMutablePointer<CChar>?] = attributes.map { strdup($0) } + [nil]
        defer { for p in cAttrs { free(p) } }
        var tv = timeval(tv_sec: timeoutMillis / 1000, tv_usec: (timeoutMillis % 1000) * 1000)
        var res: OpaquePointer?
        _ = cldap_set_int(ld, LDAP_OPT_TIMELIMIT, max(1, Int32((timeoutMillis + 999) / 1000)))
        let rc = cAttrs.withUnsafeMutableBufferPointer { buf in
            ldap_search_ext_s(ld, base, scopeValue, filter, buf.baseAddress, 0, nil, nil, &tv, Int32(sizeLimit), &res)
        }
        defer { if let res { ldap_msgfree(res) } }
        if rc == LDAPError.noSuchObject { return [] }
        guard rc == LDAP_SUCCESS else { throw error(rc, "search \(base) \(filter) on \(url)") }

        var out: [LDAPEntry] = []
        var entry = ldap_first_entry(ld, res)
        while let e = entry {
            var dn = ""
            if let p = ldap_get_dn(ld, e) { dn = String(cString: p); ldap_memfree(p) }
            var attrs: [String: [[UInt8]]] = [:]
            for name in attributes {
                guard let vals = ldap_get_values_len(ld, e, name) else { continue }
                let n = Int(ldap_count_values_len(vals))
                var list: [[UInt8]] = []
                for i in 0..<n {
                    if let bv = vals[i] {
                        let len = Int(bv.pointee.bv_len)
                        list.append(len == 0 ? [] : bv.pointee.bv_val.withMemoryRebound(to: UInt8.self, capacity: len) { Array(UnsafeBufferPointer(start: $0, count: len)) })
                    }
                }
                ldap_value_free_len(vals)
                attrs[name.lowercased()] = list
            }
            out.append(LDAPEntry(dn: dn, attributes: attrs))
            entry = ldap_next_entry(ld, e)
        }
        return out
    }

    private func error(_ rc: Int32, _ context: String) -> LDAPError {
        var message = ""
        if let ld {
            var p: UnsafeMutablePointer<CChar>?
            if ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &p) == LDAP_SUCCESS, let p {
                message = String(cString: p)
                ldap_memfree(p)
            }
        }
        return LDAPError(code: rc, context: context, message: message)
    }
}
