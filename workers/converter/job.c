/*
 * audex-converter: the job loop.
 *
 *   audex-converter [run] [--jobs N] [--video-queue S] ...   see --help
 *
 * Each of --jobs threads owns a Redis connection and, per job, a MongoDB
 * client from a shared pool.  A thread takes a job over from a consumer
 * that left it idle (XAUTOCLAIM) or reads a new one (XREADGROUP, blocking
 * one second at most so that SIGTERM is noticed), then:
 *
 *   jobs.<id>: queued -> converting (progress about once a second)
 *   GridFS videos/<video_fid> -> audex_convert() -> GridFS mp3s/<mp3 id>
 *   jobs.<id>: -> done, mp3_fid          or  -> failed, error
 *   XADD MP3_QUEUE (on success), XACK
 *
 * The MP3 id is derived from the job id, so a retry overwrites an earlier
 * attempt instead of adding a second file.  Permanent errors (no audio,
 * unsupported codec, corrupt input, missing video) fail the job at once.
 * Transient ones leave the entry pending: it comes back when its claim
 * times out.  An attempt that failed because MongoDB was unreachable does
 * not count; other deliveries do (a worker that crashed on a poisonous
 * file counts too), and after --max-deliveries the entry goes to the
 * dead-letter stream and the job fails.  During a job the claim is kept
 * alive; if another consumer took it over anyway, this one gives up.
 *
 * SIGTERM: no new jobs; a job that will be done within --stop-grace
 * seconds is finished, any other is released (its delivery not counted)
 * for another worker; then exit 0.  A second signal exits at once.
 *
 * Delivery is at least once: a crash between "done" and XACK makes the
 * job come back, find itself done and be announced again.  MP3_QUEUE
 * consumers should treat job_id as the key.
 */

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>
#include <openssl/evp.h>

#include "config.h"
#include "convert.h"
#include "audex_store.h"
#include "audex_upload_opts.h"
#include "gridfs.h"
#include "id3.h"
#include "log.h"
#include "main.h"
#include "segments.h"
#include "sweep.h"
#include "metrics.h"
#include "redis_stream.h"
#include "service.h"
#include "signals.h"


#define AUDEX_JOB_BACKOFF_MIN   0.5
#define AUDEX_JOB_BACKOFF_MAX   30.0
#define AUDEX_JOB_BLOCK_MS      1000

/* job results, the label values of converter_jobs_total */
typedef enum {
    AUDEX_JOB_DONE = 0,
    AUDEX_JOB_FAILED,
    AUDEX_JOB_RETRY,
    AUDEX_JOB_DEAD,
    AUDEX_JOB_RELEASED,
    AUDEX_JOB_LOST,
    AUDEX_JOB_NRESULTS
} audex_job_result_e;


typedef struct {
    char       *video_queue;
    char       *mp3_queue;
    char       *dead_queue;
    char       *segment_queue;
    char       *group;
    char       *consumer;
    char       *mongodb_uri;
    char       *redis_url;
    char       *metrics_addr;
    char       *log_level;
    int         metrics_port;
    int         jobs;
    int         max_deliveries;
    int         claim_idle_ms;
    int         stop_grace;
    int         max_duration;
    int         daily_minutes;
    int         sweep_every;
    int         upload_grace;
    int         encoders;
    int         parallel_min;
    int         segment;
    int         distribute;
    const char *db;
} audex_job_conf_t;


/* why a job was refused, the label values of converter_refusals_total */
typedef enum {
    AUDEX_JOB_REFUSED_DURATION = 0,
    AUDEX_JOB_REFUSED_DAILY,
    AUDEX_JOB_NREFUSED
} audex_job_refused_e;


typedef struct {
    uint64_t    results[AUDEX_JOB_NRESULTS];
    uint64_t    refused[AUDEX_JOB_NREFUSED];
    uint64_t    buckets[11];
    uint64_t    duration_us;
    uint64_t    count;
    int64_t     in_flight;
    uint64_t    bytes_read;
    uint64_t    bytes_written;
    uint64_t    swept_uploads;      /* what the sweeper removed */
    uint64_t    swept_tus;
} audex_job_metrics_t;


typedef struct {
    int                    index;
    pthread_t              thread;
    char                   consumer[192];
    audex_redis_t         *redis;
    mongoc_client_pool_t  *pool;
    char                   cursor[48];
    double                 next_autoclaim;
    double                 next_sweep;
    double                 backoff;
} audex_job_worker_t;


typedef struct {
    audex_job_worker_t      *w;
    mongoc_client_t         *mongo;
    mongoc_collection_t     *jobs;
    audex_stream_entry_t     entry;
    long long                deliveries;

    const char              *job_id;
    const char              *owner_id;
    const char              *owner_email;
    const char              *filename;
    int                      bitrate;
    int                      quality;
    bson_oid_t               video_fid;
    bson_oid_t               mp3_fid;
    char                     mp3_hex[25];
    char                     title[512];
    char                     mp3_name[528];

    double                   started;
    double                   last_progress;
    double                   last_touch;
    double                   stop_seen;
    int                      claim_lost;

    audex_convert_error_t    err;
    audex_convert_result_t   res;
} audex_job_t;


static int audex_job_check(char *err, size_t errlen);
static void *audex_job_thread(void *arg);
static int audex_job_connect(audex_job_worker_t *w);
static int audex_job_take(audex_job_worker_t *w, audex_stream_entry_t *e);
static void audex_job_housekeeping(audex_job_worker_t *w);
static audex_job_result_e audex_job_run(audex_job_worker_t *w,
    audex_stream_entry_t *e);
static audex_job_result_e audex_job_process(audex_job_t *job);
static int audex_job_parse(audex_job_t *job, char *err, size_t errlen);
static int audex_job_is_done(audex_job_t *job);
static int audex_job_convert(audex_job_t *job);
static int audex_job_encoders(void);
static int audex_job_distributed(audex_job_t *job, audex_source_t *src,
    audex_sink_t *sink, audex_convert_opts_t *opts);
static int audex_job_progress(void *data, double done);
static int audex_job_admit(void *data, double duration, char *msg,
    size_t len);
static audex_job_result_e audex_job_succeeded(audex_job_t *job);
static audex_job_result_e audex_job_failed(audex_job_t *job);
static int audex_job_mongo_alive(audex_job_t *job);
static int audex_job_describe(audex_job_t *job);
static int audex_job_publish(audex_job_t *job, const char *stream, int n,
    const char **keys, const char **values);
static void audex_job_ack(audex_job_t *job);
static audex_job_result_e audex_job_fail(audex_job_t *job,
    const char *code, const char *message);
static audex_job_result_e audex_job_bury(audex_job_t *job,
    const char *message);
static int audex_job_update(audex_job_t *job, const char *state,
    int progress, const char *code, const char *error, int with_mp3);
static int audex_job_announce(audex_job_t *job);
static void audex_job_mp3_id(const char *job_id, bson_oid_t *oid);
static void audex_job_render(audex_metrics_buf_t *b, void *data);
static void audex_job_sleep(double secs);
static double audex_job_now(void);


static audex_job_conf_t     audex_job_conf;
static audex_job_metrics_t  audex_job_metrics;

static const char  *audex_job_results[] = {
    "done", "failed", "retry", "dead", "released", "lost"
};

static const char  *audex_job_refusals[] = {
    "duration", "daily_minutes"
};

/*
 * Adds a job's minutes to its owner's day unless that would pass the
 * limit: KEYS[1] the day's hash, ARGV job id, minutes, limit.  Returns
 * {1, total} when counted (or counted before: a retry), {0, total} when
 * refused.  One script, so that converters running at once cannot both
 * pass the limit.
 */
