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
 * Access: the owner or an admin with a token, or anyone with a signed
 * link (audex_link_secret) that has not expired.  Anyone else learns
 * nothing: 404, as for a file that does not exist.
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
    time_t                       upload_time;
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
    char                         err[NGX_HTTP_AUDEX_ERRLEN];

    /* the event loop's side */
    unsigned                     reading:1;   /* a read is in flight */
    unsigned                     ready:1;     /* buf[read_idx] is read */
    unsigned                     wire_busy:1; /* output still buffered */
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
static ngx_int_t ngx_http_audex_download_range(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx);
static ngx_int_t ngx_http_audex_download_headers(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx, ngx_uint_t partial);
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
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
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

    if (ngx_http_audex_thread_post(r, ctx, ngx_http_audex_download_stat,
                                   ngx_http_audex_download_stat_done)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "audex: download: the thread pool queue is full");
        return ngx_http_audex_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "server busy");
    }

    r->main->count++;

    return NGX_DONE;
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
            ctx->upload_time = (time_t) (bson_iter_date_time(&it) / 1000);
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
            && bson_iter_find(&sub, "owner_id"))
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

    /* sends the header; a body follows only when ctx->buf is set */

    rc = ngx_http_audex_download_range(r, ctx);

    if (ctx->buf[0] == NULL || rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    actx = ngx_http_audex_get_ctx(r);
    if (actx == NULL) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    actx->data = ctx;

    rc = ngx_http_audex_download_pump(r, ctx);

    if (rc != NGX_HTTP_AUDEX_DOWNLOAD_WAIT) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * 0 when the caller may have the file, else the status to answer (404
 * for a missing file and for one that is not the caller's, 401 without
 * credentials, 403 for a bad or expired link) and *why for the body.
 */

static ngx_uint_t
ngx_http_audex_download_allowed(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx, const char **why)
{
    int                          vrc;
    ngx_str_t                    sig, exp;
    ngx_int_t                    n;
    ngx_http_audex_user_t       *user;
    ngx_http_audex_main_conf_t  *amcf = ctx->amcf;

    user = ngx_http_audex_auth_user(r);

    if (ngx_http_arg(r, (u_char *) "sig", 3, &sig) != NGX_OK && user == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "audex: download %s: no token and no link", ctx->fid);
        *why = "token required";
        return NGX_HTTP_UNAUTHORIZED;
    }

    if (!ctx->found) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "audex: download %s: no such file", ctx->fid);
        *why = "not found";
        return NGX_HTTP_NOT_FOUND;
    }

    if (user == NULL) {
        n = NGX_ERROR;

        if (ngx_http_arg(r, (u_char *) "exp", 3, &exp) == NGX_OK) {
            n = ngx_atoi(exp.data, exp.len);
        }

        vrc = -1;

        if (amcf->link_key.len && n != NGX_ERROR) {
            vrc = audex_link_verify(amcf->link_key.data, amcf->link_key.len,
                                    (char *) ctx->fid, 24,
                                    (char *) ctx->owner,
                                    ngx_strlen(ctx->owner), (int64_t) n,
                                    (char *) sig.data, sig.len,
                                    (int64_t) ngx_time());
        }

        if (vrc == 0) {
            return 0;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "audex: download %s: %s link", ctx->fid,
                      vrc == -2 ? "expired" : "invalid");
        *why = (vrc == -2) ? "link expired" : "invalid link";
        return NGX_HTTP_FORBIDDEN;
    }

    if (user->admin
        || (user->user_id.len == 24
            && ngx_strncmp(user->user_id.data, ctx->owner, 24) == 0))
    {
        return 0;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "audex: download %s: not a file of \"%V\"", ctx->fid,
                  &user->email);
    *why = "not found";
    return NGX_HTTP_NOT_FOUND;
}


/*
 * Conditional and range requests.  Sends the header, and returns NGX_OK
 * when a body is to follow, else the final code.
 */

