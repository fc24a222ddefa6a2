/*
 * Job status: GET /jobs/<id>, GET /jobs (the caller's, newest first),
 * DELETE /jobs/<id> (the job turns deleting, its MP3 and video leave
 * GridFS, then the job goes; see store/audex_store_delete.c);
 * /jobs is the location's name, whatever it is.
 *
 * A job document ("jobs" collection, written by the upload handler and
 * the converter) has _id = the job id, state, progress, video_fid,
 * mp3_fid, error, owner_id, filename, created_at, updated_at.  Pool
 * threads copy the documents out; they are rendered as JSON on the event
 * loop.  Only the owner or an admin sees a job: anyone else gets 404.
 *
 * The caller is looked up first: a token audex_auth accepted may name no
 * audex account (one removed since, or a token of another service that
 * shares the key).  That is 401 invalid_token, "unknown user", so that
 * a client drops the token and logs in again, as for an expired one.
 */


#include "ngx_http_audex_module.h"

#include "audex_link.h"


#define NGX_HTTP_AUDEX_JOBS_DEFAULT_LIMIT  20
#define NGX_HTTP_AUDEX_JOBS_MAX_LIMIT      100

#define NGX_HTTP_AUDEX_JOBS_GET            0
#define NGX_HTTP_AUDEX_JOBS_LIST           1
#define NGX_HTTP_AUDEX_JOBS_DELETE         2


typedef struct {
    ngx_http_audex_main_conf_t  *amcf;

    ngx_uint_t                   op;
    char                         job_id[25];
    char                         owner[25];     /* the caller */
    ngx_uint_t                   admin;
    ngx_int_t                    limit;

    bson_t                     **docs;          /* malloc()ed copies */
    ngx_uint_t                   ndocs;

    ngx_uint_t                   unfinished;    /* a deletion, see _finish */

    int64_t                      usage_jobs;    /* the list's: in progress */
    int64_t                      usage_bytes;   /* stored */
    double                       usage_minutes; /* today's; -1: unknown */

    ngx_uint_t                   status;        /* an error to answer */
    const char                  *why;
    char                         err[NGX_HTTP_AUDEX_ERRLEN];
} ngx_http_audex_jobs_ctx_t;


static ngx_int_t ngx_http_audex_jobs_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_audex_jobs_route(ngx_http_request_t *r,
    ngx_http_audex_jobs_ctx_t *ctx);
static void ngx_http_audex_jobs_work(void *data, ngx_log_t *log);
static ngx_int_t ngx_http_audex_jobs_caller(ngx_http_audex_jobs_ctx_t *ctx,
    mongoc_client_t *client, bson_error_t *error);
static ngx_int_t ngx_http_audex_jobs_find(ngx_http_audex_jobs_ctx_t *ctx,
    mongoc_collection_t *jobs, bson_error_t *error);
static ngx_int_t ngx_http_audex_jobs_delete(ngx_http_audex_jobs_ctx_t *ctx,
    mongoc_client_t *client, bson_error_t *error);
static void ngx_http_audex_jobs_finish(ngx_http_audex_jobs_ctx_t *ctx,
    mongoc_client_t *client);
static ngx_int_t ngx_http_audex_jobs_usage(ngx_http_audex_jobs_ctx_t *ctx,
    mongoc_client_t *client, bson_error_t *error);
static u_char *ngx_http_audex_jobs_limits(ngx_http_request_t *r,
    ngx_http_audex_jobs_ctx_t *ctx, u_char *p);
static void ngx_http_audex_jobs_done(ngx_http_request_t *r, void *data);
static ngx_int_t ngx_http_audex_jobs_send(ngx_http_request_t *r,
    ngx_http_audex_jobs_ctx_t *ctx);
static u_char *ngx_http_audex_jobs_render(ngx_http_request_t *r,
    ngx_http_audex_jobs_ctx_t *ctx, const bson_t *doc, size_t *len);
static void ngx_http_audex_jobs_free(ngx_http_audex_jobs_ctx_t *ctx);


/*
 * A job's id is what follows the location's name, so the location must
 * have a literal one: a prefix location serves the list at its name and
 * the jobs below it, an exact one serves the list only.
 */

