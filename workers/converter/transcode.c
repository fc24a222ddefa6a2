/*
 * audex-converter: the conversion engine, see convert.h.
 *
 * One step function per stage, each returning 0 or -1 with the error
 * classified in ctx->err:
 *
 *   open_input -> find_stream -> write_id3 -> (copy | decode) -> finish
 *
 * Decoding is the send/receive loop; the resampler and the LAME encoder
 * are set up from the first decoded frame, because only then are the
 * real rate and channel layout known.  Nothing is kept per packet or per
 * frame, so memory does not grow with the length of the input.
 */

#define _GNU_SOURCE     /* sched_getaffinity() */
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/intreadwrite.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#include "convert.h"
#include "id3.h"
#include "log.h"
#include "mp3.h"


#define AUDEX_AVIO_BUFFER      65536

/* FFmpeg messages logged per conversion before the rest are dropped */
#define AUDEX_AV_LOG_MAX       20

/* a damaged packet here and there is tolerated; this many is not */
#define AUDEX_BAD_PACKETS_MAX  100


#if AUDEX_SEEK_SIZE != AVSEEK_SIZE
#error "AUDEX_SEEK_SIZE must equal AVSEEK_SIZE"
#endif


typedef struct {
    audex_source_t               *src;
    audex_sink_t                 *sink;
    const audex_convert_opts_t   *opts;
    audex_convert_result_t       *res;
    audex_convert_error_t        *err;

    AVIOContext                  *avio;
    AVFormatContext              *fmt;
    AVStream                     *st;
    AVCodecContext               *dec;
    SwrContext                   *swr;
    AVPacket                     *pkt;
    AVFrame                      *frame;

    /* the input format the resampler was set up for */
    AVChannelLayout               swr_layout;
    int                           swr_rate;
    int                           swr_format;

    int                           out_rate;
    int                           out_channels;
    uint8_t                      *pcm[2];
    int                           pcm_size;

    audex_mp3_enc_t              *enc;
    audex_mp3par_t               *par;      /* instead of enc */
    audex_mp3copy_t              *copy;
    int64_t                       tag_offset;

    /* audex_convert_range(): the next output sample's position */
    const audex_convert_range_t  *range;
    int64_t                       range_pos;
    int                           range_done;

    int                           packets;
    int                           bad_packets;
    int                           short_packets;
    int64_t                       in_samples;
    int64_t                       out_samples;
    double                        expected;
    double                        progress_span;
} audex_transcode_t;


static int audex_transcode_seek(audex_transcode_t *ctx);
static void audex_transcode_range_end(audex_transcode_t *ctx);
static int64_t audex_transcode_origin(audex_transcode_t *ctx);
static int64_t audex_transcode_sample_ts(audex_transcode_t *ctx,
    int64_t sample);
static int audex_transcode_range_start(audex_transcode_t *ctx,
    AVFrame *frame);
static int audex_transcode_range_encode(audex_transcode_t *ctx, int n);
static int audex_transcode_start(audex_transcode_t *ctx, audex_source_t *src,
    audex_sink_t *sink, const audex_convert_opts_t *opts,
    audex_convert_result_t *res, audex_convert_error_t *err);
static int audex_transcode_end(audex_transcode_t *ctx, int rc);
static int audex_transcode_open_input(audex_transcode_t *ctx);
static int audex_transcode_find_stream(audex_transcode_t *ctx);
static int audex_transcode_admit(audex_transcode_t *ctx);
static int audex_transcode_within_limit(audex_transcode_t *ctx,
    AVPacket *pkt);
static char *audex_transcode_clock(double secs, char *buf, size_t len);
static int audex_transcode_write_id3(audex_transcode_t *ctx);
static int audex_transcode_open_decoder(audex_transcode_t *ctx);
static int audex_transcode_read(audex_transcode_t *ctx);
static int audex_transcode_decode(audex_transcode_t *ctx, AVPacket *pkt);
static int audex_transcode_frame(audex_transcode_t *ctx, AVFrame *frame);
static int audex_transcode_open_output(audex_transcode_t *ctx,
    AVFrame *frame);
static int audex_transcode_open_parallel(audex_transcode_t *ctx,
    int bitrate, int quality);
static void audex_transcode_parallel_stats(audex_transcode_t *ctx);
static int audex_transcode_setup_swr(audex_transcode_t *ctx, AVFrame *frame);
static int audex_transcode_convert(audex_transcode_t *ctx,
    const uint8_t **in, int nb);
static int audex_transcode_flush(audex_transcode_t *ctx);
static int audex_transcode_copy(audex_transcode_t *ctx, AVPacket *pkt);
static int audex_transcode_copy_finish(audex_transcode_t *ctx);
static int audex_transcode_check_length(audex_transcode_t *ctx);
static int audex_transcode_progress(audex_transcode_t *ctx, AVPacket *pkt);
static void audex_transcode_cleanup(audex_transcode_t *ctx);
static int audex_transcode_encode_failed(audex_transcode_t *ctx);
static int audex_transcode_io_failed(audex_transcode_t *ctx,
    const char *what);
