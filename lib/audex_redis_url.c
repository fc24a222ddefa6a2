#include <string.h>

#include "audex_redis_url.h"


static int
audex_parse_uint(const char *p, size_t n, int max, int *out)
{
    int  v;

    if (n == 0 || n > 9) {
        return -1;
    }

    for (v = 0; n; n--, p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        v = v * 10 + (*p - '0');
    }

    if (v > max) {
        return -1;
    }

    *out = v;
    return 0;
}


static int
audex_redis_url_unix(const char *p, const char *end, audex_redis_url_t *u,
    const char **err)
{
    const char  *q;

    q = memchr(p, '?', end - p);

    u->path = p;
    u->path_len = (q ? q : end) - p;

    if (u->path_len == 0 || *p != '/') {
        *err = "unix socket path must be absolute";
        return -1;
    }

    if (q == NULL) {
        return 0;
    }

    q++;

    if ((size_t) (end - q) < 3 || memcmp(q, "db=", 3) != 0
        || audex_parse_uint(q + 3, end - q - 3, 65535, &u->db) != 0)
    {
        *err = "only ?db=N may follow a unix socket path";
        return -1;
    }

    return 0;
}


int
audex_redis_url_parse(const char *url, size_t len, audex_redis_url_t *u,
    const char **err)
{
    const char  *p, *s, *end, *at, *colon, *slash, *host_end;

    memset(u, 0, sizeof(audex_redis_url_t));
    u->port = 6379;

    end = url + len;

    if (len > 7 && memcmp(url, "unix://", 7) == 0) {
        return audex_redis_url_unix(url + 7, end, u, err);
    }

    if (len > 8 && memcmp(url, "rediss://", 9) == 0) {
        *err = "TLS (rediss://) is not supported";
        return -1;
    }

    if (len < 8 || memcmp(url, "redis://", 8) != 0) {
        *err = "URL must start with redis:// or unix://";
        return -1;
    }

    p = url + 8;

    slash = memchr(p, '/', end - p);
    host_end = slash ? slash : end;

    /* the password may contain '@': the last one ends the userinfo */
    at = NULL;
    for (s = p; s < host_end; s++) {
        if (*s == '@') {
            at = s;
        }
    }

    if (at) {
        colon = memchr(p, ':', at - p);
        if (colon == NULL) {
            *err = "credentials must be user:password or :password";
            return -1;
        }
        u->user = p;
        u->user_len = colon - p;
        u->password = colon + 1;
        u->password_len = at - colon - 1;
        p = at + 1;
    }

    if (p < host_end && *p == '[') {
        const char  *rb = memchr(p, ']', host_end - p);

        if (rb == NULL) {
            *err = "unterminated IPv6 address";
            return -1;
        }
        u->host = p + 1;
        u->host_len = rb - p - 1;
        p = rb + 1;
        colon = (p < host_end && *p == ':') ? p : NULL;
        if (p < host_end && colon == NULL) {
            *err = "garbage after IPv6 address";
            return -1;
        }

    } else {
        colon = memchr(p, ':', host_end - p);
        u->host = p;
        u->host_len = (colon ? colon : host_end) - p;
    }

    if (u->host_len == 0) {
        *err = "host is missing";
        return -1;
    }

    if (colon
        && audex_parse_uint(colon + 1, host_end - colon - 1, 65535, &u->port)
           != 0)
    {
        *err = "port must be a number from 1 to 65535";
        return -1;
    }

    if (u->port == 0) {
        *err = "port must be a number from 1 to 65535";
        return -1;
    }

    if (slash && slash + 1 < end
        && audex_parse_uint(slash + 1, end - slash - 1, 65535, &u->db) != 0)
    {
        *err = "database must be a number";
        return -1;
    }

    return 0;
}
