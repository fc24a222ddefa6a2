# nginx -t rejects bad audex_* directives with a message naming them.

use lib 't/lib';
use Audex::Test;

run_tests();

__DATA__

=== TEST 1: a bad MongoDB URI
--- http_config
audex_mongodb_uri mongo://nowhere;
--- must_die
--- error_log
audex_mongodb_uri: invalid URI "mongo://nowhere"



=== TEST 2: a bad Redis URL
--- http_config
audex_redis_url http://127.0.0.1:6379;
--- must_die
--- error_log
audex_redis_url: invalid URL "http://127.0.0.1:6379": URL must start with redis:// or unix://



=== TEST 3: a Redis port out of range
--- http_config
audex_redis_url redis://127.0.0.1:70000/0;
--- must_die
--- error_log
audex_redis_url: invalid URL "redis://127.0.0.1:70000/0": port must be a number from 1 to 65535



=== TEST 4: a directive given twice
--- http_config
audex_redis_url redis://127.0.0.1:6379/0;
audex_redis_url redis://127.0.0.1:6380/0;
--- must_die
--- error_log
"audex_redis_url" directive is duplicate



=== TEST 5: an unknown thread pool
--- http_config
audex_thread_pool nosuchpool;
--- must_die
--- error_log
unknown thread pool "nosuchpool"



=== TEST 6: a bad timeout
--- http_config
audex_backend_timeout soon;
--- must_die
--- error_log
"audex_backend_timeout" directive invalid value



=== TEST 7: audex_healthz takes no arguments
--- config
location = /healthz { audex_healthz now; }
--- must_die
--- error_log
invalid number of arguments in "audex_healthz" directive



=== TEST 8: directives in the wrong context
--- config
location = /x { audex_redis_url redis://127.0.0.1:6379/0; }
--- must_die
--- error_log
"audex_redis_url" directive is not allowed here



=== TEST 9: two audex handlers in one location
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /jobs { audex_auth on; audex_upload; audex_jobs; }
--- must_die
--- error_log
"audex_upload" and "audex_jobs" in one location: a location has one content handler



=== TEST 10: an audex handler given twice
--- config
location = /healthz { audex_healthz; audex_healthz; }
--- must_die
--- error_log
"audex_healthz" directive is duplicate



=== TEST 11: audex_jobs without audex_auth: every token would get 401
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_link_secret $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /jobs { audex_jobs; }
--- must_die
--- error_log
audex_jobs in location "/jobs" needs "audex_auth on": it acts for the token's user



=== TEST 12: audex_jobs without audex_link_secret: download_url would be null
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /jobs { audex_auth on; audex_jobs; }
--- must_die
--- error_log
audex_jobs in location "/jobs" needs audex_link_secret at http level: a done job's download_url is a signed link



=== TEST 13: audex_download with audex_auth optional, without audex_link_secret
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /download { audex_auth optional; audex_download; }
--- must_die
--- error_log
audex_download in location "/download" needs audex_link_secret at http level: it verifies signed links ("audex_auth on" serves tokens only)



=== TEST 14: audex_download without audex_auth nor audex_link_secret
--- config
location = /download { audex_download; }
--- must_die
--- error_log
audex_download in location "/download" needs audex_link_secret at http level



=== TEST 15: audex_jobs in a regex location: no prefix to find the id after
--- config
location ~ ^/jobs/ { audex_jobs; }
--- must_die
--- error_log
"audex_jobs" directive needs a prefix or exact location: a job's id is what follows the location's name



=== TEST 16: audex_jobs in a named location
--- config
location @jobs { audex_jobs; }
--- must_die
--- error_log
"audex_jobs" directive needs a prefix or exact location



=== TEST 17: audex_auth and audex_link_secret inherited from server and http level
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_link_secret $TEST_NGINX_JWT_SECRET_FILE;
--- config
audex_auth on;
location /api/v1/jobs/ { audex_jobs; }
--- request
GET /api/v1/jobs/
--- error_code: 401
--- response_body
{"error":"token required"}



=== TEST 18: audex_download with tokens only: audex_auth on, no audex_link_secret
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /download { audex_auth on; audex_download; }
--- request
GET /download
--- error_code: 401



=== TEST 19: audex_download with links only: audex_link_secret, no audex_auth
--- http_config
audex_link_secret $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /download { audex_download; }
--- request
GET /download
--- error_code: 400
--- response_body
{"error":"invalid file id"}



=== TEST 20: audex_tus without audex_auth: no upload would have an owner
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_tus; }
--- must_die
--- error_log
audex_tus in location "/files/" needs "audex_auth on": it acts for the token's user



=== TEST 21: audex_tus_expires takes a time
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; audex_tus_expires soon; }
--- must_die
--- error_log
"audex_tus_expires" directive invalid value
