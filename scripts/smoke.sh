#!/usr/bin/env bash
# End to end: `make run` on free ports in a scratch run directory,
# /healthz answers ok, `make stop` leaves nothing running.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0));
print(s.getsockname()[1])'
}

export AUDEX_RUN_DIR=$top/build/smoke
export AUDEX_PORT=$(free_port)
export AUDEX_REDIS_PORT=$(free_port)
export AUDEX_MONGO_PORT=$(free_port)
export AUDEX_SMTP_PORT=$(free_port)
export AUDEX_CONVERTER_METRICS_PORT=$(free_port)
export AUDEX_NOTIFIER_METRICS_PORT=$(free_port)
unset MONGODB_URI REDIS_URL AUDEX_JWT_SECRET_FILE SMTP_URL

rm -rf "$AUDEX_RUN_DIR"
trap 'make -s stop >/dev/null 2>&1 || true' EXIT

fail() { echo "not ok - $*"; exit 1; }
n=0
pass() { n=$((n + 1)); echo "ok $n - $*"; }

make -s run > "$top/build/smoke.out" 2>&1 \
    || { cat "$top/build/smoke.out"; fail "make run"; }
pass "make run"

grep -q "http://127.0.0.1:$AUDEX_PORT/" "$top/build/smoke.out" \
    || fail "make run prints the URL"
pass "make run prints the URL"

body=$(curl -s "http://127.0.0.1:$AUDEX_PORT/healthz")
[ "$body" = '{"mongo":"ok","redis":"ok"}' ] || fail "healthz: $body"
pass "healthz: both backends ok"

sleep 1
for w in converter notifier smtp; do
    p=$(cat "$AUDEX_RUN_DIR/$w.pid" 2>/dev/null) \
        && stat=$(cat /proc/$p/stat 2>/dev/null) \
        && ! printf '%s\n' "$stat" | grep -q '^[0-9]* ([^)]*) Z' \
        || { tail -n 5 "$AUDEX_RUN_DIR/logs/$w.log"; fail "$w runs"; }
done
pass "the converter, the notifier and the SMTP sink run"

[ "$(stat -c %a "$AUDEX_RUN_DIR/jwt.secret")" = 600 ] \
    || fail "generated JWT secret is mode 0600"
pass "generated JWT secret is mode 0600"

make -s run > "$top/build/smoke2.out" 2>&1 || fail "make run twice"
grep -q "already running" "$top/build/smoke2.out" \
    || fail "second make run reuses what runs"
pass "make run twice in a row is safe"

pids=$(cat "$AUDEX_RUN_DIR"/*.pid)
make -s stop >/dev/null 2>&1 || fail "make stop"
for p in $pids; do
    # stat read once: a zombie reaped between two reads is gone, not running
    if stat=$(cat /proc/$p/stat 2>/dev/null) \
        && ! printf '%s\n' "$stat" | grep -q '^[0-9]* ([^)]*) Z'
    then
        fail "pid $p still runs after make stop"
    fi
done
ls "$AUDEX_RUN_DIR"/*.pid >/dev/null 2>&1 && fail "pid files left"
pass "make stop stops everything it started"

echo "1..$n"
