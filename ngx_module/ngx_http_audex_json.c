/*
 * JSON responses: every answer of the module, success or error, is a
 * small JSON document; errors are {"error":"..."}.
 */


#include "ngx_http_audex_module.h"

#include "audex_json.h"


ngx_int_t
ngx_http_audex_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    return ngx_http_audex_send_body(r, status, "application/json", body, len);
}


ngx_int_t
ngx_http_audex_send_body(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    /* a previous attempt may have set these */
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    /* a backend outage: clients may come back */

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE
        && ngx_http_audex_add_header(r, "Retry-After", (u_char *) "5", 1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* Returns "...escaped..." (with the quotes) allocated from pool. */

u_char *
ngx_http_audex_json_str(ngx_pool_t *pool, u_char *p, size_t len,
    size_t *out_len)
{
    size_t   n;
    u_char  *s, *e;

    n = audex_json_escape_len(p, len) + 2;

    s = ngx_pnalloc(pool, n);
    if (s == NULL) {
        return NULL;
    }

    s[0] = '"';
    e = audex_json_escape(s + 1, p, len);
    *e++ = '"';

    *out_len = e - s;

    return s;
}


ngx_int_t
ngx_http_audex_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *message)
{
    ngx_buf_t  *b;

    b = ngx_http_audex_error_buf(r, message);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_audex_send_json(r, status, b->pos, b->last - b->pos);
}


/* {"error":"message"} and a newline, as the last buffer of a response */

ngx_buf_t *
ngx_http_audex_error_buf(ngx_http_request_t *r, const char *message)
{
    size_t      qlen;
    u_char     *q;
    ngx_buf_t  *b;

    q = ngx_http_audex_json_str(r->pool, (u_char *) message,
                                ngx_strlen(message), &qlen);
    if (q == NULL) {
        return NULL;
    }

    b = ngx_create_temp_buf(r->pool,
                            sizeof("{\"error\":}\n") - 1 + qlen);
    if (b == NULL) {
        return NULL;
    }

    b->last = ngx_cpymem(b->last, "{\"error\":", sizeof("{\"error\":") - 1);
    b->last = ngx_cpymem(b->last, q, qlen);
    *b->last++ = '}';
    *b->last++ = '\n';

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    return b;
}


/* Whether the Accept header names type (and not JSON before it). */

ngx_uint_t
ngx_http_audex_accepts(ngx_http_request_t *r, const char *type)
{
    u_char  *p, *end;

    if (r->headers_in.accept == NULL) {
        return 0;
    }

    p = r->headers_in.accept->value.data;
    end = p + r->headers_in.accept->value.len;

    return ngx_strlcasestrn(p, end, (u_char *) type, ngx_strlen(type) - 1)
           != NULL
           && ngx_strlcasestrn(p, end, (u_char *) "application/json",
                               sizeof("application/json") - 2)
              == NULL;
}


ngx_int_t
ngx_http_audex_add_header(ngx_http_request_t *r, const char *key,
    u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = value;
    h->value.len = len;

    return NGX_OK;
}


ngx_int_t
ngx_http_audex_method_not_allowed(ngx_http_request_t *r, const char *allow)
{
    if (ngx_http_audex_add_header(r, "Allow", (u_char *) allow,
                                  ngx_strlen(allow))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                  "audex: method %V not allowed", &r->method_name);

    return ngx_http_audex_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                     "method not allowed");
}
