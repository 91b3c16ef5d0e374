/* flmadm: the cluster's certificate authority for mutual TLS. Creates the
 * CA, issues server, node and user certificates (identity in the Subject CN,
 * role in the OU), lists them, revokes them and keeps the CRL. The CA
 * directory holds ca.key (0600), ca.crt, index.txt, crlnumber, crl.pem and
 * issued/SERIAL.pem; writers hold its lock. Single-threaded. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include <flame/flame.h>

#include "adm_file.h"
#include "adm_index.h"
#include "adm_pki.h"
#include "table.h"

#define DEFAULT_CA_DAYS 3650
#define DEFAULT_DAYS 365
/* Long enough that a cluster nobody looks after keeps accepting clients
 * for as long as their certificates last; `flmadm crl` renews it. */
#define DEFAULT_CRL_DAYS 365
#define MAX_DAYS 36500

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: flmadm COMMAND [options]\n"
            "\n"
            "The cluster's certificate authority: every server, node and user of a\n"
            "cluster with mutual TLS holds a certificate it issued.\n"
            "\n"
            "Commands:\n"
            "  ca init [--name NAME] [--days N] [--key-type ec|rsa]\n"
            "                          create the CA in --dir (default 3650 days)\n"
            "  issue server NAME [--san DNS:x,IP:y ...]\n"
            "                          a server certificate; its SANs are localhost,\n"
            "                          127.0.0.1, ::1, this host's name, NAME and --san\n"
            "  issue node NODE         an executor manager's certificate (role node)\n"
            "  issue user NAME [--role user|admin]\n"
            "                          a user's certificate (default role user)\n"
            "                          issue writes NAME.key (0600), NAME.crt and the\n"
            "                          CA's ca.crt to --out\n"
            "  list                    every certificate issued and its state\n"
            "  revoke SERIAL|NAME [--role ROLE]\n"
            "                          revoke one certificate, or every valid one of\n"
            "                          NAME, and rewrite the CRL\n"
            "  crl                     rewrite the CRL (<ca dir>/crl.pem)\n"
            "\n"
            "Options:\n"
            "  -d, --dir DIR           the CA directory (default $FLAME_HOME/ca;\n"
            "                          FLAME_HOME defaults to ~/.flame)\n"
            "  -o, --out DIR           where issue writes (default .)\n"
            "  -n, --name NAME         the CA's name (default \"Flame CA\")\n"
            "      --days N            validity in days (default 365; the CA 3650)\n"
            "      --crl-days N        the CRL's next update, in days (default 365)\n"
            "      --key-type ec|rsa   EC P-256 (default) or RSA 3072 keys\n"
            "      --san LIST          extra server names: DNS:NAME,IP:ADDRESS (repeatable)\n"
            "      --role ROLE         issue user: user or admin; revoke: only that role\n"
            "  -f, --force             issue: replace NAME.key and NAME.crt in --out\n"
            "  -h, --help              show this help\n"
            "  -V, --version           show the version\n"
            "\n"
            "Exit status: 0 done, 1 failed, 2 usage error.\n");
}

typedef struct opts {
    const char *dir, *out, *name, *role;
    int days, crl_days;
    adm_key_type key_type;
    bool force;
    GENERAL_NAMES *sans; /* --san, in order */
    char *home_dir;      /* the default --dir, malloc'd */
} opts;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("flmadm: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'flmadm --help'.\n", stderr);
    return 2;
}

static int parse_days(int *out, const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > MAX_DAYS)
        return -1;
    *out = (int)v;
    return 0;
}

/* Each comma-separated item of LIST into O->sans. */
static int parse_sans(opts *o, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        abort();
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save))
        rc = adm_san_add(o->sans, t);
    free(copy);
    return rc;
}

static const char *default_dir(opts *o)
{
    const char *fh = getenv("FLAME_HOME");
    const char *home = getenv("HOME");
    char *base = fh && *fh ? strdup(fh) : adm_path(home && *home ? home : ".", ".flame");
    if (!base)
        abort();
    o->home_dir = adm_path(base, "ca");
    free(base);
    return o->home_dir;
}

/* ---- the CA directory ---- */

typedef struct ca {
    const char *dir;
    X509 *cert;
    EVP_PKEY *key;
    adm_index idx;
    int lock;
} ca;

