/*
 * audex: the module's directives, configuration and process hooks.
 * The handlers live in one file per concern (see ngx_http_audex_module.h).
 */


#include "ngx_http_audex_module.h"


static void *ngx_http_audex_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_audex_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_int_t ngx_http_audex_init_module(ngx_cycle_t *cycle);
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

    { ngx_string("audex_healthz"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_audex_health,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_audex_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_audex_create_main_conf,       /* create main configuration */
    ngx_http_audex_init_main_conf,         /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
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
     */

    amcf->backend_timeout = NGX_CONF_UNSET_MSEC;

    return amcf;
}


static char *
ngx_http_audex_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_audex_main_conf_t *amcf = conf;

    ngx_conf_init_msec_value(amcf->backend_timeout, 5000);

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
    if (amcf == NULL) {
        return NGX_OK;
    }

    return ngx_http_audex_mongo_init_process(cycle, amcf);
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
}
