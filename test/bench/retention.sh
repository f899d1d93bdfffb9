#!/usr/bin/env bash
# Retention benchmark: one command. Builds and installs the extension,
# starts a simulator without rate limits and a throwaway cluster
# (shared_buffers 2GB), and measures, in a database whose dispatch log is
# empty and in one holding ROWS rows of history (88 days, weekly
# partitions), alternating between them for three rounds: single
# publish_post cost (median, p95, backend CPU) and a dispatch burst's
# database CPU per post; it prints the rounds' medians and their ratios.
# Then, in the full one, it runs the retention job (maintain_logs with a
# 60-day retention: a third of the log expires) beside a dispatch at 250 ms
# per TikTok call, and reports the job's time, what it dropped and kept,
# and every lock wait while both ran.
#   test/bench/retention.sh [ROWS] [PUBLISHES] [BURST_POSTS]   (defaults 10000000, 300, 2000)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-deps.sh >/dev/null
make -j2 >/dev/null
make install >/dev/null

export VS_SIM_PORT=${VS_BENCH_SIM_PORT:-18449}
export VS_SIM_STATE=/tmp/vibescaling-retention-sim
VS_SIM_ARGS="--no-rate-limits --quiet" scripts/sim.sh start
trap 'scripts/sim.sh stop' EXIT
export VS_RET_ROWS=${1:-10000000} VS_RET_PUBLISHES=${2:-300} VS_RET_BURST=${3:-2000}
export VS_BURST_SIM_PID
VS_BURST_SIM_PID=$(cat "$VS_SIM_STATE.pid")
scripts/pg-cluster.sh vs_ret -o shared_buffers=2GB -o max_wal_size=8GB test/bench/retention_in_cluster.sh
