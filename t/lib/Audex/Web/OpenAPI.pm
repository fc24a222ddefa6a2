package Audex::Web::OpenAPI;

# docs/openapi.yaml against the live module, for t/openapi.t.
#
#     my $api = Audex::Web::OpenAPI->new;       # starts the checker
#     my ($op, @errors) = $api->check('GET', '/jobs', $res);
#     my $cov = $api->coverage;                 # operations and statuses
#     my ($rc, $out) = Audex::Web::OpenAPI::lint();
#     my $why = Audex::Web::OpenAPI::directive_missing('audex_upload;');
#
# The checker is one Python process (openapi_check.py beside this file)
# fed a JSON line per answer, so a file with a hundred requests pays for
# one interpreter and one YAML parse.

use strict;
use warnings;

use Encode ();
use File::Basename qw(dirname);
use IPC::Open2 qw(open2);
use JSON::PP ();

our $TOP = $Audex::Test::TOP;
our $SPEC = "$TOP/docs/openapi.yaml";
our $WEB = $ENV{AUDEX_WEB_DIR} || "$TOP/build/web";

my $json = JSON::PP->new->utf8->canonical;


sub new {
    my ($class) = @_;
    my $script = dirname(__FILE__) . '/openapi_check.py';
    my $pid = open2(my $out, my $in, '/usr/bin/python3', $script, $SPEC)
        or die "openapi_check.py: $!";
    return bless { pid => $pid, in => $in, out => $out }, $class;
}


sub _ask {
    my ($self, $rec) = @_;
    print { $self->{in} } $json->encode($rec), "\n";
    $self->{in}->flush;
    my $line = readline $self->{out};
    die "openapi_check.py died\n" unless defined $line;
    return $json->decode($line);
}


# Whether the answer $res (Audex::Test::http_request's) to METHOD TARGET
# conforms: the operation's name, then the reasons it does not.
sub check {
    my ($self, $method, $target, $res) = @_;

    my $body = $res->{body} // '';
    my $type = $res->{headers}{'content-type'}[0] // '';
    my $text = eval {
        Encode::decode('UTF-8', $body, Encode::FB_CROAK | Encode::LEAVE_SRC)
    };
    my $binary = !defined $text || $type =~ m{^audio/};

    my $v = $self->_ask({
        method => $method,
        target => $target,
        status => 0 + $res->{code},
        headers => $res->{headers},
        body => $binary ? '' : $text,
        body_len => length $body,
        binary => $binary ? JSON::PP::true : JSON::PP::false,
    });

    return ($v->{op} // '?', @{ $v->{errors} });
}


sub coverage {
    my ($self) = @_;
    return $self->_ask({ cmd => 'coverage' });
}


sub DESTROY {
    my ($self) = @_;
    close $self->{in} if $self->{in};
    waitpid $self->{pid}, 0 if $self->{pid};
}


# Installs the linter when missing (scripts/install-web.sh, a no-op once
# done), then runs it: its exit code and output.
sub lint {
    my ($spec) = @_;
    $spec //= $SPEC;

    system("$TOP/scripts/install-web.sh") == 0
        or return (1, "scripts/install-web.sh failed");

    local $ENV{REDOCLY_TELEMETRY} = 'off';
    local $ENV{REDOCLY_SUPPRESS_UPDATE_NOTICE} = 'true';
    local $ENV{NO_COLOR} = '1';

    my $cli = "$WEB/node_modules/\@redocly/cli/bin/cli.js";
    my $out = `node '$cli' lint --extends recommended-strict --format stylish '$spec' 2>&1`;
    return ($? >> 8, $out);
}


# undef when nginx knows the location-level directive line $line, else
# the reason it does not (nginx -t's complaint).
sub directive_missing {
    my ($line) = @_;
    my $root = Audex::Test::servroot();
    my $conf = "$root/conf/probe.conf";

    open my $fh, '>', $conf or die "$conf: $!";
    print $fh <<"EOF_CONF";
load_module $Audex::Test::MODULE;
pid $root/logs/probe.pid;
error_log $root/logs/probe.log;
thread_pool audex threads=1;
events { }
http {
    audex_thread_pool audex;
    audex_jwt_key HS256 $ENV{TEST_NGINX_JWT_SECRET_FILE};
    server {
        listen 127.0.0.1:1;
        location /probe { $line }
    }
}
EOF_CONF
    close $fh;

    my $out = `$Audex::Test::NGINX -p '$root/' -c '$conf' -t 2>&1`;
    return undef if $? == 0;

    # "[emerg] 123#123: unknown directive "x" in /path:11"
    my ($why) = $out =~ /\[emerg\]\s*(?:\d+#\d+:\s*)?(.*?)(?: in \S+:\d+)?$/m;
    return $why // $out;
}

1;
