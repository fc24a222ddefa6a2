# The store layer (store/) against a real MongoDB-wire server: the C
# tests of t/unit/test_store.c with a server, then what other drivers
# see: pymongo's GridFS reads a file whose chunks the store wrote, and
# the store's chunk ids are the rule lib/audex_schema.h states, computed
# here by Python's hashlib.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Audex::Backend;

my $bin = ($ENV{AUDEX_UNIT_DIR} || 'build/unit') . '/test_store';
ok(-x $bin, "$bin is built") or BAIL_OUT("$bin missing: run make first");

my ($uri) = start_mongo();
my ($port) = $uri =~ /:(\d+)\//;
ok(!$port || wait_port($port), 'the MongoDB-wire server listens');

{
    local $ENV{AUDEX_TEST_MONGODB_URI} = $uri;
    my $out = `$bin 2>&1`;
    is($?, 0, 'store tests against the server pass') or diag($out);
    like($out, qr/OK \] test_docs/, 'the server group ran');
    unlike($out, qr/SKIPPED/, 'nothing was skipped');
}

# test_store leaves the chunks of its put/get and foreign-read tests in
# bucket "t"; Python checks each of the store's chunk ids by the rule
my $py = <<'PY';
import sys, hashlib, struct, pymongo
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
ours = theirs = 0
for c in db["t.chunks"].find({}):
    want = hashlib.sha256(c["files_id"].binary
                          + struct.pack(">i", c["n"])).digest()[:12]
    if c["_id"].binary == want:
        ours += 1
    else:
        theirs += 1
print(ours, theirs)
PY
my $out = `/usr/bin/python3 -c '$py' '$uri' 2>&1`;
my ($ours, $theirs) = $out =~ /^(\d+) (\d+)$/m;
ok(defined $ours, 'Python listed the chunks') or diag($out);
# test_put_get stores 1 chunk; test_foreign_read writes 2 with own ids
is($ours, 1, "the store's chunk has the _id the rule gives");
is($theirs, 2, "the other driver's chunks do not");

# SQLite's database locked by another process beyond FerretDB's own wait
# (set to 100 ms here): the store's writes are tried again and succeed.
# The lock is held until FerretDB has refused a write with SQLITE_BUSY,
# so the retry is what makes them pass.
SKIP: {
    skip 'MONGODB_URI names a real MongoDB', 4 if $ENV{MONGODB_URI};

    my ($buri, undef, $bdir) =
        start_mongo(sqlite_query => '?_pragma=busy_timeout(100)');
    my ($dbname) = $buri =~ m{/([^/?]+)$};

    my $hold = <<'PY';
import sys, time, sqlite3, pymongo
uri, path, log = sys.argv[1:4]
db = pymongo.MongoClient(uri).get_default_database()
for c in ("t_jobs", "t.files", "t.chunks"):
    db[c].insert_one({"_id": "made"})
    db[c].delete_one({"_id": "made"})
con = sqlite3.connect(path, isolation_level=None, timeout=10)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
seen, t = False, time.time()
while not seen and time.time() - t < 30:
    seen = "SQLITE_BUSY" in open(log, errors="replace").read()
    time.sleep(0.02)
con.execute("ROLLBACK")
print("released after a refusal" if seen else "released: no refusal seen",
      flush=True)
PY
    open my $h, '-|', '/usr/bin/python3', '-c', $hold, $buri,
        "$bdir/$dbname.sqlite", "$bdir/ferretdb.log"
        or die "python3: $!";
    my $first = <$h> // '';
    is($first, "locked\n", 'another process holds the write lock');

    local $ENV{AUDEX_TEST_MONGODB_URI} = $buri;
    local $ENV{AUDEX_TEST_BUSY} = 1;
    my $out = `$bin 2>&1`;
    is($?, 0, 'every write succeeds while the database is locked')
        or diag($out);
    like($out, qr/OK \] test_busy_writes/, 'the locked group ran');

    my $last = <$h> // '';
    close $h;
    is($last, "released after a refusal\n",
       'FerretDB refused a write with SQLITE_BUSY on the way');
}

done_testing();
