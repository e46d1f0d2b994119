import Foundation

extension Provider {
    /// The identity as a token for `clientID` may carry it (see `KubernetesMapping`): groups that
    /// would become `system:` groups are dropped and audited (`identity.group_dropped`); for a
    /// client kube-apiserver trusts, the person must have a username Kubernetes can use, or the
    /// grant is refused with the reason. Nothing is consumed by a refusal.
    func releasable(_ identity: Identity, clientID: String, remoteAddress: String, robot: Bool = false) async throws(OAuthError) -> Identity {
        let (safe, dropped) = kubernetes.safe(identity)
        if !dropped.isEmpty {
            await auditor.record("identity.group_dropped", actor: identity.username, subject: identity.subject, clientID: clientID,
                                 remoteAddress: remoteAddress, success: false,
                                 details: ["groups": dropped.joined(separator: ","), "reason": "reserved system: group"])
        }
        if kubernetesClients.contains(clientID), case .failure(let why) = kubernetes.username(safe, robot: robot) {
            await auditor.record("identity.refused", actor: identity.username, subject: identity.subject, clientID: clientID,
                                 remoteAddress: remoteAddress, success: false, details: ["reason": why.reason])
            throw OAuthError.invalidGrant(why.description)
        }
        return safe
    }
}
