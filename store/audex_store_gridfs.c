/*
 * audex store: GridFS chunks and files, see audex_store.h.
 *
 * Every query here is a filter on _id alone where it can be: that is
 * the one filter FerretDB's SQLite backend pushes down (and, patched by
 * scripts/ferretdb/sqlite-id-index.patch, answers from an index), so the
 * cost of a call does not grow with what else is stored.  The only
 * queries on other fields are the fallbacks for files another tool
 * wrote, whose chunk ids we cannot know.
 */

#include <string.h>
#include <sys/time.h>

#include <openssl/evp.h>

#include "audex_store.h"


/* derived ids probed per round trip when no files document says how many */
#define AUDEX_STORE_PROBE  64

/* the server's code for a duplicate key */
#define AUDEX_STORE_DUPLICATE_KEY  11000


static int audex_store_chunk_same(mongoc_collection_t *chunks,
    const bson_oid_t *id, const uint8_t *data, uint32_t len,
    bson_error_t *error);
static ssize_t audex_store_chunk_find(mongoc_collection_t *chunks,
    const bson_t *filter, uint8_t *buf, size_t cap, bson_error_t *error);
static int64_t audex_store_delete_ids(mongoc_collection_t *chunks,
    const bson_oid_t *files_id, int64_t from, int64_t to,
    bson_error_t *error);
static int audex_store_index(mongoc_database_t *db, const char *bucket,
    const char *part, const bson_t *index, bson_error_t *error);


void
audex_store_chunk_id(const bson_oid_t *files_id, int32_t n, bson_oid_t *id)
{
    uint8_t       in[16], md[EVP_MAX_MD_SIZE];
    unsigned int  mdlen;

    memcpy(in, files_id->bytes, 12);
    in[12] = (uint8_t) ((uint32_t) n >> 24);
    in[13] = (uint8_t) ((uint32_t) n >> 16);
    in[14] = (uint8_t) ((uint32_t) n >> 8);
    in[15] = (uint8_t) n;

    /* SHA-256 cannot fail on a 16-byte input with the default provider */
    (void) EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha256(), NULL);

    memcpy(id->bytes, md, 12);
}


int
audex_store_chunk_put(mongoc_collection_t *chunks, const bson_oid_t *files_id,
    int32_t n, const uint8_t *data, uint32_t len, bson_error_t *error)
{
    int         ok;
    bson_t      doc;
    bson_oid_t  id;

    audex_store_chunk_id(files_id, n, &id);

    bson_init(&doc);

    if (!BSON_APPEND_OID(&doc, "_id", &id)
        || !BSON_APPEND_OID(&doc, "files_id", files_id)
        || !BSON_APPEND_INT32(&doc, "n", n)
        || !BSON_APPEND_BINARY(&doc, "data", BSON_SUBTYPE_BINARY, data, len))
    {
        bson_destroy(&doc);
        bson_set_error(error, MONGOC_ERROR_BSON, MONGOC_ERROR_BSON_INVALID,
                       "chunk %d does not fit in a document", (int) n);
        return -1;
    }

    ok = (audex_store_insert(chunks, &doc, error) == 0);
    bson_destroy(&doc);

    if (ok) {
        return 0;
    }

    /*
     * A retried insert whose first reply was lost finds its own chunk:
     * that is success.  Another chunk under the id is a conflict.
     */
    if (error->code == AUDEX_STORE_DUPLICATE_KEY) {
        return audex_store_chunk_same(chunks, &id, data, len, error);
    }

    return -1;
}


int
audex_store_chunk_replace(mongoc_collection_t *chunks,
    const bson_oid_t *files_id, int32_t n, const uint8_t *data, uint32_t len,
    bson_error_t *error)
{
    int         ok, tries;
    bson_t      doc, filter, opts;
    bson_oid_t  id;

    audex_store_chunk_id(files_id, n, &id);

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", &id);

    bson_init(&opts);
    BSON_APPEND_BOOL(&opts, "upsert", true);

    bson_init(&doc);
    BSON_APPEND_OID(&doc, "_id", &id);
    BSON_APPEND_OID(&doc, "files_id", files_id);
    BSON_APPEND_INT32(&doc, "n", n);

    ok = BSON_APPEND_BINARY(&doc, "data", BSON_SUBTYPE_BINARY, data, len);

    if (!ok) {
        bson_set_error(error, MONGOC_ERROR_BSON, MONGOC_ERROR_BSON_INVALID,
                       "chunk %d does not fit in a document", (int) n);
    }

    tries = 0;

    while (ok) {
        ok = mongoc_collection_replace_one(chunks, &filter, &doc, &opts,
                                           NULL, error);
        if (ok || !audex_store_busy_wait(error, &tries)) {
            break;
        }

        ok = 1;
    }

    bson_destroy(&doc);
    bson_destroy(&opts);
    bson_destroy(&filter);

    return ok ? 0 : -1;
}


