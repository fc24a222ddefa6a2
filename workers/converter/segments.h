/*
 * audex-converter: segment jobs, see segments.c.
 */

#ifndef _AUDEX_SEGMENTS_H_INCLUDED_
#define _AUDEX_SEGMENTS_H_INCLUDED_


#include <mongoc/mongoc.h>

#include "convert.h"
#include "io.h"
#include "redis_stream.h"


/* what the segment threads and the coordinators of one converter share */
typedef struct {
    const char              *stream;        /* <video stream>.segments */
    const char              *group;
    const char              *db;
    const char              *consumer;      /* name prefix */
    int                      claim_idle_ms;
    int                      max_deliveries;
    double                   segment;       /* seconds */
    mongoc_client_pool_t    *pool;
} audex_segments_conf_t;


/* a long job, cut into segment jobs by the converter that took it */
typedef struct {
    audex_redis_t           *redis;
    mongoc_client_t         *mongo;
    const char              *job_id;
    const bson_oid_t        *video_fid;
    const char              *filename;
    const char              *title;
    int                      bitrate;       /* > 0: CBR */
    int                      quality;       /* >= 0: VBR */

    /* keeps the job's claim alive; nonzero cancels */
    int                    (*progress)(void *data, double done);
    void                    *progress_data;
} audex_segments_job_t;


/*
 * Starts threads segment threads (0 or -1); audex_segments_stop() waits
 * for them once audex_stop is set.
 */
int audex_segments_start(const audex_segments_conf_t *conf, int threads,
    const char *redis_url);
void audex_segments_stop(void);

/*
 * Converts a job whose input info says is segmentable: publishes its
 * segments, waits for converters anywhere to encode them, joins them
 * into sink (ID3 tag first).  0, or -1 with err set; res as
 * audex_convert() fills it.
 */
int audex_segments_convert(const audex_segments_job_t *sj,
    const audex_convert_probe_t *info, audex_sink_t *sink,
    audex_convert_result_t *res, audex_convert_error_t *err);

/* segments this converter encoded, by result: ok, failed, retry */
void audex_segments_counts(uint64_t *ok, uint64_t *failed, uint64_t *retry);


#endif /* _AUDEX_SEGMENTS_H_INCLUDED_ */
