#!/usr/bin/env bash
# Crash test with calls in flight (issue 13), two crashes in one cluster:
#   a. kill -9 of the database's permanent log writer in the middle of a
#      burst (a dispatcher in rounds of 10 and 40 sessions calling
#      publish_post at once, TikTok answering in 300 ms): the postmaster
#      restarts every process, as after any crash of a child
#   b. kill -9 of the postmaster while creator_info calls (publish_post
#      sessions), inits (a dispatcher round) and status fetches
#      (publish_status sessions and the status poller) are all held at
#      TikTok (2.5 s per call), seen "in flight" in dispatch_logs
#   c. before b, the simulator answers one init of 5 accounts 429 with
#      Retry-After: 20 s, and those accounts' posts are due when b crashes
# After each crash the cluster is restarted (a: it restarts itself), the
# dispatcher runs again and the killed publish_post sessions' drafts are
# published again. Then, against the simulator's own request log:
#   - no post has two successful inits at TikTok
#   - none is lost: each scheduled post is posted, or failed or scheduled
#     again with a reason; each draft is posted, or refused because its
#     init's outcome is unknown (a row in flight says TikTok may have it)
#   - every call the simulator received has its dispatch_logs row: per
#     account and endpoint, as many rows at least (in flight or answered),
#     every answer the extension read is there by its log_id, and each
#     answer it never read is matched by a row still in flight
#   - c: no init of a held account reached the simulator (its "received"
#     time) before that account's 429 answer plus the Retry-After, the
#     dispatcher having run again while the hold was still in force
#
# One command, self-contained like test/upgrade/run.sh (after make install):
#   test/system/crash_inflight.sh
# starts the simulator on $VS_SIM_PORT (18471 by default) unless one answers
# there, and runs itself again inside a throwaway cluster (scripts/pg-cluster.sh).
# About a minute. Ends with "crash_inflight: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
export VS_SIM_PORT=${VS_SIM_PORT:-18471}

if [ -z "${VS_CRASH_IN_CLUSTER:-}" ]; then
  sim_state=$(scripts/sim.sh ensure) || { echo "not ok - the simulator starts on port $VS_SIM_PORT"; echo "crash_inflight: 0 passed, 1 failed"; exit 1; }
  [ "$sim_state" = started ] && trap 'scripts/sim.sh stop >/dev/null' EXIT
  VS_CRASH_IN_CLUSTER=1 scripts/pg-cluster.sh vs_crash "$0" "$@"
  exit $?
fi

# ---------------------------------------------------------------- inside the cluster
. test/lib/check.sh
sim="http://127.0.0.1:$VS_SIM_PORT"
run=$(date +%s%N | tail -c 9)
retry_after=20                      # c: the 429's Retry-After, seconds
hold_ms=2500                        # b: how long TikTok holds each call
tmp=$(mktemp -d /tmp/crash_inflight.XXXXXX)
export PGDATABASE=vs_crash
t0=$(date +%s)
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
# Seconds since the epoch, with milliseconds.
now_s() { date +%s.%3N; }
# Ends the run: closing line, exit status.
finish() {
  echo "# runtime $(( $(date +%s) - t0 )) s"
  finish_checks crash_inflight
  exit
}
# The simulator as it was, no session of the run left behind.
cleanup() {
  curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null
  jobs -p | xargs -r kill 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

cluster=$(pg_lsclusters --no-header | awk -v port="$PGPORT" '$3 == port { print $1 " " $2 }')
datadir=$(pg_lsclusters --no-header | awk -v port="$PGPORT" '$3 == port { print $6 }')
logfile=$(pg_lsclusters --no-header | awk -v port="$PGPORT" '$3 == port { print $7 }')

# Waits until the server answers a query again (crash recovery included); false after 60 s.
server_up() {
  for _ in $(seq 1 300); do
    psql -X -qAt -c "SELECT 1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

# Starts the cluster after its postmaster was killed: the orphaned backends
# exit when they notice, and until then the old shared memory is in use and
# the start is refused (as test/system/crash.sh does).
restart_cluster() {
  for _ in $(seq 1 120); do
    pg_ctlcluster $cluster start >/dev/null 2>&1 && break
    sleep 0.5
  done
  server_up
}

# Counts the part's dispatch_logs rows still "in flight" (no answer yet) per
# endpoint: "creator_info N video_init N status_fetch N".
in_flight() {
  q "SELECT string_agg(e || ' ' || (SELECT count(*) FROM vibescaling.dispatch_logs l JOIN public.crash_accounts a ON a.id = l.tiktok_account_id
                                     WHERE a.part = '$1' AND l.endpoint = e AND l.outcome_unknown AND l.http_status IS NULL), ' ')
       FROM unnest(ARRAY['creator_info', 'video_init', 'status_fetch']) e"
}

