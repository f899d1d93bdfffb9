#!/usr/bin/env bash
# Inside the cluster of test/browser/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

db=vs_browser
sim="http://127.0.0.1:${VS_SIM_PORT:?set VS_SIM_PORT to the simulator port}"
run=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
export VS_API_DIR=${VS_API_DIR:-$(mktemp -d /tmp/vibescaling-browser.XXXXXX)}
shots=${VS_SCREENSHOT_DIR:-$VS_API_DIR/screenshots}
mkdir -p "$shots"
trap 'scripts/api-stack.sh stop; rm -rf "$VS_API_DIR"' EXIT

createdb "$db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION vibescaling CASCADE" \
     -c "ALTER DATABASE $db SET vibescaling.api_base_url TO '$sim'" >/dev/null
export PGOPTIONS="-c vibescaling.api_base_url=$sim"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f test/fixtures/setup.sql >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -v run="$run" -f test/browser/fixture.sql >/dev/null
unset PGOPTIONS
api=$(scripts/api-stack.sh start "$db")
node test/browser/analytics_test.mjs "$api" "$VS_API_DIR/jwt-secret" "$db" "$run" "$shots" || {
  echo "# nginx's errors:"; tail -n 20 "$VS_API_DIR/nginx-error.log"
  echo "# PostgREST's log:"; tail -n 20 "$VS_API_DIR/postgrest.log"
  exit 1
}
