# Job status: GET /jobs/<id>, GET /jobs, DELETE /jobs/<id>.  The job
# documents are written here with pymongo, in the shape the upload
# handler and the converter write them; the callers have accounts.
# A third user's jobs are left "deleting", as a DELETE cut short after
# its first step leaves them, with their files in audex's chunk layout.

use lib 't/lib';
use Audex::Test;

our $owner = '64b000000000000000000001';
our $other = '64b000000000000000000002';
our $third = '64b000000000000000000003';
our %id;

our $http = <<'EOF_HTTP';
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_link_secret $TEST_NGINX_SERVROOT/conf/link.secret;
audex_link_lifetime 1h;
EOF_HTTP

our $loc = <<'EOF_LOC';
location /jobs { audex_auth on; audex_jobs; }
location = /download { audex_auth optional; audex_download; }
EOF_LOC

# What is left of a job and its files: the MP3's files document and
# chunks, the video's, the job ("0 0 0 0 0\n" when all is gone).
sub leftovers {
    my ($job, $mp3, $video) = @_;
    return Audex::Test::mongo_eval(<<"PY");
import bson
m, v = bson.ObjectId("$mp3"), bson.ObjectId("$video")
print(db["mp3s.files"].count_documents({"_id": m}),
      db["mp3s.chunks"].count_documents({"files_id": m}),
      db["videos.files"].count_documents({"_id": v}),
      db["videos.chunks"].count_documents({"files_id": v}),
      db.jobs.count_documents({"_id": "$job"}))
PY
}

