# Per-user limits at upload: audex_user_max_jobs (429) and
# audex_user_max_bytes (413, before the body when its length is stated,
# mid-stream otherwise, with the stored chunks removed); GET /jobs shows
# usage and limits; /metrics counts the refusals.  The converter's limits
# (--max-duration, --user-daily-minutes) are in t/converter_jobs.t.

use lib 't/lib';
use Audex::Test;
use Audex::Media qw(make_media);
use File::Temp qw(tempdir);
use IO::Socket::INET;

our $busy = '64b0000000000000000000b1';     # two jobs in progress
our $full = '64b0000000000000000000f1';     # 1100 bytes stored
our $dir = tempdir('audex-limits-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# a second of sine in MP4, and the same followed by 700 KB of noise
our $mp4 = do {
    my $p = make_media($dir, { file => 'sine.mp4', seconds => 1,
                               audio => ['aac 44100 1 64k'] });
    open my $fh, '<:raw', $p or die "$p: $!";
    local $/;
    <$fh>;
};
our $big = $mp4 . ('n' x 700_000);

# TEST 7: a "Redis" that accepts and never answers: the revoked-token
# reader holds the pool's only thread, so the upload's first task cannot
# be queued; the body of that upload is a request of its own
our $mute = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1) or die;
our $inner = "GET /smuggled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

our $http = <<'EOF_HTTP';
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_link_secret $TEST_NGINX_SERVROOT/conf/link.secret;
audex_user_max_jobs 2;
audex_user_max_bytes 400k;
EOF_HTTP

# the owner's files, stored chunks included
sub held {
    my ($owner) = @_;
    return mongo_eval(<<"PY") + 0;
ids = [f['_id'] for f in db['videos.files'].find({'metadata.owner_id': '$owner'})]
n = db['videos.chunks'].count_documents({}) - sum(
    db['videos.chunks'].count_documents({'files_id': i}) for i in ids)
print(len(ids) * 1000 + n)
PY
}

our $held_before;

run_tests(setup => sub {
    open my $fh, '>', "$ENV{TEST_NGINX_SERVROOT}/conf/link.secret" or die;
    print $fh "s" x 40;
    close $fh;

    my $out = mongo_eval(<<"PY");
import datetime, bson
now = datetime.datetime.utcnow()
for u in ("$busy", "$full"):
    db.users.insert_one(dict(_id=bson.ObjectId(u), email=u + "\@x"))
for i, s in enumerate(("queued", "converting", "done", "failed")):
    db.jobs.insert_one(dict(_id="busy-%d" % i, state=s, owner_id="$busy",
                            created_at=now, updated_at=now))
gridfs.GridFSBucket(db, "videos").upload_from_stream(
    "v.mp4", b"v" * 500, metadata={"owner_id": "$full"})
gridfs.GridFSBucket(db, "mp3s").upload_from_stream(
    "v.mp3", b"m" * 600, metadata={"owner_id": "$full"})
print("ok")
PY
    die "setup: $out" unless $out =~ /ok/;
});

__DATA__

=== TEST 1: audex_user_max_jobs: a user with two jobs in progress gets 429, another uploads
--- http_config eval: $::http
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
["POST /upload\n$::mp4", "POST /upload\n$::mp4"]
--- more_headers eval
["Content-Type: video/mp4\n" . Audex::Test::bearer($::busy),
 "Content-Type: video/mp4\n" . Audex::Test::bearer($::full)]
--- error_code eval
[429, 202]
--- response_body_like eval
[qr/^\{"error":"too many jobs in progress \(2\)"\}$/, qr/"job_id"/]
--- error_log
audex: upload failed: too many jobs in progress (2), after 0 bytes



=== TEST 2: audex_user_max_bytes: a stated length past the quota is 413 before the body
--- http_config eval: $::http
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
"POST /upload\n" . ('x' x 400_000)
--- more_headers eval
"Content-Type: video/mp4\n" . Audex::Test::bearer($::full)
--- error_code: 413
--- response_body
{"error":"storage quota of 400 KiB exceeded"}
--- error_log
audex: upload failed: storage quota of 400 KiB exceeded, after 0 bytes



