/*
 * audex: the contract between the processes.
 *
 * Every name the nginx module and the workers share: the database's
 * collections and GridFS buckets, the GridFS chunk layout and how a
 * chunk's _id is derived (store/ derives it), streams, groups, job fields
 * and states, the MP3 rule.  C code names these constants, never the
 * literals; the tests spell the values out, checking the contract from
 * outside as another client would.
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

/*
 * Files being written (an upload), one document each until the file is
 * complete or removed: {_id: the file's id, bucket, active_at (its
 * last sign of life: set when it begins, again every few chunks)}.  What a
 * failure left behind (chunks without a files document) is found here by
 * the converters' sweeper, after AUDEX_UPLOAD_GRACE seconds by default.
 */
#define AUDEX_COLL_UPLOADS         "uploads"
#define AUDEX_F_BUCKET             "bucket"
#define AUDEX_F_ACTIVE_AT          "active_at"
#define AUDEX_UPLOAD_GRACE         3600

/*
 * Resumable uploads (tus, ngx_http_audex_tus.c): one document each in
 * AUDEX_COLL_TUS, whose _id is the id of the GridFS file being written
 * in AUDEX_BUCKET_VIDEOS: {_id, owner_id, owner_email, filename,
 * bitrate or quality, length, offset, tail, sha256_state, expires_at,
 * lock, lock_until, unverified, job_id, created_at}.  offset counts what
 * is durable: the chunks stored (offset / AUDEX_GRIDFS_CHUNK of them)
 * and tail, the bytes of the next chunk so far (fewer than a chunk), in
 * the document itself.  A PATCH holds the upload by setting lock (its
 * own random token) and lock_until (a date) under the condition that the
 * offset is the client's and any earlier lock expired; it renews lock_until as
 * chunks are stored or by a timer, every AUDEX_TUS_LEASE / 2 seconds, and
 * releases it (lock_until 0) when it ends.  The offset is advanced only
 * every few chunks: whoever finds the upload with no live lease (HEAD,
 * PATCH) advances it over the full chunks found past it (their _ids are
 * derived), unless unverified is true: a PATCH with a checksum stored
 * chunks past the offset that may not be the upload's.  job_id is set
 * once the file is complete and its job queued.  The file is recorded in
 * AUDEX_COLL_UPLOADS too, its active_at renewed by every PATCH.
 * sha256_state is the SHA-256 state (lib/audex_sha256.h) after the stored
 * chunks, saved with the offset, so that completion hashes only the last
 * chunk; an upload without one is hashed by reading its chunks back.
 */
#define AUDEX_COLL_TUS             "tus"
#define AUDEX_F_TUS_LENGTH         "length"
#define AUDEX_F_TUS_OFFSET         "offset"
#define AUDEX_F_TUS_TAIL           "tail"
#define AUDEX_F_TUS_EXPIRES_AT     "expires_at"
#define AUDEX_F_TUS_LOCK           "lock"
#define AUDEX_F_TUS_LOCK_UNTIL     "lock_until"
#define AUDEX_F_TUS_SHA256         "sha256_state"
#define AUDEX_F_TUS_UNVERIFIED      "unverified"
#define AUDEX_TUS_LEASE            6

/* the sweeper's Redis lock: one converter at a time sweeps */
#define AUDEX_LOCK_SWEEP           "audex:lock:sweep"

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
 * audex_store_chunk_id() computes it.
 */

/*
 * In the "metadata" of a files document audex writes, in both buckets:
 * the SHA-256 of the file's bytes, 64 lowercase hex digits.  The upload
 * computes it as the body arrives, the converter's GridFS sink when it
 * finishes the MP3; /download makes its strong ETag from it.  Files
 * written before it existed, or by other tools, have none.
 */
#define AUDEX_F_SHA256             "sha256"
#define AUDEX_SHA256_HEX_LEN       64

/* Redis streams: jobs for converters, results for the notifier */
#define AUDEX_STREAM_VIDEO         "video"
#define AUDEX_STREAM_MP3           "mp3"

/* a stream's dead letters go to "<stream>" AUDEX_STREAM_DEAD_SUFFIX */
#define AUDEX_STREAM_DEAD_SUFFIX   ":dead"

/*
 * Segment jobs (converters with --distribute, workers/converter/
 * segments.c): a long job's segments are entries on "<video stream>"
 * AUDEX_STREAM_SEGMENTS_SUFFIX for the converters' group, with job_id,
 * video_fid, filename, bitrate, quality and AUDEX_F_SEG_*: the plan (how
 * the job was cut), the index and the samples start .. end (-1: the
 * input's end) to encode.  Each segment's frames (MP3 frames back to
 * back, no tag) go to the Redis string AUDEX_SEGMENT_MP3_KEY_PREFIX
 * "<job_id>:<index>", which expires after AUDEX_SEGMENT_MP3_TTL seconds;
 * their states to the hash AUDEX_SEGMENTS_KEY_PREFIX "<job_id>": field
 * "plan", and per index "queued", "ok <samples> <delay> <padding>
 * <consumer>" or "failed <why>".  The converter that cut the job removes
 * each segment's frames once joined, and the hash when it is done.
 */
