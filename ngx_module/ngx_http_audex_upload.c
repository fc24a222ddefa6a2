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
 */


#include "ngx_http_audex_module.h"

#include <openssl/evp.h>

#include "audex_multipart.h"
#include "audex_sniff.h"
#include "audex_upload_opts.h"


/*
 * The multipart parser may hand over a few bytes more than it was fed:
 * those it held back as a possible delimiter.  Room for them past a
 * full chunk means a slice of input never has to be split.
 */
#define NGX_HTTP_AUDEX_UPLOAD_SLACK      (AUDEX_MULTIPART_BOUNDARY_MAX + 64)

/* longer than any valid option: a longer value is invalid either way */
#define NGX_HTTP_AUDEX_UPLOAD_FIELD_MAX  1024
#define NGX_HTTP_AUDEX_UPLOAD_NAME_MAX   64


/* why an upload ends; made into a status in ngx_http_audex_upload_error */
typedef enum {
    NGX_HTTP_AUDEX_UPLOAD_OK = 0,
    NGX_HTTP_AUDEX_UPLOAD_NO_USER,
    NGX_HTTP_AUDEX_UPLOAD_TOO_LARGE,
    NGX_HTTP_AUDEX_UPLOAD_MAX_JOBS,
    NGX_HTTP_AUDEX_UPLOAD_MAX_BYTES,
    NGX_HTTP_AUDEX_UPLOAD_CONTENT_TYPE,
    NGX_HTTP_AUDEX_UPLOAD_FORMAT,
    NGX_HTTP_AUDEX_UPLOAD_ONE_FILE,
    NGX_HTTP_AUDEX_UPLOAD_MULTIPART,
    NGX_HTTP_AUDEX_UPLOAD_OPTION,
    NGX_HTTP_AUDEX_UPLOAD_BAD_BODY,
    NGX_HTTP_AUDEX_UPLOAD_TIMEOUT,
    NGX_HTTP_AUDEX_UPLOAD_CLOSED,
    NGX_HTTP_AUDEX_UPLOAD_BUSY,
    NGX_HTTP_AUDEX_UPLOAD_MONGO,
    NGX_HTTP_AUDEX_UPLOAD_REDIS,
    NGX_HTTP_AUDEX_UPLOAD_INTERNAL
} ngx_http_audex_upload_rc_e;



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


/* what a pool thread is asked to do */
typedef enum {
    NGX_HTTP_AUDEX_UPLOAD_USAGE = 0,        /* count what the user holds */
    NGX_HTTP_AUDEX_UPLOAD_CHUNK,            /* store one full chunk */
    NGX_HTTP_AUDEX_UPLOAD_COMMIT,           /* last chunk, files doc, job */
    NGX_HTTP_AUDEX_UPLOAD_REMOVE            /* undo a failed upload */
} ngx_http_audex_upload_op_e;


typedef struct ngx_http_audex_upload_s  ngx_http_audex_upload_t;


/* the task data, posted again for every chunk */
typedef struct {
    ngx_http_audex_upload_t       *upload;      /* event loop side only */
    ngx_http_audex_main_conf_t    *amcf;
    ngx_http_audex_upload_op_e     op;
    u_char                        *data;        /* a chunk buffer */
    size_t                         len;
    ngx_http_audex_gridfs_file_t   file;
    ngx_http_audex_job_t           job;
    ngx_http_audex_upload_rc_e     rc;
    int64_t                        jobs;        /* the user's, in progress */
    int64_t                        bytes;       /* the user's, stored */
    ngx_uint_t                     undo_failed;
    char                           err[NGX_HTTP_AUDEX_ERRLEN];
    char                           undo_err[NGX_HTTP_AUDEX_ERRLEN];
} ngx_http_audex_upload_task_t;


struct ngx_http_audex_upload_s {
    ngx_http_request_t            *request;
    ngx_http_audex_upload_task_t  *task;
    ngx_uint_t                     busy;        /* the task is in flight */

    off_t                          max_size;    /* 0: no limit */
    off_t                          quota_left;  /* file bytes; -1: any */
    off_t                          received;    /* body bytes parsed */
    ngx_chain_t                   *in;          /* body not parsed yet */

    audex_multipart_t             *mp;          /* NULL: a raw body */
    audex_upload_opts_t            opts;        /* query and form fields */
    audex_upload_opts_t            named;       /* the file's own name */

    ngx_uint_t                     files;       /* file parts seen */
    unsigned                       in_file:1;
    unsigned                       in_field:1;

    size_t                         field_name_len;
    size_t                         field_len;
    u_char                         field_name[NGX_HTTP_AUDEX_UPLOAD_NAME_MAX];
    u_char                         field[NGX_HTTP_AUDEX_UPLOAD_FIELD_MAX];

    audex_sniff_type_t             type;
    EVP_MD_CTX                    *sha256;

    u_char                        *chunk;       /* the chunk being filled */
    u_char                        *spare;       /* the other; NULL: busy */
    size_t                         fill;
    off_t                          length;      /* file bytes seen */

