/*
 * Redis URLs: redis://[[user]:password@]host[:port][/db]
 *             unix:///path/to/socket[?db=N]
 *
 * Shared by the nginx module and the workers; no allocation: the
 * result points into the caller's string.
 */

#ifndef AUDEX_REDIS_URL_H
#define AUDEX_REDIS_URL_H

#include <stddef.h>


typedef struct {
    const char  *host;          /* not NUL-terminated: host_len */
    size_t       host_len;
    const char  *path;          /* unix socket path, or NULL */
    size_t       path_len;
    const char  *user;
    size_t       user_len;
    const char  *password;      /* NULL when absent */
    size_t       password_len;
    int          port;
    int          db;
} audex_redis_url_t;


/* 0 on success; -1 with *err set to a static message. */
int audex_redis_url_parse(const char *url, size_t len, audex_redis_url_t *u,
    const char **err);

#endif /* AUDEX_REDIS_URL_H */
