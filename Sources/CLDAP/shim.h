// OpenLDAP's libldap for Swift. Macros that Swift cannot import (casts, pointers to
// globals) are re-exported here as static inline functions.
#ifndef PORTAL_CLDAP_SHIM_H
#define PORTAL_CLDAP_SHIM_H

#include <lber.h>
#include <ldap.h>
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

#endif
