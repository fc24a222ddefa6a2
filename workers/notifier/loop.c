/*
 * audex-notifier: the service loop.
 *
 * One thread reads MP3_QUEUE and the converter's dead-letter stream in
 * the consumer group NOTIFIER_GROUP, taking over first what other
 * consumers left idle for --claim-idle-ms (XAUTOCLAIM): a notifier that
 * died leaves its entries pending, and they come back to whichever
 * notifier is alive.  Each entry becomes a held event with one task per
 * channel in use (email, webhook):
 *
 *   pending --send ok--> sent --marker written--> done
 *      |  \--failed, attempts left: retried after base * 2^(n-1), at
 *      |                            most --retry-max-ms, plus up to 10%
 *      \--permanent, or --retry-limit attempts--> bury --XADD dead--> done
 *
 * and once every task is done the entry is acknowledged.  A held event
 * keeps its claim alive (XCLAIM every third of --claim-idle-ms) while it
 * waits for a retry, so no other notifier takes it over meanwhile.
 *
 * Idempotency.  After a message went out, the key
 *
 *   audex:notifier:sent:<channel>:<done|failed>:<job_id>
 *
 * is written (SET NX, TTL --sent-ttl), and a task whose key exists is
 * done without sending: a redelivered entry (a crash before XACK, a
 * claim taken over) or a second announcement of the same job (the
 * converter announces at least once) sends nothing again.  The key is
 * written after success, not before sending: a crash between the
 * server's "250 OK" and the SET (one Redis round trip) sends that
 * message again after the redelivery; writing it first would instead
 * lose the message for good when the crash comes before the send.  One
 * duplicate in a rare crash is the better failure for a notification.
 * While Redis is away the key cannot be written: the task waits, with
 * backoff, and the entry is not acknowledged before it is written.  The
 * key names the outcome, so a job announced as failed and later as done
 * (after a retry) still gets its "ready" message.  Two notifiers
 * handling two announcements of one job in the same instant may both
 * send: the key is read before sending and written after; a held entry
 * itself is never worked on twice, its claim being kept alive.
 *
 * The attempts are counted in Redis too (audex:notifier:tries:...), so
 * the limit holds across restarts and consumers; burying a task deletes
 * its counter, so that a dead letter put back on the stream by hand is
 * tried --retry-limit times again.  The dead letter is the entry's own
 * fields plus notifier_channel (email, webhook, or event when the entry
 * itself is unusable), notifier_reason, notifier_attempts,
 * notifier_stream and notifier_entry.  A converter dead letter without a
 * job_id is only logged and acknowledged: there is nobody to tell.
 *
 * Redis or MongoDB trouble is not a delivery failure: it only delays the
 * event, with its own backoff (0.5 s doubling to 30 s).  SIGTERM: the
 * loop sees it within a second (an SMTP or HTTP exchange under way is
 * cut short if nothing was sent yet, else it finishes), gives the held
 * entries back for any consumer's next XAUTOCLAIM, and returns 0.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notifier.h"
#include "signals.h"


#define AUDEX_LOOP_BLOCK_MS     1000
#define AUDEX_LOOP_BACKOFF_MIN  0.5
#define AUDEX_LOOP_BACKOFF_MAX  30.0

/* the dead-letter channel of an entry that cannot be notified at all */
#define AUDEX_LOOP_EVENT        AUDEX_NOTIFY_NCHANNELS


typedef enum {
    AUDEX_TASK_PENDING = 0,
    AUDEX_TASK_SENT,            /* the marker is still to be written */
    AUDEX_TASK_BURY,            /* the dead letter is still to be written */
    AUDEX_TASK_DONE
} audex_task_state_e;


typedef struct audex_held_s  audex_held_t;

struct audex_held_s {
    audex_event_t        ev;
    int                  usable;        /* parsed and resolved */
    int                  bury_all;      /* one dead letter for the entry */
    char                 error[400];

    audex_task_state_e   state[AUDEX_NOTIFY_NCHANNELS];
    int                  checked[AUDEX_NOTIFY_NCHANNELS];
    long long            tries[AUDEX_NOTIFY_NCHANNELS];
    double               due[AUDEX_NOTIFY_NCHANNELS];
    char                 reason[AUDEX_NOTIFY_NCHANNELS][400];

    double               backoff;       /* for Redis and MongoDB trouble */
    int                  troubled;      /* in this step */
    double               touched;
    audex_held_t        *next;
};


