/*
 * audex workers: a service's start and stop, written once.
 *
 * A worker describes itself (name, --help text, its settings table, how
 * it wants MongoDB) and audex_service_start() does the rest in one
 * order: settings (defaults < environment < flags, --help), the log
 * level, the worker's own checks, the mongoc log handler, MongoDB (a
 * client or a pool), the Redis handle, signal handlers and /metrics.
 * The table names the common settings "log-level", "mongodb-uri",
 * "redis-url", "metrics-port" and "metrics-addr".
 *
 *     rc = audex_service_start(&svc, argc, argv);
 *     if (rc != AUDEX_SERVICE_RUN) {
 *         return rc;
 *     }
 *     ...
 *     audex_service_stop(&svc);
 */

#ifndef _AUDEX_SERVICE_H_INCLUDED_
#define _AUDEX_SERVICE_H_INCLUDED_


#include <mongoc/mongoc.h>

#include "config.h"
#include "metrics.h"
#include "redis_stream.h"


/* audex_service_start(): go on; anything else is the exit status */
#define AUDEX_SERVICE_RUN          -1

/* a setting is wrong */
#define AUDEX_SERVICE_EXIT_CONFIG  2


/* the worker's own checks and derived settings: 0, or an exit status */
typedef int (*audex_service_check_pt)(char *err, size_t errlen);


typedef struct {
    /* set by the worker */
    const char               *name;         /* "audex-converter" */
    const char               *usage;        /* --help's synopsis */
    audex_conf_t             *table;
    audex_service_check_pt    check;        /* NULL: none */
    audex_metrics_render_pt   render;
    int                       pool;         /* a client pool, not a client */
    int                       timeout_ms;   /* 0: the driver's timeouts */
    int                       socket_timeout_ms;

    /* set by audex_service_start() */
    const char               *db;           /* MONGODB_URI's database */
    mongoc_uri_t             *uri;
    mongoc_client_pool_t     *mongo_pool;   /* when pool */
    mongoc_client_t          *mongo;        /* otherwise */
    audex_redis_t            *redis;        /* not connected yet */
    audex_metrics_server_t   *metrics;      /* NULL: turned off */
    int                       mongoc;       /* mongoc_init() was called */
} audex_service_t;


/*
 * AUDEX_SERVICE_RUN, or the exit status for main(): 0 after --help,
 * AUDEX_SERVICE_EXIT_CONFIG for a bad setting, 1 when the system fails
 * us; the reason is on stderr, and what was made is freed.
 */
int audex_service_start(audex_service_t *svc, int argc, char **argv);

/* frees what audex_service_start() made, the settings' strings too */
void audex_service_stop(audex_service_t *svc);

/* an empty *consumer becomes "<hostname>-<pid>" (fallback: no host name) */
int audex_service_consumer(char **consumer, const char *fallback);


#endif /* _AUDEX_SERVICE_H_INCLUDED_ */
