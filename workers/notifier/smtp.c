/*
 * audex-notifier: the email.
 *
 * One text/plain message in UTF-8 per event, sent with libcurl to
 * SMTP_URL: smtp:// with STARTTLS as SMTP_STARTTLS says (off, try,
 * require), or smtps:// (TLS from the first byte), with AUTH when
 * SMTP_USER is set.  Certificates are always verified (SMTP_CA_FILE
 * names a CA bundle for a private one).
 *
 * The body is quoted-printable, not 8bit.  8bit may only be sent to a
 * server that announces 8BITMIME, which libcurl neither checks nor
 * declares (no BODY=8BITMIME on MAIL FROM), and it still limits a line to
 * 998 bytes; quoted-printable is 7-bit, so any relay on the way passes it
 * unchanged, its lines stay under 76 columns even with a long signed
 * link, and the text stays readable, unlike base64.  The subject is an
 * RFC 2047 encoded-word (UTF-8, "B") when it is not plain ASCII.
 *
 * A 5xx reply (unknown recipient, message refused) is permanent; a
 * rejected login, a 4xx reply and any network or TLS trouble are worth a
 * retry: they are the server's or the operator's to fix, not the event's.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "notifier.h"


/* bytes of text per encoded-word: 52 base64 characters, 76 columns */
#define AUDEX_SMTP_WORD_BYTES  39

/* quoted-printable lines: 75 characters and the soft break's "=" */
#define AUDEX_SMTP_QP_COLS     75


static int audex_smtp_message(audex_notify_buf_t *b, const audex_event_t *ev);
static void audex_smtp_body(audex_notify_buf_t *b, const audex_event_t *ev);
static void audex_smtp_header(audex_notify_buf_t *b, const char *name,
    const char *text);
static int audex_smtp_plain(const char *text);
static void audex_smtp_words(audex_notify_buf_t *b, const char *text);
static void audex_smtp_qp(audex_notify_buf_t *b, const u_char *p, size_t n);
static size_t audex_smtp_read(char *buf, size_t size, size_t n, void *data);
static int audex_smtp_address_ok(const char *s, size_t len);
static void audex_smtp_duration(char *buf, size_t size, double secs);


int
audex_smtp_init(char *err, size_t errlen)
{
    size_t       len;
    const char  *from, *lt, *gt, *at;

    from = audex_notify_conf.mail_from;

    if (strpbrk(from, "\r\n") != NULL) {
        snprintf(err, errlen, "MAIL_FROM: a line break");
        return -1;
    }

    /* "audex@example.com" or "Audex <audex@example.com>" */
    lt = strrchr(from, '<');

    if (lt) {
        gt = strchr(lt, '>');
        if (gt == NULL || gt[1] != '\0') {
            snprintf(err, errlen, "MAIL_FROM: \"%s\" is not "
                     "\"Name <address>\"", from);
            return -1;
        }

        from = lt + 1;
        len = gt - from;

    } else {
        len = strlen(from);
    }

    if (!audex_smtp_address_ok(from, len)
        || len + 3 > sizeof(audex_notify_conf.envelope_from))
    {
        snprintf(err, errlen, "MAIL_FROM: \"%.*s\" is not an email address",
                 (int) len, from);
        return -1;
    }

    snprintf(audex_notify_conf.envelope_from,
             sizeof(audex_notify_conf.envelope_from), "<%.*s>", (int) len,
             from);

    at = memchr(from, '@', len);
    snprintf(audex_notify_conf.mail_domain,
             sizeof(audex_notify_conf.mail_domain), "%.*s",
             (int) (from + len - at - 1), at + 1);

    return 0;
}


