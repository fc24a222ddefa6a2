# The deployment files (docker/, k8s/): every YAML and JSON file parses,
# the files agree with each other and with the code (ports, stream and
# group names, environment variables, metric names, secrets, labels),
# the Dockerfiles copy and run only what the repository has and `make`
# runs, their runtime stages hold every library the built programs link,
# and the nginx image's entry point renders the configuration it would
# run (checked with `nginx -t` and the built module when both exist).
# Offline, without a Docker engine or a cluster.

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use File::Find;
use File::Temp qw(tempdir);
use JSON::PP;

my $top = abs_path('.');
-f "$top/docker/compose.yaml" or die "run from the repository's top\n";

my $tmp = tempdir('audex-deploy-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $python = '/usr/bin/python3';
my $module = "$top/build/ngx_http_audex_module.so";
my $nginx = $ENV{AUDEX_NGINX} // '/usr/sbin/nginx';

# the metrics the dashboard may use: name => [type, labels]
my %catalogue = (
    http_requests_total            => ['counter', qw(handler status)],
    http_request_duration_seconds  => ['histogram', qw(handler)],
    audex_upload_bytes_total       => ['counter'],
    audex_upload_files_total       => ['counter'],
    audex_download_bytes_total     => ['counter'],
    audex_jobs_stream_length       => ['gauge'],
    audex_jobs_stream_pending      => ['gauge'],
    converter_jobs_total           => ['counter', qw(result)],
    converter_job_duration_seconds => ['histogram'],
    converter_jobs_in_flight       => ['gauge'],
    notifier_messages_total        => ['counter', qw(channel result)],
);


sub slurp {
    my ($f) = @_;
    open my $h, '<', $f or die "$f: $!\n";
    local $/;
    return scalar <$h>;
}


sub spew {
    my ($f, $s, $mode) = @_;
    open my $h, '>', $f or die "$f: $!\n";
    print $h $s;
    close $h;
    chmod $mode, $f if defined $mode;
}


# runs a command with extra environment (undef deletes a variable);
# returns exit status, stdout and stderr
sub capture {
    my ($env, @cmd) = @_;
    my $err = "$tmp/stderr";
    my $pid = open(my $out, '-|') // die "fork: $!\n";

    if ($pid == 0) {
        for my $k (keys %$env) {
            if (defined $env->{$k}) {
                $ENV{$k} = $env->{$k};
            } else {
                delete $ENV{$k};
            }
        }
        open STDERR, '>', $err or die "$err: $!\n";
        exec @cmd or exit 127;
    }

    local $/;
    my $o = <$out> // '';
    close $out;
    return ($? >> 8, $o, -f $err ? slurp($err) : '');
}


# a value as nginx.conf holds it in double quotes, and back
sub nq { my ($v) = @_; $v =~ s/(["\\])/\\$1/g; return qq{"$v"} }
sub unq {
    my ($v) = @_;
    return $v unless $v =~ s/^"(.*)"$/$1/s;
    $v =~ s/\\(["'\\])/$1/g;
    return $v;
}

# one argument of a directive: a quoted string or a bare word
my $arg_re = qr/"(?:[^"\\]|\\.)*"|[^\s;"]+/;


# ${VAR:-default} as Compose reads it with VAR unset
sub interp {
    my ($s) = @_;
    return $s unless defined $s;
    $s =~ s/\$\{\w+(?::?-([^}]*))?\}/defined $1 ? $1 : ''/ge;
    return $s;
}


# --help of a worker: { flag => {env, default, help} }
sub worker_settings {
    my ($bin) = @_;
    my ($rc, $out) = capture({}, $bin, '--help');
    my (%t, $flag);

    return undef if $rc != 0;

    for (split /\n/, $out) {
        if (/^\s+--([a-z0-9-]+)\s+[SN]\s+(.*)$/) {
            $flag = $1;
            $t{$flag} = { help => $2 };
        } elsif ($flag && /^\s+env (\w+), default "(.*?)"/) {
            $t{$flag}{env} = $1;
            $t{$flag}{default} = $2;
        }
    }

    return \%t;
}


# the value a worker uses: its environment here, else its default
sub effective {
    my ($table, $env, $flag) = @_;
    my $s = $table->{$flag} or return undef;
    return $env->{$s->{env}} // $s->{default};
}


# an address only this host (or container) reaches
sub loopback {
    my ($addr) = @_;
    return !defined $addr || $addr =~ /^(127\.|::1$|localhost$)/;
}


sub by_env {
    my ($table) = @_;
    return { map { $table->{$_}{env} => $table->{$_} }
             grep { $table->{$_}{env} } keys %$table };
}


# ------------------------------------------------------------------
# every YAML file parses (a duplicated key is an error too)

my @yaml;
find(sub { push @yaml, $File::Find::name if /\.ya?ml$/ && -f },
     "$top/docker", "$top/k8s");
@yaml = sort map { s{^\Q$top\E/}{}r } @yaml;

my $loader = <<'PY';
import json, sys, yaml

class Loader(yaml.SafeLoader):
    pass

def mapping(loader, node, deep=False):
    seen = set()
    for k, v in node.value:
        if k.tag == 'tag:yaml.org,2002:merge':
            continue
        key = loader.construct_object(k, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, 'duplicate key %r' % (key,), k.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)

Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                       mapping)
out = {}
for f in sys.argv[1:]:
    try:
        with open(f) as h:
            out[f] = {'docs': [d for d in yaml.load_all(h, Loader=Loader)
                               if d is not None]}
    except Exception as e:
        out[f] = {'error': str(e)}
print(json.dumps(out))
PY

my ($rc, $out, $err) = capture({}, $python, '-c', 'import yaml');
if ($rc != 0) {
    fail("$python imports yaml (apt-get install python3-yaml)");
    done_testing();
    exit;
}

($rc, $out, $err) = capture({}, $python, '-c', $loader, @yaml);
is($rc, 0, 'the YAML loader runs') or diag($err);
my $parsed = decode_json($out);

for my $f (@yaml) {
    ok(!defined $parsed->{$f}{error}, "$f parses")
        or diag($parsed->{$f}{error});
}

sub docs { @{ $parsed->{$_[0]}{docs} // [] } }


# ------------------------------------------------------------------
# the nginx entry point and docker/nginx-conf.sh

my $entry = "$top/docker/nginx-entrypoint.sh";
my $example = "$top/conf/nginx.conf.example";

($rc, $out) = capture({}, $entry, '--help');
is($rc, 0, 'nginx-entrypoint.sh --help');
my %entry_env = map { $_ => 1 } ($out =~ /^ {2}([A-Z][A-Z0-9_]+) /mg);
ok($entry_env{MONGODB_URI} && $entry_env{AUDEX_JWT_SECRET_FILE},
   'its --help lists the environment it reads');

my %entry_default;
for my $v (keys %entry_env) {
    $entry_default{$v} = $1 if slurp($entry) =~ /\$\{$v:-([^}]*)\}/;
}

# a name with every character nginx.conf gives a meaning to: the module
# opens it (--check below) only if the quoting holds
my $jwt = "$tmp/jwt \"k\\e;y\$x {&#1}.secret";
my $link = "$tmp/link.secret";
spew($jwt, 'j' x 48, 0600);
spew($link, 'l' x 48, 0600);

my $uri = 'mongodb://u:p%40ss@m1:27017,m2/audex?replicaSet=rs0&w=majority';
my $state = "$tmp/state";
my %env = (
    MONGODB_URI            => $uri,
    REDIS_URL              => 'redis://:pw@redis:6380/2',
    AUDEX_JWT_SECRET_FILE  => $jwt,
    AUDEX_LINK_SECRET_FILE => $link,
    AUDEX_PORT             => 8181,
    AUDEX_NGINX_WORKERS    => 3,
    AUDEX_METRICS_ALLOW    => '10.231.90.90 fd00::/8',
    AUDEX_NGINX_TEMPLATE   => $example,
    AUDEX_NGINX_DIR        => $state,
    AUDEX_NGINX_MODULE     => undef,
    AUDEX_NGINX            => undef,
);

($rc, $out, $err) = capture(\%env, $entry, '--dry-run');
is($rc, 0, 'entry point --dry-run renders conf/nginx.conf.example')
    or diag($err);
my $conf = $out;
my $mod_default = $entry_default{AUDEX_NGINX_MODULE};

my %want = (
    load_module       => qq{"$mod_default"},
    pid               => qq{"$state/nginx.pid"},
    error_log         => qq{"stderr" notice},
    worker_processes  => '3',
    access_log        => qq{"/dev/stdout" audex},
    listen            => qq{"8181"},
    audex_mongodb_uri => qq{"$uri"},
    audex_redis_url   => qq{"redis://:pw\@redis:6380/2"},
    audex_jwt_key     => 'HS256 ' . nq($jwt),
    audex_link_secret => qq{"$link"},
    client_body_temp_path => qq{"$state/tmp/client_body"},
    proxy_temp_path   => qq{"$state/tmp/proxy"},
    scgi_temp_path    => qq{"$state/tmp/scgi"},
);

for my $d (sort keys %want) {
    my @got = ($conf =~ /^\s*\Q$d\E\s+(?!off;)((?:$arg_re|\s)*);/mg);
    ok(@got && !grep({ $_ ne $want{$d} } @got), "rendered: $d $want{$d}")
        or diag("got: @got");
}

like($conf, qr/^\s*access_log off;/m, '"access_log off" lines are kept');

my ($metrics_loc) = ($conf =~ m{location = /metrics \{(.*?)\}}s);
like($metrics_loc // '',
     qr/allow\ 127\.0\.0\.1;.*allow\ 10\.231\.90\.90;\s*
        allow\ fd00::\/8;\s*deny\ all;/sx,
     'AUDEX_METRICS_ALLOW: allow lines before "deny all" in /metrics');

# nothing else changed
my @changed = grep { !/^\s*(load_module|pid|error_log|worker_processes
                            |access_log|listen|audex_mongodb_uri
                            |audex_redis_url|audex_jwt_key|audex_link_secret
                            |\w+_temp_path|allow)\s/x }
              split /\n/, $conf;
my @orig = grep { !/^\s*(load_module|pid|error_log|worker_processes
                         |access_log|listen|audex_mongodb_uri
                         |audex_redis_url|audex_jwt_key|audex_link_secret
                         |\w+_temp_path|allow)\s/x }
           split /\n/, slurp($example);
is_deeply(\@changed, \@orig, 'every other line is the example\'s');

# every file the rendered configuration names is one the image has: the
# distro nginx's, what the entry point puts in, or what the Dockerfile
# copies (from the repository, where it must exist, or from a stage)
my @dests;
for my $c (ops((dockerfile("$top/docker/nginx.Dockerfile"))[-1], 'COPY')) {
    my $from = $c =~ /--from=/;
    my @w = grep { !/^--/ } split ' ', $c;
    my $d = pop @w;
    for my $src (@w) {
        push @dests, [$d =~ m{/$} ? $d . ($src =~ s{.*/}{}r) : $d,
                      $from ? undef : $src];
    }
}

my @path_faults;
for (split /\n/, $conf) {
    next unless /^\s*(load_module|include|pid|error_log|access_log|root
                     |alias|\w+_temp_path|audex_jwt_key|audex_link_secret
                     |ssl_certificate|ssl_certificate_key
                     |auth_basic_user_file|ssl_trusted_certificate)\s+
                  (?:HS256\s+|RS256\s+|ES256\s+)?($arg_re)/x;
    my ($d, $p) = ($1, unq($2));
    next if $p eq 'off' || $p eq 'stderr' || $p eq '/dev/stdout';
    next if $p eq $jwt || $p eq $link || $p eq '/etc/nginx/mime.types';
    next if index($p, "$state/") == 0;
    my ($hit) = grep { $p eq $_->[0] || index($p, "$_->[0]/") == 0 }
                @dests;
    if (!$hit) {
        push @path_faults, "$d $p: not in the image";
    } elsif (defined $hit->[1]
             && !-e "$top/$hit->[1]" . substr($p, length $hit->[0]))
    {
        push @path_faults, "$d $p: the image copies it from $hit->[1], "
                           . 'which lacks it';
    }
}
is_deeply(\@path_faults, [],
          'every file the example names is in the nginx image (or put '
          . 'there by the entry point)') or diag(explain(\@path_faults));

# refusals
my @refusals = (
    [{ MONGODB_URI => undef }, qr/MONGODB_URI is not set/,
     'no MONGODB_URI'],
    [{ REDIS_URL => '' }, qr/REDIS_URL is not set/, 'empty REDIS_URL'],
    [{ AUDEX_PORT => 70000 }, qr/AUDEX_PORT/, 'a port past 65535'],
    [{ AUDEX_JWT_SECRET_FILE => "$tmp/none" }, qr/cannot read/,
     'a missing secret file'],
    [{ AUDEX_NGINX_WORKERS => 'many' }, qr/--workers/,
     'a bad worker count'],
    [{ AUDEX_METRICS_ALLOW => '0.0.0.0/0;' }, qr/not an address/,
     'a bad metrics address'],
);
spew("$tmp/empty.secret", '');
push @refusals, [{ AUDEX_LINK_SECRET_FILE => "$tmp/empty.secret" },
                 qr/is empty/, 'an empty secret file'];
spew("$tmp/placeholder.secret",
     "REPLACE-ME-with-48-random-bytes-in-base64\n");
push @refusals, [{ AUDEX_JWT_SECRET_FILE => "$tmp/placeholder.secret" },
                 qr/placeholder/, 'a placeholder secret (k8s template)'];

for my $r (@refusals) {
    ($rc, $out, $err) = capture({ %env, %{ $r->[0] } }, $entry,
                                '--dry-run');
    ok($rc != 0 && $err =~ $r->[1] && $out eq '',
       "entry point refuses $r->[2]") or diag("rc $rc: $err");
}

# the renderer's own faults
($rc, undef, $err) = capture({}, "$top/docker/nginx-conf.sh",
                             '--mongodb-uri', "a\nb");
ok($rc != 0 && $err =~ /newline/, 'nginx-conf.sh refuses a newline');

spew("$tmp/bare.conf", "events {}\nhttp { server { listen 1; } }\n");
($rc, undef, $err) = capture({}, "$top/docker/nginx-conf.sh",
                             '--redis-url', 'redis://r', "$tmp/bare.conf");
ok($rc != 0 && $err =~ /audex_redis_url/,
   'nginx-conf.sh fails when an option finds no line to replace');

($rc, $out) = capture({}, "$top/docker/nginx-conf.sh", $example);
is($out, slurp($example), 'nginx-conf.sh without options: the template');

SKIP: {
    skip "no $module (make) or no $nginx", 2
        unless -f $module && -x $nginx;

    ($rc, $out, $err) = capture({ %env, AUDEX_NGINX_MODULE => $module,
                                  AUDEX_NGINX => $nginx },
                                $entry, '--check');
    is($rc, 0, 'entry point --check: nginx -t accepts the rendered '
               . 'configuration with the built module') or diag($err);
    ok(-f "$state/nginx.conf" && -d "$state/tmp",
       '--check wrote nginx.conf and made the temp directory');
}


# ------------------------------------------------------------------
# docker/secrets.sh

my ($compose) = docs('docker/compose.yaml');
$compose //= {};
my $services = $compose->{services} // {};

{
    my $dir = "$tmp/secrets";
    ($rc, undef, $err) = capture({}, "$top/docker/secrets.sh", $dir);
    is($rc, 0, 'docker/secrets.sh runs') or diag($err);

    my %made = map { $_ => 1 } grep { !/^\./ }
               map { s{.*/}{}r } glob("$dir/*");
    my %wanted = map { (($compose->{secrets}{$_}{file} // '') =~ s{.*/}{}r)
                       => 1 } keys %{ $compose->{secrets} // {} };
    is_deeply(\%made, \%wanted,
              'it makes exactly the secret files compose.yaml names');
    is((stat $dir)[2] & 07777, 0700, 'in a directory of mode 0700');

    for my $k (qw(jwt.secret link.secret)) {
        ok(-s "$dir/$k" >= 32, "$k holds 32 bytes at least");
    }
    isnt(slurp("$dir/jwt.secret"), slurp("$dir/link.secret"),
         'the two keys differ');

    my $before = slurp("$dir/jwt.secret");
    capture({}, "$top/docker/secrets.sh", $dir);
    is(slurp("$dir/jwt.secret"), $before, 'a second run keeps the keys');

    for my $k (keys %{ $compose->{secrets} // {} }) {
        like($compose->{secrets}{$k}{file} // '', qr{^\./secrets/},
             "compose secret $k comes from docker/secrets/");
    }
}


# ------------------------------------------------------------------
# docker/compose.yaml

my %workers;
for my $w (qw(converter notifier)) {
    $workers{$w} = worker_settings("$top/build/bin/audex-$w")
        if -x "$top/build/bin/audex-$w";
}

is_deeply([sort keys %$services],
          [sort qw(nginx converter notifier mongo redis prometheus
                   grafana)],
          'compose: the expected services');

like($services->{mongo}{image} // '', qr/^mongo:7(\.|$)/, 'MongoDB 7');
like($services->{redis}{image} // '', qr/^redis:7(\.|$)/, 'Redis 7');
like(join(' ', @{ $services->{redis}{command} // [] }),
     qr/--appendonly yes/, 'Redis with its append-only file');
ok(($services->{converter}{deploy}{replicas} // 0) =~ /^[1-9]\d*$/,
   'converters: deploy.replicas');

for my $s (sort keys %$services) {
    my $t = $services->{$s}{healthcheck}{test};
    ok(ref $t eq 'ARRAY' && @$t > 1 && $t->[0] =~ /^CMD(-SHELL)?$/,
       "$s has a healthcheck");
}

my %env_of;
for my $s (keys %$services) {
    my $e = $services->{$s}{environment} // {};
    $env_of{$s} = { map { $_ => interp($e->{$_}) } keys %$e };
}

sub hc { join ' ', @{ $services->{$_[0]}{healthcheck}{test} // [] } }

my $nginx_port = $env_of{nginx}{AUDEX_PORT}
                 // $entry_default{AUDEX_PORT} // 8080;
like(hc('nginx'), qr{127\.0\.0\.1:$nginx_port/healthz},
     "nginx healthcheck: /healthz on its port $nginx_port");
ok(grep({ interp($_) =~ /:$nginx_port$/ }
        @{ $services->{nginx}{ports} // [] }),
   'nginx publishes that port');
like(hc('mongo'), qr/mongosh.*ping/, 'mongo healthcheck: mongosh ping');
like(hc('redis'), qr/redis-cli ping/, 'redis healthcheck: redis-cli ping');

my %metrics_port;
for my $w (qw(converter notifier)) {
    SKIP: {
        skip "build/bin/audex-$w is not built", 4 unless $workers{$w};
        my $t = $workers{$w};
        my $port = effective($t, $env_of{$w}, 'metrics-port');
        $metrics_port{$w} = $port;
        like(hc($w), qr{127\.0\.0\.1:$port/healthz},
             "$w healthcheck: /healthz on its metrics port $port");
        ok(!loopback(effective($t, $env_of{$w}, 'metrics-addr')),
           "$w: metrics on every interface, for Prometheus");
        my $known = by_env($t);
        my @unknown = grep { !$known->{$_} } sort keys %{ $env_of{$w} };
        is_deeply(\@unknown, [],
                  "$w: every variable compose sets is one it reads");
        like(join(' ', @{ $services->{$w}{command} // [] }),
             qr/^audex-$w( run)?$/, "$w runs audex-$w");
    }
}
$metrics_port{converter} //= 9100;
$metrics_port{notifier} //= 9101;

{
    my @unknown = grep { !$entry_env{$_} } sort keys %{ $env_of{nginx} };
    is_deeply(\@unknown, [],
              'nginx: every variable compose sets is one the entry point '
              . 'reads');
}

# the streams both workers use must be the same ones
sub shared_streams {
    my ($where, $cenv, $nenv) = @_;
    SKIP: {
        skip 'workers not built', 1
            unless $workers{converter} && $workers{notifier};
        my $c = by_env($workers{converter});
        my $n = by_env($workers{notifier});
        my @faults;
        for my $v (sort grep { $n->{$_} } keys %$c) {
            next if $v eq 'LOG_LEVEL';
            my $cv = $cenv->{$v} // $c->{$v}{default};
            my $nv = $nenv->{$v} // $n->{$v}{default};
            if ($cv ne $nv) {
                push @faults, "$v: converter \"$cv\", notifier \"$nv\"";
            } elsif ($cv eq '') {
                my ($ch) = ($c->{$v}{help} =~ /empty: (\S+)/);
                my ($nh) = ($n->{$v}{help} =~ /empty: (\S+)/);
                push @faults, "$v: empty means $ch to the converter, $nh "
                              . 'to the notifier: set it'
                    if ($ch // '') ne ($nh // '');
            }
        }
        is_deeply(\@faults, [],
                  "$where: converter and notifier share their streams");
    }
}
shared_streams('compose', $env_of{converter}, $env_of{notifier});

for my $s (sort keys %$services) {
    my $d = $services->{$s}{depends_on} // {};
    for my $on (sort keys %$d) {
        is($d->{$on}{condition} // '', 'service_healthy',
           "$s waits for $on to be healthy");
        ok($services->{$on} && $services->{$on}{healthcheck},
           "$on exists and has a healthcheck");
    }
}
for my $s (qw(nginx converter notifier)) {
    my $d = $services->{$s}{depends_on} // {};
    ok($d->{mongo} && $d->{redis}, "$s depends on mongo and redis");
}

{
    my (%used, @binds);
    for my $s (values %$services) {
        for my $v (@{ $s->{volumes} // [] }) {
            my ($src) = split /:/, (ref $v ? $v->{source} // '' : $v);
            if ($src =~ m{^[./]}) {
                push @binds, $src;
            } else {
                $used{$src} = 1;
            }
        }
    }
    is_deeply([sort keys %used],
              [sort keys %{ $compose->{volumes} // {} }],
              'named volumes: each used one is declared, each declared '
              . 'one used');
    for my $b (@binds) {
        ok(-e "$top/docker/$b", "bind mount $b exists");
    }
    my %mounts = map { my ($src, $dst) = split /:/; ($dst => $src) }
                 map { @{ $services->{$_}{volumes} // [] } }
                 qw(mongo redis);
    ok($mounts{'/data/db'} && $mounts{'/data'},
       'MongoDB and Redis keep their data in volumes');
}

for my $s (sort keys %$services) {
    my %has = map { (ref $_ ? $_->{source} : $_) => 1 }
              @{ $services->{$s}{secrets} // [] };
    for my $k (sort keys %has) {
        ok($compose->{secrets}{$k}, "$s: secret $k is declared");
    }
    for my $v (sort grep { /_FILE$/ } keys %{ $env_of{$s} }) {
        my ($name) = ($env_of{$s}{$v} =~ m{^/run/secrets/(\w+)$});
        ok($name && $has{$name}, "$s: $v is a secret it is given");
    }
}
is_deeply([sort keys %{ $compose->{secrets} // {} }],
          [qw(jwt_secret link_secret smtp_password)],
          'compose secrets: JWT key, link key, SMTP password');

is($services->{nginx}{build}{dockerfile}, 'docker/nginx.Dockerfile',
   'nginx is built from docker/nginx.Dockerfile');
for my $w (qw(converter notifier)) {
    is($services->{$w}{build}{dockerfile}, 'docker/workers.Dockerfile',
       "$w is built from docker/workers.Dockerfile");
}
for my $s (qw(nginx converter notifier)) {
    is($services->{$s}{build}{context}, '..',
       "$s: the build context is the repository");
}

{
    my $ip = $services->{prometheus}{networks}{default}{ipv4_address} // '';
    my ($subnet) = map { $_->{subnet} }
        @{ $compose->{networks}{default}{ipam}{config} // [] };
    is($env_of{nginx}{AUDEX_METRICS_ALLOW}, $ip,
       'nginx allows /metrics to the Prometheus container\'s address');
    my ($net) = (($subnet // '') =~ m{^(\d+\.\d+\.\d+)\.0/24$});
    ok($net && index($ip, "$net.") == 0, "$ip lies in the subnet");
}

SKIP: {
    my ($drc) = capture({}, 'sh', '-c', 'docker compose version');
    skip 'no docker compose', 1 if $drc != 0;
    ($rc, undef, $err) = capture({}, 'docker', 'compose', '-f',
                                 "$top/docker/compose.yaml", 'config',
                                 '-q');
    is($rc, 0, 'docker compose config accepts compose.yaml') or diag($err);
}


# ------------------------------------------------------------------
# Prometheus and Grafana

{
    my ($p) = docs('docker/prometheus.yml');
    my %job = map { $_->{job_name} => $_ } @{ $p->{scrape_configs} // [] };
    my %port = (nginx => $nginx_port, converter => $metrics_port{converter},
                notifier => $metrics_port{notifier});

    for my $j (qw(nginx converter notifier)) {
        my ($sd) = @{ $job{$j}{dns_sd_configs} // [] };
        is_deeply($sd && [$sd->{names}, $sd->{port}], [[$j], $port{$j}],
                  "prometheus scrapes every $j on port $port{$j}");
        is($job{$j}{metrics_path}, '/metrics', "$j: /metrics");
    }

    my ($ds) = docs('docker/grafana/provisioning/datasources/'
                    . 'prometheus.yaml');
    my ($src) = @{ $ds->{datasources} // [] };
    is($src->{type}, 'prometheus', 'grafana: a Prometheus datasource');
    is($src->{url}, 'http://prometheus:9090', 'at the prometheus service');

    my ($dp) = docs('docker/grafana/provisioning/dashboards/audex.yaml');
    my ($prov) = @{ $dp->{providers} // [] };
    my %mounts = map { my ($s, $d) = split /:/; ($s => $d) }
                 @{ $services->{grafana}{volumes} // [] };
    is($prov->{options}{path}, $mounts{'./grafana/dashboards'},
       'grafana loads dashboards from where compose mounts them');

    my $dash = eval { decode_json(slurp(
        "$top/docker/grafana/dashboards/audex.json")) };
    ok($dash, 'the dashboard JSON parses') or diag($@);
    $dash //= {};

    my (@exprs, %ids, @ds_faults);
    my @panels = @{ $dash->{panels} // [] };
    for my $pn (@panels) {
        $ids{$pn->{id}}++;
        next if $pn->{type} eq 'row';
        push @ds_faults, $pn->{title}
            if ($pn->{datasource}{uid} // '') ne ($src->{uid} // '');
        push @exprs, map { $_->{expr} } @{ $pn->{targets} // [] };
    }
    ok(!grep({ $_ > 1 } values %ids), 'panel ids are unique');
    is_deeply(\@ds_faults, [], 'every panel uses the provisioned '
                               . 'datasource');

    my (%used, @faults);
    my $kw = qr/^(by|without|on|ignoring|group_left|group_right|and|or
                 |unless|bool|offset)$/x;
    for my $e (@exprs) {
        my $s = $e;
        my %in;
        $s =~ s/"(?:[^"\\]|\\.)*"/""/g;
        $s =~ s/\[[^\]]*\]//g;

        # name{label...}
        while ($s =~ /([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g) {
            my ($m, $sel) = ($1, $2);
            push @{ $in{$m} }, ($sel =~ /([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g);
        }
        my @group;
        while ($s =~ /\b(?:by|without)\s*\(([^)]*)\)/g) {
            push @group, grep { length } split /[\s,]+/, $1;
        }
        $s =~ s/\{[^}]*\}//g;
        $s =~ s/\b(?:by|without)\s*\([^)]*\)//g;
        for my $id ($s =~ /([a-zA-Z_:][\w:]*)(?!\w)(?!\s*\()/g) {
            next if $id =~ $kw;
            $in{$id} //= [];
        }

        my %labels;
        for my $m (keys %in) {
            my ($base, $suffix) = ($m, '');
            if ($m =~ /^(.*)_(bucket|sum|count)$/
                && ($catalogue{$1}[0] // '') eq 'histogram')
            {
                ($base, $suffix) = ($1, $2);
            }
            my $c = $catalogue{$base};
            if (!$c || ($c->[0] eq 'histogram' && !$suffix)) {
                push @faults, "$m (in $e) is not an audex metric";
                next;
            }
            $used{$m} = 1;
            my %ok = map { $_ => 1 } (@{$c}[1 .. $#$c], 'job', 'instance',
                                      $suffix eq 'bucket' ? 'le' : ());
            $labels{$_} = 1 for keys %ok;
            push @faults, map { "$m has no label $_ (in $e)" }
                          grep { !$ok{$_} } @{ $in{$m} };
        }
        push @faults, map { "no metric of \"$e\" has a label $_" }
                      grep { !$labels{$_} } @group;
    }
    is_deeply(\@faults, [], 'the dashboard queries only the audex metrics '
                            . 'and their labels') or diag(explain(\@faults));

    for my $m (qw(http_requests_total http_request_duration_seconds_bucket
                  converter_jobs_total audex_jobs_stream_length
                  audex_jobs_stream_pending))
    {
        ok($used{$m}, "the dashboard shows $m");
    }

    # every catalogued metric is one the code exports
    my %src = (http_ => 'ngx_module', audex_ => 'ngx_module',
               converter_ => 'workers/converter',
               notifier_ => 'workers/notifier');
    for my $m (sort keys %catalogue) {
        my ($prefix) = grep { index($m, $_) == 0 } keys %src;
        my $dir = "$top/$src{$prefix}";
        SKIP: {
            skip "$dir does not exist yet", 1 unless -d $dir;
            my @hits = grep { index(slurp($_), $m) >= 0 }
                       glob("$dir/*.c");
            ok(@hits, "$m is exported by $src{$prefix}");
        }
    }
}


# ------------------------------------------------------------------
# Dockerfiles

sub dockerfile {
    my ($f) = @_;
    my (@stages, $line);
    for (split /\n/, slurp($f)) {
        next if /^\s*#/;
        $line = defined $line ? "$line $_" : $_;
        next if $line =~ s/\\\s*$//;
        if ($line =~ /^\s*(\w+)\s+(.*)$/) {
            my ($op, $arg) = (uc $1, $2);
            if ($op eq 'FROM') {
                my ($image, $as) = ($arg =~ /^(\S+)(?:\s+AS\s+(\S+))?/i);
                push @stages, { image => $image, as => $as, ops => [] };
            } elsif (@stages) {
                push @{ $stages[-1]{ops} }, [$op, $arg];
            }
        }
        undef $line;
    }
    return @stages;
}


sub ops { my ($st, $op) = @_; map { $_->[1] } grep { $_->[0] eq $op }
                                                  @{ $st->{ops} } }


# packages an apt-get install in these RUN lines names
sub apt_packages {
    my @p;
    for my $run (@_) {
        for my $seg (split /&&|\|\||;/, $run) {
            next unless $seg =~ /apt-get\s.*?\binstall\b(.*)$/;
            for my $w (split ' ', $1) {
                $w =~ s/["'{}]//g;
                next if $w eq '' || $w =~ /^-/;
                push @p, $w =~ s/=.*//r;
            }
        }
    }
    return @p;
}


my $makefile = slurp("$top/Makefile");

# sonames -> files, from the linker cache
my %soname;
{
    my (undef, $ld) = capture({}, '/sbin/ldconfig', '-p');
    for (split /\n/, $ld) {
        $soname{$1} //= $2 if /^\s*(\S+) \(.*x86-64.*\) => (\S+)/;
        $soname{$1} //= $2 if /^\s*(\S+) \(libc6\) => (\S+)/;
    }
}

# the packages that hold these files, in one dpkg call
sub packages_of {
    my (@files) = @_;
    my %pkg;
    my (undef, $o) = capture({}, 'dpkg', '-S', @files);
    for (split /\n/, $o) {
        $pkg{$2} = $1 if /^([^:,\s]+)(?::\w+)?: (\S+)$/;
    }
    return \%pkg;
}


my %image = (
    'docker/nginx.Dockerfile'   => [$module],
    'docker/workers.Dockerfile' => [grep { -f } glob("$top/build/bin/audex-*")],
);

for my $df (sort keys %image) {
    ok(-f "$top/$df", "$df exists") or next;
    my @stages = dockerfile("$top/$df");
    my ($build, $run) = @stages[0, -1];

    ok(@stages >= 2, "$df: build and runtime stages");
    is($build->{image}, 'debian:bookworm', "$df: built on Debian 12");
    like($run->{image}, qr/^debian:bookworm(-slim)?$/,
         "$df: runs on Debian 12");

    ok(grep({ /^scripts\/setup\.sh --no-ferretdb$/ } ops($build, 'RUN')),
       "$df: packages by scripts/setup.sh --no-ferretdb");
    like(slurp("$top/scripts/setup.sh"), qr/--no-ferretdb/,
         'scripts/setup.sh takes --no-ferretdb');

    # what the build stages copy and run exists, and `make` runs it
    my (@copied, @run_lines);
    for my $st (@stages) {
        for my $c (ops($st, 'COPY')) {
            next if $c =~ /--from=/;
            my @w = grep { !/^--/ } split ' ', $c;
            pop @w;
            for my $src (@w) {
                ok(-e "$top/$src", "$df: COPY $src exists");
                push @copied, $src if $st != $run;
            }
        }
        push @run_lines, ops($st, 'RUN') if $st != $run;
    }
    for my $r (@run_lines) {
        for my $s ($r =~ m{((?:scripts|docker)/[\w.-]+\.sh)}g) {
            ok(-x "$top/$s", "$df: runs $s, which exists");
            ok(index($makefile, $s) >= 0, "$df: make runs $s too")
                if $s =~ m{^scripts/};
            my ($sdir) = ($s =~ m{^([^/]+)});
            my $body = slurp("$top/$s");
            my @needs = ($body =~ m{"?\$(?:top|\{top\})"?/([\w.-]+)}g);
            my @missing = grep { my $n = $_;
                                 !grep { s{/$}{}r eq $n
                                         || m{^\Q$n\E/} } @copied }
                          grep { $_ ne 'build' } @needs;
            is_deeply(\@missing, [], "$df: the build stage copies all "
                                     . "$s reads");
        }
        if ($r =~ /\bmake\s+(\w+)/) {
            like($makefile, qr/^\Q$1\E:/m, "$df: make has a $1 target");
        }
    }

    # config (nginx addon) names its files relative to the module top
    if (grep { $_ eq 'config' } @copied) {
        my @needs = (slurp("$top/config") =~ m{\$ngx_addon_dir/(\w+)}g);
        my @missing = grep { my $n = $_; !grep { $_ eq $n } @copied } @needs;
        is_deeply(\@missing, [], "$df: the build stage copies what "
                                 . 'config reads');
    }

    # the runtime stage: only runtime packages, and every library the
    # built programs link comes from one of them (or from libc6)
    my @pkgs = apt_packages(ops($run, 'RUN'));
    ok(@pkgs, "$df: runtime packages are named");
    is_deeply([grep { /-dev$/ } @pkgs], [], "$df: no -dev package at run "
                                            . 'time');
    my (undef, $st) = capture({}, 'dpkg-query', '-W', '-f',
                              '${Package} ${Status}\n', @pkgs);
    my %installed = map { /^(\S+) .*\binstalled$/ ? ($1 => 1) : () }
                    split /\n/, $st;
    for my $p (@pkgs) {
        my ($arc) = $installed{$p} ? (0)
                                   : capture({}, 'apt-cache', 'show', $p);
        is($arc, 0, "$df: Debian 12 has $p");
    }

    my %have = map { $_ => 1 } @pkgs, 'libc6';
    SKIP: {
        my @elf = @{ $image{$df} };
        skip "$df: nothing built yet (make)", 1 unless @elf && -f $elf[0];
        my (@faults, %needed);
        for my $e (@elf) {
            my (undef, $d) = capture({}, 'readelf', '-d', $e);
            $needed{$_}{$e} = 1
                for $d =~ /\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g;
        }
        my @files = map { ($_, abs_path($_)) } grep { defined }
                    map { $soname{$_} } keys %needed;
        my $pkg = packages_of(@files);
        for my $so (sort keys %needed) {
            my $file = $soname{$so};
            my $p = $file ? $pkg->{$file} // $pkg->{ abs_path($file) }
                          : undef;
            push @faults, map { "$_: $so (" . ($p // 'no package') . ')' }
                          sort keys %{ $needed{$so} }
                unless $p && $have{$p};
        }
        is_deeply(\@faults, [], "$df: the runtime stage has every library "
                                . 'the programs link')
            or diag(explain(\@faults));
    }
}

# the nginx image's layout is the entry point's defaults
{
    my $run = (dockerfile("$top/docker/nginx.Dockerfile"))[-1];
    my %dest;
    for my $c (ops($run, 'COPY')) {
        my @w = grep { !/^--/ } split ' ', $c;
        my $d = pop @w;
        $dest{ s{.*/}{}r } = $d =~ m{/$} ? $d . s{.*/}{}r : $d for @w;
    }
    my ($ep) = ops($run, 'ENTRYPOINT');
    my ($ep_path) = (($ep // '') =~ /"([^"]+)"/);

    is($dest{'ngx_http_audex_module.so'}, $mod_default,
       'the module is where the entry point loads it from');
    is($dest{'nginx.conf.example'}, $entry_default{AUDEX_NGINX_TEMPLATE},
       'the example is the entry point\'s default template');
    is($ep_path, $dest{'nginx-entrypoint.sh'}, 'ENTRYPOINT is the entry '
                                               . 'point');
    is(($dest{'nginx-conf.sh'} // '') =~ s{/[^/]+$}{}r,
       ($dest{'nginx-entrypoint.sh'} // '') =~ s{/[^/]+$}{}r,
       'nginx-conf.sh sits next to it');
    like(join(' ', ops($run, 'RUN')),
         qr/install -d -o www-data .*\Q$entry_default{AUDEX_NGINX_DIR}\E/,
         'the state directory exists and belongs to www-data');
    is((ops($run, 'USER'))[0], 'www-data', 'nginx runs as www-data');
    is((ops($run, 'EXPOSE'))[0], $entry_default{AUDEX_PORT},
       'EXPOSE is the entry point\'s port');
    ok(grep({ /^\/usr\/lib\/nginx\/modules\// } values %dest),
       'the module is installed to /usr/lib/nginx/modules');
}

# Swagger UI and tus-js-client's bundle come from the stage that runs
# scripts/install-web.sh DIR, which installs its pinned packages into
# DIR/node_modules
{
    my @stages = dockerfile("$top/docker/nginx.Dockerfile");
    my %dir;
    for my $st (@stages) {
        for (ops($st, 'RUN')) {
            $dir{ $st->{as} // '' } = $1
                if m{scripts/install-web\.sh\s+(\S+)};
        }
    }
    my $pins = slurp("$top/scripts/install-web.sh");
    for my $c (ops($stages[-1], 'COPY')) {
        next unless $c =~ /--from=(\S+)/ && defined $dir{$1};
        my ($src) = grep { !/^--/ } split ' ', $c;
        my ($pkg) = ($src =~
            m{^\Q$dir{$1}\E/node_modules/([\w.-]+)(?:/[\w./-]+)?$});
        ok($pkg && $pins =~ /^\s+\Q$pkg\E\@/m,
           "nginx.Dockerfile: $src is a package install-web.sh pins");
    }
}

# the workers' build stage has all `make workers` needs
{
    my ($build) = dockerfile("$top/docker/workers.Dockerfile");
    my $dir = "$tmp/workers-stage";
    mkdir $dir;
    for my $c (ops($build, 'COPY')) {
        my @w = grep { !/^--/ } split ' ', $c;
        pop @w;
        for my $src (@w) {
            my ($rc2) = capture({}, 'sh', '-c',
                                'cd "$1" && cp -r --parents "$2" "$3"', '-',
                                $top, $src, $dir);
            $rc2 == 0 or diag("cp $src failed");
        }
    }
    my @make = ('make', '-n', '-B', '-C');
    my ($rc1, $want_cmds) = capture({ MAKEFLAGS => undef }, @make, $top,
                                    'workers');
    ($rc, $out, $err) = capture({ MAKEFLAGS => undef }, @make, $dir,
                                'workers');
    s/^make.*directory.*\n//mg for $want_cmds, $out;
    ok($rc == 0 && $rc1 == 0 && $out eq $want_cmds,
       'workers.Dockerfile: `make workers` on the copied files runs what '
       . 'it runs in the repository') or diag($err);
}


# ------------------------------------------------------------------
# k8s/

my (@objects, %kind);
for my $f (grep { m{^k8s/} } @yaml) {
    next if $f eq 'k8s/kustomization.yaml';
    for my $o (docs($f)) {
        my $name = $o->{metadata}{name};
        ok($o->{apiVersion} && $o->{kind} && $name,
           "$f: " . ($o->{kind} // '?') . ' ' . ($name // '?')
           . ' has apiVersion, kind and metadata.name');
        $o->{_file} = $f;
        push @objects, $o;
        push @{ $kind{ $o->{kind} // '' } }, $o;
    }
}

sub named {
    my ($k, $n) = @_;
    my ($o) = grep { ($_->{metadata}{name} // '') eq ($n // '') }
              @{ $kind{$k} // [] };
    return $o;
}

sub subset {
    my ($a, $b) = @_;
    return 0 unless $a && %$a;
    return !grep { ($b->{$_} // "\0") ne $a->{$_} } keys %$a;
}

{
    my ($k) = docs('k8s/kustomization.yaml');
    my @top = sort map { s{^k8s/}{}r }
              grep { m{^k8s/[^/]+$} && $_ ne 'k8s/kustomization.yaml' }
              @yaml;
    is_deeply([sort @{ $k->{resources} // [] }], \@top,
              'kustomization lists every manifest in k8s/ (autoscaling '
              . 'stays optional)');
    my %img = map { $_->{name} => 1 } @{ $k->{images} // [] };
    for my $d (@{ $kind{Deployment} // [] }) {
        for my $c (@{ $d->{spec}{template}{spec}{containers} // [] }) {
            my $i = $c->{image} =~ s/:.*//r;
            ok($img{$i}, "kustomization names image $i");
        }
    }

    SKIP: {
        my ($krc) = capture({}, 'sh', '-c', 'command -v kubectl');
        skip 'no kubectl', 1 if $krc != 0;
        ($rc, $out, $err) = capture({}, 'kubectl', 'kustomize',
                                    "$top/k8s");
        ok($rc == 0 && $out !~ /image: audex-/,
           'kubectl kustomize renders k8s/ with every image renamed')
            or diag($err);
    }
}

my %secret_keys;
for my $s (@{ $kind{Secret} // [] }) {
    my %d = (%{ $s->{data} // {} }, %{ $s->{stringData} // {} });
    $secret_keys{ $s->{metadata}{name} } = \%d;
}
for my $s (sort keys %secret_keys) {
    for my $k (sort keys %{ $secret_keys{$s} }) {
        like($secret_keys{$s}{$k}, qr/REPLACE-ME/,
             "Secret $s: $k is a marked placeholder");
    }
}
ok($secret_keys{'audex-secrets'}
   && !grep({ !exists $secret_keys{'audex-secrets'}{$_} }
            qw(jwt.secret link.secret smtp.password)),
   'Secret audex-secrets: JWT key, link key, SMTP password');

{
    my $cm = named('ConfigMap', 'audex-nginx-conf');
    is($cm && $cm->{data}{'nginx.conf'}, slurp($example),
       'the ConfigMap holds conf/nginx.conf.example (else run '
       . 'k8s/nginx-configmap.sh)');
}

my %k8s_env;
for my $d (@{ $kind{Deployment} // [] }) {
    my $n = $d->{metadata}{name};
    my $spec = $d->{spec}{template}{spec} // {};
    my $labels = $d->{spec}{template}{metadata}{labels} // {};
    my $ann = $d->{spec}{template}{metadata}{annotations} // {};
    my %volumes = map { $_->{name} => $_ } @{ $spec->{volumes} // [] };

    ok(subset($d->{spec}{selector}{matchLabels}, $labels),
       "$n: its selector matches its pods' labels");

    my @c = @{ $spec->{containers} // [] };
    is(scalar @c, 1, "$n: one container");
    my $c = $c[0] // {};
    my %ports = map { ($_->{name} // '') => $_->{containerPort},
                      $_->{containerPort} => $_->{containerPort} }
                @{ $c->{ports} // [] };

    for my $p (qw(readinessProbe livenessProbe)) {
        my $probe = $c->{$p} // {};
        my ($how) = grep { $probe->{$_} } qw(httpGet tcpSocket exec);
        ok($how, "$n: $p");
        ok(defined $ports{ $probe->{$how // ''}{port} // '' },
           "$n: $p port is a container port") if ($how // '') ne 'exec';
    }
    for my $r (qw(requests limits)) {
        ok($c->{resources}{$r}{cpu} && $c->{resources}{$r}{memory},
           "$n: resources.$r cpu and memory");
    }
    is($ann->{'prometheus.io/scrape'}, 'true', "$n: prometheus.io/scrape");
    ok(defined $ports{ $ann->{'prometheus.io/port'} // '' },
       "$n: prometheus.io/port is a container port");
    is($ann->{'prometheus.io/path'}, '/metrics', "$n: prometheus.io/path");

    my %env;
    my %mounts = map { $_->{mountPath} => $_->{name} }
                 @{ $c->{volumeMounts} // [] };
    for my $e (@{ $c->{env} // [] }) {
        if (my $ref = $e->{valueFrom}{secretKeyRef}) {
            ok(exists $secret_keys{ $ref->{name} }{ $ref->{key} },
               "$n: $e->{name} comes from Secret $ref->{name} key "
               . "$ref->{key}, which exists");
            $env{ $e->{name} } = '';
            next;
        }
        $env{ $e->{name} } = $e->{value};
        next unless $e->{name} =~ /_(FILE|TEMPLATE)$/;

        # a file in a mounted secret or config map
        my ($dir, $file) = ($e->{value} =~ m{^(.*)/([^/]+)$});
        my $vol = $volumes{ $mounts{$dir} // '' } // {};
        my $ok = 0;
        if (my $s = $vol->{secret}) {
            my @items = @{ $s->{items} // [] };
            my ($item) = grep { $_->{path} eq $file } @items;
            my $keys = $secret_keys{ $s->{secretName} } // {};
            $ok = $item ? exists $keys->{ $item->{key} }
                        : !@items && exists $keys->{$file};
        } elsif (my $m = $vol->{configMap}) {
            my $cm = named('ConfigMap', $m->{name});
            $ok = $cm && exists $cm->{data}{$file};
        }
        ok($ok, "$n: $e->{name} names a file of a mounted Secret or "
                . 'ConfigMap');
    }
    $k8s_env{ $labels->{'app.kubernetes.io/component'} // $n } = \%env;

    for my $v (values %volumes) {
        if ($v->{configMap}) {
            ok(named('ConfigMap', $v->{configMap}{name}),
               "$n: ConfigMap $v->{configMap}{name} exists");
        }
        if ($v->{secret}) {
            ok($secret_keys{ $v->{secret}{secretName} },
               "$n: Secret $v->{secret}{secretName} exists");
        }
    }
}

is_deeply([sort keys %k8s_env], [qw(converter nginx notifier)],
          'k8s: Deployments of nginx, converter, notifier');

{
    my $d = named('Deployment', 'audex-nginx');
    my $c = $d ? $d->{spec}{template}{spec}{containers}[0] : {};
    is($c->{readinessProbe}{httpGet}{path}, '/healthz',
       'nginx is ready when /healthz says so');
    my @unknown = grep { !$entry_env{$_} } sort keys %{ $k8s_env{nginx} };
    is_deeply(\@unknown, [], 'nginx: every variable is one the entry point '
                             . 'reads');
}

for my $w (qw(converter notifier)) {
    SKIP: {
        skip "build/bin/audex-$w is not built", 5 unless $workers{$w};
        my $d = named('Deployment', "audex-$w");
        my $c = $d ? $d->{spec}{template}{spec}{containers}[0] : {};
        my %ports = map { ($_->{name} // '') => $_->{containerPort} }
                    @{ $c->{ports} // [] };
        my $port = effective($workers{$w}, $k8s_env{$w}, 'metrics-port');
        for my $p (qw(readinessProbe livenessProbe)) {
            my $g = $c->{$p}{httpGet} // {};
            ok(($g->{path} // '') eq '/healthz'
               && ($ports{ $g->{port} // '' } // $g->{port} // 0) == $port,
               "$w: $p is /healthz on its metrics port $port");
        }
        is($d->{spec}{template}{metadata}{annotations}{'prometheus.io/port'},
           $port, "$w: scraped on port $port");
        ok(!loopback(effective($workers{$w}, $k8s_env{$w}, 'metrics-addr')),
           "$w: metrics on the pod's address, for the kubelet and "
           . 'Prometheus');
        my $known = by_env($workers{$w});
        my @unknown = grep { !$known->{$_} } sort keys %{ $k8s_env{$w} };
        is_deeply(\@unknown, [], "$w: every variable is one it reads");
    }
}
shared_streams('k8s', $k8s_env{converter}, $k8s_env{notifier});

for my $s (@{ $kind{Service} // [] }) {
    my $n = $s->{metadata}{name};
    my ($d) = grep { subset($s->{spec}{selector},
                            $_->{spec}{template}{metadata}{labels}) }
              @{ $kind{Deployment} // [] };
    ok($d, "Service $n selects a Deployment's pods") or next;
    my %ports = map { ($_->{name} // '') => 1, $_->{containerPort} => 1 }
                @{ $d->{spec}{template}{spec}{containers}[0]{ports} // [] };
    for my $p (@{ $s->{spec}{ports} // [] }) {
        ok($ports{ $p->{targetPort} // $p->{port} },
           "Service $n: port $p->{port} reaches a container port");
    }
}

# autoscaling: KEDA on the stream, or an HPA on CPU
{
    my $so = named('ScaledObject', 'audex-converter');
    my $hpa = named('HorizontalPodAutoscaler', 'audex-converter');
    ok($so && $hpa, 'a KEDA ScaledObject and an HPA for the converters');
    $so //= {};
    $hpa //= {};

    my $target = $so->{spec}{scaleTargetRef}{name} // '';
    ok(named('Deployment', $target), "ScaledObject scales Deployment "
                                     . $target);
    is($hpa->{spec}{scaleTargetRef}{name}, $target,
       'the HPA scales the same one');
    ok(grep({ ($_->{resource}{name} // '') eq 'cpu' }
            @{ $hpa->{spec}{metrics} // [] }), 'the HPA follows CPU');
    unlike(join(' ', @{ (docs('k8s/kustomization.yaml'))[0]{resources}
                        // [] }),
           qr/autoscaling/, 'neither is applied by default (they would '
                            . 'fight)');

    my @t = @{ $so->{spec}{triggers} // [] };
    ok(@t && !grep({ $_->{type} ne 'redis-streams' } @t),
       'KEDA triggers: redis-streams');
    ok(grep({ defined $_->{metadata}{pendingEntriesCount} } @t),
       'one on the pending entries');

    my $backends = $secret_keys{'audex-backends'} // {};
    my ($host, $db) = (($backends->{REDIS_URL} // '')
                       =~ m{^redis://(?:[^@]*@)?([^/]+)(?:/(\d+))?});
    $host .= ':6379' if $host && $host !~ /:\d+$/;

    SKIP: {
        skip 'build/bin/audex-converter is not built', 3
            unless $workers{converter};
        my $t = $workers{converter};
        my $env = $k8s_env{converter};
        for my $tr (@t) {
            my $m = $tr->{metadata};
            my $name = $tr->{name} // '?';
            is_deeply([$m->{stream}, $m->{consumerGroup}],
                      [effective($t, $env, 'video-queue'),
                       effective($t, $env, 'group')],
                      "trigger $name: the converters' stream and group");
            is_deeply([$m->{address}, $m->{databaseIndex} // '0'],
                      [$host, $db // '0'],
                      "trigger $name: the Redis of REDIS_URL");
            my $auth = named('TriggerAuthentication',
                             $tr->{authenticationRef}{name});
            my ($ref) = @{ $auth ? $auth->{spec}{secretTargetRef} : [] };
            ok($ref && exists $secret_keys{ $ref->{name} }{ $ref->{key} },
               "trigger $name: its password is in a Secret");
        }
        my $mod = $so->{spec}{advanced}{scalingModifiers} // {};
        my %names = map { ($_->{name} // '') => 1 } @t;
        my @refs = grep { !$names{$_} }
                   (($mod->{formula} // '') =~ /([A-Za-z_]\w*)/g);
        is_deeply(\@refs, [], 'the formula names only triggers');
        is($mod->{target}, effective($t, $env, 'jobs'),
           'target per replica: the jobs one converter runs');
    }
}

done_testing();
