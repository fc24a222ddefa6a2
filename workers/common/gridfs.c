/*
 * audex workers: GridFS source and sink, see gridfs.h.
 */

#define _GNU_SOURCE             /* O_TMPFILE */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "gridfs.h"
#include "audex_store.h"
#include "log.h"


/*
 * Read-ahead: a thread with a client of its own reads the chunk after
 * the one the decoder has, so reading overlaps decoding.  Everything
 * below the mutex is shared; the buffer is swapped, not copied.
 */
typedef struct {
    pthread_t              thread;
    pthread_mutex_t        mu;
    pthread_cond_t         cv;
    mongoc_client_pool_t  *pool;
    mongoc_client_t       *client;
    mongoc_collection_t   *chunks;
    int64_t                want;        /* asked for, not taken up yet */
    int                    busy;        /* reading */
    int                    quit;
    int64_t                got_n;       /* what buf holds, or -1 */
    ssize_t                got_len;     /* or an AUDEX_STORE_ code */
    bson_error_t           error;
    u_char                *buf;
} audex_gridfs_ahead_t;


typedef struct {
    audex_source_t         src;
    mongoc_collection_t   *chunks;
    bson_oid_t             id;
    int64_t                length;
    int64_t                chunk_size;
    int64_t                pos;
    int64_t                have_n;      /* what buf holds, or -1 */
    size_t                 have_len;
    u_char                *buf;
    char                  *filename;
    audex_gridfs_ahead_t  *ahead;       /* NULL: read in the caller */
    int                    shared;      /* through the chunk cache */

    /* for the debug line at close: how the file was read */
    int64_t                fetched;     /* chunks read from the store */
    int64_t                cached;      /* chunks from the chunk cache */
    int64_t                highest;     /* the last chunk read, or -1 */
} audex_gridfs_source_t;


/*
 * The chunk cache: a few chunks lately read by sources that share
 * (audex_gridfs_source_share()), one cache per process, least recently
 * used out.  A segment job opens the video afresh and reads its header
 * (an MP4's index: some chunks) before it seeks to its range, and one
 * converter takes many segments of a job: without the cache each of
 * them would fetch the header again (segments.c shares a source until
 * the range's first packet, so that the range's chunks, read once, do
 * not push the header out).  A chunk is known by its file's id and
 * number; the files sources read are never changed in place, so a
 * cached chunk stays right.
 */
#define AUDEX_GRIDFS_CACHE_SLOTS  8

/* bigger chunks (other tools' files) are not kept: 8 MiB in all at most */
#define AUDEX_GRIDFS_CACHE_CHUNK_MAX  (1024 * 1024)

typedef struct {
    bson_oid_t             id;
    int64_t                n;
    size_t                 len;
    uint64_t               used;
    u_char                *data;        /* NULL: an empty slot */
} audex_gridfs_cached_t;


static pthread_mutex_t        audex_gridfs_cache_mu =
                                  PTHREAD_MUTEX_INITIALIZER;
static audex_gridfs_cached_t  audex_gridfs_cache[AUDEX_GRIDFS_CACHE_SLOTS];
static uint64_t               audex_gridfs_cache_clock;
static uint64_t               audex_gridfs_cache_hits;


typedef struct {
    audex_sink_t           sink;
    mongoc_collection_t   *files;
    mongoc_collection_t   *chunks;
    bson_oid_t             id;
    char                  *filename;
    bson_t                *metadata;
    int64_t                length;
    int                    finished;
    u_char                *first;       /* chunk 0, kept to the end */
    u_char                *cur;         /* the chunk being filled */
    int                    spool;       /* chunks 1 .. written, or -1 */
} audex_gridfs_sink_t;


static ssize_t audex_gridfs_source_read(audex_source_t *src, u_char *buf,
    size_t n);
static int audex_gridfs_source_load(audex_gridfs_source_t *gs, int64_t n);
static ssize_t audex_gridfs_cache_get(audex_gridfs_source_t *gs, int64_t n);
static void audex_gridfs_cache_put(audex_gridfs_source_t *gs, int64_t n,
    size_t len);
static ssize_t audex_gridfs_source_fetch(audex_gridfs_source_t *gs,
    int64_t n, bson_error_t *error);
static int audex_gridfs_ahead_start(audex_gridfs_source_t *gs,
    mongoc_client_pool_t *pool, const char *db, const char *name);
