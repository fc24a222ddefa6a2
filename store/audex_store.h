/*
 * audex store: the one blocking layer over MongoDB that the nginx
 * module's thread-pool tasks and every worker call: GridFS chunks and
 * files (audex_store_gridfs.c), job and user documents
 * (audex_store_docs.c).  No nginx types, no event loop: each call may
 * block, so the module calls it from a pool thread only.
 *
 * GridFS chunks are addressed by an _id derived from (files_id, n), see
 * lib/audex_schema.h, because a lookup by _id is the one query every
 * MongoDB-wire server answers from an index; the GridFS fields and the
 * files_id_1_n_1 index stay, so any driver reads what audex writes.
 */

#ifndef _AUDEX_STORE_H_INCLUDED_
#define _AUDEX_STORE_H_INCLUDED_


#include <stdint.h>
#include <sys/types.h>
#include <mongoc/mongoc.h>

#include "audex_schema.h"


/* what audex_store_chunk_get returns besides a length */
#define AUDEX_STORE_ERROR     -1        /* server or network; see error */
#define AUDEX_STORE_MISSING   -2        /* no such chunk */
#define AUDEX_STORE_CORRUPT   -3        /* no data, or more than fits */


/*
 * Every write here is tried again while the embedded FerretDB answers
 * that SQLite's database is locked (audex_store_busy.c): up to this many
 * tries, 100 ms apart and doubling (at most 2 s), on top of FerretDB's
 * own wait for the lock.
 */
#define AUDEX_STORE_BUSY_TRIES  6

/*
 * 1 after a pause when error says the database was locked and tries
 * (counted here, start at 0) remain: the caller writes again; else 0.
 */
int audex_store_busy_wait(const bson_error_t *error, int *tries);

/* insert_one and delete_one, tried again so; 0, or -1 with error set */
int audex_store_insert(mongoc_collection_t *coll, const bson_t *doc,
    bson_error_t *error);
int audex_store_delete(mongoc_collection_t *coll, const bson_t *filter,
    bson_error_t *error);


/* the _id of chunk n of file files_id */
void audex_store_chunk_id(const bson_oid_t *files_id, int32_t n,
    bson_oid_t *id);

/*
 * Stores chunk n.  0 on success, also when the same chunk is stored
 * already (a retried insert whose first reply was lost); -1 with error
 * set otherwise, a different chunk under that _id included.
 */
int audex_store_chunk_put(mongoc_collection_t *chunks,
    const bson_oid_t *files_id, int32_t n, const uint8_t *data,
    uint32_t len, bson_error_t *error);

/*
 * Stores chunk n, replacing whatever is under its _id: for a file whose
 * chunks past its durable end may be written again with other bytes (a
 * resumable upload, after a PATCH that was refused or cut).  0 or -1.
 */
int audex_store_chunk_replace(mongoc_collection_t *chunks,
    const bson_oid_t *files_id, int32_t n, const uint8_t *data,
    uint32_t len, bson_error_t *error);

/*
 * Reads chunk n into buf (cap bytes): by its derived _id, else (a file
 * another tool wrote) by the specification's {files_id, n}.  Returns its
 * length or one of AUDEX_STORE_ERROR (error set), _MISSING, _CORRUPT.
 */
ssize_t audex_store_chunk_get(mongoc_collection_t *chunks,
    const bson_oid_t *files_id, int32_t n, uint8_t *buf, size_t cap,
    bson_error_t *error);

/*
 * The same by the derived _id only (a file audex writes): one lookup by
 * _id, also when the chunk is missing.
 */
ssize_t audex_store_chunk_get_own(mongoc_collection_t *chunks,
    const bson_oid_t *files_id, int32_t n, uint8_t *buf, size_t cap,
    bson_error_t *error);

/*
 * Makes a file visible: its files document, written once every chunk is
 * stored, as the GridFS specification lays it out ({_id, length,
 * chunkSize, uploadDate (now), filename, contentType when given,
 * metadata}).  metadata's fields are copied, then sha256 (hex) is added
 * as AUDEX_F_SHA256.  0, or -1 with error set.
 */
