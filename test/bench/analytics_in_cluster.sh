#!/usr/bin/env bash
# Inside test/bench/analytics.sh's cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=vs_bench
runs=$VS_BENCH_RUNS
export VS_API_DIR=$(mktemp -d /tmp/vibescaling-bench-api.XXXXXX)
trap 'scripts/api-stack.sh stop; rm -rf "$VS_API_DIR"' EXIT

createdb "$db"
psql -X -q -d "$db" -c "CREATE EXTENSION vibescaling CASCADE" >/dev/null
start=$(date +%s.%N)
psql -X -d "$db" -v rows="$VS_BENCH_ROWS" -f test/bench/analytics_fill.sql
echo "# fill: $(python3 -c "import time; print(round(time.time() - $start))") s"

# What the raw rows cost (no rollup yet): one tenant-day and one operator-week.
t() { psql -X -qAt -d "$db" -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'; }
echo "# without rollups (raw rows): tenant 24 h $(t "SELECT vibescaling.analytics(now() - interval '24 hours', now(), 'UTC', 'tenant-07') IS NOT NULL") ms," \
     "operator 7 days $(t "SELECT vibescaling.analytics(now() - interval '7 days', now(), 'UTC') IS NOT NULL") ms"
echo "# first roll-up of the whole log: $(t "SELECT vibescaling.roll_up_analytics()") ms;" \
     "rollup rows: $(psql -X -qAt -d "$db" -c "SELECT (SELECT count(*) FROM vibescaling.analytics_calls_hourly) || ' calls, ' ||
        (SELECT count(*) FROM vibescaling.analytics_account_days) || ' account-days, ' ||
        (SELECT count(*) FROM vibescaling.analytics_delay_hourly) || ' delay'")"
echo "# a later roll-up (one hour of rows at most): $(t "SELECT vibescaling.roll_up_analytics()") ms"

# Measure a settled server: the fill's dirty pages flushed, no autovacuum
# worker left (both would slow every request, whatever the query).
psql -X -q -d "$db" -c "CHECKPOINT" >/dev/null
for _ in $(seq 1 120); do
  [ "$(psql -X -qAt -d "$db" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")" = 0 ] && break
  sleep 1
done

api=$(scripts/api-stack.sh start "$db")
tenant=$(scripts/jwt.py --secret-file "$VS_API_DIR/jwt-secret" --role vibescaling_user --sub tenant-07)
operator=$(scripts/jwt.py --secret-file "$VS_API_DIR/jwt-secret" --role vibescaling_operator)
account=$(psql -X -qAt -d "$db" -c "SELECT id FROM vibescaling.tiktok_accounts WHERE owner = 'tenant-07' LIMIT 1")

# Times one request RUNS times (after one warm-up) and prints median and max in ms.
measure() {
  local name=$1 token=$2 path=$3; shift 3
  curl -s -o /dev/null -H "Authorization: Bearer $token" "$@" "$api$path"
  local times=() code
  for _ in $(seq 1 "$runs"); do
    read -r code tm < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $token" "$@" "$api$path")
    [ "$code" = 200 ] || [ "$code" = 206 ] || { echo "$name: HTTP $code" >&2; exit 1; }
    times+=("$tm")
  done
  python3 -c "
import statistics, sys
t = sorted(float(x) * 1000 for x in sys.argv[2:])
print(f'{sys.argv[1]:<58} median {statistics.median(t):7.1f} ms   max {t[-1]:7.1f} ms')" "$name" "${times[@]}"
}
iso() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }
now=$(iso now)
for p in "24 hours" "7 days" "30 days"; do
  from=$(iso "-$p")
  measure "GET /rpc/analytics, a tenant, $p" "$tenant" "/api/v1/rpc/analytics?from=$from&to=$now&tz=Europe/Paris"
  measure "GET /rpc/analytics, the operator (every tenant), $p" "$operator" "/api/v1/rpc/analytics?from=$from&to=$now&tz=Europe/Paris"
done
sel="select=id,created_at,endpoint,outcome,outcome_unknown,http_status,error_code,duration_ms,tiktok_account_id,post_id&order=id.desc"
week="created_at=gte.$(iso '-7 days')&created_at=lt.$now"
measure "history, operator, 7 days, first page" "$operator" "/api/v1/dispatch_logs?$sel&$week" \
  -H 'Range-Unit: items' -H 'Range: 0-50'
measure "history, operator, 7 days, page 21 (offset 1000)" "$operator" "/api/v1/dispatch_logs?$sel&$week" \
  -H 'Range-Unit: items' -H 'Range: 1000-1050'
measure "history, operator, 7 days, one account, refused inits" "$operator" \
  "/api/v1/dispatch_logs?$sel&$week&tiktok_account_id=eq.$account&outcome=eq.failure" \
  -H 'Range-Unit: items' -H 'Range: 0-50'
measure "history, a tenant, 7 days, first page" "$tenant" "/api/v1/dispatch_logs?$sel&$week" \
  -H 'Range-Unit: items' -H 'Range: 0-50'
measure "history, a tenant, 7 days, status_fetch only" "$tenant" "/api/v1/dispatch_logs?$sel&$week&endpoint=eq.status_fetch" \
  -H 'Range-Unit: items' -H 'Range: 0-50'
