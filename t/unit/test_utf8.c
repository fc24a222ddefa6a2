/*
 * UTF-8: what counts as valid, and the ASCII rendering of a name that a
 * Content-Disposition filename="..." fallback carries.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "audex_utf8.h"


/* the rendering of s, as a string, and whether it was exact */

static const char *
ascii(const char *s, int *exact)
{
    size_t                n;
    static unsigned char  out[256];

    n = audex_utf8_to_ascii(out, (const unsigned char *) s, strlen(s),
                            exact);
    assert_true(n <= strlen(s));
    out[n] = '\0';

    return (const char *) out;
}


static void
test_valid(void **state)
{
    assert_true(audex_utf8_valid((const unsigned char *) "caf\xc3\xa9", 5));
    assert_true(audex_utf8_valid((const unsigned char *) "\xf0\x9f\x8e\xb5",
                                 4));

    /* overlong '/', a surrogate, above U+10FFFF, a cut sequence */
    assert_false(audex_utf8_valid((const unsigned char *) "\xc0\xaf", 2));
    assert_false(audex_utf8_valid((const unsigned char *) "\xed\xa0\x80", 3));
    assert_false(audex_utf8_valid((const unsigned char *) "\xf4\x90\x80\x80",
                                  4));
    assert_false(audex_utf8_valid((const unsigned char *) "\xc3", 1));
}


static void
test_ascii_unchanged(void **state)
{
    int  exact;

    assert_string_equal(ascii("Lecture 3 - part (a).mp4", &exact),
                        "Lecture 3 - part (a).mp4");
    assert_int_equal(exact, 1);
}


static void
test_ascii_accents(void **state)
{
    int  exact;

    /* "Vidéo d'été" and two CJK characters: one '_' each, not per byte */
    assert_string_equal(ascii("Vid\xc3\xa9o d'\xc3\xa9t\xc3\xa9 "
                              "\xe6\x97\xa5\xe6\x9c\xac.mp3", &exact),
                        "Video d'ete __.mp3");
    assert_int_equal(exact, 0);

    assert_string_equal(ascii("Stra\xc3\x9f" "e", &exact), "Strasse");
    assert_string_equal(ascii("\xc3\x86sop \xc3\x98ster", &exact),
                        "AEsop Oster");
    assert_string_equal(ascii("\xc5\x81\xc3\xb3" "d\xc5\xba", &exact),
                        "Lodz");
    assert_string_equal(ascii("\xc5\x92uvre \xc5\xa0koda", &exact),
                        "OEuvre Skoda");
}


static void
test_ascii_punctuation(void **state)
{
    int  exact;

    /* typographic quotes, a dash, the ellipsis, a no-break space */
    assert_string_equal(ascii("\xe2\x80\x9cHi\xe2\x80\x9d \xe2\x80\x93 "
                              "it\xe2\x80\x99s\xe2\x80\xa6\xc2\xa0x",
                              &exact),
                        "'Hi' - it's... x");
    assert_int_equal(exact, 0);
}


static void
test_ascii_unsafe(void **state)
{
    int  exact;

    /* what cannot stand in a quoted-string, and what is not UTF-8 */
    assert_string_equal(ascii("a\"b\\c\x01" "d\x7f" "e", &exact),
                        "a_b_c_d_e");
    assert_int_equal(exact, 0);

    assert_string_equal(ascii("bad\xff\xc3(", &exact), "bad__(");
    assert_int_equal(exact, 0);

    /* a right-to-left override is one '_' */
    assert_string_equal(ascii("x\xe2\x80\xae" "4pm.mp3", &exact),
                        "x_4pm.mp3");
}


/* no code point renders longer than its UTF-8 or into an unsafe byte */

static void
test_ascii_bounds(void **state)
{
    int            exact;
    size_t         n, len, i;
    uint32_t       cp;
    unsigned char  in[4], out[8];

    for (cp = 0x80; cp <= 0x10ffff; cp++) {
        if (cp >= 0xd800 && cp <= 0xdfff) {
            continue;
        }

        if (cp < 0x800) {
            in[0] = 0xc0 | (cp >> 6);
            in[1] = 0x80 | (cp & 0x3f);
            len = 2;
        } else if (cp < 0x10000) {
            in[0] = 0xe0 | (cp >> 12);
            in[1] = 0x80 | ((cp >> 6) & 0x3f);
            in[2] = 0x80 | (cp & 0x3f);
            len = 3;
        } else {
            in[0] = 0xf0 | (cp >> 18);
            in[1] = 0x80 | ((cp >> 12) & 0x3f);
            in[2] = 0x80 | ((cp >> 6) & 0x3f);
            in[3] = 0x80 | (cp & 0x3f);
            len = 4;
        }

        n = audex_utf8_to_ascii(out, in, len, &exact);
        assert_true(n >= 1 && n <= len);
        assert_int_equal(exact, 0);

        for (i = 0; i < n; i++) {
            assert_true(out[i] >= 0x20 && out[i] < 0x7f);
            assert_true(out[i] != '"' && out[i] != '\\');
        }
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_ascii_unchanged),
        cmocka_unit_test(test_ascii_accents),
        cmocka_unit_test(test_ascii_punctuation),
        cmocka_unit_test(test_ascii_unsafe),
        cmocka_unit_test(test_ascii_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