int audex_store_file_put(mongoc_collection_t *files,
    const bson_oid_t *files_id, int64_t length, const char *filename,
    const char *content_type, const bson_t *metadata, const char *sha256,
    bson_error_t *error);

/*
 * A file being written: recorded before its first chunk (begin), the
 * record removed once the file is complete or removed again (end), so
 * that what a crash or a failed clean-up left is found by
 * audex_store_upload_sweep().  0, or -1 with error set.
 */
int audex_store_upload_begin(mongoc_collection_t *uploads,
    const bson_oid_t *files_id, const char *bucket, bson_error_t *error);
int audex_store_upload_end(mongoc_collection_t *uploads,
    const bson_oid_t *files_id, bson_error_t *error);

/* the chunks of a file that has no files document (the probe of
 * audex_store_file_delete), never a files document; 0 or -1 */
int audex_store_chunks_delete(mongoc_collection_t *chunks,
    const bson_oid_t *files_id, bson_error_t *error);

/*
 * A sign of life of a file written over a long time (a long upload, a
 * resumable one), its record made or renewed now: active_at is its last
 * activity, so the sweeper removes it only once it has been idle that
 * long.  0 or -1.
 */
int audex_store_upload_touch(mongoc_collection_t *uploads,
    const bson_oid_t *files_id, const char *bucket, bson_error_t *error);

/* what a sweep removed: unfinished files, by how they were written */
typedef struct {
    int64_t    uploads;         /* by one request (POST /upload) */
    int64_t    tus;             /* resumable uploads, with their state */
} audex_store_swept_t;

/*
 * The files recorded and silent since before older_than (ms since the
 * epoch): a complete one (its files document exists: only the record
 * was left) keeps its file; of any other the chunks are removed (never a
 * files document), and its tus state if it was a resumable upload.
 * Then the record goes.  The tus states that expired before older_than
 * go too.  swept counts the files removed (added to, so that it may
 * hold what a sweep removed before an error); 0, or -1 on error.
 */
int audex_store_upload_sweep(mongoc_database_t *db, int64_t older_than,
    audex_store_swept_t *swept, bson_error_t *error);

/*
 * Removes a file: its files document first (readers never see a file
 * losing chunks), then its chunks by _id, in bulk.  Without a files
 * document (an upload that failed) the chunks are found by probing the
 * derived ids; with one whose chunks are not under derived ids (another
 * tool's file) by {files_id}.  Removing what is not there is no error,
 * so a retry finishes what an interrupted call left.  0 or -1.
 */
int audex_store_file_delete(mongoc_collection_t *files,
    mongoc_collection_t *chunks, const bson_oid_t *files_id,
    bson_error_t *error);

/*
 * Makes the indexes the GridFS specification asks writers to make on
 * bucket (files_id_1_n_1, unique; filename_1_uploadDate_1).  0 or -1.
 */
int audex_store_bucket_indexes(mongoc_database_t *db, const char *bucket,
    bson_error_t *error);

/*
 * One document matching filter: 1 with *doc (the caller destroys it),
 * 0 when there is none, -1 with error set.
 */
int audex_store_find_one(mongoc_collection_t *coll, const bson_t *filter,
    bson_t **doc, bson_error_t *error);

/* the job document job_id (its _id); as audex_store_find_one */
int audex_store_job_get(mongoc_collection_t *jobs, const char *job_id,
    bson_t **doc, bson_error_t *error);

/* stores a new job document (its _id is the job id).  0 or -1 */
int audex_store_job_insert(mongoc_collection_t *jobs, const bson_t *doc,
    bson_error_t *error);

/*
 * Applies update ($set and the like) to job job_id, creating it when
 * upsert is set and it does not exist.  0 or -1.
 */
int audex_store_job_update(mongoc_collection_t *jobs, const char *job_id,
    const bson_t *update, int upsert, bson_error_t *error);

/* removes job job_id; one that is not there is no error.  0 or -1 */
int audex_store_job_remove(mongoc_collection_t *jobs, const char *job_id,
    bson_error_t *error);

