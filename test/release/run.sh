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
started_sim=no
if ! curl -sf "http://127.0.0.1:$VS_SIM_PORT/_sim/health" >/dev/null 2>&1; then
  scripts/sim.sh start >/dev/null
  started_sim=yes
fi
trap '[ "$started_sim" = yes ] && scripts/sim.sh stop >/dev/null' EXIT

passed=0
failed=0
log=$(mktemp)
for t in dump_restore replica; do
  echo "-- $t"
  scripts/pg-cluster.sh "vs_$t" test/release/$t.sh 2>&1 | tee "$log" | grep -E '^(ok|not ok|#|[a-z_]+: [0-9]+ passed)'
  line=$(grep -E "^$t: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
  p=$(echo "$line" | grep -oP '[0-9]+(?= passed)' || echo 0)
  f=$(echo "$line" | grep -oP '[0-9]+(?= failed)' || echo 1)
  [ -n "$line" ] || f=1
  passed=$((passed + p)); failed=$((failed + f))
done
rm -f "$log"
echo "release: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
