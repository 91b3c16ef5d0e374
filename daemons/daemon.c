/* The daemon mains' shared start and stop (daemon.h). */
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"

static int exit_code(flame_status st)
{
    return st == FLAME_ERR_CONFIG ? 2 : 1;
}

int daemon_prepare(daemon_ctx *d, const char *name, const char *config_file, const char *key,
                   const char *log_format, const char *metrics_flag)
{
    *d = (daemon_ctx){ .name = name };
    flame_status st = flame_operations_config(config_file, key, log_format, metrics_flag,
                                              &d->metrics_addr);
    if (st != FLAME_OK)
        return daemon_fail(d, st);
    sigemptyset(&d->signals);
    sigaddset(&d->signals, SIGINT);
    sigaddset(&d->signals, SIGTERM);
    sigaddset(&d->signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &d->signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    return 0;
}

int daemon_fail(daemon_ctx *d, flame_status st)
{
    fprintf(stderr, "%s: %s\n", d->name, flame_error_last());
    free(d->metrics_addr);
    d->metrics_addr = NULL;
    return exit_code(st);
}

int daemon_metrics(daemon_ctx *d, flame_probe_fn healthy, flame_probe_fn ready, void *ctx)
{
    if (!d->metrics_addr)
        return 0;
    flame_metrics_options mo = FLAME_METRICS_OPTIONS_INIT;
    mo.address = d->metrics_addr;
    mo.daemon = d->name;
    mo.healthy = healthy;
    mo.ready = ready;
    mo.probe_ctx = ctx;
    flame_status st = flame_metrics_start(&d->metrics, &mo);
    if (st != FLAME_OK)
        return daemon_fail(d, st);
    free(d->metrics_addr);
    d->metrics_addr = NULL;
    printf("%s metrics on port %d\n", d->name, flame_metrics_port(d->metrics));
    return 0;
}

void daemon_wait(daemon_ctx *d)
{
    fflush(stdout);
    int sig = 0;
    sigwait(&d->signals, &sig);
    fprintf(stderr, "%s: signal %d, stopping\n", d->name, sig);
    flame_metrics_stop(d->metrics);
    d->metrics = NULL;
}
