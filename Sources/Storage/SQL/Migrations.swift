import Foundation
import SQLKit

/// Schema versions, applied in order on start. Portable SQL: TEXT and BIGINT columns,
/// times as Unix seconds, booleans as 0/1, lists as JSON text.
enum Migrations {
    static func all(_ flavor: SQLFlavor) -> [(Int, [String])] {
        let autoID = flavor == .postgres ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT"
        return [
            (1, [
                """
                CREATE TABLE users (
                  id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL, email TEXT NOT NULL,
                  email_verified BIGINT NOT NULL, groups_json TEXT NOT NULL, is_admin BIGINT NOT NULL, disabled BIGINT NOT NULL,
                  password_hash TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE clients (
                  id TEXT PRIMARY KEY, name TEXT NOT NULL, redirect_uris_json TEXT NOT NULL, is_public BIGINT NOT NULL,
                  secret_hash TEXT, created_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE auth_codes (
                  hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, client_id TEXT NOT NULL, scopes TEXT NOT NULL,
                  auth_time BIGINT NOT NULL, auth_method TEXT NOT NULL, redirect_uri TEXT NOT NULL, nonce TEXT,
                  code_challenge TEXT, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT, family_id TEXT)
                """,
                """
                CREATE TABLE refresh_families (
                  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, client_id TEXT NOT NULL, scopes TEXT NOT NULL,
                  auth_time BIGINT NOT NULL, auth_method TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
                  last_used_at BIGINT NOT NULL, revoked_at BIGINT, revoke_reason TEXT)
                """,
                "CREATE INDEX refresh_families_user ON refresh_families (user_id)",
                """
                CREATE TABLE refresh_tokens (
                  hash TEXT PRIMARY KEY, family_id TEXT NOT NULL, client_id TEXT NOT NULL, created_at BIGINT NOT NULL,
                  idle_expires_at BIGINT NOT NULL, used_at BIGINT)
                """,
                "CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id)",
                """
                CREATE TABLE login_sessions (
                  hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, auth_time BIGINT NOT NULL, auth_method TEXT NOT NULL,
                  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)
                """,
                "CREATE INDEX login_sessions_user ON login_sessions (user_id)",
                """
                CREATE TABLE pending_authorizations (
                  id TEXT PRIMARY KEY, browser_hash TEXT NOT NULL, request_json TEXT NOT NULL, created_at BIGINT NOT NULL,
                  expires_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE signing_keys (
                  kid TEXT PRIMARY KEY, algorithm TEXT NOT NULL, sealed_private_key TEXT NOT NULL, public_jwk TEXT NOT NULL,
                  created_at BIGINT NOT NULL, activates_at BIGINT NOT NULL, retires_at BIGINT, expires_at BIGINT)
                """,
                "CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until_at BIGINT NOT NULL)",
                "CREATE TABLE named_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
                """
                CREATE TABLE setup_tokens (
                  hash TEXT PRIMARY KEY, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT)
                """,
                """
                CREATE TABLE login_throttle (
                  key TEXT PRIMARY KEY, failures BIGINT NOT NULL, window_start BIGINT NOT NULL, locked_until BIGINT)
                """,
                """
                CREATE TABLE audit_events (
                  id \(autoID), time BIGINT NOT NULL, type TEXT NOT NULL, actor TEXT NOT NULL, subject TEXT NOT NULL,
                  client_id TEXT NOT NULL, remote_address TEXT NOT NULL, success BIGINT NOT NULL, details_json TEXT NOT NULL)
                """,
                "CREATE INDEX audit_events_type ON audit_events (type, id)",
                "CREATE INDEX audit_events_actor ON audit_events (actor, id)",
            ]),
            (2, [
                """
                CREATE TABLE robots (
                  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, team TEXT NOT NULL, description TEXT NOT NULL,
                  groups_json TEXT NOT NULL, disabled BIGINT NOT NULL, created_at BIGINT NOT NULL, created_by TEXT NOT NULL)
                """,
                """
                CREATE TABLE app_credentials (
                  id TEXT PRIMARY KEY, owner_kind TEXT NOT NULL, owner_id TEXT NOT NULL, owner_method TEXT NOT NULL,
                  name TEXT NOT NULL, description TEXT NOT NULL, secret_hash TEXT NOT NULL, previous_secret_hash TEXT,
                  previous_expires_at BIGINT, groups_json TEXT, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
                  last_used_at BIGINT, revoked_at BIGINT, created_by TEXT NOT NULL)
                """,
                "CREATE INDEX app_credentials_owner ON app_credentials (owner_id)",
            ]),
            (3, [
                """
                CREATE TABLE login_familiar (
                  account TEXT NOT NULL, address TEXT NOT NULL, last_success BIGINT NOT NULL, PRIMARY KEY (account, address))
                """,
            ]),
            (4, [
                """
                CREATE TABLE reveals (
                  id TEXT PRIMARY KEY, browser_hash TEXT NOT NULL, kind TEXT NOT NULL, sealed TEXT NOT NULL,
                  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)
                """,
                // Where a family came from; families started before this version came from "".
                "ALTER TABLE refresh_families ADD COLUMN address TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE refresh_families ADD COLUMN user_agent TEXT NOT NULL DEFAULT ''",
            ]),
            (5, [
                // Sessions that can end: a public session id (id_token `sid`), the idle clock, where from.
                "ALTER TABLE login_sessions ADD COLUMN sid TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE login_sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE login_sessions ADD COLUMN address TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE login_sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT ''",
                // Activity counts from the upgrade: nobody is signed out by it.
                "UPDATE login_sessions SET sid = substr(hash, 1, 32), last_seen_at = \(flavor == .postgres ? "CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)" : "CAST(strftime('%s', 'now') AS INTEGER)")",
                "CREATE INDEX login_sessions_sid ON login_sessions (sid)",
                // Which browser session a family (and the code before it) came from, what started it, and its label.
                "ALTER TABLE auth_codes ADD COLUMN session_id TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE refresh_families ADD COLUMN session_id TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE refresh_families ADD COLUMN purpose TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE refresh_families ADD COLUMN label TEXT NOT NULL DEFAULT ''",
                "CREATE INDEX refresh_families_session ON refresh_families (session_id)",
                // RP-initiated and back-channel logout, introspection rights.
                "ALTER TABLE clients ADD COLUMN post_logout_redirect_uris_json TEXT NOT NULL DEFAULT '[]'",
                "ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE clients ADD COLUMN introspect_all BIGINT NOT NULL DEFAULT 0",
                """
                CREATE TABLE logout_deliveries (
                  id TEXT PRIMARY KEY, client_id TEXT NOT NULL, uri TEXT NOT NULL, subject TEXT NOT NULL, sid TEXT NOT NULL,
                  created_at BIGINT NOT NULL, next_attempt_at BIGINT NOT NULL, attempts BIGINT NOT NULL, deadline BIGINT NOT NULL)
                """,
            ]),
            (6, [
                // RFC 8628 device authorization grants, and the grants each client may use.
                """
                CREATE TABLE device_grants (
                  device_hash TEXT PRIMARY KEY, user_code TEXT NOT NULL UNIQUE, client_id TEXT NOT NULL, scopes TEXT NOT NULL,
                  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, poll_interval BIGINT NOT NULL, last_polled_at BIGINT,
                  status TEXT NOT NULL, user_id TEXT NOT NULL, auth_time BIGINT, auth_method TEXT NOT NULL, session_id TEXT NOT NULL,
                  address TEXT NOT NULL, user_agent TEXT NOT NULL, decided_at BIGINT)
                """,
                "ALTER TABLE clients ADD COLUMN grant_types_json TEXT NOT NULL DEFAULT ''",
            ]),
            (7, [
                // Second factors: passkeys and TOTP, recovery codes, WebAuthn challenges, enrollment grace;
                // the RFC 8176 `amr` of each login, carried into codes, refresh families and device grants.
                """
                CREATE TABLE factors (
                  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, credential_id TEXT NOT NULL,
                  public_key TEXT NOT NULL, sign_count BIGINT NOT NULL, backup_eligible BIGINT NOT NULL, sealed_secret TEXT NOT NULL,
                  last_step BIGINT NOT NULL, confirmed BIGINT NOT NULL, created_at BIGINT NOT NULL, last_used_at BIGINT)
                """,
                "CREATE INDEX factors_user ON factors (user_id)",
                "CREATE INDEX factors_credential ON factors (credential_id)",
                """
                CREATE TABLE recovery_codes (
                  hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at BIGINT NOT NULL, used_at BIGINT)
                """,
                "CREATE INDEX recovery_codes_user ON recovery_codes (user_id)",
                """
                CREATE TABLE webauthn_challenges (
                  hash TEXT PRIMARY KEY, browser_hash TEXT NOT NULL, user_id TEXT NOT NULL, purpose TEXT NOT NULL, expires_at BIGINT NOT NULL)
                """,
                "CREATE TABLE mfa_grace (user_id TEXT PRIMARY KEY, started_at BIGINT NOT NULL)",
                "ALTER TABLE login_sessions ADD COLUMN amr TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE login_sessions ADD COLUMN factor_at BIGINT",
                "ALTER TABLE auth_codes ADD COLUMN amr TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE refresh_families ADD COLUMN amr TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE device_grants ADD COLUMN amr TEXT NOT NULL DEFAULT ''",
            ]),
            (8, credentialChangeTriggers(flavor)),
        ]
    }

    /// What a credential check reads — credentials, robots, users — moves `change_epochs.credentials` in the
    /// writing transaction, whoever writes (a replica, the CLI, an operator's SQL); on PostgreSQL it also
    /// NOTIFYs `portal_credentials` at commit, so every replica's memory of verified credentials empties at once.
    /// ("last used" stamps do not count: only the columns a check reads. A new row counts: a refusal of
    /// an id nobody had is kept in memory too.)
    static func credentialChangeTriggers(_ flavor: SQLFlavor) -> [String] {
        let watched = [("app_credentials", "secret_hash, previous_secret_hash, previous_expires_at, groups_json, expires_at, revoked_at, owner_id"),
                       ("robots", "name, groups_json, disabled"),
                       ("users", "username, display_name, email, email_verified, groups_json, is_admin, disabled")]
        var out = [
            "CREATE TABLE change_epochs (name TEXT PRIMARY KEY, epoch BIGINT NOT NULL)",
            "INSERT INTO change_epochs (name, epoch) VALUES ('credentials', 0)",
        ]
        switch flavor {
        case .sqlite:
            for (table, columns) in watched {
                for (event, suffix) in [("INSERT", "insert"), ("UPDATE OF \(columns)", "update"), ("DELETE", "delete")] {
                    out.append("""
                        CREATE TRIGGER \(table)_\(suffix)_credential_epoch AFTER \(event) ON \(table)
                        BEGIN UPDATE change_epochs SET epoch = epoch + 1 WHERE name = 'credentials'; END
                        """)
                }
            }
        case .postgres:
            out.append("""
                CREATE FUNCTION portal_credentials_changed() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  UPDATE change_epochs SET epoch = epoch + 1 WHERE name = 'credentials';
                  PERFORM pg_notify('portal_credentials', TG_TABLE_NAME);
                  RETURN NULL;
                END $$
                """)
            for (table, columns) in watched {
                out.append("""
                    CREATE TRIGGER \(table)_credential_epoch AFTER INSERT OR UPDATE OF \(columns) OR DELETE ON \(table)
                    FOR EACH STATEMENT EXECUTE FUNCTION portal_credentials_changed()
                    """)
            }
        }
        return out
    }

    /// Applies every version not applied yet, up to `last` (tests stop early to build an older schema).
    static func apply(_ backend: any SQLBackend, now: Date, through last: Int = .max) async throws {
        let flavor = backend.flavor
        try await backend.transaction { db in
            if flavor == .postgres {
                // Replicas starting together: one migrates, the others wait here and then find nothing to do.
                try await db.raw("SELECT pg_advisory_xact_lock(7467421001)").run()
            }
            try await db.raw("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)").run()
            let applied = Set(try await db.raw("SELECT version FROM schema_migrations").all().map { try $0.decode(column: "version", as: Int.self) })
            for (version, statements) in all(flavor) where version <= last && !applied.contains(version) {
                for s in statements { try await db.raw(SQLQueryString(s)).run() }
                try await db.raw("INSERT INTO schema_migrations (version, applied_at) VALUES (\(bind: version), \(bind: Int(now.timeIntervalSince1970)))").run()
            }
        }
    }
}