    ngx_http_audex_upload_rc_e     rc;
    char                           why[NGX_HTTP_AUDEX_ERRLEN];
};


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
static void ngx_http_audex_upload_quota_text(ngx_http_request_t *r,
    u_char *buf, size_t len);
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
static ngx_int_t ngx_http_audex_upload_parse(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static int ngx_http_audex_upload_part_begin(void *ctx,
    const audex_multipart_part_t *part);
static int ngx_http_audex_upload_part_data(void *ctx, const u_char *p,
    size_t len);
static int ngx_http_audex_upload_part_end(void *ctx);
static int ngx_http_audex_upload_name(ngx_http_audex_upload_t *up,
    const audex_multipart_part_t *part);
static int ngx_http_audex_upload_data(ngx_http_audex_upload_t *up,
    const u_char *p, size_t len);
static int ngx_http_audex_upload_file_end(ngx_http_audex_upload_t *up);
static void ngx_http_audex_upload_end(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static ngx_int_t ngx_http_audex_upload_post(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up, ngx_http_audex_upload_op_e op, size_t len);
static void ngx_http_audex_upload_work(void *data, ngx_log_t *log);
static void ngx_http_audex_upload_commit(ngx_http_audex_upload_task_t *task,
    mongoc_client_t *client);
static void ngx_http_audex_upload_done(ngx_http_request_t *r, void *data);
static void ngx_http_audex_upload_fail(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static ngx_int_t ngx_http_audex_upload_error(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
static ngx_int_t ngx_http_audex_upload_accepted(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);


static audex_multipart_sink_t  ngx_http_audex_upload_sink = {
    ngx_http_audex_upload_part_begin,
    ngx_http_audex_upload_part_data,
    ngx_http_audex_upload_part_end
};


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


/*
 * Parses what nginx has read and reads more, until the socket is empty
 * (the read event resumes), a full chunk has to wait for the one being
 * stored (that one's completion resumes), the body ends, or the upload
 * fails.  Runs while a chunk is in flight too: the next one fills the
 * other buffer meanwhile.
 */

static void
ngx_http_audex_upload_pump(ngx_http_request_t *r, ngx_http_audex_upload_t *up)
{
    ngx_int_t                 rc;
    ngx_chain_t             **ll;
    ngx_http_request_body_t  *rb;

    rb = r->request_body;

    for ( ;; ) {

        /* nginx does not reuse these buffers until they are parsed */

        if (rb->bufs) {
            for (ll = &up->in; *ll; ll = &(*ll)->next) { /* void */ }

            *ll = rb->bufs;
            rb->bufs = NULL;
        }

        rc = ngx_http_audex_upload_parse(r, up);

        if (rc == NGX_AGAIN) {
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_http_audex_upload_fail(r, up);
            return;
        }

        if (!r->reading_body) {
            if (!up->busy) {
                ngx_http_audex_upload_end(r, up);
            }

            /* else the chunk in flight comes back here when stored */
            return;
        }

        rc = ngx_http_read_unbuffered_request_body(r);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            up->rc = (rc == NGX_HTTP_REQUEST_TIME_OUT)
                     ? NGX_HTTP_AUDEX_UPLOAD_TIMEOUT
                     : r->connection->error
                       ? NGX_HTTP_AUDEX_UPLOAD_CLOSED
                       : (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE)
                         ? NGX_HTTP_AUDEX_UPLOAD_TOO_LARGE
                         : NGX_HTTP_AUDEX_UPLOAD_BAD_BODY;

            ngx_http_audex_upload_fail(r, up);
            return;
        }

        if (rb->bufs == NULL && rc == NGX_AGAIN) {
            return;
        }
    }
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


/*
 * The part holding the file: the one with a filename, or named "file".
 * Other parts are form fields; bitrate, quality and filename are read,
 * anything else a form may carry is ignored.
 */

static int
ngx_http_audex_upload_part_begin(void *ctx, const audex_multipart_part_t *part)
{
    ngx_http_audex_upload_t *up = ctx;

    if (part->filename
        || (part->name_len == 4
            && ngx_strncmp(part->name, "file", 4) == 0))
    {
        if (up->files++) {
            up->rc = NGX_HTTP_AUDEX_UPLOAD_ONE_FILE;
            return -1;
        }

        up->in_file = 1;

        return ngx_http_audex_upload_name(up, part);
    }

    up->in_field = 1;
    up->field_len = 0;

    /* a longer name is no option's: cut, it stays unknown */
    up->field_name_len = ngx_min(part->name_len,
                                 NGX_HTTP_AUDEX_UPLOAD_NAME_MAX);
    ngx_memcpy(up->field_name, part->name, up->field_name_len);

    return 0;
}


static int
ngx_http_audex_upload_part_data(void *ctx, const u_char *p, size_t len)
{
    ngx_http_audex_upload_t *up = ctx;

    size_t  n;

    if (up->in_file) {
        return ngx_http_audex_upload_data(up, p, len);
    }

    if (up->in_field) {
        /* a value cut here is longer than any valid one: still refused */
        n = ngx_min(len, NGX_HTTP_AUDEX_UPLOAD_FIELD_MAX - up->field_len);
        ngx_memcpy(up->field + up->field_len, p, n);
        up->field_len += n;
    }

    return 0;
}


static int
ngx_http_audex_upload_part_end(void *ctx)
{
    ngx_http_audex_upload_t *up = ctx;

    int  rc;

    if (up->in_file) {
        up->in_file = 0;
        return ngx_http_audex_upload_file_end(up);
    }

    if (!up->in_field) {
        return 0;
    }

    up->in_field = 0;

    rc = audex_upload_opts_set(&up->opts, up->field_name, up->field_name_len,
                               up->field, up->field_len, up->why,
                               sizeof(up->why));

    if (rc == AUDEX_UPLOAD_OPTS_ERROR) {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_OPTION;
        return -1;
    }

    return 0;
}


/*
 * The name the client gave its file, made fit to store by the rule every
 * name follows (lib/audex_upload_opts.h, audex_upload_name_clean()).  A
 * name of which nothing is left is dropped: the file keeps a name of
 * ours rather than failing.
 */

static int
ngx_http_audex_upload_name(ngx_http_audex_upload_t *up,
    const audex_multipart_part_t *part)
{
    size_t  n;
    u_char  buf[AUDEX_UPLOAD_FILENAME_MAX];

    if (part->filename == NULL) {
        return 0;
    }

    n = audex_upload_name_clean(buf, part->filename, part->filename_len,
                                !part->filename_utf8);
    if (n == 0) {
        return 0;
    }

    audex_upload_opts_init(&up->named);

    (void) audex_upload_opts_set(&up->named, (u_char *) "filename",
                                 sizeof("filename") - 1, buf, n, NULL, 0);

    return 0;
}


/* file bytes: into the chunk buffer and the digest; sniffed first */

static int
ngx_http_audex_upload_data(ngx_http_audex_upload_t *up, const u_char *p,
    size_t len)
{
    if (up->fill + len
        > AUDEX_GRIDFS_CHUNK + NGX_HTTP_AUDEX_UPLOAD_SLACK)
    {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_INTERNAL;
        ngx_cpystrn((u_char *) up->why, (u_char *) "chunk buffer overflow",
                    sizeof(up->why));
        return -1;
    }

    if (up->quota_left >= 0 && up->length + (off_t) len > up->quota_left) {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_MAX_BYTES;
        return -1;
    }

    ngx_memcpy(up->chunk + up->fill, p, len);
    up->fill += len;
    up->length += len;

    if (EVP_DigestUpdate(up->sha256, p, len) != 1) {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_INTERNAL;
        ngx_cpystrn((u_char *) up->why, (u_char *) "SHA-256 failed",
                    sizeof(up->why));
        return -1;
    }

    /*
     * The first chunk is still whole in the buffer: the sniffer decides
     * with AUDEX_SNIFF_MAX bytes at most, far fewer than a chunk, so
     * nothing is stored before it has.
     */

    if (up->type == AUDEX_SNIFF_NEED_MORE) {
        up->type = audex_sniff(up->chunk, up->fill, 0);

        if (up->type == AUDEX_SNIFF_UNKNOWN) {
            up->rc = NGX_HTTP_AUDEX_UPLOAD_FORMAT;
            return -1;
        }
    }

    return 0;
}


static int
ngx_http_audex_upload_file_end(ngx_http_audex_upload_t *up)
{
    if (up->type == AUDEX_SNIFF_NEED_MORE) {
        up->type = audex_sniff(up->chunk, up->fill, 1);
    }

    if (up->type == AUDEX_SNIFF_UNKNOWN || up->type == AUDEX_SNIFF_NEED_MORE)
    {
        up->rc = NGX_HTTP_AUDEX_UPLOAD_FORMAT;
        return -1;
    }

    return 0;
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
                 || ngx_http_audex_gridfs_record(client, db, &task->file, 1,
                                                 task->err)
                    != NGX_OK))
            || ngx_http_audex_gridfs_put_chunk(client, db, &task->file,
                                               task->data, task->len,
                                               task->err)
               != NGX_OK)
        {
            task->rc = NGX_HTTP_AUDEX_UPLOAD_MONGO;
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
            (void) ngx_http_audex_gridfs_record(client, db, &task->file, 0,
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
            && ngx_http_audex_gridfs_record(client, db, file, 1, err)
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
        (void) ngx_http_audex_gridfs_record(client, db, file, 0, undo);
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

    (void) ngx_http_audex_gridfs_record(client, db, file, 0, undo);

    return rc;
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


/*
 * The one place where a failed upload becomes an HTTP status: logs one
 * line (client faults at info, backend failures at error), answers
 * JSON, and returns what to finalize the request with.
 */

static ngx_int_t
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

static ngx_int_t
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
