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

/* credentials.c: the one place each side's credentials are made (Security
 * plugs TLS in here). Errors: FLAME_ERR_CONFIG while TLS is unsupported. */
bool rpc_tls_enabled(const rpc_tls *tls);
void rpc_tls_copy(rpc_tls *dst, const rpc_tls *src); /* deep copy */
void rpc_tls_clear(rpc_tls *tls);                    /* frees a copy */
flame_status rpc_server_credentials(grpc_server_credentials **out, const rpc_tls *tls);
flame_status rpc_channel_credentials(grpc_channel_credentials **out, const rpc_tls *tls);

#endif
