/*
 * GET /download?fid=<id>: an MP3 from the "mp3s" GridFS bucket.
 *
 * The files document is looked up in a pool thread; then the chunks the
 * answer needs are read one at a time, each in a pool thread, by _id
 * (store layer), into two buffers of the bucket's chunk size: chunk n+1
 * is read while chunk n is being sent, so the pipe stays full, and no
 * chunk is read before the buffer it goes into has left for the client,
 * so memory does not grow with the file and a slow client slows the
 * reads (backpressure).
 *
 * Access: anyone with a signed link (audex_link_secret) that has not
 * expired, whatever token comes with it, or the owner or an admin with a
 * token.  A link only adds a right: a bad one with a token leaves the
 * token to decide.  Anyone else learns nothing: 404, as for a file that
 * does not exist.
 *
 * Conditional and range requests are nginx's, as for a static file: the
 * answer starts as a 200 with ETag (r->headers_out.etag) and
 * last_modified_time, and nginx's header filters decide.  The
 * not-modified filter answers If-None-Match and If-Modified-Since with
 * 304 and failing If-Match or If-Unmodified-Since with 412; the range
 * filter (r->allow_ranges, one range only) applies If-Range and decides
 * between 206 and 416 (answered with our JSON error).  Only the bytes
 * then go around it: the flow reads from the chunk the range starts in,
 * never from chunk 0, having told the range filter where its body starts
 * (r->headers_out.content_offset, as the slice module does).
 *
 * A GET reads the chunk its body starts with before the header is sent,
 * so that a backend that fails then is still answered: 503 with
 * Retry-After when the server failed, 500 when the chunk is missing or
 * damaged.  Once the header is out, a failure can only close the
 * connection (the client sees a body shorter than Content-Length).  A
 * request that may be answered 304 (If-None-Match, If-Modified-Since)
 * and a HEAD read nothing before the header: a 304 costs no chunk.
 */


#include "ngx_http_audex_module.h"

#include "audex_link.h"
#include "audex_utf8.h"


typedef struct {
    ngx_http_audex_main_conf_t  *amcf;

    bson_oid_t                   oid;
    u_char                       fid[25];

    /* the files document */
    ngx_int_t                    found;
    off_t                        length;
    size_t                       chunk_size;
    int64_t                      upload_ms;   /* 0 when it has none */
    u_char                       sha256[AUDEX_SHA256_HEX_LEN + 1];
    u_char                       owner[25];
    u_char                       filename[512];
    size_t                       filename_len;

    /* the range being sent, [start, end] inclusive */
    off_t                        start;
    off_t                        end;
    int64_t                      chunk;       /* the next to read */
    int64_t                      last_chunk;

    /* two chunk buffers: one on the wire, one being read */
    u_char                      *buf[2];
    size_t                       buf_len[2];  /* bytes read into each */
    int64_t                      buf_chunk[2];
    ngx_buf_t                    out[2];

    /* the pool thread's side: which buffer, how it went */
    ngx_uint_t                   read_idx;
    ngx_uint_t                   failed;
    ngx_uint_t                   damaged;     /* the chunk, not the server */
    char                         err[NGX_HTTP_AUDEX_ERRLEN];

    /* the event loop's side */
    unsigned                     reading:1;   /* a read is in flight */
    unsigned                     ready:1;     /* buf[read_idx] is read */
    unsigned                     wire_busy:1; /* output still buffered */
    unsigned                     body:1;      /* the header is out, a
                                                 body follows */
    ngx_int_t                    rc;          /* a failure to end with */
} ngx_http_audex_download_ctx_t;


/* what the pump returns when the flow waits for a read or the client */
#define NGX_HTTP_AUDEX_DOWNLOAD_WAIT  NGX_DECLINED


static ngx_int_t ngx_http_audex_download_handler(ngx_http_request_t *r);
static void ngx_http_audex_download_stat(void *data, ngx_log_t *log);
static void ngx_http_audex_download_stat_done(ngx_http_request_t *r,
    void *data);
static ngx_uint_t ngx_http_audex_download_allowed(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx, const char **why);
static int ngx_http_audex_download_link(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx, ngx_str_t *sig);
static void ngx_http_audex_download_sha256(
    ngx_http_audex_download_ctx_t *ctx, const char *s, uint32_t len);
