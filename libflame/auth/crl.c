/* The certificate revocation list (cluster.tls.crl_file): the serials of
 * revoked client certificates, read from a PEM X509 CRL signed by the
 * cluster CA (flmadm revoke writes it), reloaded when the file changes.
 *
 * Threads: one owner thread (auth.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "auth/auth.h"
#include "util/util.h"

struct fl_crl {
    char *path;
    char *ca_file;
    fl_map revoked;     /* serial (upper-case hex) -> (void *)1 */
    struct stat seen;   /* the file as last loaded */
    int64_t checked_ns; /* last stat */
};

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static flame_status bad(const char *path, const char *what)
{
    unsigned long e = ERR_get_error();
    char ssl[256] = "";
    if (e)
        ERR_error_string_n(e, ssl, sizeof ssl);
    ERR_clear_error();
    return fl_error(FLAME_ERR_CONFIG, "cluster.tls.crl_file %s: %s%s%s", path, what,
                    *ssl ? ": " : "", ssl);
}

/* Is crl signed by one of the certificates in ca_file? */
static bool signed_by_ca(X509_CRL *crl, const char *ca_file)
{
    BIO *bio = BIO_new_file(ca_file, "r");
    bool ok = false;
    X509 *ca;
    while (bio && !ok && (ca = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        ok = X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(crl)) == 0 &&
             X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1;
        X509_free(ca);
    }
    BIO_free(bio);
    ERR_clear_error(); /* the end of the file reads as an error */
    return ok;
}

/* Reads the file into *revoked (a new map). */
static flame_status load(const char *path, const char *ca_file, fl_map *revoked)
{
    BIO *bio = BIO_new_file(path, "r");
    if (!bio)
        return bad(path, "cannot be read");
    X509_CRL *crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!crl)
        return bad(path, "not a PEM X509 CRL");
    if (ca_file && !signed_by_ca(crl, ca_file)) {
        X509_CRL_free(crl);
        return fl_error(FLAME_ERR_CONFIG, "cluster.tls.crl_file %s: not signed by the CA of "
                        "cluster.tls.ca_file (%s)", path, ca_file);
    }
    STACK_OF(X509_REVOKED) *list = X509_CRL_get_REVOKED(crl);
    memset(revoked, 0, sizeof *revoked);
    for (int i = 0; i < sk_X509_REVOKED_num(list); i++) {
        const ASN1_INTEGER *serial = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(list, i));
        BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        if (hex)
            fl_map_put(revoked, hex, (void *)1);
        OPENSSL_free(hex);
        BN_free(bn);
    }
    X509_CRL_free(crl);
    return FLAME_OK;
}

flame_status fl_crl_open(fl_crl **out, const char *crl_file, const char *ca_file)
{
    fl_crl *c = fl_calloc(1, sizeof *c);
    if (stat(crl_file, &c->seen) != 0) {
        free(c);
        return fl_error(FLAME_ERR_CONFIG, "cluster.tls.crl_file %s: no such file", crl_file);
    }
    flame_status st = load(crl_file, ca_file, &c->revoked);
    if (st) {
        free(c);
        return st;
    }
    c->path = fl_strdup(crl_file);
    c->ca_file = fl_strdup(ca_file);
    c->checked_ns = fl_mono_ns();
    fl_log(FL_LOG_INFO, "auth", "revocation list %s: %zu revoked certificate(s)", crl_file,
           c->revoked.len);
    *out = c;
    return FLAME_OK;
}

void fl_crl_refresh(fl_crl *c, int check_ms)
{
    int64_t now = fl_mono_ns();
    if (!c || now - c->checked_ns < (int64_t)check_ms * 1000000)
        return;
    c->checked_ns = now;
    struct stat st;
    if (stat(c->path, &st) != 0 || same_file(&st, &c->seen))
        return;
    fl_map fresh;
    if (load(c->path, c->ca_file, &fresh)) {
        fl_log(FL_LOG_ERROR, "auth", "%s; keeping the %zu revocation(s) loaded before",
               flame_error_last(), c->revoked.len);
        c->seen = st; /* said once per change of the file */
        return;
    }
    fl_map_free(&c->revoked);
    c->revoked = fresh;
    c->seen = st;
    fl_log(FL_LOG_INFO, "auth", "revocation list %s reloaded: %zu revoked certificate(s)", c->path,
           c->revoked.len);
}

bool fl_crl_revoked(const fl_crl *c, const char *serial)
{
    return c && serial && *serial && fl_map_get(&c->revoked, serial);
}

void fl_crl_free(fl_crl *c)
{
    if (!c)
        return;
    fl_map_free(&c->revoked);
    free(c->path);
    free(c->ca_file);
    free(c);
}
