/* Flame in C — umbrella header: everything public. */
#ifndef FLAME_FLAME_H
#define FLAME_FLAME_H

#include "version.h"
#include "error.h"
#include "types.h"
#include "client.h"
#include "service.h"
#include "scheduler.h"
#include "executor.h"
#include "server.h"
#include "cache.h"
#include "metrics.h"

#endif
