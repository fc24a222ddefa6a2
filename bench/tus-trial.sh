#!/usr/bin/env bash
# The page's resumable upload, tried as issue #16's "done when" says: a
# 300 MB video uploaded from the web page in headless Chromium, its
# connections killed twice (ss -K, as root) and nginx restarted once
# (SIGTERM, then started again), against a system like `make run`'s; then
# the job followed to its MP3.  Prints, for each interruption, the bytes
# that reached nginx and were sent again (from nginx's log of every
# request's length), and checks the stored video's SHA-256 against the
# file's.  Slow (minutes): not part of `make test`.
#
# usage: bench/tus-trial.sh [VIDEO]
#
# Without VIDEO, 300 MB of H.264 and AAC (5 minutes, testsrc2 with noise
# at 8 Mb/s, a sine) is made once with ffmpeg into build/bench/.  The
# system runs in build/trial-run/ on AUDEX_PORT (18680) and the ports
# after it, and is stopped at the end.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/build/bench
video=${1:-$out/trial-300mb.mp4}
port=${AUDEX_PORT:-18680}

export AUDEX_RUN_DIR=$top/build/trial-run
export AUDEX_PORT=$port AUDEX_REDIS_PORT=$((port + 1))
export AUDEX_MONGO_PORT=$((port + 2)) AUDEX_SMTP_PORT=$((port + 3))
export AUDEX_CONVERTER_METRICS_PORT=$((port + 4))
export AUDEX_NOTIFIER_METRICS_PORT=$((port + 5))
unset MONGODB_URI REDIS_URL SMTP_URL

run=$AUDEX_RUN_DIR
nginx=${AUDEX_NGINX:-/usr/sbin/nginx}
log() { printf 'audex tus-trial: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "ss -K needs root"; exit 1; }
mkdir -p "$out"

if [ ! -s "$video" ]; then
    log "making $video (a few minutes)"
    nice ffmpeg -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=300,noise=alls=30:allf=t" \
        -f lavfi -i "sine=frequency=440:duration=300:sample_rate=44100" \
        -c:v libx264 -preset ultrafast -b:v 8M -maxrate 8M -bufsize 4M \
        -pix_fmt yuv420p -c:a aac -b:a 128k "$video.part"
    mv "$video.part" "$video"
fi

"$top/scripts/run.sh" start
trap '"$top/scripts/run.sh" stop' EXIT
# shellcheck disable=SC1091
. "$run/env"

# every request with its length, the tus offset and when it ended
conf=$run/nginx/nginx.conf
trial_log=$run/logs/trial.log
: > "$trial_log"
sed -i "/^ *access_log .* audex;/a\\
    log_format trial '\$msec \$request_time \$request_method \$uri \$status '\\
                     '\$request_length \$http_upload_offset \$content_length';\\
    access_log $trial_log trial;" "$conf"
args=(-p "$run/nginx/" -c "$conf")
[ "$(id -u)" != 0 ] || args+=(-g "user $(stat -c %U "$top");")
"$nginx" "${args[@]}" -t -q
"$nginx" "${args[@]}" -s reload
sleep 1

email=trial@example.com
password=pw-trial-16
printf '%s\n' "$password" | "$top/build/bin/audex-user" add "$email" \
    >/dev/null 2>&1 || true

export AUDEX_WEB_DIR=$top/build/web
export AUDEX_TRIAL_KILL="ss -K dst 127.0.0.1 dport = :$port >/dev/null 2>&1"
export AUDEX_TRIAL_PID=$run/nginx.pid
export AUDEX_TRIAL_RESTART="kill -TERM \$(cat $run/nginx.pid);
    while kill -0 \$(cat $run/nginx.pid 2>/dev/null) 2>/dev/null; do sleep 0.1; done;
    sleep 2; '$nginx' ${args[*]@Q}"

log "uploading $(stat -c %s "$video") bytes of $video"
node "$top/bench/tus-trial.js" "$AUDEX_URL" "$email" "$password" "$video" \
    "$out" "$trial_log" | tee "$out/trial.out"

job=$(sed -n 's/^job //p' "$out/trial.out")
/usr/bin/python3 - "$job" "$video" <<'PY'
import hashlib, sys, pymongo, os
job, video = sys.argv[1], sys.argv[2]
port = os.environ['AUDEX_MONGO_PORT']
db = pymongo.MongoClient('mongodb://127.0.0.1:%s/audex' % port).audex
j = db.jobs.find_one({'_id': job})
f = db['videos.files'].find_one({'_id': j['video_fid']})
h = hashlib.sha256()
with open(video, 'rb') as fh:
    for b in iter(lambda: fh.read(1 << 20), b''):
        h.update(b)
print('job %s: %s; stored video %d bytes, SHA-256 %s the file\'s' % (
    job, j['state'], f['length'],
    'equal to' if f['metadata']['sha256'] == h.hexdigest() else 'NOT'))
print('jobs for this video: %d' % db.jobs.count_documents(
    {'video_fid': j['video_fid']}))
PY
mp3val -si "$out/trial.mp3" 2>/dev/null | tail -n 3 || true
ffprobe -v error -show_entries format=duration -of csv=p=0 "$out/trial.mp3"
