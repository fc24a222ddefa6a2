#!/usr/bin/env bash
# A long job through GridFS and the Redis stream, as the service runs it:
# one converter with one encoder, one converter with an encoder per core
# (threads, workers/converter/mp3par.c), and two converter processes of
# one encoder each taking the job's segment jobs (--distribute 1,
# workers/converter/segments.c), against the ffmpeg CLI on the same file
# in the same run.
#
#   bench/distribute.sh [INPUT]     (default: build/bench/60min-audio.mp4,
#                                    which bench/convert.sh makes)
#
# Starts its own Redis and FerretDB (build/bin/ferretdb) on free ports,
# stores INPUT in the videos bucket as nginx's /upload does (chunk _ids
# derived from the file and the index), then times each job from XADD to
# "done" in its job document, ROUNDS times (default 2) in turn.  Prints
# the mean wall seconds and the ratios against one encoder (target for K
# processes or threads: at most 1.15/K) and against ffmpeg (run before
# and after), and FerretDB's and the converters' CPU seconds.  Run it on
# an otherwise idle machine.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
input=${1:-$top/build/bench/60min-audio.mp4}
bin=$top/build/bin/audex-converter
ferretdb=${FERRETDB:-$top/build/bin/ferretdb}
work=$top/build/bench/distribute

if [ ! -s "$input" ]; then
    echo "bench/distribute.sh: $input missing (bench/convert.sh makes it)" >&2
    exit 1
fi

for f in "$bin" "$ferretdb"; do
    if [ ! -x "$f" ]; then
        echo "bench/distribute.sh: $f missing: run make first" >&2
        exit 1
    fi
done

port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rm -rf "$work"
mkdir -p "$work/ferretdb"

redis_port=$(port)
mongo_port=$(port)
redis=redis://127.0.0.1:$redis_port/0
mongo=mongodb://127.0.0.1:$mongo_port/audex_bench

pids=()
stop_all() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap stop_all EXIT

redis-server --bind 127.0.0.1 --port "$redis_port" --save '' \
    --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
"$ferretdb" --handler=sqlite --sqlite-url="file:$work/ferretdb/" \
    --state-dir="$work/ferretdb" --listen-addr="127.0.0.1:$mongo_port" \
    --telemetry=disable --log-level=error --debug-addr=- \
    >"$work/ferretdb.log" 2>&1 &
pids+=($!)
ferretdb_pid=$!

for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 \
        && (exec 3<>"/dev/tcp/127.0.0.1/$mongo_port") 2>/dev/null && break
    sleep 0.1
done

py() {
    /usr/bin/python3 -c "
import sys, time, json, pymongo
from bson import ObjectId
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
$1" "$mongo" "${@:2}"
}

echo "storing $(basename "$input") in GridFS" >&2
fid=$(py '
import datetime, hashlib, struct
fid, n, length = ObjectId(), 0, 0
with open(sys.argv[2], "rb") as f:
    while True:
        data = f.read(261120)
        if not data:
            break
        cid = hashlib.sha256(fid.binary + struct.pack(">i", n)).digest()[:12]
        db["videos.chunks"].insert_one({"_id": ObjectId(cid),
            "files_id": fid, "n": n, "data": data})
        n, length = n + 1, length + len(data)
db["videos.files"].insert_one({"_id": fid, "length": length,
    "chunkSize": 261120, "uploadDate": datetime.datetime.utcnow(),
    "filename": "bench.mp4"})
print(fid)' "$input")

converter() {
    local log=$1
    shift
    "$bin" run --redis-url "$redis" --mongodb-uri "$mongo" \
        --metrics-port 0 --user-daily-minutes 0 --log-level info "$@" \
        >>"$work/$log" 2>&1 &
    pids+=($!)
    cpids+=($!)
}

# seconds from XADD to "done"
job() {
    local id=$1
    py '
t0 = time.time()
import subprocess
subprocess.run(["redis-cli", "-p", sys.argv[2], "XADD", "video", "*",
    "job_id", sys.argv[3], "video_fid", sys.argv[4], "owner_id", "bench",
    "filename", "bench.mp4", "bitrate", "192"], check=True,
    stdout=subprocess.DEVNULL)
while True:
    d = db.jobs.find_one({"_id": sys.argv[3]})
    if d and d.get("state") in ("done", "failed"):
        break
    time.sleep(0.1)
if d["state"] != "done":
    sys.exit("job %s: %s" % (sys.argv[3], d.get("error")))
print("%.2f" % (time.time() - t0))' "$redis_port" "$id" "$fid"
}

# CPU seconds (user + system) a process has used so far
cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' \
        "/proc/$1/stat"
}

