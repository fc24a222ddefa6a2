#!/usr/bin/env bash
# Proves that a machine which has never seen audex passes `make test`:
# a clean clone of the current commit runs `make test` inside a minimal
# Debian 12 root, where nothing the host installed is visible.
#
# "Fresh" is a new machine of the kind we build on: Debian 12 plus the
# toolchains its image ships, Go in /usr/local/go and Node.js as
# /usr/bin/node with npm.  Exactly those are bind-mounted read-only into
# the root; the host's extra CA certificates are trusted there (the
# package registries are reached over TLS through them), and the
# variables that point clients at the certificate bundle are passed in.
# Nothing else comes from the host.
#
# The debootstrap result is cached as build/fresh/bookworm-minbase.tar,
# and downloaded .deb files in build/fresh/apt-archives (downloads only,
# nothing installed): a second run skips both downloads.  Each run
# unpacks a new root from the tarball and removes it at the end.
#
# Everything runs in private mount and pid namespaces (unshare): the
# mounts vanish with the namespace and every process the run started
# dies with it, on every exit path.
#
# usage: scripts/fresh-check.sh [--keep]    (--keep: leave the root)
# Takes about 10 minutes on 2 cores once the caches exist (the first run
# also downloads Debian and its packages); run it whenever scripts/setup.sh,
# the Makefile's dependencies or a test's tools change.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=$top/build/fresh
base=$cache/bookworm-minbase.tar
mirror=${AUDEX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
keep=0
[ "${1:-}" = "--keep" ] && keep=1

log() { printf 'audex fresh-check: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "needs root (debootstrap, chroot and mounts)"
    exit 1
fi

for need in /usr/local/go/bin/go /usr/bin/node /usr/lib/node_modules/npm; do
    if [ ! -e "$need" ]; then
        log "this machine lacks $need (Go in /usr/local/go, Node.js 20"
        log "as /usr/bin/node with npm), which a new machine of ours has"
        exit 1
    fi
done

if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends debootstrap >/dev/null
fi

commit=$(git -C "$top" rev-parse HEAD)
if [ -n "$(git -C "$top" status --porcelain --untracked-files=no)" ]; then
    log "note: uncommitted changes are not checked, only $commit"
fi

mkdir -p "$cache/apt-archives/partial"
start=$(date +%s)

if [ ! -s "$base" ]; then
    log "debootstrap of Debian 12 (once; cached as $base)"
    tmp=$(mktemp -d "$cache/debootstrap.XXXXXX")
    debootstrap --variant=minbase bookworm "$tmp" "$mirror" \
        > "$cache/debootstrap.log" 2>&1 \
        || { tail -n 20 "$cache/debootstrap.log" >&2;
             rm -rf --one-file-system "$tmp"; exit 1; }
    tar -C "$tmp" -cf "$base.part" .
    mv "$base.part" "$base"
    rm -rf --one-file-system "$tmp"
fi

root=$(mktemp -d "$cache/root.XXXXXX")

cleanup() {
    local rc=$?
    # the mounts live in the namespace, which is gone by now; make sure
    # before removing anything below the root
    if grep -q " $root/" /proc/self/mounts; then
        log "mounts left below $root; not removing it"
    elif [ $keep -eq 0 ]; then
        rm -rf --one-file-system "$root"
    else
        log "root kept: $root"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tar -C "$root" -xf "$base"
# mktemp made both the root and the tarball's top 0700; a root directory
# is 0755, or nginx's workers (nobody) and apt's _apt reach nothing in it
chmod 0755 "$root"

# what a new machine of ours has beside Debian: the apt sources and
# settings, the extra CA certificates, no services started by packages
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
    rm -f "$root/etc/apt/sources.list"
fi
cp /etc/apt/apt.conf.d/99artifact-registry "$root/etc/apt/apt.conf.d/" \
    2>/dev/null || true
mkdir -p "$root/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt \
    "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
cp /etc/resolv.conf /etc/hosts "$root/etc/"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

mkdir -p "$root/usr/local/go" "$root/usr/lib/node_modules/npm" \
         "$root/src"
touch "$root/usr/bin/node"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"

git clone -q --no-hardlinks "$top" "$root/src/audex"
git -C "$root/src/audex" checkout -q "$commit"

# inside: trust the certificates, add the two tools a user types before
# anything of ours runs (git to clone, make), then `make test`
cat > "$root/src/run-check.sh" <<'EOF'
set -eu
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends ca-certificates git make >/dev/null
update-ca-certificates >/dev/null
cd /src/audex
make test
EOF

ca=/etc/ssl/certs/ca-certificates.crt
inner=$(cat <<EOF
set -e
ro() { mount --bind "\$1" "\$2"; mount -o remount,bind,ro "\$2"; }
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o size=2g tmpfs "$root/dev/shm"
mount -t tmpfs tmpfs "$root/tmp"
mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
ro /usr/local/go "$root/usr/local/go"
ro /usr/bin/node "$root/usr/bin/node"
ro /usr/lib/node_modules/npm "$root/usr/lib/node_modules/npm"
exec chroot "$root" /usr/bin/env -i \
    HOME=/root LANG=C.UTF-8 TERM=dumb CI=true \
    PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=$ca SSL_CERT_DIR=/etc/ssl/certs \
    NODE_EXTRA_CA_CERTS=$ca PIP_CERT=$ca REQUESTS_CA_BUNDLE=$ca \
    CURL_CA_BUNDLE=$ca GIT_SSL_CAINFO=$ca \
    /bin/bash /src/run-check.sh
EOF
)

log "make test on a clean Debian 12 root ($commit), log: $cache/last.log"
# in the background, so that a signal to this script reaches it at once:
# --kill-child ends the namespace's first process, and every process in
# the namespace with it
unshare --mount --pid --fork --kill-child --propagation private \
    bash -c "$inner" > "$cache/last.log" 2>&1 &
child=$!
trap 'kill -TERM $child 2>/dev/null; wait $child; exit 130' INT TERM
set +e
wait $child
rc=$?
set -e

elapsed=$(( $(date +%s) - start ))
tail -n 15 "$cache/last.log"
if [ $rc -eq 0 ]; then
    log "PASS: make test passed from nothing in $((elapsed / 60))m$((elapsed % 60))s"
else
    log "FAIL (exit $rc) after $((elapsed / 60))m$((elapsed % 60))s;" \
        "the whole output is in $cache/last.log"
fi
exit $rc
