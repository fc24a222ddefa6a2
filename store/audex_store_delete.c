/*
 * audex store: deleting a job, see audex_store.h.
 *
 * A deletion is a recorded state, not one call: the job turns "deleting"
 * first, so that a reader never finds it "done" while its MP3 goes; then
 * the MP3 and the video leave GridFS, then the job document.  A step
 * interrupted (a backend timeout, a crash) leaves the job "deleting", and
 * the next caller that meets it (a DELETE, a GET, a converter handed the
 * job again) runs the whole sequence again: each step removes what is
 * still there and finds the rest gone.
 */

#include "audex_store.h"


static int audex_store_job_mark(mongoc_collection_t *jobs,
    const char *job_id, bson_error_t *error);
static int audex_store_job_files(mongoc_database_t *db, const bson_t *job,
    bson_error_t *error);


int
audex_store_job_state_is(const bson_t *job, const char *state)
{
    bson_iter_t  it;

    return bson_iter_init_find(&it, job, AUDEX_F_STATE)
           && BSON_ITER_HOLDS_UTF8(&it)
           && strcmp(bson_iter_utf8(&it, NULL), state) == 0;
}


int
audex_store_job_delete(mongoc_database_t *db, const bson_t *job,
    bson_error_t *error)
{
    int                   rc;
    bson_iter_t           it;
    const char           *job_id;
    mongoc_collection_t  *jobs;

    if (!bson_iter_init_find(&it, job, "_id") || !BSON_ITER_HOLDS_UTF8(&it)) {
        bson_set_error(error, 0, 0, "a job document without a string _id");
        return -1;
    }

    job_id = bson_iter_utf8(&it, NULL);

    jobs = mongoc_database_get_collection(db, AUDEX_COLL_JOBS);

    rc = audex_store_job_mark(jobs, job_id, error);

    if (rc == 1) {
        rc = audex_store_job_files(db, job, error);
    }

    if (rc == 0) {
        rc = audex_store_job_remove(jobs, job_id, error) == 0 ? 1 : -1;

    } else if (rc == 2) {
        rc = 0;
    }

    mongoc_collection_destroy(jobs);

    return rc;
}


/*
 * Turns a finished job deleting: 1 when it is (or was already), 2 when
 * it is not finished or is gone, -1 on error.  The filter on the state
 * keeps a job a converter took back (queued again) out of it.
 */

static int
audex_store_job_mark(mongoc_collection_t *jobs, const char *job_id,
    bson_error_t *error)
{
    int              ok;
    bson_t          *filter, *update, reply;
    int64_t          now;
    bson_iter_t      it;
    struct timeval   tv;

    bson_gettimeofday(&tv);
    now = (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;

    filter = BCON_NEW("_id", BCON_UTF8(job_id),
                      AUDEX_F_STATE, "{", "$in", "[",
                          BCON_UTF8(AUDEX_JOB_STATE_DONE),
                          BCON_UTF8(AUDEX_JOB_STATE_FAILED),
                          BCON_UTF8(AUDEX_JOB_STATE_DELETING),
                      "]", "}");
    update = BCON_NEW("$set", "{",
                          AUDEX_F_STATE, BCON_UTF8(AUDEX_JOB_STATE_DELETING),
                          AUDEX_F_UPDATED_AT,
                              BCON_DATE_TIME(now),
                      "}");

    ok = mongoc_collection_update_one(jobs, filter, update, NULL, &reply,
                                      error);

    bson_destroy(update);
    bson_destroy(filter);

    if (!ok) {
        bson_destroy(&reply);
        return -1;
    }

    ok = bson_iter_init_find(&it, &reply, "matchedCount")
         && bson_iter_as_int64(&it) > 0;

    bson_destroy(&reply);

    return ok ? 1 : 2;
}


int
audex_store_job_file(const bson_t *job, const char *name, bson_oid_t *oid)
{
    bson_iter_t  it;

    if (!bson_iter_init_find(&it, job, name)) {
        return -1;
    }

    if (BSON_ITER_HOLDS_OID(&it)) {
        bson_oid_copy(bson_iter_oid(&it), oid);
        return 0;
    }

    if (BSON_ITER_HOLDS_UTF8(&it)
        && bson_oid_is_valid(bson_iter_utf8(&it, NULL), 24))
    {
        bson_oid_init_from_string(oid, bson_iter_utf8(&it, NULL));
        return 0;
    }

    return -1;
}


/* the job's MP3, then its video; 0 or -1 */

static int
audex_store_job_files(mongoc_database_t *db, const bson_t *job,
    bson_error_t *error)
{
    int                   rc;
    bson_oid_t            oid;
    unsigned              i;
    mongoc_collection_t  *files, *chunks;
    static const char    *fields[] = { AUDEX_F_MP3_FID, AUDEX_F_VIDEO_FID };
    static const char    *buckets[][2] = {
        { AUDEX_MP3S_FILES, AUDEX_MP3S_CHUNKS },
        { AUDEX_VIDEOS_FILES, AUDEX_VIDEOS_CHUNKS }
    };

    for (i = 0; i < 2; i++) {
        if (audex_store_job_file(job, fields[i], &oid) != 0) {
            continue;
        }

        files = mongoc_database_get_collection(db, buckets[i][0]);
        chunks = mongoc_database_get_collection(db, buckets[i][1]);

        rc = audex_store_file_delete(files, chunks, &oid, error);

        mongoc_collection_destroy(chunks);
        mongoc_collection_destroy(files);

        if (rc != 0) {
            return -1;
        }
    }

    return 0;
}
