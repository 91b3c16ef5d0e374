/* The flame.v1 Instance server's method table (service.c), for the fuzz
 * target that drives it in process (tests/fuzz/fuzz_shim.c). Its ctx is
 * the flame_service being served. */
#ifndef FL_SERVICE_INSTANCE_H
#define FL_SERVICE_INSTANCE_H

#include "rpc/rpc.h"

extern const rpc_service fl_instance_service;

#endif