# one run: the converters that take the job, then stopped; its wall
# seconds, then FerretDB's and the converters' CPU seconds in it
run() {
    local id=$1 s db0 db1 c conv
    shift
    cpids=()
    "$@"
    sleep 1
    db0=$(cpu "$ferretdb_pid")
    s=$(job "$id")
    db1=$(cpu "$ferretdb_pid")
    conv=0
    for c in "${cpids[@]}"; do
        conv=$(awk -v a="$conv" -v b="$(cpu "$c")" 'BEGIN { print a + b }')
    done
    kill "${cpids[@]}"
    wait "${cpids[@]}" 2>/dev/null || true
    echo "$s $(awk -v a="$db0" -v b="$db1" 'BEGIN { printf "%.1f", b - a }') $conv"
}

cores=$(nproc)
one() { converter one.log --encoders 1; }
threads() { converter threads.log --encoders "$cores"; }
pair() {
    converter pair-a.log --encoders 1 --distribute 1
    converter pair-b.log --encoders 1 --distribute 1
}

# the ffmpeg CLI on the same file: wall seconds
ffmpeg_run() {
    local t0
    t0=$(date +%s.%N)
    ffmpeg -nostdin -hide_banner -loglevel error -y -i "$input" -vn \
        -c:a libmp3lame -b:a 192k "$work/ffmpeg.mp3"
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
}

# ffmpeg before and after the jobs, their mean the reference: the speed
# of a shared machine drifts over the minutes a run takes
echo "converting: ffmpeg, one encoder, $cores threads, two processes," \
     "ffmpeg" >&2
ffm_a=$(ffmpeg_run)
rounds=${ROUNDS:-2}
for kind in one thr pair; do
    eval "${kind}_s=0 ${kind}_db=0 ${kind}_cv=0"
done

# add a run's figures to a kind's sums
add() {
    local kind=$1 s db cv
    read -r s db cv <<<"$2"
    eval "${kind}_s=\$(awk -v a=\"\$${kind}_s\" -v b=$s 'BEGIN { print a + b }')"
    eval "${kind}_db=\$(awk -v a=\"\$${kind}_db\" -v b=$db 'BEGIN { print a + b }')"
    eval "${kind}_cv=\$(awk -v a=\"\$${kind}_cv\" -v b=$cv 'BEGIN { print a + b }')"
}

# the kinds in turn, rounds times: drift spreads over all of them
for r in $(seq "$rounds"); do
    add one "$(run "bench-one-$r" one)"
    add thr "$(run "bench-threads-$r" threads)"
    add pair "$(run "bench-pair-$r" pair)"
done

for v in one_s one_db one_cv thr_s thr_db thr_cv pair_s pair_db pair_cv; do
    eval "$v=\$(awk -v a=\"\$$v\" -v r=$rounds 'BEGIN { printf \"%.2f\", a / r }')"
done
ffm_b=$(ffmpeg_run)
ffm_s=$(awk -v a="$ffm_a" -v b="$ffm_b" 'BEGIN { printf "%.2f", (a + b) / 2 }')

ratio() {
    awk -v a="$1" -v f="$2" 'BEGIN { printf "%.2f", (f > 0) ? a / f : 0 }'
}

segments=$(grep -ho 'cut into [0-9]* segments' "$work"/pair-*.log | head -1)
taken=$(for f in "$work"/pair-a.log "$work"/pair-b.log; do
            grep -c 'segment [0-9]*: ok' "$f" || true
        done | paste -sd/)

f='%-22s %8s %8s %8s %8s %8s %8s\n'
printf "$f" run wall_s /one target /ffmpeg db_cpu_s conv_cpu_s
printf "$f" "one encoder" "$one_s" 1.00 - "$(ratio "$one_s" "$ffm_s")" \
    "$one_db" "$one_cv"
printf "$f" "$cores threads" "$thr_s" "$(ratio "$thr_s" "$one_s")" \
    "$(awk -v k="$cores" 'BEGIN { printf "%.2f", 1.15 / k }')" \
    "$(ratio "$thr_s" "$ffm_s")" "$thr_db" "$thr_cv"
printf "$f" "2 processes" "$pair_s" "$(ratio "$pair_s" "$one_s")" 0.58 \
    "$(ratio "$pair_s" "$ffm_s")" "$pair_db" "$pair_cv"
printf '%-22s %8s   (mean of %s before and %s after)\n' "ffmpeg CLI" \
    "$ffm_s" "$ffm_a" "$ffm_b"
echo "jobs through GridFS and Redis (XADD to done, 192k CBR), each the" \
     "mean of $rounds runs taken in turn with the others; 2 processes:" \
     "${segments:-not cut}, segments each process took over the rounds ${taken}; db_cpu_s: FerretDB's" \
     "CPU seconds in the run, on the same cores as the converters'"
