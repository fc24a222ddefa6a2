# audex_tus: resumable uploads (tus 1.0.0) into GridFS.  Raw requests
# check each status; tuspy, a tus client from PyPI, uploads in pieces
# and resumes.  What was stored is read back with pymongo's GridFSBucket.

use lib 't/lib';
use Audex::Test;
use Audex::Media qw(make_media);
use Digest::SHA qw(sha1 sha256 sha256_hex);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(sleep);

our $dir = tempdir('audex-tus-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# one second of sine in MP4, then noise: about 1 MB, four chunks
our $mp4 = slurp(make_media($dir, { file => 'sine.mp4', seconds => 1,
                                    audio => ['aac 44100 1 64k'] }));
our $big = $mp4 . slurp(make_media($dir, { file => 'noise.bin',
                                           random => 1_000_000 }));
{
    open my $fh, '>:raw', "$dir/big.mp4" or die $!;
    print $fh $big;
}

our $ann = 'ann';
our $bob = 'bob';

sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or die "$path: $!";
    local $/;
    return scalar <$fh>;
}

our %auth;
sub auth { $auth{$_[0]} //= bearer(sprintf('64b0000000000000000000%02d',
                                          $_[0] eq 'ann' ? 1 : 2)) }

# one request: method, uri, user, [header lines], body
sub tus {
    my ($method, $uri, $user, $headers, $body) = @_;
    my $raw = "$method $uri HTTP/1.1\r\nHost: localhost\r\n"
            . "Connection: close\r\n" . auth($user) . "\r\n";
    $raw .= "Tus-Resumable: 1.0.0\r\n"
        unless grep { /^Tus-Resumable:/i } @{ $headers || [] };
    $raw .= "$_\r\n" for grep { !/^Tus-Resumable: none$/ } @{ $headers || [] };
    $raw .= "Content-Length: " . length($body) . "\r\n" if defined $body;
    return http_request($raw . "\r\n" . ($body // ''));
}

sub create {
    my ($user, $length, @h) = @_;
    my $res = tus('POST', '/files/', $user,
                  ["Upload-Length: $length",
                   'Upload-Metadata: filename ' . encode_base64('clip.mp4', '')
                   . ',filetype ' . encode_base64('video/mp4', ''), @h]);
    is($res->{code}, 201, 'created') or diag($res->{raw} // $res->{error});
    my ($loc) = ($res->{headers}{location}[0] // '') =~ m{^(/files/[0-9a-f]{24})$};
    ok($loc, "Location names the upload") or diag($res->{raw});
    return $loc;
}

sub patch {
    my ($loc, $user, $offset, $bytes, @h) = @_;
    return tus('PATCH', $loc, $user,
               ["Upload-Offset: $offset",
                'Content-Type: application/offset+octet-stream', @h], $bytes);
}

sub offset_of {
    my ($loc, $user) = @_;
    my $res = tus('HEAD', $loc, $user);
    return $res->{code} == 200 ? $res->{headers}{'upload-offset'}[0]
                               : "status $res->{code}";
}

# GridFS, the job and what is left of the upload, for the file $fid
sub stored {
    my ($fid) = @_;
    my $out = mongo_eval(<<"PY");
import hashlib
from bson import ObjectId
fid = ObjectId('$fid')
f = db['videos.files'].find_one({'_id': fid})
data = gridfs.GridFSBucket(db, 'videos').open_download_stream(fid).read() if f else b''
jobs = list(db.jobs.find({'video_fid': fid}))
print(json.dumps({
    'sha256': hashlib.sha256(data).hexdigest(), 'size': len(data),
    'files': 1 if f else 0,
    'meta_sha256': f['metadata'].get('sha256') if f else None,
    'filename': f['filename'] if f else None,
    'contentType': f.get('contentType') if f else None,
    'chunks': db['videos.chunks'].count_documents({'files_id': fid}),
    'jobs': len(jobs), 'job': jobs[0]['_id'] if jobs else None,
    'state': db.tus.count_documents({'_id': fid}),
    'record': db.uploads.count_documents({'_id': fid}),
}))
PY
    return JSON::PP::decode_json($out);
}

sub stream_jobs {
    my ($fid) = @_;
    my $n = () = redis_cli('XRANGE', 'video', '-', '+') =~ /^\Q$fid\E$/mg;
    return $n;
}

sub fid { ($_[0] =~ m{([0-9a-f]{24})$})[0] }

sub check_complete {
    my ($loc, $content, $what) = @_;
    my $s = stored(fid($loc));
    is($s->{files}, 1, "$what: the files document");
    is($s->{size}, length $content, "$what: size");
    is($s->{sha256}, sha256_hex($content), "$what: GridFS reads back the same bytes");
    is($s->{meta_sha256}, sha256_hex($content), "$what: metadata.sha256");
    is($s->{filename}, 'clip.mp4', "$what: filename");
    is($s->{contentType}, 'video/mp4', "$what: contentType");
    is($s->{chunks}, int((length($content) + 261119) / 261120), "$what: chunks");
    is($s->{jobs}, 1, "$what: exactly one job");
    is(stream_jobs(fid($loc)), 1, "$what: exactly one stream entry");
    is($s->{record}, 0, "$what: no upload record left");
}

run_tests();

__DATA__

=== TEST 1: OPTIONS: version, extensions, max size, checksums
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; audex_upload_max_size 10m; }
--- raw_request eval
"OPTIONS /files/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. ::auth('ann') . "\r\n\r\n"
--- error_code: 204
--- response_headers
Tus-Resumable: 1.0.0
Tus-Version: 1.0.0
Tus-Extension: creation,creation-with-upload,termination,checksum,expiration
Tus-Max-Size: 10485760
Tus-Checksum-Algorithm: sha1,sha256



=== TEST 2: no token 401, no Tus-Resumable 412, no Upload-Length 400, too large 413
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; audex_upload_max_size 1m; }
--- request eval
["POST /files/", "POST /files/", "POST /files/", "POST /files/"]
--- more_headers eval
["Tus-Resumable: 1.0.0\nUpload-Length: 10",
 ::auth('ann') . "\nUpload-Length: 10",
 ::auth('ann') . "\nTus-Resumable: 1.0.0",
 ::auth('ann') . "\nTus-Resumable: 1.0.0\nUpload-Length: 1048577"]
--- error_code eval
[401, 412, 400, 413]
--- check
is($res->{headers}{'tus-version'}[0], '1.0.0', 'Tus-Version on 412') if $i == 1;
--- no_check_alerts



=== TEST 3: create, HEAD, PATCH in three pieces; complete: one job
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; }
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- check
my $len = length $::big;
my $loc = ::create('ann', $len);
my $h = ::tus('HEAD', $loc, 'ann');
is($h->{code}, 200, 'HEAD');
is($h->{headers}{'upload-offset'}[0], 0, 'offset 0');
is($h->{headers}{'upload-length'}[0], $len, 'Upload-Length');
is($h->{headers}{'cache-control'}[0], 'no-store', 'Cache-Control');
like($h->{headers}{'upload-expires'}[0], qr/GMT$/, 'Upload-Expires');

# 100 bytes (a partial chunk: kept as the tail), then 400000, then the rest
my @cuts = (0, 100, 400_100, $len);
for my $k (0 .. 2) {
    my $r = ::patch($loc, 'ann', $cuts[$k],
                    substr($::big, $cuts[$k], $cuts[$k + 1] - $cuts[$k]));
    is($r->{code}, 204, "PATCH $k") or diag($r->{raw});
    is($r->{headers}{'upload-offset'}[0], $cuts[$k + 1], "PATCH $k: offset");
    is(::offset_of($loc, 'ann'), $cuts[$k + 1], "PATCH $k: HEAD agrees");
}
::check_complete($loc, $::big, 'three PATCHes');

my $again = ::patch($loc, 'ann', $len, '');
is($again->{code}, 409, 'a PATCH after the end: 409');
is(::stored(::fid($loc))->{jobs}, 1, 'still one job');



=== TEST 4: 409 wrong offset, 415 wrong type, 460 checksum mismatch (bytes discarded), good checksums
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; }
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- check
my $len = length $::big;
my $loc = ::create('ann', $len);
my $part = substr($::big, 0, 300_000);

