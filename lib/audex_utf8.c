#include "audex_utf8.h"


size_t
audex_utf8_len(const unsigned char *p, const unsigned char *end)
{
    size_t         n, i;
    unsigned char  lo, hi;

    /* the second byte's range excludes overlong forms and surrogates */

    lo = 0x80;
    hi = 0xbf;

    if (*p < 0x80) {
        return 1;

    } else if (*p >= 0xc2 && *p <= 0xdf) {
        n = 2;

    } else if (*p >= 0xe0 && *p <= 0xef) {
        n = 3;
        if (*p == 0xe0) {
            lo = 0xa0;
        } else if (*p == 0xed) {
            hi = 0x9f;
        }

    } else if (*p >= 0xf0 && *p <= 0xf4) {
        n = 4;
        if (*p == 0xf0) {
            lo = 0x90;
        } else if (*p == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if ((size_t) (end - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}


int
audex_utf8_valid(const unsigned char *p, size_t n)
{
    size_t                len;
    const unsigned char  *end;

    for (end = p + n; p < end; p += len) {
        len = audex_utf8_len(p, end);
        if (len == 0) {
            return 0;
        }
    }

    return 1;
}
