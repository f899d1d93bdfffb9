#!/usr/bin/env bash
# The Analytics page in a real browser, one command: a throwaway cluster,
# the simulator, the API stack (nginx, PostgREST, the page), a demo burst
# for two tenants (test/browser/fixture.sql), then Debian's Chromium driven
# by playwright-core (test/browser/analytics_test.mjs). Screenshots land in
# VS_SCREENSHOT_DIR (default: a temporary folder, removed).
#   test/browser/run.sh        (after make install; scripts/test.sh runs it)
# Ends with "browser: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."

export VS_SIM_PORT=${VS_SIM_PORT:-18443}
if [ "$(scripts/sim.sh ensure)" = started ]; then
  trap 'scripts/sim.sh stop >/dev/null' EXIT
fi
scripts/pg-cluster.sh vs_browser test/browser/in_cluster.sh
