#!/usr/bin/env bash
# Sets up this Debian machine and runs every vibescaling test:
#   1. GoogleTest unit tests of the Postgres-free C++ core (CMake/ctest),
#      also under AddressSanitizer + UndefinedBehaviorSanitizer
#   2. the TikTok simulator's own tests, and api/nginx.conf's routes
#   3. pg_regress (sql/, expected/), pgTAP (test/pgtap/*.sql) and the concurrency
#      test (test/system/concurrency.sh) in a throwaway PostgreSQL 15 cluster
#      (pg_virtualenv) with pg_cron, against the simulator
#   (under CI=true, or VS_TEST_PACKAGE=1, the database suites run against the
#   Debian package built from HEAD and installed, not against make install)
#   4. the security suite (test/security/run.sh) in a cluster of its own
#   5. the upgrade path from the oldest frozen release (test/upgrade/run.sh)
#   6. dump and restore, a standby and a failover (test/release/run.sh)
#   6b. the HTTP API through nginx and PostgREST 12 from npm (test/http/run.sh),
#       and the Analytics page in Chromium (test/browser/run.sh)
#   7. 200 sessions publishing with 8 worker slots (test/system/saturation.sh), and
#      kill -9 of the log writer and the postmaster with calls in flight
#      (test/system/crash_inflight.sh), each in a cluster of its own
# Usage: scripts/test.sh      (as root or with sudo rights; CI runs exactly this)
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp /tmp/vibescaling-test.XXXXXX)
scripts/install-deps.sh

echo "== 1. core unit tests (GoogleTest)"
cmake -S . -B build/core -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/core -j2 >/dev/null
ctest --test-dir build/core --output-on-failure | tee -a "$log" | tail -n 3

echo "== 1b. the same core tests under AddressSanitizer + UndefinedBehaviorSanitizer (leak checks on)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" >/dev/null
cmake --build build/asan -j2 >/dev/null
(cd build/asan && ASAN_OPTIONS=detect_leaks=1 ./core_tests --gtest_brief=1 2>&1 | tail -n 2)

echo "== 2. simulator tests"
python3 -m unittest discover -s sim/tests -t . 2>&1 | tee -a "$log" | tail -n 3

echo "== 2b. the nginx configuration in front of PostgREST (api/nginx.conf)"
test/system/nginx_routes.sh 2>&1 | tee -a "$log" | tail -n 1

# CI (and VS_TEST_PACKAGE=1) tests the Debian package as a DBA installs it;
# a developer's run tests the working tree (make install).
if [ -n "${VS_TEST_PACKAGE:-${CI:-}}" ]; then
  echo "== 3. build the Debian package from HEAD and install it (scripts/build-deb.sh)"
  deb=$(scripts/build-deb.sh build/deb | tail -n 1)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "$deb" >/dev/null
  dpkg-query -W -f='package: ${Package} ${Version} ${Status}\n' postgresql-15-vibescaling
  # Every suite below runs against these installed files.
  dpkg -L postgresql-15-vibescaling | grep -E '/extension/vibescaling.*(sql|control)$|vibescaling\.so$'
  # The package's own smoke test (debian/tests): a fresh install and the update from the oldest release.
  sh debian/tests/create-extension 2>&1 | grep -E '^(ok|###)'
else
  echo "== 3. build and install the extension"
  make -j2 >/dev/null
  make install >/dev/null
fi

export VS_SIM_PORT=${VS_SIM_PORT:-18443}
scripts/sim.sh start
trap 'scripts/sim.sh stop' EXIT

echo "== 4. database tests (pg_regress, pgTAP, concurrency) in a throwaway cluster"
scripts/pg-cluster.sh contrib_regression scripts/test-in-cluster.sh 2>&1 | tee -a "$log"

echo "== 5. the security suite (test/security) in a throwaway cluster of its own"
test/security/run.sh 2>&1 | tee -a "$log"

echo "== 6. the upgrade path: $(ls src/sql/releases | sed -n 's/^vibescaling--\([0-9.]*\)\.sql$/\1/p' | sort -V | head -n 1) with data, ALTER EXTENSION UPDATE, schema = fresh install"
test/upgrade/run.sh 2>&1 | tee -a "$log"

echo "== 7. dump and restore, a standby and a failover (test/release), each in a throwaway cluster"
test/release/run.sh 2>&1 | tee -a "$log"

echo "== 7b. the HTTP API through real nginx and PostgREST 12 (test/http), in a throwaway cluster"
test/http/run.sh 2>&1 | tee -a "$log"

echo "== 7c. the Analytics page in headless Chromium through nginx and PostgREST (test/browser)"
test/browser/run.sh 2>&1 | tee -a "$log"

echo "== 8. 200 sessions publishing on 8 worker slots, and kill -9 with calls in flight (each its own cluster)"
# Each on a simulator of its own, which it starts and stops.
VS_SIM_PORT=18470 test/system/saturation.sh 2>&1 | tee -a "$log"
VS_SIM_PORT=18471 test/system/crash_inflight.sh 2>&1 | tee -a "$log"

# Every suite passed (set -e and pipefail stop at the first failure); add up
# what each runner reported.
unit=$(grep -oP 'tests passed, 0 tests failed out of \K[0-9]+' "$log")
sim=$(grep -oP '^Ran \K[0-9]+' "$log")
regress=$(grep -oP 'All \K[0-9]+(?= tests passed)' "$log")
tap=$(grep -oP '^Files=[0-9]+, Tests=\K[0-9]+' "$log" | head -n 1)
conc=$(grep -oP '^concurrency: \K[0-9]+(?= passed, 0 failed)' "$log")
isolation=$(grep -oP '^isolation: \K[0-9]+(?= passed, 0 failed)' "$log")
secrets=$(grep -oP '^secrets: \K[0-9]+(?= passed, 0 failed)' "$log")
crash=$(grep -oP '^crash: \K[0-9]+(?= passed, 0 failed)' "$log")
chaos=$(grep -oP '^chaos: \K[0-9]+(?= passed, 0 failed)' "$log")
nginx=$(grep -oP '^nginx: \K[0-9]+(?= passed, 0 failed)' "$log")
http2=$(grep -oP '^http2: \K[0-9]+(?= passed, 0 failed)' "$log")
security=$(grep -oP '^security: \K[0-9]+(?= passed, 0 failed)' "$log")
upgrade=$(grep -oP '^upgrade: \K[0-9]+(?= passed, 0 failed)' "$log")
release=$(grep -oP '^release: \K[0-9]+(?= passed, 0 failed)' "$log")
saturation=$(grep -oP '^saturation: \K[0-9]+(?= passed, 0 failed)' "$log")
inflight=$(grep -oP '^crash_inflight: \K[0-9]+(?= passed, 0 failed)' "$log")
http_api=$(grep -oP '^http_api: \K[0-9]+(?= passed, 0 failed)' "$log")
browser=$(grep -oP '^browser: \K[0-9]+(?= passed, 0 failed)' "$log")
rm -f "$log"
echo "== core $unit, simulator $sim, nginx $nginx, pg_regress $regress, pgTAP $tap, concurrency $conc, isolation $isolation, http2 $http2, secrets $secrets, chaos $chaos, crash $crash, security $security, upgrade $upgrade, release $release, saturation $saturation, crash_inflight $inflight, http_api $http_api, browser $browser"
echo "tests: $((unit + sim + nginx + regress + tap + conc + isolation + http2 + secrets + chaos + crash + security + upgrade + release + saturation + inflight + http_api + browser)) passed, 0 failed"
