# GET /download?fid=: MP3s streamed from GridFS, with ranges, validators,
# owner checks and signed links.  The files are written by pymongo's
# GridFS, an implementation independent of ours; most carry
# metadata.sha256 as the converter writes it, "legacy" does not.

use lib 't/lib';
use Audex::Test;
use Digest::SHA qw(sha256_hex hmac_sha256);
use POSIX qw(strftime);
use Socket;
use Time::HiRes qw(sleep);

our $owner = '64b000000000000000000001';
our $other = '64b000000000000000000002';
our (%fid, %sha, %ms);

# a pymongo GridFS upload of N pseudo-random bytes into "mp3s", with
# metadata.sha256 unless $legacy
sub put_file {
    my ($name, $size, $filename, $legacy) = @_;
    my $digest = $legacy ? '' : '"sha256": hashlib.sha256(data).hexdigest()';
    my $out = Audex::Test::mongo_eval(<<"PY");
import hashlib, random
random.seed($size)
data = random.randbytes($size)
b = gridfs.GridFSBucket(db, "mp3s")
fid = b.upload_from_stream("$filename", data,
        metadata={"owner_id": "$::owner", "job_id": "j-$name", $digest})
ms = db["mp3s.files"].find_one({"_id": fid})["uploadDate"]
print(fid, hashlib.sha256(data).hexdigest(),
      int(ms.timestamp() * 1000 + 0.5))
PY
    ($fid{$name}, $sha{$name}, $ms{$name}) = split ' ', $out;
    die "upload of $name failed: $out" unless $fid{$name};
}

# the validators a file should have
sub etag { return "\"sha256-$::sha{$_[0]}\"" }
sub http_date { return strftime('%a, %d %b %Y %H:%M:%S GMT', gmtime $_[0]) }
sub modified { return http_date(int($::ms{$_[0]} / 1000)) }

# A second nginx, its own process and prefix, with this block's
# configuration on another port: the same backends behind two servers.
# Returns its port; it is stopped when the test file ends.
sub second_nginx {
    my $root = Audex::Test::servroot();
    my $two = "$root/second";
    mkdir $_ for $two, "$two/conf", "$two/logs";
    open my $in, '<', "$root/conf/nginx.conf" or die $!;
    my $conf = do { local $/; <$in> };
    my $port = Audex::Test::free_port();
    $conf =~ s{\Q$root\E/(logs|client_body|proxy|fastcgi|uwsgi|scgi)\b}{$two/$1}g;
    $conf =~ s/listen 127\.0\.0\.1:\d+/listen 127.0.0.1:$port/;
    open my $out, '>', "$two/conf/nginx.conf" or die $!;
    print $out $conf;
    close $out;
    system($Audex::Test::NGINX, '-p', "$two/", '-c', "$two/conf/nginx.conf") == 0
        or die "the second nginx did not start";
    Audex::Test::wait_port($port, 5) or die "the second nginx is not listening";
    # the master opens its port before it writes its pid
    for (1 .. 200) { last if -s "$two/logs/nginx.pid"; sleep 0.025 }
    open my $pf, '<', "$two/logs/nginx.pid" or die "the second nginx: $!";
    chomp(my $pid = <$pf>);
    Audex::Test::at_exit(sub { kill 'QUIT', $pid });
    return $port;
}

