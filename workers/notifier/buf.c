/*
 * audex-notifier: a growing text buffer, for the mail and the JSON body.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audex_json.h"
#include "notifier.h"


void
audex_notify_buf_add(audex_notify_buf_t *b, const char *p, size_t n)
{
    char    *d;
    size_t   cap;

    if (b->failed) {
        return;
    }

    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 1024;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }

        d = realloc(b->data, cap);
        if (d == NULL) {
            b->failed = 1;
            return;
        }

        b->data = d;
        b->cap = cap;
    }

    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}


void
audex_notify_buf_printf(audex_notify_buf_t *b, const char *fmt, ...)
{
    int      n;
    char     small[256], *big;
    va_list  args;

    va_start(args, fmt);
    n = vsnprintf(small, sizeof(small), fmt, args);
    va_end(args);

    if (n < 0) {
        b->failed = 1;
        return;
    }

    if ((size_t) n < sizeof(small)) {
        audex_notify_buf_add(b, small, n);
        return;
    }

    big = malloc(n + 1);
    if (big == NULL) {
        b->failed = 1;
        return;
    }

    va_start(args, fmt);
    vsnprintf(big, n + 1, fmt, args);
    va_end(args);

    audex_notify_buf_add(b, big, n);
    free(big);
}


void
audex_notify_buf_json(audex_notify_buf_t *b, const char *s)
{
    u_char  *p, *last;
    size_t   len, n;

    if (s == NULL) {
        audex_notify_buf_add(b, "null", 4);
        return;
    }

    len = strlen(s);
    n = audex_json_escape_len((const u_char *) s, len);

    p = malloc(n + 2);
    if (p == NULL) {
        b->failed = 1;
        return;
    }

    p[0] = '"';
    last = audex_json_escape(p + 1, (const u_char *) s, len);
    *last++ = '"';

    audex_notify_buf_add(b, (char *) p, last - p);
    free(p);
}
