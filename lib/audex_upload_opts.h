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
 * of UTF-8 without control characters; it is stored NUL-terminated.
 */
int audex_upload_opts_set(audex_upload_opts_t *o, const u_char *name,
    size_t name_len, const u_char *value, size_t value_len, char *err,
    size_t err_len);

/*
 * A URL query string without its '?' (nginx's r->args): fields split on
 * '&', percent-decoded, '+' read as a space.  Unknown fields are errors
 * here.  Returns AUDEX_UPLOAD_OPTS_OK or AUDEX_UPLOAD_OPTS_ERROR.
 */
int audex_upload_opts_parse_query(audex_upload_opts_t *o, const u_char *args,
    size_t len, char *err, size_t err_len);

#endif /* AUDEX_UPLOAD_OPTS_H */
