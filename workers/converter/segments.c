/*
 * audex-converter: segment jobs, a long conversion spread over the
 * converters of every host (--distribute).
 *
 * The converter that takes a long job cuts it (its coordinator):
 *
 *   hash  audex:segments:<job_id>   plan, then per segment "queued"
 *   XADD  <video stream>.segments   one entry per segment
 *   ...   waits: each segment becomes "ok ..." or "failed ..."
 *   GET   audex:segmp3:<job_id>:<i> in order -> mp3join.c -> GridFS mp3s
 *   DEL   each segment's frames once joined, the hash at the end
 *
 * and every converter's segment threads (--encoders of them) take
 * segment entries from that stream in the converters' consumer group,
 * under the rules whole jobs have: an entry left idle --claim-idle-ms is
 * taken over (XAUTOCLAIM), a running segment keeps its claim alive, after
 * --max-deliveries it fails.  Each segment is read from the video in
 * GridFS by seeking (audex_convert_range()), encoded with its own LAME
 * encoder from AUDEX_MP3JOIN_PREROLL frames before it to
 * AUDEX_MP3JOIN_POSTROLL frames past it, and its frames go to Redis
 * under a key of the job and the index (a retry overwrites them), with
 * an expiry, in one script with its state in the record, which writes
 * neither once the record no longer holds the plan the segment was cut
 * by (an encoder that outlived its job, or a job cut again with other
 * settings): they are a segment's worth of MP3 (1.4 MB a minute at 192
 * kbit/s), taken and deleted by the coordinator as soon as the segments
 * before them are in, so Redis holds the segments done ahead of the
 * join: about one per segment thread while they finish in order, up to
 * the job's MP3 while an early one is slow.  Frames that are gone when
 * their turn comes (expired, evicted) make the coordinator queue that
 * segment again, --max-deliveries times at most.  A converter killed
 * mid-segment costs that segment; a coordinator killed costs the
 * segments it had joined (their frames went into an output that died
 * with it): the job comes back to another converter, which finds the
 * plan and the finished segments in the hash, queues those whose frames
 * are gone again, all at once, and waits for the rest.
 *
 * Only inputs whose timestamps count samples and whose rate MP3 keeps are
 * cut so (audex_convert_probe()): a segment must know to the sample where
 * it is.  The others, and short ones, are converted in one place, with
 * mp3par.c's threads.
 */

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "audex_schema.h"
#include "gridfs.h"
#include "id3.h"
#include "log.h"
#include "mp3.h"
#include "segments.h"
#include "signals.h"


#define AUDEX_SEGMENTS_BLOCK_MS  1000
#define AUDEX_SEGMENTS_POLL_US   250000

/* converter threads named in an MP3's metadata.encoders, at most */
#define AUDEX_SEGMENTS_WHO       64

/* the hash outlives a job that nobody finishes by a week */
#define AUDEX_SEGMENTS_TTL       "604800"

/* keys per DEL when a job's frames are removed */
#define AUDEX_SEGMENTS_DEL_BATCH 64


/*
 * KEYS[1] the job's record, KEYS[2] the segment's frames; ARGV[1] the
 * plan the segment was cut by, ARGV[2] its index, ARGV[3] its state,
 * ARGV[4] its frames (none after a failure), ARGV[5] their expiry: all
 * or nothing, and nothing unless the record still holds that plan
 */
static const char  audex_segments_record_script[] =
    "if redis.call('HGET', KEYS[1], '" AUDEX_F_SEG_PLAN "') ~= ARGV[1] "
    "then return 0 end "
    "if ARGV[4] then "
    "redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5]) end "
    "redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) "
    "return 1";


typedef struct {
    pthread_t                thread;
    int                      index;
    char                     consumer[224];
    audex_redis_t           *redis;
    char                     cursor[48];
    double                   next_autoclaim;
    double                   backoff;
} audex_segments_worker_t;


/* one segment entry being encoded: for the claim's keep-alive */
typedef struct {
    audex_segments_worker_t *w;
    const char              *id;
    audex_source_t          *src;
    double                   last_touch;
    int                      lost;
    int                      reading;       /* past the header */
} audex_segments_task_t;


/* a coordinator's join, segment after segment as they are done */
typedef struct {
    const audex_segments_job_t   *sj;
    const audex_convert_probe_t  *info;
    audex_sink_t                 *sink;
    audex_mp3join_t              *jn;
    int64_t                       len;          /* samples per segment */
    int64_t                       samples;      /* joined so far */
    int                           n;
    int                           fs;
    int                           next;         /* to be joined */
    int                           encoders;
    char                          key[256];     /* the record */
    char                          plan[128];
    int                          *lost;         /* frames gone, times */
    char                          who[AUDEX_SEGMENTS_WHO][64];
} audex_segments_joining_t;


static audex_segments_conf_t     audex_segments_conf;
static audex_segments_worker_t  *audex_segments_workers;
static int                       audex_segments_nworkers;
static uint64_t                  audex_segments_count[3];


static void *audex_segments_thread(void *arg);
static int audex_segments_take(audex_segments_worker_t *w,
    audex_stream_entry_t *e);
static void audex_segments_process(audex_segments_worker_t *w,
    audex_stream_entry_t *e);
static int audex_segments_queue(audex_segments_joining_t *j, int i,
    int again);
static int audex_segments_encode(audex_segments_worker_t *w,
    audex_stream_entry_t *e, audex_mem_sink_t *out,
    audex_convert_result_t *res, audex_convert_error_t *err);
