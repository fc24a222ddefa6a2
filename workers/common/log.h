/*
 * audex workers: logging.
 *
 * One function writes one line per call to stderr:
 *
 *   2025-11-24T09:52:03.123Z 4242 info job=66b1... converted 3.2 MiB
 *
 * The line is formatted into a local buffer and written with a single
 * write(2), so lines from several job threads never interleave.
 */

#ifndef _AUDEX_LOG_H_INCLUDED_
#define _AUDEX_LOG_H_INCLUDED_


#include <stdarg.h>


typedef enum {
    AUDEX_LOG_ERROR = 0,
    AUDEX_LOG_WARN,
    AUDEX_LOG_INFO,
    AUDEX_LOG_DEBUG
} audex_log_level_e;


/* the most verbose level that is still written; AUDEX_LOG_INFO by default */
extern volatile int  audex_log_level;

/*
 * the job a thread is working on: used when audex_log() gets a NULL job
 * id, so that library callbacks (FFmpeg, LAME) log with the right job
 */
extern __thread const char  *audex_log_job;


void audex_log(int level, const char *job_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void audex_log_va(int level, const char *job_id, const char *fmt,
    va_list args);

/* "error", "warn", "info", "debug" -> level, or -1 */
int audex_log_level_parse(const char *name);


#endif /* _AUDEX_LOG_H_INCLUDED_ */
