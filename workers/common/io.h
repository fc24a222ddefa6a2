/*
 * audex workers: byte sources and sinks.
 *
 * The converter reads its input and writes its output through these two
 * small interfaces so that the same code runs on local files (the
 * "convert" command, tests, benchmarks) and on GridFS (the job loop).
 *
 * A source must support random access: MP4 files with the index ("moov")
 * at the end are demuxed by seeking, and the input is never copied to
 * memory or to a temporary file.
 *
 * A sink is written front to back, plus one exception: at the very end
 * the converter rewrites a few bytes near the start (the Xing/LAME info
 * frame, which needs the final frame count and encoder delay).  Only the
 * first AUDEX_SINK_REWRITE_MAX bytes may be rewritten, which lets a sink
 * that cannot seek keep just that much in memory until it finishes.
 */

#ifndef _AUDEX_IO_H_INCLUDED_
#define _AUDEX_IO_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


/* the same value as FFmpeg's AVSEEK_SIZE, checked where both are visible */
#define AUDEX_SEEK_SIZE         0x10000

/* one GridFS chunk: 255 KiB */
#define AUDEX_SINK_REWRITE_MAX  (255 * 1024)


/*
 * Why an operation failed: the converter turns these into job results.
 * Only AUDEX_IO_TRANSIENT is worth a retry.
 */
typedef enum {
    AUDEX_IO_OK = 0,
    AUDEX_IO_NOT_FOUND,         /* the file or GridFS object does not exist */
    AUDEX_IO_PERMANENT,         /* e.g. permission denied, bad GridFS data */
    AUDEX_IO_TRANSIENT          /* disk or database I/O, worth a retry */
} audex_io_status_e;


typedef struct audex_source_s  audex_source_t;
typedef struct audex_sink_s    audex_sink_t;


struct audex_source_s {
    /* returns bytes read, 0 at end of input, -1 on error (sets status) */
    ssize_t           (*read)(audex_source_t *src, u_char *buf, size_t n);

    /*
     * whence is SEEK_SET, SEEK_CUR, SEEK_END or AUDEX_SEEK_SIZE; returns
     * the new position (the size for AUDEX_SEEK_SIZE) or -1
     */
    int64_t           (*seek)(audex_source_t *src, int64_t offset,
                              int whence);

    /* total size in bytes, or -1 when unknown */
    int64_t           (*size)(audex_source_t *src);

    void              (*close)(audex_source_t *src);

    audex_io_status_e   status;
    char                error[160];

    /* bytes handed to the reader, for metrics and progress */
    uint64_t            bytes_read;

    /*
     * set by the reader: where it will most likely stop reading (a
     * segment's last packet), so that a read-ahead fetches nothing past
     * it; reads past it still work.  0: the end of the input
     */
    int64_t             read_end;
};


struct audex_sink_s {
    /* append; returns 0 or -1 (sets status) */
    int               (*write)(audex_sink_t *sink, const u_char *buf,
                               size_t n);

    /*
     * overwrite bytes already written; offset + n must not exceed
     * AUDEX_SINK_REWRITE_MAX; returns 0 or -1
     */
    int               (*rewrite)(audex_sink_t *sink, int64_t offset,
                                 const u_char *buf, size_t n);

    /* make the output visible (flush, finish the upload); 0 or -1 */
    int               (*finish)(audex_sink_t *sink);

    /* drop a partial output; safe after a failed finish */
    void              (*abort)(audex_sink_t *sink);

    /* release the sink; after finish or abort */
    void              (*close)(audex_sink_t *sink);

    audex_io_status_e   status;
    char                error[160];

    uint64_t            bytes_written;
};


/* local files, io_file.c; NULL with errno set on failure */
audex_source_t *audex_file_source_open(const char *path);
audex_sink_t *audex_file_sink_open(const char *path);

/*
 * A sink into a growing buffer (io_mem.c), in a struct of the caller's:
 * a segment's frames before they are joined or stored.  take() hands
 * the bytes over (the caller frees them); close() frees what was not
 * taken.
 */
typedef struct {
    audex_sink_t     sink;
    u_char          *data;
    size_t           len;
    size_t           size;
} audex_mem_sink_t;

void audex_mem_sink_init(audex_mem_sink_t *m);
u_char *audex_mem_sink_take(audex_mem_sink_t *m, size_t *len);


/* record why an operation failed, for implementations */
void audex_source_fail(audex_source_t *src, audex_io_status_e status,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void audex_sink_fail(audex_sink_t *sink, audex_io_status_e status,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* errno -> status: ENOENT is NOT_FOUND, EACCES and kin PERMANENT */
audex_io_status_e audex_io_status_from_errno(int err);


#endif /* _AUDEX_IO_H_INCLUDED_ */