static const char  *audex_job_usage_script =
    "local t = tonumber(redis.call('HGET', KEYS[1], '" AUDEX_USAGE_TOTAL
        "') or '0')\n"
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then\n"
    "  return {1, tostring(t)}\n"
    "end\n"
    "if t + tonumber(ARGV[2]) > tonumber(ARGV[3]) then\n"
    "  return {0, tostring(t)}\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "t = redis.call('HINCRBYFLOAT', KEYS[1], '" AUDEX_USAGE_TOTAL
        "', ARGV[2])\n"
    "redis.call('EXPIRE', KEYS[1], " AUDEX_USAGE_TTL ")\n"
    "return {1, t}\n";

static const double  audex_job_buckets[] = {
    1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600
};


static audex_conf_t  audex_job_conf_table[] = {

    { "video-queue", "VIDEO_QUEUE", AUDEX_CONF_STRING, AUDEX_STREAM_VIDEO, 0, 0,
      &audex_job_conf.video_queue, "Redis stream of conversion jobs" },

    { "mp3-queue", "MP3_QUEUE", AUDEX_CONF_STRING, AUDEX_STREAM_MP3, 0, 0,
      &audex_job_conf.mp3_queue, "Redis stream announcing finished MP3s" },

    { "dead-queue", "DEAD_QUEUE", AUDEX_CONF_STRING, "", 0, 0,
      &audex_job_conf.dead_queue,
      "stream for jobs given up on; empty: <video-queue>:dead" },

    { "group", "CONVERTER_GROUP", AUDEX_CONF_STRING, AUDEX_GROUP_CONVERTER,
      0, 0,
      &audex_job_conf.group, "consumer group of the converters" },

    { "consumer", "CONVERTER_CONSUMER", AUDEX_CONF_STRING, "", 0, 0,
      &audex_job_conf.consumer,
      "consumer name prefix; empty: <hostname>-<pid>" },

    { "mongodb-uri", "MONGODB_URI", AUDEX_CONF_STRING,
      "mongodb://127.0.0.1:27017/audex", 0, 0, &audex_job_conf.mongodb_uri,
      "MongoDB: GridFS buckets videos, mp3s and collection jobs" },

    { "redis-url", "REDIS_URL", AUDEX_CONF_STRING,
      "redis://127.0.0.1:6379/0", 0, 0, &audex_job_conf.redis_url,
      "Redis (7 or later) with the job streams" },

    { "metrics-port", "METRICS_PORT", AUDEX_CONF_INT, "9100", 0, 65535,
      &audex_job_conf.metrics_port,
      "Prometheus /metrics port; 0 turns it off" },

    { "metrics-addr", "METRICS_ADDR", AUDEX_CONF_STRING, "127.0.0.1", 0, 0,
      &audex_job_conf.metrics_addr,
      "address of /metrics and /healthz (IPv4 or IPv6); 0.0.0.0: all" },

    { "jobs", "CONVERTER_JOBS", AUDEX_CONF_INT, "1", 1, 64,
      &audex_job_conf.jobs, "conversions running at once" },

    { "max-deliveries", "MAX_DELIVERIES", AUDEX_CONF_INT, "3", 1, 100,
      &audex_job_conf.max_deliveries,
      "deliveries before a job goes to the dead-letter stream" },

    { "claim-idle-ms", "CLAIM_IDLE_MS", AUDEX_CONF_INT, "60000", 1000,
      86400000, &audex_job_conf.claim_idle_ms,
      "a job idle this long is taken over from its consumer" },

    { "stop-grace", "STOP_GRACE", AUDEX_CONF_INT, "20", 0, 3600,
      &audex_job_conf.stop_grace,
      "on SIGTERM, seconds a running job may take to finish" },

    { "max-duration", "MAX_DURATION", AUDEX_CONF_INT, "14400", 0, 604800,
      &audex_job_conf.max_duration,
      "seconds of input a job may have; longer fails it; 0: any" },

    { "user-daily-minutes", "USER_DAILY_MINUTES", AUDEX_CONF_INT, "600", 0,
      1440000, &audex_job_conf.daily_minutes,
      "minutes of input one user may convert per UTC day; 0: any" },

    { "log-level", "LOG_LEVEL", AUDEX_CONF_STRING, "info", 0, 0,
      &audex_job_conf.log_level, "error, warn, info or debug" },

    { "sweep-every", "SWEEP_EVERY", AUDEX_CONF_INT, "300", 0, 86400,
      &audex_job_conf.sweep_every,
      "seconds between sweeps of unfinished uploads (one converter of "
      "all sweeps); 0 turns it off" },

    { "encoders", "CONVERTER_ENCODERS", AUDEX_CONF_INT, "0", 0, 64,
      &audex_job_conf.encoders,
      "LAME encoders one long conversion runs at once (segment-parallel); "
      "0: one per core, 1: never in parallel" },

    { "distribute", "DISTRIBUTE", AUDEX_CONF_INT, "0", 0, 1,
      &audex_job_conf.distribute,
      "1: cut long jobs into segment jobs that the converters of every "
      "host take (and take them, with --encoders threads)" },

    { "parallel-min", "PARALLEL_MIN", AUDEX_CONF_INT, "600", 0, 604800,
      &audex_job_conf.parallel_min,
      "seconds of input from which a conversion is segment-parallel" },

    { "segment", "SEGMENT_SECONDS", AUDEX_CONF_INT, "60", 5, 3600,
      &audex_job_conf.segment,
      "seconds per segment of a segment-parallel conversion" },

    { "upload-grace", "UPLOAD_GRACE", AUDEX_CONF_INT, "3600", 1, 31536000,
      &audex_job_conf.upload_grace,
      "an upload unfinished this many seconds after it began is removed" },

    { NULL, NULL, 0, NULL, 0, 0, NULL, NULL }
};


static audex_service_t  audex_job_service = {
    .name = "audex-converter",
    .usage = "usage: audex-converter [run] [options]\n"
             "       audex-converter convert IN OUT "
             "[--bitrate N | --quality Q]\n\n"
             "Converts the jobs of a Redis stream from GridFS "
             "videos to GridFS MP3s.",
    .table = audex_job_conf_table,
    .check = audex_job_check,
    .render = audex_job_render,
    .pool = 1
};


/*
 * Start-up is the common service's (workers/common/service.c); this adds
 * the stream names it derives and one Redis connection per job thread.
 */

int
audex_job_main(int argc, char **argv)
{
    int                    i, rc;
    char                   err[256];
    sigset_t               old;
    audex_job_worker_t    *workers;

    rc = audex_service_start(&audex_job_service, argc, argv);
    if (rc != AUDEX_SERVICE_RUN) {
        return rc;
    }

    audex_job_conf.db = audex_job_service.db;
    audex_convert_init();

    workers = calloc(audex_job_conf.jobs, sizeof(audex_job_worker_t));
    if (workers == NULL) {
        audex_service_stop(&audex_job_service);
        return 1;
    }

    for (i = 0; i < audex_job_conf.jobs; i++) {
        workers[i].index = i;
        workers[i].pool = audex_job_service.mongo_pool;
        snprintf(workers[i].consumer, sizeof(workers[i].consumer), "%s-%d",
                 audex_job_conf.consumer, i);
        snprintf(workers[i].cursor, sizeof(workers[i].cursor), "0-0");
        workers[i].backoff = AUDEX_JOB_BACKOFF_MIN;

        /* the first thread takes the service's handle, which it frees */
        workers[i].redis = (i == 0)
                           ? audex_job_service.redis
                           : audex_redis_new(audex_job_conf.redis_url, err,
                                             sizeof(err));
        if (workers[i].redis == NULL) {
            fprintf(stderr, "audex-converter: REDIS_URL: %s\n", err);
            audex_job_conf.jobs = i;
            rc = 2;
            goto done;
        }
    }

    audex_log(AUDEX_LOG_INFO, NULL, "converter %s: %d job(s), stream %s "
              "group %s, metrics on %s:%d", audex_job_conf.consumer,
              audex_job_conf.jobs, audex_job_conf.video_queue,
              audex_job_conf.group, audex_job_conf.metrics_addr,
              audex_job_conf.metrics_port);

    /* the job threads leave signals to this one, which pause()s */
    audex_signals_block(&old);

    if (audex_job_conf.distribute) {
        audex_segments_conf_t  sc;

        sc.stream = audex_job_conf.segment_queue;
        sc.group = audex_job_conf.group;
        sc.db = audex_job_conf.db;
        sc.consumer = audex_job_conf.consumer;
        sc.claim_idle_ms = audex_job_conf.claim_idle_ms;
        sc.max_deliveries = audex_job_conf.max_deliveries;
        sc.segment = audex_job_conf.segment;
        sc.pool = audex_job_service.mongo_pool;

        if (audex_segments_start(&sc, audex_job_encoders(),
                                 audex_job_conf.redis_url)
            != 0)
        {
            audex_stop = SIGTERM;
        }

        audex_log(AUDEX_LOG_INFO, NULL, "segment jobs on %s: %d thread(s)",
                  audex_job_conf.segment_queue, audex_job_encoders());
    }

    for (i = 0; i < audex_job_conf.jobs; i++) {
        if (pthread_create(&workers[i].thread, NULL, audex_job_thread,
                           &workers[i])
            != 0)
        {
            audex_log(AUDEX_LOG_ERROR, NULL, "pthread_create failed");
            audex_stop = SIGTERM;
            audex_job_conf.jobs = i;
            break;
        }
    }

    audex_signals_restore(&old);

    while (!audex_stop) {
        pause();
    }

    audex_log(AUDEX_LOG_INFO, NULL, "signal %d: stopping", (int) audex_stop);

    for (i = 0; i < audex_job_conf.jobs; i++) {
        pthread_join(workers[i].thread, NULL);
    }

    audex_segments_stop();

    rc = 0;

done:

    for (i = 1; i < audex_job_conf.jobs; i++) {
        audex_redis_free(workers[i].redis);
    }

    free(workers);
    audex_service_stop(&audex_job_service);

    if (rc == 0) {
        audex_log(AUDEX_LOG_INFO, NULL, "stopped");
    }

    return rc;
}


/* the stream names and the consumer name the settings leave empty */

static int
audex_job_check(char *err, size_t errlen)
{
    if ((audex_job_conf.dead_queue[0] == '\0'
         && audex_conf_derive(&audex_job_conf.dead_queue,
                              "%s" AUDEX_STREAM_DEAD_SUFFIX,
                              audex_job_conf.video_queue) != 0)
        || audex_conf_derive(&audex_job_conf.segment_queue,
                             "%s" AUDEX_STREAM_SEGMENTS_SUFFIX,
                             audex_job_conf.video_queue) != 0
        || audex_service_consumer(&audex_job_conf.consumer, "converter") != 0)
    {
        snprintf(err, errlen, "out of memory");
        return 1;
    }

    return 0;
}


static void *
audex_job_thread(void *arg)
{
    int                    rc;
    audex_job_worker_t    *w = arg;
    audex_stream_entry_t   e;

    memset(&e, 0, sizeof(audex_stream_entry_t));

    while (!audex_stop) {
        if (!audex_redis_connected(w->redis) && audex_job_connect(w) != 0) {
            audex_job_sleep(w->backoff);
            w->backoff *= 2;
            if (w->backoff > AUDEX_JOB_BACKOFF_MAX) {
                w->backoff = AUDEX_JOB_BACKOFF_MAX;
            }

            continue;
        }

        rc = audex_job_take(w, &e);

        if (rc < 0) {
            audex_log(AUDEX_LOG_WARN, NULL, "%s: %s", w->consumer,
                      audex_redis_error(w->redis));

            /* an error reply (NOGROUP after a FLUSHALL...) needs setup */
            if (audex_redis_connected(w->redis)) {
                audex_job_connect(w);
            }

            audex_job_sleep(w->backoff);
            w->backoff *= 2;
            if (w->backoff > AUDEX_JOB_BACKOFF_MAX) {
                w->backoff = AUDEX_JOB_BACKOFF_MAX;
            }

            continue;
        }

        w->backoff = AUDEX_JOB_BACKOFF_MIN;

        audex_job_housekeeping(w);

        if (rc == 1 && audex_job_run(w, &e) == AUDEX_JOB_RETRY) {
            /* MongoDB or Redis trouble: give them a moment */
            audex_job_sleep(w->backoff);
            w->backoff *= 2;
            if (w->backoff > AUDEX_JOB_BACKOFF_MAX) {
                w->backoff = AUDEX_JOB_BACKOFF_MAX;
            }
        }

        audex_stream_entry_clear(&e);
    }

    if (audex_redis_connected(w->redis)) {
        audex_stream_consumer_forget(w->redis, audex_job_conf.video_queue,
                                     audex_job_conf.group, w->consumer);
    }

    return NULL;
}


static int
audex_job_connect(audex_job_worker_t *w)
{
    char              err[256];
    mongoc_client_t  *client;

    if (audex_redis_connect(w->redis) != 0
        || audex_stream_group_create(w->redis, audex_job_conf.video_queue,
                                     audex_job_conf.group)
           != 0)
    {
        audex_log(AUDEX_LOG_WARN, NULL, "%s: redis: %s (retry in %.1f s)",
                  w->consumer, audex_redis_error(w->redis), w->backoff);
        return -1;
    }

    /* GridFS readers expect the index; creating it again is a no-op */
    if (w->index == 0) {
        client = mongoc_client_pool_pop(w->pool);

        if (audex_gridfs_ensure_indexes(client, audex_job_conf.db,
                                        AUDEX_BUCKET_MP3S,
                                        err, sizeof(err))
            != 0)
        {
            audex_log(AUDEX_LOG_WARN, NULL, "%s", err);
        }

        mongoc_client_pool_push(w->pool, client);
    }

    audex_log(AUDEX_LOG_INFO, NULL, "%s: connected", w->consumer);

    return 0;
}


/*
 * Jobs other consumers left idle come first, then new ones.  XAUTOCLAIM
 * scans the pending list a step at a time; once it has gone round, the
 * next scan waits a quarter of the claim timeout.
 */

static int
audex_job_take(audex_job_worker_t *w, audex_stream_entry_t *e)
{
    int     rc;
    double  now;

    now = audex_job_now();

    if (now >= w->next_autoclaim) {
        rc = audex_stream_autoclaim(w->redis, audex_job_conf.video_queue,
                                    audex_job_conf.group, w->consumer,
                                    audex_job_conf.claim_idle_ms, w->cursor,
                                    e);
        if (rc != 0) {
            return rc;
        }

        if (strcmp(w->cursor, "0-0") == 0) {
            w->next_autoclaim = now + audex_job_conf.claim_idle_ms / 4000.0;
        }
    }

    return audex_stream_read(w->redis, audex_job_conf.video_queue,
                             audex_job_conf.group, w->consumer,
                             AUDEX_JOB_BLOCK_MS, e);
}


/* the first thread of each converter offers to sweep, now and then */

static void
audex_job_housekeeping(audex_job_worker_t *w)
{
    double               now;
    audex_store_swept_t  swept;

    if (w->index != 0 || audex_job_conf.sweep_every == 0) {
        return;
    }

    now = audex_job_now();

    if (now < w->next_sweep) {
        return;
    }

    w->next_sweep = now + audex_job_conf.sweep_every;

    swept.uploads = 0;
    swept.tus = 0;

    /* an error is logged; what was removed before it counts all the same */
    (void) audex_sweep(w->redis, w->pool, audex_job_conf.db, w->consumer,
                       audex_job_conf.sweep_every,
                       audex_job_conf.upload_grace, &swept);

    __atomic_add_fetch(&audex_job_metrics.swept_uploads,
                       (uint64_t) swept.uploads, __ATOMIC_RELAXED);
    __atomic_add_fetch(&audex_job_metrics.swept_tus, (uint64_t) swept.tus,
                       __ATOMIC_RELAXED);
}


static audex_job_result_e
audex_job_run(audex_job_worker_t *w, audex_stream_entry_t *e)
{
    int                  i;
    double               secs;
    audex_job_t         *job;
    audex_job_result_e   result;

    job = calloc(1, sizeof(audex_job_t));
    if (job == NULL) {
        /* left pending: it comes back when memory may be there again */
        audex_log(AUDEX_LOG_ERROR, NULL, "out of memory for entry %s",
                  e->id);
        return AUDEX_JOB_RETRY;
    }

    job->w = w;
    job->entry = *e;
    memset(e, 0, sizeof(audex_stream_entry_t));
    job->started = audex_job_now();
    job->last_touch = job->started;

    __atomic_add_fetch(&audex_job_metrics.in_flight, 1, __ATOMIC_RELAXED);

    job->mongo = mongoc_client_pool_pop(w->pool);
    job->jobs = mongoc_client_get_collection(job->mongo, audex_job_conf.db,
                                             AUDEX_COLL_JOBS);

    result = audex_job_process(job);

    audex_log_job = NULL;

    mongoc_collection_destroy(job->jobs);
    mongoc_client_pool_push(w->pool, job->mongo);

    secs = audex_job_now() - job->started;

    __atomic_add_fetch(&audex_job_metrics.in_flight, -1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&audex_job_metrics.results[result], 1,
                       __ATOMIC_RELAXED);
    __atomic_add_fetch(&audex_job_metrics.count, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&audex_job_metrics.duration_us,
                       (uint64_t) (secs * 1e6), __ATOMIC_RELAXED);
    __atomic_add_fetch(&audex_job_metrics.bytes_read, job->res.bytes_in,
                       __ATOMIC_RELAXED);
    __atomic_add_fetch(&audex_job_metrics.bytes_written, job->res.bytes_out,
                       __ATOMIC_RELAXED);

    for (i = 0; i < (int) (sizeof(audex_job_buckets) / sizeof(double));
         i++)
    {
        if (secs <= audex_job_buckets[i]) {
            __atomic_add_fetch(&audex_job_metrics.buckets[i], 1,
                               __ATOMIC_RELAXED);
        }
    }

    audex_stream_entry_clear(&job->entry);
    free(job);

    return result;
}


static audex_job_result_e
audex_job_process(audex_job_t *job)
{
    char  err[256];

    job->job_id = audex_stream_field(&job->entry, AUDEX_F_JOB_ID);
    audex_log_job = job->job_id;

    job->deliveries = audex_stream_deliveries(job->w->redis,
                                              audex_job_conf.video_queue,
                                              audex_job_conf.group,
                                              job->w->consumer,
                                              job->entry.id);
    if (job->deliveries < 0) {
        audex_log(AUDEX_LOG_WARN, NULL, "entry %s: %s", job->entry.id,
                  audex_redis_error(job->w->redis));
        return AUDEX_JOB_RETRY;
    }

    if (job->deliveries == 0) {
        audex_log(AUDEX_LOG_INFO, NULL, "entry %s was taken over by another "
                  "consumer", job->entry.id);
        return AUDEX_JOB_LOST;
    }

    if (audex_job_parse(job, err, sizeof(err)) != 0) {
        audex_log(AUDEX_LOG_ERROR, NULL, "entry %s is not a job: %s",
                  job->entry.id, err);
        return audex_job_bury(job, err);
    }

    if (job->deliveries > audex_job_conf.max_deliveries) {
        snprintf(err, sizeof(err), "gave up after %lld deliveries",
                 job->deliveries - 1);
        return audex_job_bury(job, err);
    }

    switch (audex_job_is_done(job)) {

    case 1:
        audex_log(AUDEX_LOG_INFO, NULL, "already done, announcing again");

        if (audex_job_announce(job) != 0
            || audex_stream_ack(job->w->redis, audex_job_conf.video_queue,
                                audex_job_conf.group, job->entry.id)
               != 0)
        {
            return AUDEX_JOB_RETRY;
        }

        return AUDEX_JOB_DONE;

    case 2:
        /* a DELETE cut short, finished now: nothing to convert */
        audex_log(AUDEX_LOG_INFO, NULL, "the job was being deleted; "
                  "deleted");

        if (audex_stream_ack(job->w->redis, audex_job_conf.video_queue,
                             audex_job_conf.group, job->entry.id)
            != 0)
        {
            return AUDEX_JOB_RETRY;
        }

        return AUDEX_JOB_DONE;

    case -1:
        job->err.status = AUDEX_CONVERT_IO;
        snprintf(job->err.message, sizeof(job->err.message),
                 "cannot read the job document");
        return audex_job_failed(job);
    }

    audex_log(AUDEX_LOG_INFO, NULL, "converting %s \"%s\" (entry %s, "
              "delivery %lld)",
              audex_stream_field(&job->entry, AUDEX_F_VIDEO_FID),
              job->filename ? job->filename : "", job->entry.id,
              job->deliveries);

    if (audex_job_update(job, AUDEX_JOB_STATE_CONVERTING, 0, NULL, NULL, 0)
        != 0)
    {
        job->err.status = AUDEX_CONVERT_IO;
        snprintf(job->err.message, sizeof(job->err.message),
                 "cannot update the job document");
        return audex_job_failed(job);
    }

    if (audex_job_convert(job) != 0) {
        return audex_job_failed(job);
    }

    return audex_job_succeeded(job);
}


static int
audex_job_parse(audex_job_t *job, char *err, size_t errlen)
{
    long         v;
    char        *end;
    const char  *fid, *br, *q;

    if (job->job_id == NULL || job->job_id[0] == '\0'
        || strlen(job->job_id) > 128)
    {
        snprintf(err, errlen, "no job_id");
        return -1;
    }

    fid = audex_stream_field(&job->entry, AUDEX_F_VIDEO_FID);
    if (fid == NULL || strlen(fid) != 24 || !bson_oid_is_valid(fid, 24)) {
        snprintf(err, errlen, "video_fid \"%s\" is not an ObjectId",
                 fid ? fid : "");
        return -1;
    }

    bson_oid_init_from_string(&job->video_fid, fid);

    job->owner_id = audex_stream_field(&job->entry, AUDEX_F_OWNER_ID);
    job->owner_email = audex_stream_field(&job->entry, AUDEX_F_OWNER_EMAIL);
    job->filename = audex_stream_field(&job->entry, AUDEX_F_FILENAME);

    br = audex_stream_field(&job->entry, AUDEX_F_BITRATE);
    q = audex_stream_field(&job->entry, AUDEX_F_QUALITY);

    job->bitrate = 0;
    job->quality = -1;

    if (br && br[0]) {
        v = strtol(br, &end, 10);
        if (*end != '\0' || !audex_upload_bitrate_valid(v)) {
            snprintf(err, errlen, "bitrate \"%s\" is not an MPEG-1 layer III"
                     " bitrate", br);
            return -1;
        }

        job->bitrate = (int) v;
    }

    if (q && q[0]) {
        v = strtol(q, &end, 10);
        if (*end != '\0' || v < AUDEX_MP3_QUALITY_MIN
            || v > AUDEX_MP3_QUALITY_MAX)
        {
            snprintf(err, errlen, "quality \"%s\" is not 0 .. 9", q);
            return -1;
        }

        if (job->bitrate) {
            snprintf(err, errlen, "both bitrate and quality");
            return -1;
        }

        job->quality = (int) v;
    }

    audex_job_mp3_id(job->job_id, &job->mp3_fid);
    bson_oid_to_string(&job->mp3_fid, job->mp3_hex);

    return 0;
}


/*
 * 1 done, 0 not, -1 cannot tell; 2 when the job was being deleted (a
 * DELETE cut short), which this call finishes (audex_store_job_delete).
 */

static int
audex_job_is_done(audex_job_t *job)
{
    int                 done;
    bson_t             *doc;
    bson_error_t        error;
    mongoc_database_t  *db;

    done = audex_store_job_get(job->jobs, job->job_id, &doc, &error);

    if (done < 0) {
        audex_log(AUDEX_LOG_WARN, NULL, "jobs: %s", error.message);
        return -1;
    }

    if (done == 1 && audex_store_job_state_is(doc, AUDEX_JOB_STATE_DELETING)) {
        db = mongoc_client_get_database(job->mongo, audex_job_conf.db);
        done = audex_store_job_delete(db, doc, &error);
        mongoc_database_destroy(db);
        bson_destroy(doc);

        if (done < 0) {
            audex_log(AUDEX_LOG_WARN, NULL, "jobs: %s", error.message);
            return -1;
        }

        return 2;
    }

    done = done == 1 && audex_store_job_state_is(doc, AUDEX_JOB_STATE_DONE);

    bson_destroy(doc);

    return done;
}


static int
audex_job_convert(audex_job_t *job)
{
    int                     rc;
    char                    err[256];
    bson_t                  meta;
    audex_sink_t           *sink;
    audex_source_t         *src;
    audex_io_status_e       status;
    audex_convert_opts_t    opts;

    src = audex_gridfs_source_open(job->mongo, job->w->pool,
                                   audex_job_conf.db,
                                   AUDEX_BUCKET_VIDEOS,
                                   &job->video_fid, &status, err,
                                   sizeof(err));
    if (src == NULL) {
        job->err.status = (status == AUDEX_IO_NOT_FOUND)
                          ? AUDEX_CONVERT_NOT_FOUND
                          : (status == AUDEX_IO_PERMANENT)
                            ? AUDEX_CONVERT_CORRUPT : AUDEX_CONVERT_IO;
        snprintf(job->err.message, sizeof(job->err.message), "%s", err);
        return -1;
    }

    audex_id3_title_from_path(job->title, sizeof(job->title),
                              (job->filename && job->filename[0])
                              ? job->filename
                              : audex_gridfs_source_filename(src));
    if (job->title[0] == '\0') {
        snprintf(job->title, sizeof(job->title), "audio");
    }

    snprintf(job->mp3_name, sizeof(job->mp3_name), "%s.mp3", job->title);

    bson_init(&meta);
    BSON_APPEND_UTF8(&meta, AUDEX_F_JOB_ID, job->job_id);
    BSON_APPEND_OID(&meta, AUDEX_F_VIDEO_FID, &job->video_fid);
    BSON_APPEND_UTF8(&meta, "contentType", "audio/mpeg");
    if (job->owner_id) {
        BSON_APPEND_UTF8(&meta, AUDEX_F_OWNER_ID, job->owner_id);
    }

    sink = audex_gridfs_sink_open(job->mongo, audex_job_conf.db,
                                  AUDEX_BUCKET_MP3S,
                                  &job->mp3_fid, job->mp3_name, &meta,
                                  &status, err, sizeof(err));
    bson_destroy(&meta);

    if (sink == NULL) {
        src->close(src);
        job->err.status = (status == AUDEX_IO_TRANSIENT)
                          ? AUDEX_CONVERT_IO : AUDEX_CONVERT_INTERNAL;
        snprintf(job->err.message, sizeof(job->err.message), "%s", err);
        return -1;
    }

    memset(&opts, 0, sizeof(audex_convert_opts_t));
    opts.bitrate = job->bitrate;
    opts.quality = job->quality;
    opts.title = job->title;
    opts.name = job->filename;
    opts.progress = audex_job_progress;
    opts.progress_data = job;
    opts.max_duration = audex_job_conf.max_duration;
    opts.encoders = audex_job_encoders();
    opts.parallel_min = audex_job_conf.parallel_min;
    opts.segment = audex_job_conf.segment;
    opts.admit = audex_job_admit;

    rc = 1;

    if (audex_job_conf.distribute) {
        rc = audex_job_distributed(job, src, sink, &opts);
    }

    if (rc == 1) {
        rc = audex_convert(src, sink, &opts, &job->res, &job->err);
    }

    sink->close(sink);
    src->close(src);

    return rc;
}


static int
audex_job_encoders(void)
{
    return audex_job_conf.encoders ? audex_job_conf.encoders
                                   : audex_convert_cores();
}


/*
 * A long input whose timestamps count samples is cut into segment jobs
 * (segments.c); 1 when this one is not, and src is back at its start.
 */

static int
audex_job_distributed(audex_job_t *job, audex_source_t *src,
    audex_sink_t *sink, audex_convert_opts_t *opts)
{
    int                     rc;
    char                    msg[256];
    audex_convert_probe_t   info;
    audex_segments_job_t    sj;

    /* the header it reads is what this converter's segment jobs read */
    audex_gridfs_source_share(src, 1);

    rc = audex_convert_probe(src, opts, &info, &job->err);

    audex_gridfs_source_share(src, 0);

    if (src->seek(src, 0, SEEK_SET) != 0) {
        job->err.status = AUDEX_CONVERT_IO;
        snprintf(job->err.message, sizeof(job->err.message), "%s",
                 src->error);
        return -1;
    }

    if (rc != 0 || info.copied || !info.segmentable
        || info.duration < audex_job_conf.parallel_min
        || info.duration < 2.0 * audex_job_conf.segment)
    {
        /* audex_convert() says the same failure again, or converts */
        return 1;
    }

    if (audex_job_conf.max_duration > 0
        && info.duration > audex_job_conf.max_duration)
    {
        return 1;
    }

    rc = audex_job_admit(job, info.duration, msg, sizeof(msg));
    if (rc != 0) {
        job->err.status = (rc > 0) ? AUDEX_CONVERT_QUOTA : AUDEX_CONVERT_IO;
        snprintf(job->err.message, sizeof(job->err.message), "%s", msg);
        sink->abort(sink);
        return -1;
    }

    sj.redis = job->w->redis;
    sj.mongo = job->mongo;
    sj.job_id = job->job_id;
    sj.video_fid = &job->video_fid;
    sj.filename = job->filename;
    sj.title = job->title;
    sj.bitrate = job->bitrate;
    sj.quality = job->quality;
    sj.progress = audex_job_progress;
    sj.progress_data = job;

    rc = audex_segments_convert(&sj, &info, sink, &job->res, &job->err);

    if (rc != 0) {
        sink->abort(sink);
    }

    return rc;
}


/*
 * Called after every packet: writes the progress to the job document
 * about once a second, keeps the claim on the entry alive, and decides
 * what SIGTERM means for this job.  Nonzero cancels the conversion.
 */

static int
audex_job_progress(void *data, double done)
{
    int           rc;
    double        now, left;
    audex_job_t  *job = data;

    now = audex_job_now();

    if (audex_stop) {
        if (job->stop_seen == 0) {
            job->stop_seen = now;
            audex_log(AUDEX_LOG_INFO, NULL, "stopping: %d s to finish the "
                      "job, at %d%% now", audex_job_conf.stop_grace,
                      (int) (done * 100));
        }

        /*
         * the time so far says how long the rest will take, once there
         * is enough of it; a job that cannot make it is released now
         * rather than when the grace is over
         */
        left = (done >= 0.05) ? (now - job->started) * (1 - done) / done
                              : 0;

        if (now - job->stop_seen + left > audex_job_conf.stop_grace) {
            audex_log(AUDEX_LOG_INFO, NULL, "stopping: releasing the job "
                      "at %d%%", (int) (done * 100));
            return 1;
        }
    }

    if (now - job->last_touch >= audex_job_conf.claim_idle_ms / 3000.0) {
        job->last_touch = now;

        rc = audex_stream_touch(job->w->redis, audex_job_conf.video_queue,
                                audex_job_conf.group, job->w->consumer,
                                job->entry.id);
        if (rc == 0) {
            audex_log(AUDEX_LOG_WARN, NULL, "another consumer took the job "
                      "over; giving up this attempt");
            job->claim_lost = 1;
            return 1;
        }

        if (rc < 0) {
            /* Redis is away; the job may still finish, try again later */
            audex_log(AUDEX_LOG_WARN, NULL, "keeping the claim: %s",
                      audex_redis_error(job->w->redis));
            audex_redis_connect(job->w->redis);
        }
    }

    if (now - job->last_progress >= 1.0) {
        job->last_progress = now;
        (void) audex_job_update(job, AUDEX_JOB_STATE_CONVERTING,
                                (int) (done * 100), NULL, NULL, 0);
    }

    return 0;
}


/*
 * After probing, before encoding: the input's minutes go on its owner's
 * count for the day (UTC) unless they would pass --user-daily-minutes.
 * Redis away is a passing failure: the job is tried again.
 */

static int
audex_job_admit(void *data, double duration, char *msg, size_t len)
{
    int           rc;
    char          key[192], minutes[32], limit[32], day[16];
    time_t        now;
    struct tm     tm;
    redisReply   *reply;
    audex_job_t  *job = data;
    const char   *argv[7];

    if (audex_job_conf.daily_minutes == 0 || job->owner_id == NULL
        || job->owner_id[0] == '\0')
    {
        return 0;
    }

    now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(day, sizeof(day), "%Y%m%d", &tm);

    snprintf(key, sizeof(key), AUDEX_USAGE_KEY_PREFIX "%.128s:%s",
             job->owner_id, day);
    snprintf(minutes, sizeof(minutes), "%.4f", duration / 60);
    snprintf(limit, sizeof(limit), "%d", audex_job_conf.daily_minutes);

    argv[0] = "EVAL";
    argv[1] = audex_job_usage_script;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = job->job_id;
    argv[5] = minutes;
    argv[6] = limit;

    reply = audex_redis_cmd(job->w->redis, 7, argv);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        snprintf(msg, len, "counting the daily minutes: %s",
                 reply ? "unexpected reply"
                       : audex_redis_error(job->w->redis));
        if (reply) {
            freeReplyObject(reply);
        }

        return -1;
    }

    rc = (reply->element[0]->integer == 1) ? 0 : 1;

    if (rc) {
        snprintf(msg, len, "daily conversion limit of %d minutes reached "
                 "(%.1f used today, this input is %.1f)",
                 audex_job_conf.daily_minutes,
                 reply->element[1]->str ? atof(reply->element[1]->str) : 0,
                 duration / 60);
    }

    freeReplyObject(reply);

    return rc;
}


