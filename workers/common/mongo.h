/*
 * audex workers: MongoDB connections.
 *
 * Every process opens MongoDB the same way: the URI's own settings win,
 * the timeouts a worker asks for fill in what it leaves out, the error
 * API is version 2 and the client names the program (appname), so that
 * a server's log tells the converter from the notifier.
 */

#ifndef _AUDEX_MONGO_H_INCLUDED_
#define _AUDEX_MONGO_H_INCLUDED_


#include <mongoc/mongoc.h>


/* the database when the URI names none */
#define AUDEX_MONGO_DB  "audex"


/*
 * Parses uri; where it sets none, serverSelectionTimeoutMS and
 * connectTimeoutMS become timeout_ms and socketTimeoutMS becomes
 * socket_timeout_ms (0: the driver's own).  NULL with error filled.
 */
mongoc_uri_t *audex_mongo_uri(const char *uri, int timeout_ms,
    int socket_timeout_ms, bson_error_t *error);

/* the URI's database, or AUDEX_MONGO_DB */
const char *audex_mongo_db(const mongoc_uri_t *uri);

/* one client, for one thread; NULL with error filled */
mongoc_client_t *audex_mongo_client(const mongoc_uri_t *uri,
    const char *appname, bson_error_t *error);

/* a pool, for several threads; NULL on failure */
mongoc_client_pool_t *audex_mongo_pool(const mongoc_uri_t *uri,
    const char *appname);

/*
 * A mongoc log handler writing to audex_log(): the driver's failures as
 * warnings, its chatter as debug.
 */
void audex_mongo_log(mongoc_log_level_t level, const char *domain,
    const char *message, void *data);


#endif /* _AUDEX_MONGO_H_INCLUDED_ */