static void ca_close(ca *c)
{
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    adm_index_free(&c->idx);
    if (c->lock >= 0)
        close(c->lock);
    c->lock = -1;
}

/* Opens DIR's CA: with WRITE, locked and with its key. */
static int ca_open(ca *c, const char *dir, bool write)
{
    memset(c, 0, sizeof *c);
    c->dir = dir;
    c->lock = -1;
    char *crt = adm_path(dir, "ca.crt"), *key = adm_path(dir, "ca.key");
    char *ix = adm_path(dir, "index.txt");
    int rc = -1;
    if (!adm_exists(crt)) {
        adm_fail("no CA in %s (create one with: flmadm ca init --dir %s)", dir, dir);
        goto out;
    }
    if (write && (c->lock = adm_lock(dir)) < 0)
        goto out;
    if (!(c->cert = adm_load_cert(crt)) || (write && !(c->key = adm_load_key(key))))
        goto out;
    if (write && X509_check_private_key(c->cert, c->key) != 1) {
        adm_fail("%s does not belong to %s", key, crt);
        goto out;
    }
    rc = adm_index_load(&c->idx, ix);
out:
    free(crt);
    free(key);
    free(ix);
    if (rc != 0)
        ca_close(c);
    return rc;
}

static int ca_save_index(ca *c)
{
    char *ix = adm_path(c->dir, "index.txt");
    int rc = adm_index_save(&c->idx, ix);
    free(ix);
    return rc;
}

/* The next CRL number, from <dir>/crlnumber (monotonic across rewrites). */
static long crl_number_next(const char *dir)
{
    char *path = adm_path(dir, "crlnumber");
    char *text = adm_read_file(path, NULL);
    free(path);
    long n = text ? strtol(text, NULL, 10) : 0;
    free(text);
    return n > 0 ? n + 1 : 1;
}

static int ca_write_crl(ca *c, int days)
{
    long number = crl_number_next(c->dir);
    X509_CRL *crl = adm_crl_new(&c->idx, number, days, c->cert, c->key);
    if (!crl)
        return -1;
    char *path = adm_path(c->dir, "crl.pem"), *numpath = adm_path(c->dir, "crlnumber");
    char num[32];
    snprintf(num, sizeof num, "%ld\n", number);
    int rc = adm_write_text(numpath, 0600, true, num);
    if (rc == 0)
        rc = adm_save_crl(path, crl);
    if (rc == 0) {
        size_t revoked = 0;
        for (size_t i = 0; i < c->idx.n; i++)
            revoked += c->idx.v[i].revoked;
        char next[32];
        cli_format_time(next, sizeof next, (int64_t)adm_time(X509_CRL_get0_nextUpdate(crl)) * 1000);
        printf("Wrote the CRL %s: %zu revoked, next update %s.\n", path, revoked, next);
    }
    free(path);
    free(numpath);
    X509_CRL_free(crl);
    return rc;
}

/* ---- ca init ---- */

static bool ca_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ADM_NAME_MAX)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* Writes ca.key then ca.crt, never over existing files; on failure removes
 * what it wrote. */
static int ca_write_files(const char *dir, EVP_PKEY *key, X509 *cert)
{
    char *kp = adm_path(dir, "ca.key"), *cp = adm_path(dir, "ca.crt");
    int rc = adm_save_key(kp, key, false);
    if (rc == 0 && (rc = adm_save_cert(cp, cert, false)) != 0)
        unlink(kp);
    free(kp);
    free(cp);
    return rc;
}

