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
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    /* a previous attempt may have set these */
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        /* a backend outage: clients may come back */
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        ngx_str_set(&h->value, "5");
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
    size_t   len, qlen;
    u_char  *body, *q, *p;

    q = ngx_http_audex_json_str(r->pool, (u_char *) message,
                                ngx_strlen(message), &qlen);
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"error\":}\n") - 1 + qlen;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body, "{\"error\":", sizeof("{\"error\":") - 1);
    p = ngx_cpymem(p, q, qlen);
    *p++ = '}';
    *p++ = '\n';

    return ngx_http_audex_send_json(r, status, body, p - body);
}


ngx_int_t
ngx_http_audex_method_not_allowed(ngx_http_request_t *r, const char *allow)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) allow;
    h->value.len = ngx_strlen(allow);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "audex: method %V not allowed", &r->method_name);

    return ngx_http_audex_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                     "method not allowed");
}