static ngx_int_t
ngx_http_audex_download_range(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx)
{
    u_char      *p, *last;
    off_t        start, end, len;
    ngx_int_t    rc;
    ngx_uint_t   suffix, partial;

    ctx->start = 0;
    ctx->end = ctx->length - 1;
    partial = 0;

    if (r->headers_in.if_none_match) {
        p = r->headers_in.if_none_match->value.data;
        last = p + r->headers_in.if_none_match->value.len;

        if (ngx_strlcasestrn(p, last, ctx->fid, 24 - 1) != NULL
            || (last - p == 1 && *p == '*'))
        {
            r->headers_out.status = NGX_HTTP_NOT_MODIFIED;
            r->header_only = 1;

            if (ngx_http_audex_download_headers(r, ctx, 0) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_send_header(r);
        }
    }

    /* a single "bytes=" range; several, or If-Range that differs: all */

    if (r->headers_in.range && ctx->length > 0
        && (r->headers_in.if_range == NULL
            || ngx_strlcasestrn(r->headers_in.if_range->value.data,
                                r->headers_in.if_range->value.data
                                + r->headers_in.if_range->value.len,
                                ctx->fid, 24 - 1)
               != NULL))
    {
        p = r->headers_in.range->value.data;
        last = p + r->headers_in.range->value.len;

        if (last - p > 6 && ngx_strncasecmp(p, (u_char *) "bytes=", 6) == 0
            && ngx_strlchr(p, last, ',') == NULL)
        {
            p += 6;
            start = 0;
            end = -1;
            suffix = (*p == '-');

            if (suffix) {
                p++;
            }

            while (p < last && *p >= '0' && *p <= '9') {
                start = start * 10 + (*p++ - '0');
                if (start > NGX_MAX_OFF_T_VALUE / 100) {
                    goto ignore;
                }
            }

            if (suffix) {
                if (p != last || start == 0) {
                    goto unsatisfiable;
                }

                len = ngx_min(start, ctx->length);
                start = ctx->length - len;
                end = ctx->length - 1;

            } else {
                if (p == last || *p++ != '-') {
                    goto ignore;
                }

                if (p < last) {
                    end = 0;
                    while (p < last && *p >= '0' && *p <= '9') {
                        end = end * 10 + (*p++ - '0');
                        if (end > NGX_MAX_OFF_T_VALUE / 100) {
                            goto ignore;
                        }
                    }

                    if (p != last || end < start) {
                        goto ignore;
                    }
                }

                if (start >= ctx->length) {
                    goto unsatisfiable;
                }

                if (end < 0 || end >= ctx->length) {
                    end = ctx->length - 1;
                }
            }

            ctx->start = start;
            ctx->end = end;
            partial = 1;
        }
    }

ignore:

    r->headers_out.status = partial ? NGX_HTTP_PARTIAL_CONTENT
                                    : NGX_HTTP_OK;
    r->headers_out.content_length_n = ctx->end - ctx->start + 1;

    if (ngx_http_audex_download_headers(r, ctx, partial) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->length == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    ctx->chunk = ctx->start / (off_t) ctx->chunk_size;
    ctx->last_chunk = ctx->end / (off_t) ctx->chunk_size;

    ctx->buf[0] = ngx_palloc(r->pool, ctx->chunk_size);
    ctx->buf[1] = ngx_palloc(r->pool, ctx->chunk_size);
    if (ctx->buf[0] == NULL || ctx->buf[1] == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;

unsatisfiable:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "audex: download %s: range not satisfiable", ctx->fid);

    p = ngx_pnalloc(r->pool, sizeof("bytes */") - 1 + NGX_OFF_T_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = ngx_sprintf(p, "bytes */%O", ctx->length);

    if (ngx_http_audex_add_header(r, "Content-Range", p, last - p)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_audex_send_error(r, NGX_HTTP_RANGE_NOT_SATISFIABLE,
                                     "range not satisfiable");
}


static ngx_int_t
ngx_http_audex_download_headers(ngx_http_request_t *r,
    ngx_http_audex_download_ctx_t *ctx, ngx_uint_t partial)
{
    u_char     *p, *q;
    size_t      len;
    int         ascii;
    ngx_uint_t  has_ext;

    ngx_str_set(&r->headers_out.content_type, "audio/mpeg");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.last_modified_time = ctx->upload_time;

    /* GridFS files never change: the id is a strong validator */

    p = ngx_pnalloc(r->pool, 24 + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p[0] = '"';
    ngx_memcpy(p + 1, ctx->fid, 24);
    p[25] = '"';

    if (ngx_http_audex_add_header(r, "ETag", p, 26) != NGX_OK
        || ngx_http_audex_add_header(r, "Accept-Ranges", (u_char *) "bytes",
                                     5)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (partial) {
        p = ngx_pnalloc(r->pool, sizeof("bytes -/") - 1 + 3 * NGX_OFF_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        q = ngx_sprintf(p, "bytes %O-%O/%O", ctx->start, ctx->end,
                        ctx->length);

        if (ngx_http_audex_add_header(r, "Content-Range", p, q - p)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /*
     * Content-Disposition: an ASCII fallback in filename="..." (accents
     * dropped, other characters, quotes and backslashes one '_' each),
     * and the real name percent-encoded in filename*=UTF-8''... (RFC 6266).
     */

    has_ext = ctx->filename_len >= 4
              && ngx_strncasecmp(ctx->filename + ctx->filename_len - 4,
                                 (u_char *) ".mp3", 4) == 0;

    len = sizeof("attachment; filename=\"\"; filename*=UTF-8''") - 1
          + ctx->filename_len * 4 + sizeof(".mp3") * 4;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
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

    return ngx_http_audex_add_header(r, "Content-Disposition", p, q - p);
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

    if (!wev->timer_set) {
        ngx_add_timer(wev, clcf->send_timeout);
    }

    ctx->read_idx = ctx->chunk & 1;
    ctx->buf_chunk[ctx->read_idx] = ctx->chunk;

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
        break;

    case AUDEX_STORE_CORRUPT:
        ngx_snprintf((u_char *) ctx->err, NGX_HTTP_AUDEX_ERRLEN,
                     "chunk %L has no data or too much%Z", n);
        ctx->failed = 1;
        break;

    default:
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
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
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
