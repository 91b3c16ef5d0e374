/* libFuzzer target: the endpoint parser (config/endpoint.c), which every
 * daemon, client and config file goes through. */
#include <stdlib.h>
#include <string.h>

#include "config/endpoint.h"
#include "util/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fl_log_set_level(FL_LOG_ERROR + 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    fl_endpoint ep;
    if (fl_endpoint_parse(&ep, text, FLAME_ERR_CONFIG) == FLAME_OK) {
        /* what it parsed, it parses again to the same */
        fl_endpoint again;
        if (fl_endpoint_parse(&again, ep.url, FLAME_ERR_CONFIG) != FLAME_OK ||
            strcmp(again.target, ep.target) != 0)
            abort();
        fl_endpoint_clear(&again);
        fl_endpoint_clear(&ep);
    }
    free(text);
    return 0;
}
