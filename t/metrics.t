# GET /metrics: Prometheus text, summed across nginx worker processes.

use lib 't/lib';
use Audex::Test;

# audex_jobs needs a link secret, though these jobs are never done
our $http = <<'EOF_HTTP';
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_link_secret $TEST_NGINX_SERVROOT/conf/link.secret;
EOF_HTTP

our $loc = <<'EOF_LOC';
location = /metrics { audex_metrics; }
location = /healthz { audex_healthz; }
location = /login { audex_login; }
location /jobs { audex_auth on; audex_jobs; }
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/plain; }
location /plain { return 200 "plain\n"; }
EOF_LOC

sub get { Audex::Test::http_request("GET $_[0] HTTP/1.1\r\nHost: x\r\nConnection: close\r\n$_[1]\r\n") }

sub value {
    my ($text, $series) = @_;
    return $text =~ /^\Q$series\E (\S+)$/m ? $1 : undef;
}

run_tests(setup => sub {
    open my $fh, '>', "$ENV{TEST_NGINX_SERVROOT}/conf/link.secret" or die;
    print $fh "m" x 40;
    close $fh;
});

__DATA__

=== TEST 1: requests counted by handler and status, summed across two workers
--- main_config
worker_processes 2;
--- http_config eval: $::http
--- config eval: $::loc
--- request
GET /metrics
--- error_code: 200
--- response_headers
Content-Type: text/plain; version=0.0.4; charset=utf-8
--- check
# many connections: both workers answer some; the sums must be exact
::get('/healthz') for 1 .. 10;
::get('/jobs/x') for 1 .. 7;
::get('/app') for 1 .. 3;
::get('/plain') for 1 .. 4;
my $m = ::get('/metrics')->{body};
Audex::Test::is(::value($m, 'http_requests_total{handler="healthz",status="200"}'), 10, "healthz 200");
Audex::Test::is(::value($m, 'http_requests_total{handler="jobs",status="401"}'), 7, "jobs 401");
Audex::Test::is(::value($m, 'http_requests_total{handler="auth",status="401"}'), 3, "proxied location behind audex_auth");
Audex::Test::is(::value($m, 'http_requests_total{handler="metrics",status="200"}'), 1, "the first scrape");
Audex::Test::unlike($m, qr/plain/, "locations without audex are not counted");
Audex::Test::is(::value($m, 'http_request_duration_seconds_count{handler="healthz"}'), 10, "histogram count");
Audex::Test::is(::value($m, 'http_request_duration_seconds_bucket{handler="healthz",le="+Inf"}'), 10, "+Inf bucket");
Audex::Test::like(::value($m, 'http_request_duration_seconds_sum{handler="healthz"}'), qr/^\d+\.\d{6}$/, "sum in seconds");
open my $fh, '<', "$ENV{TEST_NGINX_SERVROOT}/logs/error.log";
my %pids = map { /\[\w+\] (\d+)#/ ? ($1 => 1) : () } grep { /worker process/ } <$fh>;
Audex::Test::ok(scalar(keys %pids) >= 2, "two worker processes ran");



=== TEST 2: the jobs stream's length and pending count
--- http_config eval: $::http . "audex_jobs_stream video;\naudex_jobs_group converter;\n"
--- config eval: $::loc
--- init
Audex::Test::redis_cli('DEL', 'video');
Audex::Test::redis_cli('XADD', 'video', '*', 'job_id', "j$_") for 1 .. 3;
Audex::Test::redis_cli('XGROUP', 'CREATE', 'video', 'converter', '0');
Audex::Test::redis_cli('XREADGROUP', 'GROUP', 'converter', 'c1', 'COUNT', '2', 'STREAMS', 'video', '>');
--- request
GET /metrics
--- error_code: 200
--- response_body_like
(?m)^audex_jobs_stream_length 3$.*^audex_jobs_stream_pending 2$



=== TEST 3: no consumer group yet: nothing pending; Redis down: the gauges are left out
--- http_config eval: $::http . "audex_backend_timeout 1s;\n"
--- config eval: $::loc
--- init
Audex::Test::redis_cli('DEL', 'video');
Audex::Test::redis_cli('XADD', 'video', '*', 'job_id', 'j1');
--- request
GET /metrics
--- error_code: 200
--- response_body_like
(?m)^audex_jobs_stream_length 1$\n.*^audex_jobs_stream_pending 0$



=== TEST 4: Redis down: counters still served, the stream gauges left out, one error line
--- http_config eval: $::http . "audex_backend_timeout 1s;\n"
--- config eval: $::loc
--- down: redis
--- request
GET /metrics
--- error_code: 200
--- response_body_like
audex_upload_bytes_total 0
--- check
Audex::Test::unlike($res->{body}, qr/audex_jobs_stream/, "no stream gauges");
--- error_log
audex: metrics: redis:



=== TEST 5: promtool accepts the exposition
--- http_config eval: $::http
--- config eval: $::loc
--- request
GET /metrics
--- error_code: 200
--- check
::get('/healthz') for 1 .. 2;
::get('/jobs') for 1 .. 2;
my $m = ::get('/metrics')->{body};
my $file = "$ENV{TEST_NGINX_SERVROOT}/metrics.txt";
open my $fh, '>', $file or die;
print $fh $m;
close $fh;
my $out = `promtool check metrics < $file 2>&1`;
Audex::Test::is($?, 0, "promtool check metrics") or Audex::Test::diag($out);
Audex::Test::unlike($out, qr/\S/, "promtool has nothing to say")
    or Audex::Test::diag($out);
Audex::Test::like($m, qr/^# TYPE http_request_duration_seconds histogram$/m,
    "a histogram was checked");