static int cmd_ca(opts *o, int argc, char **argv)
{
    if (argc != 1 || strcmp(argv[0], "init") != 0)
        return usage_error("the ca command is: flmadm ca init [--dir DIR] [--name NAME] "
                           "[--days N]");
    const char *name = o->name ? o->name : "Flame CA";
    if (!ca_name_valid(name))
        return usage_error("--name takes 1 to 64 printable characters, not \"%s\"", name);
    char *crt = adm_path(o->dir, "ca.crt"), *key = adm_path(o->dir, "ca.key");
    bool exists = adm_exists(crt) || adm_exists(key);
    free(crt);
    free(key);
    if (exists) {
        adm_fail("a CA already exists in %s; refusing to overwrite it", o->dir);
        return 1;
    }
    if (adm_mkdir(o->dir, true) != 0)
        return 1;
    ca c = { .dir = o->dir, .lock = adm_lock(o->dir) };
    if (c.lock < 0)
        return 1;
    int rc = 1;
    if (!(c.key = adm_key_new(o->key_type)) ||
        !(c.cert = adm_ca_new(c.key, name, o->days > 0 ? o->days : DEFAULT_CA_DAYS)))
        goto out;
    if (ca_write_files(o->dir, c.key, c.cert) != 0 || ca_save_index(&c) != 0)
        goto out;
    char until[32];
    cli_format_time(until, sizeof until, (int64_t)adm_not_after(c.cert) * 1000);
    printf("Created the CA \"%s\" in %s (valid until %s).\n", name, o->dir, until);
    printf("  %s/ca.crt  trust it on every server and client\n", o->dir);
    printf("  %s/ca.key  private (0600): keep it so\n", o->dir);
    rc = ca_write_crl(&c, o->crl_days) != 0;
out:
    ca_close(&c);
    return rc;
}

/* ---- issue ---- */

/* The SANs of a server certificate: loopback, this host, NAME, --san. */
static GENERAL_NAMES *server_sans(const opts *o, const char *name)
{
    GENERAL_NAMES *g = sk_GENERAL_NAME_new_null();
    if (!g)
        abort();
    char host[256] = "", item[300];
    gethostname(host, sizeof host - 1);
    static const char *loopback[] = { "DNS:localhost", "IP:127.0.0.1", "IP:::1" };
    int rc = 0;
    for (size_t i = 0; i < sizeof loopback / sizeof *loopback; i++)
        rc |= adm_san_add(g, loopback[i]);
    /* the host name and NAME when they are DNS names (a user-like NAME is not) */
    const char *names[] = { host, name };
    for (size_t i = 0; i < 2; i++)
        if (adm_dns_valid(names[i])) {
            snprintf(item, sizeof item, "DNS:%s", names[i]);
            rc |= adm_san_add(g, item);
        }
    for (int i = 0; i < sk_GENERAL_NAME_num(o->sans); i++) {
        GENERAL_NAME *dup = GENERAL_NAME_dup(sk_GENERAL_NAME_value(o->sans, i));
        rc |= dup ? adm_san_push(g, dup) : adm_fail("out of memory");
    }
    if (rc != 0) {
        GENERAL_NAMES_free(g);
        return NULL;
    }
    return g;
}

/* The paths issue writes: OUT/NAME.key, OUT/NAME.crt. */
typedef struct issue_paths {
    char *key, *crt, *ca;
} issue_paths;

static void issue_paths_free(issue_paths *p)
{
    free(p->key);
    free(p->crt);
    free(p->ca);
}

/* Puts the CA certificate beside an issued one (the holder needs it to
 * verify its peers); an existing ca.crt is kept, with a warning when it is
 * another CA's. */
static int copy_ca_cert(const ca *c, const char *path)
{
    char *src = adm_path(c->dir, "ca.crt");
    char *want = adm_read_file(src, NULL);
    int rc = 0;
    if (!want) {
        rc = adm_fail("cannot read %s: %s", src, strerror(errno));
    } else if (adm_exists(path)) {
        char *have = adm_read_file(path, NULL);
        if (!have || strcmp(have, want) != 0)
            fprintf(stderr,
                    "flmadm: warning: %s is not this CA's certificate (%s); left as it is\n",
                    path, src);
        free(have);
    } else {
        rc = adm_write_text(path, 0644, false, want);
    }
    free(want);
    free(src);
    return rc;
}

/* Keeps a copy of every certificate issued: <dir>/issued/SERIAL.pem. */
static int archive_cert(const ca *c, X509 *x, const char *serial)
{
    char *dir = adm_path(c->dir, "issued");
    char name[ADM_SERIAL_MAX + 8];
    snprintf(name, sizeof name, "%s.pem", serial);
    char *path = adm_path(dir, name);
    int rc = adm_mkdir(dir, true) == 0 ? adm_save_cert(path, x, false) : -1;
    free(dir);
    free(path);
    return rc;
}

