#!/usr/bin/env bash
# Installs what audex needs to build, run and test, and nothing twice:
# Debian packages that are missing (apt-get, as root or through sudo) and
# FerretDB v1.24.2 with our patches (built with Go once per set of patches,
# then reused).
#
# usage: scripts/setup.sh [--no-ferretdb]
set -euo pipefail

FERRETDB_VERSION=v1.24.2
# our patches to it, applied in name order (see their headers); the
# build's version names them (the SHA-256 of their concatenation), so a
# changed patch means a rebuild
top=$(cd "$(dirname "$0")/.." && pwd)
FERRETDB_PATCHES=("$top"/scripts/ferretdb/*.patch)

packages=(
    # Every package make, make run and make test use, by name: apt runs
    # with --no-install-recommends, so nothing arrives as a recommendation
    # (scripts/fresh-check.sh proves the list on a clean Debian 12 root).
    # build
    gcc make pkg-config git ca-certificates
    nginx nginx-dev
    libmongoc-dev libbson-dev libhiredis-dev libjansson-dev libargon2-dev
    libssl-dev libcurl4-openssl-dev
    libavformat-dev libavcodec-dev libavutil-dev libswresample-dev
    libmp3lame-dev libmicrohttpd-dev
    # run
    redis-server redis-tools curl procps
    # test: clang's sanitizer and libFuzzer runtime is a package of its own
    libcmocka-dev clang libclang-rt-14-dev perl libtest-base-perl
    ffmpeg mp3val prometheus
    python3 python3-pymongo python3-gridfs python3-jsonschema
    python3-yaml python3-aiosmtpd openssl chromium fonts-dejavu-core
    # PyJWT signs RS256/ES256 only with python3-cryptography
    python3-jwt python3-cryptography
    # pip, for what Debian does not package (below)
    python3-pip
)

log() { printf 'audex setup: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        log "need root (or sudo) to run: $*"
        exit 1
    fi
}

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != 'install ok installed' ]; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null
fi

# tuspy, the tus client t/tus.t drives: not packaged by Debian
TUSPY_VERSION=1.1.0
if ! /usr/bin/python3 -c 'import tusclient' 2>/dev/null; then
    log "installing tuspy $TUSPY_VERSION from PyPI"
    as_root /usr/bin/python3 -m pip install -q --break-system-packages \
        "tuspy==$TUSPY_VERSION"
fi

[ "${1:-}" = "--no-ferretdb" ] && exit 0

# Go >= 1.24 builds FerretDB (its go.mod says so): Debian 12's golang-go
# is 1.19 and cannot, so none is installed here; see the README's
# "Prerequisites".
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    export PATH=$PATH:/usr/local/go/bin
fi
go_ok=$(go env GOVERSION 2>/dev/null \
        | sed -n 's/^go1\.\([0-9][0-9]*\).*/\1/p')
if [ -z "$go_ok" ] || [ "$go_ok" -lt 24 ]; then
    log "FerretDB $FERRETDB_VERSION needs Go 1.24 or later on PATH or in" \
        "/usr/local/go (found: $(go env GOVERSION 2>/dev/null || echo none))"
    exit 1
fi

# each checkout builds its own (two checkouts with other patches must not
# replace each other's), next to the workers
ferretdb=${FERRETDB:-$top/build/bin/ferretdb}

# (the whole output first: grep -q would close the pipe on ferretdb)
want=$FERRETDB_VERSION-audex.$(cat "${FERRETDB_PATCHES[@]}" | sha256sum \
                                | cut -c1-8)
have=$("$ferretdb" --version 2>/dev/null || true)
case "$have" in
    *"version: $want"*) exit 0 ;;
esac

# `go install ...@version` wants the module proxy's version list, which
# the registries reachable here refuse, and a module-cache build of
# FerretDB panics at start without build/version/version.txt.  So: fetch
# that exact version, apply our patch, fill in version.txt, build it as
# the main module.
log "building FerretDB $want (once per set of patches)"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json \
          "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { log "go mod download of FerretDB failed"; exit 1; }

cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
(cd "$work/src" && git apply "${FERRETDB_PATCHES[@]}")
echo "$want" > "$work/src/build/version/version.txt"

mkdir -p "$(dirname "$ferretdb")"
(cd "$work/src" && GOFLAGS=-mod=mod go build -trimpath -o "$ferretdb" \
    ./cmd/ferretdb)
built=$("$ferretdb" --version)
printf '%s\n' "${built%%$'\n'*}" >&2
