/*
 * audex store: the state of resumable (tus) uploads, see audex_store.h
 * and AUDEX_COLL_TUS in lib/audex_schema.h.
 *
 * Every write names the document by _id (the one index FerretDB's
 * SQLite backend uses) and adds the condition that makes it safe: the
 * client's offset and an expired lock to take the upload, the holder's
 * token to change it.  A single-document update is atomic on every
 * MongoDB-wire server, so of two PATCHes racing for an upload one
 * matches and the other does not.
 */

#include "audex_store.h"


/* 1 when one document matched, 0 when none, -1 with error set */
static int
audex_store_tus_update_one(mongoc_collection_t *tus, const bson_t *filter,
    const bson_t *update, bson_error_t *error)
{
    int           ok, tries, rc;
    bson_t        reply;
    bson_iter_t   it;

    tries = 0;

    for ( ;; ) {
        ok = mongoc_collection_update_one(tus, filter, update, NULL, &reply,
                                          error);
        if (ok || !audex_store_busy_wait(error, &tries)) {
            break;
        }

        bson_destroy(&reply);
    }

    rc = -1;

    if (ok) {
        rc = (bson_iter_init_find(&it, &reply, "matchedCount")
              && bson_iter_as_int64(&it) > 0) ? 1 : 0;
    }

    bson_destroy(&reply);

    return rc;
}


int
audex_store_tus_create(mongoc_collection_t *tus, const bson_t *doc,
    bson_error_t *error)
{
    return audex_store_insert(tus, doc, error);
}


int
audex_store_tus_get(mongoc_collection_t *tus, const bson_oid_t *id,
    bson_t **doc, bson_error_t *error)
{
    int     rc;
    bson_t  filter;

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", id);
    rc = audex_store_find_one(tus, &filter, doc, error);
    bson_destroy(&filter);

    return rc;
}


int
audex_store_tus_lock(mongoc_collection_t *tus, const bson_oid_t *id,
    int64_t offset, const char *token, int64_t now, int64_t expires_at,
    int unverified, bson_error_t *error)
{
    int      rc;
    bson_t  *filter, *set, *update;

    filter = BCON_NEW("_id", BCON_OID(id),
                      AUDEX_F_TUS_OFFSET, BCON_INT64(offset),
                      AUDEX_F_JOB_ID, BCON_NULL,
                      AUDEX_F_TUS_LOCK_UNTIL, "{",
                          "$lt", BCON_DATE_TIME(now), "}");

    set = BCON_NEW(AUDEX_F_TUS_LOCK, BCON_UTF8(token),
                   AUDEX_F_TUS_LOCK_UNTIL,
                       BCON_DATE_TIME(now + AUDEX_TUS_LEASE * 1000),
                   AUDEX_F_TUS_EXPIRES_AT, BCON_DATE_TIME(expires_at));

    if (unverified) {
        /* said before any chunk of this holder is stored */
        BSON_APPEND_BOOL(set, AUDEX_F_TUS_UNVERIFIED, true);
    }

    update = BCON_NEW("$set", BCON_DOCUMENT(set));

    rc = audex_store_tus_update_one(tus, filter, update, error);

    bson_destroy(update);
    bson_destroy(set);
    bson_destroy(filter);

    return rc;
}


int
audex_store_tus_advance(mongoc_collection_t *tus, const bson_oid_t *id,
    const audex_store_tus_seen_t *seen, const bson_t *set,
    bson_error_t *error)
{
    int     rc;
    bson_t  filter, update;

    /* nothing changed since it was read: no one took it meanwhile */

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", id);
    BSON_APPEND_INT64(&filter, AUDEX_F_TUS_OFFSET, seen->offset);
    BSON_APPEND_NULL(&filter, AUDEX_F_JOB_ID);

    if (seen->lock) {
        BSON_APPEND_UTF8(&filter, AUDEX_F_TUS_LOCK, seen->lock);

    } else {
        BSON_APPEND_NULL(&filter, AUDEX_F_TUS_LOCK);
    }

    BSON_APPEND_DATE_TIME(&filter, AUDEX_F_TUS_LOCK_UNTIL, seen->lock_until);

    bson_init(&update);
    BSON_APPEND_DOCUMENT(&update, "$set", set);

    rc = audex_store_tus_update_one(tus, &filter, &update, error);

    bson_destroy(&update);
    bson_destroy(&filter);

    return rc;
}


int
audex_store_tus_update(mongoc_collection_t *tus, const bson_oid_t *id,
    const char *token, const bson_t *set, bson_error_t *error)
{
    int      rc;
    bson_t   filter, update;

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", id);

    if (token) {
        BSON_APPEND_UTF8(&filter, AUDEX_F_TUS_LOCK, token);
    }

    bson_init(&update);
    BSON_APPEND_DOCUMENT(&update, "$set", set);

    rc = audex_store_tus_update_one(tus, &filter, &update, error);

    bson_destroy(&update);
    bson_destroy(&filter);

    return rc;
}


int
audex_store_tus_delete(mongoc_collection_t *tus, const bson_oid_t *id,
    bson_error_t *error)
{
    int     rc;
    bson_t  filter;

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", id);
    rc = audex_store_delete(tus, &filter, error);
    bson_destroy(&filter);

    return rc;
}