/* Records X in the index before any file leaves the CA: a certificate that
 * exists is always one flmadm can list and revoke. */
static int record(ca *c, X509 *x, const char *serial, const char *role, const char *name)
{
    if (adm_index_find_serial(&c->idx, serial))
        return adm_fail("serial %s was issued before; run the command again", serial);
    adm_entry *e = adm_index_add(&c->idx);
    snprintf(e->serial, sizeof e->serial, "%s", serial);
    snprintf(e->role, sizeof e->role, "%s", role);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->not_after = adm_not_after(x);
    return ca_save_index(c);
}

static void note_older(const ca *c, const char *serial, const char *role, const char *name)
{
    for (size_t i = 0; i < c->idx.n; i++) {
        const adm_entry *e = &c->idx.v[i];
        if (!e->revoked && strcmp(e->name, name) == 0 && strcmp(e->role, role) == 0 &&
            strcmp(e->serial, serial) != 0 && e->not_after > time(NULL))
            printf("  note: %s's earlier certificate %s stays valid until revoked "
                   "(flmadm revoke %s)\n", name, e->serial, e->serial);
    }
}

static int issue(const opts *o, const char *role, const char *name, const issue_paths *p)
{
    ca c;
    if (ca_open(&c, o->dir, true) != 0)
        return 1;
    bool server = strcmp(role, "server") == 0;
    GENERAL_NAMES *sans = server ? server_sans(o, name) : NULL;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    char serial[ADM_SERIAL_MAX + 1];
    int rc = 1;
    if (server && !sans)
        goto out;
    adm_leaf_spec spec = { name, role, o->days > 0 ? o->days : DEFAULT_DAYS, sans };
    if (!(key = adm_key_new(o->key_type)) || !(x = adm_leaf_new(&spec, key, c.cert, c.key)) ||
        adm_serial_hex(serial, sizeof serial, x) != 0 || record(&c, x, serial, role, name) != 0 ||
        archive_cert(&c, x, serial) != 0 || adm_save_key(p->key, key, o->force) != 0 ||
        adm_save_cert(p->crt, x, o->force) != 0 || copy_ca_cert(&c, p->ca) != 0)
        goto out;
    char until[32];
    cli_format_time(until, sizeof until, (int64_t)adm_not_after(x) * 1000);
    printf("Issued the %s certificate of %s: serial %s, valid until %s.\n", role, name, serial,
           until);
    printf("  %s\n  %s  (0600)\n  %s\n", p->crt, p->key, p->ca);
    note_older(&c, serial, role, name);
    rc = 0;
out:
    X509_free(x);
    GENERAL_NAMES_free(sans);
    EVP_PKEY_free(key);
    ca_close(&c);
    return rc;
}

/* Whether A and B are the same existing directory. */
static bool same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static int cmd_issue(opts *o, int argc, char **argv)
{
    if (argc != 2)
        return usage_error("issue takes a kind (server, node or user) and a name");
    const char *kind = argv[0], *name = argv[1], *role;
    if (strcmp(kind, "server") == 0 || strcmp(kind, "node") == 0)
        role = kind;
    else if (strcmp(kind, "user") == 0)
        role = o->role ? o->role : "user";
    else
        return usage_error("issue server|node|user NAME, not issue %s", kind);
    if (o->role && strcmp(kind, "user") != 0)
        return usage_error("--role is for issue user, not issue %s", kind);
    if (strcmp(role, "user") != 0 && strcmp(role, "admin") != 0 && strcmp(kind, "user") == 0)
        return usage_error("--role is user or admin, not %s", role);
    if (sk_GENERAL_NAME_num(o->sans) > 0 && strcmp(kind, "server") != 0)
        return usage_error("--san is for issue server, not issue %s", kind);
    if (!adm_name_valid(name))
        return usage_error("a name is 1 to 64 of A-Z a-z 0-9 . _ @ - (not starting with . or "
                           "-), not \"%s\"", name);
    if (strcmp(name, "ca") == 0)
        return usage_error("the name ca is taken by the CA's own ca.crt beside the files issued");
    /* auth/ refuses them: the identities of plaintext and certificate-less clients */
    if (strcmp(name, "local") == 0 || strcmp(name, "anonymous") == 0)
        return usage_error("the name %s is reserved for clients without a certificate", name);
    if (same_dir(o->out, o->dir)) {
        adm_fail("--out is the CA directory: keys issued do not belong beside the CA's own");
        return 1;
    }
    char file[ADM_NAME_MAX + 8];
    issue_paths p = { 0 };
    snprintf(file, sizeof file, "%s.key", name);
    p.key = adm_path(o->out, file);
    snprintf(file, sizeof file, "%s.crt", name);
    p.crt = adm_path(o->out, file);
    p.ca = adm_path(o->out, "ca.crt");
    int rc = 1;
    if (!o->force && (adm_exists(p.key) || adm_exists(p.crt)))
        adm_fail("%s or %s exists; use --force to replace them, or another --out", p.key, p.crt);
    else if (adm_mkdir(o->out, false) == 0)
        rc = issue(o, role, name, &p);
    issue_paths_free(&p);
    return rc;
}

