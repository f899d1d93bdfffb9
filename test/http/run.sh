#!/usr/bin/env bash
# The HTTP API against the real servers, one command: a throwaway cluster,
# the TikTok simulator, PostgREST 12 (from npm) behind nginx with the
# shipped api/postgrest.conf and api/nginx.conf (scripts/api-stack.sh),
# then test/http/api_test.py sends real requests through nginx.
#   test/http/run.sh        (after make install; scripts/test.sh runs it)
# Ends with "http_api: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."

export VS_SIM_PORT=${VS_SIM_PORT:-18443}
if [ "$(scripts/sim.sh ensure)" = started ]; then
  trap 'scripts/sim.sh stop >/dev/null' EXIT
fi
scripts/pg-cluster.sh vs_http test/http/in_cluster.sh
