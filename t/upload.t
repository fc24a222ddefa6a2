# POST /upload: a video streamed into GridFS, then a job on the stream.
# What was stored is read back with pymongo's GridFSBucket, a reader
# independent of ours; the stream with redis-cli.

use lib 't/lib';
use Audex::Test;
use Audex::Media qw(make_media);
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP qw(decode_json);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(sleep time);

our $dir = tempdir('audex-upload-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# one second of sine in MP4 (a few KB), and the same followed by 700 KB
# of noise: the sniffer reads only the start, and three chunks are full
our $mp4 = slurp(make_media($dir, { file => 'sine.mp4', seconds => 1,
                                    audio => ['aac 44100 1 64k'] }));
our $big = $mp4 . slurp(make_media($dir, { file => 'noise.bin',
                                           random => 700_000 }));
our $wav = slurp(make_media($dir, { file => 'sine.wav', seconds => 1,
                                    audio => ['pcm_s16le 8000 1'] }));

# a self-signed certificate and a port for the HTTP/2 server of TEST 25
$ENV{TEST_NGINX_TLS_DIR} = $dir;
$ENV{TEST_NGINX_TLS_PORT} = Audex::Backend::free_port();
system('openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost'
       . " -keyout $dir/key.pem -out $dir/cert.pem 2>/dev/null") == 0
    or die 'openssl req failed';

our $uid = '64b000000000000000000001';
our $email = 'ann@example.com';
our $token;

sub min { $_[0] < $_[1] ? $_[0] : $_[1] }

sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or die "$path: $!";
    local $/;
    return scalar <$fh>;
}

sub token {
    $token //= Audex::Test::pyjwt_encode(
        "{'sub': '$uid', 'email': '$email', 'exp': now + 3600}",
        $ENV{TEST_NGINX_JWT_SECRET_FILE});
    return $token;
}

# multipart/form-data: parts are [name, value] or [name, value, filename]
sub form {
    my ($boundary, @parts) = @_;
    my $body = '';
    for my $p (@parts) {
        my ($name, $value, $filename) = @$p;
        $body .= "--$boundary\r\nContent-Disposition: form-data; "
               . "name=\"$name\"";
        $body .= "; filename=\"$filename\"" if defined $filename;
        $body .= "\r\n";
        $body .= "Content-Type: video/mp4\r\n" if defined $filename;
        $body .= "\r\n$value\r\n";
    }
    return $body . "--$boundary--\r\n";
}

# a whole request; %h: more header lines, chunked => piece size
sub req {
    my ($uri, $type, $body, %o) = @_;
    my $head = "POST $uri HTTP/1.1\r\nHost: localhost\r\n"
             . "Connection: close\r\nAuthorization: Bearer " . token()
             . "\r\n";
    $head .= "Content-Type: $type\r\n" if defined $type;
    $head .= "$_\r\n" for @{ $o{headers} || [] };

    if ($o{chunked}) {
        my $out = '';
        my $i = 0;
        while ($i < length $body) {
            # sizes vary, so chunk-size lines fall everywhere
            my $n = $o{chunked} + ($i % 7);
            my $c = substr($body, $i, $n);
            $out .= sprintf("%x\r\n%s\r\n", length $c, $c);
            $i += $n;
        }
        return "${head}Transfer-Encoding: chunked\r\n\r\n${out}0\r\n\r\n";
    }
    return $head . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
}