# GET on port $port with these headers; the parsed answer
sub get_on {
    my ($port, $uri, @headers) = @_;
    local $ENV{TEST_NGINX_SERVER_PORT} = $port;
    return Audex::Test::http_request(join "\r\n", "GET $uri HTTP/1.1",
        'Host: localhost', 'Connection: close', @headers, '', '');
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

# the same link with the signature's first character changed (to "A",
# or "B" where it was "A": a fixed "A" left one link in 64 untouched)
sub tampered {
    my ($args) = @_;
    return $args =~ s/sig=(.)/"sig=" . ($1 eq 'A' ? 'B' : 'A')/er;
}

our $http = <<'EOF_HTTP';
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_link_secret $TEST_NGINX_SERVROOT/conf/link.secret;
EOF_HTTP

our $loc = 'location = /download { audex_auth optional; audex_download; }';

# the access log's format of conf/nginx.conf.example: its map and
# log_format, as written there
sub example_log_format {
    my $example = do { local (@ARGV, $/) = ("$Audex::Test::TOP/conf/nginx.conf.example"); <> };
    my ($map) = $example =~ /^(\s*map \$uri \$audex_log_request \{.*?\}\n)/ms
        or die "no map \$audex_log_request in the example";
    my ($fmt) = $example =~ /^(\s*log_format audex .*?;\n)/ms
        or die "no log_format audex in the example";
    $example =~ /^\s*access_log logs\/access\.log audex;/m
        or die "the example's access log is not in the audex format";
    return $map . $fmt;
}

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
    put_file('legacy', 1000, 'old.mp3', 1);
    put_file('headless', 700_000, 'headless.mp3');
    Audex::Test::mongo_eval("from bson import ObjectId\n"
        . "db['mp3s.chunks'].delete_one({'files_id': "
        . "ObjectId('$fid{holed}'), 'n': 1})\n"
        . "db['mp3s.chunks'].delete_one({'files_id': "
        . "ObjectId('$fid{headless}'), 'n': 0})");
});

__DATA__

=== TEST 1: the owner downloads a whole file written by pymongo; its ETag is the SHA-256 of the bytes
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
ETag: @{[ ::etag('three') ]}
Last-Modified: @{[ ::modified('three') ]}
Content-Disposition: attachment; filename=\"clip.mp3\""
--- check
Audex::Test::is(sha256_hex($res->{body}), $::sha{three}, "byte-identical");
Audex::Test::is($res->{headers}{etag}[0],
                '"sha256-' . sha256_hex($res->{body}) . '"',
                "the ETag is the digest of what was sent");



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



=== TEST 3: a range beyond the end: 416 with the length, not the file's headers; several ranges: the whole file
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
[("GET /download?fid=$::fid{tiny}") x 2]
--- more_headers eval
[Audex::Test::bearer($::owner) . "\nRange: bytes=10-", Audex::Test::bearer($::owner) . "\nRange: bytes=0-1,3-4"]
--- error_code eval
[416, 200]
--- response_headers eval
["Content-Range: bytes */10\n!Content-Disposition\n!ETag", "Content-Length: 10\n!Content-Range"]
--- response_body eval
[qq{{"error":"range not satisfiable"}\n}, undef]
--- error_log
range not satisfiable



=== TEST 4: conditional requests, answered by nginx's not-modified filter as for a static file
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
[("GET /download?fid=$::fid{three}") x 13, ("HEAD /download?fid=$::fid{three}") x 2]
--- more_headers eval
my $b = Audex::Test::bearer($::owner);
my ($e, $lm) = (::etag('three'), ::modified('three'));
my $before = ::http_date(int($::ms{three} / 1000) - 3600);
[
 "$b\nIf-None-Match: $e",
 "$b\nIf-None-Match: \"sha256-0123\", $e",
 "$b\nIf-None-Match: W/$e",
 "$b\nIf-None-Match: *",
 "$b\nIf-None-Match: \"sha256-0123\"",
 "$b\nIf-Modified-Since: $lm",
 "$b\nIf-Modified-Since: $before",
 "$b\nIf-Match: \"sha256-0123\"",
 "$b\nIf-Match: $e",
 "$b\nIf-Unmodified-Since: $before",
 "$b\nIf-None-Match: $e\nRange: bytes=0-9",
 "$b\nIf-Match: \"sha256-0123\"\nRange: bytes=0-9",
 "$b\nIf-Unmodified-Since: $lm\nRange: bytes=0-9",
 "$b",
 "$b\nRange: bytes=261000-262000",
]
--- error_code eval
[304, 304, 304, 304, 200, 304, 200, 412, 200, 412, 304, 412, 206, 200, 206]
--- response_headers eval
my ($e, $lm) = (::etag('three'), ::modified('three'));
[
 "ETag: $e\nLast-Modified: $lm\n!Content-Length\n!Accept-Ranges",
 "ETag: $e", "ETag: $e", "ETag: $e",
 "Content-Length: 700000",
 "ETag: $e",
 "Content-Length: 700000",
 "!ETag\n!Content-Disposition",
 "Content-Length: 700000",
 "!ETag",
 "ETag: $e\n!Content-Range",
 "!Content-Range",
 "Content-Range: bytes 0-9/700000",
 "Content-Length: 700000\nETag: $e\nAccept-Ranges: bytes",
 "Content-Range: bytes 261000-262000/700000\nContent-Length: 1001",
]
--- check
Audex::Test::is($res->{body}, '', "$i: no body")
    if $res->{code} == 304 || $i >= 13;
