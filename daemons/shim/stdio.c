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
 * A program that exits, writes a malformed or oversized frame, or does not
 * answer within the task timeout fails that task with a message and is
 * started again (and entered again) for the next one. Its stderr is ours:
 * the executor's log. Threads: flame_service_run's one callback thread. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <flame/flame.h>

#include "child.h"
#include "frame.h"
#include "shim.h"

#define MAX_MESSAGE 4096 /* the longest failure message we pass on */

static struct {
    const shim_opts *o;
    shim_child c;
    bool started;     /* the program ran before (a start now is a restart) */
    void *common;     /* the session's common data (frame mode sends it) */
    size_t common_len;
    bool has_common;
    char *buf;        /* line mode: what the program wrote beyond the last line */
    size_t buf_len;
} S = { .c = SHIM_CHILD_INIT };

static long long deadline(void)
{
    return S.o->timeout_ms > 0 ? now_ms() + S.o->timeout_ms : 0;
}

/* After an EOF or error on its pipes: why (it exited, or how it broke). */
static char *gone(const char *what, const char *fallback)
{
    for (int i = 0; i < 100 && child_alive(&S.c); i++) { /* up to 1 s to be reaped */
        struct timespec ts = { 0, 10 * 1000000 };
        nanosleep(&ts, NULL);
    }
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
    child_stop(&S.c, SHIM_STOP_GRACE_MS);
    return m;
}

