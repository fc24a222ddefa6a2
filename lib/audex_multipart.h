/*
 * Streaming multipart/form-data parser (RFC 7578, RFC 2046 section 5.1).
 *
 * Built for an nginx request body filter: audex_multipart_execute() takes
 * whatever the client has sent so far and may stop at any byte, even in
 * the middle of a boundary or a header.  Part data is handed to the sink
 * as slices of the caller's buffers; the parser only keeps the headers of
 * the current part (at most AUDEX_MULTIPART_HEADER_MAX bytes) and never
 * copies part data, whatever the size of a part.
 *
 * No allocation after creation and no global state: memory comes either
 * from audex_multipart_create() (one call of the given allocator) or from
 * the caller, sized with audex_multipart_size() and set up with
 * audex_multipart_init(), which suits an nginx pool.
 */

#ifndef AUDEX_MULTIPART_H
#define AUDEX_MULTIPART_H

#include <stddef.h>
#include <sys/types.h>


#define AUDEX_MULTIPART_BOUNDARY_MAX  70      /* RFC 2046 */
#define AUDEX_MULTIPART_HEADER_MAX    8192    /* all headers of one part */


typedef enum {
    AUDEX_MULTIPART_OK = 0,                   /* all input used, want more */
    AUDEX_MULTIPART_DONE = 1,                 /* final boundary seen */
    AUDEX_MULTIPART_ERR_CONTENT_TYPE = -1,    /* not multipart/form-data */
    AUDEX_MULTIPART_ERR_BOUNDARY = -2,        /* boundary missing or invalid */
    AUDEX_MULTIPART_ERR_DELIMITER = -3,       /* junk after "--boundary" */
    AUDEX_MULTIPART_ERR_HEADER_TOO_LONG = -4,
    AUDEX_MULTIPART_ERR_MALFORMED_HEADER = -5,
    AUDEX_MULTIPART_ERR_NO_DISPOSITION = -6,  /* no Content-Disposition */
    AUDEX_MULTIPART_ERR_TRUNCATED = -7,       /* body ended before the end */
    AUDEX_MULTIPART_ERR_ABORTED = -8          /* a sink callback said stop */
} audex_multipart_rc_t;


/*
 * What part_begin() learns about a part.  The strings point into the
 * parser and stay valid only during the callback; each is NUL-terminated
 * and holds no control byte but HT (quoted-strings may carry tabs).
 * filename is NULL when the part is not a file (an empty filename="" gives
 * "" with length 0); a valid filename*=UTF-8''... wins over filename.
 * Browsers send filename in UTF-8, old clients in Latin-1: filename_utf8
 * says which, since BSON and JSON take only the former.  content_type is
 * NULL when the part has no Content-Type header.
 */
typedef struct {
    const u_char  *name;
    size_t         name_len;
    const u_char  *filename;
    size_t         filename_len;
    const u_char  *content_type;
    size_t         content_type_len;
    int            filename_utf8;
} audex_multipart_part_t;


/*
 * Callbacks return 0 to go on; anything else makes execute() return
 * AUDEX_MULTIPART_ERR_ABORTED, now and on every later call.  A NULL
 * callback is skipped.  data() may be called several times per part, and
 * its bytes point either into the buffer given to execute() or, for the
 * few bytes held back as a possible boundary, into the parser itself.
 */
typedef struct {
    int   (*part_begin)(void *ctx, const audex_multipart_part_t *part);
    int   (*data)(void *ctx, const u_char *p, size_t len);
    int   (*part_end)(void *ctx);
} audex_multipart_sink_t;


typedef struct audex_multipart_s  audex_multipart_t;


/*
 * Find and check the boundary in a Content-Type value such as
 * multipart/form-data; boundary="----x".  On AUDEX_MULTIPART_OK,
 * *boundary points into content_type (quotes excluded).  Otherwise
 * AUDEX_MULTIPART_ERR_CONTENT_TYPE (another media type: a 415) or
 * AUDEX_MULTIPART_ERR_BOUNDARY (missing, repeated, not 1..70 RFC 2046
 * characters, or unparsable parameters: a 400).
 */
audex_multipart_rc_t audex_multipart_boundary(const u_char *content_type,
    size_t len, const u_char **boundary, size_t *boundary_len);

/* bytes of memory audex_multipart_init() needs for this boundary */
size_t audex_multipart_size(size_t boundary_len);

/*
 * Set up a parser in mem (size bytes, aligned for any type).  The
 * boundary and the sink are copied.  NULL if size is too small or the
 * boundary is invalid.
 */
audex_multipart_t *audex_multipart_init(void *mem, size_t size,
    const u_char *boundary, size_t boundary_len,
    const audex_multipart_sink_t *sink, void *ctx);

/* one call of alloc (malloc when NULL); release with the matching free() */
audex_multipart_t *audex_multipart_create(void *(*alloc)(size_t),
    const u_char *boundary, size_t boundary_len,
    const audex_multipart_sink_t *sink, void *ctx);

/*
 * Feed [start, end).  Returns AUDEX_MULTIPART_OK when more input is
 * wanted, AUDEX_MULTIPART_DONE once the final boundary has been seen (the
 * epilogue is ignored) or an error, which sticks.
 */
audex_multipart_rc_t audex_multipart_execute(audex_multipart_t *mp,
    const u_char *start, const u_char *end);

/* the body has ended: AUDEX_MULTIPART_DONE or an error (ERR_TRUNCATED) */
audex_multipart_rc_t audex_multipart_finish(audex_multipart_t *mp);

const char *audex_multipart_strerror(audex_multipart_rc_t rc);

/*
 * A raw body's Content-Disposition header ("attachment; filename*=UTF-8''
 * x.mp4"), read by the rules of a part's header (quoting, RFC 5987
 * filename*): part is called once with what it names, unless the value
 * has no parameters.  mem holds audex_multipart_disposition_header_size(len)
 * bytes, aligned for any type.  AUDEX_MULTIPART_OK, or the error of a
 * value that does not parse (or too long: AUDEX_MULTIPART_HEADER_MAX).
 */
size_t audex_multipart_disposition_header_size(size_t len);
audex_multipart_rc_t audex_multipart_disposition_header(void *mem, size_t size,
    const u_char *value, size_t len,
    int (*part)(void *ctx, const audex_multipart_part_t *part), void *ctx);

#endif /* AUDEX_MULTIPART_H */
