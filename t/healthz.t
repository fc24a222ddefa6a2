# GET /healthz: both backends are pinged from the thread pool.

use lib 't/lib';
use Audex::Test;

run_tests();

__DATA__

=== TEST 1: both backends up
--- config
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body
{"mongo":"ok","redis":"ok"}
--- no_error_log
[error]



=== TEST 2: HEAD answers like GET, without a body
--- config
location = /healthz { audex_healthz; }
--- request
HEAD /healthz
--- error_code: 200
--- response_body:



=== TEST 3: Redis down: 503 naming it, one error line
--- config
location = /healthz { audex_healthz; }
--- down: redis
--- request
GET /healthz
--- error_code: 503
--- response_headers
Content-Type: application/json
Retry-After: 5
--- response_body_like
^\{"mongo":"ok","redis":"down","error":"redis: Connection refused"\}$
--- error_log
audex: healthz: redis: Connection refused



=== TEST 4: Redis down: nginx goes on serving other locations
--- config
location = /healthz { audex_healthz; }
location = /other { return 200 "still here\n"; }
--- down: redis
--- request eval
["GET /healthz", "GET /other", "GET /healthz"]
--- error_code eval
[503, 200, 503]
--- response_body_like eval
['"redis":"down"', "^still here\n\$", '"redis":"down"']



=== TEST 5: MongoDB down: 503 naming it, bounded by audex_backend_timeout
--- http_config
audex_backend_timeout 1s;
--- config
location = /healthz { audex_healthz; }
--- down: mongo
--- request
GET /healthz
--- error_code: 503
--- response_body_like
^\{"mongo":"down","redis":"ok","error":"mongo: [^"]+"\}$
--- error_log
audex: healthz: mongo:



=== TEST 6: both down
--- http_config
audex_backend_timeout 1s;
--- config
location = /healthz { audex_healthz; }
--- down
redis
mongo
--- request
GET /healthz
--- error_code: 503
--- response_body_like
^\{"mongo":"down","redis":"down","error":"mongo: [^"]+; redis: Connection refused"\}$



=== TEST 7: Redis restarted: the next check reconnects
--- config
location = /healthz { audex_healthz; }
--- init
Audex::Test::backend_stop('redis');
Audex::Test::backend_start('redis');
--- request
GET /healthz
--- error_code: 200
--- response_body
{"mongo":"ok","redis":"ok"}



=== TEST 8: other methods: 405 with Allow
--- config
location = /healthz { audex_healthz; }
--- request
POST /healthz
x=1
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json
--- response_body
{"error":"method not allowed"}
--- error_log
audex: method POST not allowed



=== TEST 9: Redis on a unix socket, with a database number
--- main_config
--- init
my $sock = Audex::Test::servroot() . "/redis.sock";
unlink $sock;
system("redis-server --port 0 --unixsocket $sock --unixsocketperm 777 --save '' --daemonize yes"
       . " --pidfile " . Audex::Test::servroot() . "/redis-unix.pid"
       . " --logfile " . Audex::Test::servroot() . "/logs/redis-unix.log") == 0
    or die "redis-server: $?";
for (1 .. 100) { last if -S $sock; select undef, undef, undef, 0.05 }
Audex::Test::at_exit(sub {
    system('redis-cli', '-s', $sock, 'shutdown', 'nosave');
});
$ENV{TEST_NGINX_REDIS_SOCK} = $sock;
--- http_config
audex_redis_url unix://$TEST_NGINX_REDIS_SOCK?db=3;
--- config
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- response_body
{"mongo":"ok","redis":"ok"}



=== TEST 6: a client not on the loopback learns what is down, not the error text
--- config
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
location = /healthz { audex_healthz; }
--- down: redis
--- request eval
["GET /healthz", "GET /healthz", "GET /healthz"]
--- more_headers eval
["X-Forwarded-For: 203.0.113.7", "X-Forwarded-For: 127.0.0.2", "X-Forwarded-For: ::1"]
--- error_code eval
[503, 503, 503]
--- response_body eval
[qq{{"mongo":"ok","redis":"down"}\n},
 qq{{"mongo":"ok","redis":"down","error":"redis: Connection refused"}\n},
 qq{{"mongo":"ok","redis":"down","error":"redis: Connection refused"}\n}]
--- error_log
audex: healthz: redis: Connection refused