# the request in pieces of 1, 2, .. $n bytes in turn, with a pause
# between them so that nginx reads them one by one
sub pieces {
    my ($raw, $n, $pause) = @_;
    my @p;
    my $k = 0;
    for (my $i = 0; $i < length $raw; $i += $k) {
        $k = $k % $n + 1;
        push @p, substr($raw, $i, $k), { sleep => $pause // 0.001 };
    }
    return \@p;
}

# what the database holds for an answer: GridFS read back, the job
sub stored {
    my ($body) = @_;
    my ($job, $fid) = $body =~ /"job_id":"([0-9a-f]{24})","video_fid":"([0-9a-f]{24})"/
        or return { error => "no job in $body" };
    my $out = mongo_eval(<<"PY");
import hashlib, struct
from bson import ObjectId
fid = ObjectId('$fid')
data = gridfs.GridFSBucket(db, 'videos').open_download_stream(fid).read()
# lib/audex_schema.h: _id = sha256(files_id || be32(n))[0:12]
derived = sum(1 for c in db['videos.chunks'].find({'files_id': fid})
              if c['_id'].binary == hashlib.sha256(
                  fid.binary + struct.pack('>i', c['n'])).digest()[:12])
f = db['videos.files'].find_one({'_id': fid})
j = db.jobs.find_one({'_id': '$job'})
print(json.dumps({
    'sha256': hashlib.sha256(data).hexdigest(),
    'size': len(data),
    'chunks': db['videos.chunks'].count_documents({'files_id': fid}),
    'derived': derived,
    'length': f['length'], 'chunkSize': f['chunkSize'],
    'filename': f['filename'], 'contentType': f['contentType'],
    'metadata': f['metadata'],
    'uploadDate': str(type(f['uploadDate']).__name__),
    'record': db.uploads.count_documents({'_id': fid}),
    'job': {k: (str(v) if k in ('created_at', 'updated_at', 'video_fid')
                else v) for k, v in j.items()},
    'job_video_fid_type': type(j['video_fid']).__name__,
}))
PY
    my $s = eval { decode_json($out) } or return { error => "python: $out" };
    $s->{job_id} = $job;
    $s->{fid} = $fid;
    return $s;
}

# the stream entry of a job, as { field => value }
sub entry {
    my ($job) = @_;
    my @l = split /\n/, redis_cli('XRANGE', 'video', '-', '+');
    for my $i (0 .. $#l) {
        next unless $l[$i] eq 'job_id' && ($l[$i + 1] // '') eq $job;
        my %e;
        my $j = $i;
        while ($j < $#l && $l[$j] !~ /^\d+-\d+$/) {
            $e{$l[$j]} = $l[$j + 1];
            $j += 2;
        }
        return \%e;
    }
    return {};
}

# checks a 202 against the file sent
sub check_stored {
    my ($res, $content, %want) = @_;
    my $s = stored($res->{body});
    is($s->{error}, undef, "stored: readable") or return;
    is($s->{sha256}, sha256_hex($content), "GridFS reads back the same bytes");
    is($s->{size}, length $content, "size");
    is($s->{length}, length $content, "files.length");
    is($s->{chunkSize}, 261120, "chunkSize");
    is($s->{chunks}, int((length($content) + 261119) / 261120), "chunks");
    is($s->{derived}, $s->{chunks}, "each chunk's _id derives from (files_id, n)");
    is($s->{record}, 0, "the upload's record is gone once the file is whole");
    is($s->{uploadDate}, 'datetime', "uploadDate is a date");
    is($s->{filename}, $want{filename}, "filename");
    is($s->{contentType}, $want{type} // 'video/mp4', "contentType");
    is($s->{metadata}{sha256}, sha256_hex($content), "metadata.sha256");
    is($s->{metadata}{owner_id}, $uid, "metadata.owner_id");
    is($s->{metadata}{owner_email}, $email, "metadata.owner_email");
    is($s->{metadata}{content_type}, $want{type} // 'video/mp4',
       "metadata.content_type");

    my $j = $s->{job};
    is($j->{state}, 'queued', "job state");
    is($j->{progress}, 0, "job progress");
    is($j->{video_fid}, $s->{fid}, "job video_fid");
    is($s->{job_video_fid_type}, 'ObjectId', "job video_fid is an ObjectId");
    ok(exists $j->{mp3_fid} && !defined $j->{mp3_fid}, "job mp3_fid null");
    ok(exists $j->{error} && !defined $j->{error}, "job error null");
    is($j->{owner_id}, $uid, "job owner_id");
    is($j->{owner_email}, $email, "job owner_email");
    is($j->{filename}, $want{filename}, "job filename");
    my ($opt, $val) = @{ $want{option} || ['bitrate', 192] };
    is($j->{$opt}, $val, "job $opt");
    ok(!exists $j->{$opt eq 'bitrate' ? 'quality' : 'bitrate'},
       "job has not both options");
    like($j->{created_at}, qr/^\d{4}-/, "job created_at");

    my $e = entry($s->{job_id});
    is($e->{video_fid}, $s->{fid}, "stream: video_fid");
    is($e->{owner_id}, $uid, "stream: owner_id");
    is($e->{owner_email}, $email, "stream: owner_email");
    my $bytes = $want{filename};
    utf8::encode($bytes);
    is($e->{filename}, $bytes, "stream: filename");
    is($e->{$opt}, $val, "stream: $opt");

    is($res->{headers}{location}[0], "/jobs/$s->{job_id}", "Location");
}

# files, chunks and jobs; chunks whose file is missing; jobs whose file
# is missing
sub census {
    my $out = mongo_eval(<<'PY');
fids = set(f['_id'] for f in db['videos.files'].find({}, {'_id': 1}))
orphans = sum(1 for c in db['videos.chunks'].find({}, {'files_id': 1})
              if c['files_id'] not in fids)
lost = sum(1 for j in db.jobs.find({}, {'video_fid': 1})
           if j['video_fid'] not in fids)
print(len(fids), db['videos.chunks'].count_documents({}),
      db.jobs.count_documents({}), db.uploads.count_documents({}),
      orphans, lost)
PY
    chomp $out;
    return $out;
}

our $census;

sub census_before { $census = census() }

sub nothing_left {
    my ($what) = @_;
    is(census(), $census, "$what: no file, chunk, job or upload record "
       . "left behind");
    like(census(), qr/ 0 0$/, "$what: no orphan chunk or job");
}

# how many lines of error.log match
# where error.log ends now: wait_log looks only at what comes after
sub log_mark {
    return -s (servroot() . '/logs/error.log') // 0;
}

# waits (bounded) for a line in error.log after the mark, reading each
# new line once; the test fails if it never comes, without asserting how
# long it took
sub wait_log {
    my ($re, $pos) = @_;
    my $log = servroot() . '/logs/error.log';
    $pos //= 0;
    for (1 .. 1000) {
        open my $fh, '<', $log or die "$log: $!";
        seek $fh, $pos, 0;
        while (my $l = <$fh>) {
            last unless $l =~ /\n\z/;      # a line still being written
            $pos += length $l;
            return 1 if $l =~ $re;
        }
        close $fh;
        sleep 0.02;
    }
    return 0;
}

run_tests();

__DATA__

=== TEST 1: multipart upload: 202, the file in GridFS, the job, the entry
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- raw_request eval
::req('/upload', 'multipart/form-data; boundary=xYzZy',
      ::form('xYzZy', ['file', $::mp4, 'sine.mp4']))
--- error_code: 202
--- response_headers
Content-Type: application/json
--- response_body_like
^\{"job_id":"[0-9a-f]{24}","video_fid":"[0-9a-f]{24}","status_url":"/jobs/[0-9a-f]{24}"\}$
--- check
::check_stored($res, $::mp4, filename => 'sine.mp4');
my ($j) = $res->{body} =~ /"job_id":"(\w+)"/;
like($res->{body}, qr{"status_url":"/jobs/$j"}, "status_url names the job");
--- error_log
audex: upload of "sine.mp4" by ann@example.com stored as



=== TEST 2: raw body, filename and quality in the query string
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- raw_request eval
::req('/upload?filename=My%20Clip.mp4&quality=2', 'video/mp4', $::mp4)
--- error_code: 202
--- check
::check_stored($res, $::mp4, filename => 'My Clip.mp4',
               option => ['quality', 2]);



=== TEST 3: raw body named by Content-Disposition (RFC 5987 wins); a WAV
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
[
    [ ::req('/upload', 'application/octet-stream', $::wav,
            headers => ['Content-Disposition: attachment; filename="a b.wav"']) ],
    [ ::req('/upload?bitrate=320', 'audio/wav', $::wav,
            headers => ["Content-Disposition: attachment; filename=\"x.wav\"; filename*=UTF-8''%C3%A9t%C3%A9.wav"]) ],
    [ ::req('/upload', 'audio/wav', $::wav) ],
]
--- error_code eval
[202, 202, 202]
--- check
my @want = (['a b.wav', 192], ["\x{e9}t\x{e9}.wav", 320], ['upload', 192]);
my ($name, $rate) = @{ $want[$i] };
::check_stored($res, $::wav, filename => $name, type => 'audio/wav',
               option => ['bitrate', $rate]);



=== TEST 4: form fields before the file; unknown fields ignored
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- raw_request eval
::req('/upload', 'multipart/form-data; boundary="a:b c"',
      ::form('a:b c', ['submit', 'Upload'], ['quality', '0'],
             ['filename', 'song'], ['file', $::mp4, 'C:\\dir\\v.mp4']))
--- error_code: 202
--- check
::check_stored($res, $::mp4, filename => 'song', option => ['quality', 0]);



=== TEST 5: a file of several chunks, the last one partial: multipart and raw, chunked or not
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
[
    [ ::req('/upload', 'multipart/form-data; boundary=--------b0undary',
            ::form('--------b0undary', ['file', $::big, 'big.mp4'])) ],
    [ ::req('/upload?filename=big.mp4', 'video/mp4', $::big) ],
    [ ::req('/upload', 'multipart/form-data; boundary=--------b0undary',
            ::form('--------b0undary', ['file', $::big, 'big.mp4']),
            chunked => 5000) ],
    [ ::req('/upload?filename=big.mp4', 'video/mp4', $::big,
            chunked => 65536) ],
]
--- error_code eval
[202, 202, 202, 202]
--- check
::check_stored($res, $::big, filename => 'big.mp4');
--- no_error_log
hashed path



=== TEST 6: a body split at every position across reads
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
# the headers and delimiters byte by byte, the file in odd-sized pieces
my $b = 'B0UND';
my $head = ::req('/upload', "multipart/form-data; boundary=$b",
                 ::form($b, ['bitrate', '96'], ['file', $::mp4, 'p.mp4']));
my $at = index($head, $::mp4);
my $end = $at + length $::mp4;
my @p;
push @p, substr($head, $_, 1), { sleep => 0.001 } for 0 .. $at + 40;
for (my $i = $at + 41; $i < $end - 40; $i += 997) {
    push @p, substr($head, $i, ::min(997, $end - 40 - $i)), { sleep => 0.001 };
}
push @p, substr($head, $_, 1), { sleep => 0.001 } for $end - 40 .. length($head) - 1;
[ \@p, ::pieces(::req('/upload', 'video/mp4', $::mp4, chunked => 3), 13) ]
--- error_code eval
[202, 202]
--- check
::check_stored($res, $::mp4, filename => $i ? 'upload' : 'p.mp4',
               option => ['bitrate', $i ? 192 : 96]);
--- timeout: 60



=== TEST 7: a 0-byte file is no media: 415, nothing stored
--- init
::census_before();
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
[
    [ ::req('/upload', 'multipart/form-data; boundary=b',
            ::form('b', ['file', '', 'empty.mp4'])) ],
    [ ::req('/upload', 'video/mp4', '') ],
    [ ::req('/upload', 'video/mp4', '', chunked => 1) ],
]
--- error_code eval
[415, 415, 415]
--- response_body eval
[("{\"error\":\"unsupported media type: empty file\"}\n") x 3]
--- check
::nothing_left("empty file");
--- error_log
audex: upload failed: unsupported media type: empty file



=== TEST 8: two file parts: 400; the chunks of the first are removed
--- init
::census_before();
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
[
    [ ::req('/upload', 'multipart/form-data; boundary=b',
            ::form('b', ['file', $::mp4, 'a.mp4'], ['file', $::mp4, 'b.mp4'])) ],
    [ ::req('/upload', 'multipart/form-data; boundary=b',
            ::form('b', ['file', $::big, 'a.mp4'], ['other', $::mp4, 'b.mp4'])) ],
    [ ::req('/upload', 'multipart/form-data; boundary=b',
            ::form('b', ['video', $::big, 'a.mp4'], ['file', 'x'])) ],
]
--- error_code eval
[400, 400, 400]
--- response_body eval
[("{\"error\":\"exactly one file required\"}\n") x 3]
--- check
::nothing_left("two files");
--- error_log
audex: upload failed: exactly one file required, after
stored chunks removed



=== TEST 9: no file part: 400
--- init
::census_before();
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
[
    [ ::req('/upload', 'multipart/form-data; boundary=b',
            ::form('b', ['bitrate', '128'], ['title', 'x'])) ],
    [ ::req('/upload', 'multipart/form-data; boundary=b', "--b--\r\n") ],
]
--- error_code eval
[400, 400]
--- response_body eval
[("{\"error\":\"exactly one file required\"}\n") x 2]
--- check
::nothing_left("no file");



=== TEST 10: bad boundaries: in the header, in the body
--- init
::census_before();
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
[
    [ ::req('/upload', 'multipart/form-data', ::form('b', ['file', $::mp4, 'a.mp4'])) ],
    [ ::req('/upload', 'multipart/form-data; boundary=' . ('x' x 71),
            ::form('x' x 71, ['file', $::mp4, 'a.mp4'])) ],
    [ ::req('/upload', 'multipart/form-data; boundary=b',
            ::form('c', ['file', $::mp4, 'a.mp4'])) ],
    [ ::req('/upload', 'multipart/form-data; boundary=b',
            "--bX\r\n" . substr(::form('b', ['file', $::mp4, 'a.mp4']), 5)) ],
]
--- error_code eval
[400, 400, 400, 400]
--- response_body eval
[
    "{\"error\":\"missing or invalid multipart boundary\"}\n",
    "{\"error\":\"missing or invalid multipart boundary\"}\n",
    "{\"error\":\"multipart body ended before its final boundary\"}\n",
    "{\"error\":\"invalid text after a multipart boundary\"}\n",
]
--- check
::nothing_left("bad boundary");



=== TEST 11: a body that ends before its final boundary: 400, chunks removed
--- init
::census_before();
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
my $f = ::form('b', ['file', $::big, 'a.mp4']);
[
    [ ::req('/upload', 'multipart/form-data; boundary=b', substr($f, 0, -9)) ],
    [ ::req('/upload', 'multipart/form-data; boundary=b', substr($f, 0, 600_000), chunked => 9000) ],
]
--- error_code eval
[400, 400]
--- response_body eval
[("{\"error\":\"multipart body ended before its final boundary\"}\n") x 2]
--- check
::nothing_left("truncated");
--- error_log
stored chunks removed



=== TEST 12: the client goes away mid-upload: chunks removed, no job
--- init
::census_before();
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request
GET /upload
--- more_headers eval
"Authorization: Bearer " . ::token()
--- error_code: 405
--- response_headers
Allow: POST
--- response_body
{"error":"method not allowed"}
--- check
for my $case ([600_000, 'multipart'], [600_000, 'raw'], [100, 'raw']) {
    my ($sent, $kind) = @$case;
    my $raw = $kind eq 'raw'
        ? ::req('/upload', 'video/mp4', $::big)
        : ::req('/upload', 'multipart/form-data; boundary=b',
                ::form('b', ['file', $::big, 'a.mp4']));
    my $at = index($raw, "\r\n\r\n") + 4;
    # the multipart and the raw case log the same line: look only at
    # what this case logs
    my $done = qr/upload failed: client closed the connection, after \Q$sent\E bytes/;
    my $mark = ::log_mark();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ENV{TEST_NGINX_SERVER_PORT})
        or die "connect: $!";
    print {$s} substr($raw, 0, $at + $sent);
    $s->flush;
    # nginx reads all that was sent before it sees the end of the stream,
    # so the close may come at any time
    sleep 0.2;
    close $s;
    ok(::wait_log($done, $mark),
       "$kind: the abort after $sent bytes is logged");
    ::nothing_left("abort ($kind, $sent bytes)");
}
--- error_log
stored chunks removed



=== TEST 13: client_body_timeout mid-upload: chunks removed, no job
--- init
::census_before();
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
client_body_timeout 1s;
location = /upload { audex_auth on; audex_upload; }
--- request
POST /upload
--- more_headers eval
"Authorization: Bearer " . ::token() . "\nContent-Type: text/plain"
--- error_code: 415
--- check
my $raw = ::req('/upload', 'video/mp4', $::big);
my $at = index($raw, "\r\n\r\n") + 4;
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $ENV{TEST_NGINX_SERVER_PORT})
    or die "connect: $!";
print {$s} substr($raw, 0, $at + 600_000);
$s->flush;
ok(::wait_log(qr/upload failed: client timed out, after 600000 bytes, stored chunks removed/),
   "the timeout is logged");
::nothing_left("timeout");
close $s;



=== TEST 14: Content-Length over audex_upload_max_size: 413 before the body
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
lingering_timeout 100ms;
location = /upload { audex_auth on; audex_upload; audex_upload_max_size 100k; }
--- raw_request eval
my $r = ::req('/upload', 'video/mp4', 'x' x 102_401, headers => ['Expect: 100-continue']);
substr($r, 0, index($r, "\r\n\r\n") + 4)
--- error_code: 413
--- response_body
{"error":"upload too large"}
--- check
unlike($res->{raw}, qr/100 Continue/, "no 100 Continue");
--- error_log
audex: upload failed: upload too large, after 0 bytes



=== TEST 15: a chunked body that crosses the limit: 413, chunks removed
--- init
::census_before();
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; audex_upload_max_size 300k; }
--- request eval
[
    [ ::req('/upload', 'video/mp4', $::big, chunked => 10000) ],
    [ ::req('/upload', 'multipart/form-data; boundary=b',
            ::form('b', ['file', $::big, 'a.mp4']), chunked => 10000) ],
    [ ::req('/upload', 'video/mp4', substr($::big, 0, 307_200), chunked => 10000) ],
]
--- error_code eval
[413, 413, 202]
--- check
::nothing_left("413") if $i < 2;
--- error_log eval
[qr/audex: upload failed: upload too large, after \d+ bytes, stored chunks removed/]



