/*
 * The GridFS writer, thread side: one chunk at a time as an upload
 * streams in, then the files document that makes the file visible, or
 * the removal of everything written when the upload fails.
 *
 * The layout is the GridFS specification's, in the "videos" bucket, so
 * any driver reads the file back (pymongo's GridFSBucket in the tests):
 * chunks {files_id, n, data} of NGX_HTTP_AUDEX_GRIDFS_CHUNK bytes but
 * the last, and a files document {_id, length, chunkSize, uploadDate,
 * filename, contentType, metadata}.  Readers ignore a file until its
 * files document exists, which is why it is written last.
 *
 * Everything here runs in a pool thread with a client the caller popped.
 */


#include "ngx_http_audex_module.h"


#define NGX_HTTP_AUDEX_GRIDFS_FILES   "videos.files"
#define NGX_HTTP_AUDEX_GRIDFS_CHUNKS  "videos.chunks"


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
    bson_t               *cmd;
    ngx_int_t             rc;
    bson_error_t          error;
    mongoc_database_t    *database;

    if (ngx_http_audex_gridfs_indexed) {
        return NGX_OK;
    }

    database = mongoc_client_get_database(client, db);
    rc = NGX_OK;

    cmd = BCON_NEW("createIndexes", BCON_UTF8(NGX_HTTP_AUDEX_GRIDFS_CHUNKS),
                   "indexes", "[",
                       "{",
                           "key", "{", "files_id", BCON_INT32(1),
                                       "n", BCON_INT32(1), "}",
                           "name", BCON_UTF8("files_id_1_n_1"),
                           "unique", BCON_BOOL(true),
                       "}",
                   "]");

    if (!mongoc_database_write_command_with_opts(database, cmd, NULL, NULL,
                                                 &error))
    {
        ngx_http_audex_gridfs_error(err, "creating the chunks index",
                                    &error);
        rc = NGX_ERROR;
    }

    bson_destroy(cmd);

    if (rc == NGX_OK) {
        cmd = BCON_NEW("createIndexes",
                       BCON_UTF8(NGX_HTTP_AUDEX_GRIDFS_FILES),
                       "indexes", "[",
                           "{",
                               "key", "{", "filename", BCON_INT32(1),
                                           "uploadDate", BCON_INT32(1), "}",
                               "name", BCON_UTF8("filename_1_uploadDate_1"),
                           "}",
                       "]");

        if (!mongoc_database_write_command_with_opts(database, cmd, NULL,
                                                     NULL, &error))
        {
            ngx_http_audex_gridfs_error(err, "creating the files index",
                                        &error);
            rc = NGX_ERROR;
        }

        bson_destroy(cmd);
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
    bson_t                doc;
    ngx_int_t             rc;
    bson_oid_t            oid;
    bson_error_t          error;
    mongoc_collection_t  *chunks;

    bson_oid_init(&oid, NULL);

    /* one allocation of the chunk's size, not a series of doublings */
    bson_init(&doc);

    if (!bson_append_oid(&doc, "_id", 3, &oid)
        || !bson_append_oid(&doc, "files_id", 8, &file->id)
        || !bson_append_int32(&doc, "n", 1, file->n)
        || !bson_append_binary(&doc, "data", 4, BSON_SUBTYPE_BINARY, data,
                               (uint32_t) len))
    {
        ngx_cpystrn((u_char *) err, (u_char *) "cannot build a chunk",
                    NGX_HTTP_AUDEX_ERRLEN);
        bson_destroy(&doc);
        return NGX_ERROR;
    }

    chunks = mongoc_client_get_collection(client, db,
                                          NGX_HTTP_AUDEX_GRIDFS_CHUNKS);
    rc = NGX_OK;

    if (!mongoc_collection_insert_one(chunks, &doc, NULL, NULL, &error)) {
        ngx_http_audex_gridfs_error(err, "storing a chunk", &error);
        rc = NGX_ERROR;

    } else {
        file->n++;
        file->length += len;
    }

    mongoc_collection_destroy(chunks);
    bson_destroy(&doc);

    return rc;
}


/* The files document, written once every chunk is stored. */

ngx_int_t
ngx_http_audex_gridfs_put_file(mongoc_client_t *client, const char *db,
    ngx_http_audex_gridfs_file_t *file, char *err)
{
    bson_t               *doc;
    int64_t               now;
    ngx_int_t             rc;
    bson_error_t          error;
    struct timeval        tv;
    mongoc_collection_t  *files;

    ngx_gettimeofday(&tv);
    now = (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;

    doc = BCON_NEW("_id", BCON_OID(&file->id),
                   "length", BCON_INT64(file->length),
                   "chunkSize", BCON_INT32(NGX_HTTP_AUDEX_GRIDFS_CHUNK),
                   "uploadDate", BCON_DATE_TIME(now),
                   "filename", BCON_UTF8(file->filename),
                   "contentType", BCON_UTF8(file->content_type),
                   "metadata", "{",
                       "owner_id", BCON_UTF8(file->owner_id),
                       "owner_email", BCON_UTF8(file->owner_email),
                       "sha256", BCON_UTF8(file->sha256),
                       "content_type", BCON_UTF8(file->content_type),
                       "format", BCON_UTF8(file->format),
                   "}");

    files = mongoc_client_get_collection(client, db,
                                         NGX_HTTP_AUDEX_GRIDFS_FILES);
    rc = NGX_OK;

    if (!mongoc_collection_insert_one(files, doc, NULL, NULL, &error)) {
        ngx_http_audex_gridfs_error(err, "storing the files document",
                                    &error);
        rc = NGX_ERROR;
    }

    mongoc_collection_destroy(files);
    bson_destroy(doc);

    return rc;
}


/*
 * Removes the files document, then the chunks: a reader never sees a
 * file whose chunks are gone.  Both are tried even if the first fails.
 */

ngx_int_t
ngx_http_audex_gridfs_remove(mongoc_client_t *client, const char *db,
    ngx_http_audex_gridfs_file_t *file, char *err)
{
    bson_t               *filter;
    ngx_int_t             rc;
    bson_error_t          error;
    mongoc_collection_t  *coll;

    rc = NGX_OK;

    coll = mongoc_client_get_collection(client, db,
                                        NGX_HTTP_AUDEX_GRIDFS_FILES);
    filter = BCON_NEW("_id", BCON_OID(&file->id));

    if (!mongoc_collection_delete_one(coll, filter, NULL, NULL, &error)) {
        ngx_http_audex_gridfs_error(err, "removing the files document",
                                    &error);
        rc = NGX_ERROR;
    }

    bson_destroy(filter);
    mongoc_collection_destroy(coll);

    coll = mongoc_client_get_collection(client, db,
                                        NGX_HTTP_AUDEX_GRIDFS_CHUNKS);
    filter = BCON_NEW("files_id", BCON_OID(&file->id));

    if (!mongoc_collection_delete_many(coll, filter, NULL, NULL, &error)) {
        ngx_http_audex_gridfs_error(err, "removing the chunks", &error);
        rc = NGX_ERROR;
    }

    bson_destroy(filter);
    mongoc_collection_destroy(coll);

    return rc;
}


static void
ngx_http_audex_gridfs_error(char *err, const char *what, bson_error_t *error)
{
    u_char  *p;

    p = ngx_snprintf((u_char *) err, NGX_HTTP_AUDEX_ERRLEN - 1, "%s: %s",
                     what, error->message);
    *p = '\0';
}
