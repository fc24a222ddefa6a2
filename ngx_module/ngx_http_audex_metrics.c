/*
 * Prometheus metrics: GET /metrics.
 *
 * Counters live in a shared memory zone, so every nginx worker process
 * adds to the same numbers and a scrape sees their sum; they survive a
 * reload.  Requests are counted in the log phase for every location
 * with an audex handler or audex_auth, by handler and status; durations
 * go into a histogram by handler; uploads, downloads, refusals and
 * resumable uploads are counted where they happen
 * (ngx_http_audex_metrics_add).  The jobs stream's length and pending
 * count are read from Redis, in a pool thread, at scrape time.
 */


#include "ngx_http_audex_module.h"


#define NGX_HTTP_AUDEX_STATUS_MIN  100
#define NGX_HTTP_AUDEX_STATUS_MAX  599
#define NGX_HTTP_AUDEX_NSTATUS     (NGX_HTTP_AUDEX_STATUS_MAX               \
                                    - NGX_HTTP_AUDEX_STATUS_MIN + 1)
#define NGX_HTTP_AUDEX_NBUCKETS    14


typedef struct {
    ngx_atomic_t   requests[NGX_HTTP_AUDEX_NHANDLERS][NGX_HTTP_AUDEX_NSTATUS];
    ngx_atomic_t   buckets[NGX_HTTP_AUDEX_NHANDLERS][NGX_HTTP_AUDEX_NBUCKETS];
    ngx_atomic_t   duration_us[NGX_HTTP_AUDEX_NHANDLERS];
    ngx_atomic_t   counters[NGX_HTTP_AUDEX_NCOUNTERS];
} ngx_http_audex_metrics_t;


typedef struct {
    ngx_http_audex_main_conf_t  *amcf;
    long long                    length;
    long long                    pending;
    char                         err[NGX_HTTP_AUDEX_ERRLEN];
} ngx_http_audex_metrics_ctx_t;


static ngx_int_t ngx_http_audex_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_audex_metrics_log(ngx_http_request_t *r);
static ngx_int_t ngx_http_audex_metrics_handler(ngx_http_request_t *r);
static void ngx_http_audex_metrics_work(void *data, ngx_log_t *log);
static void ngx_http_audex_metrics_done(ngx_http_request_t *r, void *data);


/* histogram bounds in microseconds; the last bucket is +Inf */
static const ngx_msec_int_t  ngx_http_audex_bounds_ms[] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000
};

static const char  *ngx_http_audex_bounds_text[] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "30", "60", "+Inf"
};

static const char  *ngx_http_audex_handler_names[] = {
    "auth", "login", "upload", "download", "jobs", "healthz", "metrics",
    "logout", "tus"
};

static ngx_http_audex_metrics_t  *ngx_http_audex_shm;


ngx_int_t
ngx_http_audex_metrics_init(ngx_conf_t *cf)
{
    ngx_str_t                   name = ngx_string("audex_metrics");
    ngx_shm_zone_t             *zone;
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    zone = ngx_shared_memory_add(cf, &name,
                                 2 * sizeof(ngx_http_audex_metrics_t)
                                 + 16 * ngx_pagesize,
                                 &ngx_http_audex_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_audex_metrics_init_zone;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_audex_metrics_log;

    return NGX_OK;
}


static ngx_int_t
ngx_http_audex_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        /* a reload: the counters go on */
        shm_zone->data = data;
        ngx_http_audex_shm = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        ngx_http_audex_shm = shpool->data;
        return NGX_OK;
    }

    ngx_http_audex_shm = ngx_slab_calloc(shpool,
                                             sizeof(ngx_http_audex_metrics_t));
    if (ngx_http_audex_shm == NULL) {
        return NGX_ERROR;
    }

    shpool->data = ngx_http_audex_shm;
    shm_zone->data = ngx_http_audex_shm;

    return NGX_OK;
}


void
ngx_http_audex_metrics_add(ngx_uint_t counter, off_t n)
{
    if (ngx_http_audex_shm && n > 0) {
        (void) ngx_atomic_fetch_add(
                   &ngx_http_audex_shm->counters[counter],
                   (ngx_atomic_int_t) n);
    }
}


