/*
 * Conversion options a client sends with an upload, in the query string
 * (?bitrate=128) or as form fields next to the file: checked here once,
 * with messages that name the field, so the module only has to turn a
 * failure into a 400.
 *
 *   bitrate   constant bitrate in kb/s, one of the MPEG-1 layer III rates
 *   quality   variable bitrate, LAME's -V scale: 0 (best) .. 9 (smallest)
 *   filename  the name to give the MP3 (query strings only carry it there)
 *
 * bitrate and quality exclude each other; without either: 192 kb/s CBR.
 */

#ifndef AUDEX_UPLOAD_OPTS_H
#define AUDEX_UPLOAD_OPTS_H

#include <stddef.h>
#include <sys/types.h>

#include "audex_schema.h"


#define AUDEX_UPLOAD_BITRATE_DEFAULT  AUDEX_MP3_BITRATE_DEFAULT
#define AUDEX_UPLOAD_FILENAME_MAX     255

#define AUDEX_UPLOAD_OPTS_OK           0
#define AUDEX_UPLOAD_OPTS_ERROR       -1   /* bad value, repeat, conflict */
#define AUDEX_UPLOAD_OPTS_UNKNOWN     -2   /* no such field */


typedef enum {
    AUDEX_UPLOAD_CBR = 0,
    AUDEX_UPLOAD_VBR
} audex_upload_mode_t;


typedef struct {
    audex_upload_mode_t  mode;
    unsigned             bitrate;      /* kb/s, when CBR */
    unsigned             quality;      /* 0..9, when VBR */
    size_t               filename_len; /* 0: none given */
    u_char               filename[AUDEX_UPLOAD_FILENAME_MAX + 1];
    unsigned             seen;         /* fields already given */
} audex_upload_opts_t;


/* 1 when kbps is one of AUDEX_MP3_BITRATES (the converter asks too) */
int audex_upload_bitrate_valid(long kbps);

/* the defaults: 192 kb/s CBR, no filename */
void audex_upload_opts_init(audex_upload_opts_t *o);

/*
 * One field, value already decoded.  On failure a NUL-terminated message
 * goes to err (when err_len > 0); a message that quotes a client's field
 * name shows only its printable ASCII, cut at 32 bytes.  A form may well
 * carry fields of its own (a submit button): AUDEX_UPLOAD_OPTS_UNKNOWN
 * lets the caller choose to ignore them.  filename must be 1..255 bytes
 * of UTF-8 without control characters; it is stored NUL-terminated, as
 * audex_upload_name_clean() leaves it.
 */
int audex_upload_opts_set(audex_upload_opts_t *o, const u_char *name,
    size_t name_len, const u_char *value, size_t value_len, char *err,
    size_t err_len);

/* What a request's Content-Type says its body is. */
typedef enum {
    AUDEX_UPLOAD_BODY_OTHER = 0,   /* not ours: 415 */
    AUDEX_UPLOAD_BODY_MULTIPART,   /* multipart/...: the boundary decides */
    AUDEX_UPLOAD_BODY_RAW          /* application/octet-stream, video/...,
                                      audio/...: the body is the file */
} audex_upload_body_t;

/*
 * The body a Content-Type value announces; *media_len gets the length of
 * its media type alone (up to the first ';' or space), for messages.
 */
audex_upload_body_t audex_upload_body_type(const u_char *ct, size_t len,
    size_t *media_len);

/*
 * A client's words, shown in a message or a log line: printable ASCII
 * without '"' or '\\' ('?' for anything else), cut at max bytes with
 * "..." when longer.  dst holds max + 4 bytes; it is NUL-terminated.
 */
void audex_upload_shown(char *dst, const u_char *src, size_t len,
    size_t max);

/*
 * A client's name for its file, made fit to store, whichever way it came
 * (a multipart filename, Content-Disposition, ?filename=): its last path
 * component ("C:\\dir\\x.mp4", "../../x.mp4": "x.mp4"; "." and ".."
 * alone are no name), Latin-1 turned into UTF-8 when latin1 is set,
 * control characters, bytes that are not UTF-8 and the invisible
 * direction controls (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069: a
 * right-to-left override shows "x<RLO>4pm.mp3" as "x3pm.mp4") one '_'
 * each, cut at a character boundary to AUDEX_UPLOAD_FILENAME_MAX bytes.
 * dst holds AUDEX_UPLOAD_FILENAME_MAX bytes.  Returns the length written;
 * 0 when nothing is left of the name.
 */
size_t audex_upload_name_clean(u_char *dst, const u_char *name, size_t len,
    int latin1);

/*
 * A URL query string without its '?' (nginx's r->args): fields split on
 * '&', percent-decoded, '+' read as a space.  Unknown fields are errors
 * here.  Returns AUDEX_UPLOAD_OPTS_OK or AUDEX_UPLOAD_OPTS_ERROR.
 */
int audex_upload_opts_parse_query(audex_upload_opts_t *o, const u_char *args,
    size_t len, char *err, size_t err_len);

#endif /* AUDEX_UPLOAD_OPTS_H */
