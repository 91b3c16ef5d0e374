/* The object cache server's state, shared by its two protocols: Arrow
 * Flight (server.c) and Flame 0.7's flame.v1.ObjectCacheService
 * (service07.c), both served by one rpc_server over one store.
 *
 * Threads: every handler runs on the server's thread (see server.c). */
#ifndef FL_CACHE_SERVER_H
#define FL_CACHE_SERVER_H

#include <pthread.h>
#include <stdint.h>

#include "cache/store.h"
#include "flame/cache.h"
#include "rpc/rpc.h"

struct flame_cache_server {
    rpc_server *rpc;
    cache_store *store;
    pthread_t thread;
    int port;
    char *uri;
    uint64_t max_object;
};

/* A random UUIDv4 (the id of an object PUT to `<app>/<session>`). */
void cache_uuid4(char out[37]);

/* Arrow Flight's FlightService (server.c) and flame.v1.ObjectCacheService
 * (service07.c); the handlers take the flame_cache_server as their ctx. */
extern const rpc_service cache_flight_service;
extern const rpc_service cache07_service;

#endif