static int
audex_store_chunk_same(mongoc_collection_t *chunks, const bson_oid_t *id,
    const uint8_t *data, uint32_t len, bson_error_t *error)
{
    ssize_t   got;
    bson_t    filter;
    uint8_t  *buf;

    buf = bson_malloc(len + 1);

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", id);
    got = audex_store_chunk_find(chunks, &filter, buf, len + 1, error);
    bson_destroy(&filter);

    if (got == (ssize_t) len && memcmp(buf, data, len) == 0) {
        bson_free(buf);
        return 0;
    }

    bson_free(buf);

    if (got != AUDEX_STORE_ERROR) {
        bson_set_error(error, MONGOC_ERROR_COLLECTION,
                       AUDEX_STORE_DUPLICATE_KEY,
                       "another chunk is stored under this chunk's _id");
    }

    return -1;
}


ssize_t
audex_store_chunk_get_own(mongoc_collection_t *chunks,
    const bson_oid_t *files_id, int32_t n, uint8_t *buf, size_t cap,
    bson_error_t *error)
{
    bson_t      filter;
    ssize_t     got;
    bson_oid_t  id;

    audex_store_chunk_id(files_id, n, &id);

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", &id);
    got = audex_store_chunk_find(chunks, &filter, buf, cap, error);
    bson_destroy(&filter);

    return got;
}


ssize_t
audex_store_chunk_get(mongoc_collection_t *chunks, const bson_oid_t *files_id,
    int32_t n, uint8_t *buf, size_t cap, bson_error_t *error)
{
    bson_t   filter;
    ssize_t  got;

    got = audex_store_chunk_get_own(chunks, files_id, n, buf, cap, error);

    if (got != AUDEX_STORE_MISSING) {
        return got;
    }

    /* a file another tool wrote: the specification's query */
    bson_init(&filter);
    BSON_APPEND_OID(&filter, "files_id", files_id);
    BSON_APPEND_INT32(&filter, "n", n);
    got = audex_store_chunk_find(chunks, &filter, buf, cap, error);
    bson_destroy(&filter);

    return got;
}


static ssize_t
audex_store_chunk_find(mongoc_collection_t *chunks, const bson_t *filter,
    uint8_t *buf, size_t cap, bson_error_t *error)
{
    bson_t           opts;
    ssize_t          rc;
    uint32_t         len;
    bson_iter_t      it;
    const bson_t    *doc;
    const uint8_t   *data;
    bson_subtype_t   subtype;
    mongoc_cursor_t *cursor;

    bson_init(&opts);
    BSON_APPEND_INT64(&opts, "limit", 1);
    cursor = mongoc_collection_find_with_opts(chunks, filter, &opts, NULL);
    bson_destroy(&opts);

    if (!mongoc_cursor_next(cursor, &doc)) {
        rc = mongoc_cursor_error(cursor, error) ? AUDEX_STORE_ERROR
                                                : AUDEX_STORE_MISSING;
        mongoc_cursor_destroy(cursor);
        return rc;
    }

    rc = AUDEX_STORE_CORRUPT;

    if (bson_iter_init_find(&it, doc, "data") && BSON_ITER_HOLDS_BINARY(&it)) {
        bson_iter_binary(&it, &subtype, &len, &data);

        if (len <= cap) {
            memcpy(buf, data, len);
            rc = len;
        }
    }

    mongoc_cursor_destroy(cursor);

    return rc;
}


