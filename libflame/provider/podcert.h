/* Per-pod node certificates for the kubernetes provider: the session
 * manager holds a CA able to sign node certificates (kubernetes.node_ca_cert
 * and node_ca_key) and issues each executor pod a certificate of its own
 * (CN = the pod's name, which is its node name; OU = node; clientAuth), a
 * fresh P-256 key, valid kubernetes.node_cert_ttl. The pod gets them in a
 * Secret the provider creates and deletes with it.
 *
 * Threads: a kpodca is loaded once and then only read; kpodca_issue may be
 * called from any thread. */
#ifndef FL_PROVIDER_PODCERT_H
#define FL_PROVIDER_PODCERT_H

#include <stddef.h>
#include <stdint.h>

#include "flame/error.h"

typedef struct kpodca kpodca;

/* Loads the CA's certificate and key (PEM files). FLAME_ERR_CONFIG naming
 * the file and what is wrong (unreadable, not a CA, key not its own). */
flame_status kpodca_load(kpodca **out, const char *cert_file, const char *key_file);
void kpodca_free(kpodca *ca);

/* The CA's certificate, PEM (owned by ca). */
const char *kpodca_cert_pem(const kpodca *ca);

/* The CA certificate's own end, Unix seconds. */
int64_t kpodca_end(const kpodca *ca);

/* A key and a node certificate for name, valid ttl_s seconds from now (5
 * minutes back-dated for clock skew; never past the CA's own end): PEM
 * strings (malloc'ed) and the end as Unix seconds. FLAME_ERR_INTERNAL on
 * an OpenSSL failure. */
flame_status kpodca_issue(const kpodca *ca, const char *name, int64_t ttl_s, char **cert_pem,
                          char **key_pem, int64_t *not_after);

/* Base64 of n bytes (malloc'ed), as a Secret's data wants it. */
char *kpodca_base64(const char *s, size_t n);

#endif
