#!/usr/bin/env bash
# Saturation test (issue 13): 200 sessions call publish_post at the same
# moment (each its own post and account, SELF_ONLY, TikTok answering in
# SAT_LATENCY_MS) on a server with max_worker_processes = 8, so that the
# one permanent log writer per database, its 128-slot queue and the 8
# worker slots are all contended. Asserted:
#   - every call gets a clear answer within a bound (statement_timeout, and
#     a hard wall-clock limit per session): the success JSON, or an error
#     with a SQLSTATE; none hangs, none ends without one
#   - what publish_post answered is what the post became (posted <=> success)
#   - every call the simulator received has its dispatch_logs row with the
#     answer: per endpoint, the simulator's count for the run's open_ids
#     equals the count of the run's rows with an http_status, and every
#     answer's log_id is in dispatch_logs
#   - no post got two inits at TikTok
#   - the server log has no "may be lost" message
# Prints the answers by SQLSTATE and the wall time.
#
# One command, self-contained like test/upgrade/run.sh (after make install):
#   test/system/saturation.sh
# starts the simulator on $VS_SIM_PORT (18470 by default) unless one answers
# there, and runs itself again inside a throwaway cluster
# (scripts/pg-cluster.sh ... -o max_worker_processes=8 -o max_connections=250).
# Knobs: SAT_SESSIONS (200), SAT_LATENCY_MS (500), SAT_TIMEOUT_S (60: each
# session's statement_timeout; the hard limit is 15 s more).
# Ends with "saturation: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
export VS_SIM_PORT=${VS_SIM_PORT:-18470}
sessions=${SAT_SESSIONS:-200}

if [ -z "${VS_SATURATION_IN_CLUSTER:-}" ]; then
  sim_state=$(scripts/sim.sh ensure) || { echo "not ok - the simulator starts on port $VS_SIM_PORT"; echo "saturation: 0 passed, 1 failed"; exit 1; }
  [ "$sim_state" = started ] && trap 'scripts/sim.sh stop >/dev/null' EXIT
  # 200 client sessions plus the test's own, pg_cron's and the superuser reserve.
  VS_SATURATION_IN_CLUSTER=1 scripts/pg-cluster.sh vs_saturation \
    -o max_worker_processes=8 -o "max_connections=$((sessions + 50))" "$0" "$@"
  exit $?
fi

# ---------------------------------------------------------------- inside the cluster
. test/lib/check.sh
sim="http://127.0.0.1:$VS_SIM_PORT"
latency_ms=${SAT_LATENCY_MS:-500}
timeout_s=${SAT_TIMEOUT_S:-60}
hard_s=$((timeout_s + 15))
run=$(date +%s%N | tail -c 9)
prefix="sat${run}_"                    # the run's open_ids
app="sat$run"                          # application_name of the run's sessions
barrier=$((4200000 + RANDOM))          # advisory lock key the sessions wait on
tmp=$(mktemp -d /tmp/saturation.XXXXXX)
export PGDATABASE=vs_saturation
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
# Ends the run: closing line, exit status.
finish() {
  echo "# runtime $(( $(date +%s) - t0 )) s"
  finish_checks saturation
  exit
}
# Leaves no session of the run behind, and the simulator as it was.
cleanup() {
  [ -n "${holder:-}" ] && kill "$holder" 2>/dev/null
  curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
t0=$(date +%s)
logfile=$(pg_lsclusters --no-header | awk -v port="$PGPORT" '$3 == port { print $7 }')

createdb vs_saturation
q "ALTER DATABASE vs_saturation SET vibescaling.api_base_url = '$sim'" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CREATE EXTENSION vibescaling CASCADE" \
     -f test/fixtures/setup.sql >/dev/null || { check "setup: the extension and test fixtures" ok failed; finish; }
check "the server runs with max_worker_processes = 8" 8 "$(q "SHOW max_worker_processes")"
check "max_connections leaves room for $sessions sessions and the test's own" yes \
  "$([ "$(q "SHOW max_connections")" -ge $((sessions + 10)) ] && echo yes || echo "no: $(q "SHOW max_connections")")"

# The run's accounts (simulator users) and drafts, one of each per session.
q "SET client_min_messages = warning;
   CREATE TABLE public.sat (i integer PRIMARY KEY, account uuid, post uuid, open_id text);
   INSERT INTO public.sat
   SELECT i, vs_test.new_account('$prefix' || i), vs_test.new_video('saturation $run ' || i), '$prefix' || i
     FROM generate_series(1, $sessions) i" >/dev/null || { check "setup: $sessions accounts and posts" ok failed; finish; }
echo "# setup: $sessions accounts and drafts ($prefix*) in $(( $(date +%s) - t0 )) s; TikTok answers in $latency_ms ms"
curl -s -X POST "$sim/_sim/config" -d "{\"latency_ms\": $latency_ms}" >/dev/null

# Holds the barrier: the sessions queue behind this lock, and all go when it goes.
PGAPPNAME="${app}_barrier" psql -X -qAt -c "SELECT pg_advisory_lock($barrier)" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 1 100); do
  [ "$(q "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $barrier AND granted")" = 1 ] && break
  sleep 0.1
