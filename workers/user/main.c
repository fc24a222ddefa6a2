/*
 * audex-user: manage the accounts nginx logs people in with.
 *
 * Users are documents of the "users" collection in the database named by
 * the MongoDB URI:
 *
 *   { _id: ObjectId, email: "lowercased", password: "$argon2id$...",
 *     admin: bool, disabled: bool, created_at: Date }
 *
 * "email" carries a unique index, created (idempotently) by "add"; a
 * duplicate is refused by the server even when two "add" race, and the
 * existence check before the password prompt is only for convenience.
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>
#include <openssl/crypto.h>

#include "audex_password.h"
#include "audex_schema.h"
#include "audex_store.h"
#include "mongo.h"
#include "redis_stream.h"


#define AUDEX_USER_OK             0
#define AUDEX_USER_USAGE          1
#define AUDEX_USER_DUPLICATE      2
#define AUDEX_USER_UNKNOWN        3
#define AUDEX_USER_INVALID        4
#define AUDEX_USER_DATABASE       5
#define AUDEX_USER_INTERNAL       6
#define AUDEX_USER_NOT_REVOKED    7
#define AUDEX_USER_INTERRUPTED    130

#define AUDEX_USER_DEFAULT_URI    "mongodb://127.0.0.1:27017/audex"
#define AUDEX_USER_LOCAL_URI      "mongodb://127.0.0.1:%ld/audex"
#define AUDEX_USER_DEFAULT_REDIS  "redis://127.0.0.1:6379/0"
#define AUDEX_USER_LOCAL_REDIS    "redis://127.0.0.1:%ld/0"
#define AUDEX_USER_COLLECTION     AUDEX_COLL_USERS
#define AUDEX_USER_EMAIL_MAX      254

/* a dead server should fail in seconds, not after the 30 s default */
#define AUDEX_USER_TIMEOUT_MS     5000

#define AUDEX_MONGO_DUPLICATE_KEY 11000


typedef struct {
    mongoc_client_t      *client;
    mongoc_collection_t  *users;
    int                   admin_flag;
    char                  email[AUDEX_USER_EMAIL_MAX + 1];
} audex_user_ctx_t;


typedef struct {
    const char  *name;
    int          nargs;
    int        (*handler)(audex_user_ctx_t *ctx, char **args);
    const char  *args;
    const char  *help;
} audex_user_cmd_t;


static const char *audex_user_default_uri(char *buf, size_t size);
static int audex_user_id(audex_user_ctx_t *ctx, char *id, size_t size);
static int audex_user_revoke(audex_user_ctx_t *ctx, const char *id);
static int audex_user_add(audex_user_ctx_t *ctx, char **args);
static int audex_user_passwd(audex_user_ctx_t *ctx, char **args);
static int audex_user_del(audex_user_ctx_t *ctx, char **args);
static int audex_user_list(audex_user_ctx_t *ctx, char **args);
static int audex_user_admin(audex_user_ctx_t *ctx, char **args);
static int audex_user_disable(audex_user_ctx_t *ctx, char **args);
static int audex_user_enable(audex_user_ctx_t *ctx, char **args);
static int audex_user_check(audex_user_ctx_t *ctx, char **args);


static const audex_user_cmd_t  audex_user_cmds[] = {
    { "add", 1, audex_user_add, "EMAIL [--admin]",
      "create a user (password: see below)" },
    { "passwd", 1, audex_user_passwd, "EMAIL",
      "set a new password" },
    { "del", 1, audex_user_del, "EMAIL",
      "delete a user" },
    { "list", 0, audex_user_list, "",
      "one line per user: email, admin, disabled, created" },
    { "admin", 2, audex_user_admin, "EMAIL on|off",
      "grant or revoke admin rights" },
    { "disable", 1, audex_user_disable, "EMAIL",
      "refuse logins for a user" },
    { "enable", 1, audex_user_enable, "EMAIL",
      "allow logins again" },
    { "check", 1, audex_user_check, "EMAIL",
      "verify a password (exit 0 if it matches, 4 if not)" },
    { NULL, 0, NULL, NULL, NULL }
};


static volatile sig_atomic_t  audex_user_interrupted;


/*
 * The database when --mongodb-uri is not given: $MONGODB_URI, else the
 * FerretDB that `make run` (scripts/run.sh) starts on $AUDEX_MONGO_PORT,
 * so the tool and the running system read the same variables.  NULL
 * when AUDEX_MONGO_PORT is not a port.
 */