=== TEST 16: unsupported media types: by Content-Type, by the bytes
--- init
::census_before();
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
my $noise = substr($::big, length $::mp4);
[
    [ ::req('/upload', 'text/plain; charset=utf-8', 'hello') ],
    [ ::req('/upload', 'multipart/mixed; boundary=b', ::form('b', ['file', $::mp4, 'a.mp4'])) ],
    [ ::req('/upload', undef, $::mp4) ],
    [ ::req('/upload', 'video/mp4', $noise) ],
    [ ::req('/upload', 'multipart/form-data; boundary=b', ::form('b', ['file', $noise, 'n.mp4'])) ],
    [ ::req('/upload', 'video/mp4', "<html>\n" x 3) ],
]
--- error_code eval
[415, 415, 415, 415, 415, 415]
--- response_body eval
[
    "{\"error\":\"unsupported media type: text/plain\"}\n",
    "{\"error\":\"unsupported media type: multipart/mixed\"}\n",
    "{\"error\":\"unsupported media type: none\"}\n",
    ("{\"error\":\"unsupported media type: not a known audio or video format\"}\n") x 3,
]
--- check
::nothing_left("415");



=== TEST 17: no token, a bad token: 401 from audex_auth
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
[
    [ "POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: video/mp4\r\nContent-Length: " . length($::mp4) . "\r\n\r\n$::mp4" ],
    [ "POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer x.y.z\r\nContent-Type: video/mp4\r\nContent-Length: " . length($::mp4) . "\r\n\r\n$::mp4" ],
]
--- error_code eval
[401, 401]
--- response_headers_like eval
['WWW-Authenticate: ^Bearer realm="audex"$', 'WWW-Authenticate: error="invalid_token"']
--- response_body_like eval
['^\{"error":"token required"\}$', '^\{"error":".+"\}$']



