# docs/openapi.yaml: linted by Redocly's CLI, and every operation checked
# against the live module.  Each request below is sent to a real nginx;
# its status must be the one the table expects, and the answer (status,
# required headers, Content-Type, JSON body) must conform to what the
# document says of that operation and status (t/lib/Audex/Web/
# openapi_check.py, JSON Schema 2020-12 with jsonschema).  At the end
# every documented operation must have been exercised.
#
# POST /upload, the tus endpoints and GET /metrics are checked when the
# module has their directives (audex_upload, audex_tus, audex_metrics);
# until then they are skipped, saying why.

use lib 't/lib';
use Audex::Test;
use Audex::Web::OpenAPI;
use Audex::Media qw(make_media);
use Digest::SHA qw(hmac_sha256 sha1);
use File::Copy qw(copy);
use JSON::PP qw(decode_json);
use MIME::Base64 qw(encode_base64);

our $api = Audex::Web::OpenAPI->new;
our (%id, %skip, $video);

sub basic { "Authorization: Basic " . encode_base64("$_[0]:$_[1]", '') }

our $ann = 'Authorization: Bearer $TEST_NGINX_ANN';
our $carol = 'Authorization: Bearer $TEST_NGINX_CAROL';
our $forged = 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA';

# Sends nothing itself: checks answer $res to case $c (the block sent it).
sub api {
    my ($c, $res) = @_;
    my ($line) = split /\n/, $c->{req};
    $line =~ s/\$(TEST_NGINX_\w+)/$ENV{$1}/g;
    my ($method, $target) = split ' ', $line;

    is($res->{code}, $c->{code}, "$c->{name}: $method answers $c->{code}")
        or diag($res->{body});

    my ($op, @errors) = $api->check($method, $target, $res);
    ok(!@errors, "$c->{name}: conforms to $op $res->{code}")
        or diag(join "\n", @errors);

    $c->{then}->($res) if $c->{then};
}

# For a block whose feature the module may not have yet.
sub api_or_skip {
    my ($feature, $c, $res, $i) = @_;
    if ($skip{$feature}) {
        if ($i == 0) {
            Test::More->builder->skip("$feature: $skip{$feature}");
            diag("skipping the $feature checks: $skip{$feature}")
                unless $skip{"$feature said"}++;
        }
        return;
    }
    api($c, $res);
}

sub save {
    my ($name, $field) = @_;
    return sub { $ENV{"TEST_NGINX_$name"} = decode_json($_[0]{body})->{$field} };
}

sub multipart {
    my (%part) = @_;
    my $b = 'audexBoundary7MA4YWxk';
    my $body = '';
    for my $name (sort keys %part) {
        my ($value, $filename, $type) = ref $part{$name} ? @{ $part{$name} }
                                                         : ($part{$name});
        $body .= "--$b\r\nContent-Disposition: form-data; name=\"$name\"";
        $body .= "; filename=\"$filename\"" if defined $filename;
        $body .= "\r\nContent-Type: $type" if defined $type;
        $body .= "\r\n\r\n$value\r\n";
    }
    return ("Content-Type: multipart/form-data; boundary=$b", "$body--$b--\r\n");
}

our $http = <<'EOF_HTTP';
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_link_secret $TEST_NGINX_SERVROOT/conf/link.secret;
audex_backend_timeout 2s;
EOF_HTTP

our $loc = <<'EOF_LOC';
location = /login { audex_login; }
location = /logout { audex_auth on; audex_logout; }
location /jobs { audex_auth on; audex_jobs; }
location = /download { audex_auth optional; audex_download; }
location = /healthz { audex_healthz; }
EOF_LOC

our $metrics_loc = 'location = /metrics { audex_metrics; }';
our $upload_loc = 'location = /upload { audex_auth on; audex_upload; client_max_body_size 10m; }';
our $tus_loc = 'location /files { audex_auth on; audex_tus; }';

