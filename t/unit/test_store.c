/*
 * The store layer against a real MongoDB-wire server: chunk ids, writes
 * that a retry repeats, reads of audex's and other tools' files, and
 * removals that leave no chunk behind whatever state a file is in.
 *
 * It needs AUDEX_TEST_MONGODB_URI (t/store.t starts FerretDB and sets
 * it); without it, `make unit` reports the group as skipped.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "audex_store.h"


static mongoc_client_t      *client;
static mongoc_collection_t  *files, *chunks;


static void
chunk_data(uint8_t *buf, size_t len, int seed)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        buf[i] = (uint8_t) (i * 31 + seed);
    }
}


static int64_t
count_chunks(const bson_oid_t *files_id)
{
    bson_t        filter;
    int64_t       n;
    bson_error_t  error;

    bson_init(&filter);
    BSON_APPEND_OID(&filter, "files_id", files_id);
    n = mongoc_collection_count_documents(chunks, &filter, NULL, NULL, NULL,
                                          &error);
    bson_destroy(&filter);
    assert_true(n >= 0);

    return n;
}


static void
put_files_doc(const bson_oid_t *id, int64_t length, int64_t chunk_size)
{
    bson_t        doc;
    bson_error_t  error;

    bson_init(&doc);
    BSON_APPEND_OID(&doc, "_id", id);
    BSON_APPEND_INT64(&doc, "length", length);
    BSON_APPEND_INT32(&doc, "chunkSize", (int32_t) chunk_size);
    BSON_APPEND_UTF8(&doc, "filename", "t.bin");
    assert_true(mongoc_collection_insert_one(files, &doc, NULL, NULL,
                                             &error));
    bson_destroy(&doc);
}


/* chunks [from, to) of f, each len bytes of data */
static void
put_chunks(const bson_oid_t *f, int32_t from, int32_t to, const uint8_t *data,
    uint32_t len)
{
    int32_t       n;
    bson_error_t  error;

    for (n = from; n < to; n++) {
        assert_int_equal(audex_store_chunk_put(chunks, f, n, data, len,
                                               &error), 0);
    }
}


/* a chunk the way another driver writes it: an _id of its own */
static void
put_foreign_chunk(const bson_oid_t *files_id, int32_t n, const uint8_t *data,
    uint32_t len)
{
    bson_t        doc;
    bson_oid_t    id;
    bson_error_t  error;

    bson_oid_init(&id, NULL);
    bson_init(&doc);
    BSON_APPEND_OID(&doc, "_id", &id);
    BSON_APPEND_OID(&doc, "files_id", files_id);
    BSON_APPEND_INT32(&doc, "n", n);
    BSON_APPEND_BINARY(&doc, "data", BSON_SUBTYPE_BINARY, data, len);
    assert_true(mongoc_collection_insert_one(chunks, &doc, NULL, NULL,
                                             &error));
    bson_destroy(&doc);
}


static void
test_chunk_id(void **state)
{
    bson_oid_t  f, a, b, c;

    bson_oid_init_from_string(&f, "64b0c0ffee0000000000abcd");

    audex_store_chunk_id(&f, 0, &a);
    audex_store_chunk_id(&f, 0, &b);
    audex_store_chunk_id(&f, 1, &c);

    assert_memory_equal(a.bytes, b.bytes, 12);
    assert_memory_not_equal(a.bytes, c.bytes, 12);
    assert_memory_not_equal(a.bytes, f.bytes, 12);
}


static void
test_put_get(void **state)
{
    uint8_t       data[1000], buf[1000];
    ssize_t       len;
    bson_oid_t    f;
    bson_error_t  error;

    bson_oid_init(&f, NULL);
    chunk_data(data, sizeof(data), 1);

    assert_int_equal(audex_store_chunk_put(chunks, &f, 0, data, 1000,
                                           &error), 0);

    len = audex_store_chunk_get(chunks, &f, 0, buf, sizeof(buf), &error);
    assert_int_equal(len, 1000);
    assert_memory_equal(buf, data, 1000);

    /* a retried insert of the same chunk is success, and stores it once */
    assert_int_equal(audex_store_chunk_put(chunks, &f, 0, data, 1000,
                                           &error), 0);
    assert_int_equal(count_chunks(&f), 1);

    /* other bytes for the same chunk are a conflict */
    data[7] ^= 0xff;
    assert_int_equal(audex_store_chunk_put(chunks, &f, 0, data, 1000,
                                           &error), -1);
    assert_int_equal(count_chunks(&f), 1);

    assert_int_equal(audex_store_chunk_get(chunks, &f, 1, buf, sizeof(buf),
                                           &error), AUDEX_STORE_MISSING);

    /* a buffer too small for the chunk */
    assert_int_equal(audex_store_chunk_get(chunks, &f, 0, buf, 999, &error),
                     AUDEX_STORE_CORRUPT);
}


