/* What the kubernetes provider asks the API server for: an executor
 * manager's pod (labels, resources, the sandbox's security context, its
 * TLS files) and the Secret with its own node certificate. Pure: JSON out
 * of a kpodspec, no I/O but getrandom for a pod's name. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "provider/podcert.h"
#include "provider/podspec.h"
#include "util/util.h"

/* A label value (<= 63 of [A-Za-z0-9._-], alphanumeric at both ends); one
 * that is not gets "h-" and a hash (the annotation keeps the real one). */
void klabel_value(const char *s, char out[64])
{
    size_t n = strlen(s);
    bool ok = n <= 63;
    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        ok = alnum || ((c == '-' || c == '_' || c == '.') && i > 0 && i + 1 < n);
    }
    if (ok) {
        memcpy(out, s, n + 1);
        return;
    }
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    snprintf(out, 64, "h-%016llx", (unsigned long long)h);
}

/* A quantity: cpu in cores, memory in bytes (the resreq's units). */
static void add_quantity(cJSON *o, const char *key, uint64_t v)
{
    char s[32];
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    cJSON_AddStringToObject(o, key, s);
}

/* What the process sandbox needs: the executor manager is root in the pod
 * (each executor a uid of its own, mapped in a user namespace it makes),
 * with the capabilities of the systemd unit's bounding set (SYS_ADMIN: the
 * sandbox's namespaces and mounts; the API server then wants privilege
 * escalation allowed, and the sandbox sets no_new_privs on every service
 * itself), no runtime seccomp or AppArmor profile (they deny the
 * namespaces and mounts a sandbox makes; the sandbox installs its own
 * seccomp filter on every service), a read-only root. By default the pod
 * has a user namespace of its own (hostUsers: false): root in it is no one
 * on the host, /proc may be mounted unmasked in it (a sandbox mounts its
 * own), and executors' uids come from the pod's 65536. */
static void security_context(const kpodspec *p, cJSON *spec, cJSON *ctr)
{
    if (!p->host_users)
        cJSON_AddBoolToObject(spec, "hostUsers", false);
    cJSON *psc = cJSON_AddObjectToObject(spec, "securityContext");
    cJSON_AddNumberToObject(psc, "runAsUser", 0);
    cJSON_AddNumberToObject(psc, "runAsGroup", 0);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(psc, "seccompProfile"), "type", "Unconfined");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(psc, "appArmorProfile"), "type",
                            "Unconfined");
    cJSON *sc = cJSON_AddObjectToObject(ctr, "securityContext");
    cJSON_AddBoolToObject(sc, "privileged", false);
    cJSON_AddBoolToObject(sc, "allowPrivilegeEscalation", true);
    cJSON_AddBoolToObject(sc, "readOnlyRootFilesystem", true);
    if (!p->host_users)
        cJSON_AddStringToObject(sc, "procMount", "Unmasked");
    cJSON *caps = cJSON_AddObjectToObject(sc, "capabilities");
    const char *drop[] = { "ALL" };
    const char *add[] = { "SETUID", "SETGID", "CHOWN", "FOWNER", "DAC_OVERRIDE", "KILL",
                          "SYS_ADMIN", "SYS_RESOURCE" };
    cJSON_AddItemToObject(caps, "drop", cJSON_CreateStringArray(drop, 1));
    cJSON_AddItemToObject(caps, "add", cJSON_CreateStringArray(add, FL_ARRAY_LEN(add)));
}

static void add_args(cJSON *argv, ...)
{
    va_list ap;
    va_start(ap, argv);
    for (const char *a; (a = va_arg(ap, const char *));)
        cJSON_AddItemToArray(argv, cJSON_CreateString(a));
    va_end(ap);
}

