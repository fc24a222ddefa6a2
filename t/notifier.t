# audex-notifier against a throwaway Redis and FerretDB (Audex::Backend),
# a real SMTP server on loopback (aiosmtpd) and a webhook receiver
# (http.server): the email and its headers, the signed download link,
# failures from MP3_QUEUE and from the converter's dead letters, SMTP
# going away and coming back, STARTTLS, smtps:// and AUTH, the signed
# webhook and its retries, the retry limit and the dead-letter stream,
# redeliveries sending nothing twice, entries reclaimed from a dead
# consumer, Redis and MongoDB going away, SIGTERM, metrics and settings.
#
# Messages are parsed with Python's email module; signatures are
# recomputed here, in Perl, from the secrets.

use strict;
use warnings;
use utf8;

use lib 't/lib';
use Test::More;
use Audex::Backend;

use Digest::SHA qw(hmac_sha256 hmac_sha256_hex);
use Encode qw(encode_utf8);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP qw(decode_json);
use MIME::Base64 qw(encode_base64);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

my $bin = $ENV{AUDEX_NOTIFIER_BIN} // 'build/bin/audex-notifier';
ok(-x $bin, "$bin is built") or BAIL_OUT("$bin missing: make $bin");

system('/usr/bin/python3', '-c', 'import aiosmtpd, pymongo, gridfs') == 0
    or BAIL_OUT('needs python3-aiosmtpd, python3-pymongo, python3-gridfs');

my $dir = tempdir('audex-notifier-XXXXXX', TMPDIR => 1,
                   CLEANUP => !$ENV{AUDEX_TEST_KEEP});
my ($redis, $redis_pid) = start_redis();
my ($mongo, $mongo_pid) = start_mongo();

my $link_key = 'k' x 20 . 'link-secret-0123456789abcdef';
my $hook_key = 'w' x 16 . 'webhook-secret-0123456789abcdef';
spew("$dir/link.secret", "$link_key\r\n");
spew("$dir/hook.secret", "$hook_key\n");
spew("$dir/short.secret", "too short\n");
spew("$dir/smtp.password", "s3cret pass\n");

write_helpers();

my $smtp_port = free_port();
my $smtp = smtp_start($smtp_port);
my $metrics_port = free_port();
my $owner = 'aaaaaaaaaaaaaaaaaaaaaaa1';
my @notifiers;
my @procs;


