/*
 * audex-notifier: from a stream entry to an event both channels can use.
 *
 * An entry of MP3_QUEUE says a job ended: state "done" (or no state)
 * with the mp3_fid, or "failed" with an error.  An entry of the
 * converter's dead-letter stream is a job the converter gave up on: a
 * failure.  What the entry does not carry comes from MongoDB:
 *
 *   jobs.<job_id>          filename (the uploaded name), error, duration
 *   mp3s.files.<mp3_fid>   metadata.duration, metadata.owner_id
 *   users.<owner_id>       email, when the entry has no owner_email
 *
 * The download link is signed for the owner the download module will
 * read from the files document (metadata.owner_id: 24 characters or an
 * ObjectId, anything else counts as none), so that it verifies there.
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audex_link.h"
#include "audex_schema.h"
#include "audex_store.h"
#include "log.h"
#include "notifier.h"


#define AUDEX_EVENT_NAME_MAX    255
#define AUDEX_EVENT_REASON_MAX  1000


static int audex_event_find_one(mongoc_client_t *mongo, const char *coll,
    const bson_t *filter, bson_t **doc, char *err, size_t errlen);
static const char *audex_event_str(const bson_t *doc, const char *path);
static int audex_event_num(const bson_t *doc, const char *path, double *v);
static char *audex_event_text(const char *s, size_t max);
static int audex_event_is_oid(const char *s);
static audex_send_status_e audex_event_deleted(audex_event_t *ev,
    mongoc_client_t *mongo, const bson_t *job, char *err, size_t errlen);
static int audex_event_sign(audex_event_t *ev, const bson_t *file,
    char *err, size_t errlen);


int
audex_event_parse(audex_event_t *ev, const char *stream,
    audex_stream_entry_t *entry, char *err, size_t errlen)
{
    int          i;
    const char  *state, *fid;

    memset(ev, 0, sizeof(audex_event_t));

    /* the event owns the entry from here on, even when it is malformed */
    ev->stream = stream;
    ev->entry = *entry;
    memset(entry, 0, sizeof(audex_stream_entry_t));

    ev->duration = -1;
    ev->kind = AUDEX_JOB_STATE_DONE;

    ev->job_id = audex_stream_field(&ev->entry, AUDEX_F_JOB_ID);
    if (ev->job_id == NULL || ev->job_id[0] == '\0'
        || strlen(ev->job_id) > 128)
    {
        ev->job_id = NULL;
        snprintf(err, errlen, "no job_id");
        return -1;
    }

    if (strcmp(stream, audex_notify_conf.video_dead_queue) == 0) {
        ev->failed = 1;

    } else {
        state = audex_stream_field(&ev->entry, AUDEX_F_STATE);

        if (state && strcmp(state, AUDEX_JOB_STATE_FAILED) == 0) {
            ev->failed = 1;

        } else if (state && state[0]
                   && strcmp(state, AUDEX_JOB_STATE_DONE) != 0)
        {
            snprintf(err, errlen, "unknown state \"%.64s\"", state);
            return -1;
        }
    }

    if (ev->failed) {
        ev->kind = AUDEX_JOB_STATE_FAILED;
        return 0;
    }

    fid = audex_stream_field(&ev->entry, AUDEX_F_MP3_FID);
    if (fid == NULL || !audex_event_is_oid(fid)) {
        snprintf(err, errlen, "mp3_fid \"%.64s\" is not an ObjectId",
                 fid ? fid : "");
        return -1;
    }

    /* lowercase, as the download module reads it from the link */
    for (i = 0; i < 24; i++) {
        ev->mp3_fid[i] = (char) tolower((u_char) fid[i]);
    }

    ev->mp3_fid[24] = '\0';

    return 0;
}


