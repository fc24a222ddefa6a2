/*
 * Writes the embedded FerretDB refused because SQLite's database was
 * locked.  FerretDB waits for the lock itself (SQLite's busy_timeout,
 * 10 s by default) and answers "database is locked (SQLITE_BUSY)" only
 * when another writer held it longer; that is a passing state of the
 * server, not a failure of the operation, so the write is tried again
 * here after a pause, and only a lock that outlasts every try reaches
 * the caller as an error.  A real MongoDB never says so: nothing changes
 * there.
 */

#include <string.h>
#include <time.h>

#include "audex_store.h"


int
audex_store_busy_wait(const bson_error_t *error, int *tries)
{
    long             ms;
    struct timespec  ts;

    if (strstr(error->message, "SQLITE_BUSY") == NULL
        && strstr(error->message, "database is locked") == NULL)
    {
        return 0;
    }

    if (++*tries >= AUDEX_STORE_BUSY_TRIES) {
        return 0;
    }

    /* 100 ms, then twice as long each time, at most 2 s */
    ms = 100L << (*tries - 1);
    if (ms > 2000) {
        ms = 2000;
    }

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;

    while (nanosleep(&ts, &ts) != 0) {
        /* interrupted: sleep the rest */
    }

    return 1;
}


int
audex_store_insert(mongoc_collection_t *coll, const bson_t *doc,
    bson_error_t *error)
{
    int  tries;

    tries = 0;

    while (!mongoc_collection_insert_one(coll, doc, NULL, NULL, error)) {
        if (!audex_store_busy_wait(error, &tries)) {
            return -1;
        }
    }

    return 0;
}


int
audex_store_delete(mongoc_collection_t *coll, const bson_t *filter,
    bson_error_t *error)
{
    int  tries;

    tries = 0;

    while (!mongoc_collection_delete_one(coll, filter, NULL, NULL, error)) {
        if (!audex_store_busy_wait(error, &tries)) {
            return -1;
        }
    }

    return 0;
}
