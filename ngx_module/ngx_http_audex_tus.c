/*
 * audex_tus: resumable uploads, tus 1.0.0 (https://tus.io/protocols/
 * resumable-upload) with creation, creation-with-upload, termination,
 * checksum (sha1, sha256) and expiration.
 *
 *     POST   <location>       creates an upload: 201, Location <.../id>
 *     HEAD   <location>/<id>  its durable Upload-Offset
 *     PATCH  <location>/<id>  bytes at Upload-Offset
 *     DELETE <location>/<id>  removes it and its chunks
 *     OPTIONS                 what this server supports
 *
 * The upload's state is a document in MongoDB (AUDEX_COLL_TUS, see
 * lib/audex_schema.h), its bytes the chunks of a GridFS file in the
 * videos bucket whose id is the upload's, so any nginx sharing the
 * backends continues any upload.  A PATCH takes the upload with a
 * conditional update (the client's offset, no live lock), reads its body
 * as /upload does (two chunk buffers, a full chunk stored by a pool
 * thread while the next one fills, backpressure), and releases it.
 *
 * Upload-Offset is only what is durable: full chunks are stored and the
 * offset advanced past them every NGX_HTTP_AUDEX_TUS_ADVANCE_EVERY
 * chunks; the bytes of a last, partial chunk are kept in the state
 * document itself ("tail") when the PATCH ends, the client gone
 * included, and come back into the chunk buffer when the next PATCH
 * begins.  A client never sends a byte twice, but after a crash of
 * nginx mid-PATCH: the full chunks stored past the last advance are
 * found by the next HEAD or PATCH once the lease has run out
 * (ngx_http_audex_tus_recover), so it resends at most the chunk that
 * was being stored.  Chunks past the durable offset that a PATCH with a
 * checksum stored are never taken so, only overwritten later: they are
 * stored with audex_store_chunk_replace().
 *
 * With Upload-Checksum the offset advances only when the whole PATCH has
 * matched; a mismatch is 460 and the PATCH's bytes count for nothing.
 *
 * When the last byte is stored, the file is completed by
 * ngx_http_audex_upload_complete(), as /upload completes one: files
 * document (with the SHA-256 of the whole file), job, stream entry; then
 * job_id is set in the state under the lock, which no later PATCH can
 * take, so the job is queued once.  The SHA-256 is computed as chunks
 * are stored, its state (lib/audex_sha256.h) saved with the offset, so
 * any PATCH on any nginx goes on from it and completion hashes only the
 * last chunk.
 */


#include "ngx_http_audex_module.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "audex_sha256.h"
#include "audex_sniff.h"
#include "audex_upload_opts.h"


#define NGX_HTTP_AUDEX_TUS_VERSION     "1.0.0"
#define NGX_HTTP_AUDEX_TUS_EXTENSIONS  \
    "creation,creation-with-upload,termination,checksum,expiration"
#define NGX_HTTP_AUDEX_TUS_CHECKSUMS   "sha1,sha256"
#define NGX_HTTP_AUDEX_TUS_OCTETS      "application/offset+octet-stream"

#define NGX_HTTP_AUDEX_TUS_GONE_STATUS       410
#define NGX_HTTP_AUDEX_TUS_LOCKED            423
#define NGX_HTTP_AUDEX_TUS_CHECKSUM_MISMATCH 460

/*
 * The stored offset advances every this many full chunks (1020 KB) while
 * a PATCH stores them, and at its end: each advance is one more write,
 * which cost about a tenth of the throughput when made for every chunk.
 */
#define NGX_HTTP_AUDEX_TUS_ADVANCE_EVERY     4

/* Upload-Metadata longer than this is refused */
#define NGX_HTTP_AUDEX_TUS_METADATA_MAX      4096


/* why a request fails; made a status in ngx_http_audex_tus_error() */
typedef enum {
    NGX_HTTP_AUDEX_TUS_OK = 0,
    NGX_HTTP_AUDEX_TUS_NO_USER,
    NGX_HTTP_AUDEX_TUS_BAD,
    NGX_HTTP_AUDEX_TUS_NOT_FOUND,
    NGX_HTTP_AUDEX_TUS_CONFLICT,
    NGX_HTTP_AUDEX_TUS_GONE,
    NGX_HTTP_AUDEX_TUS_VERSION_FAILED,
    NGX_HTTP_AUDEX_TUS_TOO_LARGE,
    NGX_HTTP_AUDEX_TUS_CONTENT_TYPE,
    NGX_HTTP_AUDEX_TUS_FORMAT,
    NGX_HTTP_AUDEX_TUS_LOCKED_BY,
    NGX_HTTP_AUDEX_TUS_CHECKSUM,
    NGX_HTTP_AUDEX_TUS_TIMEOUT,
    NGX_HTTP_AUDEX_TUS_CLOSED,
    NGX_HTTP_AUDEX_TUS_BUSY,
    NGX_HTTP_AUDEX_TUS_MONGO,
    NGX_HTTP_AUDEX_TUS_REDIS,
    NGX_HTTP_AUDEX_TUS_INTERNAL
} ngx_http_audex_tus_rc_e;


typedef struct {
    ngx_uint_t    status;
    ngx_uint_t    level;
    const char   *text;         /* NULL: tus->why */
} ngx_http_audex_tus_error_t;


/* one row per code above, in their order */
static ngx_http_audex_tus_error_t  ngx_http_audex_tus_errors[] = {
    { NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ALERT, "internal error" },
    { NGX_HTTP_UNAUTHORIZED, NGX_HTTP_AUDEX_LOG_EVENT, "token required" },
    { NGX_HTTP_BAD_REQUEST, NGX_HTTP_AUDEX_LOG_EVENT, NULL },
    { NGX_HTTP_NOT_FOUND, NGX_HTTP_AUDEX_LOG_EVENT, "no such upload" },
    { NGX_HTTP_CONFLICT, NGX_HTTP_AUDEX_LOG_EVENT,
      "Upload-Offset is not the upload's offset" },
    { NGX_HTTP_AUDEX_TUS_GONE_STATUS, NGX_HTTP_AUDEX_LOG_EVENT,
      "the upload expired" },
    { NGX_HTTP_PRECONDITION_FAILED, NGX_HTTP_AUDEX_LOG_EVENT,
      "Tus-Resumable 1.0.0 required" },
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, NGX_HTTP_AUDEX_LOG_EVENT, NULL },
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, NGX_HTTP_AUDEX_LOG_EVENT,
      "unsupported media type: " NGX_HTTP_AUDEX_TUS_OCTETS " required" },
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, NGX_HTTP_AUDEX_LOG_EVENT,
      "unsupported media type: not a known audio or video format" },
    { NGX_HTTP_AUDEX_TUS_LOCKED, NGX_HTTP_AUDEX_LOG_EVENT,
      "another request is writing this upload" },
    { NGX_HTTP_AUDEX_TUS_CHECKSUM_MISMATCH, NGX_HTTP_AUDEX_LOG_EVENT,
      "checksum mismatch: the request's bytes were discarded" },
    { NGX_HTTP_REQUEST_TIME_OUT, NGX_HTTP_AUDEX_LOG_EVENT,
      "client timed out" },
    { NGX_HTTP_CLIENT_CLOSED_REQUEST, NGX_HTTP_AUDEX_LOG_EVENT,
      "client closed the connection" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, NGX_LOG_ERR, "server busy" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, NGX_LOG_ERR, "database unavailable" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, NGX_LOG_ERR, "job queue unavailable" },
    { NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ALERT, "internal error" },
};


/* what a pool thread is asked to do */
typedef enum {
    NGX_HTTP_AUDEX_TUS_CREATE = 0,      /* the state; locked with a body */
    NGX_HTTP_AUDEX_TUS_STATE,           /* read it (HEAD) */
    NGX_HTTP_AUDEX_TUS_LOCK,            /* take it for a PATCH */
    NGX_HTTP_AUDEX_TUS_CHUNK,           /* store a full chunk */
    NGX_HTTP_AUDEX_TUS_SAVE,            /* the offset and tail; release */
    NGX_HTTP_AUDEX_TUS_UNLOCK,          /* release, nothing gained */
    NGX_HTTP_AUDEX_TUS_RENEW,           /* the lease, the client slow */
    NGX_HTTP_AUDEX_TUS_DELETE           /* termination */
} ngx_http_audex_tus_op_e;


typedef struct ngx_http_audex_tus_s  ngx_http_audex_tus_t;


typedef struct {
    ngx_http_audex_tus_t          *tus;         /* event loop side only */
    ngx_http_audex_main_conf_t    *amcf;
    ngx_http_audex_tus_op_e        op;

    bson_oid_t                     id;
    const char                    *owner_id;
    const char                    *owner_email;
    char                           token[25];
    int64_t                        expires_in;  /* ms */
    int64_t                        renewed;     /* the lease, ms */
    ngx_uint_t                     advance;     /* CHUNK moves the offset */
    ngx_uint_t                     hold;        /* CREATE takes it too */
    ngx_uint_t                     checksum;    /* LOCK: one is pending */

    /* the lock as read, for audex_store_tus_advance() */
    char                           seen_lock[25];
    ngx_uint_t                     seen_locked;
    int64_t                        seen_until;  /* ms */
    ngx_uint_t                     unverified;  /* chunks past: maybe not */
    int64_t                        recovered;   /* bytes made durable */

    /* the state, as read or written */
    int64_t                        length;
    int64_t                        offset;
    int64_t                        expires_at;  /* ms */
    ngx_uint_t                     done;        /* a job was queued */
    ngx_uint_t                     removed;     /* completion failed */
    char                           job_id[25];
    u_char                         filename[AUDEX_UPLOAD_FILENAME_MAX + 1];
    const char                    *option;      /* AUDEX_F_BITRATE, ... */
    ngx_uint_t                     value;

    audex_sha256_t                 sha;         /* of the chunks before n */
    ngx_uint_t                     sha_ok;      /* known: not read back */

    u_char                        *data;        /* a chunk buffer */
    size_t                         len;
    u_char                        *scratch;     /* the other one */
    int32_t                        n;           /* data's chunk number */

    ngx_http_audex_tus_rc_e        rc;
    ngx_uint_t                     undo_failed;
    char                           err[NGX_HTTP_AUDEX_ERRLEN];
    char                           undo_err[NGX_HTTP_AUDEX_ERRLEN];
} ngx_http_audex_tus_task_t;


struct ngx_http_audex_tus_s {
    ngx_http_request_t            *request;
    ngx_http_audex_tus_task_t     *task;
    ngx_uint_t                     busy;        /* the task is in flight */
    ngx_uint_t                     reading;     /* the body is being read */
    ngx_uint_t                     created;     /* POST: answer 201 */
    ngx_event_t                    renew;       /* the lease's timer */

    off_t                          length;      /* Upload-Length */
    off_t                          received;    /* this request's bytes */
    off_t                          durable;     /* the offset, as stored */
    ngx_chain_t                   *in;          /* body not stored yet */

    u_char                        *chunk;       /* the chunk being filled */
    u_char                        *spare;       /* the other; NULL: busy */
    size_t                         fill;
    int32_t                        n;           /* chunk's number */