static audex_job_result_e
audex_job_succeeded(audex_job_t *job)
{
    if (audex_job_describe(job) != 0
        || audex_job_update(job, AUDEX_JOB_STATE_DONE, 100, NULL, NULL, 1) != 0
        || audex_job_announce(job) != 0)
    {
        /* the MP3 is there; the retry finds it done or converts again */
        return AUDEX_JOB_RETRY;
    }

    audex_job_ack(job);

    audex_log(AUDEX_LOG_INFO, NULL, "done: mp3 %s \"%s\", %s %s, %.1f s, "
              "%llu -> %llu bytes in %.1f s", job->mp3_hex, job->mp3_name,
              job->res.codec, job->res.copied ? "copied" : "encoded",
              job->res.duration, (unsigned long long) job->res.bytes_in,
              (unsigned long long) job->res.bytes_out,
              audex_job_now() - job->started);

    return AUDEX_JOB_DONE;
}


static audex_job_result_e
audex_job_failed(audex_job_t *job)
{
    char         msg[400];
    const char  *code;

    code = audex_convert_status_name(job->err.status);

    if (job->err.status == AUDEX_CONVERT_CANCELLED) {
        if (job->claim_lost) {
            /* the other consumer owns the entry and the job document now */
            return AUDEX_JOB_LOST;
        }

        /* SIGTERM: hand the job back without counting this delivery */
        (void) audex_job_update(job, AUDEX_JOB_STATE_QUEUED, 0, NULL, NULL, 0);

        if (audex_stream_release(job->w->redis, audex_job_conf.video_queue,
                                 audex_job_conf.group, job->w->consumer,
                                 job->entry.id, job->deliveries - 1, 1)
            != 0)
        {
            audex_log(AUDEX_LOG_WARN, NULL, "release: %s",
                      audex_redis_error(job->w->redis));
        }

        return AUDEX_JOB_RELEASED;
    }

    if (job->err.status == AUDEX_CONVERT_TOO_LONG
        || job->err.status == AUDEX_CONVERT_QUOTA)
    {
        __atomic_add_fetch(&audex_job_metrics.refused[
                               job->err.status == AUDEX_CONVERT_TOO_LONG
                               ? AUDEX_JOB_REFUSED_DURATION
                               : AUDEX_JOB_REFUSED_DAILY],
                           1, __ATOMIC_RELAXED);
    }

    if (audex_convert_status_permanent(job->err.status)) {
        audex_log(AUDEX_LOG_INFO, NULL, "failed: %s (%s)", job->err.message,
                  code);
        return audex_job_fail(job, code, job->err.message);
    }

    /*
     * With MongoDB unreachable every job would fail: such an attempt does
     * not count, or an outage would send the whole queue to the
     * dead-letter stream.  The entry comes back after the claim timeout.
     */
    if (!audex_job_mongo_alive(job)) {
        audex_log(AUDEX_LOG_WARN, NULL, "MongoDB is unreachable: %s (%s); "
                  "the job goes back, this attempt not counted",
                  job->err.message, code);

        if (audex_stream_release(job->w->redis, audex_job_conf.video_queue,
                                 audex_job_conf.group, job->w->consumer,
                                 job->entry.id, job->deliveries - 1, 0)
            != 0)
        {
            audex_log(AUDEX_LOG_WARN, NULL, "release: %s",
                      audex_redis_error(job->w->redis));
        }

        return AUDEX_JOB_RETRY;
    }

    if (job->deliveries >= audex_job_conf.max_deliveries) {
        snprintf(msg, sizeof(msg), "gave up after %lld deliveries: %s",
                 job->deliveries, job->err.message);
        return audex_job_bury(job, msg);
    }

    /* left pending: it comes back after claim-idle-ms, a natural backoff */
    audex_log(AUDEX_LOG_WARN, NULL, "attempt %lld of %d failed, will "
              "retry: %s (%s)", job->deliveries,
              audex_job_conf.max_deliveries, job->err.message, code);

    (void) audex_job_update(job, AUDEX_JOB_STATE_QUEUED, 0, code,
                            job->err.message, 0);

    return AUDEX_JOB_RETRY;
}


