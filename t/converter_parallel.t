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
# - be indistinguishable at its joins.  The measure: segmental SNR over
#   50 ms windows (10 log10 of signal energy over difference energy).
#   Around every join (the converter logs where, -v), in each window of
#   the 500 ms centred on it, the parallel MP3 against the source is at
#   most 0.5 dB below the single encoder's MP3 against the source, and
#   the parallel MP3 differs from the single encoder's by at least 25 dB
#   less than the signal: less than either differs from the source (the
#   coding noise, 15 .. 25 dB here), and what two LAME runs that started
#   at different places differ by once warm.
#
# The measure is shown to catch what naive joining does: the two halves
# encoded apart and their frames concatenated fail it.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Audex::Media qw(probe mp3val run_cmd slurp);

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
    my $in = make_source($c);
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


# music-like test audio: gliding tones, 3.5 kHz bursts, noise bursts
sub make_source {
    my ($c) = @_;
    my $l = '0.3*sin(2*PI*(220+40*sin(0.5*t))*t)*(0.6+0.4*sin(3*t))'
          . '+0.2*sin(2*PI*3520*t)*lt(mod(t\,0.5)\,0.05)'
          . '+0.1*(random(0)-0.5)';
    my $r = '0.3*sin(2*PI*(330+30*sin(0.7*t))*t)'
          . '+0.15*(random(1)-0.5)*lt(mod(t\,1.3)\,0.2)';
    my $expr = $c->{ch} == 2 ? "$l|$r" : $l;
    my $path = "$dir/src-$c->{rate}-$c->{ch}.wav";

    my ($rc, $err) = run_cmd('ffmpeg', '-v', 'error', '-y', '-f', 'lavfi',
        '-i', "aevalsrc=$expr:s=$c->{rate}:d=$c->{secs}",
        '-c:a', 'pcm_s16le', $path);
    die "ffmpeg: $err" if $rc;
    return $path;
}


# interleaved 32-bit float samples, as a player gets them
sub decode {
    my ($path, $c) = @_;
    my ($rc, $err, $out) = run_cmd('ffmpeg', '-v', 'error', '-i', $path,
        '-f', 'f32le', '-ac', $c->{ch}, '-ar', $c->{rate}, '-');
    die "ffmpeg $path: $err" if $rc;
    return $out;
}


sub frames {
    my ($path) = @_;
    my ($rc, $err, $out) = run_cmd('ffprobe', '-v', 'error', '-count_frames',
        '-select_streams', 'a:0', '-show_entries', 'stream=nb_read_frames',
        '-of', 'csv=p=0', $path);
    die "ffprobe $path: $err" if $rc;
    return $out =~ s/\s+//gr;
}


# the windows around the joins that fail the measure, as text
sub join_failures {
    my ($joins, $c, $src, $one, $par) = @_;
    my $w = int($c->{rate} * 0.05);
    my @fail;

    for my $j (@$joins) {
        for my $k (-5 .. 4) {
            my $at = $j + $k * $w;
            next if $at < 0 || ($at + $w) * $c->{ch} * 4 > length($src);

            my @s = window($src, $at, $w, $c);
            my @o = window($one, $at, $w, $c);
            my @p = window($par, $at, $w, $c);

            my ($so, $sp, $op) = (snr(\@s, \@o), snr(\@s, \@p),
                                  snr(\@o, \@p));
            my $t = sprintf '%.3f s', $at / $c->{rate};

            push @fail, sprintf('%s: %.1f dB against the source, one '
                                . 'encoder %.1f dB', $t, $sp, $so)
                if $sp < $so - 0.5;
            push @fail, sprintf('%s: %.1f dB from one encoder\'s', $t, $op)
                if $op < 25;
        }
    }

    return @fail;
}


sub window {
    my ($pcm, $at, $w, $c) = @_;
    my $bytes = $w * $c->{ch} * 4;
    return unpack 'f<*', substr($pcm, $at * $c->{ch} * 4, $bytes);
}


# 10 log10 (energy of a / energy of a - b); 99 when equal
sub snr {
    my ($a, $b) = @_;
    my ($s, $e) = (0, 0);
    for my $i (0 .. $#$a) {
        $s += $a->[$i] ** 2;
        $e += ($a->[$i] - $b->[$i]) ** 2;
    }
    return 99 if $e == 0;
    return -99 if $s == 0;
    return 10 * log($s / $e) / log(10);
}


# an MP3 file without its ID3v2 tag and its Info/Xing frame
sub audio_frames {
    my ($mp3) = @_;
    my $pos = 0;

    if (substr($mp3, 0, 3) eq 'ID3') {
        my @s = unpack 'C4', substr($mp3, 6, 4);
        $pos = 10 + (($s[0] << 21) | ($s[1] << 14) | ($s[2] << 7) | $s[3]);
    }

    my $h = unpack 'N', substr($mp3, $pos, 4);
    my $lsf = (($h >> 19) & 3) != 3;
    my @br = $lsf ? (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144,
                     160)
                  : (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224,
                     256, 320);
    my @rates = (($h >> 19) & 3) == 3 ? (44100, 48000, 32000)
              : (($h >> 19) & 3) == 2 ? (22050, 24000, 16000)
              : (11025, 12000, 8000);
    my $size = int(($lsf ? 72000 : 144000) * $br[($h >> 12) & 15]
                   / $rates[($h >> 10) & 3]) + (($h >> 9) & 1);

    return substr($mp3, $pos + $size);
}
