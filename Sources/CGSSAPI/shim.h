// MIT Kerberos GSSAPI (libgssapi_krb5) for Swift. Macros that Swift cannot import (casts,
// pointers to mutable globals) are re-exported here as static inline functions, and the few
// multi-step C sequences (accept one token, list a keytab) are done here so Swift only sees
// plain buffers and status codes.
#ifndef PORTAL_CGSSAPI_SHIM_H
#define PORTAL_CGSSAPI_SHIM_H

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5/krb5.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static inline gss_cred_id_t cgss_no_credential(void) { return GSS_C_NO_CREDENTIAL; }
static inline gss_name_t cgss_no_name(void) { return GSS_C_NO_NAME; }
static inline gss_OID_set cgss_no_oid_set(void) { return GSS_C_NO_OID_SET; }
static inline OM_uint32 cgss_indefinite(void) { return GSS_C_INDEFINITE; }
static inline int cgss_error(OM_uint32 major) { return GSS_ERROR(major) != 0; }
static inline OM_uint32 cgss_s_failure(void) { return GSS_S_FAILURE; }
static inline OM_uint32 cgss_s_continue_needed(void) { return GSS_S_CONTINUE_NEEDED; }
static inline OM_uint32 cgss_s_complete(void) { return GSS_S_COMPLETE; }
/// `GSS_C_NT_HOSTBASED_SERVICE` is a mutable C global; Swift 6 only sees it through this accessor.
static inline gss_OID cgss_nt_hostbased_service(void) { return GSS_C_NT_HOSTBASED_SERVICE; }

/// 1 when `oid` is the Kerberos 5 mechanism: 1.2.840.113554.1.2.2, or Microsoft's legacy
/// spelling 1.2.840.48018.1.2.2 that Windows clients put in SPNEGO.
static inline int cgss_is_krb5_mech(gss_OID oid) {
    static const unsigned char krb5[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02 };
    static const unsigned char mskrb5[] = { 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02 };
    if (oid == GSS_C_NO_OID) return 0;
    if (oid->length == sizeof(krb5) && memcmp(oid->elements, krb5, sizeof(krb5)) == 0) return 1;
    if (oid->length == sizeof(mskrb5) && memcmp(oid->elements, mskrb5, sizeof(mskrb5)) == 0) return 1;
    return 0;
}

/// Makes the acceptor read its keys from `keytab` ("FILE:/path" or a path) instead of the
/// environment or the system default. Process-wide.
static inline OM_uint32 cgss_register_acceptor_identity(const char *keytab) {
    return krb5_gss_register_acceptor_identity(keytab);
}

/// Acquires an acceptor credential for the host-based service name `service` ("HTTP@host").
/// Fails when no key for it is in the keytab.
static inline OM_uint32 cgss_acquire_acceptor(const char *service, gss_cred_id_t *cred, OM_uint32 *minor) {
    gss_buffer_desc nb;
    nb.value = (void *)service;
    nb.length = strlen(service);
    gss_name_t name = GSS_C_NO_NAME;
    OM_uint32 major = gss_import_name(minor, &nb, GSS_C_NT_HOSTBASED_SERVICE, &name);
    if (GSS_ERROR(major)) return major;
    major = gss_acquire_cred(minor, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_ACCEPT, cred, NULL, NULL);
    OM_uint32 m;
    gss_release_name(&m, &name);
    return major;
}

static inline void cgss_release_cred(gss_cred_id_t cred) {
    OM_uint32 m;
    if (cred != GSS_C_NO_CREDENTIAL) gss_release_cred(&m, &cred);
}

/// The result of accepting one token; free with `cgss_accept_result_free`.
typedef struct {
    OM_uint32 major;
    OM_uint32 minor;
    /// 1 when the negotiated mechanism is Kerberos 5.
    int krb5_mech;
    /// The initiator's principal ("alice@EXAMPLE.ORG"), malloc'd, or NULL.
    char *principal;
    /// The token to send back (mutual authentication), malloc'd, or NULL.
    unsigned char *output;
    size_t output_length;
} cgss_accept_result;

