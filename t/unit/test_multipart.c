#define _GNU_SOURCE

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "audex_multipart.h"


#define REC_PARTS  8


typedef struct {
    char       name[256];
    char       filename[256];
    char       type[256];
    int        has_filename;
    int        has_type;
    size_t     filename_len;
    int        filename_utf8;
    u_char    *data;
    size_t     data_len;
    int        ended;
} rec_part_t;


typedef struct {
    /* every event in order, so two runs can be compared byte for byte */
    u_char        *log;
    size_t         log_len;
    size_t         log_cap;

    rec_part_t     parts[REC_PARTS];
    int            nparts;
    int            in_part;
    size_t         data_total;
    size_t         data_calls;

    /* zero-copy check: where data may come from */
    const u_char  *in_start;
    const u_char  *in_end;
    const u_char  *mp_start;
    const u_char  *mp_end;
    int            foreign;

    int            abort_begin;
    int            abort_data;
    int            abort_end;
    int            protocol_error;
} rec_t;


static void
rec_log(rec_t *r, const void *p, size_t n)
{
    if (r->log_len + n > r->log_cap) {
        r->log_cap = (r->log_len + n) * 2 + 64;
        r->log = realloc(r->log, r->log_cap);
        assert_non_null(r->log);
    }

    memcpy(r->log + r->log_len, p, n);
    r->log_len += n;
}


static void
rec_free(rec_t *r)
{
    int  i;

    for (i = 0; i < REC_PARTS; i++) {
        free(r->parts[i].data);
    }

    free(r->log);
    memset(r, 0, sizeof(rec_t));
}


static int
rec_begin(void *ctx, const audex_multipart_part_t *part)
{
    rec_t       *r = ctx;
    rec_part_t  *rp;

    if (r->in_part) {
        r->protocol_error = 1;
    }

    r->in_part = 1;

    /* the strings are promised NUL-terminated at their length */
    assert_int_equal(strlen((const char *) part->name), part->name_len);

    if (part->filename) {
        assert_int_equal(strlen((const char *) part->filename),
                         part->filename_len);
    }

    if (part->content_type) {
        assert_int_equal(strlen((const char *) part->content_type),
                         part->content_type_len);
    }

    rec_log(r, "<B", 2);
    rec_log(r, part->name, part->name_len + 1);

    if (part->filename) {
        rec_log(r, "F", 1);
        rec_log(r, part->filename, part->filename_len + 1);
        rec_log(r, part->filename_utf8 ? "8" : "-", 1);
    }

    if (part->content_type) {
        rec_log(r, "T", 1);
        rec_log(r, part->content_type, part->content_type_len + 1);
    }

    rec_log(r, ">", 1);

    if (r->nparts < REC_PARTS) {
        rp = &r->parts[r->nparts];
        snprintf(rp->name, sizeof(rp->name), "%s", part->name);

        if (part->filename) {
            rp->has_filename = 1;
            rp->filename_len = part->filename_len;
            rp->filename_utf8 = part->filename_utf8;
            snprintf(rp->filename, sizeof(rp->filename), "%s",
                     part->filename);
        }

        if (part->content_type) {
            rp->has_type = 1;
            snprintf(rp->type, sizeof(rp->type), "%s", part->content_type);
        }
    }

    r->nparts++;

    return r->abort_begin;
}


static int
rec_data(void *ctx, const u_char *p, size_t len)
{
    rec_t       *r = ctx;
    rec_part_t  *rp;

    if (!r->in_part || len == 0) {
        r->protocol_error = 1;
    }

    if (!((p >= r->in_start && p + len <= r->in_end)
          || (p >= r->mp_start && p + len <= r->mp_end)))
    {
        r->foreign = 1;
    }

    rec_log(r, p, len);
    r->data_total += len;
    r->data_calls++;

    if (r->nparts >= 1 && r->nparts <= REC_PARTS) {
        rp = &r->parts[r->nparts - 1];
        rp->data = realloc(rp->data, rp->data_len + len);
        assert_non_null(rp->data);
        memcpy(rp->data + rp->data_len, p, len);
        rp->data_len += len;
    }

    return r->abort_data;
}


static int
rec_end(void *ctx)
{
    rec_t  *r = ctx;

    if (!r->in_part) {
        r->protocol_error = 1;
    }

    r->in_part = 0;
    rec_log(r, "<E>", 3);

    if (r->nparts >= 1 && r->nparts <= REC_PARTS) {
        r->parts[r->nparts - 1].ended = 1;
    }

    return r->abort_end;
}


static const audex_multipart_sink_t  rec_sink = {
    rec_begin, rec_data, rec_end
};


/*
 * Parse body cut at the given offsets (ascending) and return the result
 * of finish().  Each piece lives in its own malloc'ed copy so that a read
 * past a piece shows up under ASan and data pointers can be checked.
 */
static audex_multipart_rc_t
run_cuts(const char *boundary, const u_char *body, size_t len,
    const size_t *cuts, size_t ncuts, rec_t *r)
{
    size_t                 i, from, to, size;
    u_char                *piece;
    audex_multipart_t     *mp;
    audex_multipart_rc_t   rc;

    size = audex_multipart_size(strlen(boundary));
    mp = audex_multipart_create(NULL, (const u_char *) boundary,
                                strlen(boundary), &rec_sink, r);
    assert_non_null(mp);

    r->mp_start = (const u_char *) mp;
    r->mp_end = (const u_char *) mp + size;

    rc = AUDEX_MULTIPART_OK;
    from = 0;

    for (i = 0; i <= ncuts; i++) {
        to = (i < ncuts) ? cuts[i] : len;
        assert_true(to >= from && to <= len);

        piece = malloc(to - from + 1);
        assert_non_null(piece);
        memcpy(piece, body + from, to - from);

        r->in_start = piece;
        r->in_end = piece + (to - from);

        rc = audex_multipart_execute(mp, piece, piece + (to - from));

        free(piece);
        from = to;

        if (rc < 0) {
            break;
        }
    }

    if (rc >= 0) {
        rc = audex_multipart_finish(mp);
    }

    free(mp);

    return rc;
}


