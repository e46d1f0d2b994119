import Foundation

/// Refresh tokens this replica has just issued, with their family as it was read: the next
/// refresh of a chain usually comes back to the same replica, and then it needs no read before
/// its rotation — one database round trip per refresh instead of two.
///
/// What is kept never decides alone. Everything in it that a refresh checks is immutable (the
/// token's client and idle end, the family's grant and maximum lifetime); what can change — the
/// token consumed, the family revoked or ended — is checked again by the rotation itself, which
/// only succeeds on an unused token of a live family, and a refusal re-reads the database for the
/// answer (`Provider.refresh`). A person's state comes from `currentIdentity` as always. An entry
/// is taken, not read, so a second presentation of the same token reads the database (the grace
/// window and replay detection see the truth), and another replica simply finds nothing here.
final class IssuedRefreshTokens: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: (token: RefreshToken, family: RefreshFamily)] = [:]
    let limit: Int

    init(limit: Int = 20_000) { self.limit = limit }

    func remember(_ token: RefreshToken, family: RefreshFamily) {
        lock.withLock {
            // A bound, not an LRU: a full table starts again (the next refresh of each chain reads once).
            if entries.count >= limit { entries.removeAll(keepingCapacity: true) }
            entries[token.hash] = (token, family)
        }
    }

    /// The token and family remembered for `hash`, removed from memory.
    func take(_ hash: String) -> (RefreshToken, RefreshFamily)? {
        lock.withLock { entries.removeValue(forKey: hash).map { ($0.token, $0.family) } }
    }
}
