# A download longer than send_timeout in all: the timeout bounds each
# read of a chunk, not the whole download (a client faster than the
# database kept the first read's timer, and was cut off after
# send_timeout with a 200 and part of the file).  pymongo's chunks are
# not under derived ids, so on FerretDB each read scans the bucket: some
# 0.4 s a chunk, the whole 30 MB some 40 s, against a send_timeout of 3 s
# (1 s left one read in a hundred past it on a busy machine).

use lib 't/lib';
use Audex::Test;

our $owner = '64b000000000000000000001';
our $fid;

run_tests(setup => sub {
    my $out = Audex::Test::mongo_eval(<<"PY");
import random
random.seed(7)
data = random.randbytes(30 * 1024 * 1024)
b = gridfs.GridFSBucket(db, "mp3s")
print(b.upload_from_stream("big.mp3", data, metadata={"owner_id": "$owner"}))
PY
    ($fid) = $out =~ /([0-9a-f]{24})/ or die "upload: $out";
});

__DATA__

=== TEST 1: 30 MB with send_timeout 3s, all of it
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
send_timeout 3s;
location = /download { audex_auth on; audex_download; }
--- request
GET /nothing
--- error_code: 404
--- timeout: 60
--- check
(my $tok = Audex::Test::bearer($::owner)) =~ s/^Authorization: Bearer //;
my $out = `curl -s -o /dev/null -w '%{http_code} %{size_download}' -H 'Authorization: Bearer $tok' 'http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/download?fid=$::fid'`;
is($out, "200 " . 30 * 1024 * 1024, 'the whole file, whatever it took');
