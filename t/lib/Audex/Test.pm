package Audex::Test;

# A small Test::Nginx look-alike on Debian's Test::Base.
#
# A test file reads:
#
#     use lib 't/lib';
#     use Audex::Test;
#     run_tests();
#     __DATA__
#     === TEST 1: title
#     --- config
#     location = /healthz { audex_healthz; }
#     --- request
#     GET /healthz
#     --- error_code: 200
#     --- response_body
#     {"mongo":"ok","redis":"ok"}
#
# Sections: main_config, http_config, config, request (METHOD URI, then
# an optional body), raw_request, more_headers, error_code, response_body,
# response_body_like, response_headers ("Name: value", "!Name" for
# absent), response_headers_like, error_log, no_error_log (one pattern a
# line, or an eval'd list), must_die (nginx -t must fail; error_log is
# then matched against its output), down (backends to stop for this
# block: redis, mongo), init (Perl run before nginx starts), check (Perl
# run after each response with $res and $i bound: extra assertions),
# timeout, no_check_alerts.  "request eval" may yield a list of requests;
# the expectations are then lists of the same length.
#
# Each test file gets its own Redis and FerretDB (Audex::Backend) and
# its own nginx prefix under build/t/<file>/; nginx is started for each
# block with the block's configuration.  $TEST_NGINX_* names in sections
# are replaced from the environment: SERVER_PORT, REDIS_URL, MONGODB_URI,
# SERVROOT, DATA_DIR, JWT_SECRET_FILE.

use strict;
use warnings;

use Test::Base;
use Audex::Backend;

use Cwd qw(abs_path getcwd);
use File::Basename qw(basename);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our @EXPORT = qw(run_tests blocks plan is ok like unlike is_deeply diag
                 note done_testing http_request redis_cli mongo_eval
                 servroot backend_stop backend_start at_exit
                 add_user pyjwt_encode pyjwt_decode b64url bearer
                 nginx_kill nginx_start nginx_instance
                 nginx_instance_stop);

our $TOP = abs_path(getcwd());
our $NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
our $MODULE = $ENV{AUDEX_MODULE} || "$TOP/build/ngx_http_audex_module.so";

