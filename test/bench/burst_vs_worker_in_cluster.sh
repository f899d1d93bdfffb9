#!/usr/bin/env bash
# The runs of test/bench/burst_vs_worker.sh, inside its throwaway cluster:
# for each concurrency C, vibescaling then the Node worker, each in a fresh
# database with a fresh stand-in (so that its access log holds that run's
# requests only). Each run's figures go to a JSON line; a table ends it.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=$VS_STANDIN_PORT
api="http://127.0.0.1:$port"
postmaster=$(head -1 "$(psql -XAtq -d postgres -c 'SHOW data_directory')/postmaster.pid")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints the machine's busy CPU seconds so far (all cores, /proc/stat): around a
# run it shows how much CPU anything else on the machine took meanwhile.
machine_busy() {
  awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { print ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit }' /proc/stat
}

# Starts the sampler of the cluster's CPU (and the stand-in's) in the background.
sampler_start() {
  rm -f "$work/pid" "$work/sample" "$work/sample.stop"
  python3 test/bench/proc_sampler.py start "$work/sample" "$postmaster" "$1" "$work/pid" &
  sampler=$!
  sleep 0.2
  busy0=$(machine_busy)
}

# Stops the sampler; prints its JSON with the machine's busy CPU added.
sampler_stop() {
  local busy1
  busy1=$(machine_busy)
  python3 test/bench/proc_sampler.py stop "$work/sample" |
    python3 -c 'import json, sys; d = json.load(sys.stdin); d["machine_busy_s"] = round(float(sys.argv[2]) - float(sys.argv[1]), 2); print(json.dumps(d))' "$busy0" "$busy1"
  wait "$sampler"
}

# Creates database $1 for a run, pointed at the stand-in.
fresh_db() {
  createdb "$1"
  psql -X -d "$1" -c "ALTER DATABASE $1 SET vibescaling.api_base_url = '$api'" >/dev/null
}