static audex_multipart_rc_t
run(const char *boundary, const char *body, rec_t *r)
{
    return run_cuts(boundary, (const u_char *) body, strlen(body), NULL, 0, r);
}


/*
 * The core promise: the same events and bytes whatever the cuts.  Checks
 * 1-byte pieces, every 2-way split and every 3-way split when short.
 */
static void
check_all_splits(const char *boundary, const u_char *body, size_t len,
    audex_multipart_rc_t expect)
{
    size_t                 i, j, cuts[2], *ones;
    rec_t                  ref, r;
    audex_multipart_rc_t   rc;

    memset(&ref, 0, sizeof(rec_t));
    rc = run_cuts(boundary, body, len, NULL, 0, &ref);
    assert_int_equal(rc, expect);
    assert_false(ref.protocol_error);
    assert_false(ref.foreign);

    ones = malloc(len * sizeof(size_t) + 1);
    assert_non_null(ones);

    for (i = 0; i < len; i++) {
        ones[i] = i;
    }

    memset(&r, 0, sizeof(rec_t));
    rc = run_cuts(boundary, body, len, ones, len, &r);
    assert_int_equal(rc, expect);
    assert_int_equal(r.log_len, ref.log_len);
    assert_memory_equal(r.log, ref.log, ref.log_len);
    assert_false(r.protocol_error);
    assert_false(r.foreign);
    rec_free(&r);
    free(ones);

    for (i = 0; i <= len; i++) {
        cuts[0] = i;
        memset(&r, 0, sizeof(rec_t));
        rc = run_cuts(boundary, body, len, cuts, 1, &r);
        assert_int_equal(rc, expect);
        assert_int_equal(r.log_len, ref.log_len);
        assert_memory_equal(r.log, ref.log, ref.log_len);
        assert_false(r.protocol_error);
        assert_false(r.foreign);
        rec_free(&r);
    }

    if (len <= 200) {
        for (i = 0; i <= len; i++) {
            for (j = i; j <= len; j++) {
                cuts[0] = i;
                cuts[1] = j;
                memset(&r, 0, sizeof(rec_t));
                rc = run_cuts(boundary, body, len, cuts, 2, &r);
                assert_int_equal(rc, expect);
                assert_int_equal(r.log_len, ref.log_len);
                assert_memory_equal(r.log, ref.log, ref.log_len);
                rec_free(&r);
            }
        }
    }

    rec_free(&ref);
}


static void
check_all_splits_str(const char *boundary, const char *body,
    audex_multipart_rc_t expect)
{
    check_all_splits(boundary, (const u_char *) body, strlen(body), expect);
}


static void
assert_part_data(const rec_part_t *rp, const char *data)
{
    assert_int_equal(rp->data_len, strlen(data));

    if (rp->data_len) {
        assert_memory_equal(rp->data, data, rp->data_len);
    }
}


/* Content-Type boundary extraction */

static audex_multipart_rc_t
boundary_of(const char *ct, char *out)
{
    size_t                 n;
    const u_char          *b;
    audex_multipart_rc_t   rc;

    b = NULL;
    n = 0;
    rc = audex_multipart_boundary((const u_char *) ct, strlen(ct), &b, &n);

    if (rc == AUDEX_MULTIPART_OK) {
        assert_true(b >= (const u_char *) ct
                    && b + n <= (const u_char *) ct + strlen(ct));
        memcpy(out, b, n);
        out[n] = '\0';
    }

    return rc;
}


static void
test_boundary_good(void **state)
{
    char  b[128];

    assert_int_equal(boundary_of("multipart/form-data; boundary=AaB03x", b),
                     AUDEX_MULTIPART_OK);
    assert_string_equal(b, "AaB03x");

    assert_int_equal(boundary_of("Multipart/Form-Data;BOUNDARY=\"a b:c\"", b),
                     AUDEX_MULTIPART_OK);
    assert_string_equal(b, "a b:c");

    assert_int_equal(boundary_of("  multipart/form-data ; charset=utf-8 ;"
                                 " boundary = ----WebKitFormBoundary7MA4YWx ;",
                                 b),
                     AUDEX_MULTIPART_OK);
    assert_string_equal(b, "----WebKitFormBoundary7MA4YWx");

    assert_int_equal(boundary_of("multipart/form-data; boundary=\"'()+_,-./:=?"
                                 "\"; x=\"y;z\"", b),
                     AUDEX_MULTIPART_OK);
    assert_string_equal(b, "'()+_,-./:=?");

    /* 70 characters is the limit */
    assert_int_equal(boundary_of("multipart/form-data; boundary="
        "01234567890123456789012345678901234"
        "56789012345678901234567890123456789",
        b), AUDEX_MULTIPART_OK);
    assert_int_equal(strlen(b), 70);

    assert_int_equal(boundary_of("multipart/form-data; boundary=x", b),
                     AUDEX_MULTIPART_OK);
    assert_string_equal(b, "x");
}


