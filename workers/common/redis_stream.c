/*
 * audex workers: Redis stream consumer, see redis_stream.h.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "audex_redis_url.h"
#include "redis_stream.h"


#define AUDEX_REDIS_CONNECT_TIMEOUT  5

/* above the longest BLOCK we use (1 s), so a dead server is noticed */
#define AUDEX_REDIS_TIMEOUT          10

/* what a released entry looks idle for: longer than any claim timeout */
#define AUDEX_REDIS_RELEASE_IDLE     "864000000"


struct audex_redis_s {
    redisContext  *ctx;
    char          *host;
    char          *path;
    char          *user;
    char          *password;
    int            port;
    int            db;
    char           error[256];
};


static int audex_stream_entry_parse(audex_redis_t *r, redisReply *item,
    audex_stream_entry_t *e);
static char *audex_strndup(const char *s, size_t n);


audex_redis_t *
audex_redis_new(const char *url, char *err, size_t errlen)
{
    const char         *msg;
    audex_redis_t      *r;
    audex_redis_url_t   u;

    if (audex_redis_url_parse(url, strlen(url), &u, &msg) != 0) {
        snprintf(err, errlen, "bad Redis URL: %s", msg);
        return NULL;
    }

    r = calloc(1, sizeof(audex_redis_t));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    r->port = u.port;
    r->db = u.db;

    if (u.path) {
        r->path = audex_strndup(u.path, u.path_len);

    } else {
        r->host = audex_strndup(u.host, u.host_len);
    }

    if (u.user && u.user_len) {
        r->user = audex_strndup(u.user, u.user_len);
    }

    if (u.password) {
        r->password = audex_strndup(u.password, u.password_len);
    }

    if ((r->path == NULL && r->host == NULL)
        || (u.user && u.user_len && r->user == NULL)
        || (u.password && r->password == NULL))
    {
        audex_redis_free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    return r;
}


int
audex_redis_connect(audex_redis_t *r)
{
    int              argc;
    char             db[16];
    const char      *argv[3];
    redisReply      *reply;
    struct timeval   tv;

    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }

    tv.tv_sec = AUDEX_REDIS_CONNECT_TIMEOUT;
    tv.tv_usec = 0;

    r->ctx = r->path ? redisConnectUnixWithTimeout(r->path, tv)
                     : redisConnectWithTimeout(r->host, r->port, tv);

    if (r->ctx == NULL || r->ctx->err) {
        snprintf(r->error, sizeof(r->error), "connect to %s:%d: %s",
                 r->path ? r->path : r->host, r->path ? 0 : r->port,
                 r->ctx ? r->ctx->errstr : "out of memory");

        if (r->ctx) {
            redisFree(r->ctx);
            r->ctx = NULL;
        }

        return -1;
    }

    tv.tv_sec = AUDEX_REDIS_TIMEOUT;
    redisSetTimeout(r->ctx, tv);

    if (r->password) {
        argc = 0;
        argv[argc++] = "AUTH";

        if (r->user) {
            argv[argc++] = r->user;
        }

        argv[argc++] = r->password;

        reply = audex_redis_cmd(r, argc, argv);
        if (reply == NULL) {
            goto failed;
        }

        freeReplyObject(reply);
    }

    if (r->db != 0) {
        snprintf(db, sizeof(db), "%d", r->db);
        argv[0] = "SELECT";
        argv[1] = db;

        reply = audex_redis_cmd(r, 2, argv);
        if (reply == NULL) {
            goto failed;
        }

        freeReplyObject(reply);
    }

    return 0;

failed:

    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }

    return -1;
}


int
audex_redis_connected(audex_redis_t *r)
{
    return r->ctx != NULL;
}


const char *
audex_redis_error(audex_redis_t *r)
{
    return r->error;
}


void
audex_redis_free(audex_redis_t *r)
{
    if (r == NULL) {
        return;
    }

    if (r->ctx) {
        redisFree(r->ctx);
    }

    free(r->host);
    free(r->path);
    free(r->user);

    if (r->password) {
        /* a secret does not outlive its use in a core dump */
        memset(r->password, 0, strlen(r->password));
        free(r->password);
    }

    free(r);
}


/*
 * Runs a command.  NULL when it failed: a connection error drops the
 * connection, an error reply (NOGROUP, WRONGTYPE, ...) keeps it.
 */

redisReply *
audex_redis_cmd(audex_redis_t *r, int argc, const char **argv)
{
    return audex_redis_cmd_len(r, argc, argv, NULL);
}