Audex::Test::is(length $res->{body}, 700_000, "$i: the whole file")
    if $res->{code} == 200 && $i < 13;



=== TEST 5: If-Range on a file of 12 chunks: the current ETag or date gives the range, anything else the whole file
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
[("GET /download?fid=$::fid{big}") x 6]
--- more_headers eval
my $b = Audex::Test::bearer($::owner) . "\nRange: bytes=1300000-1300099";
my ($e, $lm) = (::etag('big'), ::modified('big'));
my $stale = '"sha256-' . Digest::SHA::sha256_hex('an older file') . '"';
my $before = ::http_date(int($::ms{big} / 1000) - 1);
[
 "$b\nIf-Range: $e",
 "$b\nIf-Range: $stale",
 "$b\nIf-Range: W/$e",
 "$b\nIf-Range: $lm",
 "$b\nIf-Range: $before",
 "$b\nIf-Range: $e\nIf-None-Match: $stale",
]
--- error_code eval
[206, 200, 200, 206, 200, 206]
--- response_headers eval
[
 "Content-Range: bytes 1300000-1300099/3000000\nContent-Length: 100",
 "Content-Length: 3000000\n!Content-Range",
 "Content-Length: 3000000\n!Content-Range",
 "Content-Range: bytes 1300000-1300099/3000000",
 "Content-Length: 3000000",
 "Content-Range: bytes 1300000-1300099/3000000",
]
--- check
if ($res->{code} == 206) {
    my $all = Audex::Test::mongo_eval('import sys; sys.stdout.buffer.write(gridfs.GridFSBucket(db, "mp3s").open_download_stream(__import__("bson").ObjectId("' . $::fid{big} . '")).read())');
    Audex::Test::is($res->{body}, substr($all, 1300000, 100), "$i: the range's bytes");
} else {
    Audex::Test::is(sha256_hex($res->{body}), $::sha{big}, "$i: the whole file");
}



=== TEST 6: a range in the middle of a file of 12 chunks: read from its chunks, not from chunk 0
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
[("GET /download?fid=$::fid{big}") x 2]
--- more_headers eval
[map { Audex::Test::bearer($::owner) . "\nRange: bytes=$_" } qw(1305000-1830000 -300000)]
--- error_code eval
[206, 206]
--- response_headers eval
[
 "Content-Range: bytes 1305000-1830000/3000000\nContent-Length: 525001",
 "Content-Range: bytes 2700000-2999999/3000000\nContent-Length: 300000",
]
--- check
my @want = ([1305000, 525001], [2700000, 300000]);
my $all = Audex::Test::mongo_eval('import sys; sys.stdout.buffer.write(gridfs.GridFSBucket(db, "mp3s").open_download_stream(__import__("bson").ObjectId("' . $::fid{big} . '")).read())');
Audex::Test::is($res->{body}, substr($all, $want[$i][0], $want[$i][1]), "range $i bytes");
--- error_log eval
[qr/reading chunk 4\b/, qr/reading chunk 7\b/, qr/reading chunk 10\b/, qr/reading chunk 11\b/]
--- no_error_log eval
[qr/reading chunk [0-3]\b/, qr/reading chunk 8\b/]



