# The sweeper of unfinished uploads (workers/converter/sweep.c): a file
# whose upload began more than UPLOAD_GRACE seconds ago and never became
# whole (chunks without a files document, as a database killed
# mid-upload or a failed clean-up leaves them) is removed with its
# record; a complete file whose record was left keeps its file; a recent
# upload is left alone.  A resumable (tus) upload left idle as long goes
# with its state, and the state of one completed long ago goes too.  Two
# converters: one sweeps per period (a Redis lock), and the metric
# counts what was removed, by kind.

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

# files as a crash would leave them, with audex's derived chunk ids:
# "torn" (old, chunks, no files document), "whole" (old, complete: only
# its record was left), "young" (begun now, chunks, no files document),
# "tus" (old, chunks and the tus state of an upload whose client went
# away: expired) and "tusyoung" (a tus upload written to now)
my $ids = py(<<'PY');
def chunk_id(fid, n):
    return ObjectId(hashlib.sha256(fid.binary + struct.pack(">i", n)).digest()[:12])
now = datetime.datetime.now(datetime.timezone.utc)
old = now - datetime.timedelta(seconds=120)
out = {}
for name, began, whole in (("torn", old, False), ("whole", old, True),
                           ("young", now, False), ("tus", old, False),
                           ("tusyoung", now, False)):
    fid = ObjectId()
    if name.startswith("tus"):
        db.tus.insert_one({"_id": fid, "owner_id": "64b000000000000000000001",
            "length": 10000, "offset": 3000, "tail": b"",
            "expires_at": began + datetime.timedelta(seconds=30),
            "lock": "x", "lock_until": began, "job_id": None})
    for n in range(3):
        db["videos.chunks"].insert_one({"_id": chunk_id(fid, n),
            "files_id": fid, "n": n, "data": b"x" * 1000})
    if whole:
        db["videos.files"].insert_one({"_id": fid, "length": 3000,
            "chunkSize": 1000, "uploadDate": old, "filename": "w.mp4"})
    db.uploads.insert_one({"_id": fid, "bucket": "videos",
                           "active_at": began})
    out[name] = str(fid)
# the state of an upload completed long ago (its file is its job's)
done = ObjectId()
db.tus.insert_one({"_id": done, "owner_id": "64b000000000000000000001",
    "length": 10, "offset": 10, "tail": b"", "expires_at": old,
    "job_id": "64b0000000000000000000aa"})
out["tusdone"] = str(done)
print(json.dumps(out))
PY
my %fid = %{ JSON::PP::decode_json($ids) };

sub count {
    my ($fid, $what) = @_;
    return py($what eq 'chunks'
        ? "print(db['videos.chunks'].count_documents({'files_id': ObjectId('$fid')}))"
        : $what eq 'files'
        ? "print(db['videos.files'].count_documents({'_id': ObjectId('$fid')}))"
        : $what eq 'state'
        ? "print(db.tus.count_documents({'_id': ObjectId('$fid')}))"
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
while (time < $end && (count($fid{torn}, 'chunks') > 0
                       || count($fid{tus}, 'chunks') > 0)) {
    sleep 0.2;
}

is(count($fid{torn}, 'chunks'), 0, 'the torn upload: its chunks are gone');
is(count($fid{torn}, 'record'), 0, '... and its record');
is(count($fid{whole}, 'files'), 1, 'the complete file stays');
is(count($fid{whole}, 'chunks'), 3, '... with its chunks');
is(count($fid{whole}, 'record'), 0, '... its left-over record goes');
is(count($fid{young}, 'chunks'), 3, 'a recent upload is left alone');
is(count($fid{young}, 'record'), 1, '... with its record');
is(count($fid{tus}, 'chunks'), 0, 'the idle resumable upload: its chunks are gone');
is(count($fid{tus}, 'state'), 0, '... its tus state');
is(count($fid{tus}, 'record'), 0, '... and its record');
is(count($fid{tusyoung}, 'chunks'), 3, 'a resumable upload written to now stays');
is(count($fid{tusyoung}, 'state'), 1, '... with its state');
is(count($fid{tusdone}, 'state'), 0, 'the state of one completed long ago goes');

# what the two converters counted: one of them removed each file, and
# the kinds are told apart (a tus upload is not counted as a plain one)
my %total = (upload => 0, tus => 0);
for my $p (@ports) {
    my $m = `curl -s http://127.0.0.1:$p/metrics`;
    for my $kind (sort keys %total) {
        my ($n) = $m =~ /^converter_swept_uploads_total\{kind="$kind"\} (\d+)$/m;
        ok(defined $n, "converter on $p exports converter_swept_uploads_total{kind=\"$kind\"}");
        $total{$kind} += $n // 0;
    }
}
is($total{upload}, 1, 'one unfinished upload was swept, by one converter');
is($total{tus}, 1, 'one expired resumable upload was swept, counted as tus');

my $lock = `redis-cli -p $redis_port GET audex:lock:sweep`;
chomp $lock;
like($lock, qr/\S/, 'the sweep lock names the converter that holds it');

kill 'TERM', @c;
waitpid $_, 0 for @c;
unlink glob "/tmp/audex-sweep-$$-*.log";

done_testing();
