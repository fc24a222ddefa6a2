#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audex_multipart.h"
#include "audex_utf8.h"


/*
 * The delimiter searched for is "\r\n--" boundary.  A boundary may not
 * contain CR, so after a mismatch at position k > 0 no suffix of the k
 * bytes matched can start another delimiter: the matcher falls back to
 * position 0 and the bytes held back are exactly delim[0..k).  That is why
 * held-back bytes never need copying: they are released from mp->delim.
 */

typedef enum {
    audex_mp_preamble = 0,
    audex_mp_delimiter,          /* "--boundary" seen: "--", LWSP or CR */
    audex_mp_final_dash,         /* "--boundary-" seen */
    audex_mp_padding,            /* transport padding before CRLF */
    audex_mp_delimiter_lf,
    audex_mp_headers,
    audex_mp_body,
    audex_mp_epilogue,
    audex_mp_error
} audex_multipart_state_e;


struct audex_multipart_s {
    audex_multipart_sink_t    sink;
    void                     *ctx;
    audex_multipart_state_e   state;
    audex_multipart_rc_t      rc;
    size_t                    match;      /* bytes of delim matched */
    size_t                    delim_len;
    size_t                    hlen;       /* bytes in hbuf */
    size_t                    line;       /* start of the current line */
    u_char                   *delim;
    u_char                   *hbuf;
};


typedef struct {
    const u_char  *attr;
    size_t         attr_len;
    const u_char  *val;          /* quotes excluded, escapes kept */
    size_t         val_len;
    int            quoted;
} audex_multipart_param_t;


#define audex_mp_ows(c)  ((c) == ' ' || (c) == '\t')
#define audex_mp_ctl(c)  ((c) < 0x20 || (c) == 0x7f)


static int
audex_multipart_ieq(const u_char *p, size_t n, const char *lit)
{
    u_char  a, b;

    for ( /* void */ ; n; n--, p++, lit++) {
        a = *p;
        b = (u_char) *lit;

        if (b == '\0') {
            return 0;
        }

        if (a >= 'A' && a <= 'Z') {
            a |= 0x20;
        }

        if (a != b) {
            return 0;
        }
    }

    return *lit == '\0';
}


static int
audex_multipart_token_char(u_char c)
{
    if (audex_mp_ctl(c) || c == ' ' || c >= 0x80) {
        return 0;
    }

    return strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}


static int
audex_multipart_bchar(u_char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z'))
    {
        return 1;
    }

    return c != '\0' && strchr("'()+_,-./:=? ", c) != NULL;
}


static int
audex_multipart_boundary_valid(const u_char *b, size_t n)
{
    size_t  i;

    if (n == 0 || n > AUDEX_MULTIPART_BOUNDARY_MAX || b[n - 1] == ' ') {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (!audex_multipart_bchar(b[i])) {
            return 0;
        }
    }

    return 1;
}


static const u_char *
audex_multipart_skip_ows(const u_char *p, const u_char *end)
{
    while (p < end && audex_mp_ows(*p)) {
        p++;
    }

    return p;
}


/*
 * One "; attr=value" from *pos.  Returns 1 with a parameter, 0 at the end
 * of the header value (a trailing ';' is tolerated), -1 on bad syntax.
 */
static int
audex_multipart_param(const u_char **pos, const u_char *end,
    audex_multipart_param_t *prm)
{
    const u_char  *p;

    p = audex_multipart_skip_ows(*pos, end);

    if (p == end) {
        *pos = p;
        return 0;
    }

    if (*p != ';') {
        return -1;
    }

    p = audex_multipart_skip_ows(p + 1, end);

    if (p == end) {
        *pos = p;
        return 0;
    }

    prm->attr = p;

    while (p < end && audex_multipart_token_char(*p)) {
        p++;
    }

    prm->attr_len = p - prm->attr;

    if (prm->attr_len == 0) {
        return -1;
    }

    p = audex_multipart_skip_ows(p, end);

    if (p == end || *p != '=') {
        return -1;
    }

    p = audex_multipart_skip_ows(p + 1, end);

    if (p < end && *p == '"') {
        prm->quoted = 1;
        prm->val = ++p;

        for ( ;; ) {
            if (p == end) {
                return -1;
            }

            /*
             * Only \" and \\ are escapes: old browsers send Windows paths
             * such as "C:\dir\a.mp4" with bare backslashes.
             */
            if (*p == '\\' && end - p > 1 && (p[1] == '"' || p[1] == '\\')) {
                p += 2;
                continue;
            }

            if (*p == '"') {
                break;
            }

            p++;
        }

        prm->val_len = p - prm->val;
        p++;

    } else {
        prm->quoted = 0;
        prm->val = p;

        while (p < end && *p != ';' && !audex_mp_ows(*p)) {
            p++;
        }

        prm->val_len = p - prm->val;

        if (prm->val_len == 0) {
            return -1;
        }
    }

    *pos = p;

    return 1;
}