static const char *
audex_user_default_uri(char *buf, size_t size)
{
    long         port;
    char        *end;
    const char  *uri, *p;

    uri = getenv("MONGODB_URI");
    if (uri != NULL && *uri != '\0') {
        return uri;
    }

    p = getenv("AUDEX_MONGO_PORT");
    if (p == NULL || *p == '\0') {
        return AUDEX_USER_DEFAULT_URI;
    }

    errno = 0;
    port = strtol(p, &end, 10);
    if (errno != 0 || *end != '\0' || port < 1 || port > 65535) {
        return NULL;
    }

    snprintf(buf, size, AUDEX_USER_LOCAL_URI, port);

    return buf;
}


static void
audex_user_usage(FILE *out)
{
    const audex_user_cmd_t  *cmd;

    fprintf(out,
        "usage: audex-user [--mongodb-uri URI] COMMAND [ARGS]\n"
        "\n"
        "commands:\n");

    for (cmd = audex_user_cmds; cmd->name; cmd++) {
        fprintf(out, "  %-7s %-16s %s\n", cmd->name, cmd->args, cmd->help);
    }

    fprintf(out,
        "\n"
        "options:\n"
        "  --mongodb-uri URI  the database (default: $MONGODB_URI, else\n"
        "                     the FerretDB `make run` starts on\n"
        "                     $AUDEX_MONGO_PORT, else\n"
        "                     " AUDEX_USER_DEFAULT_URI ")\n"
        "  --admin            with \"add\": create an admin\n"
        "  -h, --help         this text\n"
        "\n"
        "Passwords: when standard input is not a terminal its first line\n"
        "is the password; otherwise it is asked without echo (twice when\n"
        "it is a new one).\n"
        "Emails are stored in lower case.\n"
        "\n"
        "exit status: 0 ok, 1 usage, 2 email already taken, 3 no such user,\n"
        "4 empty or invalid password or email, 5 database unreachable or\n"
        "failing, 6 internal error, 7 done but its tokens not revoked\n"
        "(Redis unreachable: they stay valid until they expire),\n"
        "130 interrupted.\n"
        "\n"
        "del, disable, passwd and admin revoke the user's tokens: every\n"
        "nginx refuses those issued before, within about a second.  Redis\n"
        "is $REDIS_URL, else the one `make run` starts on\n"
        "$AUDEX_REDIS_PORT, else " AUDEX_USER_DEFAULT_REDIS ".\n");
}


static void
audex_user_error(const char *fmt, ...)
{
    va_list  args;

    fputs("audex-user: ", stderr);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
}


static void
audex_user_signal(int signo)
{
    audex_user_interrupted = 1;
}


/* libmongoc chatters at info level; a CLI wants only its errors */
static void
audex_user_mongoc_log(mongoc_log_level_t level, const char *domain,
    const char *message, void *data)
{
    if (level <= MONGOC_LOG_LEVEL_ERROR) {
        audex_user_error("mongoc: %s: %s", domain, message);
    }
}


/*
 * Minimal on purpose: one "@" with something on both sides, no spaces or
 * control characters.  Anything stricter rejects real addresses.
 */
static int
audex_user_email(audex_user_ctx_t *ctx, const char *arg)
{
    size_t       i, len, at, ats;
    const char  *p;

    len = strlen(arg);

    if (len == 0 || len > AUDEX_USER_EMAIL_MAX) {
        audex_user_error("invalid email \"%s\": empty or longer than %d "
                         "bytes", arg, AUDEX_USER_EMAIL_MAX);
        return AUDEX_USER_INVALID;
    }

    at = 0;
    ats = 0;

    for (i = 0, p = arg; i < len; i++, p++) {
        if ((unsigned char) *p <= ' ' || *p == 0x7f) {
            audex_user_error("invalid email \"%s\": spaces or control "
                             "characters", arg);
            return AUDEX_USER_INVALID;
        }

        if (*p == '@') {
            at = i;
            ats++;
        }

        /* ASCII only: folding UTF-8 is beyond tolower() */
        ctx->email[i] = (*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p;
    }

    ctx->email[len] = '\0';

    if (ats != 1 || at == 0 || at == len - 1) {
        audex_user_error("invalid email \"%s\": needs exactly one \"@\" "
                         "between two non-empty parts", arg);
        return AUDEX_USER_INVALID;
    }

    return AUDEX_USER_OK;
}


/* password input */

/* one line from fd; 1 on a line, 0 on EOF before any byte, -1 on error */
static int
audex_user_read_line(int fd, char *buf, size_t size, size_t *len)
{
    char     c;
    size_t   n;
    ssize_t  rc;

    n = 0;

    for ( ;; ) {
        rc = read(fd, &c, 1);

        if (rc == -1) {
            if (errno == EINTR && !audex_user_interrupted) {
                continue;
            }
            return -1;
        }

        if (rc == 0) {
            if (n == 0) {
                return 0;
            }
            break;
        }

        if (c == '\n') {
            break;
        }

        /* over-long lines are refused, not silently cut */
        if (n == size) {
            errno = E2BIG;
            return -1;
        }

        buf[n++] = c;
    }

    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }

    *len = n;

    return 1;
}


