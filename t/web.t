# The web page (html/), the API description and Swagger UI, served by
# nginx with the location blocks of conf/nginx.conf.example, and the page
# driven end to end in Debian's headless Chromium (playwright-core,
# t/lib/Audex/Web/e2e.js): log in, the job list, an upload through tus
# (/files/, tus-js-client) followed to its MP3 download, and a bigger
# upload, through a slow TCP relay, whose connection is taken away three
# times (offline, reset, a reload of the page): it must go on where it
# stopped, which the PATCHes nginx logs tell (bytes sent twice: at most
# one GridFS chunk), and what GridFS holds must be the file, byte for
# byte, with one job.  Screenshots: build/t/web/.

use lib 't/lib';
use Audex::Test;
use Audex::Media qw(make_media slurp);
use Digest::SHA qw(sha256_hex);
use Audex::Web::OpenAPI;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);

our $TOP = $Audex::Test::TOP;
our ($video, $big, $upload_missing, %data);

# the bytes a GridFS chunk holds (AUDEX_GRIDFS_CHUNK)
our $CHUNK = 255 * 1024;

our $http = <<'EOF_HTTP';
include /etc/nginx/mime.types;
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_link_secret $TEST_NGINX_SERVROOT/conf/link.secret;
log_format tus '$request_method $uri $status $request_length '
               '$http_upload_offset $content_length';
EOF_HTTP

# as in conf/nginx.conf.example, with this tree's paths
our $web = <<'EOF_WEB';
location / {
    root $TEST_NGINX_TOP/html;
    index index.html;
    try_files $uri $uri/ =404;
    add_header Content-Security-Policy "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'" always;
    add_header X-Content-Type-Options nosniff always;
    add_header Cache-Control no-cache;
}

location = /tus.min.js {
    alias $TEST_NGINX_WEB/node_modules/tus-js-client/dist/tus.min.js;
    add_header Content-Security-Policy "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'" always;
    add_header X-Content-Type-Options nosniff always;
    add_header Cache-Control no-cache;
}

location = /openapi.yaml {
    alias $TEST_NGINX_TOP/docs/openapi.yaml;
    types { application/yaml yaml; }
    add_header Cache-Control no-cache;
}

location = /docs {
    return 301 /docs/;
}

location /docs/ {
    alias $TEST_NGINX_WEB/node_modules/swagger-ui-dist/;
    add_header Content-Security-Policy "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'" always;
    add_header X-Content-Type-Options nosniff always;
}

location = /docs/swagger-initializer.js {
    alias $TEST_NGINX_TOP/html/swagger-initializer.js;
    add_header Content-Security-Policy "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'" always;
    add_header X-Content-Type-Options nosniff always;
}
EOF_WEB

our $api = <<'EOF_API';
location = /login { audex_login; }
location = /logout { audex_auth on; audex_logout; }
location /jobs { audex_auth on; audex_jobs; }
location = /download { audex_auth optional; audex_download; }
location = /healthz { audex_healthz; }
EOF_API

# every request of a tus upload in logs/tus.log, for the bytes sent twice
our $upload = 'location /files/ { audex_auth on; audex_tus; '
            . 'access_log logs/tus.log tus; }';


# Starts the converter when uploads exist: their jobs must finish.
sub start_converter {
    my $bin = ($ENV{AUDEX_BIN_DIR} || "$TOP/build/bin") . '/audex-converter';
    die "$bin is missing: uploads exist, their jobs need it\n" unless -x $bin;

    my $log = "$ENV{TEST_NGINX_SERVROOT}/logs/converter.log";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        $ENV{MONGODB_URI} = $ENV{TEST_NGINX_MONGODB_URI};
        $ENV{REDIS_URL} = $ENV{TEST_NGINX_REDIS_URL};
        $ENV{METRICS_PORT} = 0;
        exec $bin, 'run';
        # not exit: the harness's END would stop nginx and the backends
        print STDERR "exec $bin: $!\n";
        POSIX::_exit(127);
    }
    return $pid;
}


sub stop_converter {
    my ($pid) = @_;
    kill 'TERM', $pid;
    for (1 .. 300) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.1;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
}