# The count of endpoint $1 in in_flight's output $2 (0 when absent).
count_of() {
  local n
  n=$(echo "$2" | grep -oP "$1 \K[0-9]+")
  echo "${n:-0}"
}

# Waits (up to $2 s) until the part has calls of every endpoint named in $3
# in flight; prints the counts.
wait_in_flight() {
  local part=$1 limit=$2 need=$3 counts ok
  for _ in $(seq 1 $((limit * 10))); do
    counts=$(in_flight "$part")
    ok=1
    for e in $need; do
      [ "$(count_of "$e" "$counts")" -gt 0 ] || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  echo "$counts"
}

# Publishes a post from a session of its own in the background (a killed
# session is part of the test): stdout and stderr to $tmp/NAME.{out,err}.
bg_publish() {
  PGAPPNAME="crash$run" psql -X -qAt -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
    -c "SELECT vibescaling.publish_post('$2', '$3', 'SELF_ONLY')" >"$tmp/$1.out" 2>"$tmp/$1.err" &
}

# Loads the simulator's log of the part's calls (open_ids PREFIX*) into
# public.crash_sim: endpoint, open_id, answer, log_id, when it arrived and
# when it was answered, the post's title, whether it was a successful init.
load_sim() {
  local part=$1 prefix=$2
  curl -s "$sim/_sim/requests" >"$tmp/requests.json"
  python3 - "$part" "$prefix" "$tmp/requests.json" >"$tmp/sim.$part.csv" <<'EOF'
import csv, json, sys
part, prefix, path = sys.argv[1:4]
w = csv.writer(sys.stdout)
for r in json.load(open(path))["requests"]:
    if not (r.get("open_id") or "").startswith(prefix):
        continue
    body = r.get("body") if isinstance(r.get("body"), dict) else {}
    info = body.get("post_info") if isinstance(body.get("post_info"), dict) else {}
    accepted = (r["endpoint"] in ("video_init", "inbox_video_init", "content_init")
                and r["http_status"] == 200 and r["error_code"] == "ok")
    w.writerow([part, r["seq"], r["endpoint"], r["open_id"], r["http_status"], r["error_code"], r.get("log_id") or "",
                r["fault"] or "", r.get("received", ""), r["time"], info.get("title") or "", accepted])
EOF
  q "\\copy public.crash_sim FROM '$tmp/sim.$part.csv' WITH (FORMAT csv)" >/dev/null
}

# Publishes again, after the crash, every draft of the part that a killed
# session left; records each answer (ok or the SQLSTATE) in crash_posts.
republish_drafts() {
  q "UPDATE public.crash_posts c
        SET republished = vs_test.sqlstate_of(format('SELECT vibescaling.publish_post(%L, %L, %L)', c.id, c.account, 'SELF_ONLY'))
       FROM vibescaling.posts p
      WHERE p.id = c.id AND c.part = '$1' AND c.grp = 'manual' AND p.status = 'draft'" >/dev/null
}