audex_multipart_rc_t
audex_multipart_boundary(const u_char *content_type, size_t len,
    const u_char **boundary, size_t *boundary_len)
{
    int                       rc, found;
    const u_char             *p, *end, *type;
    audex_multipart_param_t   prm;

    p = content_type;
    end = content_type + len;

    p = audex_multipart_skip_ows(p, end);
    type = p;

    while (p < end && *p != ';' && !audex_mp_ows(*p)) {
        p++;
    }

    if (!audex_multipart_ieq(type, p - type, "multipart/form-data")) {
        return AUDEX_MULTIPART_ERR_CONTENT_TYPE;
    }

    found = 0;

    for ( ;; ) {
        rc = audex_multipart_param(&p, end, &prm);

        if (rc == 0) {
            break;
        }

        if (rc < 0) {
            return AUDEX_MULTIPART_ERR_BOUNDARY;
        }

        if (audex_multipart_ieq(prm.attr, prm.attr_len, "boundary")) {
            if (found) {
                return AUDEX_MULTIPART_ERR_BOUNDARY;
            }

            found = 1;
            *boundary = prm.val;
            *boundary_len = prm.val_len;
        }
    }

    /* a quoted boundary with an escape fails here: '\' is not a bchar */
    if (!found || !audex_multipart_boundary_valid(*boundary, *boundary_len)) {
        return AUDEX_MULTIPART_ERR_BOUNDARY;
    }

    return AUDEX_MULTIPART_OK;
}


size_t
audex_multipart_size(size_t boundary_len)
{
    return sizeof(audex_multipart_t) + AUDEX_MULTIPART_HEADER_MAX
           + 4 + boundary_len;
}


audex_multipart_t *
audex_multipart_init(void *mem, size_t size, const u_char *boundary,
    size_t boundary_len, const audex_multipart_sink_t *sink, void *ctx)
{
    audex_multipart_t  *mp;

    if (mem == NULL || sink == NULL
        || !audex_multipart_boundary_valid(boundary, boundary_len)
        || size < audex_multipart_size(boundary_len))
    {
        return NULL;
    }

    mp = mem;
    memset(mp, 0, sizeof(audex_multipart_t));

    mp->sink = *sink;
    mp->ctx = ctx;
    mp->hbuf = (u_char *) mem + sizeof(audex_multipart_t);
    mp->delim = mp->hbuf + AUDEX_MULTIPART_HEADER_MAX;
    mp->delim_len = 4 + boundary_len;

    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, boundary, boundary_len);

    mp->state = audex_mp_preamble;
    mp->rc = AUDEX_MULTIPART_OK;

    /*
     * The first delimiter may open the body without a CRLF before it:
     * start as if that CRLF had been seen.
     */
    mp->match = 2;

    return mp;
}


audex_multipart_t *
audex_multipart_create(void *(*alloc)(size_t), const u_char *boundary,
    size_t boundary_len, const audex_multipart_sink_t *sink, void *ctx)
{
    void               *mem;
    size_t              size;
    audex_multipart_t  *mp;

    if (!audex_multipart_boundary_valid(boundary, boundary_len)) {
        return NULL;
    }

    size = audex_multipart_size(boundary_len);
    mem = alloc ? alloc(size) : malloc(size);

    if (mem == NULL) {
        return NULL;
    }

    mp = audex_multipart_init(mem, size, boundary, boundary_len, sink, ctx);

    return mp;
}


