/*
 * audex-notifier: types and entry points shared by its files.
 *
 *   main.c     command line, settings, start and stop
 *   loop.c     the stream consumer: retries, idempotency, dead letters
 *   event.c    a stream entry -> an event (MongoDB look-ups, signed link)
 *   smtp.c     the email: message text and SMTP delivery (libcurl)
 *   webhook.c  the signed JSON POST (libcurl)
 *   kv.c       the few plain Redis commands the streams API lacks
 *   buf.c      a growing text buffer for the message and the JSON
 */

#ifndef _AUDEX_NOTIFIER_H_INCLUDED_
#define _AUDEX_NOTIFIER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <mongoc/mongoc.h>

#include "redis_stream.h"
#include "secret.h"


typedef enum {
    AUDEX_NOTIFY_EMAIL = 0,
    AUDEX_NOTIFY_WEBHOOK,
    AUDEX_NOTIFY_NCHANNELS
} audex_notify_channel_e;


/* what an attempt came to; only TRANSIENT is worth another one */
typedef enum {
    AUDEX_SEND_OK = 0,
    AUDEX_SEND_TRANSIENT,
    AUDEX_SEND_PERMANENT,
    AUDEX_SEND_CANCELLED        /* stopping, and nothing was sent yet */
} audex_send_status_e;


typedef struct {
    char           *redis_url;
    char           *mongodb_uri;
    char           *mp3_queue;
    char           *video_queue;
    char           *video_dead_queue;
    char           *dead_queue;
    char           *group;
    char           *consumer;
    char           *public_url;
    char           *link_secret_file;
    char           *smtp_url;
    char           *smtp_user;
    char           *smtp_password;
    char           *smtp_password_file;
    char           *smtp_starttls;
    char           *smtp_ca_file;
    char           *mail_from;
    char           *webhook_url;
    char           *webhook_secret_file;
    char           *metrics_addr;
    char           *log_level;
    int             link_lifetime;
    int             smtp_timeout;
    int             webhook_timeout;
    int             retry_base_ms;
    int             retry_max_ms;
    int             retry_limit;
    int             sent_ttl;
    int             claim_idle_ms;
    int             max_held;
    int             metrics_port;

    /* derived by main.c */
    const char     *db;
    int             email;          /* the channels in use */
    int             webhook;
    int             starttls;       /* a curl_usessl value */
    u_char          link_key[AUDEX_SECRET_MAX];
    size_t          link_key_len;
    u_char          webhook_key[AUDEX_SECRET_MAX];
    size_t          webhook_key_len;
    char            envelope_from[256];
    char            mail_domain[256];
} audex_notify_conf_t;


typedef struct {
    uint64_t        messages[AUDEX_NOTIFY_NCHANNELS][2];
    uint64_t        duplicates[AUDEX_NOTIFY_NCHANNELS];
    uint64_t        dead[AUDEX_NOTIFY_NCHANNELS + 1];
    uint64_t        events;
    int64_t         held;
} audex_notify_metrics_t;


/*
 * One conversion that ended, as both channels need it.  Every string is
 * owned by the event and NUL-terminated; audex_event_free() frees them.
 */
typedef struct {
    const char             *stream;
    audex_stream_entry_t    entry;

    int                     failed;     /* 0: "done", 1: "failed" */
    const char             *kind;       /* "done" or "failed" */
    const char             *job_id;     /* points into entry */

    char                   *filename;   /* the uploaded video's name */
    char                   *email;      /* NULL: nobody to write to */
    char                   *owner_id;
    char                   *reason;     /* failed: why */
    char                    mp3_fid[25];
    double                  duration;   /* seconds; < 0 unknown */
    char                   *link;
    int64_t                 link_exp;
} audex_event_t;


/* text that grows; after a failed allocation it stays failed */
typedef struct {
    char           *data;
    size_t          len;
    size_t          cap;
    size_t          sent;           /* for a reader such as libcurl's */
    int             failed;
} audex_notify_buf_t;


extern audex_notify_conf_t     audex_notify_conf;
extern audex_notify_metrics_t  audex_notify_metrics;

extern const char  *audex_notify_channels[];


/*
 * loop.c: the service, on the service's MongoDB client and Redis handle
 * (both the caller's); returns an exit code
 */
int audex_notify_loop(mongoc_client_t *mongo, audex_redis_t *redis);

/* event.c */
int audex_event_parse(audex_event_t *ev, const char *stream,
    audex_stream_entry_t *entry, char *err, size_t errlen);
audex_send_status_e audex_event_resolve(audex_event_t *ev,
    mongoc_client_t *mongo, char *err, size_t errlen);
void audex_event_free(audex_event_t *ev);

/* smtp.c */
int audex_smtp_init(char *err, size_t errlen);
audex_send_status_e audex_smtp_send(const audex_event_t *ev, char *err,
    size_t errlen);

/* webhook.c */
audex_send_status_e audex_webhook_send(const audex_event_t *ev, char *err,
    size_t errlen);

/* both senders: aborts a transfer on SIGTERM while nothing was sent */
int audex_notify_progress(void *data, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow);


/* buf.c */
void audex_notify_buf_add(audex_notify_buf_t *b, const char *p, size_t n);
void audex_notify_buf_printf(audex_notify_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* a JSON string (quoted and escaped), or null for NULL */
void audex_notify_buf_json(audex_notify_buf_t *b, const char *s);


/* kv.c: plain keys on a connection of their own */
typedef struct audex_kv_s  audex_kv_t;

audex_kv_t *audex_kv_new(const char *url, char *err, size_t errlen);
void audex_kv_free(audex_kv_t *kv);
const char *audex_kv_error(audex_kv_t *kv);

/* EXISTS: 1, 0 or -1 */
int audex_kv_exists(audex_kv_t *kv, const char *key);

/* SET key value NX EX ttl: 1 set, 0 was there already, -1 */
int audex_kv_set_nx(audex_kv_t *kv, const char *key, const char *value,
    int ttl);

/* INCRBY key by, then EXPIRE key ttl: the new value, or -1 */
long long audex_kv_incr(audex_kv_t *kv, const char *key, int by, int ttl);

/* DEL: 0 or -1 */
int audex_kv_del(audex_kv_t *kv, const char *key);


#endif /* _AUDEX_NOTIFIER_H_INCLUDED_ */
