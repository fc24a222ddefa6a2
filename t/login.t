# POST /login: HTTP Basic in, a signed JWT out.

use lib 't/lib';
use Audex::Test;
use MIME::Base64 qw(encode_base64);

sub basic { "Authorization: Basic " . encode_base64(join(':', @_), '') }

sub user_cli {
    local $ENV{MONGODB_URI} = $ENV{TEST_NGINX_MONGODB_URI};
    local $ENV{REDIS_URL} = $ENV{TEST_NGINX_REDIS_URL};
    system("$Audex::Test::TOP/build/bin/audex-user", @_) == 0
        or die "audex-user @_ failed";
}

# PyJWT's view of the token in a JSON answer
sub claims_of {
    my ($body) = @_;
    my ($t) = $body =~ /"token":"([^"]+)"/ or return "no token in $body";
    return Audex::Test::pyjwt_decode($t, $ENV{TEST_NGINX_JWT_SECRET_FILE});
}

run_tests();

__DATA__

=== TEST 1: setup: accounts (plain, admin, disabled)
--- init
Audex::Test::add_user('ann@example.com', 'ann pw');
Audex::Test::add_user('root@example.com', 'root pw', '--admin');
Audex::Test::add_user('gone@example.com', 'gone pw');
::user_cli('disable', 'gone@example.com');
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /login { audex_login; }
--- request
POST /login
--- more_headers eval
::basic('ann@example.com', 'ann pw')
--- error_code: 200
--- response_headers
Content-Type: application/json
Cache-Control: no-store
--- response_body_like
^\{"token":"[\w-]+\.[\w-]+\.[\w-]+","token_type":"Bearer","expires_in":86400\}$
--- error_log
audex: login of "ann@example.com"



=== TEST 2: the token verifies in PyJWT with the secret file, with every claim
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_jwt_lifetime 1h;
--- config
location = /login { audex_login; }
--- request
POST /login
--- more_headers eval
::basic('ann@example.com', 'ann pw')
--- error_code: 200
--- check
    my $c = ::claims_of($res->{body});
    Audex::Test::like($c, qr/"admin": false/, "admin claim false");
    Audex::Test::like($c, qr/"email": "ann\@example.com"/, "email claim");
    Audex::Test::like($c, qr/"username": "ann\@example.com"/, "username claim");
    Audex::Test::like($c, qr/"sub": "[0-9a-f]{24}"/, "sub is the user id");
    Audex::Test::like($c, qr/"jti": "[0-9a-f]{32}"/, "jti claim");
    my ($iat) = $c =~ /"iat": (\d+)/;
    my ($exp) = $c =~ /"exp": (\d+)/;
    Audex::Test::is($exp - $iat, 3600, "exp = iat + audex_jwt_lifetime");



=== TEST 3: Accept: text/plain answers the bare token, as the old gateway did
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /login { audex_login; }
--- request
POST /login
--- more_headers eval
::basic('ann@example.com', 'ann pw') . "\nAccept: text/plain"
--- error_code: 200
--- response_headers
Content-Type: text/plain
--- response_body_like
^[\w-]+\.[\w-]+\.[\w-]+$



=== TEST 4: the login token opens a protected location; admin flag carried
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /login { audex_login; }
location /app {
    audex_auth admin;
    proxy_set_header X-Admin $audex_user_admin;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /echo { return 200 "admin=$http_x_admin\n"; }
--- check
    my ($t) = $res->{body} =~ /"token":"([^"]+)"/;
    my $r = Audex::Test::http_request(
        "GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Authorization: Bearer $t\r\n\r\n");
    Audex::Test::is($r->{code}, 200, "admin token opens an admin location");
    Audex::Test::is($r->{body}, "admin=1\n", "admin variable");
--- request
POST /login
--- more_headers eval
::basic('root@example.com', 'root pw')
--- error_code: 200



=== TEST 5: the email is case-insensitive
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /login { audex_login; }
--- request
POST /login
--- more_headers eval
::basic('Ann@Example.COM', 'ann pw')
--- error_code: 200



