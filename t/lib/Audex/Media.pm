package Audex::Media;

# Test media made with the ffmpeg CLI at test time, and probes of what
# came out.
#
#     my $path = make_media($dir, {
#         file     => 'in.mp4',          # the container follows the name
#         seconds  => 3,
#         video    => 'libx264',         # optional video encoder
#         audio    => ['aac 48000 2 128k', 'mp2 44100 1 - 2'],
#                                        # codec, rate, channels, bitrate
#                                        # ("-": the codec's default),
#                                        # seconds if not the file's
#         args     => '-movflags +faststart',   # more output options
#         truncate => 0.5,               # then keep this share of bytes
#     });
#     my $path = make_media($dir, { file => 'x.bin', random => 100000 });
#
# Every channel of every audio stream is a sine of its own frequency, so a
# mixed-up channel or stream changes the audio.  Failures die with
# ffmpeg's own message: a test that cannot make its input fails, it is
# not skipped.

use strict;
use warnings;

use Encode ();
use Exporter 'import';
use File::Temp ();
use JSON::PP qw(decode_json);

our @EXPORT_OK = qw(make_media probe decoded_seconds mp3val mp4_top_boxes
                    run_cmd slurp);

my %layouts = (1 => 'mono', 2 => 'stereo', 6 => '5.1');


sub make_media {
    my ($dir, $spec) = @_;
    my $path = "$dir/$spec->{file}";

    if ($spec->{random}) {
        # the same bytes every run: a failure must be reproducible
        srand($spec->{seed} // 1);
        open my $fh, '>:raw', $path or die "$path: $!";
        print $fh join '', map { chr int rand 256 } 1 .. $spec->{random};
        close $fh;
        return $path;
    }

    my $secs = $spec->{seconds} || 3;
    my (@in, @map, @out);
    my $n = 0;

    if ($spec->{video}) {
        push @in, '-f', 'lavfi', '-i',
            "testsrc=size=320x240:rate=25:duration=$secs";
        push @map, '-map', "$n:v";
        push @out, '-c:v', $spec->{video}, '-pix_fmt', 'yuv420p';
        push @out, '-preset', 'ultrafast' if $spec->{video} eq 'libx264';
        push @out, '-deadline', 'realtime' if $spec->{video} =~ /vpx/;
        $n++;
    }

    my $a = 0;
    for my $s (@{ $spec->{audio} || [] }) {
        my ($codec, $rate, $ch, $br, $len) = split ' ', $s;
        $len ||= $secs;
        my $layout = $layouts{$ch} or die "no layout for $ch channels";
        my $expr = join '|', map {
            sprintf '0.3*sin(2*PI*%d*t)', 220 + 110 * $_ + 37 * $a
        } 0 .. $ch - 1;

        # aevalsrc lasts exactly $secs, whatever its rate
        push @in, '-f', 'lavfi', '-i',
            "aevalsrc=$expr:s=$rate:c=$layout:d=$len";
        push @map, '-map', "$n:a";
        push @out, "-c:a:$a", $codec, "-ar:a:$a", $rate;
        push @out, "-b:a:$a", $br if $br && $br ne '-';
        $n++;
        $a++;
    }

    push @out, split ' ', $spec->{args} if $spec->{args};

    my ($rc, $err) = run_cmd('ffmpeg', '-nostdin', '-hide_banner',
                             '-loglevel', 'error', '-y', @in, @map, @out,
                             $path);
    die "ffmpeg could not make $spec->{file}: $err" if $rc != 0;

    if ($spec->{truncate}) {
        my $size = -s $path;
        truncate $path, int($size * $spec->{truncate})
            or die "truncate $path: $!";
    }

    return $path;
}


# ffprobe's view: { streams => [...], format => {...} }
sub probe {
    my ($path) = @_;
    my ($rc, $err, $out) = run_cmd('ffprobe', '-v', 'error', '-of', 'json',
                                   '-show_streams', '-show_format', $path);
    die "ffprobe $path: $err" if $rc != 0;
    return decode_json($out);
}


# Seconds of audio a player gets from audio stream $index (a:$index):
# decoded samples, after encoder delay and padding are trimmed.
sub decoded_seconds {
    my ($path, $index) = @_;
    my @sel = ('-select_streams', 'a:' . ($index // 0));

    my ($rc, $err, $out) = run_cmd('ffprobe', '-v', 'error', @sel,
        '-show_entries', 'stream=sample_rate', '-of', 'json', $path);
    die "ffprobe $path: $err" if $rc != 0;
    my $rate = decode_json($out)->{streams}[0]{sample_rate}
        or die "ffprobe $path: no audio stream $index";

    ($rc, $err, $out) = run_cmd('ffprobe', '-v', 'error', @sel,
        '-show_entries', 'frame=nb_samples', '-of', 'json', $path);
    die "ffprobe $path: $err" if $rc != 0;

    my $samples = 0;
    $samples += $_->{nb_samples} for @{ decode_json($out)->{frames} };
    return $samples / $rate;
}


# mp3val's report: (number of WARNING/ERROR lines, full text)
sub mp3val {
    my ($path) = @_;
    my ($rc, $err, $out) = run_cmd('mp3val', $path);
    my $text = $out . $err;
    my $bad = () = $text =~ /^(?:WARNING|ERROR)\b/mg;
    $bad++ if $rc != 0;
    return ($bad, $text);
}


# The top-level box types of an MP4 file, in order: ('ftyp', 'moov', ...)
sub mp4_top_boxes {
    my ($path) = @_;
    open my $fh, '<:raw', $path or die "$path: $!";
    my ($pos, @boxes) = (0);

    while (read($fh, my $hdr, 8) == 8) {
        my ($size, $type) = unpack 'Na4', $hdr;
        if ($size == 1) {
            read($fh, my $big, 8) == 8 or last;
            my ($hi, $lo) = unpack 'NN', $big;
            $size = $hi * 4294967296 + $lo;
        }
        push @boxes, $type;
        last if $size < 8;
        $pos += $size;
        seek $fh, $pos, 0 or last;
    }
    close $fh;
    return @boxes;
}


# a file's bytes
sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or die "$path: $!";
    local $/;
    return scalar <$fh>;
}


# (exit status, stderr, stdout) of a command run without a shell
sub run_cmd {
    my @cmd = map { utf8::is_utf8($_) ? Encode::encode_utf8($_) : $_ } @_;
    my $err = File::Temp->new;

    my $pid = open my $fh, '-|' // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>', $err->filename or die "stderr: $!";
        open STDIN, '<', '/dev/null';
        exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!";
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my $rc = $? >> 8;
    $rc = 128 + ($? & 127) if $? & 127;

    my $text = do { local (@ARGV, $/) = ($err->filename); <> } // '';
    return ($rc, $text, $out);
}

1;
