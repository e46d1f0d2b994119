// The system OpenSSL 3 libcrypto (Debian: libssl-dev), used only to sign RS256 tokens: its
// RSA is about twice as fast as the BoringSSL inside swift-crypto on CPUs with AVX-512 IFMA.
#ifndef PORTAL_COPENSSL_SHIM_H
#define PORTAL_COPENSSL_SHIM_H

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#endif