static int audex_segments_touch(void *data, double done);
static int audex_segments_wait(audex_segments_joining_t *j, char **states,
    audex_convert_error_t *err);
static int audex_segments_join_start(audex_segments_joining_t *j,
    audex_convert_result_t *res, audex_convert_error_t *err);
static int audex_segments_join_next(audex_segments_joining_t *j,
    const char *state, audex_convert_error_t *err);
static int audex_segments_join_finish(audex_segments_joining_t *j,
    audex_convert_result_t *res, audex_convert_error_t *err);
static void audex_segments_cleanup(const audex_segments_job_t *sj,
    const char *key, int n);
static int audex_segments_record(audex_redis_t *r, const char *key,
    const char *job_id, const char *plan, const char *index,
    const char *state, audex_mem_sink_t *out);
static void audex_segments_retry(const char *index, const char *why);
static u_char *audex_segments_fetch(audex_redis_t *r, const char *job_id,
    int index, size_t *len, int *gone);
static int audex_segments_has_frames(const audex_segments_job_t *sj,
    int index);
static void audex_segments_mp3_key(char *buf, size_t size,
    const char *job_id, int index);
static char *audex_segments_hget(audex_redis_t *r, const char *key,
    const char *field, int *rc);
static int audex_segments_cmd(audex_redis_t *r, int argc, const char **argv);
static int audex_segments_fail(audex_convert_error_t *err,
    audex_convert_status_e status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static double audex_segments_now(void);


int
audex_segments_start(const audex_segments_conf_t *conf, int threads,
    const char *redis_url)
{
    int                       i;
    char                      err[256];
    audex_segments_worker_t  *w;

    audex_segments_conf = *conf;

    audex_segments_workers = calloc(threads, sizeof(audex_segments_worker_t));
    if (audex_segments_workers == NULL) {
        return -1;
    }

    for (i = 0; i < threads; i++) {
        w = &audex_segments_workers[i];
        w->index = i;
        w->backoff = 0.5;
        snprintf(w->cursor, sizeof(w->cursor), "0-0");
        snprintf(w->consumer, sizeof(w->consumer), "%s-seg%d",
                 conf->consumer, i);

        w->redis = audex_redis_new(redis_url, err, sizeof(err));
        if (w->redis == NULL) {
            audex_log(AUDEX_LOG_ERROR, NULL, "REDIS_URL: %s", err);
            break;
        }

        if (pthread_create(&w->thread, NULL, audex_segments_thread, w) != 0)
        {
            audex_redis_free(w->redis);
            audex_log(AUDEX_LOG_ERROR, NULL, "pthread_create failed");
            break;
        }

        audex_segments_nworkers++;
    }

    return (audex_segments_nworkers == threads) ? 0 : -1;
}


void
audex_segments_stop(void)
{
    int  i;

    for (i = 0; i < audex_segments_nworkers; i++) {
        pthread_join(audex_segments_workers[i].thread, NULL);
        audex_redis_free(audex_segments_workers[i].redis);
    }

    free(audex_segments_workers);
    audex_segments_workers = NULL;
    audex_segments_nworkers = 0;
}


void
audex_segments_counts(uint64_t *ok, uint64_t *failed, uint64_t *retry)
{
    *ok = __atomic_load_n(&audex_segments_count[0], __ATOMIC_RELAXED);
    *failed = __atomic_load_n(&audex_segments_count[1], __ATOMIC_RELAXED);
    *retry = __atomic_load_n(&audex_segments_count[2], __ATOMIC_RELAXED);
}


static void *
audex_segments_thread(void *arg)
{
    int                       rc;
    audex_segments_worker_t  *w = arg;
    audex_stream_entry_t      e;

    memset(&e, 0, sizeof(audex_stream_entry_t));

    while (!audex_stop) {
        if (!audex_redis_connected(w->redis)
            && (audex_redis_connect(w->redis) != 0
                || audex_stream_group_create(w->redis,
                                             audex_segments_conf.stream,
                                             audex_segments_conf.group)
                   != 0))
        {
            audex_log(AUDEX_LOG_WARN, NULL, "%s: redis: %s", w->consumer,
                      audex_redis_error(w->redis));
            usleep((useconds_t) (w->backoff * 1e6));
            w->backoff = (w->backoff < 8) ? w->backoff * 2 : 8;
            continue;
        }

        rc = audex_segments_take(w, &e);

        if (rc < 0) {
            audex_log(AUDEX_LOG_WARN, NULL, "%s: %s", w->consumer,
                      audex_redis_error(w->redis));

            /* an error reply (NOGROUP after a FLUSHALL...) needs setup */
            if (audex_redis_connected(w->redis)) {
                (void) audex_stream_group_create(w->redis,
                                                 audex_segments_conf.stream,
                                                 audex_segments_conf.group);
            }

            usleep((useconds_t) (w->backoff * 1e6));
            w->backoff = (w->backoff < 8) ? w->backoff * 2 : 8;
            continue;
        }

        w->backoff = 0.5;

        if (rc == 1) {
            audex_segments_process(w, &e);
        }

        audex_stream_entry_clear(&e);
    }

    if (audex_redis_connected(w->redis)) {
        audex_stream_consumer_forget(w->redis, audex_segments_conf.stream,
                                     audex_segments_conf.group, w->consumer);
    }

    return NULL;
}


/* segments other consumers left idle first, then new ones */

static int
audex_segments_take(audex_segments_worker_t *w, audex_stream_entry_t *e)
{
    int     rc;
    double  now;

    now = audex_segments_now();

    if (now >= w->next_autoclaim) {
        rc = audex_stream_autoclaim(w->redis, audex_segments_conf.stream,
                                    audex_segments_conf.group, w->consumer,
                                    audex_segments_conf.claim_idle_ms,
                                    w->cursor, e);
        if (rc != 0) {
            return rc;
        }

        if (strcmp(w->cursor, "0-0") == 0) {
            w->next_autoclaim = now
                                + audex_segments_conf.claim_idle_ms / 4000.0;
        }
    }

    return audex_stream_read(w->redis, audex_segments_conf.stream,
                             audex_segments_conf.group, w->consumer,
                             AUDEX_SEGMENTS_BLOCK_MS, e);
}


static void
audex_segments_process(audex_segments_worker_t *w, audex_stream_entry_t *e)
{
    int                      rc, got;
    char                     key[256], state[512], *plan, *done;
    long long                deliveries;
    const char              *job_id, *index, *want;
    audex_mem_sink_t         out;
    audex_convert_error_t    err;
    audex_convert_result_t   res;

    job_id = audex_stream_field(e, AUDEX_F_JOB_ID);
    index = audex_stream_field(e, AUDEX_F_SEG_INDEX);
    want = audex_stream_field(e, AUDEX_F_SEG_PLAN);

    if (job_id == NULL || index == NULL || want == NULL
        || strlen(job_id) > 128)
    {
        audex_log(AUDEX_LOG_ERROR, NULL, "entry %s is not a segment: "
                  "dropped", e->id);
        (void) audex_stream_ack(w->redis, audex_segments_conf.stream,
                                audex_segments_conf.group, e->id);
        return;
    }

    audex_log_job = job_id;
    snprintf(key, sizeof(key), AUDEX_SEGMENTS_KEY_PREFIX "%s", job_id);

    deliveries = audex_stream_deliveries(w->redis,
                                         audex_segments_conf.stream,
                                         audex_segments_conf.group,
                                         w->consumer, e->id);
    if (deliveries <= 0) {
        /* taken over meanwhile, or Redis away: not ours now */
        audex_log_job = NULL;
        return;
    }

    /* a job finished, failed or cut again meanwhile: nothing to do */
    plan = audex_segments_hget(w->redis, key, AUDEX_F_SEG_PLAN, &got);
    if (got < 0) {
        audex_log_job = NULL;
        return;
    }

    if (plan == NULL || strcmp(plan, want) != 0) {
        free(plan);
        audex_log(AUDEX_LOG_INFO, NULL, "segment %s of a job no longer cut "
                  "so: dropped", index);
        (void) audex_stream_ack(w->redis, audex_segments_conf.stream,
                                audex_segments_conf.group, e->id);
        audex_log_job = NULL;
        return;
    }

    free(plan);

    /* encoded already: an entry queued twice, or acknowledged too late */
    done = audex_segments_hget(w->redis, key, index, &got);
    if (got < 0) {
        audex_log_job = NULL;
        return;
    }

    if (done != NULL && strncmp(done, "ok ", 3) == 0) {
        free(done);
        (void) audex_stream_ack(w->redis, audex_segments_conf.stream,
                                audex_segments_conf.group, e->id);
        audex_log_job = NULL;
        return;
    }

    free(done);

    audex_mem_sink_init(&out);

    if (deliveries > audex_segments_conf.max_deliveries) {
        snprintf(state, sizeof(state), "failed gave up on segment %s after "
                 "%lld deliveries", index, deliveries - 1);
        rc = -1;

    } else {
        audex_log(AUDEX_LOG_INFO, NULL, "encoding segment %s (entry %s, "
                  "delivery %lld)", index, e->id, deliveries);

        rc = audex_segments_encode(w, e, &out, &res, &err);

        if (rc == 0) {
            snprintf(state, sizeof(state), "ok %lld %d %d %s",
                     (long long) res.samples, res.delay, res.padding,
                     w->consumer);

        } else if (rc == 1) {
            /* passing trouble, or the claim was lost: it comes back */
            out.sink.close(&out.sink);
            audex_segments_retry(index, err.message);
            audex_log_job = NULL;
            return;

        } else {
            snprintf(state, sizeof(state), "failed segment %s: %s [%s]",
                     index, err.message,
                     audex_convert_status_name(err.status));
        }
    }

    got = audex_segments_record(w->redis, key, job_id, want, index, state,
                                (rc == 0) ? &out : NULL);
    out.sink.close(&out.sink);

    if (got < 0) {
        /* Redis away, or full (noeviction): the segment comes back */
        snprintf(state, sizeof(state), "recording: %s",
                 audex_redis_error(w->redis));
        audex_segments_retry(index, state);
        audex_log_job = NULL;
        return;
    }

    if (audex_stream_ack(w->redis, audex_segments_conf.stream,
                         audex_segments_conf.group, e->id)
        != 0)
    {
        audex_log(AUDEX_LOG_WARN, NULL, "segment %s: acknowledging: %s",
                  index, audex_redis_error(w->redis));
        audex_log_job = NULL;
        return;
    }

    if (got == 0) {
        audex_log(AUDEX_LOG_INFO, NULL, "segment %s: its job was finished "
                  "or cut again meanwhile: dropped", index);
        audex_log_job = NULL;
        return;
    }

    __atomic_add_fetch(&audex_segments_count[rc == 0 ? 0 : 1], 1,
                       __ATOMIC_RELAXED);

    audex_log(rc == 0 ? AUDEX_LOG_INFO : AUDEX_LOG_WARN, NULL,
              "segment %s: %s", index, state);
    audex_log_job = NULL;
}


/* 0 encoded; 1 worth a retry; -1 a permanent failure */

static int
audex_segments_encode(audex_segments_worker_t *w, audex_stream_entry_t *e,
    audex_mem_sink_t *out, audex_convert_result_t *res,
    audex_convert_error_t *err)
{
    int                      rc, i;
    char                     msg[256];
    long long                v[4];
    bson_oid_t               video;
    const char              *f[4], *s, *fid;
    audex_source_t          *src;
    mongoc_client_t         *mongo;
    audex_io_status_e        status;
    audex_convert_opts_t     opts;
    audex_convert_range_t    range;
    audex_segments_task_t    task;

    memset(err, 0, sizeof(audex_convert_error_t));

    f[0] = AUDEX_F_SEG_START;
    f[1] = AUDEX_F_SEG_END;
    f[2] = AUDEX_F_BITRATE;
    f[3] = AUDEX_F_QUALITY;

    for (i = 0; i < 4; i++) {
        s = audex_stream_field(e, f[i]);
        if (s == NULL || sscanf(s, "%lld", &v[i]) != 1) {
            audex_segments_fail(err, AUDEX_CONVERT_INTERNAL, "no %s", f[i]);
            return -1;
        }
    }

    fid = audex_stream_field(e, AUDEX_F_VIDEO_FID);
    if (fid == NULL || !bson_oid_is_valid(fid, strlen(fid))) {
        audex_segments_fail(err, AUDEX_CONVERT_INTERNAL, "no video_fid");
        return -1;
    }

    bson_oid_init_from_string(&video, fid);

    mongo = mongoc_client_pool_pop(audex_segments_conf.pool);

    src = audex_gridfs_source_open(mongo, audex_segments_conf.pool,
                                   audex_segments_conf.db,
                                   AUDEX_BUCKET_VIDEOS, &video, &status,
                                   msg, sizeof(msg));
    if (src == NULL) {
        mongoc_client_pool_push(audex_segments_conf.pool, mongo);
        audex_segments_fail(err, status == AUDEX_IO_TRANSIENT
                                 ? AUDEX_CONVERT_IO : AUDEX_CONVERT_NOT_FOUND,
                            "%s", msg);
        return (status == AUDEX_IO_TRANSIENT) ? 1 : -1;
    }

    /*
     * this converter's other segments of the job read the same header:
     * the chunks read until the first packet of the range (the header,
     * the range's first chunk) go through the chunk cache, the range's
     * others not, lest they push the header out
     */
    audex_gridfs_source_share(src, 1);

    task.w = w;
    task.id = e->id;
    task.src = src;
    task.last_touch = audex_segments_now();
    task.lost = 0;
    task.reading = 0;

    memset(&opts, 0, sizeof(audex_convert_opts_t));
    opts.bitrate = (int) v[2];
    opts.quality = (int) v[3];
    opts.name = audex_stream_field(e, AUDEX_F_FILENAME);
    opts.progress = audex_segments_touch;
    opts.progress_data = &task;

    range.start = v[0];
    range.end = v[1];

    rc = audex_convert_range(src, &out->sink, &opts, &range, res, err);

    src->close(src);
    mongoc_client_pool_push(audex_segments_conf.pool, mongo);

    if (rc == 0) {
        return 0;
    }

    if (task.lost || err->status == AUDEX_CONVERT_CANCELLED
        || !audex_convert_status_permanent(err->status))
    {
        return (err->status == AUDEX_CONVERT_INTERNAL && !task.lost) ? -1 : 1;
    }

    return -1;
}


/* keeps the segment's claim alive; a stop or a lost claim cancels */

static int
audex_segments_touch(void *data, double done)
{
    int                     rc;
    double                  now;
    audex_segments_task_t  *t = data;

    if (!t->reading) {
        t->reading = 1;
        audex_gridfs_source_share(t->src, 0);
    }

    if (audex_stop) {
        return 1;
    }

    now = audex_segments_now();

    if (now - t->last_touch < audex_segments_conf.claim_idle_ms / 3000.0) {
        return 0;
    }

    t->last_touch = now;

    rc = audex_stream_touch(t->w->redis, audex_segments_conf.stream,
                            audex_segments_conf.group, t->w->consumer,
                            t->id);
    if (rc == 0) {
        t->lost = 1;
        return 1;
    }

    return 0;
}


int
audex_segments_convert(const audex_segments_job_t *sj,
    const audex_convert_probe_t *info, audex_sink_t *sink,
    audex_convert_result_t *res, audex_convert_error_t *err)
{
    int                        i, n, fs, frames, got, rc, again;
    char                       num[16], *old;
    char                     **states;
    int64_t                    len;
    const char                *argv[4];
    audex_segments_joining_t   j;

    memset(res, 0, sizeof(audex_convert_result_t));
    memset(err, 0, sizeof(audex_convert_error_t));

    fs = (info->rate >= 32000) ? 1152 : 576;
    frames = (int) (audex_segments_conf.segment * info->rate / fs + 0.5);
    if (frames < 8 * AUDEX_MP3JOIN_PREROLL) {
        frames = 8 * AUDEX_MP3JOIN_PREROLL;
    }

    len = (int64_t) frames * fs;

    /* the last segment takes the rest: between one and two lengths */
    n = (int) (info->duration * info->rate / len);
    if (n < 2) {
        return audex_segments_fail(err, AUDEX_CONVERT_INTERNAL,
                                   "too short to cut");
    }

    memset(&j, 0, sizeof(audex_segments_joining_t));
    j.sj = sj;
    j.info = info;
    j.sink = sink;
    j.len = len;
    j.n = n;
    j.fs = fs;

    snprintf(j.key, sizeof(j.key), AUDEX_SEGMENTS_KEY_PREFIX "%s",
             sj->job_id);
    snprintf(j.plan, sizeof(j.plan), "%lld/%d/%d/%d/%d", (long long) len, n,
             info->rate, sj->bitrate, sj->quality);

    /* a plan of an earlier attempt with other settings is void */
    old = audex_segments_hget(sj->redis, j.key, AUDEX_F_SEG_PLAN, &got);
    if (got < 0) {
        return audex_segments_fail(err, AUDEX_CONVERT_IO, "redis: %s",
                                   audex_redis_error(sj->redis));
    }

    if (old == NULL || strcmp(old, j.plan) != 0) {
        argv[0] = "DEL";
        argv[1] = j.key;
        rc = audex_segments_cmd(sj->redis, 2, argv);

        argv[0] = "HSET";
        argv[2] = AUDEX_F_SEG_PLAN;
        argv[3] = j.plan;
        if (rc == 0) {
            rc = audex_segments_cmd(sj->redis, 4, argv);
        }

        argv[0] = "EXPIRE";
        argv[2] = AUDEX_SEGMENTS_TTL;
        if (rc == 0) {
            rc = audex_segments_cmd(sj->redis, 3, argv);
        }

        if (rc != 0) {
            free(old);
            return audex_segments_fail(err, AUDEX_CONVERT_IO, "redis: %s",
                                       audex_redis_error(sj->redis));
        }
    }

    free(old);

    /*
     * Queued once.  An earlier attempt's segments: one that failed is
     * queued again, and so is one done whose frames are gone (joined into
     * an output that died with its coordinator, or expired), all now,
     * not one by one as the join reaches them.
     */
    again = 0;

    for (i = 0; i < n; i++) {
        snprintf(num, sizeof(num), "%d", i);

        old = audex_segments_hget(sj->redis, j.key, num, &got);
        if (got < 0) {
            return audex_segments_fail(err, AUDEX_CONVERT_IO, "redis: %s",
                                       audex_redis_error(sj->redis));
        }

        rc = 0;

        if (old != NULL && strncmp(old, "ok ", 3) == 0) {
            rc = audex_segments_has_frames(sj, i);
            if (rc == 0) {
                again++;
            }
        }

        if (rc == 0 && (old == NULL || strncmp(old, "queued", 6) != 0)) {
            rc = audex_segments_queue(&j, i, old != NULL);
        }

        free(old);

        if (rc < 0) {
            return audex_segments_fail(err, AUDEX_CONVERT_IO, "redis: %s",
                                       audex_redis_error(sj->redis));
        }
    }

    if (again > 0) {
        audex_log(AUDEX_LOG_INFO, NULL, "%d segment(s) done before but "
                  "their frames are gone: queued again", again);
    }

    audex_log(AUDEX_LOG_INFO, NULL, "cut into %d segments of %.1f s on %s",
              n, (double) len / info->rate, audex_segments_conf.stream);

    states = calloc(n, sizeof(char *));
    j.lost = calloc(n, sizeof(int));
    if (states == NULL || j.lost == NULL) {
        free(states);
        free(j.lost);
        return audex_segments_fail(err, AUDEX_CONVERT_INTERNAL,
                                   "out of memory");
    }

    rc = audex_segments_join_start(&j, res, err);

    if (rc == 0) {
        rc = audex_segments_wait(&j, states, err);
    }

    if (rc == 0) {
        rc = audex_segments_join_finish(&j, res, err);
    }

    audex_mp3join_free(j.jn);

    /* a cancelled job comes back and finds what was done; others not */
    if (rc == 0 || err->status != AUDEX_CONVERT_CANCELLED) {
        audex_segments_cleanup(sj, j.key, n);
    }

    for (i = 0; i < n; i++) {
        free(states[i]);
    }

    free(states);
    free(j.lost);

    return rc;
}


/*
 * Segment i's entry on the stream, and "queued" in the record after it,
 * unless its encoder has said "ok" already.  A segment there already
 * ("failed", or "ok" with its frames gone) loses its old state first, so
 * that it is not read after the new entry.  A coordinator dying in
 * between leaves the segment without a state, and the next one queues it
 * again: an entry too many, which the thread that takes it finds "ok"
 * and drops, never an entry too few.
 */

static int
audex_segments_queue(audex_segments_joining_t *j, int i, int again)
{
    int                          rc;
    char                         num[16], start[24], end[24], br[16];
    char                         q[16], fid[25];
    int64_t                      nominal, first;
    const char                  *argv[4], *keys[9], *values[9];
    const audex_segments_job_t  *sj = j->sj;

    snprintf(num, sizeof(num), "%d", i);

    nominal = (int64_t) i * j->len;
    first = nominal - (int64_t) AUDEX_MP3JOIN_PREROLL * j->fs;
    snprintf(start, sizeof(start), "%lld",
             (long long) (first < 0 ? 0 : first));
    snprintf(end, sizeof(end), "%lld", (i == j->n - 1) ? -1LL
             : (long long) (nominal + j->len
                            + (int64_t) AUDEX_MP3JOIN_POSTROLL * j->fs));

    bson_oid_to_string(sj->video_fid, fid);
    snprintf(br, sizeof(br), "%d", sj->bitrate);
    snprintf(q, sizeof(q), "%d", sj->quality);

    keys[0] = AUDEX_F_JOB_ID;            values[0] = sj->job_id;
    keys[1] = AUDEX_F_VIDEO_FID;         values[1] = fid;
    keys[2] = AUDEX_F_SEG_PLAN;          values[2] = j->plan;
    keys[3] = AUDEX_F_SEG_INDEX;         values[3] = num;
    keys[4] = AUDEX_F_SEG_START;         values[4] = start;
    keys[5] = AUDEX_F_SEG_END;           values[5] = end;
    keys[6] = AUDEX_F_BITRATE;           values[6] = br;
    keys[7] = AUDEX_F_QUALITY;           values[7] = q;
    keys[8] = AUDEX_F_FILENAME;          values[8] = sj->filename
                                                     ? sj->filename : "";

    argv[1] = j->key;
    argv[2] = num;
    argv[3] = "queued";
    rc = 0;

    if (again) {
        argv[0] = "HDEL";
        rc = audex_segments_cmd(sj->redis, 3, argv);
    }

    if (rc == 0) {
        rc = audex_stream_add(sj->redis, audex_segments_conf.stream, 9,
                              keys, values);
    }

    if (rc == 0) {
        argv[0] = "HSETNX";
        rc = audex_segments_cmd(sj->redis, 4, argv);
    }

    return rc;
}


/*
 * Until every segment is "ok" and joined, or one failed: each segment is
 * joined as soon as it and those before it are done, so that the join
 * runs while the later segments are encoded.  A segment whose frames are
 * gone from Redis (expired, evicted) is queued again.
 */

static int
audex_segments_wait(audex_segments_joining_t *j, char **states,
    audex_convert_error_t *err)
{
    int                          i, ok, rc;
    size_t                       k;
    redisReply                  *r;
    const char                  *argv[2];
    const audex_segments_job_t  *sj = j->sj;

    argv[0] = "HGETALL";
    argv[1] = j->key;

    for ( ;; ) {
        r = audex_redis_cmd(sj->redis, 2, argv);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            if (r) {
                freeReplyObject(r);
            }

            /* Redis away: keep the claim and try again */
            audex_redis_connect(sj->redis);
            ok = -1;

        } else {
            ok = 0;

            for (k = 0; k + 1 < r->elements; k += 2) {
                const char  *f = r->element[k]->str;
                const char  *v = r->element[k + 1]->str;

                if (f == NULL || v == NULL || f[0] < '0' || f[0] > '9') {
                    continue;
                }

                i = atoi(f);
                if (i < 0 || i >= j->n) {
                    continue;
                }

                if (strncmp(v, "failed", 6) == 0) {
                    audex_segments_fail(err, strstr(v, "[corrupt]")
                                             ? AUDEX_CONVERT_CORRUPT
                                             : AUDEX_CONVERT_INTERNAL,
                                        "%s", v + 7);
                    freeReplyObject(r);
                    return -1;
                }

                if (strncmp(v, "ok ", 3) == 0) {
                    if (states[i] == NULL && i >= j->next) {
                        states[i] = strdup(v + 3);
                        if (states[i] == NULL) {
                            freeReplyObject(r);
                            return audex_segments_fail(err,
                                       AUDEX_CONVERT_INTERNAL,
                                       "out of memory");
                        }
                    }

                    ok++;
                }
            }

            if (r->elements == 0) {
                freeReplyObject(r);
                return audex_segments_fail(err, AUDEX_CONVERT_IO, "the "
                           "segments' record is gone");
            }

            freeReplyObject(r);

            while (j->next < j->n && states[j->next] != NULL) {
                rc = audex_segments_join_next(j, states[j->next], err);

                if (rc == 2) {
                    /* Redis away: the same segment on the next round */
                    audex_log(AUDEX_LOG_WARN, NULL, "segment %d: %s",
                              j->next, audex_redis_error(sj->redis));
                    audex_redis_connect(sj->redis);
                    break;
                }

                if (rc == 1) {
                    if (++j->lost[j->next]
                        > audex_segments_conf.max_deliveries)
                    {
                        return audex_segments_fail(err, AUDEX_CONVERT_IO,
                                   "segment %d: its frames were gone from "
                                   "redis %d times (is redis evicting "
                                   "keys? it needs maxmemory-policy "
                                   "noeviction)", j->next,
                                   j->lost[j->next]);
                    }

                    audex_log(AUDEX_LOG_WARN, NULL, "segment %d: its frames "
                              "are gone from redis: queued again", j->next);

                    free(states[j->next]);
                    states[j->next] = NULL;

                    if (audex_segments_queue(j, j->next, 1) != 0) {
                        audex_redis_connect(sj->redis);
                    }

                    break;
                }

                if (rc != 0) {
                    return -1;
                }
            }

            if (j->next == j->n) {
                return 0;
            }
        }

        if (sj->progress(sj->progress_data,
                         0.98 * (ok < 0 ? 0 : ok) / j->n) != 0)
        {
            return audex_segments_fail(err, AUDEX_CONVERT_CANCELLED,
                                       "cancelled");
        }

        usleep(AUDEX_SEGMENTS_POLL_US);
    }
}