run_tests(setup => sub {
    open my $fh, '>', "$ENV{TEST_NGINX_SERVROOT}/conf/link.secret" or die;
    print $fh "s" x 40;
    close $fh;

    my $out = Audex::Test::mongo_eval(<<"PY");
import datetime, bson
import hashlib, struct
for u in ("$owner", "$other", "$third"):
    db.users.insert_one(dict(_id=bson.ObjectId(u), email=u + "\@x"))
b = gridfs.GridFSBucket(db, "mp3s")
v = gridfs.GridFSBucket(db, "videos")
now = datetime.datetime(2026, 11, 24, 10, 0, 0, 123000)
def job(state, minutes, owner, **kw):
    jid = str(bson.ObjectId())
    d = dict(_id=jid, state=state, progress=0, video_fid=None, mp3_fid=None,
             error=None, owner_id=owner, filename="clip.mp4",
             created_at=now + datetime.timedelta(minutes=minutes),
             updated_at=now + datetime.timedelta(minutes=minutes))
    d.update(kw)
    db.jobs.insert_one(d)
    return jid
vf = v.upload_from_stream("clip.mp4", b"video" * 100, metadata={"owner_id": "$owner"})
mf = b.upload_from_stream("clip.mp3", b"ID3mp3" * 100, metadata={"owner_id": "$owner"})
print("queued", job("queued", 1, "$owner", video_fid=str(vf)))
print("converting", job("converting", 2, "$owner", progress=42))
print("done", job("done", 3, "$owner", progress=100, video_fid=str(vf), mp3_fid=str(mf)))
print("failed", job("failed", 4, "$owner", error="no audio stream"))
print("others", job("done", 5, "$other"))
print("vf", vf)
print("mf", mf)
def put(bucket, data, owner):
    # as audex writes a file: chunk ids derived from (files_id, n)
    fid, cs = bson.ObjectId(), 255 * 1024
    for n in range((len(data) + cs - 1) // cs):
        cid = hashlib.sha256(fid.binary + struct.pack(">i", n)).digest()[:12]
        db[bucket + ".chunks"].insert_one(dict(_id=bson.ObjectId(cid),
            files_id=fid, n=n, data=data[n * cs:(n + 1) * cs]))
    db[bucket + ".files"].insert_one(dict(_id=fid, length=len(data),
        chunkSize=cs, uploadDate=now, filename="x",
        metadata={"owner_id": owner}))
    return fid
for name in ("cut", "seen"):
    dv = put("videos", b"v" * 300000, "$third")
    dm = put("mp3s", b"m" * 300000, "$third")
    print(name, job("deleting", 6, "$third", progress=100,
                    video_fid=str(dv), mp3_fid=str(dm)))
    print(name + "_vf", dv)
    print(name + "_mf", dm)
    if name == "cut":
        # stopped inside the MP3's removal: its files document is gone
        db["mp3s.files"].delete_one({"_id": dm})
PY
    %id = map { split ' ' } split /\n/, $out;
    die "setup: $out" unless $id{done} && $id{vf};
});

__DATA__

=== TEST 1: a queued and a converting job
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["GET /jobs/$::id{queued}", "GET /jobs/$::id{converting}"]
--- more_headers eval
[Audex::Test::bearer($::owner), Audex::Test::bearer($::owner)]
--- error_code eval
[200, 200]
--- response_body eval
[
 qq{{"job_id":"$::id{queued}","state":"queued","progress":0,"video_fid":"$::id{vf}","mp3_fid":null,"error":null,"filename":"clip.mp4","created_at":"2026-11-24T10:01:00.123Z","updated_at":"2026-11-24T10:01:00.123Z","download_url":null}\n},
 qq{{"job_id":"$::id{converting}","state":"converting","progress":42,"video_fid":null,"mp3_fid":null,"error":null,"filename":"clip.mp4","created_at":"2026-11-24T10:02:00.123Z","updated_at":"2026-11-24T10:02:00.123Z","download_url":null}\n},
]



=== TEST 2: a done job has a signed download link that works without a token
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
"GET /jobs/$::id{done}"
--- more_headers eval
Audex::Test::bearer($::owner)
--- error_code: 200
--- response_body_like eval
qq{"state":"done","progress":100,.*"mp3_fid":"$::id{mf}".*"download_url":"/download\\?fid=$::id{mf}&exp=\\d+&sig=[\\w-]{43}"}
--- check
my ($url) = $res->{body} =~ m{"download_url":"([^"]+)"};
my ($exp) = $url =~ /exp=(\d+)/;
Audex::Test::ok(abs($exp - time - 3600) < 60, "the link lives audex_link_lifetime");
my $r = Audex::Test::http_request("GET $url HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
Audex::Test::is($r->{code}, 200, "the link downloads");
Audex::Test::is($r->{body}, "ID3mp3" x 100, "the MP3 bytes");



=== TEST 3: a failed job says why
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
"GET /jobs/$::id{failed}"
--- more_headers eval
Audex::Test::bearer($::owner)
--- error_code: 200
--- response_body_like
"state":"failed",.*"error":"no audio stream"



=== TEST 4: the list: the caller's jobs, newest first, limited
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["GET /jobs", "GET /jobs?limit=2", "GET /jobs?limit=0", "GET /jobs"]
--- more_headers eval
[Audex::Test::bearer($::owner), Audex::Test::bearer($::owner), Audex::Test::bearer($::owner), Audex::Test::bearer($::other)]
--- error_code eval
[200, 200, 400, 200]
--- check
my @ids = $res->{body} =~ /"job_id":"(\w+)"/g;
my @want = (
    [@::id{qw(failed done converting queued)}],
    [@::id{qw(failed done)}],
    [],
    [$::id{others}],
);
Audex::Test::is("@ids", "@{ $want[$i] }", "jobs listed, newest first");



=== TEST 5: another user's job is 404; an admin sees it; bad ids are 400
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["GET /jobs/$::id{done}", "GET /jobs/$::id{done}", "GET /jobs/nope", "GET /jobs/64b0000000000000000000ff"]
--- more_headers eval
[Audex::Test::bearer($::other), Audex::Test::bearer($::other, 1), Audex::Test::bearer($::owner), Audex::Test::bearer($::owner)]
--- error_code eval
[404, 200, 400, 404]
--- response_body eval
[qq{{"error":"not found"}\n}, undef, qq{{"error":"invalid job id"}\n}, qq{{"error":"not found"}\n}]



=== TEST 6: no token: 401; other methods: 405
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["GET /jobs/$::id{done}", "PUT /jobs/$::id{done}", "DELETE /jobs"]
--- more_headers eval
["", Audex::Test::bearer($::owner), Audex::Test::bearer($::owner)]
--- error_code eval
[401, 405, 405]



=== TEST 7: a valid token whose sub is no account: 401 invalid_token, "unknown user"
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["GET /jobs", "GET /jobs/$::id{done}", "DELETE /jobs/$::id{done}", "GET /jobs"]
--- more_headers eval
[
    Audex::Test::bearer('64b0000000000000000000aa'),
    Audex::Test::bearer('64b0000000000000000000aa', 1),
    Audex::Test::bearer('64b0000000000000000000aa', 1),
    Audex::Test::bearer('alice'),
]
--- error_code eval
[401, 401, 401, 401]
--- response_headers
WWW-Authenticate: Bearer realm="audex", error="invalid_token"
Content-Type: application/json
--- response_body
{"error":"unknown user"}
--- error_log
audex: jobs: no account "64b0000000000000000000aa"
audex: jobs: no account "alice"
--- check
return if $i != 2;
my $n = Audex::Test::mongo_eval("print(db.jobs.count_documents({}))");
Audex::Test::is($n, "7\n", "the job is kept");



=== TEST 8: DELETE of an unfinished job: 409, nothing removed
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
"DELETE /jobs/$::id{queued}"
--- more_headers eval
Audex::Test::bearer($::owner)
--- error_code: 409
--- response_body
{"error":"the job is not finished yet"}
--- check
my $n = Audex::Test::mongo_eval("print(db['videos.files'].count_documents({}), db.jobs.count_documents({}))");
Audex::Test::is($n, "3 7\n", "video and jobs kept");



=== TEST 9: DELETE of a done job removes its MP3 and video from GridFS, then the job
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["DELETE /jobs/$::id{done}", "GET /jobs/$::id{done}", "DELETE /jobs/$::id{others}"]
--- more_headers eval
[Audex::Test::bearer($::owner), Audex::Test::bearer($::owner), Audex::Test::bearer($::owner)]
--- error_code eval
[204, 404, 404]
--- check
return if $i;
Audex::Test::is(::leftovers(@::id{qw(done mf vf)}), "0 0 0 0 0\n",
                "files, chunks and the job gone");



=== TEST 10: any prefix: the id is what follows the location's name, the list is at it
--- http_config eval: $::http
--- config
location /api/v1/jobs/ { audex_auth on; audex_jobs; }
--- request eval
["GET /api/v1/jobs/$::id{failed}", "GET /api/v1/jobs/?limit=2", "GET /api/v1/jobs/?limit=0",
 "GET /api/v1/jobs/x/$::id{failed}", "GET /api/v1/jobs/jobs"]
--- more_headers eval
[(Audex::Test::bearer($::owner)) x 5]
--- error_code eval
[200, 200, 400, 400, 400]
--- check
my @ids = $res->{body} =~ /"job_id":"(\w+)"/g;
my @want = ([$::id{failed}], [@::id{qw(failed converting)}], [], [], []);
Audex::Test::is("@ids", "@{ $want[$i] }", "the job, or the list, the uri names");



=== TEST 11: slashes after the name; an exact location serves the list
--- http_config eval: $::http
--- config
location /jobs { audex_auth on; audex_jobs; }
location = /mine { audex_auth on; audex_jobs; }
--- request eval
["GET /jobs/", "GET /jobs/$::id{queued}/", "GET /mine?limit=1", "GET /jobsx"]
--- more_headers eval
[(Audex::Test::bearer($::owner)) x 4]
--- error_code eval
[200, 200, 200, 400]
--- check
my @ids = $res->{body} =~ /"job_id":"(\w+)"/g;
my @want = ([@::id{qw(failed converting queued)}], [$::id{queued}], [$::id{failed}], []);
Audex::Test::is("@ids", "@{ $want[$i] }", "the job, or the list, the uri names");



=== TEST 12: a DELETE cut short leaves the job deleting; the next DELETE finishes it
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["DELETE /jobs/$::id{cut}", "GET /jobs/$::id{cut}", "DELETE /jobs/$::id{cut}"]
--- more_headers eval
[(Audex::Test::bearer($::third)) x 3]
--- error_code eval
[204, 404, 404]
--- check
return if $i;
Audex::Test::is(::leftovers(@::id{qw(cut cut_mf cut_vf)}), "0 0 0 0 0\n",
                "the rest of the MP3, the video and the job gone");



=== TEST 13: a GET that finds a job deleting shows it so, without a link, and finishes it
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["GET /jobs/$::id{seen}", "GET /jobs/$::id{seen}"]
--- more_headers eval
[(Audex::Test::bearer($::third)) x 2]
--- error_code eval
[200, 404]
--- response_body eval
[qq{{"job_id":"$::id{seen}","state":"deleting","progress":100,"video_fid":"$::id{seen_vf}","mp3_fid":"$::id{seen_mf}","error":null,"filename":"clip.mp4","created_at":"2026-11-24T10:06:00.123Z","updated_at":"2026-11-24T10:06:00.123Z","download_url":null}\n},
 qq{{"error":"not found"}\n}]
--- check
return if $i;
Audex::Test::is(::leftovers(@::id{qw(seen seen_mf seen_vf)}), "0 0 0 0 0\n",
                "the MP3, the video and the job gone");
