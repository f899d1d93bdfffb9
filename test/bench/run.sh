#!/usr/bin/env bash
# Publish benchmark: one command. Builds and installs the extension, starts
# a simulator without rate limits and a throwaway cluster, publishes N
# drafts one by one (default 300) and prints median / p95 wall time per
# publish_post, the HTTP part, the in-database rest (row locks, checks,
# four durable dispatch_logs writes through the log-writer background
# worker: creator_info's and the init's "in flight" rows and outcomes) and
# the backend's CPU per publish.
#   test/bench/run.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-300}

scripts/install-deps.sh >/dev/null
make -j2 >/dev/null
make install >/dev/null

export VS_SIM_PORT=${VS_BENCH_SIM_PORT:-18445}
VS_SIM_ARGS="--no-rate-limits --quiet" VS_SIM_STATE=/tmp/vibescaling-bench-sim scripts/sim.sh start
trap 'VS_SIM_STATE=/tmp/vibescaling-bench-sim scripts/sim.sh stop' EXIT

scripts/pg-cluster.sh vs_bench sh -c "createdb vs_bench && psql -X -d vs_bench -v n=$n -v sim_url=http://127.0.0.1:$VS_SIM_PORT -f test/bench/publish_bench.sql"
