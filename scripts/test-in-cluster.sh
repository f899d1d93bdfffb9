#!/usr/bin/env bash
# Runs the database test suites; called by scripts/test.sh inside
# pg_virtualenv (PGHOST/PGPORT/PGUSER point at the throwaway cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "-- pg_regress"
if ! make installcheck; then
  cat regression.diffs 2>/dev/null | head -n 200
  exit 1
fi

echo "-- pgTAP (database contrib_regression, left by pg_regress)"
export PGDATABASE=contrib_regression
psql -qX -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS pgtap' -f test/fixtures/setup.sql
pg_prove --failures test/pgtap/*.sql

echo "-- concurrency"
test/system/concurrency.sh

echo "-- isolation specs (the races, under PostgreSQL's isolationtester)"
test/isolation/run.sh

echo "-- TLS and HTTP/2 through nghttpx"
test/system/http2_tls.sh

echo "-- secrets in logs"
test/system/secrets_in_logs.sh

echo "-- chaos (1800 posts, faults, cancelled and terminated dispatchers)"
test/system/chaos.sh

echo "-- crash (kill -9 the postmaster mid-dispatch)"
test/system/crash.sh
