/* The request-sequence driver shared by the fuzz targets of our servers
 * (fuzz_sm.c, fuzz_shim.c): it reads the fuzzer's bytes as a script of
 * calls and feeds them through rpc/inject.h into a server's dispatch, as
 * clients on the network would, and checks every answer.
 *
 * The script is a list of records:
 *   op(1) method(1) len(2, little endian) payload(len)
 * op % 8 is the action on call slot (op >> 3) % 8:
 *   0, 1, 2: open a call on methods[method % n] and send payload
 *   3:       send payload on the slot's call (streams)
 *   4:       half-close the slot's call
 *   5:       end the slot's call (the client goes away)
 *   6:       the server loop's tick
 *   7:       restart the server (every call ends first), when it can
 * The loop's flush (commit, replies) follows every record unless op has
 * the high bit set, so several calls can share a batch. */
#ifndef FL_FUZZ_INJECT_DRIVER_H
#define FL_FUZZ_INJECT_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/rpc.h"

typedef struct fuzz_method {
    const char *path;
    const ProtobufCMessageDescriptor *output;
} fuzz_method;

/* The server a script drives. */
typedef struct fuzz_server {
    rpc_server *srv;
    /* Stops and starts it again on the same storage (op 7); NULL: op 7
     * does nothing. Every injected call has ended when it is called. */
    void (*restart)(struct fuzz_server *fs);
} fuzz_server;

/* Fills at most max methods of the services' tables; returns how many. */
size_t fuzz_methods(const rpc_service *services, size_t n_services, fuzz_method *out,
                    size_t max);
/* Runs one script against srv; aborts (a finding) when an answer does not
 * decode as the method's output type or, with FUZZ_UTF8=1 in the
 * environment, carries a string that is not UTF-8. */
void fuzz_drive(fuzz_server *fs, const fuzz_method *methods, size_t n, const uint8_t *data,
                size_t size);

#endif
