/*
 * audex workers: a Redis stream consumer (hiredis, RESP2, Redis >= 7).
 *
 * A worker reads jobs with XREADGROUP in a consumer group, takes over
 * entries other consumers left idle with XAUTOCLAIM, keeps its claim on a
 * long job alive, and acknowledges a job only once it is finished.  A job
 * that fails transiently stays pending and comes back later; the number
 * of deliveries Redis counts is what lets the caller give up on it.
 *
 * One connection per thread; every call blocks for at most the timeout.
 * After a connection error the handle is disconnected and calls fail
 * until audex_redis_connect() succeeds again.
 */

#ifndef _AUDEX_REDIS_STREAM_H_INCLUDED_
#define _AUDEX_REDIS_STREAM_H_INCLUDED_


#include <stddef.h>

#include <hiredis/hiredis.h>


#define AUDEX_STREAM_FIELDS_MAX  32


typedef struct audex_redis_s  audex_redis_t;


typedef struct {
    char        id[48];
    int         nfields;
    char       *keys[AUDEX_STREAM_FIELDS_MAX];
    char       *values[AUDEX_STREAM_FIELDS_MAX];
} audex_stream_entry_t;


/* parses the URL (redis://, unix://); no connection yet */
audex_redis_t *audex_redis_new(const char *url, char *err, size_t errlen);

/* connects (or reconnects), with AUTH and SELECT; 0 or -1 */
int audex_redis_connect(audex_redis_t *r);
int audex_redis_connected(audex_redis_t *r);

/* why the last call failed */
const char *audex_redis_error(audex_redis_t *r);

void audex_redis_free(audex_redis_t *r);

/*
 * Any command, on a connected handle: the reply (the caller frees it), or
 * NULL with audex_redis_error() set; a connection error also drops the
 * connection, an error reply keeps it.
 */
redisReply *audex_redis_cmd(audex_redis_t *r, int argc, const char **argv);

/* the same with each argument's length: binary values */
redisReply *audex_redis_cmd_len(audex_redis_t *r, int argc,
    const char **argv, const size_t *lens);


/* XGROUP CREATE stream group $ MKSTREAM; an existing group is fine */
int audex_stream_group_create(audex_redis_t *r, const char *stream,
    const char *group);

/* XREADGROUP ... COUNT 1 BLOCK ms: 1 with e filled, 0 for none, -1 */
int audex_stream_read(audex_redis_t *r, const char *stream,
    const char *group, const char *consumer, int block_ms,
    audex_stream_entry_t *e);

/*
 * XAUTOCLAIM ... min_idle_ms cursor COUNT 1: 1 with e filled, 0 for none,
 * -1.  cursor (at least 48 bytes, "0-0" to start) is carried between
 * calls.
 */
int audex_stream_autoclaim(audex_redis_t *r, const char *stream,
    const char *group, const char *consumer, long long min_idle_ms,
    char *cursor, audex_stream_entry_t *e);

/*
 * How often the entry was delivered (XPENDING), counting this delivery;
 * 0 when it is no longer pending for consumer; -1 on error.
 */
long long audex_stream_deliveries(audex_redis_t *r, const char *stream,
    const char *group, const char *consumer, const char *id);

/*
 * Keeps a claim alive: resets the entry's idle time if consumer still
 * owns it.  1 if so, 0 when another consumer has taken it over, -1.
 */
int audex_stream_touch(audex_redis_t *r, const char *stream,
    const char *group, const char *consumer, const char *id);

/*
 * Gives an entry back without acknowledging it and sets its delivery
 * count (pass the count minus one so that this attempt does not count).
 * now: make it look idle for long, so any consumer's next XAUTOCLAIM
 * takes it; else it becomes reclaimable after the claim timeout, which
 * is a backoff.  0 or -1.
 */
int audex_stream_release(audex_redis_t *r, const char *stream,
    const char *group, const char *consumer, const char *id,
    long long deliveries, int now);


/*
 * On a clean exit: removes consumer from the group if nothing is pending
 * for it, so restarted workers do not pile up as dead consumers.  0 or -1.
 */
int audex_stream_consumer_forget(audex_redis_t *r, const char *stream,
    const char *group, const char *consumer);

/* XACK; 0 or -1 */
int audex_stream_ack(audex_redis_t *r, const char *stream,
    const char *group, const char *id);

/* XADD stream * k v ...; 0 or -1 */
int audex_stream_add(audex_redis_t *r, const char *stream, int nfields,
    const char **keys, const char **values);

/* the value of a field, or NULL */
const char *audex_stream_field(const audex_stream_entry_t *e,
    const char *key);

void audex_stream_entry_clear(audex_stream_entry_t *e);


#endif /* _AUDEX_REDIS_STREAM_H_INCLUDED_ */