static void
test_boundary_bad(void **state)
{
    char  b[128];

    assert_int_equal(boundary_of("text/plain; boundary=abc", b),
                     AUDEX_MULTIPART_ERR_CONTENT_TYPE);
    assert_int_equal(boundary_of("multipart/mixed; boundary=abc", b),
                     AUDEX_MULTIPART_ERR_CONTENT_TYPE);
    assert_int_equal(boundary_of("multipart/form-datax; boundary=abc", b),
                     AUDEX_MULTIPART_ERR_CONTENT_TYPE);
    assert_int_equal(boundary_of("", b), AUDEX_MULTIPART_ERR_CONTENT_TYPE);

    assert_int_equal(boundary_of("multipart/form-data", b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data; charset=utf-8", b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data; boundary=", b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data; boundary=\"\"", b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data; boundary="
        "01234567890123456789012345678901234"
        "567890123456789012345678901234567890",
        b), AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data; boundary=a@b", b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data; boundary=\"a\\\"b\"", b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data; boundary=\"ab \"", b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data; boundary=\"abc", b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data; boundary=a; "
                                 "boundary=b", b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data; junk; boundary=a", b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data boundary=a", b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
    assert_int_equal(boundary_of("multipart/form-data; boundary=\"a\xc3\xa9\"",
                                 b),
                     AUDEX_MULTIPART_ERR_BOUNDARY);
}


static void
test_init_checks(void **state)
{
    u_char                 mem[16384] __attribute__((aligned(16)));
    size_t                 need;
    audex_multipart_t     *mp;
    const u_char          *b = (const u_char *) "AaB03x";

    need = audex_multipart_size(6);
    assert_true(need <= sizeof(mem));

    /* the memory needed does not depend on anything but the boundary */
    assert_int_equal(audex_multipart_size(70) - need, 64);

    assert_null(audex_multipart_init(mem, need - 1, b, 6, &rec_sink, NULL));
    assert_null(audex_multipart_init(mem, need, b, 0, &rec_sink, NULL));
    assert_null(audex_multipart_init(mem, need, (const u_char *) "a b ", 4,
                                     &rec_sink, NULL));
    assert_null(audex_multipart_create(NULL, (const u_char *) "a\r", 2,
                                       &rec_sink, NULL));

    mp = audex_multipart_init(mem, need, b, 6, &rec_sink, NULL);
    assert_ptr_equal(mp, mem);

    /* nothing at all is a truncated body */
    assert_int_equal(audex_multipart_execute(mp, b, b), AUDEX_MULTIPART_OK);
    assert_int_equal(audex_multipart_finish(mp), AUDEX_MULTIPART_ERR_TRUNCATED);
    assert_int_equal(audex_multipart_finish(mp), AUDEX_MULTIPART_ERR_TRUNCATED);

    assert_string_equal(audex_multipart_strerror(AUDEX_MULTIPART_ERR_TRUNCATED),
                        "multipart body ended before its final boundary");
}


#define FORM                                                               \
    "--AaB03x\r\n"                                                         \
    "Content-Disposition: form-data; name=\"bitrate\"\r\n"                 \
    "\r\n"                                                                 \
    "128\r\n"                                                              \
    "--AaB03x\r\n"                                                         \
    "Content-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n"\
    "Content-Type: video/mp4\r\n"                                          \
    "\r\n"                                                                 \
    "\0\0\0\x18" "ftypmp42\r\n\r\n-\r\n--AaB0\r\r\n--AaB03\r\n--AaB03"     \
    "\r\n--AaB03x"                                                         \
    "\r\n"                                                                 \
    "Content-Disposition: form-data; name=quality\r\n"                     \
    "\r\n"                                                                 \
    "\r\n"                                                                 \
    "--AaB03x--\r\n"


static void
test_basic_form(void **state)
{
    static const u_char    body[] = FORM;
    static const char      file[] = "\0\0\0\x18" "ftypmp42\r\n\r\n-\r\n"
                                    "--AaB0\r\r\n--AaB03\r\n--AaB03";
    rec_t                  r;
    audex_multipart_rc_t   rc;

    memset(&r, 0, sizeof(rec_t));
    rc = run_cuts("AaB03x", body, sizeof(body) - 1, NULL, 0, &r);

    assert_int_equal(rc, AUDEX_MULTIPART_DONE);
    assert_int_equal(r.nparts, 3);
    assert_false(r.protocol_error);

    assert_string_equal(r.parts[0].name, "bitrate");
    assert_false(r.parts[0].has_filename);
    assert_false(r.parts[0].has_type);
    assert_part_data(&r.parts[0], "128");
    assert_true(r.parts[0].ended);

    assert_string_equal(r.parts[1].name, "file");
    assert_true(r.parts[1].has_filename);
    assert_string_equal(r.parts[1].filename, "a.mp4");
    assert_string_equal(r.parts[1].type, "video/mp4");
    assert_int_equal(r.parts[1].data_len, sizeof(file) - 1);
    assert_memory_equal(r.parts[1].data, file, sizeof(file) - 1);
    assert_true(r.parts[1].ended);

    /* an unquoted name, and a value that is only an empty line */
    assert_string_equal(r.parts[2].name, "quality");
    assert_part_data(&r.parts[2], "");
    assert_true(r.parts[2].ended);

    /* one slice for each part: look-alikes are not split out */
    assert_int_equal(r.data_calls, 2);
    assert_int_equal(r.data_total, 3 + sizeof(file) - 1);
    rec_free(&r);

    check_all_splits("AaB03x", body, sizeof(body) - 1, AUDEX_MULTIPART_DONE);
}


static void
test_empty_file_part(void **state)
{
    static const char  body[] =
        "--b\r\n"
        "Content-Disposition: form-data; name=\"file\"; filename=\"e.mkv\"\r\n"
        "Content-Type: application/octet-stream\r\n"
        "\r\n"
        "\r\n--b--";
    rec_t              r;

    memset(&r, 0, sizeof(rec_t));
    assert_int_equal(run("b", body, &r), AUDEX_MULTIPART_DONE);
    assert_int_equal(r.nparts, 1);
    assert_string_equal(r.parts[0].filename, "e.mkv");
    assert_string_equal(r.parts[0].type, "application/octet-stream");
    assert_int_equal(r.parts[0].data_len, 0);
    assert_int_equal(r.data_calls, 0);
    assert_true(r.parts[0].ended);
    rec_free(&r);

    check_all_splits_str("b", body, AUDEX_MULTIPART_DONE);
}


static void
test_two_files(void **state)
{
    static const char  body[] =
        "preamble text --xyz\r\n--xy\r\n"
        "--xyz\r\n"
        "content-disposition: FORM-DATA; NAME=f1; FILENAME=one.mp4\r\n"
        "\r\n"
        "first\r\n"
        "--xyz  \t\r\n"
        "Content-Disposition: form-data; name=\"f2\"; filename=\"two.webm\"\r\n"
        "X-Other: ignored\r\n"
        "\r\n"
        "second\n--xyz\r\n"
        "--xyz--  \r\n"
        "epilogue --xyz\r\n--xyz\r\nContent-Disposition: form-data; name=x\r\n";
    rec_t              r;

    memset(&r, 0, sizeof(rec_t));
    assert_int_equal(run("xyz", body, &r), AUDEX_MULTIPART_DONE);
    assert_int_equal(r.nparts, 2);
    assert_string_equal(r.parts[0].name, "f1");
    assert_string_equal(r.parts[0].filename, "one.mp4");
    assert_part_data(&r.parts[0], "first");
    assert_true(r.parts[0].ended);
    assert_string_equal(r.parts[1].name, "f2");
    assert_string_equal(r.parts[1].filename, "two.webm");
    assert_false(r.parts[1].has_type);
    assert_part_data(&r.parts[1], "second\n--xyz");
    assert_true(r.parts[1].ended);
    rec_free(&r);

    check_all_splits_str("xyz", body, AUDEX_MULTIPART_DONE);
}


static void
test_look_alikes(void **state)
{
    /*
     * The boundary repeats its own first bytes, so every partial match
     * that fails may hide the start of the next one.
     */
    static const char  body[] =
        "\r\n--ab-ab\r\n"
        "Content-Disposition: form-data; name=d\r\n"
        "\r\n"
        "\r\n--ab-a\r\n--ab-\r\n--ab\r\n--a\r\n--\r\n-\r\n\r\r\r\n"
        "x--ab-ab\r\n\n--ab-ab\r\n-ab-ab--ab-ab"
        "\r\n--ab-ab--";
    static const char  data[] =
        "\r\n--ab-a\r\n--ab-\r\n--ab\r\n--a\r\n--\r\n-\r\n\r\r\r\n"
        "x--ab-ab\r\n\n--ab-ab\r\n-ab-ab--ab-ab";
    rec_t              r;

    memset(&r, 0, sizeof(rec_t));
    assert_int_equal(run("ab-ab", body, &r), AUDEX_MULTIPART_DONE);
    assert_int_equal(r.nparts, 1);
    assert_part_data(&r.parts[0], data);
    rec_free(&r);

    check_all_splits_str("ab-ab", body, AUDEX_MULTIPART_DONE);
}


static void
test_truncated(void **state)
{
    static const char  *bodies[] = {
        "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue",
        "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue\r\n--b",
        "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue\r\n--b-",
        "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b\r\n",
        "--b\r\nContent-Disposition: form-data; name=a\r\n",
        "--b\r\nContent-Disp",
        "--b",
        "preamble only",
        "",
    };
    size_t               i;
    rec_t                r;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        memset(&r, 0, sizeof(rec_t));
        assert_int_equal(run("b", bodies[i], &r),
                         AUDEX_MULTIPART_ERR_TRUNCATED);
        rec_free(&r);

        check_all_splits_str("b", bodies[i], AUDEX_MULTIPART_ERR_TRUNCATED);
    }

    /* a part that was opened is left open: the sink must not see an end */
    memset(&r, 0, sizeof(rec_t));
    assert_int_equal(run("b", bodies[0], &r), AUDEX_MULTIPART_ERR_TRUNCATED);
    assert_int_equal(r.nparts, 1);
    assert_false(r.parts[0].ended);
    assert_part_data(&r.parts[0], "value");
    rec_free(&r);

    /* the held-back "\r\n--b" is not data either */
    memset(&r, 0, sizeof(rec_t));
    assert_int_equal(run("bb", "--bb\r\nContent-Disposition: form-data; "
                         "name=a\r\n\r\nvalue\r\n--b", &r),
                     AUDEX_MULTIPART_ERR_TRUNCATED);
    assert_part_data(&r.parts[0], "value");
    rec_free(&r);
}