audex_send_status_e
audex_event_resolve(audex_event_t *ev, mongoc_client_t *mongo, char *err,
    size_t errlen)
{
    int                   rc;
    double                d;
    bson_t                filter, *job, *file, *user;
    bson_oid_t            oid;
    const char           *s;
    audex_send_status_e   status;

    job = NULL;
    file = NULL;
    user = NULL;
    status = AUDEX_SEND_TRANSIENT;

    bson_init(&filter);
    BSON_APPEND_UTF8(&filter, "_id", ev->job_id);
    rc = audex_event_find_one(mongo, AUDEX_COLL_JOBS, &filter, &job, err,
                              errlen);
    bson_destroy(&filter);

    if (rc < 0) {
        goto done;
    }

    if (rc == 1 && audex_store_job_state_is(job, AUDEX_JOB_STATE_DELETING)) {
        /* a DELETE cut short: finish it; there is no one to tell */
        status = audex_event_deleted(ev, mongo, job, err, errlen);
        goto done;
    }

    if (!ev->failed) {
        bson_oid_init_from_string(&oid, ev->mp3_fid);
        bson_init(&filter);
        BSON_APPEND_OID(&filter, "_id", &oid);
        rc = audex_event_find_one(mongo, "mp3s.files", &filter, &file, err,
                                  errlen);
        bson_destroy(&filter);

        if (rc < 0) {
            goto done;
        }

        if (rc == 0) {
            snprintf(err, errlen, "mp3 %s is not in GridFS", ev->mp3_fid);
            status = AUDEX_SEND_PERMANENT;
            goto done;
        }
    }

    /* the job document names the upload; the entry may name the MP3 */
    s = audex_event_str(job, AUDEX_F_FILENAME);
    if (s == NULL || s[0] == '\0') {
        s = audex_stream_field(&ev->entry, AUDEX_F_FILENAME);
    }
    if (s == NULL || s[0] == '\0') {
        s = audex_event_str(file, "filename");
    }

    ev->filename = audex_event_text((s && s[0]) ? s : "your video",
                                    AUDEX_EVENT_NAME_MAX);

    s = audex_stream_field(&ev->entry, AUDEX_F_OWNER_ID);
    if (s == NULL || s[0] == '\0') {
        s = audex_event_str(job, AUDEX_F_OWNER_ID);
    }
    if ((s == NULL || s[0] == '\0') && file) {
        s = audex_event_str(file, "metadata.owner_id");
    }

    ev->owner_id = audex_event_text(s ? s : "", 128);

    if (ev->filename == NULL || ev->owner_id == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    if (ev->failed) {
        s = audex_stream_field(&ev->entry, AUDEX_F_ERROR);
        if (s == NULL || s[0] == '\0') {
            s = audex_stream_field(&ev->entry, "dead_reason");
        }
        if (s == NULL || s[0] == '\0') {
            s = audex_event_str(job, AUDEX_F_ERROR);
        }

        ev->reason = audex_event_text((s && s[0]) ? s : "unknown error",
                                      AUDEX_EVENT_REASON_MAX);
        if (ev->reason == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }

    } else {
        if (audex_event_num(file, "metadata.duration", &d)
            || audex_event_num(job, "duration", &d))
        {
            ev->duration = d;

        } else {
            s = audex_stream_field(&ev->entry, "duration");
            if (s && s[0]) {
                d = strtod(s, NULL);
                ev->duration = (d > 0 && d < 1e9) ? d : -1;
            }
        }

        if (audex_event_sign(ev, file, err, errlen) != 0) {
            goto done;
        }
    }

    s = audex_stream_field(&ev->entry, AUDEX_F_OWNER_EMAIL);
    if (s == NULL || s[0] == '\0') {
        s = audex_event_str(job, AUDEX_F_OWNER_EMAIL);
    }

    if ((s == NULL || s[0] == '\0') && audex_event_is_oid(ev->owner_id)) {
        bson_oid_init_from_string(&oid, ev->owner_id);
        bson_init(&filter);
        BSON_APPEND_OID(&filter, "_id", &oid);
        rc = audex_event_find_one(mongo, AUDEX_COLL_USERS, &filter, &user, err,
                                  errlen);
        bson_destroy(&filter);

        if (rc < 0) {
            goto done;
        }

        s = audex_event_str(user, "email");
    }

    if (s && s[0]) {
        ev->email = strdup(s);
        if (ev->email == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    }

    status = AUDEX_SEND_OK;

done:

    if (job) {
        bson_destroy(job);
    }

    if (file) {
        bson_destroy(file);
    }

    if (user) {
        bson_destroy(user);
    }

    return status;
}


void
audex_event_free(audex_event_t *ev)
{
    if (ev == NULL) {
        return;
    }

    audex_stream_entry_clear(&ev->entry);
    free(ev->filename);
    free(ev->email);
    free(ev->owner_id);
    free(ev->reason);
    free(ev->link);

    memset(ev, 0, sizeof(audex_event_t));
}


/*
 * The job was being deleted: the removal is finished here (the store
 * layer's steps are idempotent) and the event is not notified:
 * AUDEX_SEND_PERMANENT, or _TRANSIENT when the removal failed.
 */

static audex_send_status_e
audex_event_deleted(audex_event_t *ev, mongoc_client_t *mongo,
    const bson_t *job, char *err, size_t errlen)
{
    int                 rc;
    bson_error_t        error;
    mongoc_database_t  *db;

    db = mongoc_client_get_database(mongo, audex_notify_conf.db);
    rc = audex_store_job_delete(db, job, &error);
    mongoc_database_destroy(db);

    if (rc < 0) {
        snprintf(err, errlen, "finishing the deletion of job %s: %s",
                 ev->job_id, error.message);
        return AUDEX_SEND_TRANSIENT;
    }

    snprintf(err, errlen, "job %s was deleted", ev->job_id);
    return AUDEX_SEND_PERMANENT;
}


/* 1 with *doc (the caller destroys it), 0 for no document, -1 */

static int
audex_event_find_one(mongoc_client_t *mongo, const char *coll,
    const bson_t *filter, bson_t **doc, char *err, size_t errlen)
{
    int                   rc;
    bson_error_t          error;
    mongoc_collection_t  *c;

    c = mongoc_client_get_collection(mongo, audex_notify_conf.db, coll);
    rc = audex_store_find_one(c, filter, doc, &error);
    mongoc_collection_destroy(c);

    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", coll, error.message);
    }

    return rc;
}


/* a string at a dotted path, or NULL */

static const char *
audex_event_str(const bson_t *doc, const char *path)
{
    bson_iter_t  it, f;

    if (doc == NULL || !bson_iter_init(&it, doc)
        || !bson_iter_find_descendant(&it, path, &f)
        || !BSON_ITER_HOLDS_UTF8(&f))
    {
        return NULL;
    }

    return bson_iter_utf8(&f, NULL);
}


/* a positive number at a dotted path: 1 with *v, else 0 */

static int
audex_event_num(const bson_t *doc, const char *path, double *v)
{
    bson_iter_t  it, f;

    if (doc == NULL || !bson_iter_init(&it, doc)
        || !bson_iter_find_descendant(&it, path, &f)
        || !BSON_ITER_HOLDS_NUMBER(&f))
    {
        return 0;
    }

    *v = bson_iter_as_double(&f);

    return (*v > 0 && *v < 1e9);
}


/*
 * A copy fit for a mail header, a mail body and a JSON string: bytes
 * that are not UTF-8 become '?', control characters a space, and the
 * text is cut to max bytes on a character boundary.
 */

static char *
audex_event_text(const char *s, size_t max)
{
    size_t          i, j, n, len, k;
    u_char          c;
    char           *out;
    const u_char   *p;

    len = strlen(s);
    out = malloc((len < max ? len : max) + 1);
    if (out == NULL) {
        return NULL;
    }

    p = (const u_char *) s;
    n = 0;

    for (i = 0; i < len; /* void */) {
        c = p[i];

        if (c < 0x80) {
            k = 1;

        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 2;

        } else if (c >= 0xe0 && c <= 0xef) {
            k = 3;

        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 4;

        } else {
            k = 0;
        }

        /* continuation bytes, and no overlong or surrogate forms */
        if (k > 1) {
            if (i + k > len) {
                k = 0;

            } else {
                for (j = 1; j < k; j++) {
                    if ((p[i + j] & 0xc0) != 0x80) {
                        k = 0;
                        break;
                    }
                }
            }

            if ((k == 3 && c == 0xe0 && p[i + 1] < 0xa0)
                || (k == 3 && c == 0xed && p[i + 1] >= 0xa0)
                || (k == 4 && c == 0xf0 && p[i + 1] < 0x90)
                || (k == 4 && c == 0xf4 && p[i + 1] >= 0x90))
            {
                k = 0;
            }
        }

        if (n + (k ? k : 1) > max) {
            break;
        }

        if (k == 0) {
            out[n++] = '?';
            i++;
            continue;
        }

        if (k == 1) {
            out[n++] = (c < 0x20 || c == 0x7f) ? ' ' : (char) c;
            i++;
            continue;
        }

        memcpy(out + n, p + i, k);
        n += k;
        i += k;
    }

    out[n] = '\0';

    return out;
}


static int
audex_event_is_oid(const char *s)
{
    return s != NULL && strlen(s) == 24 && bson_oid_is_valid(s, 24);
}


static int
audex_event_sign(audex_event_t *ev, const bson_t *file, char *err,
    size_t errlen)
{
    int          n;
    char         owner[25], sig[AUDEX_LINK_SIG_LEN + 1];
    size_t       size;
    uint32_t     len;
    bson_iter_t  it, f;
    const char  *s;

    /* exactly what the download module takes for the owner */
    owner[0] = '\0';

    if (bson_iter_init(&it, file)
        && bson_iter_find_descendant(&it, "metadata.owner_id", &f))
    {
        if (BSON_ITER_HOLDS_UTF8(&f)) {
            s = bson_iter_utf8(&f, &len);
            if (len == 24) {
                memcpy(owner, s, 25);
            }

        } else if (BSON_ITER_HOLDS_OID(&f)) {
            bson_oid_to_string(bson_iter_oid(&f), owner);
        }
    }

    ev->link_exp = (int64_t) time(NULL) + audex_notify_conf.link_lifetime;

    if (audex_link_sign(audex_notify_conf.link_key,
                        audex_notify_conf.link_key_len, ev->mp3_fid, 24,
                        owner, strlen(owner), ev->link_exp, sig)
        != 0)
    {
        snprintf(err, errlen, "cannot sign the download link");
        return -1;
    }

    size = strlen(audex_notify_conf.public_url) + 128;

    ev->link = malloc(size);
    if (ev->link == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    n = snprintf(ev->link, size, "%s/download?fid=%s&exp=%lld&sig=%s",
                 audex_notify_conf.public_url, ev->mp3_fid,
                 (long long) ev->link_exp, sig);

    if (n < 0 || (size_t) n >= size) {
        snprintf(err, errlen, "download link too long");
        return -1;
    }

    return 0;
}