# Runs vibescaling's dispatcher at concurrency $1; appends its JSON line to results.
run_vibescaling() {
  local conc=$1 db="vs_bvw_ext_$1"
  fresh_db "$db"
  psql -X -d "$db" -v accounts="$VS_BVW_POSTS" -v per_account=1 -v tag="ext$conc$RANDOM" \
       -f test/bench/burst_setup.sql >/dev/null
  local version
  version=$(psql -XAtq -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'vibescaling'")
  psql -XAtq -d "$db" -c 'CHECKPOINT' >/dev/null
  local standin_pid
  standin_pid=$(test/bench/standin/standin.sh start "$port" "$VS_BVW_LATENCY_MS")
  sampler_start "$standin_pid"
  psql -X -d "$db" -v concurrency="$conc" -v pidfile="$work/pid" -f test/bench/burst_vs_worker_dispatch.sql \
       >"$work/result"
  sampler_stop >"$work/sample.json"
  test/bench/standin/standin.sh stop "$port"
  test/bench/standin/standin.sh counts "$port" >"$work/counts.json"
  psql -XAtq -d "$db" >"$work/db.json" <<'SQL'
SELECT json_build_object(
    'posts', (SELECT count(*) FROM vibescaling.posts),
    'posted', (SELECT count(*) FROM vibescaling.posts WHERE status = 'posted'),
    'not_posted', (SELECT json_object_agg(s, n) FROM (SELECT status || coalesce(': ' || left(last_error, 120), '') s,
                                                              count(*) n
                                                         FROM vibescaling.posts WHERE status <> 'posted' GROUP BY 1) x),
    'publish_records', (SELECT count(*) FROM vibescaling.publish_records),
    'log_rows', (SELECT count(*) FROM vibescaling.dispatch_logs),
    'log_rows_by_endpoint', (SELECT json_object_agg(endpoint || '/' || outcome, n)
                               FROM (SELECT endpoint, outcome, count(*) n FROM vibescaling.dispatch_logs GROUP BY 1, 2) x));
SQL
  python3 - "$conc" "$version" "$work/result" "$work/sample.json" "$work/counts.json" "$work/db.json" \
      >>"$work/results.jsonl" <<'PY'
import json, sys
conc, version, result, sample, counts, dbf = sys.argv[1:7]
r = json.loads(open(result).read().strip().splitlines()[-1])
s = json.loads(open(sample).read())
c = json.loads(open(counts).read())
d = json.loads(open(dbf).read())
print(json.dumps({"who": f"vibescaling {version}", "conc": int(conc), "posts": d["posts"], "posted": d["posted"],
                  "not_posted": d["not_posted"], "wall_s": r["wall_s"], "cluster_cpu_s": s["cluster_cpu_s"],
                  "backend_cpu_s": s["backend_cpu_s"], "app_cpu_s": None, "standin_cpu_s": s["sim_cpu_s"],
                  "standin": c, "log_rows": d["log_rows"], "log_rows_by_endpoint": d["log_rows_by_endpoint"],
                  "publish_records": d["publish_records"], "machine_busy_s": s["machine_busy_s"], "app_total_cpu_s": 0}))
PY
  dropdb "$db"
}

# Runs the Node worker at concurrency $1; appends its JSON line to results.
run_node() {
  local conc=$1 db="vs_bvw_node_$1"
  fresh_db "$db"
  psql -X -d "$db" -v accounts="$VS_BVW_POSTS" -v per_account=1 -v tag="node$conc$RANDOM" \
       -f test/bench/node_worker/schema.sql >/dev/null
  psql -XAtq -d "$db" -c 'CHECKPOINT' >/dev/null
  local standin_pid
  standin_pid=$(test/bench/standin/standin.sh start "$port" "$VS_BVW_LATENCY_MS")
  sampler_start "$standin_pid"
  PGDATABASE=$db node test/bench/node_worker/worker.js --api-base "$api" --concurrency "$conc" \
      --pidfile "$work/pid" >"$work/result"
  sampler_stop >"$work/sample.json"
  test/bench/standin/standin.sh stop "$port"
  test/bench/standin/standin.sh counts "$port" >"$work/counts.json"
  psql -XAtq -d "$db" >"$work/db.json" <<'SQL'
SELECT json_build_object(
    'posts', (SELECT count(*) FROM worker.posts),
    'posted', (SELECT count(*) FROM worker.posts WHERE status = 'posted' AND posted_at IS NOT NULL),
    'not_posted', (SELECT json_object_agg(s, n) FROM (SELECT status || coalesce(': ' || left(last_error, 120), '') s,
                                                              count(*) n
                                                         FROM worker.posts WHERE status <> 'posted' GROUP BY 1) x),
    'publish_records', (SELECT count(*) FROM worker.publish_records),
    'log_rows', (SELECT count(*) FROM worker.call_log),
    'log_rows_by_endpoint', (SELECT json_object_agg(endpoint || '/' || outcome, n)
                               FROM (SELECT endpoint, outcome, count(*) n FROM worker.call_log GROUP BY 1, 2) x));
SQL
  python3 - "$conc" "$work/result" "$work/sample.json" "$work/counts.json" "$work/db.json" >>"$work/results.jsonl" <<'PY'
import json, sys
conc, result, sample, counts, dbf = sys.argv[1:6]
r = json.loads(open(result).read().strip().splitlines()[-1])
s = json.loads(open(sample).read())
c = json.loads(open(counts).read())
d = json.loads(open(dbf).read())
print(json.dumps({"who": "Node worker", "conc": int(conc), "posts": d["posts"], "posted": d["posted"],
                  "not_posted": d["not_posted"], "wall_s": r["wall_s"], "cluster_cpu_s": s["cluster_cpu_s"],
                  "backend_cpu_s": s["backend_cpu_s"], "app_cpu_s": round(r["cpu_user_s"] + r["cpu_sys_s"], 3),
                  "standin_cpu_s": s["sim_cpu_s"], "standin": c, "log_rows": d["log_rows"],
                  "log_rows_by_endpoint": d["log_rows_by_endpoint"], "publish_records": d["publish_records"],
                  "batches": r["batches"], "machine_busy_s": s["machine_busy_s"],
                  "app_total_cpu_s": r["cpu_process_total_s"]}))
PY
  dropdb "$db"
}

for conc in $VS_BVW_CONCURRENCIES; do
  # The extension's own ceiling for max_concurrent_requests (src/pg/gucs.cpp):
  # above it the run is reported as impossible, not run at a lower value.
  max=$(psql -XAtq -d postgres -c "SELECT max_val FROM pg_settings WHERE name = 'vibescaling.max_concurrent_requests'")
  if [ "$conc" -gt "$max" ]; then
    echo "{\"who\": \"vibescaling\", \"conc\": $conc, \"skipped\": \"max_concurrent_requests is at most $max\"}" >>"$work/results.jsonl"
  else
    echo "== vibescaling, C = $conc, $VS_BVW_POSTS posts" >&2
    run_vibescaling "$conc"
  fi
  echo "== Node worker, C = $conc, $VS_BVW_POSTS posts" >&2
  run_node "$conc"
done

python3 - "$work/results.jsonl" "$VS_BVW_LATENCY_MS" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
latency = int(sys.argv[2]) / 1000
print()
print("| dispatcher | C | posts | wall | limit ceil(N/C) x 2 x latency | wall / limit | database CPU per post"
      " | Node CPU per post | stand-in requests (calls per post) | log rows | posts posted |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
ok = True
for r in rows:
    if "skipped" in r:
        print(f"| {r['who']} | {r['conc']} | - | not run: {r['skipped']} | | | | | | | |")
        continue
    n = r["posts"]
    limit = math.ceil(n / r["conc"]) * 2 * latency
    app = "-" if r["app_cpu_s"] is None else f"{1000 * r['app_cpu_s'] / n:.3f} ms"
    total = r["standin"]["total"]
    print(f"| {r['who']} | {r['conc']} | {n} | {r['wall_s']:.2f} s | {limit:.2f} s | {r['wall_s'] / limit:.2f}"
          f" | {1000 * r['cluster_cpu_s'] / n:.3f} ms | {app} | {total} ({total / n:.2f}) | {r['log_rows']}"
          f" | {r['posted']} / {n} |")
print()
for r in rows:
    if "skipped" in r:
        continue
    n = r["posts"]
    print(f"{r['who']}, C = {r['conc']}:")
    print(f"  stand-in: {json.dumps(r['standin'])}; its CPU {r['standin_cpu_s']:.2f} s")
    print(f"  log rows by endpoint/outcome: {json.dumps(r['log_rows_by_endpoint'])}")
    extra = f"; Node process CPU {r['app_cpu_s']:.2f} s, {r['batches']} batches" if r["app_cpu_s"] is not None else ""
    print(f"  database CPU {r['cluster_cpu_s']:.2f} s (its backend {r['backend_cpu_s']:.2f} s){extra}")
    other = r["machine_busy_s"] - r["cluster_cpu_s"] - r["standin_cpu_s"] - r["app_total_cpu_s"]
    print(f"  machine CPU busy during the run {r['machine_busy_s']:.2f} s, of which outside the cluster, the"
          f" stand-in{' and Node' if r['app_cpu_s'] is not None else ''} {other:.2f} s"
          f" (psql, the sampler, anything else on the machine)")
    checks = {"all posts posted": r["posted"] == n,
              "stand-in requests == log rows": r["standin"]["total"] == r["log_rows"],
              "stand-in answered 200 to all": not r["standin"]["not_200"]}
    if "publish_records" in r:
        checks["a publish record per post"] = r["publish_records"] == n
    for name, good in checks.items():
        print(f"  check {name}: {'ok' if good else 'FAILED'}")
        ok = ok and good
    if r["not_posted"]:
        print(f"  not posted: {json.dumps(r['not_posted'])}")
sys.exit(0 if ok else 1)
PY
