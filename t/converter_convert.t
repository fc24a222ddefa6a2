# audex-converter convert IN OUT: containers and codecs in, MP3 out.
#
# Each block makes its input with the ffmpeg CLI (Audex::Media), converts
# it with build/bin/audex-converter and checks the MP3 with ffprobe and
# mp3val: rate, channels, CBR bitrate or VBR, the played duration against
# the source audio stream's (within 50 ms), the ID3v2 title and encoder,
# the Info/Xing frame, and copy versus encode.  Failing inputs must exit
# with the documented status, name the reason and leave no output.
#
# Sections:
#   media     how to make the input, see Audex::Media::make_media()
#   moov      "first" or "last": the MP4 index position the input has
#   args      more arguments for "convert"
#   expect    rate, channels, bitrate (kbit/s or "vbr"), path ("copied"
#             or "encoded", default encoded), source (audio stream the
#             duration is compared with, default 0), title
#   error     exit, reason (the bracketed class), message (a regex)

use strict;
use warnings;

use lib 't/lib';
use Test::Base;
use Audex::Media qw(make_media probe decoded_seconds mp3val mp4_top_boxes
                    run_cmd);

use Encode qw(decode_utf8 encode_utf8);
use File::Temp qw(tempdir);

# AUDEX_CONVERTER_BIN: another build of it (make asan runs the
# sanitized one over the same media)
my $bin = $ENV{AUDEX_CONVERTER_BIN} || 'build/bin/audex-converter';
my $dir = tempdir('audex-convert-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# 13 checks an output, 4 a failure, 1 the MP4 index; 1 + 5 stand alone
my $n = 0;
$n += ($_->error ? 4 : 13) + ($_->moov ? 1 : 0) for blocks;
plan tests => $n + 6;

ok(-x $bin, "$bin is built") or BAIL_OUT("$bin missing: run make first");

for my $block (blocks) {
    my $name = $block->name;
    my %media = kv($block->media);
    $media{audio} = [ split /\s*,\s*/, $media{audio} // '' ];
    $media{file} = decode_utf8($media{file}) unless utf8::is_utf8($media{file});
    $media{file} = encode_utf8($media{file});

    # "missing: 1" names an input that is never made
    my $in = $media{missing} ? "$dir/$media{file}"
                             : make_media($dir, \%media);

    if (my $moov = $block->moov) {
        my @boxes = grep { $_ eq 'moov' || $_ eq 'mdat' } mp4_top_boxes($in);
        is($boxes[0], $moov eq 'first' ? 'moov' : 'mdat',
           "$name: the input has its index $moov");
    }

    my $out = "$dir/" . ($media{file} =~ s/\.[^.]+$//r) . '.out.mp3';
    my @args = split ' ', $block->args // '';
    my ($rc, $err) = run_cmd($bin, 'convert', $in, $out, @args);

    if (my $e = $block->error) {
        check_failure($name, { kv($e) }, $rc, $err, $out);
        next;
    }

    check_output($name, { kv($block->expect) }, \%media, $in, $out, $rc,
                 $err);
}

# the progress bar: only on a terminal, and never on a pipe
{
    my $in = make_media($dir, { file => 'bar.mkv', seconds => 2,
                                audio => ['flac 44100 2'] });
    my ($rc, $err) = run_cmd($bin, 'convert', $in, "$dir/bar.mp3");
    is($rc, 0, 'progress: converts with stderr on a pipe');
    unlike($err, qr/\r|\[#/, 'progress: no bar when stderr is no terminal');

    my $cmd = "$bin convert '$in' '$dir/bar-tty.mp3'";
    my ($src, $serr, $tty) = run_cmd('script', '-qec', $cmd, '/dev/null');
    like($tty, qr/\r\[#*\.*\] +\d+%/, 'progress: a bar on a terminal');
}

# usage errors never touch the output
{
    my ($rc, $err) = run_cmd($bin, 'convert', 'a.mp4', "$dir/u.mp3",
                             '--bitrate', '128', '--quality', '2');
    is($rc, 2, 'usage: --bitrate and --quality together exit 2');
    ($rc, $err) = run_cmd($bin, 'convert', 'a.mp4', "$dir/u.mp3",
                          '--quality', '10');
    ok($rc == 2 && !-e "$dir/u.mp3", 'usage: --quality 10 is refused');
}


sub check_output {
    my ($name, $x, $media, $in, $out, $rc, $err) = @_;

    is($rc, 0, "$name: exit status 0") or diag($err);
    unlike($err, qr/\r/, "$name: no progress bar on a pipe");

    my $p = eval { probe($out) } || { streams => [], format => {} };
    my @s = @{ $p->{streams} };
    ok(@s == 1 && $s[0]{codec_name} eq 'mp3', "$name: one MP3 stream");
    my $s = $s[0] || {};

    is($s->{sample_rate}, $x->{rate}, "$name: $x->{rate} Hz");
    is($s->{channels}, $x->{channels}, "$name: $x->{channels} channel(s)");

    my $tag = info_tag($out);
    if ($x->{bitrate} eq 'vbr') {
        is($tag, 'Xing', "$name: a Xing frame (VBR)");
        my %sizes = map { $_ => 1 } packet_sizes($out);
        ok(keys %sizes > 2, "$name: frames of several sizes (VBR)");

    } else {
        is($tag, 'Info', "$name: an Info frame (CBR)");
        is($s->{bit_rate}, $x->{bitrate} * 1000,
           "$name: CBR $x->{bitrate} kbit/s");
    }

    my $path = $x->{path} // 'encoded';
    like($err, qr/: \S+ $path, /, "$name: $path");

    my $want = eval { decoded_seconds($in, $x->{source} // 0) } // -1;
    my $got = eval { decoded_seconds($out, 0) } // -100;
    ok(abs($got - $want) <= 0.05,
       "$name: plays $want s like the source (within 50 ms)")
        or diag("the MP3 plays $got s");

    my ($bad, $report) = mp3val($out);
    is($bad, 0, "$name: mp3val finds nothing wrong") or diag($report);

    open my $fh, '<:raw', $out;
    read($fh, my $magic, 3) if $fh;
    is($magic, 'ID3', "$name: starts with an ID3v2 tag");

    my $title = $x->{title} // decode_utf8($media->{file} =~ s/\.[^.]+$//r);
    $title = decode_utf8($title) unless utf8::is_utf8($title);
    my $tags = $p->{format}{tags} || {};
    is($tags->{title}, $title, "$name: ID3 title");
    is($tags->{encoder}, 'audex', "$name: ID3 encoder (TSSE) is audex");
}


sub check_failure {
    my ($name, $x, $rc, $err, $out) = @_;

    is($rc, $x->{exit}, "$name: exit status $x->{exit}") or diag($err);
    like($err, qr/\[$x->{reason}, (?:permanent|transient)\]/,
         "$name: reason $x->{reason}");
    like($err, qr/$x->{message}/, "$name: says \"$x->{message}\"");
    ok(!-e $out, "$name: no output left behind");
}


# "Info" or "Xing" from the first frame after the ID3v2 tag, or ''
sub info_tag {
    my ($path) = @_;
    open my $fh, '<:raw', $path or return '';
    local $/;
    my $data = <$fh>;
    my $off = 0;
    if (substr($data, 0, 3) eq 'ID3') {
        my @s = unpack 'C4', substr($data, 6, 4);
        $off = 10 + (($s[0] << 21) | ($s[1] << 14) | ($s[2] << 7) | $s[3]);
    }
    my $frame = substr($data, $off, 200);
    return $frame =~ /^\xff[\xe0-\xff].{5,40}?(Info|Xing)/s ? $1 : '';
}


sub packet_sizes {
    my ($path) = @_;
    my (undef, undef, $out) = run_cmd('ffprobe', '-v', 'error',
        '-show_entries', 'packet=size', '-of', 'csv=p=0', $path);
    return split /\s+/, $out;
}


sub kv {
    my ($text) = @_;
    return map { /^\s*(\w+)\s*:\s*(.*?)\s*$/ ? ($1, $2) : () }
           split /\n/, $text // '';
}


__DATA__

=== TEST 1: MP4/AAC with the index first (+faststart)
--- media
file: first.mp4
video: libx264
audio: aac 48000 2 128k
args: -movflags +faststart
--- moov: first
--- expect
rate: 48000
channels: 2
bitrate: 192



=== TEST 2: MP4/AAC with the index at the end (read by seeking)
--- media
file: last.mp4
video: libx264
audio: aac 44100 2 128k
--- moov: last
--- expect
rate: 44100
channels: 2
bitrate: 192



=== TEST 3: MKV/Opus
--- media
file: opus.mkv
video: libx264
audio: libopus 48000 2 96k
--- expect
rate: 48000
channels: 2
bitrate: 192



=== TEST 4: WebM/Vorbis, VBR on request
--- media
file: vorbis.webm
video: libvpx
audio: libvorbis 44100 2
--- args: --quality 2
--- expect
rate: 44100
channels: 2
bitrate: vbr



=== TEST 5: AVI with MP3 audio is copied, not re-encoded
--- media
file: lame.avi
video: mpeg4
audio: libmp3lame 44100 2 128k
--- expect
rate: 44100
channels: 2
bitrate: 128
path: copied



=== TEST 6: AVI with MP3 audio and --bitrate is re-encoded
--- media
file: lame-again.avi
video: mpeg4
audio: libmp3lame 44100 2 128k
--- args: --bitrate 96
--- expect
rate: 44100
channels: 2
bitrate: 96



=== TEST 7: MP3 in MP4 is copied with its encoder delay (edit list)
--- media
file: lame.mp4
video: libx264
audio: libmp3lame 44100 1 64k
--- expect
rate: 44100
channels: 1
bitrate: 64
path: copied



=== TEST 8: a plain 22.05 kHz MP3 is copied, gapless information kept
--- media
file: plain.mp3
audio: libmp3lame 22050 1 32k
--- expect
rate: 22050
channels: 1
bitrate: 32
path: copied



=== TEST 9: MOV/PCM
--- media
file: pcm.mov
video: mpeg4
audio: pcm_s16le 48000 2
--- expect
rate: 48000
channels: 2
bitrate: 192



=== TEST 10: MPEG-TS/AC-3
--- media
file: ac3.ts
video: mpeg2video
audio: ac3 48000 2 192k
--- expect
rate: 48000
channels: 2
bitrate: 192



=== TEST 11: MPEG-TS/MP2
--- media
file: mp2.ts
video: mpeg2video
audio: mp2 44100 2 192k
--- expect
rate: 44100
channels: 2
bitrate: 192



=== TEST 12: FLV/AAC, a title outside ISO-8859-1
--- media
file: Fête – live.flv
video: flv
audio: aac 44100 2 128k
--- expect
rate: 44100
channels: 2
bitrate: 192



=== TEST 13: 5.1 is downmixed to stereo
--- media
file: surround.mp4
video: libx264
audio: aac 48000 6 256k
--- expect
rate: 48000
channels: 2
bitrate: 192



=== TEST 14: 8 kHz mono stays 8 kHz mono (MPEG-2.5, LAME caps it at 64)
--- media
file: phone.wav
audio: pcm_s16le 8000 1
--- expect
rate: 8000
channels: 1
bitrate: 64



=== TEST 15: 96 kHz becomes 48 kHz
--- media
file: studio.flac
audio: flac 96000 2
--- expect
rate: 48000
channels: 2
bitrate: 192



=== TEST 16: 88.2 kHz becomes 44.1 kHz, VBR quality 0
--- media
file: studio88.mka
audio: pcm_s24le 88200 2
--- args: --quality 0
--- expect
rate: 44100
channels: 2
bitrate: vbr



=== TEST 17: two audio streams: the best one (stereo, 48 kHz) is taken
--- media
file: two.mkv
seconds: 3
video: libx264
audio: aac 22050 1 32k, aac 48000 2 160k 2
args: -disposition:a:0 0 -disposition:a:1 0
--- expect
rate: 48000
channels: 2
bitrate: 192
source: 1



=== TEST 18: a video without audio
--- media
file: silent-movie.mp4
video: libx264
--- error
exit: 4
reason: no_audio
message: no audio stream



=== TEST 19: an MP4 cut in half, index first
--- media
file: cut-first.mp4
seconds: 4
video: libx264
audio: aac 48000 2 128k
args: -movflags +faststart
truncate: 0.5
--- error
exit: 6
reason: corrupt
message: truncated input: the audio stops at



=== TEST 20: an MP4 cut in half, index last (so no index at all)
--- media
file: cut-last.mp4
seconds: 4
video: libx264
audio: aac 48000 2 128k
truncate: 0.5
--- error
exit: 6
reason: corrupt
message: corrupt or truncated input: not a media file



=== TEST 21: random bytes
--- media
file: noise.mp4
random: 200000
--- error
exit: 6
reason: corrupt
message: not a media file



=== TEST 22: a file that is not there
--- media
file: gone.mp4
missing: 1
--- error
exit: 3
reason: not_found
message: file missing
