/*
 * audex workers: logging, see log.h.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"


#define AUDEX_LOG_LINE_MAX  2048


volatile int           audex_log_level = AUDEX_LOG_INFO;
__thread const char   *audex_log_job;

static const char  *audex_log_names[] = { "error", "warn", "info", "debug" };


void
audex_log(int level, const char *job_id, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    audex_log_va(level, job_id, fmt, args);
    va_end(args);
}


void
audex_log_va(int level, const char *job_id, const char *fmt, va_list args)
{
    int             saved_errno;
    char            line[AUDEX_LOG_LINE_MAX];
    size_t          len;
    ssize_t         n;
    struct tm       tm;
    struct timeval  tv;

    if (level > audex_log_level) {
        return;
    }

    if (level < AUDEX_LOG_ERROR) {
        level = AUDEX_LOG_ERROR;
    }

    /* callers may log right after a failed call and then read errno */
    saved_errno = errno;

    if (job_id == NULL) {
        job_id = audex_log_job;
    }

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);

    len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    len += snprintf(line + len, sizeof(line) - len, ".%03dZ %d %s job=%s ",
                    (int) (tv.tv_usec / 1000), (int) getpid(),
                    audex_log_names[level],
                    (job_id && job_id[0]) ? job_id : "-");

    if (len < sizeof(line)) {
        n = vsnprintf(line + len, sizeof(line) - len, fmt, args);
        if (n > 0) {
            len += n;
        }
    }

    /* keep room for the newline even when the message was cut */
    if (len > sizeof(line) - 1) {
        len = sizeof(line) - 1;
    }

    /* one record is one line: a newline inside a message would forge one */
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '\n' || line[i] == '\r') {
            line[i] = ' ';
        }
    }

    line[len++] = '\n';

    do {
        n = write(STDERR_FILENO, line, len);
    } while (n < 0 && errno == EINTR);

    errno = saved_errno;
}


int
audex_log_level_parse(const char *name)
{
    size_t  i;

    for (i = 0; i < sizeof(audex_log_names) / sizeof(audex_log_names[0]);
         i++)
    {
        if (strcasecmp(name, audex_log_names[i]) == 0) {
            return (int) i;
        }
    }

    if (strcasecmp(name, "warning") == 0) {
        return AUDEX_LOG_WARN;
    }

    return -1;
}