#define AUDEX_STREAM_SEGMENTS_SUFFIX  ".segments"
#define AUDEX_SEGMENTS_KEY_PREFIX  "audex:segments:"
#define AUDEX_SEGMENT_MP3_KEY_PREFIX  "audex:segmp3:"
#define AUDEX_SEGMENT_MP3_TTL      "86400"
#define AUDEX_F_SEG_PLAN           "plan"
#define AUDEX_F_SEG_INDEX          "index"
#define AUDEX_F_SEG_START          "start"
#define AUDEX_F_SEG_END            "end"

/*
 * Minutes converted per user and UTC day, kept by the converters in
 * Redis: a hash AUDEX_USAGE_KEY_PREFIX "<owner_id>:<yyyymmdd>" with one
 * field per job (its minutes, so a job tried again is counted once) and
 * AUDEX_USAGE_TOTAL, their sum, which GET /jobs shows.  It expires
 * AUDEX_USAGE_TTL seconds after its last change.
 */
#define AUDEX_USAGE_KEY_PREFIX     "audex:usage:"
#define AUDEX_USAGE_TOTAL          "total"
#define AUDEX_USAGE_TTL            "172800"

/* consumer groups */
/*
 * Revoked tokens, two Redis sorted sets: a token of a user in
 * AUDEX_REVOKED_USERS issued ("iat") before that member's score (a Unix
 * time in milliseconds; our tokens' "iat" has them too) is refused
 * (audex-user del, disable, passwd and admin set it);
 * a token whose "jti" is in AUDEX_REVOKED_TOKENS is refused (POST
 * /logout adds it, its score the time it cannot pass anyway: "exp" plus
 * the leeway and a margin; it is dropped then).
 */
#define AUDEX_REVOKED_USERS        "audex:revoked:users"
#define AUDEX_REVOKED_TOKENS       "audex:revoked:tokens"

#define AUDEX_GROUP_CONVERTER      "converter"
#define AUDEX_GROUP_NOTIFIER       "notifier"

/*
 * A job document's state: "queued" by the upload (again by a converter
 * that gives a job back), "converting" while a converter has it, then
 * "done" (with mp3_fid) or "failed" (with error and error_code).  A
 * DELETE turns a done or failed job "deleting" before its files go, so
 * that no one sees it done without its MP3; whoever meets a deleting job
 * finishes the removal (audex_store_job_delete).
 */
#define AUDEX_JOB_STATE_QUEUED   "queued"
#define AUDEX_JOB_STATE_CONVERTING "converting"
#define AUDEX_JOB_STATE_DONE     "done"
#define AUDEX_JOB_STATE_FAILED   "failed"
#define AUDEX_JOB_STATE_DELETING "deleting"

/*
 * Fields of a job: its document in AUDEX_COLL_JOBS (whose _id is the job
 * id), its entry on AUDEX_STREAM_VIDEO, the announcement on
 * AUDEX_STREAM_MP3 and the notifier's webhook use the same names.
 */
#define AUDEX_F_JOB_ID             "job_id"
#define AUDEX_F_STATE              "state"
#define AUDEX_F_PROGRESS           "progress"
#define AUDEX_F_VIDEO_FID          "video_fid"
#define AUDEX_F_MP3_FID            "mp3_fid"
#define AUDEX_F_ERROR              "error"
#define AUDEX_F_ERROR_CODE         "error_code"
#define AUDEX_F_FILENAME           "filename"
#define AUDEX_F_OWNER_ID           "owner_id"
#define AUDEX_F_OWNER_EMAIL        "owner_email"
#define AUDEX_F_BITRATE            "bitrate"
#define AUDEX_F_QUALITY            "quality"
#define AUDEX_F_CREATED_AT         "created_at"
#define AUDEX_F_UPDATED_AT         "updated_at"

/* the owner of a GridFS file, in its files document: what quotas count */
#define AUDEX_F_FILE_OWNER_ID      "metadata." AUDEX_F_OWNER_ID

/*
 * The MP3 a job asks for: a constant bitrate in kb/s, one of MPEG-1
 * layer III's, or a VBR quality on LAME's -V scale (0 best .. 9
 * smallest); neither: AUDEX_MP3_BITRATE_DEFAULT.  The upload checks
 * these (lib/audex_upload_opts.c) and so does the converter.
 */
#define AUDEX_MP3_BITRATES         32, 40, 48, 56, 64, 80, 96, 112, 128, \
                                   160, 192, 224, 256, 320
#define AUDEX_MP3_BITRATE_DEFAULT  192
#define AUDEX_MP3_QUALITY_MIN      0
#define AUDEX_MP3_QUALITY_MAX      9


#endif /* _AUDEX_SCHEMA_H_INCLUDED_ */
