/*
 * audex workers: Prometheus endpoint, see metrics.h.
 */

/* accept4() */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"


struct audex_metrics_server_s {
    int                       fd;
    volatile int              stop;
    pthread_t                 thread;
    audex_metrics_render_pt   render;
    void                     *data;
};


static void *audex_metrics_thread(void *arg);
static void audex_metrics_serve(audex_metrics_server_t *s, int fd);
static void audex_metrics_send(int fd, const char *status,
    const char *type, const char *body, size_t len);


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
    int                      fd, on;
    struct sockaddr_in       sin;
    audex_metrics_server_t  *s;

    err[0] = '\0';

    if (port == 0) {
        return NULL;
    }

    memset(&sin, 0, sizeof(struct sockaddr_in));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);

    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        snprintf(err, errlen, "metrics address \"%s\" is not IPv4", addr);
        return NULL;
    }

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }

    on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        || listen(fd, 16) == -1)
    {
        snprintf(err, errlen, "metrics on %s:%d: %s", addr, port,
                 strerror(errno));
        close(fd);
        return NULL;
    }

    s = calloc(1, sizeof(audex_metrics_server_t));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return NULL;
    }

    s->fd = fd;
    s->render = render;
    s->data = data;

    if (pthread_create(&s->thread, NULL, audex_metrics_thread, s) != 0) {
        snprintf(err, errlen, "pthread_create failed");
        close(fd);
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

    s->stop = 1;
    pthread_join(s->thread, NULL);
    close(s->fd);
    free(s);
}


static void *
audex_metrics_thread(void *arg)
{
    int                      fd;
    struct pollfd            pfd;
    struct timeval           tv;
    audex_metrics_server_t  *s = arg;

    pfd.fd = s->fd;
    pfd.events = POLLIN;

    while (!s->stop) {
        /* wake up now and then to notice stop */
        if (poll(&pfd, 1, 250) <= 0) {
            continue;
        }

        fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd == -1) {
            continue;
        }

        /* a scraper that connects and says nothing must not stall us */
        tv.tv_sec = 2;
        tv.tv_usec = 0;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

        audex_metrics_serve(s, fd);
        close(fd);
    }

    return NULL;
}


static void
audex_metrics_serve(audex_metrics_server_t *s, int fd)
{
    char                  req[2048];
    size_t                len;
    ssize_t               n;
    audex_metrics_buf_t   b;

    /* read up to the end of the request line; the headers do not matter */
    len = 0;

    while (len < sizeof(req) - 1) {
        n = read(fd, req + len, sizeof(req) - 1 - len);
        if (n <= 0) {
            break;
        }

        len += n;
        req[len] = '\0';

        if (strchr(req, '\n')) {
            break;
        }
    }

    req[len] = '\0';

    if (strncmp(req, "GET /metrics ", 13) == 0
        || strncmp(req, "GET /metrics?", 13) == 0)
    {
        memset(&b, 0, sizeof(audex_metrics_buf_t));
        s->render(&b, s->data);

        if (b.failed) {
            audex_metrics_send(fd, "500 Internal Server Error", "text/plain",
                               "out of memory\n", 14);

        } else {
            audex_metrics_send(fd, "200 OK",
                               "text/plain; version=0.0.4; charset=utf-8",
                               b.data ? b.data : "", b.len);
        }

        free(b.data);
        return;
    }

    if (strncmp(req, "GET /healthz ", 13) == 0) {
        audex_metrics_send(fd, "200 OK", "text/plain", "ok\n", 3);
        return;
    }

    audex_metrics_send(fd, "404 Not Found", "text/plain", "not found\n", 10);
}


static void
audex_metrics_send(int fd, const char *status, const char *type,
    const char *body, size_t len)
{
    int      hlen;
    char     head[256];
    ssize_t  n;

    hlen = snprintf(head, sizeof(head),
                    "HTTP/1.0 %s\r\nContent-Type: %s\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                    status, type, len);

    if (write(fd, head, hlen) != hlen) {
        return;
    }

    while (len > 0) {
        n = write(fd, body, len);
        if (n <= 0) {
            return;
        }

        body += n;
        len -= n;
    }
}
