/*
 * audex workers: a Prometheus endpoint.
 *
 * A thread serves GET /metrics on its own port with whatever the render
 * callback prints (text exposition format 0.0.4), and GET /healthz with
 * "ok".  One request per connection; nothing else is spoken.
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

/* listens on addr:port (port 0: disabled, returns NULL without error) */
audex_metrics_server_t *audex_metrics_start(const char *addr, int port,
    audex_metrics_render_pt render, void *data, char *err, size_t errlen);

/* stops the thread and closes the socket */
void audex_metrics_stop(audex_metrics_server_t *s);


#endif /* _AUDEX_METRICS_H_INCLUDED_ */
