# Segment-parallel encoding (workers/converter/mp3par.c): the MP3 that
# several LAME encoders make of one input against the one a single encoder
# makes of it.
#
# The input is synthetic but music-like (gliding tones, tone bursts, noise
# bursts: the bit reservoir works hard), made with the ffmpeg CLI.  For
# CBR, VBR and MPEG-2 (22.05 kHz mono, 576-sample frames, 255-byte
# reservoir) the converter runs once with one encoder and once with two on
# short segments (--segment 5), and the parallel MP3 must:
#
# - pass mp3val, and have the same frame count, ffprobe duration and
#   decoded length (sample-exact, the source's) as the single encoder's;
# - be indistinguishable at its joins (the converter logs where, -v) by
#   the measure Audex::Joins defines: segmental SNR over 50 ms windows
#   around each join, against the source and against the single
#   encoder's MP3.
#
# The measure is shown to catch what naive joining does: the two halves
# encoded apart and their frames concatenated fail it.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Audex::Media qw(probe mp3val run_cmd slurp);
use Audex::Joins qw(make_source decode frames join_failures audio_frames
                    lame_crcs);

use File::Temp qw(tempdir);

my $bin = $ENV{AUDEX_CONVERTER_BIN} || 'build/bin/audex-converter';
my $dir = tempdir('audex-parallel-XXXXXX', TMPDIR => 1, CLEANUP => 1);

ok(-x $bin, "$bin is built") or BAIL_OUT("$bin missing: run make first");

my @cases = (
    { name => 'CBR 192', rate => 44100, ch => 2, secs => 32,
      args => ['--bitrate', 192] },
    { name => 'VBR q2', rate => 44100, ch => 2, secs => 32,
      args => ['--quality', 2] },
    { name => 'MPEG-2 VBR q4 mono', rate => 22050, ch => 1, secs => 26,
      args => ['--quality', 4] },
);

my $naive_checked;

for my $c (@cases) {
    my $name = $c->{name};
    my $in = make_source($dir, $c);
    my $src = decode($in, $c);

    my ($one, $par) = ("$dir/one.mp3", "$dir/par.mp3");
    my ($rc, $err) = run_cmd($bin, 'convert', $in, $one, @{ $c->{args} },
                             '--encoders', 1, '--parallel-min', 0);
    is($rc, 0, "$name: one encoder") or diag($err);

    ($rc, $err) = run_cmd($bin, 'convert', $in, $par, @{ $c->{args} },
                          '--encoders', 2, '--parallel-min', 0,
                          '--segment', 5, '-v');
    is($rc, 0, "$name: two encoders") or diag($err);

    my @joins;
    while ($err =~ /join at frame (\d+) of (\d+) samples/g) {
        push @joins, $1 * $2;
    }
    my $want = int($c->{secs} / 5.1);
    ok(@joins >= $want - 1, "$name: " . scalar(@joins) . " joins logged")
        or diag($err);

    my ($bad, $text) = mp3val($par);
    is($bad, 0, "$name: mp3val finds nothing wrong") or diag($text);

    my ($p1, $pp) = (probe($one), probe($par));
    is($pp->{streams}[0]{duration}, $p1->{streams}[0]{duration},
       "$name: ffprobe duration as one encoder's");
    is(frames($par), frames($one), "$name: frame count as one encoder's");

    # LAME's own tag checks the helper; the joined file's tag is ours
    my @c1 = lame_crcs(slurp($one));
    ok(@c1 && $c1[0] == $c1[1] && $c1[2] == $c1[3],
       "$name: one encoder's LAME tag CRCs are right") or diag("@c1");
    my @cp = lame_crcs(slurp($par));
    ok(@cp && $cp[0] == $cp[1] && $cp[2] == $cp[3],
       "$name: the joined file's music CRC and tag CRC are right")
        or diag("@cp");

    my ($d1, $dp) = (decode($one, $c), decode($par, $c));
    is(length($dp), length($src), "$name: decoded length is the source's, "
       . "to the sample");
    is(length($d1), length($src), "$name: (so is one encoder's)");

    my @fail = join_failures(\@joins, $c, $src, $d1, $dp);
    ok(@joins && !@fail, "$name: the joins pass the measure")
        or diag(join "\n", @fail[0 .. ($#fail > 9 ? 9 : $#fail)]);

    next if $naive_checked++;

    # naive: encode both sides of the first join apart, concatenate
    my $cut = $joins[0];
    my ($a, $b) = ("$dir/a.wav", "$dir/b.wav");
    for ([$a, "atrim=end_sample=$cut"], [$b, "atrim=start_sample=$cut"]) {
        ($rc, $err) = run_cmd('ffmpeg', '-v', 'error', '-y', '-i', $in,
                              '-af', $_->[1], $_->[0]);
        die "ffmpeg: $err" if $rc;
    }
    my $naive = "$dir/naive.mp3";
    for ($a, $b) {
        ($rc, $err) = run_cmd($bin, 'convert', $_, "$_.mp3",
                              @{ $c->{args} }, '--encoders', 1);
        die "convert $_: $err" if $rc;
    }
    open my $fh, '>:raw', $naive or die "$naive: $!";
    print $fh audio_frames(slurp("$a.mp3")), audio_frames(slurp("$b.mp3"));
    close $fh;

    my $dn = decode($naive, $c);
    my $n = length($dn) < length($src) ? length($dn) : length($src);
    my @naive = join_failures([$joins[0]], $c, substr($src, 0, $n),
                              substr($d1, 0, $n), substr($dn, 0, $n));
    ok(@naive > 0, "$name: the measure fails naive concatenation ("
       . scalar(@naive) . " windows)");
}

done_testing();