# The checks every part makes once its posts are settled (see the header).
check_part() {
  local part=$1 P="public.crash_posts c JOIN vibescaling.posts p USING (id)"
  local S="public.crash_sim s" L="vibescaling.dispatch_logs l JOIN public.crash_accounts a ON a.id = l.tiktok_account_id"
  echo "# $part: posts $(q "SELECT string_agg(c.grp || ' ' || p.status || ' ' || n, ', ' ORDER BY c.grp, p.status)
                            FROM (SELECT c.grp, p.status, count(*) n FROM $P WHERE c.part = '$part' GROUP BY 1, 2) x
                            CROSS JOIN LATERAL (SELECT x.grp) c CROSS JOIN LATERAL (SELECT x.status) p")"
  echo "# $part: the simulator received $(q "SELECT string_agg(endpoint || ' ' || n, ', ') FROM (SELECT endpoint, count(*) n FROM $S WHERE s.part = '$part' GROUP BY 1 ORDER BY 1) x");" \
       "dispatch_logs: $(q "SELECT string_agg(endpoint || ' ' || n || ' (' || f || ' in flight)', ', ') FROM (
                               SELECT l.endpoint, count(*) n, count(*) FILTER (WHERE l.outcome_unknown AND l.http_status IS NULL) f
                                 FROM $L WHERE a.part = '$part' GROUP BY 1 ORDER BY 1) x")"
  echo "# $part: failed or rescheduled: $(q "SELECT coalesce(string_agg(k || ' x' || n, '; '), 'none') FROM (
         SELECT p.status || ': ' || regexp_replace(regexp_replace(p.last_error, '\(log_id [^)]*\)', '(log_id …)'), '[0-9a-f-]{36}', '<post>') k, count(*) n
           FROM $P WHERE c.part = '$part' AND p.status <> 'posted' AND c.grp <> 'manual' GROUP BY 1 ORDER BY 2 DESC) x");" \
       "drafts published again: $(q "SELECT coalesce(string_agg(republished || ' x' || n, ', '), 'none') FROM (
         SELECT republished, count(*) n FROM public.crash_posts WHERE part = '$part' AND republished IS NOT NULL GROUP BY 1) x")"
  check "$part: no post has two successful inits at TikTok (most for one post: $(q "SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM $S WHERE s.part = '$part' AND s.accepted GROUP BY s.title) x"))" 0 \
    "$(q "SELECT count(*) FROM (SELECT s.title FROM $S WHERE s.part = '$part' AND s.accepted GROUP BY 1 HAVING count(*) > 1) d")"
  check "$part: every post TikTok accepted is one of the part's posts" 0 \
    "$(q "SELECT count(*) FROM $S WHERE s.part = '$part' AND s.accepted AND NOT EXISTS (SELECT 1 FROM $P WHERE c.part = '$part' AND p.caption = s.title)")"
  check "$part: none lost: each scheduled post is posted, failed or scheduled again with a reason, or publishing (its init's outcome unknown)" 0 \
    "$(q "SELECT count(*) FROM $P WHERE c.part = '$part' AND c.grp <> 'manual'
            AND NOT (p.status = 'posted' OR (p.status IN ('failed', 'scheduled', 'publishing') AND coalesce(p.last_error, '') <> ''))")"
  check "$part: none lost: each draft is posted, or refused (55000) because an init of it is in flight" 0 \
    "$(q "SELECT count(*) FROM $P WHERE c.part = '$part' AND c.grp = 'manual'
            AND NOT (p.status = 'posted'
                     OR (p.status = 'draft' AND c.republished = '55000'
                         AND EXISTS (SELECT 1 FROM vibescaling.dispatch_logs l WHERE l.post_id = p.id
                                        AND l.endpoint = 'video_init' AND l.outcome_unknown)))")"
  check "$part: every post TikTok accepted is posted, or failed or refused as \"outcome unknown\"" 0 \
    "$(q "SELECT count(*) FROM $P WHERE c.part = '$part' AND EXISTS (SELECT 1 FROM $S WHERE s.part = '$part' AND s.accepted AND s.title = p.caption)
            AND NOT (p.status = 'posted' OR p.last_error LIKE '%outcome is unknown%' OR c.republished = '55000')")"
  # An init in flight at the kill has an unknown outcome: its post waits
  # for a settlement (settle_unknown_outcomes, test/system/chaos.sh), and
  # nothing sends it again meanwhile.
  check "$part: a post left publishing is one whose init's outcome is unknown (in unknown_outcomes)" 0 \
    "$(q "SELECT count(*) FROM $P WHERE c.part = '$part' AND p.status = 'publishing'
            AND NOT EXISTS (SELECT 1 FROM vibescaling.unknown_outcomes o WHERE o.post_id = p.id)")"
  local cover="WITH sim AS (SELECT s.open_id, s.endpoint, count(*) calls,
                                   count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM $L WHERE a.open_id = s.open_id AND l.endpoint = s.endpoint
                                                                                          AND l.log_id = s.log_id)) unread
                              FROM $S WHERE s.part = '$part' GROUP BY 1, 2),
                     dl AS (SELECT a.open_id, l.endpoint, count(*) FILTER (WHERE l.http_status IS NOT NULL OR l.outcome_unknown) rows_,
                                   count(*) FILTER (WHERE l.http_status IS NULL AND l.outcome_unknown) in_flight
                              FROM $L WHERE a.part = '$part' GROUP BY 1, 2)"
  check "$part: per account and endpoint, a dispatch_logs row (in flight or answered) for every call the simulator received" 0 \
    "$(q "$cover SELECT count(*) FROM sim LEFT JOIN dl USING (open_id, endpoint) WHERE coalesce(dl.rows_, 0) < sim.calls")"
  check "$part: per account and endpoint, every answer the extension never read is matched by a row still in flight" 0 \
    "$(q "$cover SELECT count(*) FROM sim LEFT JOIN dl USING (open_id, endpoint) WHERE coalesce(dl.in_flight, 0) < sim.unread")"
  check "$part: every answer in dispatch_logs is one the simulator sent (by log_id)" 0 \
    "$(q "SELECT count(*) FROM $L WHERE a.part = '$part' AND l.http_status IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM $S WHERE s.part = '$part' AND s.open_id = a.open_id AND s.endpoint = l.endpoint AND s.log_id = l.log_id)")"
  local short
  short=$(q "$cover SELECT string_agg(sim.open_id || ' ' || sim.endpoint || ': ' || sim.calls || ' calls, ' || coalesce(dl.rows_, 0) || ' rows, '
                                       || sim.unread || ' unread, ' || coalesce(dl.in_flight, 0) || ' in flight', '; ')
               FROM sim LEFT JOIN dl USING (open_id, endpoint)
              WHERE coalesce(dl.rows_, 0) < sim.calls OR coalesce(dl.in_flight, 0) < sim.unread")
  [ -n "$short" ] && echo "#   not covered: $short"
  return 0
}

