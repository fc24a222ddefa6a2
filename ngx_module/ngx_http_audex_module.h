/*
 * audex: video to MP3 conversion inside nginx.
 *
 * Types and functions shared by the module's files; each file holds one
 * concern (thread offload, MongoDB, Redis, JSON responses, handlers).
 */

#ifndef _NGX_HTTP_AUDEX_MODULE_H_INCLUDED_
#define _NGX_HTTP_AUDEX_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#if !(NGX_THREADS)
#error "the audex module needs nginx configured --with-threads"
#endif

#include <ngx_thread_pool.h>

#include <mongoc/mongoc.h>
#include <hiredis/hiredis.h>

#include "audex_redis_url.h"
#include "audex_jwt.h"
#include "audex_schema.h"
#include "audex_store.h"


#define NGX_HTTP_AUDEX_ERRLEN  256

/*
 * The level of audex's events (a login, an upload stored, a request
 * refused and why): notice, so that `error_log ... notice` shows them
 * without nginx's per-connection info lines ("closed keepalive
 * connection"), which outnumbered them 20 to 1.
 */
#define NGX_HTTP_AUDEX_LOG_EVENT  NGX_LOG_NOTICE


typedef struct {
    ngx_str_t                  mongodb_uri;
    ngx_str_t                  redis_url;
    ngx_str_t                  thread_pool_name;
    ngx_msec_t                 backend_timeout;

    ngx_thread_pool_t         *thread_pool;

    mongoc_uri_t              *mongo_uri;
    const char                *mongo_db;
    mongoc_client_pool_t      *mongo_pool;      /* per worker process */

    audex_redis_url_t          redis;
    char                      *redis_host;      /* NUL-terminated copies */
    char                      *redis_path;
    char                      *redis_user;
    char                      *redis_password;

    audex_jwt_key_t           *jwt_key;
    time_t                     jwt_lifetime;
    time_t                     jwt_leeway;
    ngx_str_t                  jwt_issuer;      /* NUL-terminated */
    ngx_str_t                  jwt_audience;    /* NUL-terminated */

    ngx_str_t                  link_key;        /* signed download links */
    time_t                     link_lifetime;

    ngx_str_t                  jobs_stream;     /* NUL-terminated */
    ngx_str_t                  jobs_group;      /* the converters' group */
} ngx_http_audex_main_conf_t;


#define NGX_HTTP_AUDEX_AUTH_OFF       0
#define NGX_HTTP_AUDEX_AUTH_ON        1
#define NGX_HTTP_AUDEX_AUTH_ADMIN     2
#define NGX_HTTP_AUDEX_AUTH_OPTIONAL  3


/* handlers, as the metrics label them */
#define NGX_HTTP_AUDEX_H_AUTH          0    /* audex_auth in front of others */
#define NGX_HTTP_AUDEX_H_LOGIN         1
#define NGX_HTTP_AUDEX_H_UPLOAD        2
#define NGX_HTTP_AUDEX_H_DOWNLOAD      3
#define NGX_HTTP_AUDEX_H_JOBS          4
#define NGX_HTTP_AUDEX_H_HEALTHZ       5
#define NGX_HTTP_AUDEX_H_METRICS       6
#define NGX_HTTP_AUDEX_H_LOGOUT        7
#define NGX_HTTP_AUDEX_H_TUS           8
#define NGX_HTTP_AUDEX_NHANDLERS       9

/* counters of ngx_http_audex_metrics_add() */
#define NGX_HTTP_AUDEX_UPLOAD_BYTES    0
#define NGX_HTTP_AUDEX_UPLOAD_FILES    1
#define NGX_HTTP_AUDEX_DOWNLOAD_BYTES  2
#define NGX_HTTP_AUDEX_REFUSED_SIZE    3    /* audex_upload_max_size */
#define NGX_HTTP_AUDEX_REFUSED_JOBS    4    /* audex_user_max_jobs */
#define NGX_HTTP_AUDEX_REFUSED_BYTES   5    /* audex_user_max_bytes */
#define NGX_HTTP_AUDEX_TUS_CREATED     6    /* resumable uploads, by end */
#define NGX_HTTP_AUDEX_TUS_COMPLETED   7
#define NGX_HTTP_AUDEX_TUS_TERMINATED  8
#define NGX_HTTP_AUDEX_TUS_FAILED      9
#define NGX_HTTP_AUDEX_TUS_BYTES       10   /* made durable by PATCHes */
#define NGX_HTTP_AUDEX_NCOUNTERS       11


typedef struct {
    ngx_uint_t                 auth;
    ngx_uint_t                 handler_id;      /* NGX_HTTP_AUDEX_H_* */
    ngx_str_t                 *handler_name;    /* its directive */
    off_t                      upload_max_size;
    ngx_int_t                  user_max_jobs;   /* 0: no limit */
    off_t                      user_max_bytes;  /* 0: no limit */
    time_t                     tus_expires;     /* audex_tus_expires */
} ngx_http_audex_loc_conf_t;


