/*
 * POST /login: HTTP Basic credentials in, a signed JWT out.
 *
 * The user lookup (MongoDB), the argon2id verification and the signing
 * all run in a pool thread.  An unknown or disabled account still costs
 * one hash, so the answer time does not tell which accounts exist.  The
 * password is copied into the task and wiped there when done.
 *
 * Credentials that no account can match are refused before any of that:
 * a NUL in the user name would cut it short in C ("ann@example.com\0x"
 * would log in as ann), other control characters would end up in the
 * log, and a NUL in the password is refused alike, whatever the hash
 * would say.
 */


#include "ngx_http_audex_module.h"

#include "audex_password.h"


#define NGX_HTTP_AUDEX_LOGIN_OK        0
#define NGX_HTTP_AUDEX_LOGIN_DENIED    1
#define NGX_HTTP_AUDEX_LOGIN_BACKEND   2
#define NGX_HTTP_AUDEX_LOGIN_ERROR     3


typedef struct {
    ngx_http_audex_main_conf_t  *amcf;
    ngx_log_t                   *log;

    char                        *email;        /* lowercased, from r->pool */
    char                        *password;     /* wiped by the work */
    size_t                       password_len;

    ngx_uint_t                   result;
    char                        *token;        /* malloc(), freed by done */
    size_t                       token_len;
    const char                  *why;          /* for the log only */
    char                         err[NGX_HTTP_AUDEX_ERRLEN];
} ngx_http_audex_login_ctx_t;


static ngx_int_t ngx_http_audex_login_handler(ngx_http_request_t *r);
static void ngx_http_audex_login_work(void *data, ngx_log_t *log);
static ngx_int_t ngx_http_audex_login_check(ngx_http_audex_login_ctx_t *ctx,
    mongoc_client_t *client, char *sub, ngx_uint_t *admin);
static void ngx_http_audex_login_done(ngx_http_request_t *r, void *data);
static ngx_int_t ngx_http_audex_login_send(ngx_http_request_t *r,
    ngx_http_audex_login_ctx_t *ctx);
static const char *ngx_http_audex_login_malformed(ngx_http_request_t *r);
static ngx_int_t ngx_http_audex_login_denied(ngx_http_request_t *r,
    const char *message);


char *
ngx_http_audex_login(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_audex_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_audex_module);

    if (amcf->jwt_key == NULL) {
        return "needs audex_jwt_key before it, at http level";
    }

    if (!audex_jwt_key_can_sign(amcf->jwt_key)) {
        return "needs a private key in audex_jwt_key to sign tokens";
    }

    return ngx_http_audex_set_handler(cf, cmd, ngx_http_audex_login_handler,
                                      NGX_HTTP_AUDEX_H_LOGIN);
}