typedef struct {
    audex_redis_t       *redis;
    audex_kv_t          *kv;
    mongoc_client_t     *mongo;
    const char          *streams[2];
    char                 cursor[2][48];
    double               next_autoclaim[2];
    double               backoff;
    audex_held_t        *held;
    int                  nheld;
} audex_loop_t;


static int audex_loop_connect(audex_loop_t *lp);
static int audex_loop_take(audex_loop_t *lp, double now, int block_ms,
    audex_stream_entry_t *e, const char **stream);
static void audex_loop_hold(audex_loop_t *lp, const char *stream,
    audex_stream_entry_t *e, double now);
static void audex_loop_step(audex_loop_t *lp, audex_held_t *h, double now);
static void audex_loop_attempt(audex_loop_t *lp, audex_held_t *h, int c,
    double now);
static int audex_loop_bury(audex_loop_t *lp, audex_held_t *h, int c);
static void audex_loop_trouble(audex_held_t *h, int c, double now,
    const char *what, const char *why);
static int audex_loop_finished(audex_held_t *h);
static void audex_loop_touch(audex_loop_t *lp, double now);
static void audex_loop_release(audex_loop_t *lp);
static void audex_loop_drop(audex_loop_t *lp, audex_held_t *h);
static double audex_loop_due(audex_held_t *h);
static double audex_loop_next_due(audex_loop_t *lp);
static void audex_loop_key(char *buf, size_t size, const char *what,
    int c, const audex_held_t *h);
static void audex_loop_sleep(double secs);
static double audex_loop_now(void);


int
audex_notify_loop(mongoc_client_t *mongo, audex_redis_t *redis)
{
    int                    i, rc, block;
    char                   err[256];
    double                 now, due;
    const char            *stream;
    audex_held_t          *h, *next;
    audex_loop_t           lp;
    audex_stream_entry_t   e;

    memset(&lp, 0, sizeof(audex_loop_t));
    memset(&e, 0, sizeof(audex_stream_entry_t));

    lp.mongo = mongo;
    lp.backoff = AUDEX_LOOP_BACKOFF_MIN;
    lp.streams[0] = audex_notify_conf.mp3_queue;
    lp.streams[1] = audex_notify_conf.video_dead_queue;

    for (i = 0; i < 2; i++) {
        snprintf(lp.cursor[i], sizeof(lp.cursor[i]), "0-0");
    }

    lp.redis = redis;
    lp.kv = audex_kv_new(audex_notify_conf.redis_url, err, sizeof(err));

    if (lp.kv == NULL) {
        audex_log(AUDEX_LOG_ERROR, NULL, "REDIS_URL: %s", err);
        return 2;
    }

    while (!audex_stop) {

        if (!audex_redis_connected(lp.redis) && audex_loop_connect(&lp) != 0)
        {
            audex_loop_sleep(lp.backoff);
            lp.backoff *= 2;
            if (lp.backoff > AUDEX_LOOP_BACKOFF_MAX) {
                lp.backoff = AUDEX_LOOP_BACKOFF_MAX;
            }

            continue;
        }

        now = audex_loop_now();

        for (h = lp.held; h && !audex_stop; h = next) {
            next = h->next;

            if (audex_loop_due(h) <= now) {
                audex_loop_step(&lp, h, now);
            }
        }

        if (audex_stop) {
            break;
        }

        audex_loop_touch(&lp, now);

        due = audex_loop_next_due(&lp) - audex_loop_now();
        block = (due < 0.01) ? 10
                : (due < AUDEX_LOOP_BLOCK_MS / 1000.0) ? (int) (due * 1000)
                : AUDEX_LOOP_BLOCK_MS;

        if (lp.nheld >= audex_notify_conf.max_held) {
            /* the held ones first; no reading until one is finished */
            audex_loop_sleep(block / 1000.0);
            continue;
        }

        rc = audex_loop_take(&lp, audex_loop_now(), block, &e, &stream);

        if (rc < 0) {
            audex_log(AUDEX_LOG_WARN, NULL, "redis: %s (retry in %.1f s)",
                      audex_redis_error(lp.redis), lp.backoff);

            /* an error reply (NOGROUP after a FLUSHALL...) needs setup */
            if (audex_redis_connected(lp.redis)) {
                audex_loop_connect(&lp);
            }

            audex_loop_sleep(lp.backoff);
            lp.backoff *= 2;
            if (lp.backoff > AUDEX_LOOP_BACKOFF_MAX) {
                lp.backoff = AUDEX_LOOP_BACKOFF_MAX;
            }

            continue;
        }

        lp.backoff = AUDEX_LOOP_BACKOFF_MIN;

        if (rc == 1) {
            audex_loop_hold(&lp, stream, &e, audex_loop_now());
        }
    }

    audex_log(AUDEX_LOG_INFO, NULL, "stopping: %d event(s) held", lp.nheld);

    audex_loop_release(&lp);

    if (audex_redis_connected(lp.redis)) {
        for (i = 0; i < 2; i++) {
            audex_stream_consumer_forget(lp.redis, lp.streams[i],
                                         audex_notify_conf.group,
                                         audex_notify_conf.consumer);
        }
    }

    audex_stream_entry_clear(&e);
    audex_kv_free(lp.kv);

    return 0;
}


