/* Unit tests of the microvm level's vsock channel (sandbox/microvm.h) that
 * need no /dev/vhost-vsock: the choice of channel, QEMU's argument vector for
 * each, and the guest CID allocation. The vsock path itself needs a host
 * with vhost-vsock (README, "The microvm sandbox level"). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/microvm.h"
#include "util/util.h"

#define MISSING "/nonexistent/vhost-vsock"
#define OPENABLE "/dev/null" /* stands for a device that opens */

START_TEST(auto_is_serial_without_the_device_and_vsock_with_it)
{
    bool vsock = true;
    ck_assert_int_eq(fl_microvm_channel_choose(NULL, MISSING, &vsock), FLAME_OK);
    ck_assert(!vsock);
    ck_assert_int_eq(fl_microvm_channel_choose("auto", MISSING, &vsock), FLAME_OK);
    ck_assert(!vsock);
    ck_assert_int_eq(fl_microvm_channel_choose("auto", OPENABLE, &vsock), FLAME_OK);
    ck_assert(vsock);
}
END_TEST

START_TEST(serial_forced_stays_serial_where_vsock_opens)
{
    bool vsock = true;
    ck_assert_int_eq(fl_microvm_channel_choose("serial", OPENABLE, &vsock), FLAME_OK);
    ck_assert(!vsock);
}
END_TEST

START_TEST(vsock_forced_without_the_device_fails_and_names_it)
{
    bool vsock = true;
    ck_assert_int_eq(fl_microvm_channel_choose("vsock", MISSING, &vsock),
                     FLAME_ERR_FAILED_PRECONDITION);
    ck_assert(!vsock);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), MISSING));
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "never replaced by serial"));
    /* this host's own device, when it has none (the case here) */
    if (fl_microvm_channel_choose("vsock", "/dev/vhost-vsock", &vsock) != FLAME_OK)
        ck_assert_ptr_nonnull(strstr(flame_error_last(), "/dev/vhost-vsock is missing"));
    ck_assert_int_eq(fl_microvm_channel_choose("vsock", OPENABLE, &vsock), FLAME_OK);
    ck_assert(vsock);
}
END_TEST

START_TEST(an_unknown_channel_is_a_config_error)
{
    bool vsock;
    ck_assert_int_eq(fl_microvm_channel_choose("tcp", OPENABLE, &vsock), FLAME_ERR_CONFIG);
    fl_microvm_config c = { .channel = "tcp" };
    ck_assert_int_eq(fl_microvm_configure(&c), FLAME_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "auto, serial or vsock"));
    c.channel = "serial";
    ck_assert_int_eq(fl_microvm_configure(&c), FLAME_OK);
    ck_assert_int_eq(fl_microvm_configure(NULL), FLAME_OK);
}
END_TEST

static char *joined(char **argv)
{
    fl_buf b = { 0 };
    for (char **a = argv; *a; a++)
        fl_buf_printf(&b, "%s%s", a == argv ? "" : " ", *a);
    return fl_buf_detach(&b);
}

static const fl_microvm_qemu Q = { .qemu = "/usr/bin/qemu-system-x86_64", .kernel = "/i/vmlinuz",
                                   .initrd = "/i/initramfs.img", .tcg = true, .tsc_khz = 2000000,
                                   .memory_mb = 256, .cpus = 1, .dir = "/tmp/flame-vm-x" };

START_TEST(serial_argv_has_the_two_ports_and_no_vsock)
{
    char **argv = fl_microvm_qemu_argv(&Q);
    char *s = joined(argv);
    ck_assert_str_eq(
        s, "/usr/bin/qemu-system-x86_64 -M microvm,isa-serial=on -accel tcg -cpu max -m 256 "
           "-smp 1 -kernel /i/vmlinuz -initrd /i/initramfs.img -append console=ttyS0 edd=off "
           "rdinit=/init quiet panic=-1 tsc=reliable tsc_early_khz=2000000 -nodefaults "
           "-no-user-config -display none -serial stdio -sandbox on,obsolete=deny,"
           "elevateprivileges=deny,spawn=deny,resourcecontrol=deny -no-reboot -device "
           "virtio-serial-device -chardev socket,id=ctl,path=/tmp/flame-vm-x/ctl.sock,server=on,"
           "wait=off -device virtserialport,chardev=ctl,name=flame.ctl -chardev "
           "socket,id=inst,path=/tmp/flame-vm-x/inst.sock,server=on,wait=off -device "
           "virtserialport,chardev=inst,name=flame.instance");
    free(s);
    fl_microvm_argv_free(argv);
}
END_TEST