static int audex_transcode_fail(audex_transcode_t *ctx,
    audex_convert_status_e status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int audex_avio_read(void *opaque, uint8_t *buf, int size);
static int64_t audex_avio_seek(void *opaque, int64_t offset, int whence);
static int audex_avio_refuse(AVFormatContext *s, AVIOContext **pb,
    const char *url, int flags, AVDictionary **options);
static void audex_av_log(void *avcl, int level, const char *fmt,
    va_list args);
static const char *audex_av_err(int rc, char *buf, size_t len);


static __thread int  audex_av_log_count;
static __thread int  audex_av_log_prefix = 1;


static const char  *audex_convert_status_names[] = {
    "ok",
    "not_found",
    "no_audio",
    "unsupported_codec",
    "corrupt",
    "io",
    "internal",
    "cancelled",
    "too_long",
    "daily_limit"
};


int
audex_convert_cores(void)
{
    long       n;
    cpu_set_t  set;

    if (sched_getaffinity(0, sizeof(cpu_set_t), &set) == 0) {
        n = CPU_COUNT(&set);

    } else {
        n = sysconf(_SC_NPROCESSORS_ONLN);
    }

    if (n < 1) {
        return 1;
    }

    return (n > 64) ? 64 : (int) n;
}


void
audex_convert_init(void)
{
    av_log_set_level(AV_LOG_WARNING);
    av_log_set_callback(audex_av_log);
}


const char *
audex_convert_status_name(audex_convert_status_e status)
{
    if ((size_t) status >= sizeof(audex_convert_status_names)
                           / sizeof(audex_convert_status_names[0]))
    {
        return "internal";
    }

    return audex_convert_status_names[status];
}


int
audex_convert_status_permanent(audex_convert_status_e status)
{
    switch (status) {

    case AUDEX_CONVERT_NOT_FOUND:
    case AUDEX_CONVERT_NO_AUDIO:
    case AUDEX_CONVERT_UNSUPPORTED:
    case AUDEX_CONVERT_CORRUPT:
    case AUDEX_CONVERT_TOO_LONG:
    case AUDEX_CONVERT_QUOTA:
        return 1;

    default:
        return 0;
    }
}


int
audex_convert(audex_source_t *src, audex_sink_t *sink,
    const audex_convert_opts_t *opts, audex_convert_result_t *res,
    audex_convert_error_t *err)
{
    int                rc;
    audex_transcode_t  ctx;

    rc = audex_transcode_start(&ctx, src, sink, opts, res, err);

    if (rc == 0) {
        rc = audex_transcode_admit(&ctx);
    }

    if (rc == 0) {
        rc = audex_transcode_write_id3(&ctx);
    }

    if (rc == 0 && !res->copied) {
        rc = audex_transcode_open_decoder(&ctx);
    }

    if (rc == 0) {
        rc = audex_transcode_read(&ctx);
    }

    if (rc == 0) {
        rc = res->copied ? audex_transcode_copy_finish(&ctx)
                         : audex_transcode_flush(&ctx);
    }

    if (rc == 0) {
        rc = audex_transcode_check_length(&ctx);
    }

    return audex_transcode_end(&ctx, rc);
}


int
audex_convert_probe(audex_source_t *src, const audex_convert_opts_t *opts,
    audex_convert_probe_t *info, audex_convert_error_t *err)
{
    int                       rc;
    AVRational                tb;
    audex_transcode_t         ctx;
    audex_convert_result_t    res;
    const AVCodecParameters  *par;

    memset(info, 0, sizeof(audex_convert_probe_t));

    rc = audex_transcode_start(&ctx, src, NULL, opts, &res, err);

    if (rc == 0) {
        par = ctx.st->codecpar;
        tb = ctx.st->time_base;

        info->duration = ctx.expected > 0 ? ctx.expected : 0;
        info->rate = audex_mp3_rate(par->sample_rate);
        info->channels = (par->ch_layout.nb_channels == 1) ? 1 : 2;
        info->copied = res.copied;
        snprintf(info->codec, sizeof(info->codec), "%s", res.codec);

        /* a timestamp names a sample when the time base divides it */
        info->segmentable = (info->rate == par->sample_rate && tb.num == 1
                             && tb.den % par->sample_rate == 0);
    }

    audex_transcode_cleanup(&ctx);

    return rc;
}


int
audex_convert_range(audex_source_t *src, audex_sink_t *sink,
    const audex_convert_opts_t *opts, const audex_convert_range_t *range,
    audex_convert_result_t *res, audex_convert_error_t *err)
{
    int                rc;
    audex_transcode_t  ctx;

    rc = audex_transcode_start(&ctx, src, sink, opts, res, err);

    ctx.range = range;
    ctx.range_pos = -1;

    /* a segment is always encoded: it is cut from an encoded whole */
    res->copied = 0;

    if (rc == 0) {
        rc = audex_transcode_open_decoder(&ctx);
    }

    if (rc == 0) {
        audex_transcode_range_end(&ctx);
        rc = audex_transcode_seek(&ctx);
    }

    if (rc == 0) {
        rc = audex_transcode_read(&ctx);
    }

    if (rc == 0) {
        rc = audex_transcode_flush(&ctx);
    }

    return audex_transcode_end(&ctx, rc);
}


/* the context, the input opened and its audio stream chosen: 0 or -1 */

static int
audex_transcode_start(audex_transcode_t *ctx, audex_source_t *src,
    audex_sink_t *sink, const audex_convert_opts_t *opts,
    audex_convert_result_t *res, audex_convert_error_t *err)
{
    int  rc;

    memset(ctx, 0, sizeof(audex_transcode_t));
    memset(res, 0, sizeof(audex_convert_result_t));
    memset(err, 0, sizeof(audex_convert_error_t));

    ctx->src = src;
    ctx->sink = sink;
    ctx->opts = opts;
    ctx->res = res;
    ctx->err = err;
    ctx->expected = -1;
    res->quality = -1;

    audex_av_log_count = 0;

    rc = audex_transcode_open_input(ctx);
    if (rc == 0) {
        rc = audex_transcode_find_stream(ctx);
    }

    return rc;
}


/* the output finished (rc 0) or dropped, the counts, the context freed */

static int
audex_transcode_end(audex_transcode_t *ctx, int rc)
{
    if (rc == 0 && ctx->sink->finish(ctx->sink) != 0) {
        rc = audex_transcode_io_failed(ctx, "finishing the output");
    }

    ctx->res->bytes_in = ctx->src->bytes_read;
    ctx->res->bytes_out = ctx->sink->bytes_written;

    if (rc != 0) {
        ctx->sink->abort(ctx->sink);
    }

    audex_transcode_cleanup(ctx);

    return rc;
}


/*
 * To two seconds before the segment: the decoder's own pre-roll (AAC's
 * overlap, an MP3 decoder's reservoir) is over well before the segment.
 * Where the demuxer cannot seek, the input is read from its start.
 */

static int
audex_transcode_seek(audex_transcode_t *ctx)
{
    int64_t  target;

    target = ctx->range->start - 2 * (int64_t) ctx->st->codecpar->sample_rate;

    if (target <= 0) {
        return 0;
    }

    if (av_seek_frame(ctx->fmt, ctx->st->index,
                      audex_transcode_sample_ts(ctx, target),
                      AVSEEK_FLAG_BACKWARD)
        < 0)
    {
        audex_log(AUDEX_LOG_INFO, NULL, "cannot seek in the input: reading "
                  "it from the start");
        return 0;
    }

    avcodec_flush_buffers(ctx->dec);

    return 0;
}


/*
 * Where the range's packets end in the input, from the demuxer's index
 * (an MP4's sample table, a Matroska file's cues): the source's
 * read-ahead goes no further, so a segment fetches no GridFS chunk past
 * its own: the end of the packet holding the range's end and of the
 * one after it, in case the decoder wants one more.  Where entries have
 * no size (Matroska's cues, an MP3's table of contents) that is where
 * the next indexed point starts, which a coarse index may put before
 * the last packet: the read-ahead then stops early, reads go on.  No
 * index, no bound.
 */

static void
audex_transcode_range_end(audex_transcode_t *ctx)
{
    int                  i, last;
    int64_t              end;
    const AVIndexEntry  *ie;

    if (ctx->range->end < 0 || avformat_index_get_entries_count(ctx->st) == 0)
    {
        return;
    }

    i = av_index_search_timestamp(ctx->st,
                                  audex_transcode_sample_ts(ctx,
                                                            ctx->range->end),
                                  AVSEEK_FLAG_ANY | AVSEEK_FLAG_BACKWARD);
    if (i < 0) {
        return;
    }

    end = 0;

    for (last = i + 1; i <= last; i++) {
        ie = avformat_index_get_entry(ctx->st, i);
        if (ie == NULL) {
            /* the range reaches the index's end: the file's */
            return;
        }

        if (ie->pos + ie->size > end) {
            end = ie->pos + ie->size;
        }
    }

    ctx->src->read_end = end;
}


/* the stream's first timestamp: sample 0 of a range */

static int64_t
audex_transcode_origin(audex_transcode_t *ctx)
{
    return (ctx->st->start_time != AV_NOPTS_VALUE) ? ctx->st->start_time : 0;
}


/* the stream timestamp of a sample counted from the origin */

static int64_t
audex_transcode_sample_ts(audex_transcode_t *ctx, int64_t sample)
{
    return audex_transcode_origin(ctx)
           + av_rescale_q(sample,
                          (AVRational) { 1, ctx->st->codecpar->sample_rate },
                          ctx->st->time_base);
}


/* where the first frame decoded for a range is, from its timestamp */

static int
audex_transcode_range_start(audex_transcode_t *ctx, AVFrame *frame)
{
    int64_t     pts, origin, pos;
    AVRational  tb, rate;

    pts = frame->best_effort_timestamp;
    if (pts == AV_NOPTS_VALUE) {
        pts = frame->pts;
    }

    if (pts == AV_NOPTS_VALUE) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                    "a segment needs timestamps");
    }

    origin = audex_transcode_origin(ctx);
    tb = ctx->st->time_base;
    rate = (AVRational) { 1, frame->sample_rate };
    pos = av_rescale_q(pts - origin, tb, rate);

    if (av_rescale_q(pos, rate, tb) != pts - origin
        || frame->sample_rate != ctx->out_rate)
    {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                   "timestamps of the input do not count samples");
    }

    if (pos > ctx->range->start) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                   "the input starts decoding at sample %lld, after the "
                   "segment's %lld", (long long) pos,
                   (long long) ctx->range->start);
    }

    ctx->range_pos = pos;

    return 0;
}


