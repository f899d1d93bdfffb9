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
# The demo's creator grants every scope the consent URL asks for (the
# simulator's token then carries them), with followers to count.
curl -s -X POST "$sim/_sim/users" -d '{"open_id": "demo_creator", "access_token": "act.demo_creator.seed",
  "follower_count": 1200, "scopes": ["user.info.basic", "video.publish", "video.upload", "video.list", "user.info.stats"]}' >/dev/null
export VS_DEMO_SIM="$sim" VS_DEMO_DIR=$(mktemp -d /tmp/vibescaling-demo-media.XXXXXX)
export VS_DEMO_FAULT='{"endpoint": "video_init", "action": "drop", "after_processing": true, "open_id": "demo_creator"}'
chmod 755 "$VS_DEMO_DIR"
psql -X -d "$db" -v sim_url="$sim" -v demo_dir="$VS_DEMO_DIR" -f scripts/demo.sql

echo
echo "== 15. The HTTP API: nginx (api/nginx.conf) in front of PostgREST 12 (api/postgrest.conf)"
export VS_API_DIR=${VS_API_DIR:-$(mktemp -d /tmp/vibescaling-demo.XXXXXX)}
trap 'scripts/api-stack.sh stop; rm -rf "$VS_API_DIR" "$VS_DEMO_DIR"' EXIT
api=$(scripts/api-stack.sh start "$db")
scripts/demo-api.sh "$api" "$VS_API_DIR/jwt-secret"

token=$(scripts/jwt.py --secret-file "$VS_API_DIR/jwt-secret" --role vibescaling_user --sub acme --ttl 86400)
operator=$(scripts/jwt.py --secret-file "$VS_API_DIR/jwt-secret" --role vibescaling_operator --ttl 86400)
echo
echo "== 16. The Analytics page (docs/analytics.md), served by nginx next to the API"
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
