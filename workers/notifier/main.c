/*
 * audex-notifier: command line, settings, start and stop.
 *
 *   audex-notifier [run] [options]      see --help and loop.c
 *
 * Tells the owner of a conversion that it ended: an email with a signed
 * download link (or the reason it failed), and a signed JSON POST to
 * WEBHOOK_URL when one is set.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audex_link.h"
#include "audex_schema.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "notifier.h"
#include "service.h"
#include "signals.h"


audex_notify_conf_t     audex_notify_conf;
audex_notify_metrics_t  audex_notify_metrics;

const char  *audex_notify_channels[] = { "email", "webhook", "event" };


static int audex_notify_setup(char *err, size_t errlen);
static void audex_notify_render(audex_metrics_buf_t *b, void *data);


static audex_conf_t  audex_notify_conf_table[] = {

    { "redis-url", "REDIS_URL", AUDEX_CONF_STRING,
      "redis://127.0.0.1:6379/0", 0, 0, &audex_notify_conf.redis_url,
      "Redis (7 or later) with the streams" },

    { "mongodb-uri", "MONGODB_URI", AUDEX_CONF_STRING,
      "mongodb://127.0.0.1:27017/audex", 0, 0,
      &audex_notify_conf.mongodb_uri,
      "MongoDB with jobs, users and GridFS mp3s" },

    { "mp3-queue", "MP3_QUEUE", AUDEX_CONF_STRING, AUDEX_STREAM_MP3, 0, 0,
      &audex_notify_conf.mp3_queue,
      "Redis stream of finished (and failed) conversions" },

    { "video-queue", "VIDEO_QUEUE", AUDEX_CONF_STRING, AUDEX_STREAM_VIDEO, 0, 0,
      &audex_notify_conf.video_queue,
      "the converter's job stream; names its dead letters" },

    { "video-dead-queue", "DEAD_QUEUE", AUDEX_CONF_STRING, "", 0, 0,
      &audex_notify_conf.video_dead_queue,
      "converter's dead letters; empty: <video-queue>:dead" },

    { "dead-queue", "NOTIFIER_DEAD_QUEUE", AUDEX_CONF_STRING, "", 0, 0,
      &audex_notify_conf.dead_queue,
      "undeliverable events; empty: <mp3-queue>:dead" },

    { "group", "NOTIFIER_GROUP", AUDEX_CONF_STRING, AUDEX_GROUP_NOTIFIER,
      0, 0,
      &audex_notify_conf.group, "consumer group of the notifiers" },

    { "consumer", "NOTIFIER_CONSUMER", AUDEX_CONF_STRING, "", 0, 0,
      &audex_notify_conf.consumer,
      "consumer name; empty: <hostname>-<pid>" },

    { "claim-idle-ms", "NOTIFIER_CLAIM_IDLE_MS", AUDEX_CONF_INT, "60000",
      1000, 86400000, &audex_notify_conf.claim_idle_ms,
      "entries idle this long are taken over" },

    { "public-url", "PUBLIC_URL", AUDEX_CONF_STRING,
      "http://127.0.0.1:8080", 0, 0, &audex_notify_conf.public_url,
      "where users reach audex: the links' prefix" },

    { "link-secret-file", "LINK_SECRET_FILE", AUDEX_CONF_STRING, "", 0, 0,
      &audex_notify_conf.link_secret_file,
      "download link key (audex_link_secret); required" },

    { "link-lifetime", "LINK_LIFETIME", AUDEX_CONF_INT, "604800", 60,
      31622400, &audex_notify_conf.link_lifetime,
      "seconds a download link stays valid" },

    { "smtp-url", "SMTP_URL", AUDEX_CONF_STRING, "smtp://127.0.0.1:2525", 0,
      0, &audex_notify_conf.smtp_url,
      "smtp:// or smtps:// (TLS); \"off\": no email" },

    { "smtp-starttls", "SMTP_STARTTLS", AUDEX_CONF_STRING, "try", 0, 0,
      &audex_notify_conf.smtp_starttls,
      "for smtp://: off, try (when offered), require" },

    { "smtp-ca-file", "SMTP_CA_FILE", AUDEX_CONF_STRING, "", 0, 0,
      &audex_notify_conf.smtp_ca_file,
      "CA bundle for the SMTP server; empty: system's" },

    { "smtp-user", "SMTP_USER", AUDEX_CONF_STRING, "", 0, 0,
      &audex_notify_conf.smtp_user, "SMTP AUTH user; empty: no AUTH" },

    { "smtp-password", "SMTP_PASSWORD", AUDEX_CONF_STRING, "", 0, 0,
      &audex_notify_conf.smtp_password,
      "SMTP AUTH password (prefer the file)" },

    { "smtp-password-file", "SMTP_PASSWORD_FILE", AUDEX_CONF_STRING, "", 0,
      0, &audex_notify_conf.smtp_password_file,
      "file holding the SMTP AUTH password" },

    { "smtp-timeout", "SMTP_TIMEOUT", AUDEX_CONF_INT, "30", 1, 600,
      &audex_notify_conf.smtp_timeout, "seconds one SMTP delivery may take" },

    { "mail-from", "MAIL_FROM", AUDEX_CONF_STRING, "audex@localhost", 0, 0,
      &audex_notify_conf.mail_from,
      "sender: address or \"Name <address>\"" },

    { "webhook-url", "WEBHOOK_URL", AUDEX_CONF_STRING, "", 0, 0,
      &audex_notify_conf.webhook_url,
      "http(s) URL each event is POSTed to; empty: none" },

    { "webhook-secret-file", "WEBHOOK_SECRET_FILE", AUDEX_CONF_STRING, "",
      0, 0, &audex_notify_conf.webhook_secret_file,
      "HMAC key of X-Audex-Signature (32+ bytes)" },

    { "webhook-timeout", "WEBHOOK_TIMEOUT", AUDEX_CONF_INT, "10", 1, 600,
      &audex_notify_conf.webhook_timeout,
      "seconds one webhook request may take" },

    { "retry-base-ms", "NOTIFIER_RETRY_BASE_MS", AUDEX_CONF_INT, "2000", 10,
      3600000, &audex_notify_conf.retry_base_ms,
      "first retry delay; doubles after each failure" },

    { "retry-max-ms", "NOTIFIER_RETRY_MAX_MS", AUDEX_CONF_INT, "300000", 10,
      86400000, &audex_notify_conf.retry_max_ms,
      "longest delay between two attempts" },

    { "retry-limit", "NOTIFIER_RETRY_LIMIT", AUDEX_CONF_INT, "10", 1, 1000,
      &audex_notify_conf.retry_limit,
      "attempts per message before its dead letter" },

    { "sent-ttl", "NOTIFIER_SENT_TTL", AUDEX_CONF_INT, "604800", 60,
      31622400, &audex_notify_conf.sent_ttl,
      "seconds a notified job is remembered" },

    { "max-held", "NOTIFIER_MAX_HELD", AUDEX_CONF_INT, "64", 1, 100000,
      &audex_notify_conf.max_held,
      "events awaiting retry before reading pauses" },

    { "metrics-port", "NOTIFIER_METRICS_PORT", AUDEX_CONF_INT, "9101", 0,
      65535, &audex_notify_conf.metrics_port,
      "Prometheus /metrics port; 0 turns it off" },

    { "metrics-addr", "METRICS_ADDR", AUDEX_CONF_STRING, "127.0.0.1", 0, 0,
      &audex_notify_conf.metrics_addr,
      "address of /metrics and /healthz (IPv4 or IPv6); 0.0.0.0: all" },

    { "log-level", "LOG_LEVEL", AUDEX_CONF_STRING, "info", 0, 0,
      &audex_notify_conf.log_level, "error, warn, info or debug" },

    { NULL, NULL, 0, NULL, 0, 0, NULL, NULL }
};


/*
 * A MongoDB that is away should fail a look-up in seconds, not in the
 * driver's 30: the loop backs off and SIGTERM is not kept waiting.
 */