static void
test_no_parts(void **state)
{
    rec_t  r;

    memset(&r, 0, sizeof(rec_t));
    assert_int_equal(run("b", "--b--", &r), AUDEX_MULTIPART_DONE);
    assert_int_equal(r.nparts, 0);
    rec_free(&r);

    memset(&r, 0, sizeof(rec_t));
    assert_int_equal(run("b", "ignored\r\n--b--\r\n", &r),
                     AUDEX_MULTIPART_DONE);
    assert_int_equal(r.nparts, 0);
    rec_free(&r);

    /* no CRLF before it: not a delimiter, only preamble */
    memset(&r, 0, sizeof(rec_t));
    assert_int_equal(run("b", "x--b--\r\n", &r),
                     AUDEX_MULTIPART_ERR_TRUNCATED);
    rec_free(&r);
}


static void
test_delimiter_junk(void **state)
{
    static const char  *bodies[] = {
        "--bX\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b--",
        "--b\rX",
        "--b \tX\r\n",
        "--b-X",
        "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--bb\r\n",
    };
    size_t               i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        check_all_splits_str("b", bodies[i], AUDEX_MULTIPART_ERR_DELIMITER);
    }
}


static void
test_filenames(void **state)
{
    static const struct {
        const char  *disposition;
        const char  *filename;       /* NULL: no filename */
    } cases[] = {
        { "form-data; name=f; filename=\"a \\\"b\\\" c.mp4\"",
          "a \"b\" c.mp4" },
        { "form-data; name=f; filename=\"vid\xc3\xa9o \xe2\x82\xac.mp4\"",
          "vid\xc3\xa9o \xe2\x82\xac.mp4" },
        { "form-data; name=f; filename=\"C:\\Users\\me\\clip.avi\"",
          "C:\\Users\\me\\clip.avi" },
        { "form-data; name=f; filename=\"back\\\\slash\"",
          "back\\slash" },
        { "form-data; name=f; filename=\"end\\\\\"", "end\\" },
        { "form-data; name=f; filename=\"semi;colon=x.mp4\"",
          "semi;colon=x.mp4" },
        { "form-data; name=f; filename=\"\"", "" },
        { "form-data; name=f; filename=\"x.mp4\"; "
          "filename*=UTF-8''%E2%82%AC%20rates.mp4",
          "\xe2\x82\xac rates.mp4" },
        { "form-data; filename*=utf-8'en'na%C3%AFve.ogg; name=\"f\"; "
          "filename=\"naive.ogg\"",
          "na\xc3\xafve.ogg" },
        { "form-data; name=f; filename*=\"UTF-8''quoted%21\"", "quoted!" },
        /* another charset: fall back to the plain filename */
        { "form-data; name=f; filename=\"plain.mp4\"; "
          "filename*=ISO-8859-1''%E9t%E9.mp4",
          "plain.mp4" },
        { "form-data; name=f; filename*=ISO-8859-1''%E9t%E9.mp4", NULL },
        { "form-data; name=\"f\";", NULL },
        { "form-data ; name = \"f\" ; foo=bar ; filename = x.mp4 ", "x.mp4" },
        /* Latin-1 from an old client: passed on, flagged as not UTF-8 */
        { "form-data; name=f; filename=\"caf\xe9.mp4\"", "caf\xe9.mp4" },
        { "form-data; name=f; filename=\"tab\there.mp4\"", "tab\there.mp4" },
    };
    size_t  i;
    char    body[512];
    rec_t   r;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(body, sizeof(body),
                 "--b\r\nContent-Disposition: %s\r\n\r\ndata\r\n--b--",
                 cases[i].disposition);

        memset(&r, 0, sizeof(rec_t));
        assert_int_equal(run("b", body, &r), AUDEX_MULTIPART_DONE);
        assert_int_equal(r.nparts, 1);
        assert_string_equal(r.parts[0].name, "f");

        if (cases[i].filename) {
            assert_true(r.parts[0].has_filename);
            assert_string_equal(r.parts[0].filename, cases[i].filename);
            assert_int_equal(r.parts[0].filename_len,
                             strlen(cases[i].filename));
            assert_int_equal(r.parts[0].filename_utf8,
                             strstr(cases[i].filename, "caf\xe9") == NULL);
        } else {
            assert_false(r.parts[0].has_filename);
        }

        assert_part_data(&r.parts[0], "data");
        rec_free(&r);
    }

    check_all_splits_str("b", "--b\r\nContent-Disposition: form-data; "
                         "name=f; filename=\"x\\\"y.mp4\"; "
                         "filename*=UTF-8''%C3%A9.mp4\r\n\r\nd\r\n--b--",
                         AUDEX_MULTIPART_DONE);
}


