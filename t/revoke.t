# Revoked tokens: POST /logout (audex_logout) revokes the token it is sent
# with, audex-user del, disable, passwd and admin revoke the tokens a user
# holds.  Every nginx worker, of every nginx instance, reads the revoked
# list from Redis every second: here two nginx instances with two
# workers each, on the same backends.

use lib 't/lib';
use Audex::Test;
use Audex::Backend qw(free_port);
use Time::HiRes qw(sleep time);

our $TOP = $Audex::Test::TOP;

# method, port, path, token: [status, body]
sub req {
    my ($method, $port, $path, $token) = @_;
    my @auth = $token ? ('-H', "Authorization: Bearer $token") : ();
    open my $c, '-|', 'curl', '-s', '-X', $method, @auth,
        '-w', '\n%{http_code}', "http://127.0.0.1:$port$path"
        or die "curl: $!";
    my $out = do { local $/; <$c> };
    close $c;
    my ($body, $code) = $out =~ /\A(.*)\n(\d+)\z/s;
    return [$code // 0, $body // ''];
}

sub login {
    my ($email, $pw) = @_;
    my $out = `curl -s -u '$email:$pw' -H 'Accept: text/plain' -X POST http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/login`;
    return $out =~ /^[\w-]+\.[\w-]+\.[\w-]+$/ ? $out : die "login: $out";
}

sub user_cli {
    local $ENV{MONGODB_URI} = $ENV{TEST_NGINX_MONGODB_URI};
    local $ENV{REDIS_URL} = $ENV{TEST_NGINX_REDIS_URL};
    my $in = shift;
    open my $fh, '|-', "$TOP/build/bin/audex-user @_ >/dev/null"
        or die "audex-user: $!";
    print $fh $in if defined $in;
    close $fh or die "audex-user @_ failed: $?";
}

# the answers to $token on each port, $n times each, until they are all
# $want (or 5 s passed): 1 when they were
sub settles {
    my ($token, $want, @ports) = @_;
    my $end = time + 5;
    while (time < $end) {
        my $all = 1;
        for my $p (@ports) {
            for (1 .. 4) {
                $all = 0 if req('GET', $p, '/app', $token)->[0] != $want;
            }
        }
        return 1 if $all;
        sleep 0.1;
    }
    return 0;
}

# a token of PyJWT's with these extra claims
sub tok {
    return 'Authorization: Bearer ' . Audex::Test::pyjwt_encode(
        "{'sub': '64b000000000000000000009', 'email': 'x\@example.com', "
        . "'exp': now + 60, $_[0]}", $ENV{TEST_NGINX_JWT_SECRET_FILE});
}

our $conf = <<'EOF';
location = /login { audex_login; }
location = /logout { audex_auth on; audex_logout; }
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
EOF

run_tests();

__DATA__

=== TEST 1: revocation across two nginx instances of two workers each
--- init
Audex::Test::add_user('rev@example.com', 'pw one');
Audex::Test::add_user('other@example.com', 'pw other');
--- main_config
worker_processes 2;
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config eval: $::conf
--- request
GET /echo
--- error_code: 200
--- check
my $p1 = $ENV{TEST_NGINX_SERVER_PORT};
my $second = Audex::Test::nginx_instance();
my $p2 = $second->{port};
my @both = ($p1, $p2);

my $t1 = ::login('rev@example.com', 'pw one');
my $t2 = ::login('rev@example.com', 'pw one');
my $other = ::login('other@example.com', 'pw other');
ok(::settles($t1, 200, @both), 'a fresh token works on both instances');

# POST /logout: that token, on every worker of both, within a second
my $r = ::req('POST', $p1, '/logout', $t1);
is($r->[0], 204, 'POST /logout: 204') or diag($r->[1]);
ok(::settles($t1, 401, @both), '... and by every worker of both instances');
like(::req('GET', $p2, '/app', $t1)->[1], qr/^\{"error":"token revoked"\}$/,
     '... saying it was revoked');
ok(::settles($t2, 200, @both), "the user's other token still works");
is(::req('POST', $p2, '/logout', $t1)->[0], 401,
   'logging out a revoked token again: 401');

# audex-user disable: every token of the user issued before
::user_cli(undef, 'disable', 'rev@example.com');
ok(::settles($t2, 401, @both), 'disable revokes the tokens the user holds');
ok(::settles($other, 200, @both), "another user's token still works");

# a new password: the old tokens go, a login after it works at once
::user_cli(undef, 'enable', 'rev@example.com');
::user_cli("pw two\n", 'passwd', 'rev@example.com');
my $t3 = ::login('rev@example.com', 'pw two');
ok(::settles($t3, 200, @both), 'a token from a login after passwd works');

# Redis away: the last list stays in use, nothing else changes
Audex::Test::backend_stop('redis');
sleep 1.5;
ok(::settles($t3, 200, @both), 'Redis stopped: tokens still checked, '
   . 'valid ones accepted');
ok(::settles($t2, 401, @both), '... revoked ones still refused');
Audex::Test::backend_start('redis');
Audex::Test::nginx_instance_stop($second);
--- error_log
audex: logout: token
audex: token of "rev@example.com" refused: revoked
audex: revoked tokens cannot be read, the last list stays in use



=== TEST 2: POST /logout: a token it can revoke, and nothing else
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config eval: $::conf
--- request eval
["POST /logout", "GET /logout", "POST /logout"]
--- more_headers eval
["", ::tok("'jti': 'j1'"), ::tok("'iat': now")]
--- error_code eval
[401, 405, 400]
--- response_body eval
[qq{{"error":"token required"}\n}, qq{{"error":"method not allowed"}\n},
 qq{{"error":"this token has no jti: only its user can be revoked"}\n}]



=== TEST 3: audex_logout without audex_auth fails nginx -t
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /logout { audex_logout; }
--- must_die
--- error_log
audex_logout in location "/logout" needs "audex_auth on": it acts for the token's user



=== TEST 4: one worker refuses a token it revoked from the next request on
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config eval: $::conf
--- request eval
["GET /app", "POST /logout", "GET /app", "POST /logout"]
--- more_headers eval
[::tok("'jti': 'j4', 'iat': now"), ::tok("'jti': 'j4', 'iat': now"), ::tok("'jti': 'j4', 'iat': now"), ::tok("'jti': 'j4', 'iat': now")]
--- error_code eval
[200, 204, 401, 401]
--- response_body eval
["app\n", "", qq{{"error":"token revoked"}\n}, qq{{"error":"token revoked"}\n}]



=== TEST 5: a logged-out token stays refused after its exp, while the leeway would still accept it
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config eval: $::conf
--- request
GET /echo
--- error_code: 200
--- check
my $p = $ENV{TEST_NGINX_SERVER_PORT};
my $t = Audex::Test::pyjwt_encode("{'sub': '64b0000000000000000000d1', "
    . "'email': 'd\@x', 'iat': now, 'exp': now + 3, 'jti': 'jti-leeway'}",
    $ENV{TEST_NGINX_JWT_SECRET_FILE});
my @c = (::req('GET', $p, '/app', $t)->[0], ::req('POST', $p, '/logout', $t)->[0],
         ::req('GET', $p, '/app', $t)->[0]);
sleep 5;        # past exp, inside the default 30 s leeway
push @c, ::req('GET', $p, '/app', $t)->[0];
is("@c", "200 204 401 401", 'refused after logout, and still after exp');
