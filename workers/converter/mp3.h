/*
 * audex-converter: MP3 frames and the LAME encoder.
 */

#ifndef _AUDEX_MP3_H_INCLUDED_
#define _AUDEX_MP3_H_INCLUDED_


#include <stdint.h>

#include "io.h"


/* the largest Layer III frame: 320 kbit/s at 32 kHz, with padding */
#define AUDEX_MP3_FRAME_MAX  1441


typedef struct audex_mp3_enc_s  audex_mp3_enc_t;


/* a decoded Layer III frame header */
typedef struct {
    int      lsf;           /* 1 for MPEG-2 and MPEG-2.5 */
    int      mpeg25;        /* 1 for MPEG-2.5 */
    int      bitrate;       /* kbit/s */
    int      bitrate_index;
    int      sample_rate;
    int      rate_index;
    int      channels;
    int      size;          /* bytes, header included */
    int      samples;       /* per channel: 1152 or 576 */
    int      side_info;     /* bytes of side information after the header */
} audex_mp3_header_t;


/*
 * The MP3 sample rate a source rate becomes, see mp3.c for the rule;
 * 8000 .. 48000 Hz rates MP3 can carry are kept as they are.
 */
int audex_mp3_rate(int rate);

/* 0 and hdr filled when h is a Layer III header we can copy, else -1 */
int audex_mp3_header_parse(uint32_t h, audex_mp3_header_t *hdr);

/* frame bytes for a bitrate index with the rest of hdr, padding off */
int audex_mp3_frame_size(const audex_mp3_header_t *hdr, int bitrate_index);
int audex_mp3_bitrate(const audex_mp3_header_t *hdr, int bitrate_index);


/*
 * bitrate > 0: CBR at the nearest bitrate MPEG allows at that rate;
 * otherwise VBR at quality (0 .. 9).  info_frame: LAME's first frame is
 * a placeholder for audex_mp3_enc_write_tag().  NULL on failure, err
 * says why.
 */
audex_mp3_enc_t *audex_mp3_enc_create(int rate, int channels, int bitrate,
    int quality, int info_frame, char *err, size_t errlen);

/* right is ignored for mono; returns 0, or -1 after a sink error */
int audex_mp3_enc_encode(audex_mp3_enc_t *enc, const float *left,
    const float *right, int nsamples, audex_sink_t *sink);

/* writes the last frames; 0 or -1 */
int audex_mp3_enc_flush(audex_mp3_enc_t *enc, audex_sink_t *sink);

/*
 * writes the final Xing/LAME frame over its placeholder, the first frame
 * LAME produced, which the caller put at offset; 0 or -1
 */
int audex_mp3_enc_write_tag(audex_mp3_enc_t *enc, audex_sink_t *sink,
    int64_t offset);

/* the CBR bitrate in kbit/s, 0 for VBR */
int audex_mp3_enc_bitrate(audex_mp3_enc_t *enc);

/* samples of encoder delay and of padding (this one after the flush) */
void audex_mp3_enc_delays(audex_mp3_enc_t *enc, int *delay, int *padding);

/* samples per frame and channel: 1152, or 576 for MPEG-2 and 2.5 */
int audex_mp3_enc_frame_samples(audex_mp3_enc_t *enc);

void audex_mp3_enc_free(audex_mp3_enc_t *enc);


/*
 * The copy path, mp3copy.c: MP3 frames from any container are re-framed
 * (packets may split or join frames), stray bytes and old Xing/VBRI
 * frames are dropped, and an Info/Xing frame with frame count, size and
 * seek table is put in front, at tag_offset of the sink.
 */
typedef struct audex_mp3copy_s  audex_mp3copy_t;

typedef struct {
    int       sample_rate;
    int       channels;
    int       bitrate;      /* kbit/s when all frames share it, else 0 */
    uint64_t  frames;
    uint64_t  samples;      /* per channel */
    uint64_t  junk;         /* bytes dropped between frames */
} audex_mp3copy_stats_t;

audex_mp3copy_t *audex_mp3copy_create(audex_sink_t *sink,
    int64_t tag_offset);

/* 0, or -1 after a sink error */
int audex_mp3copy_feed(audex_mp3copy_t *cp, const u_char *data, size_t len);

