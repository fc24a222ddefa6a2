/*
 * audex workers: a Prometheus endpoint.
 *
 * libmicrohttpd serves GET /metrics on its own port with whatever the
 * render callback prints (text exposition format 0.0.4), and GET /healthz
 * with "ok"; HEAD too.  Its threads poll every connection, so a client
 * that sends slowly or not at all holds one connection (until the
 * inactivity timeout), never the others.  The render callback runs in
 * those threads, several at once: it may only read what the worker
 * updates atomically.
 */

#ifndef _AUDEX_METRICS_H_INCLUDED_
#define _AUDEX_METRICS_H_INCLUDED_


#include <stddef.h>


typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
    int      failed;
} audex_metrics_buf_t;


typedef void (*audex_metrics_render_pt)(audex_metrics_buf_t *b, void *data);

typedef struct audex_metrics_server_s  audex_metrics_server_t;


void audex_metrics_printf(audex_metrics_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * listens on addr:port, an IPv4 or IPv6 address (port 0: disabled, returns
 * NULL without error)
 */
audex_metrics_server_t *audex_metrics_start(const char *addr, int port,
    audex_metrics_render_pt render, void *data, char *err, size_t errlen);

/* stops the threads and closes the sockets */
void audex_metrics_stop(audex_metrics_server_t *s);


#endif /* _AUDEX_METRICS_H_INCLUDED_ */