static ngx_int_t ngx_http_audex_download_early(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx);
static void ngx_http_audex_download_early_done(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx);
static void ngx_http_audex_download_start(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx);
static ngx_int_t ngx_http_audex_download_buffers(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx);
static ngx_int_t ngx_http_audex_download_header(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx);
static off_t ngx_http_audex_download_first_byte(ngx_http_request_t *r,
    off_t length);
static ngx_int_t ngx_http_audex_download_etag(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx);
static ngx_table_elt_t *ngx_http_audex_download_disposition(
    ngx_http_request_t *r, ngx_http_audex_download_ctx_t *ctx);
static ngx_int_t ngx_http_audex_download_pump(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx);
static ngx_int_t ngx_http_audex_download_post(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx);
static ngx_int_t ngx_http_audex_download_send(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx);
static void ngx_http_audex_download_wait(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx);
static void ngx_http_audex_download_read(void *data, ngx_log_t *log);
static void ngx_http_audex_download_read_done(ngx_http_request_t *r,
    void *data);
static void ngx_http_audex_download_write_handler(ngx_http_request_t *r);


char *
ngx_http_audex_download(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_audex_set_handler(cf, cmd,
                                      ngx_http_audex_download_handler,
                                      NGX_HTTP_AUDEX_H_DOWNLOAD);
}


/*
 * Called when the location's configuration is merged.  A token needs
 * audex_auth and a signed link needs audex_link_secret; either alone is
 * a working location ("audex_auth off": links only, "on": tokens only).
 * "optional" (or "off") without a secret would refuse every link.
 */