static int
audex_loop_connect(audex_loop_t *lp)
{
    int  i;

    if (audex_redis_connect(lp->redis) != 0) {
        audex_log(AUDEX_LOG_WARN, NULL, "redis: %s (retry in %.1f s)",
                  audex_redis_error(lp->redis), lp->backoff);
        return -1;
    }

    for (i = 0; i < 2; i++) {
        if (audex_stream_group_create(lp->redis, lp->streams[i],
                                      audex_notify_conf.group)
            != 0)
        {
            audex_log(AUDEX_LOG_WARN, NULL, "redis: group %s on %s: %s",
                      audex_notify_conf.group, lp->streams[i],
                      audex_redis_error(lp->redis));
            return -1;
        }
    }

    audex_log(AUDEX_LOG_INFO, NULL, "%s: reading %s and %s",
              audex_notify_conf.consumer, lp->streams[0], lp->streams[1]);

    return 0;
}


/*
 * Entries other consumers left idle come first (XAUTOCLAIM scans a step
 * at a time; after a full round the next waits a quarter of the claim
 * timeout), then the rare dead letters without waiting, then MP3_QUEUE,
 * waiting up to block_ms.
 */

static int
audex_loop_take(audex_loop_t *lp, double now, int block_ms,
    audex_stream_entry_t *e, const char **stream)
{
    int  i, rc;

    for (i = 0; i < 2; i++) {
        if (now < lp->next_autoclaim[i]) {
            continue;
        }

        *stream = lp->streams[i];

        rc = audex_stream_autoclaim(lp->redis, lp->streams[i],
                                    audex_notify_conf.group,
                                    audex_notify_conf.consumer,
                                    audex_notify_conf.claim_idle_ms,
                                    lp->cursor[i], e);
        if (rc != 0) {
            return rc;
        }

        if (strcmp(lp->cursor[i], "0-0") == 0) {
            lp->next_autoclaim[i] = now
                                 + audex_notify_conf.claim_idle_ms / 4000.0;
        }
    }

    *stream = lp->streams[1];

    rc = audex_stream_read(lp->redis, lp->streams[1],
                           audex_notify_conf.group,
                           audex_notify_conf.consumer, 1, e);
    if (rc != 0) {
        return rc;
    }

    *stream = lp->streams[0];

    return audex_stream_read(lp->redis, lp->streams[0],
                             audex_notify_conf.group,
                             audex_notify_conf.consumer, block_ms, e);
}


