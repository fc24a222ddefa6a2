/*
 * JWT validation for any location: audex_auth on|admin|optional|off.
 * "optional" checks a token when one is sent and lets the handler decide
 * when none is (a signed download link needs no token).
 *
 * The check runs in the access phase, so it fronts our own handlers and
 * proxy_pass locations alike.  Verification is CPU work bounded by the
 * token size cap (no I/O), done on the event loop.  The algorithm is
 * pinned by audex_jwt_key; exp, nbf, iat, iss and aud are checked by
 * lib/audex_jwt.c, not trusted to libjwt.
 *
 * The handler is an access handler like auth_basic's: NGX_OK for a good
 * token, 401 or 403 otherwise, so that satisfy, error_page and
 * auth_delay apply.  Like auth_basic it exempts no method: an OPTIONS
 * request reaches a proxied application with its body and headers (an
 * X-HTTP-Method-Override among them) like any other, and audex serves
 * no cross-origin caller whose preflight would need to pass.
 *
 * nginx answers the refusal; our filters only swap nginx's default HTML
 * page for the JSON error, when that page is what goes out: an
 * error_page that redirects (to a URI or a named location) clears the
 * module's context, one that names a URL answers 302.
 */


#include "ngx_http_audex_module.h"

#include "audex_link.h"


static void ngx_http_audex_jwt_key_cleanup(void *data);
static ngx_int_t ngx_http_audex_auth_handler(ngx_http_request_t *r);
static ngx_http_audex_user_t *ngx_http_audex_auth_verify(
    ngx_http_request_t *r, ngx_str_t *token, const char **why);
static void ngx_http_audex_auth_claims_cleanup(void *data);
static ngx_int_t ngx_http_audex_auth_bearer(ngx_http_request_t *r,
    ngx_str_t *token);
static ngx_int_t ngx_http_audex_auth_refuse(ngx_http_request_t *r,
    ngx_http_audex_ctx_t *ctx, ngx_uint_t status, const char *why);
static ngx_table_elt_t *ngx_http_audex_auth_challenge(ngx_http_request_t *r);
static ngx_int_t ngx_http_audex_auth_granted(ngx_http_request_t *r);
static ngx_int_t ngx_http_audex_auth_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_audex_auth_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_audex_user_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_audex_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#define NGX_HTTP_AUDEX_VAR_ID     0
#define NGX_HTTP_AUDEX_VAR_EMAIL  1
#define NGX_HTTP_AUDEX_VAR_ADMIN  2


static ngx_http_variable_t  ngx_http_audex_auth_vars[] = {

    { ngx_string("audex_user_id"), NULL, ngx_http_audex_user_variable,
      NGX_HTTP_AUDEX_VAR_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("audex_user_email"), NULL, ngx_http_audex_user_variable,
      NGX_HTTP_AUDEX_VAR_EMAIL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("audex_user_admin"), NULL, ngx_http_audex_user_variable,
      NGX_HTTP_AUDEX_VAR_ADMIN, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("audex_jwt_claim_"), NULL, ngx_http_audex_claim_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


/* audex_jwt_key HS256|RS256|ES256 FILE */

char *
ngx_http_audex_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_audex_main_conf_t *amcf = conf;

    char                 err[NGX_HTTP_AUDEX_ERRLEN];
    ngx_str_t           *value, path;
    audex_jwt_alg_e      alg;
    ngx_pool_cleanup_t  *cln;

    if (amcf->jwt_key) {
        return "is duplicate";
    }

    value = cf->args->elts;

    alg = audex_jwt_alg_parse((char *) value[1].data, value[1].len);
    if (alg == AUDEX_JWT_ALG_UNSET) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "audex_jwt_key: unknown algorithm \"%V\", "
                           "use HS256, RS256 or ES256", &value[1]);
        return NGX_CONF_ERROR;
    }

    path = value[2];
    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    amcf->jwt_key = audex_jwt_key_load(alg, (char *) path.data, err,
                                       sizeof(err));
    if (amcf->jwt_key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "audex_jwt_key: \"%V\": %s",
                           &path, err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_audex_jwt_key_cleanup;
    cln->data = amcf->jwt_key;

    return NGX_CONF_OK;
}


/* audex_link_secret FILE: the HMAC key of signed download links */

char *
ngx_http_audex_link_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_audex_main_conf_t *amcf = conf;

    u_char     *p;
    ssize_t     n;
    ngx_fd_t    fd;
    ngx_str_t  *value, path;

    if (amcf->link_key.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "audex_link_secret: cannot open \"%V\"", &path);
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, 1024);
    if (p == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, p, 1024);
    ngx_close_file(fd);

    /* a trailing newline from echo or an editor is not part of it */
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r')) {
        n--;
    }

    if (n < AUDEX_LINK_MIN_KEY || n >= 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "audex_link_secret: \"%V\" must hold %d to 1023 "
                           "bytes", &path, AUDEX_LINK_MIN_KEY);
        return NGX_CONF_ERROR;
    }

    amcf->link_key.data = p;
    amcf->link_key.len = n;

    return NGX_CONF_OK;
}