redisReply *
audex_redis_cmd_len(audex_redis_t *r, int argc, const char **argv,
    const size_t *lens)
{
    redisReply  *reply;

    if (r->ctx == NULL) {
        snprintf(r->error, sizeof(r->error), "not connected");
        return NULL;
    }

    reply = redisCommandArgv(r->ctx, argc, argv, lens);

    if (reply == NULL) {
        snprintf(r->error, sizeof(r->error), "%s: %s", argv[0],
                 r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
        redisFree(r->ctx);
        r->ctx = NULL;
        return NULL;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(r->error, sizeof(r->error), "%s: %s", argv[0],
                 reply->str);
        freeReplyObject(reply);
        return NULL;
    }

    return reply;
}


int
audex_stream_group_create(audex_redis_t *r, const char *stream,
    const char *group)
{
    redisReply  *reply;
    const char  *argv[] = { "XGROUP", "CREATE", stream, group, "0",
                            "MKSTREAM" };

    /*
     * "0", not "$": jobs queued before the first converter ever started
     * belong to the group too
     */
    reply = audex_redis_cmd(r, 6, argv);

    if (reply == NULL) {
        return (r->ctx && strstr(r->error, "BUSYGROUP")) ? 0 : -1;
    }

    freeReplyObject(reply);

    return 0;
}


int
audex_stream_read(audex_redis_t *r, const char *stream, const char *group,
    const char *consumer, int block_ms, audex_stream_entry_t *e)
{
    int          rc;
    char         block[16];
    redisReply  *reply, *entries;
    const char  *argv[] = { "XREADGROUP", "GROUP", group, consumer,
                            "COUNT", "1", "BLOCK", block, "STREAMS",
                            stream, ">" };

    snprintf(block, sizeof(block), "%d", block_ms);

    reply = audex_redis_cmd(r, 11, argv);
    if (reply == NULL) {
        return -1;
    }

    /* nil after the timeout; else [[stream, [[id, [k, v, ...]]]]] */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        freeReplyObject(reply);
        return 0;
    }

    if (reply->element[0]->type != REDIS_REPLY_ARRAY
        || reply->element[0]->elements < 2
        || reply->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
    {
        snprintf(r->error, sizeof(r->error), "XREADGROUP: odd reply");
        freeReplyObject(reply);
        return -1;
    }

    entries = reply->element[0]->element[1];

    rc = (entries->elements == 0)
         ? 0 : audex_stream_entry_parse(r, entries->element[0], e);

    freeReplyObject(reply);

    return rc;
}


int
audex_stream_autoclaim(audex_redis_t *r, const char *stream,
    const char *group, const char *consumer, long long min_idle_ms,
    char *cursor, audex_stream_entry_t *e)
{
    int          rc;
    size_t       i;
    char         idle[24];
    redisReply  *reply, *entries;
    const char  *argv[] = { "XAUTOCLAIM", stream, group, consumer, idle,
                            cursor, "COUNT", "1" };

    snprintf(idle, sizeof(idle), "%lld", min_idle_ms);

    reply = audex_redis_cmd(r, 8, argv);
    if (reply == NULL) {
        return -1;
    }

    /* [next cursor, [[id, [k, v, ...]], ...], [deleted ids]] */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_ARRAY)
    {
        snprintf(r->error, sizeof(r->error), "XAUTOCLAIM: odd reply");
        freeReplyObject(reply);
        return -1;
    }

    snprintf(cursor, 48, "%s", reply->element[0]->str);

    entries = reply->element[1];
    rc = 0;

    for (i = 0; i < entries->elements; i++) {
        /* entries trimmed from the stream come back as nil in Redis 6 */
        if (entries->element[i]->type == REDIS_REPLY_ARRAY) {
            rc = audex_stream_entry_parse(r, entries->element[i], e);
            break;
        }
    }

    freeReplyObject(reply);

    return rc;
}


long long
audex_stream_deliveries(audex_redis_t *r, const char *stream,
    const char *group, const char *consumer, const char *id)
{
    long long    n;
    redisReply  *reply, *item;
    const char  *argv[] = { "XPENDING", stream, group, id, id, "1",
                            consumer };

    reply = audex_redis_cmd(r, 7, argv);
    if (reply == NULL) {
        return -1;
    }

    /* [[id, consumer, idle ms, deliveries]] or [] */
    n = 0;

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
        item = reply->element[0];

        if (item->type == REDIS_REPLY_ARRAY && item->elements >= 4
            && item->element[3]->type == REDIS_REPLY_INTEGER)
        {
            n = item->element[3]->integer;
        }
    }

    freeReplyObject(reply);

    return n;
}


int
audex_stream_touch(audex_redis_t *r, const char *stream, const char *group,
    const char *consumer, const char *id)
{
    long long    n;
    redisReply  *reply;
    const char  *argv[] = { "XCLAIM", stream, group, consumer, "0", id,
                            "JUSTID" };

    /*
     * XCLAIM does not care who owns the entry; checking first keeps us
     * from taking back a job another consumer has already reclaimed
     */
    n = audex_stream_deliveries(r, stream, group, consumer, id);
    if (n <= 0) {
        return (int) n;
    }

    reply = audex_redis_cmd(r, 7, argv);
    if (reply == NULL) {
        return -1;
    }

    freeReplyObject(reply);

    return 1;
}


