#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "audex_upload_opts.h"


#define BITRATE_MSG                                                          \
    "bitrate must be one of the MP3 bitrates 32, 40, 48, 56, 64, 80, 96, "   \
    "112, 128, 160, 192, 224, 256, 320 (kb/s)"
#define QUALITY_MSG                                                          \
    "quality must be an integer from 0 (best) to 9 (smallest)"
#define BOTH_MSG                                                             \
    "bitrate (CBR) and quality (VBR) cannot be given together"
#define FILENAME_MSG                                                         \
    "filename must be 1 to 255 bytes of UTF-8 without control characters"


static int
set(audex_upload_opts_t *o, const char *name, const char *value, char *err)
{
    return audex_upload_opts_set(o, (const u_char *) name, strlen(name),
                                 (const u_char *) value, strlen(value), err,
                                 256);
}


/* the query goes in a buffer of its exact size: ASan sees any over-read */
static int
query(audex_upload_opts_t *o, const char *q, char *err)
{
    int      rc;
    size_t   n;
    u_char  *copy;

    audex_upload_opts_init(o);
    err[0] = '\0';

    n = strlen(q);
    copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, q, n);

    rc = audex_upload_opts_parse_query(o, copy, n, err, 256);

    free(copy);

    return rc;
}


static void
test_defaults(void **state)
{
    audex_upload_opts_t  o;

    memset(&o, 0xa5, sizeof(o));
    audex_upload_opts_init(&o);

    assert_int_equal(o.mode, AUDEX_UPLOAD_CBR);
    assert_int_equal(o.bitrate, 192);
    assert_int_equal(o.filename_len, 0);
    assert_int_equal(o.seen, 0);
}


static void
test_bitrate(void **state)
{
    size_t               i;
    char                 err[256], v[8];
    audex_upload_opts_t  o;
    static const unsigned  good[] = {
        32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320
    };
    static const char   *bad[] = {
        "", "0", "8", "31", "33", "100", "144", "384", "448", "1000",
        "032", "064", "0128", "+128", "-128", "128k", "12.8", " 128", "128 ",
        "1e2",
        "4294967424", "3200"
    };
    unsigned             kbps, accepted;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        audex_upload_opts_init(&o);
        snprintf(v, sizeof(v), "%u", good[i]);
        assert_int_equal(set(&o, "bitrate", v, err), AUDEX_UPLOAD_OPTS_OK);
        assert_int_equal(o.mode, AUDEX_UPLOAD_CBR);
        assert_int_equal(o.bitrate, good[i]);
    }

    /* and nothing else from 0 to 999 */
    accepted = 0;

    for (kbps = 0; kbps < 1000; kbps++) {
        audex_upload_opts_init(&o);
        snprintf(v, sizeof(v), "%u", kbps);

        if (set(&o, "bitrate", v, err) == AUDEX_UPLOAD_OPTS_OK) {
            accepted++;
        }
    }

    assert_int_equal(accepted, 14);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        audex_upload_opts_init(&o);
        err[0] = '\0';
        assert_int_equal(set(&o, "bitrate", bad[i], err),
                         AUDEX_UPLOAD_OPTS_ERROR);
        assert_string_equal(err, BITRATE_MSG);
    }
}


/* the rule the converter checks a job's bitrate with: the same list */
static void
test_bitrate_valid(void **state)
{
    long      v;
    unsigned  n;

    for (n = 0, v = -1; v <= 400; v++) {
        n += audex_upload_bitrate_valid(v);
    }

    assert_int_equal(n, 14);
    assert_true(audex_upload_bitrate_valid(32));
    assert_true(audex_upload_bitrate_valid(AUDEX_MP3_BITRATE_DEFAULT));
    assert_true(audex_upload_bitrate_valid(320));
    assert_false(audex_upload_bitrate_valid(8));
    assert_false(audex_upload_bitrate_valid(100));
    assert_false(audex_upload_bitrate_valid(0));
}


