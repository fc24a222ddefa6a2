#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "audex_upload_opts.h"
#include "audex_utf8.h"


#define AUDEX_UPLOAD_SEEN_BITRATE   0x01
#define AUDEX_UPLOAD_SEEN_QUALITY   0x02
#define AUDEX_UPLOAD_SEEN_FILENAME  0x04

/* how much of a client's field name goes into a message */
#define AUDEX_UPLOAD_NAME_SHOWN     32


/* the bitrates LAME can write as MPEG-1 layer III */
static const unsigned  audex_upload_bitrates[] = { AUDEX_MP3_BITRATES };


int
audex_upload_bitrate_valid(long kbps)
{
    size_t  i;

    for (i = 0; i < sizeof(audex_upload_bitrates) / sizeof(unsigned); i++) {
        if ((long) audex_upload_bitrates[i] == kbps) {
            return 1;
        }
    }

    return 0;
}


static void
audex_upload_error(char *err, size_t err_len, const char *msg)
{
    if (err_len) {
        snprintf(err, err_len, "%s", msg);
    }
}


void
audex_upload_shown(char *dst, const u_char *src, size_t len, size_t max)
{
    size_t  i, n;

    n = len < max ? len : max;

    for (i = 0; i < n; i++) {
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f && src[i] != '"'
                  && src[i] != '\\')
                 ? (char) src[i] : '?';
    }

    if (len > n) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }

    dst[n] = '\0';
}


/* a client's field name made safe to log and to send back */
static void
audex_upload_error_field(char *err, size_t err_len, const char *before,
    const u_char *name, size_t name_len, const char *after)
{
    char  shown[AUDEX_UPLOAD_NAME_SHOWN + 4];

    audex_upload_shown(shown, name, name_len, AUDEX_UPLOAD_NAME_SHOWN);

    if (err_len) {
        snprintf(err, err_len, "%s%s%s", before, shown, after);
    }
}


/* 1 when the len bytes at p begin with the lower-case prefix lit */
static int
audex_upload_prefix(const u_char *p, size_t len, const char *lit)
{
    u_char  c;
    size_t  i, n;

    n = strlen(lit);
    if (len < n) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        c = (p[i] >= 'A' && p[i] <= 'Z') ? (p[i] | 0x20) : p[i];
        if (c != (u_char) lit[i]) {
            return 0;
        }
    }

    return 1;
}


audex_upload_body_t
audex_upload_body_type(const u_char *ct, size_t len, size_t *media_len)
{
    size_t  n;

    for (n = 0; n < len; n++) {
        if (ct[n] == ';' || ct[n] == ' ') {
            break;
        }
    }

    *media_len = n;

    /* a type, not just its prefix: "video/" alone is no media type */

    if (n > sizeof("multipart/") - 1
        && audex_upload_prefix(ct, n, "multipart/"))
    {
        return AUDEX_UPLOAD_BODY_MULTIPART;
    }

    if ((n == sizeof("application/octet-stream") - 1
         && audex_upload_prefix(ct, n, "application/octet-stream"))
        || (n > sizeof("video/") - 1 && audex_upload_prefix(ct, n, "video/"))
        || (n > sizeof("audio/") - 1 && audex_upload_prefix(ct, n, "audio/")))
    {
        return AUDEX_UPLOAD_BODY_RAW;
    }

    return AUDEX_UPLOAD_BODY_OTHER;
}


/* the code point of the valid UTF-8 sequence of n bytes at p */
static unsigned long
audex_upload_code_point(const u_char *p, size_t n)
{
    size_t         k;
    unsigned long  cp;

    cp = *p & (0x7f >> n);
    for (k = 1; k < n; k++) {
        cp = (cp << 6) | (p[k] & 0x3f);
    }

    return cp;
}