is(::patch($loc, 'ann', 5, $part)->{code}, 409, 'wrong offset: 409');
my $r = ::tus('PATCH', $loc, 'ann', ['Upload-Offset: 0',
                                     'Content-Type: application/octet-stream'],
              $part);
is($r->{code}, 415, 'wrong Content-Type: 415');

$r = ::patch($loc, 'ann', 0, $part,
             'Upload-Checksum: sha1 ' . encode_base64(sha1('other'), ''));
is($r->{code}, 460, 'checksum mismatch: 460');
like($r->{raw}, qr{^HTTP/1.1 460 }, '460 status line');
is(::offset_of($loc, 'ann'), 0, 'the bytes were discarded');

$r = ::patch($loc, 'ann', 0, $part,
             'Upload-Checksum: md5 ' . encode_base64('x' x 16, ''));
is($r->{code}, 400, 'unsupported algorithm: 400');

$r = ::patch($loc, 'ann', 0, $part,
             'Upload-Checksum: sha1 ' . encode_base64(sha1($part), ''));
is($r->{code}, 204, 'sha1 matches') or diag($r->{raw});
is(::offset_of($loc, 'ann'), 300_000, 'offset advanced');

my $rest = substr($::big, 300_000);
$r = ::patch($loc, 'ann', 300_000, $rest,
             'Upload-Checksum: sha256 ' . encode_base64(sha256($rest), ''));