/* the bitrate the segments have, the ID3 tag, the joiner */

static int
audex_segments_join_start(audex_segments_joining_t *j,
    audex_convert_result_t *res, audex_convert_error_t *err)
{
    char                         msg[256];
    u_char                       tag[AUDEX_ID3_TAG_MAX];
    size_t                       tlen;
    audex_mp3_enc_t             *probe;
    const audex_segments_job_t  *sj = j->sj;

    probe = audex_mp3_enc_create(j->info->rate, j->info->channels,
                                 sj->quality >= 0 ? 0
                                 : sj->bitrate > 0 ? sj->bitrate
                                 : AUDEX_CONVERT_DEFAULT_BITRATE,
                                 sj->quality, 0, msg, sizeof(msg));
    if (probe == NULL) {
        return audex_segments_fail(err, AUDEX_CONVERT_INTERNAL, "%s", msg);
    }

    res->bitrate = audex_mp3_enc_bitrate(probe);
    audex_mp3_enc_free(probe);

    tlen = audex_id3_build(tag, sizeof(tag), sj->title, "audex");

    if (tlen > 0 && j->sink->write(j->sink, tag, tlen) != 0) {
        return audex_segments_fail(err, AUDEX_CONVERT_IO, "writing the "
                                   "output: %s", j->sink->error);
    }

    j->jn = audex_mp3join_create(j->info->rate, j->fs, j->sink,
                                 (int64_t) tlen);
    if (j->jn == NULL) {
        return audex_segments_fail(err, AUDEX_CONVERT_INTERNAL,
                                   "out of memory");
    }

    return 0;
}


