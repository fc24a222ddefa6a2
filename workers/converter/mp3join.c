/*
 * audex-converter: MP3 segments joined into one stream, see mp3.h.
 *
 * The segments come from LAME encoders that each started on a frame
 * boundary of the whole input, some frames before the segment (pre-roll)
 * and ran on some frames past it (post-roll): mp3par.c's threads, or
 * converters anywhere taking segment jobs (segments.c).  LAME's delay is
 * the same in each, so frame j of a segment's encoder is frame
 * start / frame_samples + j of the stream.
 *
 * The bit reservoir: a Layer III frame's main data may begin up to 511
 * bytes (255 for MPEG-2) before its header, in earlier frames.  The first
 * frame kept from a segment points back into pre-roll frames that are not
 * in the stream.  So frames are not copied as they are: each frame's main
 * data is cut out of its encoder's stream and laid out again, as early as
 * the stream allows, with main_data_begin rewritten.  Where a frame lays
 * out at least as early as in its own encoder's stream, everything after
 * it fits too; the join is the frame, among AUDEX_MP3JOIN_WINDOW either
 * side of the segment boundary (where both encoders ran on real audio),
 * that needs no frame raised to a higher bitrate to fit, nearest the
 * boundary; failing that, the one that needs the fewest (counted).
 *
 * One Info/Xing frame with the LAME extension (mp3copy.c) covers the
 * whole stream: frame count, seek table, encoder delay and padding, so
 * players are gapless and seek correctly.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mp3.h"


#define AUDEX_MP3JOIN_WINDOW   8

/* what an MP3 decoder adds in front by itself, counted in skip samples */
#define AUDEX_MP3_DECODER_DELAY  529

#if AUDEX_MP3JOIN_WINDOW + 4 > AUDEX_MP3JOIN_POSTROLL \
    || AUDEX_MP3JOIN_WINDOW + 16 > AUDEX_MP3JOIN_PREROLL
#error "the join window must lie where both encoders ran on real audio"
#endif


typedef struct {
    uint32_t                off;        /* in the segment's bytes */
    uint32_t                ps;         /* payload bytes before it */
    uint16_t                size;
    uint16_t                cap;        /* payload: after side info */
    uint16_t                mdb;        /* main_data_begin */
    uint16_t                mdlen;      /* main data, bytes */
} audex_mp3join_frame_t;


typedef struct {
    u_char                 *data;
    size_t                  len;
    audex_mp3join_frame_t  *frames;
    size_t                  nframes;
    int64_t                 first;      /* stream frame of frames[0] */
    int64_t                 nominal;    /* first sample it stands for */
    int64_t                 end;        /* feeding stopped here */
    int                     last;
} audex_mp3join_seg_t;


/* a frame laid out, kept until no later main data can reach into it */
typedef struct {
    size_t                  off;        /* in out */
    int                     head;       /* header and side info */
    int                     cap;
    int64_t                 ps;
} audex_mp3join_slot_t;


struct audex_mp3join_s {
    int                     fs;         /* samples per frame */
    int                     maxback;
    double                  seconds;    /* per sample, for messages */
    audex_mp3copy_t        *copy;

    /* the segment waiting for the next one, and its next frame */
    audex_mp3join_seg_t    *prev;
    int64_t                 next;
    int                     ended;

    /* the layout: pending frames, payload bytes, where main data ends */
    u_char                 *out;
    size_t                  out_len;
    size_t                  out_size;
    audex_mp3join_slot_t    slot[64];
    int                     nslots;
    int64_t                 ps;
    int64_t                 md_end;
    uint64_t                frames;

    int64_t                 samples;    /* the input's, from the last */
    audex_mp3join_stats_t   stats;

    int                     failed;
    char                    error[160];
};


static int audex_mp3join_scan(audex_mp3join_t *jn, audex_mp3join_seg_t *seg);
static int audex_mp3join_upto(audex_mp3join_t *jn, audex_mp3join_seg_t *seg,
    int64_t stop);
static int audex_mp3join_join(audex_mp3join_t *jn, audex_mp3join_seg_t *a,
    audex_mp3join_seg_t *b, int64_t *at);
static int audex_mp3join_try(audex_mp3join_t *jn, audex_mp3join_seg_t *seg,
    int64_t k, int64_t ps, int64_t md_end);
static int audex_mp3join_fits(audex_mp3join_t *jn, audex_mp3join_seg_t *seg,
    int64_t k, int64_t *ps, int64_t *md_end);
static int audex_mp3join_append(audex_mp3join_t *jn,
    audex_mp3join_seg_t *seg, int64_t k);
