/*
 * POST /upload: the body's parts (multipart/form-data: the file part, the
 * option fields) and the file's bytes, whichever way they come: sniffed
 * first, hashed, collected into the GridFS chunk buffer.
 */


#include "ngx_http_audex_upload.h"


static int ngx_http_audex_upload_part_begin(void *ctx,
    const audex_multipart_part_t *part);
static int ngx_http_audex_upload_part_data(void *ctx, const u_char *p,
    size_t len);
static int ngx_http_audex_upload_part_end(void *ctx);


audex_multipart_sink_t  ngx_http_audex_upload_sink = {
    ngx_http_audex_upload_part_begin,
    ngx_http_audex_upload_part_data,
    ngx_http_audex_upload_part_end
};


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

int
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

int
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


int
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
