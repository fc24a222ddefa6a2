#!/usr/bin/env bash
# Makes the secret files docker/compose.yaml hands to its containers, once:
# random 48-byte keys for tokens (jwt.secret) and download links
# (link.secret), and an empty SMTP password (smtp.password: write yours
# there).  Existing files are left alone, so keys survive a second run.
#
# usage: docker/secrets.sh [DIR]      (default: docker/secrets)
#
# The directory is mode 0700.  The files are 0644 on purpose: Compose
# bind-mounts them as they are, and the containers do not run as your
# user; the directory is what keeps other local users out.
set -euo pipefail

dir=${1:-$(cd "$(dirname "$0")" && pwd)/secrets}

mkdir -p "$dir"
chmod 0700 "$dir"

for name in jwt.secret link.secret; do
    if [ ! -s "$dir/$name" ]; then
        head -c 48 /dev/urandom | base64 | tr -d '\n' > "$dir/$name"
        echo "audex: made $dir/$name" >&2
    fi
done

if [ ! -e "$dir/smtp.password" ]; then
    : > "$dir/smtp.password"
    echo "audex: made an empty $dir/smtp.password; put the SMTP" \
         "password there if your server wants one" >&2
fi

chmod 0644 "$dir/jwt.secret" "$dir/link.secret" "$dir/smtp.password"
