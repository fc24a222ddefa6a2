# audex-user: every command and every exit status, against a throwaway
# MongoDB-wire server.  Documents are checked with pymongo, not through
# the tool under test.

use strict;
use warnings;

use lib 't/lib';

use Test::More;
use Audex::Backend;
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);

my $bin = $ENV{AUDEX_USER_BIN} // 'build/bin/audex-user';
-x $bin or die "$bin is not built (make)\n";

my ($python) = grep {
    system("$_ -c 'import pymongo' >/dev/null 2>&1") == 0
} ('/usr/bin/python3', 'python3');
$python or die "no python3 with pymongo\n";

my $uri = start_mongo();
my $tmp = tempdir('audex-user-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);

delete $ENV{MONGODB_URI};
delete $ENV{AUDEX_REDIS_PORT};

# del, disable, passwd and admin revoke tokens in this Redis
my ($redis) = start_redis();
$ENV{REDIS_URL} = $redis;
my ($redis_port) = $redis =~ /:(\d+)\//;

# when a user's tokens were revoked (0: never)
sub revoked_at {
    my ($email) = @_;
    my $id = users()->{$email}{_id} // $_[1];
    my $s = `redis-cli -p $redis_port ZSCORE audex:revoked:users '$id'`;
    chomp $s;
    return $s eq '' ? 0 : $s;
}


# Run audex-user with $stdin as its standard input (undef: /dev/null).
# Returns (exit status, stdout, stderr).
sub user {
    my ($stdin, @args) = @_;
    my %env = ref $args[0] eq 'HASH' ? %{ shift @args } : ();

    open my $in, '>', "$tmp/in" or die $!;
    print $in $stdin if defined $stdin;
    close $in;

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        @ENV{ keys %env } = values %env;
        open STDIN, '<', "$tmp/in";
        open STDOUT, '>', "$tmp/out";
        open STDERR, '>', "$tmp/err";
        exec $bin, @args or die "exec $bin: $!";
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;

    return ($rc, slurp("$tmp/out"), slurp("$tmp/err"));
}


sub slurp {
    open my $f, '<', $_[0] or return '';
    local $/;
    return scalar <$f>;
}


# audex-user on the test database; dies unless the status is $want
sub user_ok {
    my ($want, $stdin, @args) = @_;
    my ($rc, $out, $err) = user($stdin, '--mongodb-uri', $uri, @args);
    is($rc, $want, "audex-user @args: exit $want")
        or diag("stdout: $out\nstderr: $err");
    return ($out, $err);
}


sub py {
    my ($code, @args) = @_;
    open my $p, '-|', $python, '-c', $code, @args or die $!;
    local $/;
    my $out = <$p>;
    close $p or die "python failed: $code";
    return decode_json($out);
}


my $dump = <<'PY';
import sys, json, calendar, pymongo
from bson import ObjectId
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
out = {}
for d in db.users.find():
    c = d.get('created_at')
    out[d['email']] = {
        'id_is_oid': isinstance(d['_id'], ObjectId),
        '_id': str(d['_id']),
        'password': d.get('password'),
        'admin': d.get('admin'),
        'disabled': d.get('disabled'),
        'created': calendar.timegm(c.utctimetuple()) if c else None,
        'fields': sorted(d.keys()),
    }
print(json.dumps(out))
PY

sub users { py($dump, $uri) }


# --help and usage

{
    my ($rc, $out) = user(undef, '--help');
    is($rc, 0, '--help exits 0');
    like($out, qr/^\s+$_\s/m, "--help lists $_")
        for qw(add passwd del list admin disable enable check);
    like($out, qr/exit status/, '--help documents the exit statuses');
}

user_ok(1, undef);
user_ok(1, undef, 'frobnicate');
user_ok(1, undef, 'add');
user_ok(1, "pw\n", 'add', 'a@example.com', 'extra');
user_ok(1, undef, 'admin', 'a@example.com');
user_ok(1, undef, 'admin', 'a@example.com', 'maybe');
user_ok(1, undef, 'list', '--admin');
user_ok(1, undef, '--no-such-option', 'list');
user_ok(1, undef, 'list', 'extra');
is_deeply(users(), {}, 'usage errors wrote nothing');


# add

my $t0 = time;
my ($out) = user_ok(0, "first-pass\n", 'add', 'Alice@Example.COM');
like($out, qr/alice\@example\.com/, 'add reports the lowercased email');

my $u = users();
is_deeply([keys %$u], ['alice@example.com'], 'one user, email lowercased');
my $alice = $u->{'alice@example.com'};
ok($alice->{id_is_oid}, '_id is an ObjectId');
like($alice->{password}, qr/^\$argon2id\$v=19\$m=65536,t=3,p=1\$[^\$]{22}\$[^\$]{43}$/,
     'password is an argon2id hash with its parameters');
unlike($alice->{password}, qr/first-pass/, 'no plaintext stored');
ok(!$alice->{admin}, 'admin is false');
ok(JSON::PP::is_bool($alice->{admin}), 'admin is a boolean');
ok(JSON::PP::is_bool($alice->{disabled}) && !$alice->{disabled},
   'disabled is boolean false');
ok($alice->{created} >= $t0 - 5 && $alice->{created} <= time + 5,
   'created_at is a date of now');
is_deeply($alice->{fields},
          [qw(_id admin created_at disabled email password)],
          'exactly the documented fields');

user_ok(0, "first-pass\n", 'check', 'alice@example.com');
user_ok(4, "first-pas\n", 'check', 'alice@example.com');
user_ok(4, "first-pass \n", 'check', 'alice@example.com');

{
    my $idx = py(<<'PY', $uri);
import sys, json, pymongo
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
print(json.dumps([dict(v, name=k) for k, v in db.users.index_information().items()
                  if v['key'] == [('email', 1)]]))
PY
    is(scalar @$idx, 1, 'one index on email');
    ok($idx->[0]{unique}, 'it is unique');
}

# duplicates, in any case
user_ok(2, "other\n", 'add', 'alice@example.com');
user_ok(2, "other\n", 'add', 'ALICE@example.com');
is(scalar keys %{ users() }, 1, 'no duplicate written');

# the server itself refuses a duplicate (FerretDB must honour unique)
{
    my $r = py(<<'PY', $uri);
import sys, json, pymongo
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
try:
    db.users.insert_one({'email': 'alice@example.com', 'password': 'x'})
    print(json.dumps({'code': 0}))
except pymongo.errors.DuplicateKeyError as e:
    print(json.dumps({'code': e.code}))
PY
    is($r->{code}, 11000, 'a duplicate insert behind our back is refused');
}

# two "add" of one new email at once: the index settles it
{
    my @pids;
    for (1 .. 2) {
        open my $in, '>', "$tmp/race$_" or die $!;
        print $in "race-pass\n";
        close $in;
        my $pid = fork // die $!;
        if ($pid == 0) {
            open STDIN, '<', "$tmp/race$_";
            open STDOUT, '>', '/dev/null';
            open STDERR, '>', '/dev/null';
            exec $bin, '--mongodb-uri', $uri, 'add', 'race@example.com';
            exit 99;
        }
        push @pids, $pid;
    }
    my @rc = sort map { waitpid($_, 0); $? >> 8 } @pids;
    is_deeply(\@rc, [0, 2], 'concurrent adds: one succeeds, one is a duplicate');
    is(scalar grep({ $_ eq 'race@example.com' } keys %{ users() }), 1,
       'one document for the raced email');
}

# a duplicate created while add waits for its password
{
    my $pid = open(my $w, '|-', "$bin --mongodb-uri '$uri' add "
                   . "late\@example.com >/dev/null 2>&1") // die $!;
    sleep 1;
    py(<<'PY', $uri);
import sys, pymongo
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
db.users.insert_one({'email': 'late@example.com', 'password': 'x'})
print('{}')
PY
    print $w "late-pass\n";
    close $w;
    is($? >> 8, 2, 'an email taken during the prompt is a duplicate');
}

user_ok(0, "bob-pass\n", 'add', 'bob@example.com', '--admin');
user_ok(0, "carol-pass\n", '--admin', 'add', 'carol@example.com');
$u = users();
ok($u->{'bob@example.com'}{admin}, '--admin after the email');
ok($u->{'carol@example.com'}{admin}, '--admin before the command');

# the first line only, CR LF stripped
user_ok(0, "crlf-pass\r\nsecond line\n", 'add', 'crlf@example.com');
user_ok(0, "crlf-pass\n", 'check', 'crlf@example.com');
user_ok(0, "no-newline", 'add', 'nonl@example.com');
user_ok(0, "no-newline\n", 'check', 'nonl@example.com');


# invalid emails and passwords

for my $bad ('no-at-sign', 'two@@example.com', 'a@b@c', '@example.com',
             'alice@', 'with space@example.com', "tab\t\@example.com",
             '', 'x' x 250 . '@example.com')
{
    user_ok(4, "pw\n", 'add', $bad);
}

user_ok(4, undef, 'add', 'empty@example.com');
user_ok(4, "\n", 'add', 'empty@example.com');
user_ok(4, "\r\n", 'add', 'empty@example.com');
user_ok(4, "nul\0byte\n", 'add', 'empty@example.com');
user_ok(4, ('x' x 1025) . "\n", 'add', 'empty@example.com');
user_ok(0, ('x' x 1024) . "\n", 'add', 'long@example.com');
ok(!exists users()->{'empty@example.com'}, 'no user from a bad password');


# list

($out) = user_ok(0, undef, 'list');
my @lines = split /\n/, $out;
is(scalar @lines, scalar keys %{ users() }, 'one line per user');
like($out, qr/^alice\@example\.com admin=no disabled=no created=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m,
     'list line for alice');
like($out, qr/^bob\@example\.com admin=yes disabled=no /m, 'list line for bob');
is_deeply(\@lines, [sort @lines], 'sorted by email');


# passwd

my $old = users()->{'alice@example.com'}{password};
user_ok(0, "second-pass\n", 'passwd', 'ALICE@example.com');
my $new = users()->{'alice@example.com'}{password};
isnt($new, $old, 'passwd stores a new hash');
like($new, qr/^\$argon2id\$/, 'still argon2id');
user_ok(0, "second-pass\n", 'check', 'alice@example.com');
user_ok(4, "first-pass\n", 'check', 'alice@example.com');
user_ok(4, "\n", 'passwd', 'alice@example.com');
is(users()->{'alice@example.com'}{password}, $new,
   'an empty password changes nothing');


# passwd revoked the tokens issued before it
my $t = revoked_at('alice@example.com');
ok($t > 0 && abs($t / 1000 - time) < 60, "passwd revoked alice's tokens ($t ms)");
system("redis-cli -p $redis_port DEL audex:revoked:users >/dev/null");


# admin, disable, enable

user_ok(0, undef, 'admin', 'alice@example.com', 'on');
ok(revoked_at('alice@example.com'), 'admin on revokes');
system("redis-cli -p $redis_port DEL audex:revoked:users >/dev/null");
ok(users()->{'alice@example.com'}{admin}, 'admin on');
user_ok(0, undef, 'admin', 'Alice@example.com', 'off');
ok(!users()->{'alice@example.com'}{admin}, 'admin off');
ok(JSON::PP::is_bool(users()->{'alice@example.com'}{admin}),
   'admin stays a boolean');

ok(revoked_at('alice@example.com'), 'admin off revokes');
system("redis-cli -p $redis_port DEL audex:revoked:users >/dev/null");
user_ok(0, undef, 'disable', 'alice@example.com');
ok(users()->{'alice@example.com'}{disabled}, 'disabled');
ok(revoked_at('alice@example.com'), 'disable revokes');
system("redis-cli -p $redis_port DEL audex:revoked:users >/dev/null");
($out) = user_ok(0, undef, 'list');
like($out, qr/^alice\@example\.com admin=no disabled=yes /m, 'list shows it');
user_ok(0, undef, 'enable', 'alice@example.com');
ok(!users()->{'alice@example.com'}{disabled}, 'enabled again');
is(revoked_at('alice@example.com'), 0, 'enable revokes nothing');

# Redis unreachable: the change stands, the status says what was not done
{
    my $dead = Audex::Backend::free_port();
    my ($rc, $o, $e) = user(undef, { REDIS_URL => "redis://127.0.0.1:$dead/0" },
                            '--mongodb-uri', $uri, 'disable',
                            'alice@example.com');
    is($rc, 7, 'disable with Redis unreachable: exit 7');
    like($e, qr/tokens could not be revoked and stay valid until they expire/,
         '... saying the tokens stay valid');
    ok(users()->{'alice@example.com'}{disabled}, '... and the user is disabled');
    user_ok(0, undef, 'enable', 'alice@example.com');
}


# unknown users

for my $cmd (['passwd'], ['del'], ['admin', 'on'], ['disable'], ['enable'],
             ['check'])
{
    my ($c, @rest) = @$cmd;
    user_ok(3, "pw\n", $c, 'nobody@example.com', @rest);
}


# del

my $before = scalar keys %{ users() };
my $bob_id = users()->{'bob@example.com'}{_id};
user_ok(0, undef, 'del', 'BOB@example.com');
ok(revoked_at('bob@example.com', $bob_id), "del revoked bob's tokens");
$u = users();
ok(!exists $u->{'bob@example.com'}, 'bob is gone');
is(scalar keys %$u, $before - 1, 'nobody else is');
user_ok(3, undef, 'del', 'bob@example.com');


# where the database is

{
    my $port = free_port();
    my $dead = "mongodb://127.0.0.1:$port/audex";

    my ($rc, undef, $err) = user(undef, '--mongodb-uri', $dead, 'list');
    is($rc, 5, 'unreachable database: exit 5');
    like($err, qr/unreachable/, '... with a message saying so');

    ($rc) = user("pw\n", '--mongodb-uri', $dead, 'add', 'x@example.com');
    is($rc, 5, 'add to an unreachable database: exit 5');

    ($rc, $out) = user(undef, { MONGODB_URI => $uri }, 'list');
    is($rc, 0, 'MONGODB_URI is used without the flag');
    like($out, qr/^alice\@example\.com /m, '... and is the same database');

    ($rc, $out) = user(undef, { MONGODB_URI => $dead }, '--mongodb-uri',
                       $uri, 'list');
    is($rc, 0, '--mongodb-uri overrides MONGODB_URI');

    ($rc) = user(undef, { MONGODB_URI => $dead }, 'list');
    is($rc, 5, 'a dead MONGODB_URI is used');

    ($rc) = user(undef, '--mongodb-uri', 'http://nope', 'list');
    is($rc, 1, 'a malformed URI is a usage error');

    # the variables of `make run`: its FerretDB's port when no URI
    my ($live) = $uri =~ m{^mongodb://127\.0\.0\.1:(\d+)/}
        or die "a loopback URI expected: $uri";
    ($rc) = user("pw\n", { MONGODB_URI => '', AUDEX_MONGO_PORT => $live },
                 'add', 'port@example.com');
    is($rc, 0, 'AUDEX_MONGO_PORT names the database when MONGODB_URI is unset');
    ($rc, $out) = user(undef, '--mongodb-uri',
                       "mongodb://127.0.0.1:$live/audex", 'list');
    like($out, qr/^port\@example\.com /m,
         '... the database "audex" on that port, as make run\'s');

    ($rc) = user(undef, { MONGODB_URI => $uri, AUDEX_MONGO_PORT => $port },
                 'list');
    is($rc, 0, 'MONGODB_URI wins over AUDEX_MONGO_PORT');

    ($rc, undef, $err) = user(undef, { MONGODB_URI => '',
                                       AUDEX_MONGO_PORT => $port }, 'list');
    is($rc, 5, 'a dead AUDEX_MONGO_PORT: exit 5');
    like($err, qr/unreachable at 127\.0\.0\.1:$port: .*\n.*\. run\/env/,
         '... naming the address, and run/env');

    ($rc, undef, $err) = user(undef, { MONGODB_URI => '',
                                       AUDEX_MONGO_PORT => '80x' }, 'list');
    is($rc, 1, 'AUDEX_MONGO_PORT not a number: exit 1');
    like($err, qr/AUDEX_MONGO_PORT "80x" is not a port number/,
         '... saying so');
}

done_testing();