subtest 'a finished conversion: the email, its headers, the link' => sub {
    my $fid = seed(job => 'job-done-1',
                   filename => 'Urlaub – Strand am Meer.mp4',
                   mp3 => 'Urlaub – Strand am Meer.mp3', duration => 205.3);
    my $n = notifier();
    my $before = time;

    xadd('mp3', job_id => 'job-done-1', mp3_fid => $fid,
         video_fid => 'b' x 24, owner_id => $owner,
         owner_email => 'u1@example.org');

    my ($m) = wait_mails('job-done-1', 1);
    ok($m, 'an email arrived') or return diag(log_of($n));

    is_deeply($m->{rcpt_tos}, ['u1@example.org'], 'envelope recipient');
    is($m->{mail_from}, 'audex@localhost', 'envelope sender: MAIL_FROM');
    is($m->{headers}{to}, 'u1@example.org', 'To');
    is($m->{headers}{from}, 'audex@localhost', 'From');
    is($m->{subject}, 'Your MP3 is ready: Urlaub – Strand am Meer.mp4',
       'Subject names the original file');
    like($m->{raw_subject}, qr/^=\?UTF-8\?B\?/,
         'and is an RFC 2047 encoded-word (not ASCII)');
    ok($m->{date_ok}, "Date parses: $m->{headers}{date}");
    like($m->{headers}{'message-id'}, qr/^<[^<>\s@]+\@localhost>$/,
         'Message-ID');
    is($m->{headers}{'mime-version'}, '1.0', 'MIME-Version');
    is($m->{content_type}, 'text/plain', 'text/plain');
    is($m->{charset}, 'utf-8', 'charset UTF-8');
    is($m->{headers}{'content-transfer-encoding'}, 'quoted-printable',
       'quoted-printable');
    cmp_ok($m->{max_line}, '<=', 78, 'no raw line longer than 78');
    is($m->{defects}, 0, 'no defects found by the parser');

    like($m->{body}, qr/"Urlaub – Strand am Meer\.mp4"/,
         'the body names the file');
    like($m->{body}, qr/Duration: 3:25 \(205\.3 s\)/, 'and the duration');

    my ($url) = $m->{body} =~ m{(http://\S+)};
    my ($base, $q) = split /\?/, $url // '', 2;
    my %q = map { split /=/, $_, 2 } split /&/, $q // '';
    is($base, 'http://127.0.0.1:8080/download', 'link to PUBLIC_URL');
    is($q{fid}, $fid, 'for the MP3');
    ok(link_ok($q{fid}, $owner, $q{exp}, $q{sig}),
       'its signature verifies with the link key and the file\'s owner');
    ok(!link_ok($q{fid}, 'b' x 24, $q{exp}, $q{sig}),
       'and not for another owner');
    my $life = $q{exp} - $before;
    ok($life > 7 * 86400 - 120 && $life <= 7 * 86400 + 5,
       'it expires in 7 days (LINK_LIFETIME)');

    wait_until(sub { pending('mp3') == 0 });
    is(pending('mp3'), 0, 'the entry is acknowledged');
    my $mt = metrics();
    is(series($mt, 'notifier_messages_total{channel="email",'
               . 'result="success"}'), 1, 'metrics: one email sent');
    is(series($mt, 'notifier_messages_total{channel="email",'
               . 'result="error"}'), 0, 'metrics: no email failed');

    is(stop($n), 0, 'SIGTERM: exit 0');
    like(log_of($n), qr/ stopped$/m, 'after saying so');
};


subtest 'failures: from MP3_QUEUE and from the converter\'s dead letters' =>
sub {
    seed(job => 'job-fail-1', filename => 'broken.mov', failed => 1);
    seed(job => 'job-dead-1', filename => 'stuck.avi', failed => 1);
    my $port = free_port();
    my $hook = hook_start($port);
    my $n = notifier('--webhook-url', "http://127.0.0.1:$port/",
                     '--webhook-secret-file', "$dir/hook.secret");

    xadd('mp3', job_id => 'job-fail-1', state => 'failed',
         owner_id => $owner, owner_email => 'u2@example.org',
         error => 'no audio stream in the file');
    xadd('video:dead', job_id => 'job-dead-1', video_fid => 'c' x 24,
         owner_id => $owner, owner_email => 'u3@example.org',
         filename => 'stuck.avi', dead_reason => 'gave up after 3 '
         . 'deliveries: GridFS read timed out');

    my ($f) = wait_mails('job-fail-1', 1);
    ok($f, 'a failed job: an email') or diag(log_of($n));
    is($f->{subject}, 'Conversion failed: broken.mov', 'its subject');
    is_deeply($f->{rcpt_tos}, ['u2@example.org'], 'to the owner');
    like($f->{body}, qr/"broken\.mov".*failed:\s+no audio stream in the file/s,
         'naming the file and the reason');
    unlike($f->{body}, qr/download\?/, 'and no link');

    my ($d) = wait_mails('job-dead-1', 1);
    ok($d, 'a job the converter gave up on: an email');
    is($d->{subject}, 'Conversion failed: stuck.avi', 'its subject');
    like($d->{body}, qr/GridFS read timed out/, 'with the dead letter\'s reason');

    my %b = map { my $j = decode_json($_->{body_bytes}); ($j->{job_id}, $j) }
            wait_hooks($hook, 2);
    is($b{'job-fail-1'}{event}, 'conversion.failed', 'webhook: failed');
    is($b{'job-fail-1'}{error}, 'no audio stream in the file',
       'webhook: the reason');
    is($b{'job-fail-1'}{filename}, 'broken.mov', 'webhook: the file');
    ok(exists $b{'job-fail-1'}{mp3_fid} && !defined $b{'job-fail-1'}{mp3_fid}
       && !defined $b{'job-fail-1'}{download_url}, 'webhook: no MP3, no link');
    like($b{'job-dead-1'}{error} // '', qr/GridFS read timed out/,
         'webhook: the dead letter\'s reason');

    # a dead letter that names no job: nobody to tell, nothing to bury
    xadd('video:dead', video_fid => 'd' x 24, dead_reason => 'no job_id');
    ok(wait_until(sub { log_of($n) =~ /names no job; acknowledged/ }),
       'a converter dead letter without a job is only logged');

    # a long ASCII name: the Subject is folded, not encoded
    my $long = join(' ', ('holiday') x 14) . '.mp4';
    seed(job => 'job-fail-2', filename => $long, failed => 1);
    xadd('mp3', job_id => 'job-fail-2', state => 'failed',
         owner_id => $owner, owner_email => 'u2@example.org',
         error => 'corrupt');
    my ($l) = wait_mails('job-fail-2', 1);
    is($l && $l->{subject}, "Conversion failed: $long", 'a long subject');
    unlike($l ? $l->{raw_subject} : '', qr/=\?/, 'in plain ASCII');
    cmp_ok($l ? $l->{max_line} : 999, '<=', 78, 'folded to 78 columns');

    wait_until(sub { pending('mp3') + pending('video:dead') == 0 });
    is(pending('video:dead'), 0, 'the dead letters are acknowledged');
    is(scalar(stream('mp3:dead')), 0, 'none of them became ours');
    stop($n);
    stop_proc($hook);
};


subtest 'no owner_email in the entry: the users collection has it' => sub {
    my $uid = '65a000000000000000000042';
    py('db.users.insert_one({"_id": ObjectId(sys.argv[4]), '
       . '"email": "found@example.org"})', $uid);
    my $fid = seed(job => 'job-user-1', filename => 'a.mp4', owner => $uid);
    my $n = notifier();

    xadd('mp3', job_id => 'job-user-1', mp3_fid => $fid, owner_id => $uid);

    my ($m) = wait_mails('job-user-1', 1);
    is_deeply($m && $m->{rcpt_tos}, ['found@example.org'],
              'mailed to the user\'s address') or diag(log_of($n));
    stop($n);
};


subtest 'SMTP down, then back: sent exactly once' => sub {
    my $fid = seed(job => 'job-smtp-down', filename => 'later.mp4');
    smtp_stop($smtp);
    my $n = notifier('--retry-base-ms', 300, '--retry-max-ms', 1000);

    xadd('mp3', job_id => 'job-smtp-down', mp3_fid => $fid,
         owner_id => $owner, owner_email => 'u4@example.org');

    ok(wait_until(sub {
        series(metrics(), 'notifier_messages_total{channel="email",'
               . 'result="error"}') >= 2 }),
       'delivery fails while the server is away') or diag(log_of($n));
    is(scalar(mails('job-smtp-down')), 0, 'nothing delivered');
    like(log_of($n), qr/email attempt 1 of 10 failed, retry in/,
         'retried with backoff');

    $smtp = smtp_start($smtp_port);

    my @m = wait_mails('job-smtp-down', 1);
    is(scalar(@m), 1, 'delivered once the server is back');
    wait_until(sub { pending('mp3') == 0 });
    is(pending('mp3'), 0, 'acknowledged');
    sleep 1;
    is(scalar(mails('job-smtp-down')), 1, 'exactly once');
    is(series(metrics(), 'notifier_messages_total{channel="email",'
              . 'result="success"}'), 1, 'metrics: one success');
    stop($n);
};


subtest 'a rejected recipient and a malformed entry go to mp3:dead' => sub {
    smtp_stop($smtp);
    $smtp = smtp_start($smtp_port, '--reject', 'nobody@example.org');
    my $fid = seed(job => 'job-550', filename => 'x.mp4');
    my $n = notifier();

    xadd('mp3', job_id => 'job-550', mp3_fid => $fid, owner_id => $owner,
         owner_email => 'nobody@example.org');
    xadd('mp3', mp3_fid => $fid, owner_email => 'who@example.org');

    ok(wait_until(sub { scalar(stream('mp3:dead')) >= 2 }),
       'two dead letters') or diag(log_of($n));
    my %dead = map { ($_->{job_id} // '-') => $_ } stream('mp3:dead');

    my $e = $dead{'job-550'};
    is($e->{notifier_channel}, 'email', 'the 550: channel email');
    is($e->{notifier_attempts}, 1, 'after one attempt (permanent)');
    like($e->{notifier_reason}, qr/550/, 'with the server\'s reply');
    is($e->{owner_email}, 'nobody@example.org', 'the entry\'s fields kept');
    is($e->{notifier_stream}, 'mp3', 'and where it came from');

    my $bad = $dead{'-'};
    is($bad->{notifier_channel}, 'event', 'the malformed entry: "event"');
    like($bad->{notifier_reason}, qr/no job_id/, 'says why');

    wait_until(sub { pending('mp3') == 0 });
    is(pending('mp3'), 0, 'both acknowledged');
    is(series(metrics(), 'notifier_dead_letters_total{channel="email"}'),
       1, 'metrics: one email dead letter');
    is(scalar(mails('job-550')), 0, 'nothing was delivered');
    stop($n);

    smtp_stop($smtp);
    $smtp = smtp_start($smtp_port);
};


subtest 'the webhook: signed, a 500 retried, nothing sent twice' => sub {
    # a fresh stream: the redelivery below is of this subtest's entries
    redis('DEL', 'mp3');
    redis('XGROUP', 'CREATE', 'mp3', 'notifier', '$', 'MKSTREAM');

    my $port = free_port();
    my $hook = hook_start($port, 500);
    my $fid = seed(job => 'job-hook-1', filename => 'Café.mp4',
                   duration => 61.5);
    my $n = notifier('--webhook-url', "http://127.0.0.1:$port/hooks/audex",
                     '--webhook-secret-file', "$dir/hook.secret",
                     '--retry-base-ms', 200, '--retry-max-ms', 1000);

    xadd('mp3', job_id => 'job-hook-1', mp3_fid => $fid,
         owner_id => $owner, owner_email => 'u5@example.org');

    my @r = wait_hooks($hook, 2);
    is(scalar(@r), 2, 'two requests: the 500, then the retry')
        or return diag(log_of($n));
    is($r[0]{status}, 500, 'the first was answered 500');
    is($r[1]{status}, 200, 'the second 200');

    for my $i (0, 1) {
        my $h = $r[$i]{headers};
        my ($t, $v1) = ($h->{'X-Audex-Signature'} // '')
                       =~ /^t=(\d+),v1=([0-9a-f]{64})$/;
        ok($t, "request $i: X-Audex-Signature t=...,v1=...");
        is($v1, hmac_sha256_hex(encode_utf8("$t.") . $r[$i]{body_bytes},
                                $hook_key),
           "request $i: v1 is HMAC-SHA256(secret, t.body)");
        ok(abs($t - time) < 300, "request $i: t is fresh");
        is($h->{'Content-Type'}, 'application/json', 'JSON');
        is($h->{'X-Audex-Delivery'}, 'job-hook-1/done', 'delivery id');
        is($h->{'X-Audex-Event'}, 'conversion.done', 'event header');
        is($r[$i]{path}, '/hooks/audex', 'to WEBHOOK_URL');
    }

    my $b = decode_json($r[1]{body_bytes});
    is($b->{event}, 'conversion.done', 'body: event');
    is($b->{delivery}, 'job-hook-1/done', 'body: delivery');
    is($b->{job_id}, 'job-hook-1', 'body: job_id');
    is($b->{state}, 'done', 'body: state');
    is($b->{filename}, 'Café.mp4', 'body: filename, UTF-8');
    is($b->{mp3_fid}, $fid, 'body: mp3_fid');
    is($b->{duration}, 61.5, 'body: duration');
    is($b->{owner_id}, $owner, 'body: owner_id');
    is($b->{error}, undef, 'body: error null');
    my ($q) = ($b->{download_url} // '') =~ /\?(.*)$/;
    my %q = map { split /=/, $_, 2 } split /&/, $q // '';
    ok(link_ok($fid, $owner, $q{exp}, $q{sig}), 'body: a valid signed link');
    is($b->{download_expires}, $q{exp}, 'body: download_expires');

    my @m = wait_mails('job-hook-1', 1);
    is(scalar(@m), 1, 'and the email went out too');
    wait_until(sub { pending('mp3') == 0 });

    my $mt = metrics();
    is(series($mt, 'notifier_messages_total{channel="webhook",'
               . 'result="error"}'), 1, 'metrics: webhook error 1');
    is(series($mt, 'notifier_messages_total{channel="webhook",'
               . 'result="success"}'), 1, 'metrics: webhook success 1');

    # the same job announced again, and every entry delivered once more
    xadd('mp3', job_id => 'job-hook-1', mp3_fid => $fid,
         owner_id => $owner, owner_email => 'u5@example.org');
    redis('XGROUP', 'SETID', 'mp3', 'notifier', '0');

    ok(wait_until(sub {
        series(metrics(), 'notifier_duplicates_total{channel="webhook"}')
            >= 2 }), 'the redeliveries are recognised')
        or diag(log_of($n));
    wait_until(sub { pending('mp3') == 0 });
    is(pending('mp3'), 0, 'and acknowledged');
    is(scalar(hooks($hook)), 2, 'no second webhook');
    is(scalar(mails('job-hook-1')), 1, 'no second email');
    is(series(metrics(), 'notifier_messages_total{channel="webhook",'
              . 'result="success"}'), 1, 'metrics: still one success');

    stop($n);
    stop_proc($hook);
};


subtest 'the retry limit: dead letter after --retry-limit attempts' => sub {
    my $port = free_port();
    my $hook = hook_start($port, 500, 500, 500, 500, 500);
    my $fid = seed(job => 'job-hook-dead', filename => 'never.mp4');
    my $n = notifier('--smtp-url', 'off',
                     '--webhook-url', "http://127.0.0.1:$port/",
                     '--webhook-secret-file', "$dir/hook.secret",
                     '--retry-base-ms', 100, '--retry-max-ms', 400,
                     '--retry-limit', 3);

    xadd('mp3', job_id => 'job-hook-dead', mp3_fid => $fid,
         owner_id => $owner);

    ok(wait_until(sub {
        grep { ($_->{job_id} // '') eq 'job-hook-dead' } stream('mp3:dead')
    }), 'a dead letter') or diag(log_of($n));
    my ($e) = grep { ($_->{job_id} // '') eq 'job-hook-dead' }
              stream('mp3:dead');
    is($e->{notifier_channel}, 'webhook', 'for the webhook');
    is($e->{notifier_attempts}, 3, 'after 3 attempts');
    like($e->{notifier_reason}, qr/gave up after 3 attempts: .*HTTP 500/,
         'with the last error');
    is(scalar(hooks($hook)), 3, 'the receiver saw exactly 3 requests');
    like(log_of($n), qr/webhook failed 3 times, giving up/, 'logged');
    wait_until(sub { pending('mp3') == 0 });
    is(pending('mp3'), 0, 'acknowledged');
    stop($n);
    stop_proc($hook);
};


subtest 'SIGTERM while waiting for a retry; the next notifier takes over' =>
sub {
    my $port = free_port();
    my $hook = hook_start($port, 503);
    my $fid = seed(job => 'job-handover', filename => 'h.mp4');
    my @hook = ('--smtp-url', 'off',
                '--webhook-url', "http://127.0.0.1:$port/",
                '--webhook-secret-file', "$dir/hook.secret");

    my $n = notifier(@hook, '--retry-base-ms', 600000,
                     '--retry-max-ms', 600000);
    xadd('mp3', job_id => 'job-handover', mp3_fid => $fid,
         owner_id => $owner);

    ok(wait_until(sub { scalar(hooks($hook)) == 1 }), 'first attempt: 503');
    is(stop($n), 0, 'SIGTERM while the event waits: exit 0');
    like(log_of($n), qr/stopping: 1 event\(s\) held/, 'it was held');
    is(pending('mp3'), 1, 'the entry stays pending');

    my $m = notifier(@hook, '--claim-idle-ms', 1000);
    my @r = wait_hooks($hook, 2);
    is(scalar(@r), 2, 'another notifier delivers it')
        or diag(log_of($m));
    is($r[1]{status}, 200, 'with success');
    wait_until(sub { pending('mp3') == 0 });
    is(pending('mp3'), 0, 'acknowledged');
    stop($m);
    stop_proc($hook);
};


subtest 'entries a dead consumer left pending are reclaimed' => sub {
    my $fid = seed(job => 'job-orphan', filename => 'orphan.mp4');
    xadd('mp3', job_id => 'job-orphan', mp3_fid => $fid,
         owner_id => $owner, owner_email => 'u6@example.org');
    redis('XREADGROUP', 'GROUP', 'notifier', 'ghost', 'COUNT', '10',
          'STREAMS', 'mp3', '>');
    is(pending('mp3'), 1, 'pending for a consumer that is gone');

    my $n = notifier('--claim-idle-ms', 1000);
    my @m = wait_mails('job-orphan', 1);
    is(scalar(@m), 1, 'taken over (XAUTOCLAIM) and mailed')
        or diag(log_of($n));
    wait_until(sub { pending('mp3') == 0 });
    is(pending('mp3'), 0, 'acknowledged');
    stop($n);
};


subtest 'Redis and MongoDB going away and coming back' => sub {
    my $n = notifier();
    ok(wait_until(sub { log_of($n) =~ /reading mp3/ }), 'running');

    $redis_pid = restart_server($redis_pid);

    my $fid = seed(job => 'job-redis-back', filename => 'r.mp4');
    ok(wait_until(sub { log_of($n) =~ /redis: .*retry in/ }),
       'the lost connection is noticed') or diag(log_of($n));
    ok(wait_until(sub { (() = log_of($n) =~ /reading mp3/g) >= 2 }),
       'and reconnected');

    xadd('mp3', job_id => 'job-redis-back', mp3_fid => $fid,
         owner_id => $owner, owner_email => 'u7@example.org');
    is(scalar(wait_mails('job-redis-back', 1)), 1,
       'an entry added after the restart is mailed') or diag(log_of($n));

    $fid = seed(job => 'job-mongo-back', filename => 'm.mp4');
    stop_server($mongo_pid);
    xadd('mp3', job_id => 'job-mongo-back', mp3_fid => $fid,
         owner_id => $owner, owner_email => 'u8@example.org');

    ok(wait_until(sub { log_of($n) =~ /mongodb: .*retry in/ }),
       'MongoDB away: the event waits') or diag(log_of($n));
    $mongo_pid = restart_server($mongo_pid);

    is(scalar(wait_mails('job-mongo-back', 1, 60)), 1,
       'and is mailed once MongoDB is back') or diag(log_of($n));
    wait_until(sub { pending('mp3') == 0 });
    is(pending('mp3'), 0, 'acknowledged');
    is(stop($n), 0, 'exit 0');
};


subtest 'STARTTLS with AUTH, and smtps://' => sub {
    my $cert = "$dir/cert.pem";
    my $key = "$dir/key.pem";
    my ($rc, $out) = run('openssl', 'req', '-x509', '-newkey', 'ec',
        '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
        '-keyout', $key, '-out', $cert);
    is($rc, 0, 'a self-signed certificate') or return diag($out);

    my $port = free_port();
    my $tls = smtp_start($port, '--starttls', $cert, $key,
                         '--auth', 'mailer:s3cret pass');
    my $fid = seed(job => 'job-tls', filename => 't.mp4');
    my $n = notifier('--smtp-url', "smtp://127.0.0.1:$port",
                     '--smtp-starttls', 'require', '--smtp-ca-file', $cert,
                     '--smtp-user', 'mailer',
                     '--smtp-password-file', "$dir/smtp.password",
                     '--mail-from', 'Audex Notifier <noreply@audex.test>');
    xadd('mp3', job_id => 'job-tls', mp3_fid => $fid, owner_id => $owner,
         owner_email => 'u9@example.org');

    my ($m) = wait_mails('job-tls', 1);
    ok($m, 'delivered with STARTTLS') or diag(log_of($n));
    ok($m->{tls}, 'over TLS');
    ok($m->{auth}, 'authenticated as "mailer"');
    is($m->{mail_from}, 'noreply@audex.test', 'envelope sender');
    like($m->{headers}{from}, qr/^"?Audex Notifier"? <noreply\@audex\.test>$/,
         'From with the display name');
    like($m->{headers}{'message-id'}, qr/\@audex\.test>$/,
         'Message-ID in the sender\'s domain');
    stop($n);
    stop_proc($tls);

    $port = free_port();
    my $smtps = smtp_start($port, '--smtps', $cert, $key);
    $fid = seed(job => 'job-smtps', filename => 's.mp4');
    $n = notifier('--smtp-url', "smtps://127.0.0.1:$port",
                  '--smtp-ca-file', $cert);
    xadd('mp3', job_id => 'job-smtps', mp3_fid => $fid, owner_id => $owner,
         owner_email => 'u10@example.org');
    ($m) = wait_mails('job-smtps', 1);
    ok($m && $m->{tls}, 'delivered over smtps://') or diag(log_of($n));
    stop($n);
    stop_proc($smtps);

    # a certificate nobody vouches for is refused, and retried
    $port = free_port();
    $tls = smtp_start($port, '--starttls', $cert, $key);
    $fid = seed(job => 'job-untrusted', filename => 'u.mp4');
    $n = notifier('--smtp-url', "smtp://127.0.0.1:$port",
                  '--smtp-starttls', 'require');
    xadd('mp3', job_id => 'job-untrusted', mp3_fid => $fid,
         owner_id => $owner, owner_email => 'u11@example.org');
    ok(wait_until(sub { log_of($n) =~ /email attempt 1 of \d+ failed/ }),
       'an unknown CA fails the delivery') or diag(log_of($n));
    is(scalar(mails('job-untrusted')), 0, 'nothing sent');
    stop($n);
    stop_proc($tls);
    redis('DEL', 'mp3');
    redis('XGROUP', 'CREATE', 'mp3', 'notifier', '$', 'MKSTREAM');
};


subtest 'settings: --help, defaults < environment < flags, bad values' =>
sub {
    my ($rc, $out) = run($bin, '--help');
    is($rc, 0, '--help: exit 0');
    for my $s (qw(redis-url mongodb-uri mp3-queue video-queue
                  video-dead-queue dead-queue group consumer claim-idle-ms
                  public-url link-secret-file link-lifetime smtp-url
                  smtp-starttls smtp-ca-file smtp-user smtp-password
                  smtp-password-file smtp-timeout mail-from webhook-url
                  webhook-secret-file webhook-timeout retry-base-ms
                  retry-max-ms retry-limit sent-ttl max-held metrics-port
                  metrics-addr log-level)) {
        like($out, qr/--\Q$s\E /, "--help lists --$s");
    }
    like($out, qr/env NOTIFIER_METRICS_PORT, default "9101"/,
         'with its environment variable and default');

    ($rc, $out) = run($bin, 'run', '--link-secret-file', '');
    is($rc, 2, 'no LINK_SECRET_FILE: exit 2');
    like($out, qr/LINK_SECRET_FILE is required/, 'says so');

    ($rc, $out) = run($bin, '--link-secret-file', "$dir/short.secret");
    is($rc, 2, 'a short link key: exit 2');
    like($out, qr/must hold 32 to 1023 bytes/, 'says so');

    ($rc, $out) = run($bin, '--link-secret-file', "$dir/link.secret",
                      '--webhook-url', 'http://127.0.0.1:1/');
    is($rc, 2, 'a webhook without a secret: exit 2');
    like($out, qr/WEBHOOK_SECRET_FILE/, 'says so');

    ($rc, $out) = run($bin, '--link-secret-file', "$dir/link.secret",
                      '--smtp-starttls', 'maybe');
    is($rc, 2, 'a bad SMTP_STARTTLS: exit 2');

    spew("$dir/empty.password", '');
    ($rc, $out) = run($bin, '--link-secret-file', "$dir/link.secret",
                      '--smtp-user', 'u', '--smtp-password-file',
                      "$dir/empty.password");
    is($rc, 2, 'a user with an empty password file: exit 2');

    ($rc, $out) = run($bin, '--link-secret-file', "$dir/link.secret",
                      '--mail-from', 'not an address');
    is($rc, 2, 'a bad MAIL_FROM: exit 2');

    ($rc, $out) = run($bin, '--link-secret-file', "$dir/link.secret",
                      '--smtp-url', 'off');
    is($rc, 2, 'neither email nor webhook: exit 2');
    like($out, qr/nothing to do/, 'says so');

    ($rc, $out) = run($bin, 'bogus');
    is($rc, 2, 'an unknown command: exit 2');

    # PUBLIC_URL from the environment, LINK_LIFETIME from a flag
    my $fid = seed(job => 'job-conf', filename => 'c.mp4');
    my $n = notifier_env({ PUBLIC_URL => 'https://audex.example/',
                           LINK_LIFETIME => 120,
                           MAIL_FROM => encode_utf8('Åudex Bøt <bot@x.test>') },
                         '--link-lifetime', 3600);
    my $t0 = time;
    xadd('mp3', job_id => 'job-conf', mp3_fid => $fid, owner_id => $owner,
         owner_email => 'u12@example.org');
    my ($m) = wait_mails('job-conf', 1);
    my ($exp) = ($m ? $m->{body} : '') =~ /exp=(\d+)/;
    like($m ? $m->{body} : '', qr{https://audex\.example/download\?fid=},
         'PUBLIC_URL from the environment') or diag(log_of($n));
    ok($exp && $exp - $t0 > 3000 && $exp - $t0 <= 3605,
       'the flag beats the environment (LINK_LIFETIME)');
    is($m && $m->{headers}{from}, 'Åudex Bøt <bot@x.test>',
       'MAIL_FROM from the environment, its name RFC 2047 encoded');
    is($m && $m->{mail_from}, 'bot@x.test', 'and the envelope sender');
    stop($n);
};

done_testing();


END {
    # waitpid sets $?, which is about to be the test's exit status
    local $?;
    for my $n (@notifiers) {
        next if defined $n->{status};
        kill 'KILL', $n->{pid};
        waitpid($n->{pid}, 0);
    }
    stop_proc($_) for @procs;
}


# -- helpers -----------------------------------------------------------

sub notifier { notifier_env({}, @_) }


sub notifier_env {
    my ($env, @args) = @_;
    my $log = "$dir/notifier-" . (scalar(@notifiers) + 1) . '.log';

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        delete @ENV{qw(REDIS_URL MONGODB_URI PUBLIC_URL LINK_SECRET_FILE
                       LINK_LIFETIME SMTP_URL WEBHOOK_URL MP3_QUEUE
                       VIDEO_QUEUE DEAD_QUEUE)};
        $ENV{$_} = $env->{$_} for keys %$env;
        $ENV{LINK_SECRET_FILE} = "$dir/link.secret";
        exec $bin, 'run', '--redis-url', $redis, '--mongodb-uri', $mongo,
             '--smtp-url', "smtp://127.0.0.1:$smtp_port",
             '--metrics-addr', '127.0.0.1', '--metrics-port', $metrics_port,
             '--log-level', 'debug', @args
            or die "exec: $!";
    }

    my $n = { pid => $pid, log => $log };
    push @notifiers, $n;

    # the metrics port is shared: wait until this one serves it
    wait_until(sub { log_of($n) =~ /metrics on/ && metrics() ne '' }, 30);
    return $n;
}


# SIGTERM and wait; the exit status
sub stop {
    my ($n) = @_;
    return $n->{status} if defined $n->{status};

    kill 'TERM', $n->{pid};
    my $deadline = time + 60;
    while (time < $deadline) {
        if (waitpid($n->{pid}, WNOHANG) == $n->{pid}) {
            return $n->{status} = $? & 127 ? -1 : $? >> 8;
        }
        sleep 0.05;
    }
    kill 'KILL', $n->{pid};
    waitpid($n->{pid}, 0);
    return $n->{status} = -1;
}


sub log_of {
    my ($n) = @_;
    return slurp($n->{log});
}


sub wait_until {
    my ($cond, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    while (time < $deadline) {
        my $v = $cond->();
        return $v if $v;
        sleep 0.1;
    }
    return;
}


# run a command; (exit status, stdout and stderr)
sub run {
    my (@cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/run.out";
        open STDERR, '>&', \*STDOUT;
        delete @ENV{qw(LINK_SECRET_FILE WEBHOOK_URL SMTP_URL)};
        exec @cmd or die "exec $cmd[0]: $!";
    }
    waitpid $pid, 0;
    return ($? >> 8, slurp("$dir/run.out"));
}


sub slurp {
    open my $f, '<:raw', $_[0] or return '';
    local $/;
    return scalar <$f>;
}


sub spew {
    my ($path, $data) = @_;
    open my $f, '>:raw', $path or die "$path: $!";
    print $f $data;
    close $f;
}


sub redis {
    open my $p, '-|', 'redis-cli', '-u', $redis, @_
        or die "redis-cli: $!";
    local $/;
    my $out = <$p>;
    close $p;
    return $out;
}


sub xadd {
    my ($stream, @kv) = @_;
    redis('XADD', $stream, '*', map { encode_utf8($_) } @kv);
}


# the entries of a stream as hashes, with their id as _id
sub stream {
    my ($name) = @_;
    my $list = decode_json(redis('--json', 'XRANGE', $name, '-', '+'));
    return map { { _id => $_->[0], @{ $_->[1] } } } @$list;
}


sub pending {
    my ($stream) = @_;
    my $out = redis('--json', 'XPENDING', $stream, 'notifier');
    my $summary = eval { decode_json($out) };
    return ref $summary eq 'ARRAY' ? $summary->[0] : -1;
}


sub metrics {
    my $r = HTTP::Tiny->new(timeout => 5)
                      ->get("http://127.0.0.1:$metrics_port/metrics");
    return $r->{success} ? $r->{content} : '';
}


sub series {
    my ($text, $name) = @_;
    return $text =~ /^\Q$name\E (\S+)$/m ? $1 : -1;
}


# base64url(HMAC-SHA256(key, "fid\nowner\nexp")), as lib/audex_link.c
sub link_ok {
    my ($fid, $owner_id, $exp, $sig) = @_;
    return 0 unless defined $fid && defined $exp && defined $sig;
    my $mac = encode_base64(hmac_sha256("$fid\n$owner_id\n$exp", $link_key),
                            '');
    $mac =~ tr{+/}{-_};
    $mac =~ s/=+$//;
    return $mac eq $sig;
}


sub py {
    my ($code, @args) = @_;
    my ($rc, $out) = run('/usr/bin/python3', "$dir/tool.py", 'exec', $mongo,
                         $code, @args);
    die "python: $out" if $rc != 0;
    return $out;
}


# a job document and, unless it failed, an MP3 in GridFS; the MP3's id
sub seed {
    my (%a) = @_;
    ($a{mp3} //= $a{filename}) =~ s/\.[^.]*$/.mp3/;
    $a{mp3} = '' if $a{failed};
    my ($rc, $out) = run('/usr/bin/python3', "$dir/tool.py", 'seed', $mongo,
                         $a{job}, encode_utf8($a{filename}),
                         encode_utf8($a{mp3} // ''), $a{duration} // 0,
                         $a{owner} // $owner);
    die "seed: $out" if $rc != 0;
    chomp $out;
    return $out;
}


# the messages for a job (X-Audex-Job), parsed
sub mails {
    my ($job) = @_;
    my ($rc, $out) = run('/usr/bin/python3', "$dir/tool.py", 'mails',
                         "$dir/mail");
    die "mails: $out" if $rc != 0;
    return grep { ($_->{headers}{'x-audex-job'} // '') eq $job }
           @{ decode_json($out) };
}


sub wait_mails {
    my ($job, $count, $timeout) = @_;
    my @m;
    wait_until(sub { @m = mails($job); @m >= $count }, $timeout // 30);
    return @m;
}


sub smtp_start {
    my ($port, @opts) = @_;
    mkdir "$dir/mail";
    my $p = spawn("$dir/smtp-$port.log", '/usr/bin/python3',
                  "$dir/smtp_sink.py", $port, "$dir/mail", @opts);
    wait_port($port, 30) or die "smtp sink on $port did not start";
    return $p;
}


sub smtp_stop { stop_proc($_[0]) }


sub hook_start {
    my ($port, @plan) = @_;
    my $d = "$dir/hook-$port";
    mkdir $d;
    spew("$d/plan", join(' ', @plan));
    my $p = spawn("$d.log", '/usr/bin/python3', "$dir/webhook_sink.py",
                  $port, $d);
    $p->{dir} = $d;
    wait_port($port, 30) or die "webhook sink on $port did not start";
    return $p;
}


sub hooks {
    my ($p) = @_;
    opendir my $dh, $p->{dir} or return ();
    my @f = sort grep { /^\d+\.json$/ } readdir $dh;
    return map {
        my $r = decode_json(slurp("$p->{dir}/$_"));
        $r->{body_bytes} = pack('H*', $r->{body_hex});
        $r;
    } @f;
}


sub wait_hooks {
    my ($p, $count) = @_;
    my @r;
    wait_until(sub { @r = hooks($p); @r >= $count });
    return @r;
}


sub spawn {
    my ($log, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or die "exec: $!";
    }
    push @procs, { pid => $pid };
    return $procs[-1];
}


sub stop_proc {
    my ($p) = @_;
    return unless $p && !$p->{stopped};
    kill 'TERM', $p->{pid};
    for (1 .. 100) {
        last if waitpid($p->{pid}, WNOHANG) == $p->{pid};
        sleep 0.05;
    }
    if (kill 0, $p->{pid}) {
        kill 'KILL', $p->{pid};
        waitpid($p->{pid}, 0);
    }
    $p->{stopped} = 1;
}


sub write_helpers {
    spew("$dir/smtp_sink.py", <<'PY');
# A real SMTP server (aiosmtpd) on loopback: each message becomes
# <n>.json in DIR with the envelope, the raw message and how the session
# went (TLS, AUTH).
#   smtp_sink.py PORT DIR [--reject ADDR] [--starttls CERT KEY]
#                [--smtps CERT KEY] [--auth USER:PASS]
import argparse, json, os, signal, ssl, threading
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

p = argparse.ArgumentParser()
p.add_argument('port', type=int)
p.add_argument('dir')
p.add_argument('--reject')
p.add_argument('--starttls', nargs=2)
p.add_argument('--smtps', nargs=2)
p.add_argument('--auth')
a = p.parse_args()

lock = threading.Lock()


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, options):
        if address == a.reject:
            return '550 5.1.1 no such user here'
        envelope.rcpt_tos.append(address)
        return '250 OK'

    async def handle_DATA(self, server, session, envelope):
        rec = {
            'mail_from': envelope.mail_from,
            'rcpt_tos': envelope.rcpt_tos,
            'data_hex': envelope.original_content.hex(),
            'tls': server.transport.get_extra_info('ssl_object') is not None,
            'auth': bool(session.authenticated),
        }
        with lock:
            n = len([f for f in os.listdir(a.dir) if f.endswith('.json')])
            tmp = os.path.join(a.dir, '.%d.tmp' % os.getpid())
            with open(tmp, 'w') as f:
                json.dump(rec, f)
            os.rename(tmp, os.path.join(a.dir, '%05d-%d.json'
                                        % (n + 1, os.getpid())))
        return '250 Message accepted'


def authenticator(server, session, envelope, mechanism, auth_data):
    user, pw = a.auth.split(':', 1)
    return AuthResult(success=(auth_data.login == user.encode()
                               and auth_data.password == pw.encode()))


kw = {}
if a.starttls or a.smtps:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*(a.starttls or a.smtps))
    if a.starttls:
        kw.update(tls_context=ctx, require_starttls=True)
    else:
        kw.update(ssl_context=ctx)
if a.auth:
    kw.update(authenticator=authenticator, auth_required=True,
              auth_require_tls=True)

c = Controller(Handler(), hostname='127.0.0.1', port=a.port, **kw)
c.start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *x: stop.set())
stop.wait()
c.stop()
PY

    spew("$dir/webhook_sink.py", <<'PY');
# A webhook receiver: answers each POST with the next status of DIR/plan
# (200 once it is used up) and keeps the request as DIR/<n>.json.
#   webhook_sink.py PORT DIR
import http.server, json, os, signal, sys, threading

port, d = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()


class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        with lock:
            plan = open(os.path.join(d, 'plan')).read().split()
            code = int(plan[0]) if plan else 200
            with open(os.path.join(d, 'plan'), 'w') as f:
                f.write(' '.join(plan[1:]))
            n = len([f for f in os.listdir(d) if f.endswith('.json')])
            rec = {'path': self.path, 'headers': dict(self.headers),
                   'body_hex': body.hex(), 'status': code}
            with open(os.path.join(d, '.tmp'), 'w') as f:
                json.dump(rec, f)
            os.rename(os.path.join(d, '.tmp'),
                      os.path.join(d, '%05d.json' % (n + 1)))
        self.send_response(code)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'no' if code >= 300 else b'ok')

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer(('127.0.0.1', port), H)
signal.signal(signal.SIGTERM,
              lambda *x: threading.Thread(target=srv.shutdown).start())
srv.serve_forever()
PY

    spew("$dir/tool.py", <<'PY');
# tool.py seed URI JOB FILENAME MP3NAME DURATION OWNER: a job document
#   and, with an MP3 name, an MP3 in GridFS bucket mp3s; prints its id
# tool.py mails DIR: the messages, parsed with the email module, as JSON
# tool.py exec URI CODE ARGS...: runs CODE with db
import email, email.policy, email.utils, json, os, sys
import pymongo, gridfs
from bson import ObjectId

cmd = sys.argv[1]

if cmd == 'mails':
    out = []
    for name in sorted(os.listdir(sys.argv[2])):
        if not name.endswith('.json'):
            continue
        rec = json.load(open(os.path.join(sys.argv[2], name)))
        raw = bytes.fromhex(rec['data_hex'])
        m = email.message_from_bytes(raw, policy=email.policy.default)
        plain = email.message_from_bytes(raw, policy=email.policy.compat32)
        try:
            email.utils.parsedate_to_datetime(m['date'])
            date_ok = True
        except Exception:
            date_ok = False
        out.append({
            'mail_from': rec['mail_from'], 'rcpt_tos': rec['rcpt_tos'],
            'tls': rec['tls'], 'auth': rec['auth'],
            'headers': {k.lower(): str(v) for k, v in m.items()},
            'raw_subject': plain['subject'],
            'subject': str(m['subject']),
            'content_type': m.get_content_type(),
            'charset': m.get_content_charset(),
            'body': m.get_content(),
            'date_ok': date_ok,
            'defects': len(m.defects),
            'max_line': max(len(l) for l in raw.split(b'\r\n')),
        })
    print(json.dumps(out))
    sys.exit(0)

db = pymongo.MongoClient(sys.argv[2]).get_default_database()

if cmd == 'seed':
    job, filename, mp3, duration, owner = sys.argv[3:8]
    db.jobs.replace_one({'_id': job}, {
        '_id': job, 'filename': filename, 'owner_id': owner,
        'state': 'done' if mp3 else 'failed'}, upsert=True)
    if mp3:
        oid = ObjectId()
        gridfs.GridFSBucket(db, bucket_name='mp3s').upload_from_stream_with_id(
            oid, mp3, b'\xff\xfb' + os.urandom(400),
            metadata={'duration': float(duration) or 205.3,
                      'owner_id': owner, 'job_id': job})
        print(oid)
elif cmd == 'exec':
    exec(sys.argv[3])
PY
}