static audex_multipart_rc_t
audex_multipart_fail(audex_multipart_t *mp, audex_multipart_rc_t rc)
{
    mp->state = audex_mp_error;
    mp->rc = rc;

    return rc;
}


static int
audex_multipart_data(audex_multipart_t *mp, const u_char *p, size_t len)
{
    if (len == 0 || mp->sink.data == NULL) {
        return 0;
    }

    return mp->sink.data(mp->ctx, p, len);
}


/*
 * Look for the delimiter in [*pos, end).  Inside a part the bytes before
 * it go to the sink, in as few slices as possible; in the preamble they
 * are dropped.  Returns 1 when a whole delimiter was consumed, 0 when the
 * input ran out first, -1 when the sink aborted.
 */
static int
audex_multipart_scan(audex_multipart_t *mp, const u_char **pos,
    const u_char *end)
{
    int            emit;
    size_t         held;
    const u_char  *p, *data, *q;

    p = *pos;
    data = p;
    emit = (mp->state == audex_mp_body);

    /* bytes of a partial delimiter that came in an earlier buffer */
    held = mp->match;

    while (p < end) {

        if (mp->match == 0) {
            q = memchr(p, '\r', end - p);

            if (q == NULL) {
                p = end;
                break;
            }

            p = q + 1;
            mp->match = 1;
            continue;
        }

        if (*p == mp->delim[mp->match]) {
            p++;

            if (++mp->match < mp->delim_len) {
                continue;
            }

            mp->match = 0;
            *pos = p;

            /* where the delimiter started in this buffer */
            q = p - (mp->delim_len - held);

            if (emit && audex_multipart_data(mp, data, q - data) != 0) {
                return -1;
            }

            return 1;
        }

        /* not a delimiter after all: release what was held back */

        if (held) {
            if (emit && audex_multipart_data(mp, mp->delim, held) != 0) {
                return -1;
            }

            held = 0;
        }

        mp->match = 0;
    }

    *pos = end;

    q = end - (mp->match - held);

    if (emit && audex_multipart_data(mp, data, q - data) != 0) {
        return -1;
    }

    return 0;
}


static int
audex_multipart_hex(u_char c)
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


/* unescape a quoted-string in place; returns the new length */
static size_t
audex_multipart_unquote(u_char *p, size_t n)
{
    size_t  i, o;

    for (i = 0, o = 0; i < n; i++, o++) {
        if (p[i] == '\\' && i + 1 < n && (p[i + 1] == '"' || p[i + 1] == '\\'))
        {
            i++;
        }

        p[o] = p[i];
    }

    return o;
}


/*
 * RFC 5987 ext-value, decoded in place: charset'language'pct-encoded.
 * Returns 1 with a UTF-8 value, 0 for another charset (the caller falls
 * back to the plain filename), -1 when malformed.
 */
static int
audex_multipart_ext_value(u_char *p, size_t n, u_char **val, size_t *len)
{
    int      hi, lo;
    size_t   i, o;
    u_char  *q1, *q2, *s, *end;

    end = p + n;

    q1 = memchr(p, '\'', n);

    if (q1 == NULL) {
        return -1;
    }

    q2 = memchr(q1 + 1, '\'', end - q1 - 1);

    if (q2 == NULL) {
        return -1;
    }

    s = q2 + 1;

    for (i = 0, o = 0; s + i < end; i++, o++) {
        if (s[i] == '%') {
            if (end - (s + i) < 3) {
                return -1;
            }

            hi = audex_multipart_hex(s[i + 1]);
            lo = audex_multipart_hex(s[i + 2]);

            if (hi < 0 || lo < 0) {
                return -1;
            }

            s[o] = (u_char) (hi << 4 | lo);
            i += 2;

        } else {
            s[o] = s[i];
        }

        if (audex_mp_ctl(s[o])) {
            return -1;
        }
    }

    if (!audex_multipart_ieq(p, q1 - p, "utf-8")) {
        return 0;
    }

    if (!audex_utf8_valid(s, o)) {
        return -1;
    }

    *val = s;
    *len = o;

    return 1;
}