# ---------------------------------------------------------------- setup
if [ "$(curl -s "$sim/_sim/requests?since=999999999999" -o /dev/null -w '%{http_code}')" != 200 ]; then
  check "the simulator answers on $sim" 200 no; finish
fi
curl -s -X POST "$sim/v2/crash-marker/$run" >/dev/null
if [ "$(curl -s "$sim/_sim/requests" | python3 -c "import json, sys; print(int(all('received' in r for r in json.load(sys.stdin)['requests'][-1:])))")" != 1 ]; then
  check "the simulator logs when each call arrived (restart it on the current sim/tiktok_sim.py)" 1 0; finish
fi
createdb vs_crash
q "ALTER DATABASE vs_crash SET vibescaling.api_base_url = '$sim'" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CREATE EXTENSION vibescaling CASCADE" \
     -f test/fixtures/setup.sql >/dev/null || { check "setup: the extension and test fixtures" ok failed; finish; }
q "CREATE TABLE public.crash_accounts (part text, grp text, i integer, id uuid, open_id text);
   CREATE TABLE public.crash_posts (part text, grp text, i integer, id uuid, account uuid, caption text, republished text);
   CREATE TABLE public.crash_sim (part text, seq bigint, endpoint text, open_id text, http_status integer, error_code text,
                                  log_id text, fault text, received double precision, answered double precision, title text,
                                  accepted boolean)" >/dev/null

