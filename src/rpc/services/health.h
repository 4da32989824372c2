/* grpc.health.v1.Health: serving status per service name with watchers
 * (health.c, no I/O), and the Check/Watch glue on a rpc_server
 * (health_server.c). "" names the server as a whole and starts SERVING. */
#pragma once
#include <stdbool.h>

#include "common/err.h"
#include "rpc/server.h"

/* HealthCheckResponse.ServingStatus values. */
enum {
  HEALTH_UNKNOWN = 0,
  HEALTH_SERVING = 1,
  HEALTH_NOT_SERVING = 2,
  HEALTH_SERVICE_UNKNOWN = 3, /* only reported to watchers */
};

typedef struct health health;
typedef struct health_watch health_watch;
/* Told the status of the watched service (HEALTH_*) whenever it changes. */
typedef void (*health_watch_fn)(void *data, int serving_status);

/* A table holding "" = SERVING. */
int health_new(health **ret, rr_err *e);
/* Free the table and any watch left (free the rpc_server first). */
void health_free(health *h);
/* Set service's status (HEALTH_SERVING..NOT_SERVING; "" = whole server) and
 * tell its watchers if it changed. Ignored after health_shutdown. */
int health_set(health *h, const char *service, int serving_status, rr_err *e);
/* Status of service, or -1 when it was never set. */
int health_get(const health *h, const char *service);
/* Every service NOT_SERVING from now on (graceful shutdown); later sets ignored. */
void health_shutdown(health *h);
/* Watch service: fn is called at once with its status (SERVICE_UNKNOWN if
 * never set), then on each change. *ret is NULL if fn removed it at once. */
int health_watch_add(health *h, const char *service, health_watch_fn fn, void *data,
                     health_watch **ret, rr_err *e);
/* Stop a watch (safe from inside its fn). NULL is a no-op. */
void health_watch_remove(health_watch *w);

/* Create a table and serve /grpc.health.v1.Health/Check and /Watch from it on
 * s. *ret stays owned by the caller: health_free it after rpc_server_free.
 * On failure s may keep a method pointing at freed state: free s. */
int health_register(rpc_server *s, health **ret, rr_err *e);