static audex_multipart_rc_t
audex_multipart_disposition(audex_multipart_t *mp, const u_char *v,
    const u_char *end, audex_multipart_part_t *part)
{
    int                       rc, have_ext;
    size_t                    len;
    u_char                   *w, *ext;
    const u_char             *p;
    audex_multipart_param_t   prm;

    p = v;

    while (p < end && *p != ';' && !audex_mp_ows(*p)) {
        p++;
    }

    if (!audex_multipart_ieq(v, p - v, "form-data")) {
        return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
    }

    have_ext = 0;
    ext = NULL;
    len = 0;

    for ( ;; ) {
        rc = audex_multipart_param(&p, end, &prm);

        if (rc == 0) {
            break;
        }

        if (rc < 0) {
            return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
        }

        /* the header block is ours to rewrite: decode values in place */
        w = mp->hbuf + (prm.val - mp->hbuf);

        if (prm.quoted) {
            prm.val_len = audex_multipart_unquote(w, prm.val_len);
        }

        if (audex_multipart_ieq(prm.attr, prm.attr_len, "name")) {
            if (part->name) {
                return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
            }

            part->name = w;
            part->name_len = prm.val_len;

        } else if (audex_multipart_ieq(prm.attr, prm.attr_len, "filename")) {
            if (part->filename) {
                return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
            }

            part->filename = w;
            part->filename_len = prm.val_len;

        } else if (audex_multipart_ieq(prm.attr, prm.attr_len, "filename*")) {
            if (have_ext) {
                return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
            }

            have_ext = 1;

            rc = audex_multipart_ext_value(w, prm.val_len, &ext, &len);

            if (rc < 0) {
                return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
            }
        }
    }

    if (part->name == NULL) {
        return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
    }

    if (ext) {
        part->filename = ext;
        part->filename_len = len;
    }

    return AUDEX_MULTIPART_OK;
}


/* the header block hbuf[0 .. mp->line) is complete: parse it */
static audex_multipart_rc_t
audex_multipart_part(audex_multipart_t *mp)
{
    int                      have_cd;
    u_char                  *p, *end, *eol, *colon, *v, *ve, *q;
    audex_multipart_rc_t     rc;
    audex_multipart_part_t   part;

    memset(&part, 0, sizeof(audex_multipart_part_t));
    have_cd = 0;

    p = mp->hbuf;
    end = mp->hbuf + mp->line;

    while (p < end) {

        /* every line ends in CRLF; a CR before that is a bare CR */
        eol = memchr(p, '\r', end - p);

        if (eol == NULL || eol[1] != '\n') {
            return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
        }

        for (q = p; q < eol; q++) {
            if (audex_mp_ctl(*q) && *q != '\t') {
                return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
            }
        }

        /*
         * Obsolete line folding (RFC 7230 3.2.4) is not accepted: a line
         * starting with a blank fails the header name check below.
         */
        colon = memchr(p, ':', eol - p);

        if (colon == NULL || colon == p) {
            return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
        }

        for (q = p; q < colon; q++) {
            if (!audex_multipart_token_char(*q)) {
                return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
            }
        }

        v = colon + 1;

        while (v < eol && audex_mp_ows(*v)) {
            v++;
        }

        ve = eol;

        while (ve > v && audex_mp_ows(ve[-1])) {
            ve--;
        }

        if (audex_multipart_ieq(p, colon - p, "content-disposition")) {
            if (have_cd) {
                return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
            }

            have_cd = 1;

            rc = audex_multipart_disposition(mp, v, ve, &part);

            if (rc != AUDEX_MULTIPART_OK) {
                return rc;
            }

        } else if (audex_multipart_ieq(p, colon - p, "content-type")) {
            if (part.content_type || v == ve) {
                return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
            }

            part.content_type = v;
            part.content_type_len = ve - v;
        }

        p = eol + 2;
    }

    if (!have_cd) {
        return AUDEX_MULTIPART_ERR_NO_DISPOSITION;
    }

    /*
     * Each value is followed in hbuf by a byte that belongs to no value
     * (a closing quote, ';', blank or CR) or by bytes freed by decoding,
     * so the values can be terminated in place once all are parsed.
     */
    ((u_char *) part.name)[part.name_len] = '\0';

    if (part.filename) {
        ((u_char *) part.filename)[part.filename_len] = '\0';
    }

    if (part.content_type) {
        ((u_char *) part.content_type)[part.content_type_len] = '\0';
    }

    part.filename_utf8 = part.filename
                         && audex_utf8_valid(part.filename,
                                                       part.filename_len);

    if (mp->sink.part_begin && mp->sink.part_begin(mp->ctx, &part) != 0) {
        return AUDEX_MULTIPART_ERR_ABORTED;
    }

    return AUDEX_MULTIPART_OK;
}


