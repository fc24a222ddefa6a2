/*
 * audex-converter: the conversion engine.
 *
 * audex_convert() reads any container FFmpeg can demux from a source,
 * picks the best audio stream and writes an MP3 to a sink:
 *
 *   ID3v2 tag | Xing/Info + LAME frame | MP3 frames
 *
 * Audio that is already MP3 is copied frame by frame unless a bitrate or
 * a quality was asked for; anything else is decoded, resampled to a rate
 * MP3 can carry (see audex_mp3_rate()), downmixed to stereo when it has
 * more than two channels, and encoded with LAME.
 */

#ifndef _AUDEX_CONVERT_H_INCLUDED_
#define _AUDEX_CONVERT_H_INCLUDED_


#include <stdint.h>

#include "io.h"


#define AUDEX_CONVERT_DEFAULT_BITRATE  192
#define AUDEX_CONVERT_DEFAULT_SEGMENT  60.0
#define AUDEX_CONVERT_DEFAULT_PARALLEL_MIN  600


/*
 * Every failure is one of these.  The permanent ones will fail the same
 * way on every retry; see audex_convert_status_permanent().
 */
typedef enum {
    AUDEX_CONVERT_OK = 0,
    AUDEX_CONVERT_NOT_FOUND,        /* the input does not exist */
    AUDEX_CONVERT_NO_AUDIO,         /* no audio stream in the input */
    AUDEX_CONVERT_UNSUPPORTED,      /* an audio codec nobody can decode */
    AUDEX_CONVERT_CORRUPT,          /* not media, damaged or truncated */
    AUDEX_CONVERT_IO,               /* reading or writing failed */
    AUDEX_CONVERT_INTERNAL,         /* out of memory, library failure */
    AUDEX_CONVERT_CANCELLED,        /* the caller asked to stop */
    AUDEX_CONVERT_TOO_LONG,         /* longer than opts->max_duration */
    AUDEX_CONVERT_QUOTA             /* opts->admit refused the duration */
} audex_convert_status_e;


typedef struct {
    audex_convert_status_e   status;
    char                     message[320];
} audex_convert_error_t;


typedef struct {
    /* kbit/s for CBR; 0 means "not given" */
    int                      bitrate;
    /* LAME VBR quality 0 (best) .. 9; -1 means "not given" */
    int                      quality;

    /* ID3v2 title, UTF-8; NULL for none */
    const char              *title;
    /* the input's name: a hint for the demuxer and for messages */
    const char              *name;

    /*
     * called after each packet with the fraction done, 0.0 .. 1.0;
     * returning nonzero cancels the conversion (AUDEX_CONVERT_CANCELLED)
     */
    int                    (*progress)(void *data, double done);
    void                    *progress_data;

    /*
     * seconds of input accepted, 0 for any: a longer input fails with
     * AUDEX_CONVERT_TOO_LONG after probing, before anything is written,
     * or, when the container states no length or lies, as soon as the
     * audio read passes the limit
     */
    double                   max_duration;

    /*
     * called once after probing, before anything is written, with the
     * input's length in seconds (0 when the container states none) and
     * progress_data: 0 admits, 1 refuses (AUDEX_CONVERT_QUOTA), -1 is a
     * passing failure (AUDEX_CONVERT_IO); msg says why.  NULL: admitted.
     */
    int                    (*admit)(void *data, double duration, char *msg,
                               size_t len);

    /*
     * Segment-parallel encoding (mp3par.c): an input whose container says
     * it lasts at least parallel_min seconds is encoded by this many LAME
     * encoders at once, in segments of about segment seconds (0: 60).
     * 0 or 1 encoders: one encoder, as for MP3 copies and short inputs.
     */
    int                      encoders;
    double                   parallel_min;
    double                   segment;
} audex_convert_opts_t;


typedef struct {
    int                      copied;        /* MP3 frames copied as is */
    int                      sample_rate;
    int                      channels;
    int                      bitrate;       /* kbit/s; 0 for VBR */
    int                      quality;       /* VBR quality or -1 */
    double                   duration;      /* seconds of audio written */
    uint64_t                 bytes_in;
    uint64_t                 bytes_out;
    char                     codec[32];     /* the source audio codec */
    int                      encoders;      /* 1, or segment-parallel */
    uint64_t                 segments;
    uint64_t                 raised;        /* frames raised at joins */

    /* audex_convert_range(): samples encoded, LAME's delay and padding */
    int64_t                  samples;
    int                      delay;
    int                      padding;
} audex_convert_result_t;


/*
 * Segment jobs (segments.c) cut a long input into segments that
 * converters anywhere encode: audex_convert_probe() says whether an input
 * can be cut so, audex_convert_range() encodes one segment.  Positions
 * are samples of the output, which for such an input are the input's.
 */
typedef struct {
    double                   duration;      /* stated, seconds; 0: none */
    int                      rate;          /* the output's */
    int                      channels;      /* the output's */
    int                      copied;        /* would be copied, not encoded */
    /* the rate is kept and the timestamps count samples exactly */
    int                      segmentable;
    char                     codec[32];
} audex_convert_probe_t;

typedef struct {
    int64_t                  start;         /* a frame boundary */
    int64_t                  end;           /* -1: the input's end */
} audex_convert_range_t;


/*
 * Converts src into sink.  On success the sink is finished; on failure it
 * is aborted and err says why.  The caller closes both.  Returns 0 or -1.
 */
int audex_convert(audex_source_t *src, audex_sink_t *sink,
    const audex_convert_opts_t *opts, audex_convert_result_t *res,
    audex_convert_error_t *err);

/* opens and probes src without decoding; 0, or -1 and err */
int audex_convert_probe(audex_source_t *src,
    const audex_convert_opts_t *opts, audex_convert_probe_t *info,
    audex_convert_error_t *err);

/*
 * Encodes samples range->start .. range->end of src with one LAME encoder
 * and no info frame, into sink: the frames mp3join.c joins.  Seeks to a
 * little before the start.  res->samples, delay and padding say what was
 * encoded.  0 or -1, as audex_convert().
 */
int audex_convert_range(audex_source_t *src, audex_sink_t *sink,
    const audex_convert_opts_t *opts, const audex_convert_range_t *range,
    audex_convert_result_t *res, audex_convert_error_t *err);

/* the cores this process may run on: the default number of encoders */
int audex_convert_cores(void);

/* one-time library setup (FFmpeg log routing); call before threads start */
void audex_convert_init(void);

/* "no_audio", "corrupt", ...: stable names for job documents and metrics */
const char *audex_convert_status_name(audex_convert_status_e status);

/* 1 when a retry cannot help */
int audex_convert_status_permanent(audex_convert_status_e status);


#endif /* _AUDEX_CONVERT_H_INCLUDED_ */