size_t
audex_upload_name_clean(u_char *dst, const u_char *name, size_t len,
    int latin1)
{
    size_t          n, out;
    unsigned long   cp;
    const u_char   *p, *end;

    end = name + len;

    for (p = end; p > name; p--) {
        if (p[-1] == '/' || p[-1] == '\\') {
            break;
        }
    }

    if ((end - p == 1 && p[0] == '.')
        || (end - p == 2 && p[0] == '.' && p[1] == '.'))
    {
        return 0;
    }

    for (out = 0; p < end; p += n) {

        if (*p < 0x80) {
            n = 1;
            if (out + 1 > AUDEX_UPLOAD_FILENAME_MAX) {
                break;
            }
            dst[out++] = (*p < 0x20 || *p == 0x7f) ? '_' : *p;
            continue;
        }

        if (latin1) {
            n = 1;
            if (out + 2 > AUDEX_UPLOAD_FILENAME_MAX) {
                break;
            }
            dst[out++] = (u_char) (0xc0 | (*p >> 6));
            dst[out++] = (u_char) (0x80 | (*p & 0x3f));
            continue;
        }

        n = audex_utf8_len(p, end);

        if (n == 0) {
            n = 1;                      /* not UTF-8: one byte, one '_' */
            cp = 0;

        } else {
            cp = audex_upload_code_point(p, n);
        }

        if (cp == 0 || cp == 0x200e || cp == 0x200f
            || (cp >= 0x202a && cp <= 0x202e)
            || (cp >= 0x2066 && cp <= 0x2069)
            || (cp >= 0x80 && cp < 0xa0))
        {
            if (out + 1 > AUDEX_UPLOAD_FILENAME_MAX) {
                break;
            }
            dst[out++] = '_';
            continue;
        }

        if (out + n > AUDEX_UPLOAD_FILENAME_MAX) {
            break;
        }

        memcpy(dst + out, p, n);
        out += n;
    }

    return out;
}


static int
audex_upload_is(const u_char *name, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(name, lit, len) == 0;
}


void
audex_upload_opts_init(audex_upload_opts_t *o)
{
    memset(o, 0, sizeof(audex_upload_opts_t));

    o->mode = AUDEX_UPLOAD_CBR;
    o->bitrate = AUDEX_UPLOAD_BITRATE_DEFAULT;
}


static int
audex_upload_bitrate(audex_upload_opts_t *o, const u_char *v, size_t n,
    char *err, size_t err_len)
{
    size_t    i;
    unsigned  kbps;

    /* digits only, no sign, no leading zero, no unit */
    if (n == 0 || n > 3 || v[0] == '0') {
        goto invalid;
    }

    for (kbps = 0, i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            goto invalid;
        }

        kbps = kbps * 10 + (v[i] - '0');
    }

    if (audex_upload_bitrate_valid(kbps)) {
        o->mode = AUDEX_UPLOAD_CBR;
        o->bitrate = kbps;
        return AUDEX_UPLOAD_OPTS_OK;
    }

invalid:

    audex_upload_error(err, err_len, "bitrate must be one of the MP3 "
                       "bitrates 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, "
                       "192, 224, 256, 320 (kb/s)");

    return AUDEX_UPLOAD_OPTS_ERROR;
}


static int
audex_upload_quality(audex_upload_opts_t *o, const u_char *v, size_t n,
    char *err, size_t err_len)
{
    if (n != 1 || v[0] < '0' || v[0] > '9') {
        audex_upload_error(err, err_len, "quality must be an integer from 0 "
                           "(best) to 9 (smallest)");
        return AUDEX_UPLOAD_OPTS_ERROR;
    }

    o->mode = AUDEX_UPLOAD_VBR;
    o->quality = v[0] - '0';

    return AUDEX_UPLOAD_OPTS_OK;
}


/*
 * A name given as a field (?filename=): refused when it is not UTF-8 or
 * holds control characters (a client that says so gets told), then
 * cleaned like every other name, which keeps only its last component.
 */
static int
audex_upload_filename(audex_upload_opts_t *o, const u_char *v, size_t n,
    char *err, size_t err_len)
{
    size_t  i;

    if (n == 0 || n > AUDEX_UPLOAD_FILENAME_MAX
        || !audex_utf8_valid(v, n))
    {
        goto invalid;
    }

    for (i = 0; i < n; i++) {
        if (v[i] < 0x20 || v[i] == 0x7f) {
            goto invalid;
        }
    }

    n = audex_upload_name_clean(o->filename, v, n, 0);
    if (n == 0) {
        goto invalid;
    }

    o->filename[n] = '\0';
    o->filename_len = n;

    return AUDEX_UPLOAD_OPTS_OK;

invalid:

    audex_upload_error(err, err_len, "filename must be 1 to 255 bytes of "
                       "UTF-8 without control characters");

    return AUDEX_UPLOAD_OPTS_ERROR;
}