audex_send_status_e
audex_smtp_send(const audex_event_t *ev, char *err, size_t errlen)
{
    long                  code;
    char                  rcpt[300], cerr[CURL_ERROR_SIZE];
    CURL                 *curl;
    CURLcode              rc;
    audex_notify_buf_t    msg;
    struct curl_slist    *to;
    audex_send_status_e   status;

    if (ev->email == NULL || !audex_smtp_address_ok(ev->email,
                                                    strlen(ev->email))
        || strlen(ev->email) + 3 > sizeof(rcpt))
    {
        snprintf(err, errlen, "\"%.100s\" is not an address we can mail",
                 ev->email ? ev->email : "");
        return AUDEX_SEND_PERMANENT;
    }

    memset(&msg, 0, sizeof(audex_notify_buf_t));

    if (audex_smtp_message(&msg, ev) != 0) {
        free(msg.data);
        snprintf(err, errlen, "out of memory");
        return AUDEX_SEND_TRANSIENT;
    }

    snprintf(rcpt, sizeof(rcpt), "<%s>", ev->email);

    curl = curl_easy_init();
    to = curl_slist_append(NULL, rcpt);

    if (curl == NULL || to == NULL) {
        curl_easy_cleanup(curl);
        curl_slist_free_all(to);
        free(msg.data);
        snprintf(err, errlen, "out of memory");
        return AUDEX_SEND_TRANSIENT;
    }

    cerr[0] = '\0';

    curl_easy_setopt(curl, CURLOPT_URL, audex_notify_conf.smtp_url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT,
                     (long) audex_notify_conf.smtp_timeout);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT,
                     (long) (audex_notify_conf.smtp_timeout < 10
                             ? audex_notify_conf.smtp_timeout : 10));
    curl_easy_setopt(curl, CURLOPT_USE_SSL,
                     (long) audex_notify_conf.starttls);

    if (audex_notify_conf.smtp_ca_file[0]) {
        curl_easy_setopt(curl, CURLOPT_CAINFO,
                         audex_notify_conf.smtp_ca_file);
    }

    if (audex_notify_conf.smtp_user[0]) {
        curl_easy_setopt(curl, CURLOPT_USERNAME,
                         audex_notify_conf.smtp_user);
        curl_easy_setopt(curl, CURLOPT_PASSWORD,
                         audex_notify_conf.smtp_password);
    }

    curl_easy_setopt(curl, CURLOPT_MAIL_FROM,
                     audex_notify_conf.envelope_from);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, to);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, audex_smtp_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &msg);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, audex_notify_progress);

    rc = curl_easy_perform(curl);

    code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);

    if (rc == CURLE_OK) {
        status = AUDEX_SEND_OK;

    } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
        status = AUDEX_SEND_CANCELLED;

    } else if (rc != CURLE_LOGIN_DENIED && code >= 500 && code < 600) {
        status = AUDEX_SEND_PERMANENT;

    } else {
        status = AUDEX_SEND_TRANSIENT;
    }

    if (rc != CURLE_OK && code != 0) {
        snprintf(err, errlen, "smtp to %s: %s (reply %ld)", ev->email,
                 cerr[0] ? cerr : curl_easy_strerror(rc), code);

    } else if (rc != CURLE_OK) {
        snprintf(err, errlen, "smtp to %s: %s", ev->email,
                 cerr[0] ? cerr : curl_easy_strerror(rc));
    }

    curl_slist_free_all(to);
    curl_easy_cleanup(curl);
    free(msg.data);

    return status;
}


