/*
 * audex_password: argon2id hashes, their encoding, and the dummy verify.
 *
 * Most tests use small costs to stay quick; the defaults are checked
 * once.  That the dummy verify really does the work is shown by the peak
 * memory of a child process that runs it (argon2 touches all m_cost KiB),
 * which, unlike a timing, does not depend on how loaded the machine is.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audex_password.h"


static const audex_password_params_t  small = { 1, 256, 1 };


static void
test_hash_verify(void **state)
{
    char  enc[AUDEX_PASSWORD_ENCODED_MAX];

    assert_int_equal(audex_password_hash(&small, "correct horse", 13, enc,
                                         sizeof(enc)), AUDEX_PASSWORD_OK);

    assert_int_equal(audex_password_verify(enc, "correct horse", 13),
                     AUDEX_PASSWORD_OK);
    assert_int_equal(audex_password_verify(enc, "correct horsf", 13),
                     AUDEX_PASSWORD_MISMATCH);
    assert_int_equal(audex_password_verify(enc, "correct hors", 12),
                     AUDEX_PASSWORD_MISMATCH);
    assert_int_equal(audex_password_verify(enc, "", 0),
                     AUDEX_PASSWORD_MISMATCH);

    /* the length is the caller's, so a NUL is just another byte */
    assert_int_equal(audex_password_hash(&small, "a\0b", 3, enc, sizeof(enc)),
                     AUDEX_PASSWORD_OK);
    assert_int_equal(audex_password_verify(enc, "a\0b", 3),
                     AUDEX_PASSWORD_OK);
    assert_int_equal(audex_password_verify(enc, "a\0c", 3),
                     AUDEX_PASSWORD_MISMATCH);
    assert_int_equal(audex_password_verify(enc, "a", 1),
                     AUDEX_PASSWORD_MISMATCH);
}


static void
test_encoding(void **state)
{
    char                     enc[AUDEX_PASSWORD_ENCODED_MAX], *salt, *hash;
    audex_password_params_t  p = { 2, 1024, 2 };

    assert_int_equal(audex_password_hash(&p, "pw", 2, enc, sizeof(enc)),
                     AUDEX_PASSWORD_OK);

    /* the parameters travel with the hash */
    assert_memory_equal(enc, "$argon2id$v=19$m=1024,t=2,p=2$", 30);

    /* 16 bytes of salt and 32 of hash, in unpadded base64 */
    salt = enc + 30;
    hash = strchr(salt, '$');
    assert_non_null(hash);
    assert_int_equal(hash - salt, 22);
    assert_int_equal(strlen(hash + 1), 43);

    assert_int_equal(audex_password_verify(enc, "pw", 2), AUDEX_PASSWORD_OK);
}


static void
test_defaults(void **state)
{
    char                     enc[AUDEX_PASSWORD_ENCODED_MAX];
    audex_password_params_t  p;

    audex_password_params_default(&p);
    assert_int_equal(p.t_cost, 3);
    assert_int_equal(p.m_cost_kib, 65536);
    assert_int_equal(p.parallelism, 1);

    assert_int_equal(audex_password_hash(NULL, "s3cret!", 7, enc,
                                         sizeof(enc)), AUDEX_PASSWORD_OK);
    assert_memory_equal(enc, "$argon2id$v=19$m=65536,t=3,p=1$", 31);
    assert_int_equal(audex_password_verify(enc, "s3cret!", 7),
                     AUDEX_PASSWORD_OK);
}


static void
test_salt_is_random(void **state)
{
    char  a[AUDEX_PASSWORD_ENCODED_MAX], b[AUDEX_PASSWORD_ENCODED_MAX];

    assert_int_equal(audex_password_hash(&small, "same", 4, a, sizeof(a)),
                     AUDEX_PASSWORD_OK);
    assert_int_equal(audex_password_hash(&small, "same", 4, b, sizeof(b)),
                     AUDEX_PASSWORD_OK);

    assert_string_not_equal(a, b);
    assert_memory_not_equal(a + 29, b + 29, 22);

    assert_int_equal(audex_password_verify(a, "same", 4), AUDEX_PASSWORD_OK);
    assert_int_equal(audex_password_verify(b, "same", 4), AUDEX_PASSWORD_OK);
}