    audex_sniff_type_t             type;
    EVP_MD_CTX                    *md;          /* Upload-Checksum */
    u_char                         want[EVP_MAX_MD_SIZE];
    unsigned int                   want_len;

    ngx_http_audex_tus_rc_e        rc;
    char                           why[NGX_HTTP_AUDEX_ERRLEN];
};


static ngx_int_t ngx_http_audex_tus_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_audex_tus_options(ngx_http_request_t *r);
static ngx_int_t ngx_http_audex_tus_init(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static ngx_int_t ngx_http_audex_tus_id(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static ngx_int_t ngx_http_audex_tus_create(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static ngx_int_t ngx_http_audex_tus_metadata(ngx_http_audex_tus_t *tus,
    ngx_str_t *value);
static ngx_int_t ngx_http_audex_tus_patch(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static ngx_int_t ngx_http_audex_tus_body_check(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static ngx_int_t ngx_http_audex_tus_checksum(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static ngx_str_t *ngx_http_audex_tus_header(ngx_http_request_t *r,
    const char *name);
static ngx_int_t ngx_http_audex_tus_start(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus, ngx_http_audex_tus_op_e op);
static ngx_int_t ngx_http_audex_tus_post(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus, ngx_http_audex_tus_op_e op);
static ngx_int_t ngx_http_audex_tus_read_body(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static void ngx_http_audex_tus_body(ngx_http_request_t *r);
static void ngx_http_audex_tus_read(ngx_http_request_t *r);
static ngx_int_t ngx_http_audex_tus_body_take(ngx_http_request_t *r,
    void *data);
static void ngx_http_audex_tus_read_failed(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static void ngx_http_audex_tus_whole(ngx_http_request_t *r, void *data);
static void ngx_http_audex_tus_pump(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static ngx_int_t ngx_http_audex_tus_take(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static ngx_int_t ngx_http_audex_tus_data(ngx_http_audex_tus_t *tus,
    u_char *p, size_t len);
static void ngx_http_audex_tus_end(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static void ngx_http_audex_tus_fail(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static void ngx_http_audex_tus_work(void *data, ngx_log_t *log);
static void ngx_http_audex_tus_done(ngx_http_request_t *r, void *data);
static void ngx_http_audex_tus_count(ngx_http_audex_tus_t *tus,
    ngx_http_audex_tus_task_t *task);
static ngx_int_t ngx_http_audex_tus_answer(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static ngx_int_t ngx_http_audex_tus_error(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static ngx_int_t ngx_http_audex_tus_send(ngx_http_request_t *r,
    ngx_uint_t status);
static ngx_int_t ngx_http_audex_tus_headers(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus, ngx_uint_t expires);
static void ngx_http_audex_tus_md_cleanup(void *data);
static ngx_int_t ngx_http_audex_tus_renew_start(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus);
static void ngx_http_audex_tus_renew_handler(ngx_event_t *ev);
static void ngx_http_audex_tus_renew_cleanup(void *data);

/* thread side */
static void ngx_http_audex_tus_create_state(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client);
static void ngx_http_audex_tus_read_state(ngx_http_audex_tus_task_t *task,
    mongoc_collection_t *coll);
static void ngx_http_audex_tus_head(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client);
static void ngx_http_audex_tus_lock(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client);
static void ngx_http_audex_tus_recover(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client);
static ngx_int_t ngx_http_audex_tus_advance(ngx_http_audex_tus_task_t *task,
    mongoc_collection_t *coll, int64_t offset, bson_t *set);
static void ngx_http_audex_tus_chunk(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client);
static void ngx_http_audex_tus_save(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client);
static void ngx_http_audex_tus_complete(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client);
static ngx_int_t ngx_http_audex_tus_digest(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client, ngx_http_audex_gridfs_file_t *file);
static void ngx_http_audex_tus_unlock(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client);
static void ngx_http_audex_tus_delete(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client);
static ngx_int_t ngx_http_audex_tus_hold(ngx_http_audex_tus_task_t *task,
    mongoc_collection_t *coll);
static void ngx_http_audex_tus_sha_set(ngx_http_audex_tus_task_t *task,
    bson_t *set);
static ngx_int_t ngx_http_audex_tus_set(ngx_http_audex_tus_task_t *task,
    mongoc_collection_t *coll, bson_t *set);
static void ngx_http_audex_tus_backend(ngx_http_audex_tus_task_t *task,
    const char *what, bson_error_t *error);
static int64_t ngx_http_audex_tus_now(void);


char *
ngx_http_audex_tus(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_audex_set_handler(cf, cmd, ngx_http_audex_tus_handler,
                                      NGX_HTTP_AUDEX_H_TUS);
}


char *
ngx_http_audex_tus_merge(ngx_conf_t *cf, ngx_http_audex_loc_conf_t *alcf)
{
    ngx_http_core_loc_conf_t  *clcf;

    /* Upload-Length against audex_upload_max_size is the limit here */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->client_max_body_size = 0;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_audex_tus_handler(ngx_http_request_t *r)
{
    ngx_str_t             *v;
    ngx_http_audex_tus_t  *tus;

    if (r->method == NGX_HTTP_OPTIONS) {
        return ngx_http_audex_tus_options(r);
    }

    tus = ngx_pcalloc(r->pool, sizeof(ngx_http_audex_tus_t));
    if (tus == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    tus->request = r;
    tus->type = AUDEX_SNIFF_NEED_MORE;

    if (r != r->main) {
        tus->rc = NGX_HTTP_AUDEX_TUS_INTERNAL;
        ngx_cpystrn((u_char *) tus->why, (u_char *) "not in a subrequest",
                    sizeof(tus->why));
        return ngx_http_audex_tus_error(r, tus);
    }

    if (ngx_http_audex_auth_user(r) == NULL) {
        tus->rc = NGX_HTTP_AUDEX_TUS_NO_USER;
        return ngx_http_audex_tus_error(r, tus);
    }

    v = ngx_http_audex_tus_header(r, "Tus-Resumable");

    if (v == NULL
        || v->len != sizeof(NGX_HTTP_AUDEX_TUS_VERSION) - 1
        || ngx_strncmp(v->data, NGX_HTTP_AUDEX_TUS_VERSION, v->len) != 0)
    {
        tus->rc = NGX_HTTP_AUDEX_TUS_VERSION_FAILED;
        return ngx_http_audex_tus_error(r, tus);
    }

    ngx_http_audex_get_ctx(r)->data = tus;

    if (ngx_http_audex_tus_init(r, tus) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_POST) {
        return ngx_http_audex_tus_create(r, tus);
    }

    if (!(r->method & (NGX_HTTP_HEAD|NGX_HTTP_PATCH|NGX_HTTP_DELETE))) {
        return ngx_http_audex_method_not_allowed(r,
                   "OPTIONS, POST, HEAD, PATCH, DELETE");
    }

    if (ngx_http_audex_tus_id(r, tus) != NGX_OK) {
        tus->rc = NGX_HTTP_AUDEX_TUS_NOT_FOUND;
        return ngx_http_audex_tus_error(r, tus);
    }

    if (r->method == NGX_HTTP_PATCH) {
        return ngx_http_audex_tus_patch(r, tus);
    }

    return ngx_http_audex_tus_start(r, tus,
                                    r->method == NGX_HTTP_HEAD
                                    ? NGX_HTTP_AUDEX_TUS_STATE
                                    : NGX_HTTP_AUDEX_TUS_DELETE);
}


/* OPTIONS: what this server supports; needs no upload, nor a backend */

static ngx_int_t
ngx_http_audex_tus_options(ngx_http_request_t *r)
{
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_http_audex_loc_conf_t  *alcf;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_audex_module);

    p = ngx_pnalloc(r->pool, NGX_OFF_T_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_audex_add_header(r, "Tus-Resumable",
            (u_char *) NGX_HTTP_AUDEX_TUS_VERSION,
            sizeof(NGX_HTTP_AUDEX_TUS_VERSION) - 1) != NGX_OK
        || ngx_http_audex_add_header(r, "Tus-Version",
            (u_char *) NGX_HTTP_AUDEX_TUS_VERSION,
            sizeof(NGX_HTTP_AUDEX_TUS_VERSION) - 1) != NGX_OK
        || ngx_http_audex_add_header(r, "Tus-Extension",
            (u_char *) NGX_HTTP_AUDEX_TUS_EXTENSIONS,
            sizeof(NGX_HTTP_AUDEX_TUS_EXTENSIONS) - 1) != NGX_OK
        || ngx_http_audex_add_header(r, "Tus-Checksum-Algorithm",
            (u_char *) NGX_HTTP_AUDEX_TUS_CHECKSUMS,
            sizeof(NGX_HTTP_AUDEX_TUS_CHECKSUMS) - 1) != NGX_OK
        || (alcf->upload_max_size
            && ngx_http_audex_add_header(r, "Tus-Max-Size", p,
                   ngx_sprintf(p, "%O", alcf->upload_max_size) - p)
               != NGX_OK))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_audex_tus_send(r, NGX_HTTP_NO_CONTENT);
}


/* the task, posted again for each step */

static ngx_int_t
ngx_http_audex_tus_init(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    ngx_http_audex_user_t      *user;
    ngx_http_audex_tus_task_t  *task;
    ngx_http_audex_loc_conf_t  *alcf;

    task = ngx_http_audex_thread_alloc(r, sizeof(ngx_http_audex_tus_task_t));
    if (task == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(task, sizeof(ngx_http_audex_tus_task_t));

    user = ngx_http_audex_auth_user(r);
    alcf = ngx_http_get_module_loc_conf(r, ngx_http_audex_module);

    task->tus = tus;
    task->amcf = ngx_http_get_module_main_conf(r, ngx_http_audex_module);
    task->owner_id = (char *) user->user_id.data;
    task->owner_email = (char *) user->email.data;
    task->expires_in = (int64_t) alcf->tus_expires * 1000;
    task->option = AUDEX_F_BITRATE;
    task->value = AUDEX_MP3_BITRATE_DEFAULT;

    tus->task = task;

    return NGX_OK;
}


/* the upload's id: the last part of the URI, 24 hex digits */

static ngx_int_t
ngx_http_audex_tus_id(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    char  hex[25];

    if (r->uri.len < 25 || r->uri.data[r->uri.len - 25] != '/') {
        return NGX_ERROR;
    }

    ngx_memcpy(hex, r->uri.data + r->uri.len - 24, 24);
    hex[24] = '\0';

    if (!bson_oid_is_valid(hex, 24)) {
        return NGX_ERROR;
    }

    bson_oid_init_from_string(&tus->task->id, hex);

    return NGX_OK;
}


/* POST: Upload-Length, Upload-Metadata, maybe the first bytes */

static ngx_int_t
ngx_http_audex_tus_create(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    ngx_str_t                  *v;
    ngx_http_audex_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_audex_module);

    v = ngx_http_audex_tus_header(r, "Upload-Length");

    tus->length = v ? ngx_atoof(v->data, v->len) : NGX_ERROR;

    if (tus->length == NGX_ERROR) {
        tus->rc = NGX_HTTP_AUDEX_TUS_BAD;
        ngx_cpystrn((u_char *) tus->why, (u_char *)
                    (ngx_http_audex_tus_header(r, "Upload-Defer-Length")
                     ? "Upload-Defer-Length is not supported"
                     : "a valid Upload-Length required"),
                    sizeof(tus->why));
        return ngx_http_audex_tus_error(r, tus);
    }

    if (alcf->upload_max_size && tus->length > alcf->upload_max_size) {
        tus->rc = NGX_HTTP_AUDEX_TUS_TOO_LARGE;
        ngx_cpystrn((u_char *) tus->why,
                    (u_char *) "Upload-Length exceeds Tus-Max-Size",
                    sizeof(tus->why));
        ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_REFUSED_SIZE, 1);
        return ngx_http_audex_tus_error(r, tus);
    }

    v = ngx_http_audex_tus_header(r, "Upload-Metadata");

    if (v && ngx_http_audex_tus_metadata(tus, v) != NGX_OK) {
        tus->rc = NGX_HTTP_AUDEX_TUS_BAD;
        return ngx_http_audex_tus_error(r, tus);
    }

    tus->created = 1;
    tus->task->length = tus->length;
    bson_oid_init(&tus->task->id, NULL);

    /* creation-with-upload: created locked, the body read at offset 0 */

    if (r->headers_in.content_type
        || r->headers_in.content_length_n > 0
        || r->headers_in.chunked)
    {
        if (ngx_http_audex_tus_body_check(r, tus) != NGX_OK) {
            return ngx_http_audex_tus_error(r, tus);
        }

        tus->reading = 1;
        tus->task->hold = 1;
    }

    return ngx_http_audex_tus_start(r, tus, NGX_HTTP_AUDEX_TUS_CREATE);
}


/*
 * "key base64,key base64": filename (cleaned as /upload cleans names),
 * bitrate and quality as /upload takes them; filetype and anything else
 * ignored (the bytes are sniffed).
 */

static ngx_int_t
ngx_http_audex_tus_metadata(ngx_http_audex_tus_t *tus, ngx_str_t *value)
{
    u_char               *p, *last, *comma, *space;
    size_t                n;
    ngx_str_t             key, b64, dec;
    audex_upload_opts_t   opts;
    u_char                buf[NGX_HTTP_AUDEX_TUS_METADATA_MAX];
    u_char                name[AUDEX_UPLOAD_FILENAME_MAX];

    if (value->len > NGX_HTTP_AUDEX_TUS_METADATA_MAX) {
        ngx_cpystrn((u_char *) tus->why,
                    (u_char *) "Upload-Metadata too long", sizeof(tus->why));
        return NGX_ERROR;
    }

    audex_upload_opts_init(&opts);

    p = value->data;
    last = p + value->len;

    while (p < last) {
        while (p < last && *p == ' ') {
            p++;
        }

        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        space = ngx_strlchr(p, comma, ' ');

        key.data = p;
        key.len = (space ? space : comma) - p;
        b64.data = space ? space + 1 : comma;
        b64.len = comma - b64.data;

        p = comma + 1;

        dec.data = buf;

        if (key.len == 0
            || ngx_base64_decoded_length(b64.len) > sizeof(buf)
            || ngx_decode_base64(&dec, &b64) != NGX_OK)
        {
            ngx_cpystrn((u_char *) tus->why,
                        (u_char *) "malformed Upload-Metadata",
                        sizeof(tus->why));
            return NGX_ERROR;
        }

        if (key.len == sizeof("filename") - 1
            && ngx_strncmp(key.data, "filename", key.len) == 0)
        {
            n = audex_upload_name_clean(name, dec.data, dec.len, 0);

            if (n) {
                (void) audex_upload_opts_set(&opts, key.data, key.len, name,
                                             n, NULL, 0);
            }

            continue;
        }

        if (audex_upload_opts_set(&opts, key.data, key.len, dec.data,
                                  dec.len, tus->why, sizeof(tus->why))
            == AUDEX_UPLOAD_OPTS_ERROR)
        {
            return NGX_ERROR;
        }
    }

    ngx_memcpy(tus->task->filename, opts.filename, opts.filename_len);
    tus->task->filename[opts.filename_len] = '\0';

    if (opts.mode == AUDEX_UPLOAD_VBR) {
        tus->task->option = AUDEX_F_QUALITY;
        tus->task->value = opts.quality;

    } else {
        tus->task->option = AUDEX_F_BITRATE;
        tus->task->value = opts.bitrate;
    }

    return NGX_OK;
}


/* PATCH: Upload-Offset, the body type, maybe Upload-Checksum */

static ngx_int_t
ngx_http_audex_tus_patch(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    ngx_str_t  *v;

    if (ngx_http_audex_tus_body_check(r, tus) != NGX_OK) {
        return ngx_http_audex_tus_error(r, tus);
    }

    v = ngx_http_audex_tus_header(r, "Upload-Offset");

    tus->task->offset = v ? ngx_atoof(v->data, v->len) : NGX_ERROR;

    if (tus->task->offset == NGX_ERROR) {
        tus->rc = NGX_HTTP_AUDEX_TUS_BAD;
        ngx_cpystrn((u_char *) tus->why,
                    (u_char *) "a valid Upload-Offset required",
                    sizeof(tus->why));
        return ngx_http_audex_tus_error(r, tus);
    }

    tus->reading = 1;
    tus->task->checksum = (tus->md != NULL);

    return ngx_http_audex_tus_start(r, tus, NGX_HTTP_AUDEX_TUS_LOCK);
}


/* a body of bytes to store: its type, checksum and buffers */

static ngx_int_t
ngx_http_audex_tus_body_check(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus)
{
    ngx_str_t  *ct;

    ct = r->headers_in.content_type ? &r->headers_in.content_type->value
                                    : NULL;

    if (ct == NULL
        || ct->len != sizeof(NGX_HTTP_AUDEX_TUS_OCTETS) - 1
        || ngx_strncasecmp(ct->data, (u_char *) NGX_HTTP_AUDEX_TUS_OCTETS,
                           ct->len) != 0)
    {
        tus->rc = NGX_HTTP_AUDEX_TUS_CONTENT_TYPE;
        return NGX_ERROR;
    }

    if (ngx_http_audex_tus_checksum(r, tus) != NGX_OK) {
        return NGX_ERROR;
    }

    /* two: the client's next chunk arrives while the last is stored */
    tus->chunk = ngx_palloc(r->pool, AUDEX_GRIDFS_CHUNK);
    tus->spare = ngx_palloc(r->pool, AUDEX_GRIDFS_CHUNK);

    if (tus->chunk == NULL || tus->spare == NULL) {
        tus->rc = NGX_HTTP_AUDEX_TUS_INTERNAL;
        return NGX_ERROR;
    }

    tus->task->data = tus->chunk;

    return NGX_OK;
}


/* Upload-Checksum: "sha1 <base64>" or "sha256 <base64>" */

static ngx_int_t
ngx_http_audex_tus_checksum(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    u_char              *space;
    ngx_str_t           *v, b64, dec;
    const EVP_MD        *md;
    ngx_pool_cleanup_t  *cln;

    v = ngx_http_audex_tus_header(r, "Upload-Checksum");
    if (v == NULL) {
        return NGX_OK;
    }

    space = ngx_strlchr(v->data, v->data + v->len, ' ');

    if (space == NULL) {
        goto bad;
    }

    if (space - v->data == 4 && ngx_strncmp(v->data, "sha1", 4) == 0) {
        md = EVP_sha1();

    } else if (space - v->data == 6
               && ngx_strncmp(v->data, "sha256", 6) == 0)
    {
        md = EVP_sha256();

    } else {
        tus->rc = NGX_HTTP_AUDEX_TUS_BAD;
        ngx_cpystrn((u_char *) tus->why,
                    (u_char *) "unsupported checksum algorithm",
                    sizeof(tus->why));
        return NGX_ERROR;
    }

    b64.data = space + 1;
    b64.len = v->data + v->len - b64.data;
    dec.data = tus->want;

    if (ngx_base64_decoded_length(b64.len) > sizeof(tus->want)
        || ngx_decode_base64(&dec, &b64) != NGX_OK
        || dec.len != (size_t) EVP_MD_size(md))
    {
        goto bad;
    }

    tus->want_len = dec.len;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        tus->rc = NGX_HTTP_AUDEX_TUS_INTERNAL;
        return NGX_ERROR;
    }

    tus->md = EVP_MD_CTX_new();
    if (tus->md == NULL) {
        tus->rc = NGX_HTTP_AUDEX_TUS_INTERNAL;
        return NGX_ERROR;
    }

    cln->handler = ngx_http_audex_tus_md_cleanup;
    cln->data = tus->md;

    if (EVP_DigestInit_ex(tus->md, md, NULL) != 1) {
        tus->rc = NGX_HTTP_AUDEX_TUS_INTERNAL;
        return NGX_ERROR;
    }

    return NGX_OK;

bad:

    tus->rc = NGX_HTTP_AUDEX_TUS_BAD;
    ngx_cpystrn((u_char *) tus->why, (u_char *) "malformed Upload-Checksum",
                sizeof(tus->why));
    return NGX_ERROR;
}


static void
ngx_http_audex_tus_md_cleanup(void *data)
{
    EVP_MD_CTX_free(data);
}


static ngx_str_t *
ngx_http_audex_tus_header(ngx_http_request_t *r, const char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i].value;
        }
    }
}


/* the first task of a request, as a content handler posts it */

static ngx_int_t
ngx_http_audex_tus_start(ngx_http_request_t *r, ngx_http_audex_tus_t *tus,
    ngx_http_audex_tus_op_e op)
{
    u_char  buf[16];

    if (op == NGX_HTTP_AUDEX_TUS_CREATE || op == NGX_HTTP_AUDEX_TUS_LOCK
        || op == NGX_HTTP_AUDEX_TUS_STATE)
    {
        /*
         * the lock's token: whoever holds it, and no one else (HEAD sets
         * it when it advances the offset, so an old holder writes no more)
         */
        if (RAND_bytes(buf, 12) != 1) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_hex_dump((u_char *) tus->task->token, buf, 12);
    }

    tus->task->op = op;
    tus->busy = 1;

    return ngx_http_audex_thread_start(r, tus->task, ngx_http_audex_tus_work,
                                       ngx_http_audex_tus_done, "tus");
}


/* a later step: NGX_AGAIN once posted, NGX_ERROR with tus->rc set */

static ngx_int_t
ngx_http_audex_tus_post(ngx_http_request_t *r, ngx_http_audex_tus_t *tus,
    ngx_http_audex_tus_op_e op)
{
    ngx_http_audex_tus_task_t  *task;

    task = tus->task;
    task->op = op;
    task->data = tus->chunk;
    task->len = tus->fill;
    task->n = tus->n;
    task->scratch = tus->spare;
    task->advance = (tus->md == NULL);

    if (op == NGX_HTTP_AUDEX_TUS_CHUNK) {
        /* the next chunk fills the other buffer meanwhile */
        tus->chunk = tus->spare;
        tus->spare = NULL;
        tus->fill = 0;
        tus->n++;
    }

    if (ngx_http_audex_thread_post(r, task, ngx_http_audex_tus_work,
                                   ngx_http_audex_tus_done)
        != NGX_OK)
    {
        tus->rc = NGX_HTTP_AUDEX_TUS_BUSY;
        return NGX_ERROR;
    }

    tus->busy = 1;

    return NGX_AGAIN;
}


/* the upload is held: the body is read (NGX_DONE) */

static ngx_int_t
ngx_http_audex_tus_read_body(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    ngx_int_t  rc;

    r->request_body_no_buffering = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_audex_tus_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        tus->rc = r->connection->read->timedout
                  ? NGX_HTTP_AUDEX_TUS_TIMEOUT
                  : r->connection->error
                    ? NGX_HTTP_AUDEX_TUS_CLOSED
                    : NGX_HTTP_AUDEX_TUS_BAD;
        ngx_cpystrn((u_char *) tus->why, (u_char *) "malformed request body",
                    sizeof(tus->why));
        ngx_http_audex_tus_fail(r, tus);
        return NGX_DONE;
    }

    return NGX_DONE;
}


static void
ngx_http_audex_tus_body(ngx_http_request_t *r)
{
    r->read_event_handler = ngx_http_audex_tus_read;

    ngx_http_audex_tus_pump(r, ngx_http_audex_get_ctx(r)->data);
}


static void
ngx_http_audex_tus_read(ngx_http_request_t *r)
{
    ngx_http_audex_tus_t  *tus;

    tus = ngx_http_audex_get_ctx(r)->data;

    if (tus->rc != NGX_HTTP_AUDEX_TUS_OK) {
        return;
    }

    ngx_http_audex_tus_pump(r, tus);
}


/* the body into the chunk buffer, as ngx_http_audex_body_pump() drives it */

static void
ngx_http_audex_tus_pump(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    static const ngx_http_audex_body_t  body = {
        ngx_http_audex_tus_body_take,
        ngx_http_audex_tus_read_failed,
        ngx_http_audex_tus_whole
    };

    ngx_http_audex_body_pump(r, &tus->in, &tus->busy, &body, tus);
}


static ngx_int_t
ngx_http_audex_tus_body_take(ngx_http_request_t *r, void *data)
{
    return ngx_http_audex_tus_take(r, data);
}


/* rc: nginx's status when reading failed; NGX_OK: taking did, tus->rc */

static void
ngx_http_audex_tus_read_failed(ngx_http_request_t *r, void *data,
    ngx_int_t rc)
{
    ngx_http_audex_tus_t  *tus = data;

    if (rc != NGX_OK) {
        tus->rc = (rc == NGX_HTTP_REQUEST_TIME_OUT)
                  ? NGX_HTTP_AUDEX_TUS_TIMEOUT
                  : r->connection->error
                    ? NGX_HTTP_AUDEX_TUS_CLOSED
                    : NGX_HTTP_AUDEX_TUS_BAD;
        ngx_cpystrn((u_char *) tus->why,
                    (u_char *) "malformed request body",
                    sizeof(tus->why));
    }

    ngx_http_audex_tus_fail(r, tus);
}


static void
ngx_http_audex_tus_whole(ngx_http_request_t *r, void *data)
{
    ngx_http_audex_tus_end(r, data);
}


/*
 * Moves tus->in into the chunk buffer; a full chunk goes to a thread.
 * NGX_OK when all is taken, NGX_AGAIN when a full chunk waits for the
 * one in flight (the client waits for us: no body timeout meanwhile),
 * NGX_ERROR with tus->rc set.
 */

static ngx_int_t
ngx_http_audex_tus_take(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    size_t        n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    for ( ;; ) {

        if (tus->fill == AUDEX_GRIDFS_CHUNK) {
            if (tus->busy) {
                if (r->connection->read->timer_set) {
                    ngx_del_timer(r->connection->read);
                }

                return NGX_AGAIN;
            }

            if (ngx_http_audex_tus_post(r, tus, NGX_HTTP_AUDEX_TUS_CHUNK)
                != NGX_AGAIN)
            {
                return NGX_ERROR;
            }
        }

        if (tus->in == NULL) {
            return NGX_OK;
        }

        cl = tus->in;
        b = cl->buf;

        n = ngx_min((size_t) (b->last - b->pos),
                    AUDEX_GRIDFS_CHUNK - tus->fill);

        if (n && ngx_http_audex_tus_data(tus, b->pos, n) != NGX_OK) {
            return NGX_ERROR;
        }

        b->pos += n;

        if (b->pos == b->last) {
            tus->in = cl->next;
            ngx_free_chain(r->pool, cl);
        }
    }
}


/* bytes at the upload's offset: bounded, hashed, the first sniffed */

static ngx_int_t
ngx_http_audex_tus_data(ngx_http_audex_tus_t *tus, u_char *p, size_t len)
{
    off_t  end;

    end = (off_t) tus->n * AUDEX_GRIDFS_CHUNK + tus->fill + len;

    if (end > tus->length) {
        tus->rc = NGX_HTTP_AUDEX_TUS_TOO_LARGE;
        ngx_cpystrn((u_char *) tus->why,
                    (u_char *) "more bytes than Upload-Length",
                    sizeof(tus->why));
        return NGX_ERROR;
    }

    ngx_memcpy(tus->chunk + tus->fill, p, len);
    tus->fill += len;
    tus->received += len;

    if (tus->md && EVP_DigestUpdate(tus->md, p, len) != 1) {
        tus->rc = NGX_HTTP_AUDEX_TUS_INTERNAL;
        return NGX_ERROR;
    }

    /*
     * The first chunk holds the file's first bytes (those of earlier
     * PATCHes came back as the tail): the sniffer decides long before
     * the chunk is full, so nothing is stored before it has.
     */

    if (tus->n == 0 && tus->type == AUDEX_SNIFF_NEED_MORE) {
        tus->type = audex_sniff(tus->chunk, tus->fill, end == tus->length);

        if (tus->type == AUDEX_SNIFF_UNKNOWN) {
            tus->rc = NGX_HTTP_AUDEX_TUS_FORMAT;
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the body is stored but its last bytes: check, then save or complete */

static void
ngx_http_audex_tus_end(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    unsigned int  len;
    u_char        digest[EVP_MAX_MD_SIZE];

    if (tus->md) {
        if (EVP_DigestFinal_ex(tus->md, digest, &len) != 1) {
            tus->rc = NGX_HTTP_AUDEX_TUS_INTERNAL;
            goto failed;
        }

        if (len != tus->want_len || ngx_memcmp(digest, tus->want, len) != 0)
        {
            tus->rc = NGX_HTTP_AUDEX_TUS_CHECKSUM;
            goto failed;
        }
    }

    if (ngx_http_audex_tus_post(r, tus, NGX_HTTP_AUDEX_TUS_SAVE)
        == NGX_AGAIN)
    {
        return;
    }

failed:

    ngx_http_audex_tus_fail(r, tus);
}


/*
 * A PATCH that ends badly releases the upload, then answers.  A client
 * that went away keeps what it sent (without a checksum to match):
 * that is saved as a PATCH's end would save it.
 */

static void
ngx_http_audex_tus_fail(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    ngx_http_audex_tus_rc_e  rc;
    ngx_http_audex_tus_op_e  op;

    if (tus->busy) {
        /* its completion comes back here */
        return;
    }

    if (tus->reading) {
        tus->reading = 0;
        rc = tus->rc;

        op = ((rc == NGX_HTTP_AUDEX_TUS_CLOSED
               || rc == NGX_HTTP_AUDEX_TUS_TIMEOUT)
              && tus->md == NULL)
             ? NGX_HTTP_AUDEX_TUS_SAVE : NGX_HTTP_AUDEX_TUS_UNLOCK;

        if (ngx_http_audex_tus_post(r, tus, op) == NGX_AGAIN) {
            return;
        }

        /* the lease runs out by itself */
        tus->rc = rc;
    }

    ngx_http_finalize_request(r, ngx_http_audex_tus_error(r, tus));
}


static void
ngx_http_audex_tus_done(ngx_http_request_t *r, void *data)
{
    ngx_http_audex_tus_task_t *task = data;

    ngx_http_audex_tus_t  *tus;

    tus = task->tus;
    tus->busy = 0;

    ngx_http_audex_tus_count(tus, task);

    switch (task->op) {

    case NGX_HTTP_AUDEX_TUS_CREATE:
    case NGX_HTTP_AUDEX_TUS_LOCK:

        tus->rc = task->rc;

        if (tus->rc != NGX_HTTP_AUDEX_TUS_OK) {
            tus->reading = 0;
            ngx_http_finalize_request(r, ngx_http_audex_tus_error(r, tus));
            return;
        }

        if (!tus->reading) {
            /* a POST without a body */
            ngx_http_finalize_request(r, ngx_http_audex_tus_answer(r, tus));
            return;
        }

        /* the tail came back into the chunk buffer */
        tus->length = task->length;
        tus->n = (int32_t) (task->offset / AUDEX_GRIDFS_CHUNK);
        tus->fill = task->len;

        if (ngx_http_audex_tus_renew_start(r, tus) != NGX_OK) {
            tus->rc = NGX_HTTP_AUDEX_TUS_INTERNAL;
            ngx_http_audex_tus_fail(r, tus);
            return;
        }

        ngx_http_finalize_request(r, ngx_http_audex_tus_read_body(r, tus));
        return;

    case NGX_HTTP_AUDEX_TUS_CHUNK:
    case NGX_HTTP_AUDEX_TUS_RENEW:

        if (task->op == NGX_HTTP_AUDEX_TUS_CHUNK) {
            tus->spare = task->data;
        }

        if (task->rc != NGX_HTTP_AUDEX_TUS_OK
            && tus->rc == NGX_HTTP_AUDEX_TUS_OK)
        {
            tus->rc = task->rc;
        }

        if (tus->rc != NGX_HTTP_AUDEX_TUS_OK) {
            if (task->rc == NGX_HTTP_AUDEX_TUS_LOCKED_BY) {
                /* not ours any more: nothing to release */
                tus->reading = 0;
            }

            ngx_http_audex_tus_fail(r, tus);
            return;
        }

        ngx_http_audex_tus_pump(r, tus);
        return;

    case NGX_HTTP_AUDEX_TUS_SAVE:
    case NGX_HTTP_AUDEX_TUS_UNLOCK:

        if (tus->reading) {
            tus->reading = 0;
            tus->rc = task->rc;
        }

        if (tus->rc != NGX_HTTP_AUDEX_TUS_OK) {
            ngx_http_finalize_request(r, ngx_http_audex_tus_error(r, tus));
            return;
        }

        ngx_http_finalize_request(r, ngx_http_audex_tus_answer(r, tus));
        return;

    default: /* STATE, DELETE */

        tus->rc = task->rc;

        if (tus->rc != NGX_HTTP_AUDEX_TUS_OK) {
            ngx_http_finalize_request(r, ngx_http_audex_tus_error(r, tus));
            return;
        }

        ngx_http_finalize_request(r, ngx_http_audex_tus_answer(r, tus));
        return;
    }
}


/*
 * While a PATCH holds the upload its lease is renewed every half lease,
 * by the chunks it stores or, when its client is slow to send them, by
 * this timer: a lease runs out only when its holder is gone (or its
 * event loop or thread pool stuck that long), and a holder that finds
 * it taken (ngx_http_audex_tus_hold) stops before writing anything.
 */

static ngx_int_t
ngx_http_audex_tus_renew_start(ngx_http_request_t *r,
    ngx_http_audex_tus_t *tus)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_audex_tus_renew_cleanup;
    cln->data = &tus->renew;

    tus->renew.handler = ngx_http_audex_tus_renew_handler;
    tus->renew.data = r;
    tus->renew.log = r->connection->log;
    tus->renew.cancelable = 1;

    ngx_add_timer(&tus->renew, 1000);

    return NGX_OK;
}


static void
ngx_http_audex_tus_renew_handler(ngx_event_t *ev)
{
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_http_audex_tus_t  *tus;

    r = ev->data;
    c = r->connection;
    tus = ngx_http_audex_get_ctx(r)->data;

    if (!tus->reading || tus->rc != NGX_HTTP_AUDEX_TUS_OK) {
        return;
    }

    /* a task in flight renews it itself (ngx_http_audex_tus_hold) */

    if (!tus->busy
        && ngx_http_audex_tus_now() - tus->task->renewed
           >= AUDEX_TUS_LEASE * 1000 / 2)
    {
        if (ngx_http_audex_tus_post(r, tus, NGX_HTTP_AUDEX_TUS_RENEW)
            != NGX_AGAIN)
        {
            ngx_http_audex_tus_fail(r, tus);
            ngx_http_run_posted_requests(c);
            return;
        }
    }

    ngx_add_timer(ev, 1000);
}


static void
ngx_http_audex_tus_renew_cleanup(void *data)
{
    ngx_event_t  *ev = data;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }
}


/*
 * The metrics of a step that came back: uploads by how they began and
 * ended, and the bytes by which this request advanced the durable
 * offset (a tail saved counts; a chunk stored past the offset, while a
 * checksum is pending, does not).  Full chunks found past the offset of
 * an upload no one held (stored by a PATCH that died or failed before
 * advancing over them) count when HEAD or PATCH makes them durable:
 * their PATCH could not, so each byte is counted once.
 */

static void
ngx_http_audex_tus_count(ngx_http_audex_tus_t *tus,
    ngx_http_audex_tus_task_t *task)
{
    if (task->recovered) {
        ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_TUS_BYTES, task->recovered);
        task->recovered = 0;
    }

    if (task->rc != NGX_HTTP_AUDEX_TUS_OK) {
        if (task->removed) {
            ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_TUS_FAILED, 1);
        }

        return;
    }

    switch (task->op) {

    case NGX_HTTP_AUDEX_TUS_CREATE:
        ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_TUS_CREATED, 1);
        tus->durable = 0;
        return;

    case NGX_HTTP_AUDEX_TUS_LOCK:
        tus->durable = task->offset;
        return;

    case NGX_HTTP_AUDEX_TUS_CHUNK:
    case NGX_HTTP_AUDEX_TUS_SAVE:

        if (task->offset > tus->durable) {
            ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_TUS_BYTES,
                                       task->offset - tus->durable);
            tus->durable = task->offset;
        }

        if (task->op == NGX_HTTP_AUDEX_TUS_SAVE && task->done) {
            ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_TUS_COMPLETED, 1);
        }

        return;

    case NGX_HTTP_AUDEX_TUS_DELETE:

        if (!task->done) {
            ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_TUS_TERMINATED, 1);
        }

        return;

    default: /* STATE, UNLOCK */
        return;
    }
}


/* success: 201 (creation), 200 (HEAD), 204 (PATCH, DELETE) */

static ngx_int_t
ngx_http_audex_tus_answer(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    u_char                     *p;
    size_t                      len;
    ngx_int_t                   rc;
    ngx_http_audex_tus_task_t  *task;
    char                        id[25];

    task = tus->task;

    if (r->method == NGX_HTTP_DELETE) {
        bson_oid_to_string(&task->id, id);
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: tus upload %s terminated by %s", id,
                      task->owner_email);

        return ngx_http_audex_tus_headers(r, tus, 0) != NGX_OK
               ? NGX_HTTP_INTERNAL_SERVER_ERROR
               : ngx_http_audex_tus_send(r, NGX_HTTP_NO_CONTENT);
    }

    if (ngx_http_audex_tus_headers(r, tus, !task->done) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (tus->created) {
        len = r->uri.len + 1 + 24;

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        len = ngx_cpymem(p, r->uri.data, r->uri.len) - p;

        if (len == 0 || p[len - 1] != '/') {
            p[len++] = '/';
        }

        bson_oid_to_string(&task->id, (char *) p + len);
        len += 24;

        if (ngx_http_audex_add_header(r, "Location", p, len) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (task->done && tus->received) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: tus upload of \"%s\" by %s complete "
                      "(%L bytes), job %s queued",
                      task->filename, task->owner_email, task->length,
                      task->job_id);

        ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_UPLOAD_FILES, 1);
    }

    if (tus->received) {
        ngx_http_audex_metrics_add(NGX_HTTP_AUDEX_UPLOAD_BYTES,
                                   tus->received);
    }

    if (r->method == NGX_HTTP_HEAD) {
        rc = ngx_http_audex_add_header(r, "Cache-Control",
                                       (u_char *) "no-store", 8);
        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_audex_tus_send(r, NGX_HTTP_OK);
    }

    return ngx_http_audex_tus_send(r, tus->created ? NGX_HTTP_CREATED
                                                   : NGX_HTTP_NO_CONTENT);
}


/* Tus-Resumable, and what the state says: offset, length, expiry, job */

static ngx_int_t
ngx_http_audex_tus_headers(ngx_http_request_t *r, ngx_http_audex_tus_t *tus,
    ngx_uint_t state)
{
    u_char                     *p;
    ngx_http_audex_tus_task_t  *task;

    if (ngx_http_audex_add_header(r, "Tus-Resumable",
                                  (u_char *) NGX_HTTP_AUDEX_TUS_VERSION,
                                  sizeof(NGX_HTTP_AUDEX_TUS_VERSION) - 1)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    task = tus->task;

    if (task == NULL || tus->rc != NGX_HTTP_AUDEX_TUS_OK
        || r->method == NGX_HTTP_DELETE)
    {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, 2 * NGX_OFF_T_LEN + sizeof("Mon, 28 Sep 1970 "
                                                        "06:00:00 GMT"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_audex_add_header(r, "Upload-Offset", p,
            ngx_sprintf(p, "%L", task->offset) - p) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p += NGX_OFF_T_LEN;

    if (r->method == NGX_HTTP_HEAD
        && ngx_http_audex_add_header(r, "Upload-Length", p,
               ngx_sprintf(p, "%L", task->length) - p) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p += NGX_OFF_T_LEN;

    if (state
        && ngx_http_audex_add_header(r, "Upload-Expires", p,
               ngx_http_time(p, (time_t) (task->expires_at / 1000)) - p)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (task->done
        && ngx_http_audex_add_header(r, "Audex-Job-Id",
                                     (u_char *) task->job_id, 24)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a response without a body */

static ngx_int_t
ngx_http_audex_tus_send(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_int_t  rc;

    r->headers_out.status = status;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    return NGX_OK;
}


/*
 * The one place where a failure becomes a status: one log line, a JSON
 * answer with Tus-Resumable, and what to finalize the request with.
 */

static ngx_int_t
ngx_http_audex_tus_error(ngx_http_request_t *r, ngx_http_audex_tus_t *tus)
{
    ngx_int_t                    rc;
    const char                  *text;
    ngx_http_audex_tus_task_t   *task;
    ngx_http_audex_tus_error_t  *e;

    task = tus->task;

    e = &ngx_http_audex_tus_errors[
            (tus->rc > NGX_HTTP_AUDEX_TUS_OK
             && tus->rc < NGX_HTTP_AUDEX_TUS_INTERNAL)
            ? tus->rc : NGX_HTTP_AUDEX_TUS_INTERNAL];

    text = (e->text && tus->rc != NGX_HTTP_AUDEX_TUS_TOO_LARGE)
           ? e->text : tus->why;

    ngx_log_error(e->level, r->connection->log, 0,
                  "audex: tus %V failed: %s%s%s%s after %O bytes",
                  &r->method_name, text,
                  (task && e->level <= NGX_LOG_ERR && task->err[0])
                  ? " (" : "",
                  (task && e->level <= NGX_LOG_ERR) ? task->err : "",
                  (task && e->level <= NGX_LOG_ERR && task->err[0])
                  ? ")" : "",
                  tus->received);

    if (e->status == NGX_HTTP_REQUEST_TIME_OUT
        || e->status == NGX_HTTP_CLIENT_CLOSED_REQUEST)
    {
        return e->status;
    }

    if (r->request_body == NULL) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

    } else if (r->reading_body) {
        /* the rest of the body must not be taken for a next request */
        r->keepalive = 0;
        r->lingering_close = 1;
    }

    if (e->status == NGX_HTTP_AUDEX_TUS_LOCKED) {
        ngx_str_set(&r->headers_out.status_line, "423 Locked");

    } else if (e->status == NGX_HTTP_AUDEX_TUS_CHECKSUM_MISMATCH) {
        ngx_str_set(&r->headers_out.status_line, "460 Checksum Mismatch");
    }

    if (ngx_http_audex_tus_headers(r, tus, 0) != NGX_OK
        || (e->status == NGX_HTTP_UNAUTHORIZED
            && ngx_http_audex_add_header(r, "WWW-Authenticate",
                   (u_char *) "Bearer realm=\"audex\"",
                   sizeof("Bearer realm=\"audex\"") - 1)
               != NGX_OK)
        || (e->status == NGX_HTTP_PRECONDITION_FAILED
            && ngx_http_audex_add_header(r, "Tus-Version",
                   (u_char *) NGX_HTTP_AUDEX_TUS_VERSION,
                   sizeof(NGX_HTTP_AUDEX_TUS_VERSION) - 1)
               != NGX_OK))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_audex_send_error(r, e->status, text);
}


/* thread side: only the task and the buffers it was handed */

static void
ngx_http_audex_tus_work(void *data, ngx_log_t *log)
{
    ngx_http_audex_tus_task_t *task = data;

    mongoc_client_t      *client;
    mongoc_collection_t  *coll;

    task->rc = NGX_HTTP_AUDEX_TUS_OK;
    task->err[0] = '\0';

    client = ngx_http_audex_mongo_pop(task->amcf);

    switch (task->op) {

    case NGX_HTTP_AUDEX_TUS_CREATE:
        ngx_http_audex_tus_create_state(task, client);
        break;

    case NGX_HTTP_AUDEX_TUS_STATE:
        ngx_http_audex_tus_head(task, client);
        break;

    case NGX_HTTP_AUDEX_TUS_RENEW:
        coll = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                            AUDEX_COLL_TUS);
        (void) ngx_http_audex_tus_hold(task, coll);
        mongoc_collection_destroy(coll);
        break;

    case NGX_HTTP_AUDEX_TUS_LOCK:
        ngx_http_audex_tus_lock(task, client);
        break;

    case NGX_HTTP_AUDEX_TUS_CHUNK:
        ngx_http_audex_tus_chunk(task, client);
        break;

    case NGX_HTTP_AUDEX_TUS_SAVE:
        ngx_http_audex_tus_save(task, client);
        break;

    case NGX_HTTP_AUDEX_TUS_UNLOCK:
        ngx_http_audex_tus_unlock(task, client);
        break;

    default: /* NGX_HTTP_AUDEX_TUS_DELETE */
        ngx_http_audex_tus_delete(task, client);
        break;
    }

    ngx_http_audex_mongo_push(task->amcf, client);
}


/*
 * The state of a new upload, and its record among the files being
 * written; with a body it is created held by this request.
 */

static void
ngx_http_audex_tus_create_state(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client)
{
    bson_t                        *doc;
    int64_t                        now;
    bson_error_t                   error;
    mongoc_collection_t           *coll;
    ngx_http_audex_gridfs_file_t   file;
    uint8_t                        sha[AUDEX_SHA256_STATE_LEN];

    now = ngx_http_audex_tus_now();

    task->offset = 0;
    task->len = 0;

    audex_sha256_init(&task->sha);
    (void) audex_sha256_save(&task->sha, sha);
    task->sha_ok = 1;
    task->expires_at = now + task->expires_in;
    task->renewed = now;

    if (ngx_http_audex_gridfs_indexes(client, task->amcf->mongo_db,
                                      task->err)
        != NGX_OK)
    {
        task->rc = NGX_HTTP_AUDEX_TUS_MONGO;
        return;
    }

    doc = BCON_NEW("_id", BCON_OID(&task->id),
                   AUDEX_F_OWNER_ID, BCON_UTF8(task->owner_id),
                   AUDEX_F_OWNER_EMAIL, BCON_UTF8(task->owner_email),
                   AUDEX_F_FILENAME, BCON_UTF8((char *) task->filename),
                   task->option, BCON_INT32((int32_t) task->value),
                   AUDEX_F_TUS_LENGTH, BCON_INT64(task->length),
                   AUDEX_F_TUS_OFFSET, BCON_INT64(0),
                   AUDEX_F_TUS_TAIL, BCON_BIN(BSON_SUBTYPE_BINARY,
                                              (uint8_t *) "", 0),
                   AUDEX_F_TUS_SHA256, BCON_BIN(BSON_SUBTYPE_BINARY, sha,
                                                sizeof(sha)),
                   AUDEX_F_TUS_EXPIRES_AT, BCON_DATE_TIME(task->expires_at),
                   AUDEX_F_TUS_LOCK, BCON_UTF8(task->token),
                   AUDEX_F_TUS_LOCK_UNTIL,
                       BCON_DATE_TIME(task->hold
                                      ? now + AUDEX_TUS_LEASE * 1000 : 0),
                   AUDEX_F_JOB_ID, BCON_NULL,
                   AUDEX_F_CREATED_AT, BCON_DATE_TIME(now));

    /* recorded first: the sweeper finds what a failure leaves */

    ngx_memzero(&file, sizeof(file));
    bson_oid_copy(&task->id, &file.id);

    coll = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                        AUDEX_COLL_TUS);

    if (ngx_http_audex_gridfs_record(client, task->amcf->mongo_db, &file,
                                     NGX_HTTP_AUDEX_GRIDFS_BEGIN, task->err)
        != NGX_OK)
    {
        task->rc = NGX_HTTP_AUDEX_TUS_MONGO;

    } else if (audex_store_tus_create(coll, doc, &error) != 0) {
        ngx_http_audex_tus_backend(task, "creating the upload", &error);
    }

    mongoc_collection_destroy(coll);
    bson_destroy(doc);
}


/* task's fields from the state document; task->rc says what it found */

static void
ngx_http_audex_tus_read_state(ngx_http_audex_tus_task_t *task,
    mongoc_collection_t *coll)
{
    int              rc;
    bson_t          *doc;
    uint32_t         len;
    bson_iter_t      it;
    bson_error_t     error;
    const char      *s;
    const uint8_t   *bin;
    bson_subtype_t   sub;

    rc = audex_store_tus_get(coll, &task->id, &doc, &error);

    if (rc < 0) {
        ngx_http_audex_tus_backend(task, "reading the upload", &error);
        return;
    }

    if (rc == 0) {
        task->rc = NGX_HTTP_AUDEX_TUS_NOT_FOUND;
        return;
    }

    /* someone else's upload is no upload at all */

    if (!bson_iter_init_find(&it, doc, AUDEX_F_OWNER_ID)
        || !BSON_ITER_HOLDS_UTF8(&it)
        || ngx_strcmp(bson_iter_utf8(&it, NULL), task->owner_id) != 0)
    {
        task->rc = NGX_HTTP_AUDEX_TUS_NOT_FOUND;
        goto done;
    }

    task->length = bson_iter_init_find(&it, doc, AUDEX_F_TUS_LENGTH)
                   ? bson_iter_as_int64(&it) : 0;
    task->offset = bson_iter_init_find(&it, doc, AUDEX_F_TUS_OFFSET)
                   ? bson_iter_as_int64(&it) : 0;
    task->expires_at = (bson_iter_init_find(&it, doc, AUDEX_F_TUS_EXPIRES_AT)
                        && BSON_ITER_HOLDS_DATE_TIME(&it))
                       ? bson_iter_date_time(&it) : 0;

    task->done = 0;

    if (bson_iter_init_find(&it, doc, AUDEX_F_JOB_ID)
        && BSON_ITER_HOLDS_UTF8(&it))
    {
        task->done = 1;
        ngx_cpystrn((u_char *) task->job_id,
                    (u_char *) bson_iter_utf8(&it, NULL),
                    sizeof(task->job_id));
    }

    if (bson_iter_init_find(&it, doc, AUDEX_F_FILENAME)
        && BSON_ITER_HOLDS_UTF8(&it))
    {
        s = bson_iter_utf8(&it, &len);
        len = ngx_min(len, AUDEX_UPLOAD_FILENAME_MAX);
        ngx_memcpy(task->filename, s, len);
        task->filename[len] = '\0';
    }

    if (bson_iter_init_find(&it, doc, AUDEX_F_QUALITY)) {
        task->option = AUDEX_F_QUALITY;
        task->value = (ngx_uint_t) bson_iter_as_int64(&it);

    } else if (bson_iter_init_find(&it, doc, AUDEX_F_BITRATE)) {
        task->option = AUDEX_F_BITRATE;
        task->value = (ngx_uint_t) bson_iter_as_int64(&it);
    }

    if (!task->done && task->expires_at < ngx_http_audex_tus_now()) {
        task->rc = NGX_HTTP_AUDEX_TUS_GONE;
        goto done;
    }

    task->seen_locked = 0;

    if (bson_iter_init_find(&it, doc, AUDEX_F_TUS_LOCK)
        && BSON_ITER_HOLDS_UTF8(&it))
    {
        task->seen_locked = 1;
        ngx_cpystrn((u_char *) task->seen_lock,
                    (u_char *) bson_iter_utf8(&it, NULL),
                    sizeof(task->seen_lock));
    }

    task->seen_until = (bson_iter_init_find(&it, doc, AUDEX_F_TUS_LOCK_UNTIL)
                        && BSON_ITER_HOLDS_DATE_TIME(&it))
                       ? bson_iter_date_time(&it) : 0;
    task->unverified = bson_iter_init_find(&it, doc, AUDEX_F_TUS_UNVERIFIED)
                       && bson_iter_as_bool(&it);

    /* the digest of the chunks stored, if it was kept, and is theirs */

    task->sha_ok = 0;

    if (bson_iter_init_find(&it, doc, AUDEX_F_TUS_SHA256)
        && BSON_ITER_HOLDS_BINARY(&it))
    {
        bson_iter_binary(&it, &sub, &len, &bin);

        task->sha_ok = (len == AUDEX_SHA256_STATE_LEN
                        && audex_sha256_load(&task->sha, bin) == 0
                        && audex_sha256_count(&task->sha)
                           == (uint64_t) (task->offset
                                          - task->offset
                                            % AUDEX_GRIDFS_CHUNK));
    }

    /* the bytes of the next chunk, back into the buffer for a PATCH */

    task->len = 0;

    if (task->data && !task->done
        && bson_iter_init_find(&it, doc, AUDEX_F_TUS_TAIL)
        && BSON_ITER_HOLDS_BINARY(&it))
    {
        bson_iter_binary(&it, &sub, &len, &bin);

        if (len >= AUDEX_GRIDFS_CHUNK
            || task->offset % AUDEX_GRIDFS_CHUNK != len)
        {
            task->rc = NGX_HTTP_AUDEX_TUS_INTERNAL;
            ngx_cpystrn((u_char *) task->err,
                        (u_char *) "the upload's tail is not its offset's",
                        sizeof(task->err));
            goto done;
        }

        ngx_memcpy(task->data, bin, len);
        task->len = len;
    }

done:

    bson_destroy(doc);
}


/*
 * HEAD: the state, the offset made exact first when no one holds the
 * upload.  The tail comes into a buffer of this thread's own, for
 * ngx_http_audex_tus_recover() to check the first chunk against.
 */

static void
ngx_http_audex_tus_head(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client)
{
    bson_t               *set;
    int64_t               offset;
    mongoc_collection_t  *coll;

    coll = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                        AUDEX_COLL_TUS);

    task->data = malloc(AUDEX_GRIDFS_CHUNK);

    ngx_http_audex_tus_read_state(task, coll);

    if (task->rc == NGX_HTTP_AUDEX_TUS_OK && task->data) {
        ngx_http_audex_tus_recover(task, client);
    }

    if (task->rc == NGX_HTTP_AUDEX_TUS_OK && task->recovered) {
        /* released as found; the token changed: an old holder stops */
        offset = task->offset - task->recovered;
        set = BCON_NEW(AUDEX_F_TUS_LOCK, BCON_UTF8(task->token),
                       AUDEX_F_TUS_LOCK_UNTIL,
                           BCON_DATE_TIME(task->seen_until));

        if (ngx_http_audex_tus_advance(task, coll, task->offset, set)
            != NGX_OK)
        {
            /* taken or moved meanwhile: what was read is still durable */
            task->rc = NGX_HTTP_AUDEX_TUS_OK;
            task->offset = offset;
        }

        bson_destroy(set);
    }

    free(task->data);
    task->data = NULL;
    task->len = 0;

    mongoc_collection_destroy(coll);
}


/*
 * A PATCH takes the upload: it exists, is the caller's, has not expired,
 * is at the client's offset and no one holds it.  Then the conditional
 * update decides between two that got this far at once.  Full chunks
 * found past the stored offset (ngx_http_audex_tus_recover) are made
 * durable first: the client's offset must then be past them (it is when
 * a HEAD found them), else 409 as for any other offset.
 */

static void
ngx_http_audex_tus_lock(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client)
{
    int                   rc;
    bson_t               *set;
    int64_t               offset, now;
    ngx_int_t             taken;
    bson_error_t          error;
    mongoc_collection_t  *coll, *uploads;

    coll = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                        AUDEX_COLL_TUS);

    offset = task->offset;

    ngx_http_audex_tus_read_state(task, coll);

    if (task->rc != NGX_HTTP_AUDEX_TUS_OK) {
        goto done;
    }

    if (task->done) {
        task->rc = NGX_HTTP_AUDEX_TUS_CONFLICT;
        goto done;
    }

    ngx_http_audex_tus_recover(task, client);

    if (task->rc != NGX_HTTP_AUDEX_TUS_OK) {
        goto done;
    }

    now = ngx_http_audex_tus_now();

    if (task->recovered) {
        /* made durable, and taken with it if the client is there */
        taken = (task->offset == offset);

        set = BCON_NEW(AUDEX_F_TUS_LOCK, BCON_UTF8(task->token),
                       AUDEX_F_TUS_LOCK_UNTIL,
                           BCON_DATE_TIME(taken
                                          ? now + AUDEX_TUS_LEASE * 1000
                                          : task->seen_until));

        if (taken) {
            BSON_APPEND_DATE_TIME(set, AUDEX_F_TUS_EXPIRES_AT,
                                  now + task->expires_in);

            if (task->checksum) {
                BSON_APPEND_BOOL(set, AUDEX_F_TUS_UNVERIFIED, true);
            }
        }

        rc = ngx_http_audex_tus_advance(task, coll, task->offset, set);
        bson_destroy(set);

        if (rc != NGX_OK) {
            goto done;
        }

        if (!taken) {
            task->rc = NGX_HTTP_AUDEX_TUS_CONFLICT;
            goto done;
        }

    } else {
        if (task->offset != offset) {
            task->rc = NGX_HTTP_AUDEX_TUS_CONFLICT;
            goto done;
        }

        rc = audex_store_tus_lock(coll, &task->id, offset, task->token, now,
                                  now + task->expires_in, task->checksum,
                                  &error);

        if (rc < 0) {
            ngx_http_audex_tus_backend(task, "taking the upload", &error);
            goto done;
        }

        if (rc == 0) {
            task->rc = NGX_HTTP_AUDEX_TUS_LOCKED_BY;
            goto done;
        }
    }

    task->renewed = now;
    task->expires_at = now + task->expires_in;

    /* the sweeper measures idleness from the last PATCH */

    uploads = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                           AUDEX_COLL_UPLOADS);

    if (audex_store_upload_touch(uploads, &task->id, AUDEX_BUCKET_VIDEOS,
                                 &error)
        != 0)
    {
        ngx_http_audex_tus_backend(task, "recording the upload", &error);
    }

    mongoc_collection_destroy(uploads);

done:

    mongoc_collection_destroy(coll);
}


/*
 * The full chunks stored past the offset of an upload that no one holds
 * (its holder released it, or died and its lease ran out): the offset
 * advances only every NGX_HTTP_AUDEX_TUS_ADVANCE_EVERY chunks while a
 * PATCH stores them, so its crash would cost up to that many, where
 * this costs at most the chunk that was being stored.  At most that many
 * are looked for, by their derived _id, contiguous; never the last chunk
 * (completion stores it); the first must begin with the tail; none when
 * a checksum PATCH may have stored them (unverified).  task->offset,
 * task->sha and task->len move past them, task->recovered says by how
 * much; the caller saves that with ngx_http_audex_tus_advance().
 */

static void
ngx_http_audex_tus_recover(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client)
{
    u_char               *buf;
    int32_t               k, i;
    ssize_t               len;
    int64_t               tail;
    bson_error_t          error;
    audex_sha256_t        sha;
    mongoc_collection_t  *chunks;

    task->recovered = 0;

    if (task->done || task->unverified
        || task->seen_until >= ngx_http_audex_tus_now())
    {
        return;
    }

    buf = malloc(AUDEX_GRIDFS_CHUNK);
    if (buf == NULL) {
        return;
    }

    chunks = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                          AUDEX_VIDEOS_CHUNKS);

    k = (int32_t) (task->offset / AUDEX_GRIDFS_CHUNK);
    tail = task->offset % AUDEX_GRIDFS_CHUNK;
    sha = task->sha;

    for (i = 0; i < NGX_HTTP_AUDEX_TUS_ADVANCE_EVERY; i++) {

        if ((int64_t) (k + i + 1) * AUDEX_GRIDFS_CHUNK >= task->length) {
            break;
        }

        len = audex_store_chunk_get_own(chunks, &task->id, k + i, buf,
                                        AUDEX_GRIDFS_CHUNK, &error);

        if (len == AUDEX_STORE_ERROR) {
            ngx_http_audex_tus_backend(task, "looking for chunks", &error);
            break;
        }

        if (len != AUDEX_GRIDFS_CHUNK) {
            break;
        }

        if (i == 0 && tail
            && ((int64_t) task->len != tail
                || ngx_memcmp(buf, task->data, tail) != 0))
        {
            break;
        }

        if (task->sha_ok) {
            audex_sha256_update(&sha, buf, AUDEX_GRIDFS_CHUNK);
        }
    }

    mongoc_collection_destroy(chunks);
    free(buf);

    if (task->rc != NGX_HTTP_AUDEX_TUS_OK || i == 0) {
        return;
    }

    task->recovered = (int64_t) (k + i) * AUDEX_GRIDFS_CHUNK - task->offset;
    task->offset += task->recovered;
    task->len = 0;
    task->sha = sha;
}


/*
 * Saves what ngx_http_audex_tus_recover() found (the offset, an empty
 * tail, the digest) and set's fields, if the state is still as read.
 * NGX_OK, or NGX_ERROR with task->rc set (423 if it changed); either
 * way task->recovered is what to count.
 */

static ngx_int_t
ngx_http_audex_tus_advance(ngx_http_audex_tus_task_t *task,
    mongoc_collection_t *coll, int64_t offset, bson_t *set)
{
    int                     rc;
    bson_error_t            error;
    audex_store_tus_seen_t  seen;

    seen.offset = offset - task->recovered;
    seen.lock = task->seen_locked ? task->seen_lock : NULL;
    seen.lock_until = task->seen_until;

    BSON_APPEND_INT64(set, AUDEX_F_TUS_OFFSET, offset);
    BSON_APPEND_BINARY(set, AUDEX_F_TUS_TAIL, BSON_SUBTYPE_BINARY,
                       (uint8_t *) "", 0);
    ngx_http_audex_tus_sha_set(task, set);

    rc = audex_store_tus_advance(coll, &task->id, &seen, set, &error);

    if (rc < 0) {
        ngx_http_audex_tus_backend(task, "advancing the upload", &error);
    }

    if (rc == 0) {
        task->rc = NGX_HTTP_AUDEX_TUS_LOCKED_BY;
    }

    if (rc != 1) {
        task->recovered = 0;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A full chunk; then, without a checksum to wait for, every few chunks,
 * the offset and the digest that go with it.
 */

static void
ngx_http_audex_tus_chunk(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client)
{
    bson_t               *set;
    bson_error_t          error;
    mongoc_collection_t  *coll, *chunks;

    coll = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                        AUDEX_COLL_TUS);
    chunks = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                          AUDEX_VIDEOS_CHUNKS);

    if (ngx_http_audex_tus_hold(task, coll) != NGX_OK) {
        goto done;
    }

    if (audex_store_chunk_replace(chunks, &task->id, task->n, task->data,
                                  (uint32_t) task->len, &error)
        != 0)
    {
        ngx_http_audex_tus_backend(task, "storing a chunk", &error);
        goto done;
    }

    /* hashed in the file's order; kept only with the offset past it */

    if (task->sha_ok) {
        audex_sha256_update(&task->sha, task->data, task->len);
    }

    if (!task->advance
        || (task->n + 1) % NGX_HTTP_AUDEX_TUS_ADVANCE_EVERY != 0)
    {
        goto done;
    }

    task->offset = (int64_t) (task->n + 1) * AUDEX_GRIDFS_CHUNK;

    set = BCON_NEW(AUDEX_F_TUS_OFFSET, BCON_INT64(task->offset),
                   AUDEX_F_TUS_TAIL, BCON_BIN(BSON_SUBTYPE_BINARY,
                                              (uint8_t *) "", 0));

    ngx_http_audex_tus_sha_set(task, set);
    (void) ngx_http_audex_tus_set(task, coll, set);

    bson_destroy(set);

done:

    mongoc_collection_destroy(chunks);
    mongoc_collection_destroy(coll);
}


/*
 * The end of a PATCH (or of its client): the offset and tail made
 * durable and the upload released; or, with its last byte, completed.
 */

static void
ngx_http_audex_tus_save(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client)
{
    bson_t               *set;
    mongoc_collection_t  *coll;

    task->offset = (int64_t) task->n * AUDEX_GRIDFS_CHUNK + task->len;

    if (task->offset == task->length) {
        ngx_http_audex_tus_complete(task, client);
        return;
    }

    coll = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                        AUDEX_COLL_TUS);

    set = BCON_NEW(AUDEX_F_TUS_OFFSET, BCON_INT64(task->offset),
                   AUDEX_F_TUS_TAIL, BCON_BIN(BSON_SUBTYPE_BINARY,
                                              task->data,
                                              (uint32_t) task->len),
                   AUDEX_F_TUS_LOCK_UNTIL, BCON_DATE_TIME(0));

    if (task->checksum) {
        /* its chunks matched and are below the offset now */
        BSON_APPEND_BOOL(set, AUDEX_F_TUS_UNVERIFIED, task->unverified != 0);
    }

    ngx_http_audex_tus_sha_set(task, set);
    (void) ngx_http_audex_tus_set(task, coll, set);

    bson_destroy(set);
    mongoc_collection_destroy(coll);
}


/*
 * The last chunk, then the file completed as /upload completes one; the
 * job recorded in the state, which no PATCH can take again.  Completion
 * that fails removes the file (ngx_http_audex_upload_complete), and so
 * the upload: its state goes too.
 */

static void
ngx_http_audex_tus_complete(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client)
{
    bson_t                        *set;
    ngx_int_t                      rc;
    bson_oid_t                     oid;
    bson_error_t                   error;
    mongoc_collection_t           *coll, *chunks;
    ngx_http_audex_job_t           job;
    ngx_http_audex_gridfs_file_t   file;

    coll = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                        AUDEX_COLL_TUS);
    chunks = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                          AUDEX_VIDEOS_CHUNKS);

    if (ngx_http_audex_tus_hold(task, coll) != NGX_OK) {
        goto done;
    }

    if (task->len
        && audex_store_chunk_replace(chunks, &task->id, task->n, task->data,
                                     (uint32_t) task->len, &error)
           != 0)
    {
        ngx_http_audex_tus_backend(task, "storing a chunk", &error);
        goto done;
    }

    ngx_memzero(&file, sizeof(file));
    bson_oid_copy(&task->id, &file.id);
    file.n = task->n + (task->len ? 1 : 0);
    file.length = task->length;
    file.filename = task->filename[0] ? (char *) task->filename : "upload";
    file.owner_id = task->owner_id;
    file.owner_email = task->owner_email;

    if (ngx_http_audex_tus_digest(task, client, &file) != NGX_OK) {
        goto done;
    }

    ngx_memzero(&job, sizeof(job));
    bson_oid_init(&oid, NULL);
    bson_oid_to_string(&oid, job.id);
    bson_oid_to_string(&file.id, job.video_fid);
    job.owner_id = file.owner_id;
    job.owner_email = file.owner_email;
    job.filename = file.filename;
    job.option = task->option;
    job.value = task->value;

    rc = ngx_http_audex_upload_complete(task->amcf, client, &file, &job,
                                        NULL, 0, task->err, task->undo_err,
                                        &task->undo_failed);

    if (rc != NGX_HTTP_AUDEX_COMPLETE_OK) {
        task->rc = (rc == NGX_HTTP_AUDEX_COMPLETE_REDIS)
                   ? NGX_HTTP_AUDEX_TUS_REDIS : NGX_HTTP_AUDEX_TUS_MONGO;
        (void) audex_store_tus_delete(coll, &task->id, &error);
        task->removed = 1;
        goto done;
    }

    ngx_memcpy(task->job_id, job.id, sizeof(task->job_id));
    task->done = 1;

    set = BCON_NEW(AUDEX_F_TUS_OFFSET, BCON_INT64(task->offset),
                   AUDEX_F_TUS_TAIL, BCON_BIN(BSON_SUBTYPE_BINARY,
                                              (uint8_t *) "", 0),
                   AUDEX_F_JOB_ID, BCON_UTF8(job.id),
                   AUDEX_F_TUS_LOCK_UNTIL, BCON_DATE_TIME(0));

    if (ngx_http_audex_tus_set(task, coll, set) != NGX_OK) {
        /* the job is queued: the answer says so all the same */
        task->rc = NGX_HTTP_AUDEX_TUS_OK;
    }

    bson_destroy(set);

done:

    if (task->rc != NGX_HTTP_AUDEX_TUS_OK && !task->done
        && task->rc != NGX_HTTP_AUDEX_TUS_LOCKED_BY)
    {
        /* released at once, not at the lease's end */
        set = BCON_NEW(AUDEX_F_TUS_LOCK_UNTIL, BCON_DATE_TIME(0));
        (void) audex_store_tus_update(coll, &task->id, task->token, set,
                                      &error);
        bson_destroy(set);
    }

    mongoc_collection_destroy(chunks);
    mongoc_collection_destroy(coll);
}