is($r->{code}, 204, 'sha256 matches') or diag($r->{raw});
::check_complete($loc, $::big, 'checksummed');



=== TEST 5: 415 on non-media first bytes; 413 past Upload-Length
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; }
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- check
my $loc = ::create('ann', 5000);
my $r = ::patch($loc, 'ann', 0, 'hello, not a video' x 200);
is($r->{code}, 415, 'text: 415');
is(::offset_of($loc, 'ann'), 0, 'nothing kept');
$r = ::patch($loc, 'ann', 0, $::mp4 . ('x' x 5000));
is($r->{code}, 413, 'more than Upload-Length: 413');



=== TEST 6: DELETE: 204, the chunks and the state gone; someone else's: 404
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; }
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- check
my $loc = ::create('ann', length $::big);
is(::patch($loc, 'ann', 0, substr($::big, 0, 600_000))->{code}, 204, 'PATCH');
is(::stored(::fid($loc))->{chunks}, 2, 'two chunks stored');

is(::tus('HEAD', $loc, 'bob')->{code}, 404, "bob's HEAD: 404");
is(::patch($loc, 'bob', 600_000, 'x')->{code}, 404, "bob's PATCH: 404");
is(::tus('DELETE', $loc, 'bob')->{code}, 404, "bob's DELETE: 404");
is(::tus('HEAD', '/files/0123456789abcdef01234567', 'ann')->{code}, 404,
   'no such upload: 404');

my $r = ::tus('DELETE', $loc, 'ann');
is($r->{code}, 204, 'DELETE: 204');
my $s = ::stored(::fid($loc));
is($s->{chunks}, 0, 'chunks gone');
is($s->{state}, 0, 'state gone');
is($s->{record}, 0, 'record gone');
is(::tus('HEAD', $loc, 'ann')->{code}, 404, 'then 404');



=== TEST 7: expiration: Upload-Expires passed: 410
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; audex_tus_expires 1s; }
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- check
my $loc = ::create('ann', length $::big);
sleep 1.5;
is(::tus('HEAD', $loc, 'ann')->{code}, 410, 'HEAD: 410');
is(::patch($loc, 'ann', 0, $::mp4)->{code}, 410, 'PATCH: 410');
is(::tus('DELETE', $loc, 'ann')->{code}, 204, 'an expired upload can be terminated');



=== TEST 8: two PATCHes at once: the second gets 423, the bytes are the first's
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; }
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- check
my $len = length $::big;
my $loc = ::create('ann', $len);
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $ENV{TEST_NGINX_SERVER_PORT})
    or die "connect: $!";
print {$s} "PATCH $loc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    . ::auth('ann') . "\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
    . "Content-Type: application/offset+octet-stream\r\n"
    . "Content-Length: $len\r\n\r\n" . substr($::big, 0, 100_000);
$s->flush;
sleep 0.5;
my $r = ::patch($loc, 'ann', 0, substr($::big, 0, 300_000));
is($r->{code}, 423, 'the second PATCH: 423') or diag($r->{raw});
print {$s} substr($::big, 100_000);
$s->flush;
local $/;
my $resp = <$s>;
like($resp, qr{^HTTP/1.1 204}, 'the first PATCH: 204');
::check_complete($loc, $::big, 'raced');



=== TEST 9: creation-with-upload; a PATCH cut off keeps what arrived; HEAD, continue
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; }
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- check
my $len = length $::big;
my $r = ::tus('POST', '/files/', 'ann',
              ["Upload-Length: $len",
               'Upload-Metadata: filename ' . encode_base64('clip.mp4', ''),
               'Content-Type: application/offset+octet-stream'],
              substr($::big, 0, 1000));
is($r->{code}, 201, 'created with upload') or diag($r->{raw});
is($r->{headers}{'upload-offset'}[0], 1000, 'its offset');
my ($loc) = $r->{headers}{location}[0] =~ m{(/files/\w+)};

# the connection drops after 500000 of 800000 bytes
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $ENV{TEST_NGINX_SERVER_PORT})
    or die "connect: $!";
