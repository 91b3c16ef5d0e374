/* The built-in flmping service as a host-shim process (service.h): a no-op
 * (or sleep, or memory toucher) that answers with the host it ran on. */
#include <stdio.h>

#include <flame/flame.h>

int main(void)
{
    if (flame_service_run(flame_builtin_service("flmping")) != FLAME_OK) {
        fprintf(stderr, "flmping-service: %s\n", flame_error_last());
        return 1;
    }
    return 0;
}