/*
 * Segment j->next, whose state is "<samples> <delay> <padding> <who>":
 * 0 joined, 1 its frames are gone, 2 Redis failed (nothing joined: try
 * again), -1 with err set
 */

static int
audex_segments_join_next(audex_segments_joining_t *j, const char *state,
    audex_convert_error_t *err)
{
    int          i, w, delay, padding, gone;
    char         who[64], mkey[320];
    u_char      *data;
    size_t       dlen;
    int64_t      nominal, first, end;
    long long    s;
    const char  *e, *argv[2];

    i = j->next;

    if (sscanf(state, "%lld %d %d %63s", &s, &delay, &padding, who) != 4) {
        return audex_segments_fail(err, AUDEX_CONVERT_INTERNAL,
                                   "segment %d: bad record", i);
    }

    /* which converter threads took part, for the MP3's metadata */
    for (w = 0; w < j->encoders && strcmp(j->who[w], who) != 0; w++) {
        /* void */
    }

    if (w == j->encoders && j->encoders < AUDEX_SEGMENTS_WHO) {
        snprintf(j->who[j->encoders++], sizeof(j->who[0]), "%s", who);
    }

    data = audex_segments_fetch(j->sj->redis, j->sj->job_id, i, &dlen,
                                &gone);
    if (data == NULL) {
        if (gone < 0) {
            return audex_segments_fail(err, AUDEX_CONVERT_INTERNAL,
                                       "segment %d: out of memory", i);
        }

        return gone ? 1 : 2;
    }

    nominal = (int64_t) i * j->len;
    first = nominal - (int64_t) AUDEX_MP3JOIN_PREROLL * j->fs;
    if (first < 0) {
        first = 0;
    }

    end = (i == j->n - 1) ? first + s
          : nominal + j->len + (int64_t) AUDEX_MP3JOIN_POSTROLL * j->fs;
    j->samples = end;

    if (audex_mp3join_add(j->jn, data, dlen, first, nominal, end,
                          i == j->n - 1, delay, padding)
        != 0)
    {
        e = audex_mp3join_error(j->jn);
        return audex_segments_fail(err, e ? AUDEX_CONVERT_INTERNAL
                                          : AUDEX_CONVERT_IO,
                                   "joining segment %d: %s", i,
                                   e ? e : j->sink->error);
    }

    /* joined: its frames are in the output now */
    audex_segments_mp3_key(mkey, sizeof(mkey), j->sj->job_id, i);
    argv[0] = "DEL";
    argv[1] = mkey;
    (void) audex_segments_cmd(j->sj->redis, 2, argv);

    j->next++;

    return 0;
}