print {$s} "PATCH $loc HTTP/1.1\r\nHost: localhost\r\n"
    . ::auth('ann') . "\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 1000\r\n"
    . "Content-Type: application/offset+octet-stream\r\n"
    . "Content-Length: 800000\r\n\r\n" . substr($::big, 1000, 500_000);
$s->flush;
sleep 0.5;
close $s;

my $off;
for (1 .. 100) {
    $off = ::offset_of($loc, 'ann');
    last if $off eq '501000';
    sleep 0.1;
}
is($off, 501000, 'HEAD on a new connection: all that arrived is kept');
$r = ::patch($loc, 'ann', 501000, substr($::big, 501000));
is($r->{code}, 204, 'continued') or diag($r->{raw});
::check_complete($loc, $::big, 'resumed');



=== TEST 10: tuspy uploads 1 MB in 300 KB pieces, then resumes one begun by hand
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; }
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- check
my ($tok) = ::auth('ann') =~ /Bearer (\S+)/;
my $url = "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/files/";
my $py = <<'PY';
import sys
from tusclient import client
url, tok, path, resume = sys.argv[1:5]
c = client.TusClient(url, headers={'Authorization': 'Bearer ' + tok})
kw = dict(file_path=path, chunk_size=300 * 1024,
          metadata={'filename': 'clip.mp4', 'filetype': 'video/mp4'})
if resume != '-':
    kw['url'] = resume
u = c.uploader(**kw)
u.upload()
print(u.url)
PY
open my $fh, '-|', '/usr/bin/python3', '-c', $py, $url, $tok,
    "$::dir/big.mp4", '-' or die $!;
chomp(my $out = join '', <$fh>);
close $fh;
is($?, 0, 'tuspy succeeded');
my ($loc) = $out =~ m{(/files/[0-9a-f]{24})$};
ok($loc, "tuspy's upload URL") or diag($out);
::check_complete($loc, $::big, 'tuspy');

# begun by hand, finished by tuspy after its HEAD
$loc = ::create('ann', length $::big);
is(::patch($loc, 'ann', 0, substr($::big, 0, 400_000))->{code}, 204, 'a first part');
open $fh, '-|', '/usr/bin/python3', '-c', $py, $url, $tok,
    "$::dir/big.mp4", "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}$loc"
    or die $!;
$out = join '', <$fh>;
close $fh;
is($?, 0, 'tuspy resumed') or diag($out);
::check_complete($loc, $::big, 'tuspy resumed');



=== TEST 11: metrics: uploads by how they ended, bytes made durable
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_backend_timeout 2s;
--- config
location /files/ { audex_auth on; audex_tus; }
location = /metrics { audex_metrics; }
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- check
my $len = length $::big;
my $metric = sub {
    my $m = http_request("GET /metrics HTTP/1.1\r\nHost: x\r\n"
                         . "Connection: close\r\n\r\n")->{body};
    return { map { /^(audex_tus_\S+) (\d+)$/ ? ($1 => $2) : () }
             split /\n/, $m };
};

# A: 100 bytes (a tail), a PATCH refused by its checksum, the rest
my $a = ::create('ann', $len);
is(::patch($a, 'ann', 0, substr($::big, 0, 100))->{code}, 204, 'A: 100 bytes');
is(::patch($a, 'ann', 100, substr($::big, 100, 300_000),
           'Upload-Checksum: sha1 ' . encode_base64(sha1('other'), ''))->{code},
   460, 'A: a mismatch (a whole chunk stored, not acknowledged)');
is(::patch($a, 'ann', 100, substr($::big, 100))->{code}, 204, 'A: the rest');
::check_complete($a, $::big, 'A');

# B: created with 1000 bytes, a PATCH cut off after 500000, terminated
my $r = ::tus('POST', '/files/', 'ann',
              ["Upload-Length: $len",
               'Upload-Metadata: filename ' . encode_base64('clip.mp4', ''),
               'Content-Type: application/offset+octet-stream'],
              substr($::big, 0, 1000));
is($r->{code}, 201, 'B: created with upload');
my ($b) = ($r->{headers}{location}[0] // '') =~ m{(/files/\w+)};
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $ENV{TEST_NGINX_SERVER_PORT})
    or die "connect: $!";
print {$s} "PATCH $b HTTP/1.1\r\nHost: localhost\r\n"
    . ::auth('ann') . "\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 1000\r\n"
    . "Content-Type: application/offset+octet-stream\r\n"
    . "Content-Length: 800000\r\n\r\n" . substr($::big, 1000, 500_000);
