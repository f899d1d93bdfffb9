#!/usr/bin/env bash
# Runs a command inside a throwaway PostgreSQL 15 cluster (Debian's
# pg_virtualenv, which works as root) configured as vibescaling needs it:
# pg_cron preloaded for database DBNAME, pg_cron jobs in background workers,
# worker slots for the dispatch-log writer. PG* variables point at it.
#   scripts/pg-cluster.sh DBNAME COMMAND [ARGS...]
set -euo pipefail
db=$1
shift
exec pg_virtualenv -t \
  -o shared_preload_libraries=pg_cron \
  -o "cron.database_name=$db" \
  -o cron.use_background_workers=on \
  -o max_worker_processes=32 \
  "$@"