char *
ngx_http_audex_jobs(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->named
#if (NGX_PCRE)
        || clcf->regex
#endif
       )
    {
        return "needs a prefix or exact location: a job's id is what "
               "follows the location's name";
    }

    return ngx_http_audex_set_handler(cf, cmd, ngx_http_audex_jobs_handler,
                                      NGX_HTTP_AUDEX_H_JOBS);
}


/* called when the location's configuration is merged */

char *
ngx_http_audex_jobs_merge(ngx_conf_t *cf, ngx_http_audex_loc_conf_t *alcf)
{
    ngx_http_audex_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_audex_module);

    if (amcf->link_key.len == 0) {
        return ngx_http_audex_conf_needs(cf, alcf,
                                         "audex_link_secret at http level",
                                         "a done job's download_url is a "
                                         "signed link");
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_audex_jobs_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_http_audex_user_t      *user;
    ngx_http_audex_jobs_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE))) {
        return ngx_http_audex_method_not_allowed(r, "GET, HEAD, DELETE");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    user = ngx_http_audex_auth_user(r);

    if (user == NULL) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: jobs: no valid token");
        return ngx_http_audex_auth_deny(r, NGX_HTTP_UNAUTHORIZED,
                                        "token required");
    }

    if (user->user_id.len != 24
        || !bson_oid_is_valid((char *) user->user_id.data, 24))
    {
        /* audex's accounts have ObjectIds: no lookup can find this one */
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: jobs: no account \"%V\"", &user->user_id);
        return ngx_http_audex_auth_deny(r, NGX_HTTP_UNAUTHORIZED,
                                        "unknown user");
    }

    ctx = ngx_http_audex_thread_alloc(r, sizeof(ngx_http_audex_jobs_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(ctx, sizeof(ngx_http_audex_jobs_ctx_t));

    ctx->amcf = ngx_http_get_module_main_conf(r, ngx_http_audex_module);
    ngx_memcpy(ctx->owner, user->user_id.data, 24);
    ctx->admin = user->admin;
    ctx->limit = NGX_HTTP_AUDEX_JOBS_DEFAULT_LIMIT;

    rc = ngx_http_audex_jobs_route(r, ctx);

    if (rc == NGX_HTTP_NOT_ALLOWED) {
        return ngx_http_audex_method_not_allowed(r, "GET, HEAD");
    }

    if (rc != NGX_OK) {
        return ngx_http_audex_send_error(r, rc, ctx->why);
    }

    return ngx_http_audex_thread_start(r, ctx, ngx_http_audex_jobs_work,
                                       ngx_http_audex_jobs_done, "jobs");
}


/*
 * The operation the uri names.  The id is what follows the location's
 * name ("location /api/jobs/": /api/jobs/<id>); nothing but slashes there
 * is the list.  A prefix location matched r->uri, so the uri starts with
 * the name.  Returns NGX_OK with ctx->op set, or the status to refuse
 * with and ctx->why.
 */

static ngx_int_t
ngx_http_audex_jobs_route(ngx_http_request_t *r,
    ngx_http_audex_jobs_ctx_t *ctx)
{
    u_char                    *p, *last;
    ngx_str_t                  arg;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->uri.data + ngx_min(clcf->name.len, r->uri.len);
    last = r->uri.data + r->uri.len;

    while (p < last && *p == '/') {
        p++;
    }

    while (last > p && last[-1] == '/') {
        last--;
    }

    if (p == last) {

        if (r->method == NGX_HTTP_DELETE) {
            return NGX_HTTP_NOT_ALLOWED;
        }

        ctx->op = NGX_HTTP_AUDEX_JOBS_LIST;

        if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
            ctx->limit = ngx_atoi(arg.data, arg.len);

            if (ctx->limit < 1 || ctx->limit > NGX_HTTP_AUDEX_JOBS_MAX_LIMIT)
            {
                ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                              "audex: jobs: bad limit \"%V\"", &arg);
                ctx->why = "limit must be 1 to 100";
                return NGX_HTTP_BAD_REQUEST;
            }
        }

    } else if (last - p == 24 && bson_oid_is_valid((char *) p, 24)) {
        ngx_memcpy(ctx->job_id, p, 24);
        ngx_strlow((u_char *) ctx->job_id, (u_char *) ctx->job_id, 24);
        ctx->op = (r->method == NGX_HTTP_DELETE) ? NGX_HTTP_AUDEX_JOBS_DELETE
                                                 : NGX_HTTP_AUDEX_JOBS_GET;

    } else {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: jobs: invalid job id in \"%V\"", &r->uri);
        ctx->why = "invalid job id";
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


