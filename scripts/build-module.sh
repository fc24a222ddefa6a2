#!/usr/bin/env bash
# Build ngx_http_audex_module.so against the distro nginx.
#
# Debian's nginx-dev ships nginx's headers, its configure script and the
# exact flags the packaged binary was configured with (conf_flags).  A
# dynamic module is only loadable when it was configured with the same
# flags ("binary compatible"), and only those flags turn NGX_THREADS on.
#
# usage: scripts/build-module.sh [BUILD_DIR]   (default: build)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
src=${NGINX_DEV_SRC:-/usr/share/nginx/src}
tree=$build/nginx

if [ ! -f "$src/conf_flags" ]; then
    echo "audex: $src/conf_flags is missing: install nginx-dev" >&2
    exit 1
fi

# The configure step is redone when the addon script, the nginx version
# or the list of module sources changes; compiling is incremental.
stamp_want=$( { cat "$top/config" "$src/conf_flags";
                /usr/sbin/nginx -v 2>&1;
                ls "$top"/ngx_module/*.[ch] "$top"/lib/audex_*.[ch] \
                   "$top"/store/audex_*.[ch]; } \
              | sha1sum | cut -d' ' -f1)
stamp_have=$(cat "$tree/.audex-configured" 2>/dev/null || true)

if [ "$stamp_want" != "$stamp_have" ]; then
    rm -rf "$tree"
    mkdir -p "$build"
    cp -a "$src" "$tree"
    (
        cd "$tree"
        # shellcheck disable=SC1091
        source ./conf_flags
        ./configure "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$top" \
            > "$tree/configure.log" 2>&1 \
            || { tail -n 20 "$tree/configure.log" >&2; exit 1; }
    )
    echo "$stamp_want" > "$tree/.audex-configured"
fi

make -s -f objs/Makefile -C "$tree" modules
install -m 0644 "$tree/objs/ngx_http_audex_module.so" \
    "$build/ngx_http_audex_module.so"