static void
audex_loop_hold(audex_loop_t *lp, const char *stream,
    audex_stream_entry_t *e, double now)
{
    int            c, rc;
    char           err[256];
    audex_held_t  *h, **last;

    /* our own entry, back from XAUTOCLAIM after Redis was away a while */
    for (h = lp->held; h; h = h->next) {
        if (h->ev.stream == stream && strcmp(h->ev.entry.id, e->id) == 0) {
            audex_stream_entry_clear(e);
            return;
        }
    }

    h = calloc(1, sizeof(audex_held_t));
    if (h == NULL) {
        /* left pending: it comes back when there may be memory again */
        audex_log(AUDEX_LOG_ERROR, NULL, "out of memory for entry %s",
                  e->id);
        audex_stream_entry_clear(e);
        return;
    }

    __atomic_add_fetch(&audex_notify_metrics.events, 1, __ATOMIC_RELAXED);

    h->backoff = AUDEX_LOOP_BACKOFF_MIN;
    h->touched = now;

    h->state[AUDEX_NOTIFY_EMAIL] = audex_notify_conf.email
                                   ? AUDEX_TASK_PENDING : AUDEX_TASK_DONE;
    h->state[AUDEX_NOTIFY_WEBHOOK] = audex_notify_conf.webhook
                                     ? AUDEX_TASK_PENDING : AUDEX_TASK_DONE;

    rc = audex_event_parse(&h->ev, stream, e, err, sizeof(err));

    if (rc != 0 && stream == audex_notify_conf.video_dead_queue) {
        /* already a dead letter, and there is nobody to tell */
        audex_log(AUDEX_LOG_WARN, NULL, "%s entry %s names no job; "
                  "acknowledged: %s", stream, h->ev.entry.id, err);

        for (c = 0; c < AUDEX_NOTIFY_NCHANNELS; c++) {
            h->state[c] = AUDEX_TASK_DONE;
        }

    } else if (rc != 0) {
        audex_log(AUDEX_LOG_ERROR, NULL, "%s entry %s is not an event: %s",
                  stream, h->ev.entry.id, err);

        snprintf(h->error, sizeof(h->error), "%s", err);
        h->bury_all = 1;

        for (c = 0; c < AUDEX_NOTIFY_NCHANNELS; c++) {
            h->state[c] = AUDEX_TASK_BURY;
            h->checked[c] = 1;
        }

    } else {
        audex_log(AUDEX_LOG_INFO, h->ev.job_id, "%s entry %s: job %s",
                  stream, h->ev.entry.id, h->ev.kind);
    }

    /* at the end: events are served in the order they came */
    for (last = &lp->held; *last; last = &(*last)->next) { /* void */ }

    *last = h;
    lp->nheld++;

    __atomic_store_n(&audex_notify_metrics.held, (int64_t) lp->nheld,
                     __ATOMIC_RELAXED);

    audex_loop_step(lp, h, now);
}


/*
 * Moves each task of an event as far as it can go now; acknowledges the
 * entry and forgets the event when all are done.
 */