static void
test_malformed_headers(void **state)
{
    static const char  *headers[] = {
        "Content-Disposition form-data; name=a\r\n",
        ": form-data\r\n",
        "Content-Disposition: form-data; name=a\r\n continued\r\n",
        "Content-Disposition: form-data; name=a\nX: y\r\n",
        "Content-Disposition: form-data; name=a\rX: y\r\n",
        "Content-Disposition: form-data; name=a\rXX-Y: z\r\n",
        "Content-Disposition: form-data; name=a\r\n\n",
        "Content-Disposition: form-data; name=a\x01\r\n",
        "Content-Disposition: form-data; name=\"a\0b\"\r\n",
        "Content Disposition: form-data; name=a\r\n",
        "Content-Disposition: form-data\r\n",
        "Content-Disposition: form-data; filename=x\r\n",
        "Content-Disposition: attachment; name=a\r\n",
        "Content-Disposition: form-data; name=a; name=b\r\n",
        "Content-Disposition: form-data; name=a; filename=x; filename=y\r\n",
        "Content-Disposition: form-data; name=\"a\r\n",
        "Content-Disposition: form-data; name=\r\n",
        "Content-Disposition: form-data; name=a b\r\n",
        "Content-Disposition: form-data; name\r\n",
        "Content-Disposition: form-data; name=a\r\n"
        "Content-Disposition: form-data; name=b\r\n",
        "Content-Disposition: form-data; name=a\r\n"
        "Content-Disposition: form-data; filename=b\r\n",
        "Content-Disposition: form-data; name=a\r\nContent-Type:\r\n",
        "Content-Disposition: form-data; name=a\r\n"
        "Content-Type: a/b\r\ncontent-type: c/d\r\n",
        "Content-Disposition: form-data; name=a; filename*=UTF-8''%zz\r\n",
        "Content-Disposition: form-data; name=a; filename*=UTF-8''%4\r\n",
        "Content-Disposition: form-data; name=a; filename*=UTF-8''%00\r\n",
        "Content-Disposition: form-data; name=a; filename*=UTF-8''%0A\r\n",
        "Content-Disposition: form-data; name=a; filename*=UTF-8''%C3\r\n",
        "Content-Disposition: form-data; name=a; filename*=UTF-8''%ED%A0%80"
        "\r\n",
        "Content-Disposition: form-data; name=a; filename*=UTF-8%41\r\n",
        "Content-Disposition: form-data; name=a; filename*=UTF-8''x; "
        "filename*=UTF-8''y\r\n",
    };
    size_t               i;
    char                 body[512];
    rec_t                r;

    for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        size_t  hl, n;

        /* one case holds a NUL: measure past it */
        hl = strlen(headers[i]);

        if (strcmp(headers[i], "Content-Disposition: form-data; name=\"a")
            == 0)
        {
            hl += 1 + strlen(headers[i] + hl + 1);
        }

        memcpy(body, "--b\r\n", 5);
        memcpy(body + 5, headers[i], hl);
        memcpy(body + 5 + hl, "\r\nv\r\n--b--", 11);
        n = 5 + hl + 10;

        memset(&r, 0, sizeof(rec_t));
        assert_int_equal(run_cuts("b", (u_char *) body, n, NULL, 0, &r),
                         AUDEX_MULTIPART_ERR_MALFORMED_HEADER);
        assert_int_equal(r.nparts, 0);
        rec_free(&r);

        check_all_splits("b", (u_char *) body, n,
                         AUDEX_MULTIPART_ERR_MALFORMED_HEADER);
    }

    check_all_splits_str("b",
                         "--b\r\nContent-Type: video/mp4\r\n\r\nv\r\n--b--",
                         AUDEX_MULTIPART_ERR_NO_DISPOSITION);
    check_all_splits_str("b", "--b\r\n\r\nv\r\n--b--",
                         AUDEX_MULTIPART_ERR_NO_DISPOSITION);
}


