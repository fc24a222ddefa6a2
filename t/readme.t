# The README's tour, run as it stands against the whole system started
# the way `make run` starts it (scripts/run.sh), on free ports: login,
# upload, conversion, status, both downloads, the owner's email.

use strict;
use warnings;

use lib 't/lib';
use Audex::Backend qw(free_port);
use Cwd qw(abs_path getcwd);
use File::Path qw(remove_tree make_path);
use Test::More;

my $top = abs_path(getcwd());
my $run = "$top/build/t/readme";

remove_tree($run);
make_path("$run/tour");

open my $fh, '<', "$top/README.md" or die "README.md: $!";
my $readme = do { local $/; <$fh> };
close $fh;

my ($block) = $readme =~ /<!-- t\/readme.t runs this block -->\n```sh\n(.*?)```/s
    or BAIL_OUT('no block marked for t/readme.t in README.md');

my %env = (
    AUDEX_RUN_DIR                => $run,
    AUDEX_PORT                   => free_port(),
    AUDEX_REDIS_PORT             => free_port(),
    AUDEX_MONGO_PORT             => free_port(),
    AUDEX_SMTP_PORT              => free_port(),
    AUDEX_CONVERTER_METRICS_PORT => free_port(),
    AUDEX_NOTIFIER_METRICS_PORT  => free_port(),
);
local @ENV{keys %env} = values %env;
delete local $ENV{$_} for qw(MONGODB_URI REDIS_URL SMTP_URL
                             AUDEX_JWT_SECRET_FILE AUDEX_LINK_SECRET_FILE);

# END runs after the file scope has ended and with it the `local` above:
# name this run's directory and ports again, or run.sh would stop the
# default run/ (a user's own `make run`) and leave this one running
END {
    if ($run && -d $run) {
        local @ENV{keys %env} = values %env;
        system("$top/scripts/run.sh", 'stop');
    }
}

my $out = `$top/scripts/run.sh start 2>&1`;
is($?, 0, 'the system starts') or BAIL_OUT($out);

# the block as printed, in this run's directory; the ports come from its
# `. run/env` alone: the tour runs without any of the variables above
(my $script = $block) =~ s{(?<![\w/])run/}{$run/}g;
unlike($script, qr/:8080/, 'the tour names no port: run/env gives it');

symlink("$top/build", "$run/tour/build") or die "symlink: $!";

# the notifier may take a moment after "done": give the mail a few tries
$script =~ s/^grep -l (.*)$/for i in \$(seq 30); do grep -l $1 2>\/dev\/null \&\& break; sleep 1; done/m;
open my $sh, '>', "$run/tour/tour.sh" or die $!;
print $sh "set -euo pipefail\n", $script;
close $sh;

$out = do {
    local @ENV{keys %env};
    delete @ENV{keys %env};
    `cd $run/tour && bash tour.sh 2>&1`;
};
is($?, 0, 'every command of the tour succeeds') or diag($out);

like($out, qr/"job_id":"[0-9a-f]{24}","video_fid":"[0-9a-f]{24}","status_url":"\/jobs\/[0-9a-f]{24}"/,
     'the upload answers with the job');
like($out, qr/"state":"done","progress":100/, 'the job is done');

my $mp3 = "$run/tour/clip.mp3";
ok(-s $mp3, 'the MP3 was downloaded');
open my $m, '<', $mp3 or die;
read $m, my $magic, 3;
close $m;
is($magic, 'ID3', 'it starts with an ID3v2 tag');

my $dur = `ffprobe -v error -show_entries format=duration -of csv=p=0 $mp3`;
ok(abs($dur - 3) < 0.2, "its duration is the video's 3 s ($dur)");

my @mail = glob("$run/mail/new/*");
ok(@mail >= 1, 'the owner got an email');
is(sprintf('%04o', (stat "$run/mail")[2] & 07777), '0700',
   'run/mail is the owner\'s only');
is(sprintf('%04o', (stat $mail[0])[2] & 077), '0000',
   'a mail (it holds a signed link) is not readable by others') if @mail;