static void
audex_loop_step(audex_loop_t *lp, audex_held_t *h, double now)
{
    int                   c, rc, left;
    char                  key[300], value[120], err[400];
    audex_send_status_e   st;

    audex_log_job = h->ev.job_id;
    h->troubled = 0;

    /* a task whose message went out before, for this job, is done */
    for (c = 0; c < AUDEX_NOTIFY_NCHANNELS; c++) {
        if (h->state[c] != AUDEX_TASK_PENDING || h->checked[c]
            || h->due[c] > now)
        {
            continue;
        }

        audex_loop_key(key, sizeof(key), "sent", c, h);

        rc = audex_kv_exists(lp->kv, key);
        if (rc < 0) {
            audex_loop_trouble(h, c, now, "redis", audex_kv_error(lp->kv));
            continue;
        }

        h->checked[c] = 1;

        if (rc == 1) {
            audex_log(AUDEX_LOG_INFO, NULL, "%s already sent for this job; "
                      "not again", audex_notify_channels[c]);
            h->state[c] = AUDEX_TASK_DONE;
            __atomic_add_fetch(&audex_notify_metrics.duplicates[c], 1,
                               __ATOMIC_RELAXED);
        }
    }

    left = 0;

    for (c = 0; c < AUDEX_NOTIFY_NCHANNELS; c++) {
        left |= (h->state[c] == AUDEX_TASK_PENDING && h->checked[c]
                 && h->due[c] <= now);
    }

    /* what the messages say comes from MongoDB, once */
    if (left && !h->usable) {
        st = audex_event_resolve(&h->ev, lp->mongo, err, sizeof(err));

        if (st == AUDEX_SEND_TRANSIENT) {
            for (c = 0; c < AUDEX_NOTIFY_NCHANNELS; c++) {
                if (h->state[c] == AUDEX_TASK_PENDING) {
                    audex_loop_trouble(h, c, now, NULL, NULL);
                }
            }

            audex_log(AUDEX_LOG_WARN, NULL, "mongodb: %s (retry in %.1f s)",
                      err, h->backoff);

        } else if (st == AUDEX_SEND_PERMANENT) {
            audex_log(AUDEX_LOG_ERROR, NULL, "entry %s cannot be notified: "
                      "%s", h->ev.entry.id, err);

            snprintf(h->error, sizeof(h->error), "%s", err);
            h->bury_all = 1;

            for (c = 0; c < AUDEX_NOTIFY_NCHANNELS; c++) {
                if (h->state[c] == AUDEX_TASK_PENDING) {
                    h->state[c] = AUDEX_TASK_BURY;
                }
            }

        } else {
            h->usable = 1;
        }
    }

    for (c = 0; c < AUDEX_NOTIFY_NCHANNELS && h->usable; c++) {
        if (h->state[c] == AUDEX_TASK_PENDING && h->checked[c]
            && h->due[c] <= now && !audex_stop)
        {
            audex_loop_attempt(lp, h, c, now);
        }
    }

    for (c = 0; c < AUDEX_NOTIFY_NCHANNELS; c++) {

        if (h->state[c] == AUDEX_TASK_SENT) {
            audex_loop_key(key, sizeof(key), "sent", c, h);
            snprintf(value, sizeof(value), "%s %s %lld", h->ev.stream,
                     h->ev.entry.id, (long long) time(NULL));

            if (audex_kv_set_nx(lp->kv, key, value,
                                audex_notify_conf.sent_ttl)
                < 0)
            {
                audex_loop_trouble(h, c, now, "redis: marking as sent",
                                   audex_kv_error(lp->kv));
                continue;
            }

            h->state[c] = AUDEX_TASK_DONE;

            audex_loop_key(key, sizeof(key), "tries", c, h);
            (void) audex_kv_del(lp->kv, key);
        }

        if (h->state[c] == AUDEX_TASK_BURY && h->due[c] <= now) {
            if (audex_loop_bury(lp, h, c) != 0) {
                audex_loop_trouble(h, c, now, "redis: dead letter",
                                   audex_redis_error(lp->redis));
            }
        }
    }

    if (audex_loop_finished(h)) {
        if (audex_stream_ack(lp->redis, h->ev.stream,
                             audex_notify_conf.group, h->ev.entry.id)
            != 0)
        {
            audex_loop_trouble(h, 0, now, "redis: XACK",
                               audex_redis_error(lp->redis));

        } else {
            audex_log_job = NULL;
            audex_loop_drop(lp, h);
            return;
        }
    }

    if (h->troubled) {
        h->backoff *= 2;
        if (h->backoff > AUDEX_LOOP_BACKOFF_MAX) {
            h->backoff = AUDEX_LOOP_BACKOFF_MAX;
        }

    } else {
        h->backoff = AUDEX_LOOP_BACKOFF_MIN;
    }

    audex_log_job = NULL;
}