/*
 * While echo is off, ^C must not kill us before the terminal is put
 * back: the signals only set a flag and interrupt the read (no
 * SA_RESTART).  Everywhere else they keep their default action.
 */
static int
audex_user_prompt(const char *prompt, char *buf, size_t size, size_t *len)
{
    int               rc, saved, i;
    struct termios    old, noecho;
    struct sigaction  sa, prev[3];

    static const int  signals[3] = { SIGINT, SIGTERM, SIGHUP };

    if (tcgetattr(STDIN_FILENO, &old) != 0) {
        return -1;
    }

    noecho = old;
    noecho.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = audex_user_signal;
    sigemptyset(&sa.sa_mask);

    for (i = 0; i < 3; i++) {
        sigaction(signals[i], &sa, &prev[i]);
    }

    fputs(prompt, stderr);
    fflush(stderr);

    rc = -1;
    saved = errno;

    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho) == 0) {
        rc = audex_user_read_line(STDIN_FILENO, buf, size, len);
        saved = errno;
        (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    }

    fputc('\n', stderr);

    for (i = 0; i < 3; i++) {
        sigaction(signals[i], &prev[i], NULL);
    }

    errno = saved;

    return rc;
}


/*
 * The password into pw (AUDEX_PASSWORD_MAX_LEN + 1 bytes), from the
 * first line of a pipe or file, or asked twice on a terminal.
 */
static int
audex_user_password(char *pw, size_t *len, int confirm)
{
    int     rc;
    size_t  len2;
    char    again[AUDEX_PASSWORD_MAX_LEN + 1];

    if (!isatty(STDIN_FILENO)) {
        rc = audex_user_read_line(STDIN_FILENO, pw, AUDEX_PASSWORD_MAX_LEN,
                                  len);
    } else {
        rc = audex_user_prompt("Password: ", pw, AUDEX_PASSWORD_MAX_LEN, len);

        if (rc == 1 && confirm) {
            rc = audex_user_prompt("Retype password: ", again,
                                   AUDEX_PASSWORD_MAX_LEN, &len2);

            if (rc == 1
                && (len2 != *len || CRYPTO_memcmp(again, pw, len2) != 0))
            {
                OPENSSL_cleanse(again, sizeof(again));
                audex_user_error("the passwords do not match");
                return AUDEX_USER_INVALID;
            }
        }

        OPENSSL_cleanse(again, sizeof(again));
    }

    if (audex_user_interrupted) {
        audex_user_error("interrupted");
        return AUDEX_USER_INTERRUPTED;
    }

    if (rc == -1 && errno == E2BIG) {
        audex_user_error("password longer than %d bytes",
                         AUDEX_PASSWORD_MAX_LEN);
        return AUDEX_USER_INVALID;
    }

    if (rc == -1) {
        audex_user_error("cannot read the password: %s", strerror(errno));
        return AUDEX_USER_INVALID;
    }

    if (rc == 0 || *len == 0) {
        audex_user_error("empty password");
        return AUDEX_USER_INVALID;
    }

    if (memchr(pw, '\0', *len) != NULL) {
        audex_user_error("the password contains a NUL byte");
        return AUDEX_USER_INVALID;
    }

    return AUDEX_USER_OK;
}


/* read and hash a password into encoded */
static int
audex_user_new_hash(char *encoded, size_t size)
{
    int                  rc;
    char                 pw[AUDEX_PASSWORD_MAX_LEN + 1];
    size_t               len;
    audex_password_rc_e  prc;

    len = 0;
    rc = audex_user_password(pw, &len, 1);

    if (rc == AUDEX_USER_OK) {
        prc = audex_password_hash(NULL, pw, len, encoded, size);

        if (prc != AUDEX_PASSWORD_OK) {
            audex_user_error("cannot hash the password: %s",
                             audex_password_strerror(prc));
            rc = (prc == AUDEX_PASSWORD_INVALID) ? AUDEX_USER_INVALID
                                                 : AUDEX_USER_INTERNAL;
        }
    }

    OPENSSL_cleanse(pw, sizeof(pw));

    return rc;
}


