// The system SQLite (Debian: libsqlite3-dev), called directly: statements run on the calling
// thread with prepared statements cached, instead of a thread-pool hop per statement.
#ifndef PORTAL_CSQLITE3_SHIM_H
#define PORTAL_CSQLITE3_SHIM_H

#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast of -1 to a function pointer, which Swift cannot import.
static inline sqlite3_destructor_type csqlite3_transient(void) { return SQLITE_TRANSIENT; }

#endif