static void
audex_loop_attempt(audex_loop_t *lp, audex_held_t *h, int c, double now)
{
    char                  key[300], err[512];
    double                delay;
    long long             n;
    audex_send_status_e   st;

    if (c == AUDEX_NOTIFY_EMAIL && h->ev.email == NULL) {
        audex_log(AUDEX_LOG_WARN, NULL, "no email address for owner \"%s\"; "
                  "no email", h->ev.owner_id);
        h->state[c] = AUDEX_TASK_DONE;
        return;
    }

    audex_loop_key(key, sizeof(key), "tries", c, h);

    n = audex_kv_incr(lp->kv, key, 1, audex_notify_conf.sent_ttl);
    if (n < 0) {
        audex_loop_trouble(h, c, now, "redis", audex_kv_error(lp->kv));
        return;
    }

    h->tries[c] = n;

    if (n > audex_notify_conf.retry_limit) {
        /* earlier processes used them up and died before burying it */
        snprintf(h->reason[c], sizeof(h->reason[c]), "gave up after %lld "
                 "attempts", n - 1);
        h->tries[c] = n - 1;
        h->state[c] = AUDEX_TASK_BURY;
        return;
    }

    err[0] = '\0';

    st = (c == AUDEX_NOTIFY_EMAIL) ? audex_smtp_send(&h->ev, err, sizeof(err))
                                   : audex_webhook_send(&h->ev, err,
                                                        sizeof(err));

    switch (st) {

    case AUDEX_SEND_OK:
        __atomic_add_fetch(&audex_notify_metrics.messages[c][0], 1,
                           __ATOMIC_RELAXED);

        if (c == AUDEX_NOTIFY_EMAIL) {
            audex_log(AUDEX_LOG_INFO, NULL, "email sent to %s (attempt %lld)",
                      h->ev.email, n);

        } else {
            audex_log(AUDEX_LOG_INFO, NULL, "webhook delivered (attempt "
                      "%lld)", n);
        }

        h->state[c] = AUDEX_TASK_SENT;
        return;

    case AUDEX_SEND_CANCELLED:
        /* not an attempt: nothing went out; the next consumer tries */
        (void) audex_kv_incr(lp->kv, key, -1, audex_notify_conf.sent_ttl);
        h->due[c] = now + 1;
        return;

    case AUDEX_SEND_PERMANENT:
        __atomic_add_fetch(&audex_notify_metrics.messages[c][1], 1,
                           __ATOMIC_RELAXED);
        audex_log(AUDEX_LOG_ERROR, NULL, "%s failed for good: %s",
                  audex_notify_channels[c], err);
        snprintf(h->reason[c], sizeof(h->reason[c]), "%.390s", err);
        h->state[c] = AUDEX_TASK_BURY;
        return;

    default:
        break;
    }

    __atomic_add_fetch(&audex_notify_metrics.messages[c][1], 1,
                       __ATOMIC_RELAXED);

    if (n >= audex_notify_conf.retry_limit) {
        audex_log(AUDEX_LOG_ERROR, NULL, "%s failed %lld times, giving up: "
                  "%s", audex_notify_channels[c], n, err);
        snprintf(h->reason[c], sizeof(h->reason[c]), "gave up after %lld "
                 "attempts: %.300s", n, err);
        h->state[c] = AUDEX_TASK_BURY;
        return;
    }

    delay = audex_notify_conf.retry_base_ms / 1000.0;

    while (--n > 0 && delay < audex_notify_conf.retry_max_ms / 1000.0) {
        delay *= 2;
    }

    if (delay > audex_notify_conf.retry_max_ms / 1000.0) {
        delay = audex_notify_conf.retry_max_ms / 1000.0;
    }

    /* notifiers that failed together should not retry together */
    delay += delay * 0.1 * (rand() / (RAND_MAX + 1.0));

    h->due[c] = now + delay;

    audex_log(AUDEX_LOG_WARN, NULL, "%s attempt %lld of %d failed, retry in "
              "%.1f s: %s", audex_notify_channels[c], h->tries[c],
              audex_notify_conf.retry_limit, delay, err);
}


/* XADD to the dead-letter stream; 0 (the task is done) or -1 */

static int
audex_loop_bury(audex_loop_t *lp, audex_held_t *h, int c)
{
    int           i, n, k;
    char          tries[24], key[300];
    const char   *reason;
    const char   *keys[AUDEX_STREAM_FIELDS_MAX + 5];
    const char   *values[AUDEX_STREAM_FIELDS_MAX + 5];

    n = 0;

    for (i = 0; i < h->ev.entry.nfields && n < AUDEX_STREAM_FIELDS_MAX - 5;
         i++)
    {
        keys[n] = h->ev.entry.keys[i];
        values[n++] = h->ev.entry.values[i];
    }

    snprintf(tries, sizeof(tries), "%lld", h->bury_all ? 0 : h->tries[c]);
    reason = h->bury_all ? h->error : h->reason[c];

    keys[n] = "notifier_channel";
    values[n++] = h->bury_all ? "event" : audex_notify_channels[c];
    keys[n] = "notifier_reason";
    values[n++] = reason;
    keys[n] = "notifier_attempts";
    values[n++] = tries;
    keys[n] = "notifier_stream";
    values[n++] = h->ev.stream;
    keys[n] = "notifier_entry";
    values[n++] = h->ev.entry.id;

    if (audex_stream_add(lp->redis, audex_notify_conf.dead_queue, n, keys,
                         values)
        != 0)
    {
        return -1;
    }

    audex_log(AUDEX_LOG_ERROR, NULL, "to %s: %s of entry %s: %s",
              audex_notify_conf.dead_queue,
              h->bury_all ? "event" : audex_notify_channels[c],
              h->ev.entry.id, reason);

    if (h->bury_all) {
        __atomic_add_fetch(&audex_notify_metrics.dead[AUDEX_LOOP_EVENT], 1,
                           __ATOMIC_RELAXED);

        for (k = 0; k < AUDEX_NOTIFY_NCHANNELS; k++) {
            h->state[k] = AUDEX_TASK_DONE;
        }

        return 0;
    }

    __atomic_add_fetch(&audex_notify_metrics.dead[c], 1, __ATOMIC_RELAXED);
    h->state[c] = AUDEX_TASK_DONE;

    if (h->ev.job_id) {
        audex_loop_key(key, sizeof(key), "tries", c, h);
        (void) audex_kv_del(lp->kv, key);
    }

    return 0;
}