static void
ngx_http_audex_jobs_work(void *data, ngx_log_t *log)
{
    ngx_http_audex_jobs_ctx_t *ctx = data;

    ngx_int_t             rc;
    bson_error_t          error;
    mongoc_client_t      *client;
    mongoc_collection_t  *jobs;

    client = ngx_http_audex_mongo_pop(ctx->amcf);
    jobs = mongoc_client_get_collection(client, ctx->amcf->mongo_db,
                                        AUDEX_COLL_JOBS);

    rc = ngx_http_audex_jobs_caller(ctx, client, &error);

    if (rc == NGX_OK && ctx->status == 0) {
        rc = ngx_http_audex_jobs_find(ctx, jobs, &error);
    }

    if (rc == NGX_OK && ctx->op == NGX_HTTP_AUDEX_JOBS_DELETE
        && ctx->status == 0)
    {
        rc = ngx_http_audex_jobs_delete(ctx, client, &error);
    }

    if (rc == NGX_OK && ctx->op == NGX_HTTP_AUDEX_JOBS_GET
        && ctx->status == 0)
    {
        ngx_http_audex_jobs_finish(ctx, client);
    }

    if (rc == NGX_OK && ctx->op == NGX_HTTP_AUDEX_JOBS_LIST
        && ctx->status == 0)
    {
        rc = ngx_http_audex_jobs_usage(ctx, client, &error);
    }

    if (rc != NGX_OK) {
        ngx_cpystrn((u_char *) ctx->err, (u_char *) error.message,
                    NGX_HTTP_AUDEX_ERRLEN);
        ctx->status = NGX_HTTP_SERVICE_UNAVAILABLE;
        ctx->why = "database unavailable";
    }

    mongoc_collection_destroy(jobs);
    ngx_http_audex_mongo_push(ctx->amcf, client);
}


/* Whether the caller has an account: ctx->status 401 when not. */

static ngx_int_t
ngx_http_audex_jobs_caller(ngx_http_audex_jobs_ctx_t *ctx,
    mongoc_client_t *client, bson_error_t *error)
{
    int                   rc;
    bson_t               *doc;
    bson_oid_t            oid;
    mongoc_collection_t  *users;

    users = mongoc_client_get_collection(client, ctx->amcf->mongo_db,
                                         AUDEX_COLL_USERS);

    bson_oid_init_from_string(&oid, ctx->owner);
    rc = audex_store_user_by_id(users, &oid, &doc, error);

    mongoc_collection_destroy(users);
    bson_destroy(doc);

    if (rc == 0) {
        ctx->status = NGX_HTTP_UNAUTHORIZED;
        ctx->why = "unknown user";
    }

    return (rc < 0) ? NGX_ERROR : NGX_OK;
}


/*
 * A GET that finds a job deleting (a DELETE cut short) finishes the
 * removal, and answers what it read: the job, deleting, without a link.
 * A failure here is the deletion's, not the GET's: it is logged (on the
 * event loop), and the next reader tries again.
 */

static void
ngx_http_audex_jobs_finish(ngx_http_audex_jobs_ctx_t *ctx,
    mongoc_client_t *client)
{
    bson_error_t        error;
    mongoc_database_t  *db;

    if (!audex_store_job_state_is(ctx->docs[0], AUDEX_JOB_STATE_DELETING)) {
        return;
    }

    db = mongoc_client_get_database(client, ctx->amcf->mongo_db);

    if (audex_store_job_delete(db, ctx->docs[0], &error) < 0) {
        ngx_cpystrn((u_char *) ctx->err, (u_char *) error.message,
                    NGX_HTTP_AUDEX_ERRLEN);
        ctx->unfinished = 1;
    }

    mongoc_database_destroy(db);
}


