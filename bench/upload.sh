#!/usr/bin/env bash
# POST /upload against nginx storing the same body by itself.
#
# One body (default 1 GB: a real MP4 head, then noise) is sent with curl,
# streamed, to two nginx instances in turn, each with one worker:
#
#   audex      POST /upload: parsed as it arrives, stored in GridFS
#              (FerretDB started here, or MONGODB_URI), a job queued
#   reference  PUT with the DAV module: nginx writes the body to a temp
#              file (client_body_in_file_only) and renames it; no parsing,
#              no database, the least work that still stores every byte
#
# For each: throughput as curl saw it, and how much the worker's peak RSS
# (VmHWM) grew during the upload.  Prints the ratios audex/reference.
# Then the same body as a resumable upload (tus, `audex_tus`) to the same
# nginx: POST, then PATCHes of TUS_PIECE_MB (default 64) each, as curl
# sends them; the time is the sum of their times (the last one includes
# completion: the file's SHA-256 read back from its chunks), and the
# ratio tus / POST /upload says what resumability costs.
# Then the same upload to audex over TLS (a self-signed certificate made
# here), with HTTP/1.1 and with HTTP/2 (`listen ... ssl http2`): the
# ratio HTTP/2 / HTTP/1.1 says whether the protocol costs anything.
# All run in the same invocation on the same machine: only the ratios
# mean anything.
#
# usage: bench/upload.sh [MEGABYTES]     (needs build/ngx_http_audex_module.so)
#        TUS_PIECE_MB=16 bench/upload.sh 256
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
mb=${1:-1024}
tus_piece_mb=${TUS_PIECE_MB:-64}
module=${AUDEX_MODULE:-$top/build/ngx_http_audex_module.so}
nginx=${TEST_NGINX_BINARY:-/usr/sbin/nginx}
py=/usr/bin/python3

[ -f "$module" ] || { echo "bench: $module is missing: make" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/audex-bench-XXXXXX")
# an nginx started as root runs its worker as another user
chmod 0755 "$work"
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ -s "$work/nginx/logs/nginx.pid" ]; then
        kill -QUIT "$(cat "$work/nginx/logs/nginx.pid")" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    "$py" -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    local i
    for i in $(seq 1 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench: nothing listens on port $1" >&2
    exit 1
}

ferretdb_bin() {
    local c=${FERRETDB:-$top/build/bin/ferretdb}
    if [ -x "$c" ]; then echo "$c"; return; fi
    echo "bench: no $c; run scripts/setup.sh" >&2
    exit 1
}


# the backends

redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' \
    --appendonly no --dir "$work" > "$work/redis.log" 2>&1 &
pids+=($!)

if [ -n "${MONGODB_URI:-}" ]; then
    mongo_uri=${MONGODB_URI%%\?*}
    mongo_uri="${mongo_uri%/*}/audex_bench_$$"
else
    mongo_port=$(free_port)
    mkdir -p "$work/ferretdb"
    "$(ferretdb_bin)" --handler=sqlite --sqlite-url="file:$work/ferretdb/" \
        --state-dir="$work/ferretdb" --listen-addr="127.0.0.1:$mongo_port" \
        --telemetry=disable --log-level=error --debug-addr=- \
        > "$work/ferretdb.log" 2>&1 &
    pids+=($!)
    mongo_uri="mongodb://127.0.0.1:$mongo_port/audex_bench"
    wait_port "$mongo_port"
fi

wait_port "$redis_port"


# the body and a token

ffmpeg -nostdin -loglevel error -f lavfi -i "sine=d=1" -c:a aac \
    "$work/head.mp4"
{
    cat "$work/head.mp4"
    head -c $((mb * 1024 * 1024 - $(stat -c %s "$work/head.mp4"))) \
        /dev/urandom
} > "$work/body.mp4"
size=$(stat -c %s "$work/body.mp4")