int
audex_store_file_put(mongoc_collection_t *files, const bson_oid_t *files_id,
    int64_t length, const char *filename, const char *content_type,
    const bson_t *metadata, const char *sha256, bson_error_t *error)
{
    int             rc;
    bson_t          doc, meta;
    struct timeval  tv;

    gettimeofday(&tv, NULL);

    bson_init(&doc);
    BSON_APPEND_OID(&doc, "_id", files_id);
    BSON_APPEND_INT64(&doc, "length", length);
    BSON_APPEND_INT32(&doc, "chunkSize", AUDEX_GRIDFS_CHUNK);
    BSON_APPEND_DATE_TIME(&doc, "uploadDate",
                          (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000);
    BSON_APPEND_UTF8(&doc, "filename", filename);

    if (content_type) {
        BSON_APPEND_UTF8(&doc, "contentType", content_type);
    }

    BSON_APPEND_DOCUMENT_BEGIN(&doc, "metadata", &meta);

    if (metadata) {
        bson_concat(&meta, metadata);
    }

    BSON_APPEND_UTF8(&meta, AUDEX_F_SHA256, sha256);
    bson_append_document_end(&doc, &meta);

    rc = audex_store_insert(files, &doc, error);
    bson_destroy(&doc);

    return rc;
}


int
audex_store_file_delete(mongoc_collection_t *files,
    mongoc_collection_t *chunks, const bson_oid_t *files_id,
    bson_error_t *error)
{
    int              ok, tries;
    bson_t           filter;
    int64_t          length, chunk_size, count, gone;
    const bson_t    *doc;
    mongoc_cursor_t *cursor;

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", files_id);

    cursor = mongoc_collection_find_with_opts(files, &filter, NULL, NULL);
    count = -1;

    if (mongoc_cursor_next(cursor, &doc)
        && audex_store_file_geometry(doc, &length, &chunk_size) == 0)
    {
        count = (length + chunk_size - 1) / chunk_size;
    }

    if (mongoc_cursor_error(cursor, error)
        || audex_store_delete(files, &filter, error) != 0)
    {
        mongoc_cursor_destroy(cursor);
        bson_destroy(&filter);
        return -1;
    }

    mongoc_cursor_destroy(cursor);
    bson_destroy(&filter);

    if (count >= 0) {
        gone = audex_store_delete_ids(chunks, files_id, 0, count, error);
        if (gone < 0) {
            return -1;
        }

        if (gone == count) {
            return 0;
        }

        /*
         * Fewer than the files document promised: another tool's file,
         * whose chunk ids are its own, or a damaged one.  Only here does
         * a delete filter on files_id.
         */
        bson_init(&filter);
        BSON_APPEND_OID(&filter, "files_id", files_id);

        tries = 0;

        do {
            ok = mongoc_collection_delete_many(chunks, &filter, NULL, NULL,
                                               error);
        } while (!ok && audex_store_busy_wait(error, &tries));

        if (!ok) {
            bson_destroy(&filter);
            return -1;
        }

        bson_destroy(&filter);
        return 0;
    }

    return audex_store_chunks_delete(chunks, files_id, error);
}


/*
 * No files document: an upload or a conversion that did not finish, or a
 * removal cut short after its first step.  Chunks are written in order
 * (the converter keeps chunk 0 to the end), so removing batches of ids
 * until one removes nothing finds them all.
 */

int
audex_store_chunks_delete(mongoc_collection_t *chunks,
    const bson_oid_t *files_id, bson_error_t *error)
{
    int64_t  from, gone;

    for (from = 0; from < INT32_MAX; from += AUDEX_STORE_PROBE) {
        gone = audex_store_delete_ids(chunks, files_id, from,
                                      from + AUDEX_STORE_PROBE, error);
        if (gone < 0) {
            return -1;
        }

        if (gone == 0) {
            break;
        }
    }

    return 0;
}


/* removes chunks [from, to) by their derived ids; how many were there */

static int64_t
audex_store_delete_ids(mongoc_collection_t *chunks, const bson_oid_t *files_id,
    int64_t from, int64_t to, bson_error_t *error)
{
    int                        tries;
    bson_t                     filter, reply;
    int64_t                    n, gone;
    bson_iter_t                it;
    bson_oid_t                 id;
    mongoc_bulk_operation_t   *bulk;

    gone = 0;
    tries = 0;

    while (from < to) {
        bulk = mongoc_collection_create_bulk_operation_with_opts(chunks, NULL);

        for (n = from; n < to && n < from + AUDEX_STORE_PROBE; n++) {
            audex_store_chunk_id(files_id, (int32_t) n, &id);
            bson_init(&filter);
            BSON_APPEND_OID(&filter, "_id", &id);
            mongoc_bulk_operation_remove_one(bulk, &filter);
            bson_destroy(&filter);
        }

        if (!mongoc_bulk_operation_execute(bulk, &reply, error)) {
            bson_destroy(&reply);
            mongoc_bulk_operation_destroy(bulk);

            if (audex_store_busy_wait(error, &tries)) {
                continue;               /* this batch again */
            }

            return -1;
        }

        if (bson_iter_init_find(&it, &reply, "nRemoved")) {
            gone += bson_iter_as_int64(&it);
        }

        bson_destroy(&reply);
        mongoc_bulk_operation_destroy(bulk);
        from = n;
    }

    return gone;
}


int
audex_store_file_geometry(const bson_t *doc, int64_t *length,
    int64_t *chunk_size)
{
    bson_iter_t  it;

    if (!bson_iter_init_find(&it, doc, "length")
        || !BSON_ITER_HOLDS_NUMBER(&it))
    {
        return -1;
    }

    *length = bson_iter_as_int64(&it);

    if (!bson_iter_init_find(&it, doc, "chunkSize")
        || !BSON_ITER_HOLDS_NUMBER(&it))
    {
        return -1;
    }

    *chunk_size = bson_iter_as_int64(&it);

    if (*length < 0 || *chunk_size <= 0
        || *chunk_size > AUDEX_GRIDFS_CHUNK_MAX)
    {
        return -1;
    }

    return 0;
}


/*
 * The indexes the GridFS specification asks writers to make, so that
 * drivers that read by {files_id, n} and list by filename are served.
 * Making an existing index again is a no-op on the server.
 */

int
audex_store_bucket_indexes(mongoc_database_t *db, const char *bucket,
    bson_error_t *error)
{
    int      rc;
    bson_t  *index;

    index = BCON_NEW("key", "{", "files_id", BCON_INT32(1),
                                 "n", BCON_INT32(1), "}",
                     "name", BCON_UTF8(AUDEX_GRIDFS_CHUNK_INDEX),
                     "unique", BCON_BOOL(true));
    rc = audex_store_index(db, bucket, "chunks", index, error);
    bson_destroy(index);

    if (rc != 0) {
        return -1;
    }

    index = BCON_NEW("key", "{", "filename", BCON_INT32(1),
                                 "uploadDate", BCON_INT32(1), "}",
                     "name", BCON_UTF8("filename_1_uploadDate_1"));
    rc = audex_store_index(db, bucket, "files", index, error);
    bson_destroy(index);

    return rc;
}


static int
audex_store_index(mongoc_database_t *db, const char *bucket,
    const char *part, const bson_t *index, bson_error_t *error)
{
    int     ok;
    char    name[128];
    bson_t  cmd, indexes;

    bson_snprintf(name, sizeof(name), "%s.%s", bucket, part);

    bson_init(&cmd);
    BSON_APPEND_UTF8(&cmd, "createIndexes", name);
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &indexes);
    BSON_APPEND_DOCUMENT(&indexes, "0", index);
    bson_append_array_end(&cmd, &indexes);

    ok = mongoc_database_write_command_with_opts(db, &cmd, NULL, NULL, error);
    bson_destroy(&cmd);

    return ok ? 0 : -1;
}