# Makes N accounts of a part's group and a post for each (a draft; scheduled
# posts are then made due: scheduled 10 minutes ahead, moved into the past).
make_posts() {
  local part=$1 grp=$2 n=$3 prefix=$4
  q "SET client_min_messages = warning;
     INSERT INTO public.crash_accounts
     SELECT '$part', '$grp', i, vs_test.new_account('$prefix${grp}_' || i), '$prefix${grp}_' || i FROM generate_series(1, $n) i;
     INSERT INTO public.crash_posts (part, grp, i, id, account, caption)
     SELECT '$part', '$grp', a.i, vs_test.new_video(format('crash %s %s %s %s', '$run', '$part', '$grp', a.i)), a.id,
            format('crash %s %s %s %s', '$run', '$part', '$grp', a.i)
       FROM public.crash_accounts a WHERE a.part = '$part' AND a.grp = '$grp'" >/dev/null
  [ "$grp" = scheduled ] && schedule_due "$part" "$grp"
  return 0
}

# Schedules the drafts of a part's group (10 minutes ahead, as the API
# allows) and moves them into the past: due now.
schedule_due() {
  q "SELECT count(vibescaling.schedule_post(c.id, now() + interval '10 minutes', c.account, 'SELF_ONLY'))
       FROM public.crash_posts c WHERE c.part = '$1' AND c.grp = '$2'" >/dev/null &&
  q "SELECT vs_test.make_due(c.id) FROM public.crash_posts c WHERE c.part = '$1' AND c.grp = '$2'" >/dev/null
}

# ================================================================ a. the log writer killed mid-burst
echo "# a. kill -9 of the log writer in the middle of a burst"
pa="cra${run}_"
make_posts a scheduled 60 "$pa"
make_posts a manual 40 "$pa"
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 300}' >/dev/null
PGAPPNAME="crash$run" PGOPTIONS="-c vibescaling.max_concurrent_requests=10" \
  psql -X -q -c "CALL vibescaling.dispatch_due_posts()" >"$tmp/a.dispatcher.log" 2>&1 &
while IFS='|' read -r i post account; do
  bg_publish "a.manual.$i" "$post" "$account"
done < <(q "SELECT i, id, account FROM public.crash_posts WHERE part = 'a' AND grp = 'manual' ORDER BY i")
# Kill it inside a write: its writes last a millisecond or so, too short to
# aim at, so once the burst has calls in flight a session holds a SHARE lock
# on dispatch_logs for 4 s (less than the writer's lock_timeout of 5 s): the
# writer, having taken the queued batches, waits in its transaction, and the
# sessions that handed them over wait for it. It is killed then.
flight_a=$(wait_in_flight a 5 "creator_info")
PGAPPNAME="crash${run}_lock" psql -X -q -c "BEGIN" -c "LOCK TABLE vibescaling.dispatch_logs IN SHARE MODE" -c "SELECT pg_sleep(4)" \
  -c "COMMIT" >/dev/null 2>&1 &
