/*
 * GET /healthz: pings MongoDB and Redis from a pool thread and answers
 * 200 {"mongo":"ok","redis":"ok"}, or 503 naming what is down.
 *
 * The backends' error text (addresses, driver messages) is for the
 * operator: the error log always has it, and the answer carries it in
 * "error" only for a client on the loopback (curl on the host, make
 * run).  Anyone else, a load balancer or a stranger, learns what is
 * down, not why.
 */


#include "ngx_http_audex_module.h"


typedef struct {
    ngx_http_audex_main_conf_t  *amcf;
    char                         mongo_err[NGX_HTTP_AUDEX_ERRLEN];
    char                         redis_err[NGX_HTTP_AUDEX_ERRLEN];
} ngx_http_audex_health_ctx_t;


static ngx_int_t ngx_http_audex_health_handler(ngx_http_request_t *r);
static void ngx_http_audex_health_work(void *data, ngx_log_t *log);
static void ngx_http_audex_health_done(ngx_http_request_t *r, void *data);
static ngx_int_t ngx_http_audex_health_send(ngx_http_request_t *r,
    ngx_http_audex_health_ctx_t *ctx);
static ngx_uint_t ngx_http_audex_health_local(ngx_http_request_t *r);


char *
ngx_http_audex_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_audex_set_handler(cf, cmd, ngx_http_audex_health_handler,
                                      NGX_HTTP_AUDEX_H_HEALTHZ);
}


static ngx_int_t
ngx_http_audex_health_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_audex_health_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_audex_method_not_allowed(r, "GET, HEAD");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_http_audex_thread_alloc(r, sizeof(ngx_http_audex_health_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->amcf = ngx_http_get_module_main_conf(r, ngx_http_audex_module);
    ctx->mongo_err[0] = '\0';
    ctx->redis_err[0] = '\0';

    return ngx_http_audex_thread_start(r, ctx, ngx_http_audex_health_work,
                                       ngx_http_audex_health_done, "healthz");
}


static void
ngx_http_audex_health_work(void *data, ngx_log_t *log)
{
    ngx_http_audex_health_ctx_t *ctx = data;

    bson_t            *cmd;
    redisReply        *reply;
    bson_error_t       error;
    mongoc_client_t   *client;

    client = ngx_http_audex_mongo_pop(ctx->amcf);
    cmd = BCON_NEW("ping", BCON_INT32(1));

    if (!mongoc_client_command_simple(client, "admin", cmd, NULL, NULL,
                                      &error))
    {
        ngx_cpystrn((u_char *) ctx->mongo_err, (u_char *) error.message,
                    NGX_HTTP_AUDEX_ERRLEN);
    }

    bson_destroy(cmd);
    ngx_http_audex_mongo_push(ctx->amcf, client);

    reply = ngx_http_audex_redis_command(ctx->amcf, ctx->redis_err, "PING");

    if (reply) {
        if (reply->type != REDIS_REPLY_STATUS
            || ngx_strcmp(reply->str, "PONG") != 0)
        {
            ngx_cpystrn((u_char *) ctx->redis_err,
                        (u_char *) (reply->str ? reply->str : "bad reply"),
                        NGX_HTTP_AUDEX_ERRLEN);
        }

        freeReplyObject(reply);
    }
}


static void
ngx_http_audex_health_done(ngx_http_request_t *r, void *data)
{
    ngx_http_finalize_request(r, ngx_http_audex_health_send(r, data));
}


static ngx_int_t
ngx_http_audex_health_send(ngx_http_request_t *r,
    ngx_http_audex_health_ctx_t *ctx)
{
    u_char      *p, *body, *err;
    size_t       len, elen;
    ngx_uint_t   mongo_ok, redis_ok;

    mongo_ok = (ctx->mongo_err[0] == '\0');
    redis_ok = (ctx->redis_err[0] == '\0');

    if (mongo_ok && redis_ok) {
        static u_char  ok[] = "{\"mongo\":\"ok\",\"redis\":\"ok\"}\n";

        return ngx_http_audex_send_json(r, NGX_HTTP_OK, ok, sizeof(ok) - 1);
    }

    /* one line naming what is down, and the same words for the client */

    len = sizeof("mongo: ; redis: ") - 1 + ngx_strlen(ctx->mongo_err)
          + ngx_strlen(ctx->redis_err);

    err = ngx_pnalloc(r->pool, len);
    if (err == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = err;

    if (!mongo_ok) {
        p = ngx_sprintf(p, "mongo: %s", ctx->mongo_err);
    }

    if (!redis_ok) {
        p = ngx_sprintf(p, "%sredis: %s", mongo_ok ? "" : "; ",
                        ctx->redis_err);
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "audex: healthz: %*s", p - err, err);

    if (!ngx_http_audex_health_local(r)) {
        body = ngx_pnalloc(r->pool, sizeof("{\"mongo\":\"down\","
                                           "\"redis\":\"down\"}\n"));
        if (body == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_sprintf(body, "{\"mongo\":\"%s\",\"redis\":\"%s\"}\n",
                        mongo_ok ? "ok" : "down", redis_ok ? "ok" : "down");

        return ngx_http_audex_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        body, p - body);
    }

    err = ngx_http_audex_json_str(r->pool, err, p - err, &elen);
    if (err == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"mongo\":\"down\",\"redis\":\"down\",\"error\":}\n") - 1
          + elen;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"mongo\":\"%s\",\"redis\":\"%s\",\"error\":%*s}\n",
                    mongo_ok ? "ok" : "down", redis_ok ? "ok" : "down",
                    elen, err);

    return ngx_http_audex_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE, body,
                                    p - body);
}


/*
 * Whether the client is on this host: 127.0.0.0/8, ::1, an IPv4-mapped
 * 127 address, or a unix socket.  The address is the one nginx holds,
 * after the realip module when it is configured.
 */

static ngx_uint_t
ngx_http_audex_health_local(ngx_http_request_t *r)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    u_char               *a;
    struct sockaddr_in6  *sin6;
#endif

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;
        a = sin6->sin6_addr.s6_addr;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            return a[12] == 127;
        }

        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
#endif

#if (NGX_HAVE_UNIX_DOMAIN)
    case AF_UNIX:
        return 1;
#endif
    }

    return 0;
}
