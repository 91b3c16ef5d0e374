/* Endpoints of the session manager: parsed once, resolved once.
 *
 * An endpoint is "http://HOST:PORT", "https://HOST:PORT" (TLS) or
 * "HOST:PORT". Every daemon, client
 * and config default goes through here: FL_DEFAULT_ENDPOINT is the only
 * place the default is written in code. */
#ifndef FL_CONFIG_ENDPOINT_H
#define FL_CONFIG_ENDPOINT_H

#include <stdbool.h>

#include "flame/error.h"

#define FL_DEFAULT_ENDPOINT "http://127.0.0.1:8080"

typedef struct fl_endpoint {
    char *url;    /* canonical "http(s)://HOST:PORT" (malloc'ed) */
    char *target; /* "HOST:PORT" for gRPC (malloc'ed) */
    bool tls;     /* https:// */
    /* fl_endpoint_resolve only (else NULL): the client's TLS files from the
     * current context's cluster.tls, each filled in when missing from
     * $FLAME_CA_FILE, $FLAME_CERT_FILE, $FLAME_KEY_FILE (malloc'ed) */
    char *ca_file, *cert_file, *key_file;
} fl_endpoint;

/* Parses text into *out (release with fl_endpoint_clear). Errors carry
 * code (the client reports FLAME_ERR_INVALID_ARGUMENT, the daemons
 * FLAME_ERR_CONFIG): unknown scheme or no HOST:PORT. *out is untouched on
 * error. */
flame_status fl_endpoint_parse(fl_endpoint *out, const char *text, flame_status code);
void fl_endpoint_clear(fl_endpoint *ep);

/* Does the endpoint listen only on this machine (127.0.0.0/8, ::1,
 * localhost, a unix: socket)? Host names other than localhost are not
 * resolved: they count as reachable from outside. */
bool fl_endpoint_loopback(const fl_endpoint *ep);

/* Finds and parses the endpoint a client uses: explicit_endpoint, else
 * $FLAME_ENDPOINT, else the current context of $FLAME_CONFIG or
 * ~/.flame/flame.yaml (flamepy's format), else FL_DEFAULT_ENDPOINT; and
 * the TLS files (see fl_endpoint). A context file that does not load is
 * ignored when the endpoint comes from elsewhere.
 * Errors: FLAME_ERR_CONFIG/FLAME_ERR_IO for a bad file,
 * FLAME_ERR_INVALID_ARGUMENT for a bad endpoint. */
flame_status fl_endpoint_resolve(fl_endpoint *out, const char *explicit_endpoint);

#endif