head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > "$work/jwt.secret"
token=$("$py" -c 'import sys, time, jwt
key = open(sys.argv[1], "rb").read().rstrip(b"\n")
print(jwt.encode({"sub": "64b000000000000000000001",
                  "email": "bench@example.com",
                  "exp": int(time.time()) + 3600}, key, algorithm="HS256"))' \
    "$work/jwt.secret")


openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null


# one nginx, one worker; $1 is the location block

start_nginx() {
    local root=$work/nginx
    rm -rf "$root"
    mkdir -p "$root/conf" "$root/logs" "$root/store"
    chmod 0777 "$root/store"
    port=$(free_port)
    tls_port=$(free_port)

    cat > "$root/conf/nginx.conf" <<EOF
load_module $module;
daemon on;
worker_processes 1;
pid $root/logs/nginx.pid;
error_log $root/logs/error.log warn;
thread_pool audex threads=4;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $root/client_body;
    audex_mongodb_uri $mongo_uri;
    audex_redis_url redis://127.0.0.1:$redis_port/0;
    audex_thread_pool audex;
    audex_jwt_key HS256 $work/jwt.secret;
    server {
        listen 127.0.0.1:$port;
        listen 127.0.0.1:$tls_port ssl http2;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        $1
    }
}
EOF
    "$nginx" -p "$root/" -c "$root/conf/nginx.conf"
    wait_port "$port"

    local master
    master=$(cat "$root/logs/nginx.pid")
    worker=$(awk -v m="$master" '$4 == m { print $1 }' /proc/[0-9]*/stat \
             2>/dev/null | head -n 1)
}

stop_nginx() {
    local pid
    pid=$(cat "$work/nginx/logs/nginx.pid")
    kill -QUIT "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

hwm() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$worker/status"
}

# sends the body; prints "seconds kB_growth"
measure() {
    local method=$1 url=$2 code before after out
    shift 2

    # warm up: the first request allocates what every request shares
    curl -sS -o /dev/null -X "$method" -T "$work/head.mp4" "$@" \
        "$url" > /dev/null
    before=$(hwm)

    out=$(curl -sS -o "$work/answer" -w '%{http_code} %{time_total}' \
               -X "$method" -T "$work/body.mp4" "$@" "$url")
    code=${out%% *}
    after=$(hwm)

    case "$code" in
    2*) ;;
    *)  echo "bench: $method $url answered $code" >&2
        tail -n 5 "$work/nginx/logs/error.log" >&2
        exit 1 ;;
    esac

    echo "${out#* } $((after - before))"
}

# a tus upload of $1 to $2: POST, then PATCHes of the pieces in $work;
# prints "seconds" (the sum of curl's times) or fails
tus_upload() {
    local path=$1 base=$2 piece out code loc off=0 secs=0 t

    out=$(curl -sS -D "$work/tus.head" -o /dev/null -w '%{http_code}' \
               -X POST "${tus[@]}" -H "Upload-Length: $(stat -c %s "$path")" \
               -H "Upload-Metadata: filename $(printf bench.mp4 | base64)" \
               "$base/files/")
    loc=$(awk 'tolower($1) == "location:" { print $2 }' "$work/tus.head" \
          | tr -d '\r')
    if [ "$out" != 201 ] || [ -z "$loc" ]; then
        echo "bench: tus POST answered $out" >&2
        exit 1
    fi

    rm -f "$work"/piece.*
    split -b $((tus_piece_mb * 1024 * 1024)) -d -a 4 "$path" "$work/piece."

    for piece in "$work"/piece.*; do
        out=$(curl -sS -o "$work/answer" -w '%{http_code} %{time_total}' \
                   -X PATCH "${tus[@]}" -H "Upload-Offset: $off" \
                   -H 'Content-Type: application/offset+octet-stream' \
                   -T "$piece" "$base$loc")
        code=${out%% *}
        t=${out#* }
        if [ "$code" != 204 ]; then
            echo "bench: tus PATCH at $off answered $code" >&2
            tail -n 5 "$work/nginx/logs/error.log" >&2
            exit 1
        fi
        secs=$(awk -v a="$secs" -v b="$t" 'BEGIN { print a + b }')
        off=$((off + $(stat -c %s "$piece")))
    done

    rm -f "$work"/piece.*
    echo "$secs"
}

# prints "seconds kB_growth" for a tus upload of the body
measure_tus() {
    local before after secs

    tus_upload "$work/head.mp4" "$1" > /dev/null      # warm up
    before=$(hwm)
    secs=$(tus_upload "$work/body.mp4" "$1")
    after=$(hwm)

    echo "$secs $((after - before))"
}

upload=(-H "Authorization: Bearer $token" -H 'Content-Type: video/mp4')
tus=(-H "Authorization: Bearer $token" -H 'Tus-Resumable: 1.0.0')
start_nginx "location = /upload { audex_auth on; audex_upload;
                                  audex_upload_max_size 0; }
             location /files/ { audex_auth on; audex_tus;
                                audex_upload_max_size 0; }"
