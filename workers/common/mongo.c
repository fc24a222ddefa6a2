/*
 * audex workers: MongoDB connections, see mongo.h.
 */

#include "log.h"
#include "mongo.h"


mongoc_uri_t *
audex_mongo_uri(const char *uri, int timeout_ms, int socket_timeout_ms,
    bson_error_t *error)
{
    mongoc_uri_t  *u;

    u = mongoc_uri_new_with_error(uri, error);
    if (u == NULL) {
        return NULL;
    }

    /*
     * A MongoDB that is away should fail a look-up in seconds, not in
     * the driver's 30, where the caller wants that: it backs off, and
     * SIGTERM or the user at the terminal is not kept waiting.
     */

    if (timeout_ms > 0) {
        if (!mongoc_uri_has_option(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS)) {
            mongoc_uri_set_option_as_int32(u,
                                           MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                           timeout_ms);
        }

        if (!mongoc_uri_has_option(u, MONGOC_URI_CONNECTTIMEOUTMS)) {
            mongoc_uri_set_option_as_int32(u, MONGOC_URI_CONNECTTIMEOUTMS,
                                           timeout_ms);
        }
    }

    if (socket_timeout_ms > 0
        && !mongoc_uri_has_option(u, MONGOC_URI_SOCKETTIMEOUTMS))
    {
        mongoc_uri_set_option_as_int32(u, MONGOC_URI_SOCKETTIMEOUTMS,
                                       socket_timeout_ms);
    }

    return u;
}


const char *
audex_mongo_db(const mongoc_uri_t *uri)
{
    const char  *db;

    db = mongoc_uri_get_database(uri);

    return (db && db[0]) ? db : AUDEX_MONGO_DB;
}


mongoc_client_t *
audex_mongo_client(const mongoc_uri_t *uri, const char *appname,
    bson_error_t *error)
{
    mongoc_client_t  *client;

    client = mongoc_client_new_from_uri_with_error(uri, error);
    if (client == NULL) {
        return NULL;
    }

    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_set_appname(client, appname);

    return client;
}


mongoc_client_pool_t *
audex_mongo_pool(const mongoc_uri_t *uri, const char *appname)
{
    mongoc_client_pool_t  *pool;

    pool = mongoc_client_pool_new(uri);
    if (pool == NULL) {
        return NULL;
    }

    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(pool, appname);

    return pool;
}


void
audex_mongo_log(mongoc_log_level_t level, const char *domain,
    const char *message, void *data)
{
    /*
     * the driver's warnings are about its own business, such as servers
     * without endSessions (FerretDB) at exit; failures reach us as errors
     */
    audex_log(level <= MONGOC_LOG_LEVEL_CRITICAL ? AUDEX_LOG_WARN
                                                  : AUDEX_LOG_DEBUG,
              NULL, "mongoc %s: %s", domain, message);
}
