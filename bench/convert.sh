#!/bin/sh
# audex-converter convert against ffmpeg's own libmp3lame path, same run.
#
#   bench/convert.sh            (from the repository root, after make)
#
# Makes, once, and keeps in build/bench/:
#   10min-720p.mp4   10 minutes of 720p25 H.264 with 48 kHz stereo AAC
#   60min-audio.mp4  60 minutes of 48 kHz stereo AAC with 160x90 1 fps
#                    video: long enough to show memory growth, cheap to make
# then converts each with
#   build/bin/audex-converter convert IN OUT
#   ffmpeg -i IN -vn -c:a libmp3lame -b:a 192k OUT
# and prints wall and CPU (user + system) seconds, the ratios audex/ffmpeg
# and peak RSS of both.  On a shared machine the wall clock follows the
# load; the CPU time is the fairer comparison.  The audio is pink noise,
# the hardest case for an MP3 encoder.

set -eu

bin=build/bin/audex-converter
dir=build/bench

if [ ! -x "$bin" ]; then
    echo "bench/convert.sh: $bin missing: run make first" >&2
    exit 1
fi

for tool in ffmpeg /usr/bin/time; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "bench/convert.sh: $tool is needed" >&2
        exit 1
    fi
done

mkdir -p "$dir"

# pink noise, a different stream per channel, joined to stereo
noise() {
    echo "anoisesrc=c=pink:r=48000:a=0.25:d=$1:seed=1[l];" \
         "anoisesrc=c=pink:r=48000:a=0.25:d=$1:seed=2[r];" \
         "[l][r]join=inputs=2:channel_layout=stereo[a]"
}

make_input() {
    out=$1 secs=$2 size=$3 rate=$4

    if [ -s "$out" ]; then
        return
    fi

    echo "making $out ($secs s, ${size} at $rate fps; once)" >&2

    ffmpeg -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=$size:rate=$rate:duration=$secs" \
        -filter_complex "$(noise "$secs")" \
        -map 0:v -map '[a]' \
        -c:v libx264 -preset ultrafast -pix_fmt yuv420p \
        -c:a aac -b:a 160k -movflags +faststart \
        -f mp4 "$out.part"
    mv "$out.part" "$out"
}

# runs a command under /usr/bin/time -v; prints "wall cpu kib"
measure() {
    log=$dir/time.log

    /usr/bin/time -v "$@" >/dev/null 2>"$log" || {
        echo "bench/convert.sh: failed: $*" >&2
        cat "$log" >&2
        exit 1
    }

    awk -F': ' '
        /Elapsed \(wall clock\)/ {
            n = split($2, t, ":")
            s = (n == 3) ? t[1] * 3600 + t[2] * 60 + t[3] : t[1] * 60 + t[2]
        }
        /User time \(seconds\)/      { cpu += $2 }
        /System time \(seconds\)/    { cpu += $2 }
        /Maximum resident set size/ { rss = $2 }
        END { printf "%.2f %.2f %d\n", s, cpu, rss }
    ' "$log"
}

ratio() {
    awk -v a="$1" -v f="$2" 'BEGIN { printf "%.2f", (f > 0) ? a / f : 0 }'
}

make_input "$dir/10min-720p.mp4" 600 1280x720 25
make_input "$dir/60min-audio.mp4" 3600 160x90 1

printf '%-12s %8s %8s %6s %8s %8s %6s %12s %12s\n' input \
    audex_s ffmpeg_s ratio audex_cpu ffm_cpu ratio audex_rss ffmpeg_rss

for input in "$dir/10min-720p.mp4" "$dir/60min-audio.mp4"; do
    name=$(basename "$input" .mp4)

    set -- $(measure "$bin" convert --log-level error "$input" \
                     "$dir/$name.audex.mp3")
    a_s=$1 a_cpu=$2 a_rss=$3

    set -- $(measure ffmpeg -nostdin -hide_banner -loglevel error -y \
                     -i "$input" -vn -c:a libmp3lame -b:a 192k \
                     "$dir/$name.ffmpeg.mp3")
    f_s=$1 f_cpu=$2 f_rss=$3

    printf '%-12s %8s %8s %6s %8s %8s %6s %8s KiB %8s KiB\n' \
        "$(echo "$name" | cut -c1-12)" "$a_s" "$f_s" "$(ratio "$a_s" "$f_s")" \
        "$a_cpu" "$f_cpu" "$(ratio "$a_cpu" "$f_cpu")" "$a_rss" "$f_rss"
done

echo "ratio = audex / ffmpeg (below 1: audex is faster); _s wall, _cpu" \
     "user + system seconds"