static void
test_invalid_input(void **state)
{
    char                     enc[AUDEX_PASSWORD_ENCODED_MAX], *big;
    audex_password_params_t  p;

    assert_int_equal(audex_password_hash(&small, "", 0, enc, sizeof(enc)),
                     AUDEX_PASSWORD_INVALID);
    assert_int_equal(audex_password_hash(&small, NULL, 3, enc, sizeof(enc)),
                     AUDEX_PASSWORD_INVALID);

    big = malloc(AUDEX_PASSWORD_MAX_LEN + 1);
    assert_non_null(big);
    memset(big, 'x', AUDEX_PASSWORD_MAX_LEN + 1);

    assert_int_equal(audex_password_hash(&small, big, AUDEX_PASSWORD_MAX_LEN,
                                         enc, sizeof(enc)),
                     AUDEX_PASSWORD_OK);
    assert_int_equal(audex_password_verify(enc, big, AUDEX_PASSWORD_MAX_LEN),
                     AUDEX_PASSWORD_OK);
    assert_int_equal(audex_password_hash(&small, big,
                                         AUDEX_PASSWORD_MAX_LEN + 1, enc,
                                         sizeof(enc)),
                     AUDEX_PASSWORD_INVALID);
    assert_int_equal(audex_password_verify(enc, big,
                                           AUDEX_PASSWORD_MAX_LEN + 1),
                     AUDEX_PASSWORD_INVALID);
    free(big);

    /* a buffer too small for the encoding */
    assert_int_equal(audex_password_hash(&small, "pw", 2, enc, 40),
                     AUDEX_PASSWORD_INVALID);

    p = small;
    p.t_cost = 0;
    assert_int_equal(audex_password_hash(&p, "pw", 2, enc, sizeof(enc)),
                     AUDEX_PASSWORD_INVALID);

    p = small;
    p.m_cost_kib = AUDEX_PASSWORD_MAX_M_KIB + 1;
    assert_int_equal(audex_password_hash(&p, "pw", 2, enc, sizeof(enc)),
                     AUDEX_PASSWORD_INVALID);

    p = small;
    p.parallelism = 0;
    assert_int_equal(audex_password_hash(&p, "pw", 2, enc, sizeof(enc)),
                     AUDEX_PASSWORD_INVALID);

    /* argon2 needs 8 KiB per lane */
    p = small;
    p.parallelism = 4;
    p.m_cost_kib = 16;
    assert_int_equal(audex_password_hash(&p, "pw", 2, enc, sizeof(enc)),
                     AUDEX_PASSWORD_INVALID);
}


static void
test_bad_hash(void **state)
{
    size_t  i;
    char    enc[AUDEX_PASSWORD_ENCODED_MAX], buf[256];

    static const char  *bad[] = {
        "",
        "plaintext",
        "$argon2id$",
        "$argon2id$v=19$m=256,t=1,p=1$",
        "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$",
        /* argon2i and argon2d are not what we store */
        "$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA"
        "$4ZkNEgfOo1Nk3Sm+pBNS6tNm5a52pXdSwAd1I+DdEMc",
        /* version 1.0 */
        "$argon2id$v=16$m=256,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA"
        "$4ZkNEgfOo1Nk3Sm+pBNS6tNm5a52pXdSwAd1I+DdEMc",
        /* 4 TiB of memory, or a cost overflowing 32 bits: never tried */
        "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA"
        "$4ZkNEgfOo1Nk3Sm+pBNS6tNm5a52pXdSwAd1I+DdEMc",
        "$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA"
        "$4ZkNEgfOo1Nk3Sm+pBNS6tNm5a52pXdSwAd1I+DdEMc",
        "$argon2id$v=19$m=256,t=1000,p=1$c2FsdHNhbHRzYWx0c2FsdA"
        "$4ZkNEgfOo1Nk3Sm+pBNS6tNm5a52pXdSwAd1I+DdEMc",
        "$argon2id$v=19$m=256,t=1,p=64$c2FsdHNhbHRzYWx0c2FsdA"
        "$4ZkNEgfOo1Nk3Sm+pBNS6tNm5a52pXdSwAd1I+DdEMc",
        "$argon2id$v=19$t=1,m=256,p=1$c2FsdHNhbHRzYWx0c2FsdA"
        "$4ZkNEgfOo1Nk3Sm+pBNS6tNm5a52pXdSwAd1I+DdEMc",
        "$argon2id$v=19$m=,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA"
        "$4ZkNEgfOo1Nk3Sm+pBNS6tNm5a52pXdSwAd1I+DdEMc",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (audex_password_verify(bad[i], "pw", 2) != AUDEX_PASSWORD_BAD_HASH)
        {
            print_error("accepted as a hash: %s\n", bad[i]);
            fail();
        }
    }

    assert_int_equal(audex_password_verify(NULL, "pw", 2),
                     AUDEX_PASSWORD_BAD_HASH);

    /* a real hash, cut short or with a damaged salt */
    assert_int_equal(audex_password_hash(&small, "pw", 2, enc, sizeof(enc)),
                     AUDEX_PASSWORD_OK);

    snprintf(buf, sizeof(buf), "%s", enc);
    buf[strlen(buf) - 10] = '\0';
    assert_int_equal(audex_password_verify(buf, "pw", 2),
                     AUDEX_PASSWORD_BAD_HASH);

    snprintf(buf, sizeof(buf), "%s", enc);
    buf[30] = '*';
    assert_int_equal(audex_password_verify(buf, "pw", 2),
                     AUDEX_PASSWORD_BAD_HASH);

    assert_string_equal(audex_password_strerror(AUDEX_PASSWORD_MISMATCH),
                        "password mismatch");
    assert_string_equal(audex_password_strerror(99), "unknown error");
}


