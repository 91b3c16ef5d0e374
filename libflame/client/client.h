#ifndef FL_CLIENT_INTERNAL_H
#define FL_CLIENT_INTERNAL_H

#include "flame/client.h"

/* Resolves the endpoint a client uses: explicit, $FLAME_ENDPOINT, the
 * current context of ~/.flame/flame.yaml (or $FLAME_CONFIG), or the
 * default. Returns a malloc'ed "http://host:port". */
flame_status fl_client_resolve_endpoint(char **out, const char *explicit_endpoint);

/* "http://host:port" or "host:port" -> "host:port" (malloc'ed). */
flame_status fl_endpoint_target(char **out, const char *endpoint);

#endif
