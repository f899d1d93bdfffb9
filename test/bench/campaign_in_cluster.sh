#!/usr/bin/env bash
# The campaign benchmark (test/bench/campaign.sh) inside its throwaway
# cluster: set-up, the three scheduling paths and the expansion job, each
# measured on its own; the same posts written by plain INSERTs into an
# application's table (in a second database); then the dispatch of whole
# days of the plan, each against a fresh simulator state, each checked
# against the simulator's own record. Each measured step's figures go to a
# JSON line; the tables and checks end it. Exits 1 if a check fails.
#   env: VS_SIM_PORT, VS_CAMPAIGN_SIM_PID, VS_CAMPAIGN_POSTS, VS_CAMPAIGN_ACCOUNTS,
#        VS_CAMPAIGN_DAYS (e.g. "1:cadence 2:cadence 3:cadence 4:burst"),
#        VS_CAMPAIGN_PACE (seconds of real time per 5-minute cadence run),
#        VS_CAMPAIGN_QUEUE_SAMPLE (add_to_queue calls measured as the server runs them),
#        VS_CAMPAIGN_PATCH (an SQL file run after the set-up: an experiment)
set -euo pipefail
cd "$(dirname "$0")/../.."
sim="http://127.0.0.1:$VS_SIM_PORT"
postmaster=$(head -1 "$(psql -XAtq -d postgres -c 'SHOW data_directory')/postmaster.pid")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db=vs_campaign
plain_db=vs_campaign_plain
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

# The machine's busy CPU seconds so far (all cores, /proc/stat): around a
# step it shows how much CPU anything else on the machine took meanwhile.
machine_busy() {
  awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { print ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit }' /proc/stat
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Runs one measured step: NAME DB PSQL_ARGS...: the cluster's CPU (every
# process: the backend, the log writer, helpers, autovacuum, ...), the
# backend's own, the simulator's, around a psql session that writes its
# pid to $work/pid; appends a JSON line to $work/results.jsonl with the
# session's own JSON (its last line), the number of ERROR lines it printed
# and the load average before and after.
measure() {
  local name=$1 db=$2
  shift 2
  rm -f "$work/pid" "$work/sample" "$work/sample.stop"
  local load0 busy0 busy1 rc=0
  load0=$(loadavg)
  python3 test/bench/proc_sampler.py start "$work/sample" "$postmaster" "$VS_CAMPAIGN_SIM_PID" "$work/pid" &
  local sampler=$!
  sleep 0.2
  busy0=$(machine_busy)
  python3 test/bench/campaign_report.py procs "$postmaster" >"$work/$name.procs0"
  psql -X -d "$db" -v pidfile="$work/pid" "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  python3 test/bench/campaign_report.py procs "$postmaster" >"$work/$name.procs1"
  busy1=$(machine_busy)
  python3 test/bench/proc_sampler.py stop "$work/sample" >"$work/$name.sample"
  wait "$sampler"
  python3 - "$name" "$work/$name.out" "$work/$name.err" "$work/$name.sample" "$busy0" "$busy1" "$load0" \
      "$(loadavg)" "$rc" "$work/$name.procs0" "$work/$name.procs1" >>"$work/results.jsonl" <<'PY'
import json, sys
sys.path.insert(0, "test/bench")
from campaign_report import cpu_by_process
name, out, err, sample, busy0, busy1, load0, load1, rc, procs0, procs1 = sys.argv[1:12]
lines = [l for l in open(out).read().splitlines() if l.strip()]
r = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
s = json.loads(open(sample).read())
errors = [l for l in open(err).read().splitlines() if "ERROR:" in l]
print(json.dumps({"step": name, **r, "cluster_cpu_s": s["cluster_cpu_s"], "backend_cpu_s": s["backend_cpu_s"],
                  "sim_cpu_s": s["sim_cpu_s"], "machine_busy_s": round(float(busy1) - float(busy0), 2),
                  "errors": len(errors), "first_errors": errors[:5], "load_before": load0, "load_after": load1,
                  "rc": int(rc), "cpu_by_process": cpu_by_process(procs0, procs1, s["cluster_cpu_s"])}))
PY
  if [ "$rc" -ne 0 ]; then
    echo "campaign: step $name failed (psql exit $rc):" >&2
    tail -20 "$work/$name.err" >&2
    exit 1
  fi
}

posts=$VS_CAMPAIGN_POSTS
accounts=$VS_CAMPAIGN_ACCOUNTS
echo "== load before: $(loadavg) ($(nproc) cores); $(date -u +%FT%TZ)" >&2

createdb "$db"
q -d postgres -c "ALTER DATABASE $db SET vibescaling.api_base_url = '$sim'"
echo "== set-up: $accounts accounts, slots, drafts, the plan ($posts posts per account)" >&2
q -d "$db" -v posts="$posts" -v accounts="$accounts" -f test/bench/campaign_setup.sql >/dev/null
# The build CREATE EXTENSION read (campaign.sh compares it with the one the cluster preloaded).
sha256sum "$(pg_config --pkglibdir)/vibescaling.so" "$(pg_config --sharedir)"/extension/vibescaling[.-]* \
  >"$VS_CAMPAIGN_INSTALLED_AT_SETUP"
if [ -n "${VS_CAMPAIGN_PATCH:-}" ]; then
  # An experiment: SQL run as the superuser after the set-up (say, a
  # proposed CREATE OR REPLACE FUNCTION), so that the steps measure it.
  echo "== PATCHED with $VS_CAMPAIGN_PATCH: the figures are not the installed build's" >&2
  q -d "$db" -f "$VS_CAMPAIGN_PATCH" >/dev/null
fi
q -d "$db" -c 'SELECT json_build_object('"'"'shape'"'"', (SELECT row_to_json(s) FROM bench.shape s),
                        '"'"'slots_per_week'"'"', (SELECT count(*) FROM bench.slot_places),
                        '"'"'plan_days'"'"', (SELECT count(DISTINCT day) FROM bench.places))' >"$work/shape.json"
