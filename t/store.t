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

done_testing();