START_TEST(vsock_argv_has_the_mmio_device_with_its_cid_and_tells_the_guest)
{
    fl_microvm_qemu q = Q;
    q.cid = 7;
    q.tcg = false;
    q.tsc_khz = 0;
    q.disk = "/i/python.img";
    char **argv = fl_microvm_qemu_argv(&q);
    char *s = joined(argv);
    ck_assert_str_eq(
        s, "/usr/bin/qemu-system-x86_64 -M microvm,isa-serial=on -accel kvm -cpu host -m 256 "
           "-smp 1 -kernel /i/vmlinuz -initrd /i/initramfs.img -append console=ttyS0 edd=off "
           "rdinit=/init quiet panic=-1 flame.channel=vsock -nodefaults -no-user-config "
           "-display none -serial stdio -sandbox on,obsolete=deny,elevateprivileges=deny,"
           "spawn=deny,resourcecontrol=deny -no-reboot -device vhost-vsock-device,guest-cid=7 "
           "-drive file=/i/python.img,if=none,id=py,format=raw,readonly=on -device "
           "virtio-blk-device,drive=py");
    ck_assert_ptr_null(strstr(s, "virtserialport"));
    free(s);
    fl_microvm_argv_free(argv);
}
END_TEST

/* CIDs 3 and 5 are someone else's on this pretend host; 9: cannot tell */
static int probe(uint32_t cid, void *arg)
{
    int *calls = arg;
    (*calls)++;
    return cid == 3 || cid == 5 ? EADDRINUSE : cid == 4 ? EBUSY : 0;
}

static int probe_denied(uint32_t cid, void *arg)
{
    (void)cid;
    (void)arg;
    return EACCES;
}

START_TEST(cids_are_unique_above_2_and_skip_taken_ones)
{
    int calls = 0;
    uint32_t got[64];
    for (int i = 0; i < 64; i++) {
        ck_assert_int_eq(fl_microvm_cid_alloc(&got[i], probe, &calls), FLAME_OK);
        ck_assert_uint_gt(got[i], 5);
        for (int j = 0; j < i; j++)
            ck_assert_uint_ne(got[i], got[j]);
    }
    ck_assert_int_ge(calls, 64 + 3);
    /* a released CID can come back, never while held */
    fl_microvm_cid_release(got[10]);
    uint32_t again;
    ck_assert_int_eq(fl_microvm_cid_alloc(&again, probe, &calls), FLAME_OK);
    for (int j = 0; j < 64; j++)
        ck_assert(j == 10 || again != got[j]);
    ck_assert_int_eq(fl_microvm_cid_alloc(&again, probe_denied, NULL),
                     FLAME_ERR_FAILED_PRECONDITION);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "guest CID"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vsock");
    TCase *tc = tcase_create("channel");
    tcase_add_test(tc, auto_is_serial_without_the_device_and_vsock_with_it);
    tcase_add_test(tc, serial_forced_stays_serial_where_vsock_opens);
    tcase_add_test(tc, vsock_forced_without_the_device_fails_and_names_it);
    tcase_add_test(tc, an_unknown_channel_is_a_config_error);
    tcase_add_test(tc, serial_argv_has_the_two_ports_and_no_vsock);
    tcase_add_test(tc, vsock_argv_has_the_mmio_device_with_its_cid_and_tells_the_guest);
    tcase_add_test(tc, cids_are_unique_above_2_and_skip_taken_ones);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