static void
test_quality(void **state)
{
    size_t               i;
    char                 err[256], v[2];
    audex_upload_opts_t  o;
    static const char   *bad[] = {
        "", "10", "-1", "a", " 5", "5 ", "05", "+5", "9.0", "\xd9\xa3"
    };

    for (i = 0; i <= 9; i++) {
        audex_upload_opts_init(&o);
        v[0] = (char) ('0' + i);
        v[1] = '\0';
        assert_int_equal(set(&o, "quality", v, err), AUDEX_UPLOAD_OPTS_OK);
        assert_int_equal(o.mode, AUDEX_UPLOAD_VBR);
        assert_int_equal(o.quality, i);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        audex_upload_opts_init(&o);
        err[0] = '\0';
        assert_int_equal(set(&o, "quality", bad[i], err),
                         AUDEX_UPLOAD_OPTS_ERROR);
        assert_string_equal(err, QUALITY_MSG);
    }
}


static void
test_exclusive_and_repeats(void **state)
{
    char                 err[256];
    audex_upload_opts_t  o;

    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "bitrate", "128", err), AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(set(&o, "quality", "2", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, BOTH_MSG);

    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "quality", "2", err), AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(set(&o, "filename", "x.mp3", err), AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(set(&o, "bitrate", "128", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, BOTH_MSG);

    /* even a bad one of the two counts as given */
    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "quality", "x", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_int_equal(set(&o, "bitrate", "128", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, BOTH_MSG);

    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "bitrate", "128", err), AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(set(&o, "bitrate", "128", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "bitrate given more than once");

    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "quality", "0", err), AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(set(&o, "quality", "1", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "quality given more than once");
    assert_int_equal(o.quality, 0);

    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "filename", "a", err), AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(set(&o, "filename", "b", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "filename given more than once");
    assert_string_equal((char *) o.filename, "a");
}


static void
test_filename(void **state)
{
    char                 err[256], name[300];
    audex_upload_opts_t  o;

    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "filename", "My Song (live).mp3", err),
                     AUDEX_UPLOAD_OPTS_OK);
    assert_string_equal((char *) o.filename, "My Song (live).mp3");
    assert_int_equal(o.filename_len, 18);
    assert_int_equal(o.mode, AUDEX_UPLOAD_CBR);
    assert_int_equal(o.bitrate, 192);

    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "filename", "caf\xc3\xa9 \xe2\x82\xac "
                         "\xf0\x9f\x8e\xb5.mp3", err),
                     AUDEX_UPLOAD_OPTS_OK);

    memset(name, 'n', 255);
    name[255] = '\0';
    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "filename", name, err), AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(o.filename_len, 255);
    assert_int_equal(o.filename[255], '\0');

    name[255] = 'n';
    name[256] = '\0';
    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "filename", name, err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, FILENAME_MSG);
    assert_int_equal(o.filename_len, 0);

    {
        static const char  *bad[] = {
            "", "a\nb", "a\rb", "tab\there", "del\x7f", "\xff\xfe",
            "caf\xe9", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"
        };
        size_t  i;

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            audex_upload_opts_init(&o);
            err[0] = '\0';
            assert_int_equal(set(&o, "filename", bad[i], err),
                             AUDEX_UPLOAD_OPTS_ERROR);
            assert_string_equal(err, FILENAME_MSG);
        }
    }

    /* a NUL inside */
    audex_upload_opts_init(&o);
    assert_int_equal(audex_upload_opts_set(&o, (const u_char *) "filename", 8,
                                           (const u_char *) "a\0b", 3, err,
                                           sizeof(err)),
                     AUDEX_UPLOAD_OPTS_ERROR);
}


