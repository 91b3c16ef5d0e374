/* flame-shim stdio: a program spoken to over its stdin and stdout.
 *
 * Frame mode (the default): every message is a frame: one type byte, a
 * 4-byte big-endian payload length, the payload. We send 'E' (session
 * enter; payload: the common data) and the program answers 'O' (accepted)
 * or 'X' (refused; payload: why); per task we send 'T' (payload: the input)
 * and it answers 'O' (payload: the output) or 'X' (the task failed;
 * payload: the message); at the end we send 'L' (leave, no answer) and close
 * its stdin. Line mode: per task one line in (the input, which must not
 * hold a newline), one line out; an answer starting "error: " fails the
 * task with the rest as its message.
 *
 * Pipelined: the frames (or lines) of a whole batch of tasks go to the
 * program's stdin while we read its answers, which come in order; writing
 * and reading at once (non-blocking pipes, one poll on both) means neither
 * side can block on a full pipe, and a batch costs a few big writes and
 * reads, not a round trip per task. Answers are parsed in place in one
 * read buffer: nothing is allocated per task.
 *
 * A program that exits, writes a malformed or oversized frame, or does not
 * answer within the task timeout fails that task with a message and is
 * started again (and entered again) for the next one. Tasks of the same
 * batch sent to it after that task got no answer: they fail saying so
 * (they may have run, so they are not sent again); tasks it never got go
 * to the new process. Its stderr is ours: the executor's log.
 * Threads: flame_service_run's one callback thread. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <flame/flame.h>

#include "child.h"
#include "frame.h"
#include "shim.h"

#define MAX_MESSAGE 4096   /* the longest failure message we pass on */
#define READ_CHUNK (64 << 10)

/* One message to the program: a frame (type, payload) or, in line mode, a
 * line (the payload). */
typedef struct item {
    char type;
    const void *data;
    size_t len;
} item;

/* Where a task's answer goes. */
typedef struct sink {
    int *rc;
    flame_task_result *res;
} sink;

static struct {
    const shim_opts *o;
    shim_child c;
    bool started;     /* the program ran before (a start now is a restart) */
    void *common;     /* the session's common data (frame mode sends it) */
    size_t common_len;
    bool has_common;
    char *r;          /* what the program wrote and we did not parse yet */
    size_t roff, rlen, rcap;
    /* per batch, grown only: the messages, their frame headers, their iovecs */
    item *items;
    unsigned char (*hdr)[5];
    struct iovec *iov;
    size_t *idx;      /* the task each message is */
    size_t scap;
} S = { .c = SHIM_CHILD_INIT };

static long long deadline(void)
{
    return S.o->timeout_ms > 0 ? now_ms() + S.o->timeout_ms : 0;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        abort();
    return p;
}

static void stop_program(void)
{
    child_stop(&S.c, SHIM_STOP_GRACE_MS);
    S.roff = S.rlen = 0;
}

/* After an EOF or error on its pipes: why (it exited, or how it broke). */
static char *gone(const char *what, const char *fallback)
{
    child_wait_exit(&S.c, SHIM_REAP_MS);
    char *m;
    if (S.c.exited) {
        char *how = child_exit_text(&S.c);
        m = xprintf("the program %s %s (its stderr is in the executor's log); it is started "
                    "again for the next task", how, what);
        free(how);
    } else {
        m = xprintf("%s %s; the program is stopped and started again for the next task",
                    fallback, what);
    }
    stop_program();
    return m;
}

/* The answer at the head of the read buffer. 1: the answer set and
 * consumed (data points into the buffer until the next read); 0: more
 * bytes needed (*need: how many in all); -1: malformed, *bad says how
 * (malloc'ed). */