static int send_frame(char type, const void *data, size_t len, long long dl)
{
    unsigned char h[5] = { (unsigned char)type, (unsigned char)(len >> 24),
                           (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                           (unsigned char)len };
    int r = write_full(S.c.in_fd, h, sizeof h, dl);
    return r ? r : write_full(S.c.in_fd, data ? data : "", len, dl);
}

/* Reads an 'O' or 'X' frame. NULL on success (*payload malloc'ed, NUL-
 * terminated); else why, for a message saying "... <what>". */
static char *recv_frame(char *type, char **payload, size_t *len, const char *what)
{
    long long dl = deadline();
    unsigned char h[FRAME_HEADER];
    int r = read_full(S.c.out_fd, h, sizeof h, dl);
    size_t n = 0;
    int bad = r ? 0 : frame_header(h, S.o->max_frame, type, &n);
    if (bad == -1) {
        child_stop(&S.c, SHIM_STOP_GRACE_MS);
        return xprintf("the program wrote a malformed frame (type byte 0x%02x, expected 'O' or "
                       "'X') %s; it is started again for the next task", h[0], what);
    }
    if (bad == -2) {
        child_stop(&S.c, SHIM_STOP_GRACE_MS);
        return xprintf("the program wrote a frame of %zu bytes (more than %zu) %s; it is "
                       "started again for the next task", n, S.o->max_frame, what);
    }
    char *p = malloc(n + 1);
    if (!p)
        abort();
    if (r == 0)
        r = read_full(S.c.out_fd, p, n, dl);
    if (r) {
        free(p);
        if (r == -2) {
            child_stop(&S.c, SHIM_STOP_GRACE_MS);
            return xprintf("the program did not answer within %d ms %s; it was stopped and is "
                           "started again for the next task", S.o->timeout_ms, what);
        }
        return gone(what, "its stdout closed");
    }
    p[n] = 0;
    *payload = p;
    *len = n;
    return NULL;
}

/* Starts the program unless it runs (and enters the session in frame
 * mode). NULL, or why not (malloc'ed). */
static char *ensure_running(void)
{
    if (child_alive(&S.c))
        return NULL;
    if (S.c.exited || S.c.pid == 0)
        child_stop(&S.c, 0); /* its pipes */
    if (S.started) {
        char *how = S.c.exited ? child_exit_text(&S.c) : xprintf("was stopped");
        fprintf(stderr, "flame-shim: the program %s; starting it again\n", how);
        free(how);
    }
    S.started = true;
    free(S.buf);
    S.buf = NULL;
    S.buf_len = 0;
    char *why = child_start(&S.c, S.o->argv, NULL, true);
    if (why || S.o->line)
        return why;
    const char *what = "on session enter";
    int r = send_frame('E', S.has_common ? S.common : NULL, S.common_len, deadline());
    if (r)
        return r == -2 ? (child_stop(&S.c, SHIM_STOP_GRACE_MS),
                          xprintf("the program did not read the session's enter frame within "
                                  "%d ms", S.o->timeout_ms))
                       : gone(what, "its stdin closed");
    char type, *p;
    size_t n;
    if ((why = recv_frame(&type, &p, &n, what)))
        return why;
    if (type == 'X') {
        why = xprintf("the program refused the session: %.*s", MAX_MESSAGE, p);
        child_stop(&S.c, SHIM_STOP_GRACE_MS);
    }
    free(p);
    return why;
}

static int on_enter(const flame_session_context *ctx, char **message, void *payload)
{
    free(S.common);
    S.common = NULL;
    S.has_common = ctx->common_data.data != NULL;
    S.common_len = S.has_common ? ctx->common_data.len : 0;
    if (S.has_common) {
        S.common = malloc(S.common_len + 1);
        if (!S.common)
            abort();
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

static int invoke_frame(const flame_task_context *t, flame_task_result *result)
{
    char *what = xprintf("while running task %s", t->task_id);
    int r = send_frame('T', t->input.data, t->input.len, deadline());
    if (r) {
        char *m = r == -2 ? xprintf("the program did not read task %s within %d ms; it was "
                                    "stopped and is started again for the next task",
                                    t->task_id, S.o->timeout_ms)
                          : gone(what, "its stdin closed");
        if (r == -2)
            child_stop(&S.c, SHIM_STOP_GRACE_MS);
        free(what);
        return fail(result, m);
    }
    char type, *p;
    size_t n;
    char *why = recv_frame(&type, &p, &n, what);
    free(what);
    if (why)
        return fail(result, why);
    int rc = 0;
    if (type == 'O') {
        flame_task_result_set_output(result, p, n);
    } else {
        if (n > MAX_MESSAGE)
            p[MAX_MESSAGE] = 0;
        flame_task_result_set_message(result, n ? p : "the program failed the task");
        rc = 1;
    }
    free(p);
    return rc;
}

/* Line mode: the next line the program writes (without its newline). */
static char *read_line(char **line, const char *what)
{
    long long dl = deadline();
    for (;;) {
        int got = line_take(S.buf, &S.buf_len, S.o->max_frame, line);
        if (got == 1)
            return NULL;
        if (got < 0) {
            child_stop(&S.c, SHIM_STOP_GRACE_MS);
            return xprintf("the program wrote a line longer than %zu bytes %s; it is started "
                           "again for the next task", S.o->max_frame, what);
        }
        char chunk[65536];
        ssize_t r = read_some(S.c.out_fd, chunk, sizeof chunk, dl);
        if (r > 0) {
            S.buf = realloc(S.buf, S.buf_len + (size_t)r);
            if (!S.buf)
                abort();
            memcpy(S.buf + S.buf_len, chunk, (size_t)r);
            S.buf_len += (size_t)r;
            continue;
        }
        if (r == -2) {
            child_stop(&S.c, SHIM_STOP_GRACE_MS);
            return xprintf("the program did not answer within %d ms %s; it was stopped and is "
                           "started again for the next task", S.o->timeout_ms, what);
        }
        return gone(what, "its stdout closed");
    }
}

static int invoke_line(const flame_task_context *t, flame_task_result *result)
{
    size_t n = t->input.data ? t->input.len : 0;
    if (n && memchr(t->input.data, '\n', n))
        return fail(result, xprintf("task %s: in line mode an input must not hold a newline",
                                    t->task_id));
    char *what = xprintf("while running task %s", t->task_id);
    char *in = malloc(n + 1);
    if (!in)
        abort();
    if (n)
        memcpy(in, t->input.data, n);
    in[n] = '\n';
    int r = write_full(S.c.in_fd, in, n + 1, deadline());
    free(in);
    if (r) {
        if (r == -2)
            child_stop(&S.c, SHIM_STOP_GRACE_MS);
        char *m = r == -2 ? xprintf("the program did not read task %s within %d ms; it was "
                                    "stopped and is started again for the next task",
                                    t->task_id, S.o->timeout_ms)
                          : gone(what, "its stdin closed");
        free(what);
        return fail(result, m);
    }
    char *line;
    char *why = read_line(&line, what);
    free(what);
    if (why)
        return fail(result, why);
    int rc = 0;
    if (strncmp(line, "error: ", 7) == 0) {
        if (strlen(line) > MAX_MESSAGE)
            line[MAX_MESSAGE] = 0;
        flame_task_result_set_message(result, line + 7);
        rc = 1;
    } else {
        flame_task_result_set_output(result, line, strlen(line));
    }
    free(line);
    return rc;
}

static int on_invoke(const flame_task_context *t, flame_task_result *result, void *payload)
{
    char *why = ensure_running();
    if (why) {
        char *m = xprintf("cannot start the program for task %s: %s", t->task_id, why);
        free(why);
        return fail(result, m);
    }
    return S.o->line ? invoke_line(t, result) : invoke_frame(t, result);
}

/* Frame mode, a batch: the frames of a window of tasks that fits in a pipe
 * buffer go out together, then their answers are read in order, so the
 * program works while we write and no side blocks on a full pipe. When a
 * task fails the program (crash, malformed answer, timeout), the tasks sent
 * after it in its window got no answer: they fail saying so (they may have
 * run, so they are not sent again), and the next window starts the program
 * again. */
#define WINDOW_BYTES (60 << 10)

static void on_batch(const flame_task_context *t, size_t n, int *rcs, flame_task_result **res,
                     void *payload)
{
    size_t i = 0;
    while (i < n) {
        if (S.o->line) {
            rcs[i] = on_invoke(&t[i], res[i], payload);
            i++;
            continue;
        }
        char *why = ensure_running();
        if (why) {
            rcs[i] = fail(res[i], xprintf("cannot start the program for task %s: %s",
                                          t[i].task_id, why));
            free(why);
            i++;
            continue;
        }
        size_t end = i, bytes = 0;
        do {
            bytes += 5 + (t[end].input.data ? t[end].input.len : 0);
            end++;
        } while (end < n && bytes + 5 + (t[end].input.data ? t[end].input.len : 0) <= WINDOW_BYTES);
        size_t sent = i;
        while (sent < end &&
               send_frame('T', t[sent].input.data, t[sent].input.data ? t[sent].input.len : 0,
                          deadline()) == 0)
            sent++;
        size_t k = i;
        const char *failed = NULL; /* the task the program failed on */
        for (; k < sent; k++) {
            char type, *p;
            size_t len;
            char *what = xprintf("while running task %s", t[k].task_id);
            why = recv_frame(&type, &p, &len, what);
            free(what);
            if (why) {
                rcs[k] = fail(res[k], why);
                failed = t[k].task_id;
                k++;
                break;
            }
            if (type == 'O') {
                flame_task_result_set_output(res[k], p, len);
                rcs[k] = 0;
            } else {
                if (len > MAX_MESSAGE)
                    p[MAX_MESSAGE] = 0;
                flame_task_result_set_message(res[k], len ? p : "the program failed the task");
                rcs[k] = 1;
            }
            free(p);
        }
        if (k < end) { /* it failed a task, or took no more frames */
            child_stop(&S.c, SHIM_STOP_GRACE_MS);
            for (size_t j = k; j < end; j++)
                rcs[j] = fail(res[j], failed ? xprintf("task %s got no answer: the program failed "
                                                       "on task %s of the same batch first (it may "
                                                       "have run; it is not sent again)",
                                                       t[j].task_id, failed)
                                             : xprintf("task %s was not run: the program stopped "
                                                       "reading its stdin", t[j].task_id));
        }
        i = end;
    }
}

static void on_leave(void *payload)
{
    if (child_alive(&S.c) && !S.o->line)
        send_frame('L', NULL, 0, now_ms() + 1000);
    child_stop(&S.c, SHIM_STOP_GRACE_MS);
    S.started = false;
}

int stdio_main(const shim_opts *o)
{
    S.o = o;
    flame_service svc = { FLAME_SERVICE_VERSION, on_enter, on_invoke, on_leave, NULL, on_batch };
    flame_status st = flame_service_run(&svc);
    child_stop(&S.c, SHIM_STOP_GRACE_MS);
    free(S.common);
    free(S.buf);
    if (st) {
        fprintf(stderr, "flame-shim: %s\n", flame_error_last());
        return 1;
    }
    return 0;
}