/* collect header bytes up to the empty line that ends them */
static audex_multipart_rc_t
audex_multipart_headers(audex_multipart_t *mp, const u_char **pos,
    const u_char *end)
{
    size_t                 n;
    const u_char          *p, *lf;
    audex_multipart_rc_t   rc;

    p = *pos;

    while (p < end) {
        lf = memchr(p, '\n', end - p);
        n = (lf ? lf + 1 : end) - p;

        if (n > AUDEX_MULTIPART_HEADER_MAX - mp->hlen) {
            return AUDEX_MULTIPART_ERR_HEADER_TOO_LONG;
        }

        memcpy(mp->hbuf + mp->hlen, p, n);
        mp->hlen += n;
        p += n;

        if (lf == NULL) {
            break;
        }

        if (mp->hlen - mp->line < 2 || mp->hbuf[mp->hlen - 2] != '\r') {
            return AUDEX_MULTIPART_ERR_MALFORMED_HEADER;
        }

        if (mp->hlen - mp->line > 2) {
            mp->line = mp->hlen;
            continue;
        }

        /* the empty line: hbuf[0 .. line) holds the headers */

        *pos = p;

        rc = audex_multipart_part(mp);

        if (rc != AUDEX_MULTIPART_OK) {
            return rc;
        }

        mp->state = audex_mp_body;

        return AUDEX_MULTIPART_OK;
    }

    *pos = p;

    return AUDEX_MULTIPART_OK;
}


audex_multipart_rc_t
audex_multipart_execute(audex_multipart_t *mp, const u_char *start,
    const u_char *end)
{
    int                    rc;
    u_char                 c;
    const u_char          *p;
    audex_multipart_rc_t   hrc;

    p = start;

    while (p < end) {

        switch (mp->state) {

        case audex_mp_preamble:
        case audex_mp_body:
            rc = audex_multipart_scan(mp, &p, end);

            if (rc < 0) {
                return audex_multipart_fail(mp, AUDEX_MULTIPART_ERR_ABORTED);
            }

            if (rc == 0) {
                break;
            }

            if (mp->state == audex_mp_body && mp->sink.part_end
                && mp->sink.part_end(mp->ctx) != 0)
            {
                return audex_multipart_fail(mp, AUDEX_MULTIPART_ERR_ABORTED);
            }

            mp->state = audex_mp_delimiter;
            break;

        case audex_mp_delimiter:
            c = *p++;

            if (c == '-') {
                mp->state = audex_mp_final_dash;

            } else if (c == '\r') {
                mp->state = audex_mp_delimiter_lf;

            } else if (audex_mp_ows(c)) {
                mp->state = audex_mp_padding;

            } else {
                return audex_multipart_fail(mp, AUDEX_MULTIPART_ERR_DELIMITER);
            }

            break;

        case audex_mp_final_dash:
            if (*p++ != '-') {
                return audex_multipart_fail(mp, AUDEX_MULTIPART_ERR_DELIMITER);
            }

            mp->state = audex_mp_epilogue;
            mp->rc = AUDEX_MULTIPART_DONE;

            return AUDEX_MULTIPART_DONE;

        case audex_mp_padding:
            c = *p++;

            if (c == '\r') {
                mp->state = audex_mp_delimiter_lf;

            } else if (!audex_mp_ows(c)) {
                return audex_multipart_fail(mp, AUDEX_MULTIPART_ERR_DELIMITER);
            }

            break;

        case audex_mp_delimiter_lf:
            if (*p++ != '\n') {
                return audex_multipart_fail(mp, AUDEX_MULTIPART_ERR_DELIMITER);
            }

            mp->state = audex_mp_headers;
            mp->hlen = 0;
            mp->line = 0;
            break;

        case audex_mp_headers:
            hrc = audex_multipart_headers(mp, &p, end);

            if (hrc != AUDEX_MULTIPART_OK) {
                return audex_multipart_fail(mp, hrc);
            }

            break;

        case audex_mp_epilogue:
        case audex_mp_error:
            return mp->rc;
        }
    }

    return mp->rc;
}


