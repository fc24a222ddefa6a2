# audex-converter's job loop against a throwaway Redis and FerretDB
# (Audex::Backend): GridFS in and out, job documents, the MP3 stream,
# permanent failures, the dead-letter stream, reclaiming jobs other
# consumers left idle, Redis and MongoDB going away, SIGTERM releasing or
# finishing a job, metrics, long jobs cut into segment jobs that two
# converters share (--distribute; one killed mid-segment, frames gone
# from Redis, a coordinator killed after joining) and the configuration
# order.

use strict;
use warnings;
use utf8;

use lib 't/lib';
use Test::More;
use Audex::Backend;
use Audex::Media qw(make_media probe decoded_seconds mp3val run_cmd);
use Audex::Joins qw(make_source decode frames join_failures);

use File::Temp qw(tempdir);
use JSON::PP qw(decode_json);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

my $bin = $ENV{AUDEX_CONVERTER_BIN} || 'build/bin/audex-converter';
ok(-x $bin, "$bin is built") or BAIL_OUT("$bin missing: run make first");

my $dir = tempdir('audex-jobs-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($redis, $redis_pid) = start_redis();
my ($mongo, $mongo_pid) = start_mongo();

# a MongoDB that is away must fail an operation in seconds, not 30
my $mongo_opts = ($mongo =~ /\?/ ? '&' : '?') . 'serverSelectionTimeoutMS=2000';
my $metrics_port = free_port();
my @converters;

my $short = make_media($dir, { file => 'short.mp4', seconds => 3,
    video => 'libx264', audio => ['aac 44100 2 128k'] });
my $silent = make_media($dir, { file => 'silent.mp4', seconds => 2,
    video => 'libx264' });
# FerretDB reads GridFS at some 10 MB/s: this takes seconds to convert
my $long = make_media($dir, { file => 'long.mka', seconds => 300,
    audio => ['flac 48000 2'] });

# small chunks: the index at the end of short.mp4 is chunks away
my $short_fid = upload($short, 'Holiday – 2024.mp4', 65536);
my $silent_fid = upload($silent, 'silent.mp4', 261120);
my $long_fid = upload($long, 'long.mka', 261120);


subtest 'two jobs at once: GridFS to GridFS, announced, acknowledged' => sub {
    my $c = converter('--jobs', 2);

    add_job(job_id => 'j-ok-1', video_fid => $short_fid, owner_id => 'u1',
            owner_email => 'u1@example.org',
            filename => 'Holiday – 2024.mp4', bitrate => 128);
    add_job(job_id => 'j-ok-2', video_fid => $short_fid, owner_id => 'u2',
            owner_email => 'u2@example.org', filename => 'again.mp4',
            quality => 4);

    my $d1 = wait_state('j-ok-1', 'done');
    my $d2 = wait_state('j-ok-2', 'done');
    is($d1->{state}, 'done', 'job 1 is done') or diag(log_of($c));
    is($d2->{state}, 'done', 'job 2 is done');
    is($d1->{progress}, 100, 'progress 100');
    is($d1->{owner_id}, 'u1', 'owner kept');
    ok($d1->{created_at} && $d1->{updated_at}, 'created_at, updated_at');
    isnt($d1->{mp3_fid}, $d2->{mp3_fid}, 'one MP3 per job');

    my %ann = map { $_->{job_id} => $_ } stream('mp3');
    is($ann{'j-ok-1'}{mp3_fid}, $d1->{mp3_fid}, 'announced on mp3');
    is($ann{'j-ok-1'}{owner_email}, 'u1@example.org', 'with the email');
    is($ann{'j-ok-1'}{filename}, 'Holiday – 2024.mp3', 'and the MP3 name');
    is($ann{'j-ok-1'}{state}, 'done', 'announced as done');

    my $meta = py("import json; d = db['mp3s.files'].find_one("
                  . "{'_id': ObjectId('$d1->{mp3_fid}')})['metadata'];"
                  . " print(json.dumps({k: d[k] for k in ('duration',"
                  . " 'bitrate', 'sample_rate', 'channels', 'job_id',"
                  . " 'owner_id')}, sort_keys=True))");
    like($meta, qr/"bitrate": 128, "channels": \d, "duration": [\d.]+, "job_id": "j-ok-1", "owner_id": "u1", "sample_rate": \d+/,
         'the MP3 metadata: duration, bitrate, rate, channels, owner, job');

    # lib/audex_schema.h: a chunk's _id is sha256(files_id || be32(n))[0:12]
    my $ids = py("import hashlib, struct\n"
                 . "f = ObjectId('$d1->{mp3_fid}')\n"
                 . "c = list(db['mp3s.chunks'].find({'files_id': f}))\n"
                 . "print(len(c), sum(1 for x in c if x['_id'].binary == "
                 . "hashlib.sha256(f.binary + struct.pack('>i', x['n']))"
                 . ".digest()[:12]))");
    my ($all, $derived) = split ' ', $ids;
    ok($all > 0, 'the MP3 has chunks');
    is($derived, $all, "each MP3 chunk's _id derives from (files_id, n)");

    my ($stored, $real) = digests($d1->{mp3_fid});
    like($stored, qr/^[0-9a-f]{64}\z/, 'metadata.sha256 is stored');
    is($stored, $real, "metadata.sha256 is the digest of the MP3's bytes");

    my $mp3 = download($d1->{mp3_fid}, "$dir/j1.mp3");
    my $p = probe($mp3);
    is($p->{streams}[0]{bit_rate}, 128000, 'CBR 128 as the job asked');
    is($p->{format}{tags}{title}, 'Holiday – 2024', 'ID3 title');
    ok(abs(decoded_seconds($mp3) - decoded_seconds($short)) <= 0.05,
       'same duration as the video\'s audio');
    my ($bad, $report) = mp3val($mp3);
    is($bad, 0, 'mp3val is happy') or diag($report);

    my $vbr = probe(download($d2->{mp3_fid}, "$dir/j2.mp3"));
    isnt($vbr->{streams}[0]{bit_rate}, 192000, 'job 2 is VBR');

    is(pending(), 0, 'nothing left pending');
    stop($c);
};


subtest 'permanent failures fail at once' => sub {
    my $c = converter();

    add_job(job_id => 'j-silent', video_fid => $silent_fid,
            filename => 'silent.mp4');
    add_job(job_id => 'j-gone', video_fid => 'a' x 24,
            filename => 'gone.mp4');

    my $s = wait_state('j-silent', 'failed');
    is($s->{error_code}, 'no_audio', 'a video without audio: no_audio');
    like($s->{error}, qr/no audio stream/, 'with a readable reason');
    is($s->{attempts}, 1, 'on the first attempt');

    my $g = wait_state('j-gone', 'failed');
    is($g->{error_code}, 'not_found', 'a missing video: not_found');

    is(pending(), 0, 'both acknowledged');
    my %ann = map { $_->{job_id} => $_ }
              grep { $_->{job_id} =~ /^j-(silent|gone)$/ } stream('mp3');
    is($ann{'j-silent'}{state}, 'failed', 'the failure is announced');
    like($ann{'j-silent'}{error}, qr/no audio stream/, 'with its reason');
    is($ann{'j-gone'}{state}, 'failed', 'a missing video too');
    ok(!defined $ann{'j-silent'}{mp3_fid}, 'and no MP3');
    is(mp3_count(), 2, 'no MP3 left behind');
    stop($c);
};


subtest 'a malformed entry goes to the dead-letter stream' => sub {
    my $c = converter();
    add_job(job_id => 'j-bad', video_fid => 'not-an-object-id');

    my $d = wait_state('j-bad', 'failed');
    is($d->{error_code}, 'dead', 'the job is failed as dead');
    my ($dead) = grep { $_->{job_id} eq 'j-bad' } stream('video:dead');
    like($dead->{dead_reason} // '', qr/not an ObjectId/,
         'the dead letter says why');
    is(pending(), 0, 'acknowledged');
    stop($c);
};


subtest 'jobs left idle by a dead consumer are reclaimed' => sub {
    # a consumer that read two jobs and died; one of them three times
    add_job(job_id => 'j-orphan', video_fid => $short_fid,
            filename => 'orphan.mp4');
    add_job(job_id => 'j-cursed', video_fid => $short_fid,
            filename => 'cursed.mp4');
    redis('XREADGROUP', 'GROUP', 'converter', 'ghost', 'COUNT', '10',
          'STREAMS', 'video', '>');
    my ($cid) = grep { entry_job($_) eq 'j-cursed' } pending_ids();
    redis('XCLAIM', 'video', 'converter', 'ghost', '0', $cid,
          'RETRYCOUNT', '3', 'JUSTID');

    my $c = converter('--claim-idle-ms', 1000);
    my $o = wait_state('j-orphan', 'done');
    is($o->{state}, 'done', 'the orphan is converted by the new consumer')
        or diag(log_of($c));
    is($o->{attempts}, 2, 'as its second delivery');

    my $x = wait_state('j-cursed', 'failed');
    like($x->{error} // '', qr/gave up after 3 deliveries/,
         'the one delivered three times is given up');
    ok((grep { $_->{job_id} eq 'j-cursed' } stream('video:dead')),
       'and put on the dead-letter stream');
    is(pending(), 0, 'both acknowledged');
    stop($c);
};


subtest 'MongoDB away: the job is retried, not failed' => sub {
    my $c = converter('--claim-idle-ms', 1000);
    stop_server($mongo_pid);
    add_job(job_id => 'j-outage', video_fid => $short_fid,
            filename => 'outage.mp4');

    wait_until(sub { log_of($c) =~ /j-outage.*not counted/ }, 30);
    $mongo_pid = restart_server($mongo_pid);

    my $d = wait_state('j-outage', 'done', 60);
    is($d->{state}, 'done', 'done once MongoDB is back') or diag(log_of($c));
    like(log_of($c), qr/MongoDB is unreachable.*not counted/,
         'the attempt during the outage was not counted');
    is($d->{attempts}, 1, 'so it is done as its first delivery');
    is(pending(), 0, 'acknowledged');
    stop($c);
};


subtest 'Redis away: the consumer reconnects' => sub {
    my $c = converter();
    sleep 1;
    stop_server($redis_pid);
    sleep 1;
    $redis_pid = restart_server($redis_pid);

    add_job(job_id => 'j-reconnect', video_fid => $short_fid,
            filename => 'again.mp4');
    my $d = wait_state('j-reconnect', 'done', 60);
    is($d->{state}, 'done', 'a job after the restart is done')
        or diag(log_of($c));
    like(log_of($c), qr/redis.*(connect|lost|not connected)/i,
         'the outage was noticed');
    stop($c);
};


subtest 'progress follows the work and never goes back' => sub {
    my $fid = upload_derived($long, 'progress.mka');
    my $c = converter();
    add_job(job_id => 'j-progress', video_fid => $fid,
            filename => 'progress.mka', quality => 0);

    my (@seen, $d);
    wait_until(sub {
        $d = job('j-progress');
        push @seen, $d->{progress}
            if $d && $d->{state} eq 'converting'
               && (!@seen || $seen[-1] != $d->{progress});
        return $d && $d->{state} eq 'done';
    }, 120, 0.1);
    is($d->{state}, 'done', 'the job is done') or diag(log_of($c));
    my @back = grep { $seen[$_] < $seen[$_ - 1] } 1 .. $#seen;
    ok(!@back, "progress never went back (@seen)");
    ok((grep { $_ > 0 && $_ < 100 } @seen), 'and was seen between 0 and '
       . '100 (the document is written about once a second)');
    stop($c);
};


subtest 'SIGTERM releases a long job, the next consumer finishes it' => sub {
    my $c = converter('--stop-grace', 0);
    add_job(job_id => 'j-long', video_fid => $long_fid,
            filename => 'long.mka');

    my ($mid, $d);
    wait_until(sub {
        $d = job('j-long');
        $mid = $d->{progress} if $d && $d->{state} eq 'converting'
                                 && $d->{progress} > 0
                                 && $d->{progress} < 100;
        return $mid;
    }, 60);
    ok($mid, "progress is reported while converting ($mid%)");

    my $rc = stop($c);
    is($rc, 0, 'exits 0 on SIGTERM');
    is(job('j-long')->{state}, 'queued', 'the job is queued again');
    like(log_of($c), qr/releasing the job/, 'it says it released it');

    my $c2 = converter('--claim-idle-ms', 1000, '--stop-grace', 600);
    wait_until(sub { (job('j-long') // {})->{state} eq 'converting' }, 30);

    # this one was asked to take its time: it finishes before exiting
    kill 'TERM', $c2->{pid};
    my $d2 = wait_state('j-long', 'done', 120);
    is($d2->{state}, 'done', 'the second consumer finishes it on SIGTERM')
        or diag(log_of($c2));
    is($d2->{attempts}, 1, 'the released delivery did not count');
    is(stop($c2), 0, 'and exits 0');

    my ($stored, $real, $chunks) = digests($d2->{mp3_fid});
    cmp_ok($chunks, '>', 2, "the MP3 has chunks between the first and last ($chunks)");
    is($stored, $real, "metadata.sha256 is the digest of the MP3's bytes");
    unlike(log_of($c2), qr/no spool file/,
           'taken from the spool file, not read back from the database');
    is(pending(), 0, 'acknowledged');
};


subtest 'kill -9 in the middle of a job: it still completes exactly once' => sub {
    my $before = mp3_count();
    my $c = converter();
    add_job(job_id => 'j-killed', video_fid => $long_fid,
            filename => 'killed.mka');

    my $mid = wait_until(sub {
        my $d = job('j-killed');
        return $d && $d->{state} eq 'converting' && $d->{progress} > 0
               && $d->{progress} < 100;
    }, 60);
    ok($mid, 'the job was mid-conversion');

    kill9($c);

    # this one has no TMPDIR to spool the MP3 in: it reads it back
    my $c2 = converter_env({ TMPDIR => "$dir/no-such-dir" },
                           '--claim-idle-ms', 1000);
    my $d = wait_state('j-killed', 'done', 180);
    is($d->{state}, 'done', 'another consumer took it over and finished it')
        or diag(log_of($c2));
    is($d->{attempts}, 2, 'on its second delivery');
    is(mp3_count(), $before + 1, 'exactly one MP3 for it');
    my ($stored, $real, $chunks) = digests($d->{mp3_fid});
    cmp_ok($chunks, '>', 2, "the MP3 has chunks between the first and last ($chunks)");
    like(log_of($c2), qr/no spool file in \Q$dir\E\/no-such-dir.*read back/,
         'with no spool file the MP3 is read back for its digest');
    is($stored, $real, 'its metadata.sha256 is the digest of its bytes');
    is(scalar(grep { $_->{job_id} eq 'j-killed' && ($_->{state} // '') eq 'done' }
              stream('mp3')), 1, 'announced once');
    is(pending(), 0, 'acknowledged');
    stop($c2);
};


subtest 'a job seen again after it was done is only announced again' => sub {
    my $before = mp3_count();
    my $announced = sub {
        scalar(grep { $_->{job_id} eq 'j-ok-1' } stream('mp3'));
    };

    # the Redis restart above emptied the streams: count from here
    my $earlier = $announced->();
    my $c = converter();
    add_job(job_id => 'j-ok-1', video_fid => $short_fid,
            filename => 'Holiday – 2024.mp4', bitrate => 128);
    wait_until(sub { $announced->() > $earlier && pending() == 0 }, 30);
    like(log_of($c), qr/already done/, 'it sees the job is done');
    is(mp3_count(), $before, 'no second MP3');
    is($announced->(), $earlier + 1, 'announced again');
    is(pending(), 0, 'acknowledged');

    my $m = metrics();
    like($m, qr/^converter_jobs_total\{result="done"\} 1$/m,
         'metrics: jobs by result');
    like($m, qr/^converter_job_duration_seconds_count 1$/m,
         'metrics: a duration histogram');
    like($m, qr/^converter_jobs_in_flight 0$/m, 'metrics: in flight');
    like($m, qr/^converter_bytes_read_total \d+$/m, 'metrics: bytes read');
    stop($c);
};


subtest 'the silent-FLAC bomb: over --max-duration fails before encoding' => sub {
    # 30 minutes of silence in a few hundred KB: at 320 kb/s a 72 MB MP3
    my $bomb = silent_flac('bomb.flac', 1800);
    ok(-s $bomb < 1024 * 1024, 'the FLAC is small: ' . (-s $bomb) . ' bytes');
    my $fid = upload($bomb, 'bomb.flac', 261120);
    my $before = mp3_count();
    my $chunks = py("print(db['mp3s.chunks'].count_documents({}))") + 0;

    my $c = converter('--max-duration', 600);
    add_job(job_id => 'j-bomb', video_fid => $fid, owner_id => 'u-bomb',
            filename => 'bomb.flac', bitrate => 320);

    my $d = wait_state('j-bomb', 'failed');
    is($d->{error}, 'input is 30:00 long, over the limit of 10:00',
       'the job fails with the length and the limit') or diag(log_of($c));
    is($d->{error_code}, 'too_long', 'error_code too_long');
    is($d->{attempts}, 1, 'on the first attempt: no retry');
    is(mp3_count(), $before, 'no MP3 stored');
    is(py("print(db['mp3s.chunks'].count_documents({}))") + 0, $chunks,
       'and no MP3 chunks');
    is(pending(), 0, 'acknowledged');
    like(metrics(), qr/^converter_refusals_total\{limit="duration"\} 1$/m,
         'metrics: refusals by limit');
    stop($c);
};


subtest '--user-daily-minutes: the day\'s minutes are counted per user' => sub {
    my $two = upload(silent_flac('two.flac', 120), 'two.flac', 261120);
    my $c = converter('--user-daily-minutes', 2);

    add_job(job_id => 'j-day-1', video_fid => $short_fid,
            owner_id => 'u-day', filename => 'short.mp4');
    is(wait_state('j-day-1', 'done')->{state}, 'done', 'a 3-second job is done')
        or diag(log_of($c));

    my $key = 'audex:usage:u-day:' . POSIX::strftime('%Y%m%d', gmtime);
    my $total = redis('HGET', $key, 'total');
    ok(abs($total - 3 / 60) < 0.01, "counted in $key: $total minutes");
    my $ttl = redis('TTL', $key);
    ok($ttl > 86400 && $ttl <= 172800, "kept two days: ttl $ttl");

    add_job(job_id => 'j-day-2', video_fid => $two, owner_id => 'u-day',
            filename => 'two.flac');
    my $d = wait_state('j-day-2', 'failed');
    like($d->{error}, qr/^daily conversion limit of 2 minutes reached /,
         'two more minutes pass the limit: the job fails with the reason');
    is($d->{error_code}, 'daily_limit', 'error_code daily_limit');
    ok(!$d->{mp3_fid}, 'no MP3');

    add_job(job_id => 'j-day-3', video_fid => $two, owner_id => 'u-other',
            filename => 'two.flac');
    is(wait_state('j-day-3', 'done')->{state}, 'done',
       'another user\'s day is their own');
    like(metrics(), qr/^converter_refusals_total\{limit="daily_minutes"\} 1$/m,
         'metrics: the refusal counted');
    stop($c);
};


subtest '--distribute: a long job as segment jobs over two converters' => sub {
    my $c = { rate => 44100, ch => 2, secs => 50 };
    my $src = make_source($dir, $c);
    my $fid = upload_derived($src, 'lecture.wav');
    my @seg = ('--distribute', 1, '--encoders', 1, '--parallel-min', 0,
               '--segment', 10);
    my @ports = (free_port(), free_port());
    my @c = map { converter(@seg, '--metrics-port', $_) } @ports;

    add_job(job_id => 'j-seg', video_fid => $fid, filename => 'lecture.wav',
            quality => 2);
    my $d = wait_state('j-seg', 'done', 120);
    is($d->{state}, 'done', 'the job is done')
        or diag(join "\n", map { log_of($_) } @c);
    is($d->{progress}, 100, 'progress 100');

    my $logs = join '', map { log_of($_) } @c;
    like($logs, qr/cut into 4 segments of 10\.0 s/, 'cut into 4 segments');
    my @ok = map { scalar(() = log_of($_) =~ /segment \d: ok /g) } @c;
    ok($ok[0] > 0 && $ok[1] > 0, "both converters encoded segments (@ok)");
    is($ok[0] + $ok[1], 4, 'each segment once');
    my @m = map { metrics_at($_) =~ /converter_segments_total\{result="ok"\} (\d+)/
                  ? $1 : -1 } @ports;
    is("@m", "@ok", 'converter_segments_total{result="ok"} says so');
    my $hits = 0;
    $hits += $_ for map { metrics_at($_) =~ /^converter_gridfs_cache_hits_total (\d+)$/m
                          ? $1 : 0 } @ports;
    cmp_ok($hits, '>', 0, "the segments' header chunks came from the "
           . "converters' chunk cache ($hits)");

    my $meta = decode_json(py("d = db['mp3s.files'].find_one({'_id': "
        . "ObjectId('$d->{mp3_fid}')})['metadata']; print(json.dumps("
        . "{'segments': d['segments'], 'encoders': d['encoders']}))"));
    is($meta->{segments}, 4, 'metadata.segments: 4');
    is($meta->{encoders}, 2, 'metadata.encoders: the two converters');

    my $one = "$dir/seg-one.mp3";
    my ($rc, $err) = run_cmd($bin, 'convert', $src, $one, '--quality', 2,
                             '--encoders', 1);
    is($rc, 0, 'one encoder converts the same input') or diag($err);
    my $par = download($d->{mp3_fid}, "$dir/seg-par.mp3");

    my ($bad, $report) = mp3val($par);
    is($bad, 0, 'mp3val is happy') or diag($report);
    is(frames($par), frames($one), "frame count as one encoder's");
    my ($ds, $d1, $dp) = map { decode($_, $c) } $src, $one, $par;
    is(length($dp), length($ds), 'decoded length is the source\'s, to the '
       . 'sample');

    my @joins;
    push @joins, $1 * $2 while $logs =~ /join at frame (\d+) of (\d+) samples/g;
    is(scalar(@joins), 3, 'three joins');
    my @fail = join_failures(\@joins, $c, $ds, $d1, $dp);
    ok(!@fail, 'the joins pass the measure (Audex::Joins)')
        or diag(join "\n", @fail[0 .. ($#fail > 9 ? 9 : $#fail)]);

    is(frames_left('j-seg'), '', "the segments' frames are removed from Redis");
    is(redis('EXISTS', 'audex:segments:j-seg') =~ s/\s+$//r, '0',
       'and their record');
    stop($_) for @c;
};


subtest '--distribute: a segment reads the video no further than its end' => sub {
    # small chunks: a segment spans many, and one more read is seen
    my $chunk = 16384;
    my $mp4 = make_media($dir, { file => 'talk.mp4', seconds => 42,
                                 audio => ['aac 44100 2 128k'] });
    my $fid = upload_derived($mp4, 'talk.mp4', $chunk);
    my $c = converter('--distribute', 1, '--encoders', 1,
                      '--parallel-min', 0, '--segment', 10);

    add_job(job_id => 'j-reach', video_fid => $fid, filename => 'talk.mp4');
    my $d = wait_state('j-reach', 'done', 120);
    is($d->{state}, 'done', 'the job is done') or diag(log_of($c));
    stop($c);

    # each segment's source logs its highest chunk as it closes, between
    # "encoding segment i" and "segment i: ok" (one segment thread)
    my (%highest, $seg);
    for (split /\n/, log_of($c)) {
        $seg = $1 if /encoding segment (\d+) /;
        if (defined $seg && /GridFS file $fid: \d+ chunk\(s\) read from the store, the highest (\d+)/) {
            $highest{$seg} = $1;
            undef $seg;
        }
    }

    # the packet that holds a segment's end sample and the one after it
    # are the last it needs (audio packets by pts, from the index)
    my ($rc, $err, $out) = run_cmd('ffprobe', '-v', 'error',
        '-select_streams', 'a:0', '-show_entries',
        'stream=start_pts:packet=pts,pos,size', '-of', 'json', $mp4);
    die "ffprobe: $err" if $rc;
    my $probe = decode_json($out);
    my $origin = $probe->{streams}[0]{start_pts} // 0;
    my @pk = sort { $a->{pts} <=> $b->{pts} } @{ $probe->{packets} };

    my (@checked, %seen);
    for my $e (grep { $_->{job_id} eq 'j-reach' } stream('video.segments')) {
        next if $e->{end} < 0;          # the last one reads to the end
        next if $seen{ $e->{index} }++; # queued again: the same range
        my $ts = $origin + $e->{end};
        my ($k) = grep { $pk[$_]{pts} <= $ts
                         && ($_ == $#pk || $pk[$_ + 1]{pts} > $ts) } 0 .. $#pk;
        my $last = 0;
        for (grep { $_ <= $#pk } $k, $k + 1) {
            my $end = $pk[$_]{pos} + $pk[$_]{size} - 1;
            $last = $end if $end > $last;
        }
        my $may = int($last / $chunk);
        my $i = $e->{index};
        ok(defined $highest{$i} && $highest{$i} <= $may,
           "segment $i read up to chunk " . ($highest{$i} // '?')
           . ", its last packets are in chunk $may");
        push @checked, $i;
    }
    is(scalar(@checked), 3, 'three segments checked (the fourth reads to '
       . 'the end)') or diag(log_of($c));
};


subtest '--distribute: a converter killed mid-segment costs that segment' => sub {
    my $c = { rate => 44100, ch => 2, secs => 120 };
    my $src = make_source($dir, $c);
    my $fid = upload_derived($src, 'long.wav');
    my @seg = ('--distribute', 1, '--encoders', 1, '--parallel-min', 0,
               '--segment', 30, '--claim-idle-ms', 2000);

    # b takes the job and cuts it; a comes later and only takes segments
    my $b = converter(@seg, '--metrics-port', free_port());
    add_job(job_id => 'j-segkill', video_fid => $fid, filename => 'long.wav',
            quality => 0);
    ok(wait_until(sub { log_of($b) =~ /cut into 4 segments/ }, 60),
       'b cut the job') or diag(log_of($b));

    my $a = converter(@seg, '--metrics-port', free_port());
    my ($index, $entry);
    wait_until(sub {
        ($index, $entry) = log_of($a) =~
            /encoding segment (\d) \(entry (\S+), delivery 1\)/;
        return defined $index;
    }, 60, 0.02);
    ok(defined $index, 'a took a segment') or diag(log_of($a));
    kill9($a);
    is(redis('HGET', 'audex:segments:j-segkill', $index) =~ s/\s+$//r,
       'queued', "a was killed in the middle of segment $index");

    my $d = wait_state('j-segkill', 'done', 180);
    is($d->{state}, 'done', 'the job is done all the same')
        or diag(log_of($b));
    is($d->{attempts}, 1, 'on its first delivery: the job never failed');
    like(log_of($b), qr/encoding segment $index \(entry \Q$entry\E, delivery 2\)/,
         'b took the killed segment over');

    my %times;
    my $logs = log_of($a) . log_of($b);
    $times{$1}++ while $logs =~ /encoding segment (\d) /g;
    is(join(' ', map { $times{$_} // 0 } 0 .. 3),
       join(' ', map { $_ == $index ? 2 : 1 } 0 .. 3),
       'that segment was encoded twice, every other once');

    joined_mp3_ok($d, 'segkill', $src, $c);
    stop($b);
};


subtest '--distribute: an encoder that outlives its plan writes nothing' => sub {
    my $c = { rate => 44100, ch => 2, secs => 120 };
    my $src = make_source($dir, $c);
    my $fid = upload_derived($src, 'replan.wav');
    my @seg = ('--distribute', 1, '--encoders', 1, '--parallel-min', 0);

    # b cuts the job in four; a takes a segment and is stopped in it
    my $b = converter(@seg, '--segment', 30, '--metrics-port', free_port());
    add_job(job_id => 'j-replan', video_fid => $fid,
            filename => 'replan.wav', quality => 0);
    ok(wait_until(sub { log_of($b) =~ /cut into 4 segments/ }, 60),
       'b cut the job in four') or diag(log_of($b));

    # a renews its claim every claim-idle/3 (200 s): resumed, it does not
    # look before it finishes, whoever took the entry meanwhile
    my $a = converter(@seg, '--segment', 30, '--claim-idle-ms', 600000,
                      '--metrics-port', free_port());
    my $index;
    wait_until(sub {
        ($index) = log_of($a) =~ /encoding segment (\d) \(entry/;
        return defined $index;
    }, 60, 0.02);
    ok(defined $index, 'a took a segment') or diag(log_of($a));
    kill 'STOP', $a->{pid};
    is(redis('HGET', 'audex:segments:j-replan', $index) =~ s/\s+$//r,
       'queued', "a was stopped in the middle of segment $index");

    # b dies; c takes the job over and cuts it otherwise, and finishes
    kill9($b);
    my $next = converter(@seg, '--segment', 20, '--claim-idle-ms', 2000,
                         '--metrics-port', free_port());
    my $d = wait_state('j-replan', 'done', 120);
    is($d->{state}, 'done', 'c finished the job') or diag(log_of($next));
    like(log_of($next), qr/cut into 5 segments of 20\.0 s/,
         'in five segments');
    ok(wait_until(sub { redis('EXISTS', 'audex:segments:j-replan') =~ /^0/ },
                  30), 'and removed its record');

    # a goes on and finishes its segment of the old plan
    kill 'CONT', $a->{pid};
    ok(wait_until(sub { log_of($a) =~ /segment $index: its job was finished or cut again meanwhile: dropped/ }, 60),
       'a drops the segment it finished') or diag(log_of($a));
    is(redis('EXISTS', 'audex:segments:j-replan') =~ s/\s+$//r, '0',
       'the job\'s record is not written again');
    is(frames_left('j-replan'), '', 'nor frames stored');

    joined_mp3_ok($d, 'replan', $src, $c);
    stop($_) for $a, $next;
};


subtest '--distribute: frames gone from Redis are encoded again' => sub {
    my $c = { rate => 44100, ch => 2, secs => 50 };
    my $src = make_source($dir, $c);
    my $fid = upload_derived($src, 'gone.wav');
    my @seg = ('--distribute', 1, '--encoders', 1, '--parallel-min', 0,
               '--segment', 10, '--claim-idle-ms', 60000);

    # b cuts the job and is stopped; a encodes while b sleeps
    my $b = converter(@seg, '--metrics-port', free_port());
    add_job(job_id => 'j-seggone', video_fid => $fid,
            filename => 'gone.wav', bitrate => 128);
    ok(wait_until(sub { log_of($b) =~ /cut into 4 segments/ }, 60, 0.01),
       'b cut the job') or diag(log_of($b));
    kill 'STOP', $b->{pid};

    my $a = converter(@seg, '--metrics-port', free_port());
    ok(wait_until(sub { redis('HGET', 'audex:segments:j-seggone', 2)
                        =~ /^ok / }, 60),
       'a encoded segment 2') or diag(log_of($a));

    # as an eviction or an expiry would: b has not joined it yet
    is(redis('DEL', 'audex:segmp3:j-seggone:2') =~ s/\s+$//r, '1',
       "segment 2's frames are removed");
    kill 'CONT', $b->{pid};

    my $d = wait_state('j-seggone', 'done', 120);
    is($d->{state}, 'done', 'the job is done')
        or diag(log_of($b), log_of($a));
    is($d->{attempts}, 1, 'on its first delivery');
    like(log_of($b), qr/segment 2: its frames are gone from redis: queued again/,
         'the coordinator queued that segment again');

    my %times;
    my $logs = log_of($a) . log_of($b);
    $times{$1}++ while $logs =~ /encoding segment (\d) /g;
    is($times{2}, 2, 'segment 2 was encoded twice');

    joined_mp3_ok($d, 'seggone', $src, $c);
    is(frames_left('j-seggone'), '', 'no frames left in Redis');
    stop($_) for $a, $b;
};


subtest '--distribute: a coordinator killed after joining segments' => sub {
    my $c = { rate => 44100, ch => 2, secs => 120 };
    my $src = make_source($dir, $c);
    my $fid = upload_derived($src, 'coord.wav');
    my @seg = ('--distribute', 1, '--encoders', 1, '--parallel-min', 0,
               '--segment', 10, '--claim-idle-ms', 2000);

    my $b = converter(@seg, '--metrics-port', free_port());
    add_job(job_id => 'j-coord', video_fid => $fid, filename => 'coord.wav',
            bitrate => 128);

    # segment 0 done and its frames gone from Redis: joined into the
    # output, which dies with b
    my $joined = wait_until(sub {
        return redis('HGET', 'audex:segments:j-coord', 0) =~ /^ok /
               && redis('EXISTS', 'audex:segmp3:j-coord:0') =~ /^0/;
    }, 60, 0.01);
    ok($joined, 'b joined segment 0') or diag(log_of($b));
    kill9($b);

    my $a = converter(@seg, '--metrics-port', free_port());
    my $d = wait_state('j-coord', 'done', 120);
    is($d->{state}, 'done', 'another converter finished the job')
        or diag(log_of($a));
    is($d->{attempts}, 2, 'on its second delivery');
    like(log_of($a), qr/(\d+) segment\(s\) done before but their frames are gone: queued again/,
         'it queued the segments b had joined again, at once');

    joined_mp3_ok($d, 'coord', $src, $c);
    is(frames_left('j-coord'), '', 'no frames left in Redis');
    stop($a);
};


subtest 'configuration: defaults < environment < flags, --help' => sub {
    my ($rc, $err, $out) = run_cmd($bin, '--help');
    is($rc, 0, '--help exits 0');
    like($out, qr/--video-queue S.*\n.*env VIDEO_QUEUE, default "video"/,
         '--help shows flag, variable and default');
    like($out, qr/METRICS_PORT, default "9100"/, 'METRICS_PORT 9100');

    my $c = converter_env({ VIDEO_QUEUE => 'from-env' });
    wait_until(sub { log_of($c) =~ /connected/ }, 20);
    like(log_of($c), qr/stream from-env /, 'the environment sets it');
    stop($c);

    $c = converter_env({ VIDEO_QUEUE => 'from-env' },
                       '--video-queue', 'from-flag');
    wait_until(sub { log_of($c) =~ /connected/ }, 20);
    like(log_of($c), qr/stream from-flag /, 'a flag beats it');
    stop($c);

    ($rc, $err) = run_cmd($bin, '--jobs', '0');
    is($rc, 2, 'a bad value exits 2');
    like($err, qr/jobs: "0" \(from flag\) is not a number from 1 to 64/,
         'naming the setting and where it came from');
};

done_testing();


# --- helpers

sub converter { converter_env({}, @_) }


sub converter_env {
    my ($env, @args) = @_;
    my $log = "$dir/converter-" . (scalar(@converters) + 1) . '.log';
    open my $fh, '>', $log or die "$log: $!";
    close $fh;

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        $ENV{$_} = $env->{$_} for keys %$env;
        exec $bin, 'run', '--redis-url', $redis,
             '--mongodb-uri', $mongo . $mongo_opts,
             '--metrics-addr', '127.0.0.1', '--metrics-port', $metrics_port,
             '--log-level', 'debug', @args
            or die "exec: $!";
    }

    my $c = { pid => $pid, log => $log };
    push @converters, $c;
    return $c;
}


# SIGTERM and wait; returns the exit status
sub stop {
    my ($c) = @_;
    return $c->{status} if defined $c->{status};

    kill 'TERM', $c->{pid};
    my $deadline = time + 180;
    while (time < $deadline) {
        if (waitpid($c->{pid}, WNOHANG) == $c->{pid}) {
            return $c->{status} = $? >> 8;
        }
        sleep 0.1;
    }
    kill 'KILL', $c->{pid};
    waitpid($c->{pid}, 0);
    return $c->{status} = -1;
}


# SIGKILL, reaped: stop() leaves it be
sub kill9 {
    my ($c) = @_;
    kill 'KILL', $c->{pid};
    waitpid($c->{pid}, 0);
    $c->{status} = -9;
}


# a segmented job's MP3, downloaded as NAME.mp3: valid, and decoding to
# exactly the source's samples
sub joined_mp3_ok {
    my ($d, $name, $src, $c) = @_;
    my $par = download($d->{mp3_fid}, "$dir/$name.mp3");
    my ($bad, $report) = mp3val($par);
    is($bad, 0, 'mp3val is happy') or diag($report);
    is(length(decode($par, $c)), length(decode($src, $c)),
       'decoded length is the source\'s, to the sample');
}


# the Redis keys of a job's segment frames still there, one per line
sub frames_left {
    my ($job) = @_;
    return redis('--scan', '--pattern', "audex:segmp3:$job:*") =~ s/\s+$//r;
}


sub log_of {
    my ($c) = @_;
    return do { local (@ARGV, $/) = ($c->{log}); <> } // '';
}


sub wait_until {
    my ($cond, $timeout, $every) = @_;
    my $deadline = time + ($timeout // 30);
    while (time < $deadline) {
        my $v = $cond->();
        return $v if $v;
        sleep($every // 0.2);
    }
    return;
}


sub wait_state {
    my ($id, $state, $timeout) = @_;
    my $doc;
    wait_until(sub {
        $doc = job($id);
        return $doc && $doc->{state} eq $state;
    }, $timeout // 60);
    return $doc // {};
}


sub redis {
    my ($rc, $err, $out) = run_cmd('redis-cli', '-u', $redis, @_);
    die "redis-cli @_: $err" if $rc != 0;
    return $out;
}


sub add_job {
    my (@kv) = @_;
    redis('XADD', 'video', '*', @kv);
}


# the entries of a stream as hashes, with their id as _id
sub stream {
    my ($name) = @_;
    my $list = decode_json(redis('--json', 'XRANGE', $name, '-', '+'));
    return map { { _id => $_->[0], @{ $_->[1] } } } @$list;
}


sub pending {
    my $summary = decode_json(redis('--json', 'XPENDING', 'video',
                                    'converter'));
    return $summary->[0];
}


sub pending_ids {
    my $list = decode_json(redis('--json', 'XPENDING', 'video', 'converter',
                                 '-', '+', '100'));
    return map { $_->[0] } @$list;
}


sub entry_job {
    my ($id) = @_;
    my ($e) = grep { $_->{_id} eq $id } stream('video');
    return $e ? $e->{job_id} : '';
}


sub metrics { metrics_at($metrics_port) }


sub metrics_at {
    my ($port) = @_;
    my ($rc, $err, $out) = run_cmd('curl', '-s',
        "http://127.0.0.1:$port/metrics");
    return $out;
}


# Python with pymongo: argv[1] is the MongoDB URI, argv[2] the Redis URL,
# then the caller's arguments
sub py {
    my ($code, @args) = @_;
    my $prelude = <<'PY';
import sys, json, pymongo, gridfs
from bson import ObjectId
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
PY
    my ($rc, $err, $out) = run_cmd('/usr/bin/python3', '-c',
                                   "$prelude\n$code", $mongo, $redis, @args);
    die "python: $err" if $rc != 0;
    return $out;
}


# seconds of digital silence as FLAC: a few KB a minute
sub silent_flac {
    my ($file, $secs) = @_;
    my ($rc, $err) = run_cmd('ffmpeg', '-nostdin', '-loglevel', 'error', '-y',
        '-f', 'lavfi', '-i', 'anullsrc=r=44100:cl=stereo', '-t', $secs,
        '-c:a', 'flac', "$dir/$file");
    die "ffmpeg: $err" if $rc != 0;
    return "$dir/$file";
}


sub upload {
    my ($path, $name, $chunk) = @_;
    my $out = py(<<'PY', $path, $name, $chunk);
fs = gridfs.GridFS(db, collection='videos')
with open(sys.argv[3], 'rb') as f:
    print(fs.put(f, filename=sys.argv[4], chunk_size=int(sys.argv[5])))
PY
    chomp $out;
    return $out;
}


# as nginx's /upload stores a file: chunk _ids derived from (files_id, n)
# (lib/audex_schema.h), so each chunk is one lookup by _id on FerretDB; a
# file pymongo stores is read by {files_id, n}, a scan of the bucket
sub upload_derived {
    my ($path, $name, $chunk) = @_;
    my $out = py(<<'PY', $path, $name, $chunk // 261120);
import datetime, hashlib, struct
fid, n, length = ObjectId(), 0, 0
with open(sys.argv[3], 'rb') as f:
    while True:
        data = f.read(int(sys.argv[5]))
        if not data:
            break
        cid = hashlib.sha256(fid.binary + struct.pack('>i', n)).digest()[:12]
        db['videos.chunks'].insert_one({'_id': ObjectId(cid),
            'files_id': fid, 'n': n, 'data': data})
        n, length = n + 1, length + len(data)
db['videos.files'].insert_one({'_id': fid, 'length': length,
    'chunkSize': int(sys.argv[5]), 'uploadDate': datetime.datetime.utcnow(),
    'filename': sys.argv[4]})
print(fid)
PY
    chomp $out;
    return $out;
}


sub download {
    my ($fid, $path) = @_;
    py(<<'PY', $fid, $path);
fs = gridfs.GridFSBucket(db, bucket_name='mp3s')
with open(sys.argv[4], 'wb') as f:
    f.write(fs.open_download_stream(ObjectId(sys.argv[3])).read())
PY
    return $path;
}


# metadata.sha256 of an MP3 as stored, the SHA-256 of its bytes as
# pymongo reads them back, and its number of chunks
sub digests {
    my ($fid) = @_;
    my $out = py(<<'PY', $fid);
import hashlib
f = ObjectId(sys.argv[3])
doc = db['mp3s.files'].find_one({'_id': f})
data = gridfs.GridFSBucket(db, bucket_name='mp3s').open_download_stream(f).read()
print(doc['metadata'].get('sha256'), hashlib.sha256(data).hexdigest(),
      db['mp3s.chunks'].count_documents({'files_id': f}))
PY
    return split ' ', $out;
}


sub job {
    my ($id) = @_;
    my $out = py(<<'PY', $id);
d = db.jobs.find_one({'_id': sys.argv[3]})
if d:
    for k in ('video_fid', 'mp3_fid'):
        if k in d and d[k] is not None: d[k] = str(d[k])
    for k in ('created_at', 'updated_at'):
        if k in d: d[k] = d[k].isoformat()
print(json.dumps(d))
PY
    return decode_json($out);
}


sub mp3_count {
    my $out = py("print(db['mp3s.files'].count_documents({}))");
    chomp $out;
    return $out;
}