=== TEST 18: bad options: 400 naming the field
--- init
::census_before();
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- request eval
[
    [ ::req('/upload?bitrate=100', 'video/mp4', $::mp4) ],
    [ ::req('/upload?bitrate=128&quality=2', 'video/mp4', $::mp4) ],
    [ ::req('/upload?colour=red', 'video/mp4', $::mp4) ],
    [ ::req('/upload', 'multipart/form-data; boundary=b',
            ::form('b', ['quality', '12'], ['file', $::mp4, 'a.mp4'])) ],
    [ ::req('/upload?quality=3', 'multipart/form-data; boundary=b',
            ::form('b', ['file', $::big, 'a.mp4'], ['quality', '4'])) ],
    [ ::req('/upload', 'video/mp4', $::mp4,
            headers => ['Content-Disposition: attachment; filename="unclosed']) ],
]
--- error_code eval
[400, 400, 400, 400, 400, 400]
--- response_body_like eval
[
    '^\{"error":"bitrate must be one of .*\}$',
    '^\{"error":"bitrate \(CBR\) and quality \(VBR\) cannot be given together"\}$',
    '^\{"error":"unknown field \\\\"colour\\\\""\}$',
    '^\{"error":"quality must be an integer from 0 .*\}$',
    '^\{"error":"quality given more than once"\}$',
    '^\{"error":"malformed Content-Disposition header"\}$',
]
--- check
::nothing_left("options");



