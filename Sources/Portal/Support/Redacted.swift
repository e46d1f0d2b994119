import IdP

// Types that hold secrets (the LDAP bind password, the database URL's password, the webhook and
// metrics tokens, MAC keys) print a short redacted summary in every description, so no log line
// — service-lifecycle lists each service at debug level — can carry one.

extension PortalConfig: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    var description: String {
        "PortalConfig(issuer: \(issuer), listen: \(listenHost):\(listenPort), database: \(databaseDescription), ldap: \(ldap.map { "\($0)" } ?? "none"))"
    }
    var debugDescription: String { description }
    var customMirror: Mirror { Mirror(self, children: ["summary": description], displayStyle: .struct) }
}

extension Runtime: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    var description: String { "Runtime(\(config), keys sealed: \(sealer.encrypts), webhook: \(webhookToken == nil ? "off" : "on"))" }
    var debugDescription: String { description }
    var customMirror: Mirror { Mirror(self, children: ["summary": description], displayStyle: .struct) }
}

extension KeyMaintenanceService: CustomStringConvertible { var description: String { "KeyMaintenanceService" } }
extension GarbageCollectionService: CustomStringConvertible { var description: String { "GarbageCollectionService" } }
extension CredentialUsageFlushService: CustomStringConvertible { var description: String { "CredentialUsageFlushService" } }
extension BackchannelLogoutService: CustomStringConvertible { var description: String { "BackchannelLogoutService" } }
