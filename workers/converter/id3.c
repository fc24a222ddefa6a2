/*
 * audex-converter: ID3v2.3 tag writer, see id3.h.
 */

#include <stdint.h>
#include <string.h>

#include "id3.h"


static size_t audex_id3_frame(u_char *p, u_char *end, const char *id,
    const char *text);
static size_t audex_utf8_decode(const u_char *s, uint32_t *cp);


size_t
audex_id3_build(u_char *buf, size_t len, const char *title,
    const char *encoder)
{
    u_char  *p, *end;
    size_t   n, size;

    if (len < 10) {
        return 0;
    }

    p = buf + 10;
    end = buf + len;

    n = audex_id3_frame(p, end, "TIT2", title);
    if (n == (size_t) -1) {
        return 0;
    }

    p += n;

    n = audex_id3_frame(p, end, "TSSE", encoder);
    if (n == (size_t) -1) {
        return 0;
    }

    p += n;

    size = p - (buf + 10);
    if (size == 0) {
        return 0;
    }

    /* "ID3", version 2.3.0, no flags, syncsafe size without the header */
    memcpy(buf, "ID3\x03\x00\x00", 6);
    buf[6] = (size >> 21) & 0x7f;
    buf[7] = (size >> 14) & 0x7f;
    buf[8] = (size >> 7) & 0x7f;
    buf[9] = size & 0x7f;

    return p - buf;
}


/* returns the frame length, 0 for no text, (size_t) -1 if it does not fit */
static size_t
audex_id3_frame(u_char *p, u_char *end, const char *id, const char *text)
{
    int             wide;
    size_t          n, chars, body;
    u_char         *q;
    uint32_t        cp;
    const u_char   *s;

    if (text == NULL || text[0] == '\0') {
        return 0;
    }

    /* first pass: does ISO-8859-1 do, and how many characters */
    wide = 0;
    chars = 0;

    for (s = (const u_char *) text; *s && chars < AUDEX_ID3_TITLE_MAX;
         chars++)
    {
        s += audex_utf8_decode(s, &cp);
        if (cp > 0xff) {
            wide = 1;
        }
    }

    /* encoding byte, then 1 byte a character or BOM + up to 4 bytes */
    body = 1 + (wide ? 2 + 4 * chars : chars);

    if ((size_t) (end - p) < 10 + body) {
        return (size_t) -1;
    }

    q = p + 10;
    *q++ = wide ? 1 : 0;

    if (wide) {
        *q++ = 0xff;
        *q++ = 0xfe;
    }

    s = (const u_char *) text;

    for (n = 0; n < chars; n++) {
        s += audex_utf8_decode(s, &cp);

        /* control characters have no business in a title */
        if (cp < 0x20 || cp == 0x7f) {
            cp = ' ';
        }

        if (!wide) {
            *q++ = (u_char) cp;

        } else if (cp < 0x10000) {
            *q++ = cp & 0xff;
            *q++ = cp >> 8;

        } else {
            cp -= 0x10000;
            *q++ = (0xd800 + (cp >> 10)) & 0xff;
            *q++ = (0xd800 + (cp >> 10)) >> 8;
            *q++ = (0xdc00 + (cp & 0x3ff)) & 0xff;
            *q++ = (0xdc00 + (cp & 0x3ff)) >> 8;
        }
    }

    body = q - (p + 10);

    memcpy(p, id, 4);
    p[4] = (body >> 24) & 0xff;
    p[5] = (body >> 16) & 0xff;
    p[6] = (body >> 8) & 0xff;
    p[7] = body & 0xff;
    p[8] = 0;
    p[9] = 0;

    return 10 + body;
}


/*
 * Decodes one UTF-8 sequence at s (which is not at the terminating NUL)
 * and returns the bytes used.  Invalid, overlong and surrogate sequences
 * give U+FFFD and consume one byte, so decoding always advances.
 */
static size_t
audex_utf8_decode(const u_char *s, uint32_t *cp)
{
    size_t    n, i;
    uint32_t  c, min;

    c = s[0];

    if (c < 0x80) {
        *cp = c;
        return 1;
    }

    if ((c & 0xe0) == 0xc0) {
        n = 2;
        c &= 0x1f;
        min = 0x80;

    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        c &= 0x0f;
        min = 0x800;

    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        c &= 0x07;
        min = 0x10000;

    } else {
        *cp = 0xfffd;
        return 1;
    }

    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *cp = 0xfffd;
            return 1;
        }

        c = (c << 6) | (s[i] & 0x3f);
    }

    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        *cp = 0xfffd;
        return 1;
    }

    *cp = c;

    return n;
}


void
audex_id3_title_from_path(char *buf, size_t len, const char *path)
{
    size_t       n;
    const char  *base, *dot;

    if (len == 0) {
        return;
    }

    base = strrchr(path, '/');
    base = base ? base + 1 : path;

    /* ".bashrc" has no extension; "a.b.mp4" has one, ".mp4" */
    dot = strrchr(base, '.');
    n = (dot && dot != base) ? (size_t) (dot - base) : strlen(base);

    if (n >= len) {
        n = len - 1;
    }

    memcpy(buf, base, n);
    buf[n] = '\0';
}
