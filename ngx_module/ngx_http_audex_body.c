/*
 * A request body read unbuffered and handed to its handler as it comes
 * (/upload, a tus PATCH): what nginx has read is appended to the
 * handler's chain and taken, and more is read, until the socket is empty
 * (the read event resumes), the handler has to wait for the chunk being
 * stored (that task's completion resumes), the body ends, or it fails.
 * Runs while a chunk is in flight too: the next one fills meanwhile.
 */


#include "ngx_http_audex_module.h"


void
ngx_http_audex_body_pump(ngx_http_request_t *r, ngx_chain_t **in,
    ngx_uint_t *busy, const ngx_http_audex_body_t *body, void *data)
{
    ngx_int_t                 rc;
    ngx_chain_t             **ll;
    ngx_http_request_body_t  *rb;

    rb = r->request_body;

    for ( ;; ) {

        /* nginx does not reuse these buffers until they are taken */

        if (rb->bufs) {
            for (ll = in; *ll; ll = &(*ll)->next) { /* void */ }

            *ll = rb->bufs;
            rb->bufs = NULL;
        }

        rc = body->take(r, data);

        if (rc == NGX_AGAIN) {
            return;
        }

        if (rc == NGX_ERROR) {
            body->fail(r, data, NGX_OK);
            return;
        }

        if (!r->reading_body) {
            if (!*busy) {
                body->end(r, data);
            }

            /* else the chunk in flight comes back here when stored */
            return;
        }

        rc = ngx_http_read_unbuffered_request_body(r);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            body->fail(r, data, rc);
            return;
        }

        if (rb->bufs == NULL && rc == NGX_AGAIN) {
            return;
        }
    }
}
