# The embedded MongoDB-wire server is FerretDB built by scripts/setup.sh
# with scripts/ferretdb/*.patch: its version names the patches, and a lookup by _id (what the store layer does for every chunk,
# job and account) is a SEARCH on the _id index, not a SCAN of the table.
# A delete by exactly {_id} removes the document without reading it;
# any other delete filter still matches as before.  Against a real
# MongoDB (MONGODB_URI) there is nothing to check here.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Audex::Backend;
use JSON::PP ();

plan skip_all => 'MONGODB_URI names a real MongoDB'
    if $ENV{MONGODB_URI};

my @patches = sort glob 'scripts/ferretdb/*.patch';
my ($sum) = split ' ', `cat @patches | sha256sum`;
my $want = 'v1.24.2-audex.' . substr($sum, 0, 8);

my $bin = ferretdb_bin();
my $version = `$bin --version 2>&1`;
like($version, qr/^version: \Q$want\E$/m,
     "$bin is the patched build ($want)");

my ($uri) = start_mongo();
my ($port) = $uri =~ /:(\d+)\//;
ok(wait_port($port), 'FerretDB listens');

# each line: filter as Python, then what its plan must say
my $prog = <<'PY';
import sys, json, pymongo, bson
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
c = db.plans
ids = c.insert_many([{"files_id": i, "n": i} for i in range(50)]).inserted_ids
c.insert_one({"_id": "by-name", "n": 0})
for name, f in (("ObjectId", {"_id": ids[7]}), ("string", {"_id": "by-name"}),
                ("other field", {"n": 3})):
    e = db.command("explain", {"find": "plans", "filter": f, "limit": 1})
    found = list(c.find(f, limit=1))
    print(json.dumps({"name": name, "plan": e["queryPlanner"]["Plan"],
                      "found": len(found)}))
PY
open my $fh, '-|', '/usr/bin/python3', '-c', $prog, $uri
    or die "python3: $!";
my %plan;
while (my $l = <$fh>) {
    my $r = JSON::PP::decode_json($l);
    $plan{ $r->{name} } = $r;
}
close $fh;
is($?, 0, 'pymongo explained three finds');

for my $k ('ObjectId', 'string') {
    like("@{ $plan{$k}{plan} // [] }", qr/SEARCH \S+ USING INDEX \S+__id_/,
         "{_id: <$k>} searches the _id index");
    is($plan{$k}{found}, 1, "{_id: <$k>} finds its document");
}
# the control: a filter FerretDB does not push down still scans, so the
# two above are not passing on a plan that says SEARCH for everything
like("@{ $plan{'other field'}{plan} // [] }", qr/\bSCAN\b/,
     'a filter on another field scans (control)');

# deletes: exactly {_id} (the patched path) and {_id, n} (the old one)
my $del = <<'PY';
import sys, json, pymongo, bson
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
c = db.deletes
a, b, x = bson.ObjectId(), bson.ObjectId(), bson.ObjectId()
c.insert_many([{"_id": a, "n": 1}, {"_id": b, "n": 2}, {"_id": "s", "n": 3}])
r = {
  "oid": c.delete_one({"_id": a}).deleted_count,
  "oid_again": c.delete_one({"_id": a}).deleted_count,
  "missing": c.delete_many({"_id": x}).deleted_count,
  "string": c.delete_one({"_id": "s"}).deleted_count,
  "other_n": c.delete_one({"_id": b, "n": 5}).deleted_count,
  "left": sorted(d["n"] for d in c.find({})),
  "bulk": c.bulk_write([pymongo.DeleteOne({"_id": b}),
                        pymongo.DeleteOne({"_id": x})]).deleted_count,
  "after": c.count_documents({}),
}
print(json.dumps(r))
PY
open $fh, '-|', '/usr/bin/python3', '-c', $del, $uri or die "python3: $!";
my $d = JSON::PP::decode_json(scalar <$fh> // '{}');
close $fh;
is($d->{oid}, 1, 'delete {_id: ObjectId} removes the document');
is($d->{oid_again}, 0, 'again: nothing to remove, 0');
is($d->{missing}, 0, 'an _id that is not there: 0');
is($d->{string}, 1, 'delete {_id: string} removes the document');
is($d->{other_n}, 0, '{_id, n} with another n removes nothing');
is_deeply($d->{left}, [2], 'only that document is left');
is($d->{bulk}, 1, 'a bulk of deletes by _id counts what it removed');
is($d->{after}, 0, 'and the collection is empty');

# endSessions, which every driver sends when a client closes, is answered
# (unpatched: CommandNotFound, a 20-line WARN dump in FerretDB's log and a
# libmongoc warning in every nginx and worker log)
my $es = <<'PY';
import sys, json, pymongo, bson
c = pymongo.MongoClient(sys.argv[1])
r = c.admin.command("endSessions", [{"id": bson.Binary(b"0" * 16, 4)}])
print(json.dumps({"ok": r["ok"]}))
PY
open $fh, '-|', '/usr/bin/python3', '-c', $es, $uri or die "python3: $!";
my $e = JSON::PP::decode_json(scalar <$fh> // '{}');
close $fh;
is($e->{ok}, 1, 'endSessions answers ok');

done_testing();