our (@login, @jobs, @download, @health, @metrics, @down_mongo, @down_redis,
     @upload, @upload_big, @upload_down, @tus);

# the tus upload's state, changed as another nginx or the clock would
sub tus_state {
    my ($path, $set) = @_;
    my ($fid) = $path =~ m{([0-9a-f]{24})$} or die "no upload in $path";
    Audex::Test::mongo_eval(<<"PY");
import datetime
from bson import ObjectId
now = datetime.datetime.now(datetime.timezone.utc)
db.tus.update_one({'_id': ObjectId('$fid')}, {'\$set': $set})
PY
}

run_tests(setup => sub {
    my $root = $ENV{TEST_NGINX_SERVROOT};
    my $key = 'L' x 40;
    open my $fh, '>', "$root/conf/link.secret" or die;
    print $fh $key;
    close $fh;

    # the document itself, then proof that the linter reads it closely
    my ($rc, $out) = Audex::Web::OpenAPI::lint();
    is($rc, 0, 'docs/openapi.yaml passes redocly lint (recommended-strict)')
        or diag($out);

    my $bad = "$root/conf/openapi-bad.yaml";
    open my $in, '<', $Audex::Web::OpenAPI::SPEC or die;
    open my $o, '>', $bad or die;
    while (<$in>) { s/^(\s+progress: )42$/${1}142/; print $o $_ }
    close $o;
    ($rc, $out) = Audex::Web::OpenAPI::lint($bad);
    ok($rc != 0 && $out =~ /no-invalid-media-type-examples/,
       'the linter rejects an example that breaks its schema');

    # and that the checker can say no
    my %neg = (
        'a job without its fields' => ['GET', '/jobs', 200,
            'application/json', '{"jobs":[{"job_id":"64b000000000000000000001"}]}'],
        'an HTML error page' => ['GET', '/jobs/64b000000000000000000001', 404,
            'text/html', '<html>404</html>'],
        'an undocumented status' => ['GET', '/healthz', 418,
            'application/json', '{"error":"teapot"}'],
        'an undocumented path' => ['GET', '/nope', 200, 'text/plain', 'x'],
        'a bad date' => ['GET', '/jobs', 200, 'application/json',
            '{"jobs":[{"job_id":"64b000000000000000000001","state":"done","progress":1,"video_fid":null,"mp3_fid":null,"error":null,"filename":null,"created_at":"yesterday","updated_at":null,"download_url":null}]}'],
        'a 401 without its challenge' => ['GET', '/jobs', 401,
            'application/json', '{"error":"token required"}'],
    );
    for my $n (sort keys %neg) {
        my ($m, $t, $code, $type, $body) = @{ $neg{$n} };
        my ($op, @e) = $api->check($m, $t, { code => $code, body => $body,
            headers => { 'content-type' => [$type] } });
        ok(scalar @e, "the checker rejects $n") or diag("$op accepted it");
    }

    $skip{upload} = Audex::Web::OpenAPI::directive_missing('audex_auth on; audex_upload;');
    $skip{metrics} = Audex::Web::OpenAPI::directive_missing('audex_metrics;');
    $skip{tus} = Audex::Web::OpenAPI::directive_missing('audex_auth on; audex_tus;')
                 // $skip{upload};

    # every documented handler exists: one that nginx -t refuses is a
    # broken build, not a reason to skip quietly
    for my $f (qw(upload metrics tus)) {
        ok(!$skip{$f}, "the module takes the $f directive")
            or diag($skip{$f});
    }

    add_user('ann@example.com', 'pw-ann-1');
    add_user('carol@example.com', 'pw-carol-3');
    $ENV{TEST_NGINX_ANN} = $ENV{TEST_NGINX_CAROL} = 'none';

    $out = Audex::Test::mongo_eval(<<'PY');
import datetime, bson
ann = str(db.users.find_one({"email": "ann@example.com"})["_id"])
bob = str(bson.ObjectId())
now = datetime.datetime(2026, 11, 24, 10, 0, 0, 123000)
mp3s = gridfs.GridFSBucket(db, "mp3s")
videos = gridfs.GridFSBucket(db, "videos")
vf = videos.upload_from_stream("talk.mp4", b"\0\0\0\x18ftypmp42" * 64,
                               metadata={"owner_id": ann})
mf = mp3s.upload_from_stream("talk.mp3", b"ID3\4\0\0\0\0\0\0" + b"\xff\xfb" * 2000,
                             metadata={"owner_id": ann})
def job(state, minutes, owner, **kw):
    jid = str(bson.ObjectId())
    d = dict(_id=jid, state=state, progress=0, video_fid=vf, mp3_fid=None,
             error=None, owner_id=owner, filename="talk.mp4",
             created_at=now + datetime.timedelta(minutes=minutes),
             updated_at=now + datetime.timedelta(minutes=minutes, seconds=5))
    d.update(kw)
    db.jobs.insert_one(d)
    return jid
print("queued", job("queued", 1, ann))
print("converting", job("converting", 2, ann, progress=37))
print("done", job("done", 3, ann, progress=100, mp3_fid=mf))
print("failed", job("failed", 4, ann, error="the file has no audio stream"))
print("bobs", job("done", 5, bob))
print("ann", ann)
print("mf", mf)
PY
    %id = map { split ' ' } split /\n/, $out;
    die "setup: $out" unless $id{done} && $id{mf} && $id{ann};

    # a correctly signed link that has expired
    my $exp = time - 60;
    my $sig = b64url(hmac_sha256("$id{mf}\n$id{ann}\n$exp", $key));
    my $expired = "/download?fid=$id{mf}&exp=$exp&sig=$sig";

    @login = (
        { name => 'ann logs in', req => 'POST /login',
          hdr => basic('ann@example.com', 'pw-ann-1'), code => 200,
          then => save('ANN', 'token') },
        { name => 'carol logs in', req => 'POST /login',
          hdr => basic('Carol@Example.com', 'pw-carol-3'), code => 200,
          then => save('CAROL', 'token') },
        { name => 'a bare token', req => 'POST /login',
          hdr => basic('ann@example.com', 'pw-ann-1') . "\nAccept: text/plain",
          code => 200 },
        { name => 'a wrong password', req => 'POST /login',
          hdr => basic('ann@example.com', 'nope'), code => 401 },
        { name => 'no credentials', req => 'POST /login', hdr => '',
          code => 401 },
        { name => 'GET /login', req => 'GET /login', hdr => '', code => 405 },
        { name => 'a third token, to revoke', req => 'POST /login',
          hdr => basic('ann@example.com', 'pw-ann-1'), code => 200,
          then => save('GONE', 'token') },
        { name => 'logout', req => 'POST /logout',
          hdr => 'Authorization: Bearer $TEST_NGINX_GONE', code => 204 },
        { name => 'logout again', req => 'POST /logout',
          hdr => 'Authorization: Bearer $TEST_NGINX_GONE', code => 401 },
        { name => 'logout without a token', req => 'POST /logout',
          hdr => '', code => 401 },
        { name => 'GET /logout', req => 'GET /logout', hdr => $ann,
          code => 405 },
    );

    @jobs = (
        { name => "ann's jobs", req => 'GET /jobs', hdr => $ann, code => 200,
          then => sub { is(scalar(() = $_[0]{body} =~ /"job_id"/g), 4,
                           "four jobs listed") } },
        { name => 'two of them', req => 'GET /jobs?limit=2', hdr => $ann,
          code => 200 },
        { name => "carol's none", req => 'GET /jobs', hdr => $carol,
          code => 200,
          then => sub { like($_[0]{body}, qr/^\{"jobs":\[\],"usage":\{"jobs_in_progress":0,"bytes_stored":0,/, 'an empty list, with no usage') } },
        { name => 'HEAD of the list', req => 'HEAD /jobs', hdr => $ann,
          code => 200 },
        { name => 'a zero limit', req => 'GET /jobs?limit=0', hdr => $ann,
          code => 400 },
        { name => 'no token', req => 'GET /jobs', hdr => '', code => 401 },
        { name => 'a forged token', req => 'GET /jobs', hdr => $forged,
          code => 401 },
        { name => 'DELETE the list', req => 'DELETE /jobs', hdr => $ann,
          code => 405 },
        { name => 'a queued job', req => "GET /jobs/$id{queued}", hdr => $ann,
          code => 200 },
        { name => 'a converting job', req => "GET /jobs/$id{converting}",
          hdr => $ann, code => 200 },
        { name => 'a done job', req => "GET /jobs/$id{done}", hdr => $ann,
          code => 200, then => sub {
              my $url = decode_json($_[0]{body})->{download_url} // '';
              $ENV{TEST_NGINX_LINK} = $url;
              # another first character: a signature that differs
              ($ENV{TEST_NGINX_BADLINK} = $url)
                  =~ s/sig=(.)/'sig=' . ($1 eq 'A' ? 'B' : 'A')/e;
          } },
        { name => 'a failed job', req => "GET /jobs/$id{failed}", hdr => $ann,
          code => 200 },
        { name => 'a malformed id', req => 'GET /jobs/nope', hdr => $ann,
          code => 400 },
        { name => "bob's job", req => "GET /jobs/$id{bobs}", hdr => $ann,
          code => 404 },
        { name => 'a converting job is kept', req => "DELETE /jobs/$id{converting}",
          hdr => $ann, code => 409 },
        { name => 'POST to a job', req => "POST /jobs/$id{queued}\nx",
          hdr => $ann, code => 405 },
        { name => 'a failed job is deleted', req => "DELETE /jobs/$id{failed}",
          hdr => $ann, code => 204 },
        { name => 'and is gone', req => "GET /jobs/$id{failed}", hdr => $ann,
          code => 404 },
        { name => 'no token to delete', req => "DELETE /jobs/$id{done}",
          hdr => '', code => 401 },
        { name => 'a malformed id to delete', req => 'DELETE /jobs/x',
          hdr => $ann, code => 400 },
        { name => "bob's job to delete", req => "DELETE /jobs/$id{bobs}",
          hdr => $ann, code => 404 },
    );

    my $dl = "/download?fid=$id{mf}";
    @download = (
        { name => 'the owner downloads', req => "GET $dl", hdr => $ann,
          code => 200, then => sub {
              $ENV{TEST_NGINX_ETAG} = $_[0]{headers}{etag}[0] // 'none';
              $ENV{TEST_NGINX_LM} = $_[0]{headers}{'last-modified'}[0] // 'none';
          } },
        { name => 'a range', req => "GET $dl", hdr => "$ann\nRange: bytes=0-99",
          code => 206 },
        { name => 'past the end', req => "GET $dl",
          hdr => "$ann\nRange: bytes=99999-", code => 416 },
        { name => 'not modified', req => "GET $dl",
          hdr => "$ann\nIf-None-Match: \$TEST_NGINX_ETAG", code => 304 },
        { name => 'not modified since', req => "GET $dl",
          hdr => "$ann\nIf-Modified-Since: \$TEST_NGINX_LM", code => 304 },
        { name => 'another ETag to match', req => "GET $dl",
          hdr => qq{$ann\nIf-Match: "sha256-0"}, code => 412 },
        { name => 'HEAD', req => "HEAD $dl", hdr => $ann, code => 200 },
        { name => 'HEAD of a range', req => "HEAD $dl",
          hdr => "$ann\nRange: bytes=10-19", code => 206 },
        { name => 'the signed link', req => 'GET $TEST_NGINX_LINK', hdr => '',
          code => 200 },
        { name => 'a wrong signature', req => 'GET $TEST_NGINX_BADLINK',
          hdr => '', code => 403 },
        { name => 'an expired link', req => "GET $expired", hdr => '',
          code => 403 },
        { name => 'neither token nor link', req => "GET $dl", hdr => '',
          code => 401 },
        { name => 'a forged token', req => "GET $dl", hdr => $forged,
          code => 401 },
        { name => 'a malformed file id', req => 'GET /download?fid=zz',
          hdr => $ann, code => 400 },
        { name => 'no such file', req => 'GET /download?fid=64b0000000000000000000ff',
          hdr => $ann, code => 404 },
        { name => "not carol's file", req => "GET $dl", hdr => $carol,
          code => 404 },
        { name => 'POST', req => "POST $dl\nx", hdr => $ann, code => 405 },
    );

    @health = (
        { name => 'healthy', req => 'GET /healthz', hdr => '', code => 200 },
        { name => 'HEAD healthz', req => 'HEAD /healthz', hdr => '',
          code => 200 },
        { name => 'POST healthz', req => "POST /healthz\nx", hdr => '',
          code => 405 },
    );

    @metrics = (
        { name => 'metrics', req => 'GET /metrics', hdr => '', code => 200 },
        { name => 'HEAD metrics', req => 'HEAD /metrics', hdr => '',
          code => 200 },
        { name => 'DELETE metrics', req => 'DELETE /metrics', hdr => '',
          code => 405 },
    );

    @down_mongo = (
        { name => 'mongo down: healthz', req => 'GET /healthz', hdr => '',
          code => 503 },
        { name => 'mongo down: login', req => 'POST /login',
          hdr => basic('ann@example.com', 'pw-ann-1'), code => 503 },
        { name => 'mongo down: a job', req => "GET /jobs/$id{queued}",
          hdr => $ann, code => 503 },
        { name => 'mongo down: the list', req => 'GET /jobs', hdr => $ann,
          code => 503 },
        { name => 'mongo down: delete', req => "DELETE /jobs/$id{done}",
          hdr => $ann, code => 503 },
        { name => 'mongo down: download', req => "GET $dl", hdr => $ann,
          code => 503 },
    );

    @down_redis = (
        { name => 'redis down: healthz', req => 'GET /healthz', hdr => '',
          code => 503 },
    );

    return if $skip{upload};

    my $dir = "$root/media";
    mkdir $dir;
    my $path = make_media($dir, { file => 'clip.mp4', seconds => 1,
                                  video => 'libx264',
                                  audio => ['aac 44100 1 64k'] });
    $video = do { local (@ARGV, $/) = ($path); binmode ARGV; <> };

    my ($mp, $body) = multipart(file => [$video, 'clip.mp4', 'video/mp4']);
    my ($mpq, $bodyq) = multipart(file => [$video, 'clip.mp4', 'video/mp4'],
                                  quality => 2);
    my ($mpb, $bodyb) = multipart(file => [$video, 'clip.mp4', 'video/mp4'],
                                  bitrate => 33);
    my ($mpn, $bodyn) = multipart(title => 'no file here');

    @upload = (
        { name => 'a multipart upload', req => "POST /upload\n$body",
          hdr => "$ann\n$mp", code => 202,
          then => save('STATUS_URL', 'status_url') },
        { name => 'its job', req => 'GET $TEST_NGINX_STATUS_URL', hdr => $ann,
          code => 200 },
        { name => 'a raw upload', req => "POST /upload?filename=clip.mp4&bitrate=128\n$video",
          hdr => "$ann\nContent-Type: video/mp4", code => 202 },
        { name => 'a quality field', req => "POST /upload\n$bodyq",
          hdr => "$ann\n$mpq", code => 202 },
        { name => 'no token', req => "POST /upload\n$body", hdr => $mp,
          code => 401 },
        { name => 'a bitrate field LAME lacks', req => "POST /upload\n$bodyb",
          hdr => "$ann\n$mpb", code => 400 },
        { name => 'a quality past 9', req => "POST /upload?quality=12\n$body",
          hdr => "$ann\n$mp", code => 400 },
        { name => 'no file part', req => "POST /upload\n$bodyn",
          hdr => "$ann\n$mpn", code => 400 },
        { name => 'text', req => "POST /upload?filename=a.txt\nhello",
          hdr => "$ann\nContent-Type: text/plain", code => 415 },
        { name => 'GET /upload', req => 'GET /upload', hdr => $ann,
          code => 405 },
    );

    @upload_big = (
        { name => 'too large', req => "POST /upload?filename=clip.mp4\n" . ('v' x 4096),
          hdr => "$ann\nContent-Type: video/mp4", code => 413 },
    );

    @upload_down = (
        { name => 'redis down: upload', req => "POST /upload\n$body",
          hdr => "$ann\n$mp", code => 503 },
    );

    # tus: an upload in two halves, one created with its first half, and
    # each refusal; the lock of another nginx and the expiry are made in
    # the upload's state
    my $tr = 'Tus-Resumable: 1.0.0';
    my $oct = 'Content-Type: application/offset+octet-stream';
    my $meta = 'Upload-Metadata: filename ' . encode_base64('clip.mp4', '');
    my $len = length $video;
    my $half = int($len / 2);
    my ($first, $rest) = (substr($video, 0, $half), substr($video, $half));
    my $loc = sub {
        my ($name) = @_;
        return sub {
            ($ENV{"TEST_NGINX_$name"}) = ($_[0]{headers}{location}[0] // '')
                =~ m{^(/files/[0-9a-f]{24})$};
        };
    };
    my $at = sub { "$ann\n$tr\n$oct\nUpload-Offset: $_[0]" . ($_[1] // '') };

    @tus = (
        { name => 'tus: OPTIONS', req => 'OPTIONS /files', hdr => $ann,
          code => 204 },
        { name => 'tus: OPTIONS without a token', req => 'OPTIONS /files',
          hdr => '', code => 401 },
        { name => 'tus: create', req => 'POST /files',
          hdr => "$ann\n$tr\nUpload-Length: $len\n$meta", code => 201,
          then => $loc->('TUS') },
        { name => 'tus: create with the first half', req => "POST /files/\n$first",
          hdr => "$ann\n$tr\nUpload-Length: $len\n$meta\n$oct", code => 201,
          then => $loc->('TUS2') },
        { name => 'tus: created with text', req => "POST /files\n" . ('not a video ' x 20),
          hdr => "$ann\n$tr\nUpload-Length: 240\n$oct", code => 415 },
        { name => 'tus: created with a checksum mismatch', req => "POST /files\n$first",
          hdr => "$ann\n$tr\nUpload-Length: $len\n$oct\nUpload-Checksum: sha1 "
                 . encode_base64(sha1('other'), ''), code => 460 },
        { name => 'tus: no Upload-Length', req => 'POST /files',
          hdr => "$ann\n$tr", code => 400 },
        { name => 'tus: past Tus-Max-Size', req => 'POST /files',
          hdr => "$ann\n$tr\nUpload-Length: 99999999999", code => 413 },
        { name => 'tus: no Tus-Resumable', req => 'POST /files',
          hdr => "$ann\nUpload-Length: $len", code => 412 },
        { name => 'tus: GET /files', req => 'GET /files', hdr => "$ann\n$tr",
          code => 405 },
        { name => 'tus: HEAD', req => 'HEAD $TEST_NGINX_TUS',
          hdr => "$ann\n$tr", code => 200 },
        { name => "tus: carol's HEAD", req => 'HEAD $TEST_NGINX_TUS',
          hdr => "$carol\n$tr", code => 404 },
        { name => 'tus: no such upload', req => 'HEAD /files/64b0000000000000000000ff',
          hdr => "$ann\n$tr", code => 404 },
        { name => 'tus: GET an upload', req => 'GET $TEST_NGINX_TUS',
          hdr => "$ann\n$tr", code => 405 },
        { name => 'tus: PATCH without Tus-Resumable', req => "PATCH \$TEST_NGINX_TUS\n$first",
          hdr => "$ann\n$oct\nUpload-Offset: 0", code => 412 },
        { name => 'tus: a wrong offset', req => "PATCH \$TEST_NGINX_TUS\n$first",
          hdr => $at->(7), code => 409 },
        { name => 'tus: a malformed offset', req => "PATCH \$TEST_NGINX_TUS\n$first",
          hdr => $at->('x'), code => 400 },
        { name => 'tus: not offset+octet-stream', req => "PATCH \$TEST_NGINX_TUS\n$first",
          hdr => "$ann\n$tr\nContent-Type: video/mp4\nUpload-Offset: 0",
          code => 415 },
        { name => 'tus: a checksum mismatch', req => "PATCH \$TEST_NGINX_TUS\n$first",
          hdr => $at->(0, "\nUpload-Checksum: sha1 "
                          . encode_base64(sha1('other'), '')), code => 460 },
        { name => 'tus: the first half', req => "PATCH \$TEST_NGINX_TUS\n$first",
          hdr => $at->(0, "\nUpload-Checksum: sha1 "
                          . encode_base64(sha1($first), '')), code => 204,
          then => sub { tus_state($ENV{TEST_NGINX_TUS},
              "{'lock': 'elsewhere', 'lock_until': now + datetime.timedelta(minutes=1)}") } },
        { name => 'tus: held by another request', req => "PATCH \$TEST_NGINX_TUS\n$rest",
          hdr => $at->($half), code => 423 },
        { name => 'tus: held, DELETE', req => 'DELETE $TEST_NGINX_TUS',
          hdr => "$ann\n$tr", code => 423,
          then => sub { tus_state($ENV{TEST_NGINX_TUS},
              "{'lock_until': now - datetime.timedelta(minutes=1)}") } },
        { name => 'tus: past Upload-Length', req => "PATCH \$TEST_NGINX_TUS\n${rest}x",
          hdr => $at->($half), code => 413 },
        { name => 'tus: the rest', req => "PATCH \$TEST_NGINX_TUS\n$rest",
          hdr => $at->($half), code => 204,
          then => sub { ok($_[0]{headers}{'audex-job-id'}, 'the last PATCH names the job') } },
        { name => 'tus: HEAD of a complete upload', req => 'HEAD $TEST_NGINX_TUS',
          hdr => "$ann\n$tr", code => 200 },
        { name => 'tus: a PATCH after the end', req => "PATCH \$TEST_NGINX_TUS\nx",
          hdr => $at->($len), code => 409,
          then => sub { tus_state($ENV{TEST_NGINX_TUS2},
              "{'expires_at': now - datetime.timedelta(minutes=1)}") } },
        { name => 'tus: expired', req => 'HEAD $TEST_NGINX_TUS2',
          hdr => "$ann\n$tr", code => 410 },
        { name => 'tus: terminated', req => 'DELETE $TEST_NGINX_TUS2',
          hdr => "$ann\n$tr", code => 204 },
        { name => 'tus: terminated, DELETE again', req => 'DELETE $TEST_NGINX_TUS2',
          hdr => "$ann\n$tr", code => 404 },
    );
});

my $cov = $api->coverage;
for my $op (sort keys %{ $cov->{operations} }) {
    my $feature = $op eq 'upload' ? 'upload' : $op eq 'metrics' ? 'metrics'
                : $op =~ /^tus/ ? 'tus' : '';
    if ($feature && $skip{$feature}) {
        Test::More->builder->skip("$op: $skip{$feature}");
        next;
    }
    my @seen = @{ $cov->{seen}{$op} // [] };
    ok(@seen, "operation $op was exercised");
    my %seen = map { $_ => 1 } @seen;
    my @not = grep { !$seen{$_} } @{ $cov->{operations}{$op} };
    Test::More::note("$op: statuses checked: @seen; documented but not provoked: @not");
}

__DATA__

=== TEST 1: login
--- http_config eval: $::http
--- config eval: $::loc
--- request eval: [map { $_->{req} } @::login]
--- more_headers eval: [map { $_->{hdr} } @::login]
--- check: ::api($::login[$i], $res)



=== TEST 2: jobs: list, get, delete
--- http_config eval: $::http
--- config eval: $::loc
--- request eval: [map { $_->{req} } @::jobs]
--- more_headers eval: [map { $_->{hdr} } @::jobs]
--- check: ::api($::jobs[$i], $res)



=== TEST 3: download: token, ranges, validators, signed links
--- http_config eval: $::http
--- config eval: $::loc
--- request eval: [map { $_->{req} } @::download]
--- more_headers eval: [map { $_->{hdr} } @::download]
--- check: ::api($::download[$i], $res)



=== TEST 4: healthz
--- http_config eval: $::http
--- config eval: $::loc
--- request eval: [map { $_->{req} } @::health]
--- more_headers eval: [map { $_->{hdr} } @::health]
--- check: ::api($::health[$i], $res)



=== TEST 5: MongoDB down: 503 with Retry-After everywhere
--- http_config eval: $::http
--- config eval: $::loc
--- down: mongo
--- request eval: [map { $_->{req} } @::down_mongo]
--- more_headers eval: [map { $_->{hdr} } @::down_mongo]
--- check: ::api($::down_mongo[$i], $res)
--- timeout: 20



=== TEST 6: Redis down: healthz names it
--- http_config eval: $::http
--- config eval: $::loc
--- down: redis
--- request eval: [map { $_->{req} } @::down_redis]
--- more_headers eval: [map { $_->{hdr} } @::down_redis]
--- check: ::api($::down_redis[$i], $res)



=== TEST 7: metrics
--- http_config eval: $::http
--- config eval: $::loc . ($::skip{metrics} ? '' : $::metrics_loc)
--- request eval: [map { $_->{req} } @::metrics]
--- more_headers eval: [map { $_->{hdr} } @::metrics]
--- check: ::api_or_skip('metrics', $::metrics[$i], $res, $i)



=== TEST 8: upload: multipart, raw, fields, errors
--- http_config eval: $::http
--- config eval: $::loc . ($::skip{upload} ? '' : $::upload_loc)
--- request eval: $::skip{upload} ? ['POST /upload'] : [map { $_->{req} } @::upload]
--- more_headers eval: $::skip{upload} ? [''] : [map { $_->{hdr} } @::upload]
--- check: ::api_or_skip('upload', $::upload[$i], $res, $i)
--- timeout: 30



=== TEST 9: upload: too large
--- http_config eval: $::http
--- config eval: $::loc . ($::skip{upload} ? '' : 'location = /upload { audex_auth on; audex_upload; audex_upload_max_size 1k; }')
--- request eval: $::skip{upload} ? ['POST /upload'] : [map { $_->{req} } @::upload_big]
--- more_headers eval: $::skip{upload} ? [''] : [map { $_->{hdr} } @::upload_big]
--- check: ::api_or_skip('upload', $::upload_big[$i], $res, $i)



=== TEST 10: upload: Redis down
--- http_config eval: $::http
--- config eval: $::loc . ($::skip{upload} ? '' : $::upload_loc)
--- down: redis
--- request eval: $::skip{upload} ? ['POST /upload'] : [map { $_->{req} } @::upload_down]
--- more_headers eval: $::skip{upload} ? [''] : [map { $_->{hdr} } @::upload_down]
--- check: ::api_or_skip('upload', $::upload_down[$i], $res, $i)
--- timeout: 30



=== TEST 11: tus: create, HEAD, PATCH, terminate, and each refusal
--- http_config eval: $::http
--- config eval: $::loc . ($::skip{tus} ? '' : $::tus_loc)
--- request eval: $::skip{tus} ? ['OPTIONS /files'] : [map { $_->{req} } @::tus]
--- more_headers eval: $::skip{tus} ? [''] : [map { $_->{hdr} } @::tus]
--- check: ::api_or_skip('tus', $::tus[$i], $res, $i)
--- timeout: 30
