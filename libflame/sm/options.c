/* flame_server_options_init: FLAME_SERVER_OPTIONS_INIT as a function, for
 * callers that cannot use the macro (bindings). */
#include "flame/server.h"

void flame_server_options_init(flame_server_options *opts)
{
    if (opts)
        *opts = (flame_server_options)FLAME_SERVER_OPTIONS_INIT;
}