static int
audex_transcode_open_input(audex_transcode_t *ctx)
{
    int       rc;
    char      e[AV_ERROR_MAX_STRING_SIZE];
    uint8_t  *buf;

    buf = av_malloc(AUDEX_AVIO_BUFFER);
    if (buf == NULL) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                    "out of memory");
    }

    ctx->avio = avio_alloc_context(buf, AUDEX_AVIO_BUFFER, 0, ctx->src,
                                   audex_avio_read, NULL, audex_avio_seek);
    if (ctx->avio == NULL) {
        av_free(buf);
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                    "out of memory");
    }

    ctx->fmt = avformat_alloc_context();
    if (ctx->fmt == NULL) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                    "out of memory");
    }

    ctx->fmt->pb = ctx->avio;

    /*
     * the input is untrusted: playlists (HLS, DASH, concat) and MP4
     * external data references would otherwise open other files or URLs
     */
    ctx->fmt->io_open = audex_avio_refuse;

    rc = avformat_open_input(&ctx->fmt, ctx->opts->name, NULL, NULL);
    if (rc < 0) {
        /* avformat_open_input() frees the context on failure */
        ctx->fmt = NULL;

        if (ctx->src->status != AUDEX_IO_OK) {
            return audex_transcode_io_failed(ctx, "reading the input");
        }

        return audex_transcode_fail(ctx, AUDEX_CONVERT_CORRUPT,
                   "corrupt or truncated input: not a media file FFmpeg "
                   "can read (%s)", audex_av_err(rc, e, sizeof(e)));
    }

    rc = avformat_find_stream_info(ctx->fmt, NULL);
    if (rc < 0) {
        if (ctx->src->status != AUDEX_IO_OK) {
            return audex_transcode_io_failed(ctx, "reading the input");
        }

        return audex_transcode_fail(ctx, AUDEX_CONVERT_CORRUPT,
                   "corrupt or truncated input: cannot read stream "
                   "information (%s)", audex_av_err(rc, e, sizeof(e)));
    }

    return 0;
}