static int
audex_job_mongo_alive(audex_job_t *job)
{
    int           ok;
    bson_t        cmd;
    bson_error_t  error;

    bson_init(&cmd);
    BSON_APPEND_INT32(&cmd, "ping", 1);

    ok = mongoc_client_command_simple(job->mongo, "admin", &cmd, NULL, NULL,
                                      &error);
    bson_destroy(&cmd);

    return ok;
}


/* XADD, with a warning when it fails; 0 or -1 */

static int
audex_job_publish(audex_job_t *job, const char *stream, int n,
    const char **keys, const char **values)
{
    if (audex_stream_add(job->w->redis, stream, n, keys, values) != 0) {
        audex_log(AUDEX_LOG_WARN, NULL, "XADD %s: %s", stream,
                  audex_redis_error(job->w->redis));
        return -1;
    }

    return 0;
}


/* XACK; a failure only costs a redelivery, which finds the job settled */

static void
audex_job_ack(audex_job_t *job)
{
    if (audex_stream_ack(job->w->redis, audex_job_conf.video_queue,
                         audex_job_conf.group, job->entry.id)
        != 0)
    {
        audex_log(AUDEX_LOG_WARN, NULL, "XACK: %s",
                  audex_redis_error(job->w->redis));
    }
}


/*
 * Marks the job failed, announces it on the MP3 stream (state=failed, so
 * the owner hears of it) and acknowledges the entry.
 */