/*
 * The whole file's SHA-256 and format.  The digest of the chunks before
 * the last was kept from PATCH to PATCH (they may have run on other
 * servers): only the last chunk is added, and the first read back for
 * its format.  An upload without that state (begun by an audex that did
 * not keep one) is read back whole.  The scratch buffer is the
 * request's idle second chunk buffer.
 */

static ngx_int_t
ngx_http_audex_tus_digest(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client, ngx_http_audex_gridfs_file_t *file)
{
    u_char               *p;
    int32_t               i, n;
    ssize_t               len;
    ngx_int_t             rc;
    bson_error_t          error;
    audex_sha256_t        sha;
    audex_sniff_type_t    type;
    mongoc_collection_t  *chunks;
    u_char                digest[AUDEX_SHA256_LEN];

    if (task->sha_ok) {
        sha = task->sha;
        audex_sha256_update(&sha, task->data, task->len);
        n = ngx_min(file->n, 1);

    } else {
        audex_sha256_init(&sha);
        n = file->n;
    }

    chunks = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                          AUDEX_VIDEOS_CHUNKS);
    type = AUDEX_SNIFF_UNKNOWN;
    rc = NGX_OK;

    for (i = 0; i < n; i++) {
        len = audex_store_chunk_get(chunks, &file->id, i, task->scratch,
                                    AUDEX_GRIDFS_CHUNK, &error);

        if (len < 0) {
            if (len == AUDEX_STORE_ERROR) {
                ngx_http_audex_tus_backend(task, "reading a chunk", &error);

            } else {
                task->rc = NGX_HTTP_AUDEX_TUS_INTERNAL;
                ngx_cpystrn((u_char *) task->err,
                            (u_char *) "a chunk is missing or corrupt",
                            sizeof(task->err));
            }

            rc = NGX_ERROR;
            break;
        }

        if (i == 0) {
            type = audex_sniff(task->scratch, len, 1);
        }

        if (!task->sha_ok) {
            audex_sha256_update(&sha, task->scratch, len);
        }
    }

    mongoc_collection_destroy(chunks);

    if (rc != NGX_OK) {
        return rc;
    }

    audex_sha256_final(&sha, digest);
    p = ngx_hex_dump((u_char *) file->sha256, digest, sizeof(digest));
    *p = '\0';

    if (type == AUDEX_SNIFF_UNKNOWN || type == AUDEX_SNIFF_NEED_MORE) {
        task->rc = NGX_HTTP_AUDEX_TUS_FORMAT;
        return NGX_ERROR;
    }

    file->content_type = audex_sniff_mime(type);
    file->format = audex_sniff_name(type);

    return NGX_OK;
}


