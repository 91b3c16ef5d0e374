/* Unit tests of the object cache relay (shim/relay.h): a child in a network
 * namespace of its own reaches a listener of the host's loopback only
 * through a relay, both ways, and only on the relayed port. Needs root (or
 * CAP_SYS_ADMIN) for the namespaces; skipped with the reason otherwise. */
#include <check.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim/relay.h"
#include "util/util.h"

#include "helpers.h"

static int listen_fd;
static int port;

/* The "cache": echoes what each connection sends, upper-cased. */
static void *echo_server(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(listen_fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[256];
        ssize_t n;
        while ((n = read(c, buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                buf[i] = (char)(buf[i] >= 'a' && buf[i] <= 'z' ? buf[i] - 32 : buf[i]);
            if (write(c, buf, (size_t)n) != n)
                break;
        }
        close(c);
    }
}

static int tcp_listen(int *out_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *out_port = ntohs(a.sin_port);
    return fd;
}

static void lo_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = { 0 };
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    ioctl(fd, SIOCGIFFLAGS, &ifr);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    ioctl(fd, SIOCSIFFLAGS, &ifr);
    close(fd);
}

/* In the child: 0 when "hello" to 127.0.0.1:p comes back "HELLO"; 2 when
 * the connect fails; 1 otherwise. */
static int try_echo(int p)
{
    int fd = loopback_connect(p);
    if (fd < 0)
        return 2;
    if (write(fd, "hello", 5) != 5)
        return 1;
    char buf[8] = { 0 };
    size_t got = 0;
    while (got < 5) {
        ssize_t n = read(fd, buf + got, 5 - got);
        if (n <= 0)
            return 1;
        got += (size_t)n;
    }
    close(fd);
    return strcmp(buf, "HELLO") == 0 ? 0 : 1;
}

/* A child in a new network namespace: tells the parent it is there, waits
 * for the go, then tries the relayed port (exit code of try_echo * 1) and
 * another port of the host (must fail: + 10 if it connected). */
static pid_t child_in_netns(int *go_w)
{
    int ready[2], go[2];
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(ready[0]);
        close(go[1]);
        if (unshare(CLONE_NEWNET) != 0)
            _exit(99);
        lo_up();
        char b = 1;
        if (write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) != 1)
            _exit(98);
        int other = port == 65535 ? port - 1 : port + 1;
        int rc = try_echo(port);
        _exit(rc + (try_echo(other) != 2 ? 10 : 0));
    }
    close(ready[1]);
    close(go[0]);
    char b;
    ck_assert_int_eq(read(ready[0], &b, 1), 1);
    close(ready[0]);
    *go_w = go[1];
    return pid;
}

static int finish(pid_t pid, int go_w)
{
    char b = 1;
    ck_assert_int_eq(write(go_w, &b, 1), 1);
    close(go_w);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

START_TEST(relay_reaches_only_the_cache)
{
    if (geteuid() != 0) {
        printf("# SKIP: network namespaces need root\n");
        return;
    }
    listen_fd = tcp_listen(&port);
    pthread_t th;
    pthread_create(&th, NULL, echo_server, NULL);

    /* control: without a relay the host's loopback is not there */
    int go;
    pid_t pid = child_in_netns(&go);
    ck_assert_int_eq(finish(pid, go), 2);

    /* with one: the relayed port works both ways, another port does not */
    pid = child_in_netns(&go);
    char ep[64];
    snprintf(ep, sizeof ep, "grpc://127.0.0.1:%d", port);
    fl_relay *r;
    ck_assert_int_eq(fl_relay_start(&r, pid, ep), FLAME_OK);
    ck_assert_int_eq(finish(pid, go), 0);
    fl_relay_stop(r);

    /* a bad endpoint or a gone process is an error, not a crash */
    ck_assert_int_ne(fl_relay_start(&r, getpid(), "nonsense://"), FLAME_OK);
    ck_assert_int_ne(fl_relay_start(&r, 999999999, ep), FLAME_OK);
    shutdown(listen_fd, SHUT_RDWR);
    close(listen_fd);
    pthread_join(th, NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("relay");
    TCase *tc = tcase_create("relay");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, relay_reaches_only_the_cache);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