done

# One session: waits at the barrier, then publishes its post with a bounded
# statement_timeout; a hard limit kills a psql that outlives it. Writes the
# answer (stdout: the JSON), the error (stderr: "ERROR:  SQLSTATE: ...") and
# the exit status (124: killed by the hard limit).
session() {
  local i=$1 post=$2 account=$3
  PGAPPNAME="$app" timeout -k 5 "$hard_s" \
    psql -X -qAt -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
         -c "SELECT 'barrier' FROM pg_advisory_lock_shared($barrier)" -c "SELECT pg_advisory_unlock_shared($barrier)" \
         -c "SET statement_timeout = '${timeout_s}s'" \
         -c "SELECT vibescaling.publish_post('$post', '$account', 'SELF_ONLY')" \
         >"$tmp/out.$i" 2>"$tmp/err.$i"
  echo $? >"$tmp/rc.$i"
}
declare -a pids=()
while IFS='|' read -r i post account; do
  session "$i" "$post" "$account" &
  pids+=($!)
done < <(q "SELECT i, post, account FROM public.sat ORDER BY i")
waiting=0
for _ in $(seq 1 300); do
  waiting=$(q "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $barrier AND NOT granted")
  [ "$waiting" -ge "$sessions" ] && break
  sleep 0.1
done
check "all $sessions sessions are connected and wait at the barrier" "$sessions" "$waiting"