static int parse_answer(char *type, const char **data, size_t *len, size_t *need, char **bad)
{
    size_t used = 0, max = S.o->max_frame;
    int r = frame_parse(S.r + S.roff, S.rlen - S.roff, S.o->line, max, type, data, len, &used,
                        need);
    switch (r) {
    case FRAME_TAKEN:
        S.roff += used;
        return 1;
    case FRAME_MORE:
        return 0;
    case FRAME_BAD_TYPE:
        *bad = xprintf("the program wrote a malformed frame (type byte 0x%02x, expected 'O' or "
                       "'X')", (unsigned char)*type);
        return -1;
    case FRAME_TOO_LONG:
        *bad = xprintf("the program wrote a frame of %zu bytes (more than %zu)", *len, max);
        return -1;
    default:
        *bad = xprintf("the program wrote a line longer than %zu bytes", max);
        return -1;
    }
}

/* Room in the read buffer for `need` bytes from roff (need <= max frame + 5). */
static void make_room(size_t need)
{
    if (S.roff == S.rlen)
        S.roff = S.rlen = 0;
    if (S.rcap - S.roff >= need + READ_CHUNK / 2)
        return;
    if (S.roff) {
        memmove(S.r, S.r + S.roff, S.rlen - S.roff);
        S.rlen -= S.roff;
        S.roff = 0;
    }
    size_t want = need + READ_CHUNK;
    if (S.rcap < want) {
        S.r = xrealloc(S.r, want);
        S.rcap = want;
    }
}

/* Makes the iovecs of items [0, m): frame headers and payloads, or lines
 * and their newlines. */
static size_t make_iov(size_t m)
{
    static char nl = '\n';
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        const item *it = &S.items[i];
        if (S.o->line) {
            S.iov[k++] = (struct iovec){ (void *)(it->data ? it->data : ""), it->len };
            S.iov[k++] = (struct iovec){ &nl, 1 };
        } else {
            unsigned char *h = S.hdr[i];
            h[0] = (unsigned char)it->type;
            h[1] = (unsigned char)(it->len >> 24);
            h[2] = (unsigned char)(it->len >> 16);
            h[3] = (unsigned char)(it->len >> 8);
            h[4] = (unsigned char)it->len;
            S.iov[k++] = (struct iovec){ h, 5 };
            S.iov[k++] = (struct iovec){ (void *)(it->data ? it->data : ""), it->len };
        }
    }
    return k;
}

typedef void answer_fn(void *arg, size_t i, char type, const char *data, size_t len);

/* Sends items [0, m) and reads their m answers, at once, each answer within
 * the task timeout of the one before. Returns how many were answered (each
 * handed to on_answer); fewer than m: *why says why the next one got none
 * (malloc'ed; the program is stopped), *sent how many went out whole. */
