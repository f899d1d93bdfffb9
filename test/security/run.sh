#!/usr/bin/env bash
# The security suite, one command: each test plays an attacker against the
# extension (docs/security.md has the threat model and what each proves).
# Runs in a throwaway cluster of its own, configured as an attacker would
# want it (auto_explain logging every nested plan verbosely,
# log_statement = all), against the TikTok simulator.
#   test/security/run.sh        (after make install; scripts/test.sh runs it)
# Ends with "security: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."

export VS_SIM_PORT=${VS_SIM_PORT:-18443}
if [ "$(scripts/sim.sh ensure)" = started ]; then
  trap 'scripts/sim.sh stop >/dev/null' EXIT
fi

VS_EXTRA_PRELOAD=auto_explain \
scripts/pg-cluster.sh vs_security \
  -o auto_explain.log_min_duration=0 \
  -o auto_explain.log_nested_statements=on \
  -o auto_explain.log_verbose=on \
  -o auto_explain.log_analyze=on \
  -o log_statement=all \
  -o lo_compat_privileges=off \
  test/security/in_cluster.sh
