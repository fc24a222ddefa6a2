/*
 * Revoked tokens, refused on every request without a backend round trip,
 * and POST /logout (audex_logout), which revokes the token it is sent with.
 *
 * Redis holds what is revoked (lib/audex_schema.h): users, each with a
 * time before which their tokens are refused (audex-user del, disable,
 * passwd and admin), and single tokens by "jti" until they expire.  Each
 * worker process keeps its own copy, read again every second by a task
 * in the thread pool that a timer posts, so a revocation reaches every
 * worker of every nginx instance within about a second while a request
 * only looks in memory.  While Redis is away the last copy stays in use
 * (the failure is logged once); before the first read succeeds nothing is
 * known to be revoked.
 *
 * Times are compared in milliseconds (our tokens carry their "iat" to
 * the millisecond in AUDEX_JWT_IAT_MS): a login right after a new
 * password works, a token issued a moment before it does not.  A token
 * without "iat" cannot show it is newer than its user's revocation and
 * is refused.
 */


#include "ngx_http_audex_module.h"


#define NGX_HTTP_AUDEX_REVOKE_EVERY  1000        /* ms between reads */

/* a revoked token is kept this long past exp + leeway: clocks differ */
#define NGX_HTTP_AUDEX_REVOKE_MARGIN  300

/* this worker's own logouts, refused even before a read has them */
#define NGX_HTTP_AUDEX_REVOKE_RECENT  32
#define NGX_HTTP_AUDEX_REVOKE_HOLD    10          /* s: reads have them */


typedef struct {
    const char                *id;
    int64_t                    before;          /* ms */
} ngx_http_audex_revoked_user_t;


/* one allocation: this header, the two arrays, then the strings */
typedef struct {
    ngx_uint_t                      nusers;
    ngx_uint_t                      ntokens;
    ngx_http_audex_revoked_user_t  *users;      /* sorted by id */
    const char                    **tokens;     /* sorted */
} ngx_http_audex_revoked_t;


typedef struct {
    ngx_http_audex_main_conf_t     *amcf;
    ngx_http_audex_revoked_t       *table;      /* what the work read */
    ngx_uint_t                      seq;        /* when it was posted */
    char                            err[NGX_HTTP_AUDEX_ERRLEN];
} ngx_http_audex_revoke_read_t;


/* POST /logout: the presented token's jti and exp, then a fresh table */
typedef struct {
    ngx_http_audex_revoke_read_t    read;
    char                            jti[64];
    int64_t                         exp;
    ngx_int_t                       added;
} ngx_http_audex_logout_t;


static ngx_http_audex_revoked_t *ngx_http_audex_revoke_build(
    ngx_http_audex_main_conf_t *amcf, char *err);
static ngx_int_t ngx_http_audex_revoke_zset(redisReply *reply,
    ngx_uint_t scores);
static int ngx_http_audex_revoke_cmp_user(const void *a, const void *b);
static int ngx_http_audex_revoke_cmp_token(const void *a, const void *b);
static void ngx_http_audex_revoke_use(ngx_http_audex_revoke_read_t *rd,
    ngx_log_t *log);
static ngx_uint_t ngx_http_audex_revoke_recent_has(const char *jti);
static void ngx_http_audex_revoke_tick(ngx_event_t *ev);
static void ngx_http_audex_revoke_work(void *data, ngx_log_t *log);
static void ngx_http_audex_revoke_done(ngx_event_t *ev);
static ngx_int_t ngx_http_audex_logout_handler(ngx_http_request_t *r);
static void ngx_http_audex_logout_work(void *data, ngx_log_t *log);
static void ngx_http_audex_logout_done(ngx_http_request_t *r, void *data);


/* this worker process's state; the event loop's only */
static ngx_http_audex_revoked_t  *ngx_http_audex_revoked;
static ngx_thread_task_t         *ngx_http_audex_revoke_task;
static ngx_event_t                ngx_http_audex_revoke_timer;
static ngx_uint_t                 ngx_http_audex_revoke_busy;
static ngx_uint_t                 ngx_http_audex_revoke_failing;

typedef struct {
    char                            jti[64];
    time_t                          until;
} ngx_http_audex_revoke_recent_t;

static ngx_http_audex_revoke_recent_t
    ngx_http_audex_revoke_recent[NGX_HTTP_AUDEX_REVOKE_RECENT];
static ngx_uint_t                 ngx_http_audex_revoke_next;

/*
 * Reads are numbered as they are posted: a periodic read that started
 * before a logout's must not replace the table the logout read after
 * adding its token.
 */
static ngx_uint_t                 ngx_http_audex_revoke_posted;
static ngx_uint_t                 ngx_http_audex_revoke_in_use;


/* 1 when the token of user was revoked, by its user or by its jti */

