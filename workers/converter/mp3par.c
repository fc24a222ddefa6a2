/*
 * audex-converter: segment-parallel MP3 encoding, see mp3.h.
 *
 * LAME is single-threaded, so a long input is cut into segments of
 * conf->segment seconds, each encoded by its own LAME encoder in its own
 * thread, conf->encoders at a time, and the frames are joined into one
 * stream on the caller's thread.  Segments are short and fixed (not one
 * per core), so what is held in memory is a few segments of PCM and of
 * MP3 however long the input is.
 *
 * Three things make the joins inaudible and the stream valid:
 *
 * - Pre-roll.  A segment's encoder starts AUDEX_MP3PAR_PREROLL frames
 *   before the segment, on the real audio, and those frames are dropped:
 *   by the join its psychoacoustic model, filters and bit reservoir are
 *   warm, as a single encoder's would be.  Every encoder starts on a frame
 *   boundary of the whole input, and LAME's delay is the same in each, so
 *   frame j of a segment's encoder is frame first + j of the stream.
 *
 * - The bit reservoir.  A Layer III frame's main data may begin up to 511
 *   bytes (255 for MPEG-2) before its header, in earlier frames.  The
 *   first frame kept from a segment points back into its pre-roll frames,
 *   which are not in the stream.  So frames are not copied as they are:
 *   each frame's main data is cut out of its encoder's stream and laid
 *   out again, as early as the stream allows, with main_data_begin
 *   rewritten.  Where a frame lays out at least as early as in its own
 *   encoder's stream, everything after it fits too; the join is the frame,
 *   among AUDEX_MP3PAR_WINDOW either side of the segment boundary (where
 *   both encoders ran on real audio), nearest the boundary for which that
 *   holds.  When none does, the frame that does not fit gets the next
 *   bitrate up, which adds room (counted in the result).
 *
 * - One Info/Xing frame with the LAME extension (mp3copy.c) for the whole
 *   stream: frame count, seek table, encoder delay and padding, so players
 *   are gapless and seek correctly.
 *
 * Post-roll: the encoder of the segment before a join runs on
 * AUDEX_MP3PAR_POSTROLL frames past it, so the frames it gives up to the
 * join never see the zeros its flush pads with.
 */

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mp3.h"


#define AUDEX_MP3PAR_PREROLL   24
#define AUDEX_MP3PAR_POSTROLL  12
#define AUDEX_MP3PAR_WINDOW    8

/* the fewest frames a segment has: the rolls must stay a small part */
#define AUDEX_MP3PAR_MIN_FRAMES  (8 * AUDEX_MP3PAR_PREROLL)

/* what an MP3 decoder adds in front by itself, counted in skip samples */
#define AUDEX_MP3_DECODER_DELAY  529

#if AUDEX_MP3PAR_WINDOW + 4 > AUDEX_MP3PAR_POSTROLL \
    || AUDEX_MP3PAR_WINDOW + 16 > AUDEX_MP3PAR_PREROLL
#error "the join window must lie where both encoders ran on real audio"
#endif


typedef struct {
    uint32_t                off;        /* in the segment's bytes */
    uint32_t                ps;         /* payload bytes before it */
    uint16_t                size;
    uint16_t                cap;        /* payload: after side info */
    uint16_t                mdb;        /* main_data_begin */
    uint16_t                mdlen;      /* main data, bytes */
} audex_mp3par_frame_t;


typedef struct audex_mp3par_seg_s  audex_mp3par_seg_t;

struct audex_mp3par_seg_s {
    audex_mp3par_seg_t     *next;
    audex_mp3par_t         *par;

    int64_t                 nominal;    /* first sample it stands for */
    int64_t                 start;      /* first sample fed: pre-roll */
    int64_t                 end;        /* feeding stops here */
    int64_t                 filled;     /* samples fed */
    float                  *pcm[2];
    int                     last;       /* flushed into the stream's end */
    int                     running;    /* its thread was started */
    int                     done;       /* its thread has finished */
    int                     joined;     /* pthread_join()ed */
    pthread_t               tid;

