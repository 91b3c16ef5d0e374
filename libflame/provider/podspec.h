/* The pod and Secret the kubernetes provider makes (podspec.c): the
 * labels and annotations it puts on them and their JSON.
 * Threads: pure functions, any thread. */
#ifndef FL_PROVIDER_PODSPEC_H
#define FL_PROVIDER_PODSPEC_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "flame/types.h"

#define LABEL_MANAGED "app.kubernetes.io/managed-by"
#define LABEL_CLUSTER "flame.io/cluster"
#define LABEL_SESSION "flame.io/session"
#define LABEL_APP "flame.io/application"
#define ANNOT_SESSION "flame.io/session-id"
#define ANNOT_CERT_END "flame.io/cert-not-after" /* Unix seconds */
#define LABEL_POD "flame.io/pod"
#define TLS_DIR "/etc/flame/tls"

/* What every pod of a provider shares. */
typedef struct kpodspec {
    const char *ns, *image, *endpoint, *service_account, *cluster;
    const char *tls_secret;     /* one Secret for every pod, or NULL */
    bool own_certs;             /* each pod its own Secret <name>-tls */
    const char *ca_pem;         /* own_certs: the pods' ca.crt */
    const cJSON *extra_labels;  /* object */
    flame_resreq dflt;          /* a pod's when its session asks for nothing */
    bool host_users;            /* no user namespace of the pod's own */
} kpodspec;

/* One pod to make. */
typedef struct create_req {
    char *session, *app;
    flame_resreq resreq;
    char name[64];         /* with own_certs: the pod's name, chosen here (its certificate's CN) */
    int64_t cert_end;
} create_req;

/* A label value (<= 63 of [A-Za-z0-9._-], alphanumeric at both ends); one
 * that is not gets "h-" and a hash (the annotation keeps the real one). */
void klabel_value(const char *s, char out[64]);

/* The pod (malloc'ed JSON). */
char *kpod_json(const kpodspec *p, const create_req *c);

/* The Secret <pod>-tls with the pod's certificate, key and ca.crt, owned by
 * the pod (uid) (malloc'ed JSON). */
char *ksecret_json(const kpodspec *p, const char *pod, const char *uid, const char *cert,
                   const char *key);

/* A pod name of our own choosing: flame-executor- and 10 random [a-z0-9]. */
void kpod_name(char out[64]);

#endif
