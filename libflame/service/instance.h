/* instance.h: the flame.v1 Instance methods of a flame_service (service.c),
 * apart from any transport: packed request in, the reply message out.
 * serve.c answers them over HTTP/2; tests/fuzz/fuzz_shim.c drives them
 * through rpc/. Threads: the caller's (the service's callbacks run on it). */
#ifndef FL_SERVICE_INSTANCE_H
#define FL_SERVICE_INSTANCE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "flame/service.h"

typedef enum fl_instance_method {
    FL_INSTANCE_ENTER,  /* OnSessionEnter */
    FL_INSTANCE_INVOKE, /* OnTaskInvoke */
    FL_INSTANCE_LEAVE,  /* OnSessionLeave */
    FL_INSTANCE_BATCH,  /* OnTaskInvokeBatch */
    FL_INSTANCE_N
} fl_instance_method;

/* The method of a gRPC path ("/flame.v1.Instance/OnTaskInvoke", len bytes,
 * not NUL-terminated), or -1. */
int fl_instance_method_find(const char *path, size_t len);
/* The method's path, "/flame.v1.Instance/OnTaskInvoke". */
const char *fl_instance_method_path(fl_instance_method m);

/* Gets the reply message (valid during the call only). */
typedef void (*fl_instance_reply_fn)(const ProtobufCMessage *reply, void *arg);

/* Unpacks method m's request (len bytes at req), runs svc's callback and
 * hands the reply to reply (once, before it returns 0: RPC_OK). A request
 * that does not decode, or carries a string that is not UTF-8, never
 * reaches the service: RPC_INVALID_ARGUMENT, with why (why_size bytes)
 * saying so, and reply is not called. */
int fl_instance_call(const flame_service *svc, fl_instance_method m, const uint8_t *req,
                     size_t len, fl_instance_reply_fn reply, void *arg, char *why,
                     size_t why_size);

#endif
