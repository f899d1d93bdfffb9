#!/usr/bin/env bash
# The scenarios of test/bench/dispatch_burst.sh, inside its throwaway cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
sim="http://127.0.0.1:$VS_SIM_PORT"
postmaster=$(head -1 "$(psql -XAtq -d postgres -c 'SHOW data_directory')/postmaster.pid")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Sets the simulator's latency per call (ms).
sim_latency() {
  curl -sf -X POST -H 'Content-Type: application/json' -d "{\"latency_ms\": $1}" "$sim/_sim/config" >/dev/null
}

# Runs one scenario: NAME ACCOUNTS PER_ACCOUNT CONCURRENCY LATENCY_MS
scenario() {
  local name=$1 accounts=$2 per=$3 conc=$4 latency=$5 db="vs_burst_$1"
  createdb "$db"
  psql -X -d "$db" -c "ALTER DATABASE $db SET vibescaling.api_base_url = '$sim'" >/dev/null
  sim_latency 0
  psql -X -d "$db" -v accounts="$accounts" -v per_account="$per" -v tag="$name$RANDOM" \
       -f test/bench/burst_setup.sql >/dev/null
  sim_latency "$latency"
  rm -f "$work/pid" "$work/sample" "$work/sample.stop"
  python3 test/bench/proc_sampler.py start "$work/sample" "$postmaster" "$VS_BURST_SIM_PID" "$work/pid" &
  local sampler=$!
  sleep 0.2
  psql -X -d "$db" -v concurrency="$conc" -v pidfile="$work/pid" -f test/bench/burst_dispatch.sql >"$work/result"
  local sample
  sample=$(python3 test/bench/proc_sampler.py stop "$work/sample")
  wait "$sampler"
  python3 - "$name" "$accounts" "$per" "$conc" "$latency" "$work/result" "$sample" <<'PY'
import json, sys
name, accounts, per, conc, latency, result_file, sample = sys.argv[1:8]
r = json.loads(open(result_file).read().strip().splitlines()[-1])
s = json.loads(sample)
posts = r["posts"]
calls = sum(v for k, v in r["log_rows_by_endpoint"].items())
print(f"== {name}: {accounts} accounts x {per} post(s), {latency} ms per call, max_concurrent_requests {conc}")
print(f"   wall {r['wall_s']:.2f} s   {posts / r['wall_s']:.1f} posts/s   posted {r['posted']}/{posts}")
if r["not_posted"]:
    print(f"   not posted: {json.dumps(r['not_posted'])}")
print(f"   database CPU {s['cluster_cpu_s']:.2f} s = {1000 * s['cluster_cpu_s'] / posts:.3f} ms/post"
      f" ({s['cluster_cpu_s'] * 1000 / posts:.2f} s per 1,000 posts); dispatching backend alone"
      f" {s['backend_cpu_s']:.2f} s = {1000 * s['backend_cpu_s'] / posts:.3f} ms/post")
print(f"   backend private memory (RssAnon) {s['backend_rss_anon_base_kb'] / 1024:.1f} MB at start,"
      f" peak {s['backend_rss_anon_peak_kb'] / 1024:.1f} MB")
print(f"   calls per post {calls / posts:.2f} ({json.dumps(r['log_rows_by_endpoint'])});"
      f" connections opened {r['pool']['connections_opened']} for {r['pool']['transfers']} transfers")
print(f"   most inits by one account within 60 s: {r['max_inits_per_account_60s']} (TikTok allows 6);"
      f" simulator CPU {s['sim_cpu_s']:.2f} s")
print("   json " + json.dumps({"name": name, "posts": posts, "wall_s": r["wall_s"], "posted": r["posted"],
                              "cluster_cpu_s": s["cluster_cpu_s"], "backend_cpu_s": s["backend_cpu_s"],
                              "rss_peak_kb": s["backend_rss_anon_peak_kb"], "calls": calls,
                              "connections": r["pool"]["connections_opened"], "sim_cpu_s": s["sim_cpu_s"]}))
PY
  dropdb "$db"
}

scenario burst "$VS_BURST_POSTS" 1 "$VS_BURST_CONC" 250 | tee "$work/burst.txt"
scenario per_token $((VS_BURST_POSTS / 5)) 5 "$VS_BURST_CONC" 250
scenario baseline "$VS_BURST_BASELINE" 1 1 250 | tee "$work/baseline.txt"
scenario in_db "$VS_BURST_POSTS" 1 "$VS_BURST_CONC" 0
python3 - "$work/burst.txt" "$work/baseline.txt" <<'PY'
import json, sys
def rate(path):
    j = json.loads([l for l in open(path) if l.strip().startswith("json ")][0].strip()[5:])
    return j["posted"] / j["wall_s"]
b, c1 = rate(sys.argv[1]), rate(sys.argv[2])
print(f"== burst rate / concurrency-1 rate: {b:.1f} / {c1:.2f} posts/s = {b / c1:.0f}x")
PY
