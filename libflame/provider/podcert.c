/* Per-pod node certificates (podcert.h), on OpenSSL 3. */
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/podcert.h"
#include "util/util.h"

#define BACKDATE_S 300

struct kpodca {
    X509 *cert;
    EVP_PKEY *key;
    char *pem;
};

static char *openssl_error(void)
{
    char buf[256] = "unknown error";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return fl_strdup(buf);
}

static flame_status load_fail(kpodca *ca, const char *file, const char *what)
{
    char *e = openssl_error();
    flame_status st = fl_error(FLAME_ERR_CONFIG, "kubernetes.node_ca: %s: %s (%s)", file, what, e);
    free(e);
    kpodca_free(ca);
    return st;
}

flame_status kpodca_load(kpodca **out, const char *cert_file, const char *key_file)
{
    *out = NULL;
    kpodca *ca = fl_calloc(1, sizeof *ca);
    FILE *f = fopen(cert_file, "r");
    if (f) {
        ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (!ca->cert)
        return load_fail(ca, cert_file, "cannot read a PEM certificate");
    if (X509_check_ca(ca->cert) < 1)
        return load_fail(ca, cert_file, "not a CA certificate (basicConstraints CA:TRUE)");
    if ((f = fopen(key_file, "r"))) {
        ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (!ca->key)
        return load_fail(ca, key_file, "cannot read a PEM private key");
    if (X509_check_private_key(ca->cert, ca->key) != 1)
        return load_fail(ca, key_file, "not the key of the CA certificate");
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    if (!b || !PEM_write_bio_X509(b, ca->cert)) {
        BIO_free(b);
        return load_fail(ca, cert_file, "cannot write it back as PEM");
    }
    long n = BIO_get_mem_data(b, &data);
    ca->pem = fl_strndup(data, (size_t)n);
    BIO_free(b);
    *out = ca;
    return FLAME_OK;
}

void kpodca_free(kpodca *ca)
{
    if (!ca)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca->pem);
    free(ca);
}

const char *kpodca_cert_pem(const kpodca *ca)
{
    return ca->pem;
}

int64_t kpodca_end(const kpodca *ca)
{
    struct tm tm;
    return ASN1_TIME_to_tm(X509_get0_notAfter(ca->cert), &tm) ? (int64_t)timegm(&tm) : 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static char *pem_of(int (*write)(BIO *, const void *), const void *obj)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *s = NULL;
    if (b && write(b, obj)) {
        long n = BIO_get_mem_data(b, &data);
        s = fl_strndup(data, (size_t)n);
    }
    BIO_free(b);
    return s;
}

static int write_cert(BIO *b, const void *x)
{
    return PEM_write_bio_X509(b, (X509 *)x);
}

static int write_key(BIO *b, const void *k)
{
    return PEM_write_bio_PrivateKey(b, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

flame_status kpodca_issue(const kpodca *ca, const char *name, int64_t ttl_s, char **cert_pem,
                          char **key_pem, int64_t *not_after)
{
    *cert_pem = *key_pem = NULL;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *subject = X509_NAME_new();
    BIGNUM *serial = BN_new();
    int ok = key && x && subject && serial && X509_set_version(x, X509_VERSION_3) &&
             /* 127 random bits, the top one set: positive, 32 hex digits */
             BN_rand(serial, 127, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) &&
             BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) &&
             X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, (const unsigned char *)"Flame",
                                        -1, -1, 0) &&
             X509_NAME_add_entry_by_txt(subject, "OU", MBSTRING_UTF8, (const unsigned char *)"node",
                                        -1, -1, 0) &&
             X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)name,
                                        -1, -1, 0) &&
             X509_set_subject_name(x, subject) &&
             X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) &&
             X509_gmtime_adj(X509_getm_notAfter(x), (long)ttl_s) && X509_set_pubkey(x, key);
    /* never past the CA's own end */
    if (ok && ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca->cert)) > 0)
        ok = X509_set1_notAfter(x, X509_get0_notAfter(ca->cert));
    ok = ok && add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature") &&
         add_ext(x, ca->cert, NID_ext_key_usage, "clientAuth") &&
         add_ext(x, ca->cert, NID_subject_key_identifier, "hash") &&
         add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always") &&
         X509_sign(x, ca->key, EVP_sha256()) > 0;
    struct tm tm;
    if (ok && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
        *not_after = (int64_t)timegm(&tm);
    if (ok) {
        *cert_pem = pem_of(write_cert, x);
        *key_pem = pem_of(write_key, key);
        /* a CA below the cluster's root (e.g. one for nodes only): the pod
         * presents the chain up to the root */
        if (*cert_pem && X509_check_issued(ca->cert, ca->cert) != X509_V_OK) {
            char *chain = fl_sprintf("%s%s", *cert_pem, ca->pem);
            free(*cert_pem);
            *cert_pem = chain;
        }
    }
    flame_status st = FLAME_OK;
    if (!ok || !*cert_pem || !*key_pem) {
        char *e = openssl_error();
        st = fl_error(FLAME_ERR_INTERNAL, "issuing a node certificate for pod %s: %s", name, e);
        free(e);
        free(*cert_pem);
        free(*key_pem);
        *cert_pem = *key_pem = NULL;
    }
    BN_free(serial);
    X509_NAME_free(subject);
    X509_free(x);
    EVP_PKEY_free(key);
    return st;
}

char *kpodca_base64(const char *s, size_t n)
{
    char *out = fl_malloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}