/* what a request knows about its caller once its token was checked */
typedef struct {
    audex_jwt_claims_t        *claims;
    ngx_str_t                  user_id;
    ngx_str_t                  email;
    ngx_uint_t                 admin;
} ngx_http_audex_user_t;


/* a GridFS file being written, in the thread that writes it */
typedef struct {
    bson_oid_t                 id;
    int32_t                    n;               /* chunks stored */
    int64_t                    length;          /* bytes in them */
    const char                *filename;       /* UTF-8 */
    const char                *content_type;
    const char                *format;         /* the sniffed container */
    const char                *owner_id;
    const char                *owner_email;
    char                       sha256[AUDEX_SHA256_HEX_LEN + 1];  /* hex */
} ngx_http_audex_gridfs_file_t;


/* what ngx_http_audex_upload_complete() returns */
#define NGX_HTTP_AUDEX_COMPLETE_OK     0
#define NGX_HTTP_AUDEX_COMPLETE_MONGO  1    /* MongoDB failed */
#define NGX_HTTP_AUDEX_COMPLETE_REDIS  2    /* the stream entry failed */


/* a conversion job, as stored in "jobs" and sent on the jobs stream */
typedef struct {
    char                       id[25];          /* 24 hex digits */
    char                       video_fid[25];
    const char                *owner_id;
    const char                *owner_email;
    const char                *filename;
    const char                *option;          /* "bitrate", "quality" */
    ngx_uint_t                 value;
} ngx_http_audex_job_t;


/* the module's context of a (main) request */
typedef struct {
    ngx_http_audex_user_t     *user;       /* set where audex_auth accepted */
    void                      *data;       /* the content handler's state */

    /* a refusal of audex_auth, until nginx answers it (see _auth.c) */
    ngx_uint_t                 refused;    /* 401, 403; 0: none */
    const char                *why;        /* static text of the body */
    ngx_table_elt_t           *challenge;  /* its WWW-Authenticate */
    ngx_buf_t                 *error_body; /* sent for nginx's page */
} ngx_http_audex_ctx_t;


/* runs in a pool thread: touches only its task data */
typedef void (*ngx_http_audex_work_pt)(void *data, ngx_log_t *log);

/* runs on the event loop when the work is done; finalizes the request */
typedef void (*ngx_http_audex_done_pt)(ngx_http_request_t *r, void *data);


extern ngx_module_t  ngx_http_audex_module;


/* ngx_http_audex_module.c */
ngx_http_audex_ctx_t *ngx_http_audex_get_ctx(ngx_http_request_t *r);
char *ngx_http_audex_set_handler(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_handler_pt handler, ngx_uint_t id);
char *ngx_http_audex_conf_needs(ngx_conf_t *cf,
    ngx_http_audex_loc_conf_t *alcf, const char *what, const char *why);

/* ngx_http_audex_thread.c */
void *ngx_http_audex_thread_alloc(ngx_http_request_t *r, size_t size);
ngx_int_t ngx_http_audex_thread_post(ngx_http_request_t *r, void *data,
    ngx_http_audex_work_pt work, ngx_http_audex_done_pt done);
ngx_int_t ngx_http_audex_thread_start(ngx_http_request_t *r, void *data,
    ngx_http_audex_work_pt work, ngx_http_audex_done_pt done,
    const char *what);

/*
 * ngx_http_audex_body.c: an unbuffered body pumped into a handler's chain
 * "in"; take() consumes it (NGX_OK, NGX_AGAIN: wait for the task in
 * flight, NGX_ERROR: failed, its reason set), fail() is told nginx's
 * status when reading failed (NGX_OK: take() failed), end() runs once the
 * body is whole and no task is in flight ("busy" is 0).
 */
typedef struct {
    ngx_int_t                (*take)(ngx_http_request_t *r, void *data);
    void                     (*fail)(ngx_http_request_t *r, void *data,
                                     ngx_int_t rc);
    void                     (*end)(ngx_http_request_t *r, void *data);
} ngx_http_audex_body_t;

void ngx_http_audex_body_pump(ngx_http_request_t *r, ngx_chain_t **in,
    ngx_uint_t *busy, const ngx_http_audex_body_t *body, void *data);

/* ngx_http_audex_mongo.c */
char *ngx_http_audex_mongo_set_uri(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_audex_mongo_init_conf(ngx_conf_t *cf,
    ngx_http_audex_main_conf_t *amcf);
ngx_int_t ngx_http_audex_mongo_init_process(ngx_cycle_t *cycle,
    ngx_http_audex_main_conf_t *amcf);
void ngx_http_audex_mongo_exit_process(ngx_http_audex_main_conf_t *amcf);
mongoc_client_t *ngx_http_audex_mongo_pop(ngx_http_audex_main_conf_t *amcf);
void ngx_http_audex_mongo_push(ngx_http_audex_main_conf_t *amcf,
    mongoc_client_t *client);

/* ngx_http_audex_redis.c */
char *ngx_http_audex_redis_set_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_audex_redis_init_conf(ngx_conf_t *cf,
    ngx_http_audex_main_conf_t *amcf);
redisReply *ngx_http_audex_redis_command(ngx_http_audex_main_conf_t *amcf,
    char *err, const char *fmt, ...);

/* ngx_http_audex_json.c */
ngx_int_t ngx_http_audex_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);
ngx_int_t ngx_http_audex_send_body(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, u_char *body, size_t len);
ngx_uint_t ngx_http_audex_accepts(ngx_http_request_t *r, const char *type);
ngx_int_t ngx_http_audex_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *message);
ngx_buf_t *ngx_http_audex_error_buf(ngx_http_request_t *r,
    const char *message);