if (@mail) {
    open my $mf, '<', $mail[0] or die;
    my $mtext = do { local $/; <$mf> };
    close $mf;
    like($mtext, qr/^To: .*me\@example\.com/mi, 'addressed to the owner');
    require MIME::QuotedPrint;
    my ($body) = $mtext =~ /\r?\n\r?\n(.*)/s;
    $body = MIME::QuotedPrint::decode_qp($body);
    my ($link) = $body =~ m{(http://127\.0\.0\.1:$env{AUDEX_PORT}/download\?\S+)};
    ok($link, 'with a download link') or diag($body);
    my $via = `curl -s "$link" | cmp - $mp3 2>&1`;
    is($?, 0, 'the emailed link downloads the same MP3') or diag($via);
}

# the logs a person reads: audex's events, not nginx's per-connection
# lines nor FerretDB's dumps of the drivers' endSessions
{
    my $slurp = sub {
        open my $f, '<', $_[0] or return '';
        local $/;
        return scalar <$f>;
    };
    my $err = $slurp->("$run/logs/error.log");
    like($err, qr/\[notice\] .*audex: login of "me\@example\.com"/,
         'error.log has the login, at notice');
    like($err, qr/\[notice\] .*audex: upload of "clip\.mp4" by me\@example\.com stored/,
         '... and the upload');
    unlike($err, qr/keepalive|\[info\]/, '... and no info lines');
    unlike($err, qr/endSessions/, '... nor driver warnings');
    my $fdb = $slurp->("$run/logs/ferretdb.log");
    unlike($fdb, qr/endSessions|Response message/,
           "FerretDB's log has no dumps of failed commands");
}

# the tool finds the FerretDB `make run` started from AUDEX_MONGO_PORT
# alone, as `. run/env` leaves it
{
    local $ENV{MONGODB_URI};
    delete $ENV{MONGODB_URI};
    my $list = `$top/build/bin/audex-user list 2>&1`;
    is($?, 0, 'audex-user with AUDEX_MONGO_PORT only: exit 0') or diag($list);
    like($list, qr/^me\@example\.com\b/m, '... and it lists the tour\'s account');
}

# run/env holds this run's ports, and no URL (they are ours)
{
    open my $ef, '<', "$run/env" or die "$run/env: $!";
    my $envf = do { local $/; <$ef> };
    close $ef;
    like($envf, qr/^export AUDEX_URL=http:\/\/127\.0\.0\.1:$env{AUDEX_PORT}$/m,
         'run/env names the URL');
    like($envf, qr/\bAUDEX_MONGO_PORT=$env{AUDEX_MONGO_PORT}\b/,
         'run/env names the FerretDB port');
    unlike($envf, qr/MONGODB_URI|REDIS_URL/, 'and no URL of ours');
    is((stat "$run/env")[2] & 07777, 0600, 'run/env has mode 0600');
}

sub healthz {
    my ($port) = @_;
    my $b = `curl -s --max-time 2 http://127.0.0.1:$port/healthz`;
    chomp $b;
    return $b;
}

# a second start with the same settings leaves everything alone
$out = `$top/scripts/run.sh start 2>&1`;
is($?, 0, 'a second start succeeds') or diag($out);
like($out, qr/nginx already running/, '... and leaves nginx alone');
unlike($out, qr/restarting/, '... restarting nothing');

# a changed port: the nginx of the old one is restarted on the new one,
# and so is the notifier, whose links name it
{
    my $old = $env{AUDEX_PORT};
    $env{AUDEX_PORT} = $ENV{AUDEX_PORT} = free_port();
    $out = `$top/scripts/run.sh start 2>&1`;
    is($?, 0, 'a start with another AUDEX_PORT succeeds') or diag($out);
    like($out, qr/nginx runs with other settings \(port $old\b.*-> port $env{AUDEX_PORT}\b.*restarting it/,
         '... says nginx runs on the old port and restarts it');
    like($out, qr/notifier runs with other settings/, '... and the notifier');
    is(healthz($env{AUDEX_PORT}), '{"mongo":"ok","redis":"ok"}',
       'healthy on the new port');
    is(healthz($old), '', 'nothing answers on the old one');
}

# MONGODB_URI exported with the value of our own FerretDB, after a stop:
# make run starts FerretDB rather than taking it for a server of yours
{
    $out = `$top/scripts/run.sh stop 2>&1`;
    is($?, 0, 'stop') or diag($out);
    local $ENV{MONGODB_URI} = "mongodb://127.0.0.1:$env{AUDEX_MONGO_PORT}/audex";
    $out = `$top/scripts/run.sh start 2>&1`;
    is($?, 0, 'a start with our own MONGODB_URI exported succeeds')
        or diag($out);
    like(`$top/scripts/run.sh status`, qr/^ferretdb: running/m,
         '... and FerretDB was started');
    my $list = `$top/build/bin/audex-user list 2>&1`;
    like($list, qr/^me\@example\.com\b/m, '... with the data of before');
}

done_testing();
