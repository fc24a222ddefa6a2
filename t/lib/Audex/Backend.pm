package Audex::Backend;

# Throwaway Redis and MongoDB-wire (FerretDB) servers for the tests.
#
# Each server listens on a free loopback port, keeps its data in a
# temporary directory and is killed when the test process exits.  When
# MONGODB_URI names a real MongoDB, start_mongo() uses it instead of
# FerretDB, with a database of its own that is dropped at exit.

use strict;
use warnings;

use Exporter 'import';
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our @EXPORT = qw(start_redis start_mongo stop_server restart_server
                 free_port wait_port ferretdb_bin);

my %servers;    # pid => { name, cmd, port, dir }
my $owner = $$;


sub free_port {
    my $s = IO::Socket::INET->new(
        Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0,
        Proto => 'tcp', ReuseAddr => 1,
    ) or die "audex test: cannot find a free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}


sub wait_port {
    my ($port, $timeout) = @_;
    my $deadline = time + ($timeout // 30);

    while (time < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp');
        if ($s) {
            close $s;
            return 1;
        }
        sleep 0.05;
    }
    return 0;
}


sub _spawn {
    my ($name, $port, $dir, @cmd) = @_;

    my $pid = fork // die "audex test: fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/$name.log";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or die "audex test: exec $cmd[0]: $!";
    }

    $servers{$pid} = { name => $name, cmd => \@cmd, port => $port,
                       dir => $dir };

    unless (wait_port($port, 60)) {
        my $log = do { local (@ARGV, $/) = ("$dir/$name.log"); <> } // '';
        die "audex test: $name did not start on port $port:\n$log";
    }
    return $pid;
}


sub start_redis {
    my $dir = tempdir('audex-redis-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $port = free_port();

    my $pid = _spawn('redis', $port, $dir, 'redis-server',
                     '--bind', '127.0.0.1', '--port', $port, '--dir', $dir,
                     '--save', '', '--appendonly', 'no',
                     '--daemonize', 'no');

    return wantarray ? ("redis://127.0.0.1:$port/0", $pid)
                     : "redis://127.0.0.1:$port/0";
}


# the checkout's own build (scripts/setup.sh), or $FERRETDB
sub ferretdb_bin {
    return $ENV{FERRETDB} if $ENV{FERRETDB};

    (my $top = File::Spec->rel2abs(__FILE__)) =~ s{/t/lib/Audex/Backend\.pm$}{};
    my $bin = "$top/build/bin/ferretdb";
    return $bin if -x $bin;

    die "audex test: no $bin; run scripts/setup.sh\n";
}


# a FerretDB of its own (or a database on $MONGODB_URI's server); with
# sqlite_query, that query on its --sqlite-url (e.g. a busy timeout);
# in list context also its pid and its directory (the SQLite files, and
# ferretdb.log)
sub start_mongo {
    my (%opt) = @_;
    my $db = "audex_test_$$" . '_' . int(rand(1e6));

    if ($ENV{MONGODB_URI}) {
        # A real MongoDB: use a database of our own on it.
        my ($base, $query) = split /\?/, $ENV{MONGODB_URI}, 2;
        $base =~ s{^(mongodb(?:\+srv)?://[^/]+).*$}{$1};
        my $uri = "$base/$db" . (defined $query ? "?$query" : '');
        push @{ $servers{0}{drop} }, $uri;
        return $uri;
    }

    my $dir = tempdir('audex-mongo-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $port = free_port();

    my $pid = _spawn('ferretdb', $port, $dir, ferretdb_bin(),
                     '--handler=sqlite',
                     "--sqlite-url=file:$dir/" . ($opt{sqlite_query} // ''),
                     "--state-dir=$dir", "--listen-addr=127.0.0.1:$port",
                     '--telemetry=disable', '--log-level=warn',
                     '--debug-addr=-');

    my $uri = "mongodb://127.0.0.1:$port/$db";
    return wantarray ? ($uri, $pid, $dir) : $uri;
}


sub stop_server {
    my ($pid) = @_;
    return unless $pid && $servers{$pid};

    kill 'TERM', $pid;
    for (1 .. 100) {
        last if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    if (kill 0, $pid) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    $servers{$pid}{stopped} = 1;
    return;
}


# Start a stopped server again on the same port and data directory;
# returns its new pid.
sub restart_server {
    my ($pid) = @_;
    my $s = $servers{$pid} or die "audex test: unknown server $pid";
    stop_server($pid) unless $s->{stopped};
    delete $servers{$pid};
    return _spawn($s->{name}, $s->{port}, $s->{dir}, @{ $s->{cmd} });
}


END {
    return unless $$ == $owner;
    my $status = $?;
    for my $pid (grep { $_ } keys %servers) {
        next if $servers{$pid}{stopped};
        kill 'TERM', $pid;
    }
    for my $pid (grep { $_ } keys %servers) {
        next if $servers{$pid}{stopped};
        for (1 .. 100) {
            last if waitpid($pid, WNOHANG) != 0;
            sleep 0.05;
        }
        kill 'KILL', $pid if kill 0, $pid;
    }
    for my $uri (@{ $servers{0}{drop} || [] }) {
        system('/usr/bin/python3', '-c',
               'import sys,pymongo; c=pymongo.MongoClient(sys.argv[1]);'
               . 'c.drop_database(c.get_default_database().name)', $uri);
    }
    $? = $status;
}

1;
