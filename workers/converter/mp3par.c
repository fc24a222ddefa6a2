/*
 * audex-converter: segment-parallel MP3 encoding, see mp3.h.
 *
 * LAME is single-threaded, so a long input is cut into segments of
 * conf->segment seconds, each encoded by its own LAME encoder in its own
 * thread, conf->encoders at a time, and joined into one stream by
 * mp3join.c on the caller's thread, in order, as they finish.  Segments
 * are short and fixed (not one per core), so what is held in memory is a
 * few segments of PCM and of MP3 however long the input is.
 *
 * A segment's encoder starts AUDEX_MP3JOIN_PREROLL frames before the
 * segment, on the real audio, so that by the segment its psychoacoustic
 * model, filters and bit reservoir are warm as a single encoder's would
 * be; it runs on AUDEX_MP3JOIN_POSTROLL frames past it, so the frames up
 * to the join never see the zeros its flush pads with.  Every encoder
 * starts on a frame boundary of the whole input.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mp3.h"


/* the fewest frames a segment has: the rolls must stay a small part */
#define AUDEX_MP3PAR_MIN_FRAMES  (8 * AUDEX_MP3JOIN_PREROLL)


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
    int                     ok;         /* encoded */
    pthread_t               tid;

    /* LAME's output, frames back to back */
    audex_mem_sink_t        out;

    int                     delay;
    int                     padding;
    char                    error[160];
};


struct audex_mp3par_s {
    audex_mp3par_conf_t     conf;
    audex_mp3join_t        *join;

    int                     fs;         /* samples per frame */
    int64_t                 seg_samples;

    pthread_mutex_t         lock;
    pthread_cond_t          cond;
    int                     running;
    int                     cancel;

    audex_mp3par_seg_t     *head;       /* oldest segment not yet joined */
    audex_mp3par_seg_t     *tail;
    int64_t                 opened;     /* segments opened so far */
    int64_t                 pos;        /* samples received */

    audex_mp3par_stats_t    stats;

    /* a failure of ours (not of the sink) */
    int                     failed;
    char                    error[160];
};


static int audex_mp3par_open(audex_mp3par_t *par);
static int audex_mp3par_submit(audex_mp3par_t *par, audex_mp3par_seg_t *seg);
static void *audex_mp3par_run(void *data);
static int audex_mp3par_encode_seg(audex_mp3par_seg_t *seg);
static int audex_mp3par_advance(audex_mp3par_t *par, int wait);
static int audex_mp3par_pending(audex_mp3par_t *par);
static void audex_mp3par_reap(audex_mp3par_seg_t *seg);
static void audex_mp3par_drop(audex_mp3par_t *par);
static int audex_mp3par_fail(audex_mp3par_t *par, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
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
    par->fs = audex_mp3_enc_frame_samples(probe);
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

    par->join = audex_mp3join_create(conf->rate, par->fs, sink, tag_offset);
    if (par->join == NULL) {
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
                     - (int64_t) AUDEX_MP3JOIN_PREROLL * par->fs;

        if (par->pos >= next_start && audex_mp3par_open(par) != 0) {
            return -1;
        }

        next_start = par->opened * par->seg_samples
                     - (int64_t) AUDEX_MP3JOIN_PREROLL * par->fs;

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
    seg->start = seg->nominal - (int64_t) AUDEX_MP3JOIN_PREROLL * par->fs;
    if (seg->start < 0) {
        seg->start = 0;
    }

    seg->end = seg->nominal + par->seg_samples
               + (int64_t) AUDEX_MP3JOIN_POSTROLL * par->fs;

    frames = seg->end - seg->start;
    seg->pcm[0] = malloc(frames * sizeof(float) * par->conf.channels);
    if (seg->pcm[0] == NULL) {
        free(seg);
        return audex_mp3par_fail(par, "out of memory");
    }

    seg->pcm[1] = (par->conf.channels == 2) ? seg->pcm[0] + frames : NULL;

    audex_mem_sink_init(&seg->out);

    if (par->tail) {
        par->tail->next = seg;

    } else {
        par->head = seg;
    }

    par->tail = seg;
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

    seg->ok = (audex_mp3par_encode_seg(seg) == 0);

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
                                 &seg->out.sink)
            != 0)
        {
            snprintf(seg->error, sizeof(seg->error), "%s", seg->out.sink.error);
            audex_mp3_enc_free(enc);
            return -1;
        }
    }

    if (audex_mp3_enc_flush(enc, &seg->out.sink) != 0) {
        snprintf(seg->error, sizeof(seg->error), "%s", seg->out.sink.error);
        audex_mp3_enc_free(enc);
        return -1;
    }

    audex_mp3_enc_delays(enc, &seg->delay, &seg->padding);
    audex_mp3_enc_free(enc);

    return 0;
}


