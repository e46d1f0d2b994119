// OpenLDAP's libldap for Swift. Macros that Swift cannot import (casts, pointers to
// globals) are re-exported here as static inline functions.
#ifndef PORTAL_CLDAP_SHIM_H
#define PORTAL_CLDAP_SHIM_H

#include <lber.h>
#include <ldap.h>
#include <string.h>
#include <sys/time.h>

static inline void *cldap_opt_on(void) { return LDAP_OPT_ON; }
static inline void *cldap_opt_off(void) { return LDAP_OPT_OFF; }

static inline int cldap_scope_base(void) { return LDAP_SCOPE_BASE; }
static inline int cldap_scope_one(void) { return LDAP_SCOPE_ONELEVEL; }
static inline int cldap_scope_sub(void) { return LDAP_SCOPE_SUBTREE; }

static inline int cldap_server_down(void) { return LDAP_SERVER_DOWN; }
static inline int cldap_timeout(void) { return LDAP_TIMEOUT; }
static inline int cldap_connect_error(void) { return LDAP_CONNECT_ERROR; }

/// Sets a struct timeval option (LDAP_OPT_NETWORK_TIMEOUT, LDAP_OPT_TIMEOUT) in whole milliseconds.
static inline int cldap_set_timeval(LDAP *ld, int option, long millis) {
    struct timeval tv;
    tv.tv_sec = millis / 1000;
    tv.tv_usec = (millis % 1000) * 1000;
    return ldap_set_option(ld, option, &tv);
}

static inline int cldap_set_int(LDAP *ld, int option, int value) {
    return ldap_set_option(ld, option, &value);
}

/// Simple bind (RFC 4513 §5.1) with the password bytes exactly as given; `LDAP_SASL_SIMPLE` is NULL.
static inline int cldap_simple_bind(LDAP *ld, const char *dn, const char *password, size_t length, long millis) {
    struct berval cred;
    cred.bv_val = (char *)password;
    cred.bv_len = (ber_len_t)length;
    int msgid = 0;
    int rc = ldap_sasl_bind(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, &msgid);
    if (rc != LDAP_SUCCESS) return rc;
    struct timeval tv;
    tv.tv_sec = millis / 1000;
    tv.tv_usec = (millis % 1000) * 1000;
    LDAPMessage *res = NULL;
    rc = ldap_result(ld, msgid, LDAP_MSG_ALL, &tv, &res);
    if (rc == 0) {
        ldap_abandon_ext(ld, msgid, NULL, NULL);
        return LDAP_TIMEOUT;
    }
    if (rc < 0 || res == NULL) {
        int err = LDAP_SERVER_DOWN;
        ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &err);
        return err == LDAP_SUCCESS ? LDAP_SERVER_DOWN : err;
    }
    int code = LDAP_OTHER;
    rc = ldap_parse_result(ld, res, &code, NULL, NULL, NULL, NULL, 1);
    if (rc != LDAP_SUCCESS) return rc;
    return code;
}

/// SASL interaction for GSSAPI: nothing to ask, every prompt takes its default (the identity
/// is the principal in the ticket cache named by KRB5CCNAME).
/// Cyrus SASL's `sasl_interact_t` (sasl/sasl.h, unchanged since SASL 2.0), mirrored so the
/// build needs no libsasl2-dev; the list ends with id 0 (SASL_CB_LIST_END).
typedef struct {
    unsigned long id;
    const char *challenge;
    const char *prompt;
    const char *defresult;
    const void *result;
    unsigned len;
} cldap_sasl_interact;

static int cldap_sasl_defaults(LDAP *ld, unsigned flags, void *defaults, void *interact) {
    (void)ld; (void)flags; (void)defaults;
    cldap_sasl_interact *in = (cldap_sasl_interact *)interact;
    for (; in && in->id != 0; in++) {
        in->result = in->defresult ? in->defresult : "";
        in->len = in->defresult ? (unsigned)strlen(in->defresult) : 0;
    }
    return LDAP_SUCCESS;
}

/// SASL/GSSAPI bind (Kerberos service bind with the ticket cache, no password). The server's
/// host name is used as written in the URL (no reverse-DNS canonicalisation): ldap/<host>.
static inline int cldap_sasl_gssapi_bind(LDAP *ld) {
    ldap_set_option(ld, LDAP_OPT_X_SASL_NOCANON, LDAP_OPT_ON);
    return ldap_sasl_interactive_bind_s(ld, NULL, "GSSAPI", NULL, NULL, LDAP_SASL_QUIET, cldap_sasl_defaults, NULL);
}

#endif
