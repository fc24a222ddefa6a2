/*
 * audex_json_escape: what goes between the quotes of a JSON string.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "audex_json.h"


static void
check(const char *in, size_t n, const char *want)
{
    unsigned char  buf[256], *end;
    size_t         len;

    len = audex_json_escape_len((const unsigned char *) in, n);
    assert_int_equal(len, strlen(want));

    memset(buf, 0xee, sizeof(buf));
    end = audex_json_escape(buf, (const unsigned char *) in, n);

    assert_int_equal((size_t) (end - buf), len);
    assert_memory_equal(buf, want, len);
    assert_int_equal(buf[len], 0xee);   /* nothing written past the end */
}


static void
test_plain(void **state)
{
    check("", 0, "");
    check("hello world", 11, "hello world");
}


static void
test_specials(void **state)
{
    check("a\"b", 3, "a\\\"b");
    check("c:\\x", 4, "c:\\\\x");
    check("l1\nl2\r\t", 7, "l1\\nl2\\r\\t");
    check("\b\f", 2, "\\b\\f");
}


static void
test_controls(void **state)
{
    check("\x01\x1f\x7f", 3, "\\u0001\\u001f\\u007f");
    check("a\0b", 3, "a\\u0000b");
}


static void
test_utf8_kept(void **state)
{
    check("caf\xc3\xa9.mp4", 9, "caf\xc3\xa9.mp4");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_specials),
        cmocka_unit_test(test_controls),
        cmocka_unit_test(test_utf8_kept),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
