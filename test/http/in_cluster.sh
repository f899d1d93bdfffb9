#!/usr/bin/env bash
# Inside the cluster of test/http/run.sh: a database with the extension
# pointed at the simulator, the API stack in front of it, the tests.
set -euo pipefail
cd "$(dirname "$0")/../.."

db=vs_http
sim="http://127.0.0.1:${VS_SIM_PORT:?set VS_SIM_PORT to the simulator port}"
export VS_API_DIR=${VS_API_DIR:-$(mktemp -d /tmp/vibescaling-http.XXXXXX)}
trap 'scripts/api-stack.sh stop; rm -rf "$VS_API_DIR"' EXIT

createdb "$db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION vibescaling CASCADE" \
     -c "ALTER DATABASE $db SET vibescaling.api_base_url TO '$sim'" >/dev/null
api=$(scripts/api-stack.sh start "$db")
PGDATABASE=$db python3 test/http/api_test.py "$api" "$VS_API_DIR/jwt-secret" "$sim" "$db" || {
  echo "# PostgREST's log:"; tail -n 20 "$VS_API_DIR/postgrest.log"
  echo "# nginx's errors:"; tail -n 20 "$VS_API_DIR/nginx-error.log"
  exit 1
}