=== TEST 19: Redis down once the file is stored: 503, file and job removed
--- init
::census_before();
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_backend_timeout 1s;
--- config
location = /upload { audex_auth on; audex_upload; }
--- down
redis
--- request eval
[
    [ ::req('/upload', 'multipart/form-data; boundary=b',
            ::form('b', ['file', $::big, 'a.mp4'])) ],
    [ ::req('/upload', 'video/mp4', $::mp4) ],
]
--- error_code eval
[503, 503]
--- response_headers
Retry-After: 5
--- response_body eval
[("{\"error\":\"job queue unavailable\"}\n") x 2]
--- check
::nothing_left("redis down");
--- error_log eval
[qr/\[error\].*audex: upload failed: job queue unavailable \(.+\), after \d+ bytes, stored chunks removed/]



=== TEST 20: MongoDB down: 503
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_backend_timeout 500ms;
--- config
location = /upload { audex_auth on; audex_upload; }
--- down
mongo
--- request eval
[
    [ ::req('/upload', 'video/mp4', $::big) ],
    [ ::req('/upload', 'video/mp4', $::mp4) ],
]
--- error_code eval
[503, 503]
--- response_body eval
[("{\"error\":\"database unavailable\"}\n") x 2]
--- error_log eval
[qr/\[error\].*audex: upload failed: database unavailable \(.+\), after/]