static ngx_int_t
ngx_http_audex_login_handler(ngx_http_request_t *r)
{
    u_char                      *p;
    ngx_int_t                    rc;
    const char                  *why;
    ngx_http_audex_login_ctx_t  *ctx;

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_audex_method_not_allowed(r, "POST");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_auth_basic_user(r);

    if (rc == NGX_DECLINED || rc == NGX_ERROR
        || r->headers_in.user.len == 0 || r->headers_in.passwd.len == 0)
    {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: login without Basic credentials");
        return ngx_http_audex_login_denied(r, "invalid credentials");
    }

    why = ngx_http_audex_login_malformed(r);

    if (why) {
        ngx_explicit_memzero(r->headers_in.passwd.data,
                             r->headers_in.passwd.len);
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: login refused: %s", why);
        return ngx_http_audex_login_denied(r, why);
    }

    ctx = ngx_http_audex_thread_alloc(r, sizeof(ngx_http_audex_login_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(ctx, sizeof(ngx_http_audex_login_ctx_t));

    ctx->amcf = ngx_http_get_module_main_conf(r, ngx_http_audex_module);
    ctx->log = r->connection->log;

    ctx->email = ngx_pnalloc(r->pool, r->headers_in.user.len + 1);
    ctx->password = ngx_pnalloc(r->pool, r->headers_in.passwd.len + 1);

    if (ctx->email == NULL || ctx->password == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(ctx->email, r->headers_in.user.data,
                   r->headers_in.user.len);
    *p = '\0';
    ngx_strlow((u_char *) ctx->email, (u_char *) ctx->email,
               r->headers_in.user.len);

    ngx_memcpy(ctx->password, r->headers_in.passwd.data,
               r->headers_in.passwd.len);
    ctx->password[r->headers_in.passwd.len] = '\0';
    ctx->password_len = r->headers_in.passwd.len;

    /* the decoded "user:password" stays in r->pool: wipe it now */
    ngx_explicit_memzero(r->headers_in.passwd.data, r->headers_in.passwd.len);

    rc = ngx_http_audex_thread_start(r, ctx, ngx_http_audex_login_work,
                                     ngx_http_audex_login_done, "login");

    if (rc != NGX_DONE) {
        /* not posted: the password goes no further */
        ngx_explicit_memzero(ctx->password, ctx->password_len);
    }

    return rc;
}


static void
ngx_http_audex_login_work(void *data, ngx_log_t *log)
{
    ngx_http_audex_login_ctx_t *ctx = data;

    char                    sub[25];
    ngx_int_t               rc;
    ngx_uint_t              admin;
    audex_jwt_err_e         jrc;
    struct timeval          tv;
    mongoc_client_t        *client;
    audex_jwt_sign_args_t   args;

    client = ngx_http_audex_mongo_pop(ctx->amcf);

    rc = ngx_http_audex_login_check(ctx, client, sub, &admin);

    ngx_http_audex_mongo_push(ctx->amcf, client);
    ngx_explicit_memzero(ctx->password, ctx->password_len);

    if (rc != NGX_OK) {
        return;
    }

    ngx_memzero(&args, sizeof(audex_jwt_sign_args_t));
    args.sub = sub;
    args.email = ctx->email;
    args.admin = admin ? 1 : 0;
    ngx_gettimeofday(&tv);
    args.now = (int64_t) tv.tv_sec;
    args.now_ms = (int) (tv.tv_usec / 1000);
    args.lifetime = (int64_t) ctx->amcf->jwt_lifetime;
    args.iss = (char *) ctx->amcf->jwt_issuer.data;
    args.aud = (char *) ctx->amcf->jwt_audience.data;

    jrc = audex_jwt_sign(ctx->amcf->jwt_key, &args, &ctx->token,
                         &ctx->token_len);

    if (jrc != AUDEX_JWT_OK) {
        ctx->result = NGX_HTTP_AUDEX_LOGIN_ERROR;
        ctx->why = audex_jwt_strerror(jrc);
        return;
    }

    ctx->result = NGX_HTTP_AUDEX_LOGIN_OK;
}


/* Looks the account up and checks the password; NGX_OK when they match. */

static ngx_int_t
ngx_http_audex_login_check(ngx_http_audex_login_ctx_t *ctx,
    mongoc_client_t *client, char *sub, ngx_uint_t *admin)
{
    int                    found;
    bson_t                *doc;
    bson_iter_t            it;
    bson_error_t           error;
    const char            *hash;
    ngx_uint_t             disabled;
    audex_password_rc_e    prc;
    mongoc_collection_t   *users;

    users = mongoc_client_get_collection(client, ctx->amcf->mongo_db,
                                         AUDEX_COLL_USERS);
    found = audex_store_user_by_email(users, ctx->email, &doc, &error);

    hash = NULL;
    disabled = 0;
    *admin = 0;

    if (found == 1) {
        if (bson_iter_init_find(&it, doc, "password")
            && BSON_ITER_HOLDS_UTF8(&it))
        {
            hash = bson_iter_utf8(&it, NULL);
        }

        if (bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_OID(&it)) {
            bson_oid_to_string(bson_iter_oid(&it), sub);

        } else {
            hash = NULL;
        }

        if (bson_iter_init_find(&it, doc, "admin")) {
            *admin = bson_iter_as_bool(&it);
        }

        if (bson_iter_init_find(&it, doc, "disabled")) {
            disabled = bson_iter_as_bool(&it);
        }
    }

    if (found < 0) {
        ngx_cpystrn((u_char *) ctx->err, (u_char *) error.message,
                    NGX_HTTP_AUDEX_ERRLEN);
        ctx->result = NGX_HTTP_AUDEX_LOGIN_BACKEND;
        hash = NULL;
        goto done;
    }

    ctx->result = NGX_HTTP_AUDEX_LOGIN_DENIED;

    if (hash == NULL) {
        audex_password_dummy_verify(NULL, ctx->password, ctx->password_len);
        ctx->why = "unknown user";
        goto done;
    }

    prc = audex_password_verify(hash, ctx->password, ctx->password_len);

    if (prc != AUDEX_PASSWORD_OK) {
        ctx->why = audex_password_strerror(prc);
        hash = NULL;
        goto done;
    }

    if (disabled) {
        ctx->why = "account disabled";
        hash = NULL;
        goto done;
    }

done:

    /* doc owns hash: used above, not below */
    bson_destroy(doc);
    mongoc_collection_destroy(users);

    return hash ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_audex_login_done(ngx_http_request_t *r, void *data)
{
    ngx_http_audex_login_ctx_t *ctx = data;

    ngx_int_t  rc;

    rc = ngx_http_audex_login_send(r, ctx);

    if (ctx->token) {
        ngx_explicit_memzero(ctx->token, ctx->token_len);
        free(ctx->token);
        ctx->token = NULL;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_audex_login_send(ngx_http_request_t *r,
    ngx_http_audex_login_ctx_t *ctx)
{
    u_char  *body, *p;
    size_t   len;

    switch (ctx->result) {

    case NGX_HTTP_AUDEX_LOGIN_OK:
        break;

    case NGX_HTTP_AUDEX_LOGIN_DENIED:
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: login of \"%s\" refused: %s",
                      ctx->email, ctx->why);
        return ngx_http_audex_login_denied(r, "invalid credentials");

    case NGX_HTTP_AUDEX_LOGIN_BACKEND:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "audex: login: mongo: %s", ctx->err);
        return ngx_http_audex_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "database unavailable");

    default:
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "audex: login: cannot sign a token: %s", ctx->why);
        return ngx_http_audex_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         "cannot sign a token");
    }

    ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                  "audex: login of \"%s\"", ctx->email);

    len = ctx->token_len
          + sizeof("{\"token\":\"\",\"token_type\":\"Bearer\","
                   "\"expires_in\":}\n") - 1
          + NGX_TIME_T_LEN;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_audex_add_header(r, "Cache-Control", (u_char *) "no-store",
                                  sizeof("no-store") - 1)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the old gateway answered the bare token; Accept: text/plain keeps it */

    if (ngx_http_audex_accepts(r, "text/plain")) {
        p = ngx_cpymem(body, ctx->token, ctx->token_len);

        return ngx_http_audex_send_body(r, NGX_HTTP_OK, "text/plain", body,
                                        p - body);
    }

    p = ngx_sprintf(body, "{\"token\":\"%*s\",\"token_type\":\"Bearer\","
                    "\"expires_in\":%T}\n",
                    ctx->token_len, ctx->token, ctx->amcf->jwt_lifetime);

    return ngx_http_audex_send_json(r, NGX_HTTP_OK, body, p - body);
}


/* what no account can match, in words for the client; NULL when fine */

static const char *
ngx_http_audex_login_malformed(ngx_http_request_t *r)
{
    u_char     *p, *end;
    ngx_str_t  *user;

    user = &r->headers_in.user;
    end = user->data + user->len;

    for (p = user->data; p < end; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return "invalid credentials: control characters in the user name";
        }
    }

    if (ngx_strlchr(r->headers_in.passwd.data,
                    r->headers_in.passwd.data + r->headers_in.passwd.len, '\0')
        != NULL)
    {
        return "invalid credentials: NUL byte in the password";
    }

    return NULL;
}


static ngx_int_t
ngx_http_audex_login_denied(ngx_http_request_t *r, const char *message)
{
    if (ngx_http_audex_add_header(r, "WWW-Authenticate",
                                  (u_char *) "Basic realm=\"audex\"",
                                  sizeof("Basic realm=\"audex\"") - 1)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_audex_send_error(r, NGX_HTTP_UNAUTHORIZED, message);
}
