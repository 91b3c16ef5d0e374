/* The microvm sandbox level's settings and its pool of pre-booted VMs (the
 * spawner itself is fl_spawner_microvm in the table of spawn.c).
 *
 * A service under this level runs in its own QEMU `microvm` guest (one VM per
 * executor) booted from the image of scripts/microvm-image.sh. The host shim
 * talks to it as to any service: FLAME_INSTANCE_ENDPOINT of the spec names a
 * Unix socket, here QEMU's end of a virtio-serial port that the guest agent
 * bridges to the service's own socket.
 *
 * Threads: the settings are read under a lock; configure before the first
 * spawn. The pool has one thread of its own that boots VMs. */
#ifndef FL_SANDBOX_MICROVM_H
#define FL_SANDBOX_MICROVM_H

#include <stddef.h>

#include "flame/error.h"

typedef struct fl_microvm_config {
    const char *image_dir; /* vmlinuz + initramfs.img; NULL: $FLAME_MICROVM_IMAGE,
                            * else ~/.cache/flame/microvm/current */
    const char *accel;     /* "kvm" (NULL) or "tcg": never a silent fallback */
    const char *qemu;      /* NULL: qemu-system-x86_64 on PATH */
    int pool_size;         /* pre-booted VMs kept per application; 0: none */
    int boot_timeout_ms;   /* 0: 120 s (TCG on a busy host is slow) */
} fl_microvm_config;

/* Copies the settings (the strings too). NULL: the defaults. Stops the VMs
 * of the pool. FLAME_ERR_CONFIG for an unknown accelerator. */
flame_status fl_microvm_configure(const fl_microvm_config *cfg);

/* VMs booted and waiting in the pool (all applications). */
size_t fl_microvm_pool_count(void);

/* Stops the pool's thread and its VMs (the executor manager's exit). */
void fl_microvm_shutdown(void);

#endif