static size_t exchange(size_t m, answer_fn *on_answer, void *arg, char **why, size_t *sent,
                       const char *(*what_of)(size_t i, void *arg))
{
    size_t niov = make_iov(m), cur = 0, done = 0;
    while (cur < niov && S.iov[cur].iov_len == 0)
        cur++;
    bool wclosed = false;
    long long dl = deadline();
    *why = NULL;
    while (done < m) {
        char type;
        const char *data;
        size_t len, need = 0;
        char *bad = NULL;
        int p = parse_answer(&type, &data, &len, &need, &bad);
        if (p < 0) {
            *why = xprintf("%s %s; it is started again for the next task", bad,
                           what_of(done, arg));
            free(bad);
            stop_program();
            break;
        }
        if (p > 0) {
            on_answer(arg, done++, type, data, len);
            dl = deadline();
            continue;
        }
        if (cur < niov && !wclosed) {
            int cnt = niov - cur > IOV_MAX ? IOV_MAX : (int)(niov - cur);
            ssize_t w = writev(S.c.in_fd, &S.iov[cur], cnt);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                wclosed = true; /* EPIPE: what it answers still comes; then EOF */
            while (w > 0) {
                size_t l = S.iov[cur].iov_len;
                if ((size_t)w < l) {
                    S.iov[cur].iov_base = (char *)S.iov[cur].iov_base + w;
                    S.iov[cur].iov_len = l - (size_t)w;
                    break;
                }
                w -= (ssize_t)l;
                cur++;
            }
            while (cur < niov && S.iov[cur].iov_len == 0) /* empty payloads: writev took none */
                cur++;
        }
        make_room(need);
        ssize_t r = read(S.c.out_fd, S.r + S.rlen, S.rcap - S.rlen);
        if (r > 0) {
            S.rlen += (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            *why = gone(what_of(done, arg), "its stdout closed");
            break;
        }
        struct pollfd pf[2] = { { S.c.out_fd, POLLIN, 0 }, { S.c.in_fd, POLLOUT, 0 } };
        int ms = -1;
        if (dl) {
            long long left = dl - now_ms();
            if (left <= 0) {
                *why = xprintf("timed out: the program did not answer within %d ms %s; it was "
                               "killed and is started again for the next task",
                               S.o->timeout_ms, what_of(done, arg));
                child_stop(&S.c, 0); /* stuck: no grace (the executor's own timeout is near) */
                S.roff = S.rlen = 0;
                break;
            }
            ms = left > 1000000 ? 1000000 : (int)left;
        }
        if (poll(pf, cur < niov && !wclosed ? 2 : 1, ms) < 0 && errno != EINTR) {
            *why = xprintf("cannot poll the program's pipes (errno %d) %s", errno,
                           what_of(done, arg));
            stop_program();
            break;
        }
    }
    *sent = cur / 2;
    return done;
}

/* Session enter: one 'E' frame, its answer. */
typedef struct enter_answer {
    char type;
    char message[MAX_MESSAGE + 1];
} enter_answer;

static void on_enter_answer(void *arg, size_t i, char type, const char *data, size_t len)
{
    enter_answer *a = arg;
    a->type = type;
    size_t n = len > MAX_MESSAGE ? MAX_MESSAGE : len;
    memcpy(a->message, data, n);
    a->message[n] = 0;
}

static const char *what_enter(size_t i, void *arg)
{
    return "on session enter";
}

static void grow_scratch(size_t n)
{
    if (n <= S.scap)
        return;
    S.scap = n < 64 ? 64 : n;
    S.items = xrealloc(S.items, S.scap * sizeof *S.items);
    S.hdr = xrealloc(S.hdr, S.scap * sizeof *S.hdr);
    S.iov = xrealloc(S.iov, 2 * S.scap * sizeof *S.iov);
    S.idx = xrealloc(S.idx, S.scap * sizeof *S.idx);
}

/* Starts the program unless it runs (and enters the session in frame
 * mode). NULL, or why not (malloc'ed). */
static char *ensure_running(void)
{
    if (child_alive(&S.c))
        return NULL;
    if (S.c.exited || S.c.pid == 0)
        stop_program(); /* its pipes */
    if (S.started) {
        char *how = S.c.exited ? child_exit_text(&S.c) : xprintf("was stopped");
        fprintf(stderr, "flame-shim: the program %s; starting it again\n", how);
        free(how);
    }
    S.started = true;
    char *why = child_start(&S.c, S.o->argv, NULL, true);
    if (why || S.o->line)
        return why;
    grow_scratch(1);
    S.items[0] = (item){ 'E', S.has_common ? S.common : NULL, S.common_len };
    enter_answer a;
    size_t sent;
    if (exchange(1, on_enter_answer, &a, &why, &sent, what_enter) == 0)
        return why;
    if (a.type == 'X') {
        why = xprintf("the program refused the session: %s", a.message);
        stop_program();
    }
    return why;
}

static int on_enter(const flame_session_context *ctx, char **message, void *payload)
{
    free(S.common);
    S.common = NULL;
    S.has_common = ctx->common_data.data != NULL;
    S.common_len = S.has_common ? ctx->common_data.len : 0;
    if (S.has_common) {
        S.common = xrealloc(NULL, S.common_len + 1);
        memcpy(S.common, ctx->common_data.data, S.common_len);
    }
    *message = ensure_running();
    return *message ? 1 : 0;
}

static int fail(flame_task_result *result, char *message)
{
    flame_task_result_set_message(result, message);
    free(message);
    return 1;
}

/* A batch's tasks and where their answers go. */
typedef struct batch {
    const flame_task_context *t;
    int *rcs;
    flame_task_result **res;
    char what[320]; /* "while running task ID" of the last asked */
} batch;

static void on_task_answer(void *arg, size_t i, char type, const char *data, size_t len)
{
    batch *b = arg;
    size_t k = S.idx[i];
    if (type == 'O') {
        flame_task_result_set_output(b->res[k], data, len);
        b->rcs[k] = 0;
        return;
    }
    char m[MAX_MESSAGE + 1];
    size_t n = len > MAX_MESSAGE ? MAX_MESSAGE : len;
    memcpy(m, data, n);
    m[n] = 0;
    flame_task_result_set_message(b->res[k], n ? m : "the program failed the task");
    b->rcs[k] = 1;
}

static const char *what_task(size_t i, void *arg)
{
    batch *b = arg;
    snprintf(b->what, sizeof b->what, "while running task %s", b->t[S.idx[i]].task_id);
    return b->what;
}

static void on_batch(const flame_task_context *t, size_t n, int *rcs, flame_task_result **res,
                     void *payload)
{
    batch b = { t, rcs, res, "" };
    grow_scratch(n);
    size_t i = 0;
    while (i < n) {
        char *why = ensure_running();
        if (why) {
            rcs[i] = fail(res[i], xprintf("cannot start the program for task %s: %s",
                                          t[i].task_id, why));
            free(why);
            i++;
            continue;
        }
        size_t m = 0;
        for (size_t k = i; k < n; k++) {
            size_t len = t[k].input.data ? t[k].input.len : 0;
            if (S.o->line && len && memchr(t[k].input.data, '\n', len)) {
                rcs[k] = fail(res[k], xprintf("task %s: in line mode an input must not hold "
                                              "a newline", t[k].task_id));
                continue;
            }
            S.items[m] = (item){ 'T', t[k].input.data, len };
            S.idx[m++] = k;
        }
        if (!m)
            break;
        size_t sent;
        size_t done = exchange(m, on_task_answer, &b, &why, &sent, what_task);
        if (done == m)
            break;
        size_t failed = S.idx[done];
        rcs[failed] = fail(res[failed], why);
        /* what went out after it may have run: not sent again; what did
         * not, goes to the program started again */
        size_t j = done + 1;
        for (; j < m && j < sent; j++)
            rcs[S.idx[j]] = fail(res[S.idx[j]],
                                 xprintf("task %s got no answer: the program failed on task %s "
                                         "of the same batch first (it may have run; it is not "
                                         "sent again)", t[S.idx[j]].task_id, t[failed].task_id));
        if (j >= m)
            break;
        i = S.idx[j];
    }
}

static int on_invoke(const flame_task_context *t, flame_task_result *result, void *payload)
{
    int rc = 1;
    on_batch(t, 1, &rc, &result, payload);
    return rc;
}

static void on_leave(void *payload)
{
    if (child_alive(&S.c) && !S.o->line) {
        ssize_t w = write(S.c.in_fd, "L\0\0\0\0", 5); /* best effort: it is stopped anyway */
        (void)w;
    }
    stop_program();
    S.started = false;
}

int stdio_main(const shim_opts *o)
{
    S.o = o;
    flame_service svc = { FLAME_SERVICE_VERSION, on_enter, on_invoke, on_leave, NULL, on_batch };
    flame_status st = flame_service_run(&svc);
    stop_program();
    free(S.common);
    free(S.r);
    free(S.items);
    free(S.hdr);
    free(S.iov);
    free(S.idx);
    if (st) {
        fprintf(stderr, "flame-shim: %s\n", flame_error_last());
        return 1;
    }
    return 0;
}