writer=""; blocked=0
for _ in $(seq 1 100); do
  read -r writer blocked < <(q "SELECT pid, (wait_event_type = 'Lock')::int FROM pg_stat_activity
                                WHERE backend_type = 'vibescaling log writer' AND datname = current_database()" | tr '|' ' ')
  [ "${blocked:-0}" = 1 ] && break
  sleep 0.03
done
waiting=$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'crash$run' AND wait_event_type = 'Extension'")
flight_a=$(in_flight a)
check "a: the database's log writer runs during the burst" yes "$([ -n "$writer" ] && echo yes || echo no)"
check "a: the writer is inside a write (waiting for the lock) when it is killed" 1 "${blocked:-0}"
echo "# a: kill -9 of the log writer (pid ${writer:-none}); $waiting sessions waiting for it; in flight then: $flight_a"
kill_a=$(now_s)
[ -n "$writer" ] && kill -9 "$writer"
wait
check "a: the server is back after the writer's crash (crash recovery, no restart by hand)" yes "$(server_up && echo yes || echo no)"
echo "# a: back $(echo "$(now_s) - $kill_a" | bc) s after the kill"
check "a: the postmaster reinitialized after the writer's crash (server log)" yes \
  "$(grep -q 'vibescaling log writer.*was terminated by signal 9' "$logfile" && grep -q 'all server processes terminated; reinitializing' "$logfile" && echo yes || echo no)"
grep -h -m3 -E 'FATAL|ERROR' "$tmp"/a.dispatcher.log "$tmp"/a.manual.1.err 2>/dev/null | sed 's/^/#   a: a killed session said: /' | head -n 2
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null
# The dispatcher again, at a moment when every retry is due; the drafts again.
q "CALL vibescaling.dispatch_due_posts(now() + interval '3 hours')" >/dev/null 2>"$tmp/a.redispatch.err" ||
  echo "# a: the dispatcher after the restart failed: $(head -c 300 "$tmp/a.redispatch.err")"
republish_drafts a
writer_after=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'vibescaling log writer' AND datname = current_database()")
check "a: a new log writer serves the database after the restart" yes \
  "$([ -n "$writer_after" ] && [ "$writer_after" != "$writer" ] && echo yes || echo "no: '${writer_after}'")"
sleep 1
load_sim a "$pa"
check_part a

# ================================================================ b/c. the postmaster killed with calls held at TikTok
echo "# b. kill -9 of the postmaster with creator_info, init and status_fetch calls in flight; c. a 429 Retry-After: $retry_after s before"
pb="crb${run}_"
make_posts b status 12 "$pb"
make_posts b held 5 "$pb"
make_posts b scheduled 20 "$pb"
make_posts b manual 10 "$pb"
# Publishes to follow (status group), at once, with no latency.
q "SELECT count(vibescaling.publish_post(c.id, c.account, 'SELF_ONLY')) FROM public.crash_posts c WHERE c.part = 'b' AND c.grp = 'status'" >/dev/null ||
  check "b: setup: the status group's posts are published" ok failed
# c: one init of each held account answered 429 with Retry-After. Its post
# is published from a session that gets the error and rolls back: only the
# durable log keeps the 429.
faults=$(q "SELECT jsonb_agg(jsonb_build_object('endpoint', 'video_init', 'open_id', a.open_id, 'http_status', 429,
                                               'error_code', 'rate_limit_exceeded', 'retry_after', $retry_after))
              FROM public.crash_accounts a WHERE a.part = 'b' AND a.grp = 'held'")