=== TEST 21: audex_upload without audex_auth fails nginx -t
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_upload; }
--- must_die
--- error_log
audex_upload in location "/upload" needs "audex_auth on": it acts for the token's user



=== TEST 22: after all of the failures above, the stored files are whole
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- raw_request eval
::req('/upload', 'video/mp4', $::mp4)
--- error_code: 202
--- check
like(::census(), qr/ 0 0$/, "no orphan chunk or job in the whole run");
my $out = mongo_eval(<<'PY');
import hashlib
b = gridfs.GridFSBucket(db, 'videos')
bad = [str(f['_id']) for f in db['videos.files'].find()
       if hashlib.sha256(b.open_download_stream(f['_id']).read()).hexdigest()
          != f['metadata']['sha256']]
print(len(bad))
PY
is($out, "0\n", "every stored file reads back to its sha256");



=== TEST 23: memory: a 300 MB upload grows the worker's peak RSS by less than 20 MB
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- raw_request eval
::req('/upload', 'video/mp4', $::big)
--- error_code: 202
--- timeout: 600
--- check
# the worker: the only child of the master
open my $fh, '<', servroot() . '/logs/nginx.pid' or die;
chomp(my $master = <$fh>);
my $worker;
for my $stat (glob '/proc/[0-9]*/stat') {
    open my $st, '<', $stat or next;
    my @f = split ' ', scalar(<$st>) // '';
    $worker = $f[0] if ($f[3] // 0) == $master;
}
ok($worker, "found the worker") or return;

my $hwm = sub {
    open my $s, '<', "/proc/$worker/status" or die "$worker: $!";
    my ($kb) = join('', <$s>) =~ /^VmHWM:\s+(\d+) kB/m;
    return $kb;
};
my $before = $hwm->();

my $size = 300 * 1024 * 1024;
my $block = substr($::big x 2, length $::mp4, 1024 * 1024);
my $sha = Digest::SHA->new(256);
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $ENV{TEST_NGINX_SERVER_PORT})
    or die "connect: $!";
