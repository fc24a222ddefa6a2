/*
 * audex: the contract between the processes.
 *
 * Every name the nginx module, the workers and the tests share: the
 * database's collections and GridFS buckets, the GridFS chunk layout and
 * how a chunk's _id is derived.  Code names these constants, never the
 * literals; t/lib reads the same values from here.
 */

#ifndef _AUDEX_SCHEMA_H_INCLUDED_
#define _AUDEX_SCHEMA_H_INCLUDED_


/* GridFS buckets: uploaded videos, converted MP3s */
#define AUDEX_BUCKET_VIDEOS        "videos"
#define AUDEX_BUCKET_MP3S          "mp3s"

#define AUDEX_VIDEOS_FILES         AUDEX_BUCKET_VIDEOS ".files"
#define AUDEX_VIDEOS_CHUNKS        AUDEX_BUCKET_VIDEOS ".chunks"
#define AUDEX_MP3S_FILES           AUDEX_BUCKET_MP3S ".files"
#define AUDEX_MP3S_CHUNKS          AUDEX_BUCKET_MP3S ".chunks"

/* collections */
#define AUDEX_COLL_JOBS            "jobs"
#define AUDEX_COLL_USERS           "users"

/* the chunk size audex writes (GridFS's default); readers take any */
#define AUDEX_GRIDFS_CHUNK         (255 * 1024)

/* a files document claiming bigger chunks than this is not trusted */
#define AUDEX_GRIDFS_CHUNK_MAX     (16 * 1024 * 1024)

/* the unique index the GridFS specification asks writers to make */
#define AUDEX_GRIDFS_CHUNK_INDEX   "files_id_1_n_1"

/*
 * A chunk audex writes has the _id: the first 12 bytes of
 * SHA-256(files_id's 12 bytes || n as a 4-byte big-endian integer), as
 * an ObjectId.  Reading chunk n is then a lookup by _id, which every
 * MongoDB-wire server indexes (FerretDB's SQLite backend indexes nothing
 * else), and writing it again is idempotent.  Files written by other
 * tools have other chunk ids; readers fall back to {files_id, n}.
 */
#define AUDEX_CHUNK_ID_HASH        "sha256(files_id || be32(n))[0:12]"

/* Redis streams: jobs for converters, results for the notifier */
#define AUDEX_STREAM_VIDEO         "video"
#define AUDEX_STREAM_MP3           "mp3"


#endif /* _AUDEX_SCHEMA_H_INCLUDED_ */
