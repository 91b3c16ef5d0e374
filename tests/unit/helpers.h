/* What several unit tests share, header only (each test is one program): a
 * scratch file for config texts and a bounded loopback TCP client. */
#ifndef FLAME_TEST_HELPERS_H
#define FLAME_TEST_HELPERS_H

#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* The scratch file's path once scratch_write has run: one per process, so
 * check's forked tests and parallel test programs never share it. */
static char scratch_path[256];

/* Writes text to /tmp/flame-test-<pid>.yaml and returns its path. */
static inline const char *scratch_write(const char *text)
{
    snprintf(scratch_path, sizeof scratch_path, "/tmp/flame-test-%d.yaml", (int)getpid());
    FILE *f = fopen(scratch_path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return scratch_path;
}

/* A checked fixture's teardown: removes the scratch file. */
static inline void scratch_remove(void)
{
    if (scratch_path[0])
        unlink(scratch_path);
}

/* A TCP connection to 127.0.0.1:port whose reads and writes give up after
 * 10 s (a test never hangs on a server that stopped answering); -1 when
 * the connect fails. */
static inline int loopback_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

#endif
