/* The session manager's TLS and auth settings: flame_server_options over
 * the cluster config's cluster.tls and cluster.auth, checked once at start.
 * (Clients find theirs with their endpoint: config/endpoint.h.) */
#ifndef FL_CONFIG_TLS_H
#define FL_CONFIG_TLS_H

#include <stdbool.h>

#include "flame/server.h"
#include "rpc/rpc.h"

/* "none" or "user": the roles a client without a certificate may get.
 * Never "admin" (*why says so). */
bool fl_anonymous_role_valid(const char *role, const char **why);

typedef struct fl_server_tls {
    rpc_tls tls;          /* nothing set: plaintext; strings owned */
    char *crl_file;       /* revoked client certificates, or NULL */
    char *anonymous_role; /* "none", "user", or NULL (unset) */
} fl_server_tls;

/* Merges opts over cfg (either may be NULL) into *out and checks the files
 * (readable PEM, the key matches the certificate, a CA with mutual, the
 * CRL readable). Errors: FLAME_ERR_CONFIG naming the key, e.g.
 * "cluster.tls.cert_file: /etc/flame/sm.crt: No such file or directory".
 * Release with fl_server_tls_clear (also after an error). */
flame_status fl_server_tls_resolve(fl_server_tls *out, const flame_server_options *opts,
                                   const flame_cluster_config *cfg);
void fl_server_tls_clear(fl_server_tls *t);

#endif
