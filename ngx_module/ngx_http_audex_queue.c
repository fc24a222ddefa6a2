/*
 * Conversion jobs: the document in "jobs" that GET /jobs/<id> reads and
 * the workers update, and the entry on the Redis stream the converters
 * consume (audex_jobs_stream, default "video").
 *
 * The document is written first: a converter that takes the entry at
 * once must find its job.  An entry that cannot be sent leaves a job no
 * worker will ever run, so the caller then removes the document.
 *
 * Everything here runs in a pool thread.
 */


#include "ngx_http_audex_module.h"


static void ngx_http_audex_queue_error(char *err, const char *what,
    const char *message);


ngx_int_t
ngx_http_audex_queue_insert(mongoc_client_t *client, const char *db,
    ngx_http_audex_job_t *job, char *err)
{
    bson_t               *doc;
    int64_t               now;
    ngx_int_t             rc;
    bson_oid_t            fid;
    bson_error_t          error;
    struct timeval        tv;
    mongoc_collection_t  *jobs;

    ngx_gettimeofday(&tv);
    now = (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;

    bson_oid_init_from_string(&fid, job->video_fid);

    doc = BCON_NEW("_id", BCON_UTF8(job->id),
                   AUDEX_F_STATE, BCON_UTF8(AUDEX_JOB_STATE_QUEUED),
                   AUDEX_F_PROGRESS, BCON_INT32(0),
                   AUDEX_F_VIDEO_FID, BCON_OID(&fid),
                   AUDEX_F_MP3_FID, BCON_NULL,
                   AUDEX_F_ERROR, BCON_NULL,
                   AUDEX_F_OWNER_ID, BCON_UTF8(job->owner_id),
                   AUDEX_F_OWNER_EMAIL, BCON_UTF8(job->owner_email),
                   AUDEX_F_FILENAME, BCON_UTF8(job->filename),
                   job->option, BCON_INT32((int32_t) job->value),
                   AUDEX_F_CREATED_AT, BCON_DATE_TIME(now),
                   AUDEX_F_UPDATED_AT, BCON_DATE_TIME(now));

    jobs = mongoc_client_get_collection(client, db, AUDEX_COLL_JOBS);
    rc = NGX_OK;

    if (audex_store_job_insert(jobs, doc, &error) != 0) {
        ngx_http_audex_queue_error(err, "storing the job", error.message);
        rc = NGX_ERROR;
    }

    mongoc_collection_destroy(jobs);
    bson_destroy(doc);

    return rc;
}


ngx_int_t
ngx_http_audex_queue_remove(mongoc_client_t *client, const char *db,
    ngx_http_audex_job_t *job, char *err)
{
    ngx_int_t             rc;
    bson_error_t          error;
    mongoc_collection_t  *jobs;

    jobs = mongoc_client_get_collection(client, db, AUDEX_COLL_JOBS);
    rc = NGX_OK;

    if (audex_store_job_remove(jobs, job->id, &error) != 0) {
        ngx_http_audex_queue_error(err, "removing the job", error.message);
        rc = NGX_ERROR;
    }

    mongoc_collection_destroy(jobs);

    return rc;
}


/* XADD <stream> * job_id .. video_fid .. owner_id .. owner_email ..
 *      filename .. bitrate|quality N */

ngx_int_t
ngx_http_audex_queue_publish(ngx_http_audex_main_conf_t *amcf,
    ngx_http_audex_job_t *job, char *err)
{
    ngx_int_t    rc;
    redisReply  *reply;

    reply = ngx_http_audex_redis_command(amcf, err,
                "XADD %s * " AUDEX_F_JOB_ID " %s " AUDEX_F_VIDEO_FID " %s "
                AUDEX_F_OWNER_ID " %s " AUDEX_F_OWNER_EMAIL " %s "
                AUDEX_F_FILENAME " %s %s %u",
                (char *) amcf->jobs_stream.data, job->id, job->video_fid,
                job->owner_id, job->owner_email, job->filename, job->option,
                (unsigned) job->value);

    if (reply == NULL) {
        /* err says why */
        return NGX_ERROR;
    }

    rc = NGX_OK;

    if (reply->type != REDIS_REPLY_STRING) {
        ngx_http_audex_queue_error(err, "XADD",
                                   reply->type == REDIS_REPLY_ERROR
                                   ? reply->str : "unexpected reply");
        rc = NGX_ERROR;
    }

    freeReplyObject(reply);

    return rc;
}


static void
ngx_http_audex_queue_error(char *err, const char *what, const char *message)
{
    u_char  *p;

    p = ngx_snprintf((u_char *) err, NGX_HTTP_AUDEX_ERRLEN - 1, "%s: %s",
                     what, message);
    *p = '\0';
}
