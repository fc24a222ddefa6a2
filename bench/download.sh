#!/usr/bin/env bash
# Download throughput and nginx worker memory: the same bytes served by
# audex_download from GridFS and by nginx's static module from disk, in
# one run.  Prints both and their ratio.  Timings vary between runs and
# machines; run it a few times.
#
# MONGODB_URI (a real MongoDB) is used when set; otherwise a FerretDB on
# SQLite, which does not use the chunks index for {files_id, n} lookups
# (each one scans the collection), so keep SIZE_MB small there.
#
# usage: bench/download.sh [SIZE_MB]      (default 32)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
size_mb=${1:-32}
work=$top/build/bench/download
rm -rf "$work"
mkdir -p "$work/conf" "$work/logs" "$work/html"

make -s -C "$top" all >/dev/null

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port=$(port)
mongo_port=$(port)
http_port=$(port)

redis-server --port "$redis_port" --save '' --daemonize yes \
    --pidfile "$work/redis.pid" --logfile "$work/logs/redis.log"
setsid "${FERRETDB:-$top/build/bin/ferretdb}" \
    --handler=sqlite --sqlite-url="file:$work/" --state-dir="$work" \
    --listen-addr="127.0.0.1:$mongo_port" --telemetry=disable \
    --log-level=error --debug-addr=- >"$work/logs/ferretdb.log" 2>&1 &
fdb=$!
trap 'kill $fdb 2>/dev/null; kill "$(cat "$work/redis.pid")" 2>/dev/null;
      kill -QUIT "$(cat "$work/logs/nginx.pid" 2>/dev/null)" 2>/dev/null
      true' EXIT
sleep 1

uri=${MONGODB_URI:-mongodb://127.0.0.1:$mongo_port/bench}
head -c 48 /dev/urandom | base64 > "$work/conf/jwt.secret"
head -c $((size_mb * 1024 * 1024)) /dev/urandom > "$work/html/file.mp3"

# the same bytes into GridFS, as any MongoDB client would write them
owner=64b000000000000000000001
fid=$(/usr/bin/python3 - "$uri" "$work/html/file.mp3" "$owner" <<'PY'
import sys, pymongo, gridfs
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
with open(sys.argv[2], "rb") as f:
    print(gridfs.GridFSBucket(db, "mp3s").upload_from_stream(
        "file.mp3", f, metadata={"owner_id": sys.argv[3]}))
PY
)

cat > "$work/conf/nginx.conf" <<CONF
load_module $top/build/ngx_http_audex_module.so;
pid $work/logs/nginx.pid;
error_log $work/logs/error.log warn;
worker_processes 1;
events { worker_connections 64; }
thread_pool audex threads=4;
http {
    access_log off;
    audex_mongodb_uri $uri;
    audex_redis_url redis://127.0.0.1:$redis_port/0;
    audex_thread_pool audex;
    audex_backend_timeout 60s;
    audex_jwt_key HS256 $work/conf/jwt.secret;
    client_body_temp_path $work/tmp;
    server {
        listen 127.0.0.1:$http_port;
        location = /download { audex_auth on; audex_download; }
        location /static/ { alias $work/html/; }
    }
}
CONF
/usr/sbin/nginx -p "$work/" -c "$work/conf/nginx.conf"
sleep 0.5

token=$(/usr/bin/python3 -c '
import sys, time, jwt
k = open(sys.argv[1], "rb").read().strip()
print(jwt.encode({"sub": sys.argv[2], "email": "b@x", "exp": int(time.time()) + 3600}, k, algorithm="HS256"))' \
    "$work/conf/jwt.secret" "$owner")

worker=$(pgrep -P "$(cat "$work/logs/nginx.pid")" | head -n 1)
hwm() { awk '/VmHWM/ { print $2 }' "/proc/$worker/status"; }

fetch() {
    curl -s -o /dev/null -w '%{size_download} %{time_total}\n' "$@"
}

base_kb=$(hwm)
read -r s_bytes s_time < <(fetch "http://127.0.0.1:$http_port/static/file.mp3")
static_kb=$(hwm)
read -r a_bytes a_time < <(fetch -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$http_port/download?fid=$fid")
audex_kb=$(hwm)

[ "$s_bytes" = "$a_bytes" ] || { echo "size mismatch: $s_bytes $a_bytes"; exit 1; }

awk -v mb="$size_mb" -v st="$s_time" -v at="$a_time" \
    -v b="$base_kb" -v sk="$static_kb" -v ak="$audex_kb" 'BEGIN {
    printf "file: %d MB\n", mb
    printf "nginx static from disk: %7.3f s  %8.1f MB/s\n", st, mb / st
    printf "audex from GridFS:      %7.3f s  %8.1f MB/s\n", at, mb / at
    printf "ratio (audex time / static time): %.2f\n", at / st
    printf "worker peak RSS: start %d KB, after static %d KB, after audex %d KB (growth %d KB)\n", b, sk, ak, ak - sk
}'