/* encoder delay and padding as skip samples (decoder delay included) */
void audex_mp3copy_padding(audex_mp3copy_t *cp, int64_t skip_start,
    int64_t discard_end);

/* 0; -1 after a sink error; -2 when no MP3 frame was found at all */
int audex_mp3copy_finish(audex_mp3copy_t *cp, audex_mp3copy_stats_t *st);

void audex_mp3copy_free(audex_mp3copy_t *cp);


/*
 * Segments joined into one stream, mp3join.c.  Each segment is what one
 * LAME encoder (settings as above, no info frame) wrote after it was fed
 * the input's samples from start on (a multiple of frame_samples, and
 * AUDEX_MP3JOIN_PREROLL frames before nominal, the first sample the
 * segment stands for, or 0) to end, which is AUDEX_MP3JOIN_POSTROLL
 * frames past the next segment's nominal; the last segment is fed to the
 * input's end, and its delay and padding are its encoder's.
 */
#define AUDEX_MP3JOIN_PREROLL   24
#define AUDEX_MP3JOIN_POSTROLL  12

typedef struct audex_mp3join_s  audex_mp3join_t;

typedef struct {
    int       delay;        /* LAME's encoder delay, samples */
    int       padding;      /* samples after the end */
    uint64_t  joins;
    uint64_t  tight_joins;  /* no frame near the join fitted as it was */
    uint64_t  raised;       /* frames given a higher bitrate to fit */
} audex_mp3join_stats_t;

/* frames go to sink, the Info/Xing and LAME frame at tag_offset */
audex_mp3join_t *audex_mp3join_create(int rate, int frame_samples,
    audex_sink_t *sink, int64_t tag_offset);

/*
 * The next segment, in order; data is malloc()ed and the joiner frees it,
 * also on failure.  0, or -1: audex_mp3join_error() says why, or when it
 * says nothing, writing to the sink failed.
 */
int audex_mp3join_add(audex_mp3join_t *jn, u_char *data, size_t len,
    int64_t start, int64_t nominal, int64_t end, int last, int delay,
    int padding);

/* after the last segment: checks the length, writes the info frame */
int audex_mp3join_finish(audex_mp3join_t *jn);

const char *audex_mp3join_error(audex_mp3join_t *jn);
void audex_mp3join_stats(audex_mp3join_t *jn, audex_mp3join_stats_t *st);
void audex_mp3join_free(audex_mp3join_t *jn);


/*
 * Segment-parallel encoding, mp3par.c: the input cut into segments of
 * about segment seconds, encoders of them at once, each its own LAME
 * encoder in a thread, joined by mp3join.c.  Samples go in and frames
 * reach the sink on the caller's thread.
 */
typedef struct audex_mp3par_s  audex_mp3par_t;

typedef struct {
    int       rate;
    int       channels;
    int       bitrate;      /* > 0: CBR, else VBR at quality */
    int       quality;
    int       encoders;     /* threads */
    double    segment;      /* seconds */
} audex_mp3par_conf_t;

typedef struct {
    int       bitrate;      /* CBR kbit/s, 0 for VBR */
    int       delay;
    int       padding;
    uint64_t  segments;
    uint64_t  joins;
    uint64_t  tight_joins;
    uint64_t  raised;
} audex_mp3par_stats_t;

audex_mp3par_t *audex_mp3par_create(const audex_mp3par_conf_t *conf,
    audex_sink_t *sink, int64_t tag_offset, char *err, size_t errlen);

/*
 * right is ignored for mono; 0 or -1: then audex_mp3par_error() says why,
 * or when it says nothing, writing to the sink failed
 */
int audex_mp3par_encode(audex_mp3par_t *par, const float *left,
    const float *right, int nsamples);

/* the last segment, the joins, the info frame; 0 or -1 as above */
int audex_mp3par_finish(audex_mp3par_t *par);

const char *audex_mp3par_error(audex_mp3par_t *par);
void audex_mp3par_stats(audex_mp3par_t *par, audex_mp3par_stats_t *st);

/* stops and waits for the encoder threads */
void audex_mp3par_free(audex_mp3par_t *par);


/* CRC-16 as used by the LAME tag (polynomial 0x8005, reflected) */
uint16_t audex_mp3_crc16(uint16_t crc, const u_char *p, size_t len);


#endif /* _AUDEX_MP3_H_INCLUDED_ */
