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


/*
 * The last chunk, the files document, the job, the stream entry; when a
 * step fails, what the steps before it wrote is removed.
 */

static void
ngx_http_audex_upload_commit(ngx_http_audex_upload_task_t *task,
    mongoc_client_t *client)
{
    const char  *db;
    char         undo[NGX_HTTP_AUDEX_ERRLEN];

    db = task->amcf->mongo_db;

    if (ngx_http_audex_gridfs_indexes(client, db, task->err) != NGX_OK
        || (task->file.n == 0
            && ngx_http_audex_gridfs_record(client, db, &task->file,
                                            NGX_HTTP_AUDEX_GRIDFS_BEGIN,
                                            task->err)
               != NGX_OK)
        || (task->len
            && ngx_http_audex_gridfs_put_chunk(client, db, &task->file,
                                               task->data, task->len,
                                               task->err)
               != NGX_OK)
        || ngx_http_audex_gridfs_put_file(client, db, &task->file, task->err)
           != NGX_OK
        || ngx_http_audex_queue_insert(client, db, &task->job, task->err)
           != NGX_OK)
    {
        task->rc = NGX_HTTP_AUDEX_UPLOAD_MONGO;
        goto undo_file;
    }

    if (ngx_http_audex_queue_publish(task->amcf, &task->job, task->err)
        == NGX_OK)
    {
        /* complete: a record left by a failure here is only a record */
        (void) ngx_http_audex_gridfs_record(client, db, &task->file,
                                            NGX_HTTP_AUDEX_GRIDFS_END, undo);
        return;
    }

    task->rc = NGX_HTTP_AUDEX_UPLOAD_REDIS;

    if (ngx_http_audex_queue_remove(client, db, &task->job, task->undo_err)
        != NGX_OK)
    {
        task->undo_failed = 1;
    }

undo_file:

    if (ngx_http_audex_gridfs_remove(client, db, &task->file, undo)
        != NGX_OK)
    {
        if (!task->undo_failed) {
            task->undo_failed = 1;
            ngx_memcpy(task->undo_err, undo, NGX_HTTP_AUDEX_ERRLEN);
        }

        return;
    }

    (void) ngx_http_audex_gridfs_record(client, db, &task->file,
                                        NGX_HTTP_AUDEX_GRIDFS_END, undo);
}
