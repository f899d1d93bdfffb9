#!/usr/bin/env bash
# The security suite inside its throwaway cluster (test/security/run.sh):
# pgTAP files first, then the shell tests that read the server log or
# change the database's settings (search_path hijack last).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PGDATABASE=vs_security
createdb vs_security
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
ALTER DATABASE vs_security SET vibescaling.api_base_url TO 'http://127.0.0.1:$VS_SIM_PORT';
ALTER DATABASE vs_security SET vibescaling.request_timeout_ms TO 10000;
-- The simulator serves test videos on loopback (06_ssrf.sql turns this off to attack it).
ALTER DATABASE vs_security SET vibescaling.source_allowed_networks TO '127.0.0.1/32';
CREATE EXTENSION vibescaling CASCADE;
CREATE EXTENSION pgtap;
CREATE EXTENSION dblink;
CREATE EXTENSION pg_cron;
SQL
psql -qX -v ON_ERROR_STOP=1 -f test/fixtures/setup.sql >/dev/null

. test/lib/check.sh
log=$(mktemp)
pg_prove --failures test/security/*.sql 2>&1 | tee "$log"
tap=$(grep -oP '^Files=[0-9]+, Tests=\K[0-9]+' "$log" || echo 0)
if grep -q '^Result: PASS' "$log"; then
  passed=$((passed + tap))
else
  # The failing assertions: pg_prove's "Failed N/M subtests" (planned but
  # not run counts too), at least one.
  bad=$(grep -oP '^Failed \K[0-9]+(?=/[0-9]+ subtests)' "$log" | awk '{ n += $1 } END { print n + 0 }')
  [ "$bad" -gt 0 ] || bad=1
  failed=$((failed + bad)); passed=$((passed + (tap > bad ? tap - bad : 0)))
fi

for t in secrets_in_logs:security_secrets search_path_hijack:security_hijack; do
  echo "-- test/security/${t%%:*}.sh"
  bash "test/security/${t%%:*}.sh" 2>&1 | tee "$log"
  add_suite_result "${t##*:}" "$log"
done
rm -f "$log"
finish_checks security
