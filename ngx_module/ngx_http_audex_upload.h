/*
 * POST /upload, shared by the files of its flow: ngx_http_audex_upload.c
 * (the request: directive, checks, reading the body, the tasks posted and
 * their ends), _upload_parse.c (the body's parts and the file's bytes),
 * _upload_task.c (what a pool thread stores) and _upload_answer.c (what
 * the client is answered, from one table of failures).
 */

#ifndef _NGX_HTTP_AUDEX_UPLOAD_H_INCLUDED_
#define _NGX_HTTP_AUDEX_UPLOAD_H_INCLUDED_


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


/* ngx_http_audex_upload_parse.c */
extern audex_multipart_sink_t  ngx_http_audex_upload_sink;
int ngx_http_audex_upload_name(ngx_http_audex_upload_t *up,
    const audex_multipart_part_t *part);
int ngx_http_audex_upload_data(ngx_http_audex_upload_t *up, const u_char *p,
    size_t len);
int ngx_http_audex_upload_file_end(ngx_http_audex_upload_t *up);

/* ngx_http_audex_upload_task.c: pool threads only */
void ngx_http_audex_upload_work(void *data, ngx_log_t *log);

/* ngx_http_audex_upload_answer.c */
ngx_int_t ngx_http_audex_upload_error(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);
ngx_int_t ngx_http_audex_upload_accepted(ngx_http_request_t *r,
    ngx_http_audex_upload_t *up);


#endif /* _NGX_HTTP_AUDEX_UPLOAD_H_INCLUDED_ */