$s->flush;
sleep 0.5;
close $s;
my $off;
for (1 .. 100) {
    $off = ::offset_of($b, 'ann');
    last if $off eq '501000';
    sleep 0.1;
}
is($off, 501000, 'B: what arrived before the cut is kept');
is(::tus('DELETE', $b, 'ann')->{code}, 204, 'B: terminated');

# C: all but 10 bytes; Redis down for the last: 503, the upload removed
my $c = ::create('ann', $len);
is(::patch($c, 'ann', 0, substr($::big, 0, $len - 10))->{code}, 204,
   'C: all but the last 10 bytes');
backend_stop('redis');
$r = ::patch($c, 'ann', $len - 10, substr($::big, $len - 10));
backend_start('redis');
is($r->{code}, 503, 'C: completion fails without Redis');
is(::stored(::fid($c))->{state}, 0, 'C: the upload is removed');

# one HEAD of an upload that does not exist changes nothing
::tus('HEAD', '/files/0123456789abcdef01234567', 'ann');

my $m = $metric->();
is($m->{'audex_tus_uploads_total{result="created"}'}, 3, 'created: 3');
is($m->{'audex_tus_uploads_total{result="completed"}'}, 1, 'completed: A');
is($m->{'audex_tus_uploads_total{result="terminated"}'}, 1, 'terminated: B');
is($m->{'audex_tus_uploads_total{result="failed"}'}, 1, 'failed: C');
is($m->{audex_tus_bytes_total}, $len + 501_000 + ($len - 10),
   'bytes: what the offsets advanced by (not the refused PATCH, not the failed last one)');
--- no_check_alerts



=== TEST 12: the digest kept from PATCH to PATCH; an upload without it is read back
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; }
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- check
my $len = length $::big;
for my $kept (1, 0) {
    my $loc = ::create('ann', $len);
    is(::patch($loc, 'ann', 0, substr($::big, 0, 600_000))->{code}, 204,
       'two chunks and a tail');
    my $fid = ::fid($loc);
    my $st = mongo_eval(<<"PY");
from bson import ObjectId
s = db.tus.find_one({'_id': ObjectId('$fid')})
print(len(s['sha256_state']) if 'sha256_state' in s else 'none')
if not $kept:
    db.tus.update_one({'_id': ObjectId('$fid')}, {'\$unset': {'sha256_state': 1}})
PY
    chomp $st;
    is($st, 40, 'the state holds the digest of the stored chunks');
    is(::patch($loc, 'ann', 600_000, substr($::big, 600_000))->{code}, 204,
       'the rest');
    ::check_complete($loc, $::big, $kept ? 'digest kept' : 'digest read back');
}



=== TEST 13: chunks stored past the offset are taken by the next HEAD; a slow client keeps its lease
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /files/ { audex_auth on; audex_tus; }
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- timeout: 30
--- check
# 100 bytes (a tail), then a PATCH that stores chunks 0 and 1 (no
# advance: that comes every 4) and is refused at its last byte (413):
# the offset stays at the tail, the two chunks are past it
my $content = substr($::big, 0, 700_000);
my $a = ::create('ann', length $content);
is(::patch($a, 'ann', 0, substr($content, 0, 100))->{code}, 204,
   'A: 100 bytes');
is(::patch($a, 'ann', 100, substr($content, 100) . 'x')->{code}, 413,
   'A: one byte too many: 413, two chunks stored');
is(::offset_of($a, 'ann'), 2 * 261120,
   'A: HEAD advances over the two chunks, the tail first in them');
is(::patch($a, 'ann', 100, substr($content, 100))->{code}, 409,
   'A: the old offset is 409 now');
is(::patch($a, 'ann', 2 * 261120, substr($content, 2 * 261120))->{code},
   204, 'A: the rest');
::check_complete($a, $content, 'A');

# B: a PATCH whose client stops for longer than the lease (6 s) still
# holds the upload (renewed by its timer): another PATCH gets 423, and
# the first finishes
my $b = ::create('ann', length $content);
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $ENV{TEST_NGINX_SERVER_PORT})
    or die "connect: $!";
print {$s} "PATCH $b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    . ::auth('ann') . "\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
    . "Content-Type: application/offset+octet-stream\r\n"
    . "Content-Length: " . length($content) . "\r\n\r\n"
    . substr($content, 0, 300_000);
$s->flush;
sleep 8;
is(::patch($b, 'ann', 0, $content)->{code}, 423,
   'B: 8 s later, another PATCH: 423');
print {$s} substr($content, 300_000);
$s->flush;
my $answer = do { local $/; <$s> } // '';
like($answer, qr{^HTTP/1\.1 204 }, 'B: the slow PATCH completes');
::check_complete($b, $content, 'B');
--- no_check_alerts
