#!/usr/bin/env bash
# Concurrency and cancellation with several real sessions, for what an
# isolation spec (test/isolation/specs) cannot express: whole dispatcher
# runs that COMMIT round by round, in true parallel with real latency;
# elapsed time; sampling pg_stat_activity mid-run; background workers.
# The step-by-step races (two dispatchers, publish vs dispatcher, the same
# draft published twice, PATCH vs publish, one token refreshed by two
# sessions, cancel mid-dispatch) are specs. Needs the simulator on
# $VS_SIM_PORT and the PG* variables pointing at a database with
# vibescaling and test/fixtures.
#   1. two whole dispatcher runs over the same 20 due posts: each published once
#   2. pg_cancel_backend stops an in-flight TikTok call within about a second
#   3. five sessions publishing with the same expiring token: one refresh
#      (the rotated refresh token is spent once), no token in pg_stat_activity
#   4. publish_status from another session shows an upload's progress
#   5. the permanent log writer: many sessions share it, DROP DATABASE works
#   6. a burst right after ANALYZE of an empty log: plans follow the log's
#      growth (no full read of this week's partition per post)
#   7. a run shares its burst with dispatch helpers (each post once), and
#      cancelling the run stops them
#   8. dispatch_due_uploads shares its videos with helpers: uploads at once
set -uo pipefail
cd "$(dirname "$0")/../.."

sim="http://127.0.0.1:${VS_SIM_PORT:-18443}"
run=$(date +%s%N | tail -c 9)
passed=0
failed=0

# Runs SQL, prints unaligned tuples.
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

# Records one assertion: check NAME EXPECTED ACTUAL.
check() {
  if [ "$2" = "$3" ]; then
    passed=$((passed + 1)); echo "ok - $1"
  else
    failed=$((failed + 1)); echo "not ok - $1 (expected '$2', got '$3')"
  fi
}

# Number of calls of an endpoint the simulator saw for the open_ids with a prefix.
sim_count() {
  curl -s "$sim/_sim/requests?endpoint=$2" |
    python3 -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['requests'] if (r.get('open_id') or '').startswith('$1') and r.get('http_status') == 200))"
}

# Per open_id with a prefix, how many successful inits; prints the distinct counts.
inits_per_account() {
  curl -s "$sim/_sim/requests" |
    python3 -c "
import json, sys, collections
c = collections.Counter(r['open_id'] for r in json.load(sys.stdin)['requests']
                        if (r.get('open_id') or '').startswith('$1') and r['endpoint'].endswith('init')
                        and r.get('http_status') == 200)
print(' '.join(sorted({str(v) for v in c.values()})) + ' x' + str(len(c)))"
}

curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 300}' >/dev/null