static void
test_header_limit(void **state)
{
    size_t              len, fill, cuts[3];
    char               *body, *p;
    rec_t               r;
    static const char   cd[] = "Content-Disposition: form-data; name=a\r\n";
    static const char   xh[] = "X-Pad: ";

    /*
     * One header block of exactly AUDEX_MULTIPART_HEADER_MAX bytes,
     * empty line included, then the same plus one byte.
     */
    for (fill = 0; fill < 2; fill++) {
        len = AUDEX_MULTIPART_HEADER_MAX + 64;
        body = malloc(len);
        assert_non_null(body);

        p = body;
        p += sprintf(p, "--b\r\n%s%s", cd, xh);
        memset(p, 'x', AUDEX_MULTIPART_HEADER_MAX - (sizeof(cd) - 1)
                       - (sizeof(xh) - 1) - 4 + fill);
        p += AUDEX_MULTIPART_HEADER_MAX - (sizeof(cd) - 1) - (sizeof(xh) - 1)
             - 4 + fill;
        p += sprintf(p, "\r\n\r\nv\r\n--b--");

        memset(&r, 0, sizeof(rec_t));
        assert_int_equal(run_cuts("b", (u_char *) body, p - body, NULL, 0, &r),
                         fill ? AUDEX_MULTIPART_ERR_HEADER_TOO_LONG
                              : AUDEX_MULTIPART_DONE);
        rec_free(&r);

        /* split inside the headers, where the limit is counted */
        cuts[0] = 10;
        cuts[1] = 4000;
        cuts[2] = 8200;

        memset(&r, 0, sizeof(rec_t));
        assert_int_equal(run_cuts("b", (u_char *) body, p - body, cuts, 3, &r),
                         fill ? AUDEX_MULTIPART_ERR_HEADER_TOO_LONG
                              : AUDEX_MULTIPART_DONE);
        rec_free(&r);

        free(body);
    }

    /* a header that never ends fails as soon as it passes the limit */
    body = malloc(3 * AUDEX_MULTIPART_HEADER_MAX);
    assert_non_null(body);
    memcpy(body, "--b\r\nX: ", 8);
    memset(body + 8, 'y', 3 * AUDEX_MULTIPART_HEADER_MAX - 8);

    memset(&r, 0, sizeof(rec_t));
    assert_int_equal(run_cuts("b", (u_char *) body,
                              3 * AUDEX_MULTIPART_HEADER_MAX, NULL, 0, &r),
                     AUDEX_MULTIPART_ERR_HEADER_TOO_LONG);
    rec_free(&r);
    free(body);
}