q -d "$db" -c 'CHECKPOINT' >/dev/null

# The scheduling paths, in the order a team would fill a campaign:
# evergreen posts, the campaign's posts to every account, then the queue
# into the gaps; then the expansion job's run (nothing left to schedule in
# its week: repeat_post scheduled it).
# add_to_queue: the first VS_CAMPAIGN_QUEUE_SAMPLE calls as the server runs
# them; the rest with JIT off in the session (planning next_free_slot's
# query JIT-compiles it at every call once the posts table is large: see
# docs/benchmarks.md), so that a full run does not take most of an hour.
queued=$(q -d "$db" -c 'SELECT count(*) FROM bench.queue_drafts')
sample=$VS_CAMPAIGN_QUEUE_SAMPLE
[ "$sample" -le "$queued" ] || sample=$queued
for phase in recur targets queue queue_jit_off expand; do
  echo "== scheduling: $phase ($(loadavg))" >&2
  case $phase in
    queue) measure schedule_queue "$db" -v phase=queue -v first=1 -v last="$sample" -v jit=default \
             -f test/bench/campaign_schedule.sql ;;
    queue_jit_off)
      if [ "$sample" -lt "$queued" ]; then
        measure schedule_queue_jit_off "$db" -v phase=queue -v first=$((sample + 1)) -v last="$queued" -v jit=off \
          -f test/bench/campaign_schedule.sql
      fi ;;
    *) measure "schedule_$phase" "$db" -v phase="$phase" -f test/bench/campaign_schedule.sql ;;
  esac
done
q -d "$db" -f test/bench/campaign_check_schedule.sql >"$work/schedule_check.json"
q -d "$db" -c 'VACUUM ANALYZE' >/dev/null

# The same posts by plain INSERTs, in a database of their own.
echo "== plain INSERTs of the same posts ($(loadavg))" >&2
createdb "$plain_db"
q -d "$plain_db" -v accounts="$accounts" -v per_account=0 -v tag=cb -f test/bench/node_worker/schema.sql >/dev/null
q -d "$db" >"$work/plain_body.sql" <<'SQL'
SELECT format('INSERT INTO worker.posts (account_id, caption, video_url, privacy_level, due_at) VALUES %s;',
              string_agg(format('(%s, %L, %L, %L, %L)', a.i, e.caption,
                                'https://verified.example/campaign.mp4',
                                CASE WHEN e.mode = 'inbox' THEN 'SELF_ONLY' ELSE 'PUBLIC_TO_EVERYONE' END, e.at),
                         ', ' ORDER BY a.i))
  FROM bench.expected e JOIN bench.accounts a ON a.id = e.account_id
 GROUP BY e.kind, e.n, CASE WHEN e.kind = 'rec' THEN e.day END
 ORDER BY min(e.at), e.kind, e.n;
SQL
q -d "$plain_db" -c 'CHECKPOINT' >/dev/null
measure plain "$plain_db" -v body="$work/plain_body.sql" -v calls="$(wc -l <"$work/plain_body.sql")" \
  -f test/bench/campaign_plain.sql
q -d "$plain_db" -c 'SELECT count(*) FROM worker.posts' >"$work/plain_rows"

# Dispatch: each day against a fresh simulator state (its caps count a
# rolling 24 hours, and the days are compressed into minutes), and at least
# 65 s after the last day's runs, so that no account's rate limit window
# still holds that day's calls.
days_done=""
last_end=0
for spec in $VS_CAMPAIGN_DAYS; do
  day=${spec%%:*}
  mode=${spec#*:}
  wait_s=$(( last_end + 65 - $(date +%s) ))
  if [ "$wait_s" -gt 0 ]; then sleep "$wait_s"; fi
  q -d "$db" -c 'SELECT bench.fresh_simulator()' >/dev/null
  q -d "$db" -c 'CHECKPOINT' >/dev/null
  since=$(q -d "$db" -c 'SELECT now()')
  echo "== dispatch: day $day, $mode ($(loadavg))" >&2
  measure "dispatch_day${day}_$mode" "$db" -v day="$day" -v mode="$mode" -v pace="$VS_CAMPAIGN_PACE" \
    -f test/bench/campaign_dispatch.sql
  last_end=$(date +%s)
  days_done=${days_done:+$days_done,}$day
  q -d "$db" -v day="$day" -v days="$days_done" -v since="$since" -f test/bench/campaign_check_day.sql \
    >"$work/day$day.db.json"
  curl -sf "$sim/_sim/requests" >"$work/day$day.requests.json"
  curl -sf "$sim/_sim/users" >"$work/day$day.users.json"
  curl -sf "$sim/_sim/publishes" >"$work/day$day.publishes.json"
  curl -sf "$sim/_sim/config" >"$work/day$day.config.json"
  python3 test/bench/campaign_report.py check-day "$day" "$mode" "$work" >>"$work/days.jsonl"
done

echo "== load after: $(loadavg); $(date -u +%FT%TZ)" >&2
python3 test/bench/campaign_report.py report "$work" ${VS_CAMPAIGN_PATCH:+"$VS_CAMPAIGN_PATCH"}
