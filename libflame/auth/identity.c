/* Identities and roles: what a verified client certificate says about its
 * holder (Subject CN = name, OU = role), on OpenSSL.
 *
 * Threads: fl_identity_from_pem and the role functions are thread-safe;
 * ref/unref belong to the thread that owns the identity (auth.h). */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "auth/auth.h"
#include "util/util.h"

static const struct {
    fl_role role;
    const char *name;
} roles[] = {
    { FL_ROLE_ADMIN, "admin" },
    { FL_ROLE_NODE, "node" },
    { FL_ROLE_USER, "user" },
    { FL_ROLE_NONE, "none" },
};

const char *fl_role_name(fl_role role)
{
    for (size_t i = 0; i < FL_ARRAY_LEN(roles); i++)
        if (roles[i].role == role)
            return roles[i].name;
    return "?";
}

int fl_role_parse(const char *s)
{
    for (size_t i = 0; s && i < FL_ARRAY_LEN(roles); i++)
        if (strcmp(roles[i].name, s) == 0)
            return (int)roles[i].role;
    return -1;
}

/* A name in messages and in the books: printable, no quoting needed. */
static bool name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("._@+-", *s)))
            return false;
    return true;
}

/* The one entry of nid in the subject, as UTF-8 into buf. 0: found; 1:
 * absent; -1: several, unreadable, or too long. */
static int subject_entry(X509_NAME *subj, int nid, char *buf, size_t size)
{
    int i = X509_NAME_get_index_by_NID(subj, nid, -1);
    if (i < 0)
        return 1;
    if (X509_NAME_get_index_by_NID(subj, nid, i) >= 0)
        return -1;
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
    int rc = 0;
    if (n < 0 || (size_t)n >= size || memchr(utf8, 0, (size_t)n))
        rc = -1;
    else
        memcpy(buf, utf8, (size_t)n), buf[n] = 0;
    OPENSSL_free(utf8);
    return rc;
}

flame_status fl_identity_from_pem(fl_identity *out, const char *pem)
{
    memset(out, 0, sizeof *out);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!x)
        return fl_error(FLAME_ERR_UNAUTHENTICATED, "the client certificate is not readable PEM");
    X509_NAME *subj = X509_get_subject_name(x);
    char ou[32];
    flame_status st = FLAME_OK;
    int cn = subject_entry(subj, NID_commonName, out->name, sizeof out->name);
    if (cn != 0 || !name_ok(out->name)) {
        st = fl_error(FLAME_ERR_UNAUTHENTICATED, "the client certificate needs one Subject CN "
                      "naming its holder (at most 64 letters, digits and ._@+-)");
    } else if (!strcmp(out->name, FL_IDENTITY_LOCAL) || !strcmp(out->name, FL_IDENTITY_ANONYMOUS)) {
        st = fl_error(FLAME_ERR_UNAUTHENTICATED, "certificate of \"%s\": the name is reserved",
                      out->name);
    } else {
        int rc = subject_entry(subj, NID_organizationalUnitName, ou, sizeof ou);
        int role = rc == 0 ? fl_role_parse(ou) : -1;
        if (rc == 1)
            st = fl_error(FLAME_ERR_UNAUTHENTICATED,
                          "certificate of \"%s\" has no role (Subject OU admin, node or user)",
                          out->name);
        else if (role <= 0)
            st = fl_error(FLAME_ERR_UNAUTHENTICATED,
                          "certificate of \"%s\" has role \"%s\"; a client needs admin, node or "
                          "user (Subject OU)", out->name, rc == 0 ? ou : "(several)");
        else
            out->role = (fl_role)role;
    }
    if (!st) {
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        if (!hex || strlen(hex) > FL_IDENTITY_SERIAL_MAX)
            st = fl_error(FLAME_ERR_UNAUTHENTICATED,
                          "certificate of \"%s\" has an unreadable serial number", out->name);
        else
            strcpy(out->serial, hex);
        OPENSSL_free(hex);
        BN_free(bn);
    }
    X509_free(x);
    return st;
}

void fl_identity_ref(fl_identity *id)
{
    if (id && id->refs >= 0)
        id->refs++;
}

void fl_identity_unref(fl_identity *id)
{
    if (id && id->refs > 0 && --id->refs == 0)
        free(id);
}
