#!/usr/bin/env bash
# Builds the Analytics page's static files (api/analytics/): installs the npm
# packages pinned in api/package.json (api/package-lock.json) when missing,
# and copies Chart.js's browser bundle into api/analytics/vendor/. The server
# then only serves files; nothing is built there.
#   scripts/build-analytics.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f api/node_modules/chart.js/dist/chart.umd.js ] || [ api/package-lock.json -nt api/node_modules/.package-lock.json ]; then
  npm ci --prefix api --no-audit --no-fund --loglevel=error >/dev/null
fi
mkdir -p api/analytics/vendor
cp api/node_modules/chart.js/dist/chart.umd.js api/analytics/vendor/chart.umd.js
cp api/node_modules/chart.js/LICENSE.md api/analytics/vendor/chart.js.LICENSE.md
