/* Internal header of the client core (client.c, appfile.c). Endpoint
 * resolution lives in config/endpoint.h. */
#ifndef FL_CLIENT_INTERNAL_H
#define FL_CLIENT_INTERNAL_H

#include "flame/client.h"

#endif