static ngx_int_t
ngx_http_audex_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t                  h, b, status;
    ngx_time_t                 *tp;
    ngx_msec_int_t              ms;
    ngx_http_audex_loc_conf_t  *alcf;
    ngx_http_audex_metrics_t   *m = ngx_http_audex_shm;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_audex_module);

    if (m == NULL || r != r->main) {
        return NGX_OK;
    }

    if (alcf->handler_id != NGX_CONF_UNSET_UINT) {
        h = alcf->handler_id;

    } else if (alcf->auth != NGX_HTTP_AUDEX_AUTH_OFF) {
        h = NGX_HTTP_AUDEX_H_AUTH;

    } else {
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status == 0 && r->connection->error) {
        status = 499;    /* the client went away before an answer */
    }

    if (status >= NGX_HTTP_AUDEX_STATUS_MIN
        && status <= NGX_HTTP_AUDEX_STATUS_MAX)
    {
        (void) ngx_atomic_fetch_add(
                   &m->requests[h][status - NGX_HTTP_AUDEX_STATUS_MIN], 1);
    }

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    ms = ngx_max(ms, 0);

    for (b = 0; b < NGX_HTTP_AUDEX_NBUCKETS - 1; b++) {
        if (ms <= ngx_http_audex_bounds_ms[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&m->buckets[h][b], 1);
    (void) ngx_atomic_fetch_add(&m->duration_us[h],
                                (ngx_atomic_int_t) ms * 1000);

    return NGX_OK;
}


char *
ngx_http_audex_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_audex_set_handler(cf, cmd, ngx_http_audex_metrics_handler,
                                      NGX_HTTP_AUDEX_H_METRICS);
}