static int
audex_transcode_find_stream(audex_transcode_t *ctx)
{
    int                        idx;
    double                     d;
    unsigned                   i;
    AVStream                  *st;
    const AVCodec             *codec;
    const AVCodecParameters   *par;

    idx = av_find_best_stream(ctx->fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &codec,
                              0);

    if (idx == AVERROR_STREAM_NOT_FOUND) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_NO_AUDIO,
                   "no audio stream: the input has %u stream(s) and none "
                   "of them is audio", ctx->fmt->nb_streams);
    }

    if (idx == AVERROR_DECODER_NOT_FOUND) {
        /* name the first audio codec we could not decode */
        par = NULL;

        for (i = 0; i < ctx->fmt->nb_streams; i++) {
            if (ctx->fmt->streams[i]->codecpar->codec_type
                == AVMEDIA_TYPE_AUDIO)
            {
                par = ctx->fmt->streams[i]->codecpar;
                break;
            }
        }

        return audex_transcode_fail(ctx, AUDEX_CONVERT_UNSUPPORTED,
                   "unsupported audio codec: no decoder for \"%s\"",
                   par ? avcodec_get_name(par->codec_id) : "?");
    }

    if (idx < 0) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                    "av_find_best_stream() failed");
    }

    st = ctx->fmt->streams[idx];
    ctx->st = st;

    /* the demuxer then skips other streams' data instead of returning it */
    for (i = 0; i < ctx->fmt->nb_streams; i++) {
        if ((int) i != idx) {
            ctx->fmt->streams[i]->discard = AVDISCARD_ALL;
        }
    }

    snprintf(ctx->res->codec, sizeof(ctx->res->codec), "%s",
             avcodec_get_name(st->codecpar->codec_id));

    ctx->res->copied = (st->codecpar->codec_id == AV_CODEC_ID_MP3
                        && ctx->opts->bitrate <= 0
                        && ctx->opts->quality < 0);

    /*
     * the stream's own duration, when the container states it, is what
     * tells a truncated file from a short one; a duration guessed from
     * the bitrate is not good enough for that
     */
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0
        && ctx->fmt->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE)
    {
        ctx->expected = st->duration * av_q2d(st->time_base);
    }

    d = ctx->expected;
    if (d <= 0 && ctx->fmt->duration != AV_NOPTS_VALUE) {
        d = ctx->fmt->duration / (double) AV_TIME_BASE;
    }

    ctx->progress_span = d;

    audex_log(AUDEX_LOG_DEBUG, NULL, "input %s, audio stream #%d: %s, "
              "%d Hz, %d channel(s), %.3f s, %s",
              ctx->fmt->iformat->name, idx, ctx->res->codec,
              st->codecpar->sample_rate, st->codecpar->ch_layout.nb_channels,
              ctx->expected, ctx->res->copied ? "copy" : "encode");

    return 0;
}


/*
 * The limits on what a conversion may cost, checked on the length the
 * container states before a byte is written: a few hundred bytes of
 * FLAC can hold hours of silence that would encode to a large MP3.
 */

static int
audex_transcode_admit(audex_transcode_t *ctx)
{
    int     rc;
    char    msg[256], got[32], max[32];
    double  d;

    d = (ctx->progress_span > 0) ? ctx->progress_span : 0;

    if (ctx->opts->max_duration > 0 && d > ctx->opts->max_duration) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_TOO_LONG,
                   "input is %s long, over the limit of %s",
                   audex_transcode_clock(d, got, sizeof(got)),
                   audex_transcode_clock(ctx->opts->max_duration, max,
                                         sizeof(max)));
    }

    if (ctx->opts->admit == NULL) {
        return 0;
    }

    msg[0] = '\0';
    rc = ctx->opts->admit(ctx->opts->progress_data, d, msg, sizeof(msg));

    if (rc == 0) {
        return 0;
    }

    return audex_transcode_fail(ctx, (rc > 0) ? AUDEX_CONVERT_QUOTA
                                              : AUDEX_CONVERT_IO,
                                "%s", msg[0] ? msg : "refused");
}


/* a container that understated its length is stopped at the limit */

static int
audex_transcode_within_limit(audex_transcode_t *ctx, AVPacket *pkt)
{
    char     max[32];
    double   at;
    int64_t  start;

    if (ctx->opts->max_duration <= 0 || pkt->pts == AV_NOPTS_VALUE) {
        return 0;
    }

    start = (ctx->st->start_time != AV_NOPTS_VALUE) ? ctx->st->start_time
                                                    : 0;
    at = (pkt->pts - start) * av_q2d(ctx->st->time_base);

    if (at <= ctx->opts->max_duration) {
        return 0;
    }

    return audex_transcode_fail(ctx, AUDEX_CONVERT_TOO_LONG,
               "input is longer than the limit of %s",
               audex_transcode_clock(ctx->opts->max_duration, max,
                                     sizeof(max)));
}


/* "9:05", "30:00", "4:00:00" */

static char *
audex_transcode_clock(double secs, char *buf, size_t len)
{
    long  s;

    s = (long) (secs + 0.5);

    if (s >= 3600) {
        snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);

    } else {
        snprintf(buf, len, "%ld:%02ld", s / 60, s % 60);
    }

    return buf;
}


static int
audex_transcode_write_id3(audex_transcode_t *ctx)
{
    u_char  tag[AUDEX_ID3_TAG_MAX];
    size_t  n;

    n = audex_id3_build(tag, sizeof(tag), ctx->opts->title, "audex");

    if (n > 0 && ctx->sink->write(ctx->sink, tag, n) != 0) {
        return audex_transcode_io_failed(ctx, "writing the output");
    }

    ctx->tag_offset = n;

    if (ctx->res->copied) {
        ctx->copy = audex_mp3copy_create(ctx->sink, ctx->tag_offset);
        if (ctx->copy == NULL) {
            return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                        "out of memory");
        }
    }

    return 0;
}


