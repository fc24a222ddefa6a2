/*
 * audex-notifier: the webhook.
 *
 * One JSON POST to WEBHOOK_URL per event:
 *
 *   {"event":"conversion.done","delivery":"<job_id>/done",
 *    "time":1732442523,"job_id":"...","state":"done",
 *    "filename":"Holiday.mp4","owner_id":"...","mp3_fid":"...",
 *    "duration":205.312,"download_url":"https://.../download?...",
 *    "download_expires":1733047323,"error":null}
 *
 * ("conversion.failed" has mp3_fid, duration, download_url and
 * download_expires null, and error set.)  "time" is when the converter
 * announced the event.  The request carries
 *
 *   X-Audex-Signature: t=<unix time>,v1=<hex HMAC-SHA256>
 *
 * where the HMAC is keyed with the contents of WEBHOOK_SECRET_FILE and
 * taken over "<t>.<body>": the decimal t, a dot, the body's bytes.  A
 * receiver verifies it like this:
 *
 *   1. split the header at "," and each part at the first "="; take t and
 *      v1 (ignore parts it does not know: later versions may add some);
 *   2. reject the request when t is more than 5 minutes from its own
 *      clock: a replayed request has an old t, and changing t breaks the
 *      signature;
 *   3. compute HMAC-SHA256(secret, t + "." + raw body) over the body
 *      bytes as received (before any JSON parsing) and compare its
 *      lowercase hex with v1 in constant time (hmac.compare_digest,
 *      crypto.timingSafeEqual, CRYPTO_memcmp);
 *   4. answer 2xx, then act; use "delivery" (also in the
 *      X-Audex-Delivery header) to drop a repeated delivery.
 *
 * Every attempt is signed anew with the time of that attempt, so a retry
 * an hour later still passes step 2.  2xx is success; 408, 425, 429 and
 * 5xx (and no answer at all) are retried; any other status is permanent.
 * Redirects are not followed: the signed body goes only to WEBHOOK_URL.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "notifier.h"


/* the start of an answer that is kept for the log */
#define AUDEX_WEBHOOK_ANSWER_MAX  200


typedef struct {
    char        data[AUDEX_WEBHOOK_ANSWER_MAX + 1];
    size_t      len;
} audex_webhook_answer_t;


static void audex_webhook_body(audex_notify_buf_t *b,
    const audex_event_t *ev);
static int audex_webhook_sign(const char *body, size_t len, time_t t,
    char *header, size_t size);
static size_t audex_webhook_write(char *buf, size_t size, size_t n,
    void *data);
static void audex_webhook_safe(char *dst, size_t size, const char *src);


audex_send_status_e
audex_webhook_send(const audex_event_t *ev, char *err, size_t errlen)
{
    int                      i;
    long                     code;
    char                     sig[160], event[64], delivery[200];
    char                     cerr[CURL_ERROR_SIZE], id[160];
    CURL                    *curl;
    time_t                   now;
    CURLcode                 rc;
    const char              *lines[5];
    struct curl_slist       *h, *hdrs;
    audex_notify_buf_t       body;
    audex_send_status_e      status;
    audex_webhook_answer_t   answer;

    memset(&body, 0, sizeof(audex_notify_buf_t));
    audex_webhook_body(&body, ev);

    now = time(NULL);

    if (body.failed
        || audex_webhook_sign(body.data, body.len, now, sig, sizeof(sig))
           != 0)
    {
        free(body.data);
        snprintf(err, errlen, "cannot make the request");
        return AUDEX_SEND_TRANSIENT;
    }

    snprintf(event, sizeof(event), "X-Audex-Event: conversion.%s",
             ev->kind);

    /* a header value needs no quoting with the job ids the API makes */
    audex_webhook_safe(id, sizeof(id), ev->job_id);
    snprintf(delivery, sizeof(delivery), "X-Audex-Delivery: %s/%s", id,
             ev->kind);

    lines[0] = "Content-Type: application/json";
    lines[1] = sig;
    lines[2] = event;
    lines[3] = delivery;

    /* no "Expect: 100-continue" round trip for a small body */
    lines[4] = "Expect:";

    hdrs = NULL;
    curl = NULL;

    for (i = 0; i < 5; i++) {
        h = curl_slist_append(hdrs, lines[i]);
        if (h == NULL) {
            break;
        }

        hdrs = h;
    }

    if (i == 5) {
        curl = curl_easy_init();
    }

    if (curl == NULL) {
        curl_slist_free_all(hdrs);
        free(body.data);
        snprintf(err, errlen, "out of memory");
        return AUDEX_SEND_TRANSIENT;
    }

    cerr[0] = '\0';
    answer.len = 0;
    answer.data[0] = '\0';

    curl_easy_setopt(curl, CURLOPT_URL, audex_notify_conf.webhook_url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT,
                     (long) audex_notify_conf.webhook_timeout);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "audex-notifier/1");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long) body.len);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, audex_webhook_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, audex_notify_progress);

    rc = curl_easy_perform(curl);

    code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);

    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        status = AUDEX_SEND_CANCELLED;
        snprintf(err, errlen, "webhook: stopping");

    } else if (rc != CURLE_OK) {
        status = AUDEX_SEND_TRANSIENT;
        snprintf(err, errlen, "webhook: %s",
                 cerr[0] ? cerr : curl_easy_strerror(rc));

    } else if (code >= 200 && code < 300) {
        status = AUDEX_SEND_OK;

    } else {
        status = (code == 408 || code == 425 || code == 429 || code >= 500)
                 ? AUDEX_SEND_TRANSIENT : AUDEX_SEND_PERMANENT;
        snprintf(err, errlen, "webhook: HTTP %ld: %s", code, answer.data);
    }

    curl_easy_cleanup(curl);
    curl_slist_free_all(hdrs);
    free(body.data);

    return status;
}


