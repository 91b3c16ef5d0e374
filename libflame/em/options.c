/* flame_executor_options_init: FLAME_EXECUTOR_OPTIONS_INIT as a function,
 * for callers that cannot use the macro (bindings). */
#include "flame/executor.h"

void flame_executor_options_init(flame_executor_options *opts)
{
    if (opts)
        *opts = (flame_executor_options)FLAME_EXECUTOR_OPTIONS_INIT;
}
