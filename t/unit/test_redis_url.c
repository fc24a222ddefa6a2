/*
 * audex_redis_url_parse: every form the directive and the workers take,
 * and the errors a user sees at nginx -t.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "audex_redis_url.h"


static int
parse(const char *url, audex_redis_url_t *u, const char **err)
{
    *err = NULL;
    return audex_redis_url_parse(url, strlen(url), u, err);
}


static void
assert_part(const char *p, size_t n, const char *want)
{
    if (want == NULL) {
        assert_null(p);
        return;
    }

    assert_non_null(p);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}


static void
test_host_port_db(void **state)
{
    audex_redis_url_t  u;
    const char        *err;

    assert_int_equal(parse("redis://10.0.0.5:6380/3", &u, &err), 0);
    assert_part(u.host, u.host_len, "10.0.0.5");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_null(u.password);
    assert_null(u.path);
}


static void
test_defaults(void **state)
{
    audex_redis_url_t  u;
    const char        *err;

    assert_int_equal(parse("redis://cache", &u, &err), 0);
    assert_part(u.host, u.host_len, "cache");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);

    assert_int_equal(parse("redis://cache/", &u, &err), 0);
    assert_int_equal(u.db, 0);
}


static void
test_credentials(void **state)
{
    audex_redis_url_t  u;
    const char        *err;

    assert_int_equal(parse("redis://:s3cret@h:1/2", &u, &err), 0);
    assert_int_equal(u.user_len, 0);
    assert_part(u.password, u.password_len, "s3cret");
    assert_part(u.host, u.host_len, "h");

    /* the last '@' ends the userinfo: passwords may contain '@' */
    assert_int_equal(parse("redis://bob:p@ss@h", &u, &err), 0);
    assert_part(u.user, u.user_len, "bob");
    assert_part(u.password, u.password_len, "p@ss");
    assert_part(u.host, u.host_len, "h");

    assert_int_equal(parse("redis://bob@h", &u, &err), -1);
    assert_string_equal(err, "credentials must be user:password or :password");
}


static void
test_ipv6(void **state)
{
    audex_redis_url_t  u;
    const char        *err;

    assert_int_equal(parse("redis://[::1]:7000/1", &u, &err), 0);
    assert_part(u.host, u.host_len, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 1);

    assert_int_equal(parse("redis://[::1", &u, &err), -1);
    assert_string_equal(err, "unterminated IPv6 address");
}


static void
test_unix(void **state)
{
    audex_redis_url_t  u;
    const char        *err;

    assert_int_equal(parse("unix:///run/redis.sock", &u, &err), 0);
    assert_part(u.path, u.path_len, "/run/redis.sock");
    assert_null(u.host);
    assert_int_equal(u.db, 0);

    assert_int_equal(parse("unix:///run/redis.sock?db=5", &u, &err), 0);
    assert_part(u.path, u.path_len, "/run/redis.sock");
    assert_int_equal(u.db, 5);

    assert_int_equal(parse("unix://run/redis.sock", &u, &err), -1);
    assert_string_equal(err, "unix socket path must be absolute");

    assert_int_equal(parse("unix:///r.sock?timeout=1", &u, &err), -1);
    assert_string_equal(err, "only ?db=N may follow a unix socket path");
}


static void
test_errors(void **state)
{
    audex_redis_url_t  u;
    const char        *err;

    assert_int_equal(parse("http://h", &u, &err), -1);
    assert_string_equal(err, "URL must start with redis:// or unix://");

    assert_int_equal(parse("rediss://h", &u, &err), -1);
    assert_string_equal(err, "TLS (rediss://) is not supported");

    assert_int_equal(parse("redis://", &u, &err), -1);
    assert_string_equal(err, "host is missing");

    assert_int_equal(parse("redis://h:0", &u, &err), -1);
    assert_string_equal(err, "port must be a number from 1 to 65535");

    assert_int_equal(parse("redis://h:65536", &u, &err), -1);
    assert_string_equal(err, "port must be a number from 1 to 65535");

    assert_int_equal(parse("redis://h:x1", &u, &err), -1);
    assert_int_equal(parse("redis://h:", &u, &err), -1);

    assert_int_equal(parse("redis://h/db1", &u, &err), -1);
    assert_string_equal(err, "database must be a number");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_host_port_db),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