measure POST "http://127.0.0.1:$port/upload?filename=bench.mp4" \
    "${upload[@]}" > "$work/audex.txt"
measure_tus "http://127.0.0.1:$port" > "$work/tus.txt"
measure POST "https://127.0.0.1:$tls_port/upload?filename=bench.mp4" \
    "${upload[@]}" -k --http1.1 > "$work/tls1.txt"
measure POST "https://127.0.0.1:$tls_port/upload?filename=bench.mp4" \
    "${upload[@]}" -k --http2 > "$work/tls2.txt"
stop_nginx
read -r a_secs a_kb < "$work/audex.txt"
read -r tus_secs tus_kb < "$work/tus.txt"
read -r t1_secs t1_kb < "$work/tls1.txt"
read -r t2_secs t2_kb < "$work/tls2.txt"

start_nginx "location /store/ { root $work/nginx; dav_methods PUT;
                               client_max_body_size 0;
                               client_body_in_file_only on; }"
measure PUT "http://127.0.0.1:$port/store/body.mp4" > "$work/reference.txt"
stop_nginx
read -r r_secs r_kb < "$work/reference.txt"

# what the database takes alone: the same chunks inserted one after the
# other by pymongo, nothing read from a client
b_mbs=$("$py" - "$mongo_uri" "$size" <<'EOF'
import os, sys, time, bson, pymongo
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
chunks, data, fid = db["bench.chunks"], os.urandom(261120), bson.ObjectId()
n = max(1, min(int(sys.argv[2]) // 261120, 1024))
t = time.time()
for i in range(n):
    chunks.insert_one({"files_id": fid, "n": i, "data": data})
print("%.1f" % (n * 261120 / (time.time() - t) / 1048576))
db.drop_collection("bench.chunks")
EOF
)

awk -v size="$size" -v bm="$b_mbs" -v as="$a_secs" -v ak="$a_kb" -v rs="$r_secs" \
    -v rk="$r_kb" -v t1="$t1_secs" -v t2="$t2_secs" -v t1k="$t1_kb" \
    -v t2k="$t2_kb" -v ts="$tus_secs" -v tk="$tus_kb" -v tp="$tus_piece_mb" \
    'BEGIN {
    am = size / as / 1048576; rm = size / rs / 1048576
    printf "body: %.0f MB\n", size / 1048576
    printf "%-10s %10s %14s\n", "", "MB/s", "peak RSS +kB"
    printf "%-10s %10.1f %14d\n", "audex", am, ak
    printf "%-10s %10.1f %14d\n", "reference", rm, rk
    printf "throughput ratio audex/reference: %.2f\n", am / rm
    printf "database alone (pymongo inserting 255 KiB chunks): %.1f MB/s, " \
           "audex reaches %.2f of it\n", bm, am / bm
    printf "peak RSS growth: audex %+d kB, reference %+d kB\n", ak, rk
    h1 = size / t1 / 1048576; h2 = size / t2 / 1048576
    printf "audex over TLS: HTTP/1.1 %.1f MB/s (+%d kB), HTTP/2 %.1f MB/s " \
           "(+%d kB)\n", h1, t1k, h2, t2k
    printf "throughput ratio HTTP/2 / HTTP/1.1: %.2f\n", h2 / h1
    tm = size / ts / 1048576
    printf "tus (PATCHes of %d MB): %.1f MB/s (+%d kB), POST /upload " \
           "%.1f MB/s\n", tp, tm, tk, am
    printf "throughput ratio tus / POST /upload: %.2f\n", tm / am
}'
