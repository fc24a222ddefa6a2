/*
 * audex workers: Prometheus endpoint, see metrics.h.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "log.h"
#include "metrics.h"


/*
 * Threads that each poll their share of the connections, so rendering one
 * answer never holds up a probe; a connection silent for the timeout
 * (seconds) is closed, and the limit bounds what idle clients can hold.
 */
#define AUDEX_METRICS_THREADS      2
#define AUDEX_METRICS_TIMEOUT      10
#define AUDEX_METRICS_CONNECTIONS  64

#define AUDEX_METRICS_PROMETHEUS   "text/plain; version=0.0.4; charset=utf-8"


struct audex_metrics_server_s {
    struct MHD_Daemon        *daemon;
    audex_metrics_render_pt   render;
    void                     *data;
};


static enum MHD_Result audex_metrics_handler(void *cls,
    struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size,
    void **ctx);
static enum MHD_Result audex_metrics_render(audex_metrics_server_t *s,
    struct MHD_Connection *c);
static enum MHD_Result audex_metrics_send(struct MHD_Connection *c,
    unsigned int status, const char *type, const char *allow, void *body,
    size_t len, enum MHD_ResponseMemoryMode mode);
static void audex_metrics_log(void *cls, const char *fmt, va_list args);


void
audex_metrics_printf(audex_metrics_buf_t *b, const char *fmt, ...)
{
    int      n;
    char    *p;
    size_t   cap;
    va_list  args;

    if (b->failed) {
        return;
    }

    for ( ;; ) {
        va_start(args, fmt);
        n = vsnprintf(b->data ? b->data + b->len : NULL,
                      b->data ? b->cap - b->len : 0, fmt, args);
        va_end(args);

        if (n < 0) {
            b->failed = 1;
            return;
        }

        if (b->data && b->len + n < b->cap) {
            b->len += n;
            return;
        }

        cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }

        p = realloc(b->data, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }

        b->data = p;
        b->cap = cap;
    }
}


audex_metrics_server_t *
audex_metrics_start(const char *addr, int port,
    audex_metrics_render_pt render, void *data, char *err, size_t errlen)
{
    unsigned int             flags;
    struct sockaddr         *sa;
    struct sockaddr_in       sin;
    struct sockaddr_in6      sin6;
    audex_metrics_server_t  *s;

    err[0] = '\0';

    if (port == 0) {
        return NULL;
    }

    flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;

    memset(&sin, 0, sizeof(struct sockaddr_in));
    memset(&sin6, 0, sizeof(struct sockaddr_in6));

    if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        sa = (struct sockaddr *) &sin;

    } else if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(port);
        sa = (struct sockaddr *) &sin6;
        flags |= MHD_USE_IPv6;

    } else {
        snprintf(err, errlen, "metrics address \"%s\" is not an IP address",
                 addr);
        return NULL;
    }

    s = calloc(1, sizeof(audex_metrics_server_t));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    s->render = render;
    s->data = data;

    s->daemon = MHD_start_daemon(flags, (uint16_t) port, NULL, NULL,
                    audex_metrics_handler, s,
                    /* first, or earlier options log to stderr */
                    MHD_OPTION_EXTERNAL_LOGGER, audex_metrics_log, NULL,
                    MHD_OPTION_SOCK_ADDR, sa,
                    MHD_OPTION_THREAD_POOL_SIZE,
                    (unsigned int) AUDEX_METRICS_THREADS,
                    MHD_OPTION_CONNECTION_TIMEOUT,
                    (unsigned int) AUDEX_METRICS_TIMEOUT,
                    MHD_OPTION_CONNECTION_LIMIT,
                    (unsigned int) AUDEX_METRICS_CONNECTIONS,
                    MHD_OPTION_END);

    if (s->daemon == NULL) {
        /* libmicrohttpd logged why (audex_metrics_log) */
        snprintf(err, errlen, "metrics on %s:%d: cannot listen", addr, port);
        free(s);
        return NULL;
    }

    return s;
}


void
audex_metrics_stop(audex_metrics_server_t *s)
{
    if (s == NULL) {
        return;
    }

    MHD_stop_daemon(s->daemon);
    free(s);
}


/* called once per request, its headers read; any body is not wanted */

static enum MHD_Result
audex_metrics_handler(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **ctx)
{
    int                      metrics;
    static char              ok[] = "ok\n", not_found[] = "not found\n",
                             not_allowed[] = "method not allowed\n";
    audex_metrics_server_t  *s = cls;

    metrics = (strcmp(url, "/metrics") == 0);

    if (!metrics && strcmp(url, "/healthz") != 0) {
        return audex_metrics_send(c, MHD_HTTP_NOT_FOUND, "text/plain", NULL,
                                  not_found, sizeof(not_found) - 1,
                                  MHD_RESPMEM_PERSISTENT);
    }

    /* libmicrohttpd answers HEAD like GET, without the body */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0
        && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    {
        return audex_metrics_send(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                                  "text/plain", "GET, HEAD", not_allowed,
                                  sizeof(not_allowed) - 1,
                                  MHD_RESPMEM_PERSISTENT);
    }

    if (metrics) {
        return audex_metrics_render(s, c);
    }

    return audex_metrics_send(c, MHD_HTTP_OK, "text/plain", NULL, ok,
                              sizeof(ok) - 1, MHD_RESPMEM_PERSISTENT);
}


static enum MHD_Result
audex_metrics_render(audex_metrics_server_t *s, struct MHD_Connection *c)
{
    static char           empty[] = "", nomem[] = "out of memory\n";
    audex_metrics_buf_t   b;

    memset(&b, 0, sizeof(audex_metrics_buf_t));
    s->render(&b, s->data);

    if (b.failed) {
        free(b.data);
        return audex_metrics_send(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  "text/plain", NULL, nomem,
                                  sizeof(nomem) - 1, MHD_RESPMEM_PERSISTENT);
    }

    if (b.data == NULL) {
        return audex_metrics_send(c, MHD_HTTP_OK, AUDEX_METRICS_PROMETHEUS,
                                  NULL, empty, 0, MHD_RESPMEM_PERSISTENT);
    }

    /* the response frees b.data */
    return audex_metrics_send(c, MHD_HTTP_OK, AUDEX_METRICS_PROMETHEUS, NULL,
                              b.data, b.len, MHD_RESPMEM_MUST_FREE);
}


static enum MHD_Result
audex_metrics_send(struct MHD_Connection *c, unsigned int status,
    const char *type, const char *allow, void *body, size_t len,
    enum MHD_ResponseMemoryMode mode)
{
    enum MHD_Result        rc;
    struct MHD_Response   *r;

    r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE) {
            free(body);
        }

        return MHD_NO;
    }

    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type)
        == MHD_NO
        || (allow
            && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow)
               == MHD_NO))
    {
        MHD_destroy_response(r);
        return MHD_NO;
    }

    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);

    return rc;
}


/* libmicrohttpd's messages end in a newline; ours get one of their own */

static void
audex_metrics_log(void *cls, const char *fmt, va_list args)
{
    int   n;
    char  msg[512];

    n = vsnprintf(msg, sizeof(msg), fmt, args);
    if (n < 0) {
        return;
    }

    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }

    audex_log(AUDEX_LOG_ERROR, NULL, "metrics: %s", msg);
}
