#!/usr/bin/env bash
# Sets up this Debian machine and runs every vibescaling test:
#   1. GoogleTest unit tests of the Postgres-free C++ core (CMake/ctest)
#   2. the TikTok simulator's own tests
#   3. pg_regress (sql/, expected/) and pgTAP (test/*.sql) in a throwaway
#      PostgreSQL 15 cluster (pg_virtualenv) with pg_cron, against the simulator
#   4. the concurrency test (two dispatchers and manual publishes racing)
# Usage: scripts/test.sh      (as root or with sudo rights; CI runs exactly this)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== 1. core unit tests (GoogleTest)"
cmake -S . -B build/core -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/core -j2 >/dev/null
ctest --test-dir build/core --output-on-failure

echo "== 2. simulator tests"
python3 -m unittest sim.test_tiktok_sim 2>&1 | tail -n 3

echo "== 3. build and install the extension"
make -j2 >/dev/null
make install >/dev/null

export VS_SIM_PORT=${VS_SIM_PORT:-18443}
scripts/sim.sh start
trap 'scripts/sim.sh stop' EXIT

echo "== 4. database tests (pg_regress, pgTAP, concurrency) in a throwaway cluster"
pg_virtualenv -t \
  -o shared_preload_libraries=pg_cron \
  -o cron.database_name=contrib_regression \
  -o cron.use_background_workers=on \
  -o max_worker_processes=32 \
  scripts/test-in-cluster.sh
