/* The X.509 side of flmadm on OpenSSL 3: keys, the CA certificate, the
 * certificates it issues (identity in the Subject CN, role in the OU, as the
 * security contract says), the CRL, and PEM files. Every function that fails
 * prints why (with OpenSSL's error string) and returns NULL or -1.
 * Single-threaded. */
#ifndef FLAME_CLI_ADM_PKI_H
#define FLAME_CLI_ADM_PKI_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>

#include "adm_index.h"

typedef enum adm_key_type { ADM_KEY_EC, ADM_KEY_RSA } adm_key_type;

/* "ec" (P-256) or "rsa" (3072 bits); -1 for anything else. */
int adm_key_type_parse(adm_key_type *out, const char *s);
EVP_PKEY *adm_key_new(adm_key_type type);

/* An identity name fit for a CN and the index: 1..64 of [A-Za-z0-9._@-],
 * not starting with '-' or '.'. */
bool adm_name_valid(const char *name);

/* A host name (RFC 1123 labels), optionally under a "*." wildcard. */
bool adm_dns_valid(const char *s);

/* Adds "DNS:name" or "IP:address" (IPv4 or IPv6) to GENS unless already
 * there. -1 (printed) for anything else. */
int adm_san_add(GENERAL_NAMES *gens, const char *item);
/* Adds GN (taken) to GENS unless an equal name is there (then freed). */
int adm_san_push(GENERAL_NAMES *gens, GENERAL_NAME *gn);

/* A self-signed CA certificate: Subject O=Flame, CN=NAME; CA:TRUE,
 * keyCertSign + cRLSign; DAYS of validity. */
X509 *adm_ca_new(EVP_PKEY *key, const char *name, int days);

typedef struct adm_leaf_spec {
    const char *name;      /* Subject CN: the identity */
    const char *role;      /* Subject OU: server, node, user or admin */
    int days;              /* clamped to the CA's own end */
    const GENERAL_NAMES *sans; /* server certificates: subjectAltName */
} adm_leaf_spec;

/* A certificate for KEY's public half, signed by CA_KEY, with a fresh random
 * 127-bit serial. Server certificates (role "server") get serverAuth and the
 * SANs, every other role clientAuth. */
X509 *adm_leaf_new(const adm_leaf_spec *spec, EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key);

/* A v2 CRL listing every revoked entry of IDX, CRL number NUMBER,
 * nextUpdate DAYS from now. */
X509_CRL *adm_crl_new(const adm_index *idx, long number, int days, X509 *ca, EVP_PKEY *ca_key);

/* Upper-case hex of CERT's serial into BUF. */
int adm_serial_hex(char *buf, size_t n, const X509 *cert);
/* T as a time_t (0 when it cannot be read). */
time_t adm_time(const ASN1_TIME *t);
/* CERT's notAfter as a time_t. */
time_t adm_not_after(const X509 *cert);

X509 *adm_load_cert(const char *path);
EVP_PKEY *adm_load_key(const char *path);
/* Key files are 0600, certificates and CRLs 0644; all written atomically. */
int adm_save_key(const char *path, EVP_PKEY *key, bool replace);
int adm_save_cert(const char *path, X509 *cert, bool replace);
int adm_save_crl(const char *path, X509_CRL *crl);

#endif