static int
audex_transcode_open_decoder(audex_transcode_t *ctx)
{
    int             rc;
    char            e[AV_ERROR_MAX_STRING_SIZE];
    const AVCodec  *codec;

    codec = avcodec_find_decoder(ctx->st->codecpar->codec_id);
    if (codec == NULL) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_UNSUPPORTED,
                   "unsupported audio codec: no decoder for \"%s\"",
                   ctx->res->codec);
    }

    ctx->dec = avcodec_alloc_context3(codec);
    ctx->pkt = av_packet_alloc();
    ctx->frame = av_frame_alloc();

    if (ctx->dec == NULL || ctx->pkt == NULL || ctx->frame == NULL) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                    "out of memory");
    }

    rc = avcodec_parameters_to_context(ctx->dec, ctx->st->codecpar);
    if (rc < 0) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                   "avcodec_parameters_to_context: %s",
                   audex_av_err(rc, e, sizeof(e)));
    }

    /* needed to honour the skip-samples side data (encoder delay) */
    ctx->dec->pkt_timebase = ctx->st->time_base;

    /* jobs run in parallel already; one thread per decoder is enough */
    ctx->dec->thread_count = 1;

    rc = avcodec_open2(ctx->dec, codec, NULL);
    if (rc < 0) {
        return audex_transcode_fail(ctx,
                   rc == AVERROR(ENOMEM) ? AUDEX_CONVERT_INTERNAL
                   : rc == AVERROR_INVALIDDATA ? AUDEX_CONVERT_CORRUPT
                   : AUDEX_CONVERT_UNSUPPORTED,
                   "cannot open the %s decoder: %s", codec->name,
                   audex_av_err(rc, e, sizeof(e)));
    }

    return 0;
}


static int
audex_transcode_read(audex_transcode_t *ctx)
{
    int       rc;
    char      e[AV_ERROR_MAX_STRING_SIZE];
    AVPacket *pkt;

    if (ctx->pkt == NULL) {
        ctx->pkt = av_packet_alloc();
        if (ctx->pkt == NULL) {
            return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                        "out of memory");
        }
    }

    pkt = ctx->pkt;

    for ( ;; ) {
        rc = av_read_frame(ctx->fmt, pkt);

        if (rc == AVERROR_EOF) {
            break;
        }

        if (rc < 0) {
            if (ctx->src->status != AUDEX_IO_OK) {
                return audex_transcode_io_failed(ctx, "reading the input");
            }

            return audex_transcode_fail(ctx, AUDEX_CONVERT_CORRUPT,
                       "corrupt input: demuxing failed after %d packets "
                       "(%s)", ctx->packets, audex_av_err(rc, e, sizeof(e)));
        }

        if (pkt->stream_index != ctx->st->index) {
            av_packet_unref(pkt);
            continue;
        }

        ctx->packets++;

        /* av_get_packet() marks packets the file ended in the middle of */
        if (pkt->flags & AV_PKT_FLAG_CORRUPT) {
            ctx->short_packets++;
        }

        rc = audex_transcode_within_limit(ctx, pkt);

        if (rc == 0) {
            rc = audex_transcode_progress(ctx, pkt);
        }

        if (rc == 0) {
            rc = ctx->res->copied ? audex_transcode_copy(ctx, pkt)
                                  : audex_transcode_decode(ctx, pkt);
        }

        av_packet_unref(pkt);

        if (rc != 0) {
            return rc;
        }

        /* a segment's end: the rest is another segment's */
        if (ctx->range_done) {
            return 0;
        }
    }

    /* a read error at the end looks like EOF to the demuxer */
    if (ctx->src->status != AUDEX_IO_OK) {
        return audex_transcode_io_failed(ctx, "reading the input");
    }

    return ctx->res->copied ? 0 : audex_transcode_decode(ctx, NULL);
}


/* pkt NULL drains the decoder */

static int
audex_transcode_decode(audex_transcode_t *ctx, AVPacket *pkt)
{
    int   rc;
    char  e[AV_ERROR_MAX_STRING_SIZE];

    rc = avcodec_send_packet(ctx->dec, pkt);

    if (rc < 0 && rc != AVERROR_EOF) {
        if (rc == AVERROR(ENOMEM)) {
            return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                        "out of memory");
        }

        /* one damaged packet is an audible click, not a failed job */
        if (++ctx->bad_packets > AUDEX_BAD_PACKETS_MAX) {
            return audex_transcode_fail(ctx, AUDEX_CONVERT_CORRUPT,
                       "corrupt input: %d audio packets could not be "
                       "decoded (%s)", ctx->bad_packets,
                       audex_av_err(rc, e, sizeof(e)));
        }

        return 0;
    }

    for ( ;; ) {
        rc = avcodec_receive_frame(ctx->dec, ctx->frame);

        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) {
            return 0;
        }

        if (rc < 0) {
            if (rc == AVERROR(ENOMEM)) {
                return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                            "out of memory");
            }

            if (++ctx->bad_packets > AUDEX_BAD_PACKETS_MAX) {
                return audex_transcode_fail(ctx, AUDEX_CONVERT_CORRUPT,
                           "corrupt input: %d audio frames could not be "
                           "decoded (%s)", ctx->bad_packets,
                           audex_av_err(rc, e, sizeof(e)));
            }

            continue;
        }

        rc = audex_transcode_frame(ctx, ctx->frame);
        av_frame_unref(ctx->frame);

        if (rc != 0) {
            return rc;
        }
    }
}


static int
audex_transcode_frame(audex_transcode_t *ctx, AVFrame *frame)
{
    if (frame->nb_samples <= 0 || frame->sample_rate <= 0
        || frame->ch_layout.nb_channels <= 0)
    {
        return 0;
    }

    if (ctx->enc == NULL && ctx->par == NULL
        && audex_transcode_open_output(ctx, frame) != 0)
    {
        return -1;
    }

    if (ctx->range && ctx->range_pos < 0
        && audex_transcode_range_start(ctx, frame) != 0)
    {
        return -1;
    }

    /* streams may change rate or layout midway (TS, broadcast AC-3) */
    if (frame->sample_rate != ctx->swr_rate
        || frame->format != ctx->swr_format
        || av_channel_layout_compare(&frame->ch_layout, &ctx->swr_layout)
           != 0)
    {
        if (ctx->swr != NULL && audex_transcode_convert(ctx, NULL, 0) != 0) {
            return -1;
        }

        if (audex_transcode_setup_swr(ctx, frame) != 0) {
            return -1;
        }
    }

    ctx->in_samples += frame->nb_samples;

    return audex_transcode_convert(ctx,
                                   (const uint8_t **) frame->extended_data,
                                   frame->nb_samples);
}