=== TEST 7: two nginx processes on the same backend give the same validators
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["GET /download?fid=$::fid{three}", "GET /download?fid=$::fid{legacy}"]
--- more_headers eval
Audex::Test::bearer($::owner)
--- error_code eval
[200, 200]
--- check
our $second //= ::second_nginx();
my $name = $i == 0 ? 'three' : 'legacy';
my $there = ::get_on($second, "/download?fid=$::fid{$name}",
                     Audex::Test::bearer($::owner));
Audex::Test::is($there->{code}, 200, "$name: 200 from the second nginx");
Audex::Test::ok($res->{headers}{etag}[0], "$name: an ETag");
Audex::Test::is($there->{headers}{etag}[0], $res->{headers}{etag}[0],
                "$name: the same ETag from both");
Audex::Test::is($there->{headers}{'last-modified'}[0],
                $res->{headers}{'last-modified'}[0],
                "$name: the same Last-Modified from both");
my $again = ::get_on($second, "/download?fid=$::fid{$name}",
                     Audex::Test::bearer($::owner),
                     "If-None-Match: $res->{headers}{etag}[0]");
Audex::Test::is($again->{code}, 304,
                "$name: the first one's ETag is not modified on the second");
if ($i == 1) {
    open my $log, '<', Audex::Test::servroot() . "/second/logs/error.log";
    my @bad = grep { /\[(alert|crit|emerg)\]/ } <$log>;
    Audex::Test::is("@bad", '', "no alert in the second nginx's log");
}



=== TEST 8: a file stored without a digest: a weak ETag from its id, length and upload time
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
[("GET /download?fid=$::fid{legacy}") x 3]
--- more_headers eval
my $b = Audex::Test::bearer($::owner);
my $w = sprintf 'W/"%s-%x-%x"', $::fid{legacy}, 1000, $::ms{legacy};
[$b, "$b\nIf-None-Match: $w", "$b\nIf-None-Match: " . substr($w, 2)]
--- error_code eval
[200, 304, 304]
--- response_headers eval
my $w = sprintf 'W/"%s-%x-%x"', $::fid{legacy}, 1000, $::ms{legacy};
["ETag: $w\nLast-Modified: @{[ ::modified('legacy') ]}", "ETag: $w", "ETag: $w"]



=== TEST 9: "etag off" is honoured: no ETag, Last-Modified still answers
--- http_config eval: $::http
--- config eval: "etag off;\n$::loc"
--- request eval
[("GET /download?fid=$::fid{tiny}") x 2]
--- more_headers eval
my $b = Audex::Test::bearer($::owner);
[$b, "$b\nIf-Modified-Since: @{[ ::modified('tiny') ]}"]
--- error_code eval
[200, 304]
--- response_headers
!ETag



=== TEST 10: another user gets 404; an admin gets the file
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



=== TEST 11: bad id 400, unknown id 404, no credentials 401, wrong method 405
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



=== TEST 12: a signed link works without a token; tampered or expired: 403
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
[
 "GET /download?" . ::link_args($::fid{tiny}, time + 600),
 "GET /download?" . ::tampered(::link_args($::fid{tiny}, time + 600)),
 "GET /download?" . ::link_args($::fid{tiny}, time + 600, $::other),
 "GET /download?" . ::link_args($::fid{tiny}, time - 10),
 "GET /download?" . (::link_args($::fid{tiny}, time + 600) =~ s/exp=(\d+)/"exp=" . ($1 + 1)/er),
]
--- error_code eval
[200, 403, 403, 403, 403]
--- response_body eval
[undef, qq{{"error":"invalid link"}\n}, qq{{"error":"invalid link"}\n}, qq{{"error":"link expired"}\n}, qq{{"error":"invalid link"}\n}]



