/*
 * POST /upload: a video streamed into GridFS, then a conversion job.
 *
 * The body is read unbuffered and parsed as it arrives, multipart or
 * raw; the file's bytes collect in one GridFS chunk buffer, and a full
 * chunk goes to a pool thread while reading stops: the client waits
 * for MongoDB, so an upload costs one chunk of memory whatever its size,
 * and nothing touches the disk.  The first bytes are sniffed before
 * anything is stored.  At the end one more task writes the last chunk,
 * the files document and the job, and sends the job to the converters.
 *
 * An upload that fails after storing chunks has them removed before the
 * answer goes out, so a client that sees an error leaves nothing behind.
 *
 * With audex_user_max_jobs or audex_user_max_bytes a first task counts
 * what the caller holds before any of the body is read: too many jobs in
 * progress is 429, a stated length past the storage left is 413, and the
 * storage left bounds the file's bytes while they arrive (413 mid-stream,
 * the stored chunks removed), as audex_upload_max_size bounds the body.
 *
 * This file is the request's flow; the body's parts and bytes are read in
 * _upload_parse.c, the pool threads store in _upload_task.c, and every
 * answer is made in _upload_answer.c (ngx_http_audex_upload.h).
 */


#include "ngx_http_audex_upload.h"


static ngx_int_t ngx_http_audex_upload_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_audex_upload_start(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static ngx_int_t ngx_http_audex_upload_content_type(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static ngx_int_t ngx_http_audex_upload_disposition(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static ngx_int_t ngx_http_audex_upload_read_body(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static ngx_int_t ngx_http_audex_upload_quota(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static int ngx_http_audex_upload_named(void *ctx,
    const audex_multipart_part_t *part);
static void ngx_http_audex_upload_sha256_cleanup(void *data);
static ngx_int_t ngx_http_audex_upload_full(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static ngx_http_audex_upload_t *ngx_http_audex_upload_get(
    ngx_http_request_t *r);
static void ngx_http_audex_upload_body(ngx_http_request_t *r);
static void ngx_http_audex_upload_read(ngx_http_request_t *r);
static void ngx_http_audex_upload_pump(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static ngx_int_t ngx_http_audex_upload_take(ngx_http_request_t *r,
    void *data);
static void ngx_http_audex_upload_read_failed(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static void ngx_http_audex_upload_whole(ngx_http_request_t *r, void *data);
static ngx_int_t ngx_http_audex_upload_parse(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static void ngx_http_audex_upload_end(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static ngx_int_t ngx_http_audex_upload_post(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up, ngx_http_audex_upload_op_e op, size_t len);
static void ngx_http_audex_upload_done(ngx_http_request_t *r, void *data);
static void ngx_http_audex_upload_fail(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);


char *
ngx_http_audex_upload(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_audex_set_handler(cf, cmd, ngx_http_audex_upload_handler,
                                      NGX_HTTP_AUDEX_H_UPLOAD);
}


/* called when the location's configuration is merged */

char *
ngx_http_audex_upload_merge(ngx_conf_t *cf, ngx_http_audex_loc_conf_t *alcf)
{
    ngx_http_core_loc_conf_t  *clcf;

    /*
     * audex_upload_max_size is the limit here: its 413 is JSON, and the
     * upload is refused before the first byte is stored.
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->client_max_body_size = 0;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_audex_upload_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_audex_user_t       *user;
    ngx_http_audex_upload_t     *up;
    ngx_http_audex_loc_conf_t   *alcf;

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_audex_method_not_allowed(r, "POST");
    }

    up = ngx_pcalloc(r->pool, sizeof(ngx_http_audex_upload_t));
    if (up == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     up->busy = 0;
     *     up->received = 0;
     *     up->in = NULL;
     *     up->mp = NULL;
     *     up->files = 0;
     *     up->fill = 0;
     *     up->length = 0;
     *     up->rc = NGX_HTTP_AUDEX_UPLOAD_OK;
     */

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_audex_module);

    up->request = r;
    up->max_size = alcf->upload_max_size;
    up->quota_left = -1;
    up->type = AUDEX_SNIFF_NEED_MORE;
    audex_upload_opts_init(&up->opts);
    audex_upload_opts_init(&up->named);

    if (r != r->main) {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_INTERNAL;
        ngx_cpystrn((u_char *) up->why, (u_char *) "not in a subrequest",
                    sizeof(up->why));
        return ngx_http_audex_upload_error(r, up);
    }

    user = ngx_http_audex_auth_user(r);

    if (user == NULL) {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_NO_USER;
        return ngx_http_audex_upload_error(r, up);
    }

    ngx_http_audex_get_ctx(r)->data = up;

    rc = ngx_http_audex_upload_start(r, up);

    if (rc != NGX_OK) {
        return (rc == NGX_ERROR) ? ngx_http_audex_upload_error(r, up) : rc;
    }

    if (alcf->user_max_jobs || alcf->user_max_bytes) {
        /* the body is read once the task has counted the user's usage */
        up->task->op = NGX_HTTP_AUDEX_UPLOAD_USAGE;
        up->busy = 1;

        return ngx_http_audex_thread_start(r, up->task,
                                           ngx_http_audex_upload_work,
                                           ngx_http_audex_upload_done,
                                           "upload");
    }

    return ngx_http_audex_upload_read_body(r, up);
}


/* NGX_DONE once reading has begun, or what to finalize the request with */

static ngx_int_t
ngx_http_audex_upload_read_body(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up)
{
    ngx_int_t  rc;

    r->request_body_no_buffering = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_audex_upload_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* nothing was stored yet: nginx found the body itself at fault */
        up->rc = r->connection->read->timedout
                 ? NGX_HTTP_AUDEX_UPLOAD_TIMEOUT
                 : r->connection->error
                   ? NGX_HTTP_AUDEX_UPLOAD_CLOSED
                   : NGX_HTTP_AUDEX_UPLOAD_BAD_BODY;
        return ngx_http_audex_upload_error(r, up);
    }

    return NGX_DONE;
}


/*
 * What the user holds against the limits of the location: NGX_OK with
 * up->quota_left set, or NGX_ERROR with up->rc and up->why set.  A body
 * whose stated length passes the storage left is refused now; one that
 * states none is stopped when its file's bytes pass it.
 */

static ngx_int_t
ngx_http_audex_upload_quota(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up)
{
    u_char                      *p;
    ngx_http_audex_loc_conf_t   *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_audex_module);

    if (alcf->user_max_jobs && up->task->jobs >= alcf->user_max_jobs) {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_MAX_JOBS;
        p = ngx_snprintf((u_char *) up->why, sizeof(up->why) - 1,
                         "too many jobs in progress (%i)",
                         alcf->user_max_jobs);
        *p = '\0';
        return NGX_ERROR;
    }

    if (alcf->user_max_bytes == 0) {
        return NGX_OK;
    }

    up->quota_left = ngx_max(alcf->user_max_bytes - up->task->bytes, 0);

    if (up->quota_left == 0
        || r->headers_in.content_length_n > up->quota_left)
    {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_MAX_BYTES;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Everything that can be refused before the body is read.  Returns
 * NGX_OK, NGX_ERROR with up->rc set, or an HTTP status.
 */

static ngx_int_t
ngx_http_audex_upload_start(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_audex_upload_task_t  *task;

    if (up->max_size && r->headers_in.content_length_n > up->max_size) {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_TOO_LARGE;
        return NGX_ERROR;
    }

    if (ngx_http_audex_upload_content_type(r, up) != NGX_OK) {
        return NGX_ERROR;
    }

    if (r->args.len
        && audex_upload_opts_parse_query(&up->opts, r->args.data,
                                         r->args.len, up->why,
                                         sizeof(up->why))
           != AUDEX_UPLOAD_OPTS_OK)
    {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_OPTION;
        return NGX_ERROR;
    }

    if (up->mp == NULL && ngx_http_audex_upload_disposition(r, up) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* two: the client's next chunk arrives while the last is stored */
    up->chunk = ngx_palloc(r->pool, AUDEX_GRIDFS_CHUNK
                                    + NGX_HTTP_AUDEX_UPLOAD_SLACK);
    up->spare = ngx_palloc(r->pool, AUDEX_GRIDFS_CHUNK
                                    + NGX_HTTP_AUDEX_UPLOAD_SLACK);
    if (up->chunk == NULL || up->spare == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    up->sha256 = EVP_MD_CTX_new();
    if (up->sha256 == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_audex_upload_sha256_cleanup;
    cln->data = up->sha256;

    if (EVP_DigestInit_ex(up->sha256, EVP_sha256(), NULL) != 1) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* one task for the whole upload, posted again for every chunk */

    task = ngx_http_audex_thread_alloc(r,
                                       sizeof(ngx_http_audex_upload_task_t));
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(task, sizeof(ngx_http_audex_upload_task_t));

    task->upload = up;
    task->amcf = ngx_http_get_module_main_conf(r, ngx_http_audex_module);
    task->file.owner_id = (char *) ngx_http_audex_auth_user(r)->user_id.data;
    bson_oid_init(&task->file.id, NULL);

    up->task = task;

    return NGX_OK;
}


/*
 * multipart/form-data, or a raw body: application/octet-stream, or any
 * video or audio type.
 */

static ngx_int_t
ngx_http_audex_upload_content_type(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up)
{
    u_char                *mem;
    size_t                 len, size, blen;
    ngx_str_t             *ct;
    const u_char          *boundary;
    audex_multipart_rc_t   rc;

    if (r->headers_in.content_type == NULL) {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_CONTENT_TYPE;
        ngx_cpystrn((u_char *) up->why, (u_char *) "none", sizeof(up->why));
        return NGX_ERROR;
    }

    ct = &r->headers_in.content_type->value;

    switch (audex_upload_body_type(ct->data, ct->len, &len)) {

    case AUDEX_UPLOAD_BODY_RAW:
        return NGX_OK;

    case AUDEX_UPLOAD_BODY_MULTIPART:
        rc = audex_multipart_boundary(ct->data, ct->len, &boundary, &blen);

        if (rc == AUDEX_MULTIPART_OK) {
            size = audex_multipart_size(blen);

            mem = ngx_palloc(r->pool, size);
            if (mem == NULL) {
                up->rc = NGX_HTTP_AUDEX_UPLOAD_INTERNAL;
                return NGX_ERROR;
            }

            up->mp = audex_multipart_init(mem, size, boundary, blen,
                                          &ngx_http_audex_upload_sink, up);
            if (up->mp == NULL) {
                up->rc = NGX_HTTP_AUDEX_UPLOAD_INTERNAL;
                return NGX_ERROR;
            }

            return NGX_OK;
        }

        if (rc == AUDEX_MULTIPART_ERR_BOUNDARY) {
            up->rc = NGX_HTTP_AUDEX_UPLOAD_MULTIPART;
            ngx_cpystrn((u_char *) up->why,
                        (u_char *) audex_multipart_strerror(rc),
                        sizeof(up->why));
            return NGX_ERROR;
        }

        /* multipart/mixed and the like */
        break;

    default:
        break;
    }

    /* a client's words in a message */

    audex_upload_shown(up->why, ct->data, len,
                       ngx_min(sizeof(up->why) - 4, 64));

    up->rc = NGX_HTTP_AUDEX_UPLOAD_CONTENT_TYPE;

    return NGX_ERROR;
}


/*
 * A raw body may name its file in a Content-Disposition header, read by
 * the rules of a multipart part's (lib/audex_multipart.h).
 */

static ngx_int_t
ngx_http_audex_upload_disposition(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up)
{
    u_char           *mem;
    size_t            size;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_OK;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Content-Disposition") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Disposition",
                               h[i].key.len) == 0)
        {
            break;
        }
    }

    size = audex_multipart_disposition_header_size(h[i].value.len);

    mem = ngx_palloc(r->pool, size);
    if (mem == NULL) {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_INTERNAL;
        return NGX_ERROR;
    }

    if (audex_multipart_disposition_header(mem, size, h[i].value.data,
                                           h[i].value.len,
                                           ngx_http_audex_upload_named, up)
        != AUDEX_MULTIPART_OK)
    {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_OPTION;
        ngx_cpystrn((u_char *) up->why,
                    (u_char *) "malformed Content-Disposition header",
                    sizeof(up->why));
        return NGX_ERROR;
    }

    return NGX_OK;
}


static int
ngx_http_audex_upload_named(void *ctx, const audex_multipart_part_t *part)
{
    return ngx_http_audex_upload_name(ctx, part);
}


static void
ngx_http_audex_upload_sha256_cleanup(void *data)
{
    EVP_MD_CTX_free(data);
}


static ngx_http_audex_upload_t *
ngx_http_audex_upload_get(ngx_http_request_t *r)
{
    return ngx_http_audex_get_ctx(r)->data;
}


/* ngx_http_read_client_request_body() calls this once, with what it has */

static void
ngx_http_audex_upload_body(ngx_http_request_t *r)
{
    r->read_event_handler = ngx_http_audex_upload_read;

    ngx_http_audex_upload_pump(r, ngx_http_audex_upload_get(r));
}


static void
ngx_http_audex_upload_read(ngx_http_request_t *r)
{
    ngx_http_audex_upload_t  *up;

    up = ngx_http_audex_upload_get(r);

    /*
     * While a chunk is stored, the next one is read into the other
     * buffer; once that is full too, what the client sends waits in the
     * socket (backpressure) and the task's completion resumes reading.
     * After a failure the request is being answered, not read.
     */

    if (up->rc != NGX_HTTP_AUDEX_UPLOAD_OK) {
        return;
    }

    ngx_http_audex_upload_pump(r, up);
}


/* the body into the parser, as ngx_http_audex_body_pump() drives it */

static void
ngx_http_audex_upload_pump(ngx_http_request_t *r, ngx_http_audex_upload_t *up)
{
    static const ngx_http_audex_body_t  body = {
        ngx_http_audex_upload_take,
        ngx_http_audex_upload_read_failed,
        ngx_http_audex_upload_whole
    };

    ngx_http_audex_body_pump(r, &up->in, &up->busy, &body, up);
}


static ngx_int_t
ngx_http_audex_upload_take(ngx_http_request_t *r, void *data)
{
    return ngx_http_audex_upload_parse(r, data);
}


/* rc: nginx's status when reading failed; NGX_OK: parsing did, up->rc */

static void
ngx_http_audex_upload_read_failed(ngx_http_request_t *r, void *data,
    ngx_int_t rc)
{
    ngx_http_audex_upload_t  *up = data;

    if (rc != NGX_OK) {
        up->rc = (rc == NGX_HTTP_REQUEST_TIME_OUT)
                 ? NGX_HTTP_AUDEX_UPLOAD_TIMEOUT
                 : r->connection->error
                   ? NGX_HTTP_AUDEX_UPLOAD_CLOSED
                   : (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE)
                     ? NGX_HTTP_AUDEX_UPLOAD_TOO_LARGE
                     : NGX_HTTP_AUDEX_UPLOAD_BAD_BODY;
    }

    ngx_http_audex_upload_fail(r, up);
}


static void
ngx_http_audex_upload_whole(ngx_http_request_t *r, void *data)
{
    ngx_http_audex_upload_end(r, data);
}


/*
 * Feeds up->in to the parser, never more at once than fits in the chunk
 * buffer.  Returns NGX_OK when all of it is parsed (full chunks went to
 * a thread on the way), NGX_AGAIN when a full chunk waits for the one
 * in flight, NGX_ERROR with up->rc set.
 */

static ngx_int_t
ngx_http_audex_upload_parse(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up)
{
    size_t                 n;
    ngx_int_t              full;
    ngx_buf_t             *b;
    ngx_chain_t           *cl;
    audex_multipart_rc_t   rc;

    while (up->in) {
        cl = up->in;
        b = cl->buf;

        while (b->pos < b->last) {

            if (up->fill >= AUDEX_GRIDFS_CHUNK) {
                full = ngx_http_audex_upload_full(r, up);
                if (full != NGX_OK) {
                    return full;
                }
            }

            n = b->last - b->pos;

            /* once the file part is over, no byte can reach the chunk */

            if (up->mp == NULL || up->in_file || up->files == 0) {
                n = ngx_min(n, AUDEX_GRIDFS_CHUNK - up->fill);
            }

            if (up->max_size && up->received + (off_t) n > up->max_size) {
                up->rc = NGX_HTTP_AUDEX_UPLOAD_TOO_LARGE;
                return NGX_ERROR;
            }

            up->received += n;

            if (up->mp) {
                rc = audex_multipart_execute(up->mp, b->pos, b->pos + n);

                if (rc != AUDEX_MULTIPART_OK && rc != AUDEX_MULTIPART_DONE) {
                    if (up->rc == NGX_HTTP_AUDEX_UPLOAD_OK) {
                        up->rc = NGX_HTTP_AUDEX_UPLOAD_MULTIPART;
                        ngx_cpystrn((u_char *) up->why,
                                    (u_char *) audex_multipart_strerror(rc),
                                    sizeof(up->why));
                    }

                    return NGX_ERROR;
                }

            } else if (ngx_http_audex_upload_data(up, b->pos, n) != 0) {
                return NGX_ERROR;
            }

            b->pos += n;
        }

        up->in = cl->next;
        ngx_free_chain(r->pool, cl);
    }

    if (up->fill >= AUDEX_GRIDFS_CHUNK) {
        return ngx_http_audex_upload_full(r, up);
    }

    return NGX_OK;
}


/*
 * A full chunk goes to a thread, and parsing goes on into the other
 * buffer: NGX_OK.  While the chunk before is still being stored it
 * waits for that one, and the client waits for us (its body timeout
 * must not run): NGX_AGAIN.  NGX_ERROR with up->rc set.
 */

static ngx_int_t
ngx_http_audex_upload_full(ngx_http_request_t *r, ngx_http_audex_upload_t *up)
{
    if (up->busy) {
        if (r->connection->read->timer_set) {
            ngx_del_timer(r->connection->read);
        }

        return NGX_AGAIN;
    }

    if (ngx_http_audex_upload_post(r, up, NGX_HTTP_AUDEX_UPLOAD_CHUNK,
                                   AUDEX_GRIDFS_CHUNK)
        != NGX_AGAIN)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the whole body is parsed: check it, then commit in a thread */

static void
ngx_http_audex_upload_end(ngx_http_request_t *r, ngx_http_audex_upload_t *up)
{
    u_char                        *p;
    bson_oid_t                     oid;
    unsigned int                   dlen;
    audex_multipart_rc_t           rc;
    ngx_http_audex_user_t         *user;
    ngx_http_audex_upload_task_t  *task;
    u_char                         digest[EVP_MAX_MD_SIZE];

    if (up->mp) {
        rc = audex_multipart_finish(up->mp);

        if (rc != AUDEX_MULTIPART_DONE) {
            up->rc = NGX_HTTP_AUDEX_UPLOAD_MULTIPART;
            ngx_cpystrn((u_char *) up->why,
                        (u_char *) audex_multipart_strerror(rc),
                        sizeof(up->why));
            goto failed;
        }

        if (up->files != 1) {
            up->rc = NGX_HTTP_AUDEX_UPLOAD_ONE_FILE;
            goto failed;
        }

    } else if (ngx_http_audex_upload_file_end(up) != 0) {
        goto failed;
    }

    if (EVP_DigestFinal_ex(up->sha256, digest, &dlen) != 1) {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_INTERNAL;
        ngx_cpystrn((u_char *) up->why, (u_char *) "SHA-256 failed",
                    sizeof(up->why));
        goto failed;
    }

    task = up->task;
    user = ngx_http_audex_auth_user(r);

    p = ngx_hex_dump((u_char *) task->file.sha256, digest, dlen);
    *p = '\0';

    task->file.filename = (char *) (up->opts.filename_len
                                    ? up->opts.filename
                                    : up->named.filename_len
                                      ? up->named.filename
                                      : (u_char *) "upload");
    task->file.content_type = audex_sniff_mime(up->type);
    task->file.format = audex_sniff_name(up->type);
    task->file.owner_id = (char *) user->user_id.data;
    task->file.owner_email = (char *) user->email.data;

    bson_oid_init(&oid, NULL);
    bson_oid_to_string(&oid, task->job.id);
    bson_oid_to_string(&task->file.id, task->job.video_fid);

    task->job.owner_id = task->file.owner_id;
    task->job.owner_email = task->file.owner_email;
    task->job.filename = task->file.filename;

    if (up->opts.mode == AUDEX_UPLOAD_VBR) {
        task->job.option = AUDEX_F_QUALITY;
        task->job.value = up->opts.quality;

    } else {
        task->job.option = AUDEX_F_BITRATE;
        task->job.value = up->opts.bitrate;
    }

    if (ngx_http_audex_upload_post(r, up, NGX_HTTP_AUDEX_UPLOAD_COMMIT,
                                   up->fill)
        == NGX_AGAIN)
    {
        return;
    }

failed:

    ngx_http_audex_upload_fail(r, up);
}


/* Returns NGX_AGAIN once posted, NGX_ERROR with up->rc set. */

static ngx_int_t
ngx_http_audex_upload_post(ngx_http_request_t *r, ngx_http_audex_upload_t *up,
    ngx_http_audex_upload_op_e op, size_t len)
{
    ngx_http_audex_upload_task_t  *task;

    task = up->task;
    task->op = op;
    task->data = up->chunk;
    task->len = len;

    if (op == NGX_HTTP_AUDEX_UPLOAD_CHUNK) {
        /* what the parser handed over past the chunk starts the next */
        up->fill -= AUDEX_GRIDFS_CHUNK;
        ngx_memcpy(up->spare, up->chunk + AUDEX_GRIDFS_CHUNK, up->fill);
        up->chunk = up->spare;
        up->spare = NULL;
    }

    if (ngx_http_audex_thread_post(r, task, ngx_http_audex_upload_work,
                                   ngx_http_audex_upload_done)
        != NGX_OK)
    {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_BUSY;
        return NGX_ERROR;
    }

    up->busy = 1;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "audex upload: task %d, chunk %D, %uz bytes",
                   (int) op, task->file.n, len);

    return NGX_AGAIN;
}


static void
ngx_http_audex_upload_done(ngx_http_request_t *r, void *data)
{
    ngx_http_audex_upload_task_t *task = data;

    ngx_http_audex_upload_t  *up;

    up = task->upload;
    up->busy = 0;

    switch (task->op) {

    case NGX_HTTP_AUDEX_UPLOAD_USAGE:

        up->rc = task->rc;

        if (up->rc == NGX_HTTP_AUDEX_UPLOAD_OK
            && ngx_http_audex_upload_quota(r, up) == NGX_OK)
        {
            /* NGX_DONE drops the reference reading took, as a handler's */
            ngx_http_finalize_request(r,
                ngx_http_audex_upload_read_body(r, up));
            return;
        }

        ngx_http_finalize_request(r, ngx_http_audex_upload_error(r, up));
        return;

    case NGX_HTTP_AUDEX_UPLOAD_CHUNK:

        up->spare = task->data;

        /* a failure while it was stored (the client's) is the one told */
        if (task->rc != NGX_HTTP_AUDEX_UPLOAD_OK
            && up->rc == NGX_HTTP_AUDEX_UPLOAD_OK)
        {
            up->rc = task->rc;
        }

        if (up->rc != NGX_HTTP_AUDEX_UPLOAD_OK) {
            ngx_http_audex_upload_fail(r, up);
            return;
        }

        ngx_http_audex_upload_pump(r, up);
        return;

    case NGX_HTTP_AUDEX_UPLOAD_COMMIT:

        if (task->rc != NGX_HTTP_AUDEX_UPLOAD_OK) {
            /* the commit has undone its own work */
            up->rc = task->rc;
            ngx_http_finalize_request(r, ngx_http_audex_upload_error(r, up));
            return;
        }

        ngx_http_finalize_request(r, ngx_http_audex_upload_accepted(r, up));
        return;

    default: /* NGX_HTTP_AUDEX_UPLOAD_REMOVE */
        ngx_http_finalize_request(r, ngx_http_audex_upload_error(r, up));
        return;
    }
}


/*
 * An upload that ends badly: undo, then answer.  With a chunk in flight
 * (up->rc says why) its completion comes back here.
 */

static void
ngx_http_audex_upload_fail(ngx_http_request_t *r, ngx_http_audex_upload_t *up)
{
    ngx_http_audex_upload_rc_e  rc;

    if (up->busy) {
        return;
    }

    if (up->task->file.n > 0) {
        rc = up->rc;

        if (ngx_http_audex_upload_post(r, up, NGX_HTTP_AUDEX_UPLOAD_REMOVE, 0)
            == NGX_AGAIN)
        {
            return;
        }

        /* the answer is about the upload, not about the undo */
        up->rc = rc;
        up->task->undo_failed = 1;
        ngx_cpystrn((u_char *) up->task->undo_err,
                    (u_char *) "the thread pool queue is full",
                    NGX_HTTP_AUDEX_ERRLEN);
    }

    ngx_http_finalize_request(r, ngx_http_audex_upload_error(r, up));
}