/* the digest of the stored chunks, to be saved with their offset */

static void
ngx_http_audex_tus_sha_set(ngx_http_audex_tus_task_t *task, bson_t *set)
{
    uint8_t  state[AUDEX_SHA256_STATE_LEN];

    if (task->sha_ok && audex_sha256_save(&task->sha, state) == 0) {
        BSON_APPEND_BINARY(set, AUDEX_F_TUS_SHA256, BSON_SUBTYPE_BINARY,
                           state, sizeof(state));
    }
}


/* released, nothing gained: the next PATCH starts where this one did */

static void
ngx_http_audex_tus_unlock(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client)
{
    bson_t               *set;
    mongoc_collection_t  *coll;

    coll = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                        AUDEX_COLL_TUS);

    set = BCON_NEW(AUDEX_F_TUS_LOCK_UNTIL, BCON_DATE_TIME(0));
    (void) ngx_http_audex_tus_set(task, coll, set);

    bson_destroy(set);
    mongoc_collection_destroy(coll);
}


/*
 * Termination: the upload is taken as a PATCH would take it, then its
 * chunks, its record and its state go.  A completed upload's file is
 * its job's now: only the state goes (DELETE /jobs removes the file).
 */

static void
ngx_http_audex_tus_delete(ngx_http_audex_tus_task_t *task,
    mongoc_client_t *client)
{
    int                            rc;
    int64_t                        now;
    bson_error_t                   error;
    mongoc_collection_t           *coll;
    ngx_http_audex_gridfs_file_t   file;

    coll = mongoc_client_get_collection(client, task->amcf->mongo_db,
                                        AUDEX_COLL_TUS);

    ngx_http_audex_tus_read_state(task, coll);

    if (task->rc == NGX_HTTP_AUDEX_TUS_GONE) {
        /* an expired upload may be terminated all the same */
        task->rc = NGX_HTTP_AUDEX_TUS_OK;
    }

    if (task->rc != NGX_HTTP_AUDEX_TUS_OK) {
        goto done;
    }

    if (!task->done) {
        now = ngx_http_audex_tus_now();
        ngx_cpystrn((u_char *) task->token, (u_char *) "delete",
                    sizeof(task->token));

        rc = audex_store_tus_lock(coll, &task->id, task->offset, task->token,
                                  now, now, 0, &error);

        if (rc <= 0) {
            if (rc < 0) {
                ngx_http_audex_tus_backend(task, "taking the upload",
                                           &error);
            } else {
                task->rc = NGX_HTTP_AUDEX_TUS_LOCKED_BY;
            }

            goto done;
        }

        ngx_memzero(&file, sizeof(file));
        bson_oid_copy(&task->id, &file.id);

        if (ngx_http_audex_gridfs_remove(client, task->amcf->mongo_db, &file,
                                         task->err)
            != NGX_OK
            || ngx_http_audex_gridfs_record(client, task->amcf->mongo_db,
                                            &file, NGX_HTTP_AUDEX_GRIDFS_END,
                                            task->err)
               != NGX_OK)
        {
            task->rc = NGX_HTTP_AUDEX_TUS_MONGO;
            goto done;
        }
    }

    if (audex_store_tus_delete(coll, &task->id, &error) != 0) {
        ngx_http_audex_tus_backend(task, "removing the upload", &error);
    }

done:

    mongoc_collection_destroy(coll);
}