echo "# 1. two whole dispatcher runs, 20 due posts on 20 accounts (300 ms per TikTok call)"
q "CREATE TABLE IF NOT EXISTS public.conc_posts (run text, label text, id uuid);
   INSERT INTO public.conc_posts
   SELECT '$run', 'disp', (vibescaling.schedule_post(vs_test.new_video('concurrent ' || i), now() + interval '10 minutes',
                                                  vs_test.new_account('conc${run}_' || i), 'SELF_ONLY') #>> '{data,id}')::uuid
     FROM generate_series(1, 20) i;" >/dev/null
later=$(q "SELECT now() + interval '15 minutes'")
q "CALL vibescaling.dispatch_due_posts('$later')" & p1=$!
q "CALL vibescaling.dispatch_due_posts('$later')" & p2=$!
wait $p1; wait $p2
check "all 20 posts are posted" 20 \
  "$(q "SELECT count(*) FROM vibescaling.posts p JOIN conc_posts c USING (id) WHERE c.run = '$run' AND c.label = 'disp' AND p.status = 'posted'")"
check "each account received exactly one init (counts: 1 x20)" "1 x20" "$(inits_per_account "conc${run}_")"
check "20 publish records" 20 \
  "$(q "SELECT count(*) FROM vibescaling.publish_records r JOIN conc_posts c ON c.id = r.post_id WHERE c.run = '$run'")"
check "40 dispatch_logs rows (creator_info + init per post)" 40 \
  "$(q "SELECT count(*) FROM vibescaling.dispatch_logs l JOIN conc_posts c ON c.id = l.post_id WHERE c.run = '$run' AND c.label = 'disp'")"
echo "# posts published per dispatcher backend: $(q "SELECT string_agg(n::text, ' ') FROM (SELECT count(*) n FROM vibescaling.dispatch_logs l JOIN conc_posts c ON c.id = l.post_id WHERE c.run = '$run' AND l.endpoint = 'video_init' GROUP BY l.backend_pid ORDER BY 1) s")"

echo "# 2. pg_cancel_backend during a slow TikTok call"
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null
acct=$(q "SELECT vs_test.new_account('cancel${run}')")
post=$(q "SELECT vs_test.new_video('cancelled')")
curl -s -X POST "$sim/_sim/faults" -d '{"endpoint": "creator_info", "action": "slow", "delay_ms": 8000}' >/dev/null
start=$(date +%s.%N)
(PGAPPNAME="cancel$run" psql -X -qAt -c "SELECT vibescaling.publish_post('$post', '$acct', 'SELF_ONLY')" >/tmp/cancel.$run 2>&1) & pc=$!
sleep 1
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'cancel$run'" >/dev/null
wait $pc
elapsed=$(python3 -c "import time; print(round(time.time() - $start - 1, 2))")
check "the call was cancelled (57014 canceling statement)" 1 "$(grep -c 'canceling statement due to user request' /tmp/cancel.$run)"
check "it stopped within 1.5 s of the cancel (took ${elapsed}s, TikTok would take 8 s)" 1 \
  "$(python3 -c "print(1 if $elapsed < 1.5 else 0)")"
check "the aborted call is in dispatch_logs" aborted \
  "$(q "SELECT error_code FROM vibescaling.dispatch_logs WHERE post_id = '$post' ORDER BY id DESC LIMIT 1")"
check "the post is still a draft" draft "$(q "SELECT status FROM vibescaling.posts WHERE id = '$post'")"
rm -f /tmp/cancel.$run
curl -s -X DELETE "$sim/_sim/faults" >/dev/null

echo "# 3. five sessions, one account whose token expires within the refresh margin"
acct=$(q "SELECT vs_test.new_account('refr${run}')")
q "UPDATE vibescaling.tiktok_accounts SET access_token_expires_at = now() + interval '1 minute' WHERE id = '$acct'" >/dev/null
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 200}' >/dev/null
for i in 1 2 3 4 5; do
  post=$(q "SELECT vs_test.new_video('refresh race $i')")
  (psql -X -qAt -c "SELECT vibescaling.publish_post('$post', '$acct', 'SELF_ONLY')" >/tmp/refresh.$run.$i 2>&1) &
done
# What pg_stat_activity shows while they run (tokens must not be there).
sleep 0.3
q "SELECT coalesce(string_agg(query, E'\n'), '') FROM pg_stat_activity" >/tmp/activity.$run
wait
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null
check "all five publishes succeeded" 5 "$(grep -l '"publish_id"' /tmp/refresh.$run.* | wc -l | tr -d ' ')"
check "TikTok saw one refresh for the account" 1 "$(sim_count "refr${run}" oauth_token)"
check "one oauth_token row in dispatch_logs" 1 \
  "$(q "SELECT count(*) FROM vibescaling.dispatch_logs WHERE tiktok_account_id = '$acct' AND endpoint = 'oauth_token'")"
token=$(q "SELECT vibescaling._unseal(access_token_enc) FROM vibescaling.tiktok_accounts WHERE id = '$acct'")
check "pg_stat_activity never showed the token (sampled mid-run)" 0 "$(grep -cF "$token" /tmp/activity.$run)"
rm -f /tmp/refresh.$run.* /tmp/activity.$run

echo "# 4. publish_status while another session uploads a 30 MB video (6 chunks, 400 ms each)"
acct=$(q "SELECT vs_test.new_account('prog${run}')")
post=$(q "INSERT INTO vibescaling.posts (caption, video_lo) VALUES ('progress', vs_test.new_lo(30 * 1048576)) RETURNING id")
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 400}' >/dev/null
(psql -X -qAt -c "SET vibescaling.upload_chunk_size_mb = 5" \
      -c "SELECT vibescaling.publish_post('$post', '$acct', 'SELF_ONLY')" >/tmp/progress.$run 2>&1) & pu=$!
sleep 2
during=$(q "SELECT (s->'data'->>'status') || ' ' || (s->'data'->>'uploaded_bytes') FROM vibescaling.publish_status('$post') s")
wait $pu
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null
check "mid-upload, publish_status answers 'uploading' with partial progress (got: $during)" 1 \
  "$(echo "$during" | awk '$1 == "uploading" && $2 > 0 && $2 < 31457280 { print 1 }')"
check "the upload then completes" 1 "$(grep -c '"publish_id"' /tmp/progress.$run)"
check "afterwards publish_status reports every byte uploaded" 31457280 \
  "$(q "SELECT vibescaling.publish_status('$post') #>> '{data,uploaded_bytes}'")"
rm -f /tmp/progress.$run