/* The job, or the caller's jobs, into ctx->docs; NGX_ERROR on failure. */

static ngx_int_t
ngx_http_audex_jobs_find(ngx_http_audex_jobs_ctx_t *ctx,
    mongoc_collection_t *jobs, bson_error_t *error)
{
    bson_t           *filter, *opts;
    bson_iter_t       it;
    const char       *owner;
    const bson_t     *doc;
    mongoc_cursor_t  *cursor;

    if (ctx->op == NGX_HTTP_AUDEX_JOBS_LIST) {
        /*
         * One user's jobs, newest first: on MongoDB an index on
         * {owner_id, created_at} would serve it (none is made yet); on
         * FerretDB's SQLite backend, which pushes down only {_id}, it
         * scans and sorts the whole jobs collection, so its cost grows
         * with all users' jobs.  A status page only, not per chunk.
         */
        filter = BCON_NEW(AUDEX_F_OWNER_ID, BCON_UTF8(ctx->owner));
        opts = BCON_NEW("sort", "{", AUDEX_F_CREATED_AT, BCON_INT32(-1),
                        "_id", BCON_INT32(-1), "}",
                        "limit", BCON_INT64(ctx->limit));

    } else {
        filter = BCON_NEW("_id", BCON_UTF8(ctx->job_id));
        opts = NULL;
    }

    ctx->docs = calloc(ctx->limit, sizeof(bson_t *));
    if (ctx->docs == NULL) {
        bson_set_error(error, 0, 0, "out of memory");
        bson_destroy(filter);
        bson_destroy(opts);
        return NGX_ERROR;
    }

    cursor = mongoc_collection_find_with_opts(jobs, filter, opts, NULL);

    while (ctx->ndocs < (ngx_uint_t) ctx->limit
           && mongoc_cursor_next(cursor, &doc))
    {
        ctx->docs[ctx->ndocs++] = bson_copy(doc);
    }

    bson_destroy(filter);
    bson_destroy(opts);

    if (mongoc_cursor_error(cursor, error)) {
        mongoc_cursor_destroy(cursor);
        return NGX_ERROR;
    }

    mongoc_cursor_destroy(cursor);

    if (ctx->op == NGX_HTTP_AUDEX_JOBS_LIST) {
        return NGX_OK;
    }

    owner = NULL;

    if (ctx->ndocs
        && bson_iter_init_find(&it, ctx->docs[0], AUDEX_F_OWNER_ID)
        && BSON_ITER_HOLDS_UTF8(&it))
    {
        owner = bson_iter_utf8(&it, NULL);
    }

    if (ctx->ndocs == 0
        || (!ctx->admin && (owner == NULL || strcmp(owner, ctx->owner) != 0)))
    {
        ctx->status = NGX_HTTP_NOT_FOUND;
        ctx->why = "not found";
    }

    return NGX_OK;
}


/*
 * Deletion is a recorded state (see store/audex_store_delete.c): the job
 * turns deleting, its MP3 and video leave GridFS, then the job goes.  A
 * job left deleting by an interrupted DELETE is finished by the next
 * DELETE or GET.  A job still queued or converting is refused: its
 * converter would write the MP3 back.
 */

static ngx_int_t
ngx_http_audex_jobs_delete(ngx_http_audex_jobs_ctx_t *ctx,
    mongoc_client_t *client, bson_error_t *error)
{
    int                 rc;
    const bson_t       *job;
    mongoc_database_t  *db;

    job = ctx->docs[0];

    if (!audex_store_job_state_is(job, AUDEX_JOB_STATE_DONE)
        && !audex_store_job_state_is(job, AUDEX_JOB_STATE_FAILED)
        && !audex_store_job_state_is(job, AUDEX_JOB_STATE_DELETING))
    {
        ctx->status = NGX_HTTP_CONFLICT;
        ctx->why = "the job is not finished yet";
        return NGX_OK;
    }

    db = mongoc_client_get_database(client, ctx->amcf->mongo_db);
    rc = audex_store_job_delete(db, job, error);
    mongoc_database_destroy(db);

    if (rc == 0) {
        /* queued again between the read and the mark */
        ctx->status = NGX_HTTP_CONFLICT;
        ctx->why = "the job is not finished yet";
    }

    return (rc < 0) ? NGX_ERROR : NGX_OK;
}