char *
ngx_http_audex_download_merge(ngx_conf_t *cf,
    ngx_http_audex_loc_conf_t *alcf)
{
    ngx_http_audex_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_audex_module);

    if (amcf->link_key.len == 0
        && (alcf->auth == NGX_HTTP_AUDEX_AUTH_OFF
            || alcf->auth == NGX_HTTP_AUDEX_AUTH_OPTIONAL))
    {
        return ngx_http_audex_conf_needs(cf, alcf,
                                         "audex_link_secret at http level",
                                         "it verifies signed links "
                                         "(\"audex_auth on\" serves "
                                         "tokens only)");
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_audex_download_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_str_t                       fid;
    ngx_http_audex_download_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_audex_method_not_allowed(r, "GET, HEAD");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_arg(r, (u_char *) "fid", 3, &fid) != NGX_OK
        || fid.len != 24
        || !bson_oid_is_valid((char *) fid.data, fid.len))
    {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: download: invalid file id");
        return ngx_http_audex_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid file id");
    }

    ctx = ngx_http_audex_thread_alloc(r,
                                      sizeof(ngx_http_audex_download_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(ctx, sizeof(ngx_http_audex_download_ctx_t));

    ctx->amcf = ngx_http_get_module_main_conf(r, ngx_http_audex_module);
    ngx_memcpy(ctx->fid, fid.data, 24);
    ngx_strlow(ctx->fid, ctx->fid, 24);
    bson_oid_init_from_string(&ctx->oid, (char *) ctx->fid);

    return ngx_http_audex_thread_start(r, ctx, ngx_http_audex_download_stat,
                                       ngx_http_audex_download_stat_done,
                                       "download");
}


/* pool thread: the files document */

static void
ngx_http_audex_download_stat(void *data, ngx_log_t *log)
{
    ngx_http_audex_download_ctx_t *ctx = data;

    bson_t               *filter;
    int64_t               length, chunk_size;
    uint32_t              len;
    bson_iter_t           it, sub;
    const char           *s;
    const bson_t         *doc;
    bson_error_t          error;
    mongoc_client_t      *client;
    mongoc_cursor_t      *cursor;
    mongoc_collection_t  *files;

    client = ngx_http_audex_mongo_pop(ctx->amcf);
    files = mongoc_client_get_collection(client, ctx->amcf->mongo_db,
                                         AUDEX_MP3S_FILES);
    filter = BCON_NEW("_id", BCON_OID(&ctx->oid));
    cursor = mongoc_collection_find_with_opts(files, filter, NULL, NULL);

    if (mongoc_cursor_next(cursor, &doc)) {
        ctx->found = 1;

        if (audex_store_file_geometry(doc, &length, &chunk_size) == 0) {
            ctx->length = (off_t) length;
            ctx->chunk_size = (size_t) chunk_size;

        } else {
            ngx_cpystrn((u_char *) ctx->err,
                        (u_char *) "corrupt files document",
                        NGX_HTTP_AUDEX_ERRLEN);
            ctx->failed = 1;
        }

        if (bson_iter_init_find(&it, doc, "uploadDate")
            && BSON_ITER_HOLDS_DATE_TIME(&it))
        {
            ctx->upload_ms = bson_iter_date_time(&it);
        }

        if (bson_iter_init_find(&it, doc, "filename")
            && BSON_ITER_HOLDS_UTF8(&it))
        {
            s = bson_iter_utf8(&it, &len);
            ctx->filename_len = ngx_min(len, sizeof(ctx->filename) - 1);
            ngx_memcpy(ctx->filename, s, ctx->filename_len);
        }

        if (bson_iter_init_find(&it, doc, "metadata")
            && BSON_ITER_HOLDS_DOCUMENT(&it)
            && bson_iter_recurse(&it, &sub)
            && bson_iter_find(&sub, AUDEX_F_OWNER_ID))
        {
            if (BSON_ITER_HOLDS_UTF8(&sub)) {
                s = bson_iter_utf8(&sub, &len);
                if (len == 24) {
                    ngx_memcpy(ctx->owner, s, 24);
                }

            } else if (BSON_ITER_HOLDS_OID(&sub)) {
                bson_oid_to_string(bson_iter_oid(&sub), (char *) ctx->owner);
            }
        }

        if (bson_iter_init_find(&it, doc, "metadata")
            && BSON_ITER_HOLDS_DOCUMENT(&it)
            && bson_iter_recurse(&it, &sub)
            && bson_iter_find(&sub, AUDEX_F_SHA256)
            && BSON_ITER_HOLDS_UTF8(&sub))
        {
            s = bson_iter_utf8(&sub, &len);
            ngx_http_audex_download_sha256(ctx, s, len);
        }
    }

    if (mongoc_cursor_error(cursor, &error)) {
        ngx_cpystrn((u_char *) ctx->err, (u_char *) error.message,
                    NGX_HTTP_AUDEX_ERRLEN);
        ctx->failed = 1;
    }

    mongoc_cursor_destroy(cursor);
    bson_destroy(filter);
    mongoc_collection_destroy(files);
    ngx_http_audex_mongo_push(ctx->amcf, client);
}


static void
ngx_http_audex_download_stat_done(ngx_http_request_t *r, void *data)
{
    ngx_http_audex_download_ctx_t *ctx = data;

    ngx_int_t              rc;
    ngx_uint_t             status;
    const char            *why;
    ngx_http_audex_ctx_t  *actx;

    if (ctx->failed) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "audex: download %s: mongo: %s", ctx->fid, ctx->err);
        ngx_http_finalize_request(r,
            ngx_http_audex_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "database unavailable"));
        return;
    }

    status = ngx_http_audex_download_allowed(r, ctx, &why);

    if (status) {
        ngx_http_finalize_request(r,
                                  ngx_http_audex_auth_deny(r, status, why));
        return;
    }

    actx = ngx_http_audex_get_ctx(r);
    if (actx == NULL) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    actx->data = ctx;

    rc = ngx_http_audex_download_early(r, ctx);

    if (rc != NGX_DECLINED) {
        if (rc != NGX_OK) {
            ngx_http_finalize_request(r, rc);
        }

        return;
    }

    ngx_http_audex_download_start(r, ctx);
}


/*
 * 0 when the caller may have the file, else the status to answer (404
 * for a missing file and for one that is not the caller's, 401 without
 * credentials, 403 for a bad or expired link without a token) and *why
 * for the body.
 */

static ngx_uint_t
ngx_http_audex_download_allowed(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx, const char **why)
{
    int                     vrc;
    ngx_str_t               sig;
    ngx_uint_t              link;
    ngx_http_audex_user_t  *user;

    user = ngx_http_audex_auth_user(r);
    link = (ngx_http_arg(r, (u_char *) "sig", 3, &sig) == NGX_OK);

    if (!link && user == NULL) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: download %s: no token and no link", ctx->fid);
        *why = "token required";
        return NGX_HTTP_UNAUTHORIZED;
    }

    if (!ctx->found) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: download %s: no such file", ctx->fid);
        *why = "not found";
        return NGX_HTTP_NOT_FOUND;
    }

    if (link) {
        /* the link alone decides: a link mailed to its owner works in
         * a client that also holds someone else's token */
        vrc = ngx_http_audex_download_link(r, ctx, &sig);

        if (vrc == 0) {
            return 0;
        }

        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: download %s: %s link%s", ctx->fid,
                      vrc == -2 ? "expired" : "invalid",
                      user ? ", the token decides" : "");

        if (user == NULL) {
            *why = (vrc == -2) ? "link expired" : "invalid link";
            return NGX_HTTP_FORBIDDEN;
        }
    }

    if (user->admin
        || (user->user_id.len == 24
            && ngx_strncmp(user->user_id.data, ctx->owner, 24) == 0))
    {
        return 0;
    }

    ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                  "audex: download %s: not a file of \"%V\"", ctx->fid,
                  &user->email);
    *why = "not found";
    return NGX_HTTP_NOT_FOUND;
}