int
audex_stream_release(audex_redis_t *r, const char *stream,
    const char *group, const char *consumer, const char *id,
    long long deliveries, int now)
{
    int          argc;
    char         count[24];
    redisReply  *reply;
    const char  *argv[11];

    snprintf(count, sizeof(count), "%lld", deliveries < 0 ? 0 : deliveries);

    argc = 0;
    argv[argc++] = "XCLAIM";
    argv[argc++] = stream;
    argv[argc++] = group;
    argv[argc++] = consumer;
    argv[argc++] = "0";
    argv[argc++] = id;

    /* without IDLE, XCLAIM makes the entry idle since now */
    if (now) {
        argv[argc++] = "IDLE";
        argv[argc++] = AUDEX_REDIS_RELEASE_IDLE;
    }

    argv[argc++] = "RETRYCOUNT";
    argv[argc++] = count;
    argv[argc++] = "JUSTID";

    reply = audex_redis_cmd(r, argc, argv);
    if (reply == NULL) {
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}


int
audex_stream_consumer_forget(audex_redis_t *r, const char *stream,
    const char *group, const char *consumer)
{
    int          pending;
    redisReply  *reply;
    const char  *argv[] = { "XPENDING", stream, group, "-", "+", "1",
                            consumer };
    const char  *del[] = { "XGROUP", "DELCONSUMER", stream, group,
                           consumer };

    reply = audex_redis_cmd(r, 7, argv);
    if (reply == NULL) {
        return -1;
    }

    pending = (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0);
    freeReplyObject(reply);

    /* deleting a consumer drops its pending entries: those are jobs */
    if (pending) {
        return 0;
    }

    reply = audex_redis_cmd(r, 5, del);
    if (reply == NULL) {
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}


int
audex_stream_ack(audex_redis_t *r, const char *stream, const char *group,
    const char *id)
{
    redisReply  *reply;
    const char  *argv[] = { "XACK", stream, group, id };

    reply = audex_redis_cmd(r, 4, argv);
    if (reply == NULL) {
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}


int
audex_stream_add(audex_redis_t *r, const char *stream, int nfields,
    const char **keys, const char **values)
{
    int           i, argc;
    redisReply   *reply;
    const char   *argv[3 + 2 * AUDEX_STREAM_FIELDS_MAX];

    if (nfields > AUDEX_STREAM_FIELDS_MAX) {
        snprintf(r->error, sizeof(r->error), "XADD: too many fields");
        return -1;
    }

    argc = 0;
    argv[argc++] = "XADD";
    argv[argc++] = stream;
    argv[argc++] = "*";

    for (i = 0; i < nfields; i++) {
        argv[argc++] = keys[i];
        argv[argc++] = values[i];
    }

    reply = audex_redis_cmd(r, argc, argv);
    if (reply == NULL) {
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}


const char *
audex_stream_field(const audex_stream_entry_t *e, const char *key)
{
    int  i;

    for (i = 0; i < e->nfields; i++) {
        if (strcmp(e->keys[i], key) == 0) {
            return e->values[i];
        }
    }

    return NULL;
}


void
audex_stream_entry_clear(audex_stream_entry_t *e)
{
    int  i;

    for (i = 0; i < e->nfields; i++) {
        free(e->keys[i]);
        free(e->values[i]);
    }

    memset(e, 0, sizeof(audex_stream_entry_t));
}


/* [id, [k, v, ...]] -> e; fields beyond AUDEX_STREAM_FIELDS_MAX are lost */

static int
audex_stream_entry_parse(audex_redis_t *r, redisReply *item,
    audex_stream_entry_t *e)
{
    size_t       i;
    redisReply  *kv;

    audex_stream_entry_clear(e);

    if (item->type != REDIS_REPLY_ARRAY || item->elements < 2
        || item->element[0]->type != REDIS_REPLY_STRING
        || item->element[0]->len >= sizeof(e->id))
    {
        snprintf(r->error, sizeof(r->error), "stream entry: odd reply");
        return -1;
    }

    memcpy(e->id, item->element[0]->str, item->element[0]->len + 1);

    kv = item->element[1];
    if (kv->type != REDIS_REPLY_ARRAY) {
        /* no fields at all: the caller rejects the job */
        return 1;
    }

    for (i = 0; i + 1 < kv->elements && e->nfields < AUDEX_STREAM_FIELDS_MAX;
         i += 2)
    {
        if (kv->element[i]->type != REDIS_REPLY_STRING
            || kv->element[i + 1]->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        e->keys[e->nfields] = audex_strndup(kv->element[i]->str,
                                            kv->element[i]->len);
        e->values[e->nfields] = audex_strndup(kv->element[i + 1]->str,
                                              kv->element[i + 1]->len);

        if (e->keys[e->nfields] == NULL || e->values[e->nfields] == NULL) {
            free(e->keys[e->nfields]);
            free(e->values[e->nfields]);
            e->keys[e->nfields] = NULL;
            e->values[e->nfields] = NULL;
            snprintf(r->error, sizeof(r->error), "out of memory");
            return -1;
        }

        e->nfields++;
    }

    return 1;
}


static char *
audex_strndup(const char *s, size_t n)
{
    char  *p;

    p = malloc(n + 1);
    if (p == NULL) {
        return NULL;
    }

    memcpy(p, s, n);
    p[n] = '\0';

    return p;
}
