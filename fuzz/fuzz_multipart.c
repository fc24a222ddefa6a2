/*
 * libFuzzer target for lib/audex_multipart.c.
 *
 * Input: byte 0 picks where the body is cut in two, the rest is the
 * body, parsed with the boundary "AaB03x".  The same body is also parsed
 * in one piece and, when short, one byte at a time: all runs must report
 * the same events at the same data offsets, the same bytes and the same
 * result.  Each piece lives in its own exact-size allocation so that ASan
 * catches any read past it.  The whole input is also tried as a
 * Content-Type value.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audex_multipart.h"


#define FUZZ_BOUNDARY      "AaB03x"
#define FUZZ_BYTEWISE_MAX  1024


typedef struct {
    uint64_t        data_hash;     /* the bytes of all parts, in order */
    uint64_t        event_hash;    /* events with their data offsets */
    size_t          data_total;
    size_t          begins;
    size_t          ends;
    int             in_part;

    /* where data may legitimately point */
    const u_char   *piece;
    size_t          piece_len;
    const u_char   *mem;
    size_t          mem_len;
} fuzz_rec_t;


static void
fuzz_check(int ok)
{
    if (!ok) {
        abort();
    }
}


static uint64_t
fuzz_fnv(uint64_t h, const u_char *p, size_t n)
{
    while (n--) {
        h ^= *p++;
        h *= 0x100000001b3ULL;
    }

    return h;
}


static void
fuzz_check_string(const u_char *s, size_t len)
{
    size_t  i;

    fuzz_check(len <= AUDEX_MULTIPART_HEADER_MAX);
    fuzz_check(s[len] == '\0');

    for (i = 0; i < len; i++) {
        fuzz_check((s[i] >= 0x20 || s[i] == '\t') && s[i] != 0x7f);
    }
}


static int
fuzz_begin(void *ctx, const audex_multipart_part_t *part)
{
    fuzz_rec_t  *r = ctx;
    u_char       tag;

    fuzz_check(!r->in_part);
    fuzz_check(part->name != NULL);

    fuzz_check_string(part->name, part->name_len);

    tag = 'B';
    r->event_hash = fuzz_fnv(r->event_hash, &tag, 1);
    r->event_hash = fuzz_fnv(r->event_hash, (u_char *) &r->data_total,
                             sizeof(size_t));
    r->event_hash = fuzz_fnv(r->event_hash, part->name, part->name_len + 1);

    if (part->filename) {
        fuzz_check_string(part->filename, part->filename_len);
        fuzz_check(part->filename_utf8 == 0 || part->filename_utf8 == 1);
        r->event_hash = fuzz_fnv(r->event_hash, part->filename,
                                 part->filename_len + 1);
        tag = (u_char) part->filename_utf8;
        r->event_hash = fuzz_fnv(r->event_hash, &tag, 1);
    }

    if (part->content_type) {
        fuzz_check_string(part->content_type, part->content_type_len);
        r->event_hash = fuzz_fnv(r->event_hash, part->content_type,
                                 part->content_type_len + 1);
    }

    r->in_part = 1;
    r->begins++;

    return 0;
}


static int
fuzz_data(void *ctx, const u_char *p, size_t len)
{
    fuzz_rec_t  *r = ctx;

    fuzz_check(r->in_part);
    fuzz_check(len > 0);
    fuzz_check((p >= r->piece && p + len <= r->piece + r->piece_len)
               || (p >= r->mem && p + len <= r->mem + r->mem_len));

    r->data_hash = fuzz_fnv(r->data_hash, p, len);
    r->data_total += len;

    return 0;
}


static int
fuzz_end(void *ctx)
{
    fuzz_rec_t  *r = ctx;
    u_char       tag;

    fuzz_check(r->in_part);

    tag = 'E';
    r->event_hash = fuzz_fnv(r->event_hash, &tag, 1);
    r->event_hash = fuzz_fnv(r->event_hash, (u_char *) &r->data_total,
                             sizeof(size_t));

    r->in_part = 0;
    r->ends++;

    return 0;
}


static const audex_multipart_sink_t  fuzz_sink = {
    fuzz_begin, fuzz_data, fuzz_end
};