echo "# 5. the permanent log writer: many sessions share it, and it leaves a database being dropped"
createdb "vs_writer_$run"
psql -X -qAt -d "vs_writer_$run" -c "CREATE EXTENSION vibescaling CASCADE" >/dev/null 2>&1
for i in 1 2 3 4 5 6 7 8; do
  psql -X -qAt -d "vs_writer_$run" \
       -c "SELECT count(vibescaling._durable_log(jsonb_build_object('trigger', 'manual', 'endpoint', 'probe_$i', 'outcome', 'success'))) FROM generate_series(1, 25)" \
       >/dev/null &
done
wait
check "8 sessions x 25 durable rows: all 200 committed" 200 \
      "$(psql -X -qAt -d "vs_writer_$run" -c "SELECT count(*) FROM vibescaling.dispatch_logs WHERE endpoint LIKE 'probe_%'")"
check "... by one log writer for the database" 1 \
      "$(psql -X -qAt -d "vs_writer_$run" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'vibescaling log writer' AND datname = current_database()")"
check "DROP DATABASE succeeds while the writer runs (it leaves within a second)" dropped \
      "$(dropdb "vs_writer_$run" && echo dropped)"

echo "# 6. a burst of 1,000 posts in rounds of 100, right after ANALYZE of the empty log"
# A fresh database, so that the log really is empty when analyzed. The
# reads of the log are counted from pg_stat_user_tables: cached plans that
# kept the empty log's sequential scans read the whole partition for each
# check of each post (about 6 million rows here); replanned for each
# round, only the first round's checks scan (the log then holds at most a
# round's rows).
db="vs_plans_$run"
createdb "$db"
psql -X -qAt -d "$db" -c "ALTER DATABASE $db SET vibescaling.api_base_url = '$sim'" \
     -c "CREATE EXTENSION vibescaling CASCADE" -c "CALL vibescaling.maintain_logs()" >/dev/null 2>&1
psql -X -q -d "$db" -v accounts=1000 -v per_account=1 -v tag="plans$run" -f test/bench/burst_setup.sql >/dev/null
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null
psql -X -qAt -d "$db" -c "ANALYZE vibescaling.dispatch_logs" \
     -c "SET vibescaling.max_concurrent_requests = 100" -c "CALL vibescaling.dispatch_due_posts()" \
     -c "SELECT pg_stat_force_next_flush()" -c "SELECT 1" >/dev/null
check "all 1,000 posts posted" 1000 \
      "$(psql -X -qAt -d "$db" -c "SELECT count(*) FROM vibescaling.posts WHERE status = 'posted'")"