int
audex_upload_opts_set(audex_upload_opts_t *o, const u_char *name,
    size_t name_len, const u_char *value, size_t value_len, char *err,
    size_t err_len)
{
    unsigned  bit;

    if (audex_upload_is(name, name_len, "bitrate")) {
        bit = AUDEX_UPLOAD_SEEN_BITRATE;

    } else if (audex_upload_is(name, name_len, "quality")) {
        bit = AUDEX_UPLOAD_SEEN_QUALITY;

    } else if (audex_upload_is(name, name_len, "filename")) {
        bit = AUDEX_UPLOAD_SEEN_FILENAME;

    } else {
        audex_upload_error_field(err, err_len, "unknown field \"", name,
                                 name_len, "\"");
        return AUDEX_UPLOAD_OPTS_UNKNOWN;
    }

    /* a repeat is refused rather than letting the last one win quietly */
    if (o->seen & bit) {
        audex_upload_error_field(err, err_len, "", name, name_len,
                                 " given more than once");
        return AUDEX_UPLOAD_OPTS_ERROR;
    }

    if ((bit == AUDEX_UPLOAD_SEEN_BITRATE
         && (o->seen & AUDEX_UPLOAD_SEEN_QUALITY))
        || (bit == AUDEX_UPLOAD_SEEN_QUALITY
            && (o->seen & AUDEX_UPLOAD_SEEN_BITRATE)))
    {
        audex_upload_error(err, err_len, "bitrate (CBR) and quality (VBR) "
                           "cannot be given together");
        return AUDEX_UPLOAD_OPTS_ERROR;
    }

    o->seen |= bit;

    switch (bit) {
    case AUDEX_UPLOAD_SEEN_BITRATE:
        return audex_upload_bitrate(o, value, value_len, err, err_len);
    case AUDEX_UPLOAD_SEEN_QUALITY:
        return audex_upload_quality(o, value, value_len, err, err_len);
    default:
        return audex_upload_filename(o, value, value_len, err, err_len);
    }
}


static int
audex_upload_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/*
 * Decode [p, end) into out, keeping at most cap bytes; *len gets the
 * number kept.  Every check accepts fewer than cap bytes, so keeping
 * cap of a longer value gives the same verdict.  -1 on a bad escape.
 */
static int
audex_upload_unescape(const u_char *p, const u_char *end, u_char *out,
    size_t cap, size_t *len)
{
    int     hi, lo;
    u_char  c;
    size_t  n;

    for (n = 0; p < end; p++) {
        c = *p;

        if (c == '+') {
            c = ' ';

        } else if (c == '%') {
            if (end - p < 3) {
                return -1;
            }

            hi = audex_upload_hex(p[1]);
            lo = audex_upload_hex(p[2]);

            if (hi < 0 || lo < 0) {
                return -1;
            }

            c = (u_char) (hi << 4 | lo);
            p += 2;
        }

        if (n < cap) {
            out[n++] = c;
        }
    }

    *len = n;

    return 0;
}


int
audex_upload_opts_parse_query(audex_upload_opts_t *o, const u_char *args,
    size_t len, char *err, size_t err_len)
{
    int            rc;
    size_t         nlen, vlen;
    u_char         name[AUDEX_UPLOAD_NAME_SHOWN + 1];
    u_char         value[AUDEX_UPLOAD_FILENAME_MAX + 1];
    const u_char  *p, *end, *amp, *eq;

    p = args;
    end = args + len;

    while (p < end) {
        amp = memchr(p, '&', end - p);

        if (amp == NULL) {
            amp = end;
        }

        if (amp == p) {
            p++;
            continue;
        }

        eq = memchr(p, '=', amp - p);

        if (eq == NULL) {
            eq = amp;
        }

        if (audex_upload_unescape(p, eq, name, sizeof(name), &nlen) != 0) {
            audex_upload_error_field(err, err_len, "malformed %-escape in "
                                     "field name \"", p, eq - p, "\"");
            return AUDEX_UPLOAD_OPTS_ERROR;
        }

        if (audex_upload_unescape(eq < amp ? eq + 1 : amp, amp, value,
                                  sizeof(value), &vlen)
            != 0)
        {
            audex_upload_error_field(err, err_len, "malformed %-escape in "
                                     "the value of ", name, nlen, "");
            return AUDEX_UPLOAD_OPTS_ERROR;
        }

        rc = audex_upload_opts_set(o, name, nlen, value, vlen, err, err_len);

        if (rc != AUDEX_UPLOAD_OPTS_OK) {
            return AUDEX_UPLOAD_OPTS_ERROR;
        }

        p = amp + 1;
    }

    return AUDEX_UPLOAD_OPTS_OK;
}