/* 0: a good link, -2: an expired one, -1: anything else */

static int
ngx_http_audex_download_link(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx, ngx_str_t *sig)
{
    ngx_str_t                    exp;
    ngx_int_t                    n;
    ngx_http_audex_main_conf_t  *amcf = ctx->amcf;

    if (amcf->link_key.len == 0
        || ngx_http_arg(r, (u_char *) "exp", 3, &exp) != NGX_OK)
    {
        return -1;
    }

    n = ngx_atoi(exp.data, exp.len);
    if (n == NGX_ERROR) {
        return -1;
    }

    return audex_link_verify(amcf->link_key.data, amcf->link_key.len,
                             (char *) ctx->fid, 24, (char *) ctx->owner,
                             ngx_strlen(ctx->owner), (int64_t) n,
                             (char *) sig->data, sig->len,
                             (int64_t) ngx_time());
}


/* pool thread: a digest that is 64 hex digits, lower-cased, or none */

static void
ngx_http_audex_download_sha256(ngx_http_audex_download_ctx_t *ctx,
    const char *s, uint32_t len)
{
    u_char      c;
    ngx_uint_t  i;

    if (len != AUDEX_SHA256_HEX_LEN) {
        return;
    }

    for (i = 0; i < AUDEX_SHA256_HEX_LEN; i++) {
        c = (u_char) s[i];

        if (c >= 'A' && c <= 'F') {
            c |= 0x20;

        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            ctx->sha256[0] = '\0';
            return;
        }

        ctx->sha256[i] = c;
    }

    ctx->sha256[AUDEX_SHA256_HEX_LEN] = '\0';
}


/*
 * Starts reading the chunk the body starts with, before the header (see
 * the top of the file): NGX_OK when the read is in flight (its
 * completion goes on), NGX_DECLINED when this request reads nothing
 * before its header, else the code to finalize with.
 */

static ngx_int_t
ngx_http_audex_download_early(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    off_t  from;

    if (r->method != NGX_HTTP_GET
        || ctx->length == 0
        || r->headers_in.if_none_match
        || r->headers_in.if_modified_since)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_audex_download_buffers(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    from = ngx_http_audex_download_first_byte(r, ctx->length);

    if (from >= ctx->length) {
        /* a 416: nothing to read */
        return NGX_DECLINED;
    }

    ctx->chunk = from / (off_t) ctx->chunk_size;

    if (ngx_http_audex_download_post(r, ctx) != NGX_OK) {
        return ngx_http_audex_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "server busy");
    }

    return NGX_OK;
}


/* The chunk read before the header is back: the header, or the error. */

static void
ngx_http_audex_download_early_done(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    if (ctx->rc != NGX_OK) {
        /* the read timed out (send_timeout) */
        ngx_http_finalize_request(r, ctx->rc);
        return;
    }

    if (ctx->failed) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "audex: download %s: chunk %L: %s", ctx->fid,
                      ctx->buf_chunk[ctx->read_idx], ctx->err);

        ngx_http_finalize_request(r, ctx->damaged
            ? ngx_http_audex_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "the file is damaged")
            : ngx_http_audex_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "database unavailable"));
        return;
    }

    ctx->ready = 1;

    ngx_http_audex_download_start(r, ctx);
}


/* sends the header, then the body when one follows (ctx->body) */