static int
audex_segments_join_finish(audex_segments_joining_t *j,
    audex_convert_result_t *res, audex_convert_error_t *err)
{
    const char             *e;
    audex_mp3join_stats_t   st;

    if (audex_mp3join_finish(j->jn) != 0 || j->sink->finish(j->sink) != 0) {
        e = audex_mp3join_error(j->jn);
        return audex_segments_fail(err, e ? AUDEX_CONVERT_INTERNAL
                                          : AUDEX_CONVERT_IO,
                                   "joining: %s", e ? e : j->sink->error);
    }

    audex_mp3join_stats(j->jn, &st);

    res->sample_rate = j->info->rate;
    res->channels = j->info->channels;
    res->quality = j->sj->quality;
    res->duration = (double) j->samples / j->info->rate;
    res->bytes_out = j->sink->bytes_written;
    res->encoders = j->encoders;
    res->segments = j->n;
    res->raised = st.raised;
    snprintf(res->codec, sizeof(res->codec), "%s", j->info->codec);

    audex_log(AUDEX_LOG_INFO, NULL, "joined %d segments from %d "
              "converter thread(s), %llu frames raised to fit", j->n,
              j->encoders, (unsigned long long) st.raised);

    return 0;
}


/* the record and the frames of segments not joined (a failed job's) */