/* database */

static int
audex_user_db_error(const char *what, const bson_error_t *error)
{
    audex_user_error("%s: %s", what, error->message);

    return AUDEX_USER_DATABASE;
}


static int
audex_user_connect(audex_user_ctx_t *ctx, const char *uri_string)
{
    int                        rc;
    char                       where[BSON_HOST_NAME_MAX + 8];
    bson_t                    *ping, reply;
    const char                *db;
    bson_error_t               error;
    mongoc_uri_t              *uri;
    const mongoc_host_list_t  *hosts;

    uri = audex_mongo_uri(uri_string, AUDEX_USER_TIMEOUT_MS, 0, &error);
    if (uri == NULL) {
        audex_user_error("invalid MongoDB URI: %s", error.message);
        return AUDEX_USER_USAGE;
    }

    db = audex_mongo_db(uri);

    ctx->client = audex_mongo_client(uri, "audex-user", &error);
    if (ctx->client == NULL) {
        mongoc_uri_destroy(uri);
        audex_user_error("invalid MongoDB URI: %s", error.message);
        return AUDEX_USER_USAGE;
    }

    ctx->users = mongoc_client_get_collection(ctx->client, db,
                                              AUDEX_USER_COLLECTION);

    /* where it looked, for the message below; never the credentials */
    hosts = mongoc_uri_get_hosts(uri);
    snprintf(where, sizeof(where), "%s",
             hosts ? hosts->host_and_port : "the URI's hosts");
    mongoc_uri_destroy(uri);

    /* fail here, with one clear message, rather than halfway through */
    ping = BCON_NEW("ping", BCON_INT32(1));
    rc = mongoc_client_command_simple(ctx->client, "admin", ping, NULL,
                                      &reply, &error);
    bson_destroy(ping);
    bson_destroy(&reply);

    if (!rc) {
        audex_user_error("database unreachable at %s: %s\n"
                         "  (the system `make run` started: run "
                         "\". run/env\" first)", where, error.message);
        return AUDEX_USER_DATABASE;
    }

    return AUDEX_USER_OK;
}


static void
audex_user_disconnect(audex_user_ctx_t *ctx)
{
    if (ctx->users) {
        mongoc_collection_destroy(ctx->users);
    }

    if (ctx->client) {
        mongoc_client_destroy(ctx->client);
    }
}


static int
audex_user_ensure_index(audex_user_ctx_t *ctx)
{
    int            ok;
    bson_t        *cmd, reply;
    bson_error_t   error;

    /* the same name, keys and options every time: a no-op once it exists */
    cmd = BCON_NEW("createIndexes", BCON_UTF8(AUDEX_USER_COLLECTION),
                   "indexes", "[",
                       "{",
                           "key", "{", "email", BCON_INT32(1), "}",
                           "name", BCON_UTF8("email_1"),
                           "unique", BCON_BOOL(true),
                       "}",
                   "]");

    ok = mongoc_collection_write_command_with_opts(ctx->users, cmd, NULL,
                                                   &reply, &error);
    bson_destroy(cmd);
    bson_destroy(&reply);

    if (!ok) {
        return audex_user_db_error("cannot create the unique index on "
                                   "email", &error);
    }

    return AUDEX_USER_OK;
}


/* 1 if a user with ctx->email exists, 0 if not, -1 on error */
static int
audex_user_exists(audex_user_ctx_t *ctx)
{
    bson_t        *filter, *opts;
    int64_t        n;
    bson_error_t   error;

    filter = BCON_NEW("email", BCON_UTF8(ctx->email));
    opts = BCON_NEW("limit", BCON_INT64(1));

    n = mongoc_collection_count_documents(ctx->users, filter, opts, NULL,
                                          NULL, &error);
    bson_destroy(filter);
    bson_destroy(opts);

    if (n < 0) {
        audex_user_db_error("cannot look the user up", &error);
        return -1;
    }

    return n > 0;
}


static int64_t
audex_user_reply_count(const bson_t *reply, const char *field)
{
    bson_iter_t  it;

    if (bson_iter_init_find(&it, reply, field)
        && BSON_ITER_HOLDS_NUMBER(&it))
    {
        return bson_iter_as_int64(&it);
    }

    return -1;
}


