#!/usr/bin/env bash
# Checks deploy/nginx.conf with `nginx -t`, mapping the compose service names to local ports.
set -euo pipefail
dir=$(mktemp -d)
sed 's/app1:8000/127.0.0.1:8001/; s/app2:8000/127.0.0.1:8002/' "$(dirname "$0")/../deploy/nginx.conf" > "$dir/nginx.conf"
nginx -t -c "$dir/nginx.conf" -p "$dir"
