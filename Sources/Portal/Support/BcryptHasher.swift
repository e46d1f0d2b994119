import Foundation
import HummingbirdBcrypt
import IdP
import NIOPosix

/// bcrypt with a configurable cost, run on NIO's thread pool (never on an event loop).
/// Hashes are stored as "bcrypt-sha256$<bcrypt>" (see `Secrets.bcryptInput`); plain bcrypt
/// hashes (imported) verify too.
struct BcryptHasher: PasswordHasher {
    let cost: UInt8
    static let prefix = "bcrypt-sha256$"

    func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await NIOThreadPool.singleton.runIfActive {
            Self.prefix + Bcrypt.hash(Secrets.bcryptInput(password), cost: cost)
        }
    }

    func verify(_ password: String, hash: String) async -> Bool {
        do {
            return try await NIOThreadPool.singleton.runIfActive {
                if hash.hasPrefix(Self.prefix) {
                    return Bcrypt.verify(Secrets.bcryptInput(password), hash: String(hash.dropFirst(Self.prefix.count)))
                }
                return Bcrypt.verify(password, hash: hash)
            }
        } catch {
            return false
        }
    }
}
