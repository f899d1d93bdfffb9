#!/usr/bin/env bash
# Runs a command inside a throwaway PostgreSQL 15 cluster (Debian's
# pg_virtualenv, which works as root) configured as vibescaling needs it:
# pg_cron and vibescaling preloaded (vibescaling so that its secret settings
# are defined, superuser-only, before any session can read them), pg_cron
# for database DBNAME with jobs in background workers, worker slots for the
# dispatch-log writer and token refresher, and the TikTok simulator's app
# credentials, the URL prefixes the simulator treats as verified, and a
# throwaway token encryption key, and the media checks off (most suites
# upload synthetic bytes that are no video; test/pgtap/23_media.sql turns
# them on). PG* point at it. More server settings
# may follow DBNAME as "-o name=value" pairs; VS_EXTRA_PRELOAD adds a
# library to shared_preload_libraries.
#   scripts/pg-cluster.sh DBNAME [-o name=value ...] COMMAND [ARGS...]
set -euo pipefail
db=$1
shift
extra=()
while [ "${1:-}" = "-o" ]; do
  extra+=(-o "$2")
  shift 2
done
exec pg_virtualenv -t \
  -o "shared_preload_libraries=pg_cron,vibescaling${VS_EXTRA_PRELOAD:+,$VS_EXTRA_PRELOAD}" \
  -o "cron.database_name=$db" \
  -o cron.use_background_workers=on \
  -o max_worker_processes=32 \
  -o vibescaling.client_key=sim_client_key \
  -o "vibescaling.pull_url_prefixes=https://verified.example/,https://cdn.vibescaling.test/" \
  -o vibescaling.client_secret=sim_client_secret \
  -o vibescaling.media_checks=off \
  -o "vibescaling.token_encryption_key=throwaway-test-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  "${extra[@]}" \
  "$@"
