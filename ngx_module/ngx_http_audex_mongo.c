/*
 * MongoDB: the URI is checked when the configuration is read; each
 * worker process makes its own client pool after fork, and only pool
 * threads take clients from it (mongoc_client_pool_pop may block).
 */


#include "ngx_http_audex_module.h"


#define NGX_HTTP_AUDEX_MONGO_DEFAULT_URI  "mongodb://127.0.0.1:27017/audex"
#define NGX_HTTP_AUDEX_MONGO_DEFAULT_DB   "audex"


static void ngx_http_audex_mongo_cleanup_uri(void *data);
static ngx_int_t ngx_http_audex_mongo_parse(ngx_conf_t *cf,
    ngx_http_audex_main_conf_t *amcf, ngx_str_t *value);


char *
ngx_http_audex_mongo_set_uri(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_audex_main_conf_t *amcf = conf;

    ngx_str_t  *value;

    if (amcf->mongo_uri) {
        return "is duplicate";
    }

    value = cf->args->elts;
    amcf->mongodb_uri = value[1];

    if (ngx_http_audex_mongo_parse(cf, amcf, &value[1]) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_audex_mongo_init_conf(ngx_conf_t *cf,
    ngx_http_audex_main_conf_t *amcf)
{
    int32_t      ms;
    ngx_uint_t   i;
    ngx_str_t    def = ngx_string(NGX_HTTP_AUDEX_MONGO_DEFAULT_URI);
    const char  *option;
    const char  *options[] = {
        MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
        MONGOC_URI_CONNECTTIMEOUTMS,
        MONGOC_URI_SOCKETTIMEOUTMS,
        NULL
    };

    if (amcf->mongo_uri == NULL) {
        amcf->mongodb_uri = def;

        if (ngx_http_audex_mongo_parse(cf, amcf, &def) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    /*
     * A pool thread waiting on a dead server is a request waiting too:
     * bound every wait by audex_backend_timeout unless the URI says
     * otherwise.
     */

    ms = (int32_t) ngx_min(amcf->backend_timeout, (ngx_msec_t) INT32_MAX);

    for (i = 0; options[i]; i++) {
        option = options[i];

        if (!mongoc_uri_has_option(amcf->mongo_uri, option)) {
            mongoc_uri_set_option_as_int32(amcf->mongo_uri, option, ms);
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_audex_mongo_parse(ngx_conf_t *cf, ngx_http_audex_main_conf_t *amcf,
    ngx_str_t *value)
{
    char                *s;
    bson_error_t         error;
    ngx_pool_cleanup_t  *cln;

    /* the driver's own global state; idempotent */
    mongoc_init();

    s = (char *) ngx_pnalloc(cf->pool, value->len + 1);
    if (s == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s, value->data, value->len);
    s[value->len] = '\0';

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    amcf->mongo_uri = mongoc_uri_new_with_error(s, &error);
    if (amcf->mongo_uri == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "audex_mongodb_uri: invalid URI \"%V\": %s",
                           value, error.message);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_audex_mongo_cleanup_uri;
    cln->data = amcf->mongo_uri;

    amcf->mongo_db = mongoc_uri_get_database(amcf->mongo_uri);
    if (amcf->mongo_db == NULL) {
        amcf->mongo_db = NGX_HTTP_AUDEX_MONGO_DEFAULT_DB;
    }

    return NGX_OK;
}


static void
ngx_http_audex_mongo_cleanup_uri(void *data)
{
    mongoc_uri_destroy(data);
}


ngx_int_t
ngx_http_audex_mongo_init_process(ngx_cycle_t *cycle,
    ngx_http_audex_main_conf_t *amcf)
{
    bson_error_t  error;

    amcf->mongo_pool = mongoc_client_pool_new_with_error(amcf->mongo_uri,
                                                         &error);
    if (amcf->mongo_pool == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "audex: cannot create the MongoDB client pool: %s",
                      error.message);
        return NGX_ERROR;
    }

    mongoc_client_pool_set_error_api(amcf->mongo_pool,
                                     MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(amcf->mongo_pool, "audex-nginx");

    return NGX_OK;
}


void
ngx_http_audex_mongo_exit_process(ngx_http_audex_main_conf_t *amcf)
{
    /* the thread pools are gone by now: no thread holds a client */

    if (amcf->mongo_pool) {
        mongoc_client_pool_destroy(amcf->mongo_pool);
        amcf->mongo_pool = NULL;
    }
}


mongoc_client_t *
ngx_http_audex_mongo_pop(ngx_http_audex_main_conf_t *amcf)
{
    return mongoc_client_pool_pop(amcf->mongo_pool);
}


void
ngx_http_audex_mongo_push(ngx_http_audex_main_conf_t *amcf,
    mongoc_client_t *client)
{
    if (client) {
        mongoc_client_pool_push(amcf->mongo_pool, client);
    }
}