=== TEST 6: wrong password, unknown user, disabled user, no credentials: the same 401
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /login { audex_login; }
--- request eval
["POST /login", "POST /login", "POST /login", "POST /login", "POST /login"]
--- more_headers eval
[
    ::basic('ann@example.com', 'wrong'),
    ::basic('nobody@example.com', 'ann pw'),
    ::basic('gone@example.com', 'gone pw'),
    "",
    "Authorization: Basic !!notbase64",
]
--- error_code eval
[401, 401, 401, 401, 401]
--- response_headers eval
[('WWW-Authenticate: Basic realm="audex"') x 5]
--- response_body eval
[(qq{{"error":"invalid credentials"}\n}) x 5]
--- error_log
login of "ann@example.com" refused
login of "nobody@example.com" refused: unknown user
login of "gone@example.com" refused: account disabled
audex: login without Basic credentials
--- no_error_log
ann pw
wrong



=== TEST 7: other methods: 405
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /login { audex_login; }
--- request
GET /login
--- error_code: 405
--- response_headers
Allow: POST
--- response_body
{"error":"method not allowed"}



=== TEST 8: MongoDB down: 503
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_backend_timeout 1s;
--- config
location = /login { audex_login; }
--- down: mongo
--- request
POST /login
--- more_headers eval
::basic('ann@example.com', 'ann pw')
--- error_code: 503
--- response_body
{"error":"database unavailable"}
--- error_log
audex: login: mongo:



=== TEST 9: audex_login needs a key that can sign
--- init
system("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null"
       . " | openssl pkey -pubout -out $ENV{TEST_NGINX_SERVROOT}/conf/ec.pub") == 0
    or die;
--- http_config
audex_jwt_key ES256 $TEST_NGINX_SERVROOT/conf/ec.pub;
--- config
location = /login { audex_login; }
--- must_die
--- error_log
needs a private key in audex_jwt_key to sign tokens



=== TEST 10: the event loop serves other requests while logins hash
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /login { audex_login; }
location = /other { return 200 "other\n"; }
--- check
    # eight logins at once (4 pool threads, argon2id 64 MiB each), then
    # a plain request: it must be answered while logins are still hashing
    my @socks;
    my $auth = ::basic('ann@example.com', 'ann pw');
    for (1 .. 8) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                PeerPort => $ENV{TEST_NGINX_SERVER_PORT}) or die $!;
        print $s "POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               . "$auth\r\n\r\n";
        push @socks, $s;
    }
    my $r = Audex::Test::http_request(
        "GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    Audex::Test::is($r->{code}, 200, "other request answered");
    my $pending = 0;
    for my $s (@socks) {
        $s->blocking(0);
        my $n = sysread($s, my $buf, 1);
        $pending++ unless defined $n && $n > 0;
    }
    Audex::Test::ok($pending > 0,
        "answered while $pending of 8 logins were still hashing");
    for my $s (@socks) {
        $s->blocking(1);
        local $/;
        my $resp = <$s>;
        Audex::Test::like($resp, qr{^HTTP/1.1 200}, "a concurrent login");
    }
--- request
GET /other
--- error_code: 200



=== TEST 11: a NUL or a control character in the user name, a NUL in the password: 401 naming it, no login as the name before the NUL
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location = /login { audex_login; }
--- request eval
[("POST /login") x 5]
--- more_headers eval
[
    ::basic("ann\@example.com\0x", 'ann pw'),
    ::basic("ann\@example.com\r\nX-Audex-Admin: 1", 'ann pw'),
    ::basic("ann\@example.com\x7f", 'ann pw'),
    ::basic('ann@example.com', "ann pw\0x"),
    ::basic('ann@example.com', "ann\tpw"),
]
--- error_code eval
[401, 401, 401, 401, 401]
--- response_headers eval
[('WWW-Authenticate: Basic realm="audex"') x 5]
--- response_body eval
[
    (qq{{"error":"invalid credentials: control characters in the user name"}\n}) x 3,
    qq{{"error":"invalid credentials: NUL byte in the password"}\n},
    qq{{"error":"invalid credentials"}\n},
]
--- error_log
audex: login refused: invalid credentials: control characters in the user name
audex: login refused: invalid credentials: NUL byte in the password
--- no_error_log
login of "ann@example.com",
X-Audex-Admin
