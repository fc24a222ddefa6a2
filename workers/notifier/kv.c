/*
 * audex-notifier: plain Redis keys.
 *
 * The idempotency markers and attempt counters are ordinary keys.  The
 * stream consumer's connection sits in blocking XREADGROUP calls, so
 * these few commands use a second handle of the common Redis client
 * (redis_stream.h).  It connects on first use and again after any
 * connection error, at most once per call, so a Redis that is away costs
 * one failed connect per call and never more than the common timeouts.
 */

#include <stdio.h>
#include <stdlib.h>

#include "redis_stream.h"
#include "notifier.h"


struct audex_kv_s {
    audex_redis_t  *redis;
};


static redisReply *audex_kv_cmd(audex_kv_t *kv, int argc, const char **argv);


audex_kv_t *
audex_kv_new(const char *url, char *err, size_t errlen)
{
    audex_kv_t  *kv;

    kv = calloc(1, sizeof(audex_kv_t));
    if (kv == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    kv->redis = audex_redis_new(url, err, errlen);
    if (kv->redis == NULL) {
        free(kv);
        return NULL;
    }

    return kv;
}


void
audex_kv_free(audex_kv_t *kv)
{
    if (kv) {
        audex_redis_free(kv->redis);
        free(kv);
    }
}


const char *
audex_kv_error(audex_kv_t *kv)
{
    return audex_redis_error(kv->redis);
}


int
audex_kv_exists(audex_kv_t *kv, const char *key)
{
    int          rc;
    redisReply  *reply;
    const char  *argv[] = { "EXISTS", key };

    reply = audex_kv_cmd(kv, 2, argv);
    if (reply == NULL) {
        return -1;
    }

    rc = (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0);
    freeReplyObject(reply);

    return rc;
}


int
audex_kv_set_nx(audex_kv_t *kv, const char *key, const char *value, int ttl)
{
    int          rc;
    char         secs[16];
    redisReply  *reply;
    const char  *argv[] = { "SET", key, value, "NX", "EX", secs };

    snprintf(secs, sizeof(secs), "%d", ttl);

    reply = audex_kv_cmd(kv, 6, argv);
    if (reply == NULL) {
        return -1;
    }

    /* "OK" when set, nil when the key was there */
    rc = (reply->type == REDIS_REPLY_STATUS);
    freeReplyObject(reply);

    return rc;
}


long long
audex_kv_incr(audex_kv_t *kv, const char *key, int by, int ttl)
{
    char         n[16], secs[16];
    long long    v;
    redisReply  *reply;
    const char  *incr[] = { "INCRBY", key, n };
    const char  *expire[] = { "EXPIRE", key, secs };

    snprintf(n, sizeof(n), "%d", by);
    snprintf(secs, sizeof(secs), "%d", ttl);

    reply = audex_kv_cmd(kv, 3, incr);
    if (reply == NULL) {
        return -1;
    }

    v = (reply->type == REDIS_REPLY_INTEGER) ? reply->integer : -1;
    freeReplyObject(reply);

    if (v < 0) {
        return -1;
    }

    /*
     * a counter left without a TTL (EXPIRE lost to a dropped connection)
     * would only make a later notification of the same job give up
     * sooner; the next increment sets the TTL again
     */
    reply = audex_kv_cmd(kv, 3, expire);
    if (reply != NULL) {
        freeReplyObject(reply);
    }

    return v;
}


int
audex_kv_del(audex_kv_t *kv, const char *key)
{
    redisReply  *reply;
    const char  *argv[] = { "DEL", key };

    reply = audex_kv_cmd(kv, 2, argv);
    if (reply == NULL) {
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}


/* connects on first use and again after a connection error, once a call */

static redisReply *
audex_kv_cmd(audex_kv_t *kv, int argc, const char **argv)
{
    if (!audex_redis_connected(kv->redis)
        && audex_redis_connect(kv->redis) != 0)
    {
        return NULL;
    }

    return audex_redis_cmd(kv->redis, argc, argv);
}