static int
audex_transcode_open_output(audex_transcode_t *ctx, AVFrame *frame)
{
    int   bitrate, quality;
    char  e[160];

    ctx->out_rate = audex_mp3_rate(frame->sample_rate);
    ctx->out_channels = (frame->ch_layout.nb_channels == 1) ? 1 : 2;

    quality = ctx->opts->quality;
    bitrate = ctx->opts->bitrate;

    if (quality < 0 && bitrate <= 0) {
        bitrate = AUDEX_CONVERT_DEFAULT_BITRATE;
    }

    if (quality >= 0) {
        bitrate = 0;
    }

    ctx->res->encoders = 1;

    if (ctx->range == NULL && ctx->opts->encoders > 1 && ctx->expected > 0
        && ctx->expected >= ctx->opts->parallel_min)
    {
        return audex_transcode_open_parallel(ctx, bitrate, quality);
    }

    ctx->enc = audex_mp3_enc_create(ctx->out_rate, ctx->out_channels,
                                    bitrate, quality, ctx->range == NULL,
                                    e, sizeof(e));
    if (ctx->enc == NULL) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL, "%s", e);
    }

    ctx->res->sample_rate = ctx->out_rate;
    ctx->res->channels = ctx->out_channels;
    ctx->res->bitrate = audex_mp3_enc_bitrate(ctx->enc);
    ctx->res->quality = quality;

    if (ctx->out_rate != frame->sample_rate
        || ctx->out_channels != frame->ch_layout.nb_channels)
    {
        audex_log(AUDEX_LOG_DEBUG, NULL, "%d Hz, %d channel(s) -> "
                  "%d Hz, %d channel(s)", frame->sample_rate,
                  frame->ch_layout.nb_channels, ctx->out_rate,
                  ctx->out_channels);
    }

    return 0;
}


/*
 * A long input is encoded in segments by several encoders at once: its
 * length comes from the container, so an input that does not state one
 * takes one encoder.
 */

static int
audex_transcode_open_parallel(audex_transcode_t *ctx, int bitrate,
    int quality)
{
    char                  e[160];
    audex_mp3par_conf_t   conf;
    audex_mp3par_stats_t  st;

    conf.rate = ctx->out_rate;
    conf.channels = ctx->out_channels;
    conf.bitrate = bitrate;
    conf.quality = quality;
    conf.encoders = ctx->opts->encoders;
    conf.segment = ctx->opts->segment > 0 ? ctx->opts->segment
                                          : AUDEX_CONVERT_DEFAULT_SEGMENT;

    ctx->par = audex_mp3par_create(&conf, ctx->sink, ctx->tag_offset,
                                   e, sizeof(e));
    if (ctx->par == NULL) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL, "%s", e);
    }

    audex_mp3par_stats(ctx->par, &st);

    ctx->res->sample_rate = ctx->out_rate;
    ctx->res->channels = ctx->out_channels;
    ctx->res->bitrate = st.bitrate;
    ctx->res->quality = quality;
    ctx->res->encoders = conf.encoders;

    audex_log(AUDEX_LOG_DEBUG, NULL, "%.0f s of audio: %d encoders on "
              "%.0f s segments", ctx->expected, conf.encoders, conf.segment);

    return 0;
}


static void
audex_transcode_parallel_stats(audex_transcode_t *ctx)
{
    audex_mp3par_stats_t  st;

    audex_mp3par_stats(ctx->par, &st);

    ctx->res->segments = st.segments;
    ctx->res->raised = st.raised;

    audex_log(AUDEX_LOG_DEBUG, NULL, "%llu segments, %llu joins, %llu "
              "without a frame that fitted as encoded, %llu frames raised",
              (unsigned long long) st.segments,
              (unsigned long long) st.joins,
              (unsigned long long) st.tight_joins,
              (unsigned long long) st.raised);
}


static int
audex_transcode_setup_swr(audex_transcode_t *ctx, AVFrame *frame)
{
    int              rc;
    char             e[AV_ERROR_MAX_STRING_SIZE];
    AVChannelLayout  in, out;

    swr_free(&ctx->swr);
    av_channel_layout_uninit(&ctx->swr_layout);

    /* av_channel_layout_copy() frees what its destination held */
    memset(&in, 0, sizeof(AVChannelLayout));

    /* a layout without channel positions gets the usual one */
    if (frame->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
        av_channel_layout_default(&in, frame->ch_layout.nb_channels);

    } else if (av_channel_layout_copy(&in, &frame->ch_layout) < 0) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                    "out of memory");
    }

    if (ctx->out_channels == 1) {
        av_channel_layout_from_mask(&out, AV_CH_LAYOUT_MONO);

    } else {
        av_channel_layout_from_mask(&out, AV_CH_LAYOUT_STEREO);
    }

    rc = swr_alloc_set_opts2(&ctx->swr, &out, AV_SAMPLE_FMT_FLTP,
                             ctx->out_rate, &in, frame->format,
                             frame->sample_rate, 0, NULL);
    av_channel_layout_uninit(&in);

    if (rc >= 0) {
        rc = swr_init(ctx->swr);
    }

    if (rc < 0) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_UNSUPPORTED,
                   "cannot convert %d Hz, %d channel(s) %s audio: %s",
                   frame->sample_rate, frame->ch_layout.nb_channels,
                   av_get_sample_fmt_name(frame->format),
                   audex_av_err(rc, e, sizeof(e)));
    }

    if (av_channel_layout_copy(&ctx->swr_layout, &frame->ch_layout) < 0) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                    "out of memory");
    }

    ctx->swr_rate = frame->sample_rate;
    ctx->swr_format = frame->format;

    return 0;
}


/* resamples nb input samples (in NULL: the resampler's tail) and encodes */

