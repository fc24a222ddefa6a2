/*
 * POST /upload, the pool threads' part: each task stores what the event
 * loop handed over (the user's usage, a chunk, the commit, the removal
 * of a failed upload), through the store layer, and touches nothing
 * else.
 */


#include "ngx_http_audex_upload.h"


static void ngx_http_audex_upload_commit(ngx_http_audex_upload_task_t *task,
    mongoc_client_t *client);


void
ngx_http_audex_upload_work(void *data, ngx_log_t *log)
{
    ngx_http_audex_upload_task_t *task = data;

    const char       *db;
    bson_error_t      error;
    mongoc_client_t  *client;

    db = task->amcf->mongo_db;
    task->rc = NGX_HTTP_AUDEX_UPLOAD_OK;
    task->err[0] = '\0';

    client = ngx_http_audex_mongo_pop(task->amcf);

    switch (task->op) {

    case NGX_HTTP_AUDEX_UPLOAD_USAGE:
        if (audex_store_user_usage(client, db, task->file.owner_id,
                                   &task->jobs, &task->bytes, &error)
            != 0)
        {
            ngx_cpystrn((u_char *) task->err, (u_char *) error.message,
                        sizeof(task->err));
            task->rc = NGX_HTTP_AUDEX_UPLOAD_MONGO;
        }

        break;

    case NGX_HTTP_AUDEX_UPLOAD_CHUNK:
        if ((task->file.n == 0
             && (ngx_http_audex_gridfs_indexes(client, db, task->err)
                 != NGX_OK
                 || ngx_http_audex_gridfs_record(client, db, &task->file,
                                                 NGX_HTTP_AUDEX_GRIDFS_BEGIN,
                                                 task->err)
                    != NGX_OK))
            || ngx_http_audex_gridfs_put_chunk(client, db, &task->file,
                                               task->data, task->len,
                                               task->err)
               != NGX_OK)
        {
            task->rc = NGX_HTTP_AUDEX_UPLOAD_MONGO;

        } else if (task->file.n % NGX_HTTP_AUDEX_GRIDFS_TOUCH_EVERY == 0) {
            /* a sign of life; a failure here is not the upload's */
            (void) ngx_http_audex_gridfs_record(client, db, &task->file,
                                                NGX_HTTP_AUDEX_GRIDFS_TOUCH,
                                                task->undo_err);
        }

        break;

    case NGX_HTTP_AUDEX_UPLOAD_COMMIT:
        ngx_http_audex_upload_commit(task, client);
        break;

    default: /* NGX_HTTP_AUDEX_UPLOAD_REMOVE */
        if (ngx_http_audex_gridfs_remove(client, db, &task->file,
                                         task->undo_err)
            != NGX_OK)
        {
            /* the record stays: the sweeper removes what is left */
            task->undo_failed = 1;

        } else {
            (void) ngx_http_audex_gridfs_record(client, db, &task->file,
                                                NGX_HTTP_AUDEX_GRIDFS_END,
                                                task->undo_err);
        }

        break;
    }

    ngx_http_audex_mongo_push(task->amcf, client);
}


static void
ngx_http_audex_upload_commit(ngx_http_audex_upload_task_t *task,
    mongoc_client_t *client)
{
    switch (ngx_http_audex_upload_complete(task->amcf, client, &task->file,
                                           &task->job, task->data, task->len,
                                           task->err, task->undo_err,
                                           &task->undo_failed))
    {
    case NGX_HTTP_AUDEX_COMPLETE_OK:
        task->rc = NGX_HTTP_AUDEX_UPLOAD_OK;
        break;

    case NGX_HTTP_AUDEX_COMPLETE_REDIS:
        task->rc = NGX_HTTP_AUDEX_UPLOAD_REDIS;
        break;

    default:
        task->rc = NGX_HTTP_AUDEX_UPLOAD_MONGO;
    }
}


/*
 * The last chunk (len bytes of data, none when len is 0), the files
 * document, the job, the stream entry, and the end of the file's upload
 * record: what makes stored chunks a file with its job, for /upload and
 * for a resumable upload's last PATCH alike.  When a step fails, what
 * the steps before it wrote is removed, the file's chunks included;
 * *undo_failed is set when that failed too (undo_err says why).  Pool
 * threads only.
 */

ngx_int_t
ngx_http_audex_upload_complete(ngx_http_audex_main_conf_t *amcf,
    mongoc_client_t *client, ngx_http_audex_gridfs_file_t *file,
    ngx_http_audex_job_t *job, const u_char *data, size_t len, char *err,
    char *undo_err, ngx_uint_t *undo_failed)
{
    ngx_int_t    rc;
    const char  *db;
    char         undo[NGX_HTTP_AUDEX_ERRLEN];

    db = amcf->mongo_db;

    if (ngx_http_audex_gridfs_indexes(client, db, err) != NGX_OK
        || (file->n == 0
            && ngx_http_audex_gridfs_record(client, db, file,
                                            NGX_HTTP_AUDEX_GRIDFS_BEGIN, err)
               != NGX_OK)
        || (len
            && ngx_http_audex_gridfs_put_chunk(client, db, file, data, len,
                                               err)
               != NGX_OK)
        || ngx_http_audex_gridfs_put_file(client, db, file, err) != NGX_OK
        || ngx_http_audex_queue_insert(client, db, job, err) != NGX_OK)
    {
        rc = NGX_HTTP_AUDEX_COMPLETE_MONGO;
        goto undo_file;
    }

    if (ngx_http_audex_queue_publish(amcf, job, err) == NGX_OK) {
        /* complete: a record left by a failure here is only a record */
        (void) ngx_http_audex_gridfs_record(client, db, file,
                                            NGX_HTTP_AUDEX_GRIDFS_END, undo);
        return NGX_HTTP_AUDEX_COMPLETE_OK;
    }

    rc = NGX_HTTP_AUDEX_COMPLETE_REDIS;

    if (ngx_http_audex_queue_remove(client, db, job, undo_err) != NGX_OK) {
        *undo_failed = 1;
    }

undo_file:

    if (ngx_http_audex_gridfs_remove(client, db, file, undo) != NGX_OK) {
        if (!*undo_failed) {
            *undo_failed = 1;
            ngx_memcpy(undo_err, undo, NGX_HTTP_AUDEX_ERRLEN);
        }

        return rc;
    }

    (void) ngx_http_audex_gridfs_record(client, db, file,
                                            NGX_HTTP_AUDEX_GRIDFS_END, undo);

    return rc;
}