static int
audex_smtp_message(audex_notify_buf_t *b, const audex_event_t *ev)
{
    int            i;
    char           date[64], id[40], subject[400], name[256];
    size_t         len;
    time_t         now;
    u_char         rnd[12];
    struct tm      tm;
    const char    *from, *lt, *p;

    now = time(NULL);
    gmtime_r(&now, &tm);

    /* no setlocale() anywhere: %a and %b are the English names */
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return -1;
    }

    for (i = 0; i < (int) sizeof(rnd); i++) {
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    }

    audex_notify_buf_printf(b, "Date: %s\r\n", date);

    /* "Name <address>": the name may need quoting or encoding */
    from = audex_notify_conf.mail_from;
    lt = strrchr(from, '<');

    if (lt == NULL) {
        audex_notify_buf_printf(b, "From: %s\r\n", from);

    } else {
        len = lt - from;
        while (len > 0 && (from[len - 1] == ' ' || from[len - 1] == '\t')) {
            len--;
        }

        snprintf(name, sizeof(name), "%.*s", (int) len, from);

        if (name[0] == '\0' || name[0] == '"') {
            audex_notify_buf_printf(b, "From: %s%s%s\r\n", name,
                                    name[0] ? " " : "", lt);

        } else if (audex_smtp_plain(name)) {
            audex_notify_buf_add(b, "From: \"", 7);

            for (p = name; *p; p++) {
                if (*p == '"' || *p == '\\') {
                    audex_notify_buf_add(b, "\\", 1);
                }

                audex_notify_buf_add(b, p, 1);
            }

            audex_notify_buf_printf(b, "\" %s\r\n", lt);

        } else {
            audex_notify_buf_add(b, "From:", 5);
            audex_smtp_words(b, name);
            audex_notify_buf_printf(b, " %s\r\n", lt);
        }
    }

    audex_notify_buf_printf(b, "To: %s\r\n", ev->email);

    if (ev->failed) {
        snprintf(subject, sizeof(subject), "Conversion failed: %s",
                 ev->filename);

    } else {
        snprintf(subject, sizeof(subject), "Your MP3 is ready: %s",
                 ev->filename);
    }

    audex_smtp_header(b, "Subject", subject);

    audex_notify_buf_printf(b, "Message-ID: <%lld.%s@%s>\r\n",
                            (long long) now, id,
                            audex_notify_conf.mail_domain);

    audex_notify_buf_printf(b,
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "Auto-Submitted: auto-generated\r\n");

    /* a header for filters and support; only if it needs no quoting */
    for (p = ev->job_id; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
              || *p == '.'))
        {
            break;
        }
    }

    if (*p == '\0') {
        audex_notify_buf_printf(b, "X-Audex-Job: %s\r\n", ev->job_id);
    }

    audex_notify_buf_add(b, "\r\n", 2);
    audex_smtp_body(b, ev);

    return b->failed ? -1 : 0;
}


static void
audex_smtp_body(audex_notify_buf_t *b, const audex_event_t *ev)
{
    char                 until[64], length[64];
    time_t               exp;
    struct tm            tm;
    audex_notify_buf_t   text;

    memset(&text, 0, sizeof(audex_notify_buf_t));

    if (ev->failed) {
        audex_notify_buf_printf(&text,
            "Hello,\n"
            "\n"
            "the conversion of your video \"%s\" to MP3 failed:\n"
            "\n"
            "    %s\n"
            "\n"
            "Please check the file and upload it again.\n",
            ev->filename, ev->reason);

    } else {
        exp = (time_t) ev->link_exp;
        gmtime_r(&exp, &tm);
        strftime(until, sizeof(until), "%Y-%m-%d %H:%M UTC", &tm);
        audex_smtp_duration(length, sizeof(length), ev->duration);

        audex_notify_buf_printf(&text,
            "Hello,\n"
            "\n"
            "your video \"%s\" has been converted to MP3.\n"
            "\n"
            "    Duration: %s\n"
            "\n"
            "Download it here (the link works until %s):\n"
            "\n"
            "%s\n",
            ev->filename, length, until, ev->link);
    }

    audex_notify_buf_printf(&text, "\n-- \naudex\n");

    if (text.failed) {
        b->failed = 1;

    } else {
        audex_smtp_qp(b, (u_char *) text.data, text.len);
    }

    free(text.data);
}


/*
 * "Name: text" and CRLF.  Plain text is folded before a space where a
 * line would pass 78 columns; other text becomes encoded-words.
 */

static void
audex_smtp_header(audex_notify_buf_t *b, const char *name, const char *text)
{
    size_t       col, n;
    const char  *p, *q;

    if (!audex_smtp_plain(text)) {
        audex_notify_buf_printf(b, "%s:", name);
        audex_smtp_words(b, text);
        audex_notify_buf_add(b, "\r\n", 2);
        return;
    }

    audex_notify_buf_printf(b, "%s: ", name);
    col = strlen(name) + 2;

    for (p = text; *p; p = q) {
        /* a word and the spaces before it */
        for (q = p; *q == ' '; q++) { /* void */ }
        for ( /* void */ ; *q && *q != ' '; q++) { /* void */ }

        n = q - p;

        if (col + n > 78 && p != text && *p == ' ') {
            audex_notify_buf_add(b, "\r\n", 2);
            col = 0;
        }

        audex_notify_buf_add(b, p, n);
        col += n;
    }

    audex_notify_buf_add(b, "\r\n", 2);
}


/*
 * Plain text goes into a header as it is: printable ASCII without "=?",
 * which a reader would take for the start of an encoded-word.
 */

