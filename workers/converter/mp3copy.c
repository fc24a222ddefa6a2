/*
 * audex-converter: copying MP3 frames without re-encoding, see mp3.h.
 *
 * Containers cut MP3 audio into packets that need not be whole frames
 * (AVI and MPEG-TS split and join them), so packets are treated as a byte
 * stream: a small buffer, frame sync, frame length from the header.
 *
 * When the container knew the encoder delay and padding (MP4 edit lists,
 * an old LAME tag read by the MP3 demuxer) they arrive as skip-samples
 * side data and go into a LAME extension of the info frame, the way
 * libavformat's MP3 muxer writes it on a stream copy (vendor "Lavf"), so
 * players trim the same samples the source was trimmed by.  Without that
 * knowledge no extension is written: the source then played its delay
 * too, and so will the copy.
 *
 * The Info/Xing frame goes first but can only be filled in at the end, so
 * a placeholder of its final size is written when the first frame shows
 * which MPEG version, rate and channel mode the stream has.  Its seek
 * table (TOC) needs the byte position of the frames at each percent of
 * the duration, which is not known until the end either; positions are
 * sampled into a fixed array whose stride doubles whenever it fills, so
 * memory stays constant however long the input is.
 */

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mp3.h"


#define AUDEX_MP3COPY_BUF  (4 * AUDEX_MP3_FRAME_MAX)
#define AUDEX_TOC_SLOTS    256

/* Xing: 4 id, 4 flags, 4 frames, 4 bytes, 100 TOC, 4 quality */
#define AUDEX_XING_SIZE    120
#define AUDEX_XING_FLAGS   0x0f

/* without TOC and quality, for small frames: seeking a CBR is linear */
#define AUDEX_XING_SHORT_SIZE   16
#define AUDEX_XING_SHORT_FLAGS  0x03

/* the LAME extension that follows it */
#define AUDEX_LAME_SIZE    36

/* what an MP3 decoder adds in front by itself, counted in skip samples */
#define AUDEX_MP3_DECODER_DELAY  529


struct audex_mp3copy_s {
    audex_sink_t        *sink;
    int64_t              tag_offset;

    int                  started;
    int                  in_sync;
    uint32_t             first_raw;
    audex_mp3_header_t   first;
    int                  tag_size;
    int                  tag_bitrate_index;
    int                  tag_short;
    int                  cbr;

    uint64_t             frames;
    uint64_t             audio_bytes;
    uint64_t             junk;
    uint16_t             music_crc;

    int                  have_padding;
    int64_t              skip_start;
    int64_t              discard_end;

    /* frame k * toc_stride starts at toc_pos[k], from the info frame */
    uint64_t             toc_pos[AUDEX_TOC_SLOTS];
    int                  toc_n;
    uint64_t             toc_stride;

    size_t               len;
    u_char               buf[AUDEX_MP3COPY_BUF];
};


static int audex_mp3copy_parse(audex_mp3copy_t *cp, int final);
static int audex_mp3copy_frame(audex_mp3copy_t *cp, const u_char *f,
    const audex_mp3_header_t *hdr, uint32_t raw);
static int audex_mp3copy_is_info(const u_char *f,
    const audex_mp3_header_t *hdr);
static int audex_mp3copy_start(audex_mp3copy_t *cp,
    const audex_mp3_header_t *hdr, uint32_t raw);
static void audex_mp3copy_lame(audex_mp3copy_t *cp, u_char *frame,
    u_char *p);
static void audex_mp3copy_toc_add(audex_mp3copy_t *cp, uint64_t pos);
static void audex_mp3copy_toc(audex_mp3copy_t *cp, u_char *toc);
static uint32_t audex_rb32(const u_char *p);
static void audex_wb32(u_char *p, uint32_t v);


audex_mp3copy_t *
audex_mp3copy_create(audex_sink_t *sink, int64_t tag_offset)
{
    audex_mp3copy_t  *cp;

    cp = calloc(1, sizeof(audex_mp3copy_t));
    if (cp == NULL) {
        return NULL;
    }

    cp->sink = sink;
    cp->tag_offset = tag_offset;
    cp->cbr = 1;
    cp->toc_stride = 1;

    return cp;
}