static int
audex_transcode_convert(audex_transcode_t *ctx, const uint8_t **in, int nb)
{
    int   n, need;
    char  e[AV_ERROR_MAX_STRING_SIZE];

    for ( ;; ) {
        need = swr_get_out_samples(ctx->swr, nb);
        if (need < 0) {
            need = 0;
        }

        /* grows to the largest frame once, then stays */
        if (need > ctx->pcm_size) {
            av_freep(&ctx->pcm[0]);
            ctx->pcm[1] = NULL;
            ctx->pcm_size = 0;

            if (av_samples_alloc(ctx->pcm, NULL, ctx->out_channels, need,
                                 AV_SAMPLE_FMT_FLTP, 0) < 0)
            {
                return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                            "out of memory");
            }

            ctx->pcm_size = need;
        }

        n = swr_convert(ctx->swr, ctx->pcm, ctx->pcm_size, in, nb);
        if (n < 0) {
            return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                       "swr_convert: %s", audex_av_err(n, e, sizeof(e)));
        }

        if (n > 0 && ctx->range) {
            if (audex_transcode_range_encode(ctx, n) != 0) {
                return -1;
            }

        } else if (n > 0) {
            if ((ctx->par
                 ? audex_mp3par_encode(ctx->par, (const float *) ctx->pcm[0],
                                       (const float *) ctx->pcm[1], n)
                 : audex_mp3_enc_encode(ctx->enc, (const float *) ctx->pcm[0],
                                        (const float *) ctx->pcm[1], n,
                                        ctx->sink))
                != 0)
            {
                return audex_transcode_encode_failed(ctx);
            }

            ctx->out_samples += n;
        }

        /* draining: repeat until the resampler has nothing left */
        if (in != NULL || n == 0) {
            return 0;
        }
    }
}


/* the part of n resampled samples that lies in the range, encoded */

static int
audex_transcode_range_encode(audex_transcode_t *ctx, int n)
{
    int64_t       lo, hi;
    const float  *r;

    lo = ctx->range->start - ctx->range_pos;
    hi = n;

    if (ctx->range->end >= 0 && ctx->range->end - ctx->range_pos < hi) {
        hi = ctx->range->end - ctx->range_pos;
    }

    ctx->range_pos += n;

    if (ctx->range->end >= 0 && ctx->range_pos >= ctx->range->end) {
        ctx->range_done = 1;
    }

    if (lo < 0) {
        lo = 0;
    }

    if (hi <= lo) {
        return 0;
    }

    r = ctx->pcm[1] ? (const float *) ctx->pcm[1] + lo : NULL;

    if (audex_mp3_enc_encode(ctx->enc, (const float *) ctx->pcm[0] + lo, r,
                             (int) (hi - lo), ctx->sink)
        != 0)
    {
        return audex_transcode_io_failed(ctx, "writing the output");
    }

    ctx->out_samples += hi - lo;

    return 0;
}


static int
audex_transcode_flush(audex_transcode_t *ctx)
{
    if (ctx->enc == NULL && ctx->par == NULL) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_CORRUPT,
                   "corrupt input: the %s audio stream has no decodable "
                   "audio (%d packets)", ctx->res->codec, ctx->packets);
    }

    if (audex_transcode_convert(ctx, NULL, 0) != 0) {
        return -1;
    }

    if (ctx->range) {
        if (audex_mp3_enc_flush(ctx->enc, ctx->sink) != 0) {
            return audex_transcode_io_failed(ctx, "writing the output");
        }

        audex_mp3_enc_delays(ctx->enc, &ctx->res->delay,
                             &ctx->res->padding);
        ctx->res->samples = ctx->out_samples;

    } else if (ctx->par) {
        if (audex_mp3par_finish(ctx->par) != 0) {
            return audex_transcode_encode_failed(ctx);
        }

        audex_transcode_parallel_stats(ctx);

    } else if (audex_mp3_enc_flush(ctx->enc, ctx->sink) != 0
               || audex_mp3_enc_write_tag(ctx->enc, ctx->sink,
                                          ctx->tag_offset)
                  != 0)
    {
        return audex_transcode_io_failed(ctx, "writing the output");
    }

    ctx->res->duration = (double) ctx->out_samples / ctx->out_rate;

    return 0;
}


static int
audex_transcode_copy(audex_transcode_t *ctx, AVPacket *pkt)
{
    size_t    size;
    uint8_t  *sd;

    /* encoder delay from an MP4 edit list or the source's LAME tag */
    sd = av_packet_get_side_data(pkt, AV_PKT_DATA_SKIP_SAMPLES, &size);
    if (sd != NULL && size >= 8) {
        audex_mp3copy_padding(ctx->copy, AV_RL32(sd), AV_RL32(sd + 4));
    }

    if (audex_mp3copy_feed(ctx->copy, pkt->data, pkt->size) != 0) {
        return audex_transcode_io_failed(ctx, "writing the output");
    }

    return 0;
}


static int
audex_transcode_copy_finish(audex_transcode_t *ctx)
{
    int                     rc;
    audex_mp3copy_stats_t   st;

    rc = audex_mp3copy_finish(ctx->copy, &st);

    if (rc == -2) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_CORRUPT,
                   "corrupt input: the MP3 audio stream has no valid "
                   "frames (%d packets)", ctx->packets);
    }

    if (rc != 0) {
        return audex_transcode_io_failed(ctx, "writing the output");
    }

    if (st.junk > 0) {
        audex_log(AUDEX_LOG_INFO, NULL, "dropped %llu bytes between MP3 "
                  "frames", (unsigned long long) st.junk);
    }

    ctx->in_samples = st.samples;
    ctx->swr_rate = st.sample_rate;
    ctx->res->sample_rate = st.sample_rate;
    ctx->res->channels = st.channels;
    ctx->res->bitrate = st.bitrate;
    ctx->res->duration = (double) st.samples / st.sample_rate;

    return 0;
}


/*
 * A file cut short usually demuxes without an error: the demuxer simply
 * meets the end of the input.  What gives it away is audio that stops
 * well before the duration the container promised for the stream.
 */

static int
audex_transcode_check_length(audex_transcode_t *ctx)
{
    double  got, slack;

    if (ctx->expected <= 0 || ctx->swr_rate <= 0) {
        return 0;
    }

    /* the last rate is fine: a rate change midway is rare and brief */
    got = (double) ctx->in_samples / ctx->swr_rate;

    slack = ctx->expected * 0.05;
    if (slack < 1.0) {
        slack = 1.0;
    }

    if (got + slack < ctx->expected) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_CORRUPT,
                   "corrupt or truncated input: the audio stops at "
                   "%.1f s of %.1f s%s", got, ctx->expected,
                   ctx->short_packets ? ", the file ends inside a packet"
                                      : "");
    }

    return 0;
}