int
audex_store_upload_begin(mongoc_collection_t *uploads,
    const bson_oid_t *files_id, const char *bucket, bson_error_t *error)
{
    int             rc;
    bson_t          doc;
    struct timeval  tv;

    gettimeofday(&tv, NULL);

    bson_init(&doc);
    BSON_APPEND_OID(&doc, "_id", files_id);
    BSON_APPEND_UTF8(&doc, AUDEX_F_BUCKET, bucket);
    BSON_APPEND_DATE_TIME(&doc, AUDEX_F_ACTIVE_AT,
                          (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000);

    rc = audex_store_insert(uploads, &doc, error);
    bson_destroy(&doc);

    /* the record of a retried first chunk is there already */
    return (rc == 0 || error->code == AUDEX_STORE_DUPLICATE_KEY) ? 0 : -1;
}


int
audex_store_upload_touch(mongoc_collection_t *uploads,
    const bson_oid_t *files_id, const char *bucket, bson_error_t *error)
{
    int             ok, tries;
    bson_t         *filter, *update, opts;
    struct timeval  tv;

    gettimeofday(&tv, NULL);

    filter = BCON_NEW("_id", BCON_OID(files_id));
    update = BCON_NEW("$set", "{",
                          AUDEX_F_BUCKET, BCON_UTF8(bucket),
                          AUDEX_F_ACTIVE_AT, BCON_DATE_TIME(
                              (int64_t) tv.tv_sec * 1000
                              + tv.tv_usec / 1000),
                      "}");

    bson_init(&opts);
    BSON_APPEND_BOOL(&opts, "upsert", true);

    tries = 0;

    do {
        ok = mongoc_collection_update_one(uploads, filter, update, &opts,
                                          NULL, error);
    } while (!ok && audex_store_busy_wait(error, &tries));

    bson_destroy(&opts);
    bson_destroy(update);
    bson_destroy(filter);

    return ok ? 0 : -1;
}


int
audex_store_upload_end(mongoc_collection_t *uploads,
    const bson_oid_t *files_id, bson_error_t *error)
{
    int     rc;
    bson_t  filter;

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", files_id);
    rc = audex_store_delete(uploads, &filter, error);
    bson_destroy(&filter);

    return rc;
}


int
audex_store_upload_sweep(mongoc_database_t *db, int64_t older_than,
    audex_store_swept_t *swept, bson_error_t *error)
{
    int                   rc, resumable;
    char                  name[128];
    bson_t               *filter, *doc;
    bson_oid_t            id;
    bson_iter_t           it;
    const char           *bucket;
    const bson_t         *rec;
    mongoc_cursor_t      *cursor;
    mongoc_collection_t  *uploads, *files, *chunks, *tus;

    uploads = mongoc_database_get_collection(db, AUDEX_COLL_UPLOADS);
    tus = mongoc_database_get_collection(db, AUDEX_COLL_TUS);
    filter = BCON_NEW(AUDEX_F_ACTIVE_AT, "{",
                          "$lt", BCON_DATE_TIME(older_than), "}");
    cursor = mongoc_collection_find_with_opts(uploads, filter, NULL, NULL);
    bson_destroy(filter);

    rc = 0;

    while (rc == 0 && mongoc_cursor_next(cursor, &rec)) {

        if (!bson_iter_init_find(&it, rec, "_id") || !BSON_ITER_HOLDS_OID(&it))
        {
            continue;                   /* not one of ours */
        }

        bson_oid_copy(bson_iter_oid(&it), &id);

        bucket = AUDEX_BUCKET_VIDEOS;
        if (bson_iter_init_find(&it, rec, AUDEX_F_BUCKET)
            && BSON_ITER_HOLDS_UTF8(&it))
        {
            bucket = bson_iter_utf8(&it, NULL);
        }

        snprintf(name, sizeof(name), "%s.files", bucket);
        files = mongoc_database_get_collection(db, name);
        snprintf(name, sizeof(name), "%s.chunks", bucket);
        chunks = mongoc_database_get_collection(db, name);

        filter = BCON_NEW("_id", BCON_OID(&id));
        rc = audex_store_find_one(files, filter, &doc, error);
        bson_destroy(filter);

        if (rc == 0) {
            /*
             * no files document: the file never became whole.  Only its
             * chunks go (a files document written meanwhile, by an upload
             * silent for the whole grace that ends now, is never
             * removed), and its tus state, when it has one
             */
            resumable = audex_store_tus_get(tus, &id, &doc, error);

            if (resumable == 1) {
                bson_destroy(doc);
            }

            if (resumable < 0
                || audex_store_chunks_delete(chunks, &id, error) != 0
                || (resumable
                    && audex_store_tus_delete(tus, &id, error) != 0))
            {
                rc = -1;

            } else if (resumable) {
                swept->tus++;

            } else {
                swept->uploads++;
            }

        } else if (rc == 1) {
            bson_destroy(doc);
            rc = 0;
        }

        mongoc_collection_destroy(chunks);
        mongoc_collection_destroy(files);

        if (rc == 0 && audex_store_upload_end(uploads, &id, error) != 0) {
            rc = -1;
        }
    }

    if (rc == 0 && mongoc_cursor_error(cursor, error)) {
        rc = -1;
    }

    /* the state of resumable uploads that ended, or expired, long ago */

    filter = BCON_NEW(AUDEX_F_TUS_EXPIRES_AT, "{",
                          "$lt", BCON_DATE_TIME(older_than), "}");

    if (rc == 0
        && !mongoc_collection_delete_many(tus, filter, NULL, NULL, error))
    {
        rc = -1;
    }

    bson_destroy(filter);
    mongoc_cursor_destroy(cursor);
    mongoc_collection_destroy(tus);
    mongoc_collection_destroy(uploads);

    return rc;
}
