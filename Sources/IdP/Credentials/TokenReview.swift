import Foundation

/// The TokenReview webhook (authentication.k8s.io v1 and v1beta1), as kube-apiserver calls it
/// with `--authentication-token-webhook-config-file`. A bad token is HTTP 200 with
/// `authenticated: false`, never an error status; only a malformed review is a 400.
public enum TokenReview {
    public static let versions = ["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"]
    /// The extra key kube-apiserver's audit log shows as the credential id.
    public static let credentialIDKey = "authentication.kubernetes.io/credential-id"

    public struct Reply: Sendable, Equatable {
        public var status: Int
        public var json: String
        public var authenticated: Bool
    }

    /// `acceptedAudiences`: when non-empty, a review naming audiences must name one of these
    /// (and the intersection is returned); when empty, credentials are valid for any audience.
    public static func handle(_ body: Data, acceptedAudiences: [String],
                              validate: @Sendable (String) async -> CredentialCheck) async -> Reply {
        guard let obj = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            return bad("the body is not a JSON object")
        }
        // apiVersion and kind before anything else.
        guard let apiVersion = obj["apiVersion"] as? String, versions.contains(apiVersion) else {
            return bad("apiVersion must be one of \(versions.joined(separator: ", "))")
        }
        guard obj["kind"] as? String == "TokenReview" else { return bad("kind must be TokenReview") }
        guard let spec = obj["spec"] as? [String: Any], let token = spec["token"] as? String else {
            return bad("spec.token is required")
        }
        let asked = (spec["audiences"] as? [Any])?.compactMap { $0 as? String } ?? []

        var status = JSONObjectWriter()
        var audiences = asked
        if !asked.isEmpty && !acceptedAudiences.isEmpty {
            audiences = asked.filter { acceptedAudiences.contains($0) }
            if audiences.isEmpty {
                status.add("authenticated", false)
                // Said plainly: this is what an operator sees in the API server's log when the two settings disagree.
                status.add("error", "none of the audiences kube-apiserver named (\(asked.prefix(5).joined(separator: ", "))) is in webhook.audiences "
                    + "(\(acceptedAudiences.joined(separator: ", "))): add one to kube-apiserver's --api-audiences, or leave webhook.audiences empty")
                return reply(apiVersion, status, authenticated: false)
            }
        }
        switch await validate(token) {
        case .invalid(let why):
            status.add("authenticated", false)
            status.add("error", why)
            return reply(apiVersion, status, authenticated: false)
        case .valid(let p):
            status.add("authenticated", true)
            var user = JSONObjectWriter()
            user.add("username", p.username)
            user.add("uid", p.uid)
            user.add("groups", p.groups)
            var extra = JSONObjectWriter()
            extra.add(credentialIDKey, ["portal:" + p.credentialID])
            user.addRaw("extra", extra.string)
            status.addRaw("user", user.string)
            if !audiences.isEmpty { status.add("audiences", audiences) }
            return reply(apiVersion, status, authenticated: true)
        }
    }

    static func reply(_ apiVersion: String, _ status: JSONObjectWriter, authenticated: Bool) -> Reply {
        var w = JSONObjectWriter()
        w.add("apiVersion", apiVersion)
        w.add("kind", "TokenReview")
        w.addRaw("status", status.string)
        return Reply(status: 200, json: w.string, authenticated: authenticated)
    }

    static func bad(_ message: String) -> Reply {
        var w = JSONObjectWriter()
        w.add("kind", "Status")
        w.add("apiVersion", "v1")
        w.add("status", "Failure")
        w.add("message", message)
        w.add("reason", "BadRequest")
        w.add("code", 400)
        return Reply(status: 400, json: w.string, authenticated: false)
    }
}