/*
 * What the caller holds, as the upload's limits count it (see
 * audex_store_user_usage()), and the minutes the converters counted for
 * it today (UTC) in Redis: -1 when Redis does not answer, which is no
 * reason to fail the list.
 */

static ngx_int_t
ngx_http_audex_jobs_usage(ngx_http_audex_jobs_ctx_t *ctx,
    mongoc_client_t *client, bson_error_t *error)
{
    char         err[NGX_HTTP_AUDEX_ERRLEN], day[16];
    time_t       now;
    struct tm    tm;
    redisReply  *reply;

    if (audex_store_user_usage(client, ctx->amcf->mongo_db, ctx->owner,
                               &ctx->usage_jobs, &ctx->usage_bytes, error)
        != 0)
    {
        return NGX_ERROR;
    }

    now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(day, sizeof(day), "%Y%m%d", &tm);

    ctx->usage_minutes = -1;

    reply = ngx_http_audex_redis_command(ctx->amcf, err,
                                         "HGET " AUDEX_USAGE_KEY_PREFIX
                                         "%s:%s " AUDEX_USAGE_TOTAL,
                                         ctx->owner, day);
    if (reply == NULL) {
        return NGX_OK;
    }

    ctx->usage_minutes = (reply->type == REDIS_REPLY_STRING)
                         ? strtod(reply->str, NULL) : 0;
    freeReplyObject(reply);

    return NGX_OK;
}


/* ,"usage":{...},"limits":{...}: what the list adds after the jobs */

#define NGX_HTTP_AUDEX_JOBS_LIMITS_LEN                                        \
    (sizeof(",\"usage\":{\"jobs_in_progress\":,\"bytes_stored\":,"          \
            "\"minutes_today\":},\"limits\":{\"jobs_in_progress\":,"          \
            "\"bytes_stored\":}") + 5 * NGX_INT64_LEN + 8)

static u_char *
ngx_http_audex_jobs_limits(ngx_http_request_t *r,
    ngx_http_audex_jobs_ctx_t *ctx, u_char *p)
{
    ngx_http_audex_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_audex_module);

    p = ngx_sprintf(p, ",\"usage\":{\"jobs_in_progress\":%L,"
                    "\"bytes_stored\":%L,\"minutes_today\":",
                    ctx->usage_jobs, ctx->usage_bytes);

    p = (ctx->usage_minutes < 0)
        ? ngx_cpymem(p, "null", 4)
        : ngx_sprintf(p, "%.2f", ctx->usage_minutes);

    p = ngx_cpymem(p, "},\"limits\":{\"jobs_in_progress\":",
                   sizeof("},\"limits\":{\"jobs_in_progress\":") - 1);

    p = alcf->user_max_jobs ? ngx_sprintf(p, "%i", alcf->user_max_jobs)
                            : ngx_cpymem(p, "null", 4);

    p = ngx_cpymem(p, ",\"bytes_stored\":", sizeof(",\"bytes_stored\":") - 1);

    p = alcf->user_max_bytes ? ngx_sprintf(p, "%O", alcf->user_max_bytes)
                             : ngx_cpymem(p, "null", 4);

    *p++ = '}';

    return p;
}