static void
test_unknown(void **state)
{
    char                 err[256];
    audex_upload_opts_t  o;

    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "submit", "Upload", err),
                     AUDEX_UPLOAD_OPTS_UNKNOWN);
    assert_string_equal(err, "unknown field \"submit\"");

    /* names are case-sensitive */
    assert_int_equal(set(&o, "Bitrate", "128", err),
                     AUDEX_UPLOAD_OPTS_UNKNOWN);
    assert_string_equal(err, "unknown field \"Bitrate\"");
    assert_int_equal(set(&o, "bitrat", "128", err), AUDEX_UPLOAD_OPTS_UNKNOWN);
    assert_int_equal(set(&o, "bitrates", "128", err),
                     AUDEX_UPLOAD_OPTS_UNKNOWN);
    assert_int_equal(set(&o, "", "128", err), AUDEX_UPLOAD_OPTS_UNKNOWN);
    assert_string_equal(err, "unknown field \"\"");

    /* what a client sends is shown tamed and cut */
    assert_int_equal(set(&o, "a\"b\\c\r\n\x01\xc3\xa9", "1", err),
                     AUDEX_UPLOAD_OPTS_UNKNOWN);
    assert_string_equal(err, "unknown field \"a?b?c?????\"");

    assert_int_equal(set(&o, "0123456789abcdef0123456789abcdefXYZ", "1", err),
                     AUDEX_UPLOAD_OPTS_UNKNOWN);
    assert_string_equal(err, "unknown field "
                        "\"0123456789abcdef0123456789abcdef...\"");

    /* nothing was changed */
    assert_int_equal(o.seen, 0);
    assert_int_equal(o.bitrate, 192);

    /* a short buffer still gets a terminated message, none gets nothing */
    err[5] = 'x';
    assert_int_equal(audex_upload_opts_set(&o, (const u_char *) "nope", 4,
                                           (const u_char *) "1", 1, err, 6),
                     AUDEX_UPLOAD_OPTS_UNKNOWN);
    assert_string_equal(err, "unkno");
    assert_int_equal(audex_upload_opts_set(&o, (const u_char *) "bitrate", 7,
                                           (const u_char *) "1", 1, NULL, 0),
                     AUDEX_UPLOAD_OPTS_ERROR);
}