static void *audex_gridfs_ahead_run(void *data);
static void audex_gridfs_ahead_stop(audex_gridfs_ahead_t *ah);
static int64_t audex_gridfs_source_seek(audex_source_t *src, int64_t offset,
    int whence);
static int64_t audex_gridfs_source_size(audex_source_t *src);
static void audex_gridfs_source_close(audex_source_t *src);
static int audex_gridfs_sink_write(audex_sink_t *sink, const u_char *buf,
    size_t size);
static int audex_gridfs_sink_rewrite(audex_sink_t *sink, int64_t offset,
    const u_char *buf, size_t n);
static int audex_gridfs_sink_chunk(audex_gridfs_sink_t *gk, int64_t n,
    const u_char *data, size_t len);
static int audex_gridfs_sink_finish(audex_sink_t *sink);
static int audex_gridfs_sink_digest(audex_gridfs_sink_t *gk, char *hex);
static int audex_gridfs_sink_spool_open(void);
static void audex_gridfs_sink_spool_write(audex_gridfs_sink_t *gk,
    int64_t n, const u_char *chunk);
static void audex_gridfs_sink_spool_end(audex_gridfs_sink_t *gk);
static int audex_gridfs_sink_spooled(audex_gridfs_sink_t *gk, int64_t n,
    u_char *buf);
static void audex_gridfs_sink_abort(audex_sink_t *sink);
static void audex_gridfs_sink_close(audex_sink_t *sink);
static audex_io_status_e audex_gridfs_status(const bson_error_t *error);


