#!/usr/bin/env bash
# Dispatch burst benchmark: one command. Builds and installs the extension,
# starts the TikTok simulator (its rate limits on) and a throwaway cluster,
# and times one dispatcher run (CALL vibescaling.dispatch_due_posts()) over
# posts that are all due at once, in four scenarios, each in a fresh database:
#   burst      10,000 accounts x 1 post, 250 ms per TikTok call, concurrency C
#   per-token   2,000 accounts x 5 posts, 250 ms, concurrency C
#   baseline      100 accounts x 1 post, 250 ms, concurrency 1
#   in-db      10,000 accounts x 1 post,   0 ms, concurrency C
# For each it prints wall time, posts/s, the database's CPU (every process of
# the cluster: the dispatching backend, the log writer workers, WAL, ...) per
# 1,000 posts and per post, the backend's own CPU, its peak private memory
# (RssAnon), calls per post, connections opened, and the simulator's CPU.
#   test/bench/dispatch_burst.sh [C] [BURST_POSTS] [BASELINE_POSTS]   (defaults 512, 10000, 100)
set -euo pipefail
cd "$(dirname "$0")/../.."
conc=${1:-512}
burst=${2:-10000}
baseline=${3:-100}

scripts/install-deps.sh >/dev/null
make -j2 >/dev/null
make install >/dev/null

export VS_SIM_PORT=${VS_BENCH_SIM_PORT:-18447}
export VS_SIM_STATE=/tmp/vibescaling-burst-sim
VS_SIM_ARGS="--quiet --latency-ms 250" scripts/sim.sh start
trap 'scripts/sim.sh stop' EXIT

export VS_BURST_CONC=$conc VS_BURST_POSTS=$burst VS_BURST_BASELINE=$baseline
export VS_BURST_SIM_PID
VS_BURST_SIM_PID=$(cat "$VS_SIM_STATE.pid")
scripts/pg-cluster.sh vs_burst test/bench/dispatch_burst_in_cluster.sh