/* parse body in pieces cut at cuts[0 .. ncuts) (ascending) */
static audex_multipart_rc_t
fuzz_run(const u_char *body, size_t n, const size_t *cuts, size_t ncuts,
    size_t step, fuzz_rec_t *r)
{
    size_t                 size, from, to, i;
    u_char                *piece;
    audex_multipart_t     *mp;
    audex_multipart_rc_t   rc, prev;

    memset(r, 0, sizeof(fuzz_rec_t));
    r->data_hash = 0xcbf29ce484222325ULL;
    r->event_hash = 0xcbf29ce484222325ULL;

    size = audex_multipart_size(sizeof(FUZZ_BOUNDARY) - 1);
    mp = audex_multipart_create(malloc, (const u_char *) FUZZ_BOUNDARY,
                                sizeof(FUZZ_BOUNDARY) - 1, &fuzz_sink, r);
    fuzz_check(mp != NULL);

    r->mem = (const u_char *) mp;
    r->mem_len = size;

    prev = AUDEX_MULTIPART_OK;
    from = 0;
    i = 0;

    while (from < n || i == 0) {
        if (step) {
            to = from + step < n ? from + step : n;
        } else {
            to = i < ncuts ? cuts[i] : n;
        }

        i++;

        piece = malloc(to - from ? to - from : 1);
        fuzz_check(piece != NULL);
        memcpy(piece, body + from, to - from);

        r->piece = piece;
        r->piece_len = to - from;

        rc = audex_multipart_execute(mp, piece, piece + (to - from));

        free(piece);

        /* DONE and errors are final */
        if (prev != AUDEX_MULTIPART_OK) {
            fuzz_check(rc == prev);
        }

        prev = rc;
        from = to;

        if (step == 0 && i > ncuts) {
            break;
        }
    }

    rc = audex_multipart_finish(mp);

    if (prev != AUDEX_MULTIPART_OK) {
        fuzz_check(rc == prev);
    } else {
        fuzz_check(rc == AUDEX_MULTIPART_ERR_TRUNCATED);
    }

    fuzz_check(audex_multipart_finish(mp) == rc);

    free(mp);

    fuzz_check(r->data_total <= n);
    fuzz_check(r->ends <= r->begins && r->begins - r->ends <= 1);

    if (rc == AUDEX_MULTIPART_DONE) {
        fuzz_check(!r->in_part && r->begins == r->ends);
    }

    return rc;
}


static int
fuzz_same(const fuzz_rec_t *a, const fuzz_rec_t *b)
{
    return a->data_hash == b->data_hash && a->event_hash == b->event_hash
           && a->data_total == b->data_total && a->begins == b->begins
           && a->ends == b->ends;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                 n, cut, blen;
    u_char                *ct;
    fuzz_rec_t             one, two, bytes;
    const u_char          *body, *b;
    audex_multipart_rc_t   rc1, rc2, rc3;

    /* the whole input as a Content-Type value, in an exact-size copy */
    ct = malloc(size ? size : 1);
    fuzz_check(ct != NULL);
    memcpy(ct, data, size);

    if (audex_multipart_boundary(ct, size, &b, &blen) == AUDEX_MULTIPART_OK) {
        fuzz_check(blen >= 1 && blen <= AUDEX_MULTIPART_BOUNDARY_MAX);
        fuzz_check(b >= ct && b + blen <= ct + size);
    }

    free(ct);

    if (size == 0) {
        return 0;
    }

    body = data + 1;
    n = size - 1;
    cut = (size_t) data[0] * n / 255;

    rc1 = fuzz_run(body, n, NULL, 0, 0, &one);
    rc2 = fuzz_run(body, n, &cut, 1, 0, &two);

    fuzz_check(rc1 == rc2);
    fuzz_check(fuzz_same(&one, &two));

    if (n <= FUZZ_BYTEWISE_MAX) {
        rc3 = fuzz_run(body, n, NULL, 0, 1, &bytes);
        fuzz_check(rc1 == rc3);
        fuzz_check(fuzz_same(&one, &bytes));
    }

    return 0;
}