/* $set one field of the user; AUDEX_USER_UNKNOWN when there is none */
static int
audex_user_set(audex_user_ctx_t *ctx, bson_t *set)
{
    int            ok;
    bson_t        *filter, update, reply;
    bson_error_t   error;

    filter = BCON_NEW("email", BCON_UTF8(ctx->email));

    bson_init(&update);
    BSON_APPEND_DOCUMENT(&update, "$set", set);

    ok = mongoc_collection_update_one(ctx->users, filter, &update, NULL,
                                      &reply, &error);

    bson_destroy(filter);
    bson_destroy(&update);

    if (!ok) {
        bson_destroy(&reply);
        return audex_user_db_error("cannot update the user", &error);
    }

    ok = audex_user_reply_count(&reply, "matchedCount") > 0;
    bson_destroy(&reply);

    if (!ok) {
        audex_user_error("no such user: %s", ctx->email);
        return AUDEX_USER_UNKNOWN;
    }

    return AUDEX_USER_OK;
}


/* the user's _id as text (24 hex digits for ours): 1, 0 (none), -1 */
static int
audex_user_id(audex_user_ctx_t *ctx, char *id, size_t size)
{
    int            rc;
    bson_t        *doc;
    bson_iter_t    it;
    bson_error_t   error;

    rc = audex_store_user_by_email(ctx->users, ctx->email, &doc, &error);
    if (rc < 0) {
        audex_user_db_error("cannot look the user up", &error);
        return -1;
    }

    if (rc == 0) {
        return 0;
    }

    rc = 0;

    if (bson_iter_init_find(&it, doc, "_id")) {
        if (BSON_ITER_HOLDS_OID(&it) && size >= 25) {
            bson_oid_to_string(bson_iter_oid(&it), id);
            rc = 1;

        } else if (BSON_ITER_HOLDS_UTF8(&it)) {
            snprintf(id, size, "%s", bson_iter_utf8(&it, NULL));
            rc = 1;
        }
    }

    bson_destroy(doc);

    if (rc == 0) {
        audex_user_error("user %s has an _id of another kind", ctx->email);
        return -1;
    }

    return 1;
}


/*
 * Revokes the tokens the user (id, or found by email when NULL) holds:
 * every nginx refuses those issued before now within about a second
 * (lib/audex_schema.h, AUDEX_REVOKED_USERS).  Redis as `make run` and
 * the workers find it: $REDIS_URL, else the Redis on $AUDEX_REDIS_PORT,
 * else the default.  The account change stands either way; a failure
 * here is its own exit status, so a script can tell.
 */