    /* LAME's output, frames back to back, and where each one is */
    audex_sink_t            sink;
    u_char                 *data;
    size_t                  len;
    size_t                  size;
    audex_mp3par_frame_t   *frames;
    size_t                  nframes;
    int64_t                 first;      /* stream frame of frames[0] */

    int                     delay;
    int                     padding;
    char                    error[160];
};


/* a frame laid out, kept until no later main data can reach into it */
typedef struct {
    size_t                  off;        /* in out */
    int                     head;       /* header and side info */
    int                     cap;
    int64_t                 ps;
} audex_mp3par_slot_t;


struct audex_mp3par_s {
    audex_mp3par_conf_t     conf;
    audex_sink_t           *sink;
    audex_mp3copy_t        *copy;

    int                     fs;         /* samples per frame */
    int64_t                 seg_samples;
    int                     maxback;

    pthread_mutex_t         lock;
    pthread_cond_t          cond;
    int                     running;
    int                     cancel;

    audex_mp3par_seg_t     *head;       /* oldest segment not yet joined */
    audex_mp3par_seg_t     *tail;
    int                     live;
    int64_t                 opened;     /* segments opened so far */
    int64_t                 pos;        /* samples received */

    /* the segment being joined and its next frame (a stream index) */
    int64_t                 next;

    /* the layout: pending frames, payload bytes, where main data ends */
    u_char                 *out;
    size_t                  out_len;
    size_t                  out_size;
    audex_mp3par_slot_t     slot[64];
    int                     nslots;
    int64_t                 ps;
    int64_t                 md_end;
    uint64_t                frames;

    audex_mp3par_stats_t    stats;

    /* a failure of ours (not of the sink): what audex_mp3par_error() says */
    int                     failed;
    char                    error[160];
};


static int audex_mp3par_open(audex_mp3par_t *par);
static int audex_mp3par_submit(audex_mp3par_t *par, audex_mp3par_seg_t *seg);
static void *audex_mp3par_run(void *data);
static int audex_mp3par_encode_seg(audex_mp3par_seg_t *seg);
static int audex_mp3par_scan(audex_mp3par_seg_t *seg);
static int audex_mp3par_advance(audex_mp3par_t *par, int wait);
static int audex_mp3par_join(audex_mp3par_t *par, audex_mp3par_seg_t *a,
    audex_mp3par_seg_t *b, int64_t *at);
static int audex_mp3par_try(audex_mp3par_t *par, audex_mp3par_seg_t *seg,
    int64_t k, int64_t ps, int64_t md_end);
static int audex_mp3par_fits(audex_mp3par_t *par, audex_mp3par_seg_t *seg,
    int64_t k, int64_t *ps, int64_t *md_end);
static int audex_mp3par_append(audex_mp3par_t *par, audex_mp3par_seg_t *seg,
    int64_t k);