static audex_service_t  audex_notify_service = {
    .name = "audex-notifier",
    .usage = "usage: audex-notifier [run] [options]\n\n"
             "Sends an email, and a signed webhook when configured, for "
             "each conversion that\nends (MP3_QUEUE) or that the converter "
             "gave up on (its dead letters).",
    .table = audex_notify_conf_table,
    .check = audex_notify_setup,
    .render = audex_notify_render,
    .timeout_ms = 2000,
    .socket_timeout_ms = 10000
};


int
main(int argc, char **argv)
{
    int  rc;

    /* "run" is the service, and what the container runs without it */
    if (argc >= 2 && strcmp(argv[1], "run") == 0) {
        argv[1] = argv[0];
        argc--;
        argv++;
    }

    rc = audex_service_start(&audex_notify_service, argc, argv);
    if (rc != AUDEX_SERVICE_RUN) {
        return rc;
    }

    audex_notify_conf.db = audex_notify_service.db;

    srand((unsigned) (time(NULL) ^ getpid()));

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "audex-notifier: curl_global_init failed\n");
        audex_service_stop(&audex_notify_service);
        return 1;
    }

    audex_log(AUDEX_LOG_INFO, NULL, "notifier %s: email %s, webhook %s, "
              "dead letters to %s, metrics on %s:%d",
              audex_notify_conf.consumer,
              audex_notify_conf.email ? audex_notify_conf.smtp_url : "off",
              audex_notify_conf.webhook ? audex_notify_conf.webhook_url
                                        : "off",
              audex_notify_conf.dead_queue, audex_notify_conf.metrics_addr,
              audex_notify_conf.metrics_port);

    rc = audex_notify_loop(audex_notify_service.mongo,
                           audex_notify_service.redis);

    curl_global_cleanup();

    explicit_bzero(audex_notify_conf.link_key,
                   sizeof(audex_notify_conf.link_key));
    explicit_bzero(audex_notify_conf.webhook_key,
                   sizeof(audex_notify_conf.webhook_key));

    if (audex_notify_conf.smtp_password) {
        explicit_bzero(audex_notify_conf.smtp_password,
                       strlen(audex_notify_conf.smtp_password));
    }

    audex_service_stop(&audex_notify_service);

    audex_log(AUDEX_LOG_INFO, NULL, "stopped");

    return rc;
}