static void
ngx_http_audex_jwt_key_cleanup(void *data)
{
    audex_jwt_key_free(data);
}


ngx_int_t
ngx_http_audex_auth_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_audex_auth_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_audex_auth_granted;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_audex_auth_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_audex_auth_body_filter;

    return NGX_OK;
}


ngx_int_t
ngx_http_audex_auth_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_audex_auth_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


ngx_http_audex_user_t *
ngx_http_audex_auth_user(ngx_http_request_t *r)
{
    ngx_http_audex_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_audex_module);

    return ctx ? ctx->user : NULL;
}


static ngx_int_t
ngx_http_audex_auth_handler(ngx_http_request_t *r)
{
    ngx_str_t                   token;
    const char                 *why;
    ngx_http_audex_ctx_t       *ctx;
    ngx_http_audex_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_audex_module);

    if (alcf->auth == NGX_HTTP_AUDEX_AUTH_OFF) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_audex_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->user == NULL) {
        if (ngx_http_audex_auth_bearer(r, &token) != NGX_OK) {
            if (alcf->auth == NGX_HTTP_AUDEX_AUTH_OPTIONAL) {
                /* the handler decides, e.g. on a signed link */
                return NGX_DECLINED;
            }

            ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                          "audex: no bearer token");
            return ngx_http_audex_auth_refuse(r, ctx, NGX_HTTP_UNAUTHORIZED,
                                              "token required");
        }

        ctx->user = ngx_http_audex_auth_verify(r, &token, &why);

        if (ctx->user == NULL) {
            return why ? ngx_http_audex_auth_refuse(r, ctx,
                                                    NGX_HTTP_UNAUTHORIZED, why)
                       : NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (alcf->auth == NGX_HTTP_AUDEX_AUTH_ADMIN && !ctx->user->admin) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: user \"%V\" is not an admin", &ctx->user->email);
        return ngx_http_audex_auth_refuse(r, ctx, NGX_HTTP_FORBIDDEN,
                                          "admin only");
    }

    return NGX_OK;
}


/*
 * The caller a token names, or NULL: with *why set (and logged) when the
 * token is refused, without when memory ran out.
 */

static ngx_http_audex_user_t *
ngx_http_audex_auth_verify(ngx_http_request_t *r, ngx_str_t *token,
    const char **why)
{
    audex_jwt_err_e              rc;
    ngx_pool_cleanup_t          *cln;
    audex_jwt_claims_t          *claims;
    ngx_http_audex_user_t       *user;
    ngx_http_audex_main_conf_t  *amcf;

    *why = NULL;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_audex_module);
    claims = NULL;

    rc = audex_jwt_verify(amcf->jwt_key, (char *) token->data, token->len,
                          (int64_t) ngx_time(), (int64_t) amcf->jwt_leeway,
                          (char *) amcf->jwt_issuer.data,
                          (char *) amcf->jwt_audience.data, &claims);

    if (rc != AUDEX_JWT_OK) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: invalid token: %s", audex_jwt_strerror(rc));
        *why = audex_jwt_strerror(rc);
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        audex_jwt_claims_free(claims);
        return NULL;
    }

    cln->handler = ngx_http_audex_auth_claims_cleanup;
    cln->data = claims;

    user = ngx_pcalloc(r->pool, sizeof(ngx_http_audex_user_t));
    if (user == NULL) {
        return NULL;
    }

    user->claims = claims;
    user->user_id.data = (u_char *) audex_jwt_claims_sub(claims);
    user->email.data = (u_char *) audex_jwt_claims_email(claims);
    user->admin = audex_jwt_claims_admin(claims);

    if (user->user_id.data == NULL || user->email.data == NULL) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: invalid token: no sub or email claim");
        *why = "token claims: no sub or email";
        return NULL;
    }

    user->user_id.len = ngx_strlen(user->user_id.data);
    user->email.len = ngx_strlen(user->email.data);

    if (ngx_http_audex_revoked_token(user)) {
        ngx_log_error(NGX_HTTP_AUDEX_LOG_EVENT, r->connection->log, 0,
                      "audex: token of \"%V\" refused: revoked",
                      &user->email);
        *why = "token revoked";
        return NULL;
    }

    return user;
}


static void
ngx_http_audex_auth_claims_cleanup(void *data)
{
    audex_jwt_claims_free(data);
}


static ngx_int_t
ngx_http_audex_auth_bearer(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char  *p, *end;

    if (r->headers_in.authorization == NULL) {
        return NGX_DECLINED;
    }

    p = r->headers_in.authorization->value.data;
    end = p + r->headers_in.authorization->value.len;

    if (end - p < 7 || ngx_strncasecmp(p, (u_char *) "Bearer ", 7) != 0) {
        return NGX_DECLINED;
    }

    for (p += 7; p < end && *p == ' '; p++) { /* void */ }
    while (end > p && end[-1] == ' ') {
        end--;
    }

    if (p == end) {
        return NGX_DECLINED;
    }

    token->data = p;
    token->len = end - p;

    return NGX_OK;
}


