/*
 * audex-converter: the sweeper of unfinished uploads (sweep.c).
 */

#ifndef _AUDEX_SWEEP_H_INCLUDED_
#define _AUDEX_SWEEP_H_INCLUDED_


#include <stdint.h>

#include <mongoc/mongoc.h>

#include "audex_store.h"
#include "redis_stream.h"


/*
 * When this consumer takes the cluster's sweep lock for every seconds:
 * removes the files begun more than grace seconds ago and never
 * completed, adding to swept how many of each kind.  0 (another
 * converter sweeping this period included), -1 on a database error
 * (logged; swept holds what was removed before it).
 */
int audex_sweep(audex_redis_t *redis, mongoc_client_pool_t *pool,
    const char *db_name, const char *consumer, int every, int grace,
    audex_store_swept_t *swept);


#endif /* _AUDEX_SWEEP_H_INCLUDED_ */