static void
test_query_good(void **state)
{
    char                 err[256];
    audex_upload_opts_t  o;

    assert_int_equal(query(&o, "", err), AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(o.mode, AUDEX_UPLOAD_CBR);
    assert_int_equal(o.bitrate, 192);

    assert_int_equal(query(&o, "bitrate=128", err), AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(o.bitrate, 128);

    assert_int_equal(query(&o, "&&bitrate=320&", err), AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(o.bitrate, 320);

    assert_int_equal(query(&o, "quality=2&filename=My%20Song+%2B%26.mp3", err),
                     AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(o.mode, AUDEX_UPLOAD_VBR);
    assert_int_equal(o.quality, 2);
    assert_string_equal((char *) o.filename, "My Song +&.mp3");

    /* escapes anywhere, in names too, in either case */
    assert_int_equal(query(&o, "bit%72ate=1%32%38&filename=%e2%82%ac=1.mp3",
                           err),
                     AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(o.bitrate, 128);
    assert_string_equal((char *) o.filename, "\xe2\x82\xac=1.mp3");
}


static void
test_query_bad(void **state)
{
    char                 err[256], q[400];
    audex_upload_opts_t  o;

    assert_int_equal(query(&o, "bitrate=128&quality=2", err),
                     AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, BOTH_MSG);

    assert_int_equal(query(&o, "bitrate=100", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, BITRATE_MSG);

    assert_int_equal(query(&o, "bitrate", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, BITRATE_MSG);

    assert_int_equal(query(&o, "quality=10", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, QUALITY_MSG);

    assert_int_equal(query(&o, "bitrate=128&bitrate=128", err),
                     AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "bitrate given more than once");

    /* unknown fields are errors in a query string, the first one named */
    assert_int_equal(query(&o, "bitrate=128&foo=1&bar=2", err),
                     AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "unknown field \"foo\"");

    assert_int_equal(query(&o, "=128", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "unknown field \"\"");

    assert_int_equal(query(&o, "f%00o=1", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "unknown field \"f?o\"");

    assert_int_equal(query(&o, "bitrate=12%3", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "malformed %-escape in the value of bitrate");

    assert_int_equal(query(&o, "filename=ab%4", err),
                     AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "malformed %-escape in the value of filename");

    assert_int_equal(query(&o, "filename=ab%", err),
                     AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "malformed %-escape in the value of filename");

    assert_int_equal(query(&o, "filename=%zz.mp3", err),
                     AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "malformed %-escape in the value of filename");

    assert_int_equal(query(&o, "bit%g1rate=1", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "malformed %-escape in field name "
                        "\"bit%g1rate\"");

    assert_int_equal(query(&o, "filename=%0A.mp3", err),
                     AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, FILENAME_MSG);

    assert_int_equal(query(&o, "filename=%FF", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, FILENAME_MSG);

    assert_int_equal(query(&o, "filename=", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, FILENAME_MSG);

    /* 255 bytes after decoding pass, 256 do not, however long encoded */
    strcpy(q, "filename=");
    memset(q + 9, 'a', 253);
    strcpy(q + 9 + 253, "%C3%A9");
    assert_int_equal(query(&o, q, err), AUDEX_UPLOAD_OPTS_OK);
    assert_int_equal(o.filename_len, 255);

    strcpy(q + 9 + 253, "%C3%A9b");
    assert_int_equal(query(&o, q, err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, FILENAME_MSG);

    memset(q + 9, 'a', 380);
    q[389] = '\0';
    assert_int_equal(query(&o, q, err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, FILENAME_MSG);

    /* a long bitrate is cut when decoded but still refused */
    strcpy(q, "bitrate=128");
    memset(q + 11, '0', 300);
    q[311] = '\0';
    assert_int_equal(query(&o, q, err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, BITRATE_MSG);

    /* a long unknown name */
    memset(q, 'z', 100);
    strcpy(q + 100, "=1");
    assert_int_equal(query(&o, q, err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "unknown field "
                        "\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...\"");

    /* a query string is not a form: "bitrate" must not match a prefix */
    assert_int_equal(query(&o, "bitrate128", err), AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, "unknown field \"bitrate128\"");
}


/* the body a Content-Type announces */

static void
test_body_type(void **state)
{
    size_t  n;

#define BODY(ct) audex_upload_body_type((const u_char *) ct, strlen(ct), &n)

    assert_int_equal(BODY("multipart/form-data; boundary=x"),
                     AUDEX_UPLOAD_BODY_MULTIPART);
    assert_int_equal(n, sizeof("multipart/form-data") - 1);
    assert_int_equal(BODY("Multipart/Mixed"), AUDEX_UPLOAD_BODY_MULTIPART);
    assert_int_equal(BODY("video/mp4"), AUDEX_UPLOAD_BODY_RAW);
    assert_int_equal(BODY("AUDIO/x-wav; rate=8000"), AUDEX_UPLOAD_BODY_RAW);
    assert_int_equal(n, sizeof("AUDIO/x-wav") - 1);
    assert_int_equal(BODY("application/octet-stream"), AUDEX_UPLOAD_BODY_RAW);

    /* a prefix alone, a longer name, anything else */
    assert_int_equal(BODY("video/"), AUDEX_UPLOAD_BODY_OTHER);
    assert_int_equal(BODY("multipart/"), AUDEX_UPLOAD_BODY_OTHER);
    assert_int_equal(BODY("application/octet-streams"),
                     AUDEX_UPLOAD_BODY_OTHER);
    assert_int_equal(BODY("text/plain"), AUDEX_UPLOAD_BODY_OTHER);
    assert_int_equal(BODY(""), AUDEX_UPLOAD_BODY_OTHER);
    assert_int_equal(n, 0);

#undef BODY
}


static void
test_shown(void **state)
{
    char  out[16 + 4];

    audex_upload_shown(out, (const u_char *) "text/\"x\"\r\n", 10, 16);
    assert_string_equal(out, "text/?x???");

    audex_upload_shown(out, (const u_char *) "0123456789abcdefXYZ", 19, 16);
    assert_string_equal(out, "0123456789abcdef...");
}


/* the name cleaned, as a string ("" when nothing is left) */

static const char *
clean(const char *name, size_t len, int latin1)
{
    size_t         n;
    static u_char  out[AUDEX_UPLOAD_FILENAME_MAX + 1];

    n = audex_upload_name_clean(out, (const u_char *) name, len, latin1);
    assert_true(n <= AUDEX_UPLOAD_FILENAME_MAX);
    out[n] = '\0';

    return (const char *) out;
}

#define CLEAN(s, latin1)  clean(s, sizeof(s) - 1, latin1)


static void
test_name_clean(void **state)
{
    char  big[600];

    /* the last path component, of either kind of path */
    assert_string_equal(CLEAN("../../x.mp4", 0), "x.mp4");
    assert_string_equal(CLEAN("C:\\dir\\x.mp4", 0), "x.mp4");
    assert_string_equal(CLEAN("/etc/", 0), "");
    assert_string_equal(CLEAN("a/..", 0), "");
    assert_string_equal(CLEAN(".", 0), "");
    assert_string_equal(CLEAN("..x.mp4", 0), "..x.mp4");

    /* control characters, bytes that are not UTF-8, C1 controls */
    assert_string_equal(CLEAN("a\tb\x7f" "c", 0), "a_b_c");
    assert_string_equal(CLEAN("a\xff" "b\xc3", 0), "a_b_");
    assert_string_equal(CLEAN("a\xc2\x85" "b", 0), "a_b");

    /* a right-to-left override and the other direction controls */
    assert_string_equal(CLEAN("x\xe2\x80\xae" "4pm.mp3", 0), "x_4pm.mp3");
    assert_string_equal(CLEAN("\xe2\x80\x8f" "a\xe2\x81\xa6" "b", 0),
                        "_a_b");

    /* UTF-8 kept; Latin-1 turned into it */
    assert_string_equal(CLEAN("caf\xc3\xa9 \xe6\x97\xa5.mp4", 0),
                        "caf\xc3\xa9 \xe6\x97\xa5.mp4");
    assert_string_equal(CLEAN("caf\xe9.mp4", 1), "caf\xc3\xa9.mp4");

    /* cut at a character boundary */
    memset(big, 'a', sizeof(big));
    assert_int_equal(strlen(clean(big, 300, 0)), AUDEX_UPLOAD_FILENAME_MAX);
    memcpy(big + 253, "\xc3\xa9", 2);
    assert_int_equal(strlen(clean(big, 300, 0)), 255);
    memcpy(big + 254, "\xc3\xa9", 2);
    assert_int_equal(strlen(clean(big, 300, 0)), 254);
}


static void
test_filename_path(void **state)
{
    char                 err[256];
    audex_upload_opts_t  o;

    /* ?filename= follows the same rule as a multipart filename */
    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "filename", "../../x.mp4", err),
                     AUDEX_UPLOAD_OPTS_OK);
    assert_string_equal((char *) o.filename, "x.mp4");
    assert_int_equal(o.filename_len, 5);

    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "filename", "x\xe2\x80\xae" "4pm.mp3", err),
                     AUDEX_UPLOAD_OPTS_OK);
    assert_string_equal((char *) o.filename, "x_4pm.mp3");

    audex_upload_opts_init(&o);
    assert_int_equal(set(&o, "filename", "../..", err),
                     AUDEX_UPLOAD_OPTS_ERROR);
    assert_string_equal(err, FILENAME_MSG);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bitrate),
        cmocka_unit_test(test_bitrate_valid),
        cmocka_unit_test(test_quality),
        cmocka_unit_test(test_exclusive_and_repeats),
        cmocka_unit_test(test_filename),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_query_good),
        cmocka_unit_test(test_query_bad),
        cmocka_unit_test(test_body_type),
        cmocka_unit_test(test_shown),
        cmocka_unit_test(test_name_clean),
        cmocka_unit_test(test_filename_path),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