/*
 * Records a refusal for the filters below and returns its status to the
 * phase engine, which answers it (after auth_delay for a 401), or lets
 * another access module grant the request under "satisfy any".
 */

static ngx_int_t
ngx_http_audex_auth_refuse(ngx_http_request_t *r, ngx_http_audex_ctx_t *ctx,
    ngx_uint_t status, const char *why)
{
    if (status == NGX_HTTP_UNAUTHORIZED) {
        ctx->challenge = ngx_http_audex_auth_challenge(r);
        if (ctx->challenge == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ctx->refused = status;
    ctx->why = why;

    return status;
}


/*
 * WWW-Authenticate in r->headers_out, where "satisfy any" finds it to
 * drop it when another module grants the request.
 */

static ngx_table_elt_t *
ngx_http_audex_auth_challenge(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "WWW-Authenticate");

    if (r->headers_in.authorization == NULL) {
        ngx_str_set(&h->value, "Bearer realm=\"audex\"");

    } else {
        ngx_str_set(&h->value,
                    "Bearer realm=\"audex\", error=\"invalid_token\"");
    }

    r->headers_out.www_authenticate = h;

    return h;
}


/* The same answer, sent by a content handler. */

ngx_int_t
ngx_http_audex_auth_deny(ngx_http_request_t *r, ngx_uint_t status,
    const char *message)
{
    ngx_int_t  rc;

    if (status == NGX_HTTP_UNAUTHORIZED
        && ngx_http_audex_auth_challenge(r) == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_audex_send_error(r, status, message);
}


/*
 * The precontent phase sees only requests the access phase let through:
 * under "satisfy any" another module may have granted what audex_auth
 * refused, and its refusal and challenge are then dropped (nginx 1.22
 * drops only the last WWW-Authenticate set).
 */

static ngx_int_t
ngx_http_audex_auth_granted(ngx_http_request_t *r)
{
    ngx_http_audex_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_audex_module);

    if (ctx && ctx->refused) {
        ctx->refused = 0;

        if (ctx->challenge) {
            ctx->challenge->hash = 0;
            ctx->challenge = NULL;
        }
    }

    return NGX_DECLINED;
}


/*
 * nginx's special response to our refusal: the status we refused with,
 * set through r->err_status, and the module's context still there (an
 * error_page redirect would have cleared it).  Its HTML page becomes our
 * JSON error.
 */

static ngx_int_t
ngx_http_audex_auth_header_filter(ngx_http_request_t *r)
{
    ngx_buf_t             *b;
    ngx_http_audex_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_audex_module);

    if (ctx == NULL
        || ctx->refused == 0
        || (ngx_uint_t) r->err_status != ctx->refused
        || r->headers_out.status != ctx->refused)
    {
        return ngx_http_next_header_filter(r);
    }

    ctx->refused = 0;

    b = ngx_http_audex_error_buf(r, ctx->why);
    if (b == NULL) {
        return NGX_ERROR;
    }

    r->headers_out.content_type_len = sizeof("application/json") - 1;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = b->last - b->pos;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    if (!r->header_only) {
        ctx->error_body = b;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_audex_auth_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t            out;
    ngx_http_audex_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_audex_module);

    if (ctx == NULL || ctx->error_body == NULL || in == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    /* nginx's page, static memory, is passed over: ours goes instead */

    out.buf = ctx->error_body;
    out.next = NULL;

    ctx->error_body = NULL;

    return ngx_http_next_body_filter(r, &out);
}


static ngx_int_t
ngx_http_audex_user_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_audex_user_t  *user;

    user = ngx_http_audex_auth_user(r);

    if (user == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_HTTP_AUDEX_VAR_ID:
        v->data = user->user_id.data;
        v->len = user->user_id.len;
        break;

    case NGX_HTTP_AUDEX_VAR_EMAIL:
        v->data = user->email.data;
        v->len = user->email.len;
        break;

    default: /* NGX_HTTP_AUDEX_VAR_ADMIN */
        v->data = (u_char *) (user->admin ? "1" : "0");
        v->len = 1;
        break;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_audex_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ssize_t                 n;
    ngx_str_t              *name = (ngx_str_t *) data;
    ngx_str_t               claim;
    ngx_http_audex_user_t  *user;

    user = ngx_http_audex_auth_user(r);

    claim.data = name->data + sizeof("audex_jwt_claim_") - 1;
    claim.len = name->len - (sizeof("audex_jwt_claim_") - 1);

    n = -1;

    if (user) {
        n = audex_jwt_claim_get(user->claims, (char *) claim.data, claim.len,
                                NULL, 0);
    }

    if (n < 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = ngx_pnalloc(r->pool, n + 1);
    if (v->data == NULL) {
        return NGX_ERROR;
    }

    (void) audex_jwt_claim_get(user->claims, (char *) claim.data, claim.len,
                               (char *) v->data, n + 1);
    v->len = n;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