int
audex_mp3copy_feed(audex_mp3copy_t *cp, const u_char *data, size_t len)
{
    size_t  n;

    while (len > 0) {
        n = sizeof(cp->buf) - cp->len;
        if (n > len) {
            n = len;
        }

        memcpy(cp->buf + cp->len, data, n);
        cp->len += n;
        data += n;
        len -= n;

        if (audex_mp3copy_parse(cp, 0) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * Emits every complete frame in the buffer and keeps the rest.  A frame
 * is accepted right away when it follows the previous one; after junk,
 * and for the very first frame, the next header must confirm it, so a
 * stray 0xFFF in junk does not pass for a frame.
 */

static int
audex_mp3copy_parse(audex_mp3copy_t *cp, int final)
{
    size_t               i, avail;
    uint32_t             raw;
    audex_mp3_header_t   hdr, next;

    i = 0;

    while (cp->len - i >= 4) {
        avail = cp->len - i;
        raw = audex_rb32(cp->buf + i);

        if (audex_mp3_header_parse(raw, &hdr) != 0
            || (cp->started
                && (hdr.lsf != cp->first.lsf
                    || hdr.sample_rate != cp->first.sample_rate)))
        {
            i++;
            cp->junk++;
            cp->in_sync = 0;
            continue;
        }

        if (avail < (size_t) hdr.size) {
            if (!final) {
                break;
            }

            /* a cut last frame: drop it */
            cp->junk += avail;
            i = cp->len;
            break;
        }

        if (!cp->in_sync) {
            if (avail < (size_t) hdr.size + 4) {
                if (!final) {
                    break;
                }

            } else if (audex_mp3_header_parse(audex_rb32(cp->buf + i
                                                         + hdr.size),
                                              &next) != 0
                       || next.lsf != hdr.lsf
                       || next.sample_rate != hdr.sample_rate)
            {
                i++;
                cp->junk++;
                continue;
            }
        }

        if (audex_mp3copy_frame(cp, cp->buf + i, &hdr, raw) != 0) {
            return -1;
        }

        cp->in_sync = 1;
        i += hdr.size;
    }

    if (final && i < cp->len) {
        cp->junk += cp->len - i;
        i = cp->len;
    }

    memmove(cp->buf, cp->buf + i, cp->len - i);
    cp->len -= i;

    return 0;
}


static int
audex_mp3copy_frame(audex_mp3copy_t *cp, const u_char *f,
    const audex_mp3_header_t *hdr, uint32_t raw)
{
    if (audex_mp3copy_is_info(f, hdr)) {
        /* the old counts and TOC would be wrong for the copy */
        audex_log(AUDEX_LOG_DEBUG, NULL, "dropping an old info frame");
        return 0;
    }

    if (!cp->started && audex_mp3copy_start(cp, hdr, raw) != 0) {
        return -1;
    }

    if (hdr->bitrate != cp->first.bitrate) {
        cp->cbr = 0;
    }

    audex_mp3copy_toc_add(cp, cp->tag_size + cp->audio_bytes);

    cp->music_crc = audex_mp3_crc16(cp->music_crc, f, hdr->size);
    cp->frames++;
    cp->audio_bytes += hdr->size;

    return cp->sink->write(cp->sink, f, hdr->size);
}


static int
audex_mp3copy_is_info(const u_char *f, const audex_mp3_header_t *hdr)
{
    const u_char  *p;

    p = f + 4 + hdr->side_info;

    if (hdr->size >= 4 + hdr->side_info + 4
        && (memcmp(p, "Xing", 4) == 0 || memcmp(p, "Info", 4) == 0))
    {
        return 1;
    }

    return hdr->size >= 4 + 32 + 4 && memcmp(f + 4 + 32, "VBRI", 4) == 0;
}


/*
 * Writes the placeholder info frame: the first frame's version, rate and
 * channel mode, at its bitrate if the Xing data fits, without a TOC if it
 * fits only so, else at the lowest bitrate where the whole of it fits.
 * An info frame at another bitrate makes a CBR stream look VBR; LAME
 * itself rather leaves the frame out, losing the gapless information.
 */

static int
audex_mp3copy_start(audex_mp3copy_t *cp, const audex_mp3_header_t *hdr,
    uint32_t raw)
{
    int     bi, need;
    u_char  frame[AUDEX_MP3_FRAME_MAX];

    cp->started = 1;
    cp->first = *hdr;
    cp->first_raw = raw;

    need = 4 + hdr->side_info + AUDEX_LAME_SIZE;
    bi = hdr->bitrate_index;

    if (audex_mp3_frame_size(hdr, bi) < need + AUDEX_XING_SIZE) {
        if (audex_mp3_frame_size(hdr, bi) >= need + AUDEX_XING_SHORT_SIZE) {
            cp->tag_short = 1;

        } else {
            while (bi < 14
                   && audex_mp3_frame_size(hdr, bi) < need + AUDEX_XING_SIZE)
            {
                bi++;
            }
        }
    }

    cp->tag_bitrate_index = bi;
    cp->tag_size = audex_mp3_frame_size(hdr, bi);

    /* a valid silent frame, so a reader that stops here still copes */
    memset(frame, 0, cp->tag_size);
    audex_wb32(frame, (raw & 0xfffe0ccc) | 0x00010000 | (bi << 12));

    return cp->sink->write(cp->sink, frame, cp->tag_size);
}


void
audex_mp3copy_padding(audex_mp3copy_t *cp, int64_t skip_start,
    int64_t discard_end)
{
    cp->have_padding = 1;
    cp->skip_start += skip_start;
    cp->discard_end += discard_end;
}


int
audex_mp3copy_finish(audex_mp3copy_t *cp, audex_mp3copy_stats_t *st)
{
    int      info;
    u_char   frame[AUDEX_MP3_FRAME_MAX], *p;

    if (audex_mp3copy_parse(cp, 1) != 0) {
        return -1;
    }

    if (cp->frames == 0) {
        return -2;
    }

    /* "Info" tells readers the bitrate is constant, "Xing" that it is not */
    info = cp->cbr && cp->tag_bitrate_index == cp->first.bitrate_index;

    memset(frame, 0, cp->tag_size);
    audex_wb32(frame, (cp->first_raw & 0xfffe0ccc) | 0x00010000
                      | (cp->tag_bitrate_index << 12));

    p = frame + 4 + cp->first.side_info;
    memcpy(p, info ? "Info" : "Xing", 4);
    audex_wb32(p + 4, cp->tag_short ? AUDEX_XING_SHORT_FLAGS
                                    : AUDEX_XING_FLAGS);
    audex_wb32(p + 8, (uint32_t) cp->frames);
    audex_wb32(p + 12, (uint32_t) (cp->tag_size + cp->audio_bytes));

    if (cp->tag_short) {
        p += AUDEX_XING_SHORT_SIZE;

    } else {
        audex_mp3copy_toc(cp, p + 16);
        audex_wb32(p + 116, 0);
        p += AUDEX_XING_SIZE;
    }

    audex_mp3copy_lame(cp, frame, p);

    if (cp->sink->rewrite(cp->sink, cp->tag_offset, frame, cp->tag_size)
        != 0)
    {
        return -1;
    }

    st->sample_rate = cp->first.sample_rate;
    st->channels = cp->first.channels;
    st->bitrate = cp->cbr ? cp->first.bitrate : 0;
    st->frames = cp->frames;
    st->samples = cp->frames * cp->first.samples;
    st->junk = cp->junk;

    return 0;
}


/*
 * The LAME extension, only for its encoder delay and padding; ReplayGain
 * and the encoder settings are unknown for copied frames and stay zero.
 * Skip samples count the decoder's own delay, the LAME fields do not.
 */

static void
audex_mp3copy_lame(audex_mp3copy_t *cp, u_char *frame, u_char *p)
{
    int64_t   start, end;
    uint16_t  crc;

    if (!cp->have_padding || cp->skip_start < AUDEX_MP3_DECODER_DELAY) {
        return;
    }

    start = cp->skip_start - AUDEX_MP3_DECODER_DELAY;
    end = cp->discard_end + AUDEX_MP3_DECODER_DELAY;

    if (start > 4095 || end > 4095) {
        audex_log(AUDEX_LOG_INFO, NULL, "encoder delay %lld and padding "
                  "%lld do not fit a LAME tag", (long long) start,
                  (long long) end);
        return;
    }

    memcpy(p, "Lavf", 4);
    memcpy(p + 4, "audex", 5);
    p[9] = cp->cbr ? 0x01 : 0x00;
    p[20] = (cp->first.bitrate > 255) ? 255 : cp->first.bitrate;
    p[21] = start >> 4;
    p[22] = ((start & 0x0f) << 4) | (end >> 8);
    p[23] = end & 0xff;
    audex_wb32(p + 28, (uint32_t) (cp->tag_size + cp->audio_bytes));
    p[32] = cp->music_crc >> 8;
    p[33] = cp->music_crc & 0xff;

    crc = audex_mp3_crc16(0, frame, p + 34 - frame);
    p[34] = crc >> 8;
    p[35] = crc & 0xff;
}


static void
audex_mp3copy_toc_add(audex_mp3copy_t *cp, uint64_t pos)
{
    int  i;

    if (cp->frames % cp->toc_stride != 0) {
        return;
    }

    if (cp->toc_n == AUDEX_TOC_SLOTS) {
        /* keep every other sample: frames 0, 2s, 4s, ... */
        for (i = 0; i < AUDEX_TOC_SLOTS / 2; i++) {
            cp->toc_pos[i] = cp->toc_pos[2 * i];
        }

        cp->toc_n = AUDEX_TOC_SLOTS / 2;
        cp->toc_stride *= 2;

        if (cp->frames % cp->toc_stride != 0) {
            return;
        }
    }

    cp->toc_pos[cp->toc_n++] = pos;
}


/* toc[i]: where the frame at i percent of the duration starts, in 1/256 */

static void
audex_mp3copy_toc(audex_mp3copy_t *cp, u_char *toc)
{
    int       i;
    double    target, k, frac, pos, total, v;
    uint64_t  j;

    total = (double) (cp->tag_size + cp->audio_bytes);

    for (i = 0; i < 100; i++) {
        target = (double) cp->frames * i / 100.0;
        k = target / cp->toc_stride;
        j = (uint64_t) k;
        frac = k - j;

        if (j + 1 < (uint64_t) cp->toc_n) {
            pos = cp->toc_pos[j] + frac * (cp->toc_pos[j + 1]
                                           - cp->toc_pos[j]);

        } else {
            pos = cp->toc_pos[cp->toc_n - 1];
        }

        v = pos * 256.0 / total;
        toc[i] = (v > 255.0) ? 255 : (u_char) v;
    }
}


void
audex_mp3copy_free(audex_mp3copy_t *cp)
{
    free(cp);
}


static uint32_t
audex_rb32(const u_char *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
           | ((uint32_t) p[2] << 8) | p[3];
}


static void
audex_wb32(u_char *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}
