#!/usr/bin/env bash
# Crash test: kill -9 the postmaster while the dispatcher publishes 20 due
# posts (TikTok answering in 2 s: the kill falls while the inits are in
# flight), restart, run the dispatcher again:
# the inits in flight at the kill have an unknown outcome, and their posts
# are publishing; settle_unknown_outcomes then finds in the creators' video
# lists (the accounts grant video.list, the posts are public) those TikTok
# made. Every post must end posted exactly once or failed with a reason: no
# post gets two successful inits at TikTok (the simulator's own request
# log), every post TikTok accepted is posted, none is left 'publishing' or
# 'scheduled'. Needs the PG* variables of a pg_virtualenv cluster and the
# simulator on $VS_SIM_PORT.
set -uo pipefail
cd "$(dirname "$0")/../.."

sim="http://127.0.0.1:${VS_SIM_PORT:-18443}"
run=$(date +%s%N | tail -c 9)
passed=0
failed=0
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
# Records one assertion: check NAME EXPECTED ACTUAL.
check() {
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok - $1"
  else failed=$((failed + 1)); echo "not ok - $1 (expected '$2', got '$3')"; fi
}

cluster=$(pg_lsclusters --no-header | awk -v port="$PGPORT" '$3 == port { print $1 " " $2 }')
datadir=$(pg_lsclusters --no-header | awk -v port="$PGPORT" '$3 == port { print $6 }')

q "CREATE TABLE IF NOT EXISTS public.crash_posts (run text, id uuid)
   ; INSERT INTO public.crash_posts
     SELECT '$run', (vibescaling.schedule_post(vs_test.new_video('crash $run ' || i), now() + interval '10 minutes',
                                               vs_test.new_account('crash${run}_' || i,
                                                 '{\"scopes\": [\"user.info.basic\", \"video.publish\", \"video.upload\", \"video.list\"]}'),
                                               'PUBLIC_TO_EVERYONE') #>> '{data,id}')::uuid
       FROM generate_series(1, 20) i" >/dev/null
later=$(q "SELECT now() + interval '11 minutes'")
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 2000}' >/dev/null

q "CALL vibescaling.dispatch_due_posts('$later')" >/dev/null 2>&1 &
sleep 3
echo "# kill -9 the postmaster of cluster $cluster (pid $(head -1 "$datadir/postmaster.pid"))"
kill -9 "$(head -1 "$datadir/postmaster.pid")"
wait 2>/dev/null
# The orphaned backends exit when they notice the postmaster is gone; until
# then the old shared memory is in use and the restart is refused.
for _ in $(seq 1 60); do
  pg_ctlcluster $cluster start 2>/dev/null && break
  sleep 0.5
done
for _ in $(seq 1 50); do pg_isready -q && break; sleep 0.2; done
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null

before=$(q "SELECT count(*) FROM vibescaling.posts p JOIN crash_posts c USING (id) WHERE c.run = '$run' AND p.status = 'posted'")
echo "# posts posted before the crash: $before of 20"
check "the kill fell while the dispatcher was at work (posted before it: $before of 20)" 1 "$([ "$before" -lt 20 ] && echo 1 || echo 0)"
q "CALL vibescaling.dispatch_due_posts('$later')" >/dev/null
echo "# after the dispatcher's second run: $(q "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT p.status, count(*) n FROM vibescaling.posts p JOIN crash_posts c USING (id) WHERE c.run = '$run' GROUP BY 1 ORDER BY 1) s")"
# TikTok finishes processing and lists the public posts; then the posts
# whose init was in flight settle (a one-second quiet period: TikTok has
# shown all it will by then).
processing=$(curl -s "$sim/_sim/config" | python3 -c "import json, sys; print(json.load(sys.stdin)['processing_seconds'])")
sleep "$(python3 -c "print(2 * float('$processing') + 1)")"
echo "# settle_unknown_outcomes: $(q "SELECT vibescaling.settle_unknown_outcomes(1000, '1 second')")"

counts=$(curl -s "$sim/_sim/requests?endpoint=video_init" |
  python3 -c "
import json, sys, collections
c = collections.Counter(r['open_id'] for r in json.load(sys.stdin)['requests']
                        if (r.get('open_id') or '').startswith('crash$run') and r.get('http_status') == 200)
print(max(c.values() or [0]), len(c), ','.join(sorted(c)))")
read -r most on_tiktok open_ids <<<"$counts"
check "no post got two successful inits at TikTok (most per account: $most)" 1 "$most"
check "nothing left scheduled or publishing" 0 \
  "$(q "SELECT count(*) FROM vibescaling.posts p JOIN crash_posts c USING (id) WHERE c.run = '$run' AND p.status IN ('scheduled', 'publishing')")"
check "every post is posted or failed with a reason" 20 \
  "$(q "SELECT count(*) FROM vibescaling.posts p JOIN crash_posts c USING (id) WHERE c.run = '$run'
          AND (p.status = 'posted' OR (p.status = 'failed' AND p.last_error IS NOT NULL))")"
check "every failed post is one TikTok never got, settled so after the quiet period" 0 \
  "$(q "SELECT count(*) FROM vibescaling.posts p JOIN crash_posts c USING (id) JOIN vibescaling.tiktok_accounts a ON a.id = p.tiktok_account_id
          WHERE c.run = '$run' AND p.status = 'failed'
            AND (a.open_id = ANY (string_to_array('$open_ids', ','))
                 OR NOT EXISTS (SELECT 1 FROM vibescaling.settlements s WHERE s.post_id = p.id AND s.decided_by = 'quiet_period'))")"
check "all $on_tiktok posts TikTok accepted are posted (none lost): those in flight at the kill found in the video list" "$on_tiktok" \
  "$(q "SELECT count(*) FROM vibescaling.posts p JOIN crash_posts c USING (id) JOIN vibescaling.tiktok_accounts a ON a.id = p.tiktok_account_id
          WHERE c.run = '$run' AND a.open_id = ANY (string_to_array('$open_ids', ',')) AND p.status = 'posted'")"
echo "# settlements: $(q "SELECT coalesce(string_agg(k || ' ' || n, ', '), 'none') FROM (SELECT s.decided_by || ' ' || s.on_tiktok k, count(*) n
                                   FROM vibescaling.settlements s JOIN crash_posts c ON c.id = s.post_id WHERE c.run = '$run' GROUP BY 1 ORDER BY 1) x")"
echo "# after the restart: $(q "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT p.status, count(*) n FROM vibescaling.posts p JOIN crash_posts c USING (id) WHERE c.run = '$run' GROUP BY 1 ORDER BY 1) s")"
echo "crash: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