static void
audex_segments_cleanup(const audex_segments_job_t *sj, const char *key,
    int n)
{
    int          i, k;
    char         keys[AUDEX_SEGMENTS_DEL_BATCH][320];
    const char  *argv[AUDEX_SEGMENTS_DEL_BATCH + 1];

    argv[0] = "DEL";

    for (i = 0; i < n; i += k) {
        for (k = 0; k < AUDEX_SEGMENTS_DEL_BATCH && i + k < n; k++) {
            audex_segments_mp3_key(keys[k], sizeof(keys[k]), sj->job_id,
                                   i + k);
            argv[k + 1] = keys[k];
        }

        if (audex_segments_cmd(sj->redis, k + 1, argv) != 0) {
            audex_log(AUDEX_LOG_WARN, NULL, "removing the segments' "
                      "frames: %s (they expire)",
                      audex_redis_error(sj->redis));
            break;
        }
    }

    argv[1] = key;
    (void) audex_segments_cmd(sj->redis, 2, argv);
}


/*
 * A segment's state, and its frames if it was encoded, where its
 * coordinator, on any host, takes them: 1; 0 if the record no longer
 * holds the plan the segment was cut by (the job finished, failed, or
 * was cut again with other settings: an encoder that outlived it writes
 * neither over the new plan's frames nor a record nobody removes); -1
 * on a Redis error.  The frames expire, so that those of a job nobody
 * finishes do not stay.
 */