static void
ngx_http_audex_jobs_done(ngx_http_request_t *r, void *data)
{
    ngx_http_audex_jobs_ctx_t *ctx = data;

    ngx_int_t  rc;

    rc = ngx_http_audex_jobs_send(r, ctx);

    ngx_http_audex_jobs_free(ctx);

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_audex_jobs_send(ngx_http_request_t *r,
    ngx_http_audex_jobs_ctx_t *ctx)
{
    u_char      *body, *p, **parts;
    size_t       len, *lens;
    ngx_uint_t   i;

    if (ctx->status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "audex: jobs: mongo: %s", ctx->err);
        return ngx_http_audex_send_error(r, ctx->status, ctx->why);
    }

    if (ctx->status == NGX_HTTP_UNAUTHORIZED) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: jobs: no account \"%s\"", ctx->owner);
        return ngx_http_audex_auth_deny(r, ctx->status, ctx->why);
    }

    if (ctx->status) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: jobs: %s: %s", ctx->job_id, ctx->why);
        return ngx_http_audex_send_error(r, ctx->status, ctx->why);
    }

    if (ctx->op == NGX_HTTP_AUDEX_JOBS_DELETE) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: jobs: %s deleted", ctx->job_id);
        r->headers_out.status = NGX_HTTP_NO_CONTENT;
        r->header_only = 1;
        r->headers_out.content_length_n = 0;
        return ngx_http_send_header(r);
    }

    if (ctx->op == NGX_HTTP_AUDEX_JOBS_GET) {
        if (ctx->unfinished) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "audex: jobs: %s: finishing its deletion: "
                          "mongo: %s", ctx->job_id, ctx->err);
        }

        body = ngx_http_audex_jobs_render(r, ctx, ctx->docs[0], &len);
        if (body == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_audex_send_json(r, NGX_HTTP_OK, body, len);
    }

    parts = ngx_palloc(r->pool, (ctx->ndocs + 1) * sizeof(u_char *));
    lens = ngx_palloc(r->pool, (ctx->ndocs + 1) * sizeof(size_t));
    if (parts == NULL || lens == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"jobs\":[]}\n") - 1 + NGX_HTTP_AUDEX_JOBS_LIMITS_LEN;

    for (i = 0; i < ctx->ndocs; i++) {
        parts[i] = ngx_http_audex_jobs_render(r, ctx, ctx->docs[i],
                                              &lens[i]);
        if (parts[i] == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        len += lens[i] + 1;
    }

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body, "{\"jobs\":[", sizeof("{\"jobs\":[") - 1);

    for (i = 0; i < ctx->ndocs; i++) {
        if (i) {
            *p++ = ',';
        }

        /* each rendering ends with a newline: drop it inside the list */
        p = ngx_cpymem(p, parts[i], lens[i] - 1);
    }

    *p++ = ']';
    p = ngx_http_audex_jobs_limits(r, ctx, p);
    p = ngx_cpymem(p, "}\n", 2);

    return ngx_http_audex_send_json(r, NGX_HTTP_OK, body, p - body);
}


/* A string member as JSON ("..." or null). */

static u_char *
ngx_http_audex_jobs_str(ngx_http_request_t *r, const bson_t *doc,
    const char *name, size_t *len)
{
    char         buf[25];
    uint32_t     n;
    bson_iter_t  it;
    const char  *s;

    if (!bson_iter_init_find(&it, doc, name)) {
        goto null;
    }

    if (BSON_ITER_HOLDS_UTF8(&it)) {
        s = bson_iter_utf8(&it, &n);
        return ngx_http_audex_json_str(r->pool, (u_char *) s, n, len);
    }

    if (BSON_ITER_HOLDS_OID(&it)) {
        bson_oid_to_string(bson_iter_oid(&it), buf);
        return ngx_http_audex_json_str(r->pool, (u_char *) buf, 24, len);
    }

    if (BSON_ITER_HOLDS_DATE_TIME(&it)) {
        u_char     *p;
        int64_t     ms;
        ngx_tm_t    tm;

        ms = bson_iter_date_time(&it);
        ngx_gmtime((time_t) (ms / 1000), &tm);

        p = ngx_pnalloc(r->pool, sizeof("\"1970-01-01T00:00:00.000Z\""));
        if (p == NULL) {
            return NULL;
        }

        *len = ngx_sprintf(p, "\"%4d-%02d-%02dT%02d:%02d:%02d.%03dZ\"",
                           tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                           tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                           (int) (ms % 1000))
               - p;
        return p;
    }

null:

    *len = 4;
    return (u_char *) "null";
}


