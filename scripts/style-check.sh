#!/usr/bin/env bash
# The house style's mechanical part (see ../shared/STYLE.md): C sources
# in nginx style (no tabs, no trailing blanks, 80 columns, /* */
# comments, a final newline); scripts and tests without tabs at the
# start of a line or trailing blanks.  Prints each fault as file:line.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

faults=0
fault() { printf '%s: %s\n' "$1" "$2"; faults=$((faults + 1)); }

mapfile -t c_files < <(git ls-files --cached --others --exclude-standard \
    -- '*.c' '*.h' | grep -v '^build/')
mapfile -t other_files < <(git ls-files --cached --others --exclude-standard \
    -- '*.t' '*.pm' '*.sh' '*.pl' 'Makefile' 'config' '.ci/*' \
    'conf/*' | grep -v '^build/')

for f in "${c_files[@]}"; do
    [ -f "$f" ] || continue
    awk -v f="$f" '
        /\t/                { print f ":" NR ": tab" }
        /[ \t]+$/           { print f ":" NR ": trailing blank" }
        /\r$/               { print f ":" NR ": CRLF" }
        length($0) > 80     { print f ":" NR ": longer than 80 columns" }
        /^[ \t]*\/\//       { print f ":" NR ": // comment (use /* */)" }
    ' "$f" > /tmp/audex-style.$$
    if [ -s /tmp/audex-style.$$ ]; then
        cat /tmp/audex-style.$$
        faults=$((faults + $(wc -l < /tmp/audex-style.$$)))
    fi
    if [ -s "$f" ] && [ "$(tail -c 1 "$f" | od -An -c | tr -d ' ')" != '\n' ]
    then
        fault "$f" "no newline at end of file"
    fi
done

for f in "${other_files[@]}"; do
    [ -f "$f" ] || continue
    case "$f" in Makefile) tabs_ok=1 ;; *) tabs_ok=0 ;; esac
    awk -v f="$f" -v tabs_ok="$tabs_ok" '
        /[ \t]+$/                     { print f ":" NR ": trailing blank" }
        !tabs_ok && /^\t/             { print f ":" NR ": tab indent" }
        /\r$/                         { print f ":" NR ": CRLF" }
    ' "$f" > /tmp/audex-style.$$
    if [ -s /tmp/audex-style.$$ ]; then
        cat /tmp/audex-style.$$
        faults=$((faults + $(wc -l < /tmp/audex-style.$$)))
    fi
done
rm -f /tmp/audex-style.$$

if [ "$faults" -gt 0 ]; then
    echo "style: $faults fault(s)"
    exit 1
fi
echo "style: ok (${#c_files[@]} C files, ${#other_files[@]} others)"