ngx_uint_t
ngx_http_audex_revoked_token(ngx_http_audex_user_t *user)
{
    int64_t                          iat;
    const char                      *jti;
    ngx_http_audex_revoked_t        *t;
    ngx_http_audex_revoked_user_t    key, *u;

    jti = audex_jwt_claims_string(user->claims, "jti", NULL);

    if (jti != NULL && ngx_http_audex_revoke_recent_has(jti)) {
        return 1;
    }

    t = ngx_http_audex_revoked;

    if (t == NULL) {
        return 0;
    }

    if (t->nusers) {
        key.id = (const char *) user->user_id.data;
        u = bsearch(&key, t->users, t->nusers,
                    sizeof(ngx_http_audex_revoked_user_t),
                    ngx_http_audex_revoke_cmp_user);

        /*
         * ours carry the moment to the millisecond; others have "iat"
         * in seconds; a token without either cannot show it is newer
         */
        if (u != NULL
            && ((audex_jwt_claims_time(user->claims, AUDEX_JWT_IAT_MS, &iat)
                 != 0
                 && audex_jwt_claims_time_ms(user->claims, "iat", &iat)
                    != 0)
                || iat < u->before))
        {
            return 1;
        }
    }

    if (jti != NULL && t->ntokens
        && bsearch(&jti, t->tokens, t->ntokens, sizeof(char *),
                   ngx_http_audex_revoke_cmp_token)
           != NULL)
    {
        return 1;
    }

    return 0;
}


/*
 * This worker's own logouts of the last seconds: a periodic read posted
 * before a logout's write may land after it, without the token.
 */

