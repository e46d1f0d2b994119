// zlib (Debian: zlib1g-dev), for gzip response bodies. deflateInit2 and inflateInit2 are
// macros (they pass the library version and sizeof(z_stream)), which Swift cannot import.
#ifndef PORTAL_CZLIB_SHIM_H
#define PORTAL_CZLIB_SHIM_H

#include <zlib.h>

/// A deflate stream that writes the gzip format (RFC 1952): windowBits 15 + 16.
static inline int czlib_gzip_init(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

/// An inflate stream that reads the gzip format only (windowBits 15 + 16).
static inline int czlib_gunzip_init(z_stream *stream) {
    return inflateInit2(stream, 15 + 16);
}

#endif
