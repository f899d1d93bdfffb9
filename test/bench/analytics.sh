#!/usr/bin/env bash
# Analytics page benchmark, one command: a throwaway cluster whose dispatch
# log holds ROWS rows over 30 days (50 tenants, 500 accounts; analytics_fill.sql),
# the API stack (nginx -> PostgREST -> the database), then the requests the
# Analytics page makes, timed through nginx with curl, RUNS times each
# (median and max), as the page makes them: /rpc/analytics for a tenant and for the operator over
# 24 hours, 7 and 30 days, and pages of the dispatch history. Also the
# first roll-up of the whole log, and one analytics call over raw rows only
# (no rollup), to show what the rollups save.
#   test/bench/analytics.sh [ROWS] [RUNS]     (defaults 10000000, 7)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-deps.sh >/dev/null
make -j2 >/dev/null
make install >/dev/null
export VS_BENCH_ROWS=${1:-10000000} VS_BENCH_RUNS=${2:-7}
scripts/pg-cluster.sh vs_bench -o shared_buffers=2GB -o max_wal_size=8GB test/bench/analytics_in_cluster.sh
