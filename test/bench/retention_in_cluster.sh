#!/usr/bin/env bash
# The retention benchmark (test/bench/retention.sh) inside its throwaway
# cluster: the same measurements in a database whose dispatch log is empty
# and in one that holds VS_RET_ROWS rows of history, then the retention job
# run beside a dispatch in the full one.
set -euo pipefail
cd "$(dirname "$0")/../.."
sim="http://127.0.0.1:$VS_SIM_PORT"
postmaster=$(head -1 "$(psql -XAtq -d postgres -c 'SHOW data_directory')/postmaster.pid")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

# Sets the simulator's latency per call (ms).
sim_latency() {
  curl -sf -X POST -H 'Content-Type: application/json' -d "{\"latency_ms\": $1}" "$sim/_sim/config" >/dev/null
}

# Publishes VS_RET_PUBLISHES drafts one by one (test/bench/publish_bench.sql);
# prints "median_ms p95_ms backend_cpu_ms_per_publish".
publish_cost() {
  q -d "$1" -P format=unaligned -v n="$VS_RET_PUBLISHES" -v sim_url="$sim" -f test/bench/publish_bench.sql \
    | tail -n 1 | awk -F'|' '{ print $2, $3, $6 }'
}

# Schedules N due posts (one per account) and times one dispatcher run with
# concurrency C; prints the run's JSON: wall, cluster CPU per post.
burst() {
  local db=$1 n=$2 conc=$3 tag=$4
  q -d "$db" -v accounts="$n" -v per_account=1 -v tag="$tag" -f test/bench/burst_setup.sql >/dev/null
  rm -f "$work/pid" "$work/sample" "$work/sample.stop"
  python3 test/bench/proc_sampler.py start "$work/sample" "$postmaster" "$VS_BURST_SIM_PID" "$work/pid" &
  local sampler=$!
  sleep 0.2
  local wall wal0
  wal0=$(q -d "$db" -c "SELECT pg_current_wal_lsn()")
  wall=$(q -d "$db" -v concurrency="$conc" -v pidfile="$work/pid" -f test/bench/retention_burst.sql)
  local sample
  sample=$(python3 test/bench/proc_sampler.py stop "$work/sample")
  wait "$sampler"
  local wal
  wal=$(q -d "$db" -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal0')")
  local posted
  posted=$(q -d "$db" -c "SELECT count(*) FROM vibescaling.posts WHERE caption LIKE 'burst %' AND status = 'posted'
                           AND tiktok_account_id IN (SELECT id FROM vibescaling.tiktok_accounts WHERE open_id LIKE '$tag-%')")
  python3 -c "
import json, sys
s = json.loads(sys.argv[1]); n = int(sys.argv[2]); wall = float(sys.argv[3])
print(json.dumps({'posts': n, 'posted': int(sys.argv[4]), 'wall_s': wall, 'posts_per_s': round(n / wall, 1),
                  'cluster_cpu_ms_per_post': round(1000 * s['cluster_cpu_s'] / n, 3),
                  'backend_cpu_ms_per_post': round(1000 * s['backend_cpu_s'] / n, 3),
                  'wal_kb_per_post': round(float(sys.argv[5]) / 1024 / n, 2)}))" "$sample" "$n" "$wall" "$posted" "$wal"
}

# The fresh database of one scenario; fills its log with ROWS rows over the
# 88 days before UPTO (an SQL timestamptz expression).
prepare() {
  local db=$1 rows=$2 upto=${3:-now()}
  createdb "$db"
  q -d "$db" -c "ALTER DATABASE $db SET vibescaling.api_base_url = '$sim'" \
             -c "CREATE EXTENSION vibescaling CASCADE" -c "CALL vibescaling.maintain_logs()" >/dev/null 2>&1
  if [ "$rows" -gt 0 ]; then
    local t0=$SECONDS
    echo "   filling $db: $(q -d "$db" -F' ' -P format=unaligned -v rows="$rows" -v upto="$(q -d "$db" -c "SELECT $upto")" \
                           -f test/bench/retention_fill.sql | tail -n 1)" \
         "(log rows, size, partitions) in $((SECONDS - t0)) s"
  fi
}

# The databases first, then the measurements alternating between them
# (three rounds), so that the machine's drift falls on all alike. Each
# measurement starts after a CHECKPOINT, as a steady state would: the first
# change of a page after one writes the whole page to the WAL.
# Three logs: empty; VS_RET_ROWS rows of history before this week (this
# week's partition empty, as in the empty log); the same up to now (this
# week's partition holding its share, about 3.5 days' worth on a Thursday).
echo "== preparing: an empty dispatch log, and two with $VS_RET_ROWS rows of history"
prepare vs_ret_empty 0
prepare vs_ret_history "$VS_RET_ROWS" "vibescaling._log_week(now())"
prepare vs_ret_full "$VS_RET_ROWS"
for db in vs_ret_empty vs_ret_history vs_ret_full; do q -d "$db" -c "VACUUM ANALYZE" >/dev/null; done
results=$work/results
for round in 1 2 3; do
  for scenario in empty history full; do
    db=vs_ret_$scenario
    sim_latency 0
    q -d "$db" -c "CHECKPOINT" >/dev/null
    read -r median p95 cpu < <(publish_cost "$db")
    echo "   round $round, $scenario log: publish_post x $VS_RET_PUBLISHES, 0 ms TikTok: median $median ms, p95 $p95 ms, backend CPU $cpu ms per publish"
    q -d "$db" -c "CHECKPOINT" >/dev/null
    b=$(burst "$db" "$VS_RET_BURST" 512 "b$scenario$round$RANDOM")
    echo "   round $round, $scenario log: dispatch burst, $VS_RET_BURST posts, 0 ms TikTok: $b"
    echo "$scenario $median $cpu $(echo "$b" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["cluster_cpu_ms_per_post"], j["backend_cpu_ms_per_post"], j["wal_kb_per_post"])')" >>"$results"
  done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, *vals = line.split()
    rows.setdefault(name, []).append([float(v) for v in vals])
med = {k: [statistics.median(col) for col in zip(*v)] for k, v in rows.items()}
names = ["publish_post median (ms)", "backend CPU per publish (ms)", "burst database CPU per post (ms)",
         "burst backend CPU per post (ms)", "burst WAL per post (kB)"]
print("== medians of the three rounds: empty | history before this week (ratio to empty) | history up to now (ratio)")
for i, n in enumerate(names):
    e, h, f = med["empty"][i], med["history"][i], med["full"][i]
    print(f"   {n}: {e:.3f} | {h:.3f} ({h / e:.3f}) | {f:.3f} ({f / e:.3f})")
PY

# The retention job beside a dispatch: a retention of 60 days makes the
# oldest weeks of the full log (about a third of it) expire. A control
# dispatch first; then the same with maintain_logs started 1 s into it,
# every lock wait sampled until both are done.
db=vs_ret_full
sim_latency 250
echo "== retention job beside a dispatch (250 ms TikTok, $VS_RET_BURST posts, concurrency 64)"
echo "   control dispatch, no retention job: $(burst "$db" "$VS_RET_BURST" 64 "c$RANDOM")"
q -d "$db" -v accounts="$VS_RET_BURST" -v per_account=1 -v tag="r$RANDOM" -f test/bench/burst_setup.sql >/dev/null
logs() {
  q -d "$db" -c "SELECT count(*) || ' rows in ' || (SELECT count(*) FROM vibescaling.log_partitions WHERE log = 'vibescaling.dispatch_logs'::regclass)
                        || ' partitions, ' || (SELECT pg_size_pretty(sum(pg_total_relation_size(partition))) FROM vibescaling.log_partitions
                                                 WHERE log = 'vibescaling.dispatch_logs'::regclass)
                   FROM vibescaling.dispatch_logs"
}
before=$(logs)
PGAPPNAME=bench-active q -d "$db" -v concurrency=64 -v pidfile="$work/pid2" -f test/bench/retention_burst.sql >"$work/dispatch_wall" &
dispatch_pid=$!
q -d "$db" -f test/bench/retention_lock_waits.sql >"$work/waits" &
waits_pid=$!
sleep 1
t0=$SECONDS
PGAPPNAME=bench-active PGOPTIONS='-c vibescaling.log_retention=60days' \
  q -d "$db" -c "CALL vibescaling.maintain_logs()" 2>"$work/maintain" &
maintain_pid=$!
wait "$dispatch_pid"
dispatch_done=$((SECONDS - t0 + 1))
wait "$maintain_pid"
maintain_s=$((SECONDS - t0))
wait "$waits_pid"
echo "   dispatch with the retention job beside it: wall $(cat "$work/dispatch_wall") s (it ended ${dispatch_done} s after it started)"
echo "   retention job: ${maintain_s} s from its start; $(sed -n 's/.*NOTICE: *//p' "$work/maintain")"
echo "   log before: $before; after: $(logs)"
echo "   the 1,000 old rows of open posts, kept in the default partition: $(q -d "$db" -c "SELECT count(*) FROM vibescaling.dispatch_logs_default WHERE publish_id LIKE 'v_pub_kept_%'")"
echo "   lock waits while they ran (5 ms samples): $(cat "$work/waits")"
