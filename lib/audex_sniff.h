/*
 * Container sniffing: tell from the first bytes of an upload whether it is
 * a media format the converter can read, before any of it is stored.
 *
 * Most formats are decided from fixed magic in the first 16 bytes.  Those
 * without real magic are checked harder: MPEG-TS wants its sync byte at
 * three 188-byte strides, MP3 and ADTS AAC want a second valid frame
 * header where the first header says it is.
 */

#ifndef AUDEX_SNIFF_H
#define AUDEX_SNIFF_H

#include <stddef.h>
#include <sys/types.h>


/*
 * audex_sniff() answers AUDEX_SNIFF_NEED_MORE, unless eof is set, while
 * it has fewer than AUDEX_SNIFF_MIN bytes, and after that only when a
 * format needs a further look; it never does with AUDEX_SNIFF_MAX bytes.
 */
#define AUDEX_SNIFF_MIN  64
#define AUDEX_SNIFF_MAX  2048


typedef enum {
    AUDEX_SNIFF_NEED_MORE = -1,
    AUDEX_SNIFF_UNKNOWN = 0,
    AUDEX_SNIFF_MP4,          /* ISO BMFF: ftyp with an ISO/MP4 brand */
    AUDEX_SNIFF_MOV,          /* QuickTime: ftyp "qt  " or a bare atom */
    AUDEX_SNIFF_3GP,          /* ftyp 3gp* / 3g2* */
    AUDEX_SNIFF_MATROSKA,     /* EBML, DocType matroska or unknown */
    AUDEX_SNIFF_WEBM,         /* EBML, DocType webm */
    AUDEX_SNIFF_AVI,
    AUDEX_SNIFF_WAV,
    AUDEX_SNIFF_FLV,
    AUDEX_SNIFF_MPEGTS,       /* also 192-byte M2TS packets */
    AUDEX_SNIFF_MPEGPS,
    AUDEX_SNIFF_OGG,
    AUDEX_SNIFF_MP3,          /* ID3v2 tag or MPEG audio frames */
    AUDEX_SNIFF_FLAC,
    AUDEX_SNIFF_AAC,          /* ADTS frames or ADIF */
    AUDEX_SNIFF_ASF           /* ASF, WMV, WMA */
} audex_sniff_type_t;


/*
 * Classify p[0 .. n).  Set eof when those are all the bytes there will
 * ever be: the answer is then never AUDEX_SNIFF_NEED_MORE.
 */
audex_sniff_type_t audex_sniff(const u_char *p, size_t n, int eof);

/* "mp4", "matroska", "mpegts", ... (FFmpeg's format names), "unknown" */
const char *audex_sniff_name(audex_sniff_type_t type);

/* a MIME type to store with the upload, "application/octet-stream" if none */
const char *audex_sniff_mime(audex_sniff_type_t type);

#endif /* AUDEX_SNIFF_H */