static audex_job_result_e
audex_job_fail(audex_job_t *job, const char *code, const char *message)
{
    int          n;
    char         video[25];
    const char  *keys[8], *values[8];

    if (audex_job_update(job, AUDEX_JOB_STATE_FAILED, 0, code, message, 0)
        != 0)
    {
        return AUDEX_JOB_RETRY;
    }

    if (job->job_id && job->job_id[0]) {
        bson_oid_to_string(&job->video_fid, video);

        n = 0;
        keys[n] = AUDEX_F_JOB_ID;      values[n++] = job->job_id;
        keys[n] = AUDEX_F_STATE;       values[n++] = AUDEX_JOB_STATE_FAILED;
        keys[n] = AUDEX_F_ERROR;       values[n++] = message;
        keys[n] = AUDEX_F_ERROR_CODE;  values[n++] = code;
        keys[n] = AUDEX_F_VIDEO_FID;   values[n++] = video;
        keys[n] = AUDEX_F_OWNER_ID;    values[n++] = job->owner_id
                                                     ? job->owner_id : "";
        keys[n] = AUDEX_F_OWNER_EMAIL; values[n++] = job->owner_email
                                                     ? job->owner_email : "";
        keys[n] = AUDEX_F_FILENAME;    values[n++] = job->filename
                                                     ? job->filename : "";

        /* not announced: the entry comes back and fails again, and the
         * notifier keys on the job, so the owner still hears once */
        if (audex_job_publish(job, audex_job_conf.mp3_queue, n, keys,
                              values)
            != 0)
        {
            return AUDEX_JOB_RETRY;
        }
    }

    audex_job_ack(job);

    return AUDEX_JOB_FAILED;
}