curl -s -X POST "$sim/_sim/faults" -d "$faults" >/dev/null
held_answers=$(q "SELECT string_agg(vs_test.sqlstate_of(format('SELECT vibescaling.publish_post(%L, %L, %L)', c.id, c.account, 'SELF_ONLY')), ' ')
                    FROM public.crash_posts c WHERE c.part = 'b' AND c.grp = 'held'")
echo "# c: the held accounts' publish_post answered: $held_answers"
schedule_due b held || check "c: the held accounts' posts are scheduled, due" ok failed
check "c: every held account got its 429 with Retry-After before the crash (dispatch_logs.retry_after)" 5 \
  "$(q "SELECT count(DISTINCT l.tiktok_account_id) FROM vibescaling.dispatch_logs l JOIN public.crash_accounts a ON a.id = l.tiktok_account_id
         WHERE a.part = 'b' AND a.grp = 'held' AND l.endpoint = 'video_init' AND l.http_status = 429 AND l.retry_after = $retry_after")"

curl -s -X POST "$sim/_sim/config" -d "{\"latency_ms\": $hold_ms}" >/dev/null
PGAPPNAME="crash$run" psql -X -q -c "CALL vibescaling.dispatch_due_posts()" >"$tmp/b.dispatcher.log" 2>&1 &
flight=$(wait_in_flight b 10 "video_init")
# The dispatcher's round has its inits out: now the creator_info calls and the status fetches.
while IFS='|' read -r i post account; do
  bg_publish "b.manual.$i" "$post" "$account"
done < <(q "SELECT i, id, account FROM public.crash_posts WHERE part = 'b' AND grp = 'manual' ORDER BY i")
for i in 1 2 3 4 5 6; do
  PGAPPNAME="crash$run" psql -X -qAt -c "SELECT vibescaling.publish_status(id) FROM public.crash_posts WHERE part = 'b' AND grp = 'status' AND i = $i" \
    >"$tmp/b.status.$i.out" 2>&1 &
done
PGAPPNAME="crash$run" psql -X -qAt -c "SELECT vibescaling.poll_publish_statuses()" >"$tmp/b.poller.out" 2>&1 &
flight=$(wait_in_flight b 5 "creator_info video_init status_fetch")
sleep 0.3                                      # the last ones' requests on their way
flight=$(in_flight b)
echo "# b: in flight at the kill: $flight"
for e in creator_info video_init status_fetch; do
  check "b: $e calls are in flight at the kill" yes "$([ "$(count_of "$e" "$flight")" -gt 0 ] && echo yes || echo no)"
done
kill_b=$(now_s)
echo "# b: kill -9 of the postmaster of cluster $cluster (pid $(head -1 "$datadir/postmaster.pid"))"
kill -9 "$(head -1 "$datadir/postmaster.pid")"
wait
check "b: the cluster starts again" yes "$(restart_cluster && echo yes || echo no)"
curl -s -X POST "$sim/_sim/config" -d '{"latency_ms": 0}' >/dev/null
redispatch_b=$(now_s)
echo "# b: back $(echo "$redispatch_b - $kill_b" | bc) s after the kill; the dispatcher runs again"
# The dispatcher again at once, allowed to wait out a rate limit for 30 s
# (rate_limit_max_wait): a held account's post waits in it for the
# Retry-After's end, as the durable log says, and goes then; its init must
# not leave sooner. Then again every 0.3 s, as a retry would come back, a
# first retry waiting 1 s (retry_base_delay), until the held accounts'
# posts are posted (or 60 s).
for n in $(seq 1 200); do
  PGOPTIONS="-c vibescaling.retry_base_delay=1 -c vibescaling.rate_limit_max_wait=$([ "$n" = 1 ] && echo 30000 || echo 10000)" \
    q "CALL vibescaling.dispatch_due_posts()" >/dev/null 2>>"$tmp/b.redispatch.err" ||
    echo "# b: the dispatcher after the restart failed: $(tail -c 300 "$tmp/b.redispatch.err")"
  [ "$(q "SELECT count(*) FROM public.crash_posts c JOIN vibescaling.posts p USING (id)
           WHERE c.part = 'b' AND c.grp = 'held' AND p.status = 'scheduled'")" = 0 ] && break
  [ "$(echo "$(now_s) - $redispatch_b > 60" | bc)" = 1 ] && break
  sleep 0.3
done
echo "# b: the dispatcher ran $n times after the restart"
republish_drafts b
q "SELECT vibescaling.poll_publish_statuses()" >/dev/null 2>&1
# Every call held at the kill has been answered (and logged) by the simulator by now.
sleep "$(echo "x = $kill_b + $hold_ms / 1000 + 1 - $(now_s); if (x > 0) x else 0" | bc)"
load_sim b "$pb"
check_part b
S="public.crash_sim s"
check "b: the simulator received creator_info, init and status_fetch calls before the kill whose answers were never read" 3 \
  "$(q "SELECT count(DISTINCT s.endpoint) FROM $S WHERE s.part = 'b' AND s.received < $kill_b
          AND s.endpoint IN ('creator_info', 'video_init', 'status_fetch')
          AND NOT EXISTS (SELECT 1 FROM vibescaling.dispatch_logs l WHERE l.log_id = s.log_id)")"
echo "# b: calls received before the kill and never answered to the extension: $(q "SELECT string_agg(endpoint || ' ' || n, ', ') FROM (
         SELECT s.endpoint, count(*) n FROM $S WHERE s.part = 'b' AND s.received < $kill_b
            AND NOT EXISTS (SELECT 1 FROM vibescaling.dispatch_logs l WHERE l.log_id = s.log_id) GROUP BY 1 ORDER BY 1) x")"
check "b: every status-group post still has an answer from publish_status after the restart" 0 \
  "$(q "SELECT count(*) FROM public.crash_posts c WHERE c.part = 'b' AND c.grp = 'status' AND vs_test.sqlstate_of(format('SELECT vibescaling.publish_status(%L)', c.id)) <> 'ok'")"

# ---------------------------------------------------------------- c. Retry-After across the crash
# Per held account: the 429's answer (the simulator's time) plus Retry-After,
# and its later inits' arrival times.
H="WITH hold AS (SELECT s.open_id, min(s.answered) + $retry_after AS until_, min(s.seq) AS seq
                   FROM $S WHERE s.part = 'b' AND s.endpoint = 'video_init' AND s.http_status = 429 GROUP BY 1),
        later AS (SELECT h.open_id, h.until_, s.received FROM hold h JOIN $S ON s.part = 'b' AND s.open_id = h.open_id
                   AND s.endpoint = 'video_init' AND s.seq > h.seq)"
