package Audex::Joins;

# What the segment-parallel encoding tests measure (t/converter_parallel.t
# for one converter's threads, t/converter_jobs.t for segment jobs spread
# over converters): a music-like source, decoding to PCM, frame counts,
# and the join measure.
#
# The measure: segmental SNR over 50 ms windows (10 log10 of signal
# energy over difference energy).  Around every join, in each window of
# the 500 ms centred on it, the parallel MP3 against the source is at most
# 0.5 dB below the single encoder's MP3 against the source, and the
# parallel MP3 differs from the single encoder's by at least 25 dB less
# than the signal: less than either differs from the source (the coding
# noise, 15 .. 25 dB here), and what two LAME runs that started at
# different places differ by once warm.
#
#     my $in  = make_source($dir, { rate => 44100, ch => 2, secs => 30 });
#     my @bad = join_failures(\@join_samples, $c, decode($in, $c),
#                             decode($one_mp3, $c), decode($par_mp3, $c));

use strict;
use warnings;

use Exporter 'import';
use Audex::Media qw(run_cmd);

our @EXPORT_OK = qw(make_source decode frames join_failures audio_frames
                    lame_crcs);

# music-like test audio: gliding tones, 3.5 kHz bursts, noise bursts
sub make_source {
    my ($dir, $c) = @_;
    my $l = '0.3*sin(2*PI*(220+40*sin(0.5*t))*t)*(0.6+0.4*sin(3*t))'
          . '+0.2*sin(2*PI*3520*t)*lt(mod(t\,0.5)\,0.05)'
          . '+0.1*(random(0)-0.5)';
    my $r = '0.3*sin(2*PI*(330+30*sin(0.7*t))*t)'
          . '+0.15*(random(1)-0.5)*lt(mod(t\,1.3)\,0.2)';
    my $expr = $c->{ch} == 2 ? "$l|$r" : $l;
    my $path = "$dir/src-$c->{rate}-$c->{ch}-$c->{secs}.wav";

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
    my ($pos, $size) = info_frame($mp3);

    return substr($mp3, $pos + $size);
}


# the LAME tag's music CRC and tag CRC, each as written and as computed
# (CRC-16, polynomial 0x8005 reflected, over the audio frames and over
# the Info/Xing frame up to the tag CRC): four numbers, or () if the file
# has no LAME tag
sub lame_crcs {
    my ($mp3) = @_;
    my ($pos, $size) = info_frame($mp3);
    my $frame = substr($mp3, $pos, $size);

    return () unless $frame =~ /Info|Xing/;
    my $x = $-[0];
    my $flags = unpack 'N', substr($frame, $x + 4, 4);
    my $p = $x + 8;
    $p += 4 if $flags & 1;              # frames
    $p += 4 if $flags & 2;              # bytes
    $p += 100 if $flags & 4;            # TOC
    $p += 4 if $flags & 8;              # quality
    return () if $p + 36 > $size;

    my ($music, $tag) = unpack 'nn', substr($frame, $p + 32, 4);

    return ($music, crc16(substr($mp3, $pos + $size)),
            $tag, crc16(substr($frame, 0, $p + 34)));
}


my @crc16 = map {
    my $c = $_;
    $c = ($c & 1) ? ($c >> 1) ^ 0xa001 : $c >> 1 for 1 .. 8;
    $c;
} 0 .. 255;

sub crc16 {
    my $c = 0;
    $c = ($c >> 8) ^ $crc16[($c ^ $_) & 0xff] for unpack 'C*', $_[0];
    return $c;
}


# where the first frame (the Info/Xing frame) is, and its size
sub info_frame {
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

    return ($pos, $size);
}

1;
