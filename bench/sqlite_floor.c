// SQLite's own cost of a refresh rotation: the portal's statements, prepared once, bound and stepped
// from C on one thread, against a database the portal created (its own schema and indexes), with
// SQLite's usual inline checkpoints. No HTTP, no Swift, no hand-off between threads: the floor under
// `portal bench rotation` and under a refresh (docs/performance.md, ninth steps).
//
//   cc -O2 -o sqlite_floor bench/sqlite_floor.c -lsqlite3
//   ./sqlite_floor <portal.sqlite> <rotations per transaction> <rotations>
#include <malloc.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static sqlite3 *db;

static void check(int rc, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

static void token(char out[65]) {
    static const char *hex = "0123456789abcdef";
    for (int i = 0; i < 64; i++) out[i] = hex[rand() & 15];
    out[64] = 0;
}

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static sqlite3_stmt *prepare(const char *sql) {
    sqlite3_stmt *s;
    check(sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, 0), sql);
    return s;
}

static void run(sqlite3_stmt *s) {
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {}
    check(rc, sqlite3_sql(s));
    sqlite3_reset(s);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s <portal.sqlite> <rotations per transaction> <rotations>\n", argv[0]);
        return 2;
    }
    int batch = atoi(argv[2]), total = atoi(argv[3]);
    enum { chains = 16 };
    // A long-running server's heap: no trimming and regrowing the heap around every commit.
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    check(sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, 0), "open");
    check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", 0, 0, 0), "pragmas");
    char heads[chains][65], families[chains][40];
    srand((unsigned)time(0) ^ (unsigned)getpid() << 8);
    for (int c = 0; c < chains; c++) {
        char sql[512];
        snprintf(families[c], sizeof families[c], "floor-%02d-%08x", c, rand());
        token(heads[c]);
        snprintf(sql, sizeof sql,
                 "INSERT INTO refresh_families (id, user_id, client_id, scopes, auth_time, auth_method, created_at, expires_at, last_used_at) "
                 "VALUES ('%s', 'floor', 'kubernetes', 'openid', 1, 'password', 1, 99999999999, 1);"
                 "INSERT INTO refresh_tokens (hash, family_id, client_id, created_at, idle_expires_at) VALUES ('%s', '%s', 'kubernetes', 1, 99999999999)",
                 families[c], heads[c], families[c]);
        check(sqlite3_exec(db, sql, 0, 0, 0), "families");
    }
    // The statements of Sources/Storage/SQL/SQLiteRotation.swift.
    sqlite3_stmt *begin = prepare("BEGIN IMMEDIATE"), *commit = prepare("COMMIT");
    sqlite3_stmt *mark = prepare("UPDATE refresh_tokens SET used_at = ?1 WHERE hash = ?2 AND used_at IS NULL "
                                 "AND family_id IN (SELECT id FROM refresh_families WHERE revoked_at IS NULL) RETURNING family_id");
    sqlite3_stmt *insert = prepare("INSERT INTO refresh_tokens (hash, family_id, client_id, created_at, idle_expires_at, used_at) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    sqlite3_stmt *stamp = prepare("UPDATE refresh_families SET last_used_at = ?1 WHERE id = ?2");
    sqlite3_stmt *audit = prepare("INSERT INTO audit_events (time, type, actor, subject, client_id, remote_address, success, details_json) "
                                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    double cpu0 = cpu_seconds();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int done = 0, c = 0;
    while (done < total) {
        run(begin);
        for (int i = 0; i < batch && done < total; i++, done++, c = (c + 1) % chains) {
            long now = time(0);
            char next[65], details[80];
            token(next);
            sqlite3_bind_int64(mark, 1, now);
            sqlite3_bind_text(mark, 2, heads[c], 64, SQLITE_TRANSIENT);
            if (sqlite3_step(mark) != SQLITE_ROW) { fprintf(stderr, "rotation lost: %s\n", sqlite3_errmsg(db)); return 1; }
            run(mark);
            sqlite3_bind_text(insert, 1, next, 64, SQLITE_TRANSIENT);
            sqlite3_bind_text(insert, 2, families[c], -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(insert, 3, "kubernetes", -1, SQLITE_STATIC);
            sqlite3_bind_int64(insert, 4, now);
            sqlite3_bind_int64(insert, 5, now + 86400);
            sqlite3_bind_null(insert, 6);
            run(insert);
            sqlite3_bind_int64(stamp, 1, now);
            sqlite3_bind_text(stamp, 2, families[c], -1, SQLITE_TRANSIENT);
            run(stamp);
            snprintf(details, sizeof details, "{\"family\":\"%s\"}", families[c]);
            sqlite3_bind_int64(audit, 1, now);
            sqlite3_bind_text(audit, 2, "token.refresh", -1, SQLITE_STATIC);
            sqlite3_bind_text(audit, 3, "floor", -1, SQLITE_STATIC);
            sqlite3_bind_text(audit, 4, "floor", -1, SQLITE_STATIC);
            sqlite3_bind_text(audit, 5, "kubernetes", -1, SQLITE_STATIC);
            sqlite3_bind_text(audit, 6, "127.0.0.1", -1, SQLITE_STATIC);
            sqlite3_bind_int64(audit, 7, 1);
            sqlite3_bind_text(audit, 8, details, -1, SQLITE_TRANSIENT);
            run(audit);
            memcpy(heads[c], next, sizeof next);
        }
        run(commit);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, cpu = cpu_seconds() - cpu0;
    printf("{\"batch\": %d, \"rotations\": %d, \"per_second\": %.0f, \"cpu_ms_per_rotation\": %.4f}\n", batch, done, done / wall, cpu * 1000 / done);
    sqlite3_close_v2(db);
    return 0;
}