/* ---- list ---- */

static const char *entry_state(const adm_entry *e, time_t now)
{
    return e->revoked ? "Revoked" : e->not_after <= now ? "Expired" : "Valid";
}

static void print_crl_status(const char *dir)
{
    char *path = adm_path(dir, "crl.pem");
    BIO *in = BIO_new_file(path, "r");
    X509_CRL *crl = in ? PEM_read_bio_X509_CRL(in, NULL, NULL, NULL) : NULL;
    BIO_free(in);
    time_t next_update = crl ? adm_time(X509_CRL_get0_nextUpdate(crl)) : 0;
    if (!next_update) {
        ERR_clear_error();
        printf("\nCRL %s: missing or unreadable (flmadm crl writes it)\n", path);
    } else {
        char next[32];
        cli_format_time(next, sizeof next, (int64_t)next_update * 1000);
        printf("\nCRL %s: next update %s\n", path, next);
    }
    X509_CRL_free(crl);
    free(path);
}

static int cmd_list(opts *o, int argc, char **argv)
{
    if (argc != 0)
        return usage_error("list takes no argument (\"%s\")", argv[0]);
    ca c;
    if (ca_open(&c, o->dir, false) != 0)
        return 1;
    static const char *hdr[] = { "Serial", "Name", "Role", "Expires", "Revoked", "State" };
    cli_table t;
    cli_table_init(&t, 6, hdr);
    time_t now = time(NULL);
    for (size_t i = 0; i < c.idx.n; i++) {
        const adm_entry *e = &c.idx.v[i];
        char exp[32], rev[32];
        cli_format_time(exp, sizeof exp, (int64_t)e->not_after * 1000);
        cli_format_time(rev, sizeof rev, (int64_t)e->revoked_at * 1000);
        const char *row[] = { e->serial, e->name, e->role, exp, rev, entry_state(e, now) };
        cli_table_row(&t, row);
    }
    cli_table_print(&t);
    cli_table_free(&t);
    print_crl_status(o->dir);
    ca_close(&c);
    return 0;
}

/* ---- revoke, crl ---- */

/* Marks the valid certificates with serial TARGET, else those named TARGET
 * (of ROLE when given), revoked now; sets changed[i] for each. */
static size_t revoke_matching(ca *c, const char *target, const char *role, bool *changed)
{
    time_t now = time(NULL);
    adm_entry *bys = adm_index_find_serial(&c->idx, target);
    size_t n = 0;
    for (size_t i = 0; i < c->idx.n; i++) {
        adm_entry *e = &c->idx.v[i];
        bool match = bys ? e == bys : strcmp(e->name, target) == 0;
        if (!match || e->revoked || (role && strcmp(e->role, role) != 0))
            continue;
        e->revoked = true;
        e->revoked_at = now;
        changed[i] = true;
        n++;
    }
    return n;
}

static int cmd_revoke(opts *o, int argc, char **argv)
{
    if (argc != 1)
        return usage_error("revoke takes one serial or name");
    ca c;
    if (ca_open(&c, o->dir, true) != 0)
        return 1;
    bool *changed = calloc(c.idx.n + 1, sizeof *changed);
    if (!changed)
        abort();
    int rc = 1;
    if (revoke_matching(&c, argv[0], o->role, changed) == 0) {
        adm_fail("no valid certificate has the serial or name %s%s%s", argv[0],
                 o->role ? " and role " : "", o->role ? o->role : "");
    } else if (ca_save_index(&c) == 0) {
        for (size_t i = 0; i < c.idx.n; i++)
            if (changed[i])
                printf("Revoked %s (%s %s).\n", c.idx.v[i].serial, c.idx.v[i].role,
                       c.idx.v[i].name);
        rc = ca_write_crl(&c, o->crl_days) != 0;
    }
    free(changed);
    ca_close(&c);
    return rc;
}

