/* The object cache relay of a sandboxed service (relay.h).
 *
 * Threads: the accept thread enters the sandbox's network namespace only
 * to make its listening socket (a socket stays in the namespace it was
 * made in) and goes back before it reports; the caller's thread never
 * changes namespace. The connection list is under r->mu; a connection's
 * two fds are closed only by its own thread, after both directions ended
 * (fl_relay_stop only shuts them down, which wakes the blocked reads). */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache/endpoint.h"
#include "relay.h"
#include "util/util.h"

#define RELAY_MAX_CONNS 64 /* a service's cache connections at once; more are refused */
#define RELAY_BUF (64 * 1024)

typedef struct relay_conn {
    struct fl_relay *r;
    pthread_t thread;
    int in, out; /* the service's side; the cache's (-1 until connected) */
    bool done;   /* its thread has ended: join and free it */
    struct relay_conn *next;
} relay_conn;

struct fl_relay {
    struct sockaddr_in addr; /* the cache's, listened on inside too */
    int ns_fd;               /* the sandbox's network namespace */
    int listen_fd;
    int wake[2];             /* written by fl_relay_stop */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ready;              /* the accept thread has reported */
    char why[256];           /* its error; "" when it listens */
    bool stopping;
    relay_conn *conns;
    unsigned nconns;
};

/* Gives the sandbox's loopback the cache's address when it is not
 * 127.0.0.0/8 (an alias "lo:0"), so connect() to it stays inside. */
static int add_lo_address(const struct sockaddr_in *a)
{
    if ((ntohl(a->sin_addr.s_addr) >> 24) == 127)
        return 0;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo:0");
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = a->sin_addr };
    memcpy(&ifr.ifr_addr, &sa, sizeof sa);
    int rc = ioctl(fd, SIOCSIFADDR, &ifr);
    close(fd);
    return rc;
}

