/* h2wire.h: HTTP/2's frame layout and constants (RFC 9113), shared by the
 * host shim's client (h2.c) and a service's Instance server
 * (service/serve.c). Threads: none (pure helpers). */
#ifndef FLAME_SHIM_H2WIRE_H
#define FLAME_SHIM_H2WIRE_H

#include <stddef.h>
#include <stdint.h>

/* frame types (6) */
enum { FL_H2_DATA, FL_H2_HEADERS, FL_H2_PRIORITY, FL_H2_RST_STREAM, FL_H2_SETTINGS,
       FL_H2_PUSH_PROMISE, FL_H2_PING, FL_H2_GOAWAY, FL_H2_WINDOW_UPDATE, FL_H2_CONTINUATION };
/* frame flags */
#define FL_END_STREAM 0x1
#define FL_ACK 0x1
#define FL_END_HEADERS 0x4
#define FL_PADDED 0x8
#define FL_PRIORITY 0x20
/* error codes (7) */
#define FL_H2_NO_ERROR 0x0
#define FL_H2_PROTOCOL_ERROR 0x1
#define FL_H2_FLOW_CONTROL_ERROR 0x3
#define FL_H2_FRAME_SIZE_ERROR 0x6
#define FL_H2_REFUSED_STREAM 0x7
#define FL_H2_CANCEL 0x8
#define FL_H2_COMPRESSION_ERROR 0x9
#define FL_H2_ENHANCE_YOUR_CALM 0xb
/* settings (6.5.2) */
#define FL_H2_SETTINGS_HEADER_TABLE_SIZE 1
#define FL_H2_SETTINGS_ENABLE_PUSH 2
#define FL_H2_SETTINGS_MAX_CONCURRENT_STREAMS 3
#define FL_H2_SETTINGS_INITIAL_WINDOW_SIZE 4
#define FL_H2_SETTINGS_MAX_FRAME_SIZE 5

#define FL_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define FL_H2_PREFACE_LEN 24
#define FL_H2_DEFAULT_FRAME 16384   /* SETTINGS_MAX_FRAME_SIZE's default (and ours) */
#define FL_H2_DEFAULT_WINDOW 65535
#define FL_H2_MAX_WINDOW 0x7fffffffu
#define FL_H2_MAX_HEADER_BLOCK (256u << 10) /* what we take of one header block */

static inline void fl_h2_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t fl_h2_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A frame's 9-byte header at p. */
static inline void fl_h2_frame_head(uint8_t *p, size_t len, uint8_t type, uint8_t flags,
                                    uint32_t stream)
{
    p[0] = (uint8_t)(len >> 16);
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)len;
    p[3] = type;
    p[4] = flags;
    fl_h2_put32(p + 5, stream);
}

#endif