static int
audex_segments_record(audex_redis_t *r, const char *key,
    const char *job_id, const char *plan, const char *index,
    const char *state, audex_mem_sink_t *out)
{
    int          i, argc, rc;
    char         mkey[320];
    size_t       lens[10];
    redisReply  *reply;
    const char  *argv[10];

    audex_segments_mp3_key(mkey, sizeof(mkey), job_id, atoi(index));

    argv[0] = "EVAL";
    argv[1] = audex_segments_record_script;
    argv[2] = "2";
    argv[3] = key;
    argv[4] = mkey;
    argv[5] = plan;
    argv[6] = index;
    argv[7] = state;
    argc = 8;

    if (out != NULL) {
        argv[8] = out->data ? (const char *) out->data : "";
        argv[9] = AUDEX_SEGMENT_MP3_TTL;
        argc = 10;
    }

    for (i = 0; i < argc; i++) {
        lens[i] = (i == 8) ? out->len : strlen(argv[i]);
    }

    reply = audex_redis_cmd_len(r, argc, argv, lens);
    if (reply == NULL) {
        return -1;
    }

    rc = (reply->type == REDIS_REPLY_INTEGER) ? (int) reply->integer : -1;
    freeReplyObject(reply);

    return rc;
}


/* a segment left for another delivery: counted and logged */

