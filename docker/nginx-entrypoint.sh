#!/usr/bin/env bash
# Entry point of the audex nginx image: makes nginx.conf from the template
# and the environment (with docker/nginx-conf.sh, as `make run` does),
# checks it with `nginx -t` and runs nginx in the foreground.
#
# usage: nginx-entrypoint.sh              start nginx
#        nginx-entrypoint.sh --check      write nginx.conf, nginx -t, exit
#        nginx-entrypoint.sh --dry-run    print nginx.conf, run no nginx
#        nginx-entrypoint.sh CMD [ARG]... run CMD instead (a shell, say)
#
# environment:
#   MONGODB_URI             required: mongodb://[user:pw@]host[:port]/db
#   REDIS_URL               required: redis://[[user]:pw@]host[:port][/db]
#   AUDEX_JWT_SECRET_FILE   /run/secrets/jwt_secret (token key)
#   AUDEX_LINK_SECRET_FILE  /run/secrets/link_secret (download-link key)
#   AUDEX_PORT              8080 (what nginx listens on)
#   AUDEX_NGINX_WORKERS     worker_processes; unset keeps the template's
#   AUDEX_METRICS_ALLOW     addresses or CIDRs (space separated) allowed
#                           at /metrics besides loopback: your Prometheus
#   AUDEX_NGINX_TEMPLATE    /etc/audex/nginx.conf.example
#   AUDEX_NGINX_DIR         /var/lib/audex (nginx.conf, pid, temp files)
#   AUDEX_NGINX_MODULE      /usr/lib/nginx/modules/ngx_http_audex_module.so
#   AUDEX_NGINX             /usr/sbin/nginx
#
# Secrets are never generated here: every replica must share them, so a
# missing, empty or placeholder ("REPLACE-ME") secret file stops the start.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
template=${AUDEX_NGINX_TEMPLATE:-/etc/audex/nginx.conf.example}
dir=${AUDEX_NGINX_DIR:-/var/lib/audex}
module=${AUDEX_NGINX_MODULE:-/usr/lib/nginx/modules/ngx_http_audex_module.so}
nginx=${AUDEX_NGINX:-/usr/sbin/nginx}
jwt=${AUDEX_JWT_SECRET_FILE:-/run/secrets/jwt_secret}
link=${AUDEX_LINK_SECRET_FILE:-/run/secrets/link_secret}
port=${AUDEX_PORT:-8080}

die() { printf 'audex entrypoint: %s\n' "$*" >&2; exit 1; }

case ${1:-} in
    -h|--help)
        sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"
        exit 0
        ;;
    ''|--check|--dry-run) ;;
    -*) die "unknown option $1" ;;
    *) exec "$@" ;;
esac

[ -n "${MONGODB_URI:-}" ] || die "MONGODB_URI is not set"
[ -n "${REDIS_URL:-}" ] || die "REDIS_URL is not set"

if ! [[ $port =~ ^[0-9]{1,5}$ ]] || [ "$port" -lt 1 ] \
        || [ "$port" -gt 65535 ]; then
    die "AUDEX_PORT is not a port: \"$port\""
fi

secret() {
    [ -r "$2" ] || die "$1: cannot read $2"
    [ -s "$2" ] || die "$1: $2 is empty"
    if grep -q 'REPLACE-ME' "$2"; then
        die "$1: $2 still holds the placeholder; put a real secret there"
    fi
}

secret AUDEX_JWT_SECRET_FILE "$jwt"
secret AUDEX_LINK_SECRET_FILE "$link"

args=(
    --module "$module"
    --pid "$dir/nginx.pid"
    --error-log stderr
    --access-log /dev/stdout
    --listen "$port"
    --mongodb-uri "$MONGODB_URI"
    --redis-url "$REDIS_URL"
    --jwt-key "$jwt"
    --link-secret "$link"
    --temp-dir "$dir/tmp"
)

if [ -n "${AUDEX_NGINX_WORKERS:-}" ]; then
    args+=(--workers "$AUDEX_NGINX_WORKERS")
fi

if [ -n "${AUDEX_METRICS_ALLOW:-}" ]; then
    args+=(--metrics-allow "$AUDEX_METRICS_ALLOW")
fi

if [ "${1:-}" = --dry-run ]; then
    exec "$here/nginx-conf.sh" "${args[@]}" "$template"
fi

mkdir -p "$dir/tmp" || die "cannot create $dir/tmp"
"$here/nginx-conf.sh" "${args[@]}" "$template" > "$dir/nginx.conf.new"
mv "$dir/nginx.conf.new" "$dir/nginx.conf"

"$nginx" -t -q -p "$dir/" -c "$dir/nginx.conf"

[ "${1:-}" = --check ] && exit 0

exec "$nginx" -p "$dir/" -c "$dir/nginx.conf" -g 'daemon off;'
