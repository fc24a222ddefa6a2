/*
 * Offloading blocking work (libmongoc, hiredis, password hashing) to an
 * nginx thread pool and resuming the request on the event loop.
 *
 * A handler allocates its task data with ngx_http_audex_thread_alloc(),
 * fills it in and posts it; the work function runs in a pool thread and
 * may touch nothing but that data; the done function runs on the event
 * loop.  While a task is in flight the request is blocked, so nginx's own
 * termination paths (client abort, timeouts) leave it and its pool alone.
 *
 * References follow nginx's usual rule: a content handler that posts and
 * returns NGX_DONE first takes one reference (r->main->count++), and the
 * flow ends with exactly one ngx_http_finalize_request() with the final
 * code, from a done function or an event handler.  A done function may
 * post the next step instead; posting takes no reference of its own.
 * A content handler's first task goes through ngx_http_audex_thread_start(),
 * which does all of that: post, reference, NGX_DONE, or 503 when the
 * pool's queue is full.
 */


#include "ngx_http_audex_module.h"


typedef struct {
    ngx_http_request_t      *request;
    ngx_http_audex_work_pt   work;
    ngx_http_audex_done_pt   done;
} ngx_http_audex_thread_ctx_t;


static void ngx_http_audex_thread_handler(void *data, ngx_log_t *log);
static void ngx_http_audex_thread_event_handler(ngx_event_t *ev);


void *
ngx_http_audex_thread_alloc(ngx_http_request_t *r, size_t size)
{
    ngx_thread_task_t            *task;
    ngx_http_audex_thread_ctx_t  *tc;

    /* the task, then our header, then the caller's data */
    task = ngx_thread_task_alloc(r->pool,
                                 sizeof(ngx_http_audex_thread_ctx_t) + size);
    if (task == NULL) {
        return NULL;
    }

    tc = task->ctx;
    tc->request = r;

    return tc + 1;
}


ngx_int_t
ngx_http_audex_thread_post(ngx_http_request_t *r, void *data,
    ngx_http_audex_work_pt work, ngx_http_audex_done_pt done)
{
    ngx_thread_task_t            *task;
    ngx_http_audex_main_conf_t   *amcf;
    ngx_http_audex_thread_ctx_t  *tc;

    tc = (ngx_http_audex_thread_ctx_t *) data - 1;
    task = (ngx_thread_task_t *) tc - 1;

    tc->work = work;
    tc->done = done;

    task->handler = ngx_http_audex_thread_handler;
    task->event.handler = ngx_http_audex_thread_event_handler;
    task->event.data = tc;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_audex_module);

    if (ngx_thread_task_post(amcf->thread_pool, task) != NGX_OK) {
        /* the queue is full: the caller answers 503 */
        return NGX_ERROR;
    }

    r->main->blocked++;

    return NGX_OK;
}


/*
 * A content handler's first task: posted, with the request's reference
 * taken (NGX_DONE); or, when the queue is full, a 503 "server busy" and a
 * log line naming what the task was for.  The handler returns what this
 * returns.
 */

ngx_int_t
ngx_http_audex_thread_start(ngx_http_request_t *r, void *data,
    ngx_http_audex_work_pt work, ngx_http_audex_done_pt done,
    const char *what)
{
    if (ngx_http_audex_thread_post(r, data, work, done) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "audex: %s: the thread pool queue is full", what);

        /*
         * a body not read yet (an upload's) must not be taken for the
         * next request on this connection: it is closed after the answer
         */
        r->keepalive = 0;
        r->lingering_close = 1;

        return ngx_http_audex_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "server busy");
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_audex_thread_handler(void *data, ngx_log_t *log)
{
    ngx_http_audex_thread_ctx_t  *tc = data;

    tc->work(tc + 1, log);
}


static void
ngx_http_audex_thread_event_handler(ngx_event_t *ev)
{
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_audex_thread_ctx_t  *tc;

    tc = ev->data;
    r = tc->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "audex thread task done: \"%V?%V\"", &r->uri, &r->args);

    r->main->blocked--;

    tc->done(r, tc + 1);

    ngx_http_run_posted_requests(c);
}
