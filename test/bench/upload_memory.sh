#!/usr/bin/env bash
# Upload memory benchmark: publishes a video of SIZE_MB (default 1024) from a
# large object through FILE_UPLOAD to the simulator, sampling the backend's
# private memory (RssAnon in /proc/PID/status) every 20 ms. Prints the
# baseline, the peak, the rise, the chunk size and the upload rate.
#   test/bench/upload_memory.sh [SIZE_MB] [CHUNK_MB]
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mb=${1:-1024}
chunk_mb=${2:-10}

scripts/install-deps.sh >/dev/null
make -j2 >/dev/null
make install >/dev/null

export VS_SIM_PORT=${VS_BENCH_SIM_PORT:-18446}
VS_SIM_ARGS="--no-rate-limits --quiet" VS_SIM_STATE=/tmp/vibescaling-membench-sim scripts/sim.sh start
trap 'VS_SIM_STATE=/tmp/vibescaling-membench-sim scripts/sim.sh stop' EXIT

scripts/pg-cluster.sh vs_membench sh -c "createdb vs_membench && test/bench/upload_memory_in_cluster.sh $size_mb $chunk_mb"
