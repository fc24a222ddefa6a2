/*
 * audex store: job and user documents, see audex_store.h.
 *
 * Jobs are found by _id (the job id), which every MongoDB-wire server
 * answers from an index.  Users are found by email: MongoDB answers
 * from the unique email index audex-user makes; FerretDB's SQLite
 * backend pushes down no filter but {_id}, so there a login scans the
 * users collection, a cost that grows with the number of accounts, not
 * with the files stored.
 */

#include "audex_store.h"


int
audex_store_find_one(mongoc_collection_t *coll, const bson_t *filter,
    bson_t **doc, bson_error_t *error)
{
    int               rc;
    bson_t            opts;
    const bson_t     *d;
    mongoc_cursor_t  *cursor;

    *doc = NULL;

    bson_init(&opts);
    BSON_APPEND_INT64(&opts, "limit", 1);
    cursor = mongoc_collection_find_with_opts(coll, filter, &opts, NULL);
    bson_destroy(&opts);

    rc = 0;

    if (mongoc_cursor_next(cursor, &d)) {
        *doc = bson_copy(d);
        rc = 1;

    } else if (mongoc_cursor_error(cursor, error)) {
        rc = -1;
    }

    mongoc_cursor_destroy(cursor);

    return rc;
}


/* one document whose string field key is value */
static int
audex_store_find_by(mongoc_collection_t *coll, const char *key,
    const char *value, bson_t **doc, bson_error_t *error)
{
    int     rc;
    bson_t  filter;

    bson_init(&filter);
    bson_append_utf8(&filter, key, -1, value, -1);
    rc = audex_store_find_one(coll, &filter, doc, error);
    bson_destroy(&filter);

    return rc;
}


int
audex_store_job_get(mongoc_collection_t *jobs, const char *job_id,
    bson_t **doc, bson_error_t *error)
{
    return audex_store_find_by(jobs, "_id", job_id, doc, error);
}


int
audex_store_job_insert(mongoc_collection_t *jobs, const bson_t *doc,
    bson_error_t *error)
{
    return audex_store_insert(jobs, doc, error);
}


int
audex_store_job_update(mongoc_collection_t *jobs, const char *job_id,
    const bson_t *update, int upsert, bson_error_t *error)
{
    int     ok, tries;
    bson_t  filter, opts;

    bson_init(&filter);
    BSON_APPEND_UTF8(&filter, "_id", job_id);
    bson_init(&opts);
    BSON_APPEND_BOOL(&opts, "upsert", upsert != 0);

    tries = 0;

    do {
        ok = mongoc_collection_update_one(jobs, &filter, update, &opts, NULL,
                                          error);
    } while (!ok && audex_store_busy_wait(error, &tries));

    bson_destroy(&opts);
    bson_destroy(&filter);

    return ok ? 0 : -1;
}


int
audex_store_job_remove(mongoc_collection_t *jobs, const char *job_id,
    bson_error_t *error)
{
    int     rc;
    bson_t  filter;

    bson_init(&filter);
    BSON_APPEND_UTF8(&filter, "_id", job_id);
    rc = audex_store_delete(jobs, &filter, error);
    bson_destroy(&filter);

    return rc;
}


int
audex_store_user_by_email(mongoc_collection_t *users, const char *email,
    bson_t **doc, bson_error_t *error)
{
    return audex_store_find_by(users, "email", email, doc, error);
}


int
audex_store_user_by_id(mongoc_collection_t *users, const bson_oid_t *id,
    bson_t **doc, bson_error_t *error)
{
    int     rc;
    bson_t  filter;

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", id);
    rc = audex_store_find_one(users, &filter, doc, error);
    bson_destroy(&filter);

    return rc;
}


/*
 * The documents of coll matching filter: *count of them and *sum of
 * their numeric field sum_field (none: counted only).  Only that field
 * comes back.  0 or -1.
 */
static int
audex_store_tally(mongoc_collection_t *coll, const bson_t *filter,
    const char *sum_field, int64_t *count, int64_t *sum,
    bson_error_t *error)
{
    int               rc;
    bson_t           *opts;
    bson_iter_t       it;
    const bson_t     *d;
    mongoc_cursor_t  *cursor;

    opts = BCON_NEW("projection", "{", sum_field ? sum_field : "_id",
                    BCON_INT32(1), "}");
    cursor = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    bson_destroy(opts);

    while (mongoc_cursor_next(cursor, &d)) {
        (*count)++;

        if (sum_field && bson_iter_init_find(&it, d, sum_field)
            && BSON_ITER_HOLDS_NUMBER(&it))
        {
            *sum += bson_iter_as_int64(&it);
        }
    }

    rc = mongoc_cursor_error(cursor, error) ? -1 : 0;
    mongoc_cursor_destroy(cursor);

    return rc;
}


int
audex_store_user_usage(mongoc_client_t *client, const char *db,
    const char *owner_id, int64_t *jobs, int64_t *bytes,
    bson_error_t *error)
{
    int                   rc;
    size_t                i;
    bson_t               *filter;
    int64_t               files, unused;
    mongoc_collection_t  *coll;
    const char           *buckets[] = { AUDEX_VIDEOS_FILES,
                                        AUDEX_MP3S_FILES };

    *jobs = 0;
    *bytes = 0;
    unused = 0;
    files = 0;

    coll = mongoc_client_get_collection(client, db, AUDEX_COLL_JOBS);
    filter = BCON_NEW(AUDEX_F_OWNER_ID, BCON_UTF8(owner_id),
                      AUDEX_F_STATE, "{", "$in", "[",
                      BCON_UTF8(AUDEX_JOB_STATE_QUEUED),
                      BCON_UTF8(AUDEX_JOB_STATE_CONVERTING), "]", "}");
    rc = audex_store_tally(coll, filter, NULL, jobs, &unused, error);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);

    filter = BCON_NEW(AUDEX_F_FILE_OWNER_ID, BCON_UTF8(owner_id));

    for (i = 0; rc == 0 && i < 2; i++) {
        coll = mongoc_client_get_collection(client, db, buckets[i]);
        rc = audex_store_tally(coll, filter, "length", &files, bytes, error);
        mongoc_collection_destroy(coll);
    }

    bson_destroy(filter);

    return rc;
}
