# A resumable upload across two nginx instances on the same Redis and
# FerretDB, one of them killed mid-PATCH: tuspy sends pieces to the
# first, then a large piece that the first is storing when it is killed
# with SIGKILL (master and workers, nothing closed or saved); tuspy goes
# on at the second, which waits out the dead one's lease (423, retried),
# and finishes at the first once it is started again.  GridFS must hold
# the file byte for byte, with exactly one job and one stream entry.

use lib 't/lib';
use Audex::Test;
use Audex::Media qw(make_media);
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use JSON::PP ();
use Time::HiRes qw(sleep time);

our $dir = tempdir('audex-tus-inst-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# an MP4 head, then noise: 24 MB, so the large piece takes FerretDB a
# good part of a second to store
our $file = "$dir/big.mp4";
{
    my $head = make_media($dir, { file => 'sine.mp4', seconds => 1,
                                  audio => ['aac 44100 1 64k'] });
    system('cp', $head, $file) == 0 or die "cp: $?";
    # the same bytes every run: a failure must be reproducible
    system('/usr/bin/python3', '-c', 'import random, sys
with open(sys.argv[1], "ab") as f:
    f.write(random.Random(1).randbytes(24 << 20))', $file) == 0
        or die "python3: $?";
}
our $size = -s $file;
our $chunk = 261120;

sub sha256_file {
    open my $fh, '<:raw', $_[0] or die "$_[0]: $!";
    my $d = Digest::SHA->new(256);
    $d->addfile($fh);
    return $d->hexdigest;
}

# tuspy: url (creation, or the upload's own), then pieces of $piece
# bytes up to $stop, each tried again every 3 s up to $retries times;
# prints the upload's URL and its offset
our $py = <<'PY';
import sys
from tusclient import client
url, tok, path, piece, stop, upload, retries = sys.argv[1:8]
c = client.TusClient(url, headers={'Authorization': 'Bearer ' + tok})
kw = dict(file_path=path, chunk_size=int(piece), retries=int(retries),
          retry_delay=3,
          metadata={'filename': 'clip.mp4', 'filetype': 'video/mp4'})
if upload != '-':
    kw['url'] = upload
u = c.uploader(**kw)
if not u.url:
    u.set_url(u.create_url())
    u.offset = 0
print(u.url, flush=True)
u.upload(stop_at=int(stop))
print(u.offset, flush=True)
PY

# the token, once the harness has made the secret
our $tok;
sub tok { $tok //= (bearer('64b000000000000000000001') =~ /Bearer (\S+)/)[0] }

# starts tuspy; returns the pipe of its output
sub tuspy {
    my ($base, $piece, $stop, $upload, $retries) = @_;
    my $pid = open my $fh, '-|' // die "fork: $!";
    if ($pid == 0) {
        # its complaints (the killed piece's traceback) go to a log
        open STDERR, '>>', servroot() . '/logs/tuspy.log' or exit 127;
        exec '/usr/bin/python3', '-c', $py, "$base/files/", tok(), $file,
            $piece, $stop, $upload // '-', $retries // 0;
        exit 127;
    }
    return $fh;
}

sub offset_at {
    my ($port, $path) = @_;
    my $out = `curl -s -I -H 'Authorization: Bearer @{[ tok() ]}' -H 'Tus-Resumable: 1.0.0' http://127.0.0.1:$port$path`;
    return $out =~ /^Upload-Offset: (\d+)\r?$/mi ? $1 : -1;
}

run_tests();

__DATA__

=== TEST 1: killed mid-PATCH, resumed on the other instance, finished on the first
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
log_format tus '$request_method $uri $status $http_upload_offset';
--- config
location /files/ {
    audex_auth on;
    audex_tus;
    access_log logs/access.log;
    access_log logs/tus.log tus;
}
location = /healthz { audex_healthz; }
--- request
GET /healthz
--- error_code: 200
--- timeout: 10
--- check
my $one = "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}";
my $two = nginx_instance();
my $p2 = $two->{port};

# two pieces of 300 KB at the first
my $t = ::tuspy($one, 300 * 1024, 600 * 1024);
chomp(my $url = <$t>);
chomp(my $off = <$t> // '');
close $t;
my ($path) = $url =~ m{(/files/[0-9a-f]{24})$};
ok($path, "tuspy created $url");
is($off, 600 * 1024, 'two pieces stored at the first instance');

# the rest in one piece; once at least 2 full chunks are stored past
# the stored offset (advanced every 4 chunks), the first is killed, by
# the poller itself, so that the next advance does not come first
my $start = 600 * 1024;
my $fid = ($path =~ m{([0-9a-f]{24})$})[0];
my $pidfile = servroot() . '/logs/nginx.pid';
$t = ::tuspy($one, $::size, $::size, $url);
my $k = JSON::PP::decode_json(mongo_eval(<<"PY"));
import hashlib, os, time
from bson import ObjectId
fid = ObjectId('$fid')
master = int(open('$pidfile').read())
pids = [master]
for d in os.listdir('/proc'):
    try:
        if d.isdigit() and int(open('/proc/%s/stat' % d).read()
                              .rsplit(')', 1)[1].split()[1]) == master:
            pids.append(int(d))
    except (OSError, IndexError, ValueError):
        pass
def cid(n):
    return ObjectId(hashlib.sha256(fid.binary + n.to_bytes(4, 'big'))
                    .digest()[:12])
end = time.time() + 30
seen = off = n = 0
while time.time() < end:
    # chunks k and k+1 past the offset kC stored, k+2 not yet: the next
    # advance is two chunks away (looked up by their derived _id, as
    # audex_store_chunk_id makes it: counting them all is slow)
    off = db.tus.find_one({'_id': fid})['offset']
    k = off // $::chunk
    n = k + 2
    if (off > $start
            and db['videos.chunks'].find_one({'_id': cid(k + 1)}, {'_id': 1})
            and not db['videos.chunks'].find_one({'_id': cid(k + 2)},
                                                 {'_id': 1})):
        for p in pids:
            os.kill(p, 9)
        seen = 1
        break
    time.sleep(0.002)
print(json.dumps({'killed': seen, 'offset': off, 'chunks': n}))
PY
nginx_kill();
my $rest = do { local $/; <$t> };
close $t;
ok($k->{killed}, "killed with $k->{chunks} chunks stored, offset "
   . "$k->{offset} stored");
ok($? != 0, 'the large piece did not finish: its server died');
my $seen = $k->{offset};
ok($seen > $start, "chunks of it stored and counted (offset $seen)");

# every full chunk nginx stored before it died (chunks are stored whole
# and in order, from chunk 0)
my $stored = $::chunk * mongo_eval(<<"PY");
from bson import ObjectId
print(db['videos.chunks'].count_documents({'files_id': ObjectId('$fid')}))
PY

# the dead one's lease runs: its state as it left it, at an advance
my $after = ::offset_at($p2, $path);
ok($after > $start && $after < $::size,
   "the offset after the kill is inside the piece ($after)");
is($after % $::chunk, 0, 'it ends at a stored chunk: no tail was saved');

# tuspy at the second: HEAD, then PATCHes, refused (423) until the dead
# one's lease has run out; 2 MB more
my $mid = $after + 2 * 1024 * 1024;
$t = ::tuspy("http://127.0.0.1:$p2", 512 * 1024, $mid,
             "http://127.0.0.1:$p2$path", 30);
my @out = <$t>;
close $t;
is($?, 0, 'tuspy went on at the second instance');
chomp($off = $out[-1] // '');
is($off, $mid, 'to where it was asked to stop');
open my $log, '<', "$two->{root}/logs/access.log" or die $!;
my @locked = grep { /"PATCH \Q$path\E [^"]*" 423 / } <$log>;
close $log;
ok(scalar @locked, 'the second refused PATCHes while the lease of the '
   . 'killed one ran (' . scalar(@locked) . ' times)');
# tuspy HEADs before each try: the first PATCH taken at the second
# starts where the offset was made exact once the lease had run out
open $log, '<', "$two->{root}/logs/tus.log" or die $!;
my ($resumed) = map { /^PATCH \S+ 204 (\d+)$/ ? $1 : () } <$log>;
close $log;
ok(defined $resumed && $resumed >= $stored - $::chunk,
   "resumed at @{[ $resumed // '-' ]}, at most one chunk below the "
   . "$stored bytes stored as full chunks at the kill");
# 423 only while the dead one's lease (6 s) runs, tried every 3 s
ok(@locked <= 4, 'refused no more than the lease allows ('
   . scalar(@locked) . ' times)');

# the first again, the rest there
nginx_start();
$t = ::tuspy($one, 4 * 1024 * 1024, $::size, $url);
@out = <$t>;
close $t;
is($?, 0, 'tuspy finished at the first instance, started again');
chomp($off = $out[-1] // '');
is($off, $::size, 'the whole file');

my $s = JSON::PP::decode_json(mongo_eval(<<"PY"));
import hashlib
from bson import ObjectId
fid = ObjectId('$fid')
g = gridfs.GridFSBucket(db, 'videos')
h = hashlib.sha256()
s = g.open_download_stream(fid)
while True:
    b = s.read(1 << 20)
    if not b:
        break
    h.update(b)
f = db['videos.files'].find_one({'_id': fid})
print(json.dumps({'sha256': h.hexdigest(), 'length': f['length'],
    'meta': f['metadata'].get('sha256'),
    'chunks': db['videos.chunks'].count_documents({'files_id': fid}),
    'jobs': db.jobs.count_documents({'video_fid': fid})}))
PY
my $want = ::sha256_file($::file);
is($s->{length}, $::size, 'GridFS: the length');
is($s->{sha256}, $want, 'GridFS: SHA-256 of the bytes read back is the file\'s');
is($s->{meta}, $want, 'metadata.sha256 too');
is($s->{chunks}, int(($::size + $::chunk - 1) / $::chunk),
   'no chunk more (those past the offset at the kill were overwritten)');
is($s->{jobs}, 1, 'exactly one job');
my $n = () = redis_cli('XRANGE', 'video', '-', '+') =~ /^\Q$fid\E$/mg;
is($n, 1, 'exactly one entry on the jobs stream');

nginx_instance_stop($two);