static int audex_mp3join_emit(audex_mp3join_t *jn, int all);
static void audex_mp3join_seg_free(audex_mp3join_seg_t *seg);
static int audex_mp3join_fail(audex_mp3join_t *jn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


audex_mp3join_t *
audex_mp3join_create(int rate, int frame_samples, audex_sink_t *sink,
    int64_t tag_offset)
{
    audex_mp3join_t  *jn;

    jn = calloc(1, sizeof(audex_mp3join_t));
    if (jn == NULL) {
        return NULL;
    }

    jn->fs = frame_samples;
    jn->maxback = (frame_samples == 1152) ? 511 : 255;
    jn->seconds = 1.0 / rate;

    jn->copy = audex_mp3copy_create(sink, tag_offset);
    if (jn->copy == NULL) {
        free(jn);
        return NULL;
    }

    return jn;
}


int
audex_mp3join_add(audex_mp3join_t *jn, u_char *data, size_t len,
    int64_t start, int64_t nominal, int64_t end, int last, int delay,
    int padding)
{
    int64_t               at;
    audex_mp3join_seg_t  *seg;

    seg = calloc(1, sizeof(audex_mp3join_seg_t));
    if (seg == NULL) {
        free(data);
        return audex_mp3join_fail(jn, "out of memory");
    }

    seg->data = data;
    seg->len = len;
    seg->first = start / jn->fs;
    seg->nominal = nominal;
    seg->end = end;
    seg->last = last;

    if (jn->ended || start % jn->fs != 0 || nominal < start || end < nominal
        || (jn->prev == NULL && nominal != 0)
        || (jn->prev && nominal + jn->fs * (int64_t) AUDEX_MP3JOIN_POSTROLL
                        != jn->prev->end))
    {
        audex_mp3join_seg_free(seg);
        return audex_mp3join_fail(jn, "segments out of order");
    }

    if (audex_mp3join_scan(jn, seg) != 0) {
        audex_mp3join_seg_free(seg);
        return -1;
    }

    if (jn->prev) {
        if (audex_mp3join_join(jn, jn->prev, seg, &at) != 0) {
            audex_mp3join_seg_free(seg);
            return -1;
        }

        audex_mp3join_seg_free(jn->prev);
        jn->next = at;
    }

    jn->prev = seg;

    if (last) {
        jn->ended = 1;
        jn->samples = end;
        jn->stats.delay = delay;
        jn->stats.padding = padding;

        return audex_mp3join_upto(jn, seg, seg->first + seg->nframes);
    }

    /* up to where the next join's window begins */
    return audex_mp3join_upto(jn, seg,
               end / jn->fs - AUDEX_MP3JOIN_POSTROLL - AUDEX_MP3JOIN_WINDOW);
}


static int
audex_mp3join_upto(audex_mp3join_t *jn, audex_mp3join_seg_t *seg,
    int64_t stop)
{
    for ( /* void */ ; jn->next < stop; jn->next++) {
        if (audex_mp3join_append(jn, seg, jn->next - seg->first) != 0) {
            return -1;
        }
    }

    return 0;
}


/* where each frame LAME wrote is, and where its main data is */

static int
audex_mp3join_scan(audex_mp3join_t *jn, audex_mp3join_seg_t *seg)
{
    int                    i, nch, grans, skip, bits, ch, gr;
    size_t                 off, cap;
    uint32_t               h, ps, sum;
    const u_char          *p;
    audex_mp3_header_t     hdr;
    audex_mp3join_frame_t  *f;

    /* the smallest frame: 8 kbit/s at 24 kHz, 24 bytes */
    cap = seg->len / 24 + 16;
    seg->frames = malloc(cap * sizeof(audex_mp3join_frame_t));
    if (seg->frames == NULL) {
        return audex_mp3join_fail(jn, "out of memory");
    }

    ps = 0;

    for (off = 0; off < seg->len; off += hdr.size) {
        p = seg->data + off;

        if (seg->len - off < 4) {
            goto bad;
        }

        h = ((uint32_t) p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3];

        /* LAME writes no CRC unless asked; rewriting one is not done */
        if (audex_mp3_header_parse(h, &hdr) != 0 || !(h & 0x00010000)
            || (size_t) hdr.size > seg->len - off)
        {
            goto bad;
        }

        if (seg->nframes == cap) {
            goto bad;
        }

        f = &seg->frames[seg->nframes++];
        f->off = off;
        f->ps = ps;
        f->size = hdr.size;
        f->cap = hdr.size - 4 - hdr.side_info;

        /* side information: a bit reader over what is needed */
        p += 4;
        nch = hdr.channels;
        grans = hdr.lsf ? 1 : 2;

        if (hdr.lsf) {
            f->mdb = p[0];
            bits = 8 + (nch == 1 ? 1 : 2);

        } else {
            f->mdb = (p[0] << 1) | (p[1] >> 7);
            bits = 9 + (nch == 1 ? 5 : 3) + 4 * nch;
        }

        skip = hdr.lsf ? 51 : 47;
        sum = 0;

        for (gr = 0; gr < grans; gr++) {
            for (ch = 0; ch < nch; ch++) {
                uint32_t  v = 0;

                for (i = 0; i < 12; i++, bits++) {
                    v = (v << 1) | ((p[bits >> 3] >> (7 - (bits & 7))) & 1);
                }

                sum += v;
                bits += skip;
            }
        }

        f->mdlen = (sum + 7) / 8;

        if (f->mdb > ps || f->ps - f->mdb + f->mdlen > f->ps + f->cap) {
            goto bad;
        }

        ps += f->cap;
    }

    return 0;

bad:

    return audex_mp3join_fail(jn, "a segment has a frame at byte %zu that "
                              "cannot be joined", off);
}


/*
 * Lays out a's frames up to the join and returns the stream frame from
 * which b's frames follow: the one nearest b's boundary whose main data
 * can start where b's own encoder started it.
 */

static int
audex_mp3join_join(audex_mp3join_t *jn, audex_mp3join_seg_t *a,
    audex_mp3join_seg_t *b, int64_t *at)
{
    int64_t   j, lo, hi, best, ps, md_end, dist, best_dist;
    int       raised, best_raised;
    int64_t   ok_ps[2 * AUDEX_MP3JOIN_WINDOW + 1];
    int64_t   ok_end[2 * AUDEX_MP3JOIN_WINDOW + 1];
    int       n, i;

    lo = b->nominal / jn->fs - AUDEX_MP3JOIN_WINDOW;
    hi = b->nominal / jn->fs + AUDEX_MP3JOIN_WINDOW;

    if (hi >= b->first + (int64_t) b->nframes
        || hi > a->first + (int64_t) a->nframes)
    {
        return audex_mp3join_fail(jn, "a segment has fewer frames than "
                                 "its join needs");
    }

    /* the layout at each candidate, with a's frames before it */
    ps = jn->ps;
    md_end = jn->md_end;
    n = 0;

    for (j = lo; j <= hi; j++) {
        ok_ps[n] = ps;
        ok_end[n] = md_end;
        n++;

        if (j < hi
            && audex_mp3join_fits(jn, a, j - a->first, &ps, &md_end) != 0)
        {
            break;
        }
    }

    /* the fewest raised frames, then the nearest the boundary */
    best = -1;
    best_dist = 0;
    best_raised = 0;

    for (i = 0; i < n; i++) {
        j = lo + i;

        raised = audex_mp3join_try(jn, b, j - b->first, ok_ps[i], ok_end[i]);
        if (raised < 0) {
            continue;
        }

        dist = j - b->nominal / jn->fs;
        dist = dist < 0 ? -dist : dist;

        if (best < 0 || raised < best_raised
            || (raised == best_raised && dist < best_dist))
        {
            best = j;
            best_dist = dist;
            best_raised = raised;
        }
    }

    if (best < 0) {
        return audex_mp3join_fail(jn, "no frame near the join at %.3f s "
                   "has room for its main data at any bitrate",
                   (double) b->nominal * jn->seconds);
    }

    if (best_raised) {
        jn->stats.tight_joins++;
    }

    for ( /* void */ ; jn->next < best; jn->next++) {
        if (audex_mp3join_append(jn, a, jn->next - a->first) != 0) {
            return -1;
        }
    }

    jn->stats.joins++;
    *at = best;

    audex_log(AUDEX_LOG_DEBUG, NULL, "join at frame %lld of %d samples "
              "(segment boundary %lld)%s", (long long) best, jn->fs,
              (long long) (b->nominal / jn->fs),
              best_raised ? ", frames raised to fit" : "");

    return 0;
}


/*
 * How many of seg's frames from k on need a higher bitrate to fit when
 * the layout is at ps and md_end, until one lays out at least as early as
 * in seg's own stream (then the rest fits as it did there); -1 when one
 * fits at no bitrate.
 */

static int
audex_mp3join_try(audex_mp3join_t *jn, audex_mp3join_seg_t *seg, int64_t k,
    int64_t ps, int64_t md_end)
{
    int                    raised, bi, cap;
    int64_t                start;
    uint32_t               h;
    const u_char          *p;
    audex_mp3_header_t     hdr;
    audex_mp3join_frame_t  *f;

    raised = 0;

    for ( /* void */ ; k < (int64_t) seg->nframes; k++) {
        f = &seg->frames[k];

        start = ps - jn->maxback;
        if (start < md_end) {
            start = md_end;
        }

        if (start <= ps - f->mdb) {
            return raised;
        }

        cap = f->cap;

        if (start + f->mdlen > ps + cap) {
            p = seg->data + f->off;
            h = ((uint32_t) p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
            (void) audex_mp3_header_parse(h, &hdr);

            for (bi = hdr.bitrate_index; start + f->mdlen > ps + cap; bi++) {
                if (bi == 14) {
                    return -1;
                }

                cap = audex_mp3_frame_size(&hdr, bi + 1) - (f->size - f->cap);
            }

            raised++;
        }

        md_end = start + f->mdlen;
        ps += cap;
    }

    return raised;
}


/* the layout after frame k of seg, if it fits without a change: 0 */

static int
audex_mp3join_fits(audex_mp3join_t *jn, audex_mp3join_seg_t *seg, int64_t k,
    int64_t *ps, int64_t *md_end)
{
    int64_t                start;
    audex_mp3join_frame_t  *f;

    f = &seg->frames[k];

    start = *ps - jn->maxback;
    if (start < *md_end) {
        start = *md_end;
    }

    if (start + f->mdlen > *ps + f->cap) {
        return -1;
    }

    *md_end = start + f->mdlen;
    *ps += f->cap;

    return 0;
}


/*
 * Appends frame k of seg to the stream: its header and side information
 * with main_data_begin rewritten, its main data as early as the stream
 * allows.  A frame that does not fit gets the next bitrates up until it
 * does; no CBR or VBR bitrate is below what it needs after that.
 */

static int
audex_mp3join_append(audex_mp3join_t *jn, audex_mp3join_seg_t *seg, int64_t k)
{
    int                    head, cap, size, bi, i;
    size_t                 need, off;
    int64_t                start, from, pos, n;
    uint32_t               h;
    u_char                *p, *side;
    const u_char          *src;
    audex_mp3_header_t     hdr;
    audex_mp3join_frame_t  *f;
    audex_mp3join_slot_t   *s;

    if (k < 0 || k >= (int64_t) seg->nframes) {
        return audex_mp3join_fail(jn, "frame %lld of a segment is missing",
                                 (long long) k);
    }

    f = &seg->frames[k];
    src = seg->data + f->off;
    h = ((uint32_t) src[0] << 24) | (src[1] << 16) | (src[2] << 8) | src[3];
    (void) audex_mp3_header_parse(h, &hdr);

    head = f->size - f->cap;
    size = f->size;
    cap = f->cap;
    bi = hdr.bitrate_index;

    start = jn->ps - jn->maxback;
    if (start < jn->md_end) {
        start = jn->md_end;
    }

    while (start + f->mdlen > jn->ps + cap) {
        if (bi == 14) {
            return audex_mp3join_fail(jn, "a frame's %u bytes of main data "
                                     "fit no bitrate at a join", f->mdlen);
        }

        bi++;
        h = (h & ~(0xfu << 12) & ~(1u << 9)) | ((uint32_t) bi << 12);
        size = audex_mp3_frame_size(&hdr, bi);
        cap = size - head;
    }

    if (bi != hdr.bitrate_index) {
        jn->stats.raised++;
    }

    if (jn->nslots == (int) (sizeof(jn->slot) / sizeof(jn->slot[0]))) {
        return audex_mp3join_fail(jn, "too many frames pending");
    }

    need = jn->out_len + size;
    if (need > jn->out_size) {
        p = realloc(jn->out, need * 2);
        if (p == NULL) {
            return audex_mp3join_fail(jn, "out of memory");
        }

        jn->out = p;
        jn->out_size = need * 2;
    }

    p = jn->out + jn->out_len;
    p[0] = h >> 24;
    p[1] = h >> 16;
    p[2] = h >> 8;
    p[3] = h;
    memcpy(p + 4, src + 4, head - 4);
    memset(p + head, 0, cap);

    side = p + 4;
    n = jn->ps - start;

    if (jn->maxback == 511) {
        side[0] = n >> 1;
        side[1] = (side[1] & 0x7f) | ((n & 1) << 7);

    } else {
        side[0] = n;
    }

    s = &jn->slot[jn->nslots++];
    s->off = jn->out_len;
    s->head = head;
    s->cap = cap;
    s->ps = jn->ps;

    jn->out_len += size;
    jn->ps += cap;

    /* the main data, from the encoder's payload into the stream's */
    from = f->ps - f->mdb;
    pos = start;
    n = f->mdlen;

    while (n > 0) {
        audex_mp3join_frame_t  *sf;
        int64_t                take, soff;

        /* the source frame holding payload byte from */
        for (i = (int) k; i > 0 && seg->frames[i].ps > from; i--) {
            /* void */
        }

        sf = &seg->frames[i];
        soff = from - sf->ps;
        take = sf->cap - soff;

        /* the stream slot holding payload byte pos */
        for (i = jn->nslots - 1; i > 0 && jn->slot[i].ps > pos; i--) {
            /* void */
        }

        s = &jn->slot[i];
        if (take > s->ps + s->cap - pos) {
            take = s->ps + s->cap - pos;
        }

        if (take > n) {
            take = n;
        }

        off = s->off + s->head + (pos - s->ps);
        memcpy(jn->out + off,
               seg->data + sf->off + (sf->size - sf->cap) + soff, take);

        from += take;
        pos += take;
        n -= take;
    }

    jn->md_end = start + f->mdlen;
    jn->frames++;

    return audex_mp3join_emit(jn, 0);
}


/* writes out the frames no later main data can reach */

static int
audex_mp3join_emit(audex_mp3join_t *jn, int all)
{
    int       i, n;
    size_t    bytes;
    int64_t   reach;

    reach = jn->ps - jn->maxback;
    if (reach < jn->md_end) {
        reach = jn->md_end;
    }

    for (n = 0; n < jn->nslots; n++) {
        if (!all && jn->slot[n].ps + jn->slot[n].cap > reach) {
            break;
        }
    }

    if (n == 0) {
        return 0;
    }

    bytes = (n == jn->nslots) ? jn->out_len : jn->slot[n].off;

    if (audex_mp3copy_feed(jn->copy, jn->out, bytes) != 0) {
        return -1;
    }

    memmove(jn->out, jn->out + bytes, jn->out_len - bytes);
    jn->out_len -= bytes;

    for (i = n; i < jn->nslots; i++) {
        jn->slot[i - n] = jn->slot[i];
        jn->slot[i - n].off -= bytes;
    }

    jn->nslots -= n;

    return 0;
}




/*
 * The end: the frames must account for every sample with LAME's delay
 * and padding; then the Info/Xing and LAME frame.
 */

int
audex_mp3join_finish(audex_mp3join_t *jn)
{
    int64_t                 samples;
    audex_mp3copy_stats_t   st;

    if (!jn->ended) {
        return audex_mp3join_fail(jn, "the last segment is missing");
    }

    if (audex_mp3join_emit(jn, 1) != 0) {
        return -1;
    }

    samples = (int64_t) jn->frames * jn->fs;

    if (samples != jn->samples + jn->stats.delay + jn->stats.padding) {
        return audex_mp3join_fail(jn, "%llu frames for %lld samples with "
                   "delay %d and padding %d",
                   (unsigned long long) jn->frames, (long long) jn->samples,
                   jn->stats.delay, jn->stats.padding);
    }

    audex_mp3copy_padding(jn->copy,
                          jn->stats.delay + AUDEX_MP3_DECODER_DELAY,
                          jn->stats.padding - AUDEX_MP3_DECODER_DELAY);

    return audex_mp3copy_finish(jn->copy, &st);
}


void
audex_mp3join_stats(audex_mp3join_t *jn, audex_mp3join_stats_t *st)
{
    *st = jn->stats;
}


const char *
audex_mp3join_error(audex_mp3join_t *jn)
{
    return jn->failed ? jn->error : NULL;
}


void
audex_mp3join_free(audex_mp3join_t *jn)
{
    if (jn == NULL) {
        return;
    }

    if (jn->prev) {
        audex_mp3join_seg_free(jn->prev);
    }

    audex_mp3copy_free(jn->copy);
    free(jn->out);
    free(jn);
}


static void
audex_mp3join_seg_free(audex_mp3join_seg_t *seg)
{
    free(seg->data);
    free(seg->frames);
    free(seg);
}


static int
audex_mp3join_fail(audex_mp3join_t *jn, const char *fmt, ...)
{
    va_list  args;

    jn->failed = 1;

    va_start(args, fmt);
    vsnprintf(jn->error, sizeof(jn->error), fmt, args);
    va_end(args);

    return -1;
}