static void
ngx_http_audex_download_start(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_audex_download_header(r, ctx);

    if (!ctx->body || rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    rc = ngx_http_audex_download_pump(r, ctx);

    if (rc != NGX_HTTP_AUDEX_DOWNLOAD_WAIT) {
        ngx_http_finalize_request(r, rc);
    }
}


/* the two chunk buffers, once */

static ngx_int_t
ngx_http_audex_download_buffers(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    if (ctx->buf[0] != NULL) {
        return NGX_OK;
    }

    ctx->buf[0] = ngx_palloc(r->pool, ctx->chunk_size);
    ctx->buf[1] = ngx_palloc(r->pool, ctx->chunk_size);

    return (ctx->buf[0] && ctx->buf[1]) ? NGX_OK : NGX_ERROR;
}


/*
 * Sends the header of a 200 for the whole file and lets nginx's filters
 * turn it into a 304, 412, 206 or 416 (see the top of the file).
 * Returns NGX_OK with ctx->body set when a body is to follow, with
 * ctx->start and ctx->end set to what it holds, else the code to
 * finalize with.  A chunk read before (ctx->ready) is kept when the body
 * starts in it, else dropped.
 */

static ngx_int_t
ngx_http_audex_download_header(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    off_t             from;
    ngx_int_t         rc;
    ngx_table_elt_t  *disposition;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = ctx->length;
    r->headers_out.last_modified_time = ctx->upload_ms
                                        ? (time_t) (ctx->upload_ms / 1000)
                                        : (time_t) -1;

    ngx_str_set(&r->headers_out.content_type, "audio/mpeg");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (ngx_http_audex_download_etag(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    disposition = ngx_http_audex_download_disposition(r, ctx);
    if (disposition == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* several ranges would need the whole body in one buffer: all of it */
    r->allow_ranges = 1;
    r->single_range = 1;

    from = ngx_http_audex_download_first_byte(r, ctx->length);
    r->headers_out.content_offset = from;

    if (ctx->length == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_HTTP_RANGE_NOT_SATISFIABLE) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: download %s: range not satisfiable", ctx->fid);

        /*
         * nginx has decided and set Content-Range; the answer is an
         * audex error, which is not the file
         */
        disposition->hash = 0;

        return ngx_http_audex_send_error(r, NGX_HTTP_RANGE_NOT_SATISFIABLE,
                                         "range not satisfiable");
    }

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    ctx->start = 0;
    ctx->end = ctx->length - 1;

    if (r->headers_out.status == NGX_HTTP_PARTIAL_CONTENT) {

        /* the range filter trims what comes from "from" on */

        if (r->headers_out.content_offset < from) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "audex: download %s: range starts at %O, "
                          "reading from %O", ctx->fid,
                          r->headers_out.content_offset, from);
            return NGX_ERROR;
        }

        ctx->start = from;
        ctx->end = r->headers_out.content_offset
                   + r->headers_out.content_length_n - 1;
    }

    ctx->chunk = ctx->start / (off_t) ctx->chunk_size;
    ctx->last_chunk = ctx->end / (off_t) ctx->chunk_size;

    if (ctx->ready) {
        if (ctx->buf_chunk[ctx->read_idx] == ctx->chunk) {
            ctx->chunk++;

        } else {
            /* If-Range sent the whole file after all */
            ctx->ready = 0;
        }
    }

    if (ngx_http_audex_download_buffers(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->body = 1;

    return NGX_OK;
}


/*
 * Where the body starts, decided before nginx's range filter looks at
 * the request: the first byte of a single "bytes=" range, read the way
 * the filter reads it, so that reading starts in that byte's chunk; 0
 * for anything else (no range, several, one this does not follow).  It
 * may fall short of the filter's start, which then trims the difference,
 * but must never pass it.
 */

static off_t
ngx_http_audex_download_first_byte(ngx_http_request_t *r, off_t length)
{
    u_char      *p, *last;
    off_t        n;
    ngx_uint_t   suffix, digits;

    if (r->headers_in.range == NULL
        || r->headers_in.range->value.len < 7
        || ngx_strncasecmp(r->headers_in.range->value.data,
                           (u_char *) "bytes=", 6)
           != 0)
    {
        return 0;
    }

    p = r->headers_in.range->value.data + 6;
    last = r->headers_in.range->value.data + r->headers_in.range->value.len;

    if (ngx_strlchr(p, last, ',') != NULL) {
        return 0;
    }

    while (p < last && *p == ' ') {
        p++;
    }

    suffix = (p < last && *p == '-');

    if (suffix) {
        p++;
    }

    n = 0;

    for (digits = 0; p < last && *p >= '0' && *p <= '9'; digits++) {
        if (n >= NGX_MAX_OFF_T_VALUE / 10) {
            return 0;
        }

        n = n * 10 + (*p++ - '0');
    }

    if (digits == 0) {
        return 0;
    }

    if (suffix) {
        return (n < length) ? length - n : 0;
    }

    return n;
}


/*
 * The file's validator, unless "etag off": strong, "sha256-<hex>", from
 * the digest of its bytes the writer stored, so every nginx gives the
 * same one; without a digest (a file from before it was stored, or from
 * another tool) weak, from its id, length and upload time, which change
 * with the content but do not prove it.
 */

static ngx_int_t
ngx_http_audex_download_etag(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    size_t                     len;
    ngx_table_elt_t           *etag;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (!clcf->etag) {
        return NGX_OK;
    }

    etag = ngx_list_push(&r->headers_out.headers);
    if (etag == NULL) {
        return NGX_ERROR;
    }

    len = ngx_max(sizeof("\"sha256-\"") - 1 + AUDEX_SHA256_HEX_LEN,
                  sizeof("W/\"--\"") - 1 + 24 + NGX_OFF_T_LEN
                  + NGX_INT64_LEN);

    etag->value.data = ngx_pnalloc(r->pool, len);
    if (etag->value.data == NULL) {
        return NGX_ERROR;
    }

    etag->hash = 1;
    ngx_str_set(&etag->key, "ETag");
#if (nginx_version >= 1023000)
    etag->next = NULL;
#endif

    if (ctx->sha256[0]) {
        etag->value.len = ngx_sprintf(etag->value.data, "\"sha256-%*s\"",
                                      (size_t) AUDEX_SHA256_HEX_LEN,
                                      ctx->sha256)
                          - etag->value.data;

    } else {
        etag->value.len = ngx_sprintf(etag->value.data, "W/\"%*s-%xO-%xL\"",
                                      (size_t) 24, ctx->fid, ctx->length,
                                      ctx->upload_ms)
                          - etag->value.data;
    }

    r->headers_out.etag = etag;

    return NGX_OK;
}


/*
 * Content-Disposition: an ASCII fallback in filename="..." (accents
 * dropped, other characters, quotes and backslashes one '_' each), and
 * the real name percent-encoded in filename*=UTF-8''... (RFC 6266).
 * NULL on failure.
 */

static ngx_table_elt_t *
ngx_http_audex_download_disposition(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    u_char           *p, *q;
    size_t            len;
    int               ascii;
    ngx_uint_t        has_ext;
    ngx_table_elt_t  *h;

    has_ext = ctx->filename_len >= 4
              && ngx_strncasecmp(ctx->filename + ctx->filename_len - 4,
                                 (u_char *) ".mp3", 4) == 0;

    len = sizeof("attachment; filename=\"\"; filename*=UTF-8''") - 1
          + ctx->filename_len * 4 + sizeof(".mp3") * 4;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NULL;
    }

    q = ngx_cpymem(p, "attachment; filename=\"",
                   sizeof("attachment; filename=\"") - 1);
    q += audex_utf8_to_ascii(q, ctx->filename, ctx->filename_len, &ascii);

    if (ctx->filename_len == 0) {
        q = ngx_cpymem(q, ctx->fid, 24);
    }

    if (!has_ext) {
        q = ngx_cpymem(q, ".mp3", 4);
    }

    *q++ = '"';

    if (!ascii) {
        q = ngx_cpymem(q, "; filename*=UTF-8''",
                       sizeof("; filename*=UTF-8''") - 1);
        q = (u_char *) ngx_escape_uri(q, ctx->filename, ctx->filename_len,
                                      NGX_ESCAPE_URI_COMPONENT);
        if (!has_ext) {
            q = ngx_cpymem(q, ".mp3", 4);
        }
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Content-Disposition");
    h->value.data = p;
    h->value.len = q - p;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return h;
}


/*
 * The event loop's part, called when the header is out, when a read
 * finishes and when the client has taken what was sent: sends a chunk
 * that is read, starts reading the next one, and says what the caller
 * does: NGX_HTTP_AUDEX_DOWNLOAD_WAIT (nothing: a read or the client will
 * call again), or the code to finalize the request with.
 *
 * The flow holds the one reference the content handler took; only the
 * caller that gets a code other than WAIT finalizes, once.
 */

static ngx_int_t
ngx_http_audex_download_pump(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (r->header_only) {
        return NGX_OK;
    }

    for ( ;; ) {
        if (ctx->rc != NGX_OK) {
            /* a read in flight owns the task: end when it is back */
            return ctx->reading ? NGX_HTTP_AUDEX_DOWNLOAD_WAIT : ctx->rc;
        }

        if (ctx->wire_busy) {
            return NGX_HTTP_AUDEX_DOWNLOAD_WAIT;
        }

        if (!ctx->ready) {
            if (ctx->reading) {
                return NGX_HTTP_AUDEX_DOWNLOAD_WAIT;
            }

            /* the first chunk: later ones are posted as each is sent */
            if (ngx_http_audex_download_post(r, ctx) != NGX_OK) {
                return NGX_ERROR;
            }

            return NGX_HTTP_AUDEX_DOWNLOAD_WAIT;
        }

        rc = ngx_http_audex_download_send(r, ctx);

        if (rc != NGX_HTTP_AUDEX_DOWNLOAD_WAIT) {
            return rc;
        }
    }
}


/* starts reading chunk ctx->chunk into the buffer not on the wire */

static ngx_int_t
ngx_http_audex_download_post(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    ngx_event_t               *wev;
    ngx_http_core_loc_conf_t  *clcf;

    /*
     * A timer runs while a read is in flight: it bounds the read, and a
     * worker that is shutting down waits for connections with timers
     */
    wev = r->connection->write;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    r->write_event_handler = ngx_http_audex_download_write_handler;

    /* each read gets the whole timeout: re-armed, not left running */
    ngx_add_timer(wev, clcf->send_timeout);

    ctx->read_idx = ctx->chunk & 1;
    ctx->buf_chunk[ctx->read_idx] = ctx->chunk;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "audex: download %s: reading chunk %L", ctx->fid,
                   ctx->chunk);

    if (ngx_http_audex_thread_post(r, ctx, ngx_http_audex_download_read,
                                   ngx_http_audex_download_read_done)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "audex: download %s: the thread pool queue is full",
                      ctx->fid);
        return NGX_ERROR;
    }

    ctx->reading = 1;
    ctx->chunk++;

    return NGX_OK;
}


/*
 * Sends the chunk that is read, and starts reading the next one into the
 * other buffer while it goes out.  WAIT when the pump goes on (the wire
 * is busy or idle again), else the code to finalize with.
 */

static ngx_int_t
ngx_http_audex_download_send(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    off_t         first, from, to;
    int64_t       n;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_uint_t    i;
    ngx_chain_t   out;

    i = ctx->read_idx;
    n = ctx->buf_chunk[i];
    ctx->ready = 0;

    first = n * (off_t) ctx->chunk_size;
    from = ngx_max(ctx->start - first, 0);
    to = ngx_min(ctx->end - first + 1, (off_t) ctx->buf_len[i]);

    if (to <= from) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "audex: download %s: chunk %L: short chunk", ctx->fid,
                      n);
        return NGX_ERROR;
    }

    b = &ctx->out[i];
    ngx_memzero(b, sizeof(ngx_buf_t));
    b->pos = ctx->buf[i] + from;
    b->last = ctx->buf[i] + to;
    b->memory = 1;
    b->flush = 1;

    if (n == ctx->last_chunk) {
        b->last_buf = 1;
        b->last_in_chain = 1;
    }

    out.buf = b;
    out.next = NULL;

    ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_DOWNLOAD_BYTES, to - from);

    /* the next chunk goes into the other buffer while this one is sent */
    if (!b->last_buf && ngx_http_audex_download_post(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_output_filter(r, &out);

    if (rc == NGX_ERROR) {
        ctx->rc = NGX_ERROR;
        return NGX_HTTP_AUDEX_DOWNLOAD_WAIT;
    }

    if (b->last_buf) {
        /* ngx_http_finalize_request sends what is left, then ends */
        return rc;
    }

    if (r->buffered || r->connection->buffered) {
        ngx_http_audex_download_wait(r, ctx);
    }

    return NGX_HTTP_AUDEX_DOWNLOAD_WAIT;
}


/* the client has not taken all yet: the write handler goes on */

static void
ngx_http_audex_download_wait(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    ngx_event_t               *wev;
    ngx_http_core_loc_conf_t  *clcf;

    wev = r->connection->write;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ctx->wire_busy = 1;

    if (!wev->delayed) {
        ngx_add_timer(wev, clcf->send_timeout);
    }

    if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
        ctx->rc = NGX_ERROR;
    }
}


