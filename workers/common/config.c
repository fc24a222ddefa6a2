/*
 * audex workers: configuration, see config.h.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"


static int audex_conf_set(audex_conf_t *c, const char *v, const char *from,
    char *err, size_t errlen);
static audex_conf_t *audex_conf_find(audex_conf_t *table, const char *name,
    size_t len);


int
audex_conf_load(audex_conf_t *table, int argc, char **argv, int *rest,
    char *err, size_t errlen)
{
    int            i, n;
    char          *arg, *eq;
    const char    *v;
    audex_conf_t  *c;

    /* defaults, then the environment */
    for (c = table; c->name; c++) {
        if (audex_conf_set(c, c->dflt ? c->dflt : "", "default", err,
                           errlen)
            != 0)
        {
            return -1;
        }

        v = c->env ? getenv(c->env) : NULL;

        if (v && v[0] && audex_conf_set(c, v, c->env, err, errlen) != 0) {
            return -1;
        }
    }

    /* then the flags; argv[0] stays where it is */
    n = 1;

    for (i = 1; i < argc; i++) {
        arg = argv[i];

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            return 1;
        }

        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            argv[n++] = arg;
            continue;
        }

        eq = strchr(arg, '=');
        c = audex_conf_find(table, arg + 2,
                            eq ? (size_t) (eq - arg - 2) : strlen(arg + 2));

        if (c == NULL) {
            snprintf(err, errlen, "unknown option \"%s\"", arg);
            return -1;
        }

        if (eq) {
            v = eq + 1;

        } else if (i + 1 < argc) {
            v = argv[++i];

        } else {
            snprintf(err, errlen, "option \"%s\" needs a value", arg);
            return -1;
        }

        if (audex_conf_set(c, v, "flag", err, errlen) != 0) {
            return -1;
        }
    }

    if (rest) {
        *rest = n - 1;
    }

    return 0;
}


static int
audex_conf_set(audex_conf_t *c, const char *v, const char *from, char *err,
    size_t errlen)
{
    long    l;
    char   *end, *s;

    switch (c->type) {

    case AUDEX_CONF_INT:
        errno = 0;
        l = strtol(v, &end, 10);

        if (v[0] == '\0' && c->dflt == NULL) {
            l = 0;

        } else if (errno != 0 || end == v || *end != '\0' || l < c->min
                   || l > c->max)
        {
            snprintf(err, errlen, "%s: \"%s\" (from %s) is not a number "
                     "from %d to %d", c->name, v, from, c->min, c->max);
            return -1;
        }

        *(int *) c->value = (int) l;
        return 0;

    default:
        s = strdup(v);
        if (s == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }

        free(*(char **) c->value);
        *(char **) c->value = s;
        return 0;
    }
}


static audex_conf_t *
audex_conf_find(audex_conf_t *table, const char *name, size_t len)
{
    audex_conf_t  *c;

    for (c = table; c->name; c++) {
        if (strlen(c->name) == len && strncmp(c->name, name, len) == 0) {
            return c;
        }
    }

    return NULL;
}


void
audex_conf_usage(FILE *f, const char *synopsis, const audex_conf_t *table)
{
    char                 flag[64];
    const audex_conf_t  *c;

    fprintf(f, "%s\n\nsettings (default < environment < flag):\n\n",
            synopsis);

    for (c = table; c->name; c++) {
        snprintf(flag, sizeof(flag), "--%s %s", c->name,
                 c->type == AUDEX_CONF_INT ? "N" : "S");

        fprintf(f, "  %-26s %s\n", flag, c->help);
        fprintf(f, "  %-26s env %s, default \"%s\"", "",
                c->env ? c->env : "-", c->dflt ? c->dflt : "");

        if (c->type == AUDEX_CONF_INT) {
            fprintf(f, ", %d .. %d", c->min, c->max);
        }

        fputc('\n', f);
    }
}


audex_conf_t *
audex_conf_get(audex_conf_t *table, const char *name)
{
    return audex_conf_find(table, name, strlen(name));
}


int
audex_conf_derive(char **value, const char *fmt, const char *arg)
{
    int    n;
    char   buf[1024], *s;

    n = snprintf(buf, sizeof(buf), fmt, arg);
    if (n < 0 || (size_t) n >= sizeof(buf)) {
        return -1;
    }

    s = strdup(buf);
    if (s == NULL) {
        return -1;
    }

    free(*value);
    *value = s;

    return 0;
}


void
audex_conf_free(audex_conf_t *table)
{
    audex_conf_t  *c;

    for (c = table; c->name; c++) {
        if (c->type == AUDEX_CONF_STRING) {
            free(*(char **) c->value);
            *(char **) c->value = NULL;
        }
    }
}
