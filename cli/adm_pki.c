/* The X.509 side of flmadm: keys, certificates, the CRL, PEM files. */
#include "adm_pki.h"

#include <ctype.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "adm_file.h"

/* Certificates start a little in the past, so a node whose clock is a few
 * minutes behind the CA's does not see a brand-new certificate as not yet
 * valid. */
#define ADM_BACKDATE_SECS 300

int adm_key_type_parse(adm_key_type *out, const char *s)
{
    if (strcmp(s, "ec") == 0)
        *out = ADM_KEY_EC;
    else if (strcmp(s, "rsa") == 0)
        *out = ADM_KEY_RSA;
    else
        return -1;
    return 0;
}

EVP_PKEY *adm_key_new(adm_key_type type)
{
    EVP_PKEY *key = type == ADM_KEY_RSA ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072)
                                        : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!key)
        adm_fail("cannot generate a key");
    return key;
}

bool adm_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ADM_NAME_MAX || name[0] == '-' || name[0] == '.')
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._@-", *p))
            return false;
    return true;
}

bool adm_dns_valid(const char *s)
{
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253)
        return false;
    for (const char *p = s; ; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || p[-1] == '-')
                return false;
            if (!*p)
                return true;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)*p) && !(*p == '-' && label > 0))
            return false;
        if (++label > 63)
            return false;
    }
}

static GENERAL_NAME *san_parse(const char *item)
{
    GENERAL_NAME *gn = NULL;
    if (strncasecmp(item, "DNS:", 4) == 0 && adm_dns_valid(item + 4)) {
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        gn = GENERAL_NAME_new();
        if (!s || !gn || !ASN1_STRING_set(s, item + 4, -1)) {
            ASN1_IA5STRING_free(s);
            GENERAL_NAME_free(gn);
            return NULL;
        }
        GENERAL_NAME_set0_value(gn, GEN_DNS, s);
    } else if (strncasecmp(item, "IP:", 3) == 0) {
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(item + 3);
        if (ip && !(gn = GENERAL_NAME_new()))
            ASN1_OCTET_STRING_free(ip);
        else if (ip)
            GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
    }
    return gn;
}

int adm_san_add(GENERAL_NAMES *gens, const char *item)
{
    GENERAL_NAME *gn = san_parse(item);
    if (!gn) {
        ERR_clear_error();
        return adm_fail("a SAN is DNS:NAME or IP:ADDRESS, not \"%s\"", item);
    }
    return adm_san_push(gens, gn);
}

int adm_san_push(GENERAL_NAMES *gens, GENERAL_NAME *gn)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++)
        if (GENERAL_NAME_cmp(sk_GENERAL_NAME_value(gens, i), gn) == 0) {
            GENERAL_NAME_free(gn);
            return 0;
        }
    if (!sk_GENERAL_NAME_push(gens, gn)) {
        GENERAL_NAME_free(gn);
        return adm_fail("out of memory");
    }
    return 0;
}

static int name_add(X509_NAME *n, const char *field, const char *value)
{
    return X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8, (const unsigned char *)value, -1,
                                      -1, 0);
}

/* O=Flame[, OU=role], CN=name */
static X509_NAME *subject_new(const char *ou, const char *cn)
{
    X509_NAME *n = X509_NAME_new();
    if (!n || !name_add(n, "O", "Flame") || (ou && !name_add(n, "OU", ou)) ||
        !name_add(n, "CN", cn)) {
        X509_NAME_free(n);
        adm_fail("cannot build the subject name");
        return NULL;
    }
    return n;
}

/* Adds extension NID given in openssl's config syntax ("critical,CA:TRUE"). */
static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ext && X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    if (!ok)
        return adm_fail("cannot add %s = %s", OBJ_nid2sn(nid), value);
    return 0;
}

/* A v3 certificate for KEY and SUBJECT, with a random serial and DAYS of
 * validity from now; issuer, extensions and signature are the caller's. */