static void
audex_segments_retry(const char *index, const char *why)
{
    __atomic_add_fetch(&audex_segments_count[2], 1, __ATOMIC_RELAXED);
    audex_log(AUDEX_LOG_WARN, NULL, "segment %s: %s (left for a retry)",
              index, why);
}


/*
 * A segment's frames (the caller frees them), or NULL: *gone 1 when
 * there are none, -1 out of memory, 0 a Redis error
 */

static u_char *
audex_segments_fetch(audex_redis_t *r, const char *job_id, int index,
    size_t *len, int *gone)
{
    char         key[320];
    u_char      *data;
    redisReply  *reply;
    const char  *argv[2];

    *gone = 0;

    audex_segments_mp3_key(key, sizeof(key), job_id, index);

    argv[0] = "GET";
    argv[1] = key;

    reply = audex_redis_cmd(r, 2, argv);
    if (reply == NULL) {
        return NULL;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        *gone = 1;
        freeReplyObject(reply);
        return NULL;
    }

    /* the joiner frees what it is given: a copy of hiredis's buffer */
    data = malloc(reply->len ? reply->len : 1);
    if (data != NULL) {
        memcpy(data, reply->str, reply->len);
        *len = reply->len;

    } else {
        *gone = -1;
    }

    freeReplyObject(reply);

    return data;
}


/* 1 segment index's frames are in Redis, 0 not, -1 an error */

static int
audex_segments_has_frames(const audex_segments_job_t *sj, int index)
{
    int          rc;
    char         key[320];
    redisReply  *reply;
    const char  *argv[2];

    audex_segments_mp3_key(key, sizeof(key), sj->job_id, index);

    argv[0] = "EXISTS";
    argv[1] = key;

    reply = audex_redis_cmd(sj->redis, 2, argv);
    if (reply == NULL) {
        return -1;
    }

    rc = (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0);
    freeReplyObject(reply);

    return rc;
}


static void
audex_segments_mp3_key(char *buf, size_t size, const char *job_id,
    int index)
{
    snprintf(buf, size, AUDEX_SEGMENT_MP3_KEY_PREFIX "%s:%d", job_id, index);
}


/* HGET: the value (the caller frees it) or NULL; *rc 0, or -1 on error */

static char *
audex_segments_hget(audex_redis_t *r, const char *key, const char *field,
    int *rc)
{
    char        *v;
    redisReply  *reply;
    const char  *argv[3];

    argv[0] = "HGET";
    argv[1] = key;
    argv[2] = field;

    reply = audex_redis_cmd(r, 3, argv);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        if (reply) {
            freeReplyObject(reply);
        }

        *rc = -1;
        return NULL;
    }

    *rc = 0;
    v = (reply->type == REDIS_REPLY_STRING) ? strdup(reply->str) : NULL;
    freeReplyObject(reply);

    return v;
}


static int
audex_segments_cmd(audex_redis_t *r, int argc, const char **argv)
{
    int          rc;
    redisReply  *reply;

    reply = audex_redis_cmd(r, argc, argv);
    if (reply == NULL) {
        return -1;
    }

    rc = (reply->type == REDIS_REPLY_ERROR) ? -1 : 0;
    freeReplyObject(reply);

    return rc;
}


static int
audex_segments_fail(audex_convert_error_t *err,
    audex_convert_status_e status, const char *fmt, ...)
{
    va_list  args;

    err->status = status;

    va_start(args, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, args);
    va_end(args);

    return -1;
}


static double
audex_segments_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}