static void add_volume(cJSON *spec, cJSON *ctr, const char *name, const char *path,
                       const char *secret)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "name", name);
    cJSON_AddStringToObject(m, "mountPath", path);
    if (secret)
        cJSON_AddBoolToObject(m, "readOnly", true);
    cJSON *mounts = cJSON_GetObjectItemCaseSensitive(ctr, "volumeMounts");
    cJSON_AddItemToArray(mounts ? mounts : cJSON_AddArrayToObject(ctr, "volumeMounts"), m);
    cJSON *vol = cJSON_CreateObject();
    cJSON_AddStringToObject(vol, "name", name);
    if (secret) {
        cJSON *sv = cJSON_AddObjectToObject(vol, "secret");
        cJSON_AddStringToObject(sv, "secretName", secret);
        cJSON_AddNumberToObject(sv, "defaultMode", 0400);
    } else {
        cJSON_AddObjectToObject(vol, "emptyDir");
    }
    cJSON *vols = cJSON_GetObjectItemCaseSensitive(spec, "volumes");
    cJSON_AddItemToArray(vols ? vols : cJSON_AddArrayToObject(spec, "volumes"), vol);
}

char *kpod_json(const kpodspec *p, const create_req *c)
{
    char lv[64];
    cJSON *pod = cJSON_CreateObject();
    cJSON_AddStringToObject(pod, "apiVersion", "v1");
    cJSON_AddStringToObject(pod, "kind", "Pod");
    cJSON *md = cJSON_AddObjectToObject(pod, "metadata");
    if (c->name[0])
        cJSON_AddStringToObject(md, "name", c->name);
    else
        cJSON_AddStringToObject(md, "generateName", "flame-executor-");
    cJSON_AddStringToObject(md, "namespace", p->ns);
    cJSON *labels = cJSON_AddObjectToObject(md, "labels");
    const cJSON *x;
    cJSON_ArrayForEach(x, p->extra_labels)
        cJSON_AddStringToObject(labels, x->string, x->valuestring);
    cJSON_AddStringToObject(labels, LABEL_MANAGED, "flame");
    cJSON_AddStringToObject(labels, LABEL_CLUSTER, p->cluster);
    klabel_value(c->session, lv);
    cJSON_AddStringToObject(labels, LABEL_SESSION, lv);
    klabel_value(c->app, lv);
    cJSON_AddStringToObject(labels, LABEL_APP, lv);
    cJSON *ann = cJSON_AddObjectToObject(md, "annotations");
    cJSON_AddStringToObject(ann, ANNOT_SESSION, c->session);
    cJSON_AddStringToObject(ann, "flame.io/application-name", c->app);
    if (c->cert_end) {
        char end[24];
        snprintf(end, sizeof end, "%lld", (long long)c->cert_end);
        cJSON_AddStringToObject(ann, ANNOT_CERT_END, end);
    }

    cJSON *spec = cJSON_AddObjectToObject(pod, "spec");
    cJSON_AddStringToObject(spec, "restartPolicy", "Never");
    if (p->service_account)
        cJSON_AddStringToObject(spec, "serviceAccountName", p->service_account);
    cJSON_AddBoolToObject(spec, "automountServiceAccountToken", false);
    cJSON *ctrs = cJSON_AddArrayToObject(spec, "containers");
    cJSON *ctr = cJSON_CreateObject();
    cJSON_AddItemToArray(ctrs, ctr);
    cJSON_AddStringToObject(ctr, "name", "executor-manager");
    cJSON_AddStringToObject(ctr, "image", p->image);
    cJSON_AddStringToObject(ctr, "imagePullPolicy", "IfNotPresent");
    flame_resreq r = c->resreq;
    if (!r.cpu && !r.memory && !r.gpu)
        r = p->dflt;
    char res[96];
    snprintf(res, sizeof res, "cpu=%llu,mem=%llu", (unsigned long long)r.cpu,
             (unsigned long long)r.memory);
    const char *cmd[] = { "flame-executor-manager" };
    cJSON_AddItemToObject(ctr, "command", cJSON_CreateStringArray(cmd, 1));
    cJSON *argv = cJSON_AddArrayToObject(ctr, "args");
    add_args(argv, "--endpoint", p->endpoint, "--node", "$(FLAME_NODE_NAME)", "--resources", res,
             "--work-dir", "/var/lib/flame/work", NULL);
    /* in a user namespace of its own the pod has uids 0-65535: executors
     * take the upper ones (else the host's default range) */
    if (!p->host_users)
        add_args(argv, "--sandbox-uids", "10000-65535", NULL);
    bool tls = p->tls_secret || p->own_certs;
    if (tls)
        add_args(argv, "--tls-ca", TLS_DIR "/ca.crt", "--tls-cert", TLS_DIR "/tls.crt",
                 "--tls-key", TLS_DIR "/tls.key", NULL);
    security_context(p, spec, ctr);
    add_volume(spec, ctr, "work", "/var/lib/flame", NULL);
    add_volume(spec, ctr, "tmp", "/tmp", NULL);
    if (tls) { /* the node's certificate and the CA, from a Secret: its own, or one shared */
        char secret[80];
        snprintf(secret, sizeof secret, "%s-tls", c->name);
        add_volume(spec, ctr, "flame-tls", TLS_DIR, p->own_certs ? secret : p->tls_secret);
    }
    cJSON *env = cJSON_AddArrayToObject(ctr, "env");
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToArray(env, e);
    cJSON_AddStringToObject(e, "name", "FLAME_NODE_NAME");
    cJSON *ref = cJSON_AddObjectToObject(cJSON_AddObjectToObject(e, "valueFrom"), "fieldRef");
    cJSON_AddStringToObject(ref, "fieldPath", "metadata.name");
    /* requests = limits: the executor gets what its session asked for */
    cJSON *rs = cJSON_AddObjectToObject(ctr, "resources");
    for (int i = 0; i < 2; i++) {
        cJSON *q = cJSON_AddObjectToObject(rs, i ? "limits" : "requests");
        if (r.cpu)
            add_quantity(q, "cpu", r.cpu);
        if (r.memory)
            add_quantity(q, "memory", r.memory);
        if (r.gpu > 0)
            add_quantity(q, "nvidia.com/gpu", (uint64_t)r.gpu);
    }
    char *s = cJSON_PrintUnformatted(pod);
    cJSON_Delete(pod);
    return s;
}