/* pool thread: chunk buf_chunk[read_idx] into buf[read_idx] */

static void
ngx_http_audex_download_read(void *data, ngx_log_t *log)
{
    ngx_http_audex_download_ctx_t *ctx = data;

    ssize_t               len;
    int64_t               n;
    ngx_uint_t            i;
    bson_error_t          error;
    mongoc_client_t      *client;
    mongoc_collection_t  *chunks;

    i = ctx->read_idx;
    n = ctx->buf_chunk[i];
    ctx->buf_len[i] = 0;

    client = ngx_http_audex_mongo_pop(ctx->amcf);
    chunks = mongoc_client_get_collection(client, ctx->amcf->mongo_db,
                                          AUDEX_MP3S_CHUNKS);

    len = audex_store_chunk_get(chunks, &ctx->oid, (int32_t) n, ctx->buf[i],
                                ctx->chunk_size, &error);

    switch (len) {

    case AUDEX_STORE_ERROR:
        ngx_cpystrn((u_char *) ctx->err, (u_char *) error.message,
                    NGX_HTTP_AUDEX_ERRLEN);
        ctx->failed = 1;
        break;

    case AUDEX_STORE_MISSING:
        ngx_snprintf((u_char *) ctx->err, NGX_HTTP_AUDEX_ERRLEN,
                     "chunk %L is missing%Z", n);
        ctx->failed = 1;
        ctx->damaged = 1;
        break;

    case AUDEX_STORE_CORRUPT:
        ngx_snprintf((u_char *) ctx->err, NGX_HTTP_AUDEX_ERRLEN,
                     "chunk %L has no data or too much%Z", n);
        ctx->failed = 1;
        ctx->damaged = 1;
        break;

    default:
        /*
         * every chunk but the last is whole, the last holds the rest: a
         * shorter one would leave the body short of its Content-Length
         * and the connection out of step with the client
         */
        if ((off_t) len != ngx_min((off_t) ctx->chunk_size,
                                   ctx->length - n * (off_t) ctx->chunk_size))
        {
            ngx_snprintf((u_char *) ctx->err, NGX_HTTP_AUDEX_ERRLEN,
                         "chunk %L has %z bytes, not what the file's "
                         "length says%Z", n, len);
            ctx->failed = 1;
            ctx->damaged = 1;
            break;
        }

        ctx->buf_len[i] = (size_t) len;
    }

    mongoc_collection_destroy(chunks);
    ngx_http_audex_mongo_push(ctx->amcf, client);
}


