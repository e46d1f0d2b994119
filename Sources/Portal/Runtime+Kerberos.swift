import Foundation
import IdP
import Logging
import Storage

extension Runtime {
    /// The Kerberos login when `kerberos:` is configured. Mapped principals are looked up in the
    /// password chain's directories, in its order (LDAP and local users). Fails start with a message
    /// naming the expected service principal when the keytab cannot accept tickets for it.
    static func makeKerberos(_ config: PortalConfig, directories: [any Authenticator], storage: SQLStorage, clock: any Clock,
                             logger: Logger) throws -> KerberosAuthenticator? {
        guard let k = config.kerberos else { return nil }
        let acceptor: GSSAcceptor
        do {
            acceptor = try GSSAcceptor(keytab: k.keytab, servicePrincipal: k.servicePrincipal)
        } catch {
            throw RuntimeError("kerberos: \(error)")
        }
        logger.info("Kerberos (SPNEGO) logins enabled", metadata: ["service_principal": "\(k.servicePrincipal)", "realms": "\(k.realms.joined(separator: ","))"])
        return KerberosAuthenticator(config: k, acceptor: acceptor, directories: directories.compactMap { $0 as? any AccountLookup },
                                     store: storage, policy: config.login, clock: clock, logger: logger)
    }
}