/* Makes the listening socket inside the namespace; r->why on failure. */
static int listen_inside(fl_relay *r)
{
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0) {
        snprintf(r->why, sizeof r->why, "cannot open this thread's network namespace: %s",
                 strerror(errno));
        return -1;
    }
    if (setns(r->ns_fd, CLONE_NEWNET) != 0) {
        snprintf(r->why, sizeof r->why, "cannot enter the sandbox's network namespace: %s",
                 strerror(errno));
        close(self);
        return -1;
    }
    int fd = -1;
    if (add_lo_address(&r->addr) != 0) {
        snprintf(r->why, sizeof r->why, "cannot give the sandbox's loopback the address: %s",
                 strerror(errno));
    } else if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
               bind(fd, (const struct sockaddr *)&r->addr, sizeof r->addr) != 0 ||
               listen(fd, 64) != 0) {
        snprintf(r->why, sizeof r->why, "cannot listen inside the sandbox: %s",
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    if (setns(self, CLONE_NEWNET) != 0) { /* never serve from inside: give up */
        snprintf(r->why, sizeof r->why, "cannot leave the sandbox's network namespace: %s",
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    close(self);
    return fd;
}

/* Copies from one fd to the other until EOF or an error, then ends the
 * other's writing side (the peer sees EOF) and this one's reading. */
static void pump(int from, int to)
{
    char *buf = fl_malloc(RELAY_BUF);
    for (;;) {
        ssize_t n = read(from, buf, RELAY_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    free(buf);
    shutdown(to, SHUT_WR);
    shutdown(from, SHUT_RD);
}

static void *pump_up(void *arg)
{
    relay_conn *c = arg;
    pump(c->out, c->in);
    return NULL;
}

static void *conn_main(void *arg)
{
    relay_conn *c = arg;
    fl_relay *r = c->r;
    int out = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = out >= 0 && connect(out, (const struct sockaddr *)&r->addr, sizeof r->addr) == 0;
    pthread_mutex_lock(&r->mu);
    c->out = out;
    ok = ok && !r->stopping;
    pthread_mutex_unlock(&r->mu);
    pthread_t up;
    if (ok && pthread_create(&up, NULL, pump_up, c) == 0) {
        pump(c->in, c->out);
        pthread_join(up, NULL);
    }
    pthread_mutex_lock(&r->mu);
    if (out >= 0)
        close(out);
    close(c->in);
    c->in = c->out = -1;
    c->done = true;
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Joins and frees the connections that ended (all of them when all). */
static void reap_conns(fl_relay *r, bool all)
{
    for (;;) {
        pthread_mutex_lock(&r->mu);
        relay_conn **pp = &r->conns, *c = NULL;
        for (; *pp; pp = &(*pp)->next)
            if ((*pp)->done || all) {
                c = *pp;
                *pp = c->next;
                r->nconns--;
                break;
            }
        pthread_mutex_unlock(&r->mu);
        if (!c)
            return;
        pthread_join(c->thread, NULL);
        free(c);
    }
}

static void *accept_main(void *arg)
{
    fl_relay *r = arg;
    int fd = listen_inside(r);
    pthread_mutex_lock(&r->mu);
    r->listen_fd = fd;
    r->ready = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (fd < 0)
        return NULL;
    for (;;) {
        struct pollfd p[2] = { { fd, POLLIN, 0 }, { r->wake[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int in = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (in < 0)
            continue;
        reap_conns(r, false);
        pthread_mutex_lock(&r->mu);
        relay_conn *c = NULL;
        if (r->nconns < RELAY_MAX_CONNS && !r->stopping) {
            c = fl_calloc(1, sizeof *c);
            c->r = r;
            c->in = in;
            c->out = -1;
            if (pthread_create(&c->thread, NULL, conn_main, c) == 0) {
                c->next = r->conns;
                r->conns = c;
                r->nconns++;
            } else {
                free(c);
                c = NULL;
            }
        }
        pthread_mutex_unlock(&r->mu);
        if (!c)
            close(in);
    }
    return NULL;
}

flame_status fl_relay_start(fl_relay **out, pid_t pid, const char *endpoint)
{
    *out = NULL;
    fl_cache_endpoint ep;
    flame_status st = fl_cache_endpoint_parse(&ep, endpoint);
    if (st)
        return st;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai = NULL;
    int gai = getaddrinfo(ep.host, NULL, &hints, &ai);
    if (gai != 0 || !ai) {
        st = fl_error(FLAME_ERR_INVALID_ARGUMENT,
                      "the cache endpoint %s: host %s has no IPv4 address (%s)", endpoint,
                      ep.host, gai ? gai_strerror(gai) : "none");
        fl_cache_endpoint_clear(&ep);
        return st;
    }
    fl_relay *r = fl_calloc(1, sizeof *r);
    memcpy(&r->addr, ai->ai_addr, sizeof r->addr);
    r->addr.sin_port = htons((uint16_t)ep.port);
    freeaddrinfo(ai);
    fl_cache_endpoint_clear(&ep);
    r->listen_fd = r->wake[0] = r->wake[1] = -1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    r->ns_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->ns_fd < 0) {
        st = fl_error(FLAME_ERR_INTERNAL, "cache relay: cannot open %s: %s", path,
                      strerror(errno));
        goto fail;
    }
    if (pipe2(r->wake, O_CLOEXEC) != 0 || pthread_create(&r->thread, NULL, accept_main, r) != 0) {
        st = fl_error(FLAME_ERR_INTERNAL, "cache relay: cannot start: %s", strerror(errno));
        goto fail;
    }
    pthread_mutex_lock(&r->mu);
    while (!r->ready)
        pthread_cond_wait(&r->cv, &r->mu); /* bounded: the thread only makes a socket */
    pthread_mutex_unlock(&r->mu);
    if (r->listen_fd < 0) {
        pthread_join(r->thread, NULL);
        st = fl_error(FLAME_ERR_INTERNAL, "cache relay to %s: %s", endpoint, r->why);
        goto fail;
    }
    *out = r;
    return FLAME_OK;
fail:
    if (r->ns_fd >= 0)
        close(r->ns_fd);
    if (r->wake[0] >= 0) {
        close(r->wake[0]);
        close(r->wake[1]);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
    return st;
}

void fl_relay_stop(fl_relay *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    for (relay_conn *c = r->conns; c; c = c->next) {
        if (c->in >= 0)
            shutdown(c->in, SHUT_RDWR);
        if (c->out >= 0)
            shutdown(c->out, SHUT_RDWR);
    }
    pthread_mutex_unlock(&r->mu);
    char b = 0;
    while (write(r->wake[1], &b, 1) < 0 && errno == EINTR)
        ;
    pthread_join(r->thread, NULL);
    reap_conns(r, true);
    close(r->listen_fd);
    close(r->ns_fd);
    close(r->wake[0]);
    close(r->wake[1]);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