static int
audex_smtp_plain(const char *text)
{
    const u_char  *p;

    if (strstr(text, "=?") != NULL) {
        return 0;
    }

    for (p = (const u_char *) text; *p; p++) {
        if (*p < 0x20 || *p >= 0x7f) {
            return 0;
        }
    }

    return 1;
}


/*
 * RFC 2047 encoded-words, UTF-8 and base64, each of whole characters and
 * on a line of its own (" =?UTF-8?B?...?=" folded with CRLF), so that
 * no line is longer than 76 columns.
 */

static void
audex_smtp_words(audex_notify_buf_t *b, const char *text)
{
    char           word[80];
    size_t         len, i, n;
    const u_char  *p;

    p = (const u_char *) text;
    len = strlen(text);

    for (i = 0; i < len; i += n) {
        n = (len - i < AUDEX_SMTP_WORD_BYTES) ? len - i
                                              : AUDEX_SMTP_WORD_BYTES;

        /* never cut a character: back off to the start of one */
        while (n > 1 && i + n < len && (p[i + n] & 0xc0) == 0x80) {
            n--;
        }

        EVP_EncodeBlock((u_char *) word, p + i, (int) n);

        audex_notify_buf_printf(b, "%s =?UTF-8?B?%s?=", i ? "\r\n" : "",
                                word);
    }
}


/* RFC 2045 quoted-printable; "\n" in the text becomes a CRLF line break */

static void
audex_smtp_qp(audex_notify_buf_t *b, const u_char *p, size_t n)
{
    int     enc;
    char    hex[4];
    size_t  i, col;
    u_char  c;

    col = 0;

    for (i = 0; i < n; i++) {
        c = p[i];

        if (c == '\n') {
            audex_notify_buf_add(b, "\r\n", 2);
            col = 0;
            continue;
        }

        if (c == ' ' || c == '\t') {
            /* white space at the end of a line may be stripped in transit */
            enc = (i + 1 == n || p[i + 1] == '\n');

        } else {
            /* a lone "." at a line start means the end of DATA to some */
            enc = (c < 33 || c > 126 || c == '=' || (c == '.' && col == 0));
        }

        if (col + (enc ? 3 : 1) > AUDEX_SMTP_QP_COLS) {
            audex_notify_buf_add(b, "=\r\n", 3);
            col = 0;
        }

        if (enc) {
            snprintf(hex, sizeof(hex), "=%02X", c);
            audex_notify_buf_add(b, hex, 3);
            col += 3;

        } else {
            audex_notify_buf_add(b, (const char *) &c, 1);
            col++;
        }
    }
}


static size_t
audex_smtp_read(char *buf, size_t size, size_t n, void *data)
{
    size_t               len;
    audex_notify_buf_t  *b = data;

    len = b->len - b->sent;
    if (len > size * n) {
        len = size * n;
    }

    memcpy(buf, b->data + b->sent, len);
    b->sent += len;

    return len;
}


/*
 * An address we can put in a header and on RCPT TO without quoting:
 * local@domain in printable ASCII, none of the characters that would
 * need it, and no more than RFC 5321 allows.
 */

static int
audex_smtp_address_ok(const char *s, size_t len)
{
    size_t       i, at;
    const char  *specials = " \"(),:;<>[\\]";

    if (len < 3 || len > 254) {
        return 0;
    }

    at = 0;

    for (i = 0; i < len; i++) {
        if ((u_char) s[i] <= 0x20 || (u_char) s[i] >= 0x7f
            || strchr(specials, s[i]) != NULL)
        {
            return 0;
        }

        if (s[i] == '@') {
            if (at) {
                return 0;
            }

            at = i;
        }
    }

    return at > 0 && at < len - 1;
}


static void
audex_smtp_duration(char *buf, size_t size, double secs)
{
    long  s;

    if (secs < 0) {
        snprintf(buf, size, "unknown");
        return;
    }

    s = (long) (secs + 0.5);

    if (s >= 3600) {
        snprintf(buf, size, "%ld:%02ld:%02ld (%.1f s)", s / 3600,
                 s / 60 % 60, s % 60, secs);

    } else {
        snprintf(buf, size, "%ld:%02ld (%.1f s)", s / 60, s % 60, secs);
    }
}