# Go: the barrier's session ends, its lock with it.
start_ns=$(date +%s%N)
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${app}_barrier'" >/dev/null
# Samples, while the sessions run, the most of them in publish_post at once
# and the most extension workers at once (the log writer, and any
# short-lived writer a batch the queue could not take started).
peak_busy=0; peak_workers=0
while :; do
  read -r busy workers < <(q "SELECT count(*) FILTER (WHERE application_name = '$app' AND query LIKE '%publish_post%' AND state = 'active'),
                                    count(*) FILTER (WHERE backend_type LIKE 'vibescaling%')
                               FROM pg_stat_activity" 2>/dev/null | tr '|' ' ')
  q "SELECT backend_type FROM pg_stat_activity WHERE backend_type LIKE 'vibescaling%'" >>"$tmp/workers" 2>/dev/null
  [ "${busy:-0}" -gt "$peak_busy" ] && peak_busy=$busy
  [ "${workers:-0}" -gt "$peak_workers" ] && peak_workers=$workers
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && { alive=1; break; }; done
  [ "$alive" = 0 ] && break
  sleep 0.2
done
wait
wall_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
holder=""
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null

# ---------------------------------------------------------------- the answers
# Each session's answer: success (the JSON with a publish_id), the SQLSTATE it
# raised, "hang" (the hard limit killed it) or "none" (neither).
for i in $(seq 1 "$sessions"); do
  rc=$(cat "$tmp/rc.$i" 2>/dev/null || echo missing)
  state=$(grep -oP '^(psql:[^ ]* )?ERROR:  \K[0-9A-Z]{5}(?=:)' "$tmp/err.$i" | head -n 1)
  if [ "$rc" = 0 ] && grep -q '"publish_id"' "$tmp/out.$i"; then answer=success
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then answer=hang
  elif [ -n "$state" ]; then answer=$state
  else answer=none; fi
  message=$(grep -m1 -oP 'ERROR:  [0-9A-Z]{5}: \K.*' "$tmp/err.$i" | sed -E 's/[0-9a-f-]{36}/<id>/g; s/log_id [^ )]*/log_id …/g' | tr -d '"|' | cut -c1-140)
  printf '%s|%s|%s\n' "$i" "$answer" "$message"
done >"$tmp/answers"
q "CREATE TABLE public.sat_answers (i integer, answer text, message text)" >/dev/null
q "\\copy public.sat_answers FROM '$tmp/answers' WITH (FORMAT csv, DELIMITER '|')" >/dev/null
echo "# $sessions sessions, wall time $wall_ms ms from the barrier to the last answer"
echo "# answers: $(q "SELECT string_agg(answer || ' ' || n, ', ' ORDER BY n DESC) FROM (SELECT answer, count(*) n FROM public.sat_answers GROUP BY 1) x")"
q "SELECT '#   ' || answer || ' x' || count(*) || ': ' || coalesce(message, '') FROM public.sat_answers WHERE answer <> 'success'
    GROUP BY answer, message ORDER BY count(*) DESC LIMIT 8"
first_error=$(q "SELECT i FROM public.sat_answers WHERE answer NOT IN ('success', 'hang', 'none') ORDER BY i LIMIT 1")
[ -n "$first_error" ] && grep -E '^(psql:[^ ]* )?(ERROR|DETAIL|HINT):' "$tmp/err.$first_error" | sed 's/^/#   e.g. session '"$first_error"': /'
echo "# at most $peak_busy sessions in publish_post at once; at most $peak_workers extension workers at once" \
     "(seen: $(sort "$tmp/workers" 2>/dev/null | uniq -c | tr -s ' ' | tr '\n' ';'))"
check "every session answered within ${timeout_s} s (+15 s hard limit): no hang" 0 \
  "$(q "SELECT count(*) FROM public.sat_answers WHERE answer = 'hang'")"
check "every answer is the success JSON or an error with a SQLSTATE" 0 \
  "$(q "SELECT count(*) FROM public.sat_answers WHERE answer = 'none'")"
check "every session that succeeded has its post posted, and only those" 0 \
  "$(q "SELECT count(*) FROM public.sat s JOIN public.sat_answers a USING (i) JOIN vibescaling.posts p ON p.id = s.post
         WHERE (a.answer = 'success') <> (p.status = 'posted')")"

# ---------------------------------------------------------------- the simulator against dispatch_logs
curl -s "$sim/_sim/requests" | python3 -c "
import csv, json, sys
w = csv.writer(sys.stdout)
for r in json.load(sys.stdin)['requests']:
    if (r.get('open_id') or '').startswith('$prefix'):
        w.writerow([r['seq'], r['endpoint'], r['open_id'], r['http_status'], r['error_code'], r.get('log_id') or '', r['fault'] or ''])
" >"$tmp/sim.csv"
q "CREATE TABLE public.sat_sim (seq bigint, endpoint text, open_id text, http_status integer, error_code text, log_id text, fault text)" >/dev/null
q "\\copy public.sat_sim FROM '$tmp/sim.csv' WITH (FORMAT csv)" >/dev/null
L="vibescaling.dispatch_logs l JOIN public.sat s ON s.account = l.tiktok_account_id"
echo "# the simulator received: $(q "SELECT coalesce(string_agg(endpoint || ' ' || n || coalesce(' (' || st || ')', ''), ', ' ORDER BY endpoint), 'nothing')
                                   FROM (SELECT endpoint, count(*) n,
                                                string_agg(DISTINCT http_status::text, '/') FILTER (WHERE http_status <> 200) st
                                           FROM public.sat_sim GROUP BY 1) x")"
echo "# dispatch_logs rows: $(q "SELECT coalesce(string_agg(endpoint || ' ' || n || ' answered, ' || u || ' in flight, ' || o || ' other', '; ' ORDER BY endpoint), 'none')
                                   FROM (SELECT l.endpoint, count(l.http_status) n, count(*) FILTER (WHERE l.http_status IS NULL AND l.outcome_unknown) u,
                                                count(*) FILTER (WHERE l.http_status IS NULL AND NOT l.outcome_unknown) o
                                           FROM $L GROUP BY 1) x")"
for endpoint in creator_info video_init; do
  check "$endpoint: the simulator's calls for the run = dispatch_logs rows with an http_status" \
    "$(q "SELECT count(*) FROM public.sat_sim WHERE endpoint = '$endpoint'")" \
    "$(q "SELECT count(*) FROM $L WHERE l.endpoint = '$endpoint' AND l.http_status IS NOT NULL")"
done
check "no other endpoint was called for the run's accounts" 0 \
  "$(q "SELECT count(*) FROM public.sat_sim WHERE endpoint NOT IN ('creator_info', 'video_init')")"
check "every answer the simulator sent is in dispatch_logs (its log_id, account and endpoint)" 0 \
  "$(q "SELECT count(*) FROM public.sat_sim m WHERE NOT EXISTS (
          SELECT 1 FROM $L WHERE s.open_id = m.open_id AND l.endpoint = m.endpoint AND l.log_id = m.log_id)")"
check "no call is left in flight (outcome unknown) in dispatch_logs" 0 \
  "$(q "SELECT count(*) FROM $L WHERE l.outcome_unknown")"
# What a lost answer costs: an init TikTok accepted whose post is not posted
# (its row stays "in flight": publish_post refuses it from now on, 55000).
echo "# inits TikTok accepted for posts left unposted: $(q "SELECT count(*) FROM public.sat_sim m JOIN public.sat s USING (open_id)
                                                           JOIN vibescaling.posts p ON p.id = s.post
                                                          WHERE m.endpoint = 'video_init' AND m.http_status = 200 AND p.status <> 'posted'")"
q "SELECT '#   e.g. ' || m.open_id || ' ' || m.endpoint || ': TikTok answered ' || m.http_status || ' (log_id ' || m.log_id || '); dispatch_logs: '
          || coalesce((SELECT string_agg(coalesce(l.http_status::text, 'no answer') || CASE WHEN l.outcome_unknown THEN ' outcome unknown' ELSE '' END, ', ')
                         FROM $L WHERE s.open_id = m.open_id AND l.endpoint = m.endpoint), 'no row')
          || '; the session answered ' || a.answer
     FROM public.sat_sim m JOIN public.sat s2 ON s2.open_id = m.open_id JOIN public.sat_answers a ON a.i = s2.i
    WHERE NOT EXISTS (SELECT 1 FROM $L WHERE s.open_id = m.open_id AND l.endpoint = m.endpoint AND l.log_id = m.log_id)
    ORDER BY m.seq LIMIT 3"
check "no post got two inits at TikTok (most inits for one post: $(q "SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM public.sat_sim WHERE endpoint = 'video_init' GROUP BY open_id) x"))" 0 \
  "$(q "SELECT count(*) FROM (SELECT open_id FROM public.sat_sim WHERE endpoint = 'video_init' GROUP BY 1 HAVING count(*) > 1) x")"

# ---------------------------------------------------------------- the server log
if [ -r "$logfile" ]; then
  check "the server log has no \"may be lost\" message" 0 "$(grep -c 'may be lost' "$logfile")"
  grep 'may be lost' "$logfile" | head -n 3 | sed 's/^/#   /'
  echo "# server log: $(grep -cE ' (ERROR|FATAL|PANIC): ' "$logfile") ERROR/FATAL/PANIC lines;" \
       "most frequent: $(grep -oE ' (ERROR|FATAL|PANIC): .*' "$logfile" | sed -E 's/[0-9a-f-]{36}/<id>/g' | cut -c1-100 | sort | uniq -c | sort -rn | head -3 | tr -s ' ' | tr '\n' ';')"
else
  check "the server log is readable ($logfile)" yes no
fi
finish
