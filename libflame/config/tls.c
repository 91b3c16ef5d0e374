/* The session manager's TLS and auth settings (see tls.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/tls.h"
#include "util/util.h"

bool fl_anonymous_role_valid(const char *role, const char **why)
{
    if (role && (strcmp(role, "none") == 0 || strcmp(role, "user") == 0))
        return true;
    *why = role && strcmp(role, "admin") == 0
               ? "must not be admin (a client without a certificate would administer the "
                 "cluster); use none or user"
               : "expected none or user";
    return false;
}

static const char *pick(const char *opt, const char *cfg_value)
{
    return opt ? opt : cfg_value;
}

flame_status fl_server_tls_resolve(fl_server_tls *out, const flame_server_options *o,
                                   const flame_cluster_config *cfg)
{
    static const flame_cluster_config none = { 0 };
    static const flame_server_options no_opts = FLAME_SERVER_OPTIONS_INIT;
    if (!cfg)
        cfg = &none;
    if (!o)
        o = &no_opts;
    *out = (fl_server_tls){ RPC_TLS_INIT, NULL, NULL };
    rpc_tls t = RPC_TLS_INIT;
    t.cert_file = pick(o->tls_cert_file, cfg->tls_cert_file);
    t.key_file = pick(o->tls_key_file, cfg->tls_key_file);
    t.ca_file = pick(o->tls_ca_file, cfg->tls_ca_file);
    t.mutual = o->tls_mutual || cfg->tls_mutual;
    rpc_tls_copy(&out->tls, &t);
    out->crl_file = fl_strdup(pick(o->tls_crl_file, cfg->tls_crl_file));
    out->anonymous_role = fl_strdup(pick(o->auth_anonymous_role, cfg->auth_anonymous_role));
    const char *why;
    if (out->anonymous_role && !fl_anonymous_role_valid(out->anonymous_role, &why))
        return fl_error(FLAME_ERR_CONFIG, "cluster.auth.anonymous_role: %s", why);
    bool on = rpc_tls_enabled(&t);
    if (!on && (t.mutual || out->crl_file))
        return fl_error(FLAME_ERR_CONFIG, "cluster.tls.cert_file: required with %s",
                        t.mutual ? "mutual TLS" : "a crl_file");
    if (on && rpc_tls_check(&t, true)) {
        char why2[512];
        snprintf(why2, sizeof why2, "%s", flame_error_last());
        return fl_error(FLAME_ERR_CONFIG, "cluster.tls.%s", why2);
    }
    if (out->crl_file) {
        FILE *f = fopen(out->crl_file, "r");
        if (!f)
            return fl_error(FLAME_ERR_CONFIG, "cluster.tls.crl_file: %s: %s", out->crl_file,
                            strerror(errno));
        fclose(f);
    }
    return FLAME_OK;
}

void fl_server_tls_clear(fl_server_tls *t)
{
    rpc_tls_clear(&t->tls);
    free(t->crl_file);
    free(t->anonymous_role);
    t->crl_file = t->anonymous_role = NULL;
}
