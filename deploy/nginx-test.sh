#!/usr/bin/env bash
# Validates deploy/nginx.conf with `nginx -t`, in a prefix of its own (never the system
# nginx's pid, logs or temp paths). The upstream's compose host names are replaced by
# 127.0.0.1, since nginx resolves them while it checks the file.
set -euo pipefail
cd "$(dirname "$0")"
command -v nginx >/dev/null || { echo "FAIL: nginx is not installed (apt-get install nginx)" >&2; exit 1; }
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
mkdir -p "$prefix/logs"
sed -E 's/^(\s*server\s+)[a-z][a-z0-9-]*:/\1127.0.0.1:/' nginx.conf >"$prefix/nginx.conf"
cp /etc/nginx/mime.types "$prefix/" 2>/dev/null || true
nginx -t -p "$prefix" -e "$prefix/logs/error.log" -c "$prefix/nginx.conf" -g "pid $prefix/nginx.pid;"
