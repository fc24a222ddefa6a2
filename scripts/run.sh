#!/usr/bin/env bash
# Brings the whole audex system up on loopback (start), stops exactly
# what it started (stop), or says what runs (status).
#
# Everything lives under $AUDEX_RUN_DIR (default: run/): data, logs,
# pid files, the nginx prefix, and run/env: the variables that name this
# system, for `. run/env` before audex-user, curl or a second `make run`.
# A part already running with other settings (a changed port, say) is
# restarted with the new ones.  Environment:
#   AUDEX_PORT             HTTP port (8080)
#   MONGODB_URI            use this MongoDB instead of starting FerretDB
#                          (unless it names the FerretDB we start: the
#                          value run/env gives)
#   REDIS_URL              use this Redis instead of starting redis-server
#                          (likewise)
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
    # a pid file names a live process (a zombie does not count); its
    # stat read once: one reaped between two reads is not alive
    local pid stat
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    ! printf '%s\n' "$stat" | grep -q '^[0-9]* ([^)]*) Z'
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
    echo "${FERRETDB:-$top/build/bin/ferretdb}"
}

own_redis_url="redis://127.0.0.1:$redis_port/0"
own_mongodb_uri="mongodb://127.0.0.1:$mongo_port/audex"

redis_url() {
    echo "${REDIS_URL:-$own_redis_url}"
}

mongodb_uri() {
    echo "${MONGODB_URI:-$own_mongodb_uri}"
}

# we start Redis or FerretDB unless the URL names another one; the URL
# of our own (exported from run/env) is ours to start
own_redis() {
    [ -z "${REDIS_URL:-}" ] || [ "$REDIS_URL" = "$own_redis_url" ]
}

own_mongo() {
    [ -z "${MONGODB_URI:-}" ] || [ "$MONGODB_URI" = "$own_mongodb_uri" ]
}

# up_to_date NAME SETTINGS: NAME runs, with these settings (recorded in
# run/NAME.settings when it started).  One that runs with other settings
# is stopped here, saying what changed, so that it starts again.
up_to_date() {
    local name=$1 want=$2 had
    alive "$run/$name.pid" || return 1
    had=$(cat "$run/$name.settings" 2>/dev/null || true)
    if [ "$had" = "$want" ]; then
        log "$name already running"
        return 0
    fi
    if [ "${had%%$'\n'*}" = "${want%%$'\n'*}" ]; then
        log "$name runs an older configuration or build: restarting it"
    else
        log "$name runs with other settings (${had%%$'\n'*} ->" \
            "${want%%$'\n'*}): restarting it"
    fi
    stop_one "$name" "$run/$name.pid" "$(stop_signal "$name")"
    return 1
}

stop_signal() {
    if [ "$1" = nginx ]; then echo QUIT; else echo TERM; fi
}

start_redis() {
    local want="port $redis_port"
    own_redis || return 0
    up_to_date redis "$want" && return 0
    echo "$want" > "$run/redis.settings"
    mkdir -p "$run/redis"
    redis-server --bind 127.0.0.1 --port "$redis_port" \
        --dir "$run/redis" --appendonly yes \
        --daemonize yes --pidfile "$run/redis.pid" \
        --logfile "$run/logs/redis.log"
}

start_ferretdb() {
    local want="port $mongo_port"
    own_mongo || return 0
    up_to_date ferretdb "$want" && return 0
    echo "$want" > "$run/ferretdb.settings"
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
        --path "/usr/share/audex/tus-js-client/=$build/web/node_modules/tus-js-client/dist/" \
        "$top/conf/nginx.conf.example" > "$run/nginx/nginx.conf"
}


start_nginx() {
    local want
    want="port $port, $(mongodb_uri), $(redis_url)"$'\n'"$(cat \
        "$run/nginx/nginx.conf" "$build/ngx_http_audex_module.so" \
        | sha256sum)"
    up_to_date nginx "$want" && return 0
    echo "$want" > "$run/nginx.settings"
    mkdir -p "$run/nginx/tmp"
    "$nginx_bin" -p "$run/nginx/" -c "$run/nginx/nginx.conf" \
        ${worker_user:+-g "$worker_user"} -t -q
    "$nginx_bin" -p "$run/nginx/" -c "$run/nginx/nginx.conf" \
        ${worker_user:+-g "$worker_user"}
}

# start_worker NAME [VAR=value ...] -- ARGS: build/bin/audex-NAME ARGS
start_worker() {
    local name=$1 bin=$build/bin/audex-$1 env=() want
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do env+=("$1"); shift; done
    shift
    [ -x "$bin" ] || return 0
    want="$(mongodb_uri) $(redis_url) ${env[*]}"$'\n'"$(sha256sum < "$bin")"
    up_to_date "$name" "$want" && return 0
    echo "$want" > "$run/$name.settings"
    env MONGODB_URI="$(mongodb_uri)" REDIS_URL="$(redis_url)" "${env[@]}" \
        setsid "$bin" "$@" </dev/null >>"$run/logs/$name.log" 2>&1 &
    echo $! > "$run/$name.pid"
}

# an SMTP server on loopback that keeps every mail in run/mail (Maildir)
start_smtp() {
    local want="port $smtp_port"
    [ -n "${SMTP_URL:-}" ] && return 0
    up_to_date smtp "$want" && return 0
    echo "$want" > "$run/smtp.settings"
    # mails hold signed download links: the owner's only (aiosmtpd
    # writes them 0644 otherwise)
    mkdir -p "$run/mail/cur" "$run/mail/new" "$run/mail/tmp"
    chmod 700 "$run/mail" "$run/mail/cur" "$run/mail/new" "$run/mail/tmp"
    (umask 077; exec setsid /usr/bin/python3 -m aiosmtpd -n \
        -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$run/mail" \
        </dev/null >>"$run/logs/smtp.log" 2>&1) &
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

    (umask 077; write_env > "$run/env")

    cat <<MSG
audex is up: http://127.0.0.1:$port/  (health: /healthz, API: /docs)
  logs:   $run/logs/
  data:   $run/
  mail:   $run/mail/new/ (what the notifier sent)
  tools:  . $(relative "$run")/env   (then audex-user, curl \$AUDEX_URL
          and the next make run find this system)
  users:  build/bin/audex-user add EMAIL (accounts are made only there)
  stop:   make stop
MSG
}

# run/env: what names this system, in the variables this script, the
# workers and audex-user read; a URL is written only when it is not ours
# (ours follows from the ports)
write_env() {
    echo "# the audex system \`make run\` started; . this file"
    echo "export AUDEX_URL=http://127.0.0.1:$port"
    echo "export AUDEX_RUN_DIR=$run"
    echo "export AUDEX_PORT=$port AUDEX_REDIS_PORT=$redis_port"
    echo "export AUDEX_MONGO_PORT=$mongo_port AUDEX_SMTP_PORT=$smtp_port"
    echo "export AUDEX_CONVERTER_METRICS_PORT=$converter_metrics"
    echo "export AUDEX_NOTIFIER_METRICS_PORT=$notifier_metrics"
    own_mongo || echo "export MONGODB_URI=$MONGODB_URI"
    own_redis || echo "export REDIS_URL=$REDIS_URL"
    [ -z "${SMTP_URL:-}" ] || echo "export SMTP_URL=$SMTP_URL"
}

# a path as the user would type it from here
relative() {
    case $1 in
        "$PWD"/*) echo "${1#"$PWD"/}" ;;
        *) echo "$1" ;;
    esac
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
