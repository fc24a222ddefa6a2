/*
 * audex workers: a sink into memory, see io.h.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"


static int audex_mem_sink_write(audex_sink_t *sink, const u_char *buf,
    size_t n);
static int audex_mem_sink_rewrite(audex_sink_t *sink, int64_t offset,
    const u_char *buf, size_t n);
static int audex_mem_sink_finish(audex_sink_t *sink);
static void audex_mem_sink_abort(audex_sink_t *sink);
static void audex_mem_sink_close(audex_sink_t *sink);


void
audex_mem_sink_init(audex_mem_sink_t *m)
{
    memset(m, 0, sizeof(audex_mem_sink_t));

    m->sink.write = audex_mem_sink_write;
    m->sink.rewrite = audex_mem_sink_rewrite;
    m->sink.finish = audex_mem_sink_finish;
    m->sink.abort = audex_mem_sink_abort;
    m->sink.close = audex_mem_sink_close;
}


u_char *
audex_mem_sink_take(audex_mem_sink_t *m, size_t *len)
{
    u_char  *data;

    data = m->data;
    *len = m->len;

    m->data = NULL;
    m->len = 0;
    m->size = 0;

    return data;
}


static int
audex_mem_sink_write(audex_sink_t *sink, const u_char *buf, size_t n)
{
    size_t             size;
    u_char            *p;
    audex_mem_sink_t  *m = (audex_mem_sink_t *) sink;

    if (m->len + n > m->size) {
        size = m->size ? m->size * 2 : 256 * 1024;
        while (size < m->len + n) {
            size *= 2;
        }

        p = realloc(m->data, size);
        if (p == NULL) {
            audex_sink_fail(sink, AUDEX_IO_PERMANENT, "out of memory");
            return -1;
        }

        m->data = p;
        m->size = size;
    }

    memcpy(m->data + m->len, buf, n);
    m->len += n;
    sink->bytes_written += n;

    return 0;
}


static int
audex_mem_sink_rewrite(audex_sink_t *sink, int64_t offset,
    const u_char *buf, size_t n)
{
    audex_mem_sink_t  *m = (audex_mem_sink_t *) sink;

    if (offset < 0 || (size_t) offset + n > m->len) {
        audex_sink_fail(sink, AUDEX_IO_PERMANENT, "rewrite past the end");
        return -1;
    }

    memcpy(m->data + offset, buf, n);

    return 0;
}


static int
audex_mem_sink_finish(audex_sink_t *sink)
{
    return 0;
}


static void
audex_mem_sink_abort(audex_sink_t *sink)
{
    audex_mem_sink_t  *m = (audex_mem_sink_t *) sink;

    free(m->data);
    m->data = NULL;
    m->len = 0;
    m->size = 0;
}


/* the struct is the caller's: only the bytes not taken are freed */

static void
audex_mem_sink_close(audex_sink_t *sink)
{
    audex_mem_sink_abort(sink);
}