=== TEST 13: a non-ASCII name: a transliterated ASCII fallback and filename*
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
"GET /download?fid=$::fid{utf8}"
--- more_headers eval
Audex::Test::bearer($::owner)
--- error_code: 200
--- response_headers
Content-Disposition: attachment; filename="cafe _live_.mp3"; filename*=UTF-8''caf%C3%A9%20%22live%22.mp3



=== TEST 14: an empty file
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



=== TEST 15: MongoDB down: 503
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



=== TEST 16: a slow client with a small receive buffer gets every byte of a file of 12 chunks
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



=== TEST 17: a chunk missing mid-file: the chunks before it, then the connection is cut
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



=== TEST 18: the client leaves mid-file: the worker goes on serving
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



=== TEST 19: a good link decides whatever token comes with it; with a bad link the token decides
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
[
 "GET /download?" . ::link_args($::fid{tiny}, time + 600),
 "GET /download?" . ::tampered(::link_args($::fid{tiny}, time + 600)),
 "GET /download?" . ::link_args($::fid{tiny}, time - 10),
 "GET /download?" . ::tampered(::link_args($::fid{tiny}, time + 600)),
]
--- more_headers eval
[
 Audex::Test::bearer($::other),
 Audex::Test::bearer($::other),
 Audex::Test::bearer($::owner),
 Audex::Test::bearer($::other, 1),
]
--- error_code eval
[200, 404, 200, 200]
--- response_headers eval
[("ETag: " . ::etag('tiny')), "!ETag", ("ETag: " . ::etag('tiny')) x 2]
--- response_body eval
[undef, qq{{"error":"not found"}\n}, undef, undef]
--- error_log
invalid link, the token decides
expired link, the token decides
not a file of "64b000000000000000000002@x"



=== TEST 20: the first chunk read fails before anything is sent: an error answer, not an empty reply
--- http_config eval: $::http
--- config eval: $::loc
--- request eval
["GET /download?fid=$::fid{headless}", "GET /download?fid=$::fid{holed}", "HEAD /download?fid=$::fid{headless}"]
--- more_headers eval
[Audex::Test::bearer($::owner), Audex::Test::bearer($::owner) . "\r\nRange: bytes=300000-300009", Audex::Test::bearer($::owner)]
--- error_code eval
[500, 500, 200]
--- response_headers eval
[["Content-Type: application/json", "!ETag", "!Content-Disposition", "!Accept-Ranges"],
 ["Content-Type: application/json", "!Content-Range"],
 ["Content-Type: audio/mpeg", "Content-Length: 700000"]]
--- response_body eval
[qq{{"error":"the file is damaged"}\n}, qq{{"error":"the file is damaged"}\n}, ""]
--- error_log eval
[qr/audex: download \w+: chunk 0: chunk 0 is missing/,
 qr/audex: download \w+: chunk 1: chunk 1 is missing/]



=== TEST 21: the example's access log format leaves a signed link's query out, and keeps the path
--- http_config eval: $::http . ::example_log_format()
--- config
location = /download { audex_auth optional; audex_download; access_log logs/download.log audex; }
location = /other { return 200 "x\n"; access_log logs/download.log audex; }
--- request eval
["GET /download?" . ::link_args($::fid{tiny}, time + 600), "GET /other?keep=1"]
--- error_code eval
[200, 200]
--- check
return unless $i == 1;
my $log = '';
for (1 .. 40) {
    $log = do { local (@ARGV, $/) = ("$ENV{TEST_NGINX_SERVROOT}/logs/download.log"); <> } // '';
    last if $log =~ m{/other};
    sleep 0.05;
}
Audex::Test::like($log, qr{"GET /download HTTP/1\.1" 200 10 }, "the download, its path only");
Audex::Test::unlike($log, qr{sig=|exp=|fid=}, "no signed query in the log");
Audex::Test::like($log, qr{"GET /other\?keep=1 HTTP/1\.1" 200 }, "other requests logged whole");