/*
 * Deletes the finished job job (its document, as read): marks it
 * AUDEX_JOB_STATE_DELETING (only a done, failed or deleting job), removes
 * its MP3 and its video (audex_store_file_delete), then the document.
 * Each step is idempotent, so calling it again for a job left deleting
 * (an interrupted call) finishes the removal.  1 when removed, 0 when
 * the job is not finished (or gone: nothing done), -1 with error set.
 */
int audex_store_job_delete(mongoc_database_t *db, const bson_t *job,
    bson_error_t *error);

/*
 * The file id in a job's field name (mp3_fid, video_fid), stored as an
 * ObjectId or its 24 hex digits: 0 with *oid, -1 when there is none.
 */
int audex_store_job_file(const bson_t *job, const char *name,
    bson_oid_t *oid);

/* whether a job document's state is state */
int audex_store_job_state_is(const bson_t *job, const char *state);

/*
 * The account with this email (audex-user stores it lower-cased); as
 * audex_store_find_one.  Not by _id: see audex_store_docs.c for what that
 * costs on FerretDB.
 */
int audex_store_user_by_email(mongoc_collection_t *users, const char *email,
    bson_t **doc, bson_error_t *error);

/*
 * The account whose _id is id, the sub of its tokens; as
 * audex_store_find_one.  A lookup by _id on every server.
 */
int audex_store_user_by_id(mongoc_collection_t *users, const bson_oid_t *id,
    bson_t **doc, bson_error_t *error);

/*
 * What the user owner_id holds in database db: *jobs, the jobs queued or
 * converting, and *bytes, the length of every video and MP3 whose
 * metadata names the owner.  Counted from the documents at each call,
 * so the count cannot drift from what is stored: on MongoDB indexes on
 * owner_id and metadata.owner_id serve it; FerretDB's SQLite backend
 * pushes down only {_id} and scans the jobs and both files collections.
 * 0, or -1 with error set.
 */
int audex_store_user_usage(mongoc_client_t *client, const char *db,
    const char *owner_id, int64_t *jobs, int64_t *bytes,
    bson_error_t *error);

/*
 * The state of resumable uploads (AUDEX_COLL_TUS, lib/audex_schema.h).
 * create inserts doc; get reads the upload id as audex_store_find_one;
 * lock takes it for a PATCH at offset (the document's offset is offset,
 * no job yet, any lock expired before now), setting token, a lease of
 * AUDEX_TUS_LEASE seconds and expires_at (ms); update applies $set to
 * it, only while token holds it when token is not NULL; delete removes
 * the document, none being no error.  lock with unverified marks the
 * chunks its holder stores as unverified (a checksum is pending).
 * advance applies $set only if the document is still as seen (offset,
 * lock, lock_until, no job): the chunks found past a released or
 * expired lease's offset are made durable so.  lock, update and
 * advance return 1 when done, 0 when the condition did not hold, -1
 * with error set; create and delete 0 or -1.
 */
int audex_store_tus_create(mongoc_collection_t *tus, const bson_t *doc,
    bson_error_t *error);
int audex_store_tus_get(mongoc_collection_t *tus, const bson_oid_t *id,
    bson_t **doc, bson_error_t *error);
typedef struct {
    int64_t       offset;
    const char   *lock;             /* NULL: none */
    int64_t       lock_until;       /* ms */
} audex_store_tus_seen_t;

int audex_store_tus_lock(mongoc_collection_t *tus, const bson_oid_t *id,
    int64_t offset, const char *token, int64_t now, int64_t expires_at,
    int unverified, bson_error_t *error);
int audex_store_tus_advance(mongoc_collection_t *tus, const bson_oid_t *id,
    const audex_store_tus_seen_t *seen, const bson_t *set,
    bson_error_t *error);
int audex_store_tus_update(mongoc_collection_t *tus, const bson_oid_t *id,
    const char *token, const bson_t *set, bson_error_t *error);
int audex_store_tus_delete(mongoc_collection_t *tus, const bson_oid_t *id,
    bson_error_t *error);

/* length and chunk size of a files document; -1 when unusable */
int audex_store_file_geometry(const bson_t *doc, int64_t *length,
    int64_t *chunk_size);


#endif /* _AUDEX_STORE_H_INCLUDED_ */