/*
 * Copies the entry to the dead-letter stream with the reason, fails the
 * job if it has an id, and acknowledges the entry.
 */

static audex_job_result_e
audex_job_bury(audex_job_t *job, const char *message)
{
    int           i, n;
    char          count[24];
    const char   *keys[AUDEX_STREAM_FIELDS_MAX + 3];
    const char   *values[AUDEX_STREAM_FIELDS_MAX + 3];

    audex_log(AUDEX_LOG_ERROR, NULL, "to %s: entry %s: %s",
              audex_job_conf.dead_queue, job->entry.id, message);

    n = 0;

    for (i = 0; i < job->entry.nfields && n < AUDEX_STREAM_FIELDS_MAX; i++) {
        keys[n] = job->entry.keys[i];
        values[n++] = job->entry.values[i];
    }

    snprintf(count, sizeof(count), "%lld", job->deliveries);

    keys[n] = "dead_reason";
    values[n++] = message;
    keys[n] = "dead_deliveries";
    values[n++] = count;
    keys[n] = "dead_entry";
    values[n++] = job->entry.id;

    /* the job document first: failing here leaves no dead letter yet */
    if (job->job_id && job->job_id[0]
        && audex_job_update(job, AUDEX_JOB_STATE_FAILED, 0, "dead", message,
                            0) != 0)
    {
        return AUDEX_JOB_RETRY;
    }

    if (audex_job_publish(job, audex_job_conf.dead_queue, n, keys, values)
        != 0)
    {
        return AUDEX_JOB_RETRY;
    }

    audex_job_ack(job);

    return AUDEX_JOB_DEAD;
}