static X509 *cert_new(const X509_NAME *subject, EVP_PKEY *key, int days)
{
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    /* 127 bits with the top one set: positive, always 32 hex digits */
    if (!x || !serial || !X509_set_version(x, X509_VERSION_3) ||
        !BN_rand(serial, 127, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) ||
        !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) ||
        !X509_set_subject_name(x, subject) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -ADM_BACKDATE_SECS) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) ||
        !X509_set_pubkey(x, key)) {
        adm_fail("cannot build the certificate");
        X509_free(x);
        x = NULL;
    }
    BN_free(serial);
    return x;
}

static int sign(X509 *x, EVP_PKEY *key)
{
    if (X509_sign(x, key, EVP_sha256()) <= 0)
        return adm_fail("cannot sign the certificate");
    return 0;
}

X509 *adm_ca_new(EVP_PKEY *key, const char *name, int days)
{
    X509_NAME *subject = subject_new(NULL, name);
    if (!subject)
        return NULL;
    X509 *x = cert_new(subject, key, days);
    X509_NAME_free(subject);
    if (!x)
        return NULL;
    if (!X509_set_issuer_name(x, X509_get_subject_name(x))) {
        adm_fail("cannot set the issuer");
        goto fail;
    }
    /* the subject key id first: the authority key id is computed from it */
    if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") != 0 ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
        add_ext(x, x, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, x, NID_authority_key_identifier, "keyid:always") != 0 || sign(x, key) != 0)
        goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

/* Keeps a certificate within its CA's validity. */
static int clamp_to_ca(X509 *x, const X509 *ca, const char *name)
{
    if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)) <= 0)
        return 0;
    fprintf(stderr, "flmadm: note: %s's certificate ends with the CA's own certificate\n", name);
    if (!X509_set1_notAfter(x, X509_get0_notAfter(ca)))
        return adm_fail("cannot set notAfter");
    return 0;
}

X509 *adm_leaf_new(const adm_leaf_spec *spec, EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key)
{
    bool server = strcmp(spec->role, "server") == 0;
    X509_NAME *subject = subject_new(spec->role, spec->name);
    if (!subject)
        return NULL;
    X509 *x = cert_new(subject, key, spec->days);
    X509_NAME_free(subject);
    if (!x)
        return NULL;
    if (!X509_set_issuer_name(x, X509_get_subject_name(ca))) {
        adm_fail("cannot set the issuer");
        goto fail;
    }
    /* RSA keys also encipher in TLS 1.2's RSA key exchange */
    const char *usage = EVP_PKEY_is_a(key, "RSA") ? "critical,digitalSignature,keyEncipherment"
                                                  : "critical,digitalSignature";
    if (clamp_to_ca(x, ca, spec->name) != 0 ||
        add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(x, ca, NID_key_usage, usage) != 0 ||
        add_ext(x, ca, NID_ext_key_usage, server ? "serverAuth" : "clientAuth") != 0 ||
        add_ext(x, ca, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, ca, NID_authority_key_identifier, "keyid:always") != 0)
        goto fail;
    if (spec->sans && sk_GENERAL_NAME_num(spec->sans) > 0 &&
        !X509_add1_ext_i2d(x, NID_subject_alt_name, (void *)spec->sans, 0, X509V3_ADD_DEFAULT)) {
        adm_fail("cannot add the subject alternative names");
        goto fail;
    }
    if (sign(x, ca_key) != 0)
        goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

static X509_REVOKED *revoked_new(const adm_entry *e)
{
    X509_REVOKED *r = X509_REVOKED_new();
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial = NULL;
    ASN1_TIME *when = ASN1_TIME_set(NULL, e->revoked_at);
    if (!r || !when || !BN_hex2bn(&bn, e->serial) || !(serial = BN_to_ASN1_INTEGER(bn, NULL)) ||
        !X509_REVOKED_set_serialNumber(r, serial) || !X509_REVOKED_set_revocationDate(r, when)) {
        adm_fail("cannot list serial %s in the CRL", e->serial);
        X509_REVOKED_free(r);
        r = NULL;
    }
    ASN1_INTEGER_free(serial);
    ASN1_TIME_free(when);
    BN_free(bn);
    return r;
}

static int crl_add_revoked(X509_CRL *crl, const adm_index *idx)
{
    for (size_t i = 0; i < idx->n; i++) {
        if (!idx->v[i].revoked)
            continue;
        X509_REVOKED *r = revoked_new(&idx->v[i]);
        if (!r)
            return -1;
        if (!X509_CRL_add0_revoked(crl, r)) {
            X509_REVOKED_free(r);
            return adm_fail("cannot add to the CRL");
        }
    }
    return 0;
}

static int crl_add_extensions(X509_CRL *crl, long number, X509 *ca)
{
    ASN1_INTEGER *num = ASN1_INTEGER_new();
    int ok = num && ASN1_INTEGER_set(num, number) &&
             X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) == 1;
    ASN1_INTEGER_free(num);
    if (!ok)
        return adm_fail("cannot set the CRL number");
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, ca, NULL, NULL, crl, 0);
    X509_EXTENSION *aki =
        X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
    ok = aki && X509_CRL_add_ext(crl, aki, -1);
    X509_EXTENSION_free(aki);
    if (!ok)
        return adm_fail("cannot set the CRL's authority key id");
    return 0;
}

