#!/usr/bin/env bash
# What a DBA does with a release, one command: dump and restore
# (dump_restore.sh), and a streaming standby with a failover
# (replica.sh), each in a throwaway cluster of its own, against the
# simulator. (The upgrade path is test/upgrade/run.sh.)
#   test/release/run.sh        (after make install; scripts/test.sh runs it)
# Ends with "release: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
export VS_SIM_PORT=${VS_SIM_PORT:-18443}
if [ "$(scripts/sim.sh ensure)" = started ]; then
  trap 'scripts/sim.sh stop >/dev/null' EXIT
fi

. test/lib/check.sh
log=$(mktemp)
for t in dump_restore replica; do
  echo "-- $t"
  scripts/pg-cluster.sh "vs_$t" test/release/$t.sh 2>&1 | tee "$log" | grep -E '^(ok|not ok|#|[a-z_]+: [0-9]+ passed)'
  add_suite_result "$t" "$log"
done
rm -f "$log"
finish_checks release