static ngx_uint_t
ngx_http_audex_revoke_recent_has(const char *jti)
{
    ngx_uint_t  i;
    time_t      now;

    now = ngx_time();

    for (i = 0; i < NGX_HTTP_AUDEX_REVOKE_RECENT; i++) {
        if (ngx_http_audex_revoke_recent[i].until >= now
            && ngx_strcmp(ngx_http_audex_revoke_recent[i].jti, jti) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* the timer and the task that read the table, made in each worker */

ngx_int_t
ngx_http_audex_revoke_init_process(ngx_cycle_t *cycle,
    ngx_http_audex_main_conf_t *amcf)
{
    ngx_http_audex_revoke_read_t  *rd;

    if (amcf->jwt_key == NULL || amcf->thread_pool == NULL) {
        return NGX_OK;          /* no tokens here */
    }

    ngx_http_audex_revoke_task = ngx_thread_task_alloc(cycle->pool,
                                     sizeof(ngx_http_audex_revoke_read_t));
    if (ngx_http_audex_revoke_task == NULL) {
        return NGX_ERROR;
    }

    rd = ngx_http_audex_revoke_task->ctx;
    rd->amcf = amcf;

    ngx_http_audex_revoke_task->handler = ngx_http_audex_revoke_work;
    ngx_http_audex_revoke_task->event.handler = ngx_http_audex_revoke_done;
    ngx_http_audex_revoke_task->event.data = rd;
    ngx_http_audex_revoke_task->event.log = cycle->log;

    ngx_http_audex_revoke_timer.handler = ngx_http_audex_revoke_tick;
    ngx_http_audex_revoke_timer.data = rd;
    ngx_http_audex_revoke_timer.log = cycle->log;
    ngx_http_audex_revoke_timer.cancelable = 1;

    /* the first read at once */
    ngx_add_timer(&ngx_http_audex_revoke_timer, 1);

    return NGX_OK;
}


void
ngx_http_audex_revoke_exit_process(void)
{
    ngx_free(ngx_http_audex_revoked);
    ngx_http_audex_revoked = NULL;
}


static void
ngx_http_audex_revoke_tick(ngx_event_t *ev)
{
    ngx_http_audex_revoke_read_t  *rd = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (ngx_http_audex_revoke_busy) {
        /* the last read is still out: its end sets the next */
        return;
    }

    rd->seq = ++ngx_http_audex_revoke_posted;

    if (ngx_thread_task_post(rd->amcf->thread_pool,
                             ngx_http_audex_revoke_task)
        != NGX_OK)
    {
        ngx_add_timer(ev, NGX_HTTP_AUDEX_REVOKE_EVERY);
        return;
    }

    ngx_http_audex_revoke_busy = 1;
}


static void
ngx_http_audex_revoke_work(void *data, ngx_log_t *log)
{
    ngx_http_audex_revoke_read_t  *rd = data;

    rd->err[0] = '\0';
    rd->table = ngx_http_audex_revoke_build(rd->amcf, rd->err);
}


static void
ngx_http_audex_revoke_done(ngx_event_t *ev)
{
    ngx_http_audex_revoke_read_t  *rd = ev->data;

    ngx_http_audex_revoke_busy = 0;

    ngx_http_audex_revoke_use(rd, ngx_http_audex_revoke_timer.log);

    if (!(ngx_exiting || ngx_quit || ngx_terminate)) {
        ngx_add_timer(&ngx_http_audex_revoke_timer,
                      NGX_HTTP_AUDEX_REVOKE_EVERY);
    }
}


/*
 * A table read: in use from now on, unless one read later is already;
 * none (Redis away): the last stays.
 */

static void
ngx_http_audex_revoke_use(ngx_http_audex_revoke_read_t *rd, ngx_log_t *log)
{
    ngx_http_audex_revoked_t  *table;

    table = rd->table;
    rd->table = NULL;

    if (table == NULL) {
        if (!ngx_http_audex_revoke_failing) {
            ngx_log_error(NGX_LOG_ERR, log, 0, "audex: revoked tokens "
                          "cannot be read, the last list stays in use: %s",
                          rd->err);
            ngx_http_audex_revoke_failing = 1;
        }

        return;
    }

    if (rd->seq < ngx_http_audex_revoke_in_use) {
        ngx_free(table);
        return;
    }

    ngx_http_audex_revoke_in_use = rd->seq;

    if (ngx_http_audex_revoke_failing) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, log, 0,
                      "audex: revoked tokens are read again");
        ngx_http_audex_revoke_failing = 0;
    }

    ngx_free(ngx_http_audex_revoked);
    ngx_http_audex_revoked = table;
}


/*
 * Pool thread: drops the tokens that have expired anyway, then reads
 * both sets into one allocation, sorted for bsearch().  NULL with err
 * filled in on failure.
 */

static ngx_http_audex_revoked_t *
ngx_http_audex_revoke_build(ngx_http_audex_main_conf_t *amcf, char *err)
{
    u_char                    *p;
    size_t                     size;
    ngx_uint_t                 i, nu, nt;
    redisReply                *r, *users, *tokens;
    ngx_http_audex_revoked_t  *t;

    r = ngx_http_audex_redis_command(amcf, err,
                                     "ZREMRANGEBYSCORE %s -inf %lld",
                                     AUDEX_REVOKED_TOKENS,
                                     (long long) time(NULL));
    if (r == NULL) {
        return NULL;
    }

    freeReplyObject(r);

    users = ngx_http_audex_redis_command(amcf, err,
                                         "ZRANGE %s 0 -1 WITHSCORES",
                                         AUDEX_REVOKED_USERS);
    if (users == NULL) {
        return NULL;
    }

    tokens = ngx_http_audex_redis_command(amcf, err, "ZRANGE %s 0 -1",
                                          AUDEX_REVOKED_TOKENS);
    if (tokens == NULL) {
        freeReplyObject(users);
        return NULL;
    }

    t = NULL;

    if (ngx_http_audex_revoke_zset(users, 1) != NGX_OK
        || ngx_http_audex_revoke_zset(tokens, 0) != NGX_OK)
    {
        ngx_cpystrn((u_char *) err, (u_char *) "Redis answered no list",
                    NGX_HTTP_AUDEX_ERRLEN);
        goto done;
    }

    nu = users->elements / 2;
    nt = tokens->elements;

    size = sizeof(ngx_http_audex_revoked_t)
           + nu * sizeof(ngx_http_audex_revoked_user_t)
           + nt * sizeof(char *);

    for (i = 0; i < users->elements; i += 2) {
        size += users->element[i]->len + 1;
    }

    for (i = 0; i < nt; i++) {
        size += tokens->element[i]->len + 1;
    }

    t = malloc(size);
    if (t == NULL) {
        ngx_cpystrn((u_char *) err, (u_char *) "out of memory",
                    NGX_HTTP_AUDEX_ERRLEN);
        goto done;
    }

    t->nusers = nu;
    t->ntokens = nt;
    t->users = (ngx_http_audex_revoked_user_t *) (t + 1);
    t->tokens = (const char **) (t->users + nu);
    p = (u_char *) (t->tokens + nt);

    for (i = 0; i < nu; i++) {
        t->users[i].id = (const char *) p;
        p = ngx_cpymem(p, users->element[2 * i]->str,
                       users->element[2 * i]->len);
        *p++ = '\0';
        t->users[i].before = strtoll(users->element[2 * i + 1]->str, NULL,
                                     10);
    }

    for (i = 0; i < nt; i++) {
        t->tokens[i] = (const char *) p;
        p = ngx_cpymem(p, tokens->element[i]->str, tokens->element[i]->len);
        *p++ = '\0';
    }

    qsort(t->users, nu, sizeof(ngx_http_audex_revoked_user_t),
          ngx_http_audex_revoke_cmp_user);
    qsort(t->tokens, nt, sizeof(char *), ngx_http_audex_revoke_cmp_token);

done:

    freeReplyObject(tokens);
    freeReplyObject(users);

    return t;
}


/* an array of strings (scores: every second one a number) */

static ngx_int_t
ngx_http_audex_revoke_zset(redisReply *reply, ngx_uint_t scores)
{
    size_t  i;

    if (reply->type != REDIS_REPLY_ARRAY
        || (scores && reply->elements % 2))
    {
        return NGX_ERROR;
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_STRING) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static int
ngx_http_audex_revoke_cmp_user(const void *a, const void *b)
{
    const ngx_http_audex_revoked_user_t  *x = a, *y = b;

    return strcmp(x->id, y->id);
}


static int
ngx_http_audex_revoke_cmp_token(const void *a, const void *b)
{
    return strcmp(*(const char * const *) a, *(const char * const *) b);
}


/* audex_logout: POST, with the token to revoke */

char *
ngx_http_audex_logout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_audex_set_handler(cf, cmd, ngx_http_audex_logout_handler,
                                      NGX_HTTP_AUDEX_H_LOGOUT);
}


static ngx_int_t
ngx_http_audex_logout_handler(ngx_http_request_t *r)
{
    size_t                    len;
    ngx_int_t                 rc;
    const char               *jti;
    ngx_http_audex_user_t    *user;
    ngx_http_audex_logout_t  *lo;

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_audex_method_not_allowed(r, "POST");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    user = ngx_http_audex_auth_user(r);
    if (user == NULL) {
        return ngx_http_audex_auth_deny(r, NGX_HTTP_UNAUTHORIZED,
                                        "token required");
    }

    lo = ngx_http_audex_thread_alloc(r, sizeof(ngx_http_audex_logout_t));
    if (lo == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    jti = audex_jwt_claims_string(user->claims, "jti", &len);

    if (jti == NULL || len == 0 || len >= sizeof(lo->jti)
        || audex_jwt_claims_time(user->claims, "exp", &lo->exp) != 0)
    {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: logout of \"%V\": the token has no jti",
                      &user->email);
        return ngx_http_audex_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "this token has no jti: only "
                                         "its user can be revoked");
    }

    ngx_memcpy(lo->jti, jti, len + 1);
    lo->read.amcf = ngx_http_get_module_main_conf(r, ngx_http_audex_module);
    lo->read.seq = ++ngx_http_audex_revoke_posted;

    return ngx_http_audex_thread_start(r, lo, ngx_http_audex_logout_work,
                                       ngx_http_audex_logout_done, "logout");
}