audex_multipart_rc_t
audex_multipart_finish(audex_multipart_t *mp)
{
    if (mp->state == audex_mp_epilogue || mp->state == audex_mp_error) {
        return mp->rc;
    }

    return audex_multipart_fail(mp, AUDEX_MULTIPART_ERR_TRUNCATED);
}


const char *
audex_multipart_strerror(audex_multipart_rc_t rc)
{
    switch (rc) {
    case AUDEX_MULTIPART_OK:
        return "ok";
    case AUDEX_MULTIPART_DONE:
        return "done";
    case AUDEX_MULTIPART_ERR_CONTENT_TYPE:
        return "content type is not multipart/form-data";
    case AUDEX_MULTIPART_ERR_BOUNDARY:
        return "missing or invalid multipart boundary";
    case AUDEX_MULTIPART_ERR_DELIMITER:
        return "invalid text after a multipart boundary";
    case AUDEX_MULTIPART_ERR_HEADER_TOO_LONG:
        return "multipart part headers too long";
    case AUDEX_MULTIPART_ERR_MALFORMED_HEADER:
        return "malformed multipart part header";
    case AUDEX_MULTIPART_ERR_NO_DISPOSITION:
        return "multipart part without Content-Disposition";
    case AUDEX_MULTIPART_ERR_TRUNCATED:
        return "multipart body ended before its final boundary";
    case AUDEX_MULTIPART_ERR_ABORTED:
        return "multipart parsing aborted";
    }

    return "unknown multipart error";
}


/*
 * The header's parameters become the head of a one-part body of our
 * own: "--x", a form-data disposition naming the part "file", then the
 * client's parameters; the parser reads them as any part's.
 */

static const u_char  audex_multipart_disposition_head[] =
    "--x\r\nContent-Disposition: form-data; name=\"file\"";


size_t
audex_multipart_disposition_header_size(size_t len)
{
    return audex_multipart_size(1) + sizeof(audex_multipart_disposition_head)
           + len + sizeof("\r\n\r\n");
}


audex_multipart_rc_t
audex_multipart_disposition_header(void *mem, size_t size, const u_char *value,
    size_t len, int (*part)(void *ctx, const audex_multipart_part_t *part),
    void *ctx)
{
    u_char                  *buf, *p;
    const u_char            *params, *end;
    audex_multipart_t       *mp;
    audex_multipart_rc_t     rc;
    audex_multipart_sink_t   sink;

    end = value + len;
    params = memchr(value, ';', len);

    if (params == NULL) {
        return AUDEX_MULTIPART_OK;
    }

    if (size < audex_multipart_disposition_header_size(len)) {
        return AUDEX_MULTIPART_ERR_HEADER_TOO_LONG;
    }

    memset(&sink, 0, sizeof(sink));
    sink.part_begin = part;

    mp = audex_multipart_init(mem, audex_multipart_size(1),
                              (const u_char *) "x", 1, &sink, ctx);
    if (mp == NULL) {
        return AUDEX_MULTIPART_ERR_BOUNDARY;
    }

    buf = (u_char *) mem + audex_multipart_size(1);

    p = buf;
    memcpy(p, audex_multipart_disposition_head,
           sizeof(audex_multipart_disposition_head) - 1);
    p += sizeof(audex_multipart_disposition_head) - 1;
    memcpy(p, params, end - params);
    p += end - params;
    memcpy(p, "\r\n\r\n", 4);
    p += 4;

    rc = audex_multipart_execute(mp, buf, p);

    return rc == AUDEX_MULTIPART_DONE ? AUDEX_MULTIPART_OK : rc;
}
