/*
 * audex workers: GridFS files as audex_source_t and audex_sink_t.
 *
 * Both follow the GridFS specification on <bucket>.files and
 * <bucket>.chunks, so that any driver reads what they write, through the
 * store layer (store/audex_store.h), which gives each chunk an _id
 * derived from (files_id, n):
 *
 * - the source reads chunk n on demand, one lookup by _id per chunk, and
 *   keeps the last one, so an MP4 with its index at the end costs a few
 *   extra lookups, not a copy;
 *
 * - the sink writes 255 KiB chunks as they fill, except chunk 0, which it
 *   keeps until the end so that the converter can rewrite the info frame
 *   near the start; the files document goes last, which is what makes
 *   the file exist, with the SHA-256 of the bytes as stored in
 *   metadata (AUDEX_F_SHA256).  The id is the caller's: an earlier
 *   attempt with the same id is deleted first, so a retry never leaves
 *   two files.
 *
 * Errors from the server or the network are AUDEX_IO_TRANSIENT; a file
 * that is missing is AUDEX_IO_NOT_FOUND; missing or malformed chunks are
 * AUDEX_IO_PERMANENT.
 */

#ifndef _AUDEX_GRIDFS_H_INCLUDED_
#define _AUDEX_GRIDFS_H_INCLUDED_


#include <mongoc/mongoc.h>

#include "io.h"
#include "audex_schema.h"


/*
 * Opens <bucket> file id of database db for reading.  With a pool, a
 * thread with a client of its own from it reads chunk n + 1 while the
 * caller works on chunk n (read-ahead); without, each chunk is read when
 * the caller needs it.  NULL on failure, *status and err say why.
 */
audex_source_t *audex_gridfs_source_open(mongoc_client_t *client,
    mongoc_client_pool_t *pool, const char *db, const char *bucket,
    const bson_oid_t *id, audex_io_status_e *status, char *err,
    size_t errlen);

/*
 * on: the source reads through, and fills, this process's small cache of
 * recent chunks (gridfs.c); for sources that open the same file again
 * and again, as segment jobs do.  A source of another kind is left as it
 * is.
 */
void audex_gridfs_source_share(audex_source_t *src, int on);

/* chunks read from that cache instead of the database, so far */
uint64_t audex_gridfs_cache_hits_total(void);

/* the "filename" of the files document, or "" */
const char *audex_gridfs_source_filename(audex_source_t *src);

/*
 * Creates <bucket> file id; filename and metadata (may be NULL) go into
 * the files document.  NULL on failure, *status and err say why.
 */
audex_sink_t *audex_gridfs_sink_open(mongoc_client_t *client,
    const char *db, const char *bucket, const bson_oid_t *id,
    const char *filename, const bson_t *metadata, audex_io_status_e *status,
    char *err, size_t errlen);

/* the unique files_id + n index drivers expect on <bucket>.chunks */
int audex_gridfs_ensure_indexes(mongoc_client_t *client, const char *db,
    const char *bucket, char *err, size_t errlen);


#endif /* _AUDEX_GRIDFS_H_INCLUDED_ */
