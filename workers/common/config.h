/*
 * audex workers: configuration from one declarative table.
 *
 * Each setting has a default, may be overridden by an environment
 * variable, and that by a command line flag (--name value or
 * --name=value).  --help prints the table.
 *
 *     static int    jobs;
 *     static char  *queue;
 *
 *     static audex_conf_t  conf[] = {
 *         { "jobs", "CONVERTER_JOBS", AUDEX_CONF_INT, "1", 1, 64, &jobs,
 *           "conversions running at once" },
 *         { "video-queue", "VIDEO_QUEUE", AUDEX_CONF_STRING, "video", 0, 0,
 *           &queue, "Redis stream of conversion jobs" },
 *         { NULL }
 *     };
 */

#ifndef _AUDEX_CONFIG_H_INCLUDED_
#define _AUDEX_CONFIG_H_INCLUDED_


#include <stddef.h>
#include <stdio.h>


typedef enum {
    AUDEX_CONF_STRING = 0,      /* value: char **, strdup()ed */
    AUDEX_CONF_INT              /* value: int *, within min .. max */
} audex_conf_type_e;


typedef struct {
    const char         *name;
    const char         *env;        /* NULL: flag only */
    audex_conf_type_e   type;
    const char         *dflt;       /* NULL: empty string or 0 */
    int                 min;
    int                 max;
    void               *value;
    const char         *help;
} audex_conf_t;


/*
 * Fills every value of the table, which ends with a { NULL } entry.
 * Arguments that are not flags are left in argv, compacted, and their
 * number returned in *rest.  Returns 0, 1 when --help was asked for, or
 * -1 with err filled.
 */
int audex_conf_load(audex_conf_t *table, int argc, char **argv, int *rest,
    char *err, size_t errlen);

/* the table as --help shows it */
void audex_conf_usage(FILE *f, const char *synopsis,
    const audex_conf_t *table);

/* the entry of that name, or NULL */
audex_conf_t *audex_conf_get(audex_conf_t *table, const char *name);

/*
 * A string value derived from another setting: *value becomes fmt with
 * arg, such as "%s:dead" with a stream name.  0, or -1 when too long or
 * out of memory.
 */
int audex_conf_derive(char **value, const char *fmt, const char *arg);

/* frees the strings audex_conf_load() made */
void audex_conf_free(audex_conf_t *table);


#endif /* _AUDEX_CONFIG_H_INCLUDED_ */