/* pool thread: the jti into Redis, then the table read anew with it */

static void
ngx_http_audex_logout_work(void *data, ngx_log_t *log)
{
    redisReply               *r;
    ngx_http_audex_logout_t  *lo = data;

    /*
     * kept until the token cannot pass anyway: past exp with the leeway
     * verification allows, and a margin for other hosts' clocks
     */
    r = ngx_http_audex_redis_command(lo->read.amcf, lo->read.err,
                                     "ZADD %s %lld %s", AUDEX_REVOKED_TOKENS,
                                     (long long) (lo->exp
                                         + lo->read.amcf->jwt_leeway
                                         + NGX_HTTP_AUDEX_REVOKE_MARGIN),
                                     lo->jti);
    if (r == NULL) {
        return;
    }

    lo->added = (r->type == REDIS_REPLY_INTEGER);

    if (!lo->added) {
        ngx_cpystrn((u_char *) lo->read.err,
                    (u_char *) (r->type == REDIS_REPLY_ERROR ? r->str
                                : "unexpected reply"),
                    NGX_HTTP_AUDEX_ERRLEN);
    }

    freeReplyObject(r);

    if (lo->added) {
        lo->read.table = ngx_http_audex_revoke_build(lo->read.amcf,
                                                     lo->read.err);
    }
}


static void
ngx_http_audex_logout_done(ngx_http_request_t *r, void *data)
{
    ngx_http_audex_logout_t  *lo = data;

    ngx_http_audex_revoke_recent_t  *recent;

    if (!lo->added) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "audex: logout failed: %s", lo->read.err);
        ngx_http_finalize_request(r,
            ngx_http_audex_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "revocation unavailable"));
        return;
    }

    /* this worker refuses the token from now on, the others within 1 s */
    if (lo->read.table) {
        ngx_http_audex_revoke_use(&lo->read, r->connection->log);
    }

    recent = &ngx_http_audex_revoke_recent[ngx_http_audex_revoke_next++
                                           % NGX_HTTP_AUDEX_REVOKE_RECENT];
    ngx_cpystrn((u_char *) recent->jti, (u_char *) lo->jti,
                sizeof(recent->jti));
    recent->until = ngx_time() + NGX_HTTP_AUDEX_REVOKE_HOLD;

    ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                  "audex: logout: token %s revoked", lo->jti);

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    ngx_http_finalize_request(r, ngx_http_send_header(r));
}
