/*
 * audex workers: secret files, see secret.h.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "secret.h"


int
audex_secret_read(const char *path, u_char *buf, size_t *len, size_t min,
    char *err, size_t errlen)
{
    int      fd;
    size_t   n;
    ssize_t  r;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "cannot open \"%s\": %s", path,
                 strerror(errno));
        return -1;
    }

    n = 0;

    while (n < AUDEX_SECRET_MAX) {
        r = read(fd, buf + n, AUDEX_SECRET_MAX - n);

        if (r < 0 && errno == EINTR) {
            continue;
        }

        if (r < 0) {
            snprintf(err, errlen, "cannot read \"%s\": %s", path,
                     strerror(errno));
            close(fd);
            explicit_bzero(buf, AUDEX_SECRET_MAX);
            return -1;
        }

        if (r == 0) {
            break;
        }

        n += r;
    }

    close(fd);

    /* a trailing newline from echo or an editor is not part of it */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    if (n < min || n >= AUDEX_SECRET_MAX) {
        snprintf(err, errlen, "\"%s\" must hold %d to %d bytes", path,
                 (int) min, AUDEX_SECRET_MAX - 1);
        explicit_bzero(buf, AUDEX_SECRET_MAX);
        return -1;
    }

    *len = n;

    return 0;
}