static int
audex_user_revoke(audex_user_ctx_t *ctx, const char *id)
{
    int             rc;
    long            port;
    char            buf[AUDEX_USER_EMAIL_MAX + 1], now[32], url[64];
    char           *end, err[256];
    const char     *u, *p, *argv[4];
    redisReply      *reply;
    audex_redis_t   *r;
    struct timespec  ts;

    if (id == NULL) {
        rc = audex_user_id(ctx, buf, sizeof(buf));
        if (rc <= 0) {
            return rc == 0 ? AUDEX_USER_UNKNOWN : AUDEX_USER_DATABASE;
        }

        id = buf;
    }

    u = getenv("REDIS_URL");

    if (u == NULL || *u == '\0') {
        u = AUDEX_USER_DEFAULT_REDIS;
        p = getenv("AUDEX_REDIS_PORT");

        if (p != NULL && *p != '\0') {
            errno = 0;
            port = strtol(p, &end, 10);
            if (errno == 0 && *end == '\0' && port >= 1 && port <= 65535) {
                snprintf(url, sizeof(url), AUDEX_USER_LOCAL_REDIS, port);
                u = url;
            }
        }
    }

    /* milliseconds, as the "iat" of the tokens nginx issues */
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(now, sizeof(now), "%lld",
             (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);

    argv[0] = "ZADD";
    argv[1] = AUDEX_REVOKED_USERS;
    argv[2] = now;
    argv[3] = id;

    reply = NULL;
    r = audex_redis_new(u, err, sizeof(err));

    if (r != NULL && audex_redis_connect(r) == 0) {
        reply = audex_redis_cmd(r, 4, argv);
    }

    if (r != NULL && reply == NULL) {
        snprintf(err, sizeof(err), "%s", audex_redis_error(r));
    }

    rc = (reply != NULL && reply->type == REDIS_REPLY_INTEGER);

    if (reply != NULL && !rc) {
        snprintf(err, sizeof(err), "%s", reply->type == REDIS_REPLY_ERROR
                                         ? reply->str : "unexpected reply");
    }

    if (reply) {
        freeReplyObject(reply);
    }

    audex_redis_free(r);

    if (!rc) {
        audex_user_error("%s: its tokens could not be revoked and stay "
                         "valid until they expire: Redis: %s\n"
                         "  (the system `make run` started: run "
                         "\". run/env\" first)", ctx->email, err);
        return AUDEX_USER_NOT_REVOKED;
    }

    printf("%s: tokens issued until now are revoked\n", ctx->email);

    return AUDEX_USER_OK;
}


/* commands */

static int
audex_user_add(audex_user_ctx_t *ctx, char **args)
{
    int           rc;
    bson_t        doc;
    bson_oid_t    oid;
    bson_error_t  error;
    char          encoded[AUDEX_PASSWORD_ENCODED_MAX];

    rc = audex_user_ensure_index(ctx);
    if (rc != AUDEX_USER_OK) {
        return rc;
    }

    /* before the prompt: nobody should type a password twice for nothing */
    rc = audex_user_exists(ctx);
    if (rc < 0) {
        return AUDEX_USER_DATABASE;
    }

    if (rc > 0) {
        audex_user_error("a user with email %s already exists", ctx->email);
        return AUDEX_USER_DUPLICATE;
    }

    rc = audex_user_new_hash(encoded, sizeof(encoded));
    if (rc != AUDEX_USER_OK) {
        return rc;
    }

    bson_oid_init(&oid, NULL);

    bson_init(&doc);
    BSON_APPEND_OID(&doc, "_id", &oid);
    BSON_APPEND_UTF8(&doc, "email", ctx->email);
    BSON_APPEND_UTF8(&doc, "password", encoded);
    BSON_APPEND_BOOL(&doc, "admin", ctx->admin_flag != 0);
    BSON_APPEND_BOOL(&doc, "disabled", false);
    BSON_APPEND_DATE_TIME(&doc, "created_at", (int64_t) time(NULL) * 1000);

    rc = mongoc_collection_insert_one(ctx->users, &doc, NULL, NULL, &error);
    bson_destroy(&doc);

    if (!rc) {
        if (error.code == AUDEX_MONGO_DUPLICATE_KEY) {
            audex_user_error("a user with email %s already exists",
                             ctx->email);
            return AUDEX_USER_DUPLICATE;
        }

        return audex_user_db_error("cannot add the user", &error);
    }

    printf("added %s%s\n", ctx->email, ctx->admin_flag ? " (admin)" : "");

    return AUDEX_USER_OK;
}


static int
audex_user_passwd(audex_user_ctx_t *ctx, char **args)
{
    int     rc;
    bson_t  set;
    char    encoded[AUDEX_PASSWORD_ENCODED_MAX];

    rc = audex_user_exists(ctx);
    if (rc < 0) {
        return AUDEX_USER_DATABASE;
    }

    if (rc == 0) {
        audex_user_error("no such user: %s", ctx->email);
        return AUDEX_USER_UNKNOWN;
    }

    rc = audex_user_new_hash(encoded, sizeof(encoded));
    if (rc != AUDEX_USER_OK) {
        return rc;
    }

    bson_init(&set);
    BSON_APPEND_UTF8(&set, "password", encoded);
    rc = audex_user_set(ctx, &set);
    bson_destroy(&set);

    if (rc == AUDEX_USER_OK) {
        printf("password changed for %s\n", ctx->email);
        rc = audex_user_revoke(ctx, NULL);
    }

    return rc;
}


static int
audex_user_del(audex_user_ctx_t *ctx, char **args)
{
    int            ok;
    char           id[AUDEX_USER_EMAIL_MAX + 1];
    bson_t        *filter, reply;
    bson_error_t   error;

    /* its id, for revoking its tokens once it is gone */
    ok = audex_user_id(ctx, id, sizeof(id));
    if (ok <= 0) {
        if (ok == 0) {
            audex_user_error("no such user: %s", ctx->email);
        }

        return ok == 0 ? AUDEX_USER_UNKNOWN : AUDEX_USER_DATABASE;
    }

    filter = BCON_NEW("email", BCON_UTF8(ctx->email));
    ok = mongoc_collection_delete_one(ctx->users, filter, NULL, &reply,
                                      &error);
    bson_destroy(filter);

    if (!ok) {
        bson_destroy(&reply);
        return audex_user_db_error("cannot delete the user", &error);
    }

    ok = audex_user_reply_count(&reply, "deletedCount") > 0;
    bson_destroy(&reply);

    if (!ok) {
        audex_user_error("no such user: %s", ctx->email);
        return AUDEX_USER_UNKNOWN;
    }

    printf("deleted %s\n", ctx->email);

    return audex_user_revoke(ctx, id);
}


static int
audex_user_list(audex_user_ctx_t *ctx, char **args)
{
    int                    admin, disabled;
    bson_t                *filter, *opts;
    time_t                 t;
    struct tm              tm;
    bson_iter_t            it;
    const char            *email;
    const bson_t          *doc;
    bson_error_t           error;
    mongoc_cursor_t       *cursor;
    char                   created[32];

    filter = bson_new();
    opts = BCON_NEW("sort", "{", "email", BCON_INT32(1), "}");

    cursor = mongoc_collection_find_with_opts(ctx->users, filter, opts,
                                              NULL);
    bson_destroy(filter);
    bson_destroy(opts);

    while (mongoc_cursor_next(cursor, &doc)) {
        email = "?";
        admin = 0;
        disabled = 0;
        strcpy(created, "-");

        if (bson_iter_init_find(&it, doc, "email")
            && BSON_ITER_HOLDS_UTF8(&it))
        {
            email = bson_iter_utf8(&it, NULL);
        }

        if (bson_iter_init_find(&it, doc, "admin")) {
            admin = bson_iter_as_bool(&it);
        }

        if (bson_iter_init_find(&it, doc, "disabled")) {
            disabled = bson_iter_as_bool(&it);
        }

        if (bson_iter_init_find(&it, doc, "created_at")
            && BSON_ITER_HOLDS_DATE_TIME(&it))
        {
            t = (time_t) (bson_iter_date_time(&it) / 1000);
            if (gmtime_r(&t, &tm) != NULL) {
                strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
            }
        }

        printf("%s admin=%s disabled=%s created=%s\n", email,
               admin ? "yes" : "no", disabled ? "yes" : "no", created);
    }

    if (mongoc_cursor_error(cursor, &error)) {
        mongoc_cursor_destroy(cursor);
        return audex_user_db_error("cannot list users", &error);
    }

    mongoc_cursor_destroy(cursor);

    return AUDEX_USER_OK;
}


static int
audex_user_flag(audex_user_ctx_t *ctx, const char *field, int on)
{
    int     rc;
    bson_t  set;

    bson_init(&set);
    BSON_APPEND_BOOL(&set, field, on != 0);
    rc = audex_user_set(ctx, &set);
    bson_destroy(&set);

    if (rc == AUDEX_USER_OK) {
        printf("%s: %s=%s\n", ctx->email, field, on ? "yes" : "no");

        /* disabled, or admin rights changed: its tokens say otherwise */
        if (strcmp(field, "admin") == 0 || on) {
            rc = audex_user_revoke(ctx, NULL);
        }
    }

    return rc;
}


static int
audex_user_admin(audex_user_ctx_t *ctx, char **args)
{
    if (strcmp(args[1], "on") == 0) {
        return audex_user_flag(ctx, "admin", 1);
    }

    return audex_user_flag(ctx, "admin", 0);
}


static int
audex_user_disable(audex_user_ctx_t *ctx, char **args)
{
    return audex_user_flag(ctx, "disabled", 1);
}


static int
audex_user_enable(audex_user_ctx_t *ctx, char **args)
{
    return audex_user_flag(ctx, "disabled", 0);
}


static int
audex_user_check(audex_user_ctx_t *ctx, char **args)
{
    int                   rc;
    char                  pw[AUDEX_PASSWORD_MAX_LEN + 1];
    size_t                len;
    bson_t               *filter, *opts;
    bson_iter_t           it;
    const char           *encoded;
    const bson_t         *doc;
    bson_error_t          error;
    mongoc_cursor_t      *cursor;
    audex_password_rc_e   prc;

    filter = BCON_NEW("email", BCON_UTF8(ctx->email));
    opts = BCON_NEW("limit", BCON_INT64(1),
                    "projection", "{", "password", BCON_INT32(1), "}");

    cursor = mongoc_collection_find_with_opts(ctx->users, filter, opts,
                                              NULL);
    bson_destroy(filter);
    bson_destroy(opts);

    encoded = NULL;

    if (mongoc_cursor_next(cursor, &doc)) {
        encoded = "";

        if (bson_iter_init_find(&it, doc, "password")
            && BSON_ITER_HOLDS_UTF8(&it))
        {
            encoded = bson_iter_utf8(&it, NULL);
        }
    }

    if (mongoc_cursor_error(cursor, &error)) {
        mongoc_cursor_destroy(cursor);
        return audex_user_db_error("cannot look the user up", &error);
    }

    if (encoded == NULL) {
        mongoc_cursor_destroy(cursor);
        audex_user_error("no such user: %s", ctx->email);
        return AUDEX_USER_UNKNOWN;
    }

    len = 0;
    rc = audex_user_password(pw, &len, 0);

    if (rc == AUDEX_USER_OK) {
        prc = audex_password_verify(encoded, pw, len);

        switch (prc) {
        case AUDEX_PASSWORD_OK:
            printf("password matches for %s\n", ctx->email);
            break;
        case AUDEX_PASSWORD_MISMATCH:
            audex_user_error("wrong password for %s", ctx->email);
            rc = AUDEX_USER_INVALID;
            break;
        default:
            audex_user_error("stored password of %s: %s", ctx->email,
                             audex_password_strerror(prc));
            rc = AUDEX_USER_INTERNAL;
        }
    }

    OPENSSL_cleanse(pw, sizeof(pw));
    mongoc_cursor_destroy(cursor);

    return rc;
}


int
main(int argc, char **argv)
{
    int                      c, rc, nargs;
    char                   **args;
    const char              *uri;
    char                     default_uri[64];
    audex_user_ctx_t         ctx;
    const audex_user_cmd_t  *cmd;

    static const struct option  options[] = {
        { "mongodb-uri", required_argument, NULL, 'u' },
        { "admin", no_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    memset(&ctx, 0, sizeof(ctx));

    uri = audex_user_default_uri(default_uri, sizeof(default_uri));
    if (uri == NULL) {
        audex_user_error("AUDEX_MONGO_PORT \"%s\" is not a port number",
                         getenv("AUDEX_MONGO_PORT"));
        return AUDEX_USER_USAGE;
    }

    opterr = 0;

    /* GNU getopt moves the command and its arguments behind the options,
     * so "add EMAIL --admin" and "--admin add EMAIL" both work */
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {

        switch (c) {
        case 'u':
            uri = optarg;
            break;
        case 'a':
            ctx.admin_flag = 1;
            break;
        case 'h':
            audex_user_usage(stdout);
            return AUDEX_USER_OK;
        case ':':
            audex_user_error("option \"%s\" needs a value",
                             argv[optind - 1]);
            return AUDEX_USER_USAGE;
        default:
            audex_user_error("unknown option \"%s\" (see --help)",
                             argv[optind - 1]);
            return AUDEX_USER_USAGE;
        }
    }

    args = argv + optind;
    nargs = argc - optind;

    if (nargs == 0) {
        audex_user_error("no command given");
        audex_user_usage(stderr);
        return AUDEX_USER_USAGE;
    }

    for (cmd = audex_user_cmds; cmd->name; cmd++) {
        if (strcmp(cmd->name, args[0]) == 0) {
            break;
        }
    }

    if (cmd->name == NULL) {
        audex_user_error("unknown command \"%s\" (see --help)", args[0]);
        return AUDEX_USER_USAGE;
    }

    if (nargs - 1 != cmd->nargs
        || (ctx.admin_flag && cmd->handler != audex_user_add)
        || (cmd->handler == audex_user_admin
            && strcmp(args[2], "on") != 0 && strcmp(args[2], "off") != 0))
    {
        audex_user_error("usage: audex-user %s%s%s", cmd->name,
                         cmd->nargs ? " " : "", cmd->args);
        return AUDEX_USER_USAGE;
    }

    if (cmd->nargs > 0) {
        rc = audex_user_email(&ctx, args[1]);
        if (rc != AUDEX_USER_OK) {
            return rc;
        }
    }

    mongoc_init();
    mongoc_log_set_handler(audex_user_mongoc_log, NULL);

    rc = audex_user_connect(&ctx, uri);

    if (rc == AUDEX_USER_OK) {
        rc = cmd->handler(&ctx, args + 1);
    }

    audex_user_disconnect(&ctx);
    mongoc_cleanup();

    return rc;
}