/// Accepts a single-leg initiator token (SPNEGO or raw Kerberos). A context that would need
/// another round trip is reported as GSS_S_CONTINUE_NEEDED and discarded: HTTP Negotiate with
/// Kerberos completes in one leg, and keeping half-open contexts between requests is not worth it.
static inline cgss_accept_result cgss_accept(gss_cred_id_t cred, const void *token, size_t length) {
    cgss_accept_result r;
    memset(&r, 0, sizeof(r));
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc in;
    in.value = (void *)token;
    in.length = length;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    OM_uint32 flags = 0, m = 0;
    r.major = gss_accept_sec_context(&r.minor, &ctx, cred, &in, GSS_C_NO_CHANNEL_BINDINGS, &src, &mech, &out, &flags, NULL, NULL);
    if (r.major == GSS_S_COMPLETE) {
        r.krb5_mech = cgss_is_krb5_mech(mech);
        gss_buffer_desc nb = GSS_C_EMPTY_BUFFER;
        if (!GSS_ERROR(gss_display_name(&m, src, &nb, NULL)) && nb.length > 0) {
            r.principal = (char *)malloc(nb.length + 1);
            if (r.principal) {
                memcpy(r.principal, nb.value, nb.length);
                r.principal[nb.length] = 0;
            }
        }
        gss_release_buffer(&m, &nb);
        if (out.length > 0) {
            r.output = (unsigned char *)malloc(out.length);
            if (r.output) {
                memcpy(r.output, out.value, out.length);
                r.output_length = out.length;
            }
        }
    }
    gss_release_buffer(&m, &out);
    if (src != GSS_C_NO_NAME) gss_release_name(&m, &src);
    if (ctx != GSS_C_NO_CONTEXT) gss_delete_sec_context(&m, &ctx, GSS_C_NO_BUFFER);
    return r;
}

static inline void cgss_accept_result_free(cgss_accept_result *r) {
    free(r->principal);
    free(r->output);
    r->principal = NULL;
    r->output = NULL;
}

/// The text of a GSSAPI status (major and minor), written into `buf` (always NUL-terminated).
static inline void cgss_status_text(OM_uint32 major, OM_uint32 minor, char *buf, size_t size) {
    if (size == 0) return;
    buf[0] = 0;
    size_t used = 0;
    int types[2] = { GSS_C_GSS_CODE, GSS_C_MECH_CODE };
    OM_uint32 codes[2] = { major, minor };
    for (int i = 0; i < 2; i++) {
        if (i == 1 && minor == 0) break;
        OM_uint32 ctx = 0, m;
        do {
            gss_buffer_desc msg = GSS_C_EMPTY_BUFFER;
            if (GSS_ERROR(gss_display_status(&m, codes[i], types[i], GSS_C_NO_OID, &ctx, &msg))) break;
            size_t n = msg.length;
            if (used > 0 && used + 2 < size) { buf[used++] = ':'; buf[used++] = ' '; }
            if (used + n >= size) n = size - used - 1;
            memcpy(buf + used, msg.value, n);
            used += n;
            buf[used] = 0;
            gss_release_buffer(&m, &msg);
        } while (ctx != 0 && used + 1 < size);
    }
}

/// Lists the principals in a keytab ("HTTP/host@REALM"), one per line, into a malloc'd string
/// (free it with `free`). Returns a krb5 error code, 0 on success.
static inline long cgss_keytab_principals(const char *keytab, char **out) {
    *out = NULL;
    krb5_context kctx;
    krb5_error_code rc = krb5_init_context(&kctx);
    if (rc) return rc;
    krb5_keytab kt;
    rc = krb5_kt_resolve(kctx, keytab, &kt);
    if (rc) { krb5_free_context(kctx); return rc; }
    krb5_kt_cursor cursor;
    rc = krb5_kt_start_seq_get(kctx, kt, &cursor);
    if (rc) { krb5_kt_close(kctx, kt); krb5_free_context(kctx); return rc; }
    size_t cap = 256, len = 0;
    char *acc = (char *)malloc(cap);
    if (!acc) { krb5_kt_end_seq_get(kctx, kt, &cursor); krb5_kt_close(kctx, kt); krb5_free_context(kctx); return ENOMEM; }
    acc[0] = 0;
    krb5_keytab_entry entry;
    while ((rc = krb5_kt_next_entry(kctx, kt, &entry, &cursor)) == 0) {
        char *name = NULL;
        if (krb5_unparse_name(kctx, entry.principal, &name) == 0) {
            size_t n = strlen(name);
            if (len + n + 2 > cap) {
                while (len + n + 2 > cap) cap *= 2;
                char *grown = (char *)realloc(acc, cap);
                if (!grown) { krb5_free_unparsed_name(kctx, name); krb5_free_keytab_entry_contents(kctx, &entry); break; }
                acc = grown;
            }
            memcpy(acc + len, name, n);
            len += n;
            acc[len++] = '\n';
            acc[len] = 0;
            krb5_free_unparsed_name(kctx, name);
        }
        krb5_free_keytab_entry_contents(kctx, &entry);
    }
    krb5_kt_end_seq_get(kctx, kt, &cursor);
    krb5_kt_close(kctx, kt);
    krb5_free_context(kctx);
    *out = acc;
    return (rc == KRB5_KT_END) ? 0 : rc;
}

/// The message for a krb5 error code.
static inline void cgss_krb5_error_text(long code, char *buf, size_t size) {
    if (size == 0) return;
    krb5_context kctx;
    if (krb5_init_context(&kctx) != 0) { buf[0] = 0; return; }
    const char *msg = krb5_get_error_message(kctx, (krb5_error_code)code);
    strncpy(buf, msg ? msg : "", size - 1);
    buf[size - 1] = 0;
    krb5_free_error_message(kctx, msg);
    krb5_free_context(kctx);
}

#endif
