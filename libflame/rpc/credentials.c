/* Credentials of servers and channels: the one place TLS plugs in.
 *
 * Servers: TLS from a cert/key pair; with a ca_file, client certificates
 * are requested and verified when presented, or required (mutual). The
 * files are re-read when they change, without a restart: gRPC asks the
 * fetcher below before every handshake; it stats the files (cheap) and
 * builds a new certificate config only when one of them changed. A change
 * that does not load (say, a new cert beside the old key, mid-update) keeps
 * the certificates in use, is logged once, and is tried again at the next
 * change.
 *
 * Channels: TLS with ca_file (NULL: the system roots) and optionally a
 * client cert/key, read once when the channel is made.
 *
 * Every file is checked with OpenSSL before use, so a bad setting is an
 * error naming the setting and the file instead of a handshake that fails
 * later with nothing said.
 *
 * Threads: the fetcher runs on gRPC's threads; a watch's state is guarded
 * by its mutex. Everything else runs on the caller's thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rpc_internal.h"
#include "util/util.h"

bool rpc_tls_enabled(const rpc_tls *tls)
{
    return tls && (tls->enabled || tls->cert_file || tls->key_file || tls->ca_file);
}

void rpc_tls_copy(rpc_tls *dst, const rpc_tls *src)
{
    *dst = *src;
    dst->cert_file = fl_strdup(src->cert_file);
    dst->key_file = fl_strdup(src->key_file);
    dst->ca_file = fl_strdup(src->ca_file);
}

void rpc_tls_clear(rpc_tls *tls)
{
    free((char *)tls->cert_file);
    free((char *)tls->key_file);
    free((char *)tls->ca_file);
    *tls = (rpc_tls)RPC_TLS_INIT;
}

/* ---- reading and checking PEM files --------------------------------------- */

/* Reads a whole file (NUL-terminated, malloc'ed) or sets the error. */
static char *read_pem(const char *key, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fl_error(FLAME_ERR_CONFIG, "%s: %s: %s", key, path, strerror(errno));
        return NULL;
    }
    fl_buf b = { 0 };
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fl_buf_add(&b, chunk, n);
    bool err = ferror(f);
    fclose(f);
    char *s = fl_buf_detach(&b);
    if (err) {
        free(s);
        fl_error(FLAME_ERR_CONFIG, "%s: %s: read error", key, path);
        return NULL;
    }
    return s;
}

/* Number of certificates in pem (0 with the error set when none parse). */
static int count_certs(const char *key, const char *path, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    int n = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        X509_free(x);
        n++;
    }
    BIO_free(bio);
    ERR_clear_error(); /* the read past the last one */
    if (n == 0)
        fl_error(FLAME_ERR_CONFIG, "%s: %s: no PEM certificate in it", key, path);
    return n;
}

/* Checks that key_pem holds a private key matching the first certificate
 * of cert_pem. */
static flame_status check_pair(const rpc_tls *t, const char *cert_pem, const char *key_pem)
{
    BIO *kb = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    BIO_free(kb);
    if (!pk) {
        ERR_clear_error();
        return fl_error(FLAME_ERR_CONFIG, "key_file: %s: no PEM private key in it", t->key_file);
    }
    BIO *cb = BIO_new_mem_buf(cert_pem, -1);
    X509 *x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    BIO_free(cb);
    flame_status st = FLAME_OK;
    if (!x || X509_check_private_key(x, pk) != 1)
        st = fl_error(FLAME_ERR_CONFIG, "key_file: %s: does not match the certificate in %s",
                      t->key_file, t->cert_file);
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(pk);
    return st;
}

/* The PEM contents of a TLS setting's files, read and checked. */
typedef struct pems {
    char *cert, *key, *ca;
} pems;

static void pems_free(pems *p)
{
    free(p->cert);
    if (p->key) {
        /* a private key: do not leave it in freed memory */
        volatile char *k = p->key;
        for (size_t i = 0; k[i]; i++)
            k[i] = 0;
    }
    free(p->key);
    free(p->ca);
    *p = (pems){ NULL, NULL, NULL };
}

static flame_status pems_load(pems *out, const rpc_tls *t, bool server)
{
    *out = (pems){ NULL, NULL, NULL };
    if (server && (!t->cert_file || !t->key_file))
        return fl_error(FLAME_ERR_CONFIG, "%s: required for a TLS server",
                        !t->cert_file ? "cert_file" : "key_file");
    if (!server && (!t->cert_file) != (!t->key_file))
        return fl_error(FLAME_ERR_CONFIG, "%s: required with %s (a client certificate "
                        "needs both)", !t->cert_file ? "cert_file" : "key_file",
                        !t->cert_file ? "key_file" : "cert_file");
    if (server && t->mutual && !t->ca_file)
        return fl_error(FLAME_ERR_CONFIG, "ca_file: required with mutual TLS (it verifies "
                        "the client certificates)");
    pems p = { NULL, NULL, NULL };
    if (t->cert_file && (!(p.cert = read_pem("cert_file", t->cert_file)) ||
                         !count_certs("cert_file", t->cert_file, p.cert)))
        goto fail;
    if (t->key_file && !(p.key = read_pem("key_file", t->key_file)))
        goto fail;
    if (p.cert && check_pair(t, p.cert, p.key))
        goto fail;
    if (t->ca_file && (!(p.ca = read_pem("ca_file", t->ca_file)) ||
                       !count_certs("ca_file", t->ca_file, p.ca)))
        goto fail;
    *out = p;
    return FLAME_OK;
fail:
    pems_free(&p);
    return FLAME_ERR_CONFIG;
}