typedef enum {
    CHILD_NOTHING,
    CHILD_DUMMY_DEFAULT,
    CHILD_DUMMY_SMALL,
    CHILD_VERIFY_DEFAULT
} child_work_e;


/* the peak resident size, in KiB, of a child that did one thing */
static long
child_peak_kib(child_work_e work, const char *encoded)
{
    int            status;
    pid_t          pid;
    struct rusage  ru;

    audex_password_params_t  p = { 1, 8192, 1 };

    pid = fork();
    assert_true(pid >= 0);

    if (pid == 0) {
        switch (work) {
        case CHILD_DUMMY_DEFAULT:
            audex_password_dummy_verify(NULL, "guess", 5);
            break;
        case CHILD_DUMMY_SMALL:
            audex_password_dummy_verify(&p, "guess", 5);
            break;
        case CHILD_VERIFY_DEFAULT:
            _exit(audex_password_verify(encoded, "guess", 5)
                  == AUDEX_PASSWORD_MISMATCH ? 0 : 1);
        default:
            break;
        }

        _exit(0);
    }

    assert_int_equal(wait4(pid, &status, 0, &ru), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    return ru.ru_maxrss;
}


static void
test_dummy_verify(void **state)
{
    long  nothing, dummy, dummy_small, real;
    char  enc[AUDEX_PASSWORD_ENCODED_MAX];

    assert_int_equal(audex_password_hash(NULL, "the real one", 12, enc,
                                         sizeof(enc)), AUDEX_PASSWORD_OK);

    nothing = child_peak_kib(CHILD_NOTHING, NULL);
    dummy = child_peak_kib(CHILD_DUMMY_DEFAULT, NULL);
    dummy_small = child_peak_kib(CHILD_DUMMY_SMALL, NULL);
    real = child_peak_kib(CHILD_VERIFY_DEFAULT, enc);

    print_message("peak KiB: nothing %ld, dummy %ld, dummy(8 MiB) %ld, "
                  "verify %ld\n", nothing, dummy, dummy_small, real);

    /*
     * A real verify fills its 64 MiB; so does the dummy one, and the
     * dummy follows the parameters it is given.  Measured above what a
     * child that does nothing holds, which is large under ASan.
     */
    assert_true(real - nothing >= 60000);
    assert_true(dummy - nothing >= 60000);
    assert_true(dummy_small - nothing >= 6000);
    assert_true(dummy_small - nothing < 32768);

    /* junk in, no crash: a NULL or oversized password is still work */
    audex_password_dummy_verify(&small, NULL, 0);
    audex_password_dummy_verify(&small, "x", AUDEX_PASSWORD_MAX_LEN + 1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_hash_verify),
        cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_salt_is_random),
        cmocka_unit_test(test_invalid_input),
        cmocka_unit_test(test_bad_hash),
        cmocka_unit_test(test_dummy_verify),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