static void
test_foreign_read(void **state)
{
    uint8_t       data[300], buf[300];
    bson_oid_t    f;
    bson_error_t  error;

    bson_oid_init(&f, NULL);
    chunk_data(data, sizeof(data), 2);
    put_foreign_chunk(&f, 0, data, 300);
    put_foreign_chunk(&f, 1, data, 100);

    assert_int_equal(audex_store_chunk_get(chunks, &f, 0, buf, sizeof(buf),
                                           &error), 300);
    assert_memory_equal(buf, data, 300);
    assert_int_equal(audex_store_chunk_get(chunks, &f, 1, buf, sizeof(buf),
                                           &error), 100);
    assert_int_equal(audex_store_chunk_get(chunks, &f, 2, buf, sizeof(buf),
                                           &error), AUDEX_STORE_MISSING);
}


static void
test_delete_complete(void **state)
{
    uint8_t       data[100];
    bson_oid_t    f;
    bson_error_t  error;

    bson_oid_init(&f, NULL);
    chunk_data(data, sizeof(data), 3);

    /* 150 chunks of 100 bytes and one of 50: more than one bulk round */
    put_chunks(&f, 0, 150, data, 100);
    put_chunks(&f, 150, 151, data, 50);
    put_files_doc(&f, 150 * 100 + 50, 100);
    assert_int_equal(count_chunks(&f), 151);

    assert_int_equal(audex_store_file_delete(files, chunks, &f, &error), 0);
    assert_int_equal(count_chunks(&f), 0);

    /* removing it again is no error */
    assert_int_equal(audex_store_file_delete(files, chunks, &f, &error), 0);
}


static void
test_delete_unfinished(void **state)
{
    uint8_t       data[100];
    bson_oid_t    f;
    bson_error_t  error;

    chunk_data(data, sizeof(data), 4);

    /* a failed upload: chunks 0..129, no files document */
    bson_oid_init(&f, NULL);
    put_chunks(&f, 0, 130, data, 100);

    assert_int_equal(audex_store_file_delete(files, chunks, &f, &error), 0);
    assert_int_equal(count_chunks(&f), 0);

    /* a failed conversion: chunk 0 is written last, so 1..70 only */
    bson_oid_init(&f, NULL);
    put_chunks(&f, 1, 71, data, 100);

    assert_int_equal(audex_store_file_delete(files, chunks, &f, &error), 0);
    assert_int_equal(count_chunks(&f), 0);
}


static void
test_delete_foreign(void **state)
{
    int32_t       n;
    uint8_t       data[100];
    bson_oid_t    f;
    bson_error_t  error;

    /* another driver's file: the chunk ids are its own */
    bson_oid_init(&f, NULL);
    chunk_data(data, sizeof(data), 5);

    for (n = 0; n < 5; n++) {
        put_foreign_chunk(&f, n, data, 100);
    }

    put_files_doc(&f, 500, 100);

    assert_int_equal(audex_store_file_delete(files, chunks, &f, &error), 0);
    assert_int_equal(count_chunks(&f), 0);
}


