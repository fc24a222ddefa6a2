# The sweeper of unfinished uploads (workers/converter/sweep.c): a file
# whose upload began more than UPLOAD_GRACE seconds ago and never became
# whole (chunks without a files document, as a database killed
# mid-upload or a failed clean-up leaves them) is removed with its
# record; a complete file whose record was left keeps its file; a recent
# upload is left alone.  Two converters: one sweeps per period (a Redis
# lock), and the metric counts what was removed.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Audex::Backend;
use JSON::PP ();
use Time::HiRes qw(sleep time);

my $bin = 'build/bin/audex-converter';
ok(-x $bin, "$bin is built") or BAIL_OUT("$bin missing: run make first");

my ($redis, $redis_pid) = start_redis();
my ($mongo, $mongo_pid) = start_mongo();
my ($redis_port) = $redis =~ /:(\d+)\//;

sub py {
    my ($code) = @_;
    my $prog = "import sys, json, time, hashlib, struct, datetime, pymongo\n"
             . "from bson import ObjectId\n"
             . "db = pymongo.MongoClient(sys.argv[1]).get_default_database()\n"
             . $code;
    open my $p, '-|', '/usr/bin/python3', '-c', $prog, $mongo
        or die "python3: $!";
    my $out = do { local $/; <$p> };
    close $p;
    chomp $out;
    return $out;
}

# three files as a crash would leave them, with audex's derived chunk ids:
# "torn" (old, chunks, no files document), "whole" (old, complete: only
# its record was left) and "young" (begun now, chunks, no files document)
my $ids = py(<<'PY');
def chunk_id(fid, n):
    return ObjectId(hashlib.sha256(fid.binary + struct.pack(">i", n)).digest()[:12])
now = datetime.datetime.now(datetime.timezone.utc)
old = now - datetime.timedelta(seconds=120)
out = {}
for name, began, whole in (("torn", old, False), ("whole", old, True),
                           ("young", now, False)):
    fid = ObjectId()
    for n in range(3):
        db["videos.chunks"].insert_one({"_id": chunk_id(fid, n),
            "files_id": fid, "n": n, "data": b"x" * 1000})
    if whole:
        db["videos.files"].insert_one({"_id": fid, "length": 3000,
            "chunkSize": 1000, "uploadDate": old, "filename": "w.mp4"})
    db.uploads.insert_one({"_id": fid, "bucket": "videos",
                           "active_at": began})
    out[name] = str(fid)
print(json.dumps(out))
PY
my %fid = %{ JSON::PP::decode_json($ids) };

sub count {
    my ($fid, $what) = @_;
    return py($what eq 'chunks'
        ? "print(db['videos.chunks'].count_documents({'files_id': ObjectId('$fid')}))"
        : $what eq 'files'
        ? "print(db['videos.files'].count_documents({'_id': ObjectId('$fid')}))"
        : "print(db.uploads.count_documents({'_id': ObjectId('$fid')}))");
}

# two converters, sweeping every second, grace 60 s
my @c;
my @ports = (free_port(), free_port());
for my $i (0, 1) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "/tmp/audex-sweep-$$-$i.log";
        open STDERR, '>&', \*STDOUT;
        exec $bin, 'run', '--mongodb-uri', $mongo, '--redis-url', $redis,
            '--metrics-port', $ports[$i], '--sweep-every', 1,
            '--upload-grace', 60, '--log-level', 'info';
        exit 127;
    }
    push @c, $pid;
}
ok(wait_port($ports[$_]), "converter $_ serves its metrics") for 0, 1;

my $end = time + 20;
while (time < $end && count($fid{torn}, 'chunks') > 0) {
    sleep 0.2;
}

is(count($fid{torn}, 'chunks'), 0, 'the torn upload: its chunks are gone');
is(count($fid{torn}, 'record'), 0, '... and its record');
is(count($fid{whole}, 'files'), 1, 'the complete file stays');
is(count($fid{whole}, 'chunks'), 3, '... with its chunks');
is(count($fid{whole}, 'record'), 0, '... its left-over record goes');
is(count($fid{young}, 'chunks'), 3, 'a recent upload is left alone');
is(count($fid{young}, 'record'), 1, '... with its record');

# what the two converters counted: one of them removed the one file
my $total = 0;
for my $p (@ports) {
    my $m = `curl -s http://127.0.0.1:$p/metrics`;
    my ($n) = $m =~ /^converter_swept_uploads_total (\d+)$/m;
    ok(defined $n, "converter on $p exports converter_swept_uploads_total");
    $total += $n // 0;
}
is($total, 1, 'one unfinished upload was swept, by one converter');

my $lock = `redis-cli -p $redis_port GET audex:lock:sweep`;
chomp $lock;
like($lock, qr/\S/, 'the sweep lock names the converter that holds it');

kill 'TERM', @c;
waitpid $_, 0 for @c;
unlink glob "/tmp/audex-sweep-$$-*.log";

done_testing();