ngx_int_t ngx_http_audex_method_not_allowed(ngx_http_request_t *r,
    const char *allow);
ngx_int_t ngx_http_audex_add_header(ngx_http_request_t *r, const char *key,
    u_char *value, size_t len);
u_char *ngx_http_audex_json_str(ngx_pool_t *pool, u_char *p, size_t len,
    size_t *out_len);

/* ngx_http_audex_auth.c */
char *ngx_http_audex_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_audex_link_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_audex_auth_init(ngx_conf_t *cf);
ngx_int_t ngx_http_audex_auth_add_variables(ngx_conf_t *cf);
ngx_http_audex_user_t *ngx_http_audex_auth_user(ngx_http_request_t *r);
ngx_int_t ngx_http_audex_auth_deny(ngx_http_request_t *r,
    ngx_uint_t status, const char *message);

/* ngx_http_audex_revoke.c */
char *ngx_http_audex_logout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_audex_revoke_init_process(ngx_cycle_t *cycle,
    ngx_http_audex_main_conf_t *amcf);
void ngx_http_audex_revoke_exit_process(void);
ngx_uint_t ngx_http_audex_revoked_token(ngx_http_audex_user_t *user);

/* ngx_http_audex_login.c */
char *ngx_http_audex_login(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_http_audex_download.c */
char *ngx_http_audex_download(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_audex_download_merge(ngx_conf_t *cf,
    ngx_http_audex_loc_conf_t *alcf);

/* ngx_http_audex_jobs.c */
char *ngx_http_audex_jobs(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_audex_jobs_merge(ngx_conf_t *cf,
    ngx_http_audex_loc_conf_t *alcf);

/* ngx_http_audex_metrics.c */
ngx_int_t ngx_http_audex_metrics_init(ngx_conf_t *cf);
char *ngx_http_audex_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_audex_metrics_add(ngx_uint_t counter, off_t n);

/* ngx_http_audex_upload.c */
char *ngx_http_audex_upload(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_audex_upload_merge(ngx_conf_t *cf,
    ngx_http_audex_loc_conf_t *alcf);
ngx_int_t ngx_http_audex_upload_complete(ngx_http_audex_main_conf_t *amcf,
    mongoc_client_t *client, ngx_http_audex_gridfs_file_t *file,
    ngx_http_audex_job_t *job, const u_char *data, size_t len, char *err,
    char *undo_err, ngx_uint_t *undo_failed);

/* ngx_http_audex_tus.c */
char *ngx_http_audex_tus(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_audex_tus_merge(ngx_conf_t *cf,
    ngx_http_audex_loc_conf_t *alcf);

/* ngx_http_audex_gridfs.c: pool threads only */
ngx_int_t ngx_http_audex_gridfs_indexes(mongoc_client_t *client,
    const char *db, char *err);
ngx_int_t ngx_http_audex_gridfs_put_chunk(mongoc_client_t *client,
    const char *db, ngx_http_audex_gridfs_file_t *file, const u_char *data,
    size_t len, char *err);
ngx_int_t ngx_http_audex_gridfs_put_file(mongoc_client_t *client,
    const char *db, ngx_http_audex_gridfs_file_t *file, char *err);
ngx_int_t ngx_http_audex_gridfs_remove(mongoc_client_t *client,
    const char *db, ngx_http_audex_gridfs_file_t *file, char *err);
#define NGX_HTTP_AUDEX_GRIDFS_END          0
#define NGX_HTTP_AUDEX_GRIDFS_BEGIN        1
#define NGX_HTTP_AUDEX_GRIDFS_TOUCH        2
#define NGX_HTTP_AUDEX_GRIDFS_TOUCH_EVERY  16    /* chunks: 4 MB */
ngx_int_t ngx_http_audex_gridfs_record(mongoc_client_t *client,
    const char *db, ngx_http_audex_gridfs_file_t *file, ngx_uint_t begin,
    char *err);

/* ngx_http_audex_queue.c: pool threads only */
ngx_int_t ngx_http_audex_queue_insert(mongoc_client_t *client,
    const char *db, ngx_http_audex_job_t *job, char *err);
ngx_int_t ngx_http_audex_queue_remove(mongoc_client_t *client,
    const char *db, ngx_http_audex_job_t *job, char *err);
ngx_int_t ngx_http_audex_queue_publish(ngx_http_audex_main_conf_t *amcf,
    ngx_http_audex_job_t *job, char *err);

/* ngx_http_audex_health.c */
char *ngx_http_audex_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_AUDEX_MODULE_H_INCLUDED_ */