/*
 * Redis or MongoDB is away: the task waits h->backoff, which doubles
 * once per step that met trouble (see the end of audex_loop_step).
 */

static void
audex_loop_trouble(audex_held_t *h, int c, double now, const char *what,
    const char *why)
{
    if (what) {
        audex_log(AUDEX_LOG_WARN, NULL, "%s: %s (retry in %.1f s)", what,
                  why, h->backoff);
    }

    h->due[c] = now + h->backoff;
    h->troubled = 1;
}


static int
audex_loop_finished(audex_held_t *h)
{
    int  c;

    for (c = 0; c < AUDEX_NOTIFY_NCHANNELS; c++) {
        if (h->state[c] != AUDEX_TASK_DONE) {
            return 0;
        }
    }

    return 1;
}


/* keeps the claims of the held entries alive; drops those taken over */

static void
audex_loop_touch(audex_loop_t *lp, double now)
{
    int            rc;
    audex_held_t  *h, *next;

    for (h = lp->held; h; h = next) {
        next = h->next;

        if (now - h->touched < audex_notify_conf.claim_idle_ms / 3000.0) {
            continue;
        }

        rc = audex_stream_touch(lp->redis, h->ev.stream,
                                audex_notify_conf.group,
                                audex_notify_conf.consumer, h->ev.entry.id);
        if (rc < 0) {
            return;
        }

        h->touched = now;

        if (rc == 0) {
            audex_log(AUDEX_LOG_WARN, h->ev.job_id, "entry %s was taken "
                      "over by another consumer; leaving it to it",
                      h->ev.entry.id);
            audex_loop_drop(lp, h);
        }
    }
}


/* on the way out: held entries go back to the group, undelivered */

static void
audex_loop_release(audex_loop_t *lp)
{
    long long      n;
    audex_held_t  *h;

    while ((h = lp->held) != NULL) {
        if (audex_redis_connected(lp->redis)) {
            n = audex_stream_deliveries(lp->redis, h->ev.stream,
                                        audex_notify_conf.group,
                                        audex_notify_conf.consumer,
                                        h->ev.entry.id);
            if (n > 0) {
                (void) audex_stream_release(lp->redis, h->ev.stream,
                                            audex_notify_conf.group,
                                            audex_notify_conf.consumer,
                                            h->ev.entry.id, n - 1, 1);
            }
        }

        audex_loop_drop(lp, h);
    }
}


static void
audex_loop_drop(audex_loop_t *lp, audex_held_t *h)
{
    audex_held_t  **p;

    for (p = &lp->held; *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            lp->nheld--;
            break;
        }
    }

    __atomic_store_n(&audex_notify_metrics.held, (int64_t) lp->nheld,
                     __ATOMIC_RELAXED);

    audex_event_free(&h->ev);
    free(h);
}


/* when the next step of an event is due */

static double
audex_loop_due(audex_held_t *h)
{
    int     c;
    double  due;

    /* finished but not acknowledged: XACK is what is due */
    if (audex_loop_finished(h)) {
        return h->due[0];
    }

    due = 1e18;

    for (c = 0; c < AUDEX_NOTIFY_NCHANNELS; c++) {
        if (h->state[c] != AUDEX_TASK_DONE && h->due[c] < due) {
            due = h->due[c];
        }
    }

    return due;
}


/* the earliest of them all; far away when nothing is held */

static double
audex_loop_next_due(audex_loop_t *lp)
{
    double         due, d;
    audex_held_t  *h;

    due = 1e18;

    for (h = lp->held; h; h = h->next) {
        d = audex_loop_due(h);
        if (d < due) {
            due = d;
        }
    }

    return due;
}


static void
audex_loop_key(char *buf, size_t size, const char *what, int c,
    const audex_held_t *h)
{
    snprintf(buf, size, "audex:notifier:%s:%s:%s:%s", what,
             audex_notify_channels[c], h->ev.kind,
             h->ev.job_id ? h->ev.job_id : "");
}


/* sleeps in short steps, so that a stop request is not kept waiting */

static void
audex_loop_sleep(double secs)
{
    double  end;

    end = audex_loop_now() + secs;

    while (!audex_stop && audex_loop_now() < end) {
        usleep(50 * 1000);
    }
}


static double
audex_loop_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}
