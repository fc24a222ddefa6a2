/*
 * audex workers: local file source and sink, see io.h.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"


typedef struct {
    audex_source_t   src;
    int              fd;
    int64_t          size;
} audex_file_source_t;


typedef struct {
    audex_sink_t     sink;
    int              fd;
    char            *path;
} audex_file_sink_t;


static ssize_t audex_file_source_read(audex_source_t *src, u_char *buf,
    size_t n);
static int64_t audex_file_source_seek(audex_source_t *src, int64_t offset,
    int whence);
static int64_t audex_file_source_size(audex_source_t *src);
static void audex_file_source_close(audex_source_t *src);
static int audex_file_sink_write(audex_sink_t *sink, const u_char *buf,
    size_t n);
static int audex_file_sink_rewrite(audex_sink_t *sink, int64_t offset,
    const u_char *buf, size_t n);
static int audex_file_sink_finish(audex_sink_t *sink);
static void audex_file_sink_abort(audex_sink_t *sink);
static void audex_file_sink_close(audex_sink_t *sink);


audex_io_status_e
audex_io_status_from_errno(int err)
{
    switch (err) {

    case ENOENT:
    case ENOTDIR:
        return AUDEX_IO_NOT_FOUND;

    case EACCES:
    case EPERM:
    case EISDIR:
    case EINVAL:
    case ELOOP:
    case ENAMETOOLONG:
        return AUDEX_IO_PERMANENT;

    default:
        return AUDEX_IO_TRANSIENT;
    }
}


void
audex_source_fail(audex_source_t *src, audex_io_status_e status,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    vsnprintf(src->error, sizeof(src->error), fmt, args);
    va_end(args);

    src->status = status;
}


void
audex_sink_fail(audex_sink_t *sink, audex_io_status_e status,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    vsnprintf(sink->error, sizeof(sink->error), fmt, args);
    va_end(args);

    sink->status = status;
}


audex_source_t *
audex_file_source_open(const char *path)
{
    int                   fd, err;
    struct stat           st;
    audex_file_source_t  *fs;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return NULL;
    }

    if (fstat(fd, &st) == -1) {
        err = errno;
        close(fd);
        errno = err;
        return NULL;
    }

    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return NULL;
    }

    fs = calloc(1, sizeof(audex_file_source_t));
    if (fs == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }

    /* the demuxer reads front to back and seeks rarely */
    (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

    fs->fd = fd;
    fs->size = st.st_size;
    fs->src.read = audex_file_source_read;
    fs->src.seek = audex_file_source_seek;
    fs->src.size = audex_file_source_size;
    fs->src.close = audex_file_source_close;

    return &fs->src;
}


static ssize_t
audex_file_source_read(audex_source_t *src, u_char *buf, size_t n)
{
    ssize_t               rc;
    audex_file_source_t  *fs = (audex_file_source_t *) src;

    do {
        rc = read(fs->fd, buf, n);
    } while (rc == -1 && errno == EINTR);

    if (rc == -1) {
        audex_source_fail(src, audex_io_status_from_errno(errno),
                          "read: %s", strerror(errno));
        return -1;
    }

    src->bytes_read += rc;

    return rc;
}


static int64_t
audex_file_source_seek(audex_source_t *src, int64_t offset, int whence)
{
    off_t                 pos;
    audex_file_source_t  *fs = (audex_file_source_t *) src;

    if (whence == AUDEX_SEEK_SIZE) {
        return fs->size;
    }

    pos = lseek(fs->fd, offset, whence);
    if (pos == -1) {
        audex_source_fail(src, audex_io_status_from_errno(errno),
                          "seek: %s", strerror(errno));
        return -1;
    }

    return pos;
}


static int64_t
audex_file_source_size(audex_source_t *src)
{
    return ((audex_file_source_t *) src)->size;
}


static void
audex_file_source_close(audex_source_t *src)
{
    audex_file_source_t  *fs = (audex_file_source_t *) src;

    if (fs == NULL) {
        return;
    }

    close(fs->fd);
    free(fs);
}


audex_sink_t *
audex_file_sink_open(const char *path)
{
    int                 fd, err;
    audex_file_sink_t  *fk;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        return NULL;
    }

    fk = calloc(1, sizeof(audex_file_sink_t));
    if (fk == NULL || (fk->path = strdup(path)) == NULL) {
        err = errno;
        free(fk);
        close(fd);
        unlink(path);
        errno = err;
        return NULL;
    }

    fk->fd = fd;
    fk->sink.write = audex_file_sink_write;
    fk->sink.rewrite = audex_file_sink_rewrite;
    fk->sink.finish = audex_file_sink_finish;
    fk->sink.abort = audex_file_sink_abort;
    fk->sink.close = audex_file_sink_close;

    return &fk->sink;
}


static int
audex_file_sink_write(audex_sink_t *sink, const u_char *buf, size_t n)
{
    ssize_t             rc;
    audex_file_sink_t  *fk = (audex_file_sink_t *) sink;

    while (n > 0) {
        rc = write(fk->fd, buf, n);

        if (rc == -1) {
            if (errno == EINTR) {
                continue;
            }

            audex_sink_fail(sink, audex_io_status_from_errno(errno),
                            "write %s: %s", fk->path, strerror(errno));
            return -1;
        }

        buf += rc;
        n -= rc;
        sink->bytes_written += rc;
    }

    return 0;
}


static int
audex_file_sink_rewrite(audex_sink_t *sink, int64_t offset,
    const u_char *buf, size_t n)
{
    ssize_t             rc;
    audex_file_sink_t  *fk = (audex_file_sink_t *) sink;

    if (offset < 0 || offset + (int64_t) n > AUDEX_SINK_REWRITE_MAX
        || offset + (int64_t) n > (int64_t) sink->bytes_written)
    {
        audex_sink_fail(sink, AUDEX_IO_PERMANENT,
                        "rewrite of %zu bytes at %lld is out of range",
                        n, (long long) offset);
        return -1;
    }

    while (n > 0) {
        rc = pwrite(fk->fd, buf, n, offset);

        if (rc == -1) {
            if (errno == EINTR) {
                continue;
            }

            audex_sink_fail(sink, audex_io_status_from_errno(errno),
                            "pwrite %s: %s", fk->path, strerror(errno));
            return -1;
        }

        buf += rc;
        n -= rc;
        offset += rc;
    }

    return 0;
}


static int
audex_file_sink_finish(audex_sink_t *sink)
{
    audex_file_sink_t  *fk = (audex_file_sink_t *) sink;

    /* close(2) is where NFS and full disks report deferred write errors */
    if (close(fk->fd) == -1) {
        fk->fd = -1;
        audex_sink_fail(sink, audex_io_status_from_errno(errno),
                        "close %s: %s", fk->path, strerror(errno));
        return -1;
    }

    fk->fd = -1;

    return 0;
}


static void
audex_file_sink_abort(audex_sink_t *sink)
{
    audex_file_sink_t  *fk = (audex_file_sink_t *) sink;

    if (fk->fd != -1) {
        close(fk->fd);
        fk->fd = -1;
    }

    /* a half-written MP3 looks playable; do not leave one behind */
    unlink(fk->path);
}


static void
audex_file_sink_close(audex_sink_t *sink)
{
    audex_file_sink_t  *fk = (audex_file_sink_t *) sink;

    if (fk == NULL) {
        return;
    }

    if (fk->fd != -1) {
        close(fk->fd);
    }

    free(fk->path);
    free(fk);
}
