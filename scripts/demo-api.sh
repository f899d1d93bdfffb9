#!/usr/bin/env bash
# The demo's HTTP part (run by scripts/demo-in-cluster.sh): tenant "acme"
# uses the API through nginx and PostgREST as an application would, with
# curl and a JWT; tenant "globex" sees none of it.
#   scripts/demo-api.sh API_URL JWT_SECRET_FILE
set -euo pipefail
cd "$(dirname "$0")/.."
api=$1
secret=$2
acme=$(scripts/jwt.py --secret-file "$secret" --role vibescaling_user --sub acme)
globex=$(scripts/jwt.py --secret-file "$secret" --role vibescaling_user --sub globex)

# Prints a request, then its status and JSON answer (shortened).
call() {
  local who=$1 method=$2 path=$3 body=${4:-}
  local token
  token=$([ "$who" = acme ] && echo "$acme" || echo "$globex")
  echo "\$ curl -X $method $api$path${body:+ -d '$body'}    (as $who)"
  local args=(-s -w '\n%{http_code}' -X "$method" -H "Authorization: Bearer $token" -H 'Content-Type: application/json'
              -H 'Prefer: return=representation')
  [ -n "$body" ] && args+=(-d "$body")
  local out
  out=$(curl "${args[@]}" "$api$path")
  echo "  HTTP $(tail -n 1 <<<"$out"): $(head -n -1 <<<"$out" | cut -c1-220)"
}

# Pulls a field out of the last JSON answer of a request, for the next one.
field() {
  curl -s -X "$1" -H "Authorization: Bearer $acme" -H 'Content-Type: application/json' \
       -H 'Prefer: return=representation' ${3:+-d "$3"} "$api$2" |
    python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$4"
}

echo "Tenant acme's JWT: {\"role\": \"vibescaling_user\", \"sub\": \"acme\"}, HS256 with PostgREST's jwt-secret"
account=$(field POST /api/v1/rpc/connect_account \
  '{"auth_code": "code-acme_creator", "redirect_uri": "https://app.example/tiktok/callback"}' "['data']['id']")
echo "acme connected TikTok account $account (POST /api/v1/rpc/connect_account, OAuth code exchange)"
call acme GET /api/v1/accounts
post=$(field POST /api/v1/posts '{"caption": "From the API", "video_url": "https://verified.example/api.mp4"}' "[0]['id']")
echo "acme created draft $post (POST /api/v1/posts)"
call acme POST "/api/v1/posts/$post/publish" "{\"tiktok_account_id\": \"$account\", \"privacy_level\": \"SELF_ONLY\"}"
call acme GET "/api/v1/posts/$post/publish-status"
later=$(field POST /api/v1/posts '{"caption": "Scheduled through the API", "video_url": "https://verified.example/later.mp4"}' "[0]['id']")
when=$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)
call acme PATCH "/api/v1/posts/$later" \
  "{\"status\": \"scheduled\", \"scheduled_at\": \"$when\", \"tiktok_account_id\": \"$account\", \"privacy_level\": \"SELF_ONLY\"}"
call acme GET "/api/v1/posts/$later/publish-status"
call acme GET "/api/v1/dispatch_logs?select=endpoint,http_status,outcome&order=id.desc&limit=3"
echo "Tenant globex sees none of acme's posts, and may not touch them:"
call globex GET "/api/v1/posts?select=id"
call globex POST "/api/v1/posts/$post/publish" "{\"tiktok_account_id\": \"$account\", \"privacy_level\": \"SELF_ONLY\"}"
call globex PATCH "/api/v1/posts/$later" '{"caption": "mine now"}'

echo
echo "A campaign over HTTP: one draft, two of acme's accounts, each at its own time"
second=$(field POST /api/v1/rpc/connect_account \
  '{"auth_code": "code-acme_second", "redirect_uri": "https://app.example/tiktok/callback"}' "['data']['id']")
echo "acme connected a second TikTok account $second"
campaign=$(field POST /api/v1/posts '{"caption": "Campaign through the API", "video_url": "https://verified.example/campaign.mp4"}' "[0]['id']")
first_at=$(date -u -d '+1 day' +%Y-%m-%dT10:00:00Z)
second_at=$(date -u -d '+1 day' +%Y-%m-%dT12:00:00Z)
call acme POST /api/v1/rpc/schedule_targets \
  "{\"post_id\": \"$campaign\", \"scheduled_at\": \"$first_at\", \"targets\": [{\"tiktok_account_id\": \"$account\", \"privacy_level\": \"SELF_ONLY\"}, {\"tiktok_account_id\": \"$second\", \"privacy_level\": \"SELF_ONLY\", \"scheduled_at\": \"$second_at\"}]}"
call acme GET "/api/v1/posts/$campaign/publish-status"
echo "The same schedule, in and out as CSV (all rows or none):"
csv_at=$(date -u -d '+2 days' +%Y-%m-%dT09:00:00Z)
csv=$(printf 'caption,video_url,tiktok_account_id,privacy_level,scheduled_at\\nFrom a CSV,https://verified.example/csv.mp4,%s,SELF_ONLY,%s\\n' "$second" "$csv_at")
call acme POST /api/v1/rpc/import_schedule "{\"csv\": \"$csv\"}"
echo "\$ curl -H 'Accept: text/csv' $api/api/v1/rpc/export_schedule    (as acme)"
curl -s -H "Authorization: Bearer $acme" -H 'Accept: text/csv' "$api/api/v1/rpc/export_schedule" | sed 's/^/  /'
echo "Each account's use of TikTok's daily caps, a week ahead:"
call acme GET "/api/v1/rpc/account_caps?tiktok_account_id=eq.$second&direct_posts=gt.0"