# Started as root, nginx would run its workers as nobody, who cannot
# reach a checkout under a private directory (/root, mktemp -d): they run
# as the checkout's owner, as scripts/run.sh does too.
our $WORKER_USER = $> == 0
    ? 'user ' . (getpwuid((stat $TOP)[4]) // 'root') . ";\n" : '';

my (%backend_pid, $servroot, $nginx_pid);


sub import {
    my $class = shift;
    no strict 'refs';
    my $caller = caller;
    for my $name (@EXPORT) {
        *{"${caller}::$name"} = \&{"${class}::$name"};
    }
}


sub servroot {
    return $servroot if $servroot;

    my $name = basename($0, '.t');
    $servroot = "$TOP/build/t/$name";
    remove_tree($servroot);
    make_path("$servroot/conf", "$servroot/logs", "$servroot/html");
    $ENV{TEST_NGINX_SERVROOT} = $servroot;
    $ENV{TEST_NGINX_DATA_DIR} = "$TOP/t/data";
    return $servroot;
}


sub _start_backends {
    return if %backend_pid;

    my ($redis, $rpid) = start_redis();
    my ($mongo, $mpid) = start_mongo();

    $backend_pid{redis} = $rpid;
    $backend_pid{mongo} = $mpid;
    $ENV{TEST_NGINX_REDIS_URL} = $redis;
    $ENV{TEST_NGINX_MONGODB_URI} = $mongo;

    my $secret = servroot() . "/conf/jwt.secret";
    unless (-e $secret) {
        open my $fh, '>', $secret or die "$secret: $!";
        print $fh join '', map { ('a'..'z', 0..9)[rand 36] } 1 .. 48;
        close $fh;
        chmod 0600, $secret;
    }
    $ENV{TEST_NGINX_JWT_SECRET_FILE} = $secret;
}


sub backend_stop {
    my ($name) = @_;
    die "audex test: unknown backend $name\n" unless $backend_pid{$name};
    stop_server($backend_pid{$name});
}


sub backend_start {
    my ($name) = @_;
    die "audex test: unknown backend $name\n" unless $backend_pid{$name};
    $backend_pid{$name} = restart_server($backend_pid{$name});
}


sub redis_cli {
    my @args = @_;
    open my $fh, '-|', 'redis-cli', '-u', $ENV{TEST_NGINX_REDIS_URL}, @args
        or die "redis-cli: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    return $out;
}


# Runs Python code with `db` bound to the test database (pymongo).
sub mongo_eval {
    my ($code) = @_;
    my $prog = "import sys, pymongo, gridfs, json\n"
             . "db = pymongo.MongoClient(sys.argv[1])"
             . ".get_default_database()\n$code\n";
    open my $fh, '-|', '/usr/bin/python3', '-c', $prog,
        $ENV{TEST_NGINX_MONGODB_URI} or die "python3: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    return $out;
}


# Creates an account with build/bin/audex-user; dies if that fails.
sub add_user {
    my ($email, $password, @flags) = @_;
    my $bin = ($ENV{AUDEX_BIN_DIR} || "$TOP/build/bin") . '/audex-user';
    local $ENV{MONGODB_URI} = $ENV{TEST_NGINX_MONGODB_URI};
    local $ENV{REDIS_URL} = $ENV{TEST_NGINX_REDIS_URL};
    open my $fh, '|-', $bin, 'add', $email, @flags
        or die "audex-user: $!";
    print $fh "$password\n";
    close $fh or die "audex-user add $email failed: $?\n";
}


# A token made by PyJWT, an implementation independent of ours.
# $claims is a Python dict literal, where `now` is the current time;
# $key a file holding the key, $alg the algorithm; extra headers as a
# Python dict literal.
sub pyjwt_encode {
    my ($claims, $key, $alg, $headers) = @_;
    $alg //= 'HS256';
    $headers //= 'None';
    my $prog = <<'PY';
import sys, time, jwt
now = int(time.time())
key = open(sys.argv[1], 'rb').read()
if sys.argv[2] == 'HS256':
    key = key.rstrip(b"\r\n")
claims = eval(sys.argv[3])
headers = eval(sys.argv[4])
print(jwt.encode(claims, key, algorithm=sys.argv[2], headers=headers))
PY
    open my $fh, '-|', '/usr/bin/python3', '-c', $prog, $key, $alg,
        $claims, $headers or die "python3: $!";
    chomp(my $t = <$fh> // '');
    close $fh or die "pyjwt_encode failed\n";
    return $t;
}


# PyJWT's verdict on a token: the claims as JSON, or "error: ...".
sub pyjwt_decode {
    my ($token, $key, $alg, $opts) = @_;
    $alg //= 'HS256';
    my $prog = <<'PY';
import sys, json, jwt
key = open(sys.argv[1], 'rb').read()
if sys.argv[2] == 'HS256':
    key = key.rstrip(b"\r\n")
try:
    c = jwt.decode(sys.argv[3], key, algorithms=[sys.argv[2]],
                   options={"verify_aud": False})
    print(json.dumps(c, sort_keys=True))
except Exception as e:
    print("error: %s" % e)
PY
    open my $fh, '-|', '/usr/bin/python3', '-c', $prog, $key, $alg, $token
        or die "python3: $!";
    chomp(my $out = <$fh> // '');
    close $fh;
    return $out;
}


# "Authorization: Bearer ..." for a user id (PyJWT, the test secret)
sub bearer {
    my ($sub, $admin) = @_;
    return "Authorization: Bearer " . pyjwt_encode(
        "{'sub': '$sub', 'email': '$sub\@x', 'exp': now + 600, 'admin': "
        . ($admin ? 'True' : 'False') . "}",
        $ENV{TEST_NGINX_JWT_SECRET_FILE});
}


sub b64url {
    require MIME::Base64;
    my $s = MIME::Base64::encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}


sub _expand {
    my ($s) = @_;
    return $s unless defined $s;
    $s =~ s/\$(TEST_NGINX_[A-Z0-9_]+)/
        defined $ENV{$1} ? $ENV{$1} : die "audex test: \$$1 is not set\n"/ge;
    return $s;
}


sub _write_config {
    my ($block) = @_;
    my $root = servroot();

    my $main = _expand($block->main_config // '');
    my $http = _expand($block->http_config // '');
    my $server = _expand($block->config // '');

    my $defaults = '';
    $defaults .= "    audex_mongodb_uri $ENV{TEST_NGINX_MONGODB_URI};\n"
        unless $http =~ /audex_mongodb_uri/;
    $defaults .= "    audex_redis_url $ENV{TEST_NGINX_REDIS_URL};\n"
        unless $http =~ /audex_redis_url/;

    my $pool = $main =~ /thread_pool\s+audex\b/ ? ''
             : "thread_pool audex threads=4;\n";
    my $workers = $main =~ /worker_processes/ ? ''
                : "worker_processes 1;\n";
    my $tp = $http =~ /audex_thread_pool/ ? ''
           : "    audex_thread_pool audex;\n";

    open my $fh, '>', "$root/conf/nginx.conf" or die $!;
    print $fh <<"EOF";
load_module $MODULE;
${WORKER_USER}daemon on;
master_process on;
${workers}pid $root/logs/nginx.pid;
error_log $root/logs/error.log debug;
working_directory $root;
worker_rlimit_core 512m;
$pool$main
events {
    worker_connections 256;
}

http {
    access_log $root/logs/access.log;
    default_type text/plain;
    client_body_temp_path $root/client_body;
    proxy_temp_path $root/proxy;
    fastcgi_temp_path $root/fastcgi;
    uwsgi_temp_path $root/uwsgi;
    scgi_temp_path $root/scgi;
$defaults$tp$http
    server {
        listen 127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT};
        server_name localhost;
$server
    }
}
EOF
    close $fh;
}


sub _nginx_cmd {
    my $root = servroot();
    return ($NGINX, '-p', "$root/", '-c', "$root/conf/nginx.conf");
}


sub _start_nginx {
    my $root = servroot();
    unlink "$root/logs/nginx.pid";

    my $out = `@{[ join ' ', _nginx_cmd() ]} 2>&1`;
    if ($? != 0) {
        return "nginx did not start:\n$out";
    }

    for (1 .. 200) {
        if (-s "$root/logs/nginx.pid"
            && wait_port($ENV{TEST_NGINX_SERVER_PORT}, 0.05))
        {
            open my $fh, '<', "$root/logs/nginx.pid";
            chomp($nginx_pid = <$fh>);
            return undef;
        }
        sleep 0.025;
    }
    return "nginx did not listen on port $ENV{TEST_NGINX_SERVER_PORT}";
}


sub _alive {
    my ($pid) = @_;
    # a daemon's zombie answers kill 0 until init reaps it
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh> // '';
    return $stat !~ /^\d+ \(.*\) Z/;
}


sub _stop_nginx {
    return unless $nginx_pid;
    kill 'QUIT', $nginx_pid;
    for (1 .. 400) {
        last unless _alive($nginx_pid);
        sleep 0.01;
    }
    kill 'KILL', $nginx_pid if _alive($nginx_pid);
    undef $nginx_pid;
}


# The block's nginx, from its check: nginx_kill() ends the master and
# its workers at once with SIGKILL, as a crash of the host would (nothing
# is closed, nothing saved); nginx_start() starts it again with the same
# configuration and port.
sub nginx_kill {
    return unless $nginx_pid;
    my @workers = _children($nginx_pid);
    kill 'KILL', $nginx_pid, @workers;
    for (1 .. 400) {
        last unless grep { _alive($_) } $nginx_pid, @workers;
        sleep 0.01;
    }
    undef $nginx_pid;
}


sub nginx_start {
    my $err = _start_nginx();
    die "audex test: $err\n" if $err;
}


sub _children {
    my ($ppid) = @_;
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // '';
        # pid (comm) state ppid ...
        push @pids, $1 if $line =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $ppid;
    }
    return @pids;
}


# Another nginx with the block's configuration, on its own port and
# prefix (servroot()-N), on the same backends: { root, port, pid }.
# Stopped by nginx_instance_stop(), or at the end of the file.
my @instances;

sub nginx_instance {
    my $root = servroot();
    my $root2 = "$root-" . (@instances + 2);
    remove_tree($root2);
    make_path("$root2/conf", "$root2/logs");
    system('cp', '-a', "$root/conf/.", "$root2/conf/") == 0
        or die "audex test: cp $root/conf\n";
    chmod 0755, $root2;

    my $port = free_port();
    open my $in, '<', "$root/conf/nginx.conf" or die $!;
    my $conf = do { local $/; <$in> };
    close $in;
    $conf =~ s/listen 127\.0\.0\.1:\d+;/listen 127.0.0.1:$port;/;
    $conf =~ s/\Q$root\E([\/;])/$root2$1/g;
    open my $out, '>', "$root2/conf/nginx.conf" or die $!;
    print $out $conf;
    close $out;

    system($NGINX, '-p', "$root2/", '-c', "$root2/conf/nginx.conf") == 0
        or die "audex test: nginx in $root2 did not start\n";
    wait_port($port) or die "audex test: nginx in $root2 does not listen\n";
    open my $fh, '<', "$root2/logs/nginx.pid" or die $!;
    chomp(my $pid = <$fh>);

    my $inst = { root => $root2, port => $port, pid => $pid };
    push @instances, $inst;
    return $inst;
}


sub nginx_instance_stop {
    my ($inst) = @_;
    return unless $inst->{pid};
    kill 'QUIT', $inst->{pid};
    for (1 .. 400) {
        last unless _alive($inst->{pid});
        sleep 0.01;
    }
    kill 'KILL', $inst->{pid} if _alive($inst->{pid});
    delete $inst->{pid};
}


# Runs at the end of the test file (servers a block started itself).
my @at_exit;

sub at_exit {
    push @at_exit, @_;
}


# Sends one request; returns { code, headers (lowercase => [values]),
# body, raw, elapsed (seconds from connect to the last byte) } or
# { error }.
sub http_request {
    my ($raw, $timeout) = @_;
    $timeout //= 10;
    my $start = time;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ENV{TEST_NGINX_SERVER_PORT},
                                  Proto => 'tcp', Timeout => $timeout)
        or return { error => "connect: $!" };

    my @pieces = ref $raw eq 'ARRAY' ? @$raw : ($raw);
    for my $p (@pieces) {
        if (ref $p eq 'HASH') {
            sleep $p->{sleep} if $p->{sleep};
            next;
        }
        local $SIG{PIPE} = 'IGNORE';
        print {$s} $p or last;
        $s->flush;
    }

    my $resp = '';
    my $deadline = time + $timeout;
    $s->blocking(0);
    while (time < $deadline) {
        my $n = sysread($s, my $buf, 65536);
        if (defined $n && $n == 0) {
            last;
        }
        if (defined $n) {
            $resp .= $buf;
            next;
        }
        sleep 0.005;
    }
    close $s;

    return { error => 'timeout', raw => $resp } if time >= $deadline;
    my $res = _parse_response($resp);
    $res->{elapsed} = time - $start;
    return $res;
}


sub _parse_response {
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return { error => "no response", raw => $raw } unless defined $head;

    my ($status, @lines) = split /\r\n/, $head;
    my ($code) = $status =~ m{^HTTP/1\.[01] (\d{3})}
        or return { error => "bad status line: $status", raw => $raw };

    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        push @{ $h{lc $k} }, $v;
    }

    $body //= '';
    if (($h{'transfer-encoding'}[0] // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $out .= substr($body, 0, $len, '');
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }

    return { code => $code, headers => \%h, body => $body, raw => $raw };
}


sub _build_request {
    my ($block, $req, $more) = @_;

    return $req if ref $req;    # pieces, already raw

    $req =~ s/^\s+//;
    my ($line, $body) = split /\n/, $req, 2;
    $line =~ s/\s+$//;
    my ($method, $uri, $proto) = split /\s+/, $line;
    $proto //= 'HTTP/1.1';

    my $headers = "Host: localhost\r\nConnection: close\r\n";
    for my $h (split /\n/, $more // '') {
        next unless $h =~ /\S/;
        $headers .= "$h\r\n";
    }

    if (defined $body && length $body) {
        $headers .= "Content-Length: " . length($body) . "\r\n"
            unless $headers =~ /^(Content-Length|Transfer-Encoding):/mi;
    } else {
        $body = '';
    }

    return "$method $uri $proto\r\n$headers\r\n$body";
}


sub _list {
    my ($v, $n) = @_;
    return map { $v } 1 .. $n unless ref $v eq 'ARRAY';
    return @$v;
}


sub _patterns {
    my ($v) = @_;
    return () unless defined $v;
    return @$v if ref $v eq 'ARRAY';
    return grep { length } map { s/^\s+|\s+$//gr } split /\n/, $v;
}


sub _log_since {
    my ($pos) = @_;
    my $file = servroot() . "/logs/error.log";
    open my $fh, '<', $file or return '';
    seek $fh, $pos, 0;
    local $/;
    my $s = <$fh> // '';
    close $fh;
    return $s;
}


sub _check_response {
    my ($block, $name, $res, $i) = @_;

    my $expect = sub {
        my ($section) = @_;
        my $v = $block->$section;
        return undef unless defined $v;
        my @v = _list($v, $i + 1);
        return $v[$i];
    };

    if ($res->{error}) {
        ok(0, "$name - request failed: $res->{error}");
        diag($res->{raw}) if defined $res->{raw};
        return;
    }

    if (defined(my $code = $expect->('error_code'))) {
        $code =~ s/\s+//g;
        is($res->{code}, $code, "$name - status code ok");
    }

    if (defined(my $body = $expect->('response_body'))) {
        is($res->{body}, _expand($body), "$name - response_body - ok");
    }

    if (defined(my $re = $expect->('response_body_like'))) {
        $re =~ s/\n\z//;
        like($res->{body}, qr/$re/s, "$name - response_body_like - ok");
    }

    for my $line (_patterns($expect->('response_headers'))) {
        if ($line =~ /^!\s*(\S+)/) {
            ok(!exists $res->{headers}{lc $1}, "$name - header $1 absent");
            next;
        }
        my ($k, $v) = $line =~ /^([^:]+):\s*(.*)$/ or next;
        is($res->{headers}{lc $k}[0], _expand($v), "$name - header $k ok");
    }

    for my $line (_patterns($expect->('response_headers_like'))) {
        my ($k, $v) = $line =~ /^([^:]+):\s*(.*)$/ or next;
        like($res->{headers}{lc $k}[0] // '', qr/$v/,
             "$name - header $k like ok");
    }
}


sub _check_log {
    my ($block, $name, $log) = @_;

    for my $p (_patterns($block->error_log)) {
        my $re = ref $p eq 'Regexp' ? $p : qr/\Q$p\E/;
        like($log, $re, "$name - error_log has $p");
    }
    for my $p (_patterns($block->no_error_log)) {
        my $re = ref $p eq 'Regexp' ? $p : qr/\Q$p\E/;
        unlike($log, $re, "$name - error_log has no $p");
    }
    unless (defined $block->no_check_alerts) {
        my @bad = grep { /\[(alert|crit|emerg)\]|exited on signal/ }
                  split /\n/, $log;
        ok(!@bad, "$name - no alert, crit or crash in error.log")
            or diag(join "\n", @bad);
    }
}


sub _run_block {
    my ($block) = @_;
    my $name = $block->name;
    my $root = servroot();

    if (defined(my $code = $block->init)) {
        eval "package main; $code; 1" or die "init of $name: $@";
    }

    $ENV{TEST_NGINX_SERVER_PORT} = free_port();
    _write_config($block);

    my $logfile = "$root/logs/error.log";
    my $pos = -s $logfile // 0;

    if (defined $block->must_die) {
        my $cmd = join ' ', _nginx_cmd(), '-t';
        my $out = `$cmd 2>&1`;
        ok($? != 0, "$name - nginx -t fails");
        for my $p (_patterns($block->error_log)) {
            my $re = ref $p eq 'Regexp' ? $p : qr/\Q$p\E/;
            like($out, $re, "$name - nginx -t says $p");
        }
        return;
    }

    my @down = _patterns($block->down);
    backend_stop($_) for @down;

    if (my $err = _start_nginx()) {
        ok(0, "$name - $err");
        diag(_log_since($pos));
        backend_start($_) for @down;
        return;
    }

    my $check;
    if (defined(my $code = $block->check)) {
        $check = eval "package main; sub { my (\$res, \$i) = \@_; $code }"
            or die "check of $name: $@";
    }

    my $reqs = $block->raw_request // $block->request;
    my @reqs = ref $reqs eq 'ARRAY' && !$block->raw_request
             ? @$reqs : ($reqs);
    my @more = _list(scalar $block->more_headers, scalar @reqs);

    for my $i (0 .. $#reqs) {
        my $raw = $block->raw_request
                ? $reqs[$i]
                : _build_request($block, _expand($reqs[$i]), _expand($more[$i]));
        my $res = http_request($raw, $block->timeout);
        _check_response($block, $name, $res, $i);
        $check->($res, $i) if $check;
    }

    _stop_nginx();
    backend_start($_) for @down;

    _check_log($block, $name, _log_since($pos));
}


# run_tests(setup => sub { ... }): the setup runs once the backends are
# up and before the blocks are read (their eval sections may use it).
sub run_tests {
    my (%opt) = @_;

    plan('no_plan');

    servroot();
    _start_backends();

    $opt{setup}->() if $opt{setup};

    for my $block (blocks()) {
        _run_block($block);
    }
}


END {
    _stop_nginx();
    nginx_instance_stop($_) for @instances;
    $_->() for reverse @at_exit;
}

1;