static u_char *
ngx_http_audex_jobs_render(ngx_http_request_t *r,
    ngx_http_audex_jobs_ctx_t *ctx, const bson_t *doc, size_t *len)
{
    u_char       *body, *p, *v[8], *url;
    size_t        n, vl[8], url_len;
    int64_t       exp;
    int32_t       progress;
    bson_oid_t    mp3;
    bson_iter_t   it;
    ngx_uint_t    i;
    char          sig[AUDEX_LINK_SIG_LEN + 1], fid[25], owner[25];
    static const char  *names[] = {
        "_id", AUDEX_F_STATE, AUDEX_F_VIDEO_FID, AUDEX_F_MP3_FID,
        AUDEX_F_ERROR, AUDEX_F_FILENAME, AUDEX_F_CREATED_AT,
        AUDEX_F_UPDATED_AT
    };

    for (i = 0; i < 8; i++) {
        v[i] = ngx_http_audex_jobs_str(r, doc, names[i], &vl[i]);
        if (v[i] == NULL) {
            return NULL;
        }
    }

    progress = 0;

    if (bson_iter_init_find(&it, doc, AUDEX_F_PROGRESS)) {
        progress = (int32_t) bson_iter_as_int64(&it);
    }

    /*
     * A done job carries a link that works without a token; one being
     * deleted has a mp3_fid still, but its MP3 may be gone already.
     */

    url = (u_char *) "null";
    url_len = 4;

    owner[0] = '\0';

    if (bson_iter_init_find(&it, doc, AUDEX_F_OWNER_ID)
        && BSON_ITER_HOLDS_UTF8(&it))
    {
        ngx_cpystrn((u_char *) owner, (u_char *) bson_iter_utf8(&it, NULL),
                    sizeof(owner));
    }

    if (audex_store_job_state_is(doc, AUDEX_JOB_STATE_DONE)
        && audex_store_job_file(doc, AUDEX_F_MP3_FID, &mp3) == 0
        && ctx->amcf->link_key.len && owner[0])
    {
        bson_oid_to_string(&mp3, fid);
        exp = (int64_t) ngx_time() + ctx->amcf->link_lifetime;

        if (audex_link_sign(ctx->amcf->link_key.data,
                            ctx->amcf->link_key.len, fid, 24, owner,
                            ngx_strlen(owner), exp, sig)
            == 0)
        {
            url = ngx_pnalloc(r->pool, 128);
            if (url == NULL) {
                return NULL;
            }

            url_len = ngx_sprintf(url, "\"/download?fid=%s&exp=%L&sig=%s\"",
                                  fid, exp, sig)
                      - url;
        }
    }

    n = sizeof("{\"job_id\":,\"state\":,\"progress\":,\"video_fid\":,"
               "\"mp3_fid\":,\"error\":,\"filename\":,\"created_at\":,"
               "\"updated_at\":,\"download_url\":}\n") - 1
        + NGX_INT32_LEN + url_len;

    for (i = 0; i < 8; i++) {
        n += vl[i];
    }

    body = ngx_pnalloc(r->pool, n);
    if (body == NULL) {
        return NULL;
    }

    p = ngx_sprintf(body, "{\"job_id\":%*s,\"state\":%*s,\"progress\":%D,"
                    "\"video_fid\":%*s,\"mp3_fid\":%*s,\"error\":%*s,"
                    "\"filename\":%*s,\"created_at\":%*s,"
                    "\"updated_at\":%*s,\"download_url\":%*s}\n",
                    vl[0], v[0], vl[1], v[1], progress, vl[2], v[2],
                    vl[3], v[3], vl[4], v[4], vl[5], v[5], vl[6], v[6],
                    vl[7], v[7], url_len, url);

    *len = p - body;

    return body;
}


static void
ngx_http_audex_jobs_free(ngx_http_audex_jobs_ctx_t *ctx)
{
    ngx_uint_t  i;

    for (i = 0; i < ctx->ndocs; i++) {
        bson_destroy(ctx->docs[i]);
    }

    free(ctx->docs);
    ctx->docs = NULL;
    ctx->ndocs = 0;
}