static ngx_int_t
ngx_http_audex_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_audex_metrics_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_audex_method_not_allowed(r, "GET, HEAD");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_http_audex_thread_alloc(r,
                                      sizeof(ngx_http_audex_metrics_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(ctx, sizeof(ngx_http_audex_metrics_ctx_t));
    ctx->amcf = ngx_http_get_module_main_conf(r, ngx_http_audex_module);
    ctx->length = -1;
    ctx->pending = -1;

    if (ngx_http_audex_thread_post(r, ctx, ngx_http_audex_metrics_work,
                                   ngx_http_audex_metrics_done)
        != NGX_OK)
    {
        /* the counters need no thread: answer without the stream */
        r->main->count++;
        ngx_http_audex_metrics_done(r, ctx);
        return NGX_DONE;
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_audex_metrics_work(void *data, ngx_log_t *log)
{
    ngx_http_audex_metrics_ctx_t *ctx = data;

    redisReply  *reply;

    reply = ngx_http_audex_redis_command(ctx->amcf, ctx->err, "XLEN %s",
                                         ctx->amcf->jobs_stream.data);
    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_INTEGER) {
        ctx->length = reply->integer;
    }

    freeReplyObject(reply);

    /* the summary form: [count, first id, last id, consumers] */

    reply = ngx_http_audex_redis_command(ctx->amcf, ctx->err, "XPENDING %s %s",
                                         ctx->amcf->jobs_stream.data,
                                         ctx->amcf->jobs_group.data);
    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1
        && reply->element[0]->type == REDIS_REPLY_INTEGER)
    {
        ctx->pending = reply->element[0]->integer;

    } else if (reply->type == REDIS_REPLY_ERROR
               && ngx_strstr(reply->str, "NOGROUP") != NULL)
    {
        /* no converter has made the group yet: nothing is pending */
        ctx->pending = 0;
    }

    freeReplyObject(reply);
}


static void
ngx_http_audex_metrics_done(ngx_http_request_t *r, void *data)
{
    ngx_http_audex_metrics_ctx_t *ctx = data;

    u_char                    *body, *p, *end;
    size_t                     len;
    ngx_uint_t                 h, s, b, any;
    ngx_atomic_uint_t          n, cum;
    ngx_http_audex_metrics_t  *m = ngx_http_audex_shm;

    if (ctx->err[0]) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "audex: metrics: redis: %s", ctx->err);
    }

    /* an upper bound: every series at its longest */

    len = 4096
          + NGX_HTTP_AUDEX_NHANDLERS * NGX_HTTP_AUDEX_NSTATUS * 96
          + NGX_HTTP_AUDEX_NHANDLERS * (NGX_HTTP_AUDEX_NBUCKETS + 2) * 128;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = body;
    end = body + len;

    p = ngx_slprintf(p, end,
            "# HELP http_requests_total Requests answered, by audex "
            "handler and status.\n"
            "# TYPE http_requests_total counter\n");

    for (h = 0; h < NGX_HTTP_AUDEX_NHANDLERS; h++) {
        for (s = 0; s < NGX_HTTP_AUDEX_NSTATUS; s++) {
            n = m->requests[h][s];
            if (n) {
                p = ngx_slprintf(p, end,
                        "http_requests_total{handler=\"%s\",status=\"%ui\"}"
                        " %uA\n", ngx_http_audex_handler_names[h],
                        s + NGX_HTTP_AUDEX_STATUS_MIN, n);
            }
        }
    }

    p = ngx_slprintf(p, end,
            "# HELP http_request_duration_seconds Time from the request's "
            "first byte to its log line, by audex handler.\n"
            "# TYPE http_request_duration_seconds histogram\n");

    for (h = 0; h < NGX_HTTP_AUDEX_NHANDLERS; h++) {
        any = 0;
        for (b = 0; b < NGX_HTTP_AUDEX_NBUCKETS; b++) {
            any |= (m->buckets[h][b] != 0);
        }

        if (!any) {
            continue;
        }

        cum = 0;

        for (b = 0; b < NGX_HTTP_AUDEX_NBUCKETS; b++) {
            cum += m->buckets[h][b];
            p = ngx_slprintf(p, end,
                    "http_request_duration_seconds_bucket{handler=\"%s\","
                    "le=\"%s\"} %uA\n", ngx_http_audex_handler_names[h],
                    ngx_http_audex_bounds_text[b], cum);
        }

        n = m->duration_us[h];
        p = ngx_slprintf(p, end,
                "http_request_duration_seconds_sum{handler=\"%s\"} "
                "%uA.%06uA\n"
                "http_request_duration_seconds_count{handler=\"%s\"} %uA\n",
                ngx_http_audex_handler_names[h], n / 1000000, n % 1000000,
                ngx_http_audex_handler_names[h], cum);
    }

    p = ngx_slprintf(p, end,
            "# HELP audex_upload_bytes_total Video bytes stored by uploads.\n"
            "# TYPE audex_upload_bytes_total counter\n"
            "audex_upload_bytes_total %uA\n"
            "# HELP audex_upload_files_total Videos stored by uploads.\n"
            "# TYPE audex_upload_files_total counter\n"
            "audex_upload_files_total %uA\n"
            "# HELP audex_download_bytes_total MP3 bytes sent by downloads.\n"
            "# TYPE audex_download_bytes_total counter\n"
            "audex_download_bytes_total %uA\n"
            "# HELP audex_upload_refusals_total Uploads refused by a limit, "
            "by limit.\n"
            "# TYPE audex_upload_refusals_total counter\n"
            "audex_upload_refusals_total{limit=\"upload_max_size\"} %uA\n"
            "audex_upload_refusals_total{limit=\"user_max_jobs\"} %uA\n"
            "audex_upload_refusals_total{limit=\"user_max_bytes\"} %uA\n",
            m->counters[NGX_HTTP_AUDEX_UPLOAD_BYTES],
            m->counters[NGX_HTTP_AUDEX_UPLOAD_FILES],
            m->counters[NGX_HTTP_AUDEX_DOWNLOAD_BYTES],
            m->counters[NGX_HTTP_AUDEX_REFUSED_SIZE],
            m->counters[NGX_HTTP_AUDEX_REFUSED_JOBS],
            m->counters[NGX_HTTP_AUDEX_REFUSED_BYTES]);

    p = ngx_slprintf(p, end,
            "# HELP audex_tus_uploads_total Resumable uploads created, "
            "and how they ended: completed (job queued), terminated "
            "(DELETE), failed (removed when completion failed).\n"
            "# TYPE audex_tus_uploads_total counter\n"
            "audex_tus_uploads_total{result=\"created\"} %uA\n"
            "audex_tus_uploads_total{result=\"completed\"} %uA\n"
            "audex_tus_uploads_total{result=\"terminated\"} %uA\n"
            "audex_tus_uploads_total{result=\"failed\"} %uA\n"
            "# HELP audex_tus_bytes_total Bytes of resumable uploads made "
            "durable by PATCH (what Upload-Offset advanced by).\n"
            "# TYPE audex_tus_bytes_total counter\n"
            "audex_tus_bytes_total %uA\n",
            m->counters[NGX_HTTP_AUDEX_TUS_CREATED],
            m->counters[NGX_HTTP_AUDEX_TUS_COMPLETED],
            m->counters[NGX_HTTP_AUDEX_TUS_TERMINATED],
            m->counters[NGX_HTTP_AUDEX_TUS_FAILED],
            m->counters[NGX_HTTP_AUDEX_TUS_BYTES]);

    /* an unreadable gauge is left out rather than reported as zero */

    if (ctx->length >= 0) {
        p = ngx_slprintf(p, end,
                "# HELP audex_jobs_stream_length Entries in the jobs "
                "stream.\n"
                "# TYPE audex_jobs_stream_length gauge\n"
                "audex_jobs_stream_length %L\n", (int64_t) ctx->length);
    }

    if (ctx->pending >= 0) {
        p = ngx_slprintf(p, end,
                "# HELP audex_jobs_stream_pending Jobs delivered to a "
                "converter and not yet acknowledged.\n"
                "# TYPE audex_jobs_stream_pending gauge\n"
                "audex_jobs_stream_pending %L\n", (int64_t) ctx->pending);
    }

    ngx_http_finalize_request(r,
        ngx_http_audex_send_body(r, NGX_HTTP_OK,
                                 "text/plain; version=0.0.4; charset=utf-8",
                                 body, p - body));
}
