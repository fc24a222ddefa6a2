#include <string.h>

#include "audex_utf8.h"


/* U+00C0 to U+017F: Latin-1's letters and Latin Extended-A, unaccented */

static const char  *audex_utf8_latin[] = {
    "A", "A", "A", "A", "A", "A", "AE", "C",        /* U+00C0 */
    "E", "E", "E", "E", "I", "I", "I", "I",         /* U+00C8 */
    "D", "N", "O", "O", "O", "O", "O", "x",         /* U+00D0 */
    "O", "U", "U", "U", "U", "Y", "Th", "ss",       /* U+00D8 */
    "a", "a", "a", "a", "a", "a", "ae", "c",        /* U+00E0 */
    "e", "e", "e", "e", "i", "i", "i", "i",         /* U+00E8 */
    "d", "n", "o", "o", "o", "o", "o", "-",         /* U+00F0 */
    "o", "u", "u", "u", "u", "y", "th", "y",        /* U+00F8 */
    "A", "a", "A", "a", "A", "a", "C", "c",         /* U+0100 */
    "C", "c", "C", "c", "C", "c", "D", "d",         /* U+0108 */
    "D", "d", "E", "e", "E", "e", "E", "e",         /* U+0110 */
    "E", "e", "E", "e", "G", "g", "G", "g",         /* U+0118 */
    "G", "g", "G", "g", "H", "h", "H", "h",         /* U+0120 */
    "I", "i", "I", "i", "I", "i", "I", "i",         /* U+0128 */
    "I", "i", "IJ", "ij", "J", "j", "K", "k",       /* U+0130 */
    "k", "L", "l", "L", "l", "L", "l", "L",         /* U+0138 */
    "l", "L", "l", "N", "n", "N", "n", "N",         /* U+0140 */
    "n", "'n", "N", "n", "O", "o", "O", "o",        /* U+0148 */
    "O", "o", "OE", "oe", "R", "r", "R", "r",       /* U+0150 */
    "R", "r", "S", "s", "S", "s", "S", "s",         /* U+0158 */
    "S", "s", "T", "t", "T", "t", "T", "t",         /* U+0160 */
    "U", "u", "U", "u", "U", "u", "U", "u",         /* U+0168 */
    "U", "u", "U", "u", "W", "w", "Y", "y",         /* U+0170 */
    "Y", "Z", "z", "Z", "z", "Z", "z", "s",         /* U+0178 */
};


static const char *
audex_utf8_ascii_of(unsigned long cp)
{
    if (cp >= 0xc0 && cp <= 0x17f) {
        return audex_utf8_latin[cp - 0xc0];
    }

    switch (cp) {
    case 0xa0:                              /* no-break space */
        return " ";
    case 0xab:                              /* guillemets */
        return "<<";
    case 0xbb:
        return ">>";
    case 0x2010: case 0x2011: case 0x2012: case 0x2013: case 0x2014:
    case 0x2015:                            /* hyphens and dashes */
        return "-";
    case 0x2018: case 0x2019: case 0x201a: case 0x201b:
    case 0x201c: case 0x201d: case 0x201e: case 0x201f:
        return "'";                         /* '"' cannot be quoted */
    case 0x2026:
        return "...";
    default:
        return NULL;
    }
}


size_t
audex_utf8_to_ascii(unsigned char *dst, const unsigned char *src, size_t n,
    int *exact)
{
    size_t                len, k;
    unsigned long         cp;
    const char           *a;
    unsigned char        *q;
    const unsigned char  *p, *end;

    *exact = 1;
    q = dst;

    for (p = src, end = src + n; p < end; p += len) {

        if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
            *q++ = *p;
            len = 1;
            continue;
        }

        *exact = 0;

        len = audex_utf8_len(p, end);
        if (len < 2) {
            /* a control character, '"', '\\' or an invalid byte */
            *q++ = '_';
            len = 1;
            continue;
        }

        cp = *p & (0x7f >> len);
        for (k = 1; k < len; k++) {
            cp = (cp << 6) | (p[k] & 0x3f);
        }

        a = audex_utf8_ascii_of(cp);
        if (a == NULL) {
            *q++ = '_';
            continue;
        }

        /* never longer than the sequence it renders (checked by a test) */
        k = strlen(a);
        memcpy(q, a, k);
        q += k;
    }

    return q - dst;
}


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
