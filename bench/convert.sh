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
#   build/bin/audex-converter convert --encoders 1 IN OUT     one encoder
#   build/bin/audex-converter convert --encoders K IN OUT     K = the cores,
#                                      segment-parallel (workers/converter/
#                                      mp3par.c)
#   ffmpeg -i IN -vn -c:a libmp3lame -b:a 192k OUT
# and prints wall seconds, the ratios K encoders / one encoder (target:
# at most 1.15/K) and K encoders / ffmpeg, and the peak RSS of each.  Run
# it on an otherwise idle machine: the wall clock follows the load.  The
# audio is pink noise, the hardest case for an MP3 encoder.

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

cores=$(nproc)

printf '%-12s %8s %8s %8s %7s %7s %7s %9s %9s %9s\n' input \
    one_s "k${cores}_s" ffmpeg_s k/one target k/ffm one_rss k_rss ffm_rss

for input in "$dir/10min-720p.mp4" "$dir/60min-audio.mp4"; do
    name=$(basename "$input" .mp4)

    # one encoder, then one per core (segment-parallel, mp3par.c)
    set -- $(measure "$bin" convert --log-level error --encoders 1 \
                     "$input" "$dir/$name.one.mp3")
    o_s=$1 o_rss=$3

    set -- $(measure "$bin" convert --log-level error --encoders "$cores" \
                     --parallel-min 0 "$input" "$dir/$name.par.mp3")
    k_s=$1 k_rss=$3

    set -- $(measure ffmpeg -nostdin -hide_banner -loglevel error -y \
                     -i "$input" -vn -c:a libmp3lame -b:a 192k \
                     "$dir/$name.ffmpeg.mp3")
    f_s=$1 f_rss=$3

    printf '%-12s %8s %8s %8s %7s %7s %7s %5s MiB %5s MiB %5s MiB\n' \
        "$(echo "$name" | cut -c1-12)" "$o_s" "$k_s" "$f_s" \
        "$(ratio "$k_s" "$o_s")" \
        "$(awk -v k="$cores" 'BEGIN { printf "%.2f", 1.15 / k }')" \
        "$(ratio "$k_s" "$f_s")" \
        $((o_rss / 1024)) $((k_rss / 1024)) $((f_rss / 1024))
done

echo "wall seconds; k/one = $cores encoders / one encoder (target: at most" \
     "1.15/k), k/ffm = $cores encoders / the ffmpeg CLI (below 1: audex" \
     "is faster); peak RSS"