/*
 * Still ours?  The lease is renewed when half of it has passed since it
 * was last, before anything is written: a PATCH whose client stalled
 * past the lease finds it taken and writes nothing.
 */

static ngx_int_t
ngx_http_audex_tus_hold(ngx_http_audex_tus_task_t *task,
    mongoc_collection_t *coll)
{
    int64_t   now;
    bson_t   *set;

    now = ngx_http_audex_tus_now();

    if (now - task->renewed < AUDEX_TUS_LEASE * 1000 / 2) {
        return NGX_OK;
    }

    set = BCON_NEW(AUDEX_F_TUS_LOCK_UNTIL,
                   BCON_DATE_TIME(now + AUDEX_TUS_LEASE * 1000));

    if (ngx_http_audex_tus_set(task, coll, set) != NGX_OK) {
        bson_destroy(set);
        return NGX_ERROR;
    }

    bson_destroy(set);
    task->renewed = now;

    return NGX_OK;
}


/* $set under this request's lock; renews the lease while it holds */

static ngx_int_t
ngx_http_audex_tus_set(ngx_http_audex_tus_task_t *task,
    mongoc_collection_t *coll, bson_t *set)
{
    int           rc;
    int64_t       now;
    bson_error_t  error;

    now = ngx_http_audex_tus_now();

    if (!bson_has_field(set, AUDEX_F_TUS_LOCK_UNTIL)) {
        BSON_APPEND_DATE_TIME(set, AUDEX_F_TUS_LOCK_UNTIL,
                              now + AUDEX_TUS_LEASE * 1000);
        task->renewed = now;
    }

    rc = audex_store_tus_update(coll, &task->id, task->token, set, &error);

    if (rc < 0) {
        ngx_http_audex_tus_backend(task, "updating the upload", &error);
        return NGX_ERROR;
    }

    if (rc == 0) {
        task->rc = NGX_HTTP_AUDEX_TUS_LOCKED_BY;
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_audex_tus_backend(ngx_http_audex_tus_task_t *task, const char *what,
    bson_error_t *error)
{
    u_char  *p;

    task->rc = NGX_HTTP_AUDEX_TUS_MONGO;

    p = ngx_snprintf((u_char *) task->err, NGX_HTTP_AUDEX_ERRLEN - 1,
                     "%s: %s", what, error->message);
    *p = '\0';
}


static int64_t
ngx_http_audex_tus_now(void)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    return (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
}
