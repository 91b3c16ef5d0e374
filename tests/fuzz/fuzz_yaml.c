/* libFuzzer target: the YAML files we read. The first byte picks the
 * format, the rest is the file: 0 the cluster config (flame-cluster.yaml,
 * config/cluster.c), 1 an application file (client/appfile.c), 2 the
 * client's context file (~/.flame/flame.yaml, config/endpoint.c), 3 the
 * kubernetes provider's kubeconfig (provider/kubeapi.c). The parsers read
 * paths, so the input goes through a file in memory. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/endpoint.h"
#include "flame/client.h"
#include "flame/server.h"
#include "provider/kubeapi.h"
#include "util/util.h"

static char path[64];
static int fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fl_log_set_level(FL_LOG_ERROR + 1);
    fd = memfd_create("fuzz_yaml", 0);
    if (fd < 0)
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    unsetenv("FLAME_ENDPOINT");
    setenv("FLAME_CONFIG", path, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (ftruncate(fd, 0) || pwrite(fd, data + 1, size - 1, 0) != (ssize_t)(size - 1))
        abort();
    switch (data[0] % 4) {
    case 0: {
        flame_cluster_config *c = NULL;
        if (flame_cluster_config_load(&c, path) == FLAME_OK)
            flame_cluster_config_free(c);
        break;
    }
    case 1: {
        flame_application **apps = NULL;
        size_t n = 0;
        if (flame_application_file_load(&apps, &n, path) == FLAME_OK)
            flame_application_list_free(apps, n);
        break;
    }
    case 3: {
        kube_api a;
        if (kube_api_load(&a, path) == FLAME_OK)
            kube_api_clear(&a);
        break;
    }
    default: {
        fl_endpoint ep;
        if (fl_endpoint_resolve(&ep, NULL) == FLAME_OK)
            fl_endpoint_clear(&ep);
        break;
    }
    }
    return 0;
}