static void
test_abort(void **state)
{
    rec_t                  r;
    audex_multipart_t     *mp;
    static const char      body[] =
        "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue\r\n--b--";

    memset(&r, 0, sizeof(rec_t));
    r.abort_begin = 1;
    assert_int_equal(run("b", body, &r), AUDEX_MULTIPART_ERR_ABORTED);
    assert_int_equal(r.data_calls, 0);
    rec_free(&r);

    memset(&r, 0, sizeof(rec_t));
    r.abort_data = -1;
    assert_int_equal(run("b", body, &r), AUDEX_MULTIPART_ERR_ABORTED);
    assert_int_equal(r.data_calls, 1);
    assert_false(r.parts[0].ended);
    rec_free(&r);

    memset(&r, 0, sizeof(rec_t));
    r.abort_end = 1;
    assert_int_equal(run("b", body, &r), AUDEX_MULTIPART_ERR_ABORTED);
    assert_true(r.parts[0].ended);
    rec_free(&r);

    /* the error sticks: later input is not looked at */
    memset(&r, 0, sizeof(rec_t));
    r.abort_begin = 1;
    mp = audex_multipart_create(malloc, (const u_char *) "b", 1, &rec_sink,
                                &r);
    assert_non_null(mp);
    assert_int_equal(audex_multipart_execute(mp, (const u_char *) body,
                                             (const u_char *) body + 50),
                     AUDEX_MULTIPART_ERR_ABORTED);
    r.abort_begin = 0;
    assert_int_equal(audex_multipart_execute(mp, (const u_char *) body + 50,
                                             (const u_char *) body
                                             + sizeof(body) - 1),
                     AUDEX_MULTIPART_ERR_ABORTED);
    assert_int_equal(audex_multipart_finish(mp), AUDEX_MULTIPART_ERR_ABORTED);
    assert_int_equal(r.nparts, 1);
    free(mp);
    rec_free(&r);
}


static void
test_done_is_final(void **state)
{
    rec_t               r;
    audex_multipart_t  *mp;
    static const char   body[] =
        "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b--"
        "\r\n--b\r\nContent-Disposition: form-data; name=z\r\n\r\nw\r\n--b--";

    memset(&r, 0, sizeof(rec_t));
    mp = audex_multipart_create(NULL, (const u_char *) "b", 1, &rec_sink, &r);
    assert_non_null(mp);
    r.in_start = (const u_char *) body;
    r.in_end = (const u_char *) body + sizeof(body) - 1;

    assert_int_equal(audex_multipart_execute(mp, (const u_char *) body,
                                             r.in_end),
                     AUDEX_MULTIPART_DONE);
    assert_int_equal(audex_multipart_execute(mp, (const u_char *) body,
                                             r.in_end),
                     AUDEX_MULTIPART_DONE);
    assert_int_equal(audex_multipart_finish(mp), AUDEX_MULTIPART_DONE);
    assert_int_equal(r.nparts, 1);
    assert_part_data(&r.parts[0], "v");
    free(mp);
    rec_free(&r);
}


/* a pseudo-random generator, so that failures can be replayed */
static uint32_t
xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}


static void
test_large_part_streams(void **state)
{
    size_t                 i, n, fed, off, chunk, head_len, size;
    u_char                *body, *data;
    uint32_t               seed;
    rec_t                  r;
    audex_multipart_t     *mp;
    audex_multipart_rc_t   rc;
    static const char      boundary[] = "----AudexBoundary4k9Xq";
    static const char      head[] =
        "------AudexBoundary4k9Xq\r\n"
        "Content-Disposition: form-data; name=\"file\"; filename=\"big\"\r\n"
        "\r\n";
    static const char      tail[] = "\r\n------AudexBoundary4k9Xq--\r\n";

    /*
     * 2 MB of bytes drawn mostly from "\r\n-" and boundary characters,
     * so partial delimiters occur everywhere.
     */
    n = 2 * 1024 * 1024;
    head_len = sizeof(head) - 1;
    body = malloc(head_len + n + sizeof(tail));
    assert_non_null(body);
    memcpy(body, head, head_len);
    data = body + head_len;

    seed = 12345;

    for (i = 0; i < n; i++) {
        uint32_t  x = xorshift(&seed);

        switch (x % 4) {
        case 0:
            data[i] = "\r\n-"[(x >> 8) % 3];
            break;
        case 1:
            data[i] = boundary[(x >> 8) % (sizeof(boundary) - 1)];
            break;
        default:
            data[i] = (u_char) (x >> 16);
        }
    }

    /* the generator must not have produced a whole delimiter */
    for (i = 0; i + 26 <= n; i++) {
        assert_false(memcmp(data + i, "\r\n------AudexBoundary4k9Xq", 26) == 0);
    }

    memcpy(data + n, tail, sizeof(tail) - 1);
    n = head_len + n + sizeof(tail) - 1;

    memset(&r, 0, sizeof(rec_t));
    size = audex_multipart_size(sizeof(boundary) - 1);
    mp = audex_multipart_create(NULL, (const u_char *) boundary,
                                sizeof(boundary) - 1, &rec_sink, &r);
    assert_non_null(mp);
    r.in_start = body;
    r.in_end = body + n;
    r.mp_start = (const u_char *) mp;
    r.mp_end = (const u_char *) mp + size;

    rc = AUDEX_MULTIPART_OK;

    for (off = 0; off < n; off += chunk) {
        chunk = 1 + xorshift(&seed) % 9000;

        if (chunk > n - off) {
            chunk = n - off;
        }

        rc = audex_multipart_execute(mp, body + off, body + off + chunk);

        /*
         * What has been fed of the part has been handed on, except at
         * most one delimiter's worth that may still turn out to be one.
         */
        fed = off + chunk > head_len ? off + chunk - head_len : 0;

        if (rc == AUDEX_MULTIPART_OK && fed <= 2 * 1024 * 1024) {
            assert_true(r.data_total <= fed);
            assert_true(fed - r.data_total <= 4 + sizeof(boundary) - 1);
        }
    }

    assert_int_equal(rc, AUDEX_MULTIPART_DONE);
    assert_int_equal(r.nparts, 1);
    assert_int_equal(r.parts[0].data_len, 2 * 1024 * 1024);
    assert_memory_equal(r.parts[0].data, data, 2 * 1024 * 1024);
    assert_false(r.foreign);
    assert_false(r.protocol_error);

    free(mp);
    rec_free(&r);

    /* and again one byte at a time over the first 64 KB */
    {
        size_t  *cuts = malloc(65536 * sizeof(size_t));
        rec_t    ref;

        assert_non_null(cuts);

        for (i = 0; i < 65536; i++) {
            cuts[i] = i;
        }

        memset(&ref, 0, sizeof(rec_t));
        assert_int_equal(run_cuts(boundary, body, n, NULL, 0, &ref),
                         AUDEX_MULTIPART_DONE);
        memset(&r, 0, sizeof(rec_t));
        assert_int_equal(run_cuts(boundary, body, n, cuts, 65536, &r),
                         AUDEX_MULTIPART_DONE);
        assert_int_equal(r.log_len, ref.log_len);
        assert_memory_equal(r.log, ref.log, ref.log_len);
        assert_false(r.foreign);
        rec_free(&r);
        rec_free(&ref);
        free(cuts);
    }

    free(body);
}


