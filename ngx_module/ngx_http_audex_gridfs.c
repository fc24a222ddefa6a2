/*
 * The GridFS writer, thread side: one chunk at a time as an upload
 * streams in, then the files document that makes the file visible, or
 * the removal of everything written when the upload fails.
 *
 * The layout is the GridFS specification's, in the "videos" bucket, so
 * any driver reads the file back (pymongo's GridFSBucket in the tests):
 * chunks {_id, files_id, n, data} of AUDEX_GRIDFS_CHUNK bytes but the
 * last, and a files document {_id, length, chunkSize, uploadDate,
 * filename, contentType, metadata}.  Readers ignore a file until its
 * files document exists, which is why it is written last.  Chunks, the
 * files document and removal go through the store layer
 * (store/audex_store.h), which derives each chunk's _id from (files_id, n).
 *
 * Everything here runs in a pool thread with a client the caller popped.
 */


#include "ngx_http_audex_module.h"


static void ngx_http_audex_gridfs_error(char *err, const char *what,
    bson_error_t *error);


/* set once this worker process has made the indexes */
static ngx_atomic_t  ngx_http_audex_gridfs_indexed;


/*
 * The indexes the specification asks writers to make: reading a file in
 * order needs {files_id, n}, and its uniqueness catches a chunk written
 * twice.  Made once per worker process; making an existing index again
 * is a no-op on the server, so two threads racing here do no harm.
 */

ngx_int_t
ngx_http_audex_gridfs_indexes(mongoc_client_t *client, const char *db,
    char *err)
{
    ngx_int_t             rc;
    bson_error_t          error;
    mongoc_database_t    *database;

    if (ngx_http_audex_gridfs_indexed) {
        return NGX_OK;
    }

    database = mongoc_client_get_database(client, db);
    rc = NGX_OK;

    if (audex_store_bucket_indexes(database, AUDEX_BUCKET_VIDEOS, &error)
        != 0)
    {
        ngx_http_audex_gridfs_error(err, "creating the bucket's indexes",
                                    &error);
        rc = NGX_ERROR;
    }

    mongoc_database_destroy(database);

    if (rc == NGX_OK) {
        (void) ngx_atomic_cmp_set(&ngx_http_audex_gridfs_indexed, 0, 1);
    }

    return rc;
}


/* Stores data as chunk number file->n; counts it in file on success. */

ngx_int_t
ngx_http_audex_gridfs_put_chunk(mongoc_client_t *client, const char *db,
    ngx_http_audex_gridfs_file_t *file, const u_char *data, size_t len,
    char *err)
{
    ngx_int_t             rc;
    bson_error_t          error;
    mongoc_collection_t  *chunks;

    chunks = mongoc_client_get_collection(client, db, AUDEX_VIDEOS_CHUNKS);
    rc = NGX_OK;

    if (audex_store_chunk_put(chunks, &file->id, file->n, data,
                              (uint32_t) len, &error)
        != 0)
    {
        ngx_http_audex_gridfs_error(err, "storing a chunk", &error);
        rc = NGX_ERROR;

    } else {
        file->n++;
        file->length += len;
    }

    mongoc_collection_destroy(chunks);

    return rc;
}


/* The files document, written once every chunk is stored. */

ngx_int_t
ngx_http_audex_gridfs_put_file(mongoc_client_t *client, const char *db,
    ngx_http_audex_gridfs_file_t *file, char *err)
{
    bson_t               *meta;
    ngx_int_t             rc;
    bson_error_t          error;
    mongoc_collection_t  *files;

    meta = BCON_NEW(AUDEX_F_OWNER_ID, BCON_UTF8(file->owner_id),
                    AUDEX_F_OWNER_EMAIL, BCON_UTF8(file->owner_email),
                    "content_type", BCON_UTF8(file->content_type),
                    "format", BCON_UTF8(file->format));

    files = mongoc_client_get_collection(client, db, AUDEX_VIDEOS_FILES);
    rc = NGX_OK;

    if (audex_store_file_put(files, &file->id, file->length, file->filename,
                             file->content_type, meta, file->sha256, &error)
        != 0)
    {
        ngx_http_audex_gridfs_error(err, "storing the files document",
                                    &error);
        rc = NGX_ERROR;
    }

    mongoc_collection_destroy(files);
    bson_destroy(meta);

    return rc;
}


/*
 * Removes the files document, then the chunks (store layer): a reader
 * never sees a file whose chunks are gone, and a retry finishes what an
 * interrupted removal left.
 */

ngx_int_t
ngx_http_audex_gridfs_remove(mongoc_client_t *client, const char *db,
    ngx_http_audex_gridfs_file_t *file, char *err)
{
    ngx_int_t             rc;
    bson_error_t          error;
    mongoc_collection_t  *files, *chunks;

    files = mongoc_client_get_collection(client, db, AUDEX_VIDEOS_FILES);
    chunks = mongoc_client_get_collection(client, db, AUDEX_VIDEOS_CHUNKS);
    rc = NGX_OK;

    if (audex_store_file_delete(files, chunks, &file->id, &error) != 0) {
        ngx_http_audex_gridfs_error(err, "removing the file", &error);
        rc = NGX_ERROR;
    }

    mongoc_collection_destroy(chunks);
    mongoc_collection_destroy(files);

    return rc;
}


/*
 * The record of a file being written (store layer, AUDEX_COLL_UPLOADS):
 * made before its first chunk (BEGIN), refreshed every
 * NGX_HTTP_AUDEX_GRIDFS_TOUCH_EVERY chunks (TOUCH) so that a long upload
 * is not taken for dead, removed once it is complete or removed again
 * (END).  What a crash or a failed clean-up leaves, the sweeper finds.
 */

ngx_int_t
ngx_http_audex_gridfs_record(mongoc_client_t *client, const char *db,
    ngx_http_audex_gridfs_file_t *file, ngx_uint_t begin, char *err)
{
    int                   rc;
    bson_error_t          error;
    mongoc_collection_t  *uploads;

    uploads = mongoc_client_get_collection(client, db, AUDEX_COLL_UPLOADS);

    rc = (begin == NGX_HTTP_AUDEX_GRIDFS_BEGIN)
         ? audex_store_upload_begin(uploads, &file->id, AUDEX_BUCKET_VIDEOS,
                                    &error)
         : (begin == NGX_HTTP_AUDEX_GRIDFS_TOUCH)
         ? audex_store_upload_touch(uploads, &file->id, AUDEX_BUCKET_VIDEOS,
                                    &error)
         : audex_store_upload_end(uploads, &file->id, &error);

    mongoc_collection_destroy(uploads);

    if (rc != 0) {
        ngx_http_audex_gridfs_error(err,
                                    (begin == NGX_HTTP_AUDEX_GRIDFS_END)
                                    ? "ending its record"
                                    : "recording the upload", &error);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_audex_gridfs_error(char *err, const char *what, bson_error_t *error)
{
    u_char  *p;

    p = ngx_snprintf((u_char *) err, NGX_HTTP_AUDEX_ERRLEN - 1, "%s: %s",
                     what, error->message);
    *p = '\0';
}
