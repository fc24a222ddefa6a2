# audex_auth: JWT validation in any location, ours or proxied.
# Tokens are made with PyJWT, an implementation independent of ours.

use lib 't/lib';
use Audex::Test;
use File::Temp qw(tempdir);

# keys for RS256 and ES256, made once for this file
my $keys = tempdir('audex-keys-XXXXXX', TMPDIR => 1, CLEANUP => 1);
for my $cmd (
    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
        . " -out $keys/rsa.pem",
    "openssl pkey -in $keys/rsa.pem -pubout -out $keys/rsa.pub",
    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
        . " -out $keys/rsa2.pem",
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
        . " -out $keys/ec.pem",
    "openssl pkey -in $keys/ec.pem -pubout -out $keys/ec.pub",
    "head -c 40 /dev/urandom | base64 > $keys/other.secret",
    "printf short > $keys/short.secret",
)
{
    system("$cmd 2>/dev/null") == 0 or die "$cmd failed";
}
$ENV{TEST_NGINX_KEYS} = $keys;

# a token from PyJWT; claims as a Python dict, `now` is the time
sub tok {
    my ($claims, %o) = @_;
    return Audex::Test::pyjwt_encode($claims,
        $o{key} // $ENV{TEST_NGINX_JWT_SECRET_FILE}, $o{alg}, $o{headers});
}

sub bearer { "Authorization: Bearer " . tok(@_) }

our $user = '"sub": "64b000000000000000000001", "email": "ann@example.com"';

# HTTP Basic credentials of auth_basic_user_file (ann:secret)
our $basic = 'Authorization: Basic YW5uOnNlY3JldA==';

run_tests(setup => sub {
    my $root = $ENV{TEST_NGINX_SERVROOT};
    for (["conf/htpasswd", "ann:{PLAIN}secret\n"],
         ["html/custom.json", qq{{"error":"custom"}\n}])
    {
        open my $fh, '>', "$root/$_->[0]" or die "$_->[0]: $!";
        print $fh $_->[1];
        close $fh;
    }
});

__DATA__

=== TEST 1: no token: 401, a Bearer challenge without an error code
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request
GET /app
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="audex"
Content-Type: application/json
--- response_body
{"error":"token required"}
--- error_log
audex: no bearer token



=== TEST 2: a valid token reaches the proxied app, with the user's id
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app {
    audex_auth on;
    proxy_set_header X-User-Id $audex_user_id;
    proxy_set_header X-User-Email $audex_user_email;
    proxy_set_header X-User-Admin $audex_user_admin;
    proxy_set_header X-Claim-Jti $audex_jwt_claim_jti;
    proxy_set_header Authorization "";
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /echo {
    return 200 "id=$http_x_user_id email=$http_x_user_email admin=$http_x_user_admin jti=$http_x_claim_jti auth=$http_authorization\n";
}
--- request
GET /app
--- more_headers eval
::bearer("{$::user, 'exp': now + 60, 'jti': 'j-1'}")
--- error_code: 200
--- response_body
id=64b000000000000000000001 email=ann@example.com admin=0 jti=j-1 auth=
--- no_error_log
audex: invalid token
audex: no bearer token



=== TEST 3: expired beyond the leeway: 401 invalid_token
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_jwt_leeway 30s;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request
GET /app
--- more_headers eval
::bearer("{$::user, 'exp': now - 100}")
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="audex", error="invalid_token"
--- response_body_like
^\{"error":"[^"]*expired[^"]*"\}$
--- error_log
audex: invalid token



=== TEST 4: expired within the leeway: accepted
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_jwt_leeway 30s;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request
GET /app
--- more_headers eval
::bearer("{$::user, 'exp': now - 10}")
--- error_code: 200
--- response_body
app



=== TEST 5: not yet valid (nbf in the future): 401
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request
GET /app
--- more_headers eval
::bearer("{$::user, 'exp': now + 600, 'nbf': now + 300}")
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="audex", error="invalid_token"



=== TEST 6: a token without exp: 401
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request
GET /app
--- more_headers eval
::bearer("{$::user}")
--- error_code: 401



=== TEST 7: signed with another secret: 401
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request
GET /app
--- more_headers eval
::bearer("{$::user, 'exp': now + 60}", key => "$ENV{TEST_NGINX_KEYS}/other.secret")
--- error_code: 401
--- response_body_like
signature



=== TEST 8: alg none: 401
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request
GET /app
--- more_headers eval
"Authorization: Bearer " . Audex::Test::b64url('{"alg":"none","typ":"JWT"}')
. "." . Audex::Test::b64url('{"sub":"x","email":"e@x","exp":' . (time + 60) . '}')
. "."
--- error_code: 401
--- response_body_like
algorithm



=== TEST 9: RS256 key: an HS256 token signed with the public key PEM: 401
--- http_config
audex_jwt_key RS256 $TEST_NGINX_KEYS/rsa.pub;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request
GET /app
--- more_headers eval
use Digest::SHA qw(hmac_sha256);
my $pem = do { local (@ARGV, $/) = ("$ENV{TEST_NGINX_KEYS}/rsa.pub"); <> };
my $si = Audex::Test::b64url('{"alg":"HS256","typ":"JWT"}') . "."
       . Audex::Test::b64url('{"sub":"x","email":"e@x","exp":' . (time + 60) . '}');
"Authorization: Bearer $si." . Audex::Test::b64url(hmac_sha256($si, $pem))
--- error_code: 401
--- response_body_like
algorithm



=== TEST 10: RS256 with a public key: PyJWT's RS256 token is accepted
--- http_config
audex_jwt_key RS256 $TEST_NGINX_KEYS/rsa.pub;
--- config
location /app { audex_auth on; proxy_set_header X-U $audex_user_email; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "user=$http_x_u\n"; }
--- request
GET /app
--- more_headers eval
::bearer("{$::user, 'exp': now + 60}", key => "$ENV{TEST_NGINX_KEYS}/rsa.pem", alg => 'RS256')
--- error_code: 200
--- response_body
user=ann@example.com



=== TEST 11: RS256 signed by another RSA key: 401
--- http_config
audex_jwt_key RS256 $TEST_NGINX_KEYS/rsa.pub;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request
GET /app
--- more_headers eval
::bearer("{$::user, 'exp': now + 60}", key => "$ENV{TEST_NGINX_KEYS}/rsa2.pem", alg => 'RS256')
--- error_code: 401



=== TEST 12: ES256: PyJWT's token accepted
--- http_config
audex_jwt_key ES256 $TEST_NGINX_KEYS/ec.pub;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request
GET /app
--- more_headers eval
::bearer("{$::user, 'exp': now + 60}", key => "$ENV{TEST_NGINX_KEYS}/ec.pem", alg => 'ES256')
--- error_code: 200
--- response_body
app



=== TEST 13: malformed tokens: two parts, bad base64, bad JSON, 16 KB; the error names the part
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
large_client_header_buffers 4 32k;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request eval
["GET /app", "GET /app", "GET /app", "GET /app", "GET /app", "GET /app"]
--- more_headers eval
my $h = Audex::Test::b64url('{"alg":"HS256","typ":"JWT"}');
[
    "Authorization: Bearer $h." . Audex::Test::b64url('{"sub":"x"}'),
    "Authorization: Bearer $h.\@\@\@\@.abc",
    "Authorization: Bearer $h." . Audex::Test::b64url('{"sub":') . ".abc",
    "Authorization: Bearer " . Audex::Test::b64url('{"alg":') . ".e30.abc",
    "Authorization: Bearer $h." . ("A" x 16384) . ".abc",
    "Authorization: Basic YTpi",
]
--- error_code eval
[401, 401, 401, 401, 401, 401]
--- response_headers eval
[
    'WWW-Authenticate: Bearer realm="audex", error="invalid_token"',
    'WWW-Authenticate: Bearer realm="audex", error="invalid_token"',
    'WWW-Authenticate: Bearer realm="audex", error="invalid_token"',
    'WWW-Authenticate: Bearer realm="audex", error="invalid_token"',
    'WWW-Authenticate: Bearer realm="audex", error="invalid_token"',
    'WWW-Authenticate: Bearer realm="audex", error="invalid_token"',
]
--- response_body eval
[
    qq{{"error":"malformed token: not three base64url parts"}\n},
    qq{{"error":"token signature does not verify"}\n},
    qq{{"error":"token signature does not verify"}\n},
    qq{{"error":"malformed token: JOSE header is not a JSON object with alg"}\n},
    qq{{"error":"token too long"}\n},
    qq{{"error":"token required"}\n},
]



=== TEST 14: issuer and audience, when configured, must match
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
audex_jwt_issuer https://audex.example;
audex_jwt_audience audex-api;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "app\n"; }
--- request eval
["GET /app", "GET /app", "GET /app", "GET /app"]
--- more_headers eval
[
    ::bearer("{$::user, 'exp': now + 60, 'iss': 'https://audex.example', 'aud': 'audex-api'}"),
    ::bearer("{$::user, 'exp': now + 60, 'iss': 'https://audex.example', 'aud': ['x', 'audex-api']}"),
    ::bearer("{$::user, 'exp': now + 60, 'iss': 'https://evil.example', 'aud': 'audex-api'}"),
    ::bearer("{$::user, 'exp': now + 60, 'iss': 'https://audex.example', 'aud': 'other'}"),
]
--- error_code eval
[200, 200, 401, 401]



=== TEST 15: admin locations: 403 for a user, 200 for an admin
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /admin { audex_auth admin; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { return 200 "admin area\n"; }
--- request eval
["GET /admin", "GET /admin"]
--- more_headers eval
[
    ::bearer("{$::user, 'exp': now + 60, 'admin': False}"),
    ::bearer("{$::user, 'exp': now + 60, 'admin': True}"),
]
--- error_code eval
[403, 200]
--- response_body eval
[qq{{"error":"admin only"}\n}, "admin area\n"]
--- error_log
is not an admin



=== TEST 16: audex_auth off in a nested location; inherited otherwise
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
audex_auth on;
location /public { audex_auth off; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /private { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo { audex_auth off; return 200 "app\n"; }
--- request eval
["GET /public", "GET /private"]
--- error_code eval
[200, 401]



=== TEST 17: audex_auth without a key fails nginx -t
--- config
location /app { audex_auth on; }
--- must_die
--- error_log
audex_auth needs audex_jwt_key at http level



=== TEST 18: a secret under 32 bytes fails nginx -t, naming the directive
--- http_config
audex_jwt_key HS256 $TEST_NGINX_KEYS/short.secret;
--- must_die
--- error_log
audex_jwt_key:



=== TEST 19: an unknown algorithm fails nginx -t
--- http_config
audex_jwt_key none $TEST_NGINX_JWT_SECRET_FILE;
--- must_die
--- error_log
audex_jwt_key: unknown algorithm "none", use HS256, RS256 or ES256



=== TEST 20: a missing key file fails nginx -t
--- http_config
audex_jwt_key RS256 /nonexistent/key.pem;
--- must_die
--- error_log
audex_jwt_key: "/nonexistent/key.pem"



=== TEST 21: allow/deny: under satisfy any a trusted address needs no token, under all a denied one is refused
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /any/trusted {
    satisfy any;
    allow 127.0.0.1;
    deny all;
    audex_auth on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /any/untrusted {
    satisfy any;
    deny all;
    audex_auth on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /all/denied {
    satisfy all;
    deny 127.0.0.1;
    audex_auth on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /all/allowed {
    allow 127.0.0.1;
    deny all;
    audex_auth on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /echo { return 200 "app\n"; }
--- request eval
["GET /any/trusted", "GET /any/untrusted", "GET /any/untrusted",
 "GET /all/denied", "GET /all/allowed", "GET /all/allowed"]
--- more_headers eval
my $t = ::bearer("{$::user, 'exp': now + 60}");
["", "", $t, $t, "", $t]
--- error_code eval
[200, 401, 200, 403, 401, 200]
--- response_headers eval
['!WWW-Authenticate', 'WWW-Authenticate: Bearer realm="audex"',
 '!WWW-Authenticate', '!WWW-Authenticate',
 'WWW-Authenticate: Bearer realm="audex"', '!WWW-Authenticate']
--- response_body_like eval
['^app$', '^\{"error":"token required"\}$', '^app$',
 '<html>', '^\{"error":"token required"\}$', '^app$']
--- error_log
access forbidden by rule
audex: no bearer token



=== TEST 22: with auth_basic: under satisfy any either credential works, under all one Authorization header cannot pass both
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
auth_basic "app";
auth_basic_user_file $TEST_NGINX_SERVROOT/conf/htpasswd;
audex_auth on;
location /any {
    satisfy any;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /all {
    satisfy all;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /echo { auth_basic off; audex_auth off; return 200 "app\n"; }
--- request eval
["GET /any", "GET /any", "GET /any", "GET /all", "GET /all"]
--- more_headers eval
my $t = ::bearer("{$::user, 'exp': now + 60}");
[$t, $::basic, "", $t, $::basic]
--- error_code eval
[200, 200, 401, 401, 401]
--- response_body_like eval
['^app$', '^app$', '^\{"error":"token required"\}$',
 '<html>', '^\{"error":"token required"\}$']
--- check
my @challenges = sort @{ $res->{headers}{'www-authenticate'} // [] };
my $want = (
    [],
    [],
    ['Basic realm="app"', 'Bearer realm="audex"'],
    ['Basic realm="app"'],
    ['Bearer realm="audex", error="invalid_token"'],
)[$i];
Audex::Test::is("@challenges", "@$want", "challenges of the refusers");



=== TEST 23: beside auth_request, under satisfy all and any
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /all {
    audex_auth on;
    auth_request /authz;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /any {
    satisfy any;
    audex_auth on;
    auth_request /authz;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location = /authz {
    internal;
    if ($http_x_authz = "yes") { return 204; }
    return 403;
}
location /echo { return 200 "app\n"; }
--- request eval
["GET /all", "GET /all", "GET /all", "GET /any", "GET /any"]
--- more_headers eval
[
    ::bearer("{$::user, 'exp': now + 60}") . "\nX-Authz: yes",
    ::bearer("{$::user, 'exp': now + 60}"),
    "X-Authz: yes",
    "X-Authz: yes",
    "",
]
--- error_code eval
[200, 403, 401, 200, 401]
--- response_body_like eval
['^app$', '<html>', '^\{"error":"token required"\}$', '^app$', '^\{"error":"token required"\}$']



=== TEST 24: error_page 401 to a named location: its answer wins
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app {
    audex_auth on;
    error_page 401 = @login;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location @login {
    default_type text/plain;
    return 200 "please log in at /login\n";
}
location /echo { return 200 "app\n"; }
--- request eval
["GET /app", "GET /app"]
--- more_headers eval
["", ::bearer("{$::user, 'exp': now + 60}")]
--- error_code eval
[200, 200]
--- response_body eval
["please log in at /login\n", "app\n"]
--- error_log
audex: no bearer token



=== TEST 25: error_page to a URI, with and without a new code, and to a URL
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app {
    audex_auth on;
    error_page 401 /custom.json;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /admin {
    audex_auth admin;
    error_page 403 =404 /custom.json;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /away {
    audex_auth on;
    error_page 401 https://login.example/;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location = /custom.json { default_type application/json; }
location /echo { return 200 "app\n"; }
--- request eval
["GET /app", "GET /admin", "GET /away"]
--- more_headers eval
["", ::bearer("{$::user, 'exp': now + 60}"), ""]
--- error_code eval
[401, 404, 302]
--- response_headers eval
[
    "WWW-Authenticate: Bearer realm=\"audex\"\nContent-Type: application/json",
    "Content-Type: application/json",
    "Location: https://login.example/",
]
--- response_body_like eval
['^\{"error":"custom"\}$', '^\{"error":"custom"\}$', '<html>']



=== TEST 26: auth_delay holds a 401, which keeps its JSON body
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app {
    audex_auth on;
    auth_delay 1s;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /echo { return 200 "app\n"; }
--- request eval
["GET /app", "GET /app"]
--- more_headers eval
["", ::bearer("{$::user, 'exp': now - 3600}")]
--- error_code eval
[401, 401]
--- response_body_like eval
['^\{"error":"token required"\}$', '^\{"error":"[^"]*expired[^"]*"\}$']
--- check
Audex::Test::ok($res->{elapsed} >= 0.9,
                "answered after auth_delay ($res->{elapsed} s)");
--- error_log
delaying unauthorized request



=== TEST 27: in front of proxy_pass, the app's own 401 goes through untouched
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app {
    audex_auth on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /trusted {
    satisfy any;
    allow 127.0.0.1;
    deny all;
    audex_auth on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /echo {
    add_header WWW-Authenticate 'Basic realm="app"' always;
    return 401 "app says no\n";
}
--- request eval
["GET /app", "GET /trusted"]
--- more_headers eval
[::bearer("{$::user, 'exp': now + 60}"), ""]
--- error_code eval
[401, 401]
--- response_headers
Content-Type: text/plain
--- response_body
app says no
--- check
Audex::Test::is(join('|', @{ $res->{headers}{'www-authenticate'} }),
                'Basic realm="app"', "only the app's challenge");



=== TEST 28: return runs before the access phase, nested or not; try_files to a named location after it
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /trap {
    audex_auth on;
    return 200 "unprotected\n";
}
location /nest {
    audex_auth on;
    location /nest/ed { return 200 "unprotected too\n"; }
}
location /safe {
    audex_auth on;
    try_files /.none @safe;
}
location @safe {
    return 200 "protected\n";
}
--- request eval
["GET /trap", "GET /nest/ed", "GET /safe", "GET /safe"]
--- more_headers eval
["", "", "", ::bearer("{$::user, 'exp': now + 60}")]
--- error_code eval
[200, 200, 401, 200]
--- response_body eval
["unprotected\n", "unprotected too\n", qq{{"error":"token required"}\n},
 "protected\n"]



=== TEST 29: satisfy any: once another module granted the request, audex_auth's refusal is forgotten
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /dir/ {
    satisfy any;
    allow 127.0.0.1;
    deny all;
    audex_auth admin;
}
location /app {
    satisfy any;
    audex_auth on;
    auth_basic "app";
    auth_basic_user_file $TEST_NGINX_SERVROOT/conf/htpasswd;
    auth_request /authz;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location = /authz { internal; return 204; }
location /echo { return 200 "app\n"; }
--- init
mkdir "$ENV{TEST_NGINX_SERVROOT}/html/dir";
--- request eval
["GET /dir/", "GET /app"]
--- more_headers eval
[::bearer("{$::user, 'exp': now + 60}"), ""]
--- error_code eval
[403, 200]
--- response_headers
!WWW-Authenticate
--- response_body_like eval
['<html>', '^app$']
--- error_log
directory index of



=== TEST 30: a claim with CR LF, a control character or a NUL never reaches a variable: 401 invalid_token, the app not reached
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app {
    audex_auth on;
    proxy_set_header X-Name $audex_jwt_claim_name;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
}
location /echo {
    access_log $TEST_NGINX_SERVROOT/logs/app30.log;
    return 200 "name=$http_x_name admin=$http_x_audex_admin\n";
}
--- request eval
["GET /app", "GET /app", "GET /app", "GET /app", "GET /app"]
--- more_headers eval
[
    ::bearer("{$::user, 'exp': now + 60, 'name': 'bob\\r\\nX-Audex-Admin: 1'}"),
    ::bearer("{$::user, 'exp': now + 60, 'name': 'bob\\x7f'}"),
    ::bearer("{$::user, 'exp': now + 60, 'name': 'bob', 'o': {'k': ['\\t']}}"),
    ::bearer("{'sub': '64b000000000000000000001\\x00x', 'email': 'ann\@example.com', 'exp': now + 60}"),
    ::bearer("{$::user, 'exp': now + 60, 'name': 'bob \\u00e9'}"),
]
--- error_code eval
[401, 401, 401, 401, 200]
--- response_body eval
[
    qq{{"error":"token claims: control characters in a string or a name"}\n},
    qq{{"error":"token claims: control characters in a string or a name"}\n},
    qq{{"error":"token claims: control characters in a string or a name"}\n},
    qq{{"error":"malformed token: claims are not a valid JSON object"}\n},
    "name=bob \x{c3}\x{a9} admin=\n",
]
--- check
Audex::Test::is($res->{headers}{'www-authenticate'}[0] // '',
                'Bearer realm="audex", error="invalid_token"',
                "request $i: invalid_token") if $i < 4;
my $log = "$ENV{TEST_NGINX_SERVROOT}/logs/app30.log";
my $n = -e $log ? (() = do { local @ARGV = $log; <> }) : 0;
Audex::Test::is($n, $i < 4 ? 0 : 1, "request $i: the app saw $n requests");



=== TEST 31: OPTIONS needs the token like any method in front of proxy_pass; the app sees it only with one
--- http_config
audex_jwt_key HS256 $TEST_NGINX_JWT_SECRET_FILE;
--- config
location /app { audex_auth on; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /admin { audex_auth admin; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo; }
location /echo {
    access_log $TEST_NGINX_SERVROOT/logs/app31.log;
    return 200 "$request_method $http_x_http_method_override\n";
}
--- request eval
[
    "OPTIONS /app\nDELETE everything",
    "OPTIONS /admin\nDELETE everything",
    "OPTIONS /app\nDELETE everything",
    "OPTIONS /admin",
    "OPTIONS /app",
]
--- more_headers eval
[
    "X-HTTP-Method-Override: DELETE",
    "X-HTTP-Method-Override: DELETE\nOrigin: http://evil.example\nAccess-Control-Request-Method: DELETE",
    "X-HTTP-Method-Override: DELETE\n" . ::bearer("{$::user, 'exp': now + 60}"),
    ::bearer("{$::user, 'exp': now + 60}"),
    "Origin: http://evil.example\nAccess-Control-Request-Method: GET",
]
--- error_code eval
[401, 401, 200, 403, 401]
--- response_body eval
[
    qq{{"error":"token required"}\n},
    qq{{"error":"token required"}\n},
    "OPTIONS DELETE\n",
    qq{{"error":"admin only"}\n},
    qq{{"error":"token required"}\n},
]
--- check
my $log = "$ENV{TEST_NGINX_SERVROOT}/logs/app31.log";
my $n = -e $log ? (() = do { local @ARGV = $log; <> }) : 0;
Audex::Test::is($n, $i < 2 ? 0 : 1, "request $i: the app saw $n requests");
