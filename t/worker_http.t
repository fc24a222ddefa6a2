# The workers' /metrics and /healthz (libmicrohttpd), for audex-converter
# and audex-notifier alike: on loopback unless METRICS_ADDR says
# otherwise, and a client that sends its request one byte a second keeps
# neither /healthz nor /metrics from anyone else, nor the worker from
# stopping.  No Redis or MongoDB: the server needs neither (the workers
# keep retrying them and go on serving).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Audex::Backend qw(free_port wait_port);

use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Socket qw(inet_ntoa);
use Time::HiRes qw(sleep time);

my %bin = (
    converter => $ENV{AUDEX_CONVERTER_BIN} || 'build/bin/audex-converter',
    notifier  => $ENV{AUDEX_NOTIFIER_BIN} || 'build/bin/audex-notifier',
);
for my $w (sort keys %bin) {
    ok(-x $bin{$w}, "$bin{$w} is built")
        or BAIL_OUT("$bin{$w} missing: run make first");
}

my $dir = tempdir('audex-worker-http-XXXXXX', TMPDIR => 1, CLEANUP => 1);
open my $fh, '>', "$dir/link.secret" or die "link.secret: $!";
print $fh 'l' x 40, "\n";
close $fh;

# nothing listens there
my $closed = free_port();

# a client that waits this long for an answer would fail a probe
my $http = HTTP::Tiny->new(timeout => 5);
my (@workers, @slow);


for my $w (qw(converter notifier)) {
    subtest "$w: loopback by default" => sub {
        my $port = free_port();
        my $p = worker($w, $port, {});
        ok(serving($port), 'it serves /healthz') or return diag(log_of($p));
        is_deeply([listeners($port)], ['127.0.0.1'],
                  'it listens on 127.0.0.1 alone');
        is(stop($p), 0, 'it stops cleanly');
    };

    subtest "$w: METRICS_ADDR=0.0.0.0, every interface" => sub {
        my $port = free_port();
        my $p = worker($w, $port, { METRICS_ADDR => '0.0.0.0' });
        ok(serving($port), 'it serves /healthz') or return diag(log_of($p));
        is_deeply([listeners($port)], ['0.0.0.0'], 'it listens on 0.0.0.0');
        is(stop($p), 0, 'it stops cleanly');
    };

    subtest "$w: a client sending a byte a second blocks no one" => sub {
        my $port = free_port();
        my $p = worker($w, $port, {});
        ok(serving($port), 'it serves /healthz') or return diag(log_of($p));

        my $s = slow_client($port);
        ok($s, 'the slow client is connected and sending') or return;

        my $r = $http->get("http://127.0.0.1:$port/healthz");
        is($r->{status}, 200, '/healthz answers meanwhile')
            or diag("$r->{status} $r->{reason}: $r->{content}");
        is($r->{content}, "ok\n", '/healthz: ok');
        is($r->{headers}{'content-type'}, 'text/plain',
           '/healthz: text/plain');

        $r = $http->get("http://127.0.0.1:$port/metrics");
        is($r->{status}, 200, '/metrics answers meanwhile');
        is($r->{headers}{'content-type'},
           'text/plain; version=0.0.4; charset=utf-8',
           '/metrics: the Prometheus text format');
        like($r->{content}, qr/^# TYPE ${w}_\w+ (counter|gauge)$/m,
             "/metrics: the $w\'s metrics");

        is(waitpid($s, WNOHANG), 0, 'the slow client is still sending');
        is(stop($p), 0, 'the worker stops cleanly, the slow client still '
                        . 'connected');
    };
}

done_testing();


END {
    kill 'KILL', @slow if @slow;
    for my $p (@workers) {
        kill 'KILL', $p->{pid} unless defined $p->{status};
    }
}


# --- helpers

sub worker {
    my ($w, $port, $env) = @_;
    my $log = "$dir/$w-" . (scalar(@workers) + 1) . '.log';

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        delete @ENV{grep { /^(METRICS_|NOTIFIER_|REDIS_|MONGODB_|SMTP_)/
                           || /^WEBHOOK_|^CONVERTER_/ } keys %ENV};
        $ENV{$_} = $env->{$_} for keys %$env;
        $ENV{LINK_SECRET_FILE} = "$dir/link.secret";
        exec $bin{$w}, 'run',
             '--redis-url', "redis://127.0.0.1:$closed/0",
             '--mongodb-uri', "mongodb://127.0.0.1:$closed/audex"
                              . '?serverSelectionTimeoutMS=1000',
             '--metrics-port', $port
            or do { print STDERR "exec $bin{$w}: $!\n"; POSIX::_exit(127) };
    }

    my $p = { pid => $pid, log => $log };
    push @workers, $p;
    return $p;
}


sub serving {
    my ($port) = @_;
    return 0 unless wait_port($port, 30);
    return $http->get("http://127.0.0.1:$port/healthz")->{status} == 200;
}


# SIGTERM and wait; the exit status, -1 when it had to be killed
sub stop {
    my ($p) = @_;
    kill 'TERM', $p->{pid};

    my $deadline = time + 30;
    while (time < $deadline) {
        if (waitpid($p->{pid}, WNOHANG) == $p->{pid}) {
            return $p->{status} = $? >> 8;
        }
        sleep 0.1;
    }

    kill 'KILL', $p->{pid};
    waitpid($p->{pid}, 0);
    diag(log_of($p));
    return $p->{status} = -1;
}


sub log_of {
    my ($p) = @_;
    return do { local (@ARGV, $/) = ($p->{log}); <> } // '';
}


# a process that connects and then sends a request line that never ends,
# a byte a second; its pid once its first byte is sent
sub slow_client {
    my ($port) = @_;
    pipe(my $r, my $w) or die "pipe: $!";

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp')
            or POSIX::_exit(1);
        for my $c (split //, 'GET /healthz' . 'x' x 200) {
            syswrite($s, $c) == 1 or POSIX::_exit(1);
            if ($w) {
                syswrite($w, "sent\n");
                close $w;
                undef $w;
            }
            sleep 1;
        }
        POSIX::_exit(0);
    }

    push @slow, $pid;
    close $w;
    my $line = <$r> // '';
    close $r;

    # and a moment for the server to read that byte
    sleep 0.5;

    return $line eq "sent\n" ? $pid : undef;
}


# the addresses of the sockets listening on this TCP port
sub listeners {
    my ($port) = @_;
    my @addrs;

    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or die "$f: $!";
        <$fh>;
        while (my $line = <$fh>) {
            my ($local, $state) = (split ' ', $line)[1, 3];
            my ($addr, $p) = split /:/, $local;
            next unless $state eq '0A' && hex($p) == $port;

            # IPv4: the address as the kernel keeps it (network order),
            # printed as a host-order number
            push @addrs, length($addr) == 8
                         ? inet_ntoa(pack('L', hex $addr)) : "[$addr]";
        }
        close $fh;
    }

    return sort @addrs;
}
