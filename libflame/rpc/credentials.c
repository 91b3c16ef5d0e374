/* Credentials of servers and channels: the one place TLS plugs in. Today
 * only plaintext exists; set TLS fields are refused rather than ignored. */
#include <stdlib.h>

#include "rpc_internal.h"
#include "util/util.h"

bool rpc_tls_enabled(const rpc_tls *tls)
{
    return tls && (tls->cert_file || tls->key_file || tls->ca_file);
}

static const char *dup_or_null(const char *s)
{
    return s ? fl_strdup(s) : NULL;
}

void rpc_tls_copy(rpc_tls *dst, const rpc_tls *src)
{
    dst->cert_file = dup_or_null(src->cert_file);
    dst->key_file = dup_or_null(src->key_file);
    dst->ca_file = dup_or_null(src->ca_file);
}

void rpc_tls_clear(rpc_tls *tls)
{
    free((char *)tls->cert_file);
    free((char *)tls->key_file);
    free((char *)tls->ca_file);
    *tls = (rpc_tls){ NULL, NULL, NULL };
}

static flame_status tls_unsupported(const char *who)
{
    return fl_error(FLAME_ERR_CONFIG, "%s: TLS is not supported yet (leave cert_file, key_file "
                                      "and ca_file unset)", who);
}

flame_status rpc_server_credentials(grpc_server_credentials **out, const rpc_tls *tls)
{
    if (rpc_tls_enabled(tls))
        return tls_unsupported("server");
    *out = grpc_insecure_server_credentials_create();
    return FLAME_OK;
}

flame_status rpc_channel_credentials(grpc_channel_credentials **out, const rpc_tls *tls)
{
    if (rpc_tls_enabled(tls))
        return tls_unsupported("channel");
    *out = grpc_insecure_credentials_create();
    return FLAME_OK;
}
