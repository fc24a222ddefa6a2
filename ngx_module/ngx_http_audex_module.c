/*
 * audex: the module's directives, configuration and process hooks.
 * The handlers live in one file per concern (see ngx_http_audex_module.h).
 */


#include "ngx_http_audex_module.h"


static ngx_int_t ngx_http_audex_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_audex_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_audex_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_audex_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_audex_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_audex_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_audex_init_module(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_audex_auth_modes[] = {
    { ngx_string("off"), NGX_HTTP_AUDEX_AUTH_OFF },
    { ngx_string("on"), NGX_HTTP_AUDEX_AUTH_ON },
    { ngx_string("admin"), NGX_HTTP_AUDEX_AUTH_ADMIN },
    { ngx_string("optional"), NGX_HTTP_AUDEX_AUTH_OPTIONAL },
    { ngx_null_string, 0 }
};
static ngx_int_t ngx_http_audex_init_process(ngx_cycle_t *cycle);
static void ngx_http_audex_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_audex_commands[] = {

    { ngx_string("audex_mongodb_uri"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_audex_mongo_set_uri,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_audex_main_conf_t, mongodb_uri),
      NULL },

    { ngx_string("audex_redis_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_audex_redis_set_url,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_audex_main_conf_t, redis_url),
      NULL },

    { ngx_string("audex_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_audex_main_conf_t, thread_pool_name),
      NULL },

    { ngx_string("audex_backend_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_audex_main_conf_t, backend_timeout),
      NULL },

    { ngx_string("audex_jwt_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_audex_jwt_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("audex_jwt_lifetime"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_audex_main_conf_t, jwt_lifetime),
      NULL },

    { ngx_string("audex_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_audex_main_conf_t, jwt_leeway),
      NULL },

    { ngx_string("audex_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_audex_main_conf_t, jwt_issuer),
      NULL },

    { ngx_string("audex_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_audex_main_conf_t, jwt_audience),
      NULL },

    { ngx_string("audex_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF
                        |NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_audex_loc_conf_t, auth),
      &ngx_http_audex_auth_modes },

    { ngx_string("audex_login"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_audex_login,
      0,
      0,
      NULL },

    { ngx_string("audex_logout"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_audex_logout,
      0,
      0,
      NULL },

    { ngx_string("audex_link_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_audex_link_secret,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("audex_link_lifetime"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_audex_main_conf_t, link_lifetime),
      NULL },

    { ngx_string("audex_download"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_audex_download,
      0,
      0,
      NULL },

    { ngx_string("audex_jobs"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_audex_jobs,
      0,
      0,
      NULL },

    { ngx_string("audex_jobs_stream"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_audex_main_conf_t, jobs_stream),
      NULL },

    { ngx_string("audex_jobs_group"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_audex_main_conf_t, jobs_group),
      NULL },

    { ngx_string("audex_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_audex_metrics,
      0,
      0,
      NULL },

    { ngx_string("audex_upload"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_audex_upload,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("audex_tus"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_audex_tus,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("audex_tus_expires"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_audex_loc_conf_t, tus_expires),
      NULL },

    { ngx_string("audex_upload_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_audex_loc_conf_t, upload_max_size),
      NULL },

    { ngx_string("audex_user_max_jobs"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_audex_loc_conf_t, user_max_jobs),
      NULL },

    { ngx_string("audex_user_max_bytes"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_audex_loc_conf_t, user_max_bytes),
      NULL },

    { ngx_string("audex_healthz"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_audex_health,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_audex_module_ctx = {
    ngx_http_audex_preconfiguration,       /* preconfiguration */
    ngx_http_audex_postconfiguration,      /* postconfiguration */

    ngx_http_audex_create_main_conf,       /* create main configuration */
    ngx_http_audex_init_main_conf,         /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_audex_create_loc_conf,        /* create location configuration */
    ngx_http_audex_merge_loc_conf          /* merge location configuration */
};


ngx_module_t  ngx_http_audex_module = {
    NGX_MODULE_V1,
    &ngx_http_audex_module_ctx,            /* module context */
    ngx_http_audex_commands,               /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_audex_init_module,            /* init module */
    ngx_http_audex_init_process,           /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_audex_exit_process,           /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_audex_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_audex_auth_add_variables(cf);
}


static ngx_int_t
ngx_http_audex_postconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_audex_auth_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_audex_metrics_init(cf);
}


static void *
ngx_http_audex_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_audex_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_audex_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     amcf->mongodb_uri = { 0, NULL };
     *     amcf->redis_url = { 0, NULL };
     *     amcf->thread_pool_name = { 0, NULL };
     *     amcf->mongo_uri = NULL;
     *     amcf->mongo_pool = NULL;
     *     amcf->jwt_key = NULL;
     *     amcf->jwt_issuer = { 0, NULL };
     *     amcf->jwt_audience = { 0, NULL };
     */

    amcf->backend_timeout = NGX_CONF_UNSET_MSEC;
    amcf->jwt_lifetime = NGX_CONF_UNSET;
    amcf->jwt_leeway = NGX_CONF_UNSET;
    amcf->link_lifetime = NGX_CONF_UNSET;

    return amcf;
}


static char *
ngx_http_audex_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_audex_main_conf_t *amcf = conf;

    ngx_conf_init_msec_value(amcf->backend_timeout, 5000);
    ngx_conf_init_value(amcf->jwt_lifetime, 24 * 60 * 60);
    ngx_conf_init_value(amcf->jwt_leeway, 30);
    ngx_conf_init_value(amcf->link_lifetime, 7 * 24 * 60 * 60);

    if (amcf->jwt_lifetime <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "audex_jwt_lifetime must be positive");
        return NGX_CONF_ERROR;
    }

    if (amcf->jobs_stream.len == 0) {
        ngx_str_set(&amcf->jobs_stream, AUDEX_STREAM_VIDEO);
    }

    if (amcf->jobs_group.len == 0) {
        ngx_str_set(&amcf->jobs_group, AUDEX_GROUP_CONVERTER);
    }

    if (amcf->thread_pool_name.len == 0) {
        /* nginx creates the "default" pool without a thread_pool line */
        ngx_str_set(&amcf->thread_pool_name, "default");
    }

    amcf->thread_pool = ngx_thread_pool_add(cf, &amcf->thread_pool_name);
    if (amcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_audex_mongo_init_conf(cf, amcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_audex_redis_init_conf(cf, amcf);
}


static void *
ngx_http_audex_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_audex_loc_conf_t  *alcf;

    alcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_audex_loc_conf_t));
    if (alcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     alcf->handler_name = NULL;
     */

    alcf->auth = NGX_CONF_UNSET_UINT;
    alcf->handler_id = NGX_CONF_UNSET_UINT;
    alcf->upload_max_size = NGX_CONF_UNSET;
    alcf->tus_expires = NGX_CONF_UNSET;
    alcf->user_max_jobs = NGX_CONF_UNSET;
    alcf->user_max_bytes = NGX_CONF_UNSET;

    return alcf;
}


static char *
ngx_http_audex_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_audex_loc_conf_t *prev = parent;
    ngx_http_audex_loc_conf_t *conf = child;

    ngx_http_audex_main_conf_t  *amcf;

    ngx_conf_merge_uint_value(conf->auth, prev->auth,
                              NGX_HTTP_AUDEX_AUTH_OFF);
    ngx_conf_merge_off_value(conf->upload_max_size, prev->upload_max_size,
                             (off_t) 2 * 1024 * 1024 * 1024);
    ngx_conf_merge_value(conf->user_max_jobs, prev->user_max_jobs, 0);
    ngx_conf_merge_off_value(conf->user_max_bytes, prev->user_max_bytes, 0);
    ngx_conf_merge_sec_value(conf->tus_expires, prev->tus_expires,
                             AUDEX_UPLOAD_GRACE);

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_audex_module);

    if (conf->auth != NGX_HTTP_AUDEX_AUTH_OFF && amcf->jwt_key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "audex_auth needs audex_jwt_key at http level");
        return NGX_CONF_ERROR;
    }

    /*
     * What a handler needs is checked here, once the whole http block,
     * audex_auth inherited from server or http included, is known.
     * Without audex_auth no request has a caller: a handler that acts
     * for one would answer 401 to every valid token.
     */

    if ((conf->handler_id == NGX_HTTP_AUDEX_H_UPLOAD
         || conf->handler_id == NGX_HTTP_AUDEX_H_TUS
         || conf->handler_id == NGX_HTTP_AUDEX_H_JOBS
         || conf->handler_id == NGX_HTTP_AUDEX_H_LOGOUT)
        && conf->auth == NGX_HTTP_AUDEX_AUTH_OFF)
    {
        return ngx_http_audex_conf_needs(cf, conf, "\"audex_auth on\"",
                                         "it acts for the token's user");
    }

    switch (conf->handler_id) {

    case NGX_HTTP_AUDEX_H_UPLOAD:
        return ngx_http_audex_upload_merge(cf, conf);

    case NGX_HTTP_AUDEX_H_TUS:
        return ngx_http_audex_tus_merge(cf, conf);

    case NGX_HTTP_AUDEX_H_JOBS:
        return ngx_http_audex_jobs_merge(cf, conf);

    case NGX_HTTP_AUDEX_H_DOWNLOAD:
        return ngx_http_audex_download_merge(cf, conf);

    default:
        return NGX_CONF_OK;
    }
}


/*
 * Refuses a location's handler at nginx -t for what it lacks.  Merging
 * runs after the http block was read, so the message names the location:
 * the line nginx adds to it is not the location's.
 */

char *
ngx_http_audex_conf_needs(ngx_conf_t *cf, ngx_http_audex_loc_conf_t *alcf,
    const char *what, const char *why)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "%V in location \"%V\" needs %s: %s",
                       alcf->handler_name, &clcf->name, what, why);

    return NGX_CONF_ERROR;
}


/*
 * Makes handler the location's content handler, labelled id in metrics.
 * A location has one: a second audex handler would silently replace the
 * first, so it is refused with both names.
 */

char *
ngx_http_audex_set_handler(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_handler_pt handler, ngx_uint_t id)
{
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_audex_loc_conf_t  *alcf;

    alcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_audex_module);

    if (alcf->handler_id == id) {
        return "is duplicate";
    }

    if (alcf->handler_id != NGX_CONF_UNSET_UINT) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" and \"%V\" in one location: "
                           "a location has one content handler",
                           alcf->handler_name, &cmd->name);
        return NGX_CONF_ERROR;
    }

    alcf->handler_id = id;
    alcf->handler_name = &cmd->name;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = handler;

    return NGX_CONF_OK;
}


/* The module's context of the main request, made on first use. */

ngx_http_audex_ctx_t *
ngx_http_audex_get_ctx(ngx_http_request_t *r)
{
    ngx_http_audex_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_audex_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->main->pool, sizeof(ngx_http_audex_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_http_set_ctx(r->main, ctx, ngx_http_audex_module);
    }

    return ctx;
}


static ngx_int_t
ngx_http_audex_init_module(ngx_cycle_t *cycle)
{
    /*
     * Once per process, before workers fork; the driver's own state is
     * fork-safe, its clients and pools are not and are made per worker.
     */
    mongoc_init();

    return NGX_OK;
}


static ngx_int_t
ngx_http_audex_init_process(ngx_cycle_t *cycle)
{
    ngx_http_audex_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_audex_module);

    /* the cache manager and loader serve no requests */
    if (amcf == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    if (ngx_http_audex_mongo_init_process(cycle, amcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_audex_revoke_init_process(cycle, amcf);
}


static void
ngx_http_audex_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_audex_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_audex_module);
    if (amcf == NULL) {
        return;
    }

    ngx_http_audex_mongo_exit_process(amcf);
    ngx_http_audex_revoke_exit_process();
}
