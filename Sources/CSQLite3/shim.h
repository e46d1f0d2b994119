// The system SQLite (Debian: libsqlite3-dev), called directly: statements run on the calling
// thread with prepared statements cached, instead of a thread-pool hop per statement.
#ifndef PORTAL_CSQLITE3_SHIM_H
#define PORTAL_CSQLITE3_SHIM_H

#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast of -1 to a function pointer, which Swift cannot import.
static inline sqlite3_destructor_type csqlite3_transient(void) { return SQLITE_TRANSIENT; }

// No initial bulk allocation per page cache (sqlite3_config is variadic, which Swift cannot call).
// Every statement that needs a temporary b-tree (RETURNING, IN (SELECT …)) opens a page cache of
// its own, and its default 20-page bulk (≈ 87 KB) is above glibc's trim threshold: each one was
// malloc'd, freed, handed back to the kernel (madvise, a TLB shootdown) and faulted in again —
// a quarter of the SQLite writer thread's time. Must run before SQLite initializes.
static inline int csqlite3_config_no_pagecache_bulk(void) {
    return sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)0, 0, 0);
}

#endif