check "c: the simulator answered one init of each held account 429" 5 "$(q "$H SELECT count(*) FROM hold")"
first_until=$(q "$H SELECT min(until_) FROM hold")
check "c: the dispatcher ran again while the holds were in force (it began $(echo "${first_until:-0} - $redispatch_b" | bc) s before the first ended)" yes \
  "$([ -n "$first_until" ] && [ "$(echo "$redispatch_b < $first_until" | bc)" = 1 ] && echo yes || echo no)"
echo "# c: inits of held accounts after their 429: $(q "$H SELECT coalesce(string_agg(open_id || ' ' || round((received - until_)::numeric, 3) || ' s', ', ' ORDER BY open_id), 'none') FROM later") (arrival minus the hold's end)"
echo "# c: the held accounts' init rows in dispatch_logs: $(q "SELECT string_agg(format('%s %s %s%s at +%s s', a.i, l.trigger, coalesce(l.http_status::text, 'no answer'),
                                                                             coalesce(' ' || l.error_code, ''), round(extract(epoch FROM l.created_at - f.t0)::numeric, 3)), '; '
                                                                      ORDER BY a.i, l.id)
           FROM vibescaling.dispatch_logs l JOIN public.crash_accounts a ON a.id = l.tiktok_account_id,
                LATERAL (SELECT min(f.created_at) t0 FROM vibescaling.dispatch_logs f WHERE f.tiktok_account_id = a.id AND f.http_status = 429) f
          WHERE a.part = 'b' AND a.grp = 'held' AND l.endpoint = 'video_init'")"
check "c: no init of a held account reached the simulator before its 429 answer + Retry-After" 0 \
  "$(q "$H SELECT count(*) FROM later WHERE received < until_")"
check "c: the held accounts' inits went out once the hold had passed (each held post posted)" 5 \
  "$(q "$H SELECT count(DISTINCT l.open_id) FROM later l JOIN public.crash_accounts a ON a.open_id = l.open_id
         JOIN public.crash_posts c ON c.account = a.id JOIN vibescaling.posts p ON p.id = c.id WHERE p.status = 'posted'")"
check "the server log has no \"may be lost\" message" 0 "$(grep -c 'may be lost' "$logfile")"
finish
