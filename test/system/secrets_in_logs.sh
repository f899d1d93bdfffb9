#!/usr/bin/env bash
# After the suites: no token, client secret or encryption key in the server
# log (default verbosity) or the simulator's request log. Needs the PG*
# variables of the test cluster (pg_virtualenv) and $VS_SIM_PORT.
set -uo pipefail
cd "$(dirname "$0")/../.."

# The cluster's log file: the last column of pg_lsclusters (pg_virtualenv's cluster).
log=$(pg_lsclusters --no-header | awk -v port="$PGPORT" '$3 == port { print $NF }')
secrets=$(mktemp)
psql -X -qAt -c "SELECT vibescaling._unseal(access_token_enc) FROM vibescaling.tiktok_accounts WHERE access_token_enc IS NOT NULL
                 UNION SELECT vibescaling._unseal(refresh_token_enc) FROM vibescaling.tiktok_accounts WHERE refresh_token_enc IS NOT NULL
                 UNION SELECT current_setting('vibescaling.client_secret')
                 UNION SELECT current_setting('vibescaling.token_encryption_key')" >"$secrets"
curl -s "http://127.0.0.1:${VS_SIM_PORT:-18443}/_sim/requests" >"$secrets.sim"

passed=0
failed=0
# Records one assertion: check NAME EXPECTED ACTUAL.
check() {
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok - $1"
  else failed=$((failed + 1)); echo "not ok - $1 (expected '$2', got '$3')"; fi
}
check "the server log exists and is not empty" yes "$([ -s "$log" ] && echo yes || echo no)"
check "there are secrets to look for ($(wc -l <"$secrets") of them)" yes "$([ "$(wc -l <"$secrets")" -ge 10 ] && echo yes || echo no)"
check "no secret in the server log ($(wc -l <"$log") lines)" 0 "$(grep -cFf "$secrets" "$log")"
check "no secret in the simulator's request log" 0 "$(grep -cFf "$secrets" "$secrets.sim")"
rm -f "$secrets" "$secrets.sim"
echo "secrets: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
