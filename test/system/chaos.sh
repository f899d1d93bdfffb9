#!/usr/bin/env bash
# Chaos test: ~1800 scheduled posts over 200 accounts, dispatched by 4
# dispatchers in parallel, round after round, while the simulator answers a
# steady mix of faults (429, 500/503, dropped connections before and after
# TikTok acted, slow replies that time out, and 100 ms per call) and the
# dispatchers are cancelled (pg_cancel_backend) and killed
# (pg_terminate_backend), in turn, at random moments.
# At the end, checked against the simulator's own request log:
#   - no post has two successful inits at TikTok (duplicates = 0)
#   - no post is lost: each is posted, or failed with a reason
#   - the posts whose init had an unknown outcome settle themselves
#     (settle_unknown_outcomes) from TikTok's signals: the creator's video
#     list (three accounts in four grant video.list) and TikTok's webhooks,
#     which the simulator delivers to test/lib/webhook_relay.py and so to
#     handle_webhook; or as not sent after the quiet period without a sign.
#     Each settlement agrees with what the simulator has; only posts whose
#     evidence cannot be told apart wait for an operator
#   - each post TikTok accepted is posted (or waits for an operator, as
#     above); each posted post is the one TikTok has
#   - each TikTok call the simulator logged for the run's accounts has its
#     dispatch_logs row
# Needs the PG* variables of a database with vibescaling and test/fixtures
# (as a superuser) and the simulator on $VS_SIM_PORT; about a minute on 2 cores.
# Knobs: CHAOS_POSTS, CHAOS_ACCOUNTS, CHAOS_DISPATCHERS, CHAOS_SECONDS
# (how long faults and kills go on), CHAOS_MAX_ROUNDS, CHAOS_FAULTS (per tick),
# CHAOS_WEBHOOK_PORT (the relay's, 18493).
set -uo pipefail
cd "$(dirname "$0")/../.."

sim="http://127.0.0.1:${VS_SIM_PORT:-18443}"
run=$(date +%s%N | tail -c 9)
prefix="chaos${run}_"                       # the run's open_ids
posts_n=${CHAOS_POSTS:-1800}
accounts_n=${CHAOS_ACCOUNTS:-200}
dispatchers=${CHAOS_DISPATCHERS:-4}
chaos_seconds=${CHAOS_SECONDS:-90}
max_rounds=${CHAOS_MAX_ROUNDS:-20}
faults_per_tick=${CHAOS_FAULTS:-5}
app="chaos$run"                             # application_name of the run's dispatchers
webhook_port=${CHAOS_WEBHOOK_PORT:-18493}
tmp=$(mktemp -d /tmp/chaos.XXXXXX)
t0=$(date +%s)
passed=0
failed=0

# Every session of this run (the dispatchers too) talks to the simulator this
# test inspects, whatever the database's default (superuser setting).
export PGOPTIONS="${PGOPTIONS:-} -c vibescaling.api_base_url=$sim"

