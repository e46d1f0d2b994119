import IdP

extension StorageError {
    /// PostgreSQL rolled the whole transaction back and asks for it to be run again: it was chosen
    /// as a deadlock's victim (40P01) or could not be serialized (40001). By SQLSTATE, which the
    /// translated message starts with (`PostgresBackend.describe`).
    var postgresAsksForARetry: Bool {
        !isConflict && (message.hasPrefix("40P01 ") || message.hasPrefix("40001 "))
    }
}

/// Runs `op` — one transaction, or one statement — again when PostgreSQL rolled it back as a
/// deadlock's victim or a serialization failure, up to `attempts` times in all, after a short random
/// pause (two transactions that deadlocked once should not meet again in step). A refresh batch
/// stamping families and an admin revoking every family of a person can lock the same rows in
/// opposite orders; without this, whichever PostgreSQL picked answered 503.
func retryingWhenPostgresAsks<R>(attempts: Int = 3, _ op: () async throws -> R) async throws -> R {
    var attempt = 1
    while true {
        do {
            return try await op()
        } catch let e as StorageError where e.postgresAsksForARetry && attempt < attempts {
            attempt += 1
            try? await Task.sleep(for: .milliseconds(Int.random(in: 2...20)))
        }
    }
}
