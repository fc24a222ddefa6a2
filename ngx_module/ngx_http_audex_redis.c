/*
 * Redis: hiredis is blocking, so it is only ever called from pool
 * threads.  Each pool thread owns one connection (thread-specific data),
 * made on first use and made again after an error.
 *
 * The key has no destructor, on purpose: pool threads live as long as
 * their worker process, and nginx unloads a dynamic module (dlclose) while
 * the threads may still be exiting, so a destructor in this module could
 * run after its code is gone.  The process exit closes the sockets.
 */


#include "ngx_http_audex_module.h"


#define NGX_HTTP_AUDEX_REDIS_DEFAULT_URL  "redis://127.0.0.1:6379/0"


static void ngx_http_audex_redis_key_init(void);
static redisContext *ngx_http_audex_redis_connect(
    ngx_http_audex_main_conf_t *amcf, char *err);
static ngx_int_t ngx_http_audex_redis_ok(redisContext *c, redisReply *reply,
    char *err);
static ngx_int_t ngx_http_audex_redis_parse(ngx_conf_t *cf,
    ngx_http_audex_main_conf_t *amcf, ngx_str_t *value);
static char *ngx_http_audex_redis_cstr(ngx_pool_t *pool, const char *p,
    size_t len);


static pthread_key_t   ngx_http_audex_redis_key;
static pthread_once_t  ngx_http_audex_redis_once = PTHREAD_ONCE_INIT;