/*
 * Upserts the job document: the API creates it as "queued", but a job
 * put on the stream by other means gets one too.
 */

static int
audex_job_update(audex_job_t *job, const char *state, int progress,
    const char *code, const char *error, int with_mp3)
{
    int              ok;
    bson_t           update, set, ins;
    int64_t          now;
    bson_error_t     err;
    struct timeval   tv;

    gettimeofday(&tv, NULL);
    now = (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;

    bson_init(&update);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, AUDEX_F_STATE, state);
    BSON_APPEND_INT32(&set, AUDEX_F_PROGRESS, progress);
    BSON_APPEND_DATE_TIME(&set, AUDEX_F_UPDATED_AT, now);
    BSON_APPEND_INT32(&set, "attempts", (int32_t) job->deliveries);

    if (with_mp3) {
        BSON_APPEND_OID(&set, AUDEX_F_MP3_FID, &job->mp3_fid);
        BSON_APPEND_DOUBLE(&set, "duration", job->res.duration);
    }

    if (error) {
        BSON_APPEND_UTF8(&set, AUDEX_F_ERROR, error);
        BSON_APPEND_UTF8(&set, AUDEX_F_ERROR_CODE, code ? code : "");

    } else {
        BSON_APPEND_NULL(&set, AUDEX_F_ERROR);
        BSON_APPEND_NULL(&set, AUDEX_F_ERROR_CODE);
    }

    bson_append_document_end(&update, &set);

    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &ins);
    BSON_APPEND_DATE_TIME(&ins, AUDEX_F_CREATED_AT, now);
    BSON_APPEND_OID(&ins, AUDEX_F_VIDEO_FID, &job->video_fid);
    if (job->owner_id) {
        BSON_APPEND_UTF8(&ins, AUDEX_F_OWNER_ID, job->owner_id);
    }
    bson_append_document_end(&update, &ins);

    ok = audex_store_job_update(job->jobs, job->job_id, &update, 1, &err)
         == 0;

    bson_destroy(&update);

    if (!ok) {
        audex_log(AUDEX_LOG_WARN, NULL, "jobs: setting %s: %s", state,
                  err.message);
        return -1;
    }

    return 0;
}


/*
 * What the conversion learnt goes into the MP3's GridFS metadata, next to
 * the owner, job and video ids written when the file was opened.
 */

static int
audex_job_describe(audex_job_t *job)
{
    int                   ok;
    bson_t                filter, update, set;
    bson_error_t          err;
    mongoc_collection_t  *files;

    files = mongoc_client_get_collection(job->mongo, audex_job_conf.db,
                                         AUDEX_MP3S_FILES);
    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", &job->mp3_fid);

    bson_init(&update);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_DOUBLE(&set, "metadata.duration", job->res.duration);
    BSON_APPEND_INT32(&set, "metadata.bitrate", job->res.bitrate);
    BSON_APPEND_INT32(&set, "metadata.quality", job->res.quality);
    BSON_APPEND_INT32(&set, "metadata.sample_rate", job->res.sample_rate);
    BSON_APPEND_INT32(&set, "metadata.channels", job->res.channels);
    BSON_APPEND_BOOL(&set, "metadata.copied", job->res.copied);
    BSON_APPEND_INT32(&set, "metadata.encoders", job->res.encoders);
    BSON_APPEND_INT64(&set, "metadata.segments",
                      (int64_t) job->res.segments);
    bson_append_document_end(&update, &set);

    ok = mongoc_collection_update_one(files, &filter, &update, NULL, NULL,
                                      &err);
    if (!ok) {
        audex_log(AUDEX_LOG_WARN, NULL, "mp3s.files %s: %s", job->mp3_hex,
                  err.message);
    }

    bson_destroy(&update);
    bson_destroy(&filter);
    mongoc_collection_destroy(files);

    return ok ? 0 : -1;
}