/* The pod's own node certificate, in a Secret the pod owns (the garbage
 * collector deletes it with the pod if we cannot; we delete it ourselves). */
char *ksecret_json(const kpodspec *p, const char *pod, const char *uid, const char *cert,
                         const char *key)
{
    cJSON *sec = cJSON_CreateObject();
    cJSON_AddStringToObject(sec, "apiVersion", "v1");
    cJSON_AddStringToObject(sec, "kind", "Secret");
    cJSON_AddStringToObject(sec, "type", "kubernetes.io/tls");
    cJSON_AddBoolToObject(sec, "immutable", true);
    cJSON *md = cJSON_AddObjectToObject(sec, "metadata");
    char *name = fl_sprintf("%s-tls", pod);
    cJSON_AddStringToObject(md, "name", name);
    free(name);
    cJSON_AddStringToObject(md, "namespace", p->ns);
    cJSON *labels = cJSON_AddObjectToObject(md, "labels");
    cJSON_AddStringToObject(labels, LABEL_MANAGED, "flame");
    cJSON_AddStringToObject(labels, LABEL_CLUSTER, p->cluster);
    cJSON_AddStringToObject(labels, LABEL_POD, pod);
    cJSON *own = cJSON_CreateObject();
    cJSON_AddStringToObject(own, "apiVersion", "v1");
    cJSON_AddStringToObject(own, "kind", "Pod");
    cJSON_AddStringToObject(own, "name", pod);
    cJSON_AddStringToObject(own, "uid", uid);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"), own);
    cJSON *data = cJSON_AddObjectToObject(sec, "data");
    const char *keys[] = { "tls.crt", "tls.key", "ca.crt" };
    const char *vals[] = { cert, key, p->ca_pem };
    for (int i = 0; i < 3; i++) {
        char *b = kpodca_base64(vals[i], strlen(vals[i]));
        cJSON_AddStringToObject(data, keys[i], b);
        free(b);
    }
    char *out = cJSON_PrintUnformatted(sec);
    cJSON_Delete(sec);
    return out;
}

/* A pod name of our own choosing (its certificate names it before it
 * exists): flame-executor- and 10 random [a-z0-9]. */
void kpod_name(char out[64])
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[10] = { 0 };
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) /* never short for 10 bytes */
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)(fl_now_ms() >> i);
    int n = snprintf(out, 64, "flame-executor-");
    for (size_t i = 0; i < sizeof r; i++)
        out[n++] = abc[r[i] % (sizeof abc - 1)];
    out[n] = 0;
}
