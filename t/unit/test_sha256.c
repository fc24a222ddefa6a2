#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "audex_sha256.h"


/* OpenSSL's digest of the same bytes: the reference */
static void
reference(const uint8_t *p, size_t len, uint8_t out[32])
{
    unsigned int  n;

    assert_int_equal(EVP_Digest(p, len, out, &n, EVP_sha256(), NULL), 1);
    assert_int_equal(n, 32);
}


static void
hex(const uint8_t *d, char *out)
{
    int  i;

    for (i = 0; i < 32; i++) {
        sprintf(out + 2 * i, "%02x", d[i]);
    }
}


/* FIPS 180-4's examples (the NIST CSRC SHA-256 examples) */
static void
test_vectors(void **state)
{
    size_t          i;
    char            got[65];
    uint8_t         d[32];
    audex_sha256_t  s;
    static const struct {
        const char  *in;
        const char  *out;
    } v[] = {
        { "",
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "abc",
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
    };

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        audex_sha256_init(&s);
        audex_sha256_update(&s, v[i].in, strlen(v[i].in));
        audex_sha256_final(&s, d);
        hex(d, got);
        assert_string_equal(got, v[i].out);
    }
}


/* every length around the padding's edges, in pieces of every size */
static void
test_lengths_and_pieces(void **state)
{
    size_t          len, piece, off, n;
    uint8_t         buf[300], d[32], want[32];
    audex_sha256_t  s;

    for (len = 0; len < sizeof(buf); len++) {
        buf[len] = (uint8_t) (len * 7 + 3);
    }

    for (len = 0; len <= sizeof(buf); len++) {
        reference(buf, len, want);

        for (piece = 1; piece <= 130; piece += 3) {
            audex_sha256_init(&s);

            for (off = 0; off < len; off += n) {
                n = (len - off < piece) ? len - off : piece;
                audex_sha256_update(&s, buf + off, n);
            }

            audex_sha256_final(&s, d);
            assert_memory_equal(d, want, 32);
        }
    }
}


/*
 * A state saved after some whole blocks and loaded into a fresh one (as
 * a PATCH on another nginx loads it) goes on to the same digest.
 */
static void
test_save_load(void **state)
{
    size_t          len, cut, i;
    uint8_t        *buf, d[32], want[32], saved[AUDEX_SHA256_STATE_LEN];
    audex_sha256_t  s, t;

    len = 3 * 261120 + 1234;
    buf = malloc(len);
    assert_non_null(buf);

    srand(7);
    for (i = 0; i < len; i++) {
        buf[i] = (uint8_t) rand();
    }

    reference(buf, len, want);

    for (cut = 0; cut <= len; cut += 261120) {
        audex_sha256_init(&s);
        audex_sha256_update(&s, buf, cut);
        assert_int_equal(audex_sha256_save(&s, saved), 0);

        memset(&t, 0xee, sizeof(t));
        assert_int_equal(audex_sha256_load(&t, saved), 0);
        audex_sha256_update(&t, buf + cut, len - cut);
        audex_sha256_final(&t, d);
        assert_memory_equal(d, want, 32);
    }

    free(buf);
}


static void
test_save_refused_mid_block(void **state)
{
    uint8_t         saved[AUDEX_SHA256_STATE_LEN];
    audex_sha256_t  s;

    audex_sha256_init(&s);
    audex_sha256_update(&s, "x", 1);
    assert_int_equal(audex_sha256_save(&s, saved), -1);

    audex_sha256_update(&s, saved, 63);
    assert_int_equal(audex_sha256_save(&s, saved), 0);

    /* a count that is not a whole number of blocks is no state */
    saved[39] ^= 1;
    assert_int_equal(audex_sha256_load(&s, saved), -1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_lengths_and_pieces),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_save_refused_mid_block),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