audex_source_t *
audex_gridfs_source_open(mongoc_client_t *client, mongoc_client_pool_t *pool,
    const char *db, const char *bucket, const bson_oid_t *id,
    audex_io_status_e *status, char *err, size_t errlen)
{
    char                    name[128], hex[25];
    bson_t                  filter;
    bson_iter_t             it;
    bson_error_t            error;
    const bson_t           *doc;
    mongoc_cursor_t        *cursor;
    mongoc_collection_t    *files;
    audex_gridfs_source_t  *gs;

    bson_oid_to_string(id, hex);

    gs = calloc(1, sizeof(audex_gridfs_source_t));
    if (gs == NULL) {
        *status = AUDEX_IO_TRANSIENT;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    gs->id = *id;
    gs->have_n = -1;
    gs->highest = -1;

    snprintf(name, sizeof(name), "%s.files", bucket);
    files = mongoc_client_get_collection(client, db, name);

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "_id", id);

    cursor = mongoc_collection_find_with_opts(files, &filter, NULL, NULL);
    bson_destroy(&filter);

    if (!mongoc_cursor_next(cursor, &doc)) {
        if (mongoc_cursor_error(cursor, &error)) {
            *status = audex_gridfs_status(&error);
            snprintf(err, errlen, "%s %s: %s", name, hex, error.message);

        } else {
            *status = AUDEX_IO_NOT_FOUND;
            snprintf(err, errlen, "no file %s in GridFS bucket \"%s\"", hex,
                     bucket);
        }

        goto failed;
    }

    if (bson_iter_init_find(&it, doc, "filename")
        && BSON_ITER_HOLDS_UTF8(&it))
    {
        gs->filename = strdup(bson_iter_utf8(&it, NULL));
    }

    if (audex_store_file_geometry(doc, &gs->length, &gs->chunk_size) != 0) {
        *status = AUDEX_IO_PERMANENT;
        snprintf(err, errlen, "%s %s: bad length %lld or chunkSize %lld",
                 name, hex, (long long) gs->length,
                 (long long) gs->chunk_size);
        goto failed;
    }

    gs->buf = malloc(gs->chunk_size);
    if (gs->buf == NULL) {
        *status = AUDEX_IO_TRANSIENT;
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    mongoc_cursor_destroy(cursor);
    mongoc_collection_destroy(files);

    snprintf(name, sizeof(name), "%s.chunks", bucket);
    gs->chunks = mongoc_client_get_collection(client, db, name);

    if (pool && audex_gridfs_ahead_start(gs, pool, db, name) != 0) {
        *status = AUDEX_IO_TRANSIENT;
        snprintf(err, errlen, "cannot start the read-ahead thread");
        mongoc_collection_destroy(gs->chunks);
        free(gs->buf);
        free(gs->filename);
        free(gs);
        return NULL;
    }

    gs->src.read = audex_gridfs_source_read;
    gs->src.seek = audex_gridfs_source_seek;
    gs->src.size = audex_gridfs_source_size;
    gs->src.close = audex_gridfs_source_close;

    return &gs->src;

failed:

    mongoc_cursor_destroy(cursor);
    mongoc_collection_destroy(files);
    free(gs->filename);
    free(gs);

    return NULL;
}


const char *
audex_gridfs_source_filename(audex_source_t *src)
{
    audex_gridfs_source_t  *gs = (audex_gridfs_source_t *) src;

    return gs->filename ? gs->filename : "";
}


static ssize_t
audex_gridfs_source_read(audex_source_t *src, u_char *buf, size_t n)
{
    size_t                  off, len;
    int64_t                 k;
    audex_gridfs_source_t  *gs = (audex_gridfs_source_t *) src;

    if (gs->pos >= gs->length) {
        return 0;
    }

    k = gs->pos / gs->chunk_size;

    if (k != gs->have_n && audex_gridfs_source_load(gs, k) != 0) {
        return -1;
    }

    off = gs->pos - k * gs->chunk_size;
    len = gs->have_len - off;

    if (len > n) {
        len = n;
    }

    memcpy(buf, gs->buf + off, len);
    gs->pos += len;
    src->bytes_read += len;

    return len;
}


/*
 * Puts chunk n into buf: one lookup by the chunk's _id (store layer), so
 * reading a file costs the same however much else the bucket holds, and
 * a seek (an MP4 whose index is at the end) costs one lookup.
 */

static int
audex_gridfs_source_load(audex_gridfs_source_t *gs, int64_t n)
{
    char          hex[25];
    ssize_t       len;
    int64_t       want;
    bson_error_t  error;

    bson_oid_to_string(&gs->id, hex);
    gs->have_n = -1;

    want = gs->length - n * gs->chunk_size;
    if (want > gs->chunk_size) {
        want = gs->chunk_size;
    }

    len = gs->shared ? audex_gridfs_cache_get(gs, n) : -1;

    if (len == want) {
        gs->have_n = n;
        gs->have_len = len;
        gs->cached++;
        return 0;
    }

    len = audex_gridfs_source_fetch(gs, n, &error);

    switch (len) {

    case AUDEX_STORE_ERROR:
        audex_source_fail(&gs->src, audex_gridfs_status(&error),
                          "GridFS chunk %lld of %s: %s", (long long) n, hex,
                          error.message);
        return -1;

    case AUDEX_STORE_MISSING:
        audex_source_fail(&gs->src, AUDEX_IO_PERMANENT,
                          "GridFS chunk %lld of %s is missing",
                          (long long) n, hex);
        return -1;

    case AUDEX_STORE_CORRUPT:
        audex_source_fail(&gs->src, AUDEX_IO_PERMANENT,
                          "GridFS chunk %lld of %s has no data or more than"
                          " %lld bytes", (long long) n, hex,
                          (long long) gs->chunk_size);
        return -1;
    }

    if ((int64_t) len != want) {
        audex_source_fail(&gs->src, AUDEX_IO_PERMANENT,
                          "GridFS chunk %lld of %s has %zd bytes, not %lld",
                          (long long) n, hex, len, (long long) want);
        return -1;
    }

    gs->have_n = n;
    gs->have_len = len;

    if (gs->shared && len <= AUDEX_GRIDFS_CACHE_CHUNK_MAX) {
        audex_gridfs_cache_put(gs, n, len);
    }

    return 0;
}


void
audex_gridfs_source_share(audex_source_t *src, int on)
{
    if (src->read == audex_gridfs_source_read) {
        ((audex_gridfs_source_t *) src)->shared = on;
    }
}


uint64_t
audex_gridfs_cache_hits_total(void)
{
    return __atomic_load_n(&audex_gridfs_cache_hits, __ATOMIC_RELAXED);
}


/* chunk n from the cache into gs->buf: its length, or -1 */

static ssize_t
audex_gridfs_cache_get(audex_gridfs_source_t *gs, int64_t n)
{
    int                     i;
    ssize_t                 len;
    audex_gridfs_cached_t  *c;

    len = -1;

    pthread_mutex_lock(&audex_gridfs_cache_mu);

    for (i = 0; i < AUDEX_GRIDFS_CACHE_SLOTS; i++) {
        c = &audex_gridfs_cache[i];

        if (c->data != NULL && c->n == n && bson_oid_equal(&c->id, &gs->id)
            && c->len <= (size_t) gs->chunk_size)
        {
            memcpy(gs->buf, c->data, c->len);
            c->used = ++audex_gridfs_cache_clock;
            len = c->len;
            break;
        }
    }

    pthread_mutex_unlock(&audex_gridfs_cache_mu);

    if (len >= 0) {
        __atomic_add_fetch(&audex_gridfs_cache_hits, 1, __ATOMIC_RELAXED);
    }

    return len;
}


/* gs->buf, chunk n, into the least recently used slot */

static void
audex_gridfs_cache_put(audex_gridfs_source_t *gs, int64_t n, size_t len)
{
    int                     i;
    u_char                 *p;
    audex_gridfs_cached_t  *c, *lru;

    pthread_mutex_lock(&audex_gridfs_cache_mu);

    lru = &audex_gridfs_cache[0];

    for (i = 0; i < AUDEX_GRIDFS_CACHE_SLOTS; i++) {
        c = &audex_gridfs_cache[i];

        if (c->data != NULL && c->n == n && bson_oid_equal(&c->id, &gs->id))
        {
            lru = c;
            break;
        }

        if (c->data == NULL || c->used < lru->used) {
            lru = c;
        }
    }

    p = realloc(lru->data, len ? len : 1);

    if (p != NULL) {
        memcpy(p, gs->buf, len);
        bson_oid_copy(&gs->id, &lru->id);
        lru->n = n;
        lru->len = len;
        lru->data = p;
        lru->used = ++audex_gridfs_cache_clock;
    }

    pthread_mutex_unlock(&audex_gridfs_cache_mu);
}


/*
 * Chunk n into gs->buf: from the read-ahead thread when there is one
 * (waiting for it if it is still reading n, asking it for n if it read
 * another, after a seek), and then asks it for n + 1 unless the reader
 * said it stops before that (src.read_end).
 */

static ssize_t
audex_gridfs_source_fetch(audex_gridfs_source_t *gs, int64_t n,
    bson_error_t *error)
{
    u_char                *buf;
    ssize_t                len;
    audex_gridfs_ahead_t  *ah = gs->ahead;

    if (ah == NULL) {
        gs->fetched++;
        gs->highest = (n > gs->highest) ? n : gs->highest;

        return audex_store_chunk_get(gs->chunks, &gs->id, (int32_t) n,
                                     gs->buf, gs->chunk_size, error);
    }

    pthread_mutex_lock(&ah->mu);

    while (ah->busy || (ah->want >= 0 && ah->want != n)) {
        pthread_cond_wait(&ah->cv, &ah->mu);
    }

    if (ah->got_n != n) {
        ah->want = n;
        pthread_cond_broadcast(&ah->cv);

        while (ah->want >= 0 || ah->busy) {
            pthread_cond_wait(&ah->cv, &ah->mu);
        }
    }

    len = ah->got_len;
    *error = ah->error;

    buf = gs->buf;
    gs->buf = ah->buf;
    ah->buf = buf;
    ah->got_n = -1;

    if ((n + 1) * gs->chunk_size < gs->length
        && (gs->src.read_end <= 0
            || (n + 1) * gs->chunk_size < gs->src.read_end))
    {
        ah->want = n + 1;
        pthread_cond_broadcast(&ah->cv);
    }

    pthread_mutex_unlock(&ah->mu);

    return len;
}


static int
audex_gridfs_ahead_start(audex_gridfs_source_t *gs,
    mongoc_client_pool_t *pool, const char *db, const char *name)
{
    audex_gridfs_ahead_t  *ah;

    ah = calloc(1, sizeof(audex_gridfs_ahead_t));
    if (ah == NULL) {
        return -1;
    }

    ah->buf = malloc(gs->chunk_size);
    if (ah->buf == NULL) {
        free(ah);
        return -1;
    }

    ah->pool = pool;
    ah->client = mongoc_client_pool_pop(pool);
    ah->chunks = mongoc_client_get_collection(ah->client, db, name);
    ah->want = -1;
    ah->got_n = -1;

    pthread_mutex_init(&ah->mu, NULL);
    pthread_cond_init(&ah->cv, NULL);

    gs->ahead = ah;

    if (pthread_create(&ah->thread, NULL, audex_gridfs_ahead_run, gs) != 0)
    {
        gs->ahead = NULL;
        mongoc_collection_destroy(ah->chunks);
        mongoc_client_pool_push(pool, ah->client);
        pthread_cond_destroy(&ah->cv);
        pthread_mutex_destroy(&ah->mu);
        free(ah->buf);
        free(ah);
        return -1;
    }

    return 0;
}


static void *
audex_gridfs_ahead_run(void *data)
{
    audex_gridfs_source_t *gs = data;

    int64_t                n;
    ssize_t                len;
    bson_error_t           error;
    audex_gridfs_ahead_t  *ah = gs->ahead;

    pthread_mutex_lock(&ah->mu);

    for ( ;; ) {
        while (!ah->quit && ah->want < 0) {
            pthread_cond_wait(&ah->cv, &ah->mu);
        }

        if (ah->quit) {
            break;
        }

        n = ah->want;
        ah->want = -1;
        ah->busy = 1;
        pthread_mutex_unlock(&ah->mu);

        memset(&error, 0, sizeof(error));
        len = audex_store_chunk_get(ah->chunks, &gs->id, (int32_t) n,
                                    ah->buf, gs->chunk_size, &error);

        pthread_mutex_lock(&ah->mu);
        gs->fetched++;
        gs->highest = (n > gs->highest) ? n : gs->highest;
        ah->got_n = n;
        ah->got_len = len;
        ah->error = error;
        ah->busy = 0;
        pthread_cond_broadcast(&ah->cv);
    }

    pthread_mutex_unlock(&ah->mu);

    return NULL;
}


static void
audex_gridfs_ahead_stop(audex_gridfs_ahead_t *ah)
{
    pthread_mutex_lock(&ah->mu);
    ah->quit = 1;
    pthread_cond_broadcast(&ah->cv);
    pthread_mutex_unlock(&ah->mu);

    pthread_join(ah->thread, NULL);

    mongoc_collection_destroy(ah->chunks);
    mongoc_client_pool_push(ah->pool, ah->client);
    pthread_cond_destroy(&ah->cv);
    pthread_mutex_destroy(&ah->mu);
    free(ah->buf);
    free(ah);
}


static int64_t
audex_gridfs_source_seek(audex_source_t *src, int64_t offset, int whence)
{
    int64_t                 pos;
    audex_gridfs_source_t  *gs = (audex_gridfs_source_t *) src;

    switch (whence) {

    case AUDEX_SEEK_SIZE:
        return gs->length;

    case SEEK_SET:
        pos = offset;
        break;

    case SEEK_CUR:
        pos = gs->pos + offset;
        break;

    case SEEK_END:
        pos = gs->length + offset;
        break;

    default:
        audex_source_fail(src, AUDEX_IO_PERMANENT, "bad whence %d", whence);
        return -1;
    }

    if (pos < 0) {
        audex_source_fail(src, AUDEX_IO_PERMANENT, "seek before start");
        return -1;
    }

    gs->pos = pos;

    return pos;
}


static int64_t
audex_gridfs_source_size(audex_source_t *src)
{
    return ((audex_gridfs_source_t *) src)->length;
}


static void
audex_gridfs_source_close(audex_source_t *src)
{
    char                    hex[25];
    audex_gridfs_source_t  *gs = (audex_gridfs_source_t *) src;

    if (gs == NULL) {
        return;
    }

    if (gs->ahead) {
        audex_gridfs_ahead_stop(gs->ahead);
    }

    if (gs->fetched + gs->cached > 0) {
        bson_oid_to_string(&gs->id, hex);
        audex_log(AUDEX_LOG_DEBUG, NULL, "GridFS file %s: %lld chunk(s) "
                  "read from the store, the highest %lld, %lld from the "
                  "cache", hex, (long long) gs->fetched,
                  (long long) gs->highest, (long long) gs->cached);
    }

    mongoc_collection_destroy(gs->chunks);
    free(gs->buf);
    free(gs->filename);
    free(gs);
}


audex_sink_t *
audex_gridfs_sink_open(mongoc_client_t *client, const char *db,
    const char *bucket, const bson_oid_t *id, const char *filename,
    const bson_t *metadata, audex_io_status_e *status, char *err,
    size_t errlen)
{
    char                  name[128], hex[25];
    bson_error_t          error;
    audex_gridfs_sink_t  *gk;

    gk = calloc(1, sizeof(audex_gridfs_sink_t));
    if (gk == NULL) {
        *status = AUDEX_IO_TRANSIENT;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    gk->spool = -1;
    gk->id = *id;
    gk->filename = strdup(filename ? filename : "");
    gk->metadata = metadata ? bson_copy(metadata) : NULL;
    gk->first = malloc(AUDEX_GRIDFS_CHUNK);
    gk->cur = malloc(AUDEX_GRIDFS_CHUNK);

    snprintf(name, sizeof(name), "%s.files", bucket);
    gk->files = mongoc_client_get_collection(client, db, name);
    snprintf(name, sizeof(name), "%s.chunks", bucket);
    gk->chunks = mongoc_client_get_collection(client, db, name);

    gk->sink.write = audex_gridfs_sink_write;
    gk->sink.rewrite = audex_gridfs_sink_rewrite;
    gk->sink.finish = audex_gridfs_sink_finish;
    gk->sink.abort = audex_gridfs_sink_abort;
    gk->sink.close = audex_gridfs_sink_close;

    gk->spool = audex_gridfs_sink_spool_open();

    if (gk->filename == NULL || gk->first == NULL || gk->cur == NULL
        || (metadata && gk->metadata == NULL))
    {
        *status = AUDEX_IO_TRANSIENT;
        snprintf(err, errlen, "out of memory");
        audex_gridfs_sink_close(&gk->sink);
        return NULL;
    }

    /* what an interrupted earlier attempt left under this id */
    if (audex_store_file_delete(gk->files, gk->chunks, id, &error) != 0) {
        bson_oid_to_string(id, hex);
        *status = audex_gridfs_status(&error);
        snprintf(err, errlen, "removing an earlier %s from \"%s\": %s", hex,
                 bucket, error.message);
        audex_gridfs_sink_close(&gk->sink);
        return NULL;
    }

    return &gk->sink;
}


static int
audex_gridfs_sink_write(audex_sink_t *sink, const u_char *buf, size_t size)
{
    size_t                off, len;
    int64_t               n;
    audex_gridfs_sink_t  *gk = (audex_gridfs_sink_t *) sink;

    while (size > 0) {
        off = gk->length % AUDEX_GRIDFS_CHUNK;
        len = AUDEX_GRIDFS_CHUNK - off;

        if (len > size) {
            len = size;
        }

        memcpy((gk->length < AUDEX_GRIDFS_CHUNK ? gk->first : gk->cur) + off,
               buf, len);

        gk->length += len;
        buf += len;
        size -= len;

        /* a full chunk other than chunk 0 goes out now */
        if (gk->length > AUDEX_GRIDFS_CHUNK
            && gk->length % AUDEX_GRIDFS_CHUNK == 0)
        {
            n = gk->length / AUDEX_GRIDFS_CHUNK - 1;

            if (audex_gridfs_sink_chunk(gk, n, gk->cur, AUDEX_GRIDFS_CHUNK)
                != 0)
            {
                audex_gridfs_sink_spool_end(gk);
                return -1;
            }

            audex_gridfs_sink_spool_write(gk, n, gk->cur);
        }
    }

    sink->bytes_written = gk->length;

    return 0;
}


static int
audex_gridfs_sink_rewrite(audex_sink_t *sink, int64_t offset,
    const u_char *buf, size_t n)
{
    audex_gridfs_sink_t  *gk = (audex_gridfs_sink_t *) sink;

    if (offset < 0 || offset + (int64_t) n > AUDEX_GRIDFS_CHUNK
        || offset + (int64_t) n > gk->length)
    {
        audex_sink_fail(sink, AUDEX_IO_PERMANENT,
                        "rewrite of %zu bytes at %lld is out of range", n,
                        (long long) offset);
        return -1;
    }

    memcpy(gk->first + offset, buf, n);

    return 0;
}


static int
audex_gridfs_sink_chunk(audex_gridfs_sink_t *gk, int64_t n,
    const u_char *data, size_t len)
{
    char          hex[25];
    bson_error_t  error;

    if (audex_store_chunk_put(gk->chunks, &gk->id, (int32_t) n, data,
                              (uint32_t) len, &error)
        != 0)
    {
        bson_oid_to_string(&gk->id, hex);

        /*
         * another chunk under this one's id means another worker writes
         * the same file: it reclaimed the job, so this attempt has lost
         * it; nothing to fix by hand, a retry sorts it out
         */
        audex_sink_fail(&gk->sink, audex_gridfs_status(&error),
                        "GridFS chunk %lld of %s: %s", (long long) n, hex,
                        error.message);
        return -1;
    }

    return 0;
}


static int
audex_gridfs_sink_finish(audex_sink_t *sink)
{
    char                  hex[25], sha256[AUDEX_SHA256_HEX_LEN + 1];
    size_t                tail;
    bson_error_t          error;
    audex_gridfs_sink_t  *gk = (audex_gridfs_sink_t *) sink;

    if (audex_gridfs_sink_chunk(gk, 0, gk->first,
                                gk->length < AUDEX_GRIDFS_CHUNK
                                ? gk->length : AUDEX_GRIDFS_CHUNK)
        != 0)
    {
        return -1;
    }

    tail = gk->length % AUDEX_GRIDFS_CHUNK;

    if (gk->length > AUDEX_GRIDFS_CHUNK && tail != 0
        && audex_gridfs_sink_chunk(gk, gk->length / AUDEX_GRIDFS_CHUNK,
                                   gk->cur, tail)
           != 0)
    {
        return -1;
    }

    if (audex_gridfs_sink_digest(gk, sha256) != 0) {
        return -1;
    }

    if (audex_store_file_put(gk->files, &gk->id, gk->length, gk->filename,
                             NULL, gk->metadata, sha256, &error)
        != 0)
    {
        bson_oid_to_string(&gk->id, hex);
        audex_sink_fail(sink, audex_gridfs_status(&error),
                        "GridFS file %s: %s", hex, error.message);
        return -1;
    }

    gk->finished = 1;

    return 0;
}


/*
 * The SHA-256 of the file as stored, into hex, once every chunk is.
 *
 * It cannot be taken as the bytes are written: chunk 0 changes at the
 * end (the Info frame, rewritten with the final frame count and the
 * CRC of the audio), and the digest of everything after it depends on
 * it.  Chunk 0 and the last chunk are still in memory; the chunks in
 * between were copied to a spool file as they went out (an unlinked
 * file in TMPDIR, gone with the process), which is read here: a local
 * read instead of one of the whole MP3 from the database at the end of
 * every job (a 60-minute MP3 is 330 lookups).  Without a spool (no
 * TMPDIR, a full disk) they are read back, one lookup by _id each.
 */

static int
audex_gridfs_sink_digest(audex_gridfs_sink_t *gk, char *hex)
{
    int            rc;
    char           id[25];
    u_char        *buf;
    size_t         len;
    int64_t        n, last;
    ssize_t        got;
    unsigned int   dlen;
    bson_error_t   error;
    EVP_MD_CTX    *md;
    u_char         digest[EVP_MAX_MD_SIZE];

    bson_oid_to_string(&gk->id, id);

    md = EVP_MD_CTX_new();
    buf = malloc(AUDEX_GRIDFS_CHUNK);

    if (md == NULL || buf == NULL
        || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
    {
        audex_sink_fail(&gk->sink, AUDEX_IO_TRANSIENT,
                        "GridFS file %s: cannot start SHA-256", id);
        rc = -1;
        goto done;
    }

    rc = 0;
    last = (gk->length - 1) / AUDEX_GRIDFS_CHUNK;
    len = gk->length < AUDEX_GRIDFS_CHUNK ? gk->length : AUDEX_GRIDFS_CHUNK;

    (void) EVP_DigestUpdate(md, gk->first, len);

    for (n = 1; n < last; n++) {
        if (audex_gridfs_sink_spooled(gk, n, buf) == 0) {
            (void) EVP_DigestUpdate(md, buf, AUDEX_GRIDFS_CHUNK);
            continue;
        }

        got = audex_store_chunk_get(gk->chunks, &gk->id, (int32_t) n, buf,
                                    AUDEX_GRIDFS_CHUNK, &error);

        if (got == AUDEX_STORE_ERROR) {
            audex_sink_fail(&gk->sink, audex_gridfs_status(&error),
                            "GridFS chunk %lld of %s, read back: %s",
                            (long long) n, id, error.message);
            rc = -1;
            goto done;
        }

        if (got != AUDEX_GRIDFS_CHUNK) {
            audex_sink_fail(&gk->sink, AUDEX_IO_TRANSIENT,
                            "GridFS chunk %lld of %s, read back: %s",
                            (long long) n, id,
                            got < 0 ? "missing or corrupt" : "short");
            rc = -1;
            goto done;
        }

        (void) EVP_DigestUpdate(md, buf, AUDEX_GRIDFS_CHUNK);
    }

    if (last > 0) {
        (void) EVP_DigestUpdate(md, gk->cur,
                                gk->length - last * AUDEX_GRIDFS_CHUNK);
    }

    if (EVP_DigestFinal_ex(md, digest, &dlen) != 1) {
        audex_sink_fail(&gk->sink, AUDEX_IO_TRANSIENT,
                        "GridFS file %s: SHA-256 failed", id);
        rc = -1;
        goto done;
    }

    for (n = 0; n < (int64_t) dlen; n++) {
        snprintf(hex + 2 * n, 3, "%02x", digest[n]);
    }

done:

    EVP_MD_CTX_free(md);
    free(buf);

    return rc;
}


/* an unlinked file in TMPDIR (or /tmp), or -1 */

static int
audex_gridfs_sink_spool_open(void)
{
    int          fd;
    const char  *dir;

    dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0') {
        dir = "/tmp";
    }

    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd < 0) {
        audex_log(AUDEX_LOG_INFO, NULL, "no spool file in %s (%s): the MP3 "
                  "will be read back for its digest", dir, strerror(errno));
        return -1;
    }

    return fd;
}


/* full chunk n >= 1 at (n - 1) * chunk size; a failure ends the spool */

static void
audex_gridfs_sink_spool_write(audex_gridfs_sink_t *gk, int64_t n,
    const u_char *chunk)
{
    size_t   done;
    ssize_t  rc;
    off_t    off;

    off = (off_t) (n - 1) * AUDEX_GRIDFS_CHUNK;

    for (done = 0; gk->spool >= 0 && done < AUDEX_GRIDFS_CHUNK; done += rc)
    {
        rc = pwrite(gk->spool, chunk + done, AUDEX_GRIDFS_CHUNK - done,
                    off + done);

        if (rc < 0 && errno == EINTR) {
            rc = 0;
            continue;
        }

        if (rc <= 0) {
            audex_gridfs_sink_spool_end(gk);
            break;
        }
    }
}


/* no spool from here: the digest reads the chunks back */

static void
audex_gridfs_sink_spool_end(audex_gridfs_sink_t *gk)
{
    if (gk->spool >= 0) {
        close(gk->spool);
        gk->spool = -1;
    }
}


/* chunk n from the spool into buf: 0, or -1 (read it back instead) */

static int
audex_gridfs_sink_spooled(audex_gridfs_sink_t *gk, int64_t n, u_char *buf)
{
    size_t   got;
    ssize_t  rc;
    off_t    off;

    if (gk->spool < 0) {
        return -1;
    }

    off = (off_t) (n - 1) * AUDEX_GRIDFS_CHUNK;

    for (got = 0; got < AUDEX_GRIDFS_CHUNK; got += rc) {
        rc = pread(gk->spool, buf + got, AUDEX_GRIDFS_CHUNK - got,
                   off + got);

        if (rc < 0 && errno == EINTR) {
            rc = 0;
            continue;
        }

        if (rc <= 0) {
            return -1;
        }
    }

    return 0;
}


static void
audex_gridfs_sink_abort(audex_sink_t *sink)
{
    bson_error_t          error;
    audex_gridfs_sink_t  *gk = (audex_gridfs_sink_t *) sink;

    /*
     * best effort: chunks without a files document are invisible, and the
     * next attempt deletes them anyway
     */
    (void) audex_store_file_delete(gk->files, gk->chunks, &gk->id, &error);
    gk->finished = 0;
    audex_gridfs_sink_spool_end(gk);
}


static void
audex_gridfs_sink_close(audex_sink_t *sink)
{
    audex_gridfs_sink_t  *gk = (audex_gridfs_sink_t *) sink;

    if (gk == NULL) {
        return;
    }

    mongoc_collection_destroy(gk->files);
    mongoc_collection_destroy(gk->chunks);
    bson_destroy(gk->metadata);
    free(gk->filename);
    free(gk->first);
    free(gk->cur);

    audex_gridfs_sink_spool_end(gk);
    free(gk);
}


int
audex_gridfs_ensure_indexes(mongoc_client_t *client, const char *db,
    const char *bucket, char *err, size_t errlen)
{
    int                 rc;
    bson_error_t        error;
    mongoc_database_t  *d;

    d = mongoc_client_get_database(client, db);
    rc = audex_store_bucket_indexes(d, bucket, &error);
    mongoc_database_destroy(d);

    if (rc != 0) {
        snprintf(err, errlen, "indexes of GridFS bucket \"%s\": %s", bucket,
                 error.message);
        return -1;
    }

    return 0;
}


/* server or network trouble is worth a retry; a bad query is not */

static audex_io_status_e
audex_gridfs_status(const bson_error_t *error)
{
    switch (error->domain) {

    case MONGOC_ERROR_BSON:
    case MONGOC_ERROR_GRIDFS:
        return AUDEX_IO_PERMANENT;

    default:
        return AUDEX_IO_TRANSIENT;
    }
}
