#!/usr/bin/env bash
# Tests must leave nothing running.  `make test` calls
#
#   scripts/leftovers.sh mark FILE    before the first test: notes the time
#   scripts/leftovers.sh check FILE   after the last: fails, naming them,
#                                     if processes the tests started live
#
# A process counts as the tests' when it started after the mark and runs
# from this checkout: its working directory or its binary is below the
# top directory (nginx, FerretDB, the workers and the SMTP sink run from
# it, redis-server from its data directory under build/).  What ran
# before the mark, such as a user's own `make run`, is not looked at;
# neither are this script's own ancestors (make, the CI shell).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

# field 22 of /proc/PID/stat: start time in clock ticks since boot (the
# fields are counted after the command name, which may hold spaces)
started() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    set -- $s
    echo "${20}"
}

ancestors() {
    local p=$$
    while [ "$p" -gt 1 ]; do
        echo "$p"
        p=$(awk '{ sub(/.*\) /, ""); print $2 }' "/proc/$p/stat" \
            2>/dev/null) || break
    done
}

# whether a process is this script's own doing (the subshells and tools
# this very check runs have its working directory too)
ours_to_run() {
    local p=$1
    while [ "$p" -gt 1 ]; do
        [ "$p" -eq $$ ] && return 0
        p=$(awk '{ sub(/.*\) /, ""); print $2 }' "/proc/$p/stat" \
            2>/dev/null) || return 1
        [ -n "$p" ] || return 1
    done
    return 1
}

ours() {
    local since=$1 pid t cwd exe skip
    skip=" $(ancestors | tr '\n' ' ') "
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        case "$skip" in *" $pid "*) continue ;; esac
        t=$(started "$pid") || continue
        [ "$t" -ge "$since" ] || continue
        grep -q '^[^)]*) Z' "$d/stat" 2>/dev/null && continue
        cwd=$(readlink "$d/cwd" 2>/dev/null || true)
        exe=$(readlink "$d/exe" 2>/dev/null || true)
        case "$cwd/ $exe" in
            "$top/"*|*" $top/"*) ours_to_run "$pid" || echo "$pid" ;;
        esac
    done
}

case "${1:-}" in
mark)
    mkdir -p "$(dirname "$2")"
    started $$ > "$2"
    ;;
check)
    since=$(cat "$2")
    # a stop in an END block may still be under way: a few seconds' grace
    for _ in $(seq 1 20); do
        left=$(ours "$since")
        [ -z "$left" ] && exit 0
        sleep 0.5
    done
    echo "audex: processes started by the tests are still running:" >&2
    for pid in $left; do
        printf '  %s %s (cwd %s)\n' "$pid" \
            "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" \
            "$(readlink "/proc/$pid/cwd" 2>/dev/null)" >&2
    done
    exit 1
    ;;
*)
    echo "usage: scripts/leftovers.sh mark|check FILE" >&2
    exit 2
    ;;
esac