static int
audex_job_announce(audex_job_t *job)
{
    int          n;
    char         duration[32], bytes[32], video[25];
    const char  *keys[9], *values[9];

    bson_oid_to_string(&job->video_fid, video);
    snprintf(duration, sizeof(duration), "%.3f", job->res.duration);
    snprintf(bytes, sizeof(bytes), "%llu",
             (unsigned long long) job->res.bytes_out);

    n = 0;
    keys[n] = AUDEX_F_JOB_ID;      values[n++] = job->job_id;
    keys[n] = AUDEX_F_STATE;       values[n++] = AUDEX_JOB_STATE_DONE;
    keys[n] = AUDEX_F_MP3_FID;     values[n++] = job->mp3_hex;
    keys[n] = AUDEX_F_VIDEO_FID;   values[n++] = video;
    keys[n] = AUDEX_F_OWNER_ID;    values[n++] = job->owner_id
                                                 ? job->owner_id : "";
    keys[n] = AUDEX_F_OWNER_EMAIL; values[n++] = job->owner_email
                                                 ? job->owner_email : "";
    keys[n] = AUDEX_F_FILENAME;    values[n++] = job->mp3_name;
    keys[n] = "duration";          values[n++] = duration;
    keys[n] = "bytes";             values[n++] = bytes;

    if (audex_job_publish(job, audex_job_conf.mp3_queue, n, keys, values)
        != 0)
    {
        return -1;
    }

    return 0;
}


/* the first 12 bytes of SHA-256("audex-mp3:" job_id) */

static void
audex_job_mp3_id(const char *job_id, bson_oid_t *oid)
{
    u_char        md[EVP_MAX_MD_SIZE];
    unsigned      len;
    EVP_MD_CTX   *ctx;

    memset(md, 0, sizeof(md));

    ctx = EVP_MD_CTX_new();
    if (ctx != NULL) {
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        EVP_DigestUpdate(ctx, "audex-mp3:", 10);
        EVP_DigestUpdate(ctx, job_id, strlen(job_id));
        EVP_DigestFinal_ex(ctx, md, &len);
        EVP_MD_CTX_free(ctx);
    }

    bson_oid_init_from_data(oid, md);
}


static void
audex_job_render(audex_metrics_buf_t *b, void *data)
{
    int                   i;
    uint64_t              v, count, seg[3];
    audex_job_metrics_t  *m = &audex_job_metrics;

    audex_metrics_printf(b,
        "# HELP converter_jobs_total Jobs handled, by result.\n"
        "# TYPE converter_jobs_total counter\n");

    for (i = 0; i < AUDEX_JOB_NRESULTS; i++) {
        v = __atomic_load_n(&m->results[i], __ATOMIC_RELAXED);
        audex_metrics_printf(b, "converter_jobs_total{result=\"%s\"} %llu\n",
                             audex_job_results[i], (unsigned long long) v);
    }

    audex_metrics_printf(b,
        "# HELP converter_refusals_total Jobs failed by a limit before "
        "encoding, by limit.\n"
        "# TYPE converter_refusals_total counter\n");

    for (i = 0; i < AUDEX_JOB_NREFUSED; i++) {
        v = __atomic_load_n(&m->refused[i], __ATOMIC_RELAXED);
        audex_metrics_printf(b, "converter_refusals_total{limit=\"%s\"} "
                             "%llu\n", audex_job_refusals[i],
                             (unsigned long long) v);
    }

    count = __atomic_load_n(&m->count, __ATOMIC_RELAXED);

    audex_metrics_printf(b,
        "# HELP converter_job_duration_seconds Time from taking a job to "
        "its result.\n"
        "# TYPE converter_job_duration_seconds histogram\n");

    for (i = 0; i < (int) (sizeof(audex_job_buckets) / sizeof(double));
         i++)
    {
        v = __atomic_load_n(&m->buckets[i], __ATOMIC_RELAXED);
        audex_metrics_printf(b, "converter_job_duration_seconds_bucket"
                             "{le=\"%g\"} %llu\n", audex_job_buckets[i],
                             (unsigned long long) v);
    }

    v = __atomic_load_n(&m->duration_us, __ATOMIC_RELAXED);

    audex_metrics_printf(b,
        "converter_job_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
        "converter_job_duration_seconds_sum %.6f\n"
        "converter_job_duration_seconds_count %llu\n",
        (unsigned long long) count, v / 1e6, (unsigned long long) count);

    audex_metrics_printf(b,
        "# HELP converter_jobs_in_flight Jobs being converted now.\n"
        "# TYPE converter_jobs_in_flight gauge\n"
        "converter_jobs_in_flight %lld\n"
        "# HELP converter_bytes_read_total Video bytes read from GridFS.\n"
        "# TYPE converter_bytes_read_total counter\n"
        "converter_bytes_read_total %llu\n"
        "# HELP converter_bytes_written_total MP3 bytes written to GridFS.\n"
        "# TYPE converter_bytes_written_total counter\n"
        "converter_bytes_written_total %llu\n"
        "# HELP converter_swept_uploads_total Unfinished uploads the "
        "sweeper removed, by kind: upload (POST /upload), tus (resumable, "
        "idle past the grace: expired).\n"
        "# TYPE converter_swept_uploads_total counter\n"
        "converter_swept_uploads_total{kind=\"upload\"} %llu\n"
        "converter_swept_uploads_total{kind=\"tus\"} %llu\n",
        (long long) __atomic_load_n(&m->in_flight, __ATOMIC_RELAXED),
        (unsigned long long) __atomic_load_n(&m->bytes_read,
                                             __ATOMIC_RELAXED),
        (unsigned long long) __atomic_load_n(&m->bytes_written,
                                             __ATOMIC_RELAXED),
        (unsigned long long) __atomic_load_n(&m->swept_uploads,
                                             __ATOMIC_RELAXED),
        (unsigned long long) __atomic_load_n(&m->swept_tus,
                                             __ATOMIC_RELAXED));

    audex_segments_counts(&seg[0], &seg[1], &seg[2]);

    audex_metrics_printf(b,
        "# HELP converter_segments_total Segment jobs this converter "
        "encoded (--distribute), by result; retry: left for another try.\n"
        "# TYPE converter_segments_total counter\n"
        "converter_segments_total{result=\"ok\"} %llu\n"
        "converter_segments_total{result=\"failed\"} %llu\n"
        "converter_segments_total{result=\"retry\"} %llu\n"
        "# HELP converter_gridfs_cache_hits_total Video chunks segment "
        "jobs read from this converter's chunk cache, not the database.\n"
        "# TYPE converter_gridfs_cache_hits_total counter\n"
        "converter_gridfs_cache_hits_total %llu\n",
        (unsigned long long) seg[0], (unsigned long long) seg[1],
        (unsigned long long) seg[2],
        (unsigned long long) audex_gridfs_cache_hits_total());
}


/* sleeps in short steps, so that a stop request is not kept waiting */

static void
audex_job_sleep(double secs)
{
    double  end;

    end = audex_job_now() + secs;

    while (!audex_stop && audex_job_now() < end) {
        usleep(100 * 1000);
    }
}


static double
audex_job_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}