/* checks the settings and derives what the rest of the program uses */

static int
audex_notify_setup(char *err, size_t errlen)
{
    size_t                len;
    u_char                pw[AUDEX_SECRET_MAX];
    audex_notify_conf_t  *cf = &audex_notify_conf;

    if ((cf->video_dead_queue[0] == '\0'
         && audex_conf_derive(&cf->video_dead_queue,
                              "%s" AUDEX_STREAM_DEAD_SUFFIX,
                              cf->video_queue) != 0)
        || (cf->dead_queue[0] == '\0'
            && audex_conf_derive(&cf->dead_queue,
                                 "%s" AUDEX_STREAM_DEAD_SUFFIX,
                                 cf->mp3_queue) != 0))
    {
        snprintf(err, errlen, "stream names too long");
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    if (strcmp(cf->dead_queue, cf->mp3_queue) == 0
        || strcmp(cf->dead_queue, cf->video_dead_queue) == 0
        || strcmp(cf->mp3_queue, cf->video_dead_queue) == 0)
    {
        snprintf(err, errlen, "MP3_QUEUE, DEAD_QUEUE and NOTIFIER_DEAD_QUEUE "
                 "must be three streams");
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    if (audex_service_consumer(&cf->consumer, "notifier") != 0) {
        snprintf(err, errlen, "out of memory");
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    /* links are "<public url>/download?..." */
    len = strlen(cf->public_url);
    while (len > 0 && cf->public_url[len - 1] == '/') {
        cf->public_url[--len] = '\0';
    }

    if ((strncmp(cf->public_url, "http://", 7) != 0
         && strncmp(cf->public_url, "https://", 8) != 0)
        || strpbrk(cf->public_url, " \t\r\n\"<>") != NULL
        || len > 1024)
    {
        snprintf(err, errlen, "PUBLIC_URL \"%s\" is not an http(s) URL",
                 cf->public_url);
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    if (cf->link_secret_file[0] == '\0') {
        snprintf(err, errlen, "LINK_SECRET_FILE is required: the key nginx "
                 "verifies download links with (audex_link_secret)");
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    if (audex_secret_read(cf->link_secret_file, cf->link_key,
                          &cf->link_key_len, AUDEX_LINK_MIN_KEY, err, errlen)
        != 0)
    {
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    cf->email = (cf->smtp_url[0] != '\0' && strcmp(cf->smtp_url, "off") != 0);

    if (cf->email) {
        if (strncmp(cf->smtp_url, "smtp://", 7) != 0
            && strncmp(cf->smtp_url, "smtps://", 8) != 0)
        {
            snprintf(err, errlen, "SMTP_URL \"%s\" is not smtp:// or "
                     "smtps://", cf->smtp_url);
            return AUDEX_SERVICE_EXIT_CONFIG;
        }

        if (strcmp(cf->smtp_starttls, "off") == 0) {
            cf->starttls = CURLUSESSL_NONE;

        } else if (strcmp(cf->smtp_starttls, "try") == 0) {
            cf->starttls = CURLUSESSL_TRY;

        } else if (strcmp(cf->smtp_starttls, "require") == 0) {
            cf->starttls = CURLUSESSL_ALL;

        } else {
            snprintf(err, errlen, "SMTP_STARTTLS \"%s\" is not off, try or "
                     "require", cf->smtp_starttls);
            return AUDEX_SERVICE_EXIT_CONFIG;
        }

        /*
         * A password file without a user is ignored: deployments mount
         * the (empty) secret whether or not the SMTP server wants AUTH.
         */
        if (cf->smtp_password_file[0] && cf->smtp_user[0]) {
            if (cf->smtp_password[0]) {
                snprintf(err, errlen, "SMTP_PASSWORD and SMTP_PASSWORD_FILE "
                         "exclude each other");
                return AUDEX_SERVICE_EXIT_CONFIG;
            }

            if (audex_secret_read(cf->smtp_password_file, pw, &len, 1, err,
                                  errlen)
                != 0)
            {
                return AUDEX_SERVICE_EXIT_CONFIG;
            }

            free(cf->smtp_password);
            cf->smtp_password = strndup((char *) pw, len);
            explicit_bzero(pw, sizeof(pw));

            if (cf->smtp_password == NULL) {
                snprintf(err, errlen, "out of memory");
                return AUDEX_SERVICE_EXIT_CONFIG;
            }
        }

        if (audex_smtp_init(err, errlen) != 0) {
            return AUDEX_SERVICE_EXIT_CONFIG;
        }

        if (cf->smtp_user[0] && strncmp(cf->smtp_url, "smtps://", 8) != 0
            && cf->starttls != CURLUSESSL_ALL)
        {
            audex_log(AUDEX_LOG_WARN, NULL, "SMTP AUTH without "
                      "SMTP_STARTTLS=require or smtps://: the password may "
                      "cross the network in clear");
        }
    }

    cf->webhook = (cf->webhook_url[0] != '\0');

    if (cf->webhook) {
        if ((strncmp(cf->webhook_url, "http://", 7) != 0
             && strncmp(cf->webhook_url, "https://", 8) != 0))
        {
            snprintf(err, errlen, "WEBHOOK_URL \"%s\" is not an http(s) URL",
                     cf->webhook_url);
            return AUDEX_SERVICE_EXIT_CONFIG;
        }

        if (cf->webhook_secret_file[0] == '\0') {
            snprintf(err, errlen, "WEBHOOK_URL needs WEBHOOK_SECRET_FILE: "
                     "webhooks are always signed");
            return AUDEX_SERVICE_EXIT_CONFIG;
        }

        if (audex_secret_read(cf->webhook_secret_file, cf->webhook_key,
                              &cf->webhook_key_len, 32, err, errlen)
            != 0)
        {
            return AUDEX_SERVICE_EXIT_CONFIG;
        }
    }

    if (!cf->email && !cf->webhook) {
        snprintf(err, errlen, "nothing to do: SMTP_URL is off and "
                 "WEBHOOK_URL is empty");
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    if (cf->retry_max_ms < cf->retry_base_ms) {
        snprintf(err, errlen, "NOTIFIER_RETRY_MAX_MS (%d) is below "
                 "NOTIFIER_RETRY_BASE_MS (%d)", cf->retry_max_ms,
                 cf->retry_base_ms);
        return AUDEX_SERVICE_EXIT_CONFIG;
    }

    return 0;
}


/*
 * Called by libcurl about once a second and as data moves: a transfer
 * that has not sent anything yet gives way to SIGTERM; once the message
 * or the body is on its way it is finished, lest it arrive unrecorded.
 */

int
audex_notify_progress(void *data, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
    return (audex_stop && ulnow == 0) ? 1 : 0;
}


static void
audex_notify_render(audex_metrics_buf_t *b, void *data)
{
    int                      c, r;
    audex_notify_metrics_t  *m = &audex_notify_metrics;
    static const char       *results[] = { "success", "error" };

    audex_metrics_printf(b,
        "# HELP notifier_messages_total Delivery attempts, by channel and "
        "result.\n"
        "# TYPE notifier_messages_total counter\n");

    for (c = 0; c < AUDEX_NOTIFY_NCHANNELS; c++) {
        for (r = 0; r < 2; r++) {
            audex_metrics_printf(b, "notifier_messages_total{channel=\"%s\","
                                 "result=\"%s\"} %llu\n",
                                 audex_notify_channels[c], results[r],
                                 (unsigned long long)
                                 __atomic_load_n(&m->messages[c][r],
                                                 __ATOMIC_RELAXED));
        }
    }

    audex_metrics_printf(b,
        "# HELP notifier_duplicates_total Messages not sent again because "
        "the job was notified before.\n"
        "# TYPE notifier_duplicates_total counter\n");

    for (c = 0; c < AUDEX_NOTIFY_NCHANNELS; c++) {
        audex_metrics_printf(b, "notifier_duplicates_total{channel=\"%s\"} "
                             "%llu\n", audex_notify_channels[c],
                             (unsigned long long)
                             __atomic_load_n(&m->duplicates[c],
                                             __ATOMIC_RELAXED));
    }

    audex_metrics_printf(b,
        "# HELP notifier_dead_letters_total Notifications given up on.\n"
        "# TYPE notifier_dead_letters_total counter\n");

    for (c = 0; c <= AUDEX_NOTIFY_NCHANNELS; c++) {
        audex_metrics_printf(b, "notifier_dead_letters_total{channel=\"%s\"} "
                             "%llu\n", audex_notify_channels[c],
                             (unsigned long long)
                             __atomic_load_n(&m->dead[c], __ATOMIC_RELAXED));
    }

    audex_metrics_printf(b,
        "# HELP notifier_events_total Stream entries taken.\n"
        "# TYPE notifier_events_total counter\n"
        "notifier_events_total %llu\n"
        "# HELP notifier_events_held Events waiting for a retry.\n"
        "# TYPE notifier_events_held gauge\n"
        "notifier_events_held %lld\n",
        (unsigned long long) __atomic_load_n(&m->events, __ATOMIC_RELAXED),
        (long long) __atomic_load_n(&m->held, __ATOMIC_RELAXED));
}
