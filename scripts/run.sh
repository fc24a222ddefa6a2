#!/usr/bin/env bash
# Brings the whole audex system up on loopback (start), stops exactly
# what it started (stop), or says what runs (status).
#
# Everything lives under $AUDEX_RUN_DIR (default: run/): data, logs,
# pid files and the nginx prefix.  Environment:
#   AUDEX_PORT             HTTP port (8080)
#   MONGODB_URI            use this MongoDB instead of starting FerretDB
#   REDIS_URL              use this Redis instead of starting redis-server
#   AUDEX_JWT_SECRET_FILE  HS256 secret (generated under run/, mode 0600)
#   AUDEX_LINK_SECRET_FILE download-link key (likewise)
#   AUDEX_REDIS_PORT       port of the Redis we start (6390)
#   AUDEX_MONGO_PORT       port of the FerretDB we start (27017)
#   AUDEX_SMTP_PORT        port of the SMTP sink we start (2525), unless
#                          SMTP_URL names a server to use
#   AUDEX_CONVERTER_METRICS_PORT, AUDEX_NOTIFIER_METRICS_PORT (9100, 9101)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
run=${AUDEX_RUN_DIR:-$top/run}
build=${AUDEX_BUILD_DIR:-$top/build}
port=${AUDEX_PORT:-8080}
redis_port=${AUDEX_REDIS_PORT:-6390}
mongo_port=${AUDEX_MONGO_PORT:-27017}
smtp_port=${AUDEX_SMTP_PORT:-2525}
converter_metrics=${AUDEX_CONVERTER_METRICS_PORT:-9100}
notifier_metrics=${AUDEX_NOTIFIER_METRICS_PORT:-9101}
nginx_bin=${AUDEX_NGINX:-/usr/sbin/nginx}

log() { printf 'audex: %s\n' "$*" >&2; }

# Started as root, nginx would run its workers as nobody, who cannot
# reach a checkout under a private directory (/root, mktemp -d): they run
# as the checkout's owner instead.
worker_user=
if [ "$(id -u)" -eq 0 ]; then
    worker_user="user $(stat -c %U "$top");"
fi

alive() {
    # a pid file names a live process (a zombie does not count)
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -r "/proc/$pid/stat" ] || return 1
    ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$pid/stat"
}

