#!/usr/bin/env bash
# Prints an nginx.conf made from conf/nginx.conf.example (or TEMPLATE) with
# the lines that depend on where audex runs replaced: the module path, pid
# and log files, temp paths, listen address, worker count, backends and
# secret files.  scripts/run.sh (`make run`) and the nginx image's entry
# point (docker/nginx-entrypoint.sh) both make their nginx.conf with it.
#
# usage: docker/nginx-conf.sh [options] [TEMPLATE] > nginx.conf
#
#   --module PATH        load_module line of ngx_http_audex_module.so
#   --pid PATH           pid
#   --error-log PATH     error_log (its level is kept)
#   --access-log PATH    every access_log that is not "off" (format kept)
#   --listen ADDR        every listen (its parameters are kept)
#   --workers N          worker_processes
#   --mongodb-uri URI    audex_mongodb_uri
#   --redis-url URL      audex_redis_url
#   --jwt-key FILE       the key file of audex_jwt_key (algorithm kept)
#   --link-secret FILE   audex_link_secret
#   --temp-dir DIR       client_body, proxy, fastcgi, uwsgi and scgi
#                        temp paths become DIR/client_body, ...
#   --path OLD=NEW       every OLD in a directive's arguments becomes NEW
#                        (the web page's files: /usr/share/audex/html=...)
#   --metrics-allow "ADDR..."
#                        in "location = /metrics", an "allow ADDR;" for
#                        each address or CIDR, before its "deny all;"
#                        (for a Prometheus that is not on loopback)
#
# Only the lines of the options given change; each of them must find its
# line (a renamed or commented-out directive is an error, not a silently
# ignored setting).  Values are written as nginx quoted strings, so a URI
# may hold any character but a newline.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
template=$top/conf/nginx.conf.example
script=()

die() { printf 'audex nginx-conf: %s\n' "$*" >&2; exit 1; }

# the value as an nginx double-quoted string, escaped for a sed
# replacement with "#" as delimiter; $2 is a suffix left as it is (a
# back reference)
quote() {
    local v=$1
    v=${v//\\/\\\\}
    v=${v//\"/\\\"}
    v=$(printf '%s' "$v" | sed -e 's/[\\&#]/\\&/g')
    printf '"%s%s"' "$v" "${2:-}"
}

# replace(option, line regex, first arg regex, value, [address])
#   the first argument after the directive, matched by $3, becomes $4
replace() {
    local opt=$1 line=$2 arg=$3 value=$4 skip=${5:-}
    if ! grep -Eq "^[[:space:]]*$line[[:space:]]+$arg" "$template"; then
        die "$opt: no \"$line\" line in $template"
    fi
    script+=(-e "${skip}s#^([[:space:]]*$line[[:space:]]+)$arg#\\1$value#")
}

# allow lines before the "deny all;" of the /metrics location
metrics_allow() {
    local a lines='' loc end deny
    loc='^[[:space:]]*location[[:space:]]+=[[:space:]]*/metrics[[:space:]]*\{'
    end='^[[:space:]]*\}'
    deny='^([[:space:]]*)(deny[[:space:]]+all;)'
    for a in $1; do
        [[ $a =~ ^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$ ]] \
            || die "--metrics-allow: \"$a\" is not an address or CIDR"
        lines+="\\1allow $a;\\n"
    done
    [ -n "$lines" ] || return 0
    if ! sed -nE "\#$loc#,\#$end#p" "$template" \
            | grep -Eq '^[[:space:]]*deny[[:space:]]+all;'; then
        die "--metrics-allow: no \"deny all;\" in \"location = /metrics\"" \
            "in $template"
    fi
    script+=(-e "\#$loc#,\#$end#s#$deny#$lines\\1\\2#")
}

# a path prefix replaced wherever a directive (not a comment) has it;
# unquoted in nginx.conf, so no blank, quote, ";", "{", "}" or "#"
path() {
    local old=${1%%=*} new=${1#*=} re
    if [ "$old" = "$1" ] || [[ $old != /* ]] || [[ $new != /* ]]; then
        die "--path wants /OLD=/NEW, not \"$1\""
    fi
    case $1 in
        *[[:space:]\"\'\;\{\}\#]*) die "--path: \"$1\" has a character" \
                                   "nginx.conf cannot hold unquoted" ;;
    esac
    re=$(printf '%s' "$old" | sed -e 's/[][\.*^$+?(){}|#]/\\&/g')
    if ! grep -Eq "^[[:space:]]*[a-z_]+[[:space:]].*$re" "$template"; then
        die "--path: no directive names $old in $template"
    fi
    new=$(printf '%s' "$new" | sed -e 's/[\&#]/\\&/g')
    script+=(-e "/^[[:space:]]*#/!s#$re#$new#g")
}

opts=()

while [ $# -gt 0 ]; do
    case $1 in
        --module|--pid|--error-log|--access-log|--listen|--workers \
        |--mongodb-uri|--redis-url|--jwt-key|--link-secret|--temp-dir \
        |--metrics-allow|--path)
            [ $# -ge 2 ] || die "$1 needs a value"
            case $2 in
                *$'\n'*) die "$1: a value may not hold a newline" ;;
            esac
            opts+=("$1" "$2")
            shift 2
            ;;
        -h|--help)
            sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"
            exit 0
            ;;
        -*) die "unknown option $1" ;;
        *)
            template=$1
            shift
            ;;
    esac
done

[ -r "$template" ] || die "cannot read $template"

tok='[^;[:space:]]+'

for ((i = 0; i < ${#opts[@]}; i += 2)); do
    opt=${opts[i]}
    val=${opts[i + 1]}

    case $opt in
        --module)
            replace "$opt" load_module \
                '"?[^;[:space:]]*ngx_http_audex_module\.so"?' \
                "$(quote "$val")"
            ;;
        --pid) replace "$opt" pid "$tok" "$(quote "$val")" ;;
        --error-log) replace "$opt" error_log "$tok" "$(quote "$val")" ;;
        --access-log)
            replace "$opt" access_log "$tok" "$(quote "$val")" \
                '/^[[:space:]]*access_log[[:space:]]+off[[:space:]]*;/!'
            ;;
        --listen) replace "$opt" listen "$tok" "$(quote "$val")" ;;
        --workers)
            case $val in
                auto|[1-9]|[1-9][0-9]|[1-9][0-9][0-9]) ;;
                *) die "--workers wants auto or a number, not \"$val\"" ;;
            esac
            replace "$opt" worker_processes "$tok" "$val"
            ;;
        --mongodb-uri)
            replace "$opt" audex_mongodb_uri "$tok" "$(quote "$val")"
            ;;
        --redis-url) replace "$opt" audex_redis_url "$tok" "$(quote "$val")" ;;
        --jwt-key)
            replace "$opt" "audex_jwt_key[[:space:]]+[A-Za-z0-9]+" "$tok" \
                "$(quote "$val")"
            ;;
        --link-secret)
            replace "$opt" audex_link_secret "$tok" "$(quote "$val")"
            ;;
        --temp-dir)
            replace "$opt" "(client_body|proxy|fastcgi|uwsgi|scgi)_temp_path" \
                "$tok" "$(quote "$val/" '\2')"
            ;;
        --metrics-allow)
            metrics_allow "$val"
            ;;
        --path) path "$val" ;;
    esac
done

if [ ${#script[@]} -eq 0 ]; then
    cat "$template"
else
    sed -E "${script[@]}" "$template"
fi