read_rows=$(psql -X -qAt -d "$db" -c "SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables
                                        WHERE schemaname = 'vibescaling' AND relname LIKE 'dispatch_logs%'")
echo "# rows read by sequential scans of the log: $read_rows"
check "the log's sequential scans read under 200,000 rows" yes "$([ "$read_rows" -lt 200000 ] && echo yes || echo "no: $read_rows")"
dropdb "$db"

echo "# 7. a burst shared with dispatch helpers; cancelling the run stops them"
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 300}' >/dev/null
q "INSERT INTO public.conc_posts
   SELECT '$run', 'help', (vibescaling.schedule_post(vs_test.new_video('helped ' || i), now() + interval '10 minutes',
                                                  vs_test.new_account('help${run}_' || i), 'SELF_ONLY') #>> '{data,id}')::uuid
     FROM generate_series(1, 40) i;" >/dev/null
later=$(q "SELECT now() + interval '15 minutes'")
helper_count() { q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'vibescaling dispatch helper'"; }
# Helpers take the run's own settings: meanwhile the database's default
# api_base_url points at a closed port, and only the session sets the
# simulator's (a helper that read the database's would fail its calls).
db_url=$(q "SELECT current_setting('vibescaling.api_base_url')")
set_db_url() { q "DO \$\$ BEGIN EXECUTE format('ALTER DATABASE %I SET vibescaling.api_base_url = %L', current_database(), '$1'); END \$\$"; }
set_db_url "http://127.0.0.1:9"
(psql -X -qAt -v ON_ERROR_STOP=1 -c "SET vibescaling.api_base_url = '$sim'" -c "SET vibescaling.max_concurrent_requests = 8" \
      -c "SET vibescaling.dispatch_sessions = 4" -c "CALL vibescaling.dispatch_due_posts('$later')") & ph=$!
sleep 0.8
seen=$(helper_count)
wait $ph
set_db_url "$db_url"
check "three helpers ran beside the run (pg_stat_activity)" 3 "$seen"
check "all 40 posts are posted (the helpers used the session's api_base_url)" 40 \
  "$(q "SELECT count(*) FROM vibescaling.posts p JOIN conc_posts c USING (id) WHERE c.run = '$run' AND c.label = 'help' AND p.status = 'posted'")"
check "each account received exactly one init (counts: 1 x40)" "1 x40" "$(inits_per_account "help${run}_")"
check "the inits came from four backends" 4 \
  "$(q "SELECT count(DISTINCT l.backend_pid) FROM vibescaling.dispatch_logs l JOIN conc_posts c ON c.id = l.post_id WHERE c.run = '$run' AND c.label = 'help' AND l.endpoint = 'video_init'")"
check "no helper is left once the run returns" 0 "$(helper_count)"

q "INSERT INTO public.conc_posts
   SELECT '$run', 'helpcancel', (vibescaling.schedule_post(vs_test.new_video('cancelled run ' || i), now() + interval '10 minutes',
                                                  vs_test.new_account('hcan${run}_' || i), 'SELF_ONLY') #>> '{data,id}')::uuid
     FROM generate_series(1, 20) i;" >/dev/null
# Every creator_info is slow (count: 100), so no init leaves before the cancel.
curl -s -X POST "$sim/_sim/faults" -d '{"endpoint": "creator_info", "action": "slow", "delay_ms": 8000, "count": 100}' >/dev/null
(PGAPPNAME="helpcancel$run" psql -X -qAt -c "SET vibescaling.max_concurrent_requests = 8" \
      -c "SET vibescaling.dispatch_sessions = 4" -c "CALL vibescaling.dispatch_due_posts('$later')" >/dev/null 2>&1) & ph=$!
sleep 1
seen=$(helper_count)
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'helpcancel$run'" >/dev/null
wait $ph
sleep 1.5
check "helpers were running when the run was cancelled" 3 "$seen"
check "1.5 s after the cancel, no helper is left" 0 "$(helper_count)"
check "no post of the cancelled run was touched (its rounds rolled back)" 0 \
  "$(q "SELECT count(*) FROM vibescaling.posts p JOIN conc_posts c USING (id) WHERE c.run = '$run' AND c.label = 'helpcancel' AND p.status <> 'scheduled'")"
curl -s -X DELETE "$sim/_sim/faults" >/dev/null
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null
q "CALL vibescaling.dispatch_due_posts('$later')" >/dev/null
check "the next run posts all 20" 20 \
  "$(q "SELECT count(*) FROM vibescaling.posts p JOIN conc_posts c USING (id) WHERE c.run = '$run' AND c.label = 'helpcancel' AND p.status = 'posted'")"
check "each of their accounts received exactly one init (counts: 1 x20)" "1 x20" "$(inits_per_account "hcan${run}_")"

echo "# 8. dispatch_due_uploads: four videos from large objects, three sessions (300 ms per TikTok call)"
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 300}' >/dev/null
q "INSERT INTO public.conc_posts
   SELECT '$run', 'upl', vs_test.new_video('uploaded ' || i) FROM generate_series(1, 4) i;
   UPDATE vibescaling.posts p SET video_url = NULL, video_lo = vs_test.new_lo(1048576)
     FROM public.conc_posts c WHERE c.id = p.id AND c.run = '$run' AND c.label = 'upl';
   SELECT vibescaling.schedule_post(c.id, now() + interval '10 minutes', vs_test.new_account('upl${run}_' || row_number() OVER ()),
                                    'SELF_ONLY')
     FROM public.conc_posts c WHERE c.run = '$run' AND c.label = 'upl';" >/dev/null
start=$(date +%s.%N)
psql -X -qAt -v ON_ERROR_STOP=1 -c "SET vibescaling.dispatch_sessions = 3" \
     -c "CALL vibescaling.dispatch_due_uploads('$later')" >/dev/null
elapsed=$(python3 -c "import time; print(round(time.time() - $start, 2))")
check "all 4 videos are posted" 4 \
  "$(q "SELECT count(*) FROM vibescaling.posts p JOIN conc_posts c USING (id) WHERE c.run = '$run' AND c.label = 'upl' AND p.status = 'posted'")"
check "each account received exactly one init (counts: 1 x4)" "1 x4" "$(inits_per_account "upl${run}_")"
check "their chunks were uploaded by three backends" 3 \
  "$(q "SELECT count(DISTINCT l.backend_pid) FROM vibescaling.dispatch_logs l JOIN conc_posts c ON c.id = l.post_id WHERE c.run = '$run' AND c.label = 'upl' AND l.endpoint = 'upload_chunk'")"
echo "# 4 uploads with 3 sessions took ${elapsed}s"
check "no helper is left once the run returns" 0 "$(helper_count)"
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null

echo "concurrency: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
