/* Shared by the files of rpc/ only. */
#ifndef FL_RPC_INTERNAL_H
#define FL_RPC_INTERNAL_H

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "rpc.h"

void rpc_init(void);
grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg);
grpc_byte_buffer *rpc_bytes(const uint8_t *data, size_t len);
grpc_slice rpc_flatten(grpc_byte_buffer *bb); /* caller unrefs */
char *rpc_slice_str(grpc_slice s);            /* malloc'ed copy */
/* Fills args[0..1] with the send/receive message size limits. */
void rpc_size_args(grpc_arg *args, size_t max_message);

/* credentials.c: the one place each side's credentials are made. Errors:
 * FLAME_ERR_CONFIG naming the setting ("cert_file: PATH: why"). */
/* What reloads a TLS server's certificates; gRPC holds it by pointer
 * without freeing it, so each one made is pushed on *watches and must live
 * until the server is destroyed (then rpc_cert_watch_free the list). */
typedef struct rpc_cert_watch rpc_cert_watch;
flame_status rpc_server_credentials(grpc_server_credentials **out, const rpc_tls *tls,
                                    rpc_cert_watch **watches);
void rpc_cert_watch_free(rpc_cert_watch *list);
flame_status rpc_channel_credentials(grpc_channel_credentials **out, const rpc_tls *tls);

#endif