static int
audex_transcode_progress(audex_transcode_t *ctx, AVPacket *pkt)
{
    double   done;
    int64_t  start, size;

    if (ctx->opts->progress == NULL) {
        return 0;
    }

    done = -1;

    if (ctx->progress_span > 0 && pkt->pts != AV_NOPTS_VALUE) {
        start = (ctx->st->start_time != AV_NOPTS_VALUE)
                ? ctx->st->start_time : 0;
        done = (pkt->pts - start) * av_q2d(ctx->st->time_base)
               / ctx->progress_span;
    }

    if (done < 0) {
        size = ctx->src->size(ctx->src);
        if (size <= 0) {
            return 0;
        }

        done = (double) avio_tell(ctx->fmt->pb) / size;
    }

    if (done > 1.0) {
        done = 1.0;
    }

    if (ctx->opts->progress(ctx->opts->progress_data, done) != 0) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_CANCELLED,
                                    "cancelled");
    }

    return 0;
}


/* the cleanup ladder: everything in reverse order of creation */

static void
audex_transcode_cleanup(audex_transcode_t *ctx)
{
    audex_mp3copy_free(ctx->copy);
    audex_mp3_enc_free(ctx->enc);
    audex_mp3par_free(ctx->par);
    av_freep(&ctx->pcm[0]);
    av_channel_layout_uninit(&ctx->swr_layout);
    swr_free(&ctx->swr);
    av_frame_free(&ctx->frame);
    av_packet_free(&ctx->pkt);
    avcodec_free_context(&ctx->dec);
    avformat_close_input(&ctx->fmt);

    if (ctx->avio) {
        av_freep(&ctx->avio->buffer);
        avio_context_free(&ctx->avio);
    }
}


/* a failed source or sink: its status decides permanent or transient */

/* an encoder of a long input failed, or writing its frames did */

static int
audex_transcode_encode_failed(audex_transcode_t *ctx)
{
    const char  *msg;

    msg = ctx->par ? audex_mp3par_error(ctx->par) : NULL;

    if (msg != NULL) {
        return audex_transcode_fail(ctx, AUDEX_CONVERT_INTERNAL,
                                    "encoding in segments: %s", msg);
    }

    return audex_transcode_io_failed(ctx, "writing the output");
}


static int
audex_transcode_io_failed(audex_transcode_t *ctx, const char *what)
{
    audex_io_status_e  status;
    const char        *msg;

    if (ctx->src->status != AUDEX_IO_OK) {
        status = ctx->src->status;
        msg = ctx->src->error;

    } else {
        status = ctx->sink->status;
        msg = ctx->sink->error;
    }

    switch (status) {

    case AUDEX_IO_NOT_FOUND:
        return audex_transcode_fail(ctx, AUDEX_CONVERT_NOT_FOUND,
                                    "input not found: %s", msg);

    case AUDEX_IO_PERMANENT:
        /* e.g. GridFS chunks missing: retrying will not bring them back */
        return audex_transcode_fail(ctx, AUDEX_CONVERT_CORRUPT,
                                    "%s failed: %s", what, msg);

    default:
        return audex_transcode_fail(ctx, AUDEX_CONVERT_IO,
                                    "I/O error %s: %s", what,
                                    msg[0] ? msg : "unknown");
    }
}


static int
audex_transcode_fail(audex_transcode_t *ctx, audex_convert_status_e status,
    const char *fmt, ...)
{
    va_list  args;

    /* the first failure is the cause; later ones are consequences */
    if (ctx->err->status != AUDEX_CONVERT_OK) {
        return -1;
    }

    va_start(args, fmt);
    vsnprintf(ctx->err->message, sizeof(ctx->err->message), fmt, args);
    va_end(args);

    ctx->err->status = status;

    return -1;
}


static int
audex_avio_read(void *opaque, uint8_t *buf, int size)
{
    ssize_t          n;
    audex_source_t  *src = opaque;

    n = src->read(src, buf, size);

    if (n < 0) {
        return AVERROR(EIO);
    }

    return (n == 0) ? AVERROR_EOF : (int) n;
}


static int64_t
audex_avio_seek(void *opaque, int64_t offset, int whence)
{
    int64_t          rc;
    audex_source_t  *src = opaque;

    whence &= ~AVSEEK_FORCE;

    rc = src->seek(src, offset, whence);

    if (rc < 0) {
        return (whence == AVSEEK_SIZE) ? AVERROR(ENOSYS) : AVERROR(EIO);
    }

    return rc;
}


static int
audex_avio_refuse(AVFormatContext *s, AVIOContext **pb, const char *url,
    int flags, AVDictionary **options)
{
    audex_log(AUDEX_LOG_WARN, NULL, "input refers to \"%s\": not opened",
              url);

    return AVERROR(EPERM);
}


static void
audex_av_log(void *avcl, int level, const char *fmt, va_list args)
{
    char    line[1024];
    size_t  n;

    if (level > av_log_get_level()) {
        return;
    }

    av_log_format_line2(avcl, level, fmt, args, line, sizeof(line),
                        &audex_av_log_prefix);

    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }

    if (n == 0) {
        return;
    }

    /* a damaged file can produce thousands of identical complaints */
    if (++audex_av_log_count > AUDEX_AV_LOG_MAX) {
        if (audex_av_log_count == AUDEX_AV_LOG_MAX + 1) {
            audex_log(AUDEX_LOG_WARN, NULL,
                      "ffmpeg: further messages suppressed");
        }

        return;
    }

    audex_log(level <= AV_LOG_ERROR ? AUDEX_LOG_WARN : AUDEX_LOG_DEBUG,
              NULL, "ffmpeg: %s", line);
}


static const char *
audex_av_err(int rc, char *buf, size_t len)
{
    av_strerror(rc, buf, len);

    return buf;
}
