/*
 * POST /upload: what the client is answered.  Every way an upload can
 * fail is a row of one table (status, log level, words); the 202 names
 * the job.
 */


#include "ngx_http_audex_upload.h"


static void ngx_http_audex_upload_quota_text(ngx_http_request_t *r,
    u_char *buf, size_t len);


/* what the log line adds to an error's words */
#define NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE     0
#define NGX_HTTP_AUDEX_UPLOAD_DETAIL_QUEUE    1   /* the pool's queue */
#define NGX_HTTP_AUDEX_UPLOAD_DETAIL_BACKEND  2   /* MongoDB's or Redis' */
#define NGX_HTTP_AUDEX_UPLOAD_DETAIL_WHY      3   /* our own words */


/*
 * Every way an upload can fail, as the client is answered and the log
 * says it: one row each, in the order of the codes above.  A NULL text
 * is the parser's own words (up->why); a content type is added to its
 * row's text.
 */

typedef struct {
    ngx_uint_t    status;
    ngx_uint_t    level;
    const char   *text;
    ngx_uint_t    detail;
} ngx_http_audex_upload_error_t;


static ngx_http_audex_upload_error_t  ngx_http_audex_upload_errors[] = {
    /* OK: not an error; the row keeps the table in step with the codes */
    { NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ALERT, "internal error",
      NGX_HTTP_AUDEX_UPLOAD_DETAIL_WHY },
    /* NO_USER */
    { NGX_HTTP_UNAUTHORIZED, NGX_HTTP_AUDEX_LOG_EVENT, "token required",
      NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* TOO_LARGE */
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, NGX_HTTP_AUDEX_LOG_EVENT,
      "upload too large", NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* MAX_JOBS: "too many jobs in progress (N)" */
    { NGX_HTTP_TOO_MANY_REQUESTS, NGX_HTTP_AUDEX_LOG_EVENT, NULL,
      NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* MAX_BYTES: "storage quota of N exceeded" */
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, NGX_HTTP_AUDEX_LOG_EVENT, NULL,
      NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* CONTENT_TYPE: ": <the type>" is added */
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, NGX_HTTP_AUDEX_LOG_EVENT,
      "unsupported media type", NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* FORMAT (an empty file says so) */
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, NGX_HTTP_AUDEX_LOG_EVENT,
      "unsupported media type: not a known audio or video format",
      NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* ONE_FILE */
    { NGX_HTTP_BAD_REQUEST, NGX_HTTP_AUDEX_LOG_EVENT,
      "exactly one file required", NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* MULTIPART */
    { NGX_HTTP_BAD_REQUEST, NGX_HTTP_AUDEX_LOG_EVENT, NULL,
      NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* OPTION */
    { NGX_HTTP_BAD_REQUEST, NGX_HTTP_AUDEX_LOG_EVENT, NULL,
      NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* BAD_BODY */
    { NGX_HTTP_BAD_REQUEST, NGX_HTTP_AUDEX_LOG_EVENT,
      "malformed request body", NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* TIMEOUT: no one is answered */
    { NGX_HTTP_REQUEST_TIME_OUT, NGX_HTTP_AUDEX_LOG_EVENT,
      "client timed out", NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* CLOSED: no one is answered */
    { NGX_HTTP_CLIENT_CLOSED_REQUEST, NGX_HTTP_AUDEX_LOG_EVENT,
      "client closed the connection", NGX_HTTP_AUDEX_UPLOAD_DETAIL_NONE },
    /* BUSY */
    { NGX_HTTP_SERVICE_UNAVAILABLE, NGX_LOG_ERR, "server busy",
      NGX_HTTP_AUDEX_UPLOAD_DETAIL_QUEUE },
    /* MONGO */
    { NGX_HTTP_SERVICE_UNAVAILABLE, NGX_LOG_ERR, "database unavailable",
      NGX_HTTP_AUDEX_UPLOAD_DETAIL_BACKEND },
    /* REDIS */
    { NGX_HTTP_SERVICE_UNAVAILABLE, NGX_LOG_ERR, "job queue unavailable",
      NGX_HTTP_AUDEX_UPLOAD_DETAIL_BACKEND },
    /* INTERNAL */
    { NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ALERT, "internal error",
      NGX_HTTP_AUDEX_UPLOAD_DETAIL_WHY },
};


/*
 * The one place where a failed upload becomes an HTTP status: logs one
 * line (client faults at info, backend failures at error), answers
 * JSON, and returns what to finalize the request with.
 */

ngx_int_t
ngx_http_audex_upload_error(ngx_http_request_t *r, ngx_http_audex_upload_t *up)
{
    u_char                         *p;
    ngx_int_t                       rc;
    ngx_str_t                       msg;
    ngx_uint_t                      status, level;
    const char                     *text, *detail;
    ngx_http_audex_upload_task_t   *task;
    ngx_http_audex_upload_error_t  *e;
    u_char                          buf[NGX_HTTP_AUDEX_ERRLEN + 64];

    task = up->task;

    e = &ngx_http_audex_upload_errors[
            (up->rc > NGX_HTTP_AUDEX_UPLOAD_OK
             && up->rc < NGX_HTTP_AUDEX_UPLOAD_INTERNAL)
            ? up->rc : NGX_HTTP_AUDEX_UPLOAD_INTERNAL];

    status = e->status;
    level = e->level;
    text = e->text ? e->text : up->why;

    if (up->rc == NGX_HTTP_AUDEX_UPLOAD_CONTENT_TYPE) {
        p = ngx_snprintf(buf, sizeof(buf) - 1, "%s: %s", e->text, up->why);
        *p = '\0';
        text = (char *) buf;

    } else if (up->rc == NGX_HTTP_AUDEX_UPLOAD_MAX_BYTES) {
        text = (char *) buf;
        ngx_http_audex_upload_quota_text(r, buf, sizeof(buf));

    } else if (up->rc == NGX_HTTP_AUDEX_UPLOAD_FORMAT && up->length == 0) {
        text = "unsupported media type: empty file";
    }

    switch (up->rc) {
    case NGX_HTTP_AUDEX_UPLOAD_TOO_LARGE:
        ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_REFUSED_SIZE, 1);
        break;
    case NGX_HTTP_AUDEX_UPLOAD_MAX_JOBS:
        ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_REFUSED_JOBS, 1);
        break;
    case NGX_HTTP_AUDEX_UPLOAD_MAX_BYTES:
        ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_REFUSED_BYTES, 1);
        break;
    default:
        break;
    }

    switch (e->detail) {
    case NGX_HTTP_AUDEX_UPLOAD_DETAIL_QUEUE:
        detail = "the thread pool queue is full";
        break;
    case NGX_HTTP_AUDEX_UPLOAD_DETAIL_BACKEND:
        detail = task ? task->err : NULL;
        break;
    case NGX_HTTP_AUDEX_UPLOAD_DETAIL_WHY:
        detail = up->why;
        break;
    default:
        detail = NULL;
    }

    if (task && task->undo_failed) {
        level = ngx_min(level, NGX_LOG_ERR);
    }

    ngx_log_error(level, r->connection->log, 0,
                  "audex: upload failed: %s%s%s%s after %O bytes%s%s%s",
                  text, detail ? " (" : "", detail ? detail : "",
                  detail ? ")," : ",", up->received,
                  (task && task->undo_failed)
                  ? ", clean-up failed (the sweeper removes what is left): "
                  : "",
                  (task && task->undo_failed) ? task->undo_err : "",
                  (task && task->file.n && !task->undo_failed)
                  ? ", stored chunks removed" : "");

    if (status == NGX_HTTP_REQUEST_TIME_OUT
        || status == NGX_HTTP_CLIENT_CLOSED_REQUEST)
    {
        /* no one to answer */
        return status;
    }

    if (r->request_body == NULL) {
        /* refused before reading: no 100 Continue, no keepalive */

        if (status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
            r->expect_tested = 1;
            r->keepalive = 0;
        }

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

    } else {
        /*
         * Refused while reading: the rest of the body is not worth
         * reading, and must not be taken for a next request.  Lingering
         * lets the client read the answer before the connection closes.
         */
        r->keepalive = 0;
        r->lingering_close = 1;
    }

    if (status == NGX_HTTP_UNAUTHORIZED) {
        ngx_str_set(&msg, "Bearer realm=\"audex\"");

        if (ngx_http_audex_add_header(r, "WWW-Authenticate", msg.data,
                                      msg.len)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_audex_send_error(r, status, text);
}


/* "storage quota of 10 MiB exceeded", in the largest unit that divides */

static void
ngx_http_audex_upload_quota_text(ngx_http_request_t *r, u_char *buf,
    size_t len)
{
    u_char                     *p;
    off_t                       n;
    ngx_uint_t                  i;
    ngx_http_audex_loc_conf_t  *alcf;
    static const char          *units[] = { "bytes", "KiB", "MiB", "GiB",
                                            "TiB" };

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_audex_module);
    n = alcf->user_max_bytes;

    for (i = 0; i < 4 && n >= 1024 && n % 1024 == 0; i++) {
        n /= 1024;
    }

    p = ngx_snprintf(buf, len - 1, "storage quota of %O %s exceeded", n,
                     units[i]);
    *p = '\0';
}


/* 202 {"job_id":"...","video_fid":"...","status_url":"/jobs/..."} */

ngx_int_t
ngx_http_audex_upload_accepted(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up)
{
    u_char                        *body, *location, *p;
    size_t                         len;
    ngx_http_audex_upload_task_t  *task;

    task = up->task;

    ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                  "audex: upload of \"%s\" by %s stored as %s "
                  "(%s, %O bytes), job %s queued",
                  task->file.filename, task->file.owner_email,
                  task->job.video_fid, task->file.format, up->length,
                  task->job.id);

    ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_UPLOAD_BYTES, up->length);
    ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_UPLOAD_FILES, 1);

    len = sizeof("{\"job_id\":\"\",\"video_fid\":\"\","
                 "\"status_url\":\"/jobs/\"}\n") - 1 + 3 * 24;

    body = ngx_pnalloc(r->pool, len);
    location = ngx_pnalloc(r->pool, sizeof("/jobs/") - 1 + 24);

    if (body == NULL || location == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(location, "/jobs/%s", task->job.id);

    if (ngx_http_audex_add_header(r, "Location", location, p - location)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"job_id\":\"%s\",\"video_fid\":\"%s\","
                    "\"status_url\":\"/jobs/%s\"}\n",
                    task->job.id, task->job.video_fid, task->job.id);

    return ngx_http_audex_send_json(r, NGX_HTTP_ACCEPTED, body, p - body);
}
