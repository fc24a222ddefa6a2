/*
 * Signed download links: made and checked by the same rules, bound to
 * the file, its owner and the expiry.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "audex_link.h"


static const unsigned char  key[] = "0123456789abcdef0123456789abcdef-k";
static const char           fid[] = "64b0c0ffee0000000000abcd";
static const char           owner[] = "64b000000000000000000001";


static int
verify(const unsigned char *k, const char *f, const char *o, int64_t exp,
    const char *sig, int64_t now)
{
    return audex_link_verify(k, sizeof(key) - 1, f, strlen(f), o, strlen(o),
                             exp, sig, strlen(sig), now);
}


static void
test_roundtrip(void **state)
{
    char  sig[AUDEX_LINK_SIG_LEN + 1];

    assert_int_equal(audex_link_sign(key, sizeof(key) - 1, fid, 24, owner,
                                     24, 2000000000, sig), 0);
    assert_int_equal(strlen(sig), AUDEX_LINK_SIG_LEN);

    /* the same HMAC computed by Python's hmac and base64 modules */
    assert_string_equal(sig, "xccnwLVQwp_R68DabpH2uADtMhc2nYrtEU4s-eAmAYI");

    assert_int_equal(verify(key, fid, owner, 2000000000, sig, 1999999999), 0);
    assert_int_equal(verify(key, fid, owner, 2000000000, sig, 2000000000), 0);
}


static void
test_expired(void **state)
{
    char  sig[AUDEX_LINK_SIG_LEN + 1];

    audex_link_sign(key, sizeof(key) - 1, fid, 24, owner, 24, 1000, sig);
    assert_int_equal(verify(key, fid, owner, 1000, sig, 1001), -2);
}


static void
test_tampered(void **state)
{
    char                  sig[AUDEX_LINK_SIG_LEN + 1], bad[64];
    static unsigned char  other[] = "0123456789abcdef0123456789abcdef-x";

    audex_link_sign(key, sizeof(key) - 1, fid, 24, owner, 24, 5000, sig);

    /* another file, another owner, a later expiry, another key */
    assert_int_equal(verify(key, "64b0c0ffee0000000000abce", owner, 5000,
                            sig, 1), -1);
    assert_int_equal(verify(key, fid, "64b000000000000000000002", 5000, sig,
                            1), -1);
    assert_int_equal(verify(key, fid, owner, 5001, sig, 1), -1);
    assert_int_equal(verify(other, fid, owner, 5000, sig, 1), -1);

    /* one character changed, one missing, one added */
    strcpy(bad, sig);
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(key, fid, owner, 5000, bad, 1), -1);

    strcpy(bad, sig);
    bad[AUDEX_LINK_SIG_LEN - 1] = '\0';
    assert_int_equal(verify(key, fid, owner, 5000, bad, 1), -1);

    strcpy(bad, sig);
    strcat(bad, "A");
    assert_int_equal(verify(key, fid, owner, 5000, bad, 1), -1);

    assert_int_equal(verify(key, fid, owner, 5000, "", 1), -1);
}


static void
test_field_boundaries(void **state)
{
    char  a[AUDEX_LINK_SIG_LEN + 1], b[AUDEX_LINK_SIG_LEN + 1];

    /* moving bytes between fid and owner must change the signature */
    audex_link_sign(key, sizeof(key) - 1, "ab", 2, "c", 1, 7, a);
    audex_link_sign(key, sizeof(key) - 1, "a", 1, "bc", 2, 7, b);
    assert_string_not_equal(a, b);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_field_boundaries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
