/*
 * audex workers: a service's start and stop, see service.h.
 */

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mongo.h"
#include "service.h"
#include "signals.h"


static int audex_service_settings(audex_service_t *svc, int argc,
    char **argv);
static int audex_service_mongo(audex_service_t *svc);
static int audex_service_metrics(audex_service_t *svc);
static const char *audex_service_string(audex_service_t *svc,
    const char *name);
static void audex_service_error(audex_service_t *svc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


int
audex_service_start(audex_service_t *svc, int argc, char **argv)
{
    int   rc;
    char  err[512];

    rc = audex_service_settings(svc, argc, argv);

    if (rc == AUDEX_SERVICE_RUN && svc->check) {
        err[0] = '\0';
        rc = svc->check(err, sizeof(err));

        if (rc != 0) {
            audex_service_error(svc, "%s", err);

        } else {
            rc = AUDEX_SERVICE_RUN;
        }
    }

    if (rc == AUDEX_SERVICE_RUN) {
        rc = audex_service_mongo(svc);
    }

    if (rc == AUDEX_SERVICE_RUN) {
        svc->redis = audex_redis_new(audex_service_string(svc, "redis-url"),
                                     err, sizeof(err));
        if (svc->redis == NULL) {
            audex_service_error(svc, "REDIS_URL: %s", err);
            rc = AUDEX_SERVICE_EXIT_CONFIG;
        }
    }

    if (rc == AUDEX_SERVICE_RUN && audex_signals_install() != 0) {
        audex_service_error(svc, "sigaction: %s", strerror(errno));
        rc = 1;
    }

    if (rc == AUDEX_SERVICE_RUN) {
        rc = audex_service_metrics(svc);
    }

    if (rc != AUDEX_SERVICE_RUN) {
        audex_service_stop(svc);
    }

    return rc;
}


/* the table filled, --help answered, the log level set */

static int
audex_service_settings(audex_service_t *svc, int argc, char **argv)
{
    int          rc, rest, level;
    char         err[512];
    const char  *name;

    rc = audex_conf_load(svc->table, argc, argv, &rest, err, sizeof(err));

    if (rc == 1) {
        audex_conf_usage(stdout, svc->usage, svc->table);
        return 0;
    }

    if (rc != 0 || rest != 0) {
        audex_service_error(svc, "%s",
                            rc ? err : "unexpected argument; see --help");
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    name = audex_service_string(svc, "log-level");

    level = audex_log_level_parse(name);
    if (level < 0) {
        audex_service_error(svc, "bad log level \"%s\"", name);
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    audex_log_level = level;

    return AUDEX_SERVICE_RUN;
}


static int
audex_service_mongo(audex_service_t *svc)
{
    bson_error_t  error;

    mongoc_init();
    mongoc_log_set_handler(audex_mongo_log, NULL);
    svc->mongoc = 1;

    svc->uri = audex_mongo_uri(audex_service_string(svc, "mongodb-uri"),
                               svc->timeout_ms, svc->socket_timeout_ms,
                               &error);
    if (svc->uri == NULL) {
        audex_service_error(svc, "bad MONGODB_URI: %.400s", error.message);
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    svc->db = audex_mongo_db(svc->uri);

    if (svc->pool) {
        svc->mongo_pool = audex_mongo_pool(svc->uri, svc->name);
        if (svc->mongo_pool == NULL) {
            audex_service_error(svc, "cannot create a MongoDB pool");
            return 1;
        }

        return AUDEX_SERVICE_RUN;
    }

    svc->mongo = audex_mongo_client(svc->uri, svc->name, &error);
    if (svc->mongo == NULL) {
        audex_service_error(svc, "MongoDB client: %.400s", error.message);
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    return AUDEX_SERVICE_RUN;
}


static int
audex_service_metrics(audex_service_t *svc)
{
    char           err[256];
    sigset_t       old;
    audex_conf_t  *port;

    port = audex_conf_get(svc->table, "metrics-port");

    /* the metrics thread leaves signals to the main thread */
    audex_signals_block(&old);

    err[0] = '\0';
    svc->metrics = audex_metrics_start(audex_service_string(svc,
                                                            "metrics-addr"),
                                       *(int *) port->value, svc->render,
                                       NULL, err, sizeof(err));

    audex_signals_restore(&old);

    if (svc->metrics == NULL && err[0]) {
        audex_service_error(svc, "%s", err);
        return 1;
    }

    return AUDEX_SERVICE_RUN;
}


void
audex_service_stop(audex_service_t *svc)
{
    audex_metrics_stop(svc->metrics);
    audex_redis_free(svc->redis);

    if (svc->mongo) {
        mongoc_client_destroy(svc->mongo);
    }

    if (svc->mongo_pool) {
        mongoc_client_pool_destroy(svc->mongo_pool);
    }

    if (svc->uri) {
        mongoc_uri_destroy(svc->uri);
    }

    if (svc->mongoc) {
        mongoc_cleanup();
    }

    audex_conf_free(svc->table);

    svc->metrics = NULL;
    svc->redis = NULL;
    svc->mongo = NULL;
    svc->mongo_pool = NULL;
    svc->uri = NULL;
    svc->db = NULL;
    svc->mongoc = 0;
}


int
audex_service_consumer(char **consumer, const char *fallback)
{
    char  host[128], name[256];

    if ((*consumer)[0] != '\0') {
        return 0;
    }

    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "%s", fallback);
    }

    host[sizeof(host) - 1] = '\0';
    snprintf(name, sizeof(name), "%s-%d", host, (int) getpid());

    return audex_conf_derive(consumer, "%s", name);
}


/* a string setting the table must have */

static const char *
audex_service_string(audex_service_t *svc, const char *name)
{
    audex_conf_t  *c;

    c = audex_conf_get(svc->table, name);

    return *(char **) c->value;
}


static void
audex_service_error(audex_service_t *svc, const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, "%s: ", svc->name);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
}