char *
ngx_http_audex_redis_set_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_audex_main_conf_t *amcf = conf;

    ngx_str_t  *value;

    if (amcf->redis_url.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    amcf->redis_url = value[1];

    if (ngx_http_audex_redis_parse(cf, amcf, &value[1]) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_audex_redis_init_conf(ngx_conf_t *cf,
    ngx_http_audex_main_conf_t *amcf)
{
    ngx_str_t  def = ngx_string(NGX_HTTP_AUDEX_REDIS_DEFAULT_URL);

    if (amcf->redis_url.data == NULL) {
        amcf->redis_url = def;

        if (ngx_http_audex_redis_parse(cf, amcf, &def) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_audex_redis_parse(ngx_conf_t *cf, ngx_http_audex_main_conf_t *amcf,
    ngx_str_t *value)
{
    const char  *err;

    if (audex_redis_url_parse((const char *) value->data, value->len,
                              &amcf->redis, &err)
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "audex_redis_url: invalid URL \"%V\": %s",
                           value, err);
        return NGX_ERROR;
    }

    amcf->redis_host = ngx_http_audex_redis_cstr(cf->pool, amcf->redis.host,
                                                 amcf->redis.host_len);
    amcf->redis_path = ngx_http_audex_redis_cstr(cf->pool, amcf->redis.path,
                                                 amcf->redis.path_len);
    amcf->redis_user = ngx_http_audex_redis_cstr(cf->pool, amcf->redis.user,
                                                 amcf->redis.user_len);
    amcf->redis_password = ngx_http_audex_redis_cstr(cf->pool,
                                                     amcf->redis.password,
                                                     amcf->redis.password_len);

    return NGX_OK;
}


static char *
ngx_http_audex_redis_cstr(ngx_pool_t *pool, const char *p, size_t len)
{
    char  *s;

    if (p == NULL || len == 0) {
        return NULL;
    }

    s = ngx_pnalloc(pool, len + 1);
    if (s == NULL) {
        return NULL;
    }

    ngx_memcpy(s, p, len);
    s[len] = '\0';

    return s;
}


static void
ngx_http_audex_redis_key_init(void)
{
    (void) pthread_key_create(&ngx_http_audex_redis_key, NULL);
}


static redisContext *
ngx_http_audex_redis_connect(ngx_http_audex_main_conf_t *amcf, char *err)
{
    redisReply      *reply;
    redisContext    *c;
    struct timeval   tv;

    tv.tv_sec = amcf->backend_timeout / 1000;
    tv.tv_usec = (amcf->backend_timeout % 1000) * 1000;

    if (amcf->redis_path) {
        c = redisConnectUnixWithTimeout(amcf->redis_path, tv);

    } else {
        c = redisConnectWithTimeout(amcf->redis_host, amcf->redis.port, tv);
    }

    if (c == NULL) {
        ngx_cpystrn((u_char *) err, (u_char *) "out of memory",
                    NGX_HTTP_AUDEX_ERRLEN);
        return NULL;
    }

    if (c->err) {
        ngx_cpystrn((u_char *) err, (u_char *) c->errstr,
                    NGX_HTTP_AUDEX_ERRLEN);
        redisFree(c);
        return NULL;
    }

    if (redisSetTimeout(c, tv) != REDIS_OK) {
        ngx_cpystrn((u_char *) err, (u_char *) "cannot set the timeout",
                    NGX_HTTP_AUDEX_ERRLEN);
        redisFree(c);
        return NULL;
    }

    if (amcf->redis_password) {
        reply = amcf->redis_user
                ? redisCommand(c, "AUTH %s %s", amcf->redis_user,
                               amcf->redis_password)
                : redisCommand(c, "AUTH %s", amcf->redis_password);

        if (ngx_http_audex_redis_ok(c, reply, err) != NGX_OK) {
            goto failed;
        }
    }

    if (amcf->redis.db) {
        reply = redisCommand(c, "SELECT %d", amcf->redis.db);

        if (ngx_http_audex_redis_ok(c, reply, err) != NGX_OK) {
            goto failed;
        }
    }

    return c;

failed:

    redisFree(c);
    return NULL;
}


/* Consumes the reply of a setup command; NGX_OK unless it failed. */

static ngx_int_t
ngx_http_audex_redis_ok(redisContext *c, redisReply *reply, char *err)
{
    if (reply && reply->type != REDIS_REPLY_ERROR) {
        freeReplyObject(reply);
        return NGX_OK;
    }

    ngx_cpystrn((u_char *) err, (u_char *) (reply ? reply->str : c->errstr),
                NGX_HTTP_AUDEX_ERRLEN);

    if (reply) {
        freeReplyObject(reply);
    }

    return NGX_ERROR;
}


/*
 * Sends one command on this thread's connection.  A connection that
 * fails is dropped and, if it had been reused (the server may have
 * restarted since), the command is tried once on a new one.  Returns the
 * reply, which the caller frees, or NULL with err filled in.  An error
 * reply from Redis is returned as a reply.
 */

redisReply *
ngx_http_audex_redis_command(ngx_http_audex_main_conf_t *amcf, char *err,
    const char *fmt, ...)
{
    va_list        args;
    ngx_uint_t     fresh, attempt;
    redisReply    *reply;
    redisContext  *c;

    (void) pthread_once(&ngx_http_audex_redis_once,
                        ngx_http_audex_redis_key_init);

    for (attempt = 0; attempt < 2; attempt++) {

        c = pthread_getspecific(ngx_http_audex_redis_key);
        fresh = 0;

        if (c == NULL) {
            c = ngx_http_audex_redis_connect(amcf, err);
            if (c == NULL) {
                return NULL;
            }

            (void) pthread_setspecific(ngx_http_audex_redis_key, c);
            fresh = 1;
        }

        va_start(args, fmt);
        reply = redisvCommand(c, fmt, args);
        va_end(args);

        if (reply) {
            /* a failed first attempt must not read as a failure */
            err[0] = '\0';
            return reply;
        }

        ngx_cpystrn((u_char *) err, (u_char *) c->errstr,
                    NGX_HTTP_AUDEX_ERRLEN);

        redisFree(c);
        (void) pthread_setspecific(ngx_http_audex_redis_key, NULL);

        if (fresh) {
            break;
        }
    }

    return NULL;
}
