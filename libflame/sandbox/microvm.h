/* The microvm sandbox level's settings and its pool of pre-booted VMs (the
 * spawner itself is fl_spawner_microvm in the table of spawn.c).
 *
 * A service under this level runs in its own QEMU `microvm` guest (one VM per
 * executor) booted from the image of scripts/microvm-image.sh. The host shim
 * talks to it as to any service: FLAME_INSTANCE_ENDPOINT of the spec names a
 * Unix socket, here QEMU's end of a virtio-serial port that the guest agent
 * bridges to the service's own socket, or (channel vsock) a socket of ours
 * whose connections we relay to the guest's vsock port FL_VSOCK_INSTANCE_PORT.
 *
 * Threads: the settings are read under a lock; configure before the first
 * spawn. The pool has one thread of its own that boots VMs. */
#ifndef FL_SANDBOX_MICROVM_H
#define FL_SANDBOX_MICROVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flame/error.h"

typedef struct fl_microvm_config {
    const char *image_dir; /* vmlinuz + initramfs.img; NULL: $FLAME_MICROVM_IMAGE,
                            * else ~/.cache/flame/microvm/current */
    const char *accel;     /* "kvm" (NULL) or "tcg": never a silent fallback */
    const char *qemu;      /* NULL: qemu-system-x86_64 on PATH */
    int pool_size;         /* pre-booted VMs kept per application; 0: none */
    int boot_timeout_ms;   /* 0: 120 s (TCG on a busy host is slow) */
    const char *channel;   /* how the guest talks to us: "auto" (NULL:
                            * $FLAME_MICROVM_CHANNEL, else auto) is vsock
                            * where /dev/vhost-vsock opens, else serial;
                            * "serial"; "vsock" (never a silent downgrade) */
} fl_microvm_config;

/* ---- internal, for the tests: the channel, the guest CID, QEMU's argv ---- */

/* The guest's vsock ports (it listens, we connect): what the virtio-serial
 * ports flame.ctl and flame.instance carry otherwise, byte for byte. */
#define FL_VSOCK_CTL_PORT 1024
#define FL_VSOCK_INSTANCE_PORT 1025

/* Picks the channel for setting (NULL or "auto", "serial", "vsock") given
 * the vhost-vsock device at dev: *vsock true for vsock. Forced vsock without
 * an openable dev fails with a message naming dev. FLAME_ERR_CONFIG for an
 * unknown setting. */
flame_status fl_microvm_channel_choose(const char *setting, const char *dev, bool *vsock);

/* Answers whether a guest CID is free on this host: 0 free, EADDRINUSE (or
 * EBUSY) taken, another errno: cannot tell (the allocation fails). */
typedef int (*fl_microvm_cid_probe)(uint32_t cid, void *arg);

/* Allocates a guest CID (> 2) no VM of ours holds, from a counter of this
 * process, skipping those probe says are taken (NULL probe: ask
 * /dev/vhost-vsock). Release it when the VM is gone. */
flame_status fl_microvm_cid_alloc(uint32_t *cid, fl_microvm_cid_probe probe, void *arg);
void fl_microvm_cid_release(uint32_t cid);

/* What QEMU is started with for one VM. */
typedef struct fl_microvm_qemu {
    const char *qemu, *kernel, *initrd;
    const char *disk;    /* NULL: none */
    bool tcg;
    unsigned tsc_khz;    /* TCG: the guest's TSC rate; 0: none */
    unsigned memory_mb, cpus;
    const char *dir;     /* ctl.sock, inst.sock (serial) */
    uint32_t cid;        /* 0: serial ports; else vsock with this guest CID */
} fl_microvm_qemu;

/* QEMU's argument vector (NULL-terminated, heap strings); free with
 * fl_microvm_argv_free. */
char **fl_microvm_qemu_argv(const fl_microvm_qemu *q);
void fl_microvm_argv_free(char **argv);

/* Copies the settings (the strings too). NULL: the defaults. Stops the VMs
 * of the pool. FLAME_ERR_CONFIG for an unknown accelerator. */
flame_status fl_microvm_configure(const fl_microvm_config *cfg);

/* VMs booted and waiting in the pool (all applications). */
size_t fl_microvm_pool_count(void);

/* Stops the pool's thread and its VMs (the executor manager's exit). */
void fl_microvm_shutdown(void);

#endif
