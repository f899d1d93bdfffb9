#!/usr/bin/env bash
# The races, as isolation specs (test/isolation/specs/*.spec, their
# expected output in test/isolation/expected/): PostgreSQL's own
# isolationtester runs each permutation of steps across sessions and
# compares what they print. Run inside a cluster (scripts/pg-cluster.sh)
# with the extension installed and the simulator up (VS_SIM_PORT):
#   scripts/pg-cluster.sh vs_isolation test/isolation/run.sh
# Ends with "isolation: N passed, 0 failed". VS_ISOLATION_RESULTS=DIR keeps
# the outputs of a failed run there (a new spec's expected file starts so).
set -euo pipefail
cd "$(dirname "$0")/../.."

db=vs_isolation
sim="http://127.0.0.1:${VS_SIM_PORT:?set VS_SIM_PORT to the simulator port}"
regress=$(dirname "$(pg_config --pgxs)")/../test/isolation/pg_isolation_regress
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The database the specs share: the extension, the test fixtures, the simulator.
export PGOPTIONS="-c client_min_messages=warning"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION vibescaling CASCADE" \
     -c "ALTER DATABASE $db SET vibescaling.api_base_url TO '$sim'" >/dev/null
PGOPTIONS="$PGOPTIONS -c vibescaling.api_base_url=$sim" psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f test/fixtures/setup.sql >/dev/null

specs=$(cd test/isolation/specs && ls *.spec | sed 's/\.spec$//' | sort)
n=$(echo "$specs" | wc -w)
# Its own report stays in $out (its "All N tests passed" would be taken for
# pg_regress's by scripts/test.sh's count).
# A spec passes only on its own "... ok" line: pg_isolation_regress exits 0
# when a diff cannot even run (a spec without an expected file).
status=0
"$regress" --use-existing --dbname="$db" --inputdir=test/isolation --outputdir="$out" $specs \
  >"$out/run.log" 2>&1 || status=$?
passed=$(grep -cE '^(test|ok) +[A-Za-z0-9_]+ +\.\.\. ok ' "$out/run.log" || true)
if [ "$status" -eq 0 ] && [ "$passed" -eq "$n" ]; then
  sed -n 's/^\(test\|ok\) .*/  &/p' "$out/run.log"
  echo "isolation: $n passed, 0 failed"
else
  cat "$out/run.log"
  cat "$out/regression.diffs" 2>/dev/null | head -n 200
  if [ -n "${VS_ISOLATION_RESULTS:-}" ]; then
    mkdir -p "$VS_ISOLATION_RESULTS" && cp "$out"/results/*.out "$VS_ISOLATION_RESULTS"/
  fi
  echo "isolation: $passed passed, $((n - passed)) failed"
  exit 1
fi