/*
 * Hands the finished segments to the joiner, oldest first; wait: block
 * until the oldest one is done.
 */

static int
audex_mp3par_advance(audex_mp3par_t *par, int wait)
{
    int                  done;
    size_t               len;
    u_char              *data;
    audex_mp3par_seg_t  *seg;

    while ((seg = par->head) && seg->running) {
        pthread_mutex_lock(&par->lock);
        while (wait && !seg->done) {
            pthread_cond_wait(&par->cond, &par->lock);
        }

        done = seg->done;
        pthread_mutex_unlock(&par->lock);

        if (!done) {
            return 0;
        }

        audex_mp3par_reap(seg);

        if (!seg->ok) {
            return audex_mp3par_fail(par, "encoding a segment: %s",
                                     seg->error);
        }

        if (seg->last) {
            par->stats.delay = seg->delay;
            par->stats.padding = seg->padding;
        }

        par->head = seg->next;
        if (par->head == NULL) {
            par->tail = NULL;
        }

        /* the joiner owns the frames from here, even when it fails */
        data = audex_mem_sink_take(&seg->out, &len);

        if (audex_mp3join_add(par->join, data, len, seg->start,
                              seg->nominal, seg->end, seg->last,
                              seg->delay, seg->padding)
            != 0)
        {
            audex_mp3par_seg_free(seg);
            return audex_mp3par_fail(par, "%s",
                                     audex_mp3join_error(par->join));
        }

        audex_mp3par_seg_free(seg);
        wait = 0;
    }

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
    const char           *e;
    audex_mp3par_seg_t   *seg, *last;
    audex_mp3join_stats_t st;

    last = NULL;

    for (seg = par->head; seg; seg = seg->next) {
        if (!seg->running) {
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

    if (audex_mp3join_finish(par->join) != 0) {
        e = audex_mp3join_error(par->join);
        return e ? audex_mp3par_fail(par, "%s", e) : -1;
    }

    audex_mp3join_stats(par->join, &st);
    par->stats.joins = st.joins;
    par->stats.tight_joins = st.tight_joins;
    par->stats.raised = st.raised;

    return 0;
}


void
audex_mp3par_stats(audex_mp3par_t *par, audex_mp3par_stats_t *st)
{
    *st = par->stats;
}


const char *
audex_mp3par_error(audex_mp3par_t *par)
{
    return par->failed ? par->error : NULL;
}


void
audex_mp3par_free(audex_mp3par_t *par)
{
    if (par == NULL) {
        return;
    }

    __atomic_store_n(&par->cancel, 1, __ATOMIC_RELAXED);
    audex_mp3par_drop(par);

    audex_mp3join_free(par->join);
    pthread_mutex_destroy(&par->lock);
    pthread_cond_destroy(&par->cond);
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


static void
audex_mp3par_seg_free(audex_mp3par_seg_t *seg)
{
    free(seg->pcm[0]);
    seg->out.sink.close(&seg->out.sink);
    free(seg);
}