flame_status rpc_tls_check(const rpc_tls *tls, bool server)
{
    if (!rpc_tls_enabled(tls))
        return FLAME_OK;
    pems p;
    flame_status st = pems_load(&p, tls, server);
    pems_free(&p);
    return st;
}

/* ---- servers: certificates reloaded when their files change --------------- */

struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct rpc_cert_watch {
    pthread_mutex_t mu;
    rpc_tls tls;        /* owned copy */
    bool served;        /* the first config was handed to gRPC */
    struct file_sig sig[3], bad_sig[3];
    bool have_bad;
    rpc_cert_watch *next;
};

static void sign(struct file_sig sig[3], const rpc_tls *t)
{
    const char *files[3] = { t->cert_file, t->key_file, t->ca_file };
    for (int i = 0; i < 3; i++) {
        struct stat st;
        memset(&sig[i], 0, sizeof sig[i]);
        if (files[i] && stat(files[i], &st) == 0)
            sig[i] = (struct file_sig){ st.st_dev, st.st_ino, st.st_size, st.st_mtim };
    }
}

static bool same_sig(const struct file_sig a[3], const struct file_sig b[3])
{
    for (int i = 0; i < 3; i++)
        if (a[i].dev != b[i].dev || a[i].ino != b[i].ino || a[i].size != b[i].size ||
            a[i].mtime.tv_sec != b[i].mtime.tv_sec || a[i].mtime.tv_nsec != b[i].mtime.tv_nsec)
            return false;
    return true;
}

static grpc_ssl_server_certificate_config *make_config(const pems *p)
{
    grpc_ssl_pem_key_cert_pair pair = { p->key, p->cert };
    /* gRPC asserts a root with a fetcher even when no client certificate
     * is asked for (no ca_file): give it the server's own, never used
     * then. Copies the strings. */
    return grpc_ssl_server_certificate_config_create(p->ca ? p->ca : p->cert, &pair, 1);
}

/* gRPC's certificate config fetcher: runs before every handshake. */
static grpc_ssl_certificate_config_reload_status fetch(void *user,
                                                       grpc_ssl_server_certificate_config **cfg)
{
    rpc_cert_watch *w = user;
    grpc_ssl_certificate_config_reload_status rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    struct file_sig now[3];
    sign(now, &w->tls);
    pthread_mutex_lock(&w->mu);
    if (w->served && (same_sig(now, w->sig) || (w->have_bad && same_sig(now, w->bad_sig))))
        goto out;
    pems p;
    if (pems_load(&p, &w->tls, true) != FLAME_OK) {
        /* also before the first handshake: the files changed since the
         * check at start (that config stays in use when there is one) */
        fl_log(FL_LOG_WARN, "rpc", "TLS: keeping the certificates in use: tls %s",
               flame_error_last());
        memcpy(w->bad_sig, now, sizeof now);
        w->have_bad = true;
        rs = w->served ? GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED
                       : GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
        goto out;
    }
    *cfg = make_config(&p);
    pems_free(&p);
    if (w->served)
        fl_log(FL_LOG_INFO, "rpc", "TLS: certificates reloaded from %s", w->tls.cert_file);
    memcpy(w->sig, now, sizeof now);
    w->have_bad = false;
    w->served = true;
    rs = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
out:
    pthread_mutex_unlock(&w->mu);
    return rs;
}

void rpc_cert_watch_free(rpc_cert_watch *w)
{
    while (w) {
        rpc_cert_watch *next = w->next;
        rpc_tls_clear(&w->tls);
        pthread_mutex_destroy(&w->mu);
        free(w);
        w = next;
    }
}

flame_status rpc_server_credentials(grpc_server_credentials **out, const rpc_tls *tls,
                                    rpc_cert_watch **watches)
{
    if (!rpc_tls_enabled(tls)) {
        *out = grpc_insecure_server_credentials_create();
        return FLAME_OK;
    }
    flame_status st = rpc_tls_check(tls, true);
    if (st)
        return st;
    rpc_cert_watch *w = fl_calloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    rpc_tls_copy(&w->tls, tls);
    /* Without a CA nothing could verify a client certificate: do not ask
     * for one (Flame's server-only TLS). With one, a presented certificate
     * must verify, and with mutual one must be presented. */
    grpc_ssl_client_certificate_request_type req =
        !tls->ca_file ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
        : tls->mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                      : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
    grpc_ssl_server_credentials_options *so =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(req, fetch, w);
    *out = grpc_ssl_server_credentials_create_with_options(so); /* takes so */
    if (!*out) {
        rpc_cert_watch_free(w);
        return fl_error(FLAME_ERR_CONFIG, "cert_file: %s: gRPC refused the TLS settings",
                        tls->cert_file);
    }
    /* gRPC keeps w without a way to free it: it lives as long as the server */
    w->next = *watches;
    *watches = w;
    return FLAME_OK;
}

/* ---- channels --------------------------------------------------------------- */

flame_status rpc_channel_credentials(grpc_channel_credentials **out, const rpc_tls *tls)
{
    if (!rpc_tls_enabled(tls)) {
        *out = grpc_insecure_credentials_create();
        return FLAME_OK;
    }
    pems p;
    flame_status st = pems_load(&p, tls, false);
    if (st)
        return st;
    grpc_ssl_pem_key_cert_pair pair = { p.key, p.cert };
    /* copies what it keeps; a NULL root: gRPC's default roots */
    *out = grpc_ssl_credentials_create(p.ca, p.cert ? &pair : NULL, NULL, NULL);
    pems_free(&p);
    if (!*out)
        return fl_error(FLAME_ERR_CONFIG, "gRPC refused the TLS settings");
    return FLAME_OK;
}