static int audex_mp3par_emit(audex_mp3par_t *par, int all);
static int audex_mp3par_pending(audex_mp3par_t *par);
static void audex_mp3par_reap(audex_mp3par_seg_t *seg);
static void audex_mp3par_drop(audex_mp3par_t *par);
static int audex_mp3par_fail(audex_mp3par_t *par, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int audex_mp3par_seg_write(audex_sink_t *sink, const u_char *buf,
    size_t n);
static void audex_mp3par_seg_free(audex_mp3par_seg_t *seg);


audex_mp3par_t *
audex_mp3par_create(const audex_mp3par_conf_t *conf, audex_sink_t *sink,
    int64_t tag_offset, char *err, size_t errlen)
{
    int               frames;
    audex_mp3par_t   *par;
    audex_mp3_enc_t  *probe;

    /* the same settings the segments will have, checked once here */
    probe = audex_mp3_enc_create(conf->rate, conf->channels, conf->bitrate,
                                 conf->quality, 0, err, errlen);
    if (probe == NULL) {
        return NULL;
    }

    par = calloc(1, sizeof(audex_mp3par_t));
    if (par == NULL) {
        audex_mp3_enc_free(probe);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    par->conf = *conf;
    par->sink = sink;
    par->fs = audex_mp3_enc_frame_samples(probe);
    par->maxback = (par->fs == 1152) ? 511 : 255;
    par->stats.bitrate = audex_mp3_enc_bitrate(probe);
    audex_mp3_enc_free(probe);

    if (par->conf.encoders < 1) {
        par->conf.encoders = 1;
    }

    frames = (int) (conf->segment * conf->rate / par->fs + 0.5);
    if (frames < AUDEX_MP3PAR_MIN_FRAMES) {
        frames = AUDEX_MP3PAR_MIN_FRAMES;
    }

    par->seg_samples = (int64_t) frames * par->fs;

    par->copy = audex_mp3copy_create(sink, tag_offset);
    if (par->copy == NULL) {
        free(par);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    pthread_mutex_init(&par->lock, NULL);
    pthread_cond_init(&par->cond, NULL);

    return par;
}


/*
 * Hands samples to the segments that cover them: at most two at a time,
 * the one being filled and, in its last frames, the next one's pre-roll.
 */

int
audex_mp3par_encode(audex_mp3par_t *par, const float *left,
    const float *right, int nsamples)
{
    int64_t              m, stop, next_start;
    audex_mp3par_seg_t  *seg, *n;

    while (nsamples > 0) {
        next_start = par->opened * par->seg_samples
                     - (int64_t) AUDEX_MP3PAR_PREROLL * par->fs;

        if (par->pos >= next_start && audex_mp3par_open(par) != 0) {
            return -1;
        }

        next_start = par->opened * par->seg_samples
                     - (int64_t) AUDEX_MP3PAR_PREROLL * par->fs;

        stop = par->pos + nsamples;
        if (stop > next_start) {
            stop = next_start;
        }

        for (seg = par->head; seg; seg = seg->next) {
            if (!seg->running && !seg->done && seg->end < stop) {
                stop = seg->end;
            }
        }

        m = stop - par->pos;

        for (seg = par->head; seg; seg = n) {
            n = seg->next;

            if (seg->running || seg->done) {
                continue;
            }

            memcpy(seg->pcm[0] + seg->filled, left, m * sizeof(float));
            if (par->conf.channels == 2) {
                memcpy(seg->pcm[1] + seg->filled, right, m * sizeof(float));
            }

            seg->filled += m;

            if (seg->start + seg->filled == seg->end
                && audex_mp3par_submit(par, seg) != 0)
            {
                return -1;
            }
        }

        par->pos += m;
        nsamples -= m;
        left += m;
        if (par->conf.channels == 2) {
            right += m;
        }
    }

    return audex_mp3par_advance(par, 0);
}


/* a new segment, once fewer than encoders + 2 are in memory */

static int
audex_mp3par_open(audex_mp3par_t *par)
{
    int64_t              frames;
    audex_mp3par_seg_t  *seg;

    /* encoders running and one done: more would only wait in memory */
    while (audex_mp3par_pending(par) > par->conf.encoders) {
        if (audex_mp3par_advance(par, 1) != 0) {
            return -1;
        }
    }

    seg = calloc(1, sizeof(audex_mp3par_seg_t));
    if (seg == NULL) {
        return audex_mp3par_fail(par, "out of memory");
    }

    seg->par = par;
    seg->nominal = par->opened * par->seg_samples;
    seg->start = seg->nominal - (int64_t) AUDEX_MP3PAR_PREROLL * par->fs;
    if (seg->start < 0) {
        seg->start = 0;
    }

    seg->end = seg->nominal + par->seg_samples
               + (int64_t) AUDEX_MP3PAR_POSTROLL * par->fs;
    seg->first = seg->start / par->fs;

    frames = seg->end - seg->start;
    seg->pcm[0] = malloc(frames * sizeof(float) * par->conf.channels);
    if (seg->pcm[0] == NULL) {
        free(seg);
        return audex_mp3par_fail(par, "out of memory");
    }

    seg->pcm[1] = (par->conf.channels == 2) ? seg->pcm[0] + frames : NULL;

    seg->sink.write = audex_mp3par_seg_write;

    if (par->tail) {
        par->tail->next = seg;

    } else {
        par->head = seg;
        par->next = 0;
    }

    par->tail = seg;
    par->live++;
    par->opened++;

    return 0;
}


/* starts the segment's encoder thread, once fewer than encoders run */

static int
audex_mp3par_submit(audex_mp3par_t *par, audex_mp3par_seg_t *seg)
{
    int  rc;

    pthread_mutex_lock(&par->lock);

    while (par->running >= par->conf.encoders) {
        pthread_cond_wait(&par->cond, &par->lock);
    }

    par->running++;
    seg->running = 1;

    rc = pthread_create(&seg->tid, NULL, audex_mp3par_run, seg);
    if (rc != 0) {
        par->running--;
        seg->running = 0;
    }

    pthread_mutex_unlock(&par->lock);

    if (rc != 0) {
        return audex_mp3par_fail(par, "cannot start an encoder thread: %s",
                                 strerror(rc));
    }

    par->stats.segments++;

    return 0;
}


static void *
audex_mp3par_run(void *data)
{
    audex_mp3par_seg_t  *seg = data;
    audex_mp3par_t      *par = seg->par;

    if (audex_mp3par_encode_seg(seg) == 0) {
        (void) audex_mp3par_scan(seg);
    }

    free(seg->pcm[0]);
    seg->pcm[0] = NULL;
    seg->pcm[1] = NULL;

    pthread_mutex_lock(&par->lock);
    seg->done = 1;
    par->running--;
    pthread_cond_broadcast(&par->cond);
    pthread_mutex_unlock(&par->lock);

    return NULL;
}


static int
audex_mp3par_encode_seg(audex_mp3par_seg_t *seg)
{
    int               n;
    int64_t           at;
    audex_mp3par_t   *par = seg->par;
    audex_mp3_enc_t  *enc;

    enc = audex_mp3_enc_create(par->conf.rate, par->conf.channels,
                               par->conf.bitrate, par->conf.quality, 0,
                               seg->error, sizeof(seg->error));
    if (enc == NULL) {
        return -1;
    }

    /* in slices, so a cancelled conversion stops within one */
    for (at = 0; at < seg->filled; at += n) {
        if (__atomic_load_n(&par->cancel, __ATOMIC_RELAXED)) {
            snprintf(seg->error, sizeof(seg->error), "cancelled");
            audex_mp3_enc_free(enc);
            return -1;
        }

        n = (seg->filled - at > 65536) ? 65536 : (int) (seg->filled - at);

        if (audex_mp3_enc_encode(enc, seg->pcm[0] + at,
                                 seg->pcm[1] ? seg->pcm[1] + at : NULL, n,
                                 &seg->sink)
            != 0)
        {
            snprintf(seg->error, sizeof(seg->error), "%s", seg->sink.error);
            audex_mp3_enc_free(enc);
            return -1;
        }
    }

    if (audex_mp3_enc_flush(enc, &seg->sink) != 0) {
        snprintf(seg->error, sizeof(seg->error), "%s", seg->sink.error);
        audex_mp3_enc_free(enc);
        return -1;
    }

    audex_mp3_enc_delays(enc, &seg->delay, &seg->padding);
    audex_mp3_enc_free(enc);

    return 0;
}


/* where each frame LAME wrote is, and where its main data is */

static int
audex_mp3par_scan(audex_mp3par_seg_t *seg)
{
    int                    i, nch, grans, skip, bits, ch, gr;
    size_t                 off, cap;
    uint32_t               h, ps, sum;
    const u_char          *p;
    audex_mp3_header_t     hdr;
    audex_mp3par_frame_t  *f;

    /* the smallest frame: 8 kbit/s at 24 kHz, 24 bytes */
    cap = seg->len / 24 + 16;
    seg->frames = malloc(cap * sizeof(audex_mp3par_frame_t));
    if (seg->frames == NULL) {
        snprintf(seg->error, sizeof(seg->error), "out of memory");
        return -1;
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

    snprintf(seg->error, sizeof(seg->error), "LAME wrote a frame at byte "
             "%zu that cannot be joined", off);
    return -1;
}


/*
 * Joins what the finished segments allow, oldest first; wait: block
 * until the oldest segment is done when nothing could be joined.
 */

static int
audex_mp3par_advance(audex_mp3par_t *par, int wait)
{
    int                  progressed, done;
    int64_t              stop, at;
    audex_mp3par_seg_t  *a, *b;

    for ( ;; ) {
        a = par->head;
        if (a == NULL || (!a->running && !a->done)) {
            return 0;
        }

        pthread_mutex_lock(&par->lock);
        while (wait && !a->done) {
            pthread_cond_wait(&par->cond, &par->lock);
        }

        done = a->done;
        pthread_mutex_unlock(&par->lock);

        if (!done) {
            return 0;
        }

        audex_mp3par_reap(a);

        if (a->frames == NULL) {
            return audex_mp3par_fail(par, "encoding a segment: %s",
                                     a->error);
        }

        if (par->next < a->first) {
            par->next = a->first;
        }

        progressed = 0;
        b = a->next;

        if (a->last) {
            stop = a->first + a->nframes;
            par->stats.delay = a->delay;
            par->stats.padding = a->padding;

        } else {
            /* up to the window, or through the join when b is there */
            stop = b->nominal / par->fs - AUDEX_MP3PAR_WINDOW;

            pthread_mutex_lock(&par->lock);
            done = b->done;
            pthread_mutex_unlock(&par->lock);

            if (done) {
                audex_mp3par_reap(b);

                if (b->frames == NULL) {
                    return audex_mp3par_fail(par, "encoding a segment: %s",
                                             b->error);
                }
            }
        }

        for ( /* void */ ; par->next < stop; par->next++) {
            if (audex_mp3par_append(par, a, par->next - a->first) != 0) {
                return -1;
            }

            progressed = 1;
        }

        if (!a->last) {
            if (!done) {
                if (!progressed && wait && b->running) {
                    /* the next segment is needed: wait for it instead */
                    pthread_mutex_lock(&par->lock);
                    while (!b->done) {
                        pthread_cond_wait(&par->cond, &par->lock);
                    }
                    pthread_mutex_unlock(&par->lock);
                    continue;
                }

                return 0;
            }

            if (audex_mp3par_join(par, a, b, &at) != 0) {
                return -1;
            }

            par->next = at;
        }

        par->head = a->next;
        if (par->head == NULL) {
            par->tail = NULL;
        }

        par->live--;
        audex_mp3par_seg_free(a);

        if (par->head == NULL) {
            return 0;
        }

        wait = 0;
    }
}


/*
 * Lays out a's frames up to the join and returns the stream frame from
 * which b's frames follow: the one nearest b's boundary whose main data
 * can start where b's own encoder started it.
 */

static int
audex_mp3par_join(audex_mp3par_t *par, audex_mp3par_seg_t *a,
    audex_mp3par_seg_t *b, int64_t *at)
{
    int64_t   j, lo, hi, best, ps, md_end, dist, best_dist;
    int       raised, best_raised;
    int64_t   ok_ps[2 * AUDEX_MP3PAR_WINDOW + 1];
    int64_t   ok_end[2 * AUDEX_MP3PAR_WINDOW + 1];
    int       n, i;

    lo = b->nominal / par->fs - AUDEX_MP3PAR_WINDOW;
    hi = b->nominal / par->fs + AUDEX_MP3PAR_WINDOW;

    if (hi >= b->first + (int64_t) b->nframes
        || hi > a->first + (int64_t) a->nframes)
    {
        return audex_mp3par_fail(par, "a segment has fewer frames than "
                                 "its join needs");
    }

    /* the layout at each candidate, with a's frames before it */
    ps = par->ps;
    md_end = par->md_end;
    n = 0;

    for (j = lo; j <= hi; j++) {
        ok_ps[n] = ps;
        ok_end[n] = md_end;
        n++;

        if (j < hi
            && audex_mp3par_fits(par, a, j - a->first, &ps, &md_end) != 0)
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

        raised = audex_mp3par_try(par, b, j - b->first, ok_ps[i], ok_end[i]);
        if (raised < 0) {
            continue;
        }

        dist = j - b->nominal / par->fs;
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
        return audex_mp3par_fail(par, "no frame near the join at %.3f s "
                   "has room for its main data at any bitrate",
                   (double) b->nominal / par->conf.rate);
    }

    if (best_raised) {
        par->stats.tight_joins++;
    }

    for ( /* void */ ; par->next < best; par->next++) {
        if (audex_mp3par_append(par, a, par->next - a->first) != 0) {
            return -1;
        }
    }

    par->stats.joins++;
    *at = best;

    audex_log(AUDEX_LOG_DEBUG, NULL, "join at frame %lld of %d samples "
              "(segment boundary %lld)%s", (long long) best, par->fs,
              (long long) (b->nominal / par->fs),
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
audex_mp3par_try(audex_mp3par_t *par, audex_mp3par_seg_t *seg, int64_t k,
    int64_t ps, int64_t md_end)
{
    int                    raised, bi, cap;
    int64_t                start;
    uint32_t               h;
    const u_char          *p;
    audex_mp3_header_t     hdr;
    audex_mp3par_frame_t  *f;

    raised = 0;

    for ( /* void */ ; k < (int64_t) seg->nframes; k++) {
        f = &seg->frames[k];

        start = ps - par->maxback;
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
audex_mp3par_fits(audex_mp3par_t *par, audex_mp3par_seg_t *seg, int64_t k,
    int64_t *ps, int64_t *md_end)
{
    int64_t                start;
    audex_mp3par_frame_t  *f;

    f = &seg->frames[k];

    start = *ps - par->maxback;
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
audex_mp3par_append(audex_mp3par_t *par, audex_mp3par_seg_t *seg, int64_t k)
{
    int                    head, cap, size, bi, i;
    size_t                 need, off;
    int64_t                start, from, pos, n;
    uint32_t               h;
    u_char                *p, *side;
    const u_char          *src;
    audex_mp3_header_t     hdr;
    audex_mp3par_frame_t  *f;
    audex_mp3par_slot_t   *s;

    if (k < 0 || k >= (int64_t) seg->nframes) {
        return audex_mp3par_fail(par, "frame %lld of a segment is missing",
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

    start = par->ps - par->maxback;
    if (start < par->md_end) {
        start = par->md_end;
    }

    while (start + f->mdlen > par->ps + cap) {
        if (bi == 14) {
            return audex_mp3par_fail(par, "a frame's %u bytes of main data "
                                     "fit no bitrate at a join", f->mdlen);
        }

        bi++;
        h = (h & ~(0xfu << 12) & ~(1u << 9)) | ((uint32_t) bi << 12);
        size = audex_mp3_frame_size(&hdr, bi);
        cap = size - head;
    }

    if (bi != hdr.bitrate_index) {
        par->stats.raised++;
    }

    if (par->nslots == (int) (sizeof(par->slot) / sizeof(par->slot[0]))) {
        return audex_mp3par_fail(par, "too many frames pending");
    }

    need = par->out_len + size;
    if (need > par->out_size) {
        p = realloc(par->out, need * 2);
        if (p == NULL) {
            return audex_mp3par_fail(par, "out of memory");
        }

        par->out = p;
        par->out_size = need * 2;
    }

    p = par->out + par->out_len;
    p[0] = h >> 24;
    p[1] = h >> 16;
    p[2] = h >> 8;
    p[3] = h;
    memcpy(p + 4, src + 4, head - 4);
    memset(p + head, 0, cap);

    side = p + 4;
    n = par->ps - start;

    if (par->maxback == 511) {
        side[0] = n >> 1;
        side[1] = (side[1] & 0x7f) | ((n & 1) << 7);

    } else {
        side[0] = n;
    }

    s = &par->slot[par->nslots++];
    s->off = par->out_len;
    s->head = head;
    s->cap = cap;
    s->ps = par->ps;

    par->out_len += size;
    par->ps += cap;

    /* the main data, from the encoder's payload into the stream's */
    from = f->ps - f->mdb;
    pos = start;
    n = f->mdlen;

    while (n > 0) {
        audex_mp3par_frame_t  *sf;
        int64_t                take, soff;

        /* the source frame holding payload byte from */
        for (i = (int) k; i > 0 && seg->frames[i].ps > from; i--) {
            /* void */
        }

        sf = &seg->frames[i];
        soff = from - sf->ps;
        take = sf->cap - soff;

        /* the stream slot holding payload byte pos */
        for (i = par->nslots - 1; i > 0 && par->slot[i].ps > pos; i--) {
            /* void */
        }

        s = &par->slot[i];
        if (take > s->ps + s->cap - pos) {
            take = s->ps + s->cap - pos;
        }

        if (take > n) {
            take = n;
        }

        off = s->off + s->head + (pos - s->ps);
        memcpy(par->out + off,
               seg->data + sf->off + (sf->size - sf->cap) + soff, take);

        from += take;
        pos += take;
        n -= take;
    }

    par->md_end = start + f->mdlen;
    par->frames++;

    return audex_mp3par_emit(par, 0);
}


/* writes out the frames no later main data can reach */

static int
audex_mp3par_emit(audex_mp3par_t *par, int all)
{
    int       i, n;
    size_t    bytes;
    int64_t   reach;

    reach = par->ps - par->maxback;
    if (reach < par->md_end) {
        reach = par->md_end;
    }

    for (n = 0; n < par->nslots; n++) {
        if (!all && par->slot[n].ps + par->slot[n].cap > reach) {
            break;
        }
    }

    if (n == 0) {
        return 0;
    }

    bytes = (n == par->nslots) ? par->out_len : par->slot[n].off;

    if (audex_mp3copy_feed(par->copy, par->out, bytes) != 0) {
        return -1;
    }

    memmove(par->out, par->out + bytes, par->out_len - bytes);
    par->out_len -= bytes;

    for (i = n; i < par->nslots; i++) {
        par->slot[i - n] = par->slot[i];
        par->slot[i - n].off -= bytes;
    }

    par->nslots -= n;

    return 0;
}


/*
 * The end of the input: the oldest segment still being fed takes the
 * rest and is flushed into the stream's end; one opened only for its
 * pre-roll is not needed.
 */

int
audex_mp3par_finish(audex_mp3par_t *par)
{
    int64_t                 samples;
    audex_mp3par_seg_t     *seg, *last;
    audex_mp3copy_stats_t   st;

    last = NULL;

    for (seg = par->head; seg; seg = seg->next) {
        if (!seg->running && !seg->done) {
            last = seg;
            break;
        }
    }

    if (last == NULL) {
        return audex_mp3par_fail(par, "no audio to encode");
    }

    while (last->next) {
        seg = last->next;
        last->next = seg->next;
        audex_mp3par_seg_free(seg);
        par->live--;
        par->opened--;
    }

    par->tail = last;
    last->last = 1;
    last->end = last->start + last->filled;

    if (audex_mp3par_submit(par, last) != 0) {
        return -1;
    }

    while (par->head) {
        if (audex_mp3par_advance(par, 1) != 0) {
            return -1;
        }
    }

    if (audex_mp3par_emit(par, 1) != 0) {
        return -1;
    }

    /* the frames must account for every sample, LAME's delay and padding */
    samples = (int64_t) par->frames * par->fs;

    if (samples != par->pos + par->stats.delay + par->stats.padding) {
        return audex_mp3par_fail(par, "%llu frames for %lld samples with "
                   "delay %d and padding %d",
                   (unsigned long long) par->frames, (long long) par->pos,
                   par->stats.delay, par->stats.padding);
    }

    audex_mp3copy_padding(par->copy,
                          par->stats.delay + AUDEX_MP3_DECODER_DELAY,
                          par->stats.padding - AUDEX_MP3_DECODER_DELAY);

    if (audex_mp3copy_finish(par->copy, &st) != 0) {
        return -1;
    }

    return 0;
}


void
audex_mp3par_stats(audex_mp3par_t *par, audex_mp3par_stats_t *st)
{
    *st = par->stats;
}


void
audex_mp3par_free(audex_mp3par_t *par)
{
    if (par == NULL) {
        return;
    }

    __atomic_store_n(&par->cancel, 1, __ATOMIC_RELAXED);
    audex_mp3par_drop(par);

    audex_mp3copy_free(par->copy);
    pthread_mutex_destroy(&par->lock);
    pthread_cond_destroy(&par->cond);
    free(par->out);
    free(par);
}


/* segments handed to an encoder and not joined yet */

static int
audex_mp3par_pending(audex_mp3par_t *par)
{
    int                  n;
    audex_mp3par_seg_t  *seg;

    n = 0;

    for (seg = par->head; seg; seg = seg->next) {
        n += seg->running;
    }

    return n;
}


static void
audex_mp3par_reap(audex_mp3par_seg_t *seg)
{
    if (seg->running && !seg->joined) {
        pthread_join(seg->tid, NULL);
        seg->joined = 1;
    }
}


/* every segment, its thread stopped first */

static void
audex_mp3par_drop(audex_mp3par_t *par)
{
    audex_mp3par_seg_t  *seg;

    while (par->head) {
        seg = par->head;
        par->head = seg->next;

        audex_mp3par_reap(seg);
        audex_mp3par_seg_free(seg);
    }

    par->tail = NULL;
    par->live = 0;
}


static int
audex_mp3par_fail(audex_mp3par_t *par, const char *fmt, ...)
{
    va_list  args;

    par->failed = 1;

    va_start(args, fmt);
    vsnprintf(par->error, sizeof(par->error), fmt, args);
    va_end(args);

    return -1;
}


const char *
audex_mp3par_error(audex_mp3par_t *par)
{
    return par->failed ? par->error : NULL;
}


static int
audex_mp3par_seg_write(audex_sink_t *sink, const u_char *buf, size_t n)
{
    size_t               size;
    u_char              *p;
    audex_mp3par_seg_t  *seg;

    seg = (audex_mp3par_seg_t *) ((u_char *) sink
                                  - offsetof(audex_mp3par_seg_t, sink));

    if (seg->len + n > seg->size) {
        size = seg->size ? seg->size * 2 : 256 * 1024;
        while (size < seg->len + n) {
            size *= 2;
        }

        p = realloc(seg->data, size);
        if (p == NULL) {
            sink->status = AUDEX_IO_PERMANENT;
            snprintf(sink->error, sizeof(sink->error), "out of memory");
            return -1;
        }

        seg->data = p;
        seg->size = size;
    }

    memcpy(seg->data + seg->len, buf, n);
    seg->len += n;
    sink->bytes_written += n;

    return 0;
}


static void
audex_mp3par_seg_free(audex_mp3par_seg_t *seg)
{
    free(seg->pcm[0]);
    free(seg->data);
    free(seg->frames);
    free(seg);
}