static void
test_geometry(void **state)
{
    bson_t   *doc;
    int64_t   length, chunk_size;

    doc = BCON_NEW("length", BCON_INT64(10), "chunkSize", BCON_INT32(4));
    assert_int_equal(audex_store_file_geometry(doc, &length, &chunk_size), 0);
    assert_int_equal(length, 10);
    assert_int_equal(chunk_size, 4);
    bson_destroy(doc);

    doc = BCON_NEW("length", BCON_INT64(10), "chunkSize", BCON_INT32(0));
    assert_int_equal(audex_store_file_geometry(doc, &length, &chunk_size),
                     -1);
    bson_destroy(doc);

    doc = BCON_NEW("length", BCON_INT64(-1), "chunkSize", BCON_INT32(4));
    assert_int_equal(audex_store_file_geometry(doc, &length, &chunk_size),
                     -1);
    bson_destroy(doc);

    doc = BCON_NEW("length", BCON_UTF8("10"), "chunkSize", BCON_INT32(4));
    assert_int_equal(audex_store_file_geometry(doc, &length, &chunk_size),
                     -1);
    bson_destroy(doc);

    doc = BCON_NEW("length", BCON_INT64(10),
                   "chunkSize", BCON_INT64(AUDEX_GRIDFS_CHUNK_MAX + 1));
    assert_int_equal(audex_store_file_geometry(doc, &length, &chunk_size),
                     -1);
    bson_destroy(doc);
}