static void
test_zero_copy(void **state)
{
    static const u_char  body[] = FORM;
    size_t               cuts[1];
    rec_t                r;
    const u_char        *p;

    /*
     * Split in the middle of "\r\n--AaB03x" after the file data: the
     * held-back bytes come back from the parser, the rest point into
     * the input.
     */
    p = memmem(body, sizeof(body) - 1,
               "\r\n--AaB03x\r\nContent-Disposition: form-data; name=quality",
               56);
    assert_non_null(p);
    cuts[0] = p - body + 5;

    memset(&r, 0, sizeof(rec_t));
    assert_int_equal(run_cuts("AaB03x", body, sizeof(body) - 1, cuts, 1, &r),
                     AUDEX_MULTIPART_DONE);
    assert_false(r.foreign);
    rec_free(&r);

    cuts[0] = 140;
    memset(&r, 0, sizeof(rec_t));
    assert_int_equal(run_cuts("AaB03x", body, sizeof(body) - 1, cuts, 1, &r),
                     AUDEX_MULTIPART_DONE);
    assert_false(r.foreign);
    assert_int_equal(r.nparts, 3);
    rec_free(&r);
}


/* a raw body's Content-Disposition header, read as a part's */

typedef struct {
    int   calls;
    char  filename[64];
    int   utf8;
} disp_t;


static int
disp_part(void *ctx, const audex_multipart_part_t *part)
{
    disp_t  *d = ctx;

    d->calls++;
    d->utf8 = part->filename_utf8;
    if (part->filename) {
        snprintf(d->filename, sizeof(d->filename), "%.*s",
                 (int) part->filename_len, (const char *) part->filename);
    }

    return 0;
}


static audex_multipart_rc_t
disp(const char *value, disp_t *d)
{
    size_t                 size;
    void                  *mem;
    audex_multipart_rc_t   rc;

    memset(d, 0, sizeof(*d));
    size = audex_multipart_disposition_header_size(strlen(value));
    mem = malloc(size);
    assert_non_null(mem);

    rc = audex_multipart_disposition_header(mem, size,
                                            (const u_char *) value,
                                            strlen(value), disp_part, d);
    free(mem);

    return rc;
}


static void
test_disposition_header(void **state)
{
    disp_t  d;
    char    big[AUDEX_MULTIPART_HEADER_MAX + 64];

    assert_int_equal(disp("attachment; filename=\"a b.mp4\"", &d),
                     AUDEX_MULTIPART_OK);
    assert_int_equal(d.calls, 1);
    assert_string_equal(d.filename, "a b.mp4");

    /* RFC 5987 wins over the plain name */
    assert_int_equal(disp("attachment; filename=x.mp4; "
                          "filename*=UTF-8''caf%C3%A9.mp4", &d),
                     AUDEX_MULTIPART_OK);
    assert_string_equal(d.filename, "caf\xc3\xa9.mp4");
    assert_int_equal(d.utf8, 1);

    /* no parameters: nothing named, no call */
    assert_int_equal(disp("attachment", &d), AUDEX_MULTIPART_OK);
    assert_int_equal(d.calls, 0);

    /* an unterminated quote; a value too long for a part's header */
    assert_true(disp("attachment; filename=\"x.mp4", &d) < 0);

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "attachment; filename=", 21);
    assert_int_equal(disp(big, &d), AUDEX_MULTIPART_ERR_HEADER_TOO_LONG);

    /* too little memory is refused, not overrun */
    assert_int_equal(audex_multipart_disposition_header(big, 8,
                         (const u_char *) "a; filename=x", 13, disp_part, &d),
                     AUDEX_MULTIPART_ERR_HEADER_TOO_LONG);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_boundary_good),
        cmocka_unit_test(test_boundary_bad),
        cmocka_unit_test(test_init_checks),
        cmocka_unit_test(test_basic_form),
        cmocka_unit_test(test_empty_file_part),
        cmocka_unit_test(test_two_files),
        cmocka_unit_test(test_look_alikes),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_no_parts),
        cmocka_unit_test(test_delimiter_junk),
        cmocka_unit_test(test_filenames),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_done_is_final),
        cmocka_unit_test(test_large_part_streams),
        cmocka_unit_test(test_zero_copy),
        cmocka_unit_test(test_disposition_header),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