static void
audex_webhook_body(audex_notify_buf_t *b, const audex_event_t *ev)
{
    char                delivery[200];
    long long           t;
    static const char   failed[] = ",\"mp3_fid\":null,\"duration\":null,"
                                   "\"download_url\":null,"
                                   "\"download_expires\":null,\"error\":";

    /* a stream entry id starts with its time in milliseconds */
    t = strtoll(ev->entry.id, NULL, 10) / 1000;

    snprintf(delivery, sizeof(delivery), "%s/%s", ev->job_id, ev->kind);

    audex_notify_buf_printf(b, "{\"event\":\"conversion.%s\",\"delivery\":",
                            ev->kind);
    audex_notify_buf_json(b, delivery);
    audex_notify_buf_printf(b, ",\"time\":%lld,\"job_id\":", t);
    audex_notify_buf_json(b, ev->job_id);
    audex_notify_buf_printf(b, ",\"state\":\"%s\",\"filename\":", ev->kind);
    audex_notify_buf_json(b, ev->filename);
    audex_notify_buf_printf(b, ",\"owner_id\":");
    audex_notify_buf_json(b, ev->owner_id[0] ? ev->owner_id : NULL);

    if (ev->failed) {
        audex_notify_buf_add(b, failed, sizeof(failed) - 1);
        audex_notify_buf_json(b, ev->reason);

    } else {
        audex_notify_buf_printf(b, ",\"mp3_fid\":\"%s\",\"duration\":",
                                ev->mp3_fid);

        if (ev->duration >= 0) {
            audex_notify_buf_printf(b, "%.3f", ev->duration);

        } else {
            audex_notify_buf_printf(b, "null");
        }

        audex_notify_buf_printf(b, ",\"download_url\":");
        audex_notify_buf_json(b, ev->link);
        audex_notify_buf_printf(b, ",\"download_expires\":%lld,"
                                "\"error\":null", (long long) ev->link_exp);
    }

    audex_notify_buf_add(b, "}", 1);
}


/* "X-Audex-Signature: t=<t>,v1=<hex>" */

static int
audex_webhook_sign(const char *body, size_t len, time_t t, char *header,
    size_t size)
{
    int                  n;
    char                 ts[24];
    u_char               mac[EVP_MAX_MD_SIZE];
    unsigned             i, mac_len;
    audex_notify_buf_t   msg;

    n = snprintf(ts, sizeof(ts), "%lld", (long long) t);

    memset(&msg, 0, sizeof(audex_notify_buf_t));
    audex_notify_buf_add(&msg, ts, n);
    audex_notify_buf_add(&msg, ".", 1);
    audex_notify_buf_add(&msg, body, len);

    if (msg.failed
        || HMAC(EVP_sha256(), audex_notify_conf.webhook_key,
                (int) audex_notify_conf.webhook_key_len, (u_char *) msg.data,
                msg.len, mac, &mac_len)
           == NULL)
    {
        free(msg.data);
        return -1;
    }

    free(msg.data);

    n = snprintf(header, size, "X-Audex-Signature: t=%s,v1=", ts);

    for (i = 0; i < mac_len && (size_t) n + 3 <= size; i++) {
        n += snprintf(header + n, size - n, "%02x", mac[i]);
    }

    OPENSSL_cleanse(mac, sizeof(mac));

    return (i == mac_len) ? 0 : -1;
}


static size_t
audex_webhook_write(char *buf, size_t size, size_t n, void *data)
{
    size_t                   len, i;
    audex_webhook_answer_t  *a = data;

    len = size * n;

    for (i = 0; i < len && a->len < AUDEX_WEBHOOK_ANSWER_MAX; i++) {
        a->data[a->len++] = (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i]
                                                              : ' ';
    }

    a->data[a->len] = '\0';

    return len;
}


/* printable ASCII other than space, else '_' */

static void
audex_webhook_safe(char *dst, size_t size, const char *src)
{
    size_t  i;

    for (i = 0; i + 1 < size && src[i]; i++) {
        dst[i] = ((u_char) src[i] > 0x20 && (u_char) src[i] < 0x7f)
                 ? src[i] : '_';
    }

    dst[i] = '\0';
}
