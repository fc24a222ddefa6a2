# GET /download?fid=: MP3s streamed from GridFS, with ranges, validators,
# owner checks and signed links.  The files are written by pymongo's
# GridFS, an implementation independent of ours.

use lib 't/lib';
use Audex::Test;
use Digest::SHA qw(sha256_hex hmac_sha256);
use Socket;
use Time::HiRes qw(sleep);

our $owner = '64b000000000000000000001';
our $other = '64b000000000000000000002';
our (%fid, %sha);

# a pymongo GridFS upload of N pseudo-random bytes into "mp3s"
sub put_file {
    my ($name, $size, $filename) = @_;
    my $out = Audex::Test::mongo_eval(<<"PY");
import hashlib, random
random.seed($size)
data = random.randbytes($size)
b = gridfs.GridFSBucket(db, "mp3s")
fid = b.upload_from_stream("$filename", data,
        metadata={"owner_id": "$::owner", "job_id": "j-$name"})
print(fid, hashlib.sha256(data).hexdigest())
PY
    ($fid{$name}, $sha{$name}) = split ' ', $out;
    die "upload of $name failed: $out" unless $fid{$name};
}

# GET /download?fid= on a raw socket with a small receive buffer, read
# `$bytes` at a time with a pause between reads (all when $bytes is
# undef); returns the whole answer, or what came before the client left
# after $leave_after bytes
sub slow_get {
    my ($fid, %o) = @_;
    socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 8192) or die "setsockopt: $!";
    connect($s, sockaddr_in($ENV{TEST_NGINX_SERVER_PORT},
                            inet_aton('127.0.0.1'))) or die "connect: $!";
    my $req = "GET /download?fid=$fid HTTP/1.1\r\nHost: localhost\r\n"
            . "Connection: close\r\n"
            . Audex::Test::bearer($::owner) . "\r\n\r\n";
    syswrite($s, $req) == length $req or die "write: $!";
    my $all = '';
    while (1) {
        my $n = sysread($s, my $part, $o{bytes} // 65536);
        last unless $n;
        $all .= $part;
        last if defined $o{leave_after} && length $all >= $o{leave_after};
        sleep $o{pause} if $o{pause};
    }
    close $s;
    my ($head, $body) = split /\r\n\r\n/, $all, 2;
    return ($head // '', $body // '');
}

sub link_args {
    my ($fid, $exp, $owner) = @_;
    my $key = do { local (@ARGV, $/) = ("$ENV{TEST_NGINX_SERVROOT}/conf/link.secret"); <> };
    $key =~ s/\s+\z//;
    my $sig = Audex::Test::b64url(hmac_sha256("$fid\n" . ($owner // $::owner) . "\n$exp", $key));
    return "fid=$fid&exp=$exp&sig=$sig";
}

our $http = <<'EOF_HTTP';
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_link_secret $TEST_NGINX_SERVROOT/conf/link.secret;
EOF_HTTP

our $loc = 'location = /download { audex_auth optional; audex_download; }';

run_tests(setup => sub {
    open my $fh, '>', "$ENV{TEST_NGINX_SERVROOT}/conf/link.secret" or die;
    print $fh "k" x 40, "\n";
    close $fh;
    put_file('three', 700_000, 'clip.mp3');
    put_file('tiny', 10, 'tiny');
    put_file('utf8', 1000, 'caf\u00e9 \"live\".mp3');
    put_file('empty', 0, 'empty.mp3');
    put_file('big', 3_000_000, 'big.mp3');
    put_file('holed', 700_000, 'holed.mp3');
    Audex::Test::mongo_eval("from bson import ObjectId\n"
        . "db['mp3s.chunks'].delete_one({'files_id': "
        . "ObjectId('$fid{holed}'), 'n': 1})");
});

__DATA__

=== TEST 1: the owner downloads a whole file written by pymongo
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
"GET /download?fid=$::fid{three}"
--- more_headers eval
Audex::Test::bearer($::owner)
--- error_code: 200
--- response_headers eval
"Content-Type: audio/mpeg
Content-Length: 700000
Accept-Ranges: bytes
ETag: \"$::fid{three}\"
Content-Disposition: attachment; filename=\"clip.mp3\""
--- response_headers_like
Last-Modified: GMT$
--- check
Audex::Test::is(sha256_hex($res->{body}), $::sha{three}, "byte-identical");



=== TEST 2: ranges: first byte, last byte, suffix, across a chunk boundary, open end
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
[("GET /download?fid=$::fid{three}") x 5]
--- more_headers eval
[map { Audex::Test::bearer($::owner) . "\nRange: bytes=$_" } qw(0-0 699999-699999 -500 261000-262000 699990-)]
--- error_code eval
[206, 206, 206, 206, 206]
--- response_headers eval
[
 "Content-Range: bytes 0-0/700000\nContent-Length: 1",
 "Content-Range: bytes 699999-699999/700000\nContent-Length: 1",
 "Content-Range: bytes 699500-699999/700000\nContent-Length: 500",
 "Content-Range: bytes 261000-262000/700000\nContent-Length: 1001",
 "Content-Range: bytes 699990-699999/700000\nContent-Length: 10",
]
--- check
my @want = ([0, 1], [699999, 1], [699500, 500], [261000, 1001], [699990, 10]);
my $all = Audex::Test::mongo_eval('import sys; sys.stdout.buffer.write(gridfs.GridFSBucket(db, "mp3s").open_download_stream(__import__("bson").ObjectId("' . $::fid{three} . '")).read())');
Audex::Test::is($res->{body}, substr($all, $want[$i][0], $want[$i][1]), "range $i bytes");



=== TEST 3: a range beyond the end: 416 with the length; several ranges: the whole file
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
[("GET /download?fid=$::fid{tiny}") x 2]
--- more_headers eval
[Audex::Test::bearer($::owner) . "\nRange: bytes=10-", Audex::Test::bearer($::owner) . "\nRange: bytes=0-1,3-4"]
--- error_code eval
[416, 200]
--- response_headers eval
["Content-Range: bytes */10", "Content-Length: 10\n!Content-Range"]



=== TEST 4: If-None-Match with the ETag: 304; HEAD: headers only
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["GET /download?fid=$::fid{three}", "HEAD /download?fid=$::fid{three}"]
--- more_headers eval
[Audex::Test::bearer($::owner) . "\nIf-None-Match: \"$::fid{three}\"", Audex::Test::bearer($::owner)]
--- error_code eval
[304, 200]
--- response_body eval
["", ""]
--- response_headers eval
["ETag: \"$::fid{three}\"", "Content-Length: 700000"]



=== TEST 5: another user gets 404; an admin gets the file
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
[("GET /download?fid=$::fid{tiny}") x 2]
--- more_headers eval
[Audex::Test::bearer($::other), Audex::Test::bearer($::other, 1)]
--- error_code eval
[404, 200]
--- response_body eval
[qq{{"error":"not found"}\n}, undef]
--- error_log
not a file of "64b000000000000000000002@x"



=== TEST 6: bad id 400, unknown id 404, no credentials 401, wrong method 405
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["GET /download?fid=xyz", "GET /download?fid=64b0000000000000000000ff", "GET /download?fid=$::fid{tiny}", "POST /download?fid=$::fid{tiny}"]
--- more_headers eval
[Audex::Test::bearer($::owner), Audex::Test::bearer($::owner), "", Audex::Test::bearer($::owner)]
--- error_code eval
[400, 404, 401, 405]
--- response_body eval
[qq{{"error":"invalid file id"}\n}, qq{{"error":"not found"}\n}, qq{{"error":"token required"}\n}, qq{{"error":"method not allowed"}\n}]



=== TEST 7: a signed link works without a token; tampered or expired: 403
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
[
 "GET /download?" . ::link_args($::fid{tiny}, time + 600),
 "GET /download?" . (::link_args($::fid{tiny}, time + 600) =~ s/sig=./sig=A/r),
 "GET /download?" . ::link_args($::fid{tiny}, time + 600, $::other),
 "GET /download?" . ::link_args($::fid{tiny}, time - 10),
 "GET /download?" . (::link_args($::fid{tiny}, time + 600) =~ s/exp=(\d+)/"exp=" . ($1 + 1)/er),
]
--- error_code eval
[200, 403, 403, 403, 403]
--- response_body eval
[undef, qq{{"error":"invalid link"}\n}, qq{{"error":"invalid link"}\n}, qq{{"error":"link expired"}\n}, qq{{"error":"invalid link"}\n}]



=== TEST 8: a non-ASCII name: a transliterated ASCII fallback and filename*
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
"GET /download?fid=$::fid{utf8}"
--- more_headers eval
Audex::Test::bearer($::owner)
--- error_code: 200
--- response_headers
Content-Disposition: attachment; filename="cafe _live_.mp3"; filename*=UTF-8''caf%C3%A9%20%22live%22.mp3



=== TEST 9: an empty file
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
"GET /download?fid=$::fid{empty}"
--- more_headers eval
Audex::Test::bearer($::owner)
--- error_code: 200
--- response_headers
Content-Length: 0
--- response_body:



=== TEST 10: MongoDB down: 503
--- http_config eval: $::http . "audex_backend_timeout 1s;\n"
--- config eval: $::loc
--- down: mongo
--- request eval
"GET /download?fid=$::fid{tiny}"
--- more_headers eval
Audex::Test::bearer($::owner)
--- error_code: 503
--- response_body
{"error":"database unavailable"}



=== TEST 11: a slow client with a small receive buffer gets every byte of a file of 12 chunks
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
"GET /download?fid=$::fid{tiny}"
--- more_headers eval
Audex::Test::bearer($::owner)
--- error_code: 200
--- check
my ($head, $body) = ::slow_get($::fid{big}, bytes => 8192, pause => 0.002);
Audex::Test::like($head, qr{^HTTP/1.1 200}, "slow: 200");
Audex::Test::is(length $body, 3_000_000, "slow: all bytes");
Audex::Test::is(sha256_hex($body), $::sha{big}, "slow: byte-identical");



=== TEST 12: a chunk missing mid-file: the chunks before it, then the connection is cut
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
"GET /download?fid=$::fid{tiny}"
--- more_headers eval
Audex::Test::bearer($::owner)
--- error_code: 200
--- check
my ($head, $body) = ::slow_get($::fid{holed});
Audex::Test::like($head, qr{Content-Length: 700000}, "holed: the length of the file");
Audex::Test::is(length $body, 261120, "holed: chunk 0 only, then the end");
--- error_log eval
[qr/audex: download \w+: chunk 1: chunk 1 is missing/]



=== TEST 13: the client leaves mid-file: the worker goes on serving
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["GET /download?fid=$::fid{tiny}", "GET /download?fid=$::fid{tiny}"]
--- more_headers eval
[(Audex::Test::bearer($::owner)) x 2]
--- error_code eval
[200, 200]
--- check
if ($i == 0) {
    for (1 .. 3) {
        my ($head, $body) = ::slow_get($::fid{big}, bytes => 4096,
                                       leave_after => 20_000);
        Audex::Test::like($head, qr{^HTTP/1.1 200}, "left after 20 kB");
    }
}