X509_CRL *adm_crl_new(const adm_index *idx, long number, int days, X509 *ca, EVP_PKEY *ca_key)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *now = X509_gmtime_adj(NULL, 0);
    ASN1_TIME *next = X509_time_adj_ex(NULL, days, 0, NULL);
    if (!crl || !now || !next || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) ||
        !X509_CRL_set1_lastUpdate(crl, now) || !X509_CRL_set1_nextUpdate(crl, next)) {
        adm_fail("cannot build the CRL");
        goto fail;
    }
    if (crl_add_revoked(crl, idx) != 0 || crl_add_extensions(crl, number, ca) != 0)
        goto fail;
    if (!X509_CRL_sort(crl) || X509_CRL_sign(crl, ca_key, EVP_sha256()) <= 0) {
        adm_fail("cannot sign the CRL");
        goto fail;
    }
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    return crl;
fail:
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    X509_CRL_free(crl);
    return NULL;
}

int adm_serial_hex(char *buf, size_t n, const X509 *cert)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    BN_free(bn);
    if (!hex || strlen(hex) >= n) {
        OPENSSL_free(hex);
        return adm_fail("cannot read the serial number");
    }
    memcpy(buf, hex, strlen(hex) + 1);
    OPENSSL_free(hex);
    return 0;
}

time_t adm_time(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    return timegm(&tm);
}

time_t adm_not_after(const X509 *cert)
{
    return adm_time(X509_get0_notAfter(cert));
}

X509 *adm_load_cert(const char *path)
{
    BIO *in = BIO_new_file(path, "r");
    X509 *x = in ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
    BIO_free(in);
    if (!x)
        adm_fail("cannot read the certificate %s", path);
    return x;
}

EVP_PKEY *adm_load_key(const char *path)
{
    BIO *in = BIO_new_file(path, "r");
    EVP_PKEY *k = in ? PEM_read_bio_PrivateKey(in, NULL, NULL, NULL) : NULL;
    BIO_free(in);
    if (!k)
        adm_fail("cannot read the key %s", path);
    return k;
}

static int emit_key(BIO *out, const void *arg)
{
    return PEM_write_bio_PrivateKey(out, (EVP_PKEY *)arg, NULL, NULL, 0, NULL, NULL);
}

static int emit_cert(BIO *out, const void *arg)
{
    return PEM_write_bio_X509(out, (X509 *)arg);
}

static int emit_crl(BIO *out, const void *arg)
{
    return PEM_write_bio_X509_CRL(out, (X509_CRL *)arg);
}

int adm_save_key(const char *path, EVP_PKEY *key, bool replace)
{
    return adm_write(path, 0600, replace, emit_key, key);
}

int adm_save_cert(const char *path, X509 *cert, bool replace)
{
    return adm_write(path, 0644, replace, emit_cert, cert);
}

int adm_save_crl(const char *path, X509_CRL *crl)
{
    return adm_write(path, 0644, true, emit_crl, crl);
}