static void
test_docs(void **state)
{
    bson_t               *doc, *job, *user, *upd;
    bson_oid_t            oid;
    bson_iter_t           it;
    bson_error_t          error;
    mongoc_database_t    *db;
    mongoc_collection_t  *jobs, *users;

    db = mongoc_client_get_default_database(client);
    jobs = mongoc_database_get_collection(db, "t_jobs");
    users = mongoc_database_get_collection(db, "t_users");

    job = BCON_NEW("_id", BCON_UTF8("job-1"), "state", BCON_UTF8("queued"));
    bson_oid_init(&oid, NULL);
    user = BCON_NEW("_id", BCON_OID(&oid),
                    "email", BCON_UTF8("ann@example.com"),
                    "password", BCON_UTF8("$argon2id$x"));
    assert_int_equal(audex_store_job_insert(jobs, job, &error), 0);
    /* the same job again: its _id is taken */
    assert_int_equal(audex_store_job_insert(jobs, job, &error), -1);
    assert_true(mongoc_collection_insert_one(users, user, NULL, NULL,
                                             &error));

    assert_int_equal(audex_store_job_get(jobs, "job-1", &doc, &error), 1);
    assert_true(bson_iter_init_find(&it, doc, "state"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "queued");
    bson_destroy(doc);

    assert_int_equal(audex_store_job_get(jobs, "job-2", &doc, &error), 0);
    assert_null(doc);

    assert_int_equal(audex_store_user_by_email(users, "ann@example.com",
                                               &doc, &error), 1);
    assert_true(bson_iter_init_find(&it, doc, "password"));
    bson_destroy(doc);
    assert_int_equal(audex_store_user_by_email(users, "bob@example.com",
                                               &doc, &error), 0);

    /* by _id, the sub of a token: ann's, then an id that is no one's */
    assert_true(bson_iter_init_find(&it, user, "_id"));
    bson_oid_copy(bson_iter_oid(&it), &oid);
    assert_int_equal(audex_store_user_by_id(users, &oid, &doc, &error), 1);
    assert_true(bson_iter_init_find(&it, doc, "email"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "ann@example.com");
    bson_destroy(doc);
    bson_oid_init(&oid, NULL);
    assert_int_equal(audex_store_user_by_id(users, &oid, &doc, &error), 0);

    /* an update of job-1; an upsert makes job-3 */
    upd = BCON_NEW("$set", "{", "state", BCON_UTF8("done"), "}");
    assert_int_equal(audex_store_job_update(jobs, "job-1", upd, 0, &error),
                     0);
    assert_int_equal(audex_store_job_get(jobs, "job-1", &doc, &error), 1);
    assert_true(bson_iter_init_find(&it, doc, "state"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "done");
    bson_destroy(doc);
    assert_int_equal(audex_store_job_update(jobs, "job-3", upd, 0, &error),
                     0);
    assert_int_equal(audex_store_job_get(jobs, "job-3", &doc, &error), 0);
    assert_int_equal(audex_store_job_update(jobs, "job-3", upd, 1, &error),
                     0);
    assert_int_equal(audex_store_job_get(jobs, "job-3", &doc, &error), 1);
    bson_destroy(doc);
    bson_destroy(upd);

    assert_int_equal(audex_store_job_remove(jobs, "job-1", &error), 0);
    assert_int_equal(audex_store_job_get(jobs, "job-1", &doc, &error), 0);
    /* removing what is not there is no error */
    assert_int_equal(audex_store_job_remove(jobs, "job-1", &error), 0);

    bson_destroy(job);
    bson_destroy(user);
    mongoc_collection_destroy(users);
    mongoc_collection_destroy(jobs);
    mongoc_database_destroy(db);
}


static void
test_indexes(void **state)
{
    bson_error_t        error;
    mongoc_database_t  *db;

    db = mongoc_client_get_default_database(client);
    assert_int_equal(audex_store_bucket_indexes(db, "t", &error), 0);
    /* again: a no-op, not an error */
    assert_int_equal(audex_store_bucket_indexes(db, "t", &error), 0);
    mongoc_database_destroy(db);
}


/*
 * Run by t/store.t while another process holds the write lock of the
 * FerretDB's SQLite database (and FerretDB gives up waiting after
 * 100 ms): every write must still succeed, retried by the store.
 */

static void
test_busy_writes(void **state)
{
    bson_t               *job, *upd;
    uint8_t               data[1000];
    bson_oid_t            fid;
    bson_error_t          error;
    mongoc_database_t    *db;
    mongoc_collection_t  *jobs;

    db = mongoc_client_get_default_database(client);
    jobs = mongoc_database_get_collection(db, "t_jobs");

    job = BCON_NEW("_id", BCON_UTF8("busy-1"), "state", BCON_UTF8("queued"));
    upd = BCON_NEW("$set", "{", "state", BCON_UTF8("done"), "}");
    memset(data, 'b', sizeof(data));
    bson_oid_init(&fid, NULL);

    assert_int_equal(audex_store_job_insert(jobs, job, &error), 0);
    assert_int_equal(audex_store_job_update(jobs, "busy-1", upd, 0, &error),
                     0);
    assert_int_equal(audex_store_chunk_put(chunks, &fid, 0, data,
                                           sizeof(data), &error), 0);
    assert_int_equal(audex_store_file_put(files, &fid, sizeof(data), "b.bin",
                                          NULL, NULL, "00", &error), 0);
    assert_int_equal(audex_store_file_delete(files, chunks, &fid, &error),
                     0);
    assert_int_equal(audex_store_job_remove(jobs, "busy-1", &error), 0);

    bson_destroy(upd);
    bson_destroy(job);
    mongoc_collection_destroy(jobs);
    mongoc_database_destroy(db);
}


int
main(void)
{
    int                  rc;
    const char          *uri;
    mongoc_database_t   *db;

    const struct CMUnitTest  offline[] = {
        cmocka_unit_test(test_chunk_id),
        cmocka_unit_test(test_geometry),
    };

    const struct CMUnitTest  online[] = {
        cmocka_unit_test(test_indexes),
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_foreign_read),
        cmocka_unit_test(test_delete_complete),
        cmocka_unit_test(test_delete_unfinished),
        cmocka_unit_test(test_delete_foreign),
        cmocka_unit_test(test_docs),
    };

    const struct CMUnitTest  busy[] = {
        cmocka_unit_test(test_busy_writes),
    };

    rc = cmocka_run_group_tests_name("store", offline, NULL, NULL);

    uri = getenv("AUDEX_TEST_MONGODB_URI");
    if (uri == NULL || *uri == '\0') {
        print_message("[  SKIPPED ] store against a server: "
                      "AUDEX_TEST_MONGODB_URI is not set (t/store.t sets "
                      "it)\n");
        return rc;
    }

    mongoc_init();
    client = mongoc_client_new(uri);
    if (client == NULL) {
        print_error("bad AUDEX_TEST_MONGODB_URI\n");
        return 1;
    }

    db = mongoc_client_get_default_database(client);
    files = mongoc_database_get_collection(db, "t.files");
    chunks = mongoc_database_get_collection(db, "t.chunks");

    if (getenv("AUDEX_TEST_BUSY") != NULL) {
        rc |= cmocka_run_group_tests_name("store against a locked server",
                                          busy, NULL, NULL);
    } else {
        rc |= cmocka_run_group_tests_name("store against a server", online,
                                          NULL, NULL);
    }

    mongoc_collection_destroy(chunks);
    mongoc_collection_destroy(files);
    mongoc_database_destroy(db);
    mongoc_client_destroy(client);
    mongoc_cleanup();

    return rc;
}