q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
# Records one assertion: check NAME EXPECTED ACTUAL.
check() {
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok - $1"
  else failed=$((failed + 1)); echo "not ok - $1 (expected '$2', got '$3')"; fi
}
finish() {
  echo "# runtime $(( $(date +%s) - t0 )) s"
  echo "chaos: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}
declare -a pid=()
cleanup() {
  for p in "${pid[@]}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  psql -X -qAt -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$app'" >/dev/null 2>&1
  [ -n "${rate_limits:-}" ] && curl -s -X POST "$sim/_sim/config" -d "{\"rate_limits\": $rate_limits}" >/dev/null
  [ -n "${latency_ms:-}" ] && curl -s -X POST "$sim/_sim/config" -d "{\"latency_ms\": $latency_ms}" >/dev/null
  curl -s -X POST "$sim/_sim/config" -d '{"webhook_url": null}' >/dev/null
  [ -n "${relay_pid:-}" ] && kill "$relay_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# ---------------------------------------------------------------- setup
if ! curl -sf "$sim/_sim/health" >/dev/null; then
  check "the simulator answers on $sim" 1 0
  finish
fi
if [ "$(q "SELECT to_regproc('vs_test.new_account') IS NOT NULL")" != t ]; then
  check "the vs_test fixtures are loaded (psql -qX -f test/fixtures/setup.sql)" t f
  finish
fi
# The simulator must name the account of a call a fault answered (the
# per-account comparisons below depend on it): a probe on its own user.
curl -s -X POST "$sim/_sim/users" -d "{\"access_token\": \"tok-$prefix\", \"open_id\": \"${prefix}probe\"}" >/dev/null
curl -s -X POST "$sim/_sim/faults" -d "{\"endpoint\": \"creator_info\", \"open_id\": \"${prefix}probe\", \"http_status\": 503}" >/dev/null
curl -s -X POST -H "Authorization: Bearer tok-$prefix" "$sim/v2/post/publish/creator_info/query/" -d '{}' >/dev/null
probe=$(curl -s "$sim/_sim/requests?endpoint=creator_info&open_id=${prefix}probe" |
  python3 -c "import json, sys; print(sum(1 for r in json.load(sys.stdin)['requests'] if r['fault'] == 'error'))")
if [ "$probe" != 1 ]; then
  check "the simulator logs the open_id of calls a fault answers (restart it on the current sim/tiktok_sim.py)" 1 "$probe"
  finish
fi

# Per-token rate limits off for the run (restored on exit); the extension's
# mirror of them (vibescaling.rate_limit_window, when it has one) is narrowed
# for the dispatchers likewise, or 9 posts per account would wait out minutes.
rate_limits=$(curl -s "$sim/_sim/config" | python3 -c "import json, sys; print(json.dumps(json.load(sys.stdin)['rate_limits']))")
curl -s -X POST "$sim/_sim/config" -d '{"rate_limits": false}' >/dev/null
# Rounds of 32 posts (the default is 128): a dispatcher run has many rounds,
# so many transactions, for the kills to fall between and into.
dispatcher_opts="$PGOPTIONS -c vibescaling.max_concurrent_requests=32"
# While the chaos lasts, every call takes 100 ms: the dispatchers, which
# batch their calls, would otherwise be done before many kills could land.
latency_ms=$(curl -s "$sim/_sim/config" | python3 -c "import json, sys; print(json.dumps(json.load(sys.stdin)['latency_ms']))")
if [ "$(q "SELECT count(*) FROM pg_settings WHERE name = 'vibescaling.rate_limit_window'")" = 1 ]; then
  dispatcher_opts="$dispatcher_opts -c vibescaling.rate_limit_window=1"
fi

# TikTok's webhooks reach handle_webhook through the relay (PostgREST's
# part in production).
python3 test/lib/webhook_relay.py "$webhook_port" >"$tmp/relay.log" 2>&1 &
relay_pid=$!
for _ in $(seq 50); do grep -q ready "$tmp/relay.log" 2>/dev/null && break; sleep 0.1; done
curl -s -X POST "$sim/_sim/config" -d "{\"webhook_url\": \"http://127.0.0.1:$webhook_port/webhook\"}" >/dev/null

# A marker call (an unknown path, logged with endpoint null): the run's part
# of the request log starts after it.
curl -s -X POST "$sim/v2/chaos-marker/$run" >/dev/null
start_seq=$(curl -s "$sim/_sim/requests" | python3 -c "
import json, sys
print(max([r['seq'] for r in json.load(sys.stdin)['requests'] if r['path'] == '/v2/chaos-marker/$run'] or [-1]))")
if [ "${start_seq:--1}" -lt 0 ]; then
  check "the simulator logged the start marker" 1 0
  finish
fi

echo "# setup: $posts_n posts over $accounts_n accounts ($prefix*), simulator $sim"
q "SET client_min_messages = warning;
   CREATE TABLE IF NOT EXISTS public.chaos_accounts (run text, i integer, id uuid, open_id text);
   CREATE TABLE IF NOT EXISTS public.chaos_posts (run text, n integer, id uuid);
   CREATE TABLE IF NOT EXISTS public.chaos_sim (run text, seq bigint, endpoint text, open_id text, http_status integer,
                                                error_code text, fault text, effect_error_code text, title text,
                                                publish_id text, accepted boolean);
   CREATE TABLE IF NOT EXISTS public.chaos_pub (run text, publish_id text, title text, post_id bigint)" >/dev/null
# Three accounts in four granted video.list (the video list finds their
# lost posts); the others rely on webhooks alone.
q "INSERT INTO public.chaos_accounts
   SELECT '$run', i, vs_test.new_account('$prefix' || i, jsonb_build_object('daily_post_cap', 1000000, 'scopes', s)),
          '$prefix' || i
     FROM generate_series(1, $accounts_n) i,
          LATERAL (SELECT '[\"user.info.basic\", \"video.publish\", \"video.upload\"]'::jsonb
                          || CASE WHEN i % 4 <> 0 THEN '[\"video.list\"]'::jsonb ELSE '[]' END AS s) x" >/dev/null ||
  { check "setup: accounts" ok failed; finish; }
q "UPDATE vibescaling.tiktok_accounts t SET scopes = ARRAY['user.info.basic', 'video.publish', 'video.upload']
                                                  || CASE WHEN a.i % 4 <> 0 THEN ARRAY['video.list'] ELSE '{}' END
     FROM public.chaos_accounts a WHERE a.run = '$run' AND a.id = t.id" >/dev/null
# Unique captions (TikTok's title): the simulator's log is counted by title.
q "INSERT INTO public.chaos_posts
   SELECT '$run', n, (vibescaling.schedule_post(vs_test.new_video('chaos $run ' || n), now() + interval '10 minutes',
                                                a.id, 'PUBLIC_TO_EVERYONE') #>> '{data,id}')::uuid
     FROM generate_series(1, $posts_n) n
     JOIN public.chaos_accounts a ON a.run = '$run' AND a.i = 1 + (n - 1) % $accounts_n" >/dev/null ||
  { check "setup: posts" ok failed; finish; }
# Due long ago (one second apart, the accounts interleaved), so that a
# dispatcher run with as_of in the year 2000 sees only this run's posts; each
# round's as_of is one retry_max_delay later, so every retry is due by then.
psql -X -qAt -v ON_ERROR_STOP=1 -c "SET session_replication_role = replica" \
  -c "UPDATE vibescaling.posts p SET scheduled_at = timestamptz '2000-01-01 00:00:00+00' + c.n * interval '1 second'
        FROM public.chaos_posts c WHERE c.run = '$run' AND c.id = p.id" >/dev/null
step=$(q "SELECT current_setting('vibescaling.retry_max_delay')::interval + interval '1 minute'")
echo "# setup took $(( $(date +%s) - t0 )) s; rounds step as_of by $step"

# ---------------------------------------------------------------- chaos
scheduled_left() {
  q "SELECT count(*) FROM vibescaling.posts p JOIN public.chaos_posts c USING (id) WHERE c.run = '$run' AND p.status = 'scheduled'"
}

# Starts dispatcher number $1 of the round. Odd-numbered ones run with a
# 1000 ms request timeout, so a slow (2 s) reply times out there; the
# others wait for it.
spawns=0
spawn() {
  local opts="$dispatcher_opts"
  [ $(($1 % 2)) -eq 1 ] && opts="$opts -c vibescaling.request_timeout_ms=1000"
  spawns=$((spawns + 1))
  PGAPPNAME="$app" PGOPTIONS="$opts" psql -X -q -c "CALL vibescaling.dispatch_due_posts('$as_of')" \
    >"$tmp/dispatcher.$spawns.log" 2>&1 &
  pid[$1]=$!
}

# Queues a few faults for random accounts that still have scheduled posts,
# each for that account only (open_id), so that no other session using the
# simulator gets them, and a random number of the account's calls later (skip,
# less than its posts left).
inject_faults() {
  local faults
  faults=$(q "SELECT coalesce(jsonb_agg(jsonb_build_object('open_id', open_id, 'skip', skip, 'count', 1) || CASE
                WHEN r < 12 THEN '{\"endpoint\": \"creator_info\", \"http_status\": 429, \"error_code\": \"rate_limit_exceeded\"}'
                WHEN r < 24 THEN '{\"endpoint\": \"video_init\", \"http_status\": 429, \"error_code\": \"rate_limit_exceeded\"}'
                WHEN r < 34 THEN '{\"endpoint\": \"creator_info\", \"http_status\": 500, \"error_code\": \"internal_error\"}'
                WHEN r < 44 THEN '{\"endpoint\": \"creator_info\", \"http_status\": 503, \"error_code\": \"internal_error\"}'
                WHEN r < 54 THEN '{\"endpoint\": \"video_init\", \"http_status\": 500, \"error_code\": \"internal_error\"}'
                WHEN r < 64 THEN '{\"endpoint\": \"video_init\", \"http_status\": 503, \"error_code\": \"internal_error\"}'
                WHEN r < 69 THEN '{\"endpoint\": \"creator_info\", \"action\": \"drop\"}'
                WHEN r < 74 THEN '{\"endpoint\": \"video_init\", \"action\": \"drop\"}'
                WHEN r < 78 THEN '{\"endpoint\": \"creator_info\", \"action\": \"drop\", \"after_processing\": true}'
                WHEN r < 86 THEN '{\"endpoint\": \"video_init\", \"action\": \"drop\", \"after_processing\": true}'
                WHEN r < 93 THEN '{\"endpoint\": \"creator_info\", \"action\": \"slow\", \"delay_ms\": 2000}'
                ELSE             '{\"endpoint\": \"video_init\", \"action\": \"slow\", \"delay_ms\": 2000}' END::jsonb), '[]')
         FROM (SELECT * FROM (SELECT a.open_id, random() AS o, floor(random() * 100)::integer AS r,
                                     least(floor(random() * 3)::integer, left_ - 1) AS skip
                                FROM (SELECT a.*, (SELECT count(*) FROM vibescaling.posts p
                                                    WHERE p.tiktok_account_id = a.id AND p.status = 'scheduled') left_
                                        FROM public.chaos_accounts a WHERE a.run = '$run') a
                               WHERE left_ > 0
                              OFFSET 0) x    -- a fence: else ORDER BY random() is reused for r and skip
                ORDER BY o LIMIT $faults_per_tick) f")
  [ -n "$faults" ] && [ "$faults" != "[]" ] && curl -s -X POST "$sim/_sim/faults" -d "$faults" >/dev/null
}

# Cancels or terminates one of the run's dispatchers, picked at random.
cancels=0
terminates=0
kill_one() {
  local victim how
  victim=$(q "SELECT pid FROM pg_stat_activity
               WHERE query LIKE '%dispatch_due_posts%' AND application_name = '$app' AND pid <> pg_backend_pid()
               ORDER BY random() LIMIT 1")
  [ -z "$victim" ] && return
  # Cancels and terminates take turns. (The victim may have ended meanwhile:
  # then the signal is not sent, with a WARNING.)
  if [ "$cancels" -le "$terminates" ]; then how=cancel; else how=terminate; fi
  if [ "$(q "SELECT pg_${how}_backend($victim)" 2>/dev/null)" = t ]; then
    if [ $how = cancel ]; then cancels=$((cancels + 1)); else terminates=$((terminates + 1)); fi
  fi
}

round=0
chaos_until=$(( $(date +%s) + chaos_seconds ))
while [ "$round" -lt "$max_rounds" ] && [ "$(scheduled_left)" -gt 0 ]; do
  round=$((round + 1))
  as_of=$(q "SELECT timestamptz '2000-01-01 00:00:00+00' + $round * interval '$step'")
  chaos=0; [ "$(date +%s)" -lt "$chaos_until" ] && chaos=1
  echo "# round $round (as_of $as_of): $(scheduled_left) posts scheduled, $([ $chaos = 1 ] && echo "with faults and kills" || echo "draining")"
  curl -s -X POST "$sim/_sim/config" -d "{\"latency_ms\": $([ $chaos = 1 ] && echo 100 || echo "$latency_ms")}" >/dev/null
  for slot in $(seq 1 "$dispatchers"); do spawn "$slot"; done
  while :; do
    alive=0
    for slot in $(seq 1 "$dispatchers"); do
      p=${pid[$slot]:-}
      [ -z "$p" ] && continue
      if kill -0 "$p" 2>/dev/null; then alive=$((alive + 1)); continue; fi
      wait "$p"; rc=$?
      pid[$slot]=""
      # A cancelled or killed dispatcher is replaced while the chaos lasts.
      if [ "$rc" -ne 0 ] && [ "$chaos" = 1 ]; then spawn "$slot"; alive=$((alive + 1)); fi
    done
    [ "$alive" -eq 0 ] && break
    sleep "0.$((2 + RANDOM % 6))"
    if [ "$chaos" = 1 ] && [ "$(date +%s)" -ge "$chaos_until" ]; then
      chaos=0
      curl -s -X POST "$sim/_sim/config" -d "{\"latency_ms\": $latency_ms}" >/dev/null
    fi
    if [ "$chaos" = 1 ]; then
      inject_faults
      [ $((RANDOM % 10)) -lt 4 ] && kill_one
    fi
  done
done
echo "# dispatching took $(( $(date +%s) - t0 )) s in all, $round rounds, $spawns dispatcher runs"
# A slow reply is logged by the simulator when it is sent, after its delay,
# also when the client has given up: let the last ones land.
sleep 3

# ---------------------------------------------------------------- settling
# TikTok finishes processing, makes the posts public and sends its
# webhooks; once every one was delivered, the posts whose init had an
# unknown outcome settle themselves. The quiet period is short here (TikTok
# has said all it will say by then); production waits hours.
processing=$(curl -s "$sim/_sim/config" | python3 -c "import json, sys; print(json.load(sys.stdin)['processing_seconds'])")
sleep "$(python3 -c "print(2 * float('$processing') + 2)")"
for _ in $(seq 120); do
  pending=$(curl -s "$sim/_sim/webhooks" | python3 -c "
import json, sys; print(sum(1 for d in json.load(sys.stdin)['webhooks'] if d['state'] == 'pending' and (d['user_openid'] or '').startswith('$prefix')))")
  [ "$pending" = 0 ] && break
  sleep 0.5
done
sleep 1   # the relay's psql session applies the last ones
delivered=$(curl -s "$sim/_sim/webhooks" | python3 -c "
import json, sys; print(sum(1 for d in json.load(sys.stdin)['webhooks'] if d['state'] == 'delivered' and (d['user_openid'] or '').startswith('$prefix')))")
waiting_before=$(q "SELECT count(*) FROM vibescaling.unknown_outcomes o JOIN public.chaos_posts c ON c.id = o.post_id WHERE c.run = '$run'")
# Posts of unknown outcome other suites left in this database are not the
# run's: an operator's decision takes them out of the settler's count.
q "INSERT INTO vibescaling.settlements (post_id, tiktok_account_id, on_tiktok, decided_by, evidence)
   SELECT o.post_id, o.tiktok_account_id, false, 'operator', '{\"by\": \"chaos.sh: from another suite\"}'
     FROM vibescaling.unknown_outcomes o WHERE o.post_id NOT IN (SELECT id FROM public.chaos_posts WHERE run = '$run')" >/dev/null
settled=$(q "SELECT vibescaling.settle_unknown_outcomes(100000, '1 second')")
echo "# settling: $waiting_before posts of unknown outcome; $delivered webhooks delivered; settle_unknown_outcomes: $settled"
echo "# settled by signal: $(q "SELECT string_agg(k || ' ' || n, ', ') FROM (
         SELECT s.decided_by || CASE WHEN s.on_tiktok THEN ' (on TikTok' || CASE WHEN s.publish_id IS NOT NULL THEN ', publish_id known)' ELSE ')' END
                                     ELSE ' (not on TikTok)' END k, count(*) n
           FROM vibescaling.settlements s JOIN public.chaos_posts c ON c.id = s.post_id WHERE c.run = '$run' GROUP BY 1 ORDER BY 1) x")"

# ---------------------------------------------------------------- the simulator's record
# The run's part of the request log and the run's publishes, loaded next to
# the posts. A successful init: the simulator created the publish, whether
# its reply arrived (200 ok, also after a slow delay) or was lost (a fault
# after processing, effect_error_code ok).
curl -s "$sim/_sim/requests?since=$start_seq" >"$tmp/requests.json"
curl -s "$sim/_sim/publishes" >"$tmp/publishes.json"
cat >"$tmp/load.py" <<'EOF'
import csv, json, sys
run, prefix, start_seq, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
reqs = json.load(open(sys.argv[5]))["requests"]
pubs = json.load(open(sys.argv[6]))["publishes"]
seqs = [r["seq"] for r in reqs]
# Intact: nothing cleared (reset, DELETE) or rotated out since the start marker.
intact = bool(seqs) and seqs[0] == start_seq + 1 and seqs == list(range(start_seq + 1, start_seq + 1 + len(seqs)))
accepted = 0
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    for r in reqs:
        if not (r.get("open_id") or "").startswith(prefix):
            continue
        body = r.get("body") if isinstance(r.get("body"), dict) else {}
        info = body.get("post_info") if isinstance(body.get("post_info"), dict) else {}
        ok = (r["endpoint"] in ("video_init", "inbox_video_init", "content_init")
              and ((r["fault"] in (None, "slow") and r["http_status"] == 200 and r["error_code"] == "ok")
                   or r.get("effect_error_code") == "ok"))
        accepted += ok
        w.writerow([run, r["seq"], r["endpoint"], r["open_id"], r["http_status"], r["error_code"], r["fault"],
                    r.get("effect_error_code"), info.get("title"), r["publish_id"], ok])
mine = [p for p in pubs if p["open_id"].startswith(prefix)]
with open(out + ".pubs", "w", newline="") as f:
    w = csv.writer(f)
    for p in mine:
        w.writerow([run, p["publish_id"], p["title"], p.get("assigned_post_id")])
print(int(intact), len(reqs), len(mine), accepted)
EOF
read -r intact logged sim_publishes sim_accepted < <(python3 "$tmp/load.py" "$run" "$prefix" "$start_seq" "$tmp/sim.csv" \
                                                     "$tmp/requests.json" "$tmp/publishes.json")
q "\\copy public.chaos_sim FROM '$tmp/sim.csv' WITH (FORMAT csv)" >/dev/null
q "\\copy public.chaos_pub FROM '$tmp/sim.csv.pubs' WITH (FORMAT csv)" >/dev/null
check "the simulator's request log is whole since the run began ($logged entries, none cleared or rotated out)" 1 "$intact"
check "the simulator's publishes match the successful inits in its log ($sim_publishes publishes)" "$sim_publishes" "$sim_accepted"

# ---------------------------------------------------------------- figures
P="public.chaos_posts c JOIN vibescaling.posts p USING (id)"   # the run's posts (with $R)
S="public.chaos_sim s"                                      # its simulator log
R="c.run = '$run'"
faults=$(q "SELECT count(*) FROM $S WHERE s.run = '$run' AND s.fault IS NOT NULL")
retries=$(q "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) n FROM vibescaling.dispatch_logs l JOIN public.chaos_posts c ON c.id = l.post_id
                                                   WHERE $R AND l.trigger = 'scheduler' AND l.endpoint = 'creator_info' GROUP BY l.post_id) a")
attempts=$(q "SELECT sum(p.attempts) FROM $P WHERE $R")
duplicates=$(q "SELECT count(*) FROM (SELECT s.title FROM $S WHERE s.run = '$run' AND s.accepted GROUP BY s.title HAVING count(*) > 1) d")
lost=$(q "SELECT count(*) FROM $P WHERE $R AND NOT (p.status = 'posted' OR (p.status = 'failed' AND coalesce(p.last_error, '') <> '')
                                                     OR EXISTS (SELECT 1 FROM vibescaling.unknown_outcomes o WHERE o.post_id = p.id))")
echo "# posts: $posts_n ($(q "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT p.status, count(*) n FROM $P WHERE $R GROUP BY 1 ORDER BY 1) x"))"
echo "# faults injected: $faults ($(q "SELECT string_agg(k || ' ' || n, ', ') FROM (SELECT s.endpoint || ' ' || s.fault || CASE WHEN s.effect_error_code IS NOT NULL THEN '+processed' ELSE '' END
                                                                                            || coalesce(' ' || s.http_status, '') k, count(*) n
                                                                                        FROM $S WHERE s.run = '$run' AND s.fault IS NOT NULL GROUP BY 1 ORDER BY 1) x"))"
echo "# retries: $retries dispatch attempts beyond each post's first (creator_info rows in dispatch_logs);" \
     "failed attempts recorded (posts.attempts sum): $attempts"
echo "# cancels sent: $cancels, terminates sent: $terminates"
echo "# TikTok calls the simulator logged for the run: $(q "SELECT string_agg(endpoint || ' ' || n, ', ') FROM (SELECT endpoint, count(*) n FROM $S WHERE s.run = '$run' GROUP BY 1 ORDER BY 1) x");" \
     "dispatch_logs rows: $(q "SELECT string_agg(endpoint || ' ' || n, ', ') FROM (SELECT l.endpoint, count(*) n FROM vibescaling.dispatch_logs l JOIN public.chaos_accounts a ON a.id = l.tiktok_account_id WHERE a.run = '$run' GROUP BY 1 ORDER BY 1) x")"
echo "# failed posts by reason: $(q "SELECT string_agg(k || ' x' || n, '; ') FROM (
         SELECT regexp_replace(regexp_replace(p.last_error, '\(log_id [^)]*\)', '(log_id …)'), '[0-9a-f-]{36}', '<post>') k, count(*) n
           FROM $P WHERE $R AND p.status = 'failed' GROUP BY 1 ORDER BY 2 DESC) x")"
warnings=$(cat "$tmp"/dispatcher.*.log 2>/dev/null | grep -c '^WARNING')
[ "$warnings" -gt 0 ] && echo "# dispatcher warnings: $warnings, e.g. $(grep -h '^WARNING' "$tmp"/dispatcher.*.log | sort | uniq -c | sort -rn | head -3 | tr -s ' ' | tr '\n' ';')"

# ---------------------------------------------------------------- checks
check "the run injected faults, retried posts, cancelled and terminated dispatchers" 1 \
  "$([ "$faults" -gt 0 ] && [ "$retries" -gt 0 ] && [ "$cancels" -gt 0 ] && [ "$terminates" -gt 0 ] && echo 1 || echo 0)"
check "duplicates = 0: no post has two successful inits at TikTok ($sim_accepted posts accepted)" 0 "$duplicates"
check "lost = 0: every post is posted, failed with a last_error, or waits for an operator" 0 "$lost"
W="vibescaling.unknown_outcomes o JOIN public.chaos_posts c ON c.id = o.post_id"   # waiting for an operator (with $R)
check "nothing left scheduled" 0 "$(q "SELECT count(*) FROM $P WHERE $R AND p.status = 'scheduled'")"
# What settles nothing is evidence the settler cannot tell apart (two lost
# posts of an account and fewer publishes than that, or one publish that a
# video and a webhook explain differently): it answered "ambiguous" for
# each post left waiting, none was left for want of a look (errors) or
# still inside its quiet period (waiting).
check "every post left for an operator is one the settler found ambiguous (none for a failed look or too early)" \
  "$(q "SELECT count(*) FROM $W WHERE $R")" "$(echo "$settled" | python3 -c "import json, sys; d = json.load(sys.stdin); print(d['ambiguous'] if d['errors'] == 0 and d['waiting'] == 0 else -1)")"
echo "# waiting for an operator: $(q "SELECT count(*) FROM $W WHERE $R") (evidence that cannot be told apart)"
check "a post still publishing is one that waits for an operator" 0 \
  "$(q "SELECT count(*) FROM $P WHERE $R AND p.status = 'publishing' AND NOT EXISTS (SELECT 1 FROM $W WHERE o.post_id = p.id)")"
disagree="FROM vibescaling.settlements st JOIN $P ON p.id = st.post_id
           WHERE $R AND st.on_tiktok <> EXISTS (SELECT 1 FROM public.chaos_pub sp WHERE sp.run = '$run' AND sp.title = p.caption)"
check "every settlement agrees with TikTok: on TikTok exactly when the simulator has the post" 0 "$(q "SELECT count(*) $disagree")"
[ "$(q "SELECT count(*) $disagree")" != 0 ] && echo "#   e.g. $(q "SELECT string_agg(st.decided_by || ' ' || st.on_tiktok || ' ' || st.evidence::text || ' [' || p.caption || ']', '; ') $disagree")"
bad=$(q "SELECT count(*) FROM $P WHERE $R AND EXISTS (SELECT 1 FROM $S WHERE s.run = '$run' AND s.accepted AND s.title = p.caption)
           AND NOT (p.status = 'posted' OR EXISTS (SELECT 1 FROM vibescaling.unknown_outcomes o WHERE o.post_id = p.id))")
check "every post TikTok accepted is posted (or waits for an operator, as above)" 0 "$bad"
[ "$bad" != 0 ] && echo "#   e.g. $(q "SELECT string_agg(x, '; ') FROM (SELECT p.status || ': ' || coalesce(p.last_error, '') || ' [' || p.caption || ']' x
                                                FROM $P WHERE $R AND EXISTS (SELECT 1 FROM $S WHERE s.run = '$run' AND s.accepted AND s.title = p.caption)
                                                 AND NOT (p.status = 'posted' OR EXISTS (SELECT 1 FROM vibescaling.unknown_outcomes o WHERE o.post_id = p.id))
                                               ORDER BY c.n LIMIT 3) e")"
# A post found in the video list alone knows its video, not its publish_id.
check "every posted post is on TikTok under the publish_id (or the video) it recorded" 0 \
  "$(q "SELECT count(*) FROM $P WHERE $R AND p.status = 'posted'
          AND NOT EXISTS (SELECT 1 FROM $S JOIN vibescaling.publish_records pr ON pr.publish_id = s.publish_id
                           WHERE s.run = '$run' AND s.accepted AND s.title = p.caption AND pr.post_id = p.id)
          AND NOT EXISTS (SELECT 1 FROM public.chaos_pub sp JOIN vibescaling.publish_records pr
                                ON pr.publish_id = sp.publish_id OR pr.publish_id IS NULL AND sp.post_id = ANY (pr.public_post_ids)
                           WHERE sp.run = '$run' AND sp.title = p.caption AND pr.post_id = p.id)")"

# Every call the simulator logged for an account has a dispatch_logs row:
# per account and endpoint, dispatch_logs may have more rows than the
# simulator has calls, never fewer. More, because a row is written for a call
# that never reached the simulator: a call aborted by the cancel or terminate
# before its request was sent, a refused connection, a call the extension's
# own rate limiter held back (rate_limited), an init whose "in flight" row a
# killed backend left. No other tolerance: the accounts are the run's own.
cover="WITH sim AS (SELECT s.open_id, s.endpoint, count(*) calls, count(s.http_status) answered
                    FROM $S WHERE s.run = '$run' GROUP BY 1, 2),
             dl AS (SELECT a.open_id, l.endpoint, count(*) rows_, count(l.http_status) answered
                      FROM vibescaling.dispatch_logs l JOIN public.chaos_accounts a ON a.id = l.tiktok_account_id
                     WHERE a.run = '$run' GROUP BY 1, 2)"
short=$(q "$cover SELECT count(*) FROM sim LEFT JOIN dl USING (open_id, endpoint) WHERE coalesce(dl.rows_, 0) < sim.calls")
check "every TikTok call the simulator logged has a dispatch_logs row (accounts x endpoints short of rows)" 0 "$short"
[ "$short" != 0 ] && echo "#   e.g. $(q "$cover SELECT string_agg(x, '; ') FROM (SELECT sim.open_id || ' ' || sim.endpoint || ': simulator ' || sim.calls
                                                        || ', dispatch_logs ' || coalesce(dl.rows_, 0) x
                                                   FROM sim LEFT JOIN dl USING (open_id, endpoint)
                                                  WHERE coalesce(dl.rows_, 0) < sim.calls ORDER BY 1 LIMIT 5) e");" \
                        "missing by endpoint: $(q "$cover SELECT string_agg(endpoint || ' ' || n, ', ') FROM (SELECT sim.endpoint, sum(sim.calls - coalesce(dl.rows_, 0)) n
                                                   FROM sim LEFT JOIN dl USING (open_id, endpoint) WHERE coalesce(dl.rows_, 0) < sim.calls GROUP BY 1) e")"
# ... and each reply dispatch_logs recorded (an HTTP status) was one the simulator sent.
check "no dispatch_logs row records a reply the simulator did not send (accounts x endpoints over)" 0 \
  "$(q "$cover SELECT count(*) FROM dl LEFT JOIN sim USING (open_id, endpoint) WHERE dl.answered > coalesce(sim.answered, 0)")"
echo "# dispatch_logs rows without a reply, by error_code: $(q "SELECT string_agg(k || ' ' || n, ', ') FROM (SELECT l.endpoint || ' ' || l.error_code k, count(*) n
                                                                  FROM vibescaling.dispatch_logs l JOIN public.chaos_accounts a ON a.id = l.tiktok_account_id
                                                                 WHERE a.run = '$run' AND l.http_status IS NULL GROUP BY 1 ORDER BY 1) x")"

# The dispatchers ended normally, by the cancel, or by the terminate: nothing else.
others=$(cat "$tmp"/dispatcher.*.log 2>/dev/null | grep -E '^(ERROR|FATAL|psql:)' |
  grep -vE 'canceling statement due to user request|terminating connection due to administrator command|server closed the connection unexpectedly|connection to server was lost' | sort | uniq -c)
check "no dispatcher ended with any other error" 0 "$(printf '%s' "$others" | grep -c .)"
[ -n "$others" ] && echo "$others" | head -5 | sed 's/^/#   /'

# Faults queued for accounts whose posts were all done stay pending; they can
# only match this run's tokens. (The rows of public.chaos_* stay too, per run.)
echo "# faults left pending for the run's accounts: $(curl -s "$sim/_sim/faults" | python3 -c "
import json, sys; print(sum(1 for f in json.load(sys.stdin)['faults'] if (f['open_id'] or '').startswith('$prefix')))")"
echo "# figures: posts $posts_n, faults $faults, retries $retries, cancels $cancels, terminates $terminates, duplicates $duplicates, lost $lost, rounds $round"
finish