wait_gone() {
    local i
    for i in $(seq 1 100); do
        alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

stop_one() {
    local name=$1 pidfile=$2 sig=${3:-TERM}
    if alive "$pidfile"; then
        kill -"$sig" "$(cat "$pidfile")" 2>/dev/null || true
        if ! wait_gone "$pidfile"; then
            log "$name did not stop in 10 s; killing it"
            kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
        fi
        log "stopped $name"
    fi
    rm -f "$pidfile"
}

ferretdb_bin() {
    local gopath
    if [ -n "${FERRETDB:-}" ]; then echo "$FERRETDB"; return; fi
    gopath=$(go env GOPATH 2>/dev/null || /usr/local/go/bin/go env GOPATH)
    echo "$gopath/bin/ferretdb"
}

redis_url() {
    echo "${REDIS_URL:-redis://127.0.0.1:$redis_port/0}"
}

mongodb_uri() {
    echo "${MONGODB_URI:-mongodb://127.0.0.1:$mongo_port/audex}"
}

start_redis() {
    [ -n "${REDIS_URL:-}" ] && return 0
    if alive "$run/redis.pid"; then
        log "redis-server already running"
        return 0
    fi
    mkdir -p "$run/redis"
    redis-server --bind 127.0.0.1 --port "$redis_port" \
        --dir "$run/redis" --appendonly yes \
        --daemonize yes --pidfile "$run/redis.pid" \
        --logfile "$run/logs/redis.log"
}

start_ferretdb() {
    [ -n "${MONGODB_URI:-}" ] && return 0
    if alive "$run/ferretdb.pid"; then
        log "FerretDB already running"
        return 0
    fi
    mkdir -p "$run/ferretdb"
    setsid "$(ferretdb_bin)" --handler=sqlite \
        --sqlite-url="file:$run/ferretdb/" --state-dir="$run/ferretdb" \
        --listen-addr="127.0.0.1:$mongo_port" --telemetry=disable \
        --log-level=warn --debug-addr=- \
        </dev/null >>"$run/logs/ferretdb.log" 2>&1 &
    echo $! > "$run/ferretdb.pid"
}

# a secret file: the given one, or one generated once with mode 0600
secret_file() {
    local f=$1
    if [ ! -s "$f" ]; then
        (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n' > "$f")
    fi
    chmod 0600 "$f"
    echo "$f"
}

# conf/nginx.conf.example, with this run's paths, ports and backends
nginx_conf() {
    local secret=$1 link=$2
    "$top/docker/nginx-conf.sh" \
        --module "$build/ngx_http_audex_module.so" \
        --pid "$run/nginx.pid" \
        --error-log "$run/logs/error.log" \
        --access-log "$run/logs/access.log" \
        --listen "127.0.0.1:$port" \
        --mongodb-uri "$(mongodb_uri)" \
        --redis-url "$(redis_url)" \
        --jwt-key "$secret" \
        --link-secret "$link" \
        --temp-dir "$run/nginx/tmp" \
        --path "/usr/share/audex/html=$top/html" \
        --path "/usr/share/audex/docs/=$top/docs/" \
        --path "/usr/share/audex/swagger-ui/=$build/web/node_modules/swagger-ui-dist/" \
        "$top/conf/nginx.conf.example" > "$run/nginx/nginx.conf"
}


start_nginx() {
    if alive "$run/nginx.pid"; then
        log "nginx already running"
        return 0
    fi
    mkdir -p "$run/nginx/tmp"
    "$nginx_bin" -p "$run/nginx/" -c "$run/nginx/nginx.conf" \
        ${worker_user:+-g "$worker_user"} -t -q
    "$nginx_bin" -p "$run/nginx/" -c "$run/nginx/nginx.conf" \
        ${worker_user:+-g "$worker_user"}
}

# start_worker NAME [VAR=value ...] -- ARGS: build/bin/audex-NAME ARGS
start_worker() {
    local name=$1 bin=$build/bin/audex-$1 env=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do env+=("$1"); shift; done
    shift
    [ -x "$bin" ] || return 0
    if alive "$run/$name.pid"; then
        log "audex-$name already running"
        return 0
    fi
    env MONGODB_URI="$(mongodb_uri)" REDIS_URL="$(redis_url)" "${env[@]}" \
        setsid "$bin" "$@" </dev/null >>"$run/logs/$name.log" 2>&1 &
    echo $! > "$run/$name.pid"
}

# an SMTP server on loopback that keeps every mail in run/mail (Maildir)
start_smtp() {
    [ -n "${SMTP_URL:-}" ] && return 0
    if alive "$run/smtp.pid"; then
        log "SMTP sink already running"
        return 0
    fi
    mkdir -p "$run/mail/cur" "$run/mail/new" "$run/mail/tmp"
    setsid /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$smtp_port" \
        -c aiosmtpd.handlers.Mailbox "$run/mail" \
        </dev/null >>"$run/logs/smtp.log" 2>&1 &
    echo $! > "$run/smtp.pid"
}

wait_healthy() {
    local i body
    for i in $(seq 1 300); do
        body=$(curl -s --max-time 2 "http://127.0.0.1:$port/healthz" \
               || true)
        if [ "$body" = '{"mongo":"ok","redis":"ok"}' ]; then
            return 0
        fi
        sleep 0.1
    done
    log "not healthy after 30 s: ${body:-no answer}; see $run/logs/"
    return 1
}

start() {
    local secret link
    mkdir -p "$run/logs" "$run/nginx"
    secret=$(secret_file "${AUDEX_JWT_SECRET_FILE:-$run/jwt.secret}")
    link=$(secret_file "${AUDEX_LINK_SECRET_FILE:-$run/link.secret}")
    start_redis
    start_ferretdb
    "$top/scripts/install-web.sh"
    nginx_conf "$secret" "$link"
    start_nginx
    wait_healthy
    start_worker converter METRICS_PORT="$converter_metrics" -- run
    start_smtp
    start_worker notifier LINK_SECRET_FILE="$link" \
        PUBLIC_URL="http://127.0.0.1:$port" \
        SMTP_URL="${SMTP_URL:-smtp://127.0.0.1:$smtp_port}" \
        NOTIFIER_METRICS_PORT="$notifier_metrics" -- run

    cat <<MSG
audex is up: http://127.0.0.1:$port/  (health: /healthz, API: /docs)
  logs:   $run/logs/
  data:   $run/
  mail:   $run/mail/new/ (what the notifier sent)
  stop:   make stop
MSG
}

stop() {
    local w
    for w in notifier converter; do
        stop_one "audex-$w" "$run/$w.pid"
    done
    stop_one "SMTP sink" "$run/smtp.pid"
    stop_one nginx "$run/nginx.pid" QUIT
    stop_one FerretDB "$run/ferretdb.pid"
    stop_one redis-server "$run/redis.pid"
}

status() {
    local f
    for f in nginx redis ferretdb converter notifier smtp; do
        if alive "$run/$f.pid"; then
            echo "$f: running (pid $(cat "$run/$f.pid"))"
        else
            echo "$f: stopped"
        fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 1 ;;
esac
