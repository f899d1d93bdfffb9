#!/usr/bin/env bash
# The upgrade path, one command: installs the frozen 0.1.0 with data in a
# throwaway cluster, runs ALTER EXTENSION vibescaling UPDATE, and checks
# that every row is still there, tokens still decrypt, a post scheduled
# before the upgrade is dispatched after it, and the upgraded schema is
# the same as a fresh install's (pg_dump -s of both, compared).
#   test/upgrade/run.sh        (after make install; scripts/test.sh runs it)
# Ends with "upgrade: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
export VS_SIM_PORT=${VS_SIM_PORT:-18443}
if [ "$(scripts/sim.sh ensure)" = started ]; then
  trap 'scripts/sim.sh stop >/dev/null' EXIT
fi
scripts/pg-cluster.sh vs_upgraded test/upgrade/in_cluster.sh
