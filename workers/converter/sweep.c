/*
 * The sweeper: files a failure left half written (an upload whose nginx
 * or database went away mid-stream, a clean-up that failed) are removed
 * once they are older than the grace time (store layer,
 * audex_store_upload_sweep), resumable uploads (tus) with their state,
 * and counted apart.  Every converter thread 0 tries every
 * sweep-every seconds, and one converter of the whole cluster sweeps: a
 * Redis lock (SET NX with an expiry of one period) picks it.
 */

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audex_schema.h"
#include "audex_store.h"
#include "log.h"
#include "sweep.h"


/* 1 when this consumer holds the lock for this period */
static int
audex_sweep_lock(audex_redis_t *redis, const char *consumer, int every)
{
    int          rc;
    char         ms[32];
    const char  *argv[6];
    redisReply  *reply;

    snprintf(ms, sizeof(ms), "%lld", (long long) every * 1000);

    argv[0] = "SET";
    argv[1] = AUDEX_LOCK_SWEEP;
    argv[2] = consumer;
    argv[3] = "NX";
    argv[4] = "PX";
    argv[5] = ms;

    reply = audex_redis_cmd(redis, 6, argv);
    if (reply == NULL) {
        return 0;
    }

    rc = (reply->type == REDIS_REPLY_STATUS);
    freeReplyObject(reply);

    return rc;
}


int
audex_sweep(audex_redis_t *redis, mongoc_client_pool_t *pool,
    const char *db_name, const char *consumer, int every, int grace,
    audex_store_swept_t *swept)
{
    int                 rc;
    bson_error_t        error;
    mongoc_client_t    *client;
    mongoc_database_t  *db;

    if (!audex_sweep_lock(redis, consumer, every)) {
        return 0;           /* another converter sweeps this period */
    }

    client = mongoc_client_pool_pop(pool);
    db = mongoc_client_get_database(client, db_name);

    rc = audex_store_upload_sweep(db, ((int64_t) time(NULL) - grace) * 1000,
                                  swept, &error);

    if (rc != 0) {
        audex_log(AUDEX_LOG_WARN, NULL, "sweeping unfinished uploads: %s",
                  error.message);
    }

    mongoc_database_destroy(db);
    mongoc_client_pool_push(pool, client);

    if (swept->uploads + swept->tus > 0) {
        audex_log(AUDEX_LOG_INFO, NULL, "swept %lld unfinished upload(s) "
                  "and %lld resumable one(s) idle for %d s",
                  (long long) swept->uploads, (long long) swept->tus, grace);
    }

    return (rc == 0) ? 0 : -1;
}