static int cmd_crl(opts *o, int argc, char **argv)
{
    if (argc != 0)
        return usage_error("crl takes no argument (\"%s\")", argv[0]);
    ca c;
    if (ca_open(&c, o->dir, true) != 0)
        return 1;
    int rc = ca_write_crl(&c, o->crl_days) != 0;
    ca_close(&c);
    return rc;
}

/* ---- main ---- */

typedef struct command {
    const char *name;
    const char *options; /* the short letters it takes besides d and h */
    int (*run)(opts *o, int argc, char **argv);
} command;

static const command commands[] = {
    { "ca", "nDCk", cmd_ca },
    { "issue", "oDksrf", cmd_issue },
    { "list", "", cmd_list },
    { "revoke", "rC", cmd_revoke },
    { "crl", "C", cmd_crl },
};

static int parse_option(opts *o, int c, const char *arg)
{
    switch (c) {
    case 'd': o->dir = arg; break;
    case 'o': o->out = arg; break;
    case 'n': o->name = arg; break;
    case 'r': o->role = arg; break;
    case 'f': o->force = true; break;
    case 'D':
        if (parse_days(&o->days, arg) != 0)
            return usage_error("--days takes 1 to 36500 days, not \"%s\"", arg);
        break;
    case 'C':
        if (parse_days(&o->crl_days, arg) != 0)
            return usage_error("--crl-days takes 1 to 36500 days, not \"%s\"", arg);
        break;
    case 'k':
        if (adm_key_type_parse(&o->key_type, arg) != 0)
            return usage_error("--key-type is ec or rsa, not \"%s\"", arg);
        break;
    case 's':
        if (parse_sans(o, arg) != 0)
            return 2;
        break;
    }
    return 0;
}

static int run(opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        { "dir", required_argument, NULL, 'd' },      { "out", required_argument, NULL, 'o' },
        { "name", required_argument, NULL, 'n' },     { "days", required_argument, NULL, 'D' },
        { "crl-days", required_argument, NULL, 'C' }, { "key-type", required_argument, NULL, 'k' },
        { "san", required_argument, NULL, 's' },      { "role", required_argument, NULL, 'r' },
        { "force", no_argument, NULL, 'f' },          { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },        { NULL, 0, NULL, 0 },
    };
    if (argc < 2)
        return usage_error("a command is needed");
    const command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            cmd = &commands[i];
    if (!cmd && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (!cmd && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
        printf("flmadm %s\n", flame_version());
        return 0;
    }
    if (!cmd)
        return usage_error("unknown command \"%s\"", argv[1]);
    /* the command word stands where getopt expects the program name */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, ":d:o:n:fhV", longs, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == '?' || c == ':')
            /* (argv + 1)[optind - 1]: the element getopt stopped at */
            return usage_error("unknown option, or one missing its value: \"%s\"", argv[optind]);
        if (c != 'd' && !strchr(cmd->options, c)) {
            const char *opt = "?";
            for (const struct option *l = longs; l->name; l++)
                if (l->val == c)
                    opt = l->name;
            return usage_error("%s does not take --%s", cmd->name, opt);
        }
        int rc = parse_option(o, c, optarg);
        if (rc != 0)
            return rc;
    }
    if (!o->dir)
        o->dir = default_dir(o);
    return cmd->run(o, argc - 1 - optind, argv + 1 + optind);
}

int main(int argc, char **argv)
{
    opts o = { .out = ".", .crl_days = DEFAULT_CRL_DAYS, .key_type = ADM_KEY_EC,
               .sans = sk_GENERAL_NAME_new_null() };
    if (!o.sans)
        abort();
    int rc = run(&o, argc, argv);
    GENERAL_NAMES_free(o.sans);
    free(o.home_dir);
    return rc;
}
