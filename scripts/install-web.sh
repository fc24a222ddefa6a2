#!/usr/bin/env bash
# Installs the npm packages the API docs and the web page tests need into
# build/web/node_modules, at pinned versions, once:
#
#   swagger-ui-dist   the Swagger UI nginx serves at /docs
#   tus-js-client     the page's resumable uploads: nginx serves its
#                     browser bundle, dist/tus.min.js, at /tus.min.js
#   playwright-core   drives Debian's chromium in t/web.t (it downloads
#                     no browser of its own)
#   @redocly/cli      lints docs/openapi.yaml in t/openapi.t
#
# A second run, with the same versions installed, does nothing and needs
# no network.  Install scripts are not run: none of these needs one, and
# swagger-ui-dist's dependency would only report the install to a third
# party.  Node.js 20.19 or newer and npm must be on the PATH.
#
# usage: scripts/install-web.sh [DIR]     (default: build/web)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-${AUDEX_WEB_DIR:-$top/build/web}}

pins=(
    swagger-ui-dist@5.35.0
    tus-js-client@4.3.1
    playwright-core@1.65.1
    @redocly/cli@2.77.0
)

log() { printf 'audex install-web: %s\n' "$*" >&2; }

for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
        log "$tool is not installed (Node.js 20.19 or newer is needed)"
        exit 1
    fi
done

stamp="$dir/.installed"
want=$(printf '%s\n' "${pins[@]}")

# installed already: the stamp names these pins and every package is there
installed() {
    local pin name
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] || return 1
    for pin in "${pins[@]}"; do
        name=${pin%@*}
        [ -f "$dir/node_modules/$name/package.json" ] || return 1
        grep -q "\"version\": *\"${pin##*@}\"" \
            "$dir/node_modules/$name/package.json" || return 1
    done
}

if installed; then
    exit 0
fi

log "installing ${pins[*]} into $dir"
mkdir -p "$dir"
rm -f "$stamp"

# a package.json of our own: npm never walks up to another project's
{
    printf '{\n  "name": "audex-web-tools",\n  "private": true,\n'
    printf '  "dependencies": {\n'
    n=${#pins[@]}
    for i in "${!pins[@]}"; do
        pin=${pins[$i]}
        sep=','
        [ "$i" -eq $((n - 1)) ] && sep=''
        printf '    "%s": "%s"%s\n' "${pin%@*}" "${pin##*@}" "$sep"
    done
    printf '  }\n}\n'
} > "$dir/package.json"

(
    cd "$dir"
    SCARF_ANALYTICS=false npm install --ignore-scripts --no-audit --no-fund \
        --no-update-notifier --loglevel=error >/dev/null
)

printf '%s\n' "$want" > "$stamp"

if ! installed; then
    log "npm did not install the pinned versions"
    exit 1
fi