my $head = ::req('/upload?filename=large.mp4', 'video/mp4', '');
$head =~ s/Content-Length: 0/Content-Length: $size/;
print {$s} $head, $::mp4;
$sha->add($::mp4);
my $left = $size - length $::mp4;
while ($left > 0) {
    my $n = $left < length $block ? $left : length $block;
    print {$s} substr($block, 0, $n) or die "send: $!";
    $sha->add(substr($block, 0, $n));
    $left -= $n;
}
$s->flush;
local $/;
my $r = Audex::Test::_parse_response(scalar <$s>);
close $s;
is($r->{code}, 202, "300 MB: 202") or diag($r->{raw} // $r->{error});

my $after = $hwm->();
my $growth = $after - $before;
diag("worker VmHWM: $before kB before, $after kB after 300 MB");
ok($growth < 20 * 1024, "peak RSS grew by $growth kB, under 20 MB");

my ($fid) = $r->{body} =~ /"video_fid":"(\w+)"/;
# chunk by chunk in small batches: FerretDB answers GridFSBucket's cursor
# with replies over the 48 MB message limit
my $out = mongo_eval(<<"PY");
import hashlib
from bson import ObjectId
fid = ObjectId('$fid')
f = db['videos.files'].find_one({'_id': fid})
h = hashlib.sha256()
n = 0
for c in db['videos.chunks'].find({'files_id': fid}, sort=[('n', 1)],
                                  batch_size=16):
    assert c['n'] == n, (c['n'], n)
    h.update(c['data'])
    n += 1
print(f['length'], h.hexdigest(), f['metadata']['sha256'])
PY
is($out, join(' ', $size, ($sha->hexdigest) x 2) . "\n",
   "300 MB: GridFS reads back the same bytes, and the same sha256");
--- no_error_log
hashed path



=== TEST 24: curl: -F with Expect: 100-continue, then a raw body on the same connection
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /upload { audex_auth on; audex_upload; }
--- raw_request eval
::req('/upload', 'video/mp4', $::mp4)
--- error_code: 202
--- check
my $path = "$::dir/two-megs.mp4";
my $content = $::mp4 . substr($::big, length $::mp4) x 3;
open my $fh, '>:raw', $path or die;
print $fh $content;
close $fh;
my $url = "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/upload";
my @auth = ('-H', "Authorization: Bearer " . ::token());
open my $c, '-|', 'curl', '-sS',
    @auth, '-F', 'bitrate=320', '-F', "file=\@$path;type=video/mp4", $url,
    '-w', '\n%{http_code} %{num_connects}\n', '--next',
    @auth, '-H', 'Content-Type: video/mp4', '--data-binary', "\@$path",
    "$url?filename=again.mp4", '-w', '\n%{http_code} %{num_connects}\n'
    or die "curl: $!";
my @out = grep { length } split /\n/, do { local $/; <$c> };
close $c;
is(scalar @out, 4, "curl: two answers") or diag(join "\n", @out);
is($out[1], '202 1', "curl -F: 202 on a new connection");
is($out[3], '202 0', "curl raw: 202 on the same connection");
::check_stored({ body => $out[0], headers => { location => ["/jobs/" . ($out[0] =~ /"job_id":"(\w+)"/)[0]] } },
               $content, filename => 'two-megs.mp4', option => ['bitrate', 320]);
::check_stored({ body => $out[2], headers => { location => ["/jobs/" . ($out[2] =~ /"job_id":"(\w+)"/)[0]] } },
               $content, filename => 'again.mp4');
--- error_log
Expect: 100-continue



=== TEST 25: HTTP/2 over TLS: multipart, and a body of no stated length; HTTP/1.1 chunked over TLS
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
server {
    listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl http2;
    ssl_certificate $TEST_NGINX_TLS_DIR/cert.pem;
    ssl_certificate_key $TEST_NGINX_TLS_DIR/key.pem;
    location = /upload { audex_auth on; audex_upload; }
}
--- config
location = /upload { audex_auth on; audex_upload; }
--- raw_request eval
::req('/upload', 'video/mp4', $::mp4)
--- error_code: 202
--- check
my $path = "$::dir/h2.mp4";
my $content = $::mp4 . substr($::big, length $::mp4) x 2;
open my $fh, '>:raw', $path or die;
print $fh $content;
close $fh;
my $url = "https://127.0.0.1:$ENV{TEST_NGINX_TLS_PORT}/upload";
my @auth = ('-H', "Authorization: Bearer " . ::token());
my @runs = (
    [ 'HTTP/2, multipart', 'h2.mp4', 2,
      '--http2', '-F', "file=\@$path;type=video/mp4", $url ],
    [ 'HTTP/2, no length (DATA frames to END_STREAM)', 'h2-raw.mp4', 2,
      '--http2', '-X', 'POST', '-T', '-', '-H', 'Content-Type: video/mp4',
      "$url?filename=h2-raw.mp4" ],
    [ 'HTTP/1.1 chunked', 'h1-chunked.mp4', 1.1,
      '--http1.1', '-X', 'POST', '-T', '-', '-H', 'Content-Type: video/mp4',
      "$url?filename=h1-chunked.mp4" ],
);
for my $run (@runs) {
    my ($what, $name, $version, @args) = @$run;
    open my $c, '-|', 'sh', '-c', 'f=$1; shift; exec curl "$@" < "$f" 2>&1',
        'sh', $path, '-sS', '-k', @auth,
        '-w', '\n%{http_version} %{http_code}', @args or die "curl: $!";
    my $out = do { local $/; <$c> };
    close $c;
    my ($body, $status) = $out =~ /\A(.*)\n(\S+ \d+)\z/s;
    is($status, "$version 202", "$what: 202 over HTTP/$version")
        or diag($out);
    my ($job) = ($body // '') =~ /"job_id":"(\w+)"/;
    ::check_stored({ body => $body // '', headers => { location => ["/jobs/" . ($job // '')] } },
                   $content, filename => $name);
}
--- error_log
audex: upload of "h2-raw.mp4" by ann@example.com stored as