=== TEST 3: a chunked body that passes the quota: 413 mid-stream, nothing left behind
--- init
$::held_before = ::held($::full);
--- http_config eval: $::http
--- config
location = /upload { audex_auth on; audex_upload; }
--- raw_request eval
my $body = '';
for (my $i = 0; $i < length $::big; $i += 10000) {
    my $c = substr($::big, $i, 10000);
    $body .= sprintf("%x\r\n%s\r\n", length $c, $c);
}
"POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. Audex::Test::bearer($::full) . "\r\nContent-Type: video/mp4\r\n"
. "Transfer-Encoding: chunked\r\n\r\n${body}0\r\n\r\n"
--- error_code: 413
--- response_body
{"error":"storage quota of 400 KiB exceeded"}
--- check
is(::held($::full), $::held_before, 'no file and no chunk left behind');
--- error_log eval
[qr/audex: upload failed: storage quota of 400 KiB exceeded, after \d+ bytes, stored chunks removed/]



=== TEST 4: GET /jobs shows the user's usage and the limits
--- http_config eval: $::http
--- config
location /jobs { audex_auth on; audex_jobs; }
--- init
Audex::Test::redis_cli('HSET', "audex:usage:$::busy:"
    . POSIX::strftime('%Y%m%d', gmtime), 'busy-0', '1.5', 'total', '1.5');
--- request
GET /jobs
--- more_headers eval
Audex::Test::bearer($::busy)
--- error_code: 200
--- response_body_like
,"usage":\{"jobs_in_progress":2,"bytes_stored":0,"minutes_today":1\.50\},"limits":\{"jobs_in_progress":2,"bytes_stored":409600\}\}$



=== TEST 5: /metrics counts the refusals by limit
--- http_config eval: $::http
--- config
location = /upload { audex_auth on; audex_upload; }
location = /metrics { audex_metrics; }
--- request eval
["POST /upload\n$::mp4", "POST /upload\n" . ('x' x 400_000), "GET /metrics"]
--- more_headers eval
["Content-Type: video/mp4\n" . Audex::Test::bearer($::busy),
 "Content-Type: video/mp4\n" . Audex::Test::bearer($::full), ""]
--- error_code eval
[429, 413, 200]
--- response_body_like eval
[qr/jobs in progress/, qr/storage quota/,
 qr/audex_upload_refusals_total\{limit="user_max_jobs"\} 1\naudex_upload_refusals_total\{limit="user_max_bytes"\} 1\n/]



=== TEST 6: bad values fail nginx -t, naming the directive
--- http_config
audex_user_max_jobs many;
--- config
location = /x { return 204; }
--- must_die
--- error_log
"audex_user_max_jobs" directive invalid number



=== TEST 7: the pool's queue full before an upload's body is read: 503, and the body is no request
--- main_config
thread_pool audex threads=1 max_queue=0;
--- http_config eval
"audex_jwt_key HS256 \$TEST_NGINX_JWT_SECRET_FILE;
audex_redis_url redis://127.0.0.1:" . $::mute->sockport . ";
audex_backend_timeout 10s;
audex_user_max_jobs 2;"
--- config
location = /upload { audex_auth on; audex_upload; }
location = /smuggled { return 200 "SMUGGLED\n"; }
--- raw_request eval
[ {sleep => 1.5}, "POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n"
  . "Content-Type: video/mp4\r\n" . Audex::Test::bearer($::busy) . "\r\n"
  . "Content-Length: " . length($::inner) . "\r\n\r\n" . $::inner ]
--- error_code: 503
--- timeout: 5
--- check
unlike($res->{raw}, qr/SMUGGLED/, "no second answer, from the body");
--- error_log
the thread pool queue is full