static void
ngx_http_audex_download_read_done(ngx_http_request_t *r, void *data)
{
    ngx_http_audex_download_ctx_t *ctx = data;

    ngx_int_t  rc;

    ctx->reading = 0;

    if (!r->header_sent) {
        ngx_http_audex_download_early_done(r, ctx);
        return;
    }

    /* the header is out: a failure now can only cut the connection */

    if (ctx->failed && ctx->rc == NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "audex: download %s: chunk %L: %s", ctx->fid,
                      ctx->buf_chunk[ctx->read_idx], ctx->err);
        ctx->rc = NGX_ERROR;
    }

    ctx->ready = !ctx->failed;

    rc = ngx_http_audex_download_pump(r, ctx);

    if (rc != NGX_HTTP_AUDEX_DOWNLOAD_WAIT) {
        ngx_http_finalize_request(r, rc);
    }
}


/* Flushes what is on the wire; the pump goes on once it is out. */

static void
ngx_http_audex_download_write_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_event_t                    *wev;
    ngx_connection_t               *c;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_audex_download_ctx_t  *ctx;

    c = r->connection;
    wev = c->write;
    ctx = ngx_http_audex_get_ctx(r)->data;

    if (wev->timedout) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, c->log, NGX_ETIMEDOUT,
                      ctx->wire_busy ? "audex: download: client timed out"
                                     : "audex: download: a read timed out");
        c->timedout = 1;
        ctx->rc = NGX_HTTP_REQUEST_TIME_OUT;
        ctx->wire_busy = 0;
        goto pump;
    }

    if (!ctx->wire_busy) {
        /* nothing on the wire: the read in flight goes on */
        return;
    }

    rc = ngx_http_output_filter(r, NULL);

    if (rc == NGX_ERROR) {
        ctx->rc = NGX_ERROR;
        ctx->wire_busy = 0;
        goto pump;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->buffered || c->buffered) {
        if (!wev->delayed) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        if (ngx_handle_write_event(wev, clcf->send_lowat) == NGX_OK) {
            return;
        }

        ctx->rc = NGX_ERROR;
    }

    /* the timer stays while a read is in flight (see _post) */
    if (wev->timer_set && !ctx->reading) {
        ngx_del_timer(wev);
    }

    ctx->wire_busy = 0;

pump:

    rc = ngx_http_audex_download_pump(r, ctx);

    if (rc != NGX_HTTP_AUDEX_DOWNLOAD_WAIT) {
        ngx_http_finalize_request(r, rc);
    }
}