# Runs e2e.js; its lines become tests.
sub browser {
    my $out = "$TOP/build/t/web";
    my $ops = () = do {
        local (@ARGV, $/) = ($Audex::Web::OpenAPI::SPEC);
        <>;
    } =~ /^\s+operationId:/mg;

    my $conv = $upload_missing ? undef : start_converter();

    local $ENV{AUDEX_WEB_DIR} = $Audex::Web::OpenAPI::WEB;
    my @cmd = ('node', "$TOP/t/lib/Audex/Web/e2e.js",
               "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}",
               'web@example.com', 'pw-web-7', $out, $ops,
               $upload_missing ? () : ($video, $big));
    open my $fh, '-|', @cmd or die "node: $!";
    my $n = 0;
    while (my $line = <$fh>) {
        chomp $line;
        if ($line =~ /^ok (.*)/) {
            ok(1, "browser: $1");
        } elsif ($line =~ /^not ok (.*?)(?: # (.*))?$/) {
            ok(0, "browser: $1");
            diag($2) if defined $2;
        } elsif ($line =~ /^data (\S+) (.*)/) {
            $data{$1} = $2;
            diag($line);
            next;
        } elsif ($line =~ /^skip (.*)/) {
            Test::More->builder->skip("browser: $1");
            diag("skipping $1");
        } else {
            diag($line);
            next;
        }
        $n++;
    }
    close $fh;
    my $rc = $? >> 8;

    stop_converter($conv) if $conv;

    check_resumed() unless $upload_missing;

    ok($n > 20, "the browser ran its checks ($n)");
    ok($rc == 0 || $rc == 1, "node exited normally ($rc)");
    diag("screenshots: $out/*.png");
}


run_tests(setup => sub {
    $ENV{TEST_NGINX_TOP} = $TOP;
    $ENV{TEST_NGINX_WEB} = $Audex::Web::OpenAPI::WEB;

    is(system("$TOP/scripts/install-web.sh"), 0,
       'npm packages installed (scripts/install-web.sh)');
    ok(-x ($ENV{AUDEX_CHROMIUM} || '/usr/bin/chromium'),
       "Debian's chromium is installed");

    my $root = $ENV{TEST_NGINX_SERVROOT};
    open my $fh, '>', "$root/conf/link.secret" or die;
    print $fh 'W' x 40;
    close $fh;

    mkdir "$TOP/build/t/web";
    unlink glob "$TOP/build/t/web/*.png";
    unlink "$TOP/build/t/web/download.mp3";

    add_user('web@example.com', 'pw-web-7');

    $upload_missing = Audex::Web::OpenAPI::directive_missing('audex_auth on; audex_tus;');

    # uploads exist: if nginx -t refuses the directive the build is broken
    ok(!$upload_missing, 'the module takes audex_tus')
        or diag($upload_missing);
    return if $upload_missing;

    $video = make_media("$TOP/build/t/web", {
        file => 'clip.mp4', seconds => 4, video => 'libx264',
        audio => ['aac 44100 2 96k'],
    });

    # two seconds of raw video: 5.8 MB, 23 GridFS chunks
    $big = make_media("$TOP/build/t/web", {
        file => 'big.mkv', seconds => 2, video => 'rawvideo',
        audio => ['aac 44100 2 96k'],
    });
});


# The bytes each PATCH of BIG's upload brought (its body, as much of it as
# arrived), from logs/tus.log: $request_length less the header, which is
# that of a PATCH that completed (the same headers, the same browser),
# give or take the digits of Upload-Offset and Content-Length.  The
# uploads are those the browser sent BIG's PATCHes to.  Returns
# [offset, status, bytes] for each, in order.
sub big_patches {
    my %uploads = map { $_ => 1 } split /,/, $data{uploads} // '';
    my @p;
    open my $fh, '<', "$ENV{TEST_NGINX_SERVROOT}/logs/tus.log" or return ();
    while (<$fh>) {
        my ($m, $uri, $status, $len, $off, $cl) = split ' ';
        next unless $m eq 'PATCH' && $uploads{$uri} && $off =~ /^\d+$/
                    && $cl =~ /^\d+$/;
        push @p, [$off, $status, $len, $cl];
    }
    my ($done) = grep { $_->[1] == 204 } @p or return ();
    my $head = $done->[2] - $done->[3];
    return map {
        my $digits = length($_->[0]) + length($_->[3])
                   - length($done->[0]) - length($done->[3]);
        [$_->[0], $_->[1], $_->[2] - $head - $digits]
    } @p;
}


# What the server got of BIG, against what was sent: GridFS, the job, and
# the PATCHes.
sub check_resumed {
    my $size = -s $big;
    my $job = $data{job} // '';

    ok($job =~ /^[0-9a-f]{24}$/, 'the last PATCH named the job')
        or return;

    my $s = JSON::PP::decode_json(mongo_eval(<<"PY"));
import hashlib
job = db.jobs.find_one({'_id': '$job'})
fid = job['video_fid']
data = gridfs.GridFSBucket(db, 'videos').open_download_stream(fid).read()
print(json.dumps({
    'sha256': hashlib.sha256(data).hexdigest(), 'size': len(data),
    'jobs': db.jobs.count_documents({'video_fid': fid}),
    'named': db.jobs.count_documents({'filename': 'big.mkv'}),
    'state': job['state'],
}))
PY
    is($s->{size}, $size, 'GridFS holds as many bytes as the file');
    is($s->{sha256}, sha256_hex(slurp($big)),
       '... the same bytes (SHA-256)');
    is($s->{jobs}, 1, 'exactly one job for the file');
    is($s->{named}, 1, 'and one job for big.mkv in all');
    is($s->{state}, 'done', 'the job is done');

    my @p = big_patches();
    diag(join ' | ', map { "PATCH at $_->[0]: $_->[1], $_->[2] bytes" } @p);
    # those that brought bytes; the others were refused at once (409,
    # 423: a PATCH Chromium sent again by itself on a new connection, or
    # one that came before the server had let go of the upload)
    my @data = grep { $_->[2] > 0 } @p;
    my @cut = grep { $_->[1] != 204 } @data;
    is(scalar @cut, 3, 'the upload was cut three times');
    my $sent = 0;
    $sent += $_->[2] for @p;
    my $again = $sent - $size;
    diag("bytes sent twice: $again");
    ok($again <= $CHUNK, "sent twice: $again bytes, at most a chunk "
                         . "($CHUNK)");

    # each goes on where what the one before brought ends
    for my $i (1 .. $#data) {
        my $end = $data[$i - 1][0] + $data[$i - 1][2];
        ok($data[$i][0] > 0 && $data[$i][0] >= $end - $CHUNK,
           "PATCH $i starts at $data[$i][0], where PATCH " . ($i - 1)
           . " ended ($end), less a chunk at most");
    }
}

__DATA__

=== TEST 1: the page, its icon, tus-js-client, the API description and Swagger UI are served
--- http_config eval: $::http
--- config eval: $::web . $::api . ($::upload_missing ? '' : $::upload)
--- request eval
["GET /", "GET /app.js", "GET /style.css", "GET /openapi.yaml",
 "GET /docs", "GET /docs/", "GET /docs/swagger-initializer.js",
 "GET /docs/swagger-ui-bundle.js", "GET /nope.html", "GET /favicon.ico",
 "GET /tus.min.js"]
--- error_code eval
[200, 200, 200, 200, 301, 200, 200, 200, 404, 200, 200]
--- response_headers_like eval
[
 "Content-Type: ^text/html\nContent-Security-Policy: ^default-src 'self';\nX-Content-Type-Options: nosniff",
 "Content-Type: ^application/javascript",
 "Content-Type: ^text/css",
 "Content-Type: ^application/yaml",
 "Location: /docs/\$",
 "Content-Type: ^text/html\nContent-Security-Policy: ^default-src 'self';.*frame-ancestors 'none'\nX-Content-Type-Options: nosniff",
 "Content-Type: ^application/javascript\nContent-Security-Policy: ^default-src 'self';\nX-Content-Type-Options: nosniff",
 "Content-Type: ^application/javascript\nContent-Security-Policy: ^default-src 'self';\nX-Content-Type-Options: nosniff",
 "Content-Type: ^text/html",
 "Content-Type: ^image/x-icon",
 "Content-Type: ^application/javascript\nContent-Security-Policy: ^default-src 'self';\nX-Content-Type-Options: nosniff",
]
--- response_body_like eval
[
 qr{<title>audex}, qr{tus\.Upload}, qr{\.drop}, qr{^openapi: 3\.1}m,
 qr{}, qr{swagger-initializer\.js}, qr{url: '/openapi\.yaml'},
 qr{SwaggerUIBundle}, qr{404}, qr{\A\x00\x00\x01\x00\x01\x00},
 qr{findPreviousUploads},
]



=== TEST 2: in Chromium: log in, the job list, uploads to their MP3 (one cut three times), Swagger UI
--- http_config eval: $::http
--- config eval: $::web . $::api . ($::upload_missing ? '' : $::upload)
--- request
GET /healthz
--- error_code: 200
--- check
::browser();
--- timeout: 30
