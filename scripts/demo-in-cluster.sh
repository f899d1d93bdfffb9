#!/usr/bin/env bash
# Inside the demo's cluster (scripts/demo.sh): the SQL demo (scripts/demo.sql),
# then the HTTP API through nginx and PostgREST (scripts/demo-api.sh). On a
# terminal it keeps the API serving until Enter or Ctrl-C, with a tenant's
# JWT to try it with; otherwise it stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
db=vibescaling_demo
sim="http://127.0.0.1:${VS_SIM_PORT:?}"

createdb "$db"
psql -X -d "$db" -v sim_url="$sim" -f scripts/demo.sql

echo
echo "== 11. The HTTP API: nginx (api/nginx.conf) in front of PostgREST 12 (api/postgrest.conf)"
export VS_API_DIR=${VS_API_DIR:-$(mktemp -d /tmp/vibescaling-demo.XXXXXX)}
trap 'scripts/api-stack.sh stop; rm -rf "$VS_API_DIR"' EXIT
api=$(scripts/api-stack.sh start "$db")
scripts/demo-api.sh "$api" "$VS_API_DIR/jwt-secret"

token=$(scripts/jwt.py --secret-file "$VS_API_DIR/jwt-secret" --role vibescaling_user --sub acme --ttl 86400)
operator=$(scripts/jwt.py --secret-file "$VS_API_DIR/jwt-secret" --role vibescaling_operator --ttl 86400)
echo
echo "== 12. The Analytics page (docs/analytics.md), served by nginx next to the API"
echo "Tenant acme's page (its JWT, valid 24 h, is in the address's fragment):"
echo "  $api/analytics/#token=$token"
echo "An operator's page (every tenant, the unknown outcomes to settle):"
echo "  $api/analytics/#token=$operator"
echo "The API itself, as acme:"
echo "  curl -H 'Authorization: Bearer $token' $api/api/v1/posts"
if [ -t 0 ]; then
  echo "Press Enter (or Ctrl-C) to stop the demo."
  read -r _ || true
fi
